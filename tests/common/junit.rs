//! Jenkins' strict JUnit schema (the xunit plugin's `junit-4.xsd`, the strictest of those CI
//! servers read), as rules a test can check a `junit.xml` against: which children each element may
//! hold and in what order, how often, and which attributes it may and must have. GitLab's and
//! GitHub's readers accept whatever it accepts.

use quick_xml::events::Event;

/// An element's rules.
struct Rule {
    name: &'static str,
    /// Its children in the order they may come, each with how many times it may come (`None`:
    /// any number) and whether at least one must.
    children: &'static [(&'static str, Option<usize>, bool)],
    attributes: &'static [&'static str],
    required: &'static [&'static str],
}

const TEXT_ONLY: &[(&str, Option<usize>, bool)] = &[];

const RULES: &[Rule] = &[
    Rule {
        name: "testsuites",
        children: &[("testsuite", None, false)],
        attributes: &["name", "time", "tests", "failures", "disabled", "errors"],
        required: &[],
    },
    Rule {
        name: "testsuite",
        children: &[
            ("properties", Some(1), false),
            ("testcase", None, false),
            ("system-out", Some(1), false),
            ("system-err", Some(1), false),
        ],
        attributes: &[
            "name",
            "tests",
            "failures",
            "errors",
            "time",
            "disabled",
            "skipped",
            "timestamp",
            "hostname",
            "id",
            "package",
        ],
        required: &["name", "tests"],
    },
    Rule {
        name: "properties",
        children: &[("property", None, true)],
        attributes: &[],
        required: &[],
    },
    Rule {
        name: "property",
        children: &[],
        attributes: &["name", "value"],
        required: &["name", "value"],
    },
    Rule {
        name: "testcase",
        children: &[
            ("skipped", Some(1), false),
            ("error", None, false),
            ("failure", None, false),
            ("system-out", None, false),
            ("system-err", None, false),
        ],
        attributes: &["name", "assertions", "time", "classname", "status"],
        required: &["name"],
    },
    Rule {
        name: "failure",
        children: TEXT_ONLY,
        attributes: &["type", "message"],
        required: &[],
    },
    Rule {
        name: "error",
        children: TEXT_ONLY,
        attributes: &["type", "message"],
        required: &[],
    },
    Rule {
        name: "skipped",
        children: TEXT_ONLY,
        attributes: &[],
        required: &[],
    },
    Rule {
        name: "system-out",
        children: TEXT_ONLY,
        attributes: &[],
        required: &[],
    },
    Rule {
        name: "system-err",
        children: TEXT_ONLY,
        attributes: &[],
        required: &[],
    },
];

fn rule(name: &str) -> Result<&'static Rule, String> {
    RULES
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| format!("<{name}> is not in the schema"))
}

/// An open element: its rule, the index in its rule's children of the last child seen, and how
/// many of each child it has held.
struct Open {
    rule: &'static Rule,
    at: usize,
    counts: Vec<usize>,
}

impl Open {
    fn close(self) -> Result<(), String> {
        for ((child, _, needed), count) in self.rule.children.iter().zip(&self.counts) {
            if *needed && *count == 0 {
                return Err(format!("<{}> needs a <{child}>", self.rule.name));
            }
        }
        Ok(())
    }
}

/// Checks `xml` against the strict schema; the first problem, named, when it is not valid. Text
/// must also be free of terminal escapes and of characters XML 1.0 forbids.
pub fn check_strict(xml: &str) -> Result<(), String> {
    if let Some(c) = xml
        .chars()
        .find(|c| (*c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(format!("control character U+{:04X} in the file", c as u32));
    }
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Open> = Vec::new();
    let mut roots = 0;
    loop {
        let event = reader.read_event().map_err(|e| format!("not XML: {e}"))?;
        let (element, empty) = match &event {
            Event::Start(e) => (e.clone(), false),
            Event::Empty(e) => (e.clone(), true),
            Event::End(_) => {
                stack.pop().expect("quick-xml checks nesting").close()?;
                continue;
            }
            Event::Text(text) => {
                let text = text.decode().map_err(|e| e.to_string())?;
                if let Some(open) = stack.last() {
                    if !open.rule.children.is_empty() && !text.trim().is_empty() {
                        return Err(format!("text in <{}>: {text:?}", open.rule.name));
                    }
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let name = String::from_utf8_lossy(element.name().as_ref()).into_owned();
        let rule = rule(&name)?;
        match stack.last_mut() {
            None => {
                roots += 1;
                if name != "testsuites" && name != "testsuite" {
                    return Err(format!("<{name}> cannot be the root"));
                }
            }
            Some(parent) => {
                let index = parent
                    .rule
                    .children
                    .iter()
                    .position(|(child, _, _)| *child == name)
                    .ok_or_else(|| format!("<{name}> cannot be in <{}>", parent.rule.name))?;
                if index < parent.at {
                    let after = parent.rule.children[parent.at].0;
                    return Err(format!(
                        "<{name}> after <{after}> in <{}>",
                        parent.rule.name
                    ));
                }
                parent.at = index;
                parent.counts[index] += 1;
                if let Some(most) = parent.rule.children[index].1 {
                    if parent.counts[index] > most {
                        return Err(format!(
                            "more than {most} <{name}> in <{}>",
                            parent.rule.name
                        ));
                    }
                }
            }
        }
        let mut present = Vec::new();
        for attribute in element.attributes() {
            let attribute = attribute.map_err(|e| e.to_string())?;
            let key = String::from_utf8_lossy(attribute.key.as_ref()).into_owned();
            if !rule.attributes.contains(&key.as_str()) {
                return Err(format!("<{name}> cannot have the attribute `{key}`"));
            }
            present.push(key);
        }
        if let Some(missing) = rule
            .required
            .iter()
            .find(|r| !present.iter().any(|p| p == *r))
        {
            return Err(format!("<{name}> lacks the attribute `{missing}`"));
        }
        let open = Open {
            rule,
            at: 0,
            counts: vec![0; rule.children.len()],
        };
        if empty {
            open.close()?;
        } else {
            stack.push(open);
        }
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    if xml.contains('\u{1b}') {
        return Err("a terminal escape in the file".into());
    }
    Ok(())
}
