//! ONNX's protobuf schema (`onnx/onnx.proto`) as hand-written `prost` messages: every message and
//! field of IR version 10 (ONNX 1.16–1.17), plus the later additions (device configurations,
//! `TypeProto.Opaque`, the data types up to `INT2`), so that a model decoded into [`ModelProto`]
//! and encoded again keeps all of its fields. prost drops fields it does not know; none is left
//! unknown here.
//!
//! Field numbers and wire types are the schema's, and fields are declared in ascending tag order,
//! so a canonically encoded file (as protobuf's C++ and Python runtimes write it) re-encodes to
//! the same bytes. The schema is proto2: repeated numbers are unpacked unless the schema asks for
//! `[packed = true]`, and an `optional` scalar keeps its presence as an `Option` (prost derives a
//! getter of the same name that returns the default when it is absent). The scalars that
//! precheck's export has always written (`ModelProto.ir_version`, the names, `op_type`, types
//! and `raw_data`) stay plain values for the code built on them: written explicitly at their
//! default (an empty `domain`, an empty `raw_data`) they re-encode as absent, which every reader
//! takes to mean the same. A `oneof` is rendered as its fields side by side (the same wire
//! format); at most one of them is set in a valid model.

/// `TensorProto.DataType`: an element type. `UNDEFINED` (0) has no variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum DataType {
    /// 32-bit IEEE float.
    Float = 1,
    /// 8-bit unsigned integer.
    Uint8 = 2,
    /// 8-bit signed integer.
    Int8 = 3,
    /// 16-bit unsigned integer.
    Uint16 = 4,
    /// 16-bit signed integer.
    Int16 = 5,
    /// 32-bit signed integer.
    Int32 = 6,
    /// 64-bit signed integer (shapes, axes).
    Int64 = 7,
    /// A byte string (`string_data`).
    String = 8,
    /// Boolean, one byte.
    Bool = 9,
    /// IEEE half precision.
    Float16 = 10,
    /// 64-bit IEEE float.
    Double = 11,
    /// 32-bit unsigned integer.
    Uint32 = 12,
    /// 64-bit unsigned integer.
    Uint64 = 13,
    /// Complex number of two 32-bit floats.
    Complex64 = 14,
    /// Complex number of two 64-bit floats.
    Complex128 = 15,
    /// bfloat16.
    Bfloat16 = 16,
    /// FP8 E4M3, finite only (`e4m3fn`).
    Float8E4m3fn = 17,
    /// FP8 E4M3, finite only, no negative zero (`e4m3fnuz`).
    Float8E4m3fnuz = 18,
    /// FP8 E5M2.
    Float8E5m2 = 19,
    /// FP8 E5M2, finite only, no negative zero (`e5m2fnuz`).
    Float8E5m2fnuz = 20,
    /// 4-bit unsigned integer, two per byte, the first in the low nibble.
    Uint4 = 21,
    /// 4-bit signed integer, two per byte, the first in the low nibble.
    Int4 = 22,
    /// FP4 E2M1, two per byte (IR version 11).
    Float4E2m1 = 23,
    /// E8M0, a power-of-two scale (IR version 12).
    Float8E8m0 = 24,
    /// 2-bit unsigned integer, four per byte (IR version 13).
    Uint2 = 25,
    /// 2-bit signed integer, four per byte (IR version 13).
    Int2 = 26,
}

impl DataType {
    /// Every data type, in the order of their numbers.
    pub const ALL: [DataType; 26] = [
        DataType::Float,
        DataType::Uint8,
        DataType::Int8,
        DataType::Uint16,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::String,
        DataType::Bool,
        DataType::Float16,
        DataType::Double,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Complex64,
        DataType::Complex128,
        DataType::Bfloat16,
        DataType::Float8E4m3fn,
        DataType::Float8E4m3fnuz,
        DataType::Float8E5m2,
        DataType::Float8E5m2fnuz,
        DataType::Uint4,
        DataType::Int4,
        DataType::Float4E2m1,
        DataType::Float8E8m0,
        DataType::Uint2,
        DataType::Int2,
    ];

    /// The data type numbered `value` in the schema (`data_type`, `elem_type`); `None` for
    /// `UNDEFINED` and numbers the schema does not have.
    pub fn from_i32(value: i32) -> Option<DataType> {
        usize::try_from(value)
            .ok()
            .and_then(|v| v.checked_sub(1))
            .and_then(|i| DataType::ALL.get(i).copied())
    }

    /// ONNX's name of the type, as in `TensorProto.DataType` (`"FLOAT"`, `"INT64"`).
    pub fn name(self) -> &'static str {
        match self {
            DataType::Float => "FLOAT",
            DataType::Uint8 => "UINT8",
            DataType::Int8 => "INT8",
            DataType::Uint16 => "UINT16",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::String => "STRING",
            DataType::Bool => "BOOL",
            DataType::Float16 => "FLOAT16",
            DataType::Double => "DOUBLE",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Complex64 => "COMPLEX64",
            DataType::Complex128 => "COMPLEX128",
            DataType::Bfloat16 => "BFLOAT16",
            DataType::Float8E4m3fn => "FLOAT8E4M3FN",
            DataType::Float8E4m3fnuz => "FLOAT8E4M3FNUZ",
            DataType::Float8E5m2 => "FLOAT8E5M2",
            DataType::Float8E5m2fnuz => "FLOAT8E5M2FNUZ",
            DataType::Uint4 => "UINT4",
            DataType::Int4 => "INT4",
            DataType::Float4E2m1 => "FLOAT4E2M1",
            DataType::Float8E8m0 => "FLOAT8E8M0",
            DataType::Uint2 => "UINT2",
            DataType::Int2 => "INT2",
        }
    }

    /// Bytes per element in `raw_data`; `None` for `STRING` (no fixed size) and the types of
    /// fewer than 8 bits, which pack several elements into a byte.
    pub fn size_bytes(self) -> Option<usize> {
        match self {
            DataType::Uint8
            | DataType::Int8
            | DataType::Bool
            | DataType::Float8E4m3fn
            | DataType::Float8E4m3fnuz
            | DataType::Float8E5m2
            | DataType::Float8E5m2fnuz
            | DataType::Float8E8m0 => Some(1),
            DataType::Uint16 | DataType::Int16 | DataType::Float16 | DataType::Bfloat16 => Some(2),
            DataType::Float | DataType::Int32 | DataType::Uint32 => Some(4),
            DataType::Int64 | DataType::Double | DataType::Uint64 | DataType::Complex64 => Some(8),
            DataType::Complex128 => Some(16),
            DataType::String
            | DataType::Uint4
            | DataType::Int4
            | DataType::Float4E2m1
            | DataType::Uint2
            | DataType::Int2 => None,
        }
    }
}

/// The IR version of opset 21's release (ONNX 1.16).
pub const IR_VERSION: i64 = 10;
/// The default-domain opset an export targets.
pub const OPSET: i64 = 21;

/// `ModelProto`: the file.
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
    /// `domain`: the model's namespace, reverse-DNS.
    #[prost(string, optional, tag = "4")]
    pub domain: Option<String>,
    /// `model_version`.
    #[prost(int64, optional, tag = "5")]
    pub model_version: Option<i64>,
    /// `doc_string`.
    #[prost(string, tag = "6")]
    pub doc_string: String,
    /// `graph`.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    /// `opset_import`.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// `metadata_props`: free-form key/value pairs.
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
    /// `training_info`.
    #[prost(message, repeated, tag = "20")]
    pub training_info: Vec<TrainingInfoProto>,
    /// `functions`: model-local functions.
    #[prost(message, repeated, tag = "25")]
    pub functions: Vec<FunctionProto>,
    /// `configuration`: device configurations for distributed runs (IR version 11).
    #[prost(message, repeated, tag = "26")]
    pub configuration: Vec<DeviceConfigurationProto>,
}

/// `DeviceConfigurationProto` (IR version 11).
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeviceConfigurationProto {
    /// `name`.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// `num_devices`.
    #[prost(int32, optional, tag = "2")]
    pub num_devices: Option<i32>,
    /// `device`: names of the devices.
    #[prost(string, repeated, tag = "3")]
    pub device: Vec<String>,
}

/// `StringStringEntryProto`: a key/value pair (metadata, external data, bindings).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringStringEntryProto {
    /// `key`.
    #[prost(string, optional, tag = "1")]
    pub key: Option<String>,
    /// `value`.
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

impl StringStringEntryProto {
    /// An entry with both fields set.
    pub fn new(key: &str, value: &str) -> Self {
        StringStringEntryProto {
            key: Some(key.to_owned()),
            value: Some(value.to_owned()),
        }
    }
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

/// `TrainingInfoProto`: how to initialize and train a model.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrainingInfoProto {
    /// `initialization`.
    #[prost(message, optional, tag = "1")]
    pub initialization: Option<GraphProto>,
    /// `algorithm`.
    #[prost(message, optional, tag = "2")]
    pub algorithm: Option<GraphProto>,
    /// `initialization_binding`.
    #[prost(message, repeated, tag = "3")]
    pub initialization_binding: Vec<StringStringEntryProto>,
    /// `update_binding`.
    #[prost(message, repeated, tag = "4")]
    pub update_binding: Vec<StringStringEntryProto>,
}

/// `FunctionProto`: a model-local function.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FunctionProto {
    /// `name`.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// `input`: formal input names.
    #[prost(string, repeated, tag = "4")]
    pub input: Vec<String>,
    /// `output`: formal output names.
    #[prost(string, repeated, tag = "5")]
    pub output: Vec<String>,
    /// `attribute`: names of attributes without defaults.
    #[prost(string, repeated, tag = "6")]
    pub attribute: Vec<String>,
    /// `node`: the body.
    #[prost(message, repeated, tag = "7")]
    pub node: Vec<NodeProto>,
    /// `doc_string`.
    #[prost(string, optional, tag = "8")]
    pub doc_string: Option<String>,
    /// `opset_import`.
    #[prost(message, repeated, tag = "9")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// `domain`.
    #[prost(string, optional, tag = "10")]
    pub domain: Option<String>,
    /// `attribute_proto`: attributes with defaults.
    #[prost(message, repeated, tag = "11")]
    pub attribute_proto: Vec<AttributeProto>,
    /// `value_info`.
    #[prost(message, repeated, tag = "12")]
    pub value_info: Vec<ValueInfoProto>,
    /// `overload`.
    #[prost(string, optional, tag = "13")]
    pub overload: Option<String>,
    /// `metadata_props`.
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
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
    /// `doc_string`.
    #[prost(string, optional, tag = "10")]
    pub doc_string: Option<String>,
    /// `input`.
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// `output`.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
    /// `value_info`: types of intermediate values.
    #[prost(message, repeated, tag = "13")]
    pub value_info: Vec<ValueInfoProto>,
    /// `quantization_annotation`.
    #[prost(message, repeated, tag = "14")]
    pub quantization_annotation: Vec<TensorAnnotation>,
    /// `sparse_initializer`.
    #[prost(message, repeated, tag = "15")]
    pub sparse_initializer: Vec<SparseTensorProto>,
    /// `metadata_props`.
    #[prost(message, repeated, tag = "16")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// `TensorAnnotation`: the quantization parameters of a tensor.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorAnnotation {
    /// `tensor_name`.
    #[prost(string, optional, tag = "1")]
    pub tensor_name: Option<String>,
    /// `quant_parameter_tensor_names`: e.g. `SCALE_TENSOR`, `ZERO_POINT_TENSOR`.
    #[prost(message, repeated, tag = "2")]
    pub quant_parameter_tensor_names: Vec<StringStringEntryProto>,
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
    /// `doc_string`.
    #[prost(string, optional, tag = "6")]
    pub doc_string: Option<String>,
    /// `domain` of `op_type` (absent or empty: the default domain).
    #[prost(string, optional, tag = "7")]
    pub domain: Option<String>,
    /// `overload`: which function of that name and domain.
    #[prost(string, optional, tag = "8")]
    pub overload: Option<String>,
    /// `metadata_props`.
    #[prost(message, repeated, tag = "9")]
    pub metadata_props: Vec<StringStringEntryProto>,
    /// `device_configurations` (IR version 11).
    #[prost(message, repeated, tag = "10")]
    pub device_configurations: Vec<NodeDeviceConfigurationProto>,
}

/// `NodeDeviceConfigurationProto` (IR version 11).
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeDeviceConfigurationProto {
    /// `configuration_id`: a `DeviceConfigurationProto` name.
    #[prost(string, optional, tag = "1")]
    pub configuration_id: Option<String>,
    /// `sharding_spec`.
    #[prost(message, repeated, tag = "2")]
    pub sharding_spec: Vec<ShardingSpecProto>,
    /// `pipeline_stage`.
    #[prost(int32, optional, tag = "3")]
    pub pipeline_stage: Option<i32>,
}

/// `ShardingSpecProto` (IR version 11).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ShardingSpecProto {
    /// `tensor_name`.
    #[prost(string, optional, tag = "1")]
    pub tensor_name: Option<String>,
    /// `device`: device ids or group ids.
    #[prost(int64, repeated, packed = "false", tag = "2")]
    pub device: Vec<i64>,
    /// `index_to_device_group_map`.
    #[prost(message, repeated, tag = "3")]
    pub index_to_device_group_map: Vec<IntIntListEntryProto>,
    /// `sharded_dim`.
    #[prost(message, repeated, tag = "4")]
    pub sharded_dim: Vec<ShardedDimProto>,
}

/// `IntIntListEntryProto`: an integer key and its list (IR version 11).
#[derive(Clone, PartialEq, prost::Message)]
pub struct IntIntListEntryProto {
    /// `key`.
    #[prost(int64, optional, tag = "1")]
    pub key: Option<i64>,
    /// `value`.
    #[prost(int64, repeated, packed = "false", tag = "2")]
    pub value: Vec<i64>,
}

/// `ShardedDimProto` (IR version 11).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ShardedDimProto {
    /// `axis`.
    #[prost(int64, optional, tag = "1")]
    pub axis: Option<i64>,
    /// `simple_sharding`.
    #[prost(message, repeated, tag = "2")]
    pub simple_sharding: Vec<SimpleShardedDimProto>,
}

/// `SimpleShardedDimProto` (IR version 11); `dim_value` and `dim_param` are the `oneof dim`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SimpleShardedDimProto {
    /// `dim_value`.
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    /// `dim_param`.
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
    /// `num_shards`.
    #[prost(int64, optional, tag = "3")]
    pub num_shards: Option<i64>,
}

/// `AttributeProto.AttributeType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum AttributeType {
    /// Not set.
    Undefined = 0,
    /// One float (`f`).
    Float = 1,
    /// One integer (`i`).
    Int = 2,
    /// One string (`s`).
    String = 3,
    /// One tensor (`t`).
    Tensor = 4,
    /// One graph (`g`).
    Graph = 5,
    /// A list of floats (`floats`).
    Floats = 6,
    /// A list of integers (`ints`).
    Ints = 7,
    /// A list of strings (`strings`).
    Strings = 8,
    /// A list of tensors (`tensors`).
    Tensors = 9,
    /// A list of graphs (`graphs`).
    Graphs = 10,
    /// One sparse tensor (`sparse_tensor`).
    SparseTensor = 11,
    /// A list of sparse tensors (`sparse_tensors`).
    SparseTensors = 12,
    /// One type (`tp`).
    TypeProto = 13,
    /// A list of types (`type_protos`).
    TypeProtos = 14,
}

impl AttributeType {
    /// The attribute type numbered `value` in the schema.
    pub fn from_i32(value: i32) -> Option<AttributeType> {
        use AttributeType::*;
        [
            Undefined,
            Float,
            Int,
            String,
            Tensor,
            Graph,
            Floats,
            Ints,
            Strings,
            Tensors,
            Graphs,
            SparseTensor,
            SparseTensors,
            TypeProto,
            TypeProtos,
        ]
        .into_iter()
        .find(|t| *t as i32 == value)
    }
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
    /// `t`.
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    /// `g`: a subgraph (`If`, `Loop`, `Scan` bodies).
    #[prost(message, optional, tag = "6")]
    pub g: Option<GraphProto>,
    /// `floats`.
    #[prost(float, repeated, packed = "false", tag = "7")]
    pub floats: Vec<f32>,
    /// `ints`.
    #[prost(int64, repeated, packed = "false", tag = "8")]
    pub ints: Vec<i64>,
    /// `strings`.
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
    /// `tensors`.
    #[prost(message, repeated, tag = "10")]
    pub tensors: Vec<TensorProto>,
    /// `graphs`.
    #[prost(message, repeated, tag = "11")]
    pub graphs: Vec<GraphProto>,
    /// `doc_string`.
    #[prost(string, optional, tag = "13")]
    pub doc_string: Option<String>,
    /// `tp`.
    #[prost(message, optional, tag = "14")]
    pub tp: Option<TypeProto>,
    /// `type_protos`.
    #[prost(message, repeated, tag = "15")]
    pub type_protos: Vec<TypeProto>,
    /// `type` ([`AttributeType`]).
    #[prost(int32, tag = "20")]
    pub r#type: i32,
    /// `ref_attr_name`: in a function body, the attribute of the caller this one refers to.
    #[prost(string, optional, tag = "21")]
    pub ref_attr_name: Option<String>,
    /// `sparse_tensor`.
    #[prost(message, optional, tag = "22")]
    pub sparse_tensor: Option<SparseTensorProto>,
    /// `sparse_tensors`.
    #[prost(message, repeated, tag = "23")]
    pub sparse_tensors: Vec<SparseTensorProto>,
}

/// `TensorProto.DataLocation`: where a tensor's data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum DataLocation {
    /// In the tensor's own data fields.
    Default = 0,
    /// In a file named by `external_data`.
    External = 1,
}

/// `TensorProto`: dims, element type and the data, in `raw_data` (little-endian) or in the
/// typed fields.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// `dims`.
    #[prost(int64, repeated, packed = "false", tag = "1")]
    pub dims: Vec<i64>,
    /// `data_type` ([`DataType`]).
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// `segment`: the part of a larger tensor this one holds.
    #[prost(message, optional, tag = "3")]
    pub segment: Option<Segment>,
    /// `float_data`: FLOAT and COMPLEX64 values.
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// `int32_data`: INT32 and the smaller integer, boolean and 16- and 8-bit float types.
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    /// `string_data`: STRING values.
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub string_data: Vec<Vec<u8>>,
    /// `int64_data`: INT64 values.
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    /// `name`.
    #[prost(string, tag = "8")]
    pub name: String,
    /// `raw_data`.
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    /// `double_data`: DOUBLE and COMPLEX128 values.
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    /// `uint64_data`: UINT32 and UINT64 values.
    #[prost(uint64, repeated, tag = "11")]
    pub uint64_data: Vec<u64>,
    /// `doc_string`.
    #[prost(string, optional, tag = "12")]
    pub doc_string: Option<String>,
    /// `external_data`: `location`, `offset`, `length`, `checksum` of data stored outside.
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntryProto>,
    /// `data_location` ([`DataLocation`]).
    #[prost(int32, optional, tag = "14")]
    pub data_location: Option<i32>,
    /// `metadata_props`.
    #[prost(message, repeated, tag = "16")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// `TensorProto.Segment`: a range of a larger tensor.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Segment {
    /// `begin`.
    #[prost(int64, optional, tag = "1")]
    pub begin: Option<i64>,
    /// `end`.
    #[prost(int64, optional, tag = "2")]
    pub end: Option<i64>,
}

/// `SparseTensorProto`: a sparse tensor as its non-zero values and their indices.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SparseTensorProto {
    /// `values`: a 1-D tensor of the non-zero values.
    #[prost(message, optional, tag = "1")]
    pub values: Option<TensorProto>,
    /// `indices`: INT64, linearized `[NNZ]` or `[NNZ, rank]`.
    #[prost(message, optional, tag = "2")]
    pub indices: Option<TensorProto>,
    /// `dims`: the dense shape.
    #[prost(int64, repeated, packed = "false", tag = "3")]
    pub dims: Vec<i64>,
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
    /// `doc_string`.
    #[prost(string, optional, tag = "3")]
    pub doc_string: Option<String>,
    /// `metadata_props`.
    #[prost(message, repeated, tag = "4")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// `TypeProto`. The `oneof value` is the fields `tensor_type` to `optional_type`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// `tensor_type`.
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TensorTypeProto>,
    /// `sequence_type`.
    #[prost(message, optional, tag = "4")]
    pub sequence_type: Option<SequenceTypeProto>,
    /// `map_type`.
    #[prost(message, optional, tag = "5")]
    pub map_type: Option<MapTypeProto>,
    /// `denotation`.
    #[prost(string, optional, tag = "6")]
    pub denotation: Option<String>,
    /// `opaque_type` (from `onnx-ml.proto`, which ONNX Runtime reads).
    #[prost(message, optional, tag = "7")]
    pub opaque_type: Option<OpaqueTypeProto>,
    /// `sparse_tensor_type`.
    #[prost(message, optional, tag = "8")]
    pub sparse_tensor_type: Option<SparseTensorTypeProto>,
    /// `optional_type`.
    #[prost(message, optional, tag = "9")]
    pub optional_type: Option<OptionalTypeProto>,
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

/// `TypeProto.Sequence`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SequenceTypeProto {
    /// `elem_type`.
    #[prost(message, optional, boxed, tag = "1")]
    pub elem_type: Option<Box<TypeProto>>,
}

/// `TypeProto.Map`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MapTypeProto {
    /// `key_type` ([`DataType`]: an integer type or STRING).
    #[prost(int32, optional, tag = "1")]
    pub key_type: Option<i32>,
    /// `value_type`.
    #[prost(message, optional, boxed, tag = "2")]
    pub value_type: Option<Box<TypeProto>>,
}

/// `TypeProto.Optional`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OptionalTypeProto {
    /// `elem_type`.
    #[prost(message, optional, boxed, tag = "1")]
    pub elem_type: Option<Box<TypeProto>>,
}

/// `TypeProto.SparseTensor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SparseTensorTypeProto {
    /// `elem_type` ([`DataType`]).
    #[prost(int32, optional, tag = "1")]
    pub elem_type: Option<i32>,
    /// `shape`.
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

/// `TypeProto.Opaque`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OpaqueTypeProto {
    /// `domain`.
    #[prost(string, optional, tag = "1")]
    pub domain: Option<String>,
    /// `name`.
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
}

/// `TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// `dim`.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// `TensorShapeProto.Dimension`: `dim_value` and `dim_param` are the `oneof value`; neither
/// set means an unknown size.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dimension {
    /// `dim_value`: a fixed size.
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    /// `dim_param`: a symbolic size (`"batch"`).
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
    /// `denotation`.
    #[prost(string, optional, tag = "3")]
    pub denotation: Option<String>,
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
                                ..Default::default()
                            })
                            .collect(),
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A float tensor whose shape is left to the engine (a marked intermediate value).
    pub fn float_of_any_shape(name: &str) -> Self {
        ValueInfoProto {
            name: name.to_owned(),
            r#type: Some(TypeProto {
                tensor_type: Some(TensorTypeProto {
                    elem_type: DataType::Float as i32,
                    shape: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn entry(key: &str, value: &str) -> StringStringEntryProto {
        StringStringEntryProto::new(key, value)
    }

    fn tensor_type(elem_type: DataType, dims: &[Dimension]) -> TypeProto {
        TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: elem_type as i32,
                shape: Some(TensorShapeProto { dim: dims.to_vec() }),
            }),
            ..Default::default()
        }
    }

    fn value(name: &str, r#type: TypeProto) -> ValueInfoProto {
        ValueInfoProto {
            name: name.into(),
            r#type: Some(r#type),
            ..Default::default()
        }
    }

    /// A model that sets most of the fields precheck's export never writes.
    fn rich_model() -> ModelProto {
        let batch = Dimension {
            dim_param: Some("batch".into()),
            denotation: Some("DATA_BATCH".into()),
            ..Default::default()
        };
        let fixed = |n| Dimension {
            dim_value: Some(n),
            ..Default::default()
        };
        let external = TensorProto {
            dims: vec![1024, 1024],
            data_type: DataType::Float16 as i32,
            name: "w".into(),
            doc_string: Some("stored outside".into()),
            external_data: vec![
                entry("location", "weights.bin"),
                entry("offset", "4096"),
                entry("length", "2097152"),
            ],
            data_location: Some(DataLocation::External as i32),
            segment: Some(Segment {
                begin: Some(0),
                end: Some(1024),
            }),
            metadata_props: vec![entry("origin", "test")],
            ..Default::default()
        };
        let typed = TensorProto {
            dims: vec![2],
            data_type: DataType::Int64 as i32,
            name: "typed".into(),
            float_data: vec![1.5, -0.0],
            int32_data: vec![-7, 0, 9],
            string_data: vec![b"a".to_vec(), vec![]],
            int64_data: vec![i64::MIN, 0],
            double_data: vec![f64::MAX],
            uint64_data: vec![u64::MAX],
            ..Default::default()
        };
        let then_branch = GraphProto {
            node: vec![NodeProto {
                input: vec!["x".into()],
                output: vec!["then_y".into()],
                op_type: "Relu".into(),
                ..Default::default()
            }],
            name: "then".into(),
            output: vec![value("then_y", tensor_type(DataType::Float, &[]))],
            ..Default::default()
        };
        let cond = NodeProto {
            input: vec!["flag".into()],
            output: vec!["y".into()],
            name: "branch".into(),
            op_type: "If".into(),
            attribute: vec![
                AttributeProto {
                    name: "then_branch".into(),
                    g: Some(then_branch.clone()),
                    r#type: AttributeType::Graph as i32,
                    doc_string: Some("the subgraph".into()),
                    ..Default::default()
                },
                AttributeProto {
                    name: "else_branch".into(),
                    g: Some(GraphProto {
                        name: "else".into(),
                        ..then_branch.clone()
                    }),
                    r#type: AttributeType::Graph as i32,
                    ..Default::default()
                },
                AttributeProto {
                    name: "scales".into(),
                    floats: vec![0.5, 2.0, f32::MIN_POSITIVE],
                    r#type: AttributeType::Floats as i32,
                    ..Default::default()
                },
                AttributeProto {
                    name: "tags".into(),
                    strings: vec![b"x".to_vec(), b"".to_vec()],
                    r#type: AttributeType::Strings as i32,
                    ..Default::default()
                },
                AttributeProto {
                    name: "value".into(),
                    t: Some(typed.clone()),
                    r#type: AttributeType::Tensor as i32,
                    ..Default::default()
                },
                AttributeProto {
                    name: "kind".into(),
                    tp: Some(tensor_type(DataType::Bfloat16, &[fixed(4)])),
                    r#type: AttributeType::TypeProto as i32,
                    ..Default::default()
                },
                AttributeProto {
                    name: "alpha".into(),
                    ref_attr_name: Some("alpha".into()),
                    r#type: AttributeType::Float as i32,
                    ..Default::default()
                },
                AttributeProto {
                    name: "zero".into(),
                    i: Some(0),
                    r#type: AttributeType::Int as i32,
                    ..Default::default()
                },
            ],
            doc_string: Some("a conditional".into()),
            domain: Some(String::new()),
            overload: Some("v2".into()),
            metadata_props: vec![entry("note", "node")],
            device_configurations: vec![NodeDeviceConfigurationProto {
                configuration_id: Some("two_gpus".into()),
                sharding_spec: vec![ShardingSpecProto {
                    tensor_name: Some("y".into()),
                    device: vec![0, 1],
                    index_to_device_group_map: vec![IntIntListEntryProto {
                        key: Some(0),
                        value: vec![0, 1],
                    }],
                    sharded_dim: vec![ShardedDimProto {
                        axis: Some(0),
                        simple_sharding: vec![SimpleShardedDimProto {
                            dim_param: Some("batch".into()),
                            num_shards: Some(2),
                            ..Default::default()
                        }],
                    }],
                }],
                pipeline_stage: Some(0),
            }],
        };
        let sequence = TypeProto {
            sequence_type: Some(SequenceTypeProto {
                elem_type: Some(Box::new(tensor_type(
                    DataType::Float,
                    std::slice::from_ref(&batch),
                ))),
            }),
            denotation: Some("TENSOR".into()),
            ..Default::default()
        };
        let map = TypeProto {
            map_type: Some(MapTypeProto {
                key_type: Some(DataType::String as i32),
                value_type: Some(Box::new(TypeProto {
                    optional_type: Some(OptionalTypeProto {
                        elem_type: Some(Box::new(sequence.clone())),
                    }),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        };
        let sparse = SparseTensorProto {
            values: Some(TensorProto {
                dims: vec![2],
                data_type: DataType::Float as i32,
                float_data: vec![1.0, 2.0],
                ..Default::default()
            }),
            indices: Some(TensorProto {
                dims: vec![2],
                data_type: DataType::Int64 as i32,
                int64_data: vec![3, 17],
                ..Default::default()
            }),
            dims: vec![4, 8],
        };
        let graph = GraphProto {
            node: vec![cond],
            name: "main".into(),
            initializer: vec![external, typed],
            doc_string: Some("the main graph".into()),
            input: vec![
                ValueInfoProto {
                    doc_string: Some("dynamic batch".into()),
                    metadata_props: vec![entry("unit", "none")],
                    ..value("x", tensor_type(DataType::Float, &[batch, fixed(0)]))
                },
                value("flag", tensor_type(DataType::Bool, &[])),
            ],
            output: vec![value("y", tensor_type(DataType::Float, &[]))],
            value_info: vec![
                value("seq", sequence),
                value("map", map),
                value(
                    "opaque",
                    TypeProto {
                        opaque_type: Some(OpaqueTypeProto {
                            domain: Some("com.example".into()),
                            name: Some("Handle".into()),
                        }),
                        ..Default::default()
                    },
                ),
                value(
                    "sparse",
                    TypeProto {
                        sparse_tensor_type: Some(SparseTensorTypeProto {
                            elem_type: Some(DataType::Float as i32),
                            shape: Some(TensorShapeProto {
                                dim: vec![fixed(4)],
                            }),
                        }),
                        ..Default::default()
                    },
                ),
            ],
            quantization_annotation: vec![TensorAnnotation {
                tensor_name: Some("x".into()),
                quant_parameter_tensor_names: vec![entry("SCALE_TENSOR", "x_scale")],
            }],
            sparse_initializer: vec![sparse.clone()],
            metadata_props: vec![entry("note", "graph")],
        };
        ModelProto {
            ir_version: IR_VERSION,
            producer_name: "test".into(),
            producer_version: "0".into(),
            domain: Some("ai.precheck".into()),
            model_version: Some(7),
            doc_string: "rich".into(),
            graph: Some(graph),
            opset_import: vec![
                OperatorSetIdProto {
                    domain: String::new(),
                    version: OPSET,
                },
                OperatorSetIdProto {
                    domain: "com.example".into(),
                    version: 1,
                },
            ],
            metadata_props: vec![entry("author", "precheck"), entry("empty", "")],
            training_info: vec![TrainingInfoProto {
                initialization: Some(GraphProto {
                    name: "init".into(),
                    ..Default::default()
                }),
                algorithm: Some(then_branch),
                initialization_binding: vec![entry("w", "w_init")],
                update_binding: vec![entry("w", "w_new")],
            }],
            functions: vec![FunctionProto {
                name: Some("Twice".into()),
                input: vec!["a".into()],
                output: vec!["b".into()],
                attribute: vec!["unused".into()],
                node: vec![NodeProto {
                    input: vec!["a".into(), "a".into()],
                    output: vec!["b".into()],
                    op_type: "Add".into(),
                    ..Default::default()
                }],
                doc_string: Some("a + a".into()),
                opset_import: vec![OperatorSetIdProto {
                    domain: String::new(),
                    version: OPSET,
                }],
                domain: Some("com.example".into()),
                attribute_proto: vec![AttributeProto {
                    name: "sparse".into(),
                    sparse_tensor: Some(sparse.clone()),
                    sparse_tensors: vec![sparse],
                    r#type: AttributeType::SparseTensor as i32,
                    ..Default::default()
                }],
                value_info: vec![value("a", tensor_type(DataType::Float, &[]))],
                overload: Some("".into()),
                metadata_props: vec![entry("note", "function")],
            }],
            configuration: vec![DeviceConfigurationProto {
                name: Some("two_gpus".into()),
                num_devices: Some(2),
                device: vec!["cuda:0".into(), "cuda:1".into()],
            }],
        }
    }

    #[test]
    fn a_model_with_the_fields_export_never_writes_survives_a_round_trip() {
        let model = rich_model();
        let bytes = model.encode_to_vec();
        let decoded = ModelProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded, model);
        assert_eq!(decoded.encode_to_vec(), bytes);
        // Presence survives: an explicit zero or empty string is not the same as absent.
        let graph = decoded.graph.as_ref().unwrap();
        let attribute = &graph.node[0].attribute;
        assert_eq!(attribute.last().unwrap().i, Some(0));
        assert_eq!(graph.node[0].domain.as_deref(), Some(""));
        assert_eq!(
            graph.input[0]
                .r#type
                .as_ref()
                .unwrap()
                .tensor_type
                .as_ref()
                .unwrap()
                .shape
                .as_ref()
                .unwrap()
                .dim[1]
                .dim_value,
            Some(0)
        );
        // The getters prost derives for optional fields.
        assert_eq!(decoded.model_version(), 7);
        assert_eq!(graph.initializer[1].data_location(), 0);
    }

    #[test]
    fn repeated_numbers_are_packed_only_where_the_schema_says() {
        // proto2: `AttributeProto.ints` and `TensorProto.dims` are unpacked (one key per value),
        // `TensorProto.float_data` is `[packed = true]`.
        let attribute = AttributeProto {
            ints: vec![3, 3],
            ..Default::default()
        };
        assert_eq!(attribute.encode_to_vec(), [0x40, 3, 0x40, 3]);
        let tensor = TensorProto {
            dims: vec![2],
            float_data: vec![1.0, 2.0],
            ..Default::default()
        };
        assert_eq!(
            tensor.encode_to_vec(),
            [0x08, 2, 0x22, 8, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]
        );
        // Either form decodes.
        let packed_ints = [0x42, 2, 3, 3];
        assert_eq!(AttributeProto::decode(&packed_ints[..]).unwrap(), attribute);
    }

    /// `tests/fixtures/onnx/roundtrip.onnx`, written by the `onnx` Python package
    /// (`scripts/gen_onnx_proto_fixture.py`).
    const FIXTURE: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/onnx/roundtrip.onnx"
    ));

    #[test]
    fn a_model_written_by_the_onnx_package_re_encodes_byte_for_byte() {
        let model = ModelProto::decode(FIXTURE).unwrap();
        assert_eq!(model.encode_to_vec(), FIXTURE);
        // The fields are read, not just carried.
        assert_eq!(model.ir_version, 10);
        assert_eq!(model.domain(), "ai.precheck.test");
        assert_eq!(model.model_version, Some(3));
        assert_eq!(model.metadata_props.len(), 2);
        assert_eq!(model.opset_import.len(), 2);
        let graph = model.graph.as_ref().unwrap();
        assert_eq!(graph.value_info[0].name, "features");
        let x = graph.input[0]
            .r#type
            .as_ref()
            .unwrap()
            .tensor_type
            .as_ref()
            .unwrap();
        let dims = &x.shape.as_ref().unwrap().dim;
        assert_eq!(dims[0].dim_param.as_deref(), Some("N"));
        assert_eq!(dims[1].dim_value, Some(3));
        let weight = &graph.initializer[0];
        assert_eq!(weight.dims, [4, 3, 3, 3]);
        assert_eq!(weight.float_data.len(), 108);
        assert!(weight.raw_data.is_empty());
        let conv = &graph.node[0];
        assert_eq!(conv.op_type, "Conv");
        assert_eq!(conv.doc_string(), "3x3 convolution");
        let scale = &graph.node[1];
        assert_eq!(scale.domain(), "com.example");
        let attribute = |name: &str| scale.attribute.iter().find(|a| a.name == name).unwrap();
        assert_eq!(attribute("scales").floats, [0.5, 2.0, -1.0, 4.0]);
        assert_eq!(attribute("scales").r#type, AttributeType::Floats as i32);
        let offset = attribute("offset").t.as_ref().unwrap();
        assert_eq!(offset.int64_data, [-3, 7]);
        assert_eq!(attribute("tags").strings, [b"a".to_vec(), b"bc".to_vec()]);
    }

    #[test]
    fn data_types_know_their_number_name_and_size() {
        for (i, t) in DataType::ALL.iter().enumerate() {
            assert_eq!(*t as i32, i as i32 + 1);
            assert_eq!(DataType::from_i32(*t as i32), Some(*t));
        }
        assert_eq!(DataType::from_i32(0), None);
        assert_eq!(DataType::from_i32(27), None);
        assert_eq!(DataType::from_i32(-1), None);
        assert_eq!(DataType::Float.name(), "FLOAT");
        assert_eq!(DataType::Int64.name(), "INT64");
        assert_eq!(DataType::Float8E4m3fnuz.name(), "FLOAT8E4M3FNUZ");
        assert_eq!(DataType::Float4E2m1 as i32, 23);
        assert_eq!(DataType::Float.size_bytes(), Some(4));
        assert_eq!(DataType::Complex128.size_bytes(), Some(16));
        assert_eq!(DataType::Bfloat16.size_bytes(), Some(2));
        assert_eq!(DataType::String.size_bytes(), None);
        assert_eq!(DataType::Int4.size_bytes(), None);
        assert_eq!(DataType::Float4E2m1.size_bytes(), None);
        let mut names: Vec<_> = DataType::ALL.iter().map(|t| t.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DataType::ALL.len());
        assert_eq!(AttributeType::from_i32(6), Some(AttributeType::Floats));
        assert_eq!(AttributeType::from_i32(15), None);
    }
}
