//! Checks across values: a [`SuiteFile`] becomes a [`Suite`] or a list of what is wrong.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;

use super::schema::{Activation, BlockKind, Count, GateSpec, ModelSpec, SuiteFile};
use super::Suite;
use crate::gate::Gates;
use crate::matrix::{expand, Axes};
use crate::model::{Block, Model};
use crate::precision::PrecisionSpec;

/// One problem: the key path it concerns and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path (`models[1].dims.hidden`).
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

fn problem(key: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        message: message.into(),
    }
}

/// Validates `file`. The first problem found is returned: later ones often follow from it.
pub fn validate(file: SuiteFile) -> Result<Suite, Problem> {
    non_empty("models", file.models.len())?;
    non_empty("precisions", file.precisions.len())?;
    non_empty("gpus", file.gpus.len())?;
    unique("models", "name", file.models.iter().map(|m| &m.name))?;
    unique("precisions", "", file.precisions.iter().map(|p| p.name()))?;
    unique("gpus", "", file.gpus.iter())?;
    let models = file
        .models
        .iter()
        .enumerate()
        .map(|(i, spec)| model(&format!("models[{i}]"), spec))
        .collect::<Result<Vec<_>, _>>()?;
    let gates = gates("gates", &file.gates, Gates::default())?;
    let precisions = file
        .precisions
        .iter()
        .enumerate()
        .map(|(i, spec)| match spec {
            PrecisionSpec::Preset(policy) => Ok(policy.clone()),
            PrecisionSpec::Custom(custom) => custom
                .resolve()
                .map_err(|(key, message)| problem(format!("precisions[{i}].{key}"), message)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_matrix_names(&file)?;
    let names: Vec<_> = models.iter().map(|m| m.name.clone()).collect();
    let axes = Axes {
        models: &names,
        precisions: &precisions,
        gpus: &file.gpus,
    };
    let variants = expand(&axes, &file.matrix.exclude, &file.matrix.include, gates)
        .map_err(|e| problem(e.key, e.message))?;
    Ok(Suite {
        name: file.name,
        description: file.description,
        defaults: file.defaults,
        reference: file.reference,
        models,
        precisions,
        gpus: file.gpus,
        gates,
        variants,
    })
}

fn non_empty(key: &str, len: usize) -> Result<(), Problem> {
    if len == 0 {
        return Err(problem(key, "expected at least one entry"));
    }
    Ok(())
}

fn unique<T: Eq + Hash + Display>(
    key: &str,
    field: &str,
    values: impl Iterator<Item = T>,
) -> Result<(), Problem> {
    let mut first = HashMap::new();
    for (i, value) in values.enumerate() {
        if let Some(j) = first.get(&value) {
            let path = if field.is_empty() {
                format!("{key}[{i}]")
            } else {
                format!("{key}[{i}].{field}")
            };
            return Err(problem(
                path,
                format!("`{value}` is listed twice (first as {key}[{j}])"),
            ));
        }
        first.insert(value, i);
    }
    Ok(())
}

fn model(key: &str, spec: &ModelSpec) -> Result<Model, Problem> {
    let block = match spec.block {
        BlockKind::Linear => {
            reject_dim(key, spec.block, "intermediate", spec.dims.intermediate)?;
            if spec.activation.is_some() {
                return Err(problem(
                    format!("{key}.activation"),
                    "block `linear` has no activation (only `mlp` does)",
                ));
            }
            let in_features = required_dim(key, spec.block, "hidden", spec.dims.hidden)?;
            Block::Linear {
                in_features,
                out_features: spec.dims.out_features.map_or(in_features, Count::get),
            }
        }
        BlockKind::Mlp => {
            reject_dim(key, spec.block, "out_features", spec.dims.out_features)?;
            Block::Mlp {
                hidden: required_dim(key, spec.block, "hidden", spec.dims.hidden)?,
                intermediate: required_dim(
                    key,
                    spec.block,
                    "intermediate",
                    spec.dims.intermediate,
                )?,
                activation: spec.activation.unwrap_or(Activation::GeluTanh),
            }
        }
    };
    if let Some(outliers) = spec.input.outliers {
        let fraction_valid = outliers.fraction > 0.0 && outliers.fraction <= 1.0;
        if !fraction_valid {
            return Err(problem(
                format!("{key}.input.outliers.fraction"),
                format!("expected a fraction in (0, 1], found {}", outliers.fraction),
            ));
        }
        let scale_valid = outliers.scale.is_finite() && outliers.scale > 0.0;
        if !scale_valid {
            return Err(problem(
                format!("{key}.input.outliers.scale"),
                format!("expected a finite factor > 0, found {}", outliers.scale),
            ));
        }
    }
    Ok(Model {
        name: spec.name.clone(),
        block,
        tokens: spec.input.tokens.get(),
        outliers: spec.input.outliers,
        weights: spec.weights,
    })
}

fn block_dims(block: BlockKind) -> &'static str {
    match block {
        BlockKind::Linear => "`hidden` and optionally `out_features`",
        BlockKind::Mlp => "`hidden` and `intermediate`",
    }
}

fn required_dim(
    key: &str,
    block: BlockKind,
    name: &str,
    value: Option<Count>,
) -> Result<usize, Problem> {
    value.map(Count::get).ok_or_else(|| {
        problem(
            format!("{key}.dims"),
            format!(
                "missing `{name}`: block `{}` needs {}",
                block.name(),
                block_dims(block)
            ),
        )
    })
}

fn reject_dim(
    key: &str,
    block: BlockKind,
    name: &str,
    value: Option<Count>,
) -> Result<(), Problem> {
    match value {
        Some(_) => Err(problem(
            format!("{key}.dims.{name}"),
            format!(
                "`{name}` is not a dimension of block `{}`, which takes {}",
                block.name(),
                block_dims(block)
            ),
        )),
        None => Ok(()),
    }
}

fn gates(key: &str, spec: &GateSpec, base: Gates) -> Result<Gates, Problem> {
    if let Some(cos) = spec.cos_min {
        if !(-1.0..=1.0).contains(&cos) {
            return Err(problem(
                format!("{key}.cos_min"),
                format!("expected a cosine between -1 and 1, found {cos}"),
            ));
        }
    }
    for (name, value) in [
        ("max_abs_err", spec.max_abs_err),
        ("rel_l2_max", spec.rel_l2_max),
        ("latency_min_effect", spec.latency_min_effect),
    ] {
        if let Some(v) = value {
            if !(v.is_finite() && v >= 0.0) {
                return Err(problem(
                    format!("{key}.{name}"),
                    format!("expected a finite number >= 0, found {v}"),
                ));
            }
        }
    }
    Ok(base.overridden_by(spec))
}

/// Matrix entries must name values that exist: a typo there would silently match nothing.
fn check_matrix_names(file: &SuiteFile) -> Result<(), Problem> {
    let model_names: Vec<&str> = file.models.iter().map(|m| m.name.as_str()).collect();
    let known_model = |key: String, name: &super::Ident| -> Result<(), Problem> {
        if model_names.contains(&name.as_str()) {
            return Ok(());
        }
        Err(problem(
            key,
            format!(
                "no model is called `{name}`{} (models: {})",
                super::error::nearest(name.as_str(), model_names.iter().copied())
                    .map(|s| format!(", did you mean `{s}`?"))
                    .unwrap_or_default(),
                model_names.join(", ")
            ),
        ))
    };
    for (i, entry) in file.matrix.exclude.iter().enumerate() {
        let key = format!("matrix.exclude[{i}]");
        if entry.model.is_none() && entry.precision.is_none() && entry.gpu.is_none() {
            return Err(problem(
                key,
                "an empty entry would exclude everything: give `model`, `precision` or `gpu`",
            ));
        }
        if let Some(name) = &entry.model {
            known_model(format!("{key}.model"), name)?;
        }
        if let Some(p) = entry
            .precision
            .as_ref()
            .filter(|p| file.precisions.iter().all(|spec| spec.name() != p.as_str()))
        {
            return Err(problem(
                format!("{key}.precision"),
                format!("`{p}` is not in `precisions`, so this entry excludes nothing"),
            ));
        }
        if let Some(g) = entry.gpu.as_ref().filter(|g| !file.gpus.contains(g)) {
            return Err(problem(
                format!("{key}.gpu"),
                format!("`{g}` is not in `gpus`, so this entry excludes nothing"),
            ));
        }
    }
    for (i, entry) in file.matrix.include.iter().enumerate() {
        let key = format!("matrix.include[{i}]");
        if let Some(name) = &entry.model {
            known_model(format!("{key}.model"), name)?;
        }
        gates(&format!("{key}.gates"), &entry.gates, Gates::default())?;
    }
    Ok(())
}
