//! `precheck merge`: shard runs joined into one run folder, after checking that they are slices of
//! one run (same suite file, precheck version and settings), with the variants and shards that are
//! missing or recorded twice said. Runs of one suite on different backends merge too: their
//! variant ids differ in the device part (`m/bf16/cuda`, `m/bf16/command`), so the merged report
//! shows the engines side by side, each variant's speed-up against its own backend's baseline.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::{read_records, ResultsError, ResultsWriter, RunInfo, VariantRecord, RUN_INFO_FILE};

/// Runs that cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A result file that cannot be read or written.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// A `run.json` that cannot be read.
    #[error("{path}: {message}")]
    RunInfo {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A run folder holding records of variants its run did not plan (written by something
    /// else, or copied in): merging them would report variants nobody asked for.
    #[error("{dir}: records of variants its run did not plan: {}", ids.join(", "))]
    Unplanned {
        /// The run folder.
        dir: PathBuf,
        /// The unplanned variants.
        ids: Vec<String>,
    },
    /// Two runs that are not slices of one run.
    #[error("cannot merge {first} and {second}: {what} differ ({first_value} and {second_value})")]
    Mismatch {
        /// The first run folder.
        first: PathBuf,
        /// The run folder that differs from it.
        second: PathBuf,
        /// What differs.
        what: &'static str,
        /// The first run's value.
        first_value: String,
        /// The other's.
        second_value: String,
    },
}

/// Shard runs merged into one.
#[derive(Debug)]
pub struct Merged {
    /// The merged `run.json`.
    pub info: RunInfo,
    /// The merged records, each variant once (the first run's record of a duplicate).
    pub records: Vec<VariantRecord>,
    /// Variants some shard planned and no shard recorded.
    pub missing: Vec<String>,
    /// Variants recorded more than once.
    pub duplicates: Vec<String>,
    /// Shards (`INDEX/COUNT`) of the split that no run given was.
    pub missing_shards: Vec<String>,
    /// Torn lines skipped in the shards' results.
    pub warnings: Vec<String>,
}

impl Merged {
    /// Whether every planned variant of every shard is there exactly once.
    pub fn complete(&self) -> bool {
        self.missing.is_empty() && self.duplicates.is_empty() && self.missing_shards.is_empty()
    }
}

/// Merges the run folders `dirs` into the new run folder `out`; `command_line` is recorded.
pub fn merge(
    dirs: &[PathBuf],
    out: &Path,
    command_line: Vec<String>,
) -> Result<Merged, MergeError> {
    let runs = dirs
        .iter()
        .map(|dir| read_run(dir))
        .collect::<Result<Vec<_>, _>>()?;
    let Some((first_dir, first, _)) = runs.first() else {
        return Err(MergeError::RunInfo {
            path: out.to_owned(),
            message: "no run folders to merge".into(),
        });
    };
    for (dir, info, _) in &runs[1..] {
        check_same_run((first_dir, first), (dir, info))?;
    }
    // (A run.json older than its plan field lists none: nothing to check against.)
    for (dir, info, (records, _)) in runs.iter().filter(|(_, info, _)| !info.planned.is_empty()) {
        let ids: Vec<String> = records
            .iter()
            .filter(|r| !info.planned.contains(&r.id))
            .map(|r| r.id.clone())
            .collect();
        if !ids.is_empty() {
            return Err(MergeError::Unplanned {
                dir: dir.clone(),
                ids,
            });
        }
    }
    let mut merged = join(&runs);
    merged.info.command_line = command_line;
    merged.info.merged_from = dirs.iter().map(|d| d.display().to_string()).collect();
    let mut writer = ResultsWriter::create(out)?;
    for record in &merged.records {
        writer.append(record)?;
    }
    writer.write_run_info(&merged.info)?;
    Ok(merged)
}

type Run = (PathBuf, RunInfo, (Vec<VariantRecord>, Vec<String>));

fn read_run(dir: &Path) -> Result<Run, MergeError> {
    let path = dir.join(RUN_INFO_FILE);
    let info = std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
        .map_err(|message| MergeError::RunInfo { path, message })?;
    let records = read_records(&dir.join(super::RESULTS_FILE))?;
    Ok((dir.to_owned(), info, records))
}

/// Same suite file and precheck version, and settings other than the shard.
fn check_same_run(
    (first_dir, first): (&PathBuf, &RunInfo),
    (dir, info): (&PathBuf, &RunInfo),
) -> Result<(), MergeError> {
    let mismatch = |what, a: String, b: String| MergeError::Mismatch {
        first: first_dir.clone(),
        second: dir.clone(),
        what,
        first_value: a,
        second_value: b,
    };
    let suite = |i: &RunInfo| format!("suite `{}` sha256 {}", i.suite.name, i.suite.sha256);
    if first.suite.sha256 != info.suite.sha256 {
        return Err(mismatch("suite files", suite(first), suite(info)));
    }
    if first.precheck_version != info.precheck_version {
        return Err(mismatch(
            "precheck versions",
            first.precheck_version.clone(),
            info.precheck_version.clone(),
        ));
    }
    let count = |i: &RunInfo| {
        i.settings
            .shard
            .map_or("none".into(), |s| s.count.to_string())
    };
    if count(first) != count(info) {
        return Err(mismatch("shard counts", count(first), count(info)));
    }
    let unsharded = |i: &RunInfo| {
        let mut settings = i.settings.clone();
        settings.shard = None;
        serde_json::to_string(&settings).expect("settings serialize")
    };
    if unsharded(first) != unsharded(info) {
        return Err(mismatch("settings", unsharded(first), unsharded(info)));
    }
    Ok(())
}

/// The records of every run, each variant once, and what is missing or doubled.
fn join(runs: &[Run]) -> Merged {
    let mut info = runs[0].1.clone();
    let mut planned = Vec::new();
    let mut seen_planned = HashSet::new();
    let mut records = Vec::new();
    let mut times: HashMap<&str, usize> = HashMap::new();
    let mut warnings = Vec::new();
    for (_, run, (run_records, run_warnings)) in runs {
        planned.extend(
            run.planned
                .iter()
                .filter(|id| seen_planned.insert(id.as_str()))
                .cloned(),
        );
        for record in run_records {
            let count = times.entry(record.id.as_str()).or_default();
            *count += 1;
            if *count == 1 {
                records.push(record.clone());
            }
        }
        warnings.extend(run_warnings.iter().cloned());
        if !info.device_name.contains(&run.device_name) {
            info.device_name = format!("{} + {}", info.device_name, run.device_name);
        }
        info.started_at = info.started_at.min(run.started_at);
        info.finished_at = info.finished_at.zip(run.finished_at).map(|(a, b)| a.max(b));
    }
    let duplicates = records
        .iter()
        .filter(|r| times[r.id.as_str()] > 1)
        .map(|r| r.id.clone())
        .collect();
    let missing = planned
        .iter()
        .filter(|id| !times.contains_key(id.as_str()))
        .cloned()
        .collect();
    let shards: BTreeSet<(usize, usize)> = runs
        .iter()
        .filter_map(|(_, run, _)| run.settings.shard.map(|s| (s.index, s.count)))
        .collect();
    let missing_shards = match info.settings.shard {
        Some(shard) => (0..shard.count)
            .filter(|index| !shards.contains(&(*index, shard.count)))
            .map(|index| format!("{index}/{}", shard.count))
            .collect(),
        None => Vec::new(),
    };
    info.settings.shard = None;
    info.variants_planned = planned.len();
    info.planned = planned;
    info.resumed_at = Vec::new();
    Merged {
        info,
        records,
        missing,
        duplicates,
        missing_shards,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = "tests/fixtures/runs/base";

    /// A copy of the fixture run in `into`, its `run.json` changed by `edit`.
    fn copy(into: &Path, edit: impl Fn(&mut RunInfo)) -> PathBuf {
        std::fs::create_dir_all(into).unwrap();
        std::fs::copy(
            Path::new(FIXTURE).join(super::super::RESULTS_FILE),
            into.join(super::super::RESULTS_FILE),
        )
        .unwrap();
        let text = std::fs::read_to_string(Path::new(FIXTURE).join(RUN_INFO_FILE)).unwrap();
        let mut info: RunInfo = serde_json::from_str(&text).unwrap();
        edit(&mut info);
        std::fs::write(
            into.join(RUN_INFO_FILE),
            serde_json::to_string(&info).unwrap(),
        )
        .unwrap();
        into.to_owned()
    }

    #[test]
    fn a_record_its_run_did_not_plan_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (records, _) =
            read_records(&Path::new(FIXTURE).join(super::super::RESULTS_FILE)).unwrap();
        let planned: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let whole = copy(&dir.path().join("a"), |info| info.planned = planned.clone());
        let short = copy(&dir.path().join("b"), |info| {
            info.planned = planned[..planned.len() - 1].to_vec();
        });
        let dropped = planned.last().unwrap();
        let error = merge(&[whole, short.clone()], &dir.path().join("out"), vec![])
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            format!(
                "{}: records of variants its run did not plan: {}",
                short.display(),
                dropped
            )
        );
    }
}
