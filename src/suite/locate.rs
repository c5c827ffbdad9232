//! Finds where a key path (`models[1].dims.hidden`) sits in a YAML text.
//!
//! serde_yaml reports a line and column only for errors it raises while deserializing; checks across
//! values run afterwards on plain Rust types. This index, built from yaml-rust2's marked parser
//! events, gives those errors a location too.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A line and column in a suite file, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

/// The location of every key and value in a YAML document, by key path.
#[derive(Debug, Default)]
pub struct LocationIndex {
    keys: HashMap<String, Location>,
    values: HashMap<String, Location>,
    complete: bool,
}

impl LocationIndex {
    /// Indexes `text`. A text yaml-rust2 stops reading partway (where it and serde_yaml's parser
    /// disagree, as on some multi-line quoted scalars: found by fuzzing) is indexed as far as it
    /// was read, so that a problem there still gets its key's or an ancestor's location.
    pub fn new(text: &str) -> Self {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        // Events before a scan error are located correctly; the keys after it fall back to their
        // nearest indexed ancestor.
        builder.index.complete = parser.load(&mut builder, false).is_ok();
        builder.index
    }

    /// Whether the whole text was read (it is YAML as yaml-rust2 reads it).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Where the value at `path` starts, else where its key is.
    pub fn value(&self, path: &str) -> Option<Location> {
        self.values
            .get(path)
            .or_else(|| self.keys.get(path))
            .copied()
    }

    /// Where the value at `path` starts, or where its nearest written ancestor's does: a problem
    /// with a key the file leaves out (`inputs.image.shape`) points at what encloses it.
    pub fn nearest(&self, path: &str) -> Option<Location> {
        let mut path = path;
        loop {
            if let Some(found) = self.value(path) {
                return Some(found);
            }
            path = &path[..path.rfind(['.', '['])?];
        }
    }

    /// Where the key at `path` is, else where its value starts.
    pub fn key(&self, path: &str) -> Option<Location> {
        self.keys
            .get(path)
            .or_else(|| self.values.get(path))
            .copied()
    }
}

enum Frame {
    /// A mapping: its path, and the key whose value comes next (`None`: a key comes next).
    Mapping {
        path: String,
        pending_key: Option<String>,
        has_keys: bool,
    },
    /// A sequence: its path and the index of the next item.
    Sequence { path: String, next: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    index: LocationIndex,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn location(mark: Marker) -> Location {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Location {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

impl Builder {
    /// The path of the node that starts now, or `None` when the event is a mapping key.
    fn next_value_path(&mut self, mark: Marker, key_text: Option<&str>) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Sequence { path, next }) => {
                let item = format!("{path}[{next}]");
                *next += 1;
                Some(item)
            }
            Some(Frame::Mapping {
                path,
                pending_key,
                has_keys,
            }) => match pending_key.take() {
                Some(key) => Some(join(path, &key)),
                None => {
                    // This node is a key. Complex (non-scalar) keys are not used in suites.
                    let key = key_text.unwrap_or_default().to_owned();
                    let full = join(path, &key);
                    self.index.keys.insert(full, location(mark));
                    // yaml-rust2 marks a block mapping's start at its first value, not its first
                    // key: a mapping with keys is located at its first key instead.
                    if !*has_keys {
                        self.index.values.insert(path.clone(), location(mark));
                        *has_keys = true;
                    }
                    *pending_key = Some(key);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, ..) => {
                if let Some(path) = self.next_value_path(mark, Some(&text)) {
                    self.index.values.insert(path, location(mark));
                }
            }
            Event::Alias(_) => {
                if let Some(path) = self.next_value_path(mark, None) {
                    self.index.values.insert(path, location(mark));
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let path = self.next_value_path(mark, None).unwrap_or_default();
                self.index.values.insert(path.clone(), location(mark));
                self.stack.push(match event {
                    Event::MappingStart(..) => Frame::Mapping {
                        path,
                        pending_key: None,
                        has_keys: false,
                    },
                    _ => Frame::Sequence { path, next: 0 },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name: s\nmodels:\n  - name: a\n    dims: {hidden: 8}\n  - name: b\n    dims:\n      hidden: 0\n";

    #[test]
    fn finds_keys_and_values_by_path() {
        let index = LocationIndex::new(TEXT);
        assert!(index.is_complete());
        assert_eq!(index.key("name"), Some(Location { line: 1, column: 1 }));
        assert_eq!(index.value("name"), Some(Location { line: 1, column: 7 }));
        assert_eq!(
            index.value("models[0]"),
            Some(Location { line: 3, column: 5 })
        );
        assert_eq!(
            index.value("models[0].dims.hidden"),
            Some(Location {
                line: 4,
                column: 20
            })
        );
        assert_eq!(
            index.key("models[1].dims.hidden"),
            Some(Location { line: 7, column: 7 })
        );
        assert_eq!(index.value("models[2]"), None);
        assert_eq!(
            index.nearest("models[1].dims.heads"),
            index.value("models[1].dims")
        );
        let partial = LocationIndex::new("a: [1, 2");
        assert!(!partial.is_complete());
        assert_eq!(partial.key("a"), Some(Location { line: 1, column: 1 }));
    }
}
