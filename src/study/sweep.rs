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
    /// Every shot (replicate, shot, dose m³, reflux m³, peak tissue Pa), when raw output or a histogram asks for it.
    #[serde(skip)]
    pub raw: Vec<(u64, usize, f64, f64, f64)>,
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
    for (key, v) in spec.point(point) {
        out.push(crate::scenario::set_arg(&key, v));
    }
    replicate_sets(sc, out, point, replicate)
}

/// `sets` followed by the session-level draws of replicate `replicate` of
/// point `point` and the replicate's sensor seed.
pub fn replicate_sets(sc: &Scenario, sets: Vec<String>, point: u64, replicate: u64) -> Vec<String> {
    let mut out = sets;
    let mut rng = task_rng(sc.seed, point, replicate);
    for u in sc.uncertain.iter().filter(|u| u.level == Level::Session) {
        out.push(format!("{}={:?}", u.key, draw(&u.dist, &mut rng)));
    }
    // Sensor noise of each replicate gets its own seed too.
    out.push(format!("seed={}", super::splitmix(sc.seed ^ (point << 32) ^ replicate) >> 1));
    out
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
        // Streams for shots sit above the replicate streams of the same point.
        let mut rng = task_rng(seed, point, (1 << 23) ^ (replicate << 32) ^ shot as u64);
        let mut shot_sets = sets.to_vec();
        for u in &per_shot {
            shot_sets.push(format!("{}={:?}", u.key, draw(&u.dist, &mut rng)));
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
                raw.push((r, s.index, s.dose, s.leak, s.peak_tissue_pressure));
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
        // Undefined statistics (the bias without a target) are empty cells.
        f.push(if v.is_finite() { format!("{v:?}") } else { String::new() });
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

/// Read the finished rows of a partial table: returns the byte length of
/// the complete rows and the next point to run. Rows must be the range's
/// prefix in order; an incomplete last line is dropped.
fn resume_point(path: &Path, header: &str, range: &std::ops::Range<u64>) -> Result<(u64, u64), String> {
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&text);
    if !text.starts_with(header) {
        return Err("its header differs from this sweep's (another scenario or --set?)".into());
    }
    let mut len = header.len() as u64;
    let mut next = range.start;
    for line in text[header.len()..].split_inclusive('\n') {
        if !line.ends_with('\n') {
            break;
        }
        let p: u64 =
            line.split(',').next().and_then(|f| f.parse().ok()).ok_or("a row does not start with its point index")?;
        if p != next {
            return Err(format!("rows out of order: point {p} where {next} was expected"));
        }
        next += 1;
        len += line.len() as u64;
    }
    Ok((len, next.min(range.end)))
}

/// Length of the complete raw rows of points before `next`.
fn raw_prefix(path: &Path, next: u64) -> Result<u64, SweepError> {
    let text = std::fs::read_to_string(path).map_err(|source| SweepError::Io { path: path.to_owned(), source })?;
    let mut len = 0u64;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if !line.ends_with('\n') {
            break;
        }
        if i > 0 {
            let p: u64 = line.split(',').next().and_then(|f| f.parse().ok()).unwrap_or(u64::MAX);
            if p >= next {
                break;
            }
        }
        len += line.len() as u64;
    }
    Ok(len)
}

/// Run the sweep of `prep` (with base `--set` overrides), writing its table
/// into `dir` in point order as chunks finish; `progress` is called with the
/// number of points done in this run's range. Returns the per-point
/// statistics computed in this call only when `keep` (for plots).
#[allow(clippy::too_many_arguments)]
pub fn run(
    prep: &Prepared,
    base: &[String],
    dir: &Path,
    threads: usize,
    keep: bool,
    progress: &(dyn Fn(u64) + Sync),
    opts: RunOptions,
) -> Result<(SweepSummary, Vec<PointStats>), SweepError> {
    let sc = prep.with(base).map_err(|source| SweepError::Point { point: 0, source })?;
    let spec = sc.sweep.clone().ok_or_else(|| SweepError::NoSweep(prep.source().name.clone()))?;
    let n = spec.points();
    let range = match opts.shard {
        None => 0..n,
        Some((i, k)) => shard_range(n, i, k),
    };
    // Check the first and last points before any work.
    for p in [0, n.saturating_sub(1)] {
        prep.with(&overrides(&sc, &spec, base, p, 0)).map_err(|source| SweepError::Point { point: p, source })?;
    }
    std::fs::create_dir_all(dir).map_err(|source| SweepError::Io { path: dir.to_owned(), source })?;
    let (table, _) = file_names(opts.shard);
    let final_path = dir.join(&table);
    let partial = dir.join(format!(".{table}.partial"));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SweepError::Io { path: path.clone(), source }
    };
    let header = csv_header(&spec);
    let mut start = range.start;
    let mut shots = 0u64;
    let file = if opts.resume && partial.exists() {
        let (len, next) = resume_point(&partial, &header, &range).map_err(|m| SweepError::Io {
            path: partial.clone(),
            source: std::io::Error::other(format!("cannot resume: {m}")),
        })?;
        let f = std::fs::OpenOptions::new().write(true).open(&partial).map_err(io(&partial))?;
        f.set_len(len).map_err(io(&partial))?;
        // Count the shots already on disk.
        let text = std::fs::read_to_string(&partial).map_err(io(&partial))?;
        let col = 1 + spec.axes.len();
        for line in text.lines().skip(1) {
            shots += line.split(',').nth(col).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
        start = next;
        std::fs::OpenOptions::new().append(true).open(&partial).map_err(io(&partial))?
    } else if opts.resume && final_path.exists() {
        // Already finished: nothing to do.
        let text = std::fs::read_to_string(&final_path).map_err(io(&final_path))?;
        let col = 1 + spec.axes.len();
        let shots =
            text.lines().skip(1).map(|l| l.split(',').nth(col).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)).sum();
        let pts = range.end - range.start;
        return Ok((SweepSummary { points: pts, sessions: pts * spec.replicates as u64, shots }, Vec::new()));
    } else {
        let mut f = std::fs::File::create(&partial).map_err(io(&partial))?;
        f.write_all(header.as_bytes()).map_err(io(&partial))?;
        f
    };
    let mut out = std::io::BufWriter::new(file);
    // Raw per-shot rows: restarted from the first point not yet in the table.
    let raw_name = match opts.shard {
        None => "raw.csv".to_string(),
        Some((i, k)) => format!("raw.shard-{i:05}-of-{k:05}.csv"),
    };
    let raw_partial = dir.join(format!(".{raw_name}.partial"));
    let mut raw_out = if opts.raw {
        let keep_len = if opts.resume && raw_partial.exists() { raw_prefix(&raw_partial, start)? } else { 0 };
        let mut f = if keep_len > 0 {
            let f = std::fs::OpenOptions::new().write(true).open(&raw_partial).map_err(io(&raw_partial))?;
            f.set_len(keep_len).map_err(io(&raw_partial))?;
            std::fs::OpenOptions::new().append(true).open(&raw_partial).map_err(io(&raw_partial))?
        } else {
            std::fs::File::create(&raw_partial).map_err(io(&raw_partial))?
        };
        if keep_len == 0 {
            let mut h = vec!["point".to_string(), "replicate".into(), "shot".into()];
            h.extend(spec.axes.iter().map(|a| a.0.clone()));
            h.extend(["dose_ul", "leak_ul", "peak_tissue_kpa"].map(String::from));
            f.write_all((h.join(",") + "\n").as_bytes()).map_err(io(&raw_partial))?;
        }
        Some(std::io::BufWriter::new(f))
    } else {
        None
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build().expect("a thread pool");
    let chunk = (64 * threads.max(1)) as u64;
    let mut kept = Vec::new();
    progress(start - range.start);
    while start < range.end {
        let end = (start + chunk).min(range.end);
        let wanted = |p: u64| opts.raw || (keep && spec.histogram.contains(&p));
        let results: Vec<Result<PointStats, SweepError>> = pool.install(|| {
            (start..end).into_par_iter().map(|p| run_point(prep, &sc, &spec, base, p, wanted(p))).collect()
        });
        for r in results {
            let mut p = r?;
            out.write_all(csv_row(&p).as_bytes()).map_err(io(&partial))?;
            if let Some(raw_out) = raw_out.as_mut() {
                for (rep, shot, dose, leak, peak) in &p.raw {
                    let mut f = vec![p.point.to_string(), rep.to_string(), shot.to_string()];
                    f.extend(p.values.iter().map(|v| format!("{v:?}")));
                    f.extend([dose * 1e9, leak * 1e9, peak / 1e3].iter().map(|v| format!("{v:?}")));
                    raw_out.write_all((f.join(",") + "\n").as_bytes()).map_err(io(&raw_partial))?;
                }
            }
            if !(keep && spec.histogram.contains(&p.point)) {
                p.raw = Vec::new();
            }
            shots += p.shots as u64;
            if keep {
                kept.push(p);
            }
        }
        out.flush().map_err(io(&partial))?;
        if let Some(raw_out) = raw_out.as_mut() {
            raw_out.flush().map_err(io(&raw_partial))?;
        }
        progress(end - range.start);
        start = end;
    }
    drop(out);
    if let Some(raw_out) = raw_out {
        drop(raw_out);
        std::fs::rename(&raw_partial, dir.join(&raw_name)).map_err(io(&raw_partial))?;
    }
    std::fs::rename(&partial, &final_path).map_err(io(&final_path))?;
    let pts = range.end - range.start;
    Ok((SweepSummary { points: pts, sessions: pts * spec.replicates as u64, shots }, kept))
}

/// A merge that cannot produce the whole sweep.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// No shard files in the folders.
    #[error("no sweep shards (sweep.shard-*-of-*.csv) in {0}")]
    None(String),
    /// Shards disagree on their count.
    #[error("shards disagree on the shard count: {0}")]
    Count(String),
    /// Some shards are missing.
    #[error("missing shard(s) {missing:?} of {count}")]
    Missing {
        /// Missing indices.
        missing: Vec<u64>,
        /// Shard count.
        count: u64,
    },
    /// A shard appears twice.
    #[error("shard {index} of {count} appears twice: {first} and {second}")]
    Duplicate {
        /// Index.
        index: u64,
        /// Count.
        count: u64,
        /// First file.
        first: String,
        /// Second file.
        second: String,
    },
    /// Shards come from different sweeps.
    #[error("{file} comes from a different sweep than {reference}: its {what} differs")]
    Mismatch {
        /// Offending manifest.
        file: String,
        /// Reference manifest.
        reference: String,
        /// What differs.
        what: String,
    },
    /// A shard is unreadable or incomplete.
    #[error("{file}: {message}")]
    Bad {
        /// File.
        file: String,
        /// What is wrong.
        message: String,
    },
}

/// Join the shards found in `dirs` into `out`/sweep.csv and
/// `out`/sweep_manifest.json, byte for byte what an unsharded run writes.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<SweepSummary, MergeError> {
    let bad = |f: &Path, m: String| MergeError::Bad { file: f.display().to_string(), message: m };
    let mut found: Vec<(u64, u64, PathBuf, PathBuf)> = Vec::new();
    for d in dirs {
        let entries = std::fs::read_dir(d).map_err(|e| bad(d, e.to_string()))?;
        let mut names: Vec<String> =
            entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        for name in names {
            let Some(rest) = name.strip_prefix("sweep.shard-").and_then(|r| r.strip_suffix(".csv")) else { continue };
            let Some((i, n)) = rest.split_once("-of-") else { continue };
            let (Ok(i), Ok(n)) = (i.parse::<u64>(), n.parse::<u64>()) else { continue };
            let (_, manifest) = file_names(Some((i, n)));
            found.push((i, n, d.join(&name), d.join(manifest)));
        }
    }
    if found.is_empty() {
        return Err(MergeError::None(dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")));
    }
    let count = found[0].1;
    if let Some(other) = found.iter().find(|f| f.1 != count) {
        return Err(MergeError::Count(format!(
            "{} says {count}, {} says {}",
            found[0].2.display(),
            other.2.display(),
            other.1
        )));
    }
    found.sort_by_key(|f| f.0);
    for w in found.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(MergeError::Duplicate {
                index: w[0].0,
                count,
                first: w[0].2.display().to_string(),
                second: w[1].2.display().to_string(),
            });
        }
    }
    let missing: Vec<u64> = (0..count).filter(|i| found.binary_search_by_key(i, |f| f.0).is_err()).collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing { missing, count });
    }
    // Every manifest must describe the same sweep.
    let read_json = |p: &Path| -> Result<serde_json::Value, MergeError> {
        let bytes = std::fs::read(p).map_err(|e| bad(p, format!("cannot read the shard's manifest: {e}")))?;
        serde_json::from_slice(&bytes).map_err(|e| bad(p, format!("not a sweep manifest: {e}")))
    };
    let reference = read_json(&found[0].3)?;
    let mut total = SweepSummary { points: 0, sessions: 0, shots: 0 };
    let mut table: Vec<u8> = Vec::new();
    let mut header: Option<String> = None;
    let mut next_point = 0u64;
    for (i, _, csv, man) in &found {
        let m = read_json(man)?;
        for what in ["scenario", "seed", "overrides", "sweep", "uncertain", "resolved_base", "mesobench_version"] {
            if m[what] != reference[what] {
                return Err(MergeError::Mismatch {
                    file: man.display().to_string(),
                    reference: found[0].3.display().to_string(),
                    what: what.to_string(),
                });
            }
        }
        let part: SweepSummary = serde_json::from_value(m["summary"].clone()).map_err(|e| bad(man, e.to_string()))?;
        total.points += part.points;
        total.sessions += part.sessions;
        total.shots += part.shots;
        let text = std::fs::read_to_string(csv).map_err(|e| bad(csv, e.to_string()))?;
        let (head, rows) = text.split_once('\n').ok_or_else(|| bad(csv, "empty".into()))?;
        match &header {
            None => {
                header = Some(head.to_string());
                table.extend_from_slice(head.as_bytes());
                table.push(b'\n');
            }
            Some(h) if h != head => return Err(bad(csv, "its header differs from the first shard's".into())),
            _ => {}
        }
        for line in rows.lines() {
            let p: u64 = line
                .split(',')
                .next()
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| bad(csv, "a row without a point index".into()))?;
            if p != next_point {
                return Err(bad(
                    csv,
                    format!("shard {i}: point {p} where {next_point} was expected (incomplete shard?)"),
                ));
            }
            next_point += 1;
            table.extend_from_slice(line.as_bytes());
            table.push(b'\n');
        }
    }
    let expected = reference["sweep_points"].as_u64().unwrap_or(0);
    if next_point != expected {
        return Err(MergeError::Bad {
            file: out.display().to_string(),
            message: format!("the shards hold {next_point} points, the sweep has {expected}"),
        });
    }
    std::fs::create_dir_all(out).map_err(|e| bad(out, e.to_string()))?;
    crate::report::write_atomic(&out.join("sweep.csv"), &table).map_err(|e| bad(out, e.to_string()))?;
    let mut merged = reference.clone();
    if let Some(obj) = merged.as_object_mut() {
        obj.remove("shard");
        obj.insert("summary".into(), serde_json::to_value(&total).expect("plain data"));
    }
    crate::report::write_atomic(&out.join("sweep_manifest.json"), &crate::report::json_bytes(&merged))
        .map_err(|e| bad(out, e.to_string()))?;
    Ok(total)
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
