//! The reference store (`--store`): references and CPU emulations are read from it when it holds
//! them under their key, computed and kept when it does not, and a run gives the same records
//! with it, without it, with its entries corrupt, or with two runs writing it at once.

mod common;

use std::path::{Path, PathBuf};

use common::{cpu, precheck, run_in_process, Fake, Plant};
use precheck::plan::Overrides;
use precheck::precision::Policy;
use precheck::results::{read_records, VariantRecord, RESULTS_FILE};
use safetensors::SafeTensors;

const SUITE: &str = "
name: stored
models:
  - { name: mlp, block: mlp, dims: { hidden: 64, intermediate: 128 }, input: { tokens: 8 } }
  - { name: stack, block: stack, dims: { hidden: 32, intermediate: 64, heads: 2, kv_heads: 1, layers: 2 }, activation: silu, input: { tokens: 8 } }
precisions: [bf16, fp8_e4m3]
gates: { cos_min: 0.99 }
";

fn entries(store: &Path, kind: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(&format!("{kind}-")) && name.ends_with(".safetensors")
        })
        .collect();
    found.sort();
    found
}

/// A variant's numbers, as two runs must agree on them.
fn numbers(records: &[VariantRecord]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| {
            let accuracy = serde_json::to_string(&r.accuracy).unwrap();
            let agreement = serde_json::to_string(&r.cpu_agreement).unwrap();
            (
                r.id.clone(),
                format!("{accuracy} {agreement} {:?}", r.status),
            )
        })
        .collect()
}

fn run(store: Option<&Path>, seed: u64, out: &Path) -> Vec<VariantRecord> {
    let overrides = Overrides {
        store: store.map(Path::to_owned),
        seed: Some(seed),
        cpu_agreement: Some(precheck::measure::AgreementMode::Every),
        ..Overrides::default()
    };
    let engine = Fake {
        name: "engine",
        build: cpu,
        plant: |_: &Policy| Plant::default(),
    };
    run_in_process(&engine, SUITE, &overrides, out)
}

/// Adds 0.5 to every value of every tensor of the entry at `path`, keeping its key: what a run
/// then reports shows whether it read the entry.
fn shift_entry(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view
                .data()
                .chunks_exact(8)
                .flat_map(|b| (f64::from_le_bytes(b.try_into().unwrap()) + 0.5).to_le_bytes())
                .collect();
            (name, view.shape().to_vec(), data)
        })
        .collect();
    let views = tensors.iter().map(|(name, shape, data)| {
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F64, shape.clone(), data)
                .unwrap();
        (name.as_str(), view)
    });
    let encoded = safetensors::serialize(views, metadata.metadata().clone()).unwrap();
    std::fs::write(path, encoded).unwrap();
}

#[test]
fn entries_are_read_under_their_key_and_recomputed_when_stale_or_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let without = run(None, 1, &dir.path().join("without"));
    let first = run(Some(&store), 1, &dir.path().join("first"));
    assert_eq!(numbers(&first), numbers(&without));
    // One reference per model; an emulation per model and policy, and one per fingerprint
    // alternative (this engine reports no kernel trace, so every alternative is emulated).
    assert_eq!(entries(&store, "reference").len(), 2);
    let emulations = entries(&store, "emulation").len();
    assert!(emulations > 4, "{emulations}");
    let _ = run(Some(&store), 1, &dir.path().join("second"));
    assert_eq!(
        entries(&store, "emulation").len(),
        emulations,
        "all read back"
    );

    // Read, not recomputed: entries shifted under their key change what the next run reports.
    for path in entries(&store, "reference")
        .into_iter()
        .chain(entries(&store, "emulation"))
    {
        shift_entry(&path);
    }
    let shifted = run(Some(&store), 1, &dir.path().join("shifted"));
    for (read, computed) in shifted.iter().zip(&without) {
        let (read, computed) = (
            read.accuracy.as_ref().unwrap(),
            computed.accuracy.as_ref().unwrap(),
        );
        assert!(read.cos < computed.cos, "{} {}", read.cos, computed.cos);
    }

    // Another seed is another input: other keys, and the shifted entries are left alone.
    let reseeded = run(Some(&store), 2, &dir.path().join("reseeded"));
    let without_2 = run(None, 2, &dir.path().join("without_2"));
    assert_eq!(numbers(&reseeded), numbers(&without_2));
    assert_eq!(entries(&store, "reference").len(), 4);

    // Corrupt entries: recomputed, rewritten, and the run's numbers are the computed ones.
    for (index, path) in entries(&store, "reference")
        .into_iter()
        .chain(entries(&store, "emulation"))
        .enumerate()
    {
        let bytes = std::fs::read(&path).unwrap();
        let broken = match index % 3 {
            0 => bytes[..bytes.len() / 2].to_vec(),
            1 => b"{ not an entry".to_vec(),
            _ => Vec::new(),
        };
        std::fs::write(&path, broken).unwrap();
    }
    let repaired = run(Some(&store), 1, &dir.path().join("repaired"));
    assert_eq!(numbers(&repaired), numbers(&without));
    let again = run(Some(&store), 1, &dir.path().join("again"));
    assert_eq!(numbers(&again), numbers(&without));
    let repaired_2 = run(Some(&store), 2, &dir.path().join("repaired_2"));
    assert_eq!(numbers(&repaired_2), numbers(&without_2));
    for path in entries(&store, "reference") {
        let bytes = std::fs::read(&path).unwrap();
        SafeTensors::deserialize(&bytes).expect("rewritten whole");
    }
}

#[test]
fn two_runs_writing_one_store_at_once_both_give_the_computed_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let suite = dir.path().join("suite.yaml");
    std::fs::write(&suite, SUITE).unwrap();
    let children: Vec<_> = (0..2)
        .map(|i| {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_precheck"));
            command
                .arg("run")
                .arg(&suite)
                .arg("--iterations=2")
                .arg("--out")
                .arg(dir.path().join(format!("run{i}")))
                .arg("--store")
                .arg(&store)
                .stdout(std::process::Stdio::null());
            command.spawn().unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    precheck()
        .arg("run")
        .arg(&suite)
        .arg("--iterations=2")
        .arg("--no-store")
        .arg("--out")
        .arg(dir.path().join("computed"))
        .assert()
        .success();
    let read = |name: &str| {
        read_records(&dir.path().join(name).join(RESULTS_FILE))
            .unwrap()
            .0
    };
    let computed = numbers(&read("computed"));
    assert_eq!(numbers(&read("run0")), computed);
    assert_eq!(numbers(&read("run1")), computed);
    assert_eq!(entries(&store, "reference").len(), 2);
    let leftovers = std::fs::read_dir(&store).unwrap().count();
    assert_eq!(leftovers, 2, "no temporary files are left behind");
}
