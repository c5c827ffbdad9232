//! `--exportOutput=F`: the engine's output tensors after the last inference.
//!
//! As `exportJSONOutput` in `samples/common/sampleReporting.cpp` writes it:
//!
//! ```text
//! [
//!   { "name" : "logits"
//!   , "dimensions" : "2x3"
//!   , "values" : [ 0.5, -1.25, inf, 3, 0, -nan ]
//!   }
//! ]
//! ```
//!
//! `dimensions` is a string, the extents joined by `x` (`operator<<` of `nvinfer1::Dims` in
//! `sampleOptions.h`; empty for a scalar). `values` lists the elements in row-major order, each
//! printed by `operator<<` after a cast to `float` for FP16, BF16 and FP8 (so non-finite values are
//! bare `inf`/`nan` tokens), as integers for INT8/INT32/INT64/UINT8, `0`/`1` for booleans. precheck
//! holds them all as `f32`: integers beyond 2^24 lose precision.

use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use super::{Number, TrtexecError};

const FLAG: &str = "--exportOutput";

/// trtexec prints this line into the file, breaking the JSON, for an output whose shape depends
/// on the data (`Binding::dump` in `samples/common/sampleInference.cpp`).
const OUTPUT_ALLOCATOR_LINE: &str = "reported by the output allocator";

/// One output tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputTensor {
    /// The engine's name for the output.
    pub name: String,
    /// Extents, outermost first; empty for a scalar.
    #[serde(rename = "dimensions", deserialize_with = "dimensions")]
    pub shape: Vec<usize>,
    /// The elements, row-major.
    #[serde(deserialize_with = "values")]
    pub values: Vec<f32>,
}

impl OutputTensor {
    /// The number of elements the shape holds.
    pub fn volume(&self) -> usize {
        self.shape.iter().product()
    }
}

fn dimensions<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<usize>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split('x')
        .map(|extent| extent.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            serde::de::Error::custom(format!(
                "dimensions `{text}` are not extents joined by `x` (e.g. `2x3`)"
            ))
        })
}

fn values<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f32>, D::Error> {
    let numbers = Vec::<Number>::deserialize(deserializer)?;
    Ok(numbers.into_iter().map(|n| n.0 as f32).collect())
}

/// Reads an output file.
pub fn read(path: &Path) -> Result<Vec<OutputTensor>, TrtexecError> {
    parse(path, &super::read_text(path)?)
}

/// Parses the outputs, `text` read from `path` (named in errors).
pub fn parse(path: &Path, text: &str) -> Result<Vec<OutputTensor>, TrtexecError> {
    let tensors: Vec<OutputTensor> =
        super::parse_json_non_finite(path, FLAG, text).map_err(|mut error| {
            if let TrtexecError::Json { message, .. } = &mut error {
                if text.contains(OUTPUT_ALLOCATOR_LINE) {
                    message.push_str(
                        " (trtexec wrote its \"Final shape is ... reported by the output \
                         allocator\" line into the file: an output with a data-dependent shape \
                         cannot be exported as JSON)",
                    );
                }
            }
            error
        })?;
    for tensor in &tensors {
        if tensor.values.len() != tensor.volume() {
            return Err(TrtexecError::Content {
                path: path.to_owned(),
                flag: FLAG,
                message: format!(
                    "output `{}` has dimensions {:?} ({} elements) but {} values",
                    tensor.name,
                    tensor.shape,
                    tensor.volume(),
                    tensor.values.len()
                ),
            });
        }
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(dimensions: &str, values: &str) -> String {
        format!(
            "[\n  {{ \"name\" : \"y\"\n  , \"dimensions\" : \"{dimensions}\"\n  , \"values\" : [ {values} ]\n  }}\n]\n"
        )
    }

    #[test]
    fn a_scalar_has_no_dimensions_and_one_value() {
        let tensors = parse(Path::new("o.json"), &one("", "7")).unwrap();
        assert_eq!(
            (tensors[0].shape.len(), tensors[0].values.as_slice()),
            (0, &[7.0][..])
        );
    }

    #[test]
    fn values_that_do_not_fill_the_shape_are_an_error() {
        let error = parse(Path::new("o.json"), &one("2x2", "1, 2, 3"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("o.json")
                && error.contains("`y` has dimensions [2, 2] (4 elements) but 3 values"),
            "{error}"
        );
    }

    #[test]
    fn malformed_dimensions_name_the_tensor_entry() {
        let error = parse(Path::new("o.json"), &one("2x-1", "1, 2"))
            .unwrap_err()
            .to_string();
        // serde_json places errors raised while converting a value at the next token: the path
        // names the field.
        assert!(
            error.starts_with("o.json:")
                && error.contains("`2x-1`")
                && error.contains("(at [0].dimensions)"),
            "{error}"
        );
    }

    #[test]
    fn the_output_allocator_line_is_explained() {
        let text = one(
            "2",
            "Final shape is 2 reported by the output allocator.\n1, 2",
        );
        let error = parse(Path::new("o.json"), &text).unwrap_err().to_string();
        assert!(error.contains("data-dependent shape"), "{error}");
    }
}
