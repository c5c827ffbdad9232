//! Suite errors a person can act on: file, line, column, key path, what was expected.

use std::fmt;
use std::path::PathBuf;

use super::locate::Location;

/// A suite that could not be read, parsed or validated.
#[derive(Debug, thiserror::Error)]
pub struct SuiteError {
    /// The suite file.
    pub file: PathBuf,
    /// Where in the file, when known.
    pub location: Option<Location>,
    /// The key path of the offending value (`models[1].dims.hidden`), empty for the whole file.
    pub key: String,
    /// What is wrong (boxed: errors travel up through `Result`s and should stay small).
    pub kind: Box<SuiteErrorKind>,
}

/// What is wrong with a suite.
#[derive(Debug, thiserror::Error)]
pub enum SuiteErrorKind {
    /// The file could not be read.
    #[error("cannot read the suite: {0}")]
    Io(#[from] std::io::Error),
    /// A key that the schema does not have.
    #[error("unknown key `{found}`{}{}", hint(suggestion), expected_list(expected))]
    UnknownKey {
        /// The key as written.
        found: String,
        /// The nearest valid key, if one is close.
        suggestion: Option<String>,
        /// Every valid key at this place.
        expected: Vec<String>,
    },
    /// A value that is not one of the allowed names.
    #[error(
        "unknown value `{found}`{}{}",
        hint(suggestion),
        expected_list(expected)
    )]
    UnknownValue {
        /// The value as written.
        found: String,
        /// The nearest valid value, if one is close.
        suggestion: Option<String>,
        /// Every valid value at this place.
        expected: Vec<String>,
    },
    /// Anything else serde_yaml or validation reports, as a sentence.
    #[error("{0}")]
    Invalid(String),
}

fn hint(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(", did you mean `{s}`?"))
        .unwrap_or_default()
}

fn expected_list(expected: &[String]) -> String {
    if expected.is_empty() {
        return String::new();
    }
    let names: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
    format!(" (expected one of {})", names.join(", "))
}

impl fmt::Display for SuiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(at) = self.location {
            write!(f, ":{}:{}", at.line, at.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": `{}`", self.key)?;
        }
        write!(f, ": {}", self.kind)
    }
}
