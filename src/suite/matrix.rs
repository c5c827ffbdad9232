//! Expanding a suite's axes into variants, with GitHub Actions `matrix` semantics.
//!
//! The product models × precisions × gpus is formed first; `exclude` entries then remove every
//! combination that matches all the keys they give; each `include` entry then extends every
//! remaining combination whose axis values it does not contradict (today: its gate overrides), and
//! when it extends none, it adds a new combination, which must name all three axes.

use std::collections::HashSet;

use super::{DeviceSelector, ExcludeEntry, IncludeEntry};
use crate::gate::Gates;
use crate::ident::Ident;
use crate::precision::{presets, Policy};

/// One point of the matrix: a model in a precision on a device.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Stable, readable id: `model/precision/device`.
    pub id: String,
    /// The model's name.
    pub model: Ident,
    /// The precision policy it runs in.
    pub precision: Policy,
    /// The device it targets.
    pub device: DeviceSelector,
    /// Its gates.
    pub gates: Gates,
}

impl Variant {
    /// A variant with its id derived from its axes.
    pub fn new(model: Ident, precision: Policy, device: DeviceSelector, gates: Gates) -> Self {
        let id = format!("{model}/{}/{device}", precision.name);
        Variant {
            id,
            model,
            precision,
            device,
            gates,
        }
    }
}

/// The axes and entries to expand.
pub struct Axes<'a> {
    /// Model names, in suite order.
    pub models: &'a [Ident],
    /// Precision policies, in suite order.
    pub precisions: &'a [Policy],
    /// Devices, in suite order.
    pub gpus: &'a [DeviceSelector],
}

/// A matrix entry that cannot be applied: its key path and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixError {
    /// Key path of the entry (`matrix.include[2]`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// The most variants one suite may plan. A nightly matrix of a hundred models × twenty
/// precisions × eight GPUs is 16,000; a suite past this bound is a typo or a generator gone wrong,
/// and expanding it would take the memory before saying so.
pub const MAX_VARIANTS: u64 = 100_000;

/// Expands `axes` into variants, applying `exclude` then `include`. The product is counted
/// before anything is allocated: past [`MAX_VARIANTS`] it is an error with the numbers.
pub fn expand(
    axes: &Axes<'_>,
    exclude: &[ExcludeEntry],
    include: &[IncludeEntry],
    gates: Gates,
) -> Result<Vec<Variant>, MatrixError> {
    check_size(axes, include)?;
    let mut variants: Vec<Variant> = Vec::new();
    for model in axes.models {
        for precision in axes.precisions {
            for device in axes.gpus {
                let excluded = exclude.iter().any(|entry| {
                    matches(&entry.model, model)
                        && matches_name(&entry.precision, precision)
                        && matches(&entry.gpu, device)
                });
                if !excluded {
                    variants.push(Variant::new(
                        model.clone(),
                        precision.clone(),
                        device.clone(),
                        gates,
                    ));
                }
            }
        }
    }
    let original = variants.len();
    for (index, entry) in include.iter().enumerate() {
        let mut extended = false;
        for variant in &mut variants[..original] {
            if matches(&entry.model, &variant.model)
                && matches_name(&entry.precision, &variant.precision)
                && matches(&entry.gpu, &variant.device)
            {
                variant.gates = variant.gates.overridden_by(&entry.gates);
                extended = true;
            }
        }
        if !extended {
            variants.push(new_combination(index, entry, axes.precisions, gates)?);
        }
    }
    check_unique(&variants[original..], original, &variants)?;
    Ok(variants)
}

fn check_size(axes: &Axes<'_>, include: &[IncludeEntry]) -> Result<(), MatrixError> {
    let [models, precisions, gpus, includes] = [
        axes.models.len(),
        axes.precisions.len(),
        axes.gpus.len(),
        include.len(),
    ]
    .map(|n| n as u64);
    let planned = models
        .checked_mul(precisions)
        .and_then(|n| n.checked_mul(gpus))
        .and_then(|n| n.checked_add(includes));
    match planned {
        Some(n) if n <= MAX_VARIANTS => Ok(()),
        _ => Err(MatrixError {
            key: "matrix".into(),
            message: format!(
                "{models} models × {precisions} precisions × {gpus} gpus (+ {includes} includes) \
                 is more than the {MAX_VARIANTS} variants one suite may plan, before `exclude`; \
                 split the suite or shorten an axis"
            ),
        }),
    }
}

fn matches<T: PartialEq>(wanted: &Option<T>, value: &T) -> bool {
    wanted.as_ref().is_none_or(|w| w == value)
}

fn matches_name(wanted: &Option<Ident>, policy: &Policy) -> bool {
    wanted.as_ref().is_none_or(|w| w.as_str() == policy.name)
}

/// The policy called `name`: one of the suite's precisions, else a preset.
fn policy_named(name: &Ident, precisions: &[Policy]) -> Option<Policy> {
    precisions
        .iter()
        .find(|p| p.name == name.as_str())
        .cloned()
        .or_else(|| presets::preset(name.as_str()))
}

fn new_combination(
    index: usize,
    entry: &IncludeEntry,
    precisions: &[Policy],
    gates: Gates,
) -> Result<Variant, MatrixError> {
    let missing: Vec<&str> = [
        ("model", entry.model.is_none()),
        ("precision", entry.precision.is_none()),
        ("gpu", entry.gpu.is_none()),
    ]
    .into_iter()
    .filter_map(|(name, absent)| absent.then_some(name))
    .collect();
    match (&entry.model, &entry.precision, &entry.gpu) {
        (Some(model), Some(name), Some(gpu)) => {
            let precision = policy_named(name, precisions).ok_or_else(|| MatrixError {
                key: format!("matrix.include[{index}].precision"),
                message: format!(
                    "`{name}` is neither in `precisions` nor a preset{} ({})",
                    crate::hints::nearest(name.as_str(), presets::names())
                        .map(|s| format!(", did you mean `{s}`?"))
                        .unwrap_or_default(),
                    presets::names().join(", ")
                ),
            })?;
            Ok(Variant::new(
                model.clone(),
                precision,
                gpu.clone(),
                gates.overridden_by(&entry.gates),
            ))
        }
        _ => Err(MatrixError {
            key: format!("matrix.include[{index}]"),
            message: format!(
                "this entry matches no combination, so it adds a new one, which needs `{}` too",
                missing.join("`, `")
            ),
        }),
    }
}

fn check_unique(added: &[Variant], offset: usize, all: &[Variant]) -> Result<(), MatrixError> {
    let mut seen: HashSet<&str> = all[..offset].iter().map(|v| v.id.as_str()).collect();
    for variant in added {
        if !seen.insert(&variant.id) {
            return Err(MatrixError {
                key: "matrix.include".into(),
                message: format!("variant `{}` is included twice", variant.id),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::GateSpec;

    fn ident(s: &str) -> Ident {
        Ident::try_from(s.to_owned()).unwrap()
    }

    fn ids(variants: &[Variant]) -> Vec<&str> {
        variants.iter().map(|v| v.id.as_str()).collect()
    }

    fn preset(name: &str) -> Policy {
        presets::preset(name).unwrap()
    }

    fn axes_fixture() -> (Vec<Ident>, Vec<Policy>, Vec<DeviceSelector>) {
        (
            vec![ident("a"), ident("b")],
            vec![preset("fp16"), preset("bf16")],
            vec![DeviceSelector::Cpu],
        )
    }

    #[test]
    fn full_product_in_suite_order() {
        let (m, p, g) = axes_fixture();
        let axes = Axes {
            models: &m,
            precisions: &p,
            gpus: &g,
        };
        let variants = expand(&axes, &[], &[], Gates::default()).unwrap();
        assert_eq!(
            ids(&variants),
            ["a/fp16/cpu", "a/bf16/cpu", "b/fp16/cpu", "b/bf16/cpu"]
        );
    }

    #[test]
    fn exclude_removes_every_match_of_its_keys() {
        let (m, p, g) = axes_fixture();
        let axes = Axes {
            models: &m,
            precisions: &p,
            gpus: &g,
        };
        let exclude = [ExcludeEntry {
            precision: Some(ident("bf16")),
            ..Default::default()
        }];
        let variants = expand(&axes, &exclude, &[], Gates::default()).unwrap();
        assert_eq!(ids(&variants), ["a/fp16/cpu", "b/fp16/cpu"]);
    }

    #[test]
    fn include_extends_matches_or_adds_a_combination() {
        let (m, p, g) = axes_fixture();
        let axes = Axes {
            models: &m,
            precisions: &p,
            gpus: &g,
        };
        let loose = GateSpec {
            cos_min: Some(0.99),
            ..Default::default()
        };
        let include = [
            IncludeEntry {
                model: Some(ident("b")),
                gates: loose,
                ..Default::default()
            },
            IncludeEntry {
                model: Some(ident("a")),
                precision: Some(ident("fp32")),
                gpu: Some(DeviceSelector::GpuModel(ident("h100"))),
                gates: loose,
            },
        ];
        let variants = expand(&axes, &[], &include, Gates::default()).unwrap();
        assert_eq!(
            ids(&variants),
            [
                "a/fp16/cpu",
                "a/bf16/cpu",
                "b/fp16/cpu",
                "b/bf16/cpu",
                "a/fp32/h100"
            ]
        );
        let cos: Vec<f64> = variants.iter().map(|v| v.gates.cos_min).collect();
        assert_eq!(cos, [0.999, 0.999, 0.99, 0.99, 0.99]);
    }

    #[test]
    fn a_new_combination_must_name_every_axis() {
        let (m, p, g) = axes_fixture();
        let axes = Axes {
            models: &m,
            precisions: &p,
            gpus: &g,
        };
        let include = [IncludeEntry {
            precision: Some(ident("fp32")),
            ..Default::default()
        }];
        let error = expand(&axes, &[], &include, Gates::default()).unwrap_err();
        assert_eq!(error.key, "matrix.include[0]");
        assert!(
            error.message.contains("needs `model`, `gpu` too"),
            "{}",
            error.message
        );
    }

    #[test]
    fn the_same_new_combination_twice_is_an_error() {
        let (m, p, g) = axes_fixture();
        let axes = Axes {
            models: &m,
            precisions: &p,
            gpus: &g,
        };
        let entry = IncludeEntry {
            model: Some(ident("a")),
            precision: Some(ident("fp32")),
            gpu: Some(DeviceSelector::Cpu),
            gates: GateSpec::default(),
        };
        let error = expand(&axes, &[], &[entry.clone(), entry], Gates::default()).unwrap_err();
        assert!(error.message.contains("`a/fp32/cpu` is included twice"));
    }
}
