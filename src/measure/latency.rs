//! Latency: warm-up, timed iterations, and the statistics of their distribution.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The distribution of a variant's per-iteration latency, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LatencyStats {
    /// Median.
    pub median_ms: f64,
    /// 10th percentile.
    pub p10_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// Fastest iteration.
    pub min_ms: f64,
    /// Slowest iteration.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Sample standard deviation (0 for one iteration).
    pub stddev_ms: f64,
    /// Every timed iteration, in order: what `compare` tests differences on.
    pub samples_ms: Vec<f64>,
}

impl LatencyStats {
    /// Statistics of `samples`; `None` when there are none.
    pub fn from_samples(samples: &[Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let samples_ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        let mut sorted = samples_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len() as f64;
        let mean = sorted.iter().sum::<f64>() / n;
        let variance = if sorted.len() > 1 {
            sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Some(LatencyStats {
            median_ms: percentile(&sorted, 0.5),
            p10_ms: percentile(&sorted, 0.1),
            p90_ms: percentile(&sorted, 0.9),
            min_ms: sorted[0],
            max_ms: sorted[sorted.len() - 1],
            mean_ms: mean,
            stddev_ms: variance.sqrt(),
            samples_ms,
        })
    }
}

/// The `q`-quantile of sorted values, interpolating linearly between ranks (NumPy's default).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = q * (sorted.len() - 1) as f64;
    let low = rank.floor() as usize;
    let high = rank.ceil() as usize;
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
}

/// Runs `step` `warmup` times untimed, then `iterations` times timed; stops at the first error.
pub fn time_runs<E>(
    warmup: u32,
    iterations: usize,
    mut step: impl FnMut() -> Result<(), E>,
) -> Result<Vec<Duration>, E> {
    for _ in 0..warmup {
        step()?;
    }
    (0..iterations)
        .map(|_| {
            let start = Instant::now();
            step()?;
            Ok(start.elapsed())
        })
        .collect()
}

/// An engine's reported latency of `ms` milliseconds as a duration: it must be positive and
/// finite (a zero would make an infinite speed-up, a NaN no order) and under a day (beyond, the
/// number is garbage, and `Duration` cannot hold 1e308 s).
pub fn engine_latency(ms: f64) -> Result<Duration, String> {
    const DAY_MS: f64 = 86_400_000.0;
    if ms.is_finite() && ms > 0.0 && ms < DAY_MS {
        Ok(Duration::from_secs_f64(ms / 1e3))
    } else {
        Err(format!(
            "latency {ms} ms: an engine's latency must be positive, finite and under a day"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn statistics_of_a_known_sample() {
        let stats = LatencyStats::from_samples(&ms(&[5, 1, 4, 2, 3])).unwrap();
        assert_eq!(stats.median_ms, 3.0);
        assert_eq!(stats.min_ms, 1.0);
        assert_eq!(stats.max_ms, 5.0);
        assert_eq!(stats.mean_ms, 3.0);
        // NumPy: percentile([1..5], 10) = 1.4, percentile(.., 90) = 4.6.
        assert!((stats.p10_ms - 1.4).abs() < 1e-12);
        assert!((stats.p90_ms - 4.6).abs() < 1e-12);
        assert!((stats.stddev_ms - 2.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(stats.samples_ms, [5.0, 1.0, 4.0, 2.0, 3.0]);
    }

    #[test]
    fn even_count_median_interpolates() {
        let stats = LatencyStats::from_samples(&ms(&[1, 2, 3, 10])).unwrap();
        assert_eq!(stats.median_ms, 2.5);
    }

    #[test]
    fn no_samples_no_statistics() {
        assert_eq!(LatencyStats::from_samples(&[]), None);
    }

    #[test]
    fn warmup_is_not_timed_and_errors_stop_the_loop() {
        let mut calls = 0;
        let times = time_runs::<()>(2, 3, || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((times.len(), calls), (3, 5));
        let mut calls = 0;
        let failed = time_runs(1, 3, || {
            calls += 1;
            if calls == 2 {
                Err("boom")
            } else {
                Ok(())
            }
        });
        assert_eq!((failed, calls), (Err("boom"), 2));
    }

    #[test]
    fn engine_latencies_are_positive_finite_and_bounded() {
        assert_eq!(engine_latency(1.5).unwrap(), Duration::from_micros(1500));
        for garbage in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e308] {
            let error = engine_latency(garbage).unwrap_err();
            assert!(
                error.contains("must be positive, finite"),
                "{garbage}: {error}"
            );
        }
    }
}
