//! Named N-dimensional arrays of one element type: the inputs and outputs of a user's ONNX model
//! (images `[N, C, H, W]`, token ids, masks), where precheck's own blocks pass 2-D `f32`
//! [`crate::tensor::Tensor`]s.

use half::{bf16, f16};

use crate::onnx_proto::DataType;

/// An element type a model's input or output may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementType {
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// IEEE half.
    F16,
    /// bfloat16.
    Bf16,
    /// 64-bit signed integer (token ids).
    I64,
    /// 32-bit signed integer.
    I32,
    /// 8-bit signed integer.
    I8,
    /// 8-bit unsigned integer (images).
    U8,
    /// Boolean (masks).
    Bool,
}

/// Each element type with its ONNX type and its name.
const ELEMENT_TYPES: [(ElementType, DataType, &str); 9] = [
    (ElementType::F32, DataType::Float, "float32"),
    (ElementType::F64, DataType::Double, "float64"),
    (ElementType::F16, DataType::Float16, "float16"),
    (ElementType::Bf16, DataType::Bfloat16, "bfloat16"),
    (ElementType::I64, DataType::Int64, "int64"),
    (ElementType::I32, DataType::Int32, "int32"),
    (ElementType::I8, DataType::Int8, "int8"),
    (ElementType::U8, DataType::Uint8, "uint8"),
    (ElementType::Bool, DataType::Bool, "bool"),
];

impl ElementType {
    /// The element type of ONNX's `elem_type` code, if precheck can make and compare it.
    pub fn from_onnx(code: i32) -> Option<Self> {
        ELEMENT_TYPES
            .iter()
            .find(|(_, onnx, _)| *onnx as i32 == code)
            .map(|(element, _, _)| *element)
    }

    /// ONNX's name for it.
    pub fn onnx(self) -> DataType {
        self.row().1
    }

    /// Its name (`float32`, `int64`), as numpy says it.
    pub fn name(self) -> &'static str {
        self.row().2
    }

    /// Whether it is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            ElementType::F32 | ElementType::F64 | ElementType::F16 | ElementType::Bf16
        )
    }

    fn row(self) -> (ElementType, DataType, &'static str) {
        *ELEMENT_TYPES
            .iter()
            .find(|(element, _, _)| *element == self)
            .expect("every element type has a row")
    }
}

impl std::fmt::Display for ElementType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The values of an array, in its element type.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayData {
    /// [`ElementType::F32`].
    F32(Vec<f32>),
    /// [`ElementType::F64`].
    F64(Vec<f64>),
    /// [`ElementType::F16`].
    F16(Vec<f16>),
    /// [`ElementType::Bf16`].
    Bf16(Vec<bf16>),
    /// [`ElementType::I64`].
    I64(Vec<i64>),
    /// [`ElementType::I32`].
    I32(Vec<i32>),
    /// [`ElementType::I8`].
    I8(Vec<i8>),
    /// [`ElementType::U8`].
    U8(Vec<u8>),
    /// [`ElementType::Bool`].
    Bool(Vec<bool>),
}

impl ArrayData {
    /// `values` held as `element`: floats rounded to it, integers and booleans taken as they are
    /// (callers draw integral values for integer types).
    pub fn from_f64(element: ElementType, values: impl Iterator<Item = f64>) -> Self {
        match element {
            ElementType::F32 => ArrayData::F32(values.map(|v| v as f32).collect()),
            ElementType::F64 => ArrayData::F64(values.collect()),
            ElementType::F16 => ArrayData::F16(values.map(f16::from_f64).collect()),
            ElementType::Bf16 => ArrayData::Bf16(values.map(bf16::from_f64).collect()),
            ElementType::I64 => ArrayData::I64(values.map(|v| v as i64).collect()),
            ElementType::I32 => ArrayData::I32(values.map(|v| v as i32).collect()),
            ElementType::I8 => ArrayData::I8(values.map(|v| v as i8).collect()),
            ElementType::U8 => ArrayData::U8(values.map(|v| v as u8).collect()),
            ElementType::Bool => ArrayData::Bool(values.map(|v| v != 0.0).collect()),
        }
    }

    /// The element type.
    pub fn element(&self) -> ElementType {
        match self {
            ArrayData::F32(_) => ElementType::F32,
            ArrayData::F64(_) => ElementType::F64,
            ArrayData::F16(_) => ElementType::F16,
            ArrayData::Bf16(_) => ElementType::Bf16,
            ArrayData::I64(_) => ElementType::I64,
            ArrayData::I32(_) => ElementType::I32,
            ArrayData::I8(_) => ElementType::I8,
            ArrayData::U8(_) => ElementType::U8,
            ArrayData::Bool(_) => ElementType::Bool,
        }
    }

    /// How many values.
    pub fn len(&self) -> usize {
        match self {
            ArrayData::F32(v) => v.len(),
            ArrayData::F64(v) => v.len(),
            ArrayData::F16(v) => v.len(),
            ArrayData::Bf16(v) => v.len(),
            ArrayData::I64(v) => v.len(),
            ArrayData::I32(v) => v.len(),
            ArrayData::I8(v) => v.len(),
            ArrayData::U8(v) => v.len(),
            ArrayData::Bool(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every value as an `f64` (exact for every type here).
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            ArrayData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            ArrayData::F64(v) => v.clone(),
            ArrayData::F16(v) => v.iter().map(|x| x.to_f64()).collect(),
            ArrayData::Bf16(v) => v.iter().map(|x| x.to_f64()).collect(),
            ArrayData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            ArrayData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            ArrayData::I8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            ArrayData::U8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            ArrayData::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
        }
    }

    /// Every value as an `f32` (what outputs are compared as).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            ArrayData::F32(v) => v.clone(),
            other => other.to_f64().into_iter().map(|x| x as f32).collect(),
        }
    }

    /// The values as little-endian bytes, as `.safetensors` files and raw input files hold them.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            ArrayData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ArrayData::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ArrayData::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ArrayData::Bf16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ArrayData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ArrayData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ArrayData::I8(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ArrayData::U8(v) => v.clone(),
            ArrayData::Bool(v) => v.iter().map(|&x| u8::from(x)).collect(),
        }
    }
}

/// A named N-D array, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The model's name for it.
    pub name: String,
    /// Its dimensions.
    pub shape: Vec<usize>,
    /// `shape`'s product of values.
    pub data: ArrayData,
}

impl Array {
    /// An array; fails when `data` does not hold `shape`'s product of values.
    pub fn new(name: &str, shape: Vec<usize>, data: ArrayData) -> Result<Self, String> {
        let count: usize = shape.iter().product();
        if count != data.len() {
            return Err(format!(
                "`{name}`: {} values for shape {shape:?} ({count})",
                data.len()
            ));
        }
        Ok(Array {
            name: name.to_owned(),
            shape,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_element_type_round_trips_through_its_onnx_code() {
        for (element, onnx, _) in ELEMENT_TYPES {
            assert_eq!(ElementType::from_onnx(onnx as i32), Some(element));
            assert_eq!(element.onnx(), onnx);
        }
        assert_eq!(ElementType::from_onnx(DataType::String as i32), None);
    }

    #[test]
    fn values_are_held_in_their_type() {
        let data = ArrayData::from_f64(ElementType::Bf16, [1.0 + 1.0 / 512.0].into_iter());
        assert_eq!(data.to_f64(), vec![1.0]);
        let ids = ArrayData::from_f64(ElementType::I64, [3.0, 7.0].into_iter());
        assert_eq!(ids.to_le_bytes().len(), 16);
        assert!(Array::new("x", vec![2, 2], ids).is_err());
    }
}
