//! precheck: an accuracy and performance regression harness for mixed-precision inference.
//!
//! The modules are listed below in the order they stand: each one imports only modules listed
//! above it (`tests/layout.rs` checks it), so data and imports flow one way.
//!
//! - Ground types every stage shares: [`hints`] (did-you-mean), [`ident`] (names), [`host`],
//!   [`shard`] (a run's slice of the matrix), [`formats`] (the number formats), [`onnx_proto`]
//!   (the ONNX protobuf), [`array`] (an ONNX model's named N-D inputs and outputs), [`tensor`] and
//!   [`linalg`].
//! - [`measure`]: accuracy, latency, cache state, clocks and kernel launches, as measured.
//! - [`quant`] (scaling recipes) → [`precision`] (policies, presets, what each kernel computes
//!   in) → [`model`] (blocks, weights, inputs and their math).
//! - Engines: [`trtexec`] (TensorRT's files and flags) → [`export`] (blocks as ONNX) →
//!   [`backend`] (CPU emulation, CUDA, command, trtexec).
//! - Verdicts: [`mismatch`] (precision-fallback evidence) → [`gate`] (thresholds).
//! - [`suite`]: the YAML file, composing each stage's config piece, validated and expanded into
//!   variants.
//! - [`results`]: the record of each variant, `results.jsonl`, `run.json` and the run folder.
//! - [`plan`] (what this run executes) → [`runner`] (the loop, reference, measurement, evidence,
//!   records, worker processes) → [`exit_code`] → [`report`] → [`cli`].
#![warn(missing_docs)]

mod nan_as_null;

pub mod array;
pub mod backend;
pub mod cli;
pub mod exit_code;
pub mod export;
pub mod formats;
pub mod gate;
pub mod hints;
pub mod host;
pub mod ident;
pub mod linalg;
pub mod measure;
pub mod mismatch;
pub mod model;
pub mod onnx_proto;
pub mod plan;
pub mod precision;
pub mod quant;
pub mod report;
pub mod results;
pub mod runner;
pub mod shard;
pub mod suite;
pub mod tensor;
pub mod trtexec;
