//! Scenario files: TOML with human units in the key names, converted once to
//! SI and range-checked before anything runs.
//!
//! Parsing has two stages (as ripgrep's low/high arguments): [`Raw`] mirrors
//! the file (every key optional, unknown keys rejected), then
//! [`Scenario::from_raw`] fills defaults, converts to SI and checks ranges
//! into [`Scenario`], which downstream code uses and which cannot hold bar or
//! ms. `--set key.path=value` overrides are applied to the parsed document.

use serde::Deserialize;
use std::path::{Path, PathBuf};

pub mod checks;
mod input;
pub mod registry;
mod source;
mod study;

pub use input::{line_col, locate, Checker, Locator};
use source::{apply_override, parse_error, split_key, toml_integer, toml_number};
pub use source::{is_study_text, read_capped, Capped, Source, MAX_FILE_MIB};
pub use study::{
    parse_uncertain, Distribution, Level, Optimizer, RawSensitivity, RawSweep, RawTune, Sampling, SpaceFilling,
    SweepSpec, TuneObjective, TuneSpec, Uncertain, MAX_AXIS_POINTS, MAX_DESIGN_VALUES, MAX_GRID_POINTS, PER_SHOT_KEYS,
};
use study::{support, sweep_spec, tune_spec, uncertain_specs};

pub use crate::control::spec::{FirmwareKind, FirmwareSpec, PluginIsolation};
use crate::control::spec::{RawFirmware, RawSensors, Timing};
use crate::model::chamber::{ChamberParams, RawChamber};
use crate::model::fluid::{Fluid, RawFluid};
use crate::model::line::{LineParams, RawLine};
use crate::model::needle::RawNeedle;
use crate::model::param::{self, fmt_num, Invalid, Reader};
use crate::model::piston::{PistonParams, RawPiston};
use crate::model::supply::{RawSupply, SupplyParams};
use crate::model::syringe::{RawSyringe, SyringeParams};
use crate::model::tissue::{RawTissue, TissueParams};
use crate::model::tubing::RawTubing;
use crate::model::valve::{RawValve, ValveParams};
use crate::model::{self, Params, RawAmbient, TubingParams};
use crate::sim::input::{RawSession, RawSolver};
use crate::sim::{SessionSettings, SolverSettings};

/// The default scenario, identical to `scenarios/reference.toml`.
pub const DEFAULT_SCENARIO: &str = include_str!("../../scenarios/reference.toml");
/// Name of the default scenario.
pub const DEFAULT_NAME: &str = "reference";

/// A scenario that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A file larger than any scenario or study (e.g. /dev/zero).
    #[error("{} is larger than {mib} MiB: not a {what}", path.display())]
    TooLarge {
        /// File.
        path: PathBuf,
        /// What it should have been ("scenario", "study").
        what: &'static str,
        /// The cap, MiB.
        mib: u64,
    },
    /// TOML syntax or schema error (the message carries line, column and a caret).
    #[error("{path}: {message}")]
    Parse {
        /// File.
        path: String,
        /// toml's message.
        message: String,
    },
    /// A `--set` override that is malformed or names no key.
    #[error("--set {arg}: {message}")]
    Override {
        /// The argument as given.
        arg: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A value outside its allowed range, or an inconsistent combination.
    #[error("{location}: {key} = {value} is not allowed: {allowed}")]
    Invalid {
        /// `file:line:column`, or `--set key=value`.
        location: String,
        /// Dotted key.
        key: String,
        /// The value given.
        value: String,
        /// What is allowed.
        allowed: String,
    },
}

/// The scenario file as written (human units in the key names).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Raw {
    pub name: Option<String>,
    pub description: Option<String>,
    pub seed: Option<u64>,
    #[serde(default)]
    pub solver: RawSolver,
    #[serde(default)]
    pub firmware: RawFirmware,
    #[serde(default)]
    pub sensors: RawSensors,
    #[serde(default)]
    pub session: RawSession,
    #[serde(default)]
    pub ambient: RawAmbient,
    #[serde(default)]
    pub supply: RawSupply,
    #[serde(default)]
    pub valve: RawValve,
    #[serde(default)]
    pub line: RawLine,
    #[serde(default)]
    pub chamber: RawChamber,
    #[serde(default)]
    pub piston: RawPiston,
    #[serde(default)]
    pub syringe: RawSyringe,
    pub tubing: Option<RawTubing>,
    #[serde(default)]
    pub needle: RawNeedle,
    #[serde(default)]
    pub fluid: RawFluid,
    #[serde(default)]
    pub tissue: RawTissue,
    pub sweep: Option<RawSweep>,
    pub uncertain: Option<toml::Table>,
    pub sensitivity: Option<RawSensitivity>,
    pub tune: Option<RawTune>,
}

/// A validated scenario (SI).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scenario {
    /// Scenario name (output folder name).
    pub name: String,
    /// Free text.
    pub description: String,
    /// Master seed for every random stream.
    pub seed: u64,
    /// Plant parameters.
    pub params: Params,
    /// Solver settings.
    pub solver: SolverSettings,
    /// Firmware.
    pub firmware: FirmwareSpec,
    /// Session.
    pub session: SessionSettings,
    /// Parameter sweep, if the scenario has a `[sweep]` table.
    pub sweep: Option<SweepSpec>,
    /// Uncertain parameters (`[uncertain]`), drawn per replicate.
    pub uncertain: Vec<Uncertain>,
    /// Sensitivity analysis settings: (base samples N, bootstrap resamples).
    pub sensitivity: (usize, usize),
    /// Auto-tuning settings, if the scenario has a `[tune]` table.
    pub tune: Option<TuneSpec>,
}

/// Load, override and validate a scenario, including every value its
/// `[sweep]`, `[uncertain]` and `[tune]` tables can apply (see
/// [`Prepared::check_study`]).
///
/// `fallback_name` names the scenario when the file has no `name` key
/// (normally the file stem).
pub fn load(source: &Source, overrides: &[String], fallback_name: &str) -> Result<Scenario, ScenarioError> {
    let prep = Prepared::new(source, fallback_name)?;
    let sc = prep.with(overrides)?;
    prep.check_study(&sc, overrides)?;
    Ok(sc)
}

/// Whether a scenario key holds a whole number (declared as one in the
/// registry). Such keys can be swept on a grid of whole values, but not
/// drawn from a distribution nor tuned.
pub fn is_integer_key(key: &str) -> bool {
    registry::find(key).is_some_and(|p| matches!(p.kind, param::Kind::Integer { .. }))
}

/// A `key=value` override for a number: whole numbers are written without
/// a fraction, so that integer keys accept them.
pub fn set_arg(key: &str, v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        format!("{key}={}", v as i64)
    } else {
        format!("{key}={v:?}")
    }
}

/// A scenario parsed once, from which variants with overrides are built
/// quickly (no text parsing) for sweeps and Monte Carlo replicates.
#[derive(Debug, Clone)]
pub struct Prepared {
    source: Source,
    table: toml::Table,
    raw: Raw,
    fallback: String,
}

impl Prepared {
    /// Parse `source` (its own errors reported with line and column) once.
    pub fn new(source: &Source, fallback_name: &str) -> Result<Prepared, ScenarioError> {
        let raw: Raw = toml::from_str(&source.text).map_err(|e| parse_error(source, e))?;
        let table: toml::Table = toml::from_str(&source.text)
            .map_err(|e| ScenarioError::Parse { path: source.name.clone(), message: e.to_string() })?;
        Ok(Prepared { source: source.clone(), table, raw, fallback: fallback_name.to_string() })
    }

    /// The scenario with `overrides` (`key=value`) applied and validated.
    pub fn with(&self, overrides: &[String]) -> Result<Scenario, ScenarioError> {
        let (raw, set_keys) = self.raw_with(overrides)?;
        let ctx = Checker::new(&self.source.name, &self.source.text).with_sets(&set_keys);
        Scenario::from_raw(raw, &ctx, &self.source.dir, &self.fallback)
    }

    /// The file as written with `overrides` applied, and where each override
    /// came from: through the registry when it can, else through the document.
    fn raw_with(&self, overrides: &[String]) -> Result<(Raw, Vec<(String, String)>), ScenarioError> {
        match self.with_numbers(overrides) {
            Some(done) => Ok(done),
            None => self.with_document(overrides),
        }
    }

    /// Overrides that all set declared numeric keys to plain numbers are
    /// written straight into the parsed file through the registry (no TOML
    /// round trip: this is how studies apply their values). None when any
    /// override needs the document route; a value is taken only where TOML
    /// would read the same number, so both routes give the same scenario.
    fn with_numbers(&self, overrides: &[String]) -> Option<(Raw, Vec<(String, String)>)> {
        let mut raw = self.raw.clone();
        let mut set_keys = Vec::with_capacity(overrides.len());
        for arg in overrides {
            let (key, value) = arg.split_once('=')?;
            let key = key.trim();
            if key.contains('"') {
                return None;
            }
            let value = value.trim();
            match raw.slot(key)? {
                param::Slot::Real(x) => *x = Some(toml_number(value)?),
                param::Slot::Int(x) => *x = Some(toml_integer(value)?),
                param::Slot::Seed(x) => *x = Some(u64::try_from(toml_integer(value)?).ok()?),
            }
            set_keys.push((key.to_string(), arg.clone()));
        }
        Some((raw, set_keys))
    }

    /// Overrides applied to the parsed document, then read again.
    fn with_document(&self, overrides: &[String]) -> Result<(Raw, Vec<(String, String)>), ScenarioError> {
        let mut doc = self.table.clone();
        let mut set_keys = Vec::new();
        for arg in overrides {
            let key = apply_override(&mut doc, arg)?;
            set_keys.push((key, arg.clone()));
        }
        let raw = serde_path_to_error::deserialize::<_, Raw>(toml::Value::Table(doc)).map_err(|e| {
            let path = e.path().to_string();
            let arg = set_keys
                .iter()
                .find(|(k, _)| path.starts_with(k.as_str()) || k.starts_with(&path))
                .map(|(_, a)| a.clone())
                .unwrap_or_else(|| path.clone());
            ScenarioError::Override { arg, message: format!("{}: {}", path, e.into_inner()) }
        })?;
        Ok((raw, set_keys))
    }

    /// Every declared key with the value these overrides give it, and where
    /// that value was written (for `check --params`).
    pub fn entries(&self, overrides: &[String]) -> Result<Vec<registry::Entry>, ScenarioError> {
        let (raw, set_keys) = self.raw_with(overrides)?;
        let ctx = Checker::new(&self.source.name, &self.source.text).with_sets(&set_keys);
        Ok(registry::entries(&raw, |key| ctx.location(key)))
    }

    /// Check up front every value a study can apply, so that `check`
    /// reports what would otherwise fail at some later point or draw: each
    /// key of `[sweep.parameters]`, `[uncertain]` and `[tune.parameters]`
    /// must be a numeric scenario key written without stray spaces; the
    /// lowest and highest swept values, the bounds of every distribution
    /// (its 1e-9 and 1 − 1e-9 quantiles when unbounded) and the tuning bounds
    /// must pass the key's own range check; a key may not be both swept and
    /// uncertain (a draw would silently replace the swept value); integer
    /// keys can only be swept, with whole values.
    pub fn check_study(&self, sc: &Scenario, base: &[String]) -> Result<(), ScenarioError> {
        // Errors point at the --set argument when the table entry came from one.
        let set_keys: Vec<(String, String)> = base
            .iter()
            .filter_map(|arg| arg.split_once('=').map(|(k, _)| (k.trim().to_string(), arg.clone())))
            .collect();
        let ctx = Checker::new(&self.source.name, &self.source.text).with_sets(&set_keys);
        let is_int = is_integer_key;
        if let Some(sw) = &sc.sweep {
            for (key, values) in &sw.axes {
                let where_ = format!("sweep.parameters.\"{key}\"");
                if is_int(key) {
                    if sw.space_filling.is_some() {
                        return Err(ctx.invalid(&where_, key, "a key with real values: a whole-number key can only be swept on a grid (sampling = \"grid\")"));
                    }
                    if let Some(v) = values.iter().find(|v| v.fract() != 0.0) {
                        return Err(ctx.invalid(
                            &where_,
                            fmt_num(*v),
                            format!("whole numbers: {key} is an integer key"),
                        ));
                    }
                }
                let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                for v in [lo, hi] {
                    self.check_value(&ctx, &where_, key, v, &fmt_num(v), base)?;
                }
            }
        }
        for u in &sc.uncertain {
            let key = u.key.as_str();
            let where_ = format!("uncertain.\"{key}\"");
            if is_int(key) {
                return Err(ctx.invalid(
                    &where_,
                    key,
                    "a key with real values: a whole-number key cannot be drawn from a distribution (sweep it instead)",
                ));
            }
            if sc.sweep.as_ref().is_some_and(|sw| sw.axes.iter().any(|a| a.0 == key)) {
                return Err(ctx.invalid(
                    &where_,
                    key,
                    "a key that is not also swept: a draw would replace the swept value in every replicate (remove it from [uncertain], or sweep the distribution's centre and keep the spread in another key)",
                ));
            }
            for (v, what) in support(&u.dist) {
                self.check_value(&ctx, &where_, key, v, &format!("{} ({what})", fmt_num(v)), base)?;
            }
        }
        if let Some(t) = &sc.tune {
            for (key, lo, hi) in &t.parameters {
                let where_ = format!("tune.parameters.\"{key}\"");
                if is_int(key) {
                    return Err(ctx.invalid(
                        &where_,
                        key,
                        "a key with real values: a whole-number key cannot be tuned",
                    ));
                }
                for v in [*lo, *hi] {
                    self.check_value(&ctx, &where_, key, v, &fmt_num(v), base)?;
                }
            }
        }
        Ok(())
    }

    /// `key = v` on top of `base` must give a valid scenario; errors are
    /// reported at `where_` (the study table's entry).
    fn check_value(
        &self,
        ctx: &Checker,
        where_: &str,
        key: &str,
        v: f64,
        shown: &str,
        base: &[String],
    ) -> Result<(), ScenarioError> {
        if key.trim() != key || key.is_empty() {
            return Err(ctx.invalid(
                where_,
                format!("{key:?}"),
                "a dotted scenario key without leading or trailing spaces",
            ));
        }
        if !registry::find(key).is_some_and(param::Param::is_number) {
            let near = registry::closest(key);
            let hint = match near.as_slice() {
                [] => String::new(),
                keys => format!(" (did you mean {}?)", keys.join(" or ")),
            };
            let what = match registry::find(key) {
                Some(p) => format!("{} is not a number", p.key),
                None => "no such key".to_string(),
            };
            return Err(ctx.invalid(
                where_,
                format!("{key:?}"),
                format!("a numeric scenario key: {what}{hint}; docs/parameters.md lists the keys"),
            ));
        }
        let mut sets = base.to_vec();
        sets.push(set_arg(key, v));
        match self.with(&sets) {
            Ok(_) => Ok(()),
            Err(ScenarioError::Invalid { key: k, allowed, .. }) if k == key => Err(ctx.invalid(where_, shown, allowed)),
            Err(ScenarioError::Invalid { key: k, value, allowed, .. }) => Err(ctx.invalid(
                where_,
                shown,
                format!("a value that leaves the scenario valid: with it, {k} = {value} is not allowed: {allowed}"),
            )),
            Err(ScenarioError::Override { message, .. }) => {
                Err(ctx.invalid(where_, format!("{key:?}"), format!("a numeric scenario key ({message})")))
            }
            Err(e) => Err(e),
        }
    }

    /// The number written at a dotted key, if the file sets one.
    pub fn number_at(&self, dotted: &str) -> Option<f64> {
        let parts = split_key(dotted)?;
        let (last, path) = parts.split_last()?;
        let mut t = &self.table;
        for p in path {
            t = t.get(p)?.as_table()?;
        }
        let v = t.get(last)?;
        v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
    }

    /// Where the scenario came from.
    pub fn source(&self) -> &Source {
        &self.source
    }
}

impl Scenario {
    fn from_raw(raw: Raw, c: &Checker, dir: &Path, fallback_name: &str) -> Result<Scenario, ScenarioError> {
        let name = scenario_name(&raw, c, fallback_name)?;
        let seed = raw.seed.unwrap_or(1);

        let loc = |e: Invalid| c.located(e);
        let r = Reader::new(0.0);
        let p_atm = r.real(&RawAmbient::PRESSURE, raw.ambient.pressure_kpa).map_err(loc)?;
        let t_amb = r.real(&RawAmbient::TEMPERATURE, raw.ambient.temperature_c).map_err(loc)?;
        let r = Reader::new(p_atm);

        // Solver, firmware timing and session.
        type F = RawFirmware;
        let sv = &raw.solver;
        let step = r.real(&RawSolver::STEP, sv.step_us).map_err(loc)?;
        let trace_interval = r.real(&RawSolver::TRACE_INTERVAL, sv.trace_interval_us).map_err(loc)?;
        let max_tail = r.real(&RawSolver::MAX_TAIL, sv.max_tail_ms).map_err(loc)?;
        let mode = match r.choice(&RawSolver::MODE, &sv.mode).map_err(loc)? {
            "adaptive" => crate::sim::SolverMode::Adaptive,
            _ => crate::sim::SolverMode::Fixed,
        };
        let tolerance = r.real(&RawSolver::TOLERANCE, sv.tolerance).map_err(loc)?;
        checks::tolerance_needs_adaptive(sv.tolerance, mode == crate::sim::SolverMode::Adaptive).map_err(loc)?;
        let f = &raw.firmware;
        let kind = r.choice(&F::KIND, &f.kind).map_err(loc)?.to_string();
        let tick = 1.0 / r.real(&F::TICK, f.tick_hz).map_err(loc)?;
        let open_time = r.real(&F::OPEN_TIME, f.open_time_ms).map_err(loc)?;
        let s = &raw.session;
        let shots = r.int(&RawSession::SHOTS, s.shots).map_err(loc)? as usize;
        let rate = r.real(&RawSession::RATE, s.rate_hz).map_err(loc)?;
        let period = 1.0 / rate;
        checks::open_time_within_period(open_time, rate).map_err(loc)?;

        let params = plant_from_raw(&raw, &r, p_atm, t_amb).map_err(loc)?;
        let proportional = params.supply.proportional;
        let sweep = match &raw.sweep {
            None => None,
            Some(sw) => Some(sweep_spec(sw, c, seed)?),
        };
        let uncertain = match &raw.uncertain {
            None => Vec::new(),
            Some(t) => uncertain_specs(t, c)?,
        };
        let sa = raw.sensitivity.clone().unwrap_or_default();
        let sensitivity = (
            c.int(sa.samples, 256, "sensitivity.samples", 2, 65_536)? as usize,
            c.int(sa.bootstrap, 200, "sensitivity.bootstrap", 0, 100_000)? as usize,
        );
        let tune = match &raw.tune {
            None => None,
            Some(t) => Some(tune_spec(t, c)?),
        };
        Ok(Scenario {
            sweep,
            uncertain,
            sensitivity,
            tune,
            name,
            description: raw.description.unwrap_or_default(),
            seed,
            params,
            solver: SolverSettings { step, tick, trace_interval, max_tail, mode, tolerance },
            firmware: FirmwareSpec::from_raw(
                &raw.firmware,
                &raw.sensors,
                &r,
                Timing { kind: &kind, open_time, period, proportional },
                dir,
            )
            .map_err(loc)?,
            session: SessionSettings { shots, period },
        })
    }
}

/// The scenario's name: the `name` key, or else the file stem with the
/// characters that cannot name a folder portably (dots, spaces, …) as '_'.
fn scenario_name(raw: &Raw, c: &Checker, fallback_name: &str) -> Result<String, ScenarioError> {
    let name = raw.name.clone().unwrap_or_else(|| {
        fallback_name.chars().map(|ch| if ch.is_ascii_alphanumeric() || ch == '-' { ch } else { '_' }).collect()
    });
    if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-') {
        return Err(c.invalid(
            "name",
            format!("\"{name}\""),
            "letters, digits, '_' and '-' (it names the output folder)",
        ));
    }
    Ok(name)
}

/// The plant, component by component, then the rules across components.
fn plant_from_raw(raw: &Raw, r: &Reader, p_atm: f64, t_amb: f64) -> Result<Params, Invalid> {
    let supply = SupplyParams::from_raw(&raw.supply, r, t_amb)?;
    let valve = ValveParams::from_raw(&raw.valve, r)?;
    checks::valve_pulls_in(&valve, &supply, p_atm)?;
    let line = LineParams::from_raw(&raw.line, r, t_amb)?;
    let chamber = ChamberParams::from_raw(&raw.chamber, r, t_amb)?;
    let piston = PistonParams::from_raw(&raw.piston, r)?;
    let syringe = SyringeParams::from_raw(&raw.syringe, r)?;
    let fluid = Fluid::from_raw(&raw.fluid, r)?;
    let tubing = match &raw.tubing {
        None => None,
        Some(t) => Some(TubingParams::from_raw(t, r, &fluid)?),
    };
    let needles = model::needle::from_raw(&raw.needle, r, &fluid)?;
    let sites = TissueParams::from_raw(&raw.tissue, r, needles.len())?;
    Ok(Params {
        p_atm,
        t_ambient: t_amb,
        supply,
        valve,
        line,
        chamber,
        piston,
        syringe,
        fluid,
        tubing,
        needles,
        sites,
        new_site_each_shot: raw.tissue.new_site_each_shot.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests;
