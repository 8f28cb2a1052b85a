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
    /// A `--resume` that would mix results of different settings, or of a damaged table.
    #[error("cannot resume {path}: {message}; rerun without --resume or with the same settings")]
    Resume {
        /// The table to resume.
        path: PathBuf,
        /// What differs.
        message: String,
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

/// Fault injection for interruption tests (see [`RunOptions::fault_after`]):
/// counts the write, sync, truncation, removal and rename points of a run.
struct Faults {
    after: Option<u64>,
    seen: std::cell::Cell<u64>,
}

impl Faults {
    /// Count one point; true at the chosen one.
    fn hit(&self) -> bool {
        let n = self.seen.get() + 1;
        self.seen.set(n);
        self.after == Some(n)
    }
    /// Before a step that is not a write: abort the process at the chosen point.
    fn point(&self) {
        if self.hit() {
            std::process::abort();
        }
    }
    /// Write `bytes`; at the chosen point write only their first half, then
    /// abort the process (a torn write).
    fn write(&self, f: &mut std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
        if self.hit() {
            let _ = f.write_all(&bytes[..bytes.len() / 2]);
            let _ = f.sync_data();
            std::process::abort();
        }
        f.write_all(bytes)
    }
}

/// 64-bit FNV-1a of `bytes`, as 16 hex digits.
fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// What a sweep table is computed from: the scenario's content, the
/// overrides, the seed, the mesobench version, the shard and the design.
/// A partial (or finished) table is resumed only when its recorded
/// fingerprint equals this run's; the thread count is not part of it (it
/// does not change a byte).
pub fn fingerprint(
    prep: &Prepared,
    sc: &Scenario,
    spec: &SweepSpec,
    base: &[String],
    shard: Option<(u64, u64)>,
) -> serde_json::Value {
    let design = spec
        .design
        .as_ref()
        .map(|d| fnv1a(d.iter().flat_map(|row| row.iter().flat_map(|v| v.to_bits().to_le_bytes()))));
    serde_json::json!({
        "mesobench_version": crate::VERSION,
        "shard": shard.map(|(i, n)| format!("{i}/{n}")),
        "seed": sc.seed,
        "overrides": base,
        "sweep": spec,
        "points": spec.points(),
        "design": design,
        "uncertain": sc.uncertain,
        "scenario_text_fnv1a64": fnv1a(prep.source().text.bytes()),
        "resolved_base": sc,
    })
}

/// The first difference between a recorded fingerprint and this run's, as
/// "was made with …, this run has …".
fn fingerprint_mismatch(old: &serde_json::Value, new: &serde_json::Value) -> Option<String> {
    let show = |key: &str, v: &serde_json::Value| match v {
        serde_json::Value::Null if key == "shard" => "none (unsharded)".to_string(),
        serde_json::Value::Null => "none".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let keys = [
        ("mesobench_version", "mesobench version"),
        ("shard", "shard"),
        ("seed", "seed"),
        ("overrides", "--set overrides"),
        ("points", "number of points"),
        ("sweep", "[sweep] table"),
        ("design", "design (sampled points)"),
        ("uncertain", "[uncertain] table"),
        ("scenario_text_fnv1a64", "scenario file content"),
        ("resolved_base", "resolved scenario"),
    ];
    for (key, what) in keys {
        if old.get(key) != new.get(key) {
            return Some(match key {
                "mesobench_version" | "shard" | "seed" | "overrides" | "points" => format!(
                    "was made with {what} {}, this run has {what} {}",
                    show(key, old.get(key).unwrap_or(&serde_json::Value::Null)),
                    show(key, &new[key])
                ),
                _ => format!("was made with a different {what}"),
            });
        }
    }
    None
}

/// The complete rows of a partial table: for each, the byte offset of its
/// end and its shot count. Rows must be the range's prefix in order; an
/// incomplete last line is dropped.
fn table_rows(
    text: &str,
    header: &str,
    range: &std::ops::Range<u64>,
    shots_col: usize,
) -> Result<Vec<(u64, u64)>, String> {
    if !text.starts_with(header) {
        return Err("its header differs from this sweep's".into());
    }
    let fields = header.trim_end().split(',').count();
    let mut end = header.len() as u64;
    let mut rows = Vec::new();
    for (i, line) in text[header.len()..].split_inclusive('\n').enumerate() {
        if !line.ends_with('\n') {
            break;
        }
        let line_no = i + 2;
        let f: Vec<&str> = line.trim_end().split(',').collect();
        if f.len() != fields {
            return Err(format!("line {line_no} has {} fields, the header {fields}", f.len()));
        }
        let expected = range.start + rows.len() as u64;
        let p: u64 = f[0].parse().map_err(|_| format!("line {line_no} does not start with a point index"))?;
        if p != expected || p >= range.end {
            return Err(format!("line {line_no}: point {p} where {expected} was expected"));
        }
        let shots: u64 = f[shots_col]
            .parse()
            .map_err(|_| format!("line {line_no}: shots {:?} is not a whole number", f[shots_col]))?;
        end += line.len() as u64;
        rows.push((end, shots));
    }
    Ok(rows)
}

/// Raw rows of a partial raw table that belong to points holding all their
/// shots (`shots[k]` rows for point `start + k`, in order): their byte length
/// with the header and the first point that is incomplete; `None` when the
/// header is missing or differs.
fn raw_complete<R: std::io::BufRead>(
    mut r: R,
    header: &str,
    start: u64,
    shots: &[u64],
) -> std::io::Result<Option<(u64, u64)>> {
    // Streamed line by line: a raw table can be far larger than memory.
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line != header.as_bytes() {
        return Ok(None);
    }
    let fields = header.trim_end().split(',').count();
    let (mut kept, mut len) = (header.len() as u64, header.len() as u64);
    let (mut k, mut count) = (0usize, 0u64);
    loop {
        while k < shots.len() && count == shots[k] {
            k += 1;
            count = 0;
            kept = len;
        }
        if k == shots.len() {
            break;
        }
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 || !line.ends_with(b"\n") {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim_end().split(',').count() != fields {
            break;
        }
        if text.split(',').next().and_then(|f| f.parse::<u64>().ok()) != Some(start + k as u64) {
            break;
        }
        count += 1;
        len += line.len() as u64;
    }
    Ok(Some((kept, start + k as u64)))
}

/// Header of `raw.csv`.
pub fn raw_header(spec: &SweepSpec) -> String {
    let mut h = vec!["point".to_string(), "replicate".into(), "shot".into()];
    h.extend(spec.axes.iter().map(|a| a.0.clone()));
    h.extend(["dose_ul", "leak_ul", "peak_tissue_kpa"].map(String::from));
    h.join(",") + "\n"
}

/// File name of the raw per-shot table (for a shard, or the whole sweep).
pub fn raw_name(shard: Option<(u64, u64)>) -> String {
    match shard {
        None => "raw.csv".to_string(),
        Some((i, k)) => format!("raw.shard-{i:05}-of-{k:05}.csv"),
    }
}

/// Remove `path` if it exists.
fn remove_if_exists(path: &Path) -> Result<(), SweepError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SweepError::Io { path: path.to_owned(), source: e }),
        _ => Ok(()),
    }
}

/// Open `path` for appending after cutting it to `len` bytes.
fn cut_and_append(path: &Path, len: u64, faults: &Faults) -> Result<std::fs::File, SweepError> {
    let io = |source| SweepError::Io { path: path.to_owned(), source };
    let f = std::fs::OpenOptions::new().write(true).open(path).map_err(io)?;
    faults.point();
    f.set_len(len).map_err(io)?;
    drop(f);
    std::fs::OpenOptions::new().append(true).open(path).map_err(io)
}

/// Run the sweep of `prep` (with base `--set` overrides), writing its table
/// into `dir` in point order as chunks finish; `progress` is called with the
/// number of points done in this run's range. Returns the per-point
/// statistics when `keep` (for plots), as the table writes them (to its
/// shortest round-trip digits in µL and kPa), those of points resumed from
/// disk read back from it.
///
/// Each chunk's raw rows (with `raw`) reach the disk before its table rows.
/// A fresh run removes the earlier table and raw files of the same name and
/// records its fingerprint beside the table (`.sweep.csv.fingerprint.json`);
/// a resumed run refuses a table made with other settings, keeps the
/// table's complete rows whose points have all their raw rows, and
/// recomputes the rest.
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
    let faults = Faults { after: opts.fault_after, seen: std::cell::Cell::new(0) };
    let (table, _) = file_names(opts.shard);
    let final_path = dir.join(&table);
    let partial = dir.join(format!(".{table}.partial"));
    let fp_path = dir.join(format!(".{table}.fingerprint.json"));
    let raw_name = raw_name(opts.shard);
    let raw_final = dir.join(&raw_name);
    let raw_partial = dir.join(format!(".{raw_name}.partial"));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SweepError::Io { path: path.clone(), source }
    };
    let resume_err = |message: String| SweepError::Resume { path: final_path.clone(), message };
    let header = csv_header(&spec);
    let raw_head = raw_header(&spec);
    let fp = fingerprint(prep, &sc, &spec, base, opts.shard);
    let mut start = range.start;
    let mut shots = 0u64;
    let mut kept = Vec::new();
    let (mut out, mut raw_out) = if opts.resume && (partial.exists() || final_path.exists()) {
        let which = if partial.exists() { "the partial table" } else { "the finished table" };
        let old: serde_json::Value = match std::fs::read(&fp_path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| resume_err(format!("its fingerprint {} is unreadable ({e})", fp_path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(resume_err(format!(
                    "{which} has no fingerprint ({}), so the settings it was made with are unknown",
                    fp_path.display()
                )))
            }
            Err(e) => return Err(io(&fp_path)(e)),
        };
        if let Some(m) = fingerprint_mismatch(&old, &fp) {
            return Err(resume_err(format!("{which} {m}")));
        }
        // A finished table (or raw table) is resumed like a partial one: it
        // is checked the same way and renamed back when complete.
        if !partial.exists() {
            faults.point();
            std::fs::rename(&final_path, &partial).map_err(io(&final_path))?;
        }
        if opts.raw && !raw_partial.exists() && raw_final.exists() {
            faults.point();
            std::fs::rename(&raw_final, &raw_partial).map_err(io(&raw_final))?;
        }
        let table_text = String::from_utf8_lossy(&std::fs::read(&partial).map_err(io(&partial))?).into_owned();
        // A header cut short by an interruption is an empty table.
        let torn = table_text.len() < header.len() && header.starts_with(table_text.as_str());
        let rows = if torn {
            Vec::new()
        } else {
            table_rows(&table_text, &header, &range, 1 + spec.axes.len())
                .map_err(|m| resume_err(format!("{}: {m}", partial.display())))?
        };
        let row_shots: Vec<u64> = rows.iter().map(|r| r.1).collect();
        let mut done = rows.len();
        let raw_file = if opts.raw {
            let found = match std::fs::File::open(&raw_partial) {
                Ok(f) => raw_complete(std::io::BufReader::new(f), &raw_head, range.start, &row_shots)
                    .map_err(io(&raw_partial))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(io(&raw_partial)(e)),
            };
            // Points of the table missing some of their raw rows are recomputed.
            Some(match found {
                Some((len, next)) => {
                    done = done.min((next - range.start) as usize);
                    cut_and_append(&raw_partial, len, &faults)?
                }
                None => {
                    done = 0;
                    let mut f = std::fs::File::create(&raw_partial).map_err(io(&raw_partial))?;
                    faults.write(&mut f, raw_head.as_bytes()).map_err(io(&raw_partial))?;
                    f
                }
            })
        } else {
            None
        };
        let len = if done == 0 { header.len() as u64 } else { rows[done - 1].0 };
        let f = if torn {
            let mut f = std::fs::File::create(&partial).map_err(io(&partial))?;
            faults.write(&mut f, header.as_bytes()).map_err(io(&partial))?;
            f
        } else {
            cut_and_append(&partial, len, &faults)?
        };
        shots = row_shots[..done].iter().sum();
        start = range.start + done as u64;
        if keep {
            // The plots cover the points already on disk too: their statistics
            // are read back, the histogram points' shots recomputed.
            for line in table_text.get(header.len()..len as usize).unwrap_or("").lines() {
                let f: Vec<&str> = line.split(',').collect();
                let mut p = stats_from_row(&f, spec.axes.len());
                if spec.histogram.contains(&p.point) {
                    p = as_written(run_point(prep, &sc, &spec, base, p.point, true)?);
                }
                kept.push(p);
            }
        }
        (f, raw_file)
    } else {
        // A fresh start: nothing of an earlier run of this table survives,
        // and the fingerprint is on disk before the first row.
        for p in [&final_path, &partial, &raw_final, &raw_partial] {
            faults.point();
            remove_if_exists(p)?;
        }
        let tmp = dir.join(format!(".{table}.fingerprint.json.partial"));
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        faults.write(&mut f, &crate::report::json_bytes(&fp)).map_err(io(&tmp))?;
        drop(f);
        faults.point();
        std::fs::rename(&tmp, &fp_path).map_err(io(&fp_path))?;
        let mut f = std::fs::File::create(&partial).map_err(io(&partial))?;
        faults.write(&mut f, header.as_bytes()).map_err(io(&partial))?;
        let raw_file = if opts.raw {
            let mut f = std::fs::File::create(&raw_partial).map_err(io(&raw_partial))?;
            faults.write(&mut f, raw_head.as_bytes()).map_err(io(&raw_partial))?;
            Some(f)
        } else {
            None
        };
        (f, raw_file)
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build().expect("a thread pool");
    let chunk = (64 * threads.max(1)) as u64;
    progress(start - range.start);
    let (first_new, shots_before) = (start, shots);
    // Progress moves with every finished point, not with every written chunk.
    let done = std::sync::atomic::AtomicU64::new(start - range.start);
    while start < range.end {
        let end = (start + chunk).min(range.end);
        let wanted = |p: u64| opts.raw || (keep && spec.histogram.contains(&p));
        let results: Vec<Result<PointStats, SweepError>> = pool.install(|| {
            (start..end)
                .into_par_iter()
                .map(|p| {
                    let r = run_point(prep, &sc, &spec, base, p, wanted(p));
                    progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
                    r
                })
                .collect()
        });
        let (mut rows, mut raw_rows) = (Vec::new(), Vec::new());
        for r in results {
            let mut p = r?;
            rows.extend_from_slice(csv_row(&p).as_bytes());
            if opts.raw {
                for (rep, shot, dose, leak, peak) in &p.raw {
                    let mut f = vec![p.point.to_string(), rep.to_string(), shot.to_string()];
                    f.extend(p.values.iter().map(|v| format!("{v:?}")));
                    f.extend([dose * 1e9, leak * 1e9, peak / 1e3].iter().map(|v| format!("{v:?}")));
                    raw_rows.extend_from_slice((f.join(",") + "\n").as_bytes());
                }
            }
            if !(keep && spec.histogram.contains(&p.point)) {
                p.raw = Vec::new();
            }
            shots += p.shots as u64;
            if keep {
                kept.push(as_written(p));
            }
        }
        // The raw rows are on disk before their table rows.
        if let Some(f) = raw_out.as_mut() {
            faults.write(f, &raw_rows).map_err(io(&raw_partial))?;
            faults.point();
            f.sync_data().map_err(io(&raw_partial))?;
        }
        faults.write(&mut out, &rows).map_err(io(&partial))?;
        faults.point();
        out.sync_data().map_err(io(&partial))?;
        progress(end - range.start);
        start = end;
    }
    drop(out);
    if let Some(f) = raw_out {
        drop(f);
        faults.point();
        std::fs::rename(&raw_partial, &raw_final).map_err(io(&raw_partial))?;
    }
    faults.point();
    std::fs::rename(&partial, &final_path).map_err(io(&final_path))?;
    let pts = range.end - range.start;
    let summary = SweepSummary {
        points: pts,
        sessions: pts * spec.replicates as u64,
        shots,
        computed_points: range.end - first_new,
        computed_shots: shots - shots_before,
    };
    Ok((summary, kept))
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

/// A merged sweep.
#[derive(Debug)]
pub struct Merged {
    /// Points, sessions and shots of the whole sweep.
    pub summary: SweepSummary,
    /// Whether raw shards were joined into raw.csv.
    pub raw: bool,
    /// What the plots are drawn from, or why they cannot be (the scenario
    /// recorded in the manifest no longer loads, e.g. a plugin moved).
    pub plots: Result<MergedPlots, String>,
}

/// What the plots of an unsharded sweep are drawn from, after a merge: the
/// scenario rebuilt from the manifest, and every point's statistics read
/// back from the table (those of the histogram points recomputed with their shots).
#[derive(Debug)]
pub struct MergedPlots {
    /// The scenario, parsed once.
    pub prep: Prepared,
    /// The base overrides.
    pub overrides: Vec<String>,
    /// The resolved base scenario.
    pub scenario: Scenario,
    /// Per-point statistics (empty for sweeps too large to plot).
    pub points: Vec<PointStats>,
}

/// The complete, well-formed rows of one shard's table or raw table, checked
/// line by line: the text ends with a line end, every row has the header's
/// field count and numbers only. Returns the rows' fields (header excluded).
fn shard_lines<'a>(file: &Path, text: &'a str, header: &str) -> Result<Vec<(usize, Vec<&'a str>)>, MergeError> {
    let bad = |m: String| MergeError::Bad { file: file.display().to_string(), message: m };
    let Some(body) = text.strip_prefix(header) else {
        let first = text.lines().next().unwrap_or("");
        return Err(bad(format!("line 1: the header {first:?} differs from this sweep's {:?}", header.trim_end())));
    };
    let fields = header.trim_end().split(',').count();
    let mut rows = Vec::new();
    for (i, line) in body.split_inclusive('\n').enumerate() {
        let line_no = i + 2;
        let Some(line) = line.strip_suffix('\n') else {
            return Err(bad(format!(
                "line {line_no} is cut short (no line end): the shard was interrupted mid-row; rerun it with --resume"
            )));
        };
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != fields {
            return Err(bad(format!("line {line_no} has {} fields, the header has {fields}", f.len())));
        }
        if let Some(v) = f.iter().find(|v| v.parse::<f64>().is_err()) {
            return Err(bad(format!("line {line_no}: {v:?} is not a number")));
        }
        rows.push((line_no, f));
    }
    Ok(rows)
}

/// Check raw shard `raw_file` row by row (line ends, field count, numbers,
/// and `shots[k]` rows for point `start + k`, as its table `csv` says) and
/// append its rows to `w`, holding one row at a time.
fn merge_raw_shard(
    raw_file: &Path,
    raw_head: &str,
    start: u64,
    shots: &[u64],
    csv: &Path,
    w: &mut impl Write,
) -> Result<(), MergeError> {
    use std::io::BufRead;
    let bad = |m: String| MergeError::Bad { file: raw_file.display().to_string(), message: m };
    let f = std::fs::File::open(raw_file).map_err(|e| bad(e.to_string()))?;
    let mut r = std::io::BufReader::new(f);
    let mut line = Vec::new();
    let read = |r: &mut std::io::BufReader<std::fs::File>, line: &mut Vec<u8>| -> Result<bool, MergeError> {
        line.clear();
        Ok(r.read_until(b'\n', line).map_err(|e| bad(e.to_string()))? > 0)
    };
    read(&mut r, &mut line)?;
    if line != raw_head.as_bytes() {
        let first = String::from_utf8_lossy(&line).trim_end().to_string();
        return Err(bad(format!("line 1: the header {first:?} differs from this sweep's {:?}", raw_head.trim_end())));
    }
    let fields = raw_head.trim_end().split(',').count();
    let mut line_no = 1usize;
    for (k, &n) in shots.iter().enumerate() {
        let p = start + k as u64;
        for _ in 0..n {
            line_no += 1;
            if !read(&mut r, &mut line)? {
                return Err(bad(format!(
                    "ends before the {n} rows of point {p} (rows are missing; rerun the shard with --resume)"
                )));
            }
            check_raw_row(&line, line_no, fields, Some(p), csv, n).map_err(bad)?;
            w.write_all(&line).map_err(|e| bad(e.to_string()))?;
        }
    }
    if read(&mut r, &mut line)? {
        let first = String::from_utf8_lossy(&line).split(',').next().unwrap_or("").to_string();
        return Err(bad(format!("line {}: a row of point {first} beyond the shard's shots", line_no + 1)));
    }
    Ok(())
}

/// One raw row: a line end, `fields` numbers, and point `p`.
fn check_raw_row(line: &[u8], line_no: usize, fields: usize, p: Option<u64>, csv: &Path, n: u64) -> Result<(), String> {
    let text = String::from_utf8_lossy(line);
    let Some(text) = text.strip_suffix('\n') else {
        return Err(format!(
            "line {line_no} is cut short (no line end): the shard was interrupted mid-row; rerun it with --resume"
        ));
    };
    let f: Vec<&str> = text.split(',').collect();
    if f.len() != fields {
        return Err(format!("line {line_no} has {} fields, the header has {fields}", f.len()));
    }
    if let Some(v) = f.iter().find(|v| v.parse::<f64>().is_err()) {
        return Err(format!("line {line_no}: {v:?} is not a number"));
    }
    match p {
        Some(p) if f[0] != p.to_string() => Err(format!(
            "line {line_no}: point {} where a row of point {p} was expected (point {p} has {n} shots in {})",
            f[0],
            csv.display()
        )),
        _ => Ok(()),
    }
}

/// Join the shards found in `dirs` into `out`/sweep.csv and
/// `out`/sweep_manifest.json (and their raw tables into raw.csv), byte for
/// byte what an unsharded run writes. Every row of every shard is checked:
/// its field count, its numbers, its point index against the shard's range
/// and, for raw rows, their count against the table's shots.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Merged, MergeError> {
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
    // The scenario, rebuilt from the manifest: the table's header and the plots come from it.
    let man0 = &found[0].3;
    // The table's shape from the manifest; the scenario, rebuilt from it, only for the plots.
    let axes: Vec<String> = reference["sweep"]["axes"]
        .as_array()
        .map(|a| a.iter().filter_map(|k| k[0].as_str().map(String::from)).collect())
        .ok_or_else(|| bad(man0, "no sweep axes in the manifest".into()))?;
    let histogram: Vec<u64> = reference["sweep"]["histogram"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
        .unwrap_or_default();
    let points =
        reference["sweep_points"].as_u64().ok_or_else(|| bad(man0, "no sweep_points in the manifest".into()))?;
    let shape = SweepSpec {
        replicates: 0,
        target: None,
        axes: axes.iter().map(|k| (k.clone(), Vec::new())).collect(),
        histogram: Vec::new(),
        trace_point: 0,
        sampling: crate::scenario::Sampling::Grid,
        design: None,
    };
    let header = csv_header(&shape);
    let raw_head = raw_header(&shape);
    let shots_col = 1 + axes.len();
    let plots = rebuild(&reference).map_err(|e| format!("{}: {e}", man0.display()));
    // Raw shards: all of them or none.
    let raw_files: Vec<PathBuf> =
        found.iter().map(|(i, n, csv, _)| csv.with_file_name(raw_name(Some((*i, *n))))).collect();
    let with_raw = raw_files.iter().filter(|p| p.exists()).count();
    if with_raw != 0 && with_raw != raw_files.len() {
        let absent = raw_files.iter().find(|p| !p.exists()).expect("one is missing");
        return Err(bad(
            absent,
            "missing, while other shards have their raw table (were all shards run with --raw?)".into(),
        ));
    }
    let mut total = SweepSummary { points: 0, sessions: 0, shots: 0, computed_points: 0, computed_shots: 0 };
    let mut table: Vec<u8> = header.as_bytes().to_vec();
    // Raw shards can be far larger than memory: they are checked and copied
    // row by row into a temporary file in the output folder.
    let raw_tmp = out.join(".raw.csv.merge.partial");
    let mut raw = if with_raw > 0 {
        std::fs::create_dir_all(out).map_err(|e| bad(out, e.to_string()))?;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&raw_tmp).map_err(|e| bad(&raw_tmp, e.to_string()))?);
        w.write_all(raw_head.as_bytes()).map_err(|e| bad(&raw_tmp, e.to_string()))?;
        Some(w)
    } else {
        None
    };
    let keep = points <= 100_000;
    let mut stats = Vec::new();
    let result = (|| {
        for ((i, _, csv, man), raw_file) in found.iter().zip(&raw_files) {
            let m = read_json(man)?;
            for what in [
                "scenario",
                "scenario_text",
                "seed",
                "overrides",
                "sweep",
                "uncertain",
                "resolved_base",
                "mesobench_version",
            ] {
                if m[what] != reference[what] {
                    return Err(MergeError::Mismatch {
                        file: man.display().to_string(),
                        reference: man0.display().to_string(),
                        what: what.to_string(),
                    });
                }
            }
            let range = shard_range(points, *i, count);
            let part: SweepSummary =
                serde_json::from_value(m["summary"].clone()).map_err(|e| bad(man, e.to_string()))?;
            if part.points != range.end - range.start {
                return Err(bad(
                    man,
                    format!(
                        "its summary counts {} points, shard {i} of {count} has {}",
                        part.points,
                        range.end - range.start
                    ),
                ));
            }
            let text = std::fs::read_to_string(csv).map_err(|e| bad(csv, e.to_string()))?;
            let rows = shard_lines(csv, &text, &header)?;
            let mut shots = Vec::with_capacity(rows.len());
            for (k, (line_no, f)) in rows.iter().enumerate() {
                let expected = range.start + k as u64;
                let p: u64 =
                    f[0].parse().map_err(|_| bad(csv, format!("line {line_no}: point {:?} is not an index", f[0])))?;
                if p != expected || p >= range.end {
                    return Err(bad(
                        csv,
                        format!(
                        "line {line_no}: point {p} where {} was expected (shard {i} of {count} holds points {} to {})",
                        if expected < range.end { expected.to_string() } else { "the end of the file".into() },
                        range.start,
                        range.end - 1
                    ),
                    ));
                }
                let s: u64 = f[shots_col]
                    .parse()
                    .map_err(|_| bad(csv, format!("line {line_no}: shots {:?} is not a count", f[shots_col])))?;
                shots.push(s);
                if keep {
                    stats.push(stats_from_row(f, axes.len()));
                }
            }
            if rows.len() as u64 != range.end - range.start {
                return Err(bad(
                csv,
                format!(
                    "holds {} of the {} points of shard {i} of {count} (points {} to {}): rows are missing; rerun the shard with --resume",
                    rows.len(),
                    range.end - range.start,
                    range.start,
                    range.end - 1
                ),
            ));
            }
            if shots.iter().sum::<u64>() != part.shots {
                return Err(bad(
                    csv,
                    format!("its rows hold {} shots, its manifest says {}", shots.iter().sum::<u64>(), part.shots),
                ));
            }
            table.extend_from_slice(&text.as_bytes()[header.len()..]);
            total.points += part.points;
            total.sessions += part.sessions;
            total.shots += part.shots;
            if let Some(w) = raw.as_mut() {
                merge_raw_shard(raw_file, &raw_head, range.start, &shots, csv, w)?;
            }
        }
        if total.points != points {
            return Err(bad(man0, format!("the shards hold {} points, the sweep has {points}", total.points)));
        }
        Ok(())
    })();
    if let Err(e) = result {
        drop(raw);
        let _ = std::fs::remove_file(&raw_tmp);
        return Err(e);
    }
    // The histogram points' shots are recomputed (a few points; deterministic).
    let plots = plots.and_then(|(prep, overrides, sc)| {
        let spec = sc.sweep.clone().ok_or("the recorded scenario has no [sweep] table")?;
        if keep {
            for &h in &histogram {
                if let Some(slot) = stats.get_mut(h as usize) {
                    *slot = as_written(
                        run_point(&prep, &sc, &spec, &overrides, h, true)
                            .map_err(|e| format!("cannot recompute histogram point {h}: {e}"))?,
                    );
                }
            }
        }
        Ok(MergedPlots { prep, overrides, scenario: sc, points: if keep { stats } else { Vec::new() } })
    });
    std::fs::create_dir_all(out).map_err(|e| bad(out, e.to_string()))?;
    if let Some(w) = raw {
        let f = w.into_inner().map_err(|e| bad(&raw_tmp, e.to_string()))?;
        f.sync_all().map_err(|e| bad(&raw_tmp, e.to_string()))?;
        std::fs::rename(&raw_tmp, out.join("raw.csv")).map_err(|e| bad(out, e.to_string()))?;
    }
    crate::report::write_atomic(&out.join("sweep.csv"), &table).map_err(|e| bad(out, e.to_string()))?;
    let mut merged = reference.clone();
    if let Some(obj) = merged.as_object_mut() {
        obj.remove("shard");
        obj.insert("summary".into(), serde_json::to_value(&total).expect("plain data"));
    }
    crate::report::write_atomic(&out.join("sweep_manifest.json"), &crate::report::json_bytes(&merged))
        .map_err(|e| bad(out, e.to_string()))?;
    Ok(Merged { summary: total, raw: with_raw > 0, plots })
}

/// The scenario a sweep manifest records (its text and overrides), checked
/// against the resolved base scenario the manifest holds.
fn rebuild(m: &serde_json::Value) -> Result<(Prepared, Vec<String>, Scenario), String> {
    let text = m["scenario_text"].as_str().ok_or("the manifest has no scenario_text")?;
    let name = m["source"].as_str().unwrap_or("").to_string();
    let overrides: Vec<String> =
        serde_json::from_value(m["overrides"].clone()).map_err(|e| format!("its overrides are unreadable: {e}"))?;
    let dir = Path::new(&name).parent().map(Path::to_path_buf).unwrap_or_default();
    let source = crate::scenario::Source { name, text: text.to_string(), dir };
    let prep = Prepared::new(&source, m["scenario"].as_str().unwrap_or("scenario")).map_err(|e| e.to_string())?;
    let sc = prep.with(&overrides).map_err(|e| e.to_string())?;
    if serde_json::to_value(&sc).ok().as_ref() != Some(&m["resolved_base"]) {
        return Err("the scenario it records no longer resolves to its resolved_base".into());
    }
    Ok((prep, overrides, sc))
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
        cv: num(c + 3),
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
