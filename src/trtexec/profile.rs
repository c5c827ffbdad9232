//! `--exportProfile=F`: time per engine layer, from TensorRT's `IProfiler`.
//!
//! As `Profiler::exportJSONProfile` in `samples/common/sampleReporting.cpp` writes it:
//!
//! ```text
//! [
//!   { "count" : 10 }
//! , { "name" : "/mlp/up_proj/MatMul", "timeMs" : 1.2, "averageMs" : 0.12, "medianMs" : 0.12, "percentage" : 41.3 }
//! , ...
//! ]
//! ```
//!
//! `count` is the number of profiled inferences; per layer, `timeMs` is the total over them,
//! `averageMs` and `medianMs` per inference, `percentage` the share of the sum over layers (`nan`
//! when that sum is zero). Layer names are the engine's (fused layers read `a + b`; with
//! `--profilingVerbosity=none`, decimal indices). Profiling synchronises after each layer, so the
//! layer times add up to more than an unprofiled inference: trtexec's `--separateProfileRun`
//! keeps them out of the timing trace.

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::TrtexecError;

const FLAG: &str = "--exportProfile";

/// One layer's times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerTime {
    /// The engine layer's name.
    pub name: String,
    /// Total over the profiled inferences, milliseconds.
    #[serde(deserialize_with = "super::number")]
    pub time_ms: f64,
    /// Mean per inference, milliseconds.
    #[serde(deserialize_with = "super::number")]
    pub average_ms: f64,
    /// Median per inference, milliseconds.
    #[serde(deserialize_with = "super::number")]
    pub median_ms: f64,
    /// Share of the total over all layers, percent (NaN when that total is zero).
    #[serde(deserialize_with = "super::number")]
    pub percentage: f64,
}

/// A per-layer profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    /// The number of profiled inferences.
    pub count: u64,
    /// The layers, in the order they first ran.
    pub layers: Vec<LayerTime>,
}

/// The first element of the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Count {
    count: u64,
}

impl<'de> Deserialize<'de> for Profile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ProfileVisitor;

        impl<'de> Visitor<'de> for ProfileVisitor {
            type Value = Profile;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a list: {"count": N}, then one object per layer"#)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Profile, A::Error> {
                let Count { count } = seq.next_element()?.ok_or_else(|| {
                    de::Error::invalid_length(0, &r#"a first element {"count": N}"#)
                })?;
                let mut layers = Vec::new();
                while let Some(layer) = seq.next_element()? {
                    layers.push(layer);
                }
                Ok(Profile { count, layers })
            }
        }

        deserializer.deserialize_seq(ProfileVisitor)
    }
}

impl Profile {
    /// The times of the layer called `name`.
    pub fn layer(&self, name: &str) -> Option<&LayerTime> {
        self.layers.iter().find(|l| l.name == name)
    }
}

/// Reads a profile file.
pub fn read(path: &Path) -> Result<Profile, TrtexecError> {
    parse(path, &super::read_text(path)?)
}

/// Parses a profile, `text` read from `path` (named in errors).
pub fn parse(path: &Path, text: &str) -> Result<Profile, TrtexecError> {
    super::parse_json_non_finite(path, FLAG, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_of_layers_that_never_ran_reads_nan_percentages() {
        let text = "[\n  { \"count\" : 0 }\n, { \"name\" : \"a\", \"timeMs\" : 0, \"averageMs\" : 0, \"medianMs\" : 0, \"percentage\" : -nan }\n]\n";
        let profile = parse(Path::new("p.json"), text).unwrap();
        assert_eq!(profile.count, 0);
        assert!(profile.layers[0].percentage.is_nan());
    }

    #[test]
    fn a_profile_must_start_with_its_count() {
        let text = "[\n { \"name\" : \"a\", \"timeMs\" : 1, \"averageMs\" : 1, \"medianMs\" : 1, \"percentage\" : 100 }\n]";
        let error = parse(Path::new("p.json"), text).unwrap_err().to_string();
        assert!(error.starts_with("p.json:2:"), "{error}");
        assert!(error.contains("unknown field `name`"), "{error}");
        let empty = parse(Path::new("p.json"), "[]").unwrap_err().to_string();
        assert!(empty.contains("count"), "{empty}");
    }
}
