//! `precheck compare BASE HEAD`: what changed between two runs of a suite, variant by variant,
//! and whether any of it is a regression.
//!
//! A variant regresses when
//! - its verdict got worse: it passed in the base and failed a gate or errored in the head;
//! - its accuracy dropped: see [`accuracy_dropped`];
//! - it got slower beyond the noise of both runs and beyond the minimum effect: the one-sided
//!   Mann–Whitney U test finds the head's timed iterations slower than the base's scaled by
//!   `1 + latency_min_effect` (the head's gate, default 3 %) with p < [`ALPHA`], and the median
//!   grew by more than that effect.
//!
//! Latencies of emulated variants (a precision rounded or quantized, then computed in a wider
//! format) are shown and never a finding: they are the emulation's speed, not the precision's.
//!
//! The test sees the noise within each run, not drift between runs (another load on the host, a
//! warmer GPU): `latency_min_effect` must be larger than the drift between two runs of one build
//! on the machines compared.
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
    /// Slower beyond noise and minimum effect.
    Slower {
        /// Relative change of the median (0.1: 10 % slower).
        change: f64,
        /// One-sided Mann–Whitney p-value.
        p: f64,
    },
    /// Faster beyond noise and minimum effect.
    Faster {
        /// Relative change of the median (−0.1: 10 % faster).
        change: f64,
        /// One-sided Mann–Whitney p-value.
        p: f64,
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
            Finding::Slower { change, p } => {
                write!(f, "{:+.1}% slower (p = {p:.1e})", change * 100.0)
            }
            Finding::Faster { change, p } => {
                write!(f, "{:.1}% faster (p = {p:.1e})", -change * 100.0)
            }
        }
    }
}

/// The latency of one variant in both runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyChange {
    /// Base median, ms.
    pub base_median_ms: f64,
    /// Head median, ms.
    pub head_median_ms: f64,
    /// `head / base − 1`.
    pub change: f64,
    /// p-value of "the head is slower than the base by more than `min_effect`".
    pub p_slower: f64,
    /// p-value of "the base is slower than the head by more than `min_effect`".
    pub p_faster: f64,
    /// The smallest change that may count (the head's `latency_min_effect`).
    pub min_effect: f64,
    /// Whether either run's timings are an emulation's: shown, never a finding (an emulation's
    /// speed says nothing about its precision's).
    pub emulated: bool,
}

impl LatencyChange {
    /// Tests each direction against the minimum effect as a margin: "slower" compares the head's
    /// iterations with the base's scaled by `1 + min_effect`, so a small p says the head is
    /// slower by more than the minimum effect, beyond the noise of both runs. (Testing for any
    /// difference and then checking the medians would let a 3.1 % drift between two runs of one
    /// build pass as a regression whenever the runs are long enough to be confident about it.)
    fn between(base: &VariantRecord, head: &VariantRecord) -> Option<LatencyChange> {
        let (b, h) = (base.latency.as_ref()?, head.latency.as_ref()?);
        let min_effect = head.gates.latency_min_effect;
        let beyond_margin = |samples: &[f64]| -> Vec<f64> {
            samples.iter().map(|s| s * (1.0 + min_effect)).collect()
        };
        Some(LatencyChange {
            base_median_ms: b.median_ms,
            head_median_ms: h.median_ms,
            change: h.median_ms / b.median_ms - 1.0,
            p_slower: stats::mann_whitney_greater(&beyond_margin(&b.samples_ms), &h.samples_ms)?,
            p_faster: stats::mann_whitney_greater(&beyond_margin(&h.samples_ms), &b.samples_ms)?,
            min_effect,
            emulated: base.emulated || head.emulated,
        })
    }

    fn finding(&self) -> Option<Finding> {
        if self.emulated {
            None
        } else if self.p_slower < ALPHA && self.change > self.min_effect {
            Some(Finding::Slower {
                change: self.change,
                p: self.p_slower,
            })
        } else if self.p_faster < ALPHA && self.change < -self.min_effect {
            Some(Finding::Faster {
                change: self.change,
                p: self.p_faster,
            })
        } else {
            None
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
    fn between(base: &VariantRecord, head: &VariantRecord) -> VariantChange {
        let both = |metric: fn(&crate::measure::Accuracy) -> f64| {
            Some((
                metric(base.accuracy.as_ref()?),
                metric(head.accuracy.as_ref()?),
            ))
        };
        let cos = both(|a| a.cos);
        let latency = LatencyChange::between(base, head);
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

/// The comparison of two runs.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The base run folder.
    pub base_dir: PathBuf,
    /// The head run folder.
    pub head_dir: PathBuf,
    /// Variants in both runs, in the head's order.
    pub variants: Vec<VariantChange>,
    /// Ids only the head has.
    pub new: Vec<String>,
    /// Ids only the base has.
    pub missing: Vec<String>,
    /// Why the comparison may mislead (different suites or devices, interrupted runs).
    pub caveats: Vec<String>,
}

impl Comparison {
    /// Compares `head` with `base`.
    pub fn of(base: &RecordedRun, head: &RecordedRun) -> Comparison {
        let base_by_id: HashMap<&str, &VariantRecord> =
            base.records.iter().map(|r| (r.id.as_str(), r)).collect();
        let head_ids: std::collections::HashSet<&str> =
            head.records.iter().map(|r| r.id.as_str()).collect();
        let (mut variants, mut new) = (Vec::new(), Vec::new());
        for record in &head.records {
            match base_by_id.get(record.id.as_str()) {
                Some(base_record) => variants.push(VariantChange::between(base_record, record)),
                None => new.push(record.id.clone()),
            }
        }
        let missing = base
            .records
            .iter()
            .filter(|r| !head_ids.contains(r.id.as_str()))
            .map(|r| r.id.clone())
            .collect();
        Comparison {
            base_dir: base.dir.clone(),
            head_dir: head.dir.clone(),
            variants,
            new,
            missing,
            caveats: caveats(base, head),
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

fn caveats(base: &RecordedRun, head: &RecordedRun) -> Vec<String> {
    let mut caveats = Vec::new();
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
                "different {what} ({then} in base, {now} in head): changes may come from that, not the build"
            ));
        }
    }
    if b.suite.sha256 != h.suite.sha256 && b.suite.name == h.suite.name {
        caveats.push("the suite file changed between the runs".to_owned());
    }
    for (name, run) in [("base", base), ("head", head)] {
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
            latency_change: latency
                .map_or_else(String::new, |l| format!("{:+.1}%", l.change * 100.0)),
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
    base: String,
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
            base: comparison.base_dir.display().to_string(),
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
    let mut text = format!(
        "## {} precheck compare: {}\n\n{}\n\nbase `{}` → head `{}`\n\n",
        markdown::mark(page.class),
        page.headline,
        page.verdict,
        markdown::escape(&page.base),
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
            "p",
            "findings",
        ],
        &[false, false, true, true, true, true, false],
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
            p_slower: p,
            p_faster: 1.0 - p,
            min_effect: 0.03,
            emulated: false,
        }
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
}
