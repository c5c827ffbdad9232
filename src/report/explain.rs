//! `precheck explain`: a variant's precision evidence written out for a person, so that a verdict
//! can be checked by hand: what was asked for, what the output sits closest to, which kernels ran.

use std::fmt::Write;

use crate::mismatch::{Direction, Mismatch, Verdict};
use crate::results::VariantRecord;

/// Alternatives of the fingerprint listed, nearest first.
const NEAREST_SHOWN: usize = 6;

/// The explanation of `record`.
pub fn explain(record: &VariantRecord) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "{}  ({:?})", record.id, record.status);
    let _ = writeln!(text, "  policy:   {} ({})", record.policy, record.precision);
    let _ = writeln!(
        text,
        "  ran on:   {} backend, {}{}",
        record.backend.name(),
        record.device_name,
        if record.emulated {
            " — emulated: quantized values multiplied in a wider format"
        } else {
            ""
        }
    );
    if let Some(accuracy) = record.accuracy {
        let _ = writeln!(
            text,
            "  accuracy: cos {:.6} (1 − cos {:.2e}) against the reference",
            accuracy.cos,
            1.0 - accuracy.cos
        );
    }
    if let Some(agreement) = record.cpu_agreement {
        let _ = writeln!(
            text,
            "  CPU emulation of the same policy: 1 − cos {:.2e}",
            1.0 - agreement.cos
        );
    }
    if let Some(error) = &record.error {
        let _ = writeln!(text, "  error:    {error}");
    }
    match &record.mismatch {
        Some(mismatch) => evidence(&mut text, mismatch),
        None => {
            let _ = writeln!(
                text,
                "\nNo precision evidence: the CPU backend is precheck's emulation itself, or the variant did not run."
            );
        }
    }
    if !record.layers.is_empty() {
        along(&mut text, record);
    }
    text
}

/// How many of the worst values `explain` names before listing all.
const WORST_SHOWN: usize = 5;

/// The accuracy after each layer (a stack) or along the graph (an ONNX model): where it first
/// falls below the gate, the worst values, then every one in order.
fn along(text: &mut String, record: &VariantRecord) {
    let heading = if record.block == "onnx" {
        "Along the graph, in graph order (each value against the reference's)"
    } else {
        "Accuracy after each layer"
    };
    let _ = writeln!(text, "\n{heading}");
    let cos_min = record.gates.cos_min;
    // NaN compares false: a NaN value is below every gate.
    let below = |cos: f64| cos.is_nan() || cos < cos_min;
    match record.layers.iter().find(|l| below(l.accuracy.cos)) {
        Some(first) => {
            let _ = writeln!(
                text,
                "  first below cos_min {cos_min}: {} (cos {:.6})",
                first.name, first.accuracy.cos
            );
        }
        None => {
            let _ = writeln!(text, "  none below cos_min {cos_min}");
        }
    }
    if record.layers.len() > WORST_SHOWN {
        let mut worst: Vec<_> = record.layers.iter().collect();
        let key = |cos: f64| if cos.is_nan() { f64::NEG_INFINITY } else { cos };
        worst.sort_by(|a, b| key(a.accuracy.cos).total_cmp(&key(b.accuracy.cos)));
        let named: Vec<String> = worst
            .iter()
            .take(WORST_SHOWN)
            .map(|l| format!("{} ({:.6})", l.name, l.accuracy.cos))
            .collect();
        let _ = writeln!(text, "  worst: {}", named.join(", "));
    }
    let width = record
        .layers
        .iter()
        .map(|l| l.name.chars().count())
        .max()
        .unwrap_or(0);
    for layer in &record.layers {
        let _ = writeln!(
            text,
            "  {:<width$} cos {:.6}  1 − cos {:.2e}",
            layer.name,
            layer.accuracy.cos,
            1.0 - layer.accuracy.cos
        );
    }
}

fn direction(direction: Direction) -> &'static str {
    match direction {
        Direction::Higher => "higher than asked: the precision paid for did not run",
        Direction::Lower => "lower than the policy keeps it",
    }
}

fn evidence(text: &mut String, mismatch: &Mismatch) {
    let _ = match &mismatch.verdict {
        Verdict::None => writeln!(text, "\nVerdict: no mismatch"),
        Verdict::Detected {
            direction: d,
            evidence,
        } => writeln!(
            text,
            "\nVerdict: MISMATCH, {}\n  {}",
            direction(*d),
            evidence.join("\n  ")
        ),
        Verdict::Suspect { reason } => writeln!(text, "\nVerdict: suspect: {reason}"),
        Verdict::NoEvidence { missing } => writeln!(
            text,
            "\nVerdict: no evidence ({} unavailable)",
            missing.join(", ")
        ),
    };
    if let Some(fingerprint) = &mismatch.fingerprint {
        let _ = writeln!(
            text,
            "\nNumeric fingerprint (1 − cos of the output to CPU emulations; a mismatch is called when one \
             is 10× closer than the request)\n  {:<44} {:.2e}",
            "the policy asked for",
            fingerprint.requested_distance
        );
        for alternative in fingerprint.alternatives.iter().take(NEAREST_SHOWN) {
            let matched = fingerprint.detected.as_ref() == Some(alternative);
            let _ = writeln!(
                text,
                "  {:<44} {:.2e}{}",
                format!(
                    "{} as {}{} ({:?})",
                    alternative.operation,
                    alternative.spec,
                    alternative
                        .alike
                        .iter()
                        .map(|a| format!(" or {a}"))
                        .collect::<String>(),
                    alternative.direction
                ),
                alternative.distance,
                if matched { "   <- matches" } else { "" }
            );
        }
        let more = fingerprint.alternatives.len().saturating_sub(NEAREST_SHOWN);
        if more > 0 {
            let _ = writeln!(text, "  … {more} more alternatives, farther");
        }
        if let Some(why) = &fingerprint.not_evaluated {
            let _ = writeln!(text, "  alternatives not emulated: {why}");
        }
    }
    if let Some(layers) = &mismatch.layers {
        let _ = writeln!(
            text,
            "\nEngine layer report ({} layers compared with their class's precision)",
            layers.layers_checked
        );
        for (label, names) in [
            ("above", &layers.above),
            ("below", &layers.below),
            ("unclassified", &layers.unclassified),
        ] {
            for name in names {
                let _ = writeln!(text, "  {label}: {name}");
            }
        }
    }
    if let Some(kernels) = &mismatch.kernels {
        let attention = kernels.attention.map_or(String::new(), |p| {
            format!("; attention's scores and p·v in {p:?}")
        });
        let _ = writeln!(
            text,
            "\nKernel trace (GEMMs should run in {:?}{attention})",
            kernels.expected
        );
        for (precision, us) in &kernels.gemm_us {
            let _ = writeln!(text, "  {precision:?} GEMM time {us:.1} µs");
        }
        for (label, names) in [
            ("above", &kernels.above),
            ("below", &kernels.below),
            ("unclassified", &kernels.unclassified),
        ] {
            for name in names {
                let _ = writeln!(text, "  {label}: {name}");
            }
        }
    }
}
