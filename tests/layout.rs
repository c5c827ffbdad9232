//! The source tree reads as the pipeline: every top-level module of `src/` imports only modules
//! that stand before it in [`STAGES`], so there is no import loop and no stage reaches into a
//! later one. A module added to `src/` must be given its place here.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The top-level modules, ground first. `crate::X` in a module may name only modules before it.
const STAGES: &[&str] = &[
    // Ground types that several stages share.
    "nan_as_null",
    "hints",
    "ident",
    "host",
    "shard",
    "formats",
    "onnx_proto",
    "array",
    "tensor",
    "linalg",
    // What is measured, and the numbers it is measured in.
    "measure",
    "quant",
    "precision",
    "model",
    // Engines.
    "trtexec",
    "export",
    "backend",
    // Verdicts.
    "mismatch",
    "gate",
    // The suite composes each stage's config piece.
    "suite",
    "results",
    "plan",
    "runner",
    "exit_code",
    "report",
    "cli",
];

/// Every `.rs` file of a top-level module (a file, or a folder's files).
fn files_of(src: &Path, module: &str) -> Vec<PathBuf> {
    let file = src.join(format!("{module}.rs"));
    if file.is_file() {
        return vec![file];
    }
    let mut files = Vec::new();
    let mut folders = vec![src.join(module)];
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(&folder).unwrap_or_else(|e| panic!("{}: {e}", folder.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The top-level modules a file's code (its unit tests left out) names as `crate::X`.
fn imports(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    let mut found = BTreeSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found
}

#[test]
fn every_module_imports_only_the_stages_before_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for (rank, module) in STAGES.iter().enumerate() {
        for file in files_of(&src, module) {
            let text = fs::read_to_string(&file).unwrap();
            for import in imports(&text) {
                match STAGES.iter().position(|s| *s == import) {
                    Some(at) if at <= rank => {}
                    Some(_) => wrong.push(format!(
                        "{}: `{module}` imports `crate::{import}`, a later stage",
                        file.display()
                    )),
                    None => wrong.push(format!(
                        "{}: `crate::{import}` is not a stage of tests/layout.rs",
                        file.display()
                    )),
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the stage order:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_top_level_module_has_a_place_in_the_order() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules: BTreeSet<String> = BTreeSet::new();
    for entry in fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() || path.extension().is_some_and(|e| e == "rs") {
            modules.insert(stem);
        }
    }
    modules.remove("lib");
    modules.remove("main");
    let placed: BTreeSet<String> = STAGES.iter().map(|s| s.to_string()).collect();
    assert_eq!(modules, placed, "src/ against STAGES");
}

#[test]
fn the_checker_sees_imports_and_ignores_comments_and_unit_tests() {
    let text = "use crate::formats::Format;\n// crate::cli in a comment\nfn f() { crate::tensor::Tensor::new(1, 1, vec![0.0]); }\n#[cfg(test)]\nmod tests {\n    use crate::report;\n}\n";
    let found: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(found, ["formats", "tensor"]);
}
