//! Names that appear in variant ids and file names.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A name usable in variant ids and file names: ASCII letters, digits, `_`, `-` and `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ident(String);

impl Ident {
    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Ident {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if name == "." || name == ".." {
            Err(format!(
                "invalid name `{name}`: a name becomes a folder and must not point outside it"
            ))
        } else if valid {
            Ok(Ident(name))
        } else {
            Err(format!(
                "invalid name `{name}`: expected ASCII letters, digits, `_`, `-` or `.`"
            ))
        }
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Ident> for String {
    fn from(ident: Ident) -> String {
        ident.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_path_components() {
        assert!(Ident::try_from("paligemma_mlp-v1.2".to_owned()).is_ok());
        for bad in [".", "..", "a/b", "", "my suite"] {
            assert!(Ident::try_from(bad.to_owned()).is_err(), "{bad}");
        }
        let error = Ident::try_from("..".to_owned()).unwrap_err();
        assert!(error.contains("must not point outside"), "{error}");
    }
}
