//! Reports: flat CSV rows, JSON summaries and manifests, and plots.
//!
//! Human units appear here only (µL, kPa, ms). Every file is written to a
//! temporary name in its folder and renamed into place, so a reader never
//! sees a half-written file and an interrupted run leaves earlier files whole.

pub mod compare;
pub mod fit;
pub mod plot;
mod raster;
pub mod tune;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::files::tmp_path;
use crate::scenario::Scenario;
use crate::sim::{ShotRecord, TraceSample, TraceSink};
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

/// One row of `shots.csv` (human units).
#[derive(Debug, serde::Serialize)]
pub struct ShotRow {
    /// Shot index.
    pub shot: usize,
    /// Trigger time, ms.
    #[serde(serialize_with = "tidy_f64")]
    pub t_start_ms: f64,
    /// Commanded open time, ms.
    #[serde(serialize_with = "tidy_f64")]
    pub open_time_cmd_ms: f64,
    /// Effective valve open time ∫opening dt, ms.
    #[serde(serialize_with = "tidy_f64")]
    pub valve_open_effective_ms: f64,
    /// Opening delay, ms.
    #[serde(serialize_with = "finite_or_empty")]
    pub valve_t_on_ms: f64,
    /// Closing delay, ms.
    #[serde(serialize_with = "finite_or_empty")]
    pub valve_t_off_ms: f64,
    /// Delivered into tissue, µL.
    #[serde(serialize_with = "tidy_f64")]
    pub dose_ul: f64,
    /// Refluxed, µL.
    #[serde(serialize_with = "tidy_f64")]
    pub leak_ul: f64,
    /// Swept by the plunger, µL.
    #[serde(serialize_with = "tidy_f64")]
    pub expelled_ul: f64,
    /// Change of compressed storage, µL.
    #[serde(serialize_with = "tidy_f64")]
    pub stored_change_ul: f64,
    /// Peak flow, µL/s.
    #[serde(serialize_with = "tidy_f64")]
    pub peak_flow_ul_s: f64,
    /// Peak syringe pressure, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub peak_syringe_kpa: f64,
    /// Peak tissue pressure, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub peak_tissue_kpa: f64,
    /// Peak chamber pressure, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub peak_chamber_kpa: f64,
    /// Time to 90 % of the dose, ms.
    #[serde(serialize_with = "finite_or_empty")]
    pub t90_ms: f64,
    /// Maximum needle Reynolds number.
    #[serde(serialize_with = "tidy_f64")]
    pub max_reynolds: f64,
    /// Supply pressure at trigger, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub supply_start_kpa: f64,
    /// Chamber pressure at trigger, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub chamber_start_kpa: f64,
    /// Chamber temperature at trigger, °C.
    #[serde(serialize_with = "tidy_f64")]
    pub chamber_temp_start_c: f64,
    /// Piston position at trigger, mm.
    #[serde(serialize_with = "tidy_f64")]
    pub piston_start_mm: f64,
    /// Plunger travel at the end of the shot, mm.
    #[serde(serialize_with = "tidy_f64")]
    pub plunger_end_mm: f64,
    /// Inlet choked during the shot.
    pub inlet_choked: bool,
    /// Plant steps.
    pub steps: u64,
    /// Plunger breakaways (more than one: stick-slip).
    pub breakaways: u32,
}

impl From<&ShotRecord> for ShotRow {
    fn from(r: &ShotRecord) -> ShotRow {
        ShotRow {
            shot: r.index,
            t_start_ms: r.t_start * 1e3,
            open_time_cmd_ms: r.open_time_cmd * 1e3,
            valve_open_effective_ms: r.valve_open_effective * 1e3,
            valve_t_on_ms: r.valve_t_on * 1e3,
            valve_t_off_ms: r.valve_t_off * 1e3,
            dose_ul: r.dose * 1e9,
            leak_ul: r.leak * 1e9,
            expelled_ul: r.expelled * 1e9,
            stored_change_ul: r.stored_change * 1e9,
            peak_flow_ul_s: r.peak_flow * 1e9,
            peak_syringe_kpa: r.peak_syringe_pressure / 1e3,
            peak_tissue_kpa: r.peak_tissue_pressure / 1e3,
            peak_chamber_kpa: r.peak_chamber_pressure / 1e3,
            t90_ms: r.t90 * 1e3,
            max_reynolds: r.max_re,
            supply_start_kpa: r.supply_pressure_start / 1e3,
            chamber_start_kpa: r.chamber_pressure_start / 1e3,
            chamber_temp_start_c: r.chamber_temperature_start - 273.15,
            piston_start_mm: r.piston_start * 1e3,
            plunger_end_mm: r.plunger_end * 1e3,
            inlet_choked: r.inlet_choked,
            steps: r.steps,
            breakaways: r.breakaways,
        }
    }
}

/// One row of `needles.csv`: one needle in one shot.
#[derive(Debug, serde::Serialize)]
pub struct NeedleRow {
    /// Shot index.
    pub shot: usize,
    /// Needle index.
    pub needle: usize,
    /// Delivered into this site, µL.
    #[serde(serialize_with = "tidy_f64")]
    pub dose_ul: f64,
    /// Refluxed at this site, µL.
    #[serde(serialize_with = "tidy_f64")]
    pub leak_ul: f64,
    /// Share of the shot's dose, –.
    #[serde(serialize_with = "finite_or_empty")]
    pub share: f64,
    /// Peak site pressure, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub peak_tissue_kpa: f64,
    /// Maximum Reynolds number.
    #[serde(serialize_with = "tidy_f64")]
    pub max_reynolds: f64,
}

/// One row of `trace.csv`.
#[derive(Debug, serde::Serialize)]
pub struct TraceRow {
    /// Time, ms.
    #[serde(serialize_with = "tidy_f64")]
    pub t_ms: f64,
    /// Coil drive over the step, fraction of the drive voltage (1 = on).
    #[serde(serialize_with = "tidy_f64")]
    pub valve_cmd: f64,
    /// Valve opening, –.
    #[serde(serialize_with = "tidy_f64")]
    pub valve_opening: f64,
    /// Coil current, A.
    #[serde(serialize_with = "tidy_f64")]
    pub coil_current_a: f64,
    /// Supply, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub supply_kpa: f64,
    /// Valve outlet, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub valve_outlet_kpa: f64,
    /// Chamber, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub chamber_kpa: f64,
    /// Chamber gas temperature, °C.
    #[serde(serialize_with = "tidy_f64")]
    pub chamber_temp_c: f64,
    /// Piston position, mm.
    #[serde(serialize_with = "tidy_f64")]
    pub piston_mm: f64,
    /// Plunger travel, mm.
    #[serde(serialize_with = "tidy_f64")]
    pub plunger_mm: f64,
    /// Syringe, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub syringe_kpa: f64,
    /// Tissue at needle 1, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub tissue_kpa: f64,
    /// Total needle flow, µL/s.
    #[serde(serialize_with = "tidy_f64")]
    pub flow_ul_s: f64,
    /// Delivered so far, µL.
    #[serde(serialize_with = "tidy_f64")]
    pub delivered_ul: f64,
    /// Refluxed so far, µL.
    #[serde(serialize_with = "tidy_f64")]
    pub leaked_ul: f64,
    /// Regulator set pressure in force, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub regulator_setpoint_kpa: f64,
    /// Firmware telemetry: the controlled quantity's setpoint, in the unit
    /// its column names ([`FwColumns`]).
    #[serde(serialize_with = "tidy_f64")]
    pub fw_setpoint: f64,
    /// Firmware telemetry: measured value.
    #[serde(serialize_with = "tidy_f64")]
    pub fw_measured: f64,
    /// Firmware telemetry: command.
    #[serde(serialize_with = "tidy_f64")]
    pub fw_command: f64,
    /// Firmware telemetry: integrator state.
    #[serde(serialize_with = "tidy_f64")]
    pub fw_integrator: f64,
}

/// The names and scales of `trace.csv`'s four firmware-telemetry columns:
/// the telemetry is SI inside (Pa gauge for the pressure PID, m³ and s for
/// the volume target); each column carries its unit in its name, as every
/// other column does. A C plugin's or a controller FMU's telemetry has no
/// declared unit: its columns end in `_si`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FwColumns {
    /// Column names: setpoint, measured, command, integrator.
    pub names: [&'static str; 4],
    /// Scale from the SI telemetry to each column's unit.
    pub scales: [f64; 4],
    /// The unit of the trace plot's firmware panel (setpoint, measured and
    /// command share it), and its scale from SI.
    pub plot: (&'static str, f64),
}

impl FwColumns {
    /// The telemetry columns of `sc`'s firmware.
    pub fn of(sc: &Scenario) -> FwColumns {
        use crate::scenario::FirmwareKind;
        match sc.firmware.kind {
            FirmwareKind::PressurePid { .. } => FwColumns {
                names: ["fw_setpoint_kpa", "fw_measured_kpa", "fw_command_kpa", "fw_integrator_kpa"],
                scales: [1e-3; 4],
                plot: ("kPa", 1e-3),
            },
            FirmwareKind::VolumeTarget { .. } => FwColumns {
                names: ["fw_setpoint_ul", "fw_measured_ul", "fw_valve_open", "fw_lead_ms"],
                scales: [1e9, 1e9, 1.0, 1e3],
                plot: ("µL", 1e9),
            },
            _ => FwColumns {
                names: ["fw_setpoint_si", "fw_measured_si", "fw_command_si", "fw_integrator_si"],
                scales: [1.0; 4],
                plot: ("firmware units (SI)", 1.0),
            },
        }
    }

    /// The header of `trace.csv`.
    pub fn header(&self) -> Vec<&'static str> {
        let mut h = vec![
            "t_ms",
            "valve_cmd",
            "valve_opening",
            "coil_current_a",
            "supply_kpa",
            "valve_outlet_kpa",
            "chamber_kpa",
            "chamber_temp_c",
            "piston_mm",
            "plunger_mm",
            "syringe_kpa",
            "tissue_kpa",
            "flow_ul_s",
            "delivered_ul",
            "leaked_ul",
            "regulator_setpoint_kpa",
        ];
        h.extend(self.names);
        h
    }

    /// The row of sample `s`.
    pub fn row(&self, s: &TraceSample) -> TraceRow {
        let k = self.scales;
        TraceRow {
            fw_setpoint: s.fw_setpoint * k[0],
            fw_measured: s.fw_measured * k[1],
            fw_command: s.fw_command * k[2],
            fw_integrator: s.fw_integrator * k[3],
            ..TraceRow::from(s)
        }
    }
}

/// `trace.csv` as a table of rows on any writer: its header (with the
/// firmware's telemetry columns) first, then one row per sample.
pub struct TraceTable<W: std::io::Write> {
    writer: csv::Writer<W>,
    fw: FwColumns,
    error: Option<std::io::Error>,
    rows: u64,
}

impl<W: std::io::Write> TraceTable<W> {
    /// A table for `sc`'s trace on `w`; the header is written at once.
    pub fn new(w: W, sc: &Scenario) -> TraceTable<W> {
        let fw = FwColumns::of(sc);
        let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(w);
        let error = writer.write_record(fw.header()).err().map(std::io::Error::other);
        TraceTable { writer, fw, error, rows: 0 }
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The writer back, or the first write error.
    pub fn into_inner(mut self) -> std::io::Result<W> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.writer.into_inner().map_err(|e| std::io::Error::other(e.to_string()))
    }
}

impl<W: std::io::Write> TraceSink for TraceTable<W> {
    fn sample(&mut self, s: &TraceSample) {
        if self.error.is_some() {
            return;
        }
        match self.writer.serialize(self.fw.row(s)) {
            Ok(()) => self.rows += 1,
            Err(e) => self.error = Some(std::io::Error::other(e)),
        }
    }
}

impl From<&TraceSample> for TraceRow {
    fn from(s: &TraceSample) -> TraceRow {
        TraceRow {
            t_ms: s.t * 1e3,
            valve_cmd: s.command,
            valve_opening: s.opening,
            coil_current_a: s.coil_current,
            supply_kpa: s.supply / 1e3,
            valve_outlet_kpa: s.valve_outlet / 1e3,
            chamber_kpa: s.chamber / 1e3,
            chamber_temp_c: s.chamber_temperature - 273.15,
            piston_mm: s.piston * 1e3,
            plunger_mm: s.plunger * 1e3,
            syringe_kpa: s.syringe / 1e3,
            tissue_kpa: s.tissue / 1e3,
            flow_ul_s: s.flow * 1e9,
            delivered_ul: s.delivered * 1e9,
            leaked_ul: s.leaked * 1e9,
            regulator_setpoint_kpa: s.regulator_setpoint / 1e3,
            fw_setpoint: s.fw_setpoint,
            fw_measured: s.fw_measured,
            fw_command: s.fw_command,
            fw_integrator: s.fw_integrator,
        }
    }
}

/// `trace.csv` written row by row as the simulation samples, to a
/// temporary name in the output folder; [`TraceCsv::finish`] renames it into
/// place, and dropping it unfinished (a failed run) removes it.
pub struct TraceCsv {
    path: PathBuf,
    tmp: PathBuf,
    /// The folder, when this created it (removed again, if empty, by a failed run).
    created: Option<PathBuf>,
    table: Option<TraceTable<std::fs::File>>,
}

impl TraceCsv {
    /// Create `dir` if needed and open its temporary trace file for `sc`'s trace.
    pub fn create(dir: &Path, sc: &Scenario) -> Result<TraceCsv, ReportError> {
        let created = (!dir.exists()).then(|| dir.to_owned());
        std::fs::create_dir_all(dir).map_err(|source| ReportError::Io { path: dir.to_owned(), source })?;
        let path = dir.join("trace.csv");
        let tmp = tmp_path(&path);
        let file = std::fs::File::create(&tmp).map_err(|source| ReportError::Io { path: path.clone(), source })?;
        Ok(TraceCsv { path, tmp, created, table: Some(TraceTable::new(file, sc)) })
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.table.as_ref().map_or(0, TraceTable::rows)
    }

    /// Flush, sync and rename into `trace.csv`; the first write error, if any.
    pub fn finish(mut self) -> Result<PathBuf, ReportError> {
        let io = |source| ReportError::Io { path: self.path.clone(), source };
        let table = self.table.take().expect("an unfinished trace");
        let file = table.into_inner().map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(io)?;
        self.created = None;
        Ok(self.path.clone())
    }
}

impl TraceSink for TraceCsv {
    fn sample(&mut self, s: &TraceSample) {
        if let Some(t) = self.table.as_mut() {
            t.sample(s);
        }
    }
}

impl Drop for TraceCsv {
    fn drop(&mut self) {
        if self.table.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
            if let Some(dir) = &self.created {
                let _ = std::fs::remove_dir(dir);
            }
        }
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

/// The files a command (`run`, `sweep`, `merge`, `sensitivity`, `tune`,
/// `compare`) writes into its output folder; for `sweep`, those of shard
/// `shard` or of the whole sweep.
pub fn command_outputs(command: &str, shard: Option<(u64, u64)>) -> Vec<String> {
    let both = |stems: &[&str]| -> Vec<String> {
        stems.iter().flat_map(|s| [format!("{s}.png"), format!("{s}.svg")]).collect()
    };
    let sweep_plots = || both(&["sweep_mean", "sweep_hist", "sweep_cv", "sweep_traces"]);
    let mut out: Vec<String> = match command {
        "run" => ["shots.csv", "needles.csv", "trace.csv", "summary.json", "manifest.json"].map(String::from).into(),
        "sweep" | "merge" => {
            let (table, manifest) = crate::study::sweep::file_names(shard);
            vec![table, manifest, crate::study::sweep::raw_name(shard)]
        }
        "sensitivity" => vec!["sensitivity.csv".into(), "sensitivity.json".into()],
        "tune" => ["tune_summary.json", "tune_best.toml", "tune_best.h", "tune_history.csv", "tune_landscape.csv"]
            .map(String::from)
            .into(),
        "compare" => vec!["arms.csv".into(), "compare_summary.json".into(), "report.html".into()],
        "fit" => ["fit_summary.json", "fit_history.csv", "calibrated.toml"].map(String::from).into(),
        "validate" => vec!["validate_summary.json".into(), "validate_shots.csv".into()],
        _ => Vec::new(),
    };
    out.extend(match command {
        "run" => both(&["trace", "doses"]),
        "sweep" | "merge" if shard.is_none() => sweep_plots(),
        "sensitivity" => both(&["sensitivity"]),
        "tune" => both(&["tune_convergence", "tune_doses", "tune_landscape"]),
        "compare" => both(&["doses_by_arm", "histograms", "operators"]),
        "fit" => both(&["fit_profiles"]),
        _ => Vec::new(),
    });
    out
}

/// Remove the files `names` (and their temporary siblings) from `dir` when
/// they exist; anything else in the folder is left alone.
pub fn remove_outputs(dir: &Path, names: &[String]) -> Result<(), ReportError> {
    for name in names {
        let p = dir.join(name);
        for f in [tmp_path(&p), p] {
            if f.is_dir() {
                continue;
            }
            match std::fs::remove_file(&f) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(ReportError::Io { path: f, source: e })
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// An output folder that another mesobench holds.
#[derive(Debug, thiserror::Error)]
#[error("output folder {dir} is in use by another mesobench ({holder}); wait for it to finish or choose another --out")]
pub struct FolderInUse {
    /// The folder.
    pub dir: PathBuf,
    /// Who holds it ("pid N").
    pub holder: String,
}

/// A lock on an output folder, held until dropped: an OS advisory lock on
/// `DIR/.mesobench.lock` (exclusive, or shared by the shards of one sweep,
/// each of which also holds `DIR/.mesobench.shard-I-of-N.lock` exclusively).
/// The holder's pid is written into the file it holds exclusively.
#[derive(Debug)]
pub struct OutputLock {
    main: std::fs::File,
    exclusive: bool,
    shard: Option<std::fs::File>,
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Forget the pid while the lock is still held.
        if self.exclusive {
            let _ = self.main.set_len(0);
        }
        if let Some(f) = &self.shard {
            let _ = f.set_len(0);
        }
    }
}

/// Lock the output folder `dir` (created if needed) for a command; a shard of
/// a sweep (`shard`) shares the folder with the other shards only.
pub fn lock_output(dir: &Path, shard: Option<(u64, u64)>) -> Result<OutputLock, LockError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| LockError::Io(ReportError::Io { path: path.clone(), source })
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let open = |p: &Path| {
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(p).map_err(io(p))
    };
    let main_path = dir.join(".mesobench.lock");
    let mut main = open(&main_path)?;
    let busy = |holder: String| LockError::InUse(FolderInUse { dir: dir.to_owned(), holder });
    let claim = |f: &mut std::fs::File, p: &Path| -> Result<(), LockError> {
        f.set_len(0).map_err(io(p))?;
        f.write_all(format!("{}\n", std::process::id()).as_bytes()).map_err(io(p))
    };
    let locked = match shard {
        None => main.try_lock(),
        Some(_) => main.try_lock_shared(),
    };
    match locked {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(busy(holders(dir, &main_path))),
        Err(std::fs::TryLockError::Error(e)) => return Err(io(&main_path)(e)),
    }
    let Some((i, n)) = shard else {
        claim(&mut main, &main_path)?;
        return Ok(OutputLock { main, exclusive: true, shard: None });
    };
    let shard_path = dir.join(format!(".mesobench.shard-{i:05}-of-{n:05}.lock"));
    let mut f = open(&shard_path)?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(busy(holders(dir, &shard_path))),
        Err(std::fs::TryLockError::Error(e)) => return Err(io(&shard_path)(e)),
    }
    claim(&mut f, &shard_path)?;
    Ok(OutputLock { main, exclusive: false, shard: Some(f) })
}

/// "pid N" of the holder of `path`, or of the sweep shards holding the folder.
fn holders(dir: &Path, path: &Path) -> String {
    let pid = |p: &Path| std::fs::read_to_string(p).ok().and_then(|t| t.trim().parse::<u32>().ok());
    if let Some(p) = pid(path) {
        return format!("pid {p}");
    }
    let mut pids: Vec<u32> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".mesobench.shard-"))
        .filter_map(|e| pid(&e.path()))
        .collect();
    pids.sort_unstable();
    match pids.len() {
        0 => "pid unknown".into(),
        1 => format!("pid {}", pids[0]),
        _ => format!("pids {}", pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// An output folder that cannot be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another mesobench holds it.
    #[error(transparent)]
    InUse(FolderInUse),
    /// The lock file cannot be created.
    #[error(transparent)]
    Io(ReportError),
}
