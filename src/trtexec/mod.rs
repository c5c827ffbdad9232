//! TensorRT through `trtexec`: the files TensorRT 10's `trtexec` writes, read into precheck's
//! types, and the flags that build an engine in a precision policy ([`flags`]).
//!
//! `trtexec` (TensorRT's benchmarking tool, `samples/trtexec` in github.com/NVIDIA/TensorRT) writes
//! four JSON files when asked. None has a published schema: each parser follows the code that
//! writes the file, `samples/common/sampleReporting.cpp` (identical for these files from the 10.0
//! to the 10.16 release, and in 11.0), and the readers NVIDIA ships with it.
//!
//! | Flag | File | Parser | Where the format is documented |
//! |---|---|---|---|
//! | `--exportLayerInfo=F` | the engine's layers; tensors and tactics only when the engine was built with `--profilingVerbosity=detailed`, layer names otherwise | [`layers`] | `IEngineInspector::getEngineInformation(LayerInformationFormat::kJSON)`, "Engine Inspector" in the developer guide (<https://docs.nvidia.com/deeplearning/tensorrt/10.16.1/inference-library/engine-tools.html>); its reader of reference is TREx, `tools/experimental/trt-engine-explorer/trex/{parser,layer,activations}.py` |
//! | `--exportTimes=F` | one object per timed iteration | [`times`] | the comment on `exportJSONTrace` in `sampleReporting.cpp`; `samples/trtexec/README.md` ("Example 4") and `samples/trtexec/tracer.py`, which reads it |
//! | `--exportProfile=F` | `{"count": N}`, then one object per layer | [`profile`] | `Profiler::exportJSONProfile` in `sampleReporting.cpp`; `samples/trtexec/profiler.py`, which reads it |
//! | `--exportOutput=F` | one object per output tensor | [`output`] | `exportJSONOutput` in `sampleReporting.cpp`, with `BindingsStd::dumpBindingDimensions` and `dumpBuffer` (`samples/common/sampleInference.cpp`, `sampleUtils.cpp`) |
//!
//! The flags themselves are listed by `trtexec --help` (`samples/common/sampleOptions.cpp`) and in
//! "Command-Line Programs" (<https://docs.nvidia.com/deeplearning/tensorrt/latest/reference/command-line-programs.html>).
//!
//! `trtexec` prints numbers with C++'s `operator<<`, so a non-finite value is written as a bare
//! `inf`, `-inf`, `nan` or `-nan`, which is not JSON. An FP16 output that overflowed is exactly what
//! precheck must read, so the output and profile parsers accept those tokens (outside strings);
//! the timing trace, made of clock readings, never holds them and rejects them.
//!
//! A file that cannot be read names its path; one that is not the expected JSON also gives the line
//! and column (serde_json's) and, for a missing or mistyped field, where in the document it is.

pub mod flags;
pub mod layers;
pub mod output;
pub mod profile;
pub mod times;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;

/// Why a trtexec file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrtexecError {
    /// The file cannot be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not JSON, or not the JSON the flag writes.
    #[error("{}:{line}:{column}: not a trtexec {flag} file: {message}{at}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The flag that writes such files, e.g. `--exportTimes`.
        flag: &'static str,
        /// Line, from 1 (serde_json's).
        line: usize,
        /// Column, from 1 (serde_json's).
        column: usize,
        /// What was wrong.
        message: String,
        /// Where in the document (` at Layers[3].Inputs[0]`), empty at the top level.
        at: String,
    },
    /// Valid JSON whose content trtexec cannot have written (an element count that does not match
    /// the shape, a negative time).
    #[error("{}: not a trtexec {flag} file: {message}", path.display())]
    Content {
        /// The file.
        path: PathBuf,
        /// The flag that writes such files.
        flag: &'static str,
        /// What was wrong.
        message: String,
    },
}

/// Reads `path` whole.
fn read_text(path: &Path) -> Result<String, TrtexecError> {
    std::fs::read_to_string(path).map_err(|source| TrtexecError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Parses `text`, the content of `path` as `flag` writes it; bare non-finite numbers are errors.
fn parse_json<T: DeserializeOwned>(
    path: &Path,
    flag: &'static str,
    text: &str,
) -> Result<T, TrtexecError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let json_error = |error: serde_json::Error, at: String| {
        let suffix = format!(" at line {} column {}", error.line(), error.column());
        let message = error.to_string();
        TrtexecError::Json {
            path: path.to_owned(),
            flag,
            line: error.line(),
            column: error.column(),
            message: message.strip_suffix(&suffix).unwrap_or(&message).to_owned(),
            at,
        }
    };
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let at = match error.path().to_string() {
            top if top == "." => String::new(),
            inner => format!(" (at {inner})"),
        };
        json_error(error.into_inner(), at)
    })?;
    deserializer
        .end()
        .map_err(|error| json_error(error, String::new()))?;
    Ok(value)
}

/// [`parse_json`] for files where trtexec may print non-finite numbers bare: each such token is
/// first replaced by a string of the same width, so that serde_json's line and column still point
/// into the file as written, and [`Number`] reads the strings back.
fn parse_json_non_finite<T: DeserializeOwned>(
    path: &Path,
    flag: &'static str,
    text: &str,
) -> Result<T, TrtexecError> {
    parse_json(path, flag, &quote_non_finite(text))
}

/// Bare tokens `operator<<` prints for non-finite floats (glibc's spelling), and the same-width
/// JSON strings they become.
const NON_FINITE: &[(&str, &str, f64)] = &[
    ("-nan", "\"-n\"", f64::NAN),
    ("nan", "\"n\"", f64::NAN),
    ("-inf", "\"-i\"", f64::NEG_INFINITY),
    ("inf", "\"i\"", f64::INFINITY),
];

/// `text` with every bare [`NON_FINITE`] token outside JSON strings quoted.
fn quote_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => escaped = false,
            }
        } else if c == '"' {
            in_string = true;
        } else if let Some((token, quoted, _)) = NON_FINITE.iter().find(|(token, _, _)| {
            rest.starts_with(token)
                && !rest[token.len()..].starts_with(|n: char| n.is_ascii_alphanumeric())
        }) {
            out.push_str(quoted);
            rest = &rest[token.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// A JSON number, or a non-finite value quoted by [`quote_non_finite`].
struct Number(f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;

        impl Visitor<'_> for NumberVisitor {
            type Value = Number;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, inf or nan")
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                Ok(Number(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Number, E> {
                NON_FINITE
                    .iter()
                    .find(|(_, quoted, _)| quoted.trim_matches('"') == v)
                    .map(|&(_, _, value)| Number(value))
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }

        deserializer.deserialize_any(NumberVisitor)
    }
}

/// Deserializes an `f64` that may be a quoted non-finite token.
fn number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Number::deserialize(deserializer).map(|n| n.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_tokens_are_quoted_outside_strings_only_and_keep_their_width() {
        let text = r#"{ "name" : "inf nan", "values" : [ 1, inf, -inf, nan, -nan, 2e-3 ] }"#;
        let quoted = quote_non_finite(text);
        assert_eq!(
            quoted,
            r#"{ "name" : "inf nan", "values" : [ 1, "i", "-i", "n", "-n", 2e-3 ] }"#
        );
        assert_eq!(quoted.len(), text.len());
        let escaped = r#"{ "name" : "a \" inf", "x" : infinity }"#;
        assert_eq!(quote_non_finite(escaped), escaped, "{escaped}");
    }

    #[test]
    fn quoted_tokens_read_back_as_non_finite_numbers() {
        #[derive(Deserialize)]
        struct Values(#[serde(deserialize_with = "number")] f64);
        let read = |text: &str| {
            serde_json::from_str::<Values>(&quote_non_finite(text))
                .unwrap()
                .0
        };
        assert_eq!(read("inf"), f64::INFINITY);
        assert_eq!(read("-inf"), f64::NEG_INFINITY);
        assert!(read("nan").is_nan() && read("-nan").is_nan());
        assert_eq!(read("-1.5e2"), -150.0);
        assert!(serde_json::from_str::<Values>(r#""x""#).is_err());
    }
}
