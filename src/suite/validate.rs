//! Checks across values: a [`SuiteFile`] becomes a [`Suite`] or a list of what is wrong.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;

use super::matrix::{expand, Axes};
use super::schema::{BlockKind, Count, InputSpec, LayerKindSpec, ModelSpec, Reference, SuiteFile};
use super::Suite;
use crate::formats::Format;
use crate::gate::GateSpec;
use crate::gate::Gates;
use crate::host;
use crate::ident::Ident;
use crate::model::graph::AttentionShape;
use crate::model::onnx::{self, OnnxModel};
use crate::model::{Activation, CheckpointSpec, WeightsSpec};
use crate::model::{AttentionBlock, Block, InputFile, LayerKind, LayerSpec, MlpShape, Model};
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

/// The first problem found is returned: later ones often follow from it.
/// Validates `file`; relative paths in it are resolved against `base` (the suite file's folder).
pub fn validate(file: SuiteFile, base: &Path) -> Result<Suite, Problem> {
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
        .map(|(i, spec)| {
            let held = file.reference.precision.format();
            model(&format!("models[{i}]"), spec, held, base)
        })
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
        reference: Reference {
            file: file.reference.file.as_ref().map(|golden| base.join(golden)),
            ..file.reference
        },
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

/// What each block takes: its required and optional dimensions, and the model keys besides
/// `dims` that configure it.
struct BlockRules {
    block: BlockKind,
    required: &'static [&'static str],
    optional: &'static [&'static str],
    options: &'static [&'static str],
}

const LAYER_OPTIONS: &[&str] = &[
    "input",
    "activation",
    "layer",
    "causal",
    "rope_theta",
    "norm_eps",
];

const BLOCK_RULES: [BlockRules; 6] = [
    BlockRules {
        block: BlockKind::Linear,
        required: &["hidden"],
        optional: &["out_features"],
        options: &["input"],
    },
    BlockRules {
        block: BlockKind::Mlp,
        required: &["hidden", "intermediate"],
        optional: &[],
        options: &["input", "activation", "gated"],
    },
    BlockRules {
        block: BlockKind::Attention,
        required: &["hidden", "heads"],
        optional: &["kv_heads", "head_dim"],
        options: &["input", "causal", "rotary", "rope_theta"],
    },
    BlockRules {
        block: BlockKind::TransformerLayer,
        required: &["hidden", "intermediate", "heads"],
        optional: &["kv_heads", "head_dim"],
        options: LAYER_OPTIONS,
    },
    BlockRules {
        block: BlockKind::Stack,
        required: &["hidden", "intermediate", "heads", "layers"],
        optional: &["kv_heads", "head_dim"],
        options: LAYER_OPTIONS,
    },
    BlockRules {
        block: BlockKind::Onnx,
        required: &[],
        optional: &[],
        options: &["onnx", "inputs", "outputs", "localize", "calibrate"],
    },
];

impl BlockRules {
    fn of(block: BlockKind) -> &'static BlockRules {
        BLOCK_RULES
            .iter()
            .find(|rules| rules.block == block)
            .expect("every block has rules")
    }

    /// "`hidden` and `heads` and optionally `kv_heads` and `head_dim`".
    fn describe_dims(&self) -> String {
        let list = |names: &[&str]| -> String {
            let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            quoted.join(" and ")
        };
        match self.optional {
            [] if self.required.is_empty() => "no dimensions".to_owned(),
            [] => list(self.required),
            optional => format!("{} and optionally {}", list(self.required), list(optional)),
        }
    }
}

/// The model keys besides `dims` that configure a block, and whether the spec sets each.
fn options_set(spec: &ModelSpec) -> [(&'static str, bool); 13] {
    [
        ("input", spec.input.is_some()),
        ("onnx", spec.onnx.is_some()),
        ("inputs", spec.inputs.is_some()),
        ("outputs", spec.outputs.is_some()),
        ("localize", spec.localize.is_some()),
        ("calibrate", spec.calibrate.is_some()),
        ("activation", spec.activation.is_some()),
        ("gated", spec.gated.is_some()),
        ("layer", spec.layer.is_some()),
        ("causal", spec.causal.is_some()),
        ("rotary", spec.rotary.is_some()),
        ("rope_theta", spec.rope_theta.is_some()),
        ("norm_eps", spec.norm_eps.is_some()),
    ]
}

/// Checks that `spec` sets exactly the dimensions and options its block takes.
fn check_block_keys(key: &str, spec: &ModelSpec) -> Result<(), Problem> {
    let rules = BlockRules::of(spec.block);
    let block = spec.block.name();
    for (name, value) in spec.dims.named() {
        let allowed = rules.required.contains(&name) || rules.optional.contains(&name);
        if value.is_some() && !allowed {
            return Err(problem(
                format!("{key}.dims.{name}"),
                format!(
                    "`{name}` is not a dimension of block `{block}`, which takes {}",
                    rules.describe_dims()
                ),
            ));
        }
        if value.is_none() && rules.required.contains(&name) {
            return Err(problem(
                format!("{key}.dims"),
                format!(
                    "missing `{name}`: block `{block}` needs {}",
                    rules.describe_dims()
                ),
            ));
        }
    }
    for (name, set) in options_set(spec) {
        if set && !rules.options.contains(&name) {
            let takers: Vec<String> = BLOCK_RULES
                .iter()
                .filter(|r| r.options.contains(&name))
                .map(|r| format!("`{}`", r.block.name()))
                .collect();
            return Err(problem(
                format!("{key}.{name}"),
                format!(
                    "block `{block}` has no `{name}` option (blocks that do: {})",
                    takers.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn dim(spec: &ModelSpec, name: &str) -> Option<usize> {
    spec.dims
        .named()
        .into_iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.map(Count::get))
}

/// The heads of an attention or layer: `kv_heads` defaults to `heads` and must divide it,
/// `head_dim` defaults to `hidden / heads`, which must then be whole.
fn attention_shape(key: &str, spec: &ModelSpec, causal: bool) -> Result<AttentionShape, Problem> {
    let hidden = dim(spec, "hidden").expect("checked: required");
    let heads = dim(spec, "heads").expect("checked: required");
    let kv_heads = dim(spec, "kv_heads").unwrap_or(heads);
    if heads % kv_heads != 0 {
        return Err(problem(
            format!("{key}.dims.kv_heads"),
            format!("{kv_heads} key/value heads do not divide {heads} query heads"),
        ));
    }
    let head_dim = match dim(spec, "head_dim") {
        Some(head_dim) => head_dim,
        None if hidden % heads == 0 => hidden / heads,
        None => {
            return Err(problem(
                format!("{key}.dims"),
                format!("`hidden` {hidden} is not a multiple of `heads` {heads}: give `head_dim`"),
            ))
        }
    };
    Ok(AttentionShape {
        heads,
        kv_heads,
        head_dim,
        causal: spec.causal.unwrap_or(causal),
    })
}

fn positive_finite(key: String, value: f64) -> Result<f64, Problem> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(problem(
            key,
            format!("expected a finite number > 0, found {value}"),
        ))
    }
}

fn block(key: &str, spec: &ModelSpec, held: Format, base: &Path) -> Result<Block, Problem> {
    check_block_keys(key, spec)?;
    match spec.block {
        BlockKind::Onnx => onnx_block(key, spec, held, base),
        _ => built_in_block(key, spec),
    }
}

/// A built-in block from its dimensions and options (checked present by `check_block_keys`).
fn built_in_block(key: &str, spec: &ModelSpec) -> Result<Block, Problem> {
    let hidden = dim(spec, "hidden").expect("every block needs `hidden`");
    let rope_theta = spec
        .rope_theta
        .map(|theta| positive_finite(format!("{key}.rope_theta"), theta))
        .transpose()?
        .unwrap_or(10_000.0);
    let even_head_dim = |shape: AttentionShape| {
        if shape.head_dim % 2 == 0 {
            Ok(shape)
        } else {
            Err(problem(
                format!("{key}.dims"),
                format!(
                    "rotary embedding needs an even `head_dim`, found {}",
                    shape.head_dim
                ),
            ))
        }
    };
    Ok(match spec.block {
        BlockKind::Linear => Block::Linear {
            in_features: hidden,
            out_features: dim(spec, "out_features").unwrap_or(hidden),
        },
        BlockKind::Mlp => Block::Mlp(MlpShape {
            hidden,
            intermediate: dim(spec, "intermediate").expect("checked: required"),
            activation: spec.activation.unwrap_or(Activation::GeluTanh),
            gated: spec.gated.unwrap_or(true),
        }),
        BlockKind::Attention => {
            let rotary = spec.rotary.unwrap_or(true);
            let mut shape = attention_shape(key, spec, false)?;
            if rotary {
                shape = even_head_dim(shape)?;
            }
            Block::Attention(AttentionBlock {
                hidden,
                shape,
                rope_theta: rotary.then_some(rope_theta),
            })
        }
        BlockKind::TransformerLayer | BlockKind::Stack => {
            let kind = match spec.layer.unwrap_or(LayerKindSpec::Decoder) {
                LayerKindSpec::Decoder => LayerKind::Decoder,
                LayerKindSpec::Encoder => LayerKind::Encoder,
            };
            let decoder = kind == LayerKind::Decoder;
            let mut attention = attention_shape(key, spec, decoder)?;
            if decoder {
                attention = even_head_dim(attention)?;
            }
            let (activation, norm_eps) = if decoder {
                (Activation::GeluTanh, 1e-6)
            } else {
                (Activation::Gelu, 1e-12)
            };
            let layer = LayerSpec {
                kind,
                hidden,
                intermediate: dim(spec, "intermediate").expect("checked: required"),
                attention,
                activation: spec.activation.unwrap_or(activation),
                norm_eps: spec
                    .norm_eps
                    .map(|eps| positive_finite(format!("{key}.norm_eps"), eps))
                    .transpose()?
                    .unwrap_or(norm_eps),
                rope_theta,
            };
            match dim(spec, "layers") {
                Some(layers) => Block::Stack { layer, layers },
                None => Block::Layer(layer),
            }
        }
        BlockKind::Onnx => unreachable!("`block` reads ONNX models"),
    })
}

/// A user's ONNX model: its file's interface, fixed as the suite's `inputs` and `outputs` say.
fn onnx_block(key: &str, spec: &ModelSpec, held: Format, base: &Path) -> Result<Block, Problem> {
    let Some(path) = &spec.onnx else {
        return Err(problem(
            key.to_owned(),
            "block `onnx` needs `onnx: FILE`, the model file",
        ));
    };
    if !matches!(spec.weights, WeightsSpec::Seeded) {
        return Err(problem(
            format!("{key}.weights"),
            "an ONNX model holds its own weights",
        ));
    }
    let file =
        onnx::read(&base.join(path)).map_err(|e| problem(format!("{key}.onnx"), e.to_string()))?;
    let mut model = OnnxModel::new(
        file,
        &spec.inputs.clone().unwrap_or_default(),
        spec.outputs.as_deref(),
        spec.localize.unwrap_or_default(),
        held,
        base,
    )
    .map_err(|p| problem(format!("{key}.{}", p.key), p.message))?;
    if let Some(percentile) = spec.calibrate.and_then(|c| c.percentile) {
        if !(percentile > 0.0 && percentile <= 100.0) {
            return Err(problem(
                format!("{key}.calibrate.percentile"),
                format!("expected a percentile in (0, 100], found {percentile}"),
            ));
        }
        model.percentile = Some(percentile);
    }
    Ok(Block::Onnx(Arc::new(model)))
}

fn model(key: &str, spec: &ModelSpec, held: Format, base: &Path) -> Result<Model, Problem> {
    let block = block(key, spec, held, base)?;
    let input = match (&block, &spec.input) {
        // An ONNX model's first input's first dimension stands for its rows in records.
        (Block::Onnx(onnx), _) => {
            let tokens = onnx.inputs.first().and_then(|i| i.shape.first()).copied();
            InputSpec {
                tokens: Count(
                    NonZeroUsize::new(tokens.unwrap_or(1)).expect("shapes have no zero dimension"),
                ),
                outliers: None,
                file: None,
                tensor: None,
            }
        }
        (_, Some(input)) => input.clone(),
        (_, None) => {
            return Err(problem(
                key.to_owned(),
                format!(
                    "block `{}` needs `input: {{ tokens: N }}`, the rows of its input",
                    spec.block.name()
                ),
            ))
        }
    };
    if let Some(outliers) = input.outliers {
        if input.file.is_some() {
            return Err(problem(
                format!("{key}.input.outliers"),
                "outliers scale channels of a seeded input; an input read from `file` has its own",
            ));
        }
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
    if input.tensor.is_some() && input.file.is_none() {
        return Err(problem(
            format!("{key}.input.tensor"),
            "`tensor` names a tensor of the input `file`, and there is none",
        ));
    }
    let weights = match &spec.weights {
        WeightsSpec::Seeded => WeightsSpec::Seeded,
        WeightsSpec::Safetensors(checkpoint) => {
            if matches!(block, Block::Stack { .. }) && !checkpoint.prefix.contains("{layer}") {
                return Err(problem(
                    format!("{key}.weights.prefix"),
                    "a stack reads one layer per index: its prefix needs `{layer}` (`encoder.layer.{layer}.`)",
                ));
            }
            WeightsSpec::Safetensors(CheckpointSpec {
                safetensors: base.join(&checkpoint.safetensors),
                ..checkpoint.clone()
            })
        }
    };
    let model = Model {
        name: spec.name.clone(),
        block,
        tokens: input.tokens.get(),
        outliers: input.outliers,
        input_file: input.file.as_ref().map(|file| InputFile {
            path: base.join(file),
            tensor: input.tensor.clone(),
        }),
        weights,
    };
    within_budget(key, &model)?;
    Ok(model)
}

/// Refuses a model whose dimensions need more memory than a variant may take ([`host::memory_limit`]),
/// or more than can be counted, before anything is allocated.
fn within_budget(key: &str, model: &Model) -> Result<(), Problem> {
    let Some(cost) = model.footprint() else {
        return Ok(());
    };
    let key = format!("{key}.dims");
    let cost = cost.map_err(|e| problem(key.clone(), format!("this model cannot be run: {e}")))?;
    let Some((limit, source)) = host::memory_limit().map_err(|e| problem(key.clone(), e))? else {
        return Ok(());
    };
    if cost.bytes <= limit {
        return Ok(());
    }
    let gib = |bytes: u128| bytes as f64 / f64::from(1u32 << 30);
    Err(problem(
        key,
        format!(
            "this model needs about {:.1} GiB ({} parameters, {} tokens), above the {:.1} GiB \
             a variant may take ({source}; {} sets another limit)",
            gib(cost.bytes),
            cost.parameters,
            model.tokens,
            gib(limit),
            host::MEMORY_LIMIT_VARIABLE
        ),
    ))
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
    let known_model = |key: String, name: &Ident| -> Result<(), Problem> {
        if model_names.contains(&name.as_str()) {
            return Ok(());
        }
        Err(problem(
            key,
            format!(
                "no model is called `{name}`{} (models: {})",
                crate::hints::nearest(name.as_str(), model_names.iter().copied())
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
