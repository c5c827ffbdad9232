//! precheck: an accuracy and performance regression harness for mixed-precision inference.
//!
//! The modules follow the pipeline, and data flows one way:
//! [`suite`] (YAML → validated suite) → [`matrix`] (variants) → [`plan`] (what this run executes)
//! → [`runner`] with a [`backend`] running [`model`] blocks in a [`precision`] policy (numbers
//! from [`formats`], scaled by [`quant`] recipes) → [`measure`] (accuracy, latency) →
//! [`gate`] → [`results`] (`results.jsonl`, `run.json`) → [`report`] and [`exit_code`].
//! [`trtexec`] reads the files TensorRT's `trtexec` writes and gives its build flags for a policy.
#![warn(missing_docs)]

pub mod backend;
pub mod cli;
pub mod exit_code;
pub mod export;
pub mod farm;
pub mod formats;
pub mod gate;
pub mod host;
pub mod linalg;
pub mod matrix;
pub mod measure;
pub mod mismatch;
pub mod model;
mod nan_as_null;
pub mod plan;
pub mod precision;
pub mod quant;
pub mod report;
pub mod results;
pub mod runner;
pub mod suite;
pub mod trtexec;
