//! The fuzz targets: each hands arbitrary bytes to a reader of input precheck does not control and
//! returns normally whatever the bytes are. A panic, a hang or an allocation past the fuzzer's
//! limit is a finding.
//!
//! The same functions run in two harnesses: `cargo fuzz run <target>` (libFuzzer, coverage-guided,
//! `fuzz/fuzz_targets/`), for long runs; and `tests/fuzz.rs`, which replays the committed corpus
//! (`fuzz/corpus/<target>/`) and a budget of its mutations on every build. This file is included
//! by path in both, so it names only `precheck` and the standard library, `tempfile` and
//! `serde_json`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use precheck::backend::{parse_kernels, parse_timings};
use precheck::export::{self, Calibration, Precision};
use precheck::formats::Format;
use precheck::model::{load, onnx};
use precheck::precision::presets;
use precheck::results::{read_records, RunInfo, VariantRecord, RESULTS_FILE, RUN_INFO_FILE};
use precheck::trtexec;

/// A target: its name (the corpus folder's) and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("suite", suite),
    ("arrays", arrays),
    ("records", records),
    ("engine_outputs", engine_outputs),
    ("onnx_model", onnx_model),
];

/// A suite file: parsed, validated and expanded into variants, or an error naming its line and
/// column.
pub fn suite(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match precheck::suite::from_str(Path::new("fuzz.yaml"), text) {
        Ok(suite) => {
            for variant in &suite.variants {
                assert!(!variant.id.is_empty());
            }
        }
        Err(error) => {
            // Every error names the file, line and column: `fuzz.yaml:LINE:COLUMN: ...`.
            let text = error.to_string();
            let place = text.strip_prefix("fuzz.yaml:").unwrap_or_default();
            assert!(place.starts_with(|c: char| c.is_ascii_digit()), "{text}");
        }
    }
}

/// An input or output array file: the first byte picks `.npy`, `.npz` or `.safetensors`; the
/// rest is the file.
pub fn arrays(data: &[u8]) {
    let Some((&kind, file)) = data.split_first() else {
        return;
    };
    let extension = ["npy", "npz", "safetensors"][kind as usize % 3];
    let path = scratch(&format!("x.{extension}"), file);
    if let Ok(array) = load::named_array(&path, "x") {
        let elements: usize = array.shape.iter().product();
        assert_eq!(elements, array.data.len(), "{:?}", array.shape);
    }
    if extension == "safetensors" {
        let _ = load::read_arrays(&path);
        let _ = load::output(&path, [2, 3]);
    }
}

/// A run folder's two files: the first line is `run.json`, the rest `results.jsonl`. Whatever
/// the reader accepts, the writer's rewrite of it must read back the same (the reader never
/// rejects what the writer wrote).
pub fn records(data: &[u8]) {
    let (info, results) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let dir = scratch_dir();
    write(&dir.join(RUN_INFO_FILE), info);
    write(&dir.join(RESULTS_FILE), results);
    if let Ok((records, _)) = read_records(&dir.join(RESULTS_FILE)) {
        for record in &records {
            let written = serde_json::to_string(record).expect("a record serializes");
            let read: VariantRecord = serde_json::from_str(&written).unwrap_or_else(|e| {
                panic!("the reader rejects what the writer wrote: {e}\n{written}")
            });
            assert_eq!(serde_json::to_string(&read).unwrap(), written);
        }
    }
    if let Ok(info) = serde_json::from_slice::<RunInfo>(info) {
        let written = serde_json::to_string(&info).expect("run.json serializes");
        let read: RunInfo = serde_json::from_str(&written)
            .unwrap_or_else(|e| panic!("run.json as written is rejected: {e}\n{written}"));
        assert_eq!(serde_json::to_string(&read).unwrap(), written);
    }
}

/// What an engine writes: the first byte picks the command protocol's `timings.json` or
/// `kernels.json`, or trtexec's layer information, output dump, profile or times; the rest is
/// the file.
pub fn engine_outputs(data: &[u8]) {
    let Some((&kind, file)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(file);
    let path = Path::new("engine.json");
    match kind % 6 {
        0 => {
            if let Ok(latencies) = parse_timings(&text, 3) {
                assert!(latencies.iter().all(|t| !t.is_zero()));
            }
        }
        1 => {
            let _ = parse_kernels(&text);
        }
        2 => {
            if let Ok(report) = trtexec::layers::parse(path, &text) {
                let _ = report.names();
                let _ = report.detailed();
            }
        }
        3 => {
            if let Ok(outputs) = trtexec::output::parse(path, &text) {
                for output in &outputs {
                    let _ = output.volume();
                }
            }
        }
        4 => {
            let _ = trtexec::profile::parse(path, &text);
        }
        _ => {
            if let Ok(trace) = trtexec::times::parse(path, &text) {
                let _ = trace.compute_stats();
            }
        }
    }
}

/// A user's ONNX model: its interface read, then upgraded, localized and rewritten into a
/// precision the first byte picks, as an engine would get it.
pub fn onnx_model(data: &[u8]) {
    let Some((&kind, file)) = data.split_first() else {
        return;
    };
    let path = scratch("model.onnx", file);
    let Ok(interface) = onnx::read(&path) else {
        return;
    };
    let localize = [
        onnx::Localize::Matmul,
        onnx::Localize::All,
        onnx::Localize::Off,
    ][kind as usize % 3];
    let model = onnx::OnnxModel {
        file: interface,
        inputs: Vec::new(),
        gated: Vec::new(),
        localize,
        held: Format::Bf16,
        percentile: None,
    };
    let Ok(marks) = export::localized_values(&model) else {
        return;
    };
    let marks: Vec<String> = marks.into_iter().map(|m| m.value).collect();
    let calibrated = export::calibrated_values(&model).unwrap_or_default();
    let calibration = Calibration::new(calibrated.into_iter().map(|v| (v, 1.0)).collect());
    let name = ["fp16", "int8", "fp8_e4m3", "bf16"][(kind as usize / 3) % 4];
    let policy = presets::preset(name).expect("a preset");
    for precision in [Precision::InGraph, Precision::BuilderFlags] {
        let _ = export::user_model(&model, &policy, precision, &calibration, &marks);
    }
}

/// The per-thread scratch folder the targets write their files in.
fn scratch_dir() -> PathBuf {
    thread_local! {
        static DIR: tempfile::TempDir = tempfile::tempdir().expect("a scratch folder");
    }
    DIR.with(|dir| dir.path().to_owned())
}

fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch_dir().join(name);
    write(&path, bytes);
    path
}

fn write(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// The corpus folder of `target` under `root` (`fuzz/corpus`).
pub fn corpus(root: &Path, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: BTreeMap<PathBuf, Vec<u8>> = BTreeMap::new();
    for entry in fs::read_dir(root.join(target)).into_iter().flatten() {
        let path = entry.expect("a corpus entry").path();
        if path.is_file() {
            let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            files.insert(path, bytes);
        }
    }
    files.into_iter().collect()
}
