//! The state of the GPU's L2 cache a timing starts from, as a suite, `--cache` and each record say.

use serde::{Deserialize, Serialize};

/// What the GPU's L2 cache holds when a timed iteration starts.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Deserialize,
    Serialize,
    clap::ValueEnum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// Whatever the previous iteration left (weights of a small block stay resident), as in a
    /// model that runs the block over and over.
    #[default]
    Warm,
    /// Flushed before each iteration (outside the timed span): every byte comes from memory, as
    /// for a block whose weights another layer evicted.
    Cold,
}
