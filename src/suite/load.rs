//! Reading a suite file: YAML text → [`SuiteFile`], with errors mapped to [`SuiteError`].

use std::path::Path;

use super::error::{SuiteError, SuiteErrorKind};
use super::locate::{Location, LocationIndex};
use super::schema::SuiteFile;
use crate::hints::nearest;

/// How deep `[` and `{` may nest: serde_yaml's own recursion limit. Checked before parsing, so
/// that a hostile file (100 000 brackets deep) is refused at once rather than after minutes of
/// locating its error.
const MAX_NESTING: usize = 128;

/// Where flow collections first nest deeper than [`MAX_NESTING`], outside quotes and comments.
fn too_deep(text: &str) -> Option<Location> {
    let mut depth = 0usize;
    for (index, line) in text.lines().enumerate() {
        let mut quote: Option<char> = None;
        let mut previous = ' ';
        for (column, c) in line.chars().enumerate() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '#') if previous.is_whitespace() => break,
                (None, '[' | '{') => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Some(Location {
                            line: index + 1,
                            column: column + 1,
                        });
                    }
                }
                (None, ']' | '}') => depth = depth.saturating_sub(1),
                _ => {}
            }
            previous = c;
        }
    }
    None
}

/// Parses `text` (read from `file`) into the raw suite types.
pub fn parse(file: &Path, text: &str) -> Result<SuiteFile, SuiteError> {
    if let Some(location) = too_deep(text) {
        return Err(SuiteError {
            file: file.to_owned(),
            location: Some(location),
            key: String::new(),
            kind: Box::new(SuiteErrorKind::Invalid(format!(
                "collections nest deeper than {MAX_NESTING} levels"
            ))),
        });
    }
    let deserializer = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let yaml_error = error.into_inner();
        from_yaml_error(file, text, &path, &yaml_error)
    })
}

fn from_yaml_error(file: &Path, text: &str, path: &str, error: &serde_yaml::Error) -> SuiteError {
    let key = if path == "." {
        String::new()
    } else {
        path.to_owned()
    };
    let yaml_location = error.location().map(|at| Location {
        line: at.line(),
        column: at.column(),
    });
    let message = bare_message(error);
    let mut at_key = false;
    let kind = match parse_unknown(&message) {
        Some(Unknown::Key { found, expected }) => {
            at_key = true;
            SuiteErrorKind::UnknownKey {
                suggestion: nearest(&found, expected.iter().map(String::as_str)),
                found,
                expected,
            }
        }
        Some(Unknown::Value { found, expected }) => SuiteErrorKind::UnknownValue {
            suggestion: nearest(&found, expected.iter().map(String::as_str)),
            found,
            expected,
        },
        None => SuiteErrorKind::Invalid(message),
    };
    // serde_yaml places errors raised by our own checks (`try_from`) at the enclosing mapping; the
    // index finds the value itself. A text the index cannot read to its end has a syntax error,
    // which serde_yaml locates exactly.
    let index = LocationIndex::new(text);
    let location = match index.is_complete() {
        false => yaml_location.or_else(|| index.key(&key)),
        true if at_key => index.key(&key).or(yaml_location),
        true => index.value(&key).or(yaml_location),
    };
    SuiteError {
        file: file.to_owned(),
        location,
        key,
        kind: Box::new(kind),
    }
}

/// serde_yaml's message without the key path and location it appends: we print those ourselves.
fn bare_message(error: &serde_yaml::Error) -> String {
    let mut message = error.to_string();
    if let Some(at) = error.location() {
        let suffix = format!(" at line {} column {}", at.line(), at.column());
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
    }
    // serde_yaml prefixes "path: " to messages raised inside the document; a path has no spaces,
    // while the messages themselves start with words ("invalid type: ...").
    if let Some((head, rest)) = message.split_once(": ") {
        let is_path = !head.is_empty()
            && head
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.[]".contains(c));
        if is_path {
            message = rest.to_owned();
        }
    }
    message
}

enum Unknown {
    Key {
        found: String,
        expected: Vec<String>,
    },
    Value {
        found: String,
        expected: Vec<String>,
    },
}

/// Recognises serde's fixed wording for unknown fields and variants
/// (`unknown field `x`, expected one of `a`, `b``), which carries the valid names we suggest from.
fn parse_unknown(message: &str) -> Option<Unknown> {
    let (is_key, rest) = if let Some(rest) = message.strip_prefix("unknown field ") {
        (true, rest)
    } else {
        (false, message.strip_prefix("unknown variant ")?)
    };
    let mut names = rest.split('`').skip(1).step_by(2).map(str::to_owned);
    let found = names.next()?;
    let expected: Vec<String> = names.collect();
    Some(if is_key {
        Unknown::Key { found, expected }
    } else {
        Unknown::Value { found, expected }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collections_nested_beyond_the_limit_are_refused_at_once() {
        let deep = format!(
            "name: t\nmodels: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let started = std::time::Instant::now();
        let error = parse(Path::new("deep.yaml"), &deep)
            .unwrap_err()
            .to_string();
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
        assert!(
            error.contains("deep.yaml:2:137") && error.contains("nest deeper than 128 levels"),
            "{error}"
        );
        // Brackets in quotes and comments do not count.
        let quoted = format!(
            "name: t # {}\ndescription: '{}'\n",
            "[".repeat(200),
            "{".repeat(200)
        );
        assert!(too_deep(&quoted).is_none());
    }
}
