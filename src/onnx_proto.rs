//! The part of ONNX's protobuf schema (`onnx/onnx.proto`, IR version 10) that an exported block
//! uses, as `prost` messages. Field numbers are the schema's; fields precheck never writes are left
//! out, which protobuf allows.

/// `TensorProto.DataType`: the element types an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum DataType {
    /// 32-bit IEEE float.
    Float = 1,
    /// 8-bit signed integer.
    Int8 = 3,
    /// 64-bit signed integer (shapes, axes).
    Int64 = 7,
    /// IEEE half precision.
    Float16 = 10,
    /// bfloat16.
    Bfloat16 = 16,
    /// FP8 E4M3, finite only (`e4m3fn`).
    Float8E4m3fn = 17,
    /// FP8 E5M2.
    Float8E5m2 = 19,
    /// 4-bit signed integer, two per byte, the first in the low nibble.
    Int4 = 22,
}

/// The IR version of opset 21's release (ONNX 1.16).
pub const IR_VERSION: i64 = 10;
/// The default-domain opset an export targets.
pub const OPSET: i64 = 21;

/// `ModelProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// `ir_version`.
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    /// `producer_name`.
    #[prost(string, tag = "2")]
    pub producer_name: String,
    /// `producer_version`.
    #[prost(string, tag = "3")]
    pub producer_version: String,
    /// `doc_string`.
    #[prost(string, tag = "6")]
    pub doc_string: String,
    /// `graph`.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    /// `opset_import`.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
}

/// `OperatorSetIdProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    /// `domain` (empty: the default domain).
    #[prost(string, tag = "1")]
    pub domain: String,
    /// `version`.
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// `GraphProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// `node`, in topological order.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// `name`.
    #[prost(string, tag = "2")]
    pub name: String,
    /// `initializer`: constants and weights.
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// `input`.
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// `output`.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

/// `NodeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// `input`: value names.
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// `output`: value names.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// `name`.
    #[prost(string, tag = "3")]
    pub name: String,
    /// `op_type`.
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// `attribute`.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

/// `AttributeProto.AttributeType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum AttributeType {
    /// One float.
    Float = 1,
    /// One integer.
    Int = 2,
    /// One string.
    String = 3,
    /// A list of integers.
    Ints = 7,
}

/// `AttributeProto`. ONNX's schema is proto2: a value field must be present even when it holds
/// its default (`keepdims = 0`), hence the optional fields.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// `name`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `f`.
    #[prost(float, optional, tag = "2")]
    pub f: Option<f32>,
    /// `i`.
    #[prost(int64, optional, tag = "3")]
    pub i: Option<i64>,
    /// `s`.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub s: Option<Vec<u8>>,
    /// `ints`.
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// `type` ([`AttributeType`]).
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

/// `TensorProto`: data as little-endian `raw_data`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// `dims`.
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// `data_type` ([`DataType`]).
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// `name`.
    #[prost(string, tag = "8")]
    pub name: String,
    /// `raw_data`.
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
}

/// `ValueInfoProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// `name`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `type`.
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

/// `TypeProto`, tensor types only.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// `tensor_type`.
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TensorTypeProto>,
}

/// `TypeProto.Tensor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorTypeProto {
    /// `elem_type` ([`DataType`]).
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    /// `shape`.
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

/// `TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// `dim`.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// `TensorShapeProto.Dimension`, fixed sizes only.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dimension {
    /// `dim_value`.
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
}

impl ValueInfoProto {
    /// A float tensor of a fixed shape.
    pub fn float(name: &str, shape: &[usize]) -> Self {
        ValueInfoProto {
            name: name.to_owned(),
            r#type: Some(TypeProto {
                tensor_type: Some(TensorTypeProto {
                    elem_type: DataType::Float as i32,
                    shape: Some(TensorShapeProto {
                        dim: shape
                            .iter()
                            .map(|&n| Dimension {
                                dim_value: Some(n as i64),
                            })
                            .collect(),
                    }),
                }),
            }),
        }
    }
}
