//! Parameter sweeps: the Cartesian product of the `[sweep]` values, each
//! point run for `replicates` sessions with the `[uncertain]` parameters
//! drawn per replicate. Points run in parallel with rayon in chunks whose
//! results are written in point order as each chunk finishes, so memory stays
//! bounded by one chunk whatever the number of points.
//!
//! The run itself (fault injection, fresh start, chunks) is in `run.rs`,
//! resuming an interrupted table (fingerprint, complete rows) in
//! `resume.rs`, joining shards in `merge.rs`.

mod merge;
mod resume;
mod run;

use std::path::PathBuf;

use rand::RngExt;
use rand_distr::{Distribution as _, StandardNormal};

pub use merge::{merge, MergeError, Merged, MergedPlots};
pub use resume::fingerprint;
pub use run::{run, run_cancellable};

use super::task_rng;
use crate::scenario::{Distribution, Level, Prepared, Scenario, ScenarioError, SweepSpec};
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
    /// A `--resume` that would mix results of different settings, or of a damaged table.
    #[error("cannot resume {path}: {message}; rerun without --resume or with the same settings")]
    Resume {
        /// The table to resume.
        path: PathBuf,
        /// What differs.
        message: String,
    },
    /// The caller cancelled the run (see [`run_cancellable`]).
    #[error("the sweep was cancelled")]
    Cancelled,
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
    /// Every shot, when raw output or a histogram asks for it.
    #[serde(skip)]
    pub raw: Vec<RawShot>,
}

/// One shot of a sweep point, as `raw.csv` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawShot {
    /// Replicate.
    pub replicate: u64,
    /// Shot index in the session.
    pub shot: usize,
    /// Dose, m³.
    pub dose: f64,
    /// Reflux, m³.
    pub leak: f64,
    /// Peak tissue pressure, Pa gauge.
    pub peak_tissue: f64,
    /// The value drawn for each `[uncertain]` key (in the order of
    /// `Scenario::uncertain`, in the key's own unit) exactly as the shot
    /// was simulated with it; empty unless raw output asks for it.
    pub drawn: Vec<f64>,
}

/// Draw from a distribution.
pub fn draw<R: rand::Rng>(d: &Distribution, rng: &mut R) -> f64 {
    let z = |rng: &mut R| -> f64 { StandardNormal.sample(rng) };
    match *d {
        Distribution::Normal { mean, sd } => mean + sd * z(rng),
        Distribution::Lognormal { median, gsd } => median * (gsd.ln() * z(rng)).exp(),
        Distribution::Uniform { lo, hi } => lo + (hi - lo) * rng.random::<f64>(),
        Distribution::TruncatedNormal { mean, sd, lo, hi } => {
            if sd == 0.0 {
                return mean.clamp(lo, hi);
            }
            let (a, b) = ((lo - mean) / sd, (hi - mean) / sd);
            // Rejection while the window holds at least 5 % of the normal
            // (it then fails 10,000 times with probability below 1e-222);
            // the exact inverse CDF for windows in the tail.
            if crate::stats::normal_mass(a, b) >= 0.05 {
                for _ in 0..10_000 {
                    let x = mean + sd * z(rng);
                    if (lo..=hi).contains(&x) {
                        return x;
                    }
                }
            }
            (mean + sd * crate::stats::truncated_normal_quantile(a, b, rng.random::<f64>())).clamp(lo, hi)
        }
    }
}

/// The overrides of point `point`, replicate `replicate`: swept values, then
/// uncertain draws from the task's own stream.
pub fn overrides(sc: &Scenario, spec: &SweepSpec, base: &[String], point: u64, replicate: u64) -> Vec<String> {
    let mut out: Vec<String> = base.to_vec();
    for (key, v) in crate::study::design::point(spec, point) {
        out.push(crate::scenario::set_arg(&key, v));
    }
    replicate_sets(sc, out, point, replicate)
}

/// `sets` followed by the session-level draws of replicate `replicate` of
/// point `point` and the replicate's sensor seed.
pub fn replicate_sets(sc: &Scenario, sets: Vec<String>, point: u64, replicate: u64) -> Vec<String> {
    let mut out = sets;
    for (u, x) in sc.uncertain.iter().filter(|u| u.level == Level::Session).zip(session_draws(sc, point, replicate)) {
        out.push(format!("{}={x:?}", u.key));
    }
    // Sensor noise of each replicate gets its own seed too.
    out.push(format!("seed={}", super::splitmix(sc.seed ^ (point << 32) ^ replicate) >> 1));
    out
}

/// The session-level draws of replicate `replicate` of point `point`, in
/// the order of the session-level `[uncertain]` keys.
pub fn session_draws(sc: &Scenario, point: u64, replicate: u64) -> Vec<f64> {
    let mut rng = task_rng(sc.seed, point, replicate);
    sc.uncertain.iter().filter(|u| u.level == Level::Session).map(|u| draw(&u.dist, &mut rng)).collect()
}

/// The per-shot and per-site draws of shot `shot` of replicate `replicate`
/// of point `point`, in the order of `per_shot`.
fn shot_draws(
    per_shot: &[&crate::scenario::Uncertain],
    seed: u64,
    point: u64,
    replicate: u64,
    shot: usize,
) -> Vec<f64> {
    // Streams for shots sit above the replicate streams of the same point.
    let mut rng = task_rng(seed, point, (1 << 23) ^ (replicate << 32) ^ shot as u64);
    per_shot.iter().map(|u| draw(&u.dist, &mut rng)).collect()
}

/// Every `[uncertain]` key's value in shot `shot` of replicate `replicate`
/// of point `point` (in the order of `Scenario::uncertain`): what `raw.csv`
/// lists next to the shot's dose.
pub fn drawn_values(sc: &Scenario, point: u64, replicate: u64, shot: usize) -> Vec<f64> {
    let per_shot: Vec<_> = sc.uncertain.iter().filter(|u| u.level != Level::Session).collect();
    let mut session = session_draws(sc, point, replicate).into_iter();
    let mut shot =
        if per_shot.is_empty() { Vec::new() } else { shot_draws(&per_shot, sc.seed, point, replicate, shot) }
            .into_iter();
    sc.uncertain
        .iter()
        .map(|u| if u.level == Level::Session { session.next() } else { shot.next() }.unwrap_or(f64::NAN))
        .collect()
}

/// Simulate one replicate; per-shot and per-site parameters are drawn
/// before every shot from the shot's own stream and applied by re-validating
/// the scenario (so every draw is range-checked like user input).
#[allow(clippy::too_many_arguments)]
pub fn simulate_replicate(
    prep: &Prepared,
    uncertain: &[crate::scenario::Uncertain],
    sets: &[String],
    variant: &Scenario,
    seed: u64,
    point: u64,
    replicate: u64,
    trace: bool,
) -> Result<crate::Run, RunError> {
    let per_shot: Vec<_> = uncertain.iter().filter(|u| u.level != Level::Session).collect();
    if per_shot.is_empty() {
        return crate::simulate(variant, trace);
    }
    let shot_sets = |shot: usize| {
        let mut shot_sets = sets.to_vec();
        for (u, x) in per_shot.iter().zip(shot_draws(&per_shot, seed, point, replicate, shot)) {
            shot_sets.push(format!("{}={x:?}", u.key));
        }
        shot_sets
    };
    simulate_per_shot(prep, variant, &shot_sets, trace)
}

/// Simulate `variant`'s session with the parameters of every shot rebuilt
/// from `prep` with the overrides `shot_sets(shot)` before the shot (so
/// every per-shot draw is range-checked like user input).
pub fn simulate_per_shot(
    prep: &Prepared,
    variant: &Scenario,
    shot_sets: &dyn Fn(usize) -> Vec<String>,
    trace: bool,
) -> Result<crate::Run, RunError> {
    let mut hook = |shot: usize, plant: &mut crate::sim::Plant| -> Result<(), String> {
        let sc = prep.with(&shot_sets(shot)).map_err(|e| e.to_string())?;
        plant.set_params(sc.params)
    };
    let mut fw = crate::controller_for(variant)?;
    crate::simulate_hooked(variant, fw.as_mut(), trace, Some(&mut hook))
}

/// Run one point.
pub fn run_point(
    prep: &Prepared,
    sc: &Scenario,
    spec: &SweepSpec,
    base: &[String],
    point: u64,
    keep_raw: bool,
    drawn: bool,
) -> Result<PointStats, SweepError> {
    let mut doses = Vec::new();
    let mut raw = Vec::new();
    let mut leak = 0.0;
    let mut peak: f64 = 0.0;
    for r in 0..spec.replicates as u64 {
        let sets = overrides(sc, spec, base, point, r);
        let variant = prep.with(&sets).map_err(|source| SweepError::Point { point, source })?;
        let run = simulate_replicate(prep, &sc.uncertain, &sets, &variant, sc.seed, point, r, false)
            .map_err(|source| SweepError::Run { point, replicate: r, source })?;
        for s in &run.result.shots {
            if keep_raw {
                raw.push(RawShot {
                    replicate: r,
                    shot: s.index,
                    dose: s.dose,
                    leak: s.leak,
                    peak_tissue: s.peak_tissue_pressure,
                    drawn: if drawn { drawn_values(sc, point, r, s.index) } else { Vec::new() },
                });
            }
            doses.push(s.dose);
            leak += s.leak;
            peak = peak.max(s.peak_tissue_pressure);
        }
    }
    let d = crate::stats::describe(&doses);
    doses.sort_by(f64::total_cmp);
    Ok(PointStats {
        point,
        values: crate::study::design::point(spec, point).into_iter().map(|x| x.1).collect(),
        shots: doses.len(),
        mean: d.mean,
        sd: d.sd,
        cv: d.cv,
        bias: spec.target.map(|t| (d.mean - t) / t).unwrap_or(f64::NAN),
        p5: crate::stats::percentile(&doses, 0.05),
        p50: crate::stats::percentile(&doses, 0.5),
        p95: crate::stats::percentile(&doses, 0.95),
        leak: leak / doses.len().max(1) as f64,
        peak_tissue: peak,
        raw,
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
            "dose_cv_pct",
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
    f.extend(p.values.iter().map(|v| crate::text::cell(*v)));
    f.push(p.shots.to_string());
    for v in [
        p.mean * 1e9,
        p.sd * 1e9,
        p.cv * 100.0,
        p.bias * 100.0,
        p.p5 * 1e9,
        p.p50 * 1e9,
        p.p95 * 1e9,
        p.leak * 1e9,
        p.peak_tissue / 1e3,
    ] {
        // Undefined statistics (the bias without a target) are empty cells.
        f.push(if v.is_finite() { crate::text::cell(v) } else { String::new() });
    }
    f.join(",") + "\n"
}

/// Summary of a finished sweep (or shard).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SweepSummary {
    /// Points run.
    pub points: u64,
    /// Sessions simulated.
    pub sessions: u64,
    /// Shots simulated.
    pub shots: u64,
    /// Points computed by this call (the rest were resumed from disk; not
    /// written to the manifest).
    #[serde(skip)]
    pub computed_points: u64,
    /// Shots simulated by this call.
    #[serde(skip)]
    pub computed_shots: u64,
}

/// Which part of the sweep to run and how.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Shard `(i, n)`: run the i-th of n contiguous slices of the points.
    pub shard: Option<(u64, u64)>,
    /// Continue from the partial output of an interrupted run.
    pub resume: bool,
    /// Also write every shot to raw.csv (or raw.shard-….csv).
    pub raw: bool,
    /// For interruption tests only: abort the process (`std::process::abort`)
    /// at the n-th (1-based) write, sync, truncation, removal or rename of the
    /// sweep's files, a write being cut in half first. The command line sets
    /// it from the environment variable `MESOBENCH_FAULT_AFTER`.
    pub fault_after: Option<u64>,
}

/// The contiguous point range of shard `i` of `n` over `points` points.
pub fn shard_range(points: u64, i: u64, n: u64) -> std::ops::Range<u64> {
    let lo = (points as u128 * i as u128 / n as u128) as u64;
    let hi = (points as u128 * (i + 1) as u128 / n as u128) as u64;
    lo..hi
}

/// File names of the sweep's table and manifest (for a shard, or the whole sweep).
pub fn file_names(shard: Option<(u64, u64)>) -> (String, String) {
    match shard {
        None => ("sweep.csv".into(), "sweep_manifest.json".into()),
        Some((i, n)) => {
            (format!("sweep.shard-{i:05}-of-{n:05}.csv"), format!("sweep_manifest.shard-{i:05}-of-{n:05}.json"))
        }
    }
}

/// Header of `raw.csv`: the point, replicate and shot, the swept values,
/// the shot's results, then the value drawn for each `[uncertain]` key
/// (named by its key, which carries its unit), so that the dose can be
/// regressed on them.
pub fn raw_header(spec: &SweepSpec, uncertain: &[String]) -> String {
    let mut h = vec!["point".to_string(), "replicate".into(), "shot".into()];
    h.extend(spec.axes.iter().map(|a| a.0.clone()));
    h.extend(["dose_ul", "leak_ul", "peak_tissue_kpa"].map(String::from));
    h.extend(uncertain.iter().cloned());
    h.join(",") + "\n"
}

/// One `raw.csv` row of shot `s` of point `p`: results in the table's
/// convention ([`crate::text::cell`]), the drawn values with every digit they
/// were simulated with.
pub fn raw_row(p: &PointStats, s: &RawShot) -> String {
    let mut f = vec![p.point.to_string(), s.replicate.to_string(), s.shot.to_string()];
    f.extend(p.values.iter().map(|v| crate::text::cell(*v)));
    f.extend([s.dose * 1e9, s.leak * 1e9, s.peak_tissue / 1e3].iter().map(|v| crate::text::cell(*v)));
    f.extend(s.drawn.iter().map(|v| format!("{v:?}")));
    f.join(",") + "\n"
}

/// File name of the raw per-shot table (for a shard, or the whole sweep).
pub fn raw_name(shard: Option<(u64, u64)>) -> String {
    match shard {
        None => "raw.csv".to_string(),
        Some((i, k)) => format!("raw.shard-{i:05}-of-{k:05}.csv"),
    }
}

/// `p` with its statistics as its table row writes them (its shots kept), so
/// that plots drawn from a fresh, a resumed or a merged sweep are the same bytes.
fn as_written(p: PointStats) -> PointStats {
    let row = csv_row(&p);
    let f: Vec<&str> = row.trim_end().split(',').collect();
    PointStats { raw: p.raw, ..stats_from_row(&f, p.values.len()) }
}

/// A point's statistics read back from its `sweep.csv` row (SI; no shots).
fn stats_from_row(f: &[&str], axes: usize) -> PointStats {
    let num = |k: usize| f[k].parse::<f64>().unwrap_or(f64::NAN);
    let c = 1 + axes;
    PointStats {
        point: f[0].parse().unwrap_or(0),
        values: (1..c).map(num).collect(),
        shots: f[c].parse().unwrap_or(0),
        mean: num(c + 1) / 1e9,
        sd: num(c + 2) / 1e9,
        cv: num(c + 3) / 100.0,
        bias: num(c + 4) / 100.0,
        p5: num(c + 5) / 1e9,
        p50: num(c + 6) / 1e9,
        p95: num(c + 7) / 1e9,
        leak: num(c + 8) / 1e9,
        peak_tissue: num(c + 9) * 1e3,
        raw: Vec::new(),
    }
}

/// Traces of the first `count` replicates of `point` (for the overlay plot).
pub fn point_traces(
    prep: &Prepared,
    base: &[String],
    point: u64,
    count: usize,
) -> Result<Vec<Vec<crate::sim::TraceSample>>, SweepError> {
    let sc = prep.with(base).map_err(|source| SweepError::Point { point, source })?;
    let spec = sc.sweep.clone().ok_or_else(|| SweepError::NoSweep(prep.source().name.clone()))?;
    let mut out = Vec::new();
    for r in 0..count.min(spec.replicates) as u64 {
        let sets = overrides(&sc, &spec, base, point, r);
        let variant = prep.with(&sets).map_err(|source| SweepError::Point { point, source })?;
        let run = simulate_replicate(prep, &sc.uncertain, &sets, &variant, sc.seed, point, r, true)
            .map_err(|source| SweepError::Run { point, replicate: r, source })?;
        out.push(run.trace);
    }
    Ok(out)
}
