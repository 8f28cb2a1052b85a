//! Variance-based sensitivity: first-order and total Sobol indices of a
//! scalar output over independent uncertain inputs.
//!
//! Sampling (Saltelli et al. 2010, Comput. Phys. Commun. 181:259): two
//! N × d matrices A and B from one Owen-scrambled Sobol sequence
//! (dimensions 0..d and d..2d), and the d matrices A_B^(i) (A with column i
//! taken from B): N·(d + 2) evaluations. Estimators: first order
//! S_i = (1/N)·Σ (f(B) − f̄)·(f(A_B^(i)) − f(A)) / V (Saltelli 2010, with
//! f(B) centred on the mean to cut the estimator's variance), total effect
//! S_Ti = (1/2N)·Σ (f(A) − f(A_B^(i)))² / V (Jansen 1999), V the variance of
//! f over A and B. Confidence intervals: percentile bootstrap over the N rows.

use rand::RngExt;
use rayon::prelude::*;

use super::task_rng;
use crate::scenario::Distribution;

/// One input's indices with 95 % bootstrap intervals.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SobolIndex {
    /// Input name.
    pub name: String,
    /// First-order index.
    pub first: f64,
    /// 95 % interval of the first-order index.
    pub first_ci: (f64, f64),
    /// Total-effect index.
    pub total: f64,
    /// 95 % interval of the total-effect index.
    pub total_ci: (f64, f64),
}

/// Result of an analysis.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Analysis {
    /// Indices, in input order.
    pub indices: Vec<SobolIndex>,
    /// Output mean over A and B.
    pub mean: f64,
    /// Output variance over A and B.
    pub variance: f64,
    /// Model evaluations.
    pub evaluations: usize,
}

/// Standard normal quantile (Acklam's rational approximation, relative error
/// below 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] =
        [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let pl = 0.02425;
    if p < pl {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - pl {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    }
}

/// Standard normal distribution function.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// Map a uniform `u` in (0, 1) through the distribution's quantile function.
pub fn quantile(d: &Distribution, u: f64) -> f64 {
    match *d {
        Distribution::Normal { mean, sd } => mean + sd * normal_quantile(u),
        Distribution::Lognormal { median, gsd } => median * (gsd.ln() * normal_quantile(u)).exp(),
        Distribution::Uniform { lo, hi } => lo + (hi - lo) * u,
        Distribution::TruncatedNormal { mean, sd, lo, hi } if sd > 0.0 => {
            let (za, zb) = ((lo - mean) / sd, (hi - mean) / sd);
            if za >= 0.0 || zb <= 0.0 {
                // A window wholly in one tail: invert through the survival function.
                return (mean + sd * crate::stats::truncated_normal_quantile(za, zb, u)).clamp(lo, hi);
            }
            let (a, b) = (normal_cdf(za), normal_cdf(zb));
            (mean + sd * normal_quantile(a + u * (b - a))).clamp(lo, hi)
        }
        Distribution::TruncatedNormal { mean, lo, hi, .. } => mean.clamp(lo, hi),
    }
}

/// The Sobol-sequence uniform of row `j`, column `k` (strictly inside (0, 1)).
fn uniform(j: usize, k: usize, seed: u32) -> f64 {
    (sobol_burley::sample(j as u32, k as u32, seed) as f64 + 0.5 / 16_777_216.0).min(1.0 - 1e-9)
}

/// Refuse `d` inputs or `n` base rows beyond what the Sobol sequence supports.
fn check_sizes(d: usize, n: usize) -> Result<(), String> {
    if d == 0 || 2 * d > 256 {
        return Err(format!("{d} uncertain inputs: between 1 and 128 are supported"));
    }
    if !(2..=65_536).contains(&n) {
        return Err(format!("{n} samples: between 2 and 65536 are supported"));
    }
    Ok(())
}

/// Estimate the indices of `f` over `d` inputs given as uniforms in (0, 1),
/// with `n` base rows (at most 2^16), `bootstrap` resamples and `threads`
/// workers. Deterministic for a given seed whatever the thread count.
pub fn analyse<F>(
    names: &[String],
    n: usize,
    seed: u64,
    bootstrap: usize,
    threads: usize,
    f: F,
) -> Result<Analysis, String>
where
    F: Fn(&[f64]) -> Result<f64, String> + Sync,
{
    analyse_with_progress(names, n, seed, bootstrap, threads, f, &|_, _| {})
}

/// [`analyse`] calling `progress(done, total)` as each evaluation of `f`
/// finishes (on the worker threads, so `done` may arrive out of order).
pub fn analyse_with_progress<F>(
    names: &[String],
    n: usize,
    seed: u64,
    bootstrap: usize,
    threads: usize,
    f: F,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Analysis, String>
where
    F: Fn(&[f64]) -> Result<f64, String> + Sync,
{
    let d = names.len();
    check_sizes(d, n)?;
    let s = (super::splitmix(seed) & 0xffff_ffff) as u32;
    // Row r of the evaluation list: block 0 = A, 1 = B, 2 + i = A_B^(i).
    let row = |block: usize, j: usize| -> Vec<f64> {
        (0..d)
            .map(|k| {
                let from_b = block == 1 || (block >= 2 && block - 2 == k);
                uniform(j, if from_b { d + k } else { k }, s)
            })
            .collect()
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build().map_err(|e| e.to_string())?;
    let (done, total) = (std::sync::atomic::AtomicU64::new(0), (n * (d + 2)) as u64);
    let ys: Vec<Result<f64, String>> = pool.install(|| {
        (0..n * (d + 2))
            .into_par_iter()
            .map(|r| {
                let y = f(&row(r / n, r % n));
                progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, total);
                y
            })
            .collect()
    });
    let ys: Vec<f64> = ys.into_iter().collect::<Result<_, _>>()?;
    let estimate = |rows: &[usize]| indices_of(&ys, n, d, rows);
    let all: Vec<usize> = (0..n).collect();
    let point = estimate(&all);
    let mut rng = task_rng(seed, u64::MAX, 0);
    let mut boot: Vec<Vec<(f64, f64)>> = Vec::with_capacity(bootstrap);
    for _ in 0..bootstrap {
        let rows: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
        boot.push(estimate(&rows));
    }
    let ci = |i: usize, total: bool| -> (f64, f64) {
        if boot.is_empty() {
            return (f64::NAN, f64::NAN);
        }
        let mut v: Vec<f64> = boot.iter().map(|b| if total { b[i].1 } else { b[i].0 }).collect();
        v.sort_by(f64::total_cmp);
        (crate::stats::percentile(&v, 0.025), crate::stats::percentile(&v, 0.975))
    };
    let mean = ys[..2 * n].iter().sum::<f64>() / (2 * n) as f64;
    let variance = ys[..2 * n].iter().map(|y| (y - mean).powi(2)).sum::<f64>() / (2 * n - 1) as f64;
    Ok(Analysis {
        indices: (0..d)
            .map(|i| SobolIndex {
                name: names[i].clone(),
                first: point[i].0,
                first_ci: ci(i, false),
                total: point[i].1,
                total_ci: ci(i, true),
            })
            .collect(),
        mean,
        variance,
        evaluations: ys.len(),
    })
}

/// The first-order and total indices of each of the `d` inputs from the
/// evaluations `ys` (blocks A, B, A_B^(i) of `n` rows each) over `rows`.
fn indices_of(ys: &[f64], n: usize, d: usize, rows: &[usize]) -> Vec<(f64, f64)> {
    let (fa, fb) = (&ys[..n], &ys[n..2 * n]);
    let fab = |i: usize| &ys[(2 + i) * n..(3 + i) * n];
    let m = rows.len() as f64;
    let mean = rows.iter().map(|&j| fa[j] + fb[j]).sum::<f64>() / (2.0 * m);
    let var = rows.iter().map(|&j| (fa[j] - mean).powi(2) + (fb[j] - mean).powi(2)).sum::<f64>() / (2.0 * m - 1.0);
    (0..d)
        .map(|i| {
            let ab = fab(i);
            // f(B) centred on the mean: same expectation, far lower variance
            // when the output's mean is large against its spread.
            let s1 = rows.iter().map(|&j| (fb[j] - mean) * (ab[j] - fa[j])).sum::<f64>() / m / var;
            let st = rows.iter().map(|&j| (fa[j] - ab[j]).powi(2)).sum::<f64>() / (2.0 * m) / var;
            (s1, st)
        })
        .collect()
}

/// Sobol indices of the mean session dose (µL) of a scenario over its
/// `[uncertain]` parameters, with its `[sensitivity]` settings.
pub fn dose_sensitivity(prep: &crate::scenario::Prepared, base: &[String], threads: usize) -> Result<Analysis, String> {
    dose_sensitivity_with_progress(prep, base, threads, &|_, _| {})
}

/// [`dose_sensitivity`] calling `progress(done, total)` as each session
/// (evaluation) finishes; the results do not depend on it.
pub fn dose_sensitivity_with_progress(
    prep: &crate::scenario::Prepared,
    base: &[String],
    threads: usize,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Analysis, String> {
    let sc = prep.with(base).map_err(|e| e.to_string())?;
    if sc.uncertain.is_empty() {
        return Err(format!("{}: the scenario has no [uncertain] parameters to analyse", prep.source().name));
    }
    let names: Vec<String> = sc.uncertain.iter().map(|u| u.key.clone()).collect();
    let (n, bootstrap) = sc.sensitivity;
    analyse_with_progress(
        &names,
        n,
        sc.seed,
        bootstrap,
        threads,
        |u| {
            let mut sets = base.to_vec();
            for (x, un) in u.iter().zip(&sc.uncertain) {
                sets.push(format!("{}={:?}", un.key, quantile(&un.dist, *x)));
            }
            let variant = prep.with(&sets).map_err(|e| e.to_string())?;
            let run = crate::simulate(&variant, false).map_err(|e| e.to_string())?;
            let doses: Vec<f64> = run.result.shots.iter().map(|s| s.dose * 1e9).collect();
            Ok(crate::stats::describe(&doses).mean)
        },
        progress,
    )
}

#[cfg(test)]
mod progress_tests {
    use super::{analyse, analyse_with_progress};

    #[test]
    fn sensitivity_progress_counts_every_evaluation_and_changes_no_result() {
        let names = vec!["a".to_string(), "b".to_string()];
        let f = |u: &[f64]| Ok(u[0] + 0.1 * u[1] * u[1]);
        let seen = std::sync::Mutex::new(Vec::new());
        let with =
            analyse_with_progress(&names, 32, 7, 50, 2, f, &|done, total| seen.lock().unwrap().push((done, total)))
                .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, (1..=32 * 4).map(|d| (d, 32 * 4)).collect::<Vec<_>>());
        let without = analyse(&names, 32, 7, 50, 1, f).unwrap();
        assert_eq!(format!("{with:?}"), format!("{without:?}"));
    }
}
