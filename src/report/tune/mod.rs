//! Outputs of `mesobench tune`: `tune_summary.json`, the best settings as a
//! TOML fragment (`tune_best.toml`) and a C header (`tune_best.h`), the
//! history (`tune_history.csv`) and landscape (`tune_landscape.csv`), and
//! three plots (convergence, dose distributions, landscape).

mod charts;

pub use self::charts::{ConvergenceChart, DosesChart, LandscapeChart};

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::plot::render;
use super::{json_bytes, write_atomic, ReportError};
use crate::scenario::{Scenario, TuneSpec};
use crate::study::tune::{Evaluation, Metrics, Outcome};

#[derive(serde::Serialize)]
struct Summary<'a> {
    mesobench_version: &'a str,
    scenario: &'a str,
    source: &'a str,
    overrides: &'a [String],
    seed: u64,
    tune: TuneSettings<'a>,
    /// The unit of `objective_*` and `cost_*`: `pct` for the `cv` and
    /// `weighted` objectives, `share` (of the acceptance limit, a pure
    /// number) for `tolerance`.
    objective_unit: &'static str,
    evaluations: usize,
    objective_start: f64,
    objective_best: f64,
    cost_start: f64,
    cost_best: f64,
    start_parameters: serde_json::Map<String, serde_json::Value>,
    best_parameters: serde_json::Map<String, serde_json::Value>,
    start_metrics: &'a Option<Metrics>,
    best_metrics: &'a Option<Metrics>,
    start_feasible: bool,
    best_feasible: bool,
    constraint_margins_start: serde_json::Map<String, serde_json::Value>,
    constraint_margins: serde_json::Map<String, serde_json::Value>,
    sensitivity: serde_json::Map<String, serde_json::Value>,
    landscape_keys: Vec<&'a str>,
}

/// The `[tune]` settings as `tune_summary.json` writes them: in the units
/// their names carry, as in the scenario file.
#[derive(serde::Serialize)]
struct TuneSettings<'a> {
    /// Tuned keys with their bounds, in the keys' own units.
    parameters: &'a [(String, f64, f64)],
    objective: crate::scenario::TuneObjective,
    target_ul: Option<f64>,
    max_bias_pct: f64,
    weight_cv: f64,
    weight_bias: f64,
    acceptance: AcceptanceSettings,
    replicates: usize,
    optimizer: crate::scenario::Optimizer,
    particles: usize,
    iterations: usize,
    landscape_grid: usize,
    /// The keys the landscape spans (empty: chosen by sensitivity).
    landscape: Vec<&'a str>,
    max_tissue_pressure_kpa: Option<f64>,
    max_leak_ul: Option<f64>,
    min_shots_per_s: Option<f64>,
}

/// The acceptance limits of the tolerance objective.
#[derive(serde::Serialize)]
struct AcceptanceSettings {
    alpha_ul: f64,
    beta_pct: f64,
    coverage: f64,
    confidence: f64,
}

impl<'a> TuneSettings<'a> {
    fn of(spec: &'a TuneSpec) -> Self {
        let l = &spec.limits;
        TuneSettings {
            parameters: &spec.parameters,
            objective: spec.objective,
            target_ul: spec.target.map(|v| v * 1e9),
            max_bias_pct: 100.0 * spec.max_bias,
            weight_cv: spec.weights.0,
            weight_bias: spec.weights.1,
            acceptance: AcceptanceSettings {
                alpha_ul: l.alpha,
                beta_pct: 100.0 * l.beta,
                coverage: l.coverage,
                confidence: l.confidence,
            },
            replicates: spec.replicates,
            optimizer: spec.optimizer,
            particles: spec.particles,
            iterations: spec.iterations,
            landscape_grid: spec.landscape_grid,
            landscape: spec.landscape.iter().map(|&i| spec.parameters[i].0.as_str()).collect(),
            max_tissue_pressure_kpa: spec.max_tissue_pressure.map(|p| p / 1e3),
            max_leak_ul: spec.max_leak.map(|v| v * 1e9),
            min_shots_per_s: spec.min_rate,
        }
    }
}

/// The unit of a tuning objective, as `tune_summary.json` names it.
fn objective_unit(spec: &TuneSpec) -> &'static str {
    match spec.objective {
        crate::scenario::TuneObjective::Tolerance => "share",
        _ => "pct",
    }
}

fn params(spec: &TuneSpec, e: &Evaluation) -> serde_json::Map<String, serde_json::Value> {
    spec.parameters.iter().zip(&e.values).map(|((k, _, _), v)| (k.clone(), serde_json::json!(v))).collect()
}

fn margins(e: &Evaluation) -> serde_json::Map<String, serde_json::Value> {
    e.margins.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect()
}

/// The best values as a TOML fragment: one table per first key segment.
pub fn toml_fragment(sc: &Scenario, spec: &TuneSpec, best: &Evaluation, objective: &str) -> String {
    let mut s = format!(
        "# mesobench {} tune: best settings for scenario '{}' ({} = {:.6}).\n# Paste into the scenario.\n",
        crate::VERSION,
        sc.name,
        objective,
        best.objective
    );
    let mut tables: Vec<(String, Vec<(String, f64)>)> = Vec::new();
    for ((key, _, _), v) in spec.parameters.iter().zip(&best.values) {
        let (table, rest) = key.split_once('.').unwrap_or(("", key));
        match tables.iter_mut().find(|(t, _)| t == table) {
            Some((_, items)) => items.push((rest.to_string(), *v)),
            None => tables.push((table.to_string(), vec![(rest.to_string(), *v)])),
        }
    }
    for (table, items) in tables {
        if !table.is_empty() {
            let _ = writeln!(s, "[{table}]");
        }
        for (k, v) in items {
            let k = if k.contains('.') { format!("\"{k}\"") } else { k };
            let _ = writeln!(s, "{k} = {v:?}");
        }
    }
    s
}

/// The best values as C `#define`s: `MB_TUNE_<KEY>` with the unit suffix of
/// the key kept in the name and a comment with the key.
pub fn c_header(sc: &Scenario, spec: &TuneSpec, best: &Evaluation) -> String {
    let mut s = format!(
        "/* mesobench {} tune: best settings for scenario '{}'. Generated; do not edit. */\n\
#ifndef MESOBENCH_TUNE_BEST_H\n#define MESOBENCH_TUNE_BEST_H\n\n",
        crate::VERSION,
        sc.name
    );
    for ((key, lo, hi), v) in spec.parameters.iter().zip(&best.values) {
        let name: String =
            key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
        let _ = writeln!(s, "#define MB_TUNE_{name} {v:.9e} /* {key}, searched in [{lo}, {hi}] */");
        // Durations the built-in firmware counts in whole ticks: the value it
        // really applies, and the count to paste into tick-based firmware.
        if TICK_TIMED.contains(&key.as_str()) {
            let tick_ms = sc.solver.tick * 1e3;
            let n = crate::control::builtin::whole_ticks(v * 1e-3, sc.solver.tick);
            let applied = n as f64 * tick_ms;
            let _ = writeln!(
                s,
                "#define MB_TUNE_{name}_TICKS {n} /* the {} tick ({} ms) quantises it to {} ms */",
                crate::text::g6(1.0 / sc.solver.tick) + " Hz",
                crate::text::g6(tick_ms),
                crate::text::g6(applied)
            );
        }
    }
    s.push_str("\n#endif /* MESOBENCH_TUNE_BEST_H */\n");
    s
}

/// Keys (in ms) that the built-in firmware applies in whole ticks.
const TICK_TIMED: [&str; 2] = ["firmware.open_time_ms", "firmware.pre_pressurise_ms"];

/// Write every output of a tuning run into `dir`; returns the files written.
pub fn write_tune(
    dir: &Path,
    sc: &Scenario,
    source: &str,
    overrides: &[String],
    outcome: &Outcome,
) -> Result<Vec<PathBuf>, ReportError> {
    let spec = sc.tune.as_ref().expect("a tuned scenario");
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io { path: dir.to_owned(), source })?;
    let best = outcome.best();
    let objective = match spec.objective {
        crate::scenario::TuneObjective::Cv => "dose CV, %",
        crate::scenario::TuneObjective::Tolerance => "tolerance half-width / limit",
        crate::scenario::TuneObjective::Weighted => "weighted CV and |bias|, %",
    };
    let mut files = Vec::new();
    let mut put = |name: &str, bytes: Vec<u8>| -> Result<(), ReportError> {
        let path = dir.join(name);
        write_atomic(&path, &bytes)?;
        files.push(path);
        Ok(())
    };
    put("tune_summary.json", summary_json(sc, source, overrides, outcome))?;
    put("tune_best.toml", toml_fragment(sc, spec, best, objective).into_bytes())?;
    put("tune_best.h", c_header(sc, spec, best).into_bytes())?;
    put("tune_history.csv", history_csv(spec, outcome).into_bytes())?;
    put("tune_landscape.csv", landscape_csv(spec, outcome).into_bytes())?;
    write_tune_plots(dir, sc, outcome, &mut files)?;
    Ok(files)
}

/// `tune_summary.json`: the settings, the start and the optimum.
fn summary_json(sc: &Scenario, source: &str, overrides: &[String], outcome: &Outcome) -> Vec<u8> {
    let spec = sc.tune.as_ref().expect("a tuned scenario");
    let (start, best) = (outcome.start(), outcome.best());
    let summary = Summary {
        mesobench_version: crate::VERSION,
        scenario: &sc.name,
        source,
        overrides,
        seed: sc.seed,
        tune: TuneSettings::of(spec),
        objective_unit: objective_unit(spec),
        evaluations: outcome.history.len(),
        objective_start: start.objective,
        objective_best: best.objective,
        cost_start: start.cost,
        cost_best: best.cost,
        start_parameters: params(spec, start),
        best_parameters: params(spec, best),
        start_metrics: &start.metrics,
        best_metrics: &best.metrics,
        start_feasible: start.feasible,
        best_feasible: best.feasible,
        constraint_margins_start: margins(start),
        constraint_margins: margins(best),
        sensitivity: spec
            .parameters
            .iter()
            .zip(&outcome.landscape.sensitivity)
            .map(|((k, _, _), s)| (k.clone(), serde_json::json!(s)))
            .collect(),
        landscape_keys: outcome.landscape.keys.iter().map(|&i| spec.parameters[i].0.as_str()).collect(),
    };
    json_bytes(&summary)
}

/// `tune_history.csv`: every evaluation, its parameters and metrics.
fn history_csv(spec: &TuneSpec, outcome: &Outcome) -> String {
    let mut csv = String::from("evaluation");
    for (k, _, _) in &spec.parameters {
        let _ = write!(csv, ",{k}");
    }
    csv.push_str(",objective,cost,feasible,mean_ul,cv_pct,bias_pct,peak_tissue_kpa,leak_ul,shots_per_s,error\n");
    for e in &outcome.history {
        let _ = write!(csv, "{}", e.index);
        for v in &e.values {
            let _ = write!(csv, ",{}", crate::text::cell(*v));
        }
        let m = e.metrics.as_ref();
        let f = |g: fn(&Metrics) -> f64| m.map(|m| crate::text::cell(g(m))).unwrap_or_default();
        let _ = writeln!(
            csv,
            ",{},{},{},{},{},{},{},{},{},{}",
            crate::text::cell(e.objective),
            crate::text::cell(e.cost),
            e.feasible,
            f(|m| m.mean_ul),
            f(|m| m.cv_pct),
            f(|m| m.bias_pct),
            f(|m| m.peak_tissue_kpa),
            f(|m| m.leak_ul),
            f(|m| m.shots_per_s),
            e.error.as_deref().unwrap_or("").replace([',', '\n'], ";")
        );
    }
    csv
}

/// `tune_landscape.csv`: the landscape's points and their objectives.
fn landscape_csv(spec: &TuneSpec, outcome: &Outcome) -> String {
    let mut land = String::new();
    for (k, _, _) in &spec.parameters {
        let _ = write!(land, "{k},");
    }
    land.push_str("objective,feasible\n");
    for (v, o, f) in &outcome.landscape.points {
        for x in v {
            let _ = write!(land, "{},", crate::text::cell(*x));
        }
        let _ = writeln!(land, "{},{f}", crate::text::cell(*o));
    }
    land
}

/// The convergence, dose and landscape plots, as PNG and SVG.
fn write_tune_plots(dir: &Path, sc: &Scenario, outcome: &Outcome, files: &mut Vec<PathBuf>) -> Result<(), ReportError> {
    let spec = sc.tune.as_ref().expect("a tuned scenario");
    // The search's evaluations are those before the landscape probes.
    let search = outcome.history.len();
    for ext in ["png", "svg"] {
        let path = dir.join(format!("tune_convergence.{ext}"));
        render(&path, &ConvergenceChart { name: &sc.name, history: &outcome.history, search })?;
        files.push(path);
        let path = dir.join(format!("tune_doses.{ext}"));
        render(
            &path,
            &DosesChart { name: &sc.name, start: &outcome.doses.0, best: &outcome.doses.1, target: spec.target },
        )?;
        files.push(path);
        let path = dir.join(format!("tune_landscape.{ext}"));
        render(&path, &LandscapeChart { name: &sc.name, spec, outcome })?;
        files.push(path);
    }
    Ok(())
}
