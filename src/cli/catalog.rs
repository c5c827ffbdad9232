//! Commands about suites and what precheck knows: `validate`, `list`, `export`, `golden`,
//! `devices`, `precisions`.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::args::GoldenArgs;
use crate::backend::{self};
use crate::exit_code::ExitCode;
use crate::export;
use crate::model::golden;
use crate::precision::presets;
use crate::precision::Policy;
use crate::runner::{self};
use crate::suite::{self, LoadedSuite};

pub(super) fn load(path: &Path) -> anyhow::Result<LoadedSuite> {
    // A suite error renders as file:line:col: key: message; anyhow adds nothing to it.
    suite::load(path).map_err(anyhow::Error::new)
}

pub(super) fn validate(paths: &[PathBuf]) -> ExitCode {
    let mut code = ExitCode::Success;
    for path in paths {
        let checked = suite::load(path)
            .map_err(|e| e.to_string())
            .and_then(|loaded| {
                for model in &loaded.suite.models {
                    model
                        .check_files()
                        .map_err(|e| format!("{}: model `{}`: {e}", path.display(), model.name))?;
                }
                Ok(loaded)
            });
        match checked {
            Ok(loaded) => println!(
                "ok    {}: {} variants",
                path.display(),
                loaded.suite.variants.len()
            ),
            Err(error) => {
                eprintln!("error: {error}");
                code = ExitCode::UsageOrSuiteError;
            }
        }
    }
    code
}

pub(super) fn list(path: &Path) -> anyhow::Result<ExitCode> {
    let loaded = load(path)?;
    let suite = &loaded.suite;
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
        .set_header(vec![
            "variant", "block", "tokens", "GFLOP", "cos_min", "policy",
        ]);
    for variant in &suite.variants {
        let model = suite.model(&variant.model).expect("validated");
        table.add_row(vec![
            variant.id.clone(),
            model.block.kind_name().to_owned(),
            model.tokens.to_string(),
            format!("{:.2}", model.block.flops(model.tokens) / 1e9),
            variant.gates.cos_min.to_string(),
            variant.precision.to_string(),
        ]);
    }
    println!("{table}");
    let reference = match &suite.reference.file {
        Some(file) => format!("the golden file {}", file.display()),
        None => "exact evaluation of the model held in that precision".to_owned(),
    };
    println!(
        "{} variants; reference: {} ({reference})",
        suite.variants.len(),
        suite.reference.precision.format()
    );
    Ok(ExitCode::Success)
}

pub(super) fn export(path: &Path, out: &Path, seed: Option<u64>) -> anyhow::Result<ExitCode> {
    let loaded = load(path)?;
    let suite = &loaded.suite;
    let seed = seed.unwrap_or(suite.defaults.seed);
    let format = suite.reference.precision.format();
    let mut written = 0;
    for model in &suite.models {
        let weights = model
            .weights(seed, format)
            .with_context(|| format!("model {}", model.name))?;
        let mut policies: Vec<&Policy> = Vec::new();
        for variant in suite.variants.iter().filter(|v| v.model == model.name) {
            if !policies.iter().any(|p| p.name == variant.precision.name) {
                policies.push(&variant.precision);
            }
        }
        for outcome in export::write_files(model, &weights, &policies, out)? {
            match outcome {
                export::Written::File(file) => {
                    println!("wrote   {}", file.display());
                    written += 1;
                }
                export::Written::Skipped(policy, why) => {
                    println!("skipped {}/{policy}: {why}", model.name)
                }
            }
        }
    }
    println!("{written} models written to {}", out.display());
    Ok(ExitCode::Success)
}

pub(super) fn golden(args: &GoldenArgs) -> anyhow::Result<ExitCode> {
    let loaded = load(&args.suite)?;
    let suite = &loaded.suite;
    let engines = args.engines.engines(args.backend);
    let selected = args
        .backend
        .map(|choice| backend::select(choice, &engines))
        .transpose()?;
    if let Some(note) = selected.as_ref().and_then(|s| s.note.as_ref()) {
        eprintln!("note: {note}");
    }
    let backend = selected.as_ref().map(|s| s.backend.as_ref());
    let seed = args.seed.unwrap_or(suite.defaults.seed);
    let outputs = runner::golden_outputs(suite, seed, backend).map_err(anyhow::Error::msg)?;
    golden::write(&args.out, &outputs).map_err(anyhow::Error::msg)?;
    for output in &outputs {
        println!("{}: {}", output.model, output.source);
    }
    println!(
        "golden references of {} models in {}",
        outputs.len(),
        args.out.display()
    );
    Ok(ExitCode::Success)
}

pub(super) fn devices() -> ExitCode {
    for (kind, status) in backend::describe_all() {
        match status {
            Ok(devices) => {
                for device in devices {
                    println!("{:5} available: {device}", kind.name());
                }
            }
            Err(why) => println!("{:5} unavailable: {why}", kind.name()),
        }
    }
    ExitCode::Success
}

pub(super) fn precisions() -> ExitCode {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
        .set_header(vec!["preset", "policy", "models"]);
    for (name, about) in presets::describe() {
        let policy = presets::preset(name).expect("described presets exist");
        table.add_row(vec![name.to_owned(), policy.to_string(), about.to_owned()]);
    }
    println!("{table}");
    ExitCode::Success
}
