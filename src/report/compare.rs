//! `precheck compare BASE... HEAD`: what changed between runs of a suite, variant by variant,
//! and whether any of it is a regression.
//!
//! The last base is *the* base: verdicts, accuracy, new and missing variants are the head's against
//! it. Earlier bases (the nights before, or repeated runs of one build) add their latencies: with
//! [`MIN_DRIFT_RUNS`] or more, compare measures how far a variant's median moves between runs of
//! one machine (see [`Drift`]) instead of assuming it.
//!
//! A variant regresses when
//! - its verdict got worse: it passed in the base and failed a gate or errored in the head;
//! - its accuracy dropped: see [`accuracy_dropped`];
//! - it got slower beyond the noise within the runs, beyond the drift between them and beyond
//!   the minimum effect: its median grew by more than the threshold (the head's
//!   `latency_min_effect`, default 3 %, or the measured drift's margin, whichever is larger), and
//!   the one-sided Mann–Whitney U test finds the head's timed iterations slower than the bases'
//!   scaled by `1 + threshold` with p < [`ALPHA`].
//!
//! Latencies of emulated variants (a precision rounded or quantized, then computed in a wider
//! format) are shown and never a finding: they are the emulation's speed, not the precision's.
//!
//! New and missing variants are listed, not counted as regressions: a suite that drops a variant
//! changed what it tests, which a reviewer sees in the suite's diff.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::write::write_text;
use super::{html, markdown, stats, RecordedRun, ReportError};
use crate::exit_code::ExitCode;
use crate::results::{Status, VariantRecord};

/// The HTML comparison.
pub const HTML_FILE: &str = "compare.html";
/// The Markdown comparison.
pub const MARKDOWN_FILE: &str = "compare.md";

/// `precheck compare`'s exit codes, for its help.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  no variant regressed
  1  a variant regressed: its verdict went from pass to fail or error, its accuracy dropped, or it
     got slower beyond the noise of both runs and the minimum effect
  2  a run folder cannot be read, the reports cannot be written, or the runs have no variant in
     common (nothing was compared)";

/// Significance level of the latency test: below it, a slowdown is beyond the runs' noise.
pub const ALPHA: f64 = 0.01;

/// Base runs from which compare measures the drift between runs. Two give one degree of freedom,
/// a margin of 318 standard deviations: no use.
pub const MIN_DRIFT_RUNS: usize = 3;

/// `1 − cos` must grow by more than this (absolute) to count as an accuracy drop: below it lie
/// the last bits of a GPU's non-deterministic reductions.
pub const ACCURACY_DROP_ABS: f64 = 1e-6;

/// Whether the head's cosine is a drop from the base's: the head is NaN where the base was not,
/// or its error `1 − cos` more than doubled and grew by more than [`ACCURACY_DROP_ABS`]. Relative
/// because precisions live decades apart (FP32 near 1e-14, BF16 near 1e-4): doubling is a real
/// change at every one of them.
pub fn accuracy_dropped(base_cos: f64, head_cos: f64) -> bool {
    if head_cos.is_nan() {
        return !base_cos.is_nan();
    }
    let base_error = (1.0 - base_cos).max(0.0);
    let growth = (1.0 - head_cos) - base_error;
    growth > ACCURACY_DROP_ABS && growth > base_error
}

/// Something that changed about one variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// The verdict changed.
    Verdict {
        /// In the base.
        from: Status,
        /// In the head.
        to: Status,
    },
    /// Accuracy dropped (see [`accuracy_dropped`]).
    AccuracyDrop {
        /// Base cosine.
        base_cos: f64,
        /// Head cosine.
        head_cos: f64,
    },
    /// Slower beyond noise, drift and minimum effect.
    Slower {
        /// Relative change of the median (0.1: 10 % slower).
        change: f64,
        /// One-sided Mann–Whitney p-value.
        p: f64,
        /// The smallest change that counted (see [`LatencyChange::threshold`]).
        threshold: f64,
    },
    /// Faster beyond noise, drift and minimum effect.
    Faster {
        /// Relative change of the median (−0.1: 10 % faster).
        change: f64,
        /// One-sided Mann–Whitney p-value.
        p: f64,
        /// The smallest change that counted (see [`LatencyChange::threshold`]).
        threshold: f64,
    },
}

impl Finding {
    /// Whether it makes `compare` fail.
    pub fn is_regression(&self) -> bool {
        match self {
            Finding::Verdict { from, to } => *from == Status::Passed && *to != Status::Passed,
            Finding::AccuracyDrop { .. } | Finding::Slower { .. } => true,
            Finding::Faster { .. } => false,
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Verdict { from, to } => write!(f, "verdict {} → {}", from.name(), to.name()),
            Finding::AccuracyDrop { base_cos, head_cos } => write!(
                f,
                "accuracy dropped: 1 − cos {:.2e} → {:.2e}",
                1.0 - base_cos,
                1.0 - head_cos
            ),
            Finding::Slower {
                change,
                p,
                threshold,
            } => write!(
                f,
                "{:+.1}% slower (p = {p:.1e}; counts beyond {:.1}%)",
                change * 100.0,
                threshold * 100.0
            ),
            Finding::Faster {
                change,
                p,
                threshold,
            } => write!(
                f,
                "{:.1}% faster (p = {p:.1e}; counts beyond {:.1}%)",
                -change * 100.0,
                threshold * 100.0
            ),
        }
    }
}

/// How far a variant's median moves between runs of one build on one machine, measured over the
/// base runs: another load on the host, a warmer GPU, a different kernel picked by a heuristic.
/// (Seen on an H200: the BF16 MLP's median moves 3.5 % between runs while its iterations within a
/// run agree to 0.3 %.)
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Drift {
    /// Base runs measured.
    pub runs: usize,
    /// Standard deviation of the natural log of the runs' medians (0.035: about 3.5 %).
    pub spread: f64,
    /// How much slower than the bases' (geometric) mean median one more run of the same build may
    /// be, by chance, once in a thousand: the one-sided 99.9 % prediction bound
    /// `exp(t · spread · √(1 + 1/runs)) − 1`, with Student's t for `runs − 1` degrees of freedom.
    pub margin: f64,
}

impl Drift {
    /// The drift among the natural logs of the base runs' medians; `None` under
    /// [`MIN_DRIFT_RUNS`].
    pub fn of(log_medians: &[f64]) -> Option<Drift> {
        let runs = log_medians.len();
        if runs < MIN_DRIFT_RUNS {
            return None;
        }
        let mean = log_medians.iter().sum::<f64>() / runs as f64;
        let variance =
            log_medians.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (runs - 1) as f64;
        let spread = variance.sqrt();
        let bound = stats::student_t_999(runs - 1) * spread * (1.0 + 1.0 / runs as f64).sqrt();
        Some(Drift {
            runs,
            spread,
            margin: bound.exp_m1(),
        })
    }
}

/// The latency of one variant in the base runs and the head.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyChange {
    /// Base median, ms: the geometric mean of the base runs' medians.
    pub base_median_ms: f64,
    /// Head median, ms.
    pub head_median_ms: f64,
    /// `head / base − 1`.
    pub change: f64,
    /// Base runs that timed the variant.
    pub base_runs: usize,
    /// The drift between the base runs, when there are [`MIN_DRIFT_RUNS`] of them.
    pub drift: Option<Drift>,
    /// The smallest change that may count: the head's `latency_min_effect` or the drift's
    /// margin, whichever is larger.
    pub threshold: f64,
    /// p-value of "the head is slower than the bases by more than `threshold`".
    pub p_slower: f64,
    /// p-value of "the bases are slower than the head by more than `threshold`".
    pub p_faster: f64,
    /// Whether any run's timings are an emulation's: shown, never a finding (an emulation's
    /// speed says nothing about its precision's).
    pub emulated: bool,
}

impl LatencyChange {
    /// Tests each direction with the threshold as a margin: "slower" compares the head's
    /// iterations with the bases' scaled by `1 + threshold`, so a small p says the head is slower
    /// by more than the threshold, beyond the noise of the runs. (Testing for any difference and
    /// then checking the medians would let a 3.1 % drift between two runs of one build pass as a
    /// regression whenever the runs are long enough to be confident about it.)
    fn between(bases: &[&VariantRecord], head: &VariantRecord) -> Option<LatencyChange> {
        let h = head.latency.as_ref()?;
        let timed: Vec<_> = bases.iter().filter_map(|b| b.latency.as_ref()).collect();
        if timed.is_empty() {
            return None;
        }
        let log_medians: Vec<f64> = timed.iter().map(|l| l.median_ms.ln()).collect();
        let base_median_ms = (log_medians.iter().sum::<f64>() / timed.len() as f64).exp();
        let drift = Drift::of(&log_medians);
        let min_effect = head.gates.latency_min_effect;
        let threshold = drift.map_or(min_effect, |d| d.margin.max(min_effect));
        let base_samples: Vec<f64> = timed
            .iter()
            .flat_map(|l| l.samples_ms.iter().copied())
            .collect();
        let beyond_margin = |samples: &[f64]| -> Vec<f64> {
            samples.iter().map(|s| s * (1.0 + threshold)).collect()
        };
        Some(LatencyChange {
            base_median_ms,
            head_median_ms: h.median_ms,
            change: h.median_ms / base_median_ms - 1.0,
            base_runs: timed.len(),
            drift,
            threshold,
            p_slower: stats::mann_whitney_greater(&beyond_margin(&base_samples), &h.samples_ms)?,
            p_faster: stats::mann_whitney_greater(&beyond_margin(&h.samples_ms), &base_samples)?,
            emulated: head.emulated || bases.iter().any(|b| b.emulated),
        })
    }

    fn finding(&self) -> Option<Finding> {
        // Faster mirrors slower in ratio: the base is slower than the head by `threshold`.
        let faster_than = 1.0 / (1.0 + self.threshold) - 1.0;
        if self.emulated {
            None
        } else if self.p_slower < ALPHA && self.change > self.threshold {
            Some(Finding::Slower {
                change: self.change,
                p: self.p_slower,
                threshold: self.threshold,
            })
        } else if self.p_faster < ALPHA && self.change < faster_than {
            Some(Finding::Faster {
                change: self.change,
                p: self.p_faster,
                threshold: self.threshold,
            })
        } else {
            None
        }
    }

    /// What the threshold comes from, for a reader: "3.0%" or "27.1% (drift of 5 runs)".
    fn threshold_text(&self) -> String {
        let percent = format!("{:.1}%", self.threshold * 100.0);
        match self.drift {
            Some(d) if d.margin >= self.threshold => {
                format!("{percent} (drift of {} runs)", d.runs)
            }
            _ => percent,
        }
    }
}

/// One variant present in both runs.
#[derive(Debug, Clone, Serialize)]
pub struct VariantChange {
    /// Variant id.
    pub id: String,
    /// Verdict in the base.
    pub base_status: Status,
    /// Verdict in the head.
    pub head_status: Status,
    /// `(base, head)` cosine, when both were measured.
    pub cos: Option<(f64, f64)>,
    /// `(base, head)` largest absolute error, when both were measured.
    pub max_abs_err: Option<(f64, f64)>,
    /// Latency in both, when both were timed.
    pub latency: Option<LatencyChange>,
    /// What changed that matters.
    pub findings: Vec<Finding>,
}

impl VariantChange {
    /// `bases` hold the variant's records in the base runs, oldest first: the last is the base.
    fn between(bases: &[&VariantRecord], head: &VariantRecord) -> VariantChange {
        let base = *bases.last().expect("a compared variant is in the base");
        let both = |metric: fn(&crate::measure::Accuracy) -> f64| {
            Some((
                metric(base.accuracy.as_ref()?),
                metric(head.accuracy.as_ref()?),
            ))
        };
        let cos = both(|a| a.cos);
        let latency = LatencyChange::between(bases, head);
        let mut findings = Vec::new();
        if base.status != head.status {
            findings.push(Finding::Verdict {
                from: base.status,
                to: head.status,
            });
        }
        if let Some((base_cos, head_cos)) = cos.filter(|(b, h)| accuracy_dropped(*b, *h)) {
            findings.push(Finding::AccuracyDrop { base_cos, head_cos });
        }
        findings.extend(latency.as_ref().and_then(LatencyChange::finding));
        VariantChange {
            id: head.id.clone(),
            base_status: base.status,
            head_status: head.status,
            cos,
            max_abs_err: both(|a| a.max_abs_err),
            latency,
            findings,
        }
    }

    /// Whether any finding is a regression.
    pub fn regressed(&self) -> bool {
        self.findings.iter().any(Finding::is_regression)
    }
}

/// The comparison of a head run with one or more base runs.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The base run folders, oldest first; the last is the base of verdicts and accuracy.
    pub base_dirs: Vec<PathBuf>,
    /// The head run folder.
    pub head_dir: PathBuf,
    /// Variants in both the head and the last base, in the head's order.
    pub variants: Vec<VariantChange>,
    /// Ids only the head has (against the last base).
    pub new: Vec<String>,
    /// Ids only the last base has.
    pub missing: Vec<String>,
    /// Why the comparison may mislead (different suites or devices, interrupted runs, drift that
    /// was not measured).
    pub caveats: Vec<String>,
}

impl Comparison {
    /// Compares `head` with `bases` (oldest first, at least one).
    pub fn of(bases: &[RecordedRun], head: &RecordedRun) -> Comparison {
        let base = bases.last().expect("compare needs a base run");
        let by_id: Vec<HashMap<&str, &VariantRecord>> = bases
            .iter()
            .map(|run| run.records.iter().map(|r| (r.id.as_str(), r)).collect())
            .collect();
        let head_ids: std::collections::HashSet<&str> =
            head.records.iter().map(|r| r.id.as_str()).collect();
        let (mut variants, mut new) = (Vec::new(), Vec::new());
        for record in &head.records {
            let id = record.id.as_str();
            if by_id.last().is_some_and(|last| last.contains_key(id)) {
                let in_bases: Vec<&VariantRecord> = by_id
                    .iter()
                    .filter_map(|run| run.get(id).copied())
                    .collect();
                variants.push(VariantChange::between(&in_bases, record));
            } else {
                new.push(record.id.clone());
            }
        }
        let missing = base
            .records
            .iter()
            .filter(|r| !head_ids.contains(r.id.as_str()))
            .map(|r| r.id.clone())
            .collect();
        let mut caveats: Vec<String> = Vec::new();
        for base in bases {
            for caveat in run_caveats(base, head, bases.len() > 1) {
                if !caveats.contains(&caveat) {
                    caveats.push(caveat);
                }
            }
        }
        caveats.extend(drift_caveat(bases.len(), &variants));
        Comparison {
            base_dirs: bases.iter().map(|b| b.dir.clone()).collect(),
            head_dir: head.dir.clone(),
            variants,
            new,
            missing,
            caveats,
        }
    }

    /// The variants that regressed.
    pub fn regressions(&self) -> impl Iterator<Item = &VariantChange> {
        self.variants.iter().filter(|v| v.regressed())
    }

    /// One line per variant with findings, regressions first.
    pub fn finding_lines(&self) -> Vec<String> {
        let mut changed: Vec<&VariantChange> = self
            .variants
            .iter()
            .filter(|v| !v.findings.is_empty())
            .collect();
        changed.sort_by_key(|v| !v.regressed());
        changed
            .into_iter()
            .map(|v| {
                let label = if v.regressed() {
                    "REGRESSION"
                } else {
                    "changed"
                };
                let what: Vec<String> = v.findings.iter().map(ToString::to_string).collect();
                format!("{label:10} {}: {}", v.id, what.join("; "))
            })
            .collect()
    }

    /// [`ExitCode::GateFailed`] (1) when a variant regressed, else [`ExitCode::Success`].
    pub fn exit_code(&self) -> ExitCode {
        if self.variants.is_empty() {
            // Two runs with no variant in common (other suites, disjoint filters): nothing was
            // compared, which must not read as "no regression".
            ExitCode::UsageOrSuiteError
        } else if self.regressions().next().is_some() {
            ExitCode::GateFailed
        } else {
            ExitCode::Success
        }
    }

    /// The closing line: how many variants regressed.
    pub fn verdict_line(&self) -> String {
        format!(
            "{} variants compared: {} regressed, {} new, {} missing",
            self.variants.len(),
            self.regressions().count(),
            self.new.len(),
            self.missing.len()
        )
    }
}

/// Says that the drift between runs was assumed, not measured, for the latencies compared as
/// performance: every one when there are fewer than [`MIN_DRIFT_RUNS`] bases, else the variants
/// that fewer bases timed (new in the last nights, or errored in some).
fn drift_caveat(bases: usize, variants: &[VariantChange]) -> Option<String> {
    let unmeasured: Vec<&str> = variants
        .iter()
        .filter(|v| {
            v.latency
                .as_ref()
                .is_some_and(|l| !l.emulated && l.drift.is_none())
        })
        .map(|v| v.id.as_str())
        .collect();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let why = match (unmeasured.first(), bases < MIN_DRIFT_RUNS) {
        (None, _) => return None,
        (Some(_), true) => format!("{bases} base run{}", plural(bases)),
        (Some(first), false) => format!(
            "{} variant{} timed in fewer than {MIN_DRIFT_RUNS} of the {bases} base runs, \
             {first}{}",
            unmeasured.len(),
            plural(unmeasured.len()),
            if unmeasured.len() > 1 {
                " among them"
            } else {
                ""
            }
        ),
    };
    Some(format!(
        "drift between runs not measured ({why}): a latency change beyond the minimum effect may \
         be the machine's, not the build's; give {MIN_DRIFT_RUNS} or more earlier runs (the last \
         nights) as bases to measure it"
    ))
}

/// Caveats of comparing `head` with one `base`; `named` puts the base's folder in the message,
/// for a comparison with several.
fn run_caveats(base: &RecordedRun, head: &RecordedRun, named: bool) -> Vec<String> {
    let mut caveats = Vec::new();
    let base_name = if named {
        format!("base {}", base.dir.display())
    } else {
        "base".to_owned()
    };
    let (b, h) = (&base.info, &head.info);
    if b.suite.name != h.suite.name {
        caveats.push(format!(
            "different suites: `{}` and `{}`",
            b.suite.name, h.suite.name
        ));
    }
    if (&b.device_name, &b.host.cpu_model) != (&h.device_name, &h.host.cpu_model) {
        caveats.push(format!(
            "different machines ({} on {}; {} on {}): latency changes compare machines, not builds",
            b.device_name, b.host.cpu_model, h.device_name, h.host.cpu_model
        ));
    }
    let (bs, hs) = (&b.settings, &h.settings);
    let settings: [(&str, String, String); 6] = [
        ("seeds", bs.seed.to_string(), hs.seed.to_string()),
        (
            "iteration counts",
            bs.iterations.to_string(),
            hs.iterations.to_string(),
        ),
        (
            "warm-up counts",
            bs.warmup.to_string(),
            hs.warmup.to_string(),
        ),
        (
            "reference formats",
            bs.reference.to_string(),
            hs.reference.to_string(),
        ),
        (
            "cache states",
            format!("{:?}", bs.cache).to_lowercase(),
            format!("{:?}", hs.cache).to_lowercase(),
        ),
        (
            "backends",
            b.backend.name().to_owned(),
            h.backend.name().to_owned(),
        ),
    ];
    for (what, then, now) in settings {
        if then != now {
            caveats.push(format!(
                "different {what} ({then} in {base_name}, {now} in head): changes may come from that, not the build"
            ));
        }
    }
    if b.suite.sha256 != h.suite.sha256 && b.suite.name == h.suite.name {
        caveats.push("the suite file changed between the runs".to_owned());
    }
    for (name, run) in [(base_name.as_str(), base), ("head", head)] {
        if run.interrupted() {
            caveats.push(format!("the {name} run was interrupted"));
        }
    }
    caveats
}

/// A compared variant as a table row.
#[derive(Debug, Serialize)]
struct Row {
    id: String,
    class: &'static str,
    verdicts: String,
    cos: String,
    one_minus_cos: String,
    max_abs_err: String,
    median_ms: String,
    latency_change: String,
    threshold: String,
    p_value: String,
    findings: String,
}

fn pair(values: Option<(f64, f64)>, format: fn(f64) -> String) -> String {
    values.map_or_else(String::new, |(b, h)| {
        format!("{} → {}", format(b), format(h))
    })
}

impl Row {
    fn of(change: &VariantChange) -> Row {
        let class = if change.regressed() {
            "regression"
        } else if change.findings.is_empty() {
            ""
        } else {
            "improvement"
        };
        let latency = change.latency.as_ref();
        Row {
            id: change.id.clone(),
            class,
            verdicts: format!(
                "{} → {}",
                change.base_status.name(),
                change.head_status.name()
            ),
            cos: pair(change.cos, |c| format!("{c:.6}")),
            one_minus_cos: pair(change.cos, |c| format!("{:.2e}", 1.0 - c)),
            max_abs_err: pair(change.max_abs_err, |e| format!("{e:.3e}")),
            median_ms: pair(latency.map(|l| (l.base_median_ms, l.head_median_ms)), |m| {
                format!("{m:.3}")
            }),
            latency_change: latency.map_or_else(String::new, |l| {
                if l.emulated {
                    format!("{:+.1}% (emulated)", l.change * 100.0)
                } else {
                    format!("{:+.1}%", l.change * 100.0)
                }
            }),
            threshold: latency
                .filter(|l| !l.emulated)
                .map_or_else(String::new, LatencyChange::threshold_text),
            p_value: latency.map_or_else(String::new, |l| {
                format!(
                    "{:.1e}",
                    if l.change >= 0.0 {
                        l.p_slower
                    } else {
                        l.p_faster
                    }
                )
            }),
            findings: change
                .findings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

#[derive(Debug, Serialize)]
struct Page {
    headline: &'static str,
    class: &'static str,
    verdict: String,
    bases: Vec<String>,
    head: String,
    caveats: Vec<String>,
    rows: Vec<Row>,
    new: Vec<String>,
    missing: Vec<String>,
    alpha: f64,
    accuracy_drop_abs: String,
}

impl Page {
    fn of(comparison: &Comparison) -> Page {
        let regressed = comparison.regressions().next().is_some();
        let mut variants: Vec<&VariantChange> = comparison.variants.iter().collect();
        variants.sort_by_key(|v| (!v.regressed(), v.findings.is_empty()));
        Page {
            headline: if regressed {
                "REGRESSION"
            } else {
                "NO REGRESSION"
            },
            class: if regressed { "failed" } else { "passed" },
            verdict: comparison.verdict_line(),
            bases: comparison
                .base_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect(),
            head: comparison.head_dir.display().to_string(),
            caveats: comparison.caveats.clone(),
            rows: variants.into_iter().map(Row::of).collect(),
            new: comparison.new.clone(),
            missing: comparison.missing.clone(),
            alpha: ALPHA,
            accuracy_drop_abs: format!("{ACCURACY_DROP_ABS:e}"),
        }
    }
}

fn markdown(page: &Page) -> String {
    let bases: Vec<String> = page
        .bases
        .iter()
        .map(|b| format!("`{}`", markdown::escape(b)))
        .collect();
    let mut text = format!(
        "## {} precheck compare: {}\n\n{}\n\nbase {} → head `{}`\n\n",
        markdown::mark(page.class),
        page.headline,
        page.verdict,
        bases.join(", "),
        markdown::escape(&page.head),
    );
    for caveat in &page.caveats {
        text += &format!("> **Note**: {}\n\n", markdown::escape(caveat));
    }
    let cells: Vec<Vec<String>> = page
        .rows
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.verdicts.clone(),
                r.one_minus_cos.clone(),
                r.median_ms.clone(),
                r.latency_change.clone(),
                r.threshold.clone(),
                r.p_value.clone(),
                r.findings.clone(),
            ]
        })
        .collect();
    text += &markdown::table(
        &[
            "variant",
            "verdict",
            "1 − cos",
            "median ms",
            "Δ latency",
            "counts beyond",
            "p",
            "findings",
        ],
        &[false, false, true, true, true, true, true, false],
        &cells,
    );
    for (label, ids) in [("New", &page.new), ("Missing", &page.missing)] {
        if !ids.is_empty() {
            let ids: Vec<String> = ids.iter().map(|id| markdown::escape(id)).collect();
            text += &format!("\n**{label} variants**: {}\n", ids.join(", "));
        }
    }
    text
}

/// Writes `compare.html` and `compare.md` of `comparison` into `out`; returns their paths.
pub fn write_comparison(comparison: &Comparison, out: &Path) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(out).map_err(ReportError::io(out))?;
    let page = Page::of(comparison);
    Ok(vec![
        write_text(out, HTML_FILE, &html::render("compare.html", &page)?)?,
        write_text(out, MARKDOWN_FILE, &markdown(&page))?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_drop_needs_the_error_to_double_and_grow_past_the_floor() {
        // BF16-like error 1e-4: doubling is a drop, +50 % is not.
        assert!(accuracy_dropped(1.0 - 1e-4, 1.0 - 2.5e-4));
        assert!(!accuracy_dropped(1.0 - 1e-4, 1.0 - 1.5e-4));
        // FP32-like error 1e-14: a hundredfold growth stays under the absolute floor.
        assert!(!accuracy_dropped(1.0 - 1e-14, 1.0 - 1e-12));
        assert!(accuracy_dropped(1.0 - 1e-14, 1.0 - 2e-6));
        // NaN is a drop from a number, not from NaN; getting better is never a drop.
        assert!(accuracy_dropped(0.9999, f64::NAN));
        assert!(!accuracy_dropped(f64::NAN, f64::NAN));
        assert!(!accuracy_dropped(0.99, 0.9999));
    }

    #[test]
    fn a_verdict_regresses_only_from_a_pass() {
        let regressed = |from, to| Finding::Verdict { from, to }.is_regression();
        assert!(regressed(Status::Passed, Status::Failed));
        assert!(regressed(Status::Passed, Status::Error));
        assert!(!regressed(Status::Failed, Status::Passed));
        assert!(!regressed(Status::Failed, Status::Error));
    }

    fn latency(change: f64, p: f64) -> LatencyChange {
        LatencyChange {
            base_median_ms: 1.0,
            head_median_ms: 1.0 + change,
            change,
            base_runs: 1,
            drift: None,
            threshold: 0.03,
            p_slower: p,
            p_faster: 1.0 - p,
            emulated: false,
        }
    }

    /// A variant the last nights timed fewer than three times has no drift of its own, whatever
    /// the number of bases: the caveat names it.
    #[test]
    fn the_drift_caveat_names_variants_timed_in_too_few_bases() {
        let change = |id: &str, drift| VariantChange {
            id: id.to_owned(),
            base_status: Status::Passed,
            head_status: Status::Passed,
            cos: None,
            max_abs_err: None,
            latency: Some(LatencyChange {
                drift,
                ..latency(0.0, 0.5)
            }),
            findings: Vec::new(),
        };
        let measured = Drift::of(&[0.0, 0.01, 0.02]);
        let every_base = [change("a", measured), change("b", measured)];
        assert_eq!(drift_caveat(5, &every_base), None);
        let caveat = drift_caveat(5, &[change("a", measured), change("new/fp8", None)]).unwrap();
        assert!(
            caveat.starts_with(
                "drift between runs not measured (1 variant timed in fewer than 3 of the 5 base \
                 runs, new/fp8)"
            ),
            "{caveat}"
        );
        let one_base = drift_caveat(1, &[change("a", None)]).unwrap();
        assert!(one_base.starts_with("drift between runs not measured (1 base run)"));
    }

    #[test]
    fn latency_regresses_only_beyond_both_noise_and_minimum_effect() {
        assert!(matches!(
            latency(0.10, 0.001).finding(),
            Some(Finding::Slower { .. })
        ));
        // Significant but small.
        assert_eq!(latency(0.02, 0.0001).finding(), None);
        // Large but within the noise.
        assert_eq!(latency(0.20, 0.2).finding(), None);
        assert!(matches!(
            latency(-0.10, 0.999).finding(),
            Some(Finding::Faster { .. })
        ));
        // Faster mirrors slower in ratio: 1 / 1.03 − 1 = −2.91 % counts, −2.9 % does not.
        assert_eq!(latency(-0.029, 0.999).finding(), None);
        assert!(matches!(
            latency(-0.0295, 0.999).finding(),
            Some(Finding::Faster { .. })
        ));
        let emulated = LatencyChange {
            emulated: true,
            ..latency(0.50, 1e-9)
        };
        assert_eq!(
            emulated.finding(),
            None,
            "an emulation's slowdown is not the precision's"
        );
    }

    #[test]
    fn drift_needs_three_runs_and_widens_with_their_spread() {
        assert_eq!(Drift::of(&[0.0, 0.01]), None);
        // Three runs 1 % apart in log: spread 0.01, t(2) = 22.327, √(4/3).
        let drift = Drift::of(&[-0.01, 0.0, 0.01]).unwrap();
        assert!((drift.spread - 0.01).abs() < 1e-12);
        let bound: f64 = 22.327 * 0.01 * (4.0f64 / 3.0).sqrt();
        assert!((drift.margin - bound.exp_m1()).abs() < 1e-12, "{drift:?}");
        // Identical runs have no drift: the minimum effect decides.
        assert_eq!(Drift::of(&[0.5; 6]).unwrap().margin, 0.0);
    }

    #[test]
    fn a_measured_drift_raises_the_threshold_above_the_minimum_effect() {
        let mut wide = latency(0.10, 1e-6);
        wide.drift = Drift::of(&[-0.03, 0.0, 0.03, 0.0, 0.01]);
        wide.threshold = wide.drift.unwrap().margin;
        assert!(wide.threshold > 0.10, "{wide:?}");
        assert_eq!(wide.finding(), None, "10 % is within this drift");
        assert!(wide.threshold_text().ends_with("(drift of 5 runs)"));
        assert_eq!(latency(0.10, 1e-6).threshold_text(), "3.0%");
    }
}
