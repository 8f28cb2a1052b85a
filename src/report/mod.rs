//! Reports: flat CSV rows, JSON summaries and manifests, and plots.
//!
//! Human units appear here only (µL, kPa, ms). Every file is written to a
//! temporary name in its folder and renamed into place, so a reader never
//! sees a half-written file and an interrupted run leaves earlier files whole.

pub mod compare;
pub mod fit;
mod folder;
pub mod plot;
mod raster;
mod rows;
mod trace;
pub mod tune;

pub use self::folder::{command_outputs, lock_output, remove_outputs, FolderInUse, LockError, OutputLock};
pub use self::rows::{FwColumns, NeedleRow, ShotRow, TraceRow};
pub use self::trace::{TraceCsv, TraceTable};

use std::path::{Path, PathBuf};

use crate::scenario::Scenario;
use crate::sim::{ShotRecord, TraceSample};
use crate::stats::describe;
use crate::Run;

/// A report that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// File system error.
    #[error("cannot write {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Plotting error.
    #[error("cannot draw {path}: {message}")]
    Plot {
        /// File.
        path: PathBuf,
        /// Cause.
        message: String,
    },
}

/// Write `bytes` to `path` atomically (temporary file, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    crate::files::write_atomic(path, bytes).map_err(|source| ReportError::Io { path: path.to_owned(), source })
}

/// A number, or an empty cell where it is undefined (NaN: a valve that never
/// reached 90 % opening, the t90 of a shot that delivered nothing).
fn finite_or_empty<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(crate::text::tidy(*v))
    } else {
        s.serialize_none()
    }
}

/// A table's number, without the residue of its unit conversion
/// ([`crate::text::tidy`]).
pub(crate) fn tidy_f64<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(crate::text::tidy(*v))
}

/// An optional number of a table (empty when absent), as [`tidy_f64`].
pub(crate) fn tidy_opt<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(x) => s.serialize_some(&crate::text::tidy(*x)),
        None => s.serialize_none(),
    }
}

/// `summary.json`.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Completed shots.
    pub shots: usize,
    /// Mean dose, µL.
    pub dose_mean_ul: f64,
    /// Dose SD (n − 1), µL.
    pub dose_sd_ul: f64,
    /// Dose CV, % (SD / mean × 100).
    pub dose_cv_pct: f64,
    /// Smallest dose, µL.
    pub dose_min_ul: f64,
    /// Largest dose, µL.
    pub dose_max_ul: f64,
    /// Mean reflux per shot, µL.
    pub leak_mean_ul: f64,
    /// Mean expelled volume per shot, µL.
    pub expelled_mean_ul: f64,
    /// Highest tissue pressure, kPa gauge.
    pub peak_tissue_pressure_kpa: f64,
    /// Highest syringe pressure, kPa gauge.
    pub peak_syringe_pressure_kpa: f64,
    /// Highest flow, µL/s.
    pub peak_flow_ul_s: f64,
    /// Mean time to 90 % of the dose, ms.
    pub t90_mean_ms: f64,
    /// Mean effective valve-open time, ms.
    pub valve_open_effective_mean_ms: f64,
    /// Largest needle Reynolds number.
    pub max_reynolds: f64,
    /// Mean dose per needle, µL.
    pub needle_dose_mean_ul: Vec<f64>,
    /// Why the session stopped early, if it did.
    pub stopped: Option<String>,
    /// Model-validity and outcome warnings.
    pub warnings: Vec<String>,
}

/// Build the summary of a run.
pub fn summary(sc: &Scenario, run: &Run) -> Summary {
    let shots = &run.result.shots;
    let doses: Vec<f64> = shots.iter().map(|s| s.dose * 1e9).collect();
    let d = describe(&doses);
    // Over the shots where the quantity is defined (a shot that delivers
    // nothing has no t90).
    let mean_of = |f: &dyn Fn(&ShotRecord) -> f64| {
        describe(&shots.iter().map(f).filter(|v| v.is_finite()).collect::<Vec<_>>()).mean
    };
    let max_of = |f: &dyn Fn(&ShotRecord) -> f64| shots.iter().map(f).fold(0.0, f64::max);
    let n = sc.params.needles.len();
    Summary {
        scenario: sc.name.clone(),
        shots: shots.len(),
        dose_mean_ul: d.mean,
        dose_sd_ul: d.sd,
        dose_cv_pct: 100.0 * d.cv,
        dose_min_ul: d.min,
        dose_max_ul: d.max,
        leak_mean_ul: mean_of(&|s| s.leak * 1e9),
        expelled_mean_ul: mean_of(&|s| s.expelled * 1e9),
        peak_tissue_pressure_kpa: max_of(&|s| s.peak_tissue_pressure / 1e3),
        peak_syringe_pressure_kpa: max_of(&|s| s.peak_syringe_pressure / 1e3),
        peak_flow_ul_s: max_of(&|s| s.peak_flow * 1e9),
        t90_mean_ms: mean_of(&|s| s.t90 * 1e3),
        valve_open_effective_mean_ms: mean_of(&|s| s.valve_open_effective * 1e3),
        max_reynolds: max_of(&|s| s.max_re),
        needle_dose_mean_ul: (0..n).map(|i| mean_of(&|s| s.needles[i].dose * 1e9)).collect(),
        stopped: run.result.stopped.clone(),
        warnings: run.result.warnings.clone(),
    }
}

/// `manifest.json`: everything needed to reproduce the run.
#[derive(Debug, serde::Serialize)]
pub struct Manifest<'a> {
    /// mesobench version.
    pub mesobench_version: &'a str,
    /// Scenario name.
    pub scenario: &'a str,
    /// Scenario source (path or the embedded default).
    pub source: &'a str,
    /// `--set` overrides, in order.
    pub overrides: &'a [String],
    /// Master seed.
    pub seed: u64,
    /// Resolved SI scenario (parameters, solver, firmware, session).
    pub resolved: &'a Scenario,
    /// Solver counts.
    pub solver_stats: SolverStats,
}

/// Step counts of a run.
#[derive(Debug, serde::Serialize)]
pub struct SolverStats {
    /// Effective plant step, s.
    pub effective_step_s: f64,
    /// Plant steps per firmware tick.
    pub substeps_per_tick: u64,
    /// Total plant steps.
    pub steps_total: u64,
    /// Steps per shot.
    pub steps_per_shot: Vec<u64>,
}

pub(crate) fn csv_bytes<T: serde::Serialize>(
    rows: impl Iterator<Item = T>,
    path: &Path,
) -> Result<Vec<u8>, ReportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r).map_err(|e| ReportError::Io { path: path.to_owned(), source: std::io::Error::other(e) })?;
    }
    w.into_inner().map_err(|e| ReportError::Io { path: path.to_owned(), source: std::io::Error::other(e.to_string()) })
}

pub use crate::files::json_bytes;

/// The bytes of a run's `shots.csv` (`path` names the file in an error).
pub fn shots_csv(run: &Run, path: &Path) -> Result<Vec<u8>, ReportError> {
    csv_bytes(run.result.shots.iter().map(ShotRow::from), path)
}

/// The bytes of a run's `needles.csv`: one row per needle and shot.
pub fn needles_csv(run: &Run, path: &Path) -> Result<Vec<u8>, ReportError> {
    let rows = run.result.shots.iter().flat_map(|s| {
        s.needles.iter().enumerate().map(move |(i, n)| NeedleRow {
            shot: s.index,
            needle: i,
            dose_ul: n.dose * 1e9,
            leak_ul: n.leak * 1e9,
            share: if s.dose > 0.0 { n.dose / s.dose } else { 0.0 },
            peak_tissue_kpa: n.peak_site_pressure / 1e3,
            max_reynolds: n.max_re,
        })
    });
    csv_bytes(rows, path)
}

/// The text of `sensitivity.csv`.
pub fn sensitivity_csv(a: &crate::study::sensitivity::Analysis) -> String {
    let mut csv = String::from("parameter,first,first_lo,first_hi,total,total_lo,total_hi\n");
    for i in &a.indices {
        csv.push_str(&format!(
            "{},{}\n",
            i.name,
            [i.first, i.first_ci.0, i.first_ci.1, i.total, i.total_ci.0, i.total_ci.1].map(crate::text::cell).join(",")
        ));
    }
    csv
}

/// Write every output of a run into `dir`; returns the files written.
/// `trace` holds the rows streamed during the run (see [`crate::simulate_traced`]);
/// the plots draw the run's bounded copy of the trace.
pub fn write_run(
    dir: &Path,
    sc: &Scenario,
    source: &str,
    overrides: &[String],
    run: &Run,
    trace: TraceCsv,
) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io { path: dir.to_owned(), source })?;
    let trace_path = trace.finish()?;
    let mut written = Vec::new();
    let mut put = |name: &str, bytes: Vec<u8>| -> Result<(), ReportError> {
        let p = dir.join(name);
        write_atomic(&p, &bytes)?;
        written.push(p);
        Ok(())
    };
    let shots = &run.result.shots;
    put("shots.csv", shots_csv(run, &dir.join("shots.csv"))?)?;
    put("needles.csv", needles_csv(run, &dir.join("needles.csv"))?)?;
    put("summary.json", json_bytes(&summary(sc, run)))?;
    let manifest = Manifest {
        mesobench_version: crate::VERSION,
        scenario: &sc.name,
        source,
        overrides,
        seed: sc.seed,
        resolved: sc,
        solver_stats: SolverStats {
            effective_step_s: run.result.effective_step,
            substeps_per_tick: run.result.substeps,
            steps_total: run.result.steps,
            steps_per_shot: shots.iter().map(|s| s.steps).collect(),
        },
    };
    put("manifest.json", json_bytes(&manifest))?;
    written.insert(2, trace_path);
    for name in ["trace.png", "trace.svg"] {
        let p = dir.join(name);
        let (unit, scale) = FwColumns::of(sc).plot;
        plot::render(
            &p,
            &plot::TraceChart { name: &sc.name, samples: &run.trace, shots, fw_scale: scale, fw_unit: unit },
        )?;
        written.push(p);
    }
    for name in ["doses.png", "doses.svg"] {
        let p = dir.join(name);
        plot::render(&p, &plot::DoseChart { name: &sc.name, shots })?;
        written.push(p);
    }
    Ok(written)
}

/// Write the sweep's manifest and (for a whole sweep) its plots; the table
/// is streamed by the study.
#[allow(clippy::too_many_arguments)]
pub fn write_sweep(
    dir: &Path,
    sc: &Scenario,
    source: &crate::scenario::Source,
    overrides: &[String],
    summary: &crate::study::sweep::SweepSummary,
    points: &[crate::study::sweep::PointStats],
    shard: Option<(u64, u64)>,
) -> Result<Vec<PathBuf>, ReportError> {
    let spec = sc.sweep.as_ref().expect("a sweep scenario");
    let mut written = Vec::new();
    let mut manifest = serde_json::json!({
        "mesobench_version": crate::VERSION,
        "scenario": sc.name,
        "source": source.name,
        "scenario_text": source.text,
        "overrides": overrides,
        "seed": sc.seed,
        "rng": "ChaCha8, one stream per (point, replicate) derived from the seed",
        "sweep": spec,
        "sweep_points": spec.points(),
        "uncertain": sc.uncertain,
        "summary": summary,
        "resolved_base": sc,
    });
    if let Some((i, n)) = shard {
        let range = crate::study::sweep::shard_range(spec.points(), i, n);
        manifest["shard"] =
            serde_json::json!({ "index": i, "count": n, "first_point": range.start, "end_point": range.end });
    }
    let p = dir.join(crate::study::sweep::file_names(shard).1);
    write_atomic(&p, &json_bytes(&manifest))?;
    written.push(p);
    if shard.is_some() {
        return Ok(written);
    }
    written.extend(write_sweep_plots(dir, sc, points)?);
    Ok(written)
}

/// The plots of a whole sweep from its points' statistics (those with shots
/// get a histogram): sweep_mean, sweep_cv (grids of one or two keys) and
/// sweep_hist.
pub fn write_sweep_plots(
    dir: &Path,
    sc: &Scenario,
    points: &[crate::study::sweep::PointStats],
) -> Result<Vec<PathBuf>, ReportError> {
    let spec = sc.sweep.as_ref().expect("a sweep scenario");
    let mut written = Vec::new();
    if points.is_empty() || spec.axes.is_empty() {
        return Ok(written);
    }
    let keys: Vec<String> = spec.axes.iter().map(|a| a.0.clone()).collect();
    let series = if spec.axes.len() >= 2 { spec.axes[1].1.clone() } else { vec![f64::NAN] };
    if spec.axes.len() <= 2 && spec.space_filling.is_none() {
        for name in ["sweep_mean.png", "sweep_mean.svg"] {
            let p = dir.join(name);
            plot::render(
                &p,
                &plot::SweepMeanChart { name: &sc.name, keys: keys.clone(), series: series.clone(), points },
            )?;
            written.push(p);
        }
    }
    let hist: Vec<&crate::study::sweep::PointStats> = points.iter().filter(|p| !p.raw.is_empty()).collect();
    if !hist.is_empty() {
        for name in ["sweep_hist.png", "sweep_hist.svg"] {
            let p = dir.join(name);
            plot::render(&p, &plot::HistogramChart { name: &sc.name, keys: keys.clone(), points: &hist })?;
            written.push(p);
        }
    }
    if spec.axes.len() == 2 && spec.space_filling.is_none() {
        for name in ["sweep_cv.png", "sweep_cv.svg"] {
            let p = dir.join(name);
            let chart = plot::SweepCvChart {
                name: &sc.name,
                keys: [keys[0].clone(), keys[1].clone()],
                axes: [spec.axes[0].1.clone(), spec.axes[1].1.clone()],
                points,
            };
            plot::render(&p, &chart)?;
            written.push(p);
        }
    }
    Ok(written)
}

/// Write a sensitivity analysis: sensitivity.csv, sensitivity.json and a bar chart.
pub fn write_sensitivity(
    dir: &Path,
    sc: &Scenario,
    a: &crate::study::sensitivity::Analysis,
) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io { path: dir.to_owned(), source })?;
    let csv = sensitivity_csv(a);
    let mut written = Vec::new();
    let p = dir.join("sensitivity.csv");
    write_atomic(&p, csv.as_bytes())?;
    written.push(p);
    let json = serde_json::json!({
        "mesobench_version": crate::VERSION,
        "scenario": sc.name,
        "seed": sc.seed,
        "output": "mean session dose, µL",
        "method": "Saltelli sampling over an Owen-scrambled Sobol sequence; first order Saltelli (2010), total effect Jansen (1999); 95 % percentile bootstrap",
        "samples": sc.sensitivity.0,
        "bootstrap": sc.sensitivity.1,
        "uncertain": sc.uncertain,
        "analysis": a,
    });
    let p = dir.join("sensitivity.json");
    write_atomic(&p, &json_bytes(&json))?;
    written.push(p);
    for name in ["sensitivity.png", "sensitivity.svg"] {
        let p = dir.join(name);
        plot::render(&p, &plot::SensitivityChart { name: &sc.name, analysis: a })?;
        written.push(p);
    }
    Ok(written)
}

/// Overlaid Monte Carlo traces of one sweep point (sweep_traces.png/svg).
pub fn write_sweep_traces(
    dir: &Path,
    sc: &Scenario,
    point: u64,
    traces: &[Vec<TraceSample>],
) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    for name in ["sweep_traces.png", "sweep_traces.svg"] {
        let p = dir.join(name);
        plot::render(&p, &plot::OverlayChart { name: &sc.name, point, traces })?;
        written.push(p);
    }
    Ok(written)
}
