//! The GPU's SM clock around a timing, as NVML reads it: whether the timing ran throttled.

use serde::{Deserialize, Serialize};

/// One reading of a GPU's SM clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SmClock {
    /// The SM clock, MHz.
    pub sm_mhz: u32,
    /// Its maximum, MHz.
    pub max_sm_mhz: u32,
    /// Why NVML says the clock is held down (`sw_power_cap`, `hw_thermal_slowdown`, ...;
    /// `gpu_idle` between launches); empty for none.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// NVML's running total of the time the power limit held the clocks down, nanoseconds
    /// (its difference across a timing shows capping the clock read after it cannot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_capped_ns: Option<u64>,
}

/// The SM clock around a variant's timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Clocks {
    /// Before the warm-up.
    pub before: SmClock,
    /// After the last timed iteration.
    pub after: SmClock,
}

impl Clocks {
    /// How long the power limit held the clocks down between the two reads, milliseconds.
    pub fn power_capped_ms(&self) -> Option<f64> {
        let (before, after) = (self.before.power_capped_ns?, self.after.power_capped_ns?);
        Some(after.saturating_sub(before) as f64 / 1e6)
    }

    /// A note when the clock ended below 90 % of its maximum, or the power limit held it down
    /// during the timing: the timings may be throttled.
    pub fn throttle_note(&self) -> Option<String> {
        let after = &self.after;
        let low = f64::from(after.sm_mhz) < 0.9 * f64::from(after.max_sm_mhz);
        let capped = self.power_capped_ms().filter(|&ms| ms > 0.0);
        if !low && capped.is_none() {
            return None;
        }
        let reasons = if after.reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", after.reasons.join(", "))
        };
        let capped = capped.map_or(String::new(), |ms| {
            format!("; power-capped for {ms:.1} ms of it")
        });
        Some(format!(
            "SM clock {} → {} MHz of {} during timing{reasons}{capped}",
            self.before.sm_mhz, after.sm_mhz, after.max_sm_mhz,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(sm_mhz: u32, reasons: &[&str]) -> SmClock {
        SmClock {
            sm_mhz,
            max_sm_mhz: 1980,
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
            power_capped_ns: None,
        }
    }

    #[test]
    fn a_clock_below_nine_tenths_of_its_maximum_is_noted() {
        let steady = Clocks {
            before: clock(1980, &[]),
            after: clock(1800, &[]),
        };
        assert_eq!(steady.throttle_note(), None);
        let throttled = Clocks {
            before: clock(1980, &[]),
            after: clock(1410, &["sw_power_cap"]),
        };
        assert_eq!(
            throttled.throttle_note().unwrap(),
            "SM clock 1980 → 1410 MHz of 1980 during timing (sw_power_cap)"
        );
    }

    #[test]
    fn power_capping_during_the_timing_is_noted_even_at_full_clock() {
        let capped_at = |ns| SmClock {
            power_capped_ns: Some(ns),
            ..clock(1980, &[])
        };
        let capped = Clocks {
            before: capped_at(5_000_000),
            after: capped_at(17_500_000),
        };
        assert_eq!(capped.power_capped_ms(), Some(12.5));
        assert_eq!(
            capped.throttle_note().unwrap(),
            "SM clock 1980 → 1980 MHz of 1980 during timing; power-capped for 12.5 ms of it"
        );
        let uncapped = Clocks {
            before: capped_at(5_000_000),
            after: capped_at(5_000_000),
        };
        assert_eq!(uncapped.throttle_note(), None);
    }
}
