//! Writing ONNX nodes and initializers: the piece the export of precheck's blocks and the rewrite
//! of a user's model share. Values are held in a format by a `Cast` there and back, matmul
//! operands quantized by precheck's recipes with `QuantizeLinear`/`DequantizeLinear` (or the same
//! arithmetic written out where those cannot say it).

use super::ExportError;
use crate::formats::minifloat::{FP8_E4M3, FP8_E5M2};
use crate::formats::{Format, Overflow};
use crate::onnx_proto::{AttributeProto, AttributeType, DataType, NodeProto, TensorProto};
use crate::quant::{self, AmaxHistory, QuantSpec, Recipe};
use crate::tensor::Tensor;

/// An ONNX node with one output, named after it.
pub(super) fn node(
    op_type: &str,
    inputs: &[&str],
    output: &str,
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_owned()],
        name: output.to_owned(),
        op_type: op_type.to_owned(),
        attribute,
        ..Default::default()
    }
}

/// An INT attribute.
pub(super) fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: Some(value),
        r#type: AttributeType::Int as i32,
        ..Default::default()
    }
}

/// A FLOAT attribute.
pub(super) fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f: Some(value),
        r#type: AttributeType::Float as i32,
        ..Default::default()
    }
}

/// A STRING attribute.
pub(super) fn string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        s: Some(value.as_bytes().to_vec()),
        r#type: AttributeType::String as i32,
        ..Default::default()
    }
}

/// An INTS attribute.
pub(super) fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: values.to_vec(),
        r#type: AttributeType::Ints as i32,
        ..Default::default()
    }
}

/// A tensor initializer.
pub(super) fn tensor(
    name: &str,
    data_type: DataType,
    dims: &[usize],
    raw_data: Vec<u8>,
) -> TensorProto {
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: data_type as i32,
        name: name.to_owned(),
        raw_data,
        ..Default::default()
    }
}

/// Little-endian f32 bytes.
pub(super) fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The values of a FLOAT initializer, from `raw_data` or `float_data`.
pub(super) fn float_values(tensor: &TensorProto) -> Result<Vec<f32>, ExportError> {
    if tensor.data_type != DataType::Float as i32 {
        return Err(ExportError::Unsupported(format!(
            "quantizing the weight `{}` of element type {} (only FLOAT weights are rewritten)",
            tensor.name, tensor.data_type
        )));
    }
    if !tensor.external_data.is_empty() {
        return Err(ExportError::Unsupported(format!(
            "the weight `{}` held in an external data file (not read by the rewrite yet)",
            tensor.name
        )));
    }
    let values: Vec<f32> = if tensor.raw_data.is_empty() {
        tensor.float_data.clone()
    } else {
        tensor
            .raw_data
            .chunks(4)
            .map(|b| b.try_into().map_or(f32::NAN, f32::from_le_bytes))
            .collect()
    };
    let elements = tensor.dims.iter().try_fold(1usize, |n, &d| {
        usize::try_from(d).ok().and_then(|d| n.checked_mul(d))
    });
    if elements != Some(values.len()) || tensor.raw_data.len() % 4 != 0 {
        return Err(ExportError::Malformed(format!(
            "the initializer `{}` of shape {:?} holds {} bytes of data",
            tensor.name,
            tensor.dims,
            tensor.raw_data.len().max(4 * tensor.float_data.len())
        )));
    }
    Ok(values)
}

/// The ONNX type of a quantized format.
pub(super) fn quantized_type(format: Format) -> Result<DataType, ExportError> {
    match format {
        Format::Int8 => Ok(DataType::Int8),
        Format::Int4 => Ok(DataType::Int4),
        Format::Fp8E4m3 => Ok(DataType::Float8E4m3fn),
        Format::Fp8E5m2 => Ok(DataType::Float8E5m2),
        other => Err(ExportError::Unsupported(format!(
            "{other} quantized operands"
        ))),
    }
}

/// `codes` (values of `format`) as the raw bytes of its ONNX type.
fn code_bytes(format: Format, codes: &[f32]) -> Vec<u8> {
    match format {
        Format::Int8 => codes.iter().map(|&c| c as i8 as u8).collect(),
        // Two per byte, the first in the low nibble.
        Format::Int4 => codes
            .chunks(2)
            .map(|pair| {
                let nibble = |c: f32| (c as i8 as u8) & 0x0f;
                nibble(pair[0]) | pair.get(1).map_or(0, |&c| nibble(c) << 4)
            })
            .collect(),
        Format::Fp8E4m3 => codes
            .iter()
            .map(|&c| FP8_E4M3.encode(c, Overflow::Saturate))
            .collect(),
        Format::Fp8E5m2 => codes
            .iter()
            .map(|&c| FP8_E5M2.encode(c, Overflow::Saturate))
            .collect(),
        _ => unreachable!("quantized_type admits only these"),
    }
}

/// Zero points of `format` for `count` scales (all zero: precheck's recipes are symmetric).
fn zero_bytes(format: Format, count: usize) -> Vec<u8> {
    code_bytes(format, &vec![0.0; count])
}

/// The error for a recipe ONNX cannot say.
pub(super) fn unsupported_recipe(spec: QuantSpec) -> ExportError {
    ExportError::Unsupported(format!("the operand recipe {spec}"))
}

/// `values` of shape `dims` with `axis` moved first, the other axes in order: a weight's output
/// channels as rows, the layout precheck's recipes scale along.
pub(super) fn channel_major(values: &[f32], dims: &[usize], axis: usize) -> Vec<f32> {
    permute_channels(values, dims, axis, true)
}

/// The inverse of [`channel_major`]: channel-major `values` back in the order of `dims`.
fn from_channel_major(values: &[f32], dims: &[usize], axis: usize) -> Vec<f32> {
    permute_channels(values, dims, axis, false)
}

/// Moves `axis` of `values` (shape `dims`) first, or back from first.
fn permute_channels(
    values: &[f32],
    dims: &[usize],
    axis: usize,
    to_channel_major: bool,
) -> Vec<f32> {
    if axis == 0 || dims.is_empty() {
        return values.to_vec();
    }
    let outer: usize = dims[..axis].iter().product();
    let channels = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let mut out = vec![0.0; values.len()];
    for c in 0..channels {
        for o in 0..outer {
            let natural = (o * channels + c) * inner;
            let major = (c * outer + o) * inner;
            let (from, to) = if to_channel_major {
                (natural, major)
            } else {
                (major, natural)
            };
            out[to..to + inner].copy_from_slice(&values[from..from + inner]);
        }
    }
    out
}

/// Nodes and initializers being written, with names made unique by a counter.
pub(super) struct Emitter {
    /// Nodes written so far, in order.
    pub nodes: Vec<NodeProto>,
    /// Initializers written so far.
    pub initializers: Vec<TensorProto>,
    names: usize,
    /// Prepended to every name (keeps a rewrite's names apart from the model's own).
    prefix: &'static str,
    /// The default-domain opset the nodes must be valid in.
    opset: i64,
}

impl Emitter {
    /// An empty graph piece for opset `opset`.
    pub fn new(prefix: &'static str, opset: i64) -> Self {
        Emitter {
            nodes: Vec::new(),
            initializers: Vec::new(),
            names: 0,
            prefix,
            opset,
        }
    }

    /// A fresh name.
    pub fn fresh(&mut self, hint: &str) -> String {
        self.names += 1;
        format!("{}{hint}_{}", self.prefix, self.names)
    }

    /// Appends a node and returns its output's name.
    pub fn op(&mut self, op_type: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let output = self.fresh(&op_type.to_ascii_lowercase());
        self.nodes.push(node(op_type, inputs, &output, attribute));
        output
    }

    /// An initializer with a fresh name.
    pub fn constant(
        &mut self,
        hint: &str,
        data_type: DataType,
        dims: &[usize],
        raw: Vec<u8>,
    ) -> String {
        let name = self.fresh(hint);
        self.initializers.push(tensor(&name, data_type, dims, raw));
        name
    }

    /// A float scalar.
    pub fn scalar(&mut self, value: f32) -> String {
        self.constant("const", DataType::Float, &[], f32_bytes(&[value]))
    }

    /// An int64 vector (a shape, axes).
    pub fn shape(&mut self, dims: &[i64]) -> String {
        let raw = dims.iter().flat_map(|d| d.to_le_bytes()).collect();
        self.constant("shape", DataType::Int64, &[dims.len()], raw)
    }

    /// `x` held in `format`: a cast there and back, or nothing for FP32.
    pub fn store(&mut self, x: String, format: Format) -> Result<String, ExportError> {
        let Some(low) = self.cast_to(&x, format)? else {
            return Ok(x);
        };
        Ok(self.op("Cast", &[&low], vec![int("to", DataType::Float as i64)]))
    }

    /// `x` held in `format`, the value named `name` (which must be fresh to the graph).
    pub fn store_as(
        &mut self,
        x: String,
        format: Format,
        name: &str,
    ) -> Result<String, ExportError> {
        let low = self.cast_to(&x, format)?.unwrap_or(x);
        let attribute = vec![int("to", DataType::Float as i64)];
        let mut cast = node("Cast", &[&low], name, attribute);
        // Named apart from the value: the node that made `name` may be called that already.
        cast.name = self.fresh("cast");
        self.nodes.push(cast);
        Ok(name.to_owned())
    }

    /// The cast of `x` to `format`'s type; `None` for FP32.
    fn cast_to(&mut self, x: &str, format: Format) -> Result<Option<String>, ExportError> {
        let to = match format {
            Format::Fp32 => return Ok(None),
            Format::Bf16 => DataType::Bfloat16,
            Format::Fp16 => DataType::Float16,
            other => {
                return Err(ExportError::Unsupported(format!(
                    "rounding tensors to {other} (no such type)"
                )))
            }
        };
        Ok(Some(self.op("Cast", &[x], vec![int("to", to as i64)])))
    }

    /// `ReduceMax` of `x` over `axes` (all when empty): axes as an input from opset 18, as an
    /// attribute before.
    fn reduce_max(&mut self, x: &str, axes: &[i64], keepdims: bool) -> String {
        let mut attributes = vec![int("keepdims", i64::from(keepdims))];
        if axes.is_empty() {
            return self.op("ReduceMax", &[x], attributes);
        }
        if self.opset >= 18 {
            let axes = self.shape(axes);
            self.op("ReduceMax", &[x, &axes], attributes)
        } else {
            attributes.push(ints("axes", axes));
            self.op("ReduceMax", &[x], attributes)
        }
    }

    /// The scale of an amax as precheck's recipes take it: `amax / format max`, 1 where the amax
    /// is 0.
    fn scale_of(&mut self, amax: &str, format: Format) -> String {
        let format_max = self.scalar(format.max_value());
        let (zero, one) = (self.scalar(0.0), self.scalar(1.0));
        let scaled = self.op("Div", &[amax, &format_max], vec![]);
        let is_zero = self.op("Equal", &[amax, &zero], vec![]);
        self.op("Where", &[&is_zero, &one, &scaled], vec![])
    }

    /// An activation quantized as `spec` says on every call, with the scale of its current amax.
    /// Per tensor: `QuantizeLinear`/`DequantizeLinear` with a scalar scale. Per token with the
    /// rows known (`tokens`): the same with scales along axis 0. Per token otherwise: the
    /// quantization written out along the last axis (divide, round to the format, multiply).
    pub fn quantize_activation(
        &mut self,
        x: &str,
        spec: QuantSpec,
        tokens: Option<usize>,
    ) -> Result<String, ExportError> {
        match spec.recipe {
            Recipe::Cast => return self.store(x.to_owned(), spec.format),
            Recipe::PerTensor => {}
            Recipe::PerToken if tokens.is_some() => {}
            Recipe::PerToken => return self.fake_quantize_rows(x, spec),
            _ => return Err(unsupported_recipe(spec)),
        }
        let data_type = quantized_type(spec.format)?;
        let magnitude = self.op("Abs", &[x], vec![]);
        let (amax, attributes, zero_dims) = match tokens {
            Some(tokens) if spec.recipe == Recipe::PerToken => (
                self.reduce_max(&magnitude, &[1], false),
                vec![int("axis", 0)],
                vec![tokens],
            ),
            _ => (self.reduce_max(&magnitude, &[], false), vec![], vec![]),
        };
        let scale = self.scale_of(&amax, spec.format);
        let count = zero_dims.iter().product();
        let zero_point = self.constant(
            "zero",
            data_type,
            &zero_dims,
            zero_bytes(spec.format, count),
        );
        let q = self.op(
            "QuantizeLinear",
            &[x, &scale, &zero_point],
            attributes.clone(),
        );
        Ok(self.op("DequantizeLinear", &[&q, &scale, &zero_point], attributes))
    }

    /// An activation quantized per tensor with a scale fixed beforehand from `amax` (calibrated
    /// on other inputs: TensorRT's static Q/DQ, and delayed scaling at the call measured):
    /// values beyond it saturate, integers at ±max as precheck's recipes do.
    pub fn quantize_activation_static(
        &mut self,
        x: &str,
        spec: QuantSpec,
        amax: f32,
    ) -> Result<String, ExportError> {
        let data_type = quantized_type(spec.format)?;
        let max = spec.format.max_value();
        let scale_value = if amax > 0.0 { amax / max } else { 1.0 };
        let scale = self.scalar(scale_value);
        let zero_point = self.constant("zero", data_type, &[], zero_bytes(spec.format, 1));
        let x = match spec.format {
            // QuantizeLinear would clamp at -128; precheck's integers are symmetric.
            Format::Int8 | Format::Int4 => {
                let (low, high) = (
                    self.scalar(-max * scale_value),
                    self.scalar(max * scale_value),
                );
                self.op("Clip", &[x, &low, &high], vec![])
            }
            _ => x.to_owned(),
        };
        let q = self.op("QuantizeLinear", &[&x, &scale, &zero_point], vec![]);
        Ok(self.op("DequantizeLinear", &[&q, &scale, &zero_point], vec![]))
    }

    /// Per-token quantization along the last axis, as arithmetic: `x / s` rounded to the format
    /// (ONNX's `Round` ties to even, as precheck; FP8 by a saturating cast), times `s`.
    fn fake_quantize_rows(&mut self, x: &str, spec: QuantSpec) -> Result<String, ExportError> {
        let magnitude = self.op("Abs", &[x], vec![]);
        let amax = self.reduce_max(&magnitude, &[-1], true);
        let scale = self.scale_of(&amax, spec.format);
        let scaled = self.op("Div", &[x, &scale], vec![]);
        let rounded = match spec.format {
            Format::Int8 | Format::Int4 => {
                let max = spec.format.max_value();
                let (low, high) = (self.scalar(-max), self.scalar(max));
                let round = self.op("Round", &[&scaled], vec![]);
                self.op("Clip", &[&round, &low, &high], vec![])
            }
            Format::Fp8E4m3 | Format::Fp8E5m2 => {
                let to = quantized_type(spec.format)? as i64;
                let low = self.op("Cast", &[&scaled], vec![int("to", to), int("saturate", 1)]);
                self.op("Cast", &[&low], vec![int("to", DataType::Float as i64)])
            }
            _ => return Err(unsupported_recipe(spec)),
        };
        Ok(self.op("Mul", &[&rounded, &scale], vec![]))
    }

    /// A matmul weight quantized as `spec` says, dequantized in the graph. `channel_major` holds
    /// it with its output channels as rows (precheck's layout); `dims` is its shape in the graph
    /// and `axis` the axis of the channels there.
    pub fn weight(
        &mut self,
        name: &str,
        channel_major: &Tensor,
        spec: QuantSpec,
        axis: usize,
        dims: &[usize],
    ) -> Result<String, ExportError> {
        let back = |values: &[f32]| from_channel_major(values, dims, axis);
        match spec.recipe {
            Recipe::Cast => Err(ExportError::Unsupported(
                "a cast weight has no dequantization".into(),
            )),
            Recipe::PerTensor | Recipe::PerChannel | Recipe::PerToken | Recipe::Delayed { .. } => {
                // A delayed recipe scales a weight from its own amax, as the CPU backend does.
                let per_tensor = matches!(spec.recipe, Recipe::PerTensor | Recipe::Delayed { .. });
                let spec = QuantSpec {
                    recipe: if per_tensor {
                        Recipe::PerTensor
                    } else {
                        Recipe::PerChannel
                    },
                    ..spec
                };
                let operand = quant::quantize(channel_major, spec, &mut AmaxHistory::default());
                let scales = operand.row_scales.expect("scaled recipes keep row scales");
                let quantized =
                    self.quantized(name, spec.format, dims, &back(&operand.values.data))?;
                if per_tensor {
                    self.dequantize(&quantized, spec.format, &scales[..1], &[], vec![])
                } else {
                    let attributes = vec![int("axis", axis as i64)];
                    self.dequantize(&quantized, spec.format, &scales, &[dims[axis]], attributes)
                }
            }
            Recipe::Group { size } => {
                let [rows, cols] = dims[..] else {
                    return Err(ExportError::Unsupported(format!(
                        "the group recipe on the {}-D weight `{name}` (2-D weights only)",
                        dims.len()
                    )));
                };
                // Groups run along each channel's inputs; kept apart from the codes for a blocked
                // DequantizeLinear (the CPU backend folds them together).
                let width = channel_major.cols;
                let groups = width.div_ceil(size);
                let mut scales = Vec::with_capacity(channel_major.rows * groups);
                let mut codes = Vec::with_capacity(channel_major.data.len());
                for group in channel_major
                    .data
                    .chunks(width)
                    .flat_map(|row| row.chunks(size))
                {
                    let scale = quant::scale_for(quant::amax(group), spec.format);
                    scales.push(scale);
                    codes.extend(
                        group
                            .iter()
                            .map(|v| spec.format.round(v / scale, Overflow::Saturate)),
                    );
                }
                let quantized = self.quantized(name, spec.format, dims, &back(&codes))?;
                // Blocks run along the axis that is not the channels'.
                let block_axis = 1 - axis;
                let scale_dims = if axis == 0 {
                    [rows, cols.div_ceil(size)]
                } else {
                    [rows.div_ceil(size), cols]
                };
                let scales = from_channel_major(&scales, &scale_dims, axis);
                let blocks = vec![
                    int("axis", block_axis as i64),
                    int("block_size", size as i64),
                ];
                self.dequantize(&quantized, spec.format, &scales, &scale_dims, blocks)
            }
            Recipe::Mx | Recipe::Nvfp4 => Err(unsupported_recipe(spec)),
        }
    }

    /// An initializer of quantized codes, named after the weight.
    fn quantized(
        &mut self,
        name: &str,
        format: Format,
        dims: &[usize],
        codes: &[f32],
    ) -> Result<String, ExportError> {
        let data_type = quantized_type(format)?;
        let name = format!("{name}.quantized");
        self.initializers
            .push(tensor(&name, data_type, dims, code_bytes(format, codes)));
        Ok(name)
    }

    /// `DequantizeLinear` of `quantized` with constant `scales` of shape `dims`.
    fn dequantize(
        &mut self,
        quantized: &str,
        format: Format,
        scales: &[f32],
        dims: &[usize],
        attributes: Vec<AttributeProto>,
    ) -> Result<String, ExportError> {
        let data_type = quantized_type(format)?;
        let scale = self.constant("scale", DataType::Float, dims, f32_bytes(scales));
        let zero = self.constant("zero", data_type, dims, zero_bytes(format, scales.len()));
        Ok(self.op("DequantizeLinear", &[quantized, &scale, &zero], attributes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_major_values_go_back_to_their_layout() {
        // [2, 3] with axis 1: channel-major holds the columns as rows.
        let channel_major = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        assert_eq!(
            from_channel_major(&channel_major, &[2, 3], 1),
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        );
        assert_eq!(
            from_channel_major(&channel_major, &[3, 2], 0),
            channel_major
        );
    }
}
