//! Commands about suites and what precheck knows: `validate`, `list`, `export`, `golden`,
//! `devices`, `precisions`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::args::GoldenArgs;
use super::output::{print_json, OutputFormat};
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

/// One suite as `validate` found it.
#[derive(Serialize)]
struct Checked<'a> {
    suite: &'a Path,
    /// Its variants, when it is valid.
    variants: Option<usize>,
    /// What is wrong with it, when it is not.
    error: Option<String>,
}

pub(super) fn validate(paths: &[PathBuf], format: OutputFormat) -> ExitCode {
    let checked: Vec<Checked> = paths
        .iter()
        .map(|path| {
            let outcome = suite::load(path)
                .map_err(|e| e.to_string())
                .and_then(|loaded| {
                    for model in &loaded.suite.models {
                        model.check_files().map_err(|e| {
                            format!("{}: model `{}`: {e}", path.display(), model.name)
                        })?;
                    }
                    Ok(loaded.suite.variants.len())
                });
            Checked {
                suite: path,
                variants: outcome.as_ref().ok().copied(),
                error: outcome.err(),
            }
        })
        .collect();
    match format {
        OutputFormat::Json => print_json(&checked),
        OutputFormat::Text => {
            for check in &checked {
                match (&check.error, check.variants) {
                    (Some(error), _) => eprintln!("error: {error}"),
                    (None, variants) => println!(
                        "ok    {}: {} variants",
                        check.suite.display(),
                        variants.unwrap_or_default()
                    ),
                }
            }
        }
    }
    if checked.iter().any(|c| c.error.is_some()) {
        ExitCode::UsageOrSuiteError
    } else {
        ExitCode::Success
    }
}

/// What `list` prints in JSON.
#[derive(Serialize)]
struct Listing<'a> {
    suite: &'a str,
    /// The reference's format, and its golden file if it has one.
    reference: String,
    golden_file: Option<&'a Path>,
    variants: Vec<Listed<'a>>,
}

#[derive(Serialize)]
struct Listed<'a> {
    id: &'a str,
    model: &'a str,
    block: &'static str,
    tokens: usize,
    flops: f64,
    device: String,
    gates: &'a crate::gate::Gates,
    policy: &'a Policy,
}

pub(super) fn list(path: &Path, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let loaded = load(path)?;
    let suite = &loaded.suite;
    if format == OutputFormat::Json {
        print_json(&Listing {
            suite: suite.name.as_str(),
            reference: suite.reference.precision.format().to_string(),
            golden_file: suite.reference.file.as_deref(),
            variants: suite
                .variants
                .iter()
                .map(|variant| {
                    let model = suite.model(&variant.model).expect("validated");
                    Listed {
                        id: &variant.id,
                        model: variant.model.as_str(),
                        block: model.block.kind_name(),
                        tokens: model.tokens,
                        flops: model.block.flops(model.tokens),
                        device: variant.device.to_string(),
                        gates: &variant.gates,
                        policy: &variant.precision,
                    }
                })
                .collect(),
        });
        return Ok(ExitCode::Success);
    }
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

/// What `export` prints in JSON.
#[derive(Serialize, Default)]
struct Exported {
    written: Vec<PathBuf>,
    /// `model/precision` and why it has no ONNX form.
    skipped: Vec<(String, String)>,
}

pub(super) fn export(
    path: &Path,
    out: &Path,
    seed: Option<u64>,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let loaded = load(path)?;
    let suite = &loaded.suite;
    let seed = seed.unwrap_or(suite.defaults.seed);
    let reference = suite.reference.precision.format();
    let mut exported = Exported::default();
    for model in &suite.models {
        let weights = model
            .weights(seed, reference)
            .with_context(|| format!("model {}", model.name))?;
        let mut policies: Vec<&Policy> = Vec::new();
        for variant in suite.variants.iter().filter(|v| v.model == model.name) {
            if !policies.iter().any(|p| p.name == variant.precision.name) {
                policies.push(&variant.precision);
            }
        }
        for outcome in export::write_files(model, &weights, &policies, out)? {
            match outcome {
                export::Written::File(file) => exported.written.push(file),
                export::Written::Skipped(policy, why) => exported
                    .skipped
                    .push((format!("{}/{policy}", model.name), why.to_string())),
            }
        }
    }
    match format {
        OutputFormat::Json => print_json(&exported),
        OutputFormat::Text => {
            for file in &exported.written {
                println!("wrote   {}", file.display());
            }
            for (variant, why) in &exported.skipped {
                println!("skipped {variant}: {why}");
            }
            let count = exported.written.len();
            println!("{count} models written to {}", out.display());
        }
    }
    Ok(ExitCode::Success)
}

pub(super) fn golden(args: &GoldenArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
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
    if format == OutputFormat::Json {
        #[derive(Serialize)]
        struct Frozen<'a> {
            file: &'a Path,
            /// Each model, and where its reference came from.
            models: Vec<(&'a str, &'a str)>,
        }
        print_json(&Frozen {
            file: &args.out,
            models: outputs
                .iter()
                .map(|o| (o.model.as_str(), o.source.as_str()))
                .collect(),
        });
        return Ok(ExitCode::Success);
    }
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

/// A backend as `devices` reports it.
#[derive(Serialize)]
struct BackendStatus {
    backend: &'static str,
    available: bool,
    devices: Vec<String>,
    /// Why it cannot be used here, when it cannot.
    why: Option<String>,
}

pub(super) fn devices(format: OutputFormat) -> ExitCode {
    let statuses: Vec<BackendStatus> = backend::describe_all()
        .into_iter()
        .map(|(kind, status)| BackendStatus {
            backend: kind.name(),
            available: status.is_ok(),
            devices: status.clone().unwrap_or_default(),
            why: status.err(),
        })
        .collect();
    if format == OutputFormat::Json {
        print_json(&statuses);
        return ExitCode::Success;
    }
    for status in &statuses {
        match &status.why {
            Some(why) => println!("{:5} unavailable: {why}", status.backend),
            None => {
                for device in &status.devices {
                    println!("{:5} available: {device}", status.backend);
                }
            }
        }
    }
    ExitCode::Success
}

pub(super) fn precisions(format: OutputFormat) -> ExitCode {
    if format == OutputFormat::Json {
        #[derive(Serialize)]
        struct Preset {
            name: &'static str,
            policy: Policy,
            models: &'static str,
        }
        let presets: Vec<Preset> = presets::describe()
            .into_iter()
            .map(|(name, about)| Preset {
                name,
                policy: presets::preset(name).expect("described presets exist"),
                models: about,
            })
            .collect();
        print_json(&presets);
        return ExitCode::Success;
    }
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
