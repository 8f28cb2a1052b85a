//! Parameter sweeps: the Cartesian product of the `[sweep]` values, each
//! point run for `replicates` sessions with the `[uncertain]` parameters
//! drawn per replicate. Points run in parallel with rayon in chunks whose
//! results are written in point order as each chunk finishes, so memory stays
//! bounded by one chunk whatever the number of points.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngExt;
use rand_distr::{Distribution as _, StandardNormal};
use rayon::prelude::*;

use super::task_rng;
use crate::scenario::{Distribution, Prepared, Scenario, ScenarioError, SweepSpec};
use crate::sim::RunError;

/// A sweep that could not run.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The scenario has no `[sweep]` table.
    #[error("{0}: the scenario has no [sweep] table (add [sweep] with replicates and [sweep.parameters])")]
    NoSweep(String),
    /// A point's parameters are invalid.
    #[error("sweep point {point}: {source}")]
    Point {
        /// Point index.
        point: u64,
        /// Cause.
        source: ScenarioError,
    },
    /// A simulation failed.
    #[error("sweep point {point}, replicate {replicate}: {source}")]
    Run {
        /// Point index.
        point: u64,
        /// Replicate index.
        replicate: u64,
        /// Cause.
        source: RunError,
    },
    /// Output could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Statistics of one sweep point over all shots of all replicates (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PointStats {
    /// Point index.
    pub point: u64,
    /// Swept key values.
    pub values: Vec<f64>,
    /// Shots pooled.
    pub shots: usize,
    /// Mean dose, m³.
    pub mean: f64,
    /// Dose SD, m³.
    pub sd: f64,
    /// CV, –.
    pub cv: f64,
    /// Mean minus target over target, – (NaN without a target).
    pub bias: f64,
    /// 5th percentile, m³.
    pub p5: f64,
    /// Median, m³.
    pub p50: f64,
    /// 95th percentile, m³.
    pub p95: f64,
    /// Mean reflux per shot, m³.
    pub leak: f64,
    /// Highest tissue pressure, Pa gauge.
    pub peak_tissue: f64,
}

/// Percentile `q` (0–1) of sorted data, linear interpolation (Hyndman–Fan type 7).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Draw from a distribution.
pub fn draw<R: rand::Rng>(d: &Distribution, rng: &mut R) -> f64 {
    let z = |rng: &mut R| -> f64 { StandardNormal.sample(rng) };
    match *d {
        Distribution::Normal { mean, sd } => mean + sd * z(rng),
        Distribution::Lognormal { median, gsd } => median * (gsd.ln() * z(rng)).exp(),
        Distribution::Uniform { lo, hi } => lo + (hi - lo) * rng.random::<f64>(),
        Distribution::TruncatedNormal { mean, sd, lo, hi } => {
            for _ in 0..10_000 {
                let x = mean + sd * z(rng);
                if (lo..=hi).contains(&x) {
                    return x;
                }
            }
            mean.clamp(lo, hi)
        }
    }
}

/// The overrides of point `point`, replicate `replicate`: swept values, then
/// uncertain draws from the task's own stream.
pub fn overrides(sc: &Scenario, spec: &SweepSpec, base: &[String], point: u64, replicate: u64) -> Vec<String> {
    let mut out: Vec<String> = base.to_vec();
    for (key, v) in spec.point(point) {
        out.push(format!("{key}={v:?}"));
    }
    let mut rng = task_rng(sc.seed, point, replicate);
    for u in &sc.uncertain {
        out.push(format!("{}={:?}", u.key, draw(&u.dist, &mut rng)));
    }
    // Sensor noise of each replicate gets its own seed too.
    out.push(format!("seed={}", super::splitmix(sc.seed ^ (point << 32) ^ replicate) >> 1));
    out
}

/// Run one point.
pub fn run_point(
    prep: &Prepared,
    sc: &Scenario,
    spec: &SweepSpec,
    base: &[String],
    point: u64,
) -> Result<PointStats, SweepError> {
    let mut doses = Vec::new();
    let mut leak = 0.0;
    let mut peak: f64 = 0.0;
    for r in 0..spec.replicates as u64 {
        let sets = overrides(sc, spec, base, point, r);
        let variant = prep.with(&sets).map_err(|source| SweepError::Point { point, source })?;
        let run = crate::simulate(&variant, false).map_err(|source| SweepError::Run { point, replicate: r, source })?;
        for s in &run.result.shots {
            doses.push(s.dose);
            leak += s.leak;
            peak = peak.max(s.peak_tissue_pressure);
        }
    }
    let d = crate::stats::describe(&doses);
    doses.sort_by(f64::total_cmp);
    Ok(PointStats {
        point,
        values: spec.point(point).into_iter().map(|x| x.1).collect(),
        shots: doses.len(),
        mean: d.mean,
        sd: d.sd,
        cv: d.cv,
        bias: spec.target.map(|t| (d.mean - t) / t).unwrap_or(f64::NAN),
        p5: percentile(&doses, 0.05),
        p50: percentile(&doses, 0.5),
        p95: percentile(&doses, 0.95),
        leak: leak / doses.len().max(1) as f64,
        peak_tissue: peak,
    })
}

/// Header of `sweep.csv`.
pub fn csv_header(spec: &SweepSpec) -> String {
    let mut h = vec!["point".to_string()];
    h.extend(spec.axes.iter().map(|a| a.0.clone()));
    h.extend(
        [
            "shots",
            "dose_mean_ul",
            "dose_sd_ul",
            "dose_cv",
            "bias_pct",
            "dose_p5_ul",
            "dose_p50_ul",
            "dose_p95_ul",
            "leak_mean_ul",
            "peak_tissue_kpa",
        ]
        .map(String::from),
    );
    h.join(",") + "\n"
}

/// One `sweep.csv` row (human units, shortest round-trip floats).
pub fn csv_row(p: &PointStats) -> String {
    let mut f = vec![p.point.to_string()];
    f.extend(p.values.iter().map(|v| format!("{v:?}")));
    f.push(p.shots.to_string());
    for v in [
        p.mean * 1e9,
        p.sd * 1e9,
        p.cv,
        p.bias * 100.0,
        p.p5 * 1e9,
        p.p50 * 1e9,
        p.p95 * 1e9,
        p.leak * 1e9,
        p.peak_tissue / 1e3,
    ] {
        f.push(format!("{v:?}"));
    }
    f.join(",") + "\n"
}

/// Summary of a finished sweep.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SweepSummary {
    /// Points run.
    pub points: u64,
    /// Sessions simulated.
    pub sessions: u64,
    /// Shots simulated.
    pub shots: u64,
}

/// Run the sweep of `prep` (with base `--set` overrides), writing
/// `sweep.csv` into `dir` in point order as chunks finish; `progress` is
/// called with the number of points done. Returns the per-point statistics
/// only when `keep` (for plots); otherwise memory stays bounded.
pub fn run(
    prep: &Prepared,
    base: &[String],
    dir: &Path,
    threads: usize,
    keep: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(SweepSummary, Vec<PointStats>), SweepError> {
    let sc = prep.with(base).map_err(|source| SweepError::Point { point: 0, source })?;
    let spec = sc.sweep.clone().ok_or_else(|| SweepError::NoSweep(prep.source().name.clone()))?;
    let n = spec.points();
    // Check the first and last points before any work.
    for p in [0, n.saturating_sub(1)] {
        prep.with(&overrides(&sc, &spec, base, p, 0)).map_err(|source| SweepError::Point { point: p, source })?;
    }
    std::fs::create_dir_all(dir).map_err(|source| SweepError::Io { path: dir.to_owned(), source })?;
    let final_path = dir.join("sweep.csv");
    let partial = dir.join(".sweep.partial.csv");
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SweepError::Io { path: path.clone(), source }
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(&partial).map_err(io(&partial))?);
    out.write_all(csv_header(&spec).as_bytes()).map_err(io(&partial))?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build().expect("a thread pool");
    let chunk = (64 * threads.max(1)) as u64;
    let mut kept = Vec::new();
    let mut shots = 0u64;
    let mut start = 0u64;
    while start < n {
        let end = (start + chunk).min(n);
        let results: Vec<Result<PointStats, SweepError>> =
            pool.install(|| (start..end).into_par_iter().map(|p| run_point(prep, &sc, &spec, base, p)).collect());
        for r in results {
            let p = r?;
            out.write_all(csv_row(&p).as_bytes()).map_err(io(&partial))?;
            shots += p.shots as u64;
            if keep {
                kept.push(p);
            }
        }
        out.flush().map_err(io(&partial))?;
        progress(end);
        start = end;
    }
    drop(out);
    std::fs::rename(&partial, &final_path).map_err(io(&final_path))?;
    Ok((SweepSummary { points: n, sessions: n * spec.replicates as u64, shots }, kept))
}
