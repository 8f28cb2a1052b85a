//! `mesobench._native`: the Rust side of the `mesobench` Python package.
//!
//! Every table comes back as the bytes the command line writes to its CSV or
//! JSON file, built by the library's own report functions
//! (`mesobench::report`); the Python side (`mesobench/__init__.py`) reads
//! them into pandas, so a DataFrame holds the same numbers as the CLI's file.
//! Simulations run with the GIL released; sweeps and comparison studies run
//! on a worker thread while the calling thread polls for Ctrl-C and cancels
//! them between points.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use mesobench::scenario::{self as msc, Prepared, Source};

create_exception!(mesobench, MesobenchError, PyException, "Base class of mesobench's errors.");
create_exception!(
    mesobench,
    ScenarioError,
    MesobenchError,
    "A scenario, study or override that cannot be used: the message names the file, line, key, value and what is allowed, as the command line prints it."
);
create_exception!(
    mesobench,
    SimulationError,
    MesobenchError,
    "A simulation that failed (numerical failure, violated invariant, firmware error)."
);

/// The error and its causes as `mesobench` prints them: each cause left out
/// when the message before it already ends with it (the binary's `message`).
fn message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// A scenario error as a Python `ScenarioError`; an out-of-range value also
/// carries `location`, `key`, `value` and `allowed` attributes.
fn scenario_err(e: &msc::ScenarioError) -> PyErr {
    let err = ScenarioError::new_err(message(e));
    if let msc::ScenarioError::Invalid { location, key, value, allowed } = e {
        Python::attach(|py| {
            let v = err.value(py);
            let _ = v.setattr("location", location);
            let _ = v.setattr("key", key);
            let _ = v.setattr("value", value);
            let _ = v.setattr("allowed", allowed);
        });
    }
    err
}

fn io_err(e: &dyn std::fmt::Display) -> PyErr {
    MesobenchError::new_err(e.to_string())
}

fn sweep_err(e: mesobench::study::sweep::SweepError) -> PyErr {
    use mesobench::study::sweep::SweepError as E;
    match &e {
        E::Cancelled => PyKeyboardInterrupt::new_err("the sweep was cancelled"),
        E::Point { source, .. } => {
            let err = scenario_err(source);
            Python::attach(|py| {
                let _ = err.value(py).setattr("args", (message(&e),));
            });
            err
        }
        E::NoSweep(_) | E::Resume { .. } => ScenarioError::new_err(message(&e)),
        E::Run { .. } => SimulationError::new_err(message(&e)),
        E::Io { .. } => MesobenchError::new_err(message(&e)),
    }
}

fn study_err(e: mesobench::study::compare::StudyError) -> PyErr {
    use mesobench::study::compare::StudyError as E;
    match &e {
        E::Cancelled => PyKeyboardInterrupt::new_err("the study was cancelled"),
        E::Input(s) => scenario_err(s),
        E::Read { .. } | E::Scenario { .. } => ScenarioError::new_err(message(&e)),
        _ => SimulationError::new_err(message(&e)),
    }
}

/// Run `work` on a worker thread with the GIL released, polling the calling
/// thread's signal handlers every 50 ms: a pending KeyboardInterrupt (or any
/// exception a handler raises) sets the cancel flag, waits for the worker to
/// stop at its next point and is raised.
fn interruptible<T: Send>(py: Python<'_>, work: impl FnOnce(&AtomicBool) -> T + Send) -> PyResult<T> {
    let cancel = AtomicBool::new(false);
    py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let flag = &cancel;
            let handle = s.spawn(move || {
                let r = work(flag);
                let _ = tx.send(());
                r
            });
            // Until the worker reports (or dies): a timeout means it still runs.
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_millis(50)) {
                if let Err(e) = Python::attach(|py| py.check_signals()) {
                    cancel.store(true, Ordering::Relaxed);
                    let _ = handle.join();
                    return Err(e);
                }
            }
            match handle.join() {
                Ok(r) => Ok(r),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    })
}

/// A scenario text parsed once, with the overrides set on it so far.
#[pyclass(module = "mesobench._native", name = "Scenario")]
#[derive(Clone)]
struct NativeScenario {
    prep: Prepared,
    sets: Vec<String>,
}

impl NativeScenario {
    fn new(source: Source, fallback: &str) -> PyResult<NativeScenario> {
        let prep = Prepared::new(&source, fallback).map_err(|e| scenario_err(&e))?;
        let s = NativeScenario { prep, sets: Vec::new() };
        s.resolve(&[])?;
        Ok(s)
    }

    /// Every override: the scenario's, then `extra`.
    fn all_sets(&self, extra: &[String]) -> Vec<String> {
        let mut v = self.sets.clone();
        v.extend_from_slice(extra);
        v
    }

    /// The scenario with its overrides and `extra`, validated as the command
    /// line's `load` validates it (every value its studies can apply too).
    fn resolve(&self, extra: &[String]) -> PyResult<msc::Scenario> {
        let sets = self.all_sets(extra);
        let sc = self.prep.with(&sets).map_err(|e| scenario_err(&e))?;
        self.prep.check_study(&sc, &sets).map_err(|e| scenario_err(&e))?;
        Ok(sc)
    }
}

#[pymethods]
impl NativeScenario {
    /// Read and validate a scenario file.
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<NativeScenario> {
        let source = Source::from_path(&path).map_err(|e| scenario_err(&e))?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("scenario").to_string();
        NativeScenario::new(source, &stem)
    }

    /// Parse and validate scenario text; `name` names it when it has no
    /// `name` key and in error messages, `dir` resolves its relative paths.
    #[staticmethod]
    #[pyo3(signature = (text, name = None, dir = None))]
    fn from_toml(text: String, name: Option<String>, dir: Option<PathBuf>) -> PyResult<NativeScenario> {
        let fallback = name.clone().unwrap_or_else(|| "scenario".to_string());
        let source = Source {
            name: name.map(|n| format!("<{n}>")).unwrap_or_else(|| "<string>".to_string()),
            text,
            dir: dir.unwrap_or_default(),
        };
        NativeScenario::new(source, &fallback)
    }

    /// The embedded default scenario (scenarios/reference.toml).
    #[staticmethod]
    fn default() -> PyResult<NativeScenario> {
        NativeScenario::new(Source::default_scenario(), msc::DEFAULT_NAME)
    }

    /// Add an override written as on the command line (`key=value`).
    fn set_text(&mut self, arg: String) -> PyResult<()> {
        self.resolve(std::slice::from_ref(&arg))?;
        self.sets.push(arg);
        Ok(())
    }

    /// Validate with the overrides (and `extra`); raises ScenarioError.
    #[pyo3(signature = (extra = Vec::new()))]
    fn check(&self, extra: Vec<String>) -> PyResult<()> {
        self.resolve(&extra).map(|_| ())
    }

    /// An independent copy.
    fn copy(&self) -> NativeScenario {
        self.clone()
    }

    /// The overrides, in order.
    #[getter]
    fn overrides(&self) -> Vec<String> {
        self.sets.clone()
    }

    /// The scenario's name (its `name` key, else the file stem).
    #[getter]
    fn name(&self) -> PyResult<String> {
        Ok(self.resolve(&[])?.name)
    }

    /// Where the text came from (a path, `<string>`, the default scenario).
    #[getter]
    fn source(&self) -> String {
        self.prep.source().name.clone()
    }

    /// The scenario text.
    #[getter]
    fn text(&self) -> String {
        self.prep.source().text.clone()
    }

    /// The resolved scenario in SI units as JSON (what `mesobench check` prints).
    fn resolved_json(&self) -> PyResult<String> {
        let sc = self.resolve(&[])?;
        serde_json::to_string(&sc).map_err(|e| io_err(&e))
    }

    /// Every declared key: (key, value as `check --params` shows it, unit,
    /// origin, value in that unit, value in SI, SI unit); the numbers are None
    /// where the key is not a number or has no fixed default.
    #[allow(clippy::type_complexity)]
    fn entries(&self) -> PyResult<Vec<(String, String, &'static str, String, Option<f64>, Option<f64>, &'static str)>> {
        let sc = self.resolve(&[])?;
        let entries = self.prep.entries(&self.sets).map_err(|e| scenario_err(&e))?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let param = msc::registry::find(&e.key);
            // The exact number (the shown value has 6 significant digits).
            let human = if let Some(arg) = e.origin.strip_prefix("--set ") {
                arg.split_once('=').and_then(|(_, v)| v.trim().parse::<f64>().ok())
            } else if e.origin == "default" {
                match param.map(|p| p.default) {
                    Some(mesobench::model::param::Def::Value(v)) => Some(v),
                    Some(mesobench::model::param::Def::Int(i)) => Some(i as f64),
                    _ => None,
                }
            } else {
                self.prep.number_at(&e.key)
            };
            let numeric = param.is_some_and(|p| {
                matches!(
                    p.kind,
                    mesobench::model::param::Kind::Real { .. } | mesobench::model::param::Kind::Integer { .. }
                )
            });
            let human = human.filter(|_| numeric);
            let (si, si_unit) = match (human, param) {
                (Some(v), Some(p)) => (Some((p.unit.to_si)(v, sc.params.p_atm)), p.unit.si),
                (_, Some(p)) => (None, p.unit.si),
                _ => (None, ""),
            };
            out.push((e.key, e.value, e.unit, e.origin, human, si, si_unit));
        }
        Ok(out)
    }

    fn __repr__(&self) -> String {
        format!("Scenario({:?}, overrides={:?})", self.prep.source().name, self.sets)
    }
}

/// What a run returns to the Python side: the bytes of shots.csv,
/// needles.csv and summary.json, of trace.csv when asked for, the warnings
/// and why the session stopped early.
type RunOut = (Py<PyBytes>, Py<PyBytes>, Py<PyBytes>, Option<Py<PyBytes>>, Vec<String>, Option<String>);

/// Simulate a scenario's session (the GIL released) as `mesobench run` does.
#[pyfunction]
#[pyo3(signature = (scenario, extra = Vec::new(), trace = false))]
fn run(py: Python<'_>, scenario: &NativeScenario, extra: Vec<String>, trace: bool) -> PyResult<RunOut> {
    let sc = scenario.resolve(&extra)?;
    let here = Path::new(".");
    // Err((true, message)): the simulation failed; (false, …): a report could not be built.
    let out = py.detach(|| -> Result<_, (bool, String)> {
        let failed = |e: mesobench::sim::RunError| (true, format!("scenario {}: {}", sc.name, message(&e)));
        let other = |e: &dyn std::fmt::Display| (false, e.to_string());
        let (run, trace_bytes) = if trace {
            // trace.csv in memory: every sample, as the command line streams it.
            let mut sink = mesobench::report::TraceTable::new(Vec::new(), &sc);
            let run = mesobench::simulate_traced(&sc, &mut sink).map_err(failed)?;
            (run, Some(sink.into_inner().map_err(|e| other(&e))?))
        } else {
            (mesobench::simulate(&sc, false).map_err(failed)?, None)
        };
        let shots = mesobench::report::shots_csv(&run, &here.join("shots.csv")).map_err(|e| other(&e))?;
        let needles = mesobench::report::needles_csv(&run, &here.join("needles.csv")).map_err(|e| other(&e))?;
        let summary = mesobench::report::json_bytes(&mesobench::report::summary(&sc, &run));
        Ok((shots, needles, summary, trace_bytes, run.result.warnings, run.result.stopped))
    });
    let (shots, needles, summary, trace_bytes, warnings, stopped) = match out {
        Ok(o) => o,
        Err((true, m)) => return Err(SimulationError::new_err(m)),
        Err((false, m)) => return Err(MesobenchError::new_err(m)),
    };
    let b = |v: Vec<u8>| PyBytes::new(py, &v).unbind();
    Ok((b(shots), b(needles), b(summary), trace_bytes.map(b), warnings, stopped))
}

/// Run a scenario's `[sweep]` as `mesobench sweep` does (in a temporary
/// folder, without its plots); returns the bytes of sweep.csv, of raw.csv
/// (with `raw`), and (points, sessions, shots).
#[pyfunction]
#[pyo3(signature = (scenario, extra = Vec::new(), threads = None, raw = false))]
#[allow(clippy::type_complexity)]
fn sweep(
    py: Python<'_>,
    scenario: &NativeScenario,
    extra: Vec<String>,
    threads: Option<usize>,
    raw: bool,
) -> PyResult<(Py<PyBytes>, Option<Py<PyBytes>>, (u64, u64, u64))> {
    let sets = scenario.all_sets(&extra);
    let sc = scenario.resolve(&extra)?;
    if sc.sweep.is_none() {
        return Err(ScenarioError::new_err(format!(
            "{}: the scenario has no [sweep] table",
            scenario.prep.source().name
        )));
    }
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let dir = tempfile::Builder::new().prefix("mesobench-sweep-").tempdir().map_err(|e| io_err(&e))?;
    let prep = &scenario.prep;
    let path = dir.path();
    let out = interruptible(py, |cancel| {
        let opts = mesobench::study::sweep::RunOptions { raw, ..Default::default() };
        let (summary, _) =
            mesobench::study::sweep::run_cancellable(prep, &sets, path, threads, false, &|_| {}, opts, cancel)?;
        let read = |name: &str| std::fs::read(path.join(name));
        let table = read("sweep.csv")
            .map_err(|source| mesobench::study::sweep::SweepError::Io { path: path.join("sweep.csv"), source })?;
        let raw_table = if raw {
            Some(
                read("raw.csv")
                    .map_err(|source| mesobench::study::sweep::SweepError::Io { path: path.join("raw.csv"), source })?,
            )
        } else {
            None
        };
        Ok::<_, mesobench::study::sweep::SweepError>((table, raw_table, summary))
    })?;
    let (table, raw_table, s) = out.map_err(sweep_err)?;
    let b = |v: Vec<u8>| PyBytes::new(py, &v).unbind();
    Ok((b(table), raw_table.map(b), (s.points, s.sessions, s.shots)))
}

/// Sobol indices of the dose as `mesobench sensitivity` computes them;
/// returns the text of sensitivity.csv and the analysis as JSON.
#[pyfunction]
#[pyo3(signature = (scenario, extra = Vec::new(), threads = None))]
fn sensitivity(
    py: Python<'_>,
    scenario: &NativeScenario,
    extra: Vec<String>,
    threads: Option<usize>,
) -> PyResult<(String, String)> {
    let sets = scenario.all_sets(&extra);
    scenario.resolve(&extra)?;
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let prep = &scenario.prep;
    let a = py
        .detach(|| mesobench::study::sensitivity::dose_sensitivity(prep, &sets, threads))
        .map_err(SimulationError::new_err)?;
    let json = serde_json::to_string(&a).map_err(|e| io_err(&e))?;
    Ok((mesobench::report::sensitivity_csv(&a), json))
}

/// Run a comparison study as `mesobench compare` does; returns the bytes of
/// arms.csv and summary.json.
#[pyfunction]
#[pyo3(signature = (path, threads = None))]
fn compare(py: Python<'_>, path: PathBuf, threads: Option<usize>) -> PyResult<(Py<PyBytes>, Py<PyBytes>)> {
    let study = mesobench::study::compare::load(&path).map_err(study_err)?;
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let study_ref = &study;
    let outcome =
        interruptible(py, |cancel| mesobench::study::compare::run_cancellable(study_ref, threads, &|_| {}, cancel))?
            .map_err(study_err)?;
    let here = Path::new("arms.csv");
    let arms = mesobench::report::compare::arms_csv(&study, &outcome, here).map_err(|e| io_err(&e))?;
    let summary = mesobench::report::compare::summary_json(&study, &outcome);
    Ok((PyBytes::new(py, &arms).unbind(), PyBytes::new(py, &summary).unbind()))
}

/// Run a fit file as `mesobench fit` does; returns the bytes of
/// fit_summary.json, fit_history.csv and calibrated.toml (and writes every
/// output, plots included, into `out` when given).
#[pyfunction]
#[pyo3(signature = (path, threads = None, out = None))]
fn fit(
    py: Python<'_>,
    path: PathBuf,
    threads: Option<usize>,
    out: Option<PathBuf>,
) -> PyResult<(Py<PyBytes>, Py<PyBytes>, String)> {
    use mesobench::study::fit::{self as mfit, FitError};
    let to_py = |e: FitError| match e {
        FitError::Input(m) => ScenarioError::new_err(m),
        FitError::Run(m) => SimulationError::new_err(m),
    };
    let spec = mfit::load(&path, mfit::Purpose::Fit).map_err(to_py)?;
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| io_err(&e))?;
    let spec_ref = &spec;
    let (outcome, files) = py
        .detach(|| {
            pool.install(|| {
                let outcome = mfit::lm::fit(spec_ref, &|_| {})?;
                let files =
                    mesobench::report::fit::fit_bytes(spec_ref, &outcome).map_err(|e| FitError::Run(e.to_string()))?;
                if let Some(dir) = &out {
                    mesobench::report::fit::write_fit(dir, spec_ref, &outcome)
                        .map_err(|e| FitError::Run(e.to_string()))?;
                }
                Ok::<_, FitError>((outcome, files))
            })
        })
        .map_err(to_py)?;
    let _ = outcome;
    Ok((PyBytes::new(py, &files.summary).unbind(), PyBytes::new(py, &files.history).unbind(), files.calibrated))
}

/// Register `path` as the executable that hosts firmware plugins with
/// `plugin_isolation = "process"` (the command line registers itself).
#[pyfunction]
fn set_plugin_host(path: PathBuf) {
    mesobench::control::host::set_host_executable(&path);
}

/// Serve as a plugin host process: `args` are those after the host command
/// (as `mesobench __plugin-host …` gets them). Never returns.
#[pyfunction]
fn plugin_host_main(args: Vec<String>) {
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    mesobench::control::host::host_main(&args)
}

/// The parameter reference (docs/parameters.md) generated from the registry.
#[pyfunction]
fn parameters_markdown() -> String {
    msc::registry::markdown()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", mesobench::VERSION)?;
    m.add("MesobenchError", py.get_type::<MesobenchError>())?;
    m.add("ScenarioError", py.get_type::<ScenarioError>())?;
    m.add("SimulationError", py.get_type::<SimulationError>())?;
    m.add_class::<NativeScenario>()?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(sweep, m)?)?;
    m.add_function(wrap_pyfunction!(sensitivity, m)?)?;
    m.add_function(wrap_pyfunction!(compare, m)?)?;
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(parameters_markdown, m)?)?;
    m.add_function(wrap_pyfunction!(set_plugin_host, m)?)?;
    m.add_function(wrap_pyfunction!(plugin_host_main, m)?)?;
    Ok(())
}
