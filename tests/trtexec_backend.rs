//! The trtexec backend end to end, with `tests/runners/fake_trtexec.py` in trtexec's place (its
//! command line and file formats, ONNX Runtime inside): engines built once per variant with the
//! policy's flags and cached, outputs and timings read back, the engine's layer report used as
//! precision evidence; and without trtexec, every variant skipped, saying why. Needs python3
//! with onnx, onnxruntime and numpy.

mod common;

use common::{junit, precheck};

use std::path::{Path, PathBuf};

use precheck::mismatch::Verdict;
use precheck::results::{read_records, Status, VariantRecord, RESULTS_FILE};

const SUITE: &str = "
name: engines
defaults: { warmup: 1, iterations: 3 }
models:
  - { name: proj, block: linear, dims: { hidden: 64, out_features: 48 }, input: { tokens: 8 } }
  - name: mlp
    block: mlp
    dims: { hidden: 64, intermediate: 128 }
    activation: gelu_tanh
    input: { tokens: 8 }
precisions: [bf16, fp32, fp16, int8, fp8_e4m3, mxfp8]
gates: { cos_min: 0.99 }
";

struct Bench {
    dir: tempfile::TempDir,
    suite: PathBuf,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let suite = dir.path().join("engines.yaml");
        std::fs::write(&suite, SUITE).unwrap();
        Bench { dir, suite }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the suite on the trtexec backend with `trtexec` (none: not found) and `env`; returns
    /// the exit code and the records.
    fn run(
        &self,
        out: &str,
        trtexec: Option<&Path>,
        env: &[(&str, &str)],
    ) -> (Option<i32>, Vec<VariantRecord>) {
        let mut command = precheck();
        command
            .arg("run")
            .arg(&self.suite)
            .args(["--backend", "trtexec", "--engine-cache"])
            .arg(self.path("engines"))
            .arg("--out")
            .arg(self.path(out))
            .env("FAKE_TRTEXEC_LOG", self.path("trtexec.log"))
            .envs(env.iter().copied());
        match trtexec {
            Some(program) => command.arg("--trtexec").arg(program),
            // A PATH without trtexec (the fallback location does not exist here either).
            None => command.env("PATH", "/usr/bin:/bin"),
        };
        let status = command.output().unwrap().status;
        let (records, _) = read_records(&self.path(out).join(RESULTS_FILE)).unwrap();
        (status.code(), records)
    }

    /// The build invocations trtexec saw so far.
    fn builds(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("trtexec.log"))
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains("--onnx="))
            .map(str::to_owned)
            .collect()
    }
}

fn fake() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/runners/fake_trtexec.py")
}

fn record<'a>(records: &'a [VariantRecord], id: &str) -> &'a VariantRecord {
    records.iter().find(|r| r.id == id).unwrap()
}

#[test]
fn engines_are_built_with_the_policys_flags_measured_and_cached() {
    let bench = Bench::new();
    let (_, records) = bench.run("first", Some(&fake()), &[]);
    assert_eq!(records.len(), 12);
    for record in &records {
        if record.precision == "mxfp8" {
            let error = record.error.as_deref().unwrap();
            assert!(error.contains("ONNX opset 21 cannot express"), "{error}");
            continue;
        }
        assert_eq!(
            record.status,
            Status::Passed,
            "{}: {:?}",
            record.id,
            record.error
        );
        assert!(record.id.ends_with("/trtexec"));
        let agreement = record.cpu_agreement.as_ref().unwrap().cos;
        assert!(agreement > 0.999_999, "{}: {agreement}", record.id);
        assert_eq!(record.latency.as_ref().unwrap().samples_ms.len(), 3);
        // The stand-in times ONNX Runtime on this machine's CPU, where a lower precision need not
        // be faster: the speed check may call a variant `suspect`. What ran must match what was
        // asked: no precision evidence may find a mismatch.
        let verdict = &record.mismatch.as_ref().unwrap().verdict;
        assert!(
            matches!(verdict, Verdict::None | Verdict::Suspect { .. }),
            "{}: {verdict:?}",
            record.id
        );
    }
    let builds = bench.builds();
    assert_eq!(builds.len(), 10, "one engine per variant: {builds:#?}");
    let flags_of = |precision: &str| {
        builds
            .iter()
            .filter(|b| {
                b.contains("--exportLayerInfo") && b.contains("--profilingVerbosity=detailed")
            })
            .any(|b| match precision {
                "fp16" => b.contains("--fp16") && !b.contains("--bf16"),
                "fp32" => b.contains("--noTF32"),
                "int8" => b.contains("--int8"),
                "fp8_e4m3" => b.contains("--fp8"),
                _ => true,
            })
    };
    for precision in ["fp16", "fp32", "int8", "fp8_e4m3"] {
        assert!(flags_of(precision), "{precision}: {builds:#?}");
    }

    let (code, again) = bench.run("second", Some(&fake()), &[]);
    assert_eq!(code, Some(3), "mxfp8 is an error record");
    assert_eq!(bench.builds().len(), 10, "the second run built nothing");
    assert_eq!(
        record(&again, "mlp/fp16/trtexec")
            .accuracy
            .as_ref()
            .unwrap()
            .cos,
        record(&records, "mlp/fp16/trtexec")
            .accuracy
            .as_ref()
            .unwrap()
            .cos
    );
}

#[test]
fn an_engine_whose_layers_fell_back_to_fp32_fails_its_variant() {
    let bench = Bench::new();
    let (code, records) = bench.run("run", Some(&fake()), &[("FAKE_TRTEXEC_FALLBACK", "1")]);
    assert_eq!(code, Some(3));
    // BF16 asked, FP32 GEMMs reported: above the policy, whether they ran in FP32 or TF32.
    let bf16 = record(&records, "mlp/bf16/trtexec");
    assert_eq!(bf16.status, Status::Failed);
    let verdict = &bf16.mismatch.as_ref().unwrap().verdict;
    assert!(
        matches!(verdict, Verdict::Detected { evidence, .. } if evidence.iter().any(|e| e.starts_with("layer gemm_"))),
        "{verdict:?}"
    );
    assert_eq!(record(&records, "mlp/fp32/trtexec").status, Status::Passed);
    assert_eq!(record(&records, "mlp/int8/trtexec").status, Status::Passed);
}

#[test]
fn without_trtexec_every_variant_is_skipped_saying_why() {
    let bench = Bench::new();
    let (code, records) = bench.run("run", None, &[]);
    assert_eq!(code, Some(3), "a skipped variant is never a pass");
    assert_eq!(records.len(), 12);
    for record in &records {
        assert_eq!(record.status, Status::Skipped);
        assert!(
            record
                .error
                .as_deref()
                .unwrap()
                .starts_with("trtexec not found"),
            "{:?}",
            record.error
        );
    }
    let junit = std::fs::read_to_string(bench.path("run/junit.xml")).unwrap();
    assert_eq!(junit::check_strict(&junit), Ok(()), "{junit}");
    assert!(junit.contains("skipped=\"12\""), "{junit}");
    assert_eq!(junit.matches("<skipped>trtexec not found").count(), 12);
}
