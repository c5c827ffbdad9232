//! Suites: the YAML file a user writes, read, validated and expanded into variants.
//!
//! `schema` is the file's shape (serde, unknown keys rejected), `load` turns YAML errors into
//! [`SuiteError`]s with file, line, column and key path, `validate` checks values against each other
//! and expands the matrix, and `locate` finds the line of a key path for those later checks.

mod error;
mod load;
mod locate;
mod matrix;
mod schema;
mod validate;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use error::{SuiteError, SuiteErrorKind};
pub use locate::{Location, LocationIndex};
pub use matrix::{expand, Axes, MatrixError, Variant};
pub use schema::{
    BlockKind, Count, Defaults, DeviceSelector, ExcludeEntry, IncludeEntry, InputSpec,
    LayerKindSpec, MatrixSpec, Reference, ReferenceFormat, SuiteFile, Timeout,
};

use crate::gate::Gates;
use crate::ident::Ident;
use crate::model::Model;
use crate::precision::Policy;

/// A validated suite with its expanded variants.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The suite's name.
    pub name: Ident,
    /// Free text.
    pub description: String,
    /// Seed, warm-up and iterations.
    pub defaults: Defaults,
    /// What variants are compared with.
    pub reference: Reference,
    /// The models, in file order.
    pub models: Vec<Model>,
    /// The precision axis, resolved.
    pub precisions: Vec<Policy>,
    /// The device axis.
    pub gpus: Vec<DeviceSelector>,
    /// The suite-wide gates.
    pub gates: Gates,
    /// The matrix, expanded.
    pub variants: Vec<Variant>,
}

impl Suite {
    /// The policy the speed baseline runs: the preset named like the reference format.
    pub fn baseline_policy(&self) -> Policy {
        crate::precision::presets::preset(self.reference.precision.format().name())
            .expect("every reference format has a preset of its name")
    }

    /// The model called `name`, if the suite has one.
    pub fn model(&self, name: &Ident) -> Option<&Model> {
        self.models.iter().find(|m| &m.name == name)
    }
}

/// A suite together with the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedSuite {
    /// The suite file's path as given.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, hex: identifies the suite across shards and runs.
    pub sha256: String,
    /// The suite.
    pub suite: Suite,
}

/// Reads, parses and validates the suite at `path`.
pub fn load(path: &Path) -> Result<LoadedSuite, SuiteError> {
    let text = std::fs::read_to_string(path).map_err(|e| SuiteError {
        file: path.to_owned(),
        location: None,
        key: String::new(),
        kind: Box::new(SuiteErrorKind::Io(e)),
    })?;
    let suite = from_str(path, &text)?;
    Ok(LoadedSuite {
        path: path.to_owned(),
        sha256: format!("{:x}", Sha256::digest(text.as_bytes())),
        suite,
    })
}

/// Parses and validates suite `text`; `file` names it in errors. A UTF-8 byte-order mark (as
/// some Windows editors write) is skipped.
pub fn from_str(file: &Path, text: &str) -> Result<Suite, SuiteError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let raw = load::parse(file, text)?;
    let base = file.parent().unwrap_or(Path::new(""));
    validate::validate(raw, base).map_err(|problem| SuiteError {
        file: file.to_owned(),
        location: LocationIndex::new(text).nearest(&problem.key),
        key: problem.key,
        kind: Box::new(SuiteErrorKind::Invalid(problem.message)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let text = "\u{feff}name: bom\nmodels: [{ name: m, block: linear, dims: { hidden: 8 }, input: { tokens: 2 } }]\nprecisions: [bf16]\n";
        let suite = from_str(Path::new("bom.yaml"), text).unwrap();
        assert_eq!(suite.name.as_str(), "bom");
    }
}
