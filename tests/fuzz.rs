//! The fuzz targets on every build: each target's committed corpus (`fuzz/corpus/<target>/`)
//! replayed, then a budget of mutations of it (bytes flipped, set, inserted, deleted, spliced
//! between entries, and tokens that have broken parsers before) through proptest, which shrinks a
//! failing input to a small one. `PRECHECK_FUZZ_CASES` sets the budget per target (default 300);
//! `cargo +nightly fuzz run <target>` fuzzes one for as long as it is given, guided by coverage
//! (README.md, "Fuzzing").

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[path = "../fuzz/targets.rs"]
mod targets;

/// Tokens that have broken parsers: numbers past every bound, special floats, nesting, control
/// bytes, a byte-order mark, path escapes.
const TOKENS: &[&[u8]] = &[
    b"18446744073709551615",
    b"-1",
    b"0",
    b"1e308",
    b"-0.0",
    b"NaN",
    b".nan",
    b"inf",
    b"null",
    b"[[[[[[[[",
    b"{{{{",
    b"\"",
    b": ",
    b"\n  - ",
    b"\x00",
    b"\x1b[31m",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"../..",
    b"/dev/null",
    b"4294967296",
];

/// One edit of an input.
#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        bit: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    Insert {
        at: usize,
        token: usize,
    },
    Delete {
        at: usize,
        len: usize,
    },
    Splice {
        at: usize,
        from: usize,
        start: usize,
        len: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, token)| Mutation::Insert { at, token }),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), any::<usize>(), any::<usize>(), 1usize..256).prop_map(
            |(at, from, start, len)| Mutation::Splice {
                at,
                from,
                start,
                len
            }
        ),
    ]
}

fn apply(mut input: Vec<u8>, mutations: &[Mutation], corpus: &[Vec<u8>]) -> Vec<u8> {
    for mutation in mutations {
        let at = |at: usize, len: usize| if len == 0 { 0 } else { at % (len + 1) };
        match *mutation {
            Mutation::Flip { at: i, bit } if !input.is_empty() => {
                let i = i % input.len();
                input[i] ^= 1 << bit;
            }
            Mutation::Set { at: i, byte } if !input.is_empty() => {
                let i = i % input.len();
                input[i] = byte;
            }
            Mutation::Insert { at: i, token } => {
                let i = at(i, input.len());
                input.splice(i..i, TOKENS[token].iter().copied());
            }
            Mutation::Delete { at: i, len } if !input.is_empty() => {
                let i = i % input.len();
                let end = (i + len).min(input.len());
                input.drain(i..end);
            }
            Mutation::Splice {
                at: i,
                from,
                start,
                len,
            } => {
                let other = &corpus[from % corpus.len()];
                let start = at(start, other.len()).min(other.len());
                let end = (start + len).min(other.len());
                let i = at(i, input.len());
                input.splice(i..i, other[start..end].iter().copied());
            }
            _ => {}
        }
    }
    input
}

fn cases() -> u32 {
    std::env::var("PRECHECK_FUZZ_CASES")
        .ok()
        .map(|n| n.parse().expect("PRECHECK_FUZZ_CASES is a number"))
        .unwrap_or(300)
}

fn fuzz(name: &str) {
    let (_, target) = targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a target of that name");
    let corpus: Vec<Vec<u8>> = targets::corpus(Path::new("fuzz/corpus"), name)
        .into_iter()
        .map(|(path, bytes)| {
            let started = std::time::Instant::now();
            let replayed = std::panic::catch_unwind(|| target(&bytes));
            assert!(replayed.is_ok(), "{} fails `{name}`", path.display());
            // A hang is a finding too: every input is answered in well under this, unoptimized.
            let took = started.elapsed();
            assert!(took.as_secs() < 10, "{} took {took:?}", path.display());
            bytes
        })
        .collect();
    assert!(
        corpus.len() >= 3,
        "fuzz/corpus/{name} holds {} inputs; fuzz/seed_corpus.py writes its seeds",
        corpus.len()
    );
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (0..corpus.len(), proptest::collection::vec(mutation(), 1..8));
    let result = runner.run(&strategy, |(index, mutations)| {
        target(&apply(corpus[index].clone(), &mutations, &corpus));
        Ok(())
    });
    if let Err(failure) = result {
        panic!("fuzz target `{name}`: {failure}");
    }
}

#[test]
fn every_target_is_fuzzed_here() {
    let names: Vec<&str> = targets::TARGETS.iter().map(|(name, _)| *name).collect();
    let mut binaries: Vec<String> = std::fs::read_dir("fuzz/fuzz_targets")
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            path.file_stem().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    binaries.sort();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(binaries, sorted, "fuzz/fuzz_targets/ and targets::TARGETS");
}

#[test]
fn suite_files() {
    fuzz("suite");
}

#[test]
fn array_files() {
    fuzz("arrays");
}

#[test]
fn run_folders() {
    fuzz("records");
}

#[test]
fn engine_outputs() {
    fuzz("engine_outputs");
}

#[test]
fn onnx_models() {
    fuzz("onnx_model");
}
