//! ONNX files as models (`block: onnx`): a user's model, with any number of inputs and outputs of
//! any rank, float, integer or boolean. precheck reads the interface here, fixes what the suite
//! leaves free (dynamic dimensions, how each input is made), and makes the inputs: seeded from a
//! distribution per input or read from a `.npy`, `.npz` or `.safetensors` file. The graph itself
//! is rewritten into each precision (`export::rewrite`) and evaluated by an engine (ONNX Runtime
//! in process, a command engine, trtexec).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;
use rand::Rng;
use rand_distr::StandardNormal;
use serde::Deserialize;

use super::load::LoadError;
use super::seeded::stream;
use crate::array::{Array, ArrayData, ElementType};
use crate::formats::{Format, Overflow};
use crate::hints::did_you_mean;
use crate::onnx_proto::{ModelProto, ValueInfoProto};

/// A dimension of an input or output as the file declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A dynamic dimension: its symbolic name, or `?` where it has none.
    Free(String),
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(size) => write!(f, "{size}"),
            Dim::Free(name) => f.write_str(name),
        }
    }
}

/// An input or output of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Its name in the graph.
    pub name: String,
    /// Its element type.
    pub element: ElementType,
    /// Its declared dimensions.
    pub dims: Vec<Dim>,
}

impl Port {
    /// The dimensions written `[N, 3, H, W]`.
    pub fn dims_text(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(Dim::to_string).collect();
        format!("[{}]", dims.join(", "))
    }

    /// The shape, where every dimension is fixed.
    fn fixed_shape(&self) -> Option<Vec<usize>> {
        self.dims
            .iter()
            .map(|d| match d {
                Dim::Fixed(size) => Some(*size),
                Dim::Free(_) => None,
            })
            .collect()
    }
}

/// An ONNX model file and its interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxFile {
    /// The file.
    pub path: PathBuf,
    /// The default domain's opset it imports.
    pub opset: i64,
    /// The graph's inputs (initializers left out).
    pub inputs: Vec<Port>,
    /// The graph's outputs.
    pub outputs: Vec<Port>,
}

/// Why an ONNX file cannot be a model.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not an ONNX model.
    #[error("{} is not an ONNX model: {message}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// What protobuf said.
        message: String,
    },
    /// An input or output precheck cannot make or compare.
    #[error("{}: {message}", path.display())]
    Interface {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the input or output.
        message: String,
    },
}

/// Reads the interface of the ONNX model at `path`.
pub fn read(path: &Path) -> Result<OnnxFile, OnnxError> {
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: path.to_owned(),
        source,
    })?;
    let model = ModelProto::decode(bytes.as_slice()).map_err(|e| OnnxError::Decode {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let interface = |message: String| OnnxError::Interface {
        path: path.to_owned(),
        message,
    };
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| interface("the model imports no default-domain opset".into()))?;
    let graph = model
        .graph
        .ok_or_else(|| interface("the model has no graph".into()))?;
    // Before IR version 4, initializers were listed among the inputs too.
    let inputs = graph
        .input
        .iter()
        .filter(|i| !graph.initializer.iter().any(|t| t.name == i.name))
        .map(|value| port(value, "input"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(interface)?;
    let outputs = graph
        .output
        .iter()
        .map(|value| port(value, "output"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(interface)?;
    if outputs.is_empty() {
        return Err(interface("the graph has no outputs".into()));
    }
    Ok(OnnxFile {
        path: path.to_owned(),
        opset,
        inputs,
        outputs,
    })
}

/// An input or output as declared.
fn port(value: &ValueInfoProto, role: &str) -> Result<Port, String> {
    let tensor = value
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| format!("{role} `{}` is not a tensor", value.name))?;
    let element = ElementType::from_onnx(tensor.elem_type).ok_or_else(|| {
        format!(
            "{role} `{}` has ONNX element type {}, which precheck cannot make or compare \
             (it takes float32, float16, bfloat16, float64, int64, int32, int8, uint8, bool)",
            value.name, tensor.elem_type
        )
    })?;
    let shape = tensor
        .shape
        .as_ref()
        .ok_or_else(|| format!("{role} `{}` declares no shape", value.name))?;
    let dims = shape
        .dim
        .iter()
        .map(|d| match (d.dim_value, &d.dim_param) {
            (Some(size), _) if size > 0 => Dim::Fixed(size as usize),
            (_, Some(name)) if !name.is_empty() => Dim::Free(name.clone()),
            _ => Dim::Free("?".into()),
        })
        .collect();
    Ok(Port {
        name: value.name.clone(),
        element,
        dims,
    })
}

/// How a suite makes one input of an ONNX model (`inputs: { NAME: {...} }`): its shape, where the
/// model leaves dimensions free, and one source of values.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxInputSpec {
    /// The shape; needed where the model declares a dynamic dimension.
    #[serde(default)]
    pub shape: Option<Vec<usize>>,
    /// Normal values `[mean, std]` (the default for float inputs: `[0, 1]`).
    #[serde(default)]
    pub normal: Option<[f64; 2]>,
    /// Uniform values in `[low, high)`.
    #[serde(default)]
    pub uniform: Option<[f64; 2]>,
    /// Uniform integers in `[low, high]` (token ids, masks): needed for integer inputs.
    #[serde(default)]
    pub integers: Option<[i64; 2]>,
    /// A `.npy`, `.npz` or `.safetensors` file holding the input (relative to the suite file).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// The array in an `.npz` or `.safetensors` file, if not named as the input.
    #[serde(default)]
    pub tensor: Option<String>,
    /// Files to calibrate static scales on instead (each holds the array as `file` does):
    /// without them, seeded inputs draw calibration sets of their own and a file input
    /// calibrates on its file.
    #[serde(default)]
    pub calibration: Option<Vec<PathBuf>>,
}

/// Which values are compared along the graph, besides the outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Localize {
    /// The outputs of every matmul-class node (MatMul, Gemm, Conv, ...).
    #[default]
    Matmul,
    /// The outputs of every node that computes floats.
    All,
    /// None: the outputs only.
    Off,
}

/// Where an input's values come from.
#[derive(Debug, Clone, PartialEq)]
pub enum InputSource {
    /// Normal with this mean and standard deviation.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
    /// Uniform in `[low, high)`.
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound (excluded).
        high: f64,
    },
    /// Uniform integers in `[low, high]`.
    Integers {
        /// Lower bound.
        low: i64,
        /// Upper bound (included).
        high: i64,
    },
    /// Read from a file.
    File {
        /// The file (`.npy`, `.npz`, `.safetensors`).
        path: PathBuf,
        /// The array's name in an `.npz` or `.safetensors` file.
        tensor: String,
    },
}

/// The `percentile`-th percentile of the magnitudes of `values` (0 < percentile <= 100): the
/// largest at 100, the value below which that share of magnitudes lie otherwise (nearest rank).
pub fn magnitude_percentile(values: &[f32], percentile: f64) -> f32 {
    let mut magnitudes: Vec<f32> = values.iter().map(|v| v.abs()).collect();
    if magnitudes.is_empty() {
        return 0.0;
    }
    let rank = ((percentile / 100.0) * magnitudes.len() as f64).ceil() as usize;
    let index = rank.clamp(1, magnitudes.len()) - 1;
    let (_, nth, _) = magnitudes.select_nth_unstable_by(index, f32::total_cmp);
    *nth
}

/// One input, fixed: its shape, type and source.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInput {
    /// The graph's name for it.
    pub name: String,
    /// Its element type.
    pub element: ElementType,
    /// Its shape, every dimension fixed.
    pub shape: Vec<usize>,
    /// Its values.
    pub source: InputSource,
    /// The files static scales are calibrated on, one per calibration set (cycling); empty:
    /// as [`OnnxModel::make_calibration_inputs`] says.
    pub calibration: Vec<PathBuf>,
}

/// A user's ONNX model as a suite runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxModel {
    /// The file and its interface.
    pub file: OnnxFile,
    /// Every input, fixed.
    pub inputs: Vec<ModelInput>,
    /// The outputs the gate applies to (by default all of them).
    pub gated: Vec<String>,
    /// Which values along the graph are compared.
    pub localize: Localize,
    /// The precision its matmul weights are held in before any variant's rewrite: the suite's
    /// reference precision, as precheck's own blocks' weights are.
    pub held: Format,
    /// How static scales are calibrated: from each activation's amax (`None`), or from this
    /// percentile of its magnitudes (`calibrate: { percentile: 99.99 }`), which lets the rare
    /// largest values saturate.
    pub percentile: Option<f64>,
}

/// `calibrate:` of an ONNX model: how static activation scales are calibrated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrateSpec {
    /// The percentile of each activation's magnitudes its scale is made from (default: the
    /// largest, 100).
    #[serde(default)]
    pub percentile: Option<f64>,
}

/// A problem with a suite's description of an ONNX model's interface: the key under the model
/// (`inputs.x.shape`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceProblem {
    /// The key, relative to the model's entry.
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

fn interface_problem(key: String, message: String) -> InterfaceProblem {
    InterfaceProblem { key, message }
}

impl OnnxModel {
    /// Fixes `file`'s interface as the suite says: each input's shape and source from `specs`
    /// (paths relative to `base`), the gated outputs from `outputs` (all when `None`); its
    /// weights held in `held`.
    pub fn new(
        file: OnnxFile,
        specs: &BTreeMap<String, OnnxInputSpec>,
        outputs: Option<&[String]>,
        localize: Localize,
        held: Format,
        base: &Path,
    ) -> Result<Self, InterfaceProblem> {
        let input_names: Vec<&str> = file.inputs.iter().map(|p| p.name.as_str()).collect();
        if let Some(unknown) = specs.keys().find(|k| !input_names.contains(&k.as_str())) {
            return Err(interface_problem(
                format!("inputs.{unknown}"),
                format!(
                    "the model has no input `{unknown}`{}; its inputs: {}",
                    did_you_mean(unknown, input_names.iter().copied()),
                    describe_ports(&file.inputs)
                ),
            ));
        }
        let default = OnnxInputSpec::default();
        let inputs = file
            .inputs
            .iter()
            .map(|port| model_input(port, specs.get(&port.name).unwrap_or(&default), base))
            .collect::<Result<Vec<_>, _>>()?;
        let output_names: Vec<&str> = file.outputs.iter().map(|p| p.name.as_str()).collect();
        let gated = match outputs {
            None => output_names.iter().map(|n| n.to_string()).collect(),
            Some(names) => {
                if let Some(unknown) = names.iter().find(|n| !output_names.contains(&n.as_str())) {
                    return Err(interface_problem(
                        "outputs".into(),
                        format!(
                            "the model has no output `{unknown}`{}; its outputs: {}",
                            did_you_mean(unknown, output_names.iter().copied()),
                            describe_ports(&file.outputs)
                        ),
                    ));
                }
                names.to_vec()
            }
        };
        Ok(OnnxModel {
            file,
            inputs,
            gated,
            localize,
            held,
            percentile: None,
        })
    }

    /// Every input, made: seeded ones from the stream `input.NAME` of `seed` and `model`, float
    /// ones rounded to `format` (the reference precision, as a block's input is); file ones read.
    pub fn make_inputs(
        &self,
        seed: u64,
        model: &str,
        format: Format,
    ) -> Result<Vec<Array>, LoadError> {
        self.inputs
            .iter()
            .map(|input| input.make(seed, model, format, None))
            .collect()
    }

    /// Calibration input set `index`: an input's `calibration` files (cycling), else seeded
    /// inputs from their own streams (`calibration.INDEX.NAME`), apart from the measured input,
    /// and file inputs from their file.
    pub fn make_calibration_inputs(
        &self,
        seed: u64,
        model: &str,
        format: Format,
        index: usize,
    ) -> Result<Vec<Array>, LoadError> {
        self.inputs
            .iter()
            .map(|input| input.make(seed, model, format, Some(index)))
            .collect()
    }

    /// How many different calibration sets there are, at most `wanted`: fewer when every
    /// input comes from a fixed number of files.
    pub fn calibration_sets(&self, wanted: usize) -> usize {
        let fixed: Option<Vec<usize>> = self
            .inputs
            .iter()
            .map(|input| match (&input.source, input.calibration.len()) {
                (_, n) if n > 0 => Some(n),
                (InputSource::File { .. }, _) => Some(1),
                _ => None,
            })
            .collect();
        match fixed {
            Some(counts) => counts.into_iter().max().unwrap_or(1).min(wanted),
            None => wanted,
        }
    }
}

fn describe_ports(ports: &[Port]) -> String {
    let described: Vec<String> = ports
        .iter()
        .map(|p| format!("`{}` {} {}", p.name, p.element, p.dims_text()))
        .collect();
    described.join(", ")
}

/// One input fixed from its port and the suite's spec.
fn model_input(
    port: &Port,
    spec: &OnnxInputSpec,
    base: &Path,
) -> Result<ModelInput, InterfaceProblem> {
    let key = |field: &str| format!("inputs.{}{field}", port.name);
    let shape = match (&spec.shape, port.fixed_shape()) {
        (None, Some(shape)) => shape,
        (None, None) => {
            return Err(interface_problem(
                key(".shape"),
                format!(
                "input `{}` is {} {}: give its shape, e.g. `inputs: {{ {}: {{ shape: [...] }} }}`",
                port.name,
                port.element,
                port.dims_text(),
                port.name
            ),
            ))
        }
        (Some(shape), _) => {
            check_shape(port, shape)
                .map_err(|message| interface_problem(key(".shape"), message))?;
            shape.clone()
        }
    };
    let given: Vec<&str> = [
        ("normal", spec.normal.is_some()),
        ("uniform", spec.uniform.is_some()),
        ("integers", spec.integers.is_some()),
        ("file", spec.file.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(name, _)| name)
    .collect();
    if given.len() > 1 {
        return Err(interface_problem(
            key(""),
            format!(
                "input `{}` has {} sources: give one of `normal`, `uniform`, `integers`, `file`",
                port.name,
                given.join(" and ")
            ),
        ));
    }
    if spec.tensor.is_some() && spec.file.is_none() {
        return Err(interface_problem(
            key(".tensor"),
            "`tensor` names an array in `file`, which is not given".into(),
        ));
    }
    let float = port.element.is_float();
    let source = match (spec, float) {
        (
            OnnxInputSpec {
                file: Some(path), ..
            },
            _,
        ) => InputSource::File {
            path: base.join(path),
            tensor: spec.tensor.clone().unwrap_or_else(|| port.name.clone()),
        },
        (
            OnnxInputSpec {
                integers: Some([low, high]),
                ..
            },
            _,
        ) if low <= high => InputSource::Integers {
            low: *low,
            high: *high,
        },
        (
            OnnxInputSpec {
                integers: Some(_), ..
            },
            _,
        ) => {
            return Err(interface_problem(
                key(".integers"),
                "expected [low, high] with low <= high".into(),
            ))
        }
        (
            OnnxInputSpec {
                normal: Some([mean, std]),
                ..
            },
            true,
        ) => {
            if !(mean.is_finite() && std.is_finite() && *std >= 0.0) {
                return Err(interface_problem(
                    key(".normal"),
                    format!("expected [mean, std] finite with std >= 0, found [{mean}, {std}]"),
                ));
            }
            InputSource::Normal {
                mean: *mean,
                std: *std,
            }
        }
        (
            OnnxInputSpec {
                uniform: Some([low, high]),
                ..
            },
            true,
        ) => {
            if !(low.is_finite() && high.is_finite() && low < high) {
                return Err(interface_problem(
                    key(".uniform"),
                    format!("expected [low, high] finite with low < high, found [{low}, {high}]"),
                ));
            }
            InputSource::Uniform {
                low: *low,
                high: *high,
            }
        }
        (_, false) if port.element == ElementType::Bool => {
            InputSource::Integers { low: 0, high: 1 }
        }
        (_, false) => {
            return Err(interface_problem(
                key(".integers"),
                format!(
                    "input `{}` is {}: give its range, `integers: [low, high]` (token ids: \
                     [0, vocabulary - 1]; a mask: [1, 1]), or a `file`",
                    port.name, port.element
                ),
            ))
        }
        (_, true) => InputSource::Normal {
            mean: 0.0,
            std: 1.0,
        },
    };
    let calibration = spec
        .calibration
        .iter()
        .flatten()
        .map(|file| base.join(file))
        .collect();
    Ok(ModelInput {
        name: port.name.clone(),
        element: port.element,
        shape,
        source,
        calibration,
    })
}

/// Whether `shape` fits the port's declared dimensions.
fn check_shape(port: &Port, shape: &[usize]) -> Result<(), String> {
    if shape.len() != port.dims.len() {
        return Err(format!(
            "input `{}` has {} dimensions {}, the shape given has {}",
            port.name,
            port.dims.len(),
            port.dims_text(),
            shape.len()
        ));
    }
    for (axis, (dim, &size)) in port.dims.iter().zip(shape).enumerate() {
        if size == 0 {
            return Err(format!("dimension {axis} of `{}` is 0", port.name));
        }
        if let Dim::Fixed(fixed) = dim {
            if *fixed != size {
                return Err(format!(
                    "dimension {axis} of input `{}` is fixed at {fixed} by the model {}, the shape \
                     given says {size}",
                    port.name,
                    port.dims_text()
                ));
            }
        }
    }
    Ok(())
}

impl ModelInput {
    /// The input's values: the measured ones, or calibration set `calibration`'s.
    fn make(
        &self,
        seed: u64,
        model: &str,
        format: Format,
        calibration: Option<usize>,
    ) -> Result<Array, LoadError> {
        let count: usize = self.shape.iter().product();
        let stream_name = match calibration {
            None => format!("input.{}", self.name),
            Some(index) => format!("calibration.{index}.{}", self.name),
        };
        let mut rng = stream(seed, model, &stream_name);
        let held = |v: f64| {
            if self.element.is_float() {
                f64::from(format.round(v as f32, Overflow::Cast))
            } else {
                v
            }
        };
        let calibration_file = calibration
            .filter(|_| !self.calibration.is_empty())
            .map(|index| &self.calibration[index % self.calibration.len()]);
        let tensor_of_files = match &self.source {
            InputSource::File { tensor, .. } => tensor.clone(),
            _ => self.name.clone(),
        };
        let data = match (&self.source, calibration_file) {
            (_, Some(path)) => self.read(path, &tensor_of_files, held)?,
            (InputSource::File { path, tensor }, None) => self.read(path, tensor, held)?,
            (InputSource::Normal { mean, std }, None) => ArrayData::from_f64(
                self.element,
                (0..count).map(|_| held(mean + std * rng.sample::<f64, _>(StandardNormal))),
            ),
            (InputSource::Uniform { low, high }, None) => ArrayData::from_f64(
                self.element,
                (0..count).map(|_| held(rng.random_range(*low..*high))),
            ),
            (InputSource::Integers { low, high }, None) => ArrayData::from_f64(
                self.element,
                (0..count).map(|_| held(rng.random_range(*low..=*high) as f64)),
            ),
        };
        Ok(Array::new(&self.name, self.shape.clone(), data)
            .expect("made with the shape's number of values"))
    }

    /// Array `tensor` of the file at `path`, checked against the input's shape and kind of type
    /// and held as `held` says.
    fn read(
        &self,
        path: &Path,
        tensor: &str,
        held: impl Fn(f64) -> f64,
    ) -> Result<ArrayData, LoadError> {
        let array = super::load::named_array(path, tensor)?;
        if array.shape != self.shape {
            return Err(LoadError::Shape {
                path: path.to_owned(),
                tensor: tensor.to_owned(),
                param: format!("input {}", self.name),
                found: array.shape,
                expected: self.shape.clone(),
            });
        }
        let found = array.data.element();
        if found.is_float() != self.element.is_float() {
            return Err(LoadError::Format {
                path: path.to_owned(),
                kind: "input",
                message: format!(
                    "`{tensor}` holds {found}, the model's input `{}` is {}",
                    self.name, self.element
                ),
            });
        }
        Ok(ArrayData::from_f64(
            self.element,
            array.data.to_f64().into_iter().map(held),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(inputs: Vec<Port>) -> OnnxFile {
        OnnxFile {
            path: "m.onnx".into(),
            opset: 17,
            inputs,
            outputs: vec![Port {
                name: "y".into(),
                element: ElementType::F32,
                dims: vec![Dim::Free("N".into()), Dim::Fixed(2)],
            }],
        }
    }

    fn image() -> Port {
        Port {
            name: "image".into(),
            element: ElementType::F32,
            dims: vec![
                Dim::Free("N".into()),
                Dim::Fixed(3),
                Dim::Free("?".into()),
                Dim::Free("?".into()),
            ],
        }
    }

    fn ids() -> Port {
        Port {
            name: "ids".into(),
            element: ElementType::I64,
            dims: vec![Dim::Fixed(1), Dim::Fixed(8)],
        }
    }

    fn specs(entries: &[(&str, OnnxInputSpec)]) -> BTreeMap<String, OnnxInputSpec> {
        entries
            .iter()
            .map(|(n, s)| (n.to_string(), s.clone()))
            .collect()
    }

    fn shaped(shape: &[usize]) -> OnnxInputSpec {
        OnnxInputSpec {
            shape: Some(shape.to_vec()),
            ..Default::default()
        }
    }

    fn fixed(
        inputs: Vec<Port>,
        entries: &[(&str, OnnxInputSpec)],
    ) -> Result<OnnxModel, InterfaceProblem> {
        OnnxModel::new(
            file(inputs),
            &specs(entries),
            None,
            Localize::Matmul,
            Format::Bf16,
            Path::new("."),
        )
    }

    #[test]
    fn free_dimensions_need_a_shape_that_fits_the_fixed_ones() {
        let missing = fixed(vec![image()], &[]).unwrap_err();
        assert_eq!(missing.key, "inputs.image.shape");
        assert!(
            missing.message.contains("[N, 3, ?, ?]"),
            "{}",
            missing.message
        );
        let wrong = fixed(vec![image()], &[("image", shaped(&[1, 4, 8, 8]))]).unwrap_err();
        assert!(wrong.message.contains("fixed at 3"), "{}", wrong.message);
        let rank = fixed(vec![image()], &[("image", shaped(&[1, 3, 8]))]).unwrap_err();
        assert!(rank.message.contains("4 dimensions"), "{}", rank.message);
        let model = fixed(vec![image()], &[("image", shaped(&[2, 3, 8, 8]))]).unwrap();
        assert_eq!(model.inputs[0].shape, vec![2, 3, 8, 8]);
        assert_eq!(model.gated, vec!["y".to_owned()]);
    }

    #[test]
    fn integer_inputs_need_a_range_and_unknown_names_get_a_suggestion() {
        let missing = fixed(vec![ids()], &[]).unwrap_err();
        assert_eq!(missing.key, "inputs.ids.integers");
        let typo = fixed(vec![ids()], &[("idz", OnnxInputSpec::default())]).unwrap_err();
        assert!(
            typo.message.contains("did you mean `ids`"),
            "{}",
            typo.message
        );
        let two = OnnxInputSpec {
            integers: Some([0, 9]),
            file: Some("x.npy".into()),
            ..Default::default()
        };
        let both = fixed(vec![ids()], &[("ids", two)]).unwrap_err();
        assert!(
            both.message.contains("integers and file"),
            "{}",
            both.message
        );
        let ranged = OnnxInputSpec {
            integers: Some([5, 9]),
            ..Default::default()
        };
        let model = fixed(vec![ids()], &[("ids", ranged)]).unwrap();
        let [made] = &model.make_inputs(7, "m", Format::Bf16).unwrap()[..] else {
            panic!("one input")
        };
        let ArrayData::I64(values) = &made.data else {
            panic!("int64 ids")
        };
        assert!(values.iter().all(|v| (5..=9).contains(v)), "{values:?}");
    }

    #[test]
    fn percentiles_of_magnitudes_by_nearest_rank() {
        let values: Vec<f32> = (1..=100).map(|v| -(v as f32)).collect();
        assert_eq!(magnitude_percentile(&values, 100.0), 100.0);
        assert_eq!(magnitude_percentile(&values, 99.0), 99.0);
        assert_eq!(magnitude_percentile(&values, 50.0), 50.0);
        assert_eq!(magnitude_percentile(&values, 0.001), 1.0);
    }

    #[test]
    fn calibration_files_are_the_calibration_sets_apart_from_the_measured_input() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, value: f64| {
            let data = ArrayData::from_f64(ElementType::F32, std::iter::repeat_n(value, 48));
            let array = Array::new("image", vec![1, 3, 4, 4], data).unwrap();
            super::super::load::write_arrays(&dir.path().join(name), &[array]).unwrap();
        };
        write("measured.safetensors", 1.0);
        write("a.safetensors", 2.0);
        write("b.safetensors", 3.0);
        let spec = OnnxInputSpec {
            shape: Some(vec![1, 3, 4, 4]),
            file: Some("measured.safetensors".into()),
            calibration: Some(vec!["a.safetensors".into(), "b.safetensors".into()]),
            ..Default::default()
        };
        let model = OnnxModel::new(
            file(vec![image()]),
            &specs(&[("image", spec)]),
            None,
            Localize::Matmul,
            Format::Bf16,
            dir.path(),
        )
        .unwrap();
        let first = |arrays: Vec<Array>| arrays[0].data.to_f64()[0];
        assert_eq!(first(model.make_inputs(1, "m", Format::Bf16).unwrap()), 1.0);
        let set = |i| {
            first(
                model
                    .make_calibration_inputs(1, "m", Format::Bf16, i)
                    .unwrap(),
            )
        };
        assert_eq!([set(0), set(1), set(2)], [2.0, 3.0, 2.0]);
        assert_eq!(model.calibration_sets(16), 2);
        let seeded = fixed(vec![image()], &[("image", shaped(&[1, 3, 4, 4]))]).unwrap();
        assert_eq!(seeded.calibration_sets(16), 16);
    }

    #[test]
    fn seeded_float_inputs_are_reproducible_and_held_in_the_reference_format() {
        let model = fixed(vec![image()], &[("image", shaped(&[1, 3, 4, 4]))]).unwrap();
        let a = model.make_inputs(1, "m", Format::Bf16).unwrap();
        assert_eq!(a, model.make_inputs(1, "m", Format::Bf16).unwrap());
        assert_ne!(a, model.make_inputs(2, "m", Format::Bf16).unwrap());
        let values = a[0].data.to_f64();
        assert!(values
            .iter()
            .all(|&v| f64::from(Format::Bf16.round(v as f32, Overflow::Cast)) == v));
    }
}
