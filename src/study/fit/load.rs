//! Reading a fit or validation file: the base scenario, the experiments
//! with their bench data and conditions, the parameters to estimate and
//! the tolerances, every value checked with the file:line:column it was written at.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{Align, Experiment, FitError, FitFile, FitParam, Settings, Tolerance, ToleranceKind};
use crate::bench::{self, ColumnSpec, Signal};
use crate::model::param::{fmt_num, Kind};
use crate::scenario::Checker;
use crate::scenario::{self, registry, Prepared, Source};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFit {
    scenario: Spanned<String>,
    #[serde(default)]
    fit: RawSettings,
    #[serde(default)]
    experiment: Vec<RawExperiment>,
    parameters: Option<Spanned<BTreeMap<String, Spanned<RawParam>>>>,
    tolerance: Option<BTreeMap<String, Spanned<f64>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    starts: Option<Spanned<i64>>,
    max_iterations: Option<Spanned<i64>>,
    profile: Option<bool>,
    profile_points: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    name: Spanned<String>,
    trace: Option<Spanned<String>>,
    masses: Option<Spanned<String>>,
    mass_sd_mg: Option<Spanned<f64>>,
    set: Option<Spanned<BTreeMap<String, toml::Value>>>,
    align: Option<Spanned<toml::Value>>,
    pre_trigger_ms: Option<Spanned<f64>>,
    align_window_ms: Option<Spanned<f64>>,
    #[serde(default)]
    channels: BTreeMap<String, Spanned<RawChannel>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    signal: Spanned<String>,
    unit: Option<String>,
    sd: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    lo: Spanned<f64>,
    hi: Spanned<f64>,
    start: Option<Spanned<f64>>,
}

/// What a file is read for: `fit` needs `[parameters]`, `validate` must not have them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `mesobench fit`.
    Fit,
    /// `mesobench validate`.
    Validate,
}

/// Read and check a fit or validation file and all the bench data it names.
pub fn load(path: &Path, purpose: Purpose) -> Result<FitFile, FitError> {
    load_with(path, purpose, None)
}

/// [`load`], with the file's `scenario` replaced by `scenario` when given
/// (to validate a calibrated scenario against the same data).
pub fn load_with(path: &Path, purpose: Purpose, scenario: Option<&Path>) -> Result<FitFile, FitError> {
    let text = scenario::read_capped(path, "fit file").map_err(|e| match e {
        scenario::Capped::Io(source) => FitError::Input(format!("cannot read {}: {source}", path.display())),
        scenario::Capped::TooLarge(e) => FitError::Input(e.to_string()),
    })?;
    let file = path.display().to_string();
    let raw: RawFit = toml::from_str(&text).map_err(|e| FitError::Input(format!("{file}: {e}")))?;
    let cx = Checker::new(&file, &text);
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let scenario_path = scenario.map_or_else(|| dir.join(raw.scenario.get_ref()), Path::to_path_buf);
    let source = Source::from_path(&scenario_path).map_err(|e| {
        FitError::Input(format!("{}: scenario = {:?}: {e}", cx.at(raw.scenario.span()), raw.scenario.get_ref()))
    })?;
    let fallback = scenario_path.file_stem().and_then(|s| s.to_str()).unwrap_or("scenario").to_string();
    let prepared = Prepared::new(&source, &fallback).map_err(|e| FitError::Input(e.to_string()))?;
    let base = prepared.with(&[]).map_err(|e| FitError::Input(e.to_string()))?;

    let settings = Settings {
        starts: cx.spanned_int(&raw.fit.starts, 16, "fit.starts", 0, 4096)? as usize,
        max_iterations: cx.spanned_int(&raw.fit.max_iterations, 60, "fit.max_iterations", 1, 10_000)? as usize,
        profile: raw.fit.profile.unwrap_or(true),
        profile_points: cx.spanned_int(&raw.fit.profile_points, 6, "fit.profile_points", 2, 40)? as usize,
    };

    let parameters = match (&raw.parameters, purpose) {
        (Some(p), Purpose::Fit) => params(&cx, p, &prepared)?,
        (None, Purpose::Fit) => {
            return Err(FitError::Input(format!(
                "{file}: no [parameters] table: name what to estimate, e.g. \
                 \"needle.inner_diameter_mm\" = {{ lo = 0.12, hi = 0.20 }}"
            )))
        }
        (Some(p), Purpose::Validate) => {
            return Err(FitError::Input(format!(
                "{}: a validation file has no [parameters] table (use `mesobench fit` to estimate them)",
                cx.at(p.span())
            )))
        }
        (None, Purpose::Validate) => Vec::new(),
    };
    if raw.experiment.is_empty() {
        return Err(FitError::Input(format!(
            "{file}: no [[experiment]]: give at least one, with its trace or masses and its conditions (set)"
        )));
    }
    let mut experiments = Vec::new();
    for ex in &raw.experiment {
        if experiments.iter().any(|e: &Experiment| &e.name == ex.name.get_ref()) {
            return Err(FitError::from(cx.invalid_at(
                ex.name.span(),
                "experiment.name",
                format!("{:?}", ex.name.get_ref()),
                "a name used once",
            )));
        }
        experiments.push(experiment(&cx, ex, &dir, &prepared, &parameters, base.params.p_atm)?);
    }
    let tolerance = match (&raw.tolerance, purpose) {
        (Some(t), Purpose::Validate) => tolerances(&cx, t)?,
        (Some(t), Purpose::Fit) => {
            let span = t.values().next().map(Spanned::span).unwrap_or(0..0);
            return Err(FitError::Input(format!(
                "{}: [tolerance] belongs in a validation file (`mesobench validate`)",
                cx.at(span)
            )));
        }
        (None, _) => Vec::new(),
    };
    Ok(FitFile { path: file, scenario_path, prepared, experiments, parameters, settings, tolerance })
}

fn params(
    cx: &Checker,
    table: &Spanned<BTreeMap<String, Spanned<RawParam>>>,
    prepared: &Prepared,
) -> Result<Vec<FitParam>, FitError> {
    if table.get_ref().is_empty() {
        return Err(FitError::Input(format!("{}: [parameters] is empty: name at least one key", cx.at(table.span()))));
    }
    let entries = prepared.entries(&[]).map_err(|e| FitError::Input(e.to_string()))?;
    let mut out = Vec::new();
    // In the order the file writes them.
    let mut written: Vec<(&String, &Spanned<RawParam>)> = table.get_ref().iter().collect();
    written.sort_by_key(|(_, p)| p.span().start);
    for (key, p) in written {
        let span = p.span();
        let decl = registry::find(key).ok_or_else(|| {
            let near = registry::closest(key);
            let hint = if near.is_empty() { String::new() } else { format!(" (did you mean {}?)", near.join(", ")) };
            FitError::from(cx.invalid_at(
                span.clone(),
                "parameters",
                format!("{key:?}"),
                format!("a real-valued scenario key{hint}"),
            ))
        })?;
        let Kind::Real { min, max } = decl.kind else {
            return Err(FitError::from(cx.invalid_at(
                span,
                "parameters",
                format!("{key:?}"),
                "a real-valued key (whole numbers and choices cannot be fitted)",
            )));
        };
        let raw = p.get_ref();
        let (lo, hi) = (*raw.lo.get_ref(), *raw.hi.get_ref());
        let unit = decl.unit.symbol;
        let range = format!("{} to {} {unit} (the key's allowed range), with lo < hi", fmt_num(min), fmt_num(max));
        for (v, s, name) in [(lo, raw.lo.span(), "lo"), (hi, raw.hi.span(), "hi")] {
            if !v.is_finite() || v < min || v > max {
                return Err(FitError::from(cx.invalid_at(
                    s,
                    &format!("parameters.\"{key}\".{name}"),
                    fmt_num(v),
                    &range,
                )));
            }
        }
        if lo >= hi {
            return Err(FitError::from(cx.invalid_at(
                raw.hi.span(),
                &format!("parameters.\"{key}\".hi"),
                fmt_num(hi),
                &range,
            )));
        }
        let current = entries
            .iter()
            .find(|e| e.key == *key)
            .and_then(|e| e.value.parse::<f64>().ok())
            .filter(|v| *v > lo && *v < hi);
        let start = match &raw.start {
            Some(s) if *s.get_ref() > lo && *s.get_ref() < hi => *s.get_ref(),
            Some(s) => {
                return Err(FitError::from(cx.invalid_at(
                    s.span(),
                    &format!("parameters.\"{key}\".start"),
                    fmt_num(*s.get_ref()),
                    format!("strictly between lo = {} and hi = {}", fmt_num(lo), fmt_num(hi)),
                )))
            }
            None => current.unwrap_or(0.5 * (lo + hi)),
        };
        out.push(FitParam { key: key.clone(), unit, lo, hi, start, origin: cx.at(span) });
    }
    Ok(out)
}

/// A `set` value as a `--set` override.
fn override_arg(key: &str, v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::Float(_) | toml::Value::Integer(_) | toml::Value::Boolean(_) | toml::Value::String(_) => {
            Some(format!("{key}={v}"))
        }
        _ => None,
    }
}

fn experiment(
    cx: &Checker,
    ex: &RawExperiment,
    dir: &Path,
    prepared: &Prepared,
    params: &[FitParam],
    p_atm: f64,
) -> Result<Experiment, FitError> {
    let name = ex.name.get_ref().clone();
    let here = |span: std::ops::Range<usize>| format!("{} (experiment {name:?})", cx.at(span));
    let empty = Spanned::new(ex.name.span(), BTreeMap::new());
    let set_table = ex.set.as_ref().unwrap_or(&empty);
    let set = set_overrides(cx, set_table, params)?;
    // The conditions must give a valid scenario on their own.
    let sc = prepared.with(&set).map_err(|e| FitError::Input(format!("{}: set: {e}", here(set_table.span()))))?;
    let density = sc.params.fluid.density;
    let specs = column_specs(cx, ex)?;
    let align = match &ex.align {
        None => Align::ValveCommand,
        Some(v) => align(cx, v)?,
    };
    let pre = cx.spanned_num(&ex.pre_trigger_ms, 2.0, "experiment.pre_trigger_ms", (0.0, 1000.0), (1.0, ""))? * 1e-3;
    let window = match &ex.align_window_ms {
        None => None,
        Some(_) => {
            Some(cx.spanned_num(&ex.align_window_ms, 0.0, "experiment.align_window_ms", (0.0, 10.0), (1.0, ""))? * 1e-3)
        }
    };
    let trace = match &ex.trace {
        None if ex.masses.is_none() => {
            return Err(FitError::Input(format!("{}: give a trace, masses, or both", here(ex.name.span()))))
        }
        None => None,
        Some(t) => Some(read_trace(t, &here, &specs, align, dir, p_atm)?),
    };
    let masses = match &ex.masses {
        None => Vec::new(),
        Some(m) => bench::read_masses(&dir.join(m.get_ref())).map_err(|e| FitError::Input(e.to_string()))?,
    };
    let mass_sd = cx.spanned_num(&ex.mass_sd_mg, 0.1, "experiment.mass_sd_mg", (1e-6, 1e4), (1.0, ""))? * 1e-6;
    let origin = here(ex.name.span());
    Experiment::new(name, origin, set, trace, masses, mass_sd, density, align, pre, window)
}

/// An experiment's `set` table as `--set` overrides; neither the number of
/// shots nor an estimated key may be set.
fn set_overrides(
    cx: &Checker,
    set_table: &Spanned<BTreeMap<String, toml::Value>>,
    params: &[FitParam],
) -> Result<Vec<String>, FitError> {
    let mut set = Vec::new();
    for (key, v) in set_table.get_ref() {
        let arg = override_arg(key, v).ok_or_else(|| {
            FitError::from(cx.invalid_at(
                set_table.span(),
                &format!("set.\"{key}\""),
                v,
                "a number, a name or true/false",
            ))
        })?;
        if key == "session.shots" {
            return Err(FitError::from(cx.invalid_at(
                set_table.span(),
                "set.\"session.shots\"",
                v,
                "no value: the number of shots comes from the data (the shots found in the trace, or the masses)",
            )));
        }
        if params.iter().any(|p| &p.key == key) {
            return Err(FitError::from(cx.invalid_at(
                set_table.span(),
                &format!("set.\"{key}\""),
                v,
                "a key that is not also estimated in [parameters]",
            )));
        }
        set.push(arg);
    }
    Ok(set)
}

/// The experiment's channels, in the order of the file: each column's
/// signal, unit and noise sd.
fn column_specs(cx: &Checker, ex: &RawExperiment) -> Result<Vec<ColumnSpec>, FitError> {
    let mut specs = Vec::new();
    let mut mapped: Vec<(&String, &Spanned<RawChannel>)> = ex.channels.iter().collect();
    mapped.sort_by_key(|(_, c)| c.span().start);
    for (column, ch) in mapped {
        let c = ch.get_ref();
        let signal = Signal::from_name(c.signal.get_ref()).ok_or_else(|| {
            FitError::from(cx.invalid_at(
                c.signal.span(),
                &format!("channels.\"{column}\".signal"),
                format!("{:?}", c.signal.get_ref()),
                format!("one of {}", Signal::names()),
            ))
        })?;
        if specs.iter().any(|s: &ColumnSpec| s.signal == signal) {
            return Err(FitError::from(cx.invalid_at(
                c.signal.span(),
                &format!("channels.\"{column}\".signal"),
                signal.name(),
                "a signal mapped once per experiment",
            )));
        }
        let sd = match &c.sd {
            Some(s) if s.get_ref().is_finite() && *s.get_ref() > 0.0 => Some(*s.get_ref()),
            Some(s) => {
                return Err(FitError::from(cx.invalid_at(
                    s.span(),
                    &format!("channels.\"{column}\".sd"),
                    s.get_ref(),
                    "a positive number (SI: Pa, A, m, m³, m³/s)",
                )))
            }
            None => None,
        };
        specs.push(ColumnSpec { column: column.clone(), signal, unit: c.unit.clone(), sd, origin: cx.at(ch.span()) });
    }
    Ok(specs)
}

/// Read the experiment's trace `t` (relative to `dir`) once its channels
/// map a measured signal and the signal the shots are aligned on.
fn read_trace(
    t: &Spanned<String>,
    here: &dyn Fn(std::ops::Range<usize>) -> String,
    specs: &[ColumnSpec],
    align: Align,
    dir: &Path,
    p_atm: f64,
) -> Result<bench::BenchTrace, FitError> {
    if specs.iter().all(|s| !s.signal.is_measured()) {
        return Err(FitError::Input(format!(
            "{}: [experiment.channels] maps no measured signal (one of {}) for trace {:?}",
            here(t.span()),
            Signal::ALL.iter().filter(|s| s.is_measured()).map(|s| s.name()).collect::<Vec<_>>().join(", "),
            t.get_ref()
        )));
    }
    let needed = match align {
        Align::ValveCommand => Some(Signal::ValveCommand),
        Align::Trigger => Some(Signal::Trigger),
        Align::Level { signal, .. } => Some(signal),
    };
    if let Some(s) = needed.filter(|s| specs.iter().all(|c| c.signal != *s)) {
        return Err(FitError::Input(format!(
            "{}: shots are aligned on {} but no column is mapped to it: map one, or set align",
            here(t.span()),
            s.name()
        )));
    }
    let path = dir.join(t.get_ref());
    bench::read_trace(&path, specs, p_atm).map_err(|e| FitError::Input(e.to_string()))
}

fn align(cx: &Checker, v: &Spanned<toml::Value>) -> Result<Align, FitError> {
    let allowed = "\"valve_command\", \"trigger\", or { signal = \"p_chamber\", level_kpa = 20.0 } \
                   (a rising crossing of a pressure)";
    match v.get_ref() {
        toml::Value::String(s) if s == "valve_command" => Ok(Align::ValveCommand),
        toml::Value::String(s) if s == "trigger" => Ok(Align::Trigger),
        toml::Value::Table(t) => {
            let signal = t.get("signal").and_then(|s| s.as_str()).and_then(Signal::from_name);
            let level = t.get("level_kpa").and_then(|l| l.as_float().or_else(|| l.as_integer().map(|i| i as f64)));
            match (signal, level, t.len()) {
                (Some(s), Some(l), 2) if s.quantity() == bench::Quantity::Pressure && l.is_finite() && l > 0.0 => {
                    Ok(Align::Level { signal: s, level: l * 1e3 })
                }
                _ => Err(FitError::from(cx.invalid_at(v.span(), "experiment.align", v.get_ref(), allowed))),
            }
        }
        other => Err(FitError::from(cx.invalid_at(v.span(), "experiment.align", other, allowed))),
    }
}

fn tolerances(cx: &Checker, t: &BTreeMap<String, Spanned<f64>>) -> Result<Vec<Tolerance>, FitError> {
    let mut out = Vec::new();
    for (key, v) in t {
        let kind = ToleranceKind::parse(key).ok_or_else(|| {
            FitError::from(cx.invalid_at(
                v.span(),
                &format!("tolerance.{key}"),
                v.get_ref(),
                "a key such as p_syringe_rms_kpa, p_chamber_peak_kpa, flow_rms_ul_per_s, \
                 plunger_position_rms_mm, coil_current_peak_a, dose_error_pct or valve_delay_ms",
            ))
        })?;
        let x = *v.get_ref();
        if !(x.is_finite() && x > 0.0) {
            return Err(FitError::from(cx.invalid_at(v.span(), &format!("tolerance.{key}"), x, "a positive number")));
        }
        out.push(Tolerance { key: key.clone(), kind, limit: x, origin: cx.at(v.span()) });
    }
    Ok(out)
}
