//! The statistics behind `compare`: the one-sided Mann–Whitney U test that tells a latency change
//! from the noise within two runs, and Student's t quantiles for the drift between runs.
//!
//! Why Mann–Whitney: timed iterations are not normal (a few slow outliers from the scheduler or the
//! clock are the rule), and the test uses only their ranks, so one outlier cannot make or hide a
//! regression. It is small enough to write here: `statrs` has no rank tests, and the only special
//! function it needs is the normal tail, below.

/// The p-value of "`b`'s values tend to be larger than `a`'s" (H₁: P(B > A) > ½) against "they
/// come from the same distribution". `None` when either sample is empty.
///
/// Exact (the permutation distribution of U) when there are no ties and each sample has at most
/// [`EXACT_MAX`] values; otherwise the normal approximation with the tie and continuity
/// corrections, as `scipy.stats.mannwhitneyu(b, a, alternative="greater")` computes them.
pub fn mann_whitney_greater(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let ranks = ranks(a, b);
    let (n, m) = (a.len() as f64, b.len() as f64);
    let rank_sum_b: f64 = ranks.values[a.len()..].iter().sum();
    let u_b = rank_sum_b - m * (m + 1.0) / 2.0;
    let p = if !ranks.tied && a.len() <= EXACT_MAX && b.len() <= EXACT_MAX {
        exact_upper_tail(a.len(), b.len(), u_b.round() as usize)
    } else {
        let mean = n * m / 2.0;
        let total = n + m;
        let variance = n * m / 12.0 * ((total + 1.0) - ranks.tie_term / (total * (total - 1.0)));
        if variance <= 0.0 {
            // Every value equal: no evidence of any difference.
            1.0
        } else {
            normal_upper_tail((u_b - mean - 0.5) / variance.sqrt())
        }
    };
    Some(p.clamp(0.0, 1.0))
}

/// Samples up to this size get the exact distribution (a table of `size² + 1` counts per size).
pub const EXACT_MAX: usize = 50;

/// Mid-ranks of `a` then `b` in their union, from 1.
struct Ranks {
    values: Vec<f64>,
    tied: bool,
    /// `Σ (t³ − t)` over groups of `t` tied values: the variance correction.
    tie_term: f64,
}

fn ranks(a: &[f64], b: &[f64]) -> Ranks {
    let all: Vec<f64> = a.iter().chain(b).copied().collect();
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.sort_by(|&i, &j| all[i].total_cmp(&all[j]));
    let mut values = vec![0.0; all.len()];
    let mut tie_term = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && all[order[end]] == all[order[start]] {
            end += 1;
        }
        let mid_rank = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            values[i] = mid_rank;
        }
        let t = (end - start) as f64;
        tie_term += t * t * t - t;
        start = end;
    }
    Ranks {
        values,
        tied: tie_term > 0.0,
        tie_term,
    }
}

/// P(U ≥ u) for samples of `n` and `m` distinct values from one distribution, where U counts the
/// pairs in which the value from the second sample is the larger.
///
/// Counts orderings by the recurrence on the largest value: if it belongs to the second sample it
/// beats all `i` values of the first, `f(i, j, u) = f(i, j − 1, u − i) + f(i − 1, j, u)`. Counts
/// are f64: exact up to 2⁵³, relative error 1e-16 beyond, far below what a p-value needs.
fn exact_upper_tail(n: usize, m: usize, u: usize) -> f64 {
    let max_u = n * m;
    // counts[i][v] = f(i, j, v) for the current j.
    let mut counts = vec![vec![0.0f64; max_u + 1]; n + 1];
    for row in counts.iter_mut() {
        row[0] = 1.0; // j = 0: one ordering, U = 0.
    }
    for _j in 1..=m {
        for i in 1..=n {
            let (done, rest) = counts.split_at_mut(i);
            let previous_i = &done[i - 1];
            let row = &mut rest[0];
            // row holds f(i, j − 1, ·); add the orderings whose largest value is from the first
            // sample after shifting those from the second by i.
            for v in (0..=max_u).rev() {
                let from_second = if v >= i { row[v - i] } else { 0.0 };
                row[v] = from_second + previous_i[v];
            }
        }
    }
    let row = &counts[n];
    let total: f64 = row.iter().sum();
    row[u.min(max_u + 1)..].iter().sum::<f64>() / total
}

/// Student's t at upper-tail probability 0.001, for 1 to 30 degrees of freedom (`t[df − 1]`), as
/// any table of the t distribution gives it (`scipy.stats.t.ppf(0.999, df)`); the test below
/// integrates the density to check each one.
const STUDENT_T_999: [f64; 30] = [
    318.309, 22.327, 10.215, 7.173, 5.893, 5.208, 4.785, 4.501, 4.297, 4.144, 4.025, 3.930, 3.852,
    3.787, 3.733, 3.686, 3.646, 3.610, 3.579, 3.552, 3.527, 3.505, 3.485, 3.467, 3.450, 3.435,
    3.421, 3.408, 3.396, 3.385,
];

/// The t such that P(T ≥ t) = 0.001 for Student's T with `df` degrees of freedom (at least 1).
/// Beyond 30 it stays at 30's value: a little wider than exact (3.09 in the limit), never
/// narrower.
pub fn student_t_999(df: usize) -> f64 {
    STUDENT_T_999[df.clamp(1, STUDENT_T_999.len()) - 1]
}

/// P(Z ≥ z) for a standard normal Z.
fn normal_upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function, with relative error below 1.2e-7 everywhere (the Chebyshev
/// fit of Numerical Recipes' `erfcc`). A p-value compared with 0.01 needs no more, and it saves a
/// dependency for one function.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_tail_of_complete_separation_is_one_over_the_orderings() {
        // b above every a: only 1 of C(6, 3) = 20 orderings is as extreme.
        let p = mann_whitney_greater(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]).unwrap();
        assert!((p - 1.0 / 20.0).abs() < 1e-15, "{p}");
        // b below every a: every ordering is at least as extreme.
        let p = mann_whitney_greater(&[4.0, 5.0, 6.0], &[1.0, 2.0, 3.0]).unwrap();
        assert!((p - 1.0).abs() < 1e-15, "{p}");
    }

    #[test]
    fn exact_tail_matches_enumeration() {
        // a = {1, 3}, b = {2, 4}: U_b = 1 (2 > 1) + 2 (4 > 1, 3) = 3. Of the C(4, 2) = 6 orderings,
        // U takes 0, 1, 2, 2, 3, 4, so P(U ≥ 3) = 2/6.
        let p = mann_whitney_greater(&[1.0, 3.0], &[2.0, 4.0]).unwrap();
        assert!((p - 2.0 / 6.0).abs() < 1e-15, "{p}");
    }

    #[test]
    fn normal_approximation_agrees_with_the_exact_tail_on_larger_samples() {
        // Interleaved samples of 40 with a shift: no ties, so both methods apply.
        let a: Vec<f64> = (0..40).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..40).map(|i| i as f64 + 6.5).collect();
        let exact = mann_whitney_greater(&a, &b).unwrap();
        let ranks = ranks(&a, &b);
        let u_b: f64 = ranks.values[40..].iter().sum::<f64>() - 40.0 * 41.0 / 2.0;
        let sigma = (40.0 * 40.0 * 81.0 / 12.0f64).sqrt();
        let approx = normal_upper_tail((u_b - 800.0 - 0.5) / sigma);
        assert!(exact < 0.2, "{exact}");
        assert!(
            (exact - approx).abs() < 0.01,
            "exact {exact}, normal {approx}"
        );
    }

    #[test]
    fn ties_use_the_corrected_normal_approximation() {
        let same = mann_whitney_greater(&[1.0; 10], &[1.0; 10]).unwrap();
        assert_eq!(same, 1.0);
        let shifted = mann_whitney_greater(&[1.0, 1.0, 2.0, 2.0], &[3.0, 3.0, 4.0, 4.0]).unwrap();
        assert!(shifted < 0.05, "{shifted}");
    }

    #[test]
    fn erfc_matches_known_values() {
        // erfc(0) = 1, erfc(1) = 0.157299207050285, erfc(-1) = 1.842700792949715,
        // erfc(3) = 2.209049699858544e-5.
        for (x, want) in [
            (0.0, 1.0),
            (1.0, 0.157_299_207_050_285),
            (-1.0, 1.842_700_792_949_715),
            (3.0, 2.209_049_699_858_544e-5),
        ] {
            assert!(((erfc(x) - want) / want).abs() < 1.2e-7, "erfc({x})");
        }
    }

    /// P(T ≥ t) for Student's T with `df` degrees of freedom, by Simpson's rule on the
    /// unnormalized density over [0, ∞) mapped onto [0, 1) (x = u / (1 − u)).
    fn student_t_upper_tail(t: f64, df: f64) -> f64 {
        let density = |x: f64| (1.0 + x * x / df).powf(-(df + 1.0) / 2.0);
        let integral = |from: f64| {
            let (a, b, n) = (from / (1.0 + from), 1.0, 200_000);
            let h = (b - a) / n as f64;
            let f = |u: f64| {
                if u >= 1.0 {
                    0.0
                } else {
                    density(u / (1.0 - u)) / ((1.0 - u) * (1.0 - u))
                }
            };
            let inner: f64 = (1..n)
                .map(|i| f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 })
                .sum();
            h / 3.0 * (f(a) + inner + f(b))
        };
        0.5 * integral(t) / integral(0.0)
    }

    #[test]
    fn student_t_table_puts_one_in_a_thousand_above_each_value() {
        // df = 1's tail is a Cauchy's, (π/2 − atan t)/π in closed form.
        let cauchy = (std::f64::consts::FRAC_PI_2 - student_t_999(1).atan()) / std::f64::consts::PI;
        assert!((cauchy - 1e-3).abs() < 1e-6, "{cauchy}");
        for df in 2..=30 {
            let tail = student_t_upper_tail(student_t_999(df), df as f64);
            assert!((tail - 1e-3).abs() < 2e-6, "df {df}: P(T ≥ t) = {tail}");
        }
        assert_eq!(student_t_999(100), student_t_999(30));
    }

    #[test]
    fn empty_samples_have_no_p_value() {
        assert_eq!(mann_whitney_greater(&[], &[1.0]), None);
    }
}
