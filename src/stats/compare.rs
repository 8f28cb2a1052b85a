//! Comparing the spread of two arms: the F test of variances, the
//! Brown–Forsythe test (Levene's test on deviations from the median, robust
//! to non-normal doses) and a cluster-bootstrap confidence interval of the
//! CV ratio that respects operators (or devices) as the sampling unit.

use rand::{Rng, RngExt};
use statrs::distribution::{ContinuousCDF, FisherSnedecor};

/// A test statistic with its degrees of freedom and p-value.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Test {
    /// Statistic (F).
    pub statistic: f64,
    /// Numerator degrees of freedom.
    pub df1: f64,
    /// Denominator degrees of freedom.
    pub df2: f64,
    /// p-value.
    pub p: f64,
}

fn f_sf(f: f64, df1: f64, df2: f64) -> f64 {
    match FisherSnedecor::new(df1, df2) {
        Ok(d) if f.is_finite() => d.sf(f.max(0.0)),
        _ => f64::NAN,
    }
}

/// Two-sided F test of H0: var(a) = var(b); statistic s_a²/s_b².
///
/// Assumes independent normal samples: with doses clustered by operator it
/// understates the p-value; the bootstrap interval below does not.
pub fn f_test(a: &[f64], b: &[f64]) -> Test {
    let (da, db) = (super::describe(a), super::describe(b));
    let f = (da.sd * da.sd) / (db.sd * db.sd);
    let (df1, df2) = ((da.n - 1) as f64, (db.n - 1) as f64);
    let upper = f_sf(f, df1, df2);
    let p = (2.0 * upper.min(1.0 - upper)).min(1.0);
    Test { statistic: f, df1, df2, p }
}

fn median(x: &[f64]) -> f64 {
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// Brown–Forsythe test of equal variances over `groups`: one-way ANOVA of
/// z_ij = |x_ij − median_i|, F with (g − 1, N − g) degrees of freedom.
pub fn brown_forsythe(groups: &[&[f64]]) -> Test {
    let g = groups.len();
    let z: Vec<Vec<f64>> = groups
        .iter()
        .map(|x| {
            let m = median(x);
            x.iter().map(|v| (v - m).abs()).collect()
        })
        .collect();
    let n: usize = z.iter().map(Vec::len).sum();
    let means: Vec<f64> = z.iter().map(|zi| zi.iter().sum::<f64>() / zi.len() as f64).collect();
    let grand = z.iter().flatten().sum::<f64>() / n as f64;
    let between: f64 = z.iter().zip(&means).map(|(zi, m)| zi.len() as f64 * (m - grand) * (m - grand)).sum();
    let within: f64 = z.iter().zip(&means).map(|(zi, m)| zi.iter().map(|v| (v - m) * (v - m)).sum::<f64>()).sum();
    let (df1, df2) = ((g - 1) as f64, (n - g) as f64);
    let f = (between / df1) / (within / df2);
    Test { statistic: f, df1, df2, p: f_sf(f, df1, df2) }
}

/// A ratio with a confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RatioInterval {
    /// Point estimate.
    pub ratio: f64,
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
    /// Confidence level.
    pub level: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
}

fn pooled_cv(clusters: &[&[f64]]) -> f64 {
    let all: Vec<f64> = clusters.iter().flat_map(|c| c.iter().copied()).collect();
    super::describe(&all).cv
}

/// Percentile cluster-bootstrap interval of CV(a) / CV(b): each resample
/// draws whole clusters (operators, devices) with replacement in each arm,
/// so between-operator variance is carried into the interval.
pub fn cv_ratio_interval<R: Rng>(
    a: &[&[f64]],
    b: &[&[f64]],
    resamples: usize,
    level: f64,
    rng: &mut R,
) -> RatioInterval {
    let ratio = pooled_cv(a) / pooled_cv(b);
    let mut stats = Vec::with_capacity(resamples);
    let pick = |x: &[&[f64]], rng: &mut R| -> f64 {
        let draw: Vec<&[f64]> = (0..x.len()).map(|_| x[rng.random_range(0..x.len())]).collect();
        pooled_cv(&draw)
    };
    for _ in 0..resamples {
        let r = pick(a, rng) / pick(b, rng);
        if r.is_finite() {
            stats.push(r);
        }
    }
    stats.sort_by(f64::total_cmp);
    let q = |p: f64| if stats.is_empty() { f64::NAN } else { super::percentile(&stats, p) };
    RatioInterval { ratio, lo: q((1.0 - level) / 2.0), hi: q((1.0 + level) / 2.0), level, resamples }
}

/// Variance components of doses grouped by operator (one-way random
/// effects, ANOVA estimator): (within-operator SD, between-operator SD of
/// the operator means' true values, clamped at 0).
pub fn variance_components(groups: &[&[f64]]) -> (f64, f64) {
    let g = groups.len();
    let n: usize = groups.iter().map(|x| x.len()).sum();
    if g < 2 || n <= g {
        return (f64::NAN, f64::NAN);
    }
    let means: Vec<f64> = groups.iter().map(|x| x.iter().sum::<f64>() / x.len() as f64).collect();
    let grand = groups.iter().flat_map(|x| x.iter()).sum::<f64>() / n as f64;
    let ssw: f64 = groups.iter().zip(&means).map(|(x, m)| x.iter().map(|v| (v - m) * (v - m)).sum::<f64>()).sum();
    let ssb: f64 = groups.iter().zip(&means).map(|(x, m)| x.len() as f64 * (m - grand) * (m - grand)).sum();
    let msw = ssw / (n - g) as f64;
    let msb = ssb / (g - 1) as f64;
    // Effective group size for unbalanced groups.
    let n0 = (n as f64 - groups.iter().map(|x| (x.len() * x.len()) as f64).sum::<f64>() / n as f64) / (g - 1) as f64;
    (msw.sqrt(), ((msb - msw) / n0).max(0.0).sqrt())
}
