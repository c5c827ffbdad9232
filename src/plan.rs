//! From a suite and the command line to the list of variants a run executes, in order.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::backend::BackendKind;
use crate::host::HostInfo;
use crate::measure::{AgreementMode, CacheMode};
use crate::results::{RunInfo, RunSettings, SuiteInfo};
use crate::shard::Shard;
use crate::suite::{DeviceSelector, LoadedSuite, Suite, Variant};

/// Command-line overrides of the suite's `defaults`, and variant filters.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--warmup`.
    pub warmup: Option<u32>,
    /// `--iterations` (at least 1).
    pub iterations: Option<usize>,
    /// `--filter` patterns: a variant runs if its id matches any (all run when empty).
    pub filters: Vec<String>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--cache`.
    pub cache: Option<CacheMode>,
    /// `--cpu-agreement`.
    pub cpu_agreement: Option<AgreementMode>,
    /// `--products-on-host`.
    pub products_on_host: bool,
    /// `--store`, or none with `--no-store`.
    pub store: Option<std::path::PathBuf>,
    /// `--shard`, or the scheduler's array index: this run's slice of the selected variants.
    pub shard: Option<Shard>,
}

/// A plan that cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A `--filter` pattern that is not a valid glob.
    #[error("--filter `{pattern}`: {message}")]
    BadFilter {
        /// The pattern.
        pattern: String,
        /// Why it is invalid.
        message: String,
    },
    /// Filters that select nothing: almost certainly a typo.
    #[error("no variant matches --filter {patterns}; `precheck list` shows the ids")]
    NothingSelected {
        /// The patterns, quoted.
        patterns: String,
    },
    /// `--iterations 0`.
    #[error("--iterations must be at least 1")]
    NoIterations,
    /// The suite's matrix is empty: its `exclude` entries remove every combination.
    #[error("the suite has no variant to run: its matrix's `exclude` entries remove every combination of models, precisions and gpus")]
    NoVariants,
    /// A GPU backend, and no variant targets its device.
    #[error("no variant of this suite targets {device} (its gpus: {gpus}); add `cuda` or a matching GPU name to `gpus`")]
    NoMatchingDevice {
        /// The device.
        device: String,
        /// The suite's device axis.
        gpus: String,
    },
}

/// What a run executes.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Variants in execution order.
    pub variants: Vec<Variant>,
    /// Effective settings.
    pub settings: RunSettings,
}

impl Plan {
    /// The `run.json` of a run of this plan over `loaded`, on a backend of `kind` whose device is
    /// `device_name`, starting at `started_at`.
    pub fn run_info(
        &self,
        loaded: &LoadedSuite,
        kind: BackendKind,
        device_name: String,
        started_at: DateTime<Utc>,
    ) -> RunInfo {
        RunInfo {
            precheck_version: env!("CARGO_PKG_VERSION").to_owned(),
            suite: SuiteInfo {
                name: loaded.suite.name.to_string(),
                path: loaded.path.display().to_string(),
                sha256: loaded.sha256.clone(),
            },
            host: HostInfo::current(),
            backend: kind,
            device_name,
            settings: self.settings.clone(),
            variants_planned: self.variants.len(),
            planned: self.variants.iter().map(|v| v.id.clone()).collect(),
            command_line: std::env::args().collect(),
            started_at,
            finished_at: None,
            resumed_at: Vec::new(),
            merged_from: Vec::new(),
        }
    }
}

/// Plans a run of `suite` on a backend of `kind` whose device is called `device_name`.
///
/// The CPU backend emulates every target: each variant's device becomes `cpu`, so that
/// `m/fp8/h100` and `m/fp8/h200` become one variant `m/fp8/cpu`. The CUDA backend runs the
/// variants that target its device: `cuda`, `cuda:0`, or a GPU model its name contains. Variants are grouped by model
/// (weights and the reference are built once per model) and device, with the reference precision
/// first in each group, since the others' speed-up is measured against it. A shard keeps its
/// slice of the variants the filters selected (possibly none), in that order.
pub fn plan(
    suite: &Suite,
    kind: BackendKind,
    device_name: &str,
    overrides: &Overrides,
) -> Result<Plan, PlanError> {
    let iterations = overrides
        .iterations
        .unwrap_or(suite.defaults.iterations.get());
    if iterations == 0 {
        return Err(PlanError::NoIterations);
    }
    let patterns = overrides
        .filters
        .iter()
        .map(|p| {
            glob::Pattern::new(&glob_of(p)).map_err(|e| PlanError::BadFilter {
                pattern: p.clone(),
                message: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if suite.variants.is_empty() {
        return Err(PlanError::NoVariants);
    }
    let mut seen = HashSet::new();
    let device_name = device_name.to_ascii_lowercase();
    let targets_device = |device: &DeviceSelector| match (kind, device) {
        (BackendKind::Cpu | BackendKind::Command | BackendKind::Trtexec, _) => true,
        (BackendKind::Cuda, DeviceSelector::AnyCuda | DeviceSelector::CudaOrdinal(0)) => true,
        (BackendKind::Cuda, DeviceSelector::GpuModel(model)) => {
            device_name.contains(&model.as_str().to_ascii_lowercase())
        }
        (BackendKind::Cuda, _) => false,
    };
    let targeted: Vec<&Variant> = suite
        .variants
        .iter()
        .filter(|v| targets_device(&v.device))
        .collect();
    if targeted.is_empty() {
        let gpus: Vec<String> = suite.gpus.iter().map(ToString::to_string).collect();
        return Err(PlanError::NoMatchingDevice {
            device: device_name,
            gpus: gpus.join(", "),
        });
    }
    let mut variants: Vec<Variant> = targeted
        .into_iter()
        .map(|v| match kind {
            BackendKind::Cpu => Variant::new(
                v.model.clone(),
                v.precision.clone(),
                DeviceSelector::Cpu,
                v.gates,
            ),
            BackendKind::Command => Variant::new(
                v.model.clone(),
                v.precision.clone(),
                DeviceSelector::Command,
                v.gates,
            ),
            BackendKind::Trtexec => Variant::new(
                v.model.clone(),
                v.precision.clone(),
                DeviceSelector::Trtexec,
                v.gates,
            ),
            BackendKind::Cuda => v.clone(),
        })
        .filter(|v| seen.insert(v.id.clone()))
        .filter(|v| patterns.is_empty() || patterns.iter().any(|p| p.matches(&v.id)))
        .collect();
    if variants.is_empty() {
        let quoted: Vec<String> = overrides.filters.iter().map(|p| format!("`{p}`")).collect();
        return Err(PlanError::NothingSelected {
            patterns: quoted.join(", "),
        });
    }
    if let Some(shard) = overrides.shard {
        variants = shard.select(variants, |v| v.id.as_str());
    }
    let model_rank = |v: &Variant| suite.models.iter().position(|m| m.name == v.model);
    let baseline = suite.baseline_policy().name;
    variants.sort_by_key(|v| {
        (
            model_rank(v),
            v.device.clone(),
            v.precision.name != baseline,
        )
    });
    Ok(Plan {
        variants,
        settings: RunSettings {
            seed: overrides.seed.unwrap_or(suite.defaults.seed),
            warmup: overrides.warmup.unwrap_or(suite.defaults.warmup),
            iterations,
            filters: overrides.filters.clone(),
            reference: suite.reference.precision.format(),
            golden: suite.reference.file.clone(),
            timeout_s: overrides
                .timeout
                .unwrap_or(suite.defaults.timeout.get())
                .as_secs_f64(),
            shard: overrides.shard,
            cache: overrides.cache.unwrap_or(suite.defaults.cache),
            cpu_agreement: overrides
                .cpu_agreement
                .unwrap_or(suite.defaults.cpu_agreement),
            products_on_host: overrides.products_on_host,
            store: overrides.store.clone(),
        },
    })
}

/// A pattern without glob characters matches anywhere in the id, as a plain search would.
fn glob_of(pattern: &str) -> String {
    if pattern.contains(['*', '?', '[']) {
        pattern.to_owned()
    } else {
        format!("*{pattern}*")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const SUITE: &str = "
name: t
models:
  - { name: a, block: linear, dims: { hidden: 8 }, input: { tokens: 2 } }
  - { name: b, block: linear, dims: { hidden: 8 }, input: { tokens: 2 } }
precisions: [fp16, bf16, fp32]
gpus: [h100, h200]
";

    fn ids(plan: &Plan) -> Vec<&str> {
        plan.variants.iter().map(|v| v.id.as_str()).collect()
    }

    #[test]
    fn cpu_collapses_devices_and_puts_the_reference_first() {
        let suite = crate::suite::from_str(Path::new("t.yaml"), SUITE).unwrap();
        let plan = plan(&suite, BackendKind::Cpu, "cpu", &Overrides::default()).unwrap();
        assert_eq!(
            ids(&plan),
            [
                "a/bf16/cpu",
                "a/fp16/cpu",
                "a/fp32/cpu",
                "b/bf16/cpu",
                "b/fp16/cpu",
                "b/fp32/cpu"
            ]
        );
    }

    #[test]
    fn cuda_runs_the_variants_of_its_gpu() {
        let suite = crate::suite::from_str(Path::new("t.yaml"), SUITE).unwrap();
        let h100 = plan(
            &suite,
            BackendKind::Cuda,
            "NVIDIA H100 80GB HBM3",
            &Overrides::default(),
        )
        .unwrap();
        assert!(ids(&h100).iter().all(|id| id.ends_with("/h100")));
        assert_eq!(h100.variants.len(), 6);
        let error = plan(
            &suite,
            BackendKind::Cuda,
            "NVIDIA A100",
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("its gpus: h100, h200"),
            "{error}"
        );
    }

    #[test]
    fn cpu_agreement_comes_from_the_suite_unless_the_command_line_says() {
        use crate::measure::AgreementMode;
        let text = SUITE.replace("name: t\n", "name: t\ndefaults: { cpu_agreement: off }\n");
        let suite = crate::suite::from_str(Path::new("t.yaml"), &text).unwrap();
        let from_suite = plan(&suite, BackendKind::Cpu, "cpu", &Overrides::default()).unwrap();
        assert_eq!(from_suite.settings.cpu_agreement, AgreementMode::Off);
        let overrides = Overrides {
            cpu_agreement: Some(AgreementMode::Every),
            ..Overrides::default()
        };
        let from_flag = plan(&suite, BackendKind::Cpu, "cpu", &overrides).unwrap();
        assert_eq!(from_flag.settings.cpu_agreement, AgreementMode::Every);
        let default = crate::suite::from_str(Path::new("t.yaml"), SUITE).unwrap();
        let default = plan(&default, BackendKind::Cpu, "cpu", &Overrides::default()).unwrap();
        assert_eq!(default.settings.cpu_agreement, AgreementMode::Sample);
    }

    #[test]
    fn filters_are_substrings_or_globs() {
        let suite = crate::suite::from_str(Path::new("t.yaml"), SUITE).unwrap();
        let overrides = Overrides {
            filters: vec!["b/fp".into(), "a/*16*".into()],
            ..Overrides::default()
        };
        let plan = plan(&suite, BackendKind::Cpu, "cpu", &overrides).unwrap();
        assert_eq!(
            ids(&plan),
            ["a/bf16/cpu", "a/fp16/cpu", "b/fp16/cpu", "b/fp32/cpu"]
        );
    }

    #[test]
    fn a_filter_that_selects_nothing_is_an_error() {
        let suite = crate::suite::from_str(Path::new("t.yaml"), SUITE).unwrap();
        let overrides = Overrides {
            filters: vec!["fp8".into()],
            ..Overrides::default()
        };
        let error = plan(&suite, BackendKind::Cpu, "cpu", &overrides).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no variant matches --filter `fp8`; `precheck list` shows the ids"
        );
    }

    #[test]
    fn a_matrix_that_excludes_everything_says_so() {
        let text =
            format!("{SUITE}matrix:\n  exclude:\n    - {{ model: a }}\n    - {{ model: b }}\n");
        let suite = crate::suite::from_str(Path::new("t.yaml"), &text).unwrap();
        for kind in [BackendKind::Cpu, BackendKind::Cuda] {
            let error = plan(&suite, kind, "NVIDIA H100", &Overrides::default()).unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains("`exclude` entries remove every combination"),
                "{error}"
            );
        }
    }
}
