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
pub mod registry;

pub use crate::control::spec::{FirmwareKind, FirmwareSpec, PluginIsolation};
use crate::control::spec::{RawFirmware, RawSensors, Timing};
use crate::model::chamber::{ChamberParams, RawChamber};
use crate::model::fluid::{Fluid, RawFluid};
use crate::model::line::{LineParams, RawLine};
use crate::model::needle::RawNeedle;
use crate::model::param::{self, Invalid, Reader};
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

/// `[tune]`: firmware auto-tuning (`mesobench tune`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawTune {
    pub parameters: Option<toml::Table>,
    pub objective: Option<String>,
    pub target_ul: Option<f64>,
    pub max_bias_pct: Option<f64>,
    pub weight_cv: Option<f64>,
    pub weight_bias: Option<f64>,
    pub acceptance: Option<String>,
    pub replicates: Option<i64>,
    pub optimizer: Option<String>,
    pub particles: Option<i64>,
    pub iterations: Option<i64>,
    pub landscape_grid: Option<i64>,
    pub landscape: Option<Vec<String>>,
    pub max_tissue_pressure_kpa: Option<f64>,
    pub max_leak_ul: Option<f64>,
    pub min_shots_per_s: Option<f64>,
}

/// `[sensitivity]`: Sobol analysis settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawSensitivity {
    pub samples: Option<i64>,
    pub bootstrap: Option<i64>,
}

/// `[sweep]`: parameters to sweep and Monte Carlo replicates per point.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawSweep {
    pub replicates: Option<i64>,
    pub target_ul: Option<f64>,
    pub histogram_points: Option<Vec<i64>>,
    pub trace_point: Option<i64>,
    pub sampling: Option<String>,
    pub samples: Option<i64>,
    pub parameters: Option<toml::Table>,
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

/// What `mesobench tune` minimises.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TuneObjective {
    /// Dose CV in %, subject to |bias| ≤ the bias limit (when a target is given).
    Cv,
    /// (|x̄ − V| + k·s) / L(V): the share of the acceptance limit the
    /// tolerance interval uses (≤ 1 passes).
    Tolerance,
    /// weight_cv · CV % + weight_bias · |bias| %.
    Weighted,
}

/// Auto-tuning settings (`[tune]`; SI except where the name says).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TuneSpec {
    /// Tuned keys with their bounds, in the keys' own units.
    pub parameters: Vec<(String, f64, f64)>,
    /// Objective.
    pub objective: TuneObjective,
    /// Target dose, m³.
    pub target: Option<f64>,
    /// Largest |bias| allowed, fraction.
    pub max_bias: f64,
    /// Weights of the weighted objective (CV, bias).
    pub weights: (f64, f64),
    /// Acceptance limits (µL) of the tolerance objective.
    pub limits: crate::stats::tolerance::Limits,
    /// Monte Carlo replicates (sessions) per candidate.
    pub replicates: usize,
    /// `particle_swarm` or `nelder_mead`.
    pub optimizer: Optimizer,
    /// Swarm size.
    pub particles: usize,
    /// Optimiser iterations.
    pub iterations: usize,
    /// Points per axis of the objective landscape.
    pub landscape_grid: usize,
    /// Indices of the keys the landscape spans (empty: the two to which
    /// the objective is most sensitive around the optimum).
    pub landscape: Vec<usize>,
    /// Largest tissue gauge pressure allowed, Pa.
    pub max_tissue_pressure: Option<f64>,
    /// Largest reflux per shot allowed, m³.
    pub max_leak: Option<f64>,
    /// Smallest achieved shot rate allowed, 1/s.
    pub min_rate: Option<f64>,
}

/// How a sweep places its points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// The Cartesian product of the listed values.
    Grid,
    /// A Latin hypercube of `samples` points.
    Lhs,
    /// An Owen-scrambled Sobol sequence of `samples` points.
    Sobol,
}

/// Which optimiser `mesobench tune` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimizer {
    /// Particle swarm (global).
    ParticleSwarm,
    /// Nelder–Mead simplex (local).
    NelderMead,
}

impl std::fmt::Display for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Optimizer::ParticleSwarm => "particle_swarm",
            Optimizer::NelderMead => "nelder_mead",
        })
    }
}

/// A parameter sweep (values in the keys' own units, as written).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SweepSpec {
    /// Monte Carlo replicates (sessions) per point.
    pub replicates: usize,
    /// Target dose for the bias, m³.
    pub target: Option<f64>,
    /// Swept keys and their values; points are the Cartesian product with the last key varying fastest.
    pub axes: Vec<(String, Vec<f64>)>,
    /// Points whose dose histograms are plotted.
    pub histogram: Vec<u64>,
    /// Point whose Monte Carlo traces are overlaid.
    pub trace_point: u64,
    /// How points are placed.
    pub sampling: Sampling,
    /// For `lhs` and `sobol`: the points (one row of key values each); the
    /// axes then hold each key's [low, high] range.
    #[serde(skip)]
    pub design: Option<Vec<Vec<f64>>>,
}

/// A space-filling design of `n` points over `ranges` ([lo, hi], and whether
/// the key is spaced logarithmically): Latin hypercube (one point per
/// stratum in every key, strata shuffled and jittered from `seed`) or an
/// Owen-scrambled Sobol sequence (at most 65,536 points).
pub fn design(kind: Sampling, n: usize, ranges: &[(f64, f64, bool)], seed: u64) -> Vec<Vec<f64>> {
    use rand::seq::SliceRandom;
    use rand::RngExt;
    let map = |u: f64, (lo, hi, log): (f64, f64, bool)| {
        if log {
            (lo.ln() + u * (hi.ln() - lo.ln())).exp()
        } else {
            lo + u * (hi - lo)
        }
    };
    let mut rows = vec![vec![0.0; ranges.len()]; n];
    for (k, r) in ranges.iter().enumerate() {
        if kind == Sampling::Lhs {
            let mut rng = crate::study::task_rng(seed, u64::MAX - 1, k as u64);
            let mut strata: Vec<usize> = (0..n).collect();
            strata.shuffle(&mut rng);
            for (i, row) in rows.iter_mut().enumerate() {
                let u = (strata[i] as f64 + rng.random::<f64>()) / n as f64;
                row[k] = map(u, *r);
            }
        } else {
            let s = (crate::study::splitmix(seed) & 0xffff_ffff) as u32;
            for (i, row) in rows.iter_mut().enumerate() {
                let u = sobol_burley::sample(i as u32, k as u32, s) as f64 + 0.5 / 16_777_216.0;
                row[k] = map(u.min(1.0), *r);
            }
        }
    }
    rows
}

impl SweepSpec {
    /// Number of points.
    pub fn points(&self) -> u64 {
        match &self.design {
            Some(d) => d.len() as u64,
            None => self.axes.iter().map(|a| a.1.len() as u64).product(),
        }
    }
    /// The key values of point `index`.
    pub fn point(&self, mut index: u64) -> Vec<(String, f64)> {
        if let Some(d) = &self.design {
            return self.axes.iter().zip(&d[index as usize]).map(|(a, v)| (a.0.clone(), *v)).collect();
        }
        let mut out = vec![(String::new(), 0.0); self.axes.len()];
        for (i, (key, values)) in self.axes.iter().enumerate().rev() {
            let n = values.len() as u64;
            out[i] = (key.clone(), values[(index % n) as usize]);
            index /= n;
        }
        out
    }
}

/// A probability distribution, in the key's own units.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(tag = "dist", rename_all = "snake_case")]
pub enum Distribution {
    /// Normal.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        sd: f64,
    },
    /// Log-normal with the given median and geometric standard deviation (> 1).
    Lognormal {
        /// Median.
        median: f64,
        /// Geometric standard deviation.
        gsd: f64,
    },
    /// Uniform on [lo, hi].
    Uniform {
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
    },
    /// Normal truncated to [lo, hi] (by rejection).
    TruncatedNormal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        sd: f64,
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
    },
}

/// When an uncertain parameter is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Once per replicate: a device, a syringe, a needle lot, an operator.
    Session,
    /// Before every shot: valve jitter, supply ripple.
    Shot,
    /// For every injection site (every shot, as each shot goes into a new site): tissue.
    Site,
}

/// An uncertain scenario parameter.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Uncertain {
    /// Dotted scenario key (its own units).
    pub key: String,
    /// Distribution.
    pub dist: Distribution,
    /// When it is drawn.
    pub level: Level,
}

/// Keys that may change between shots (per-shot and per-site levels).
pub const PER_SHOT_KEYS: [&str; 4] = ["valve.", "tissue.", "supply.pressure_bar", "supply.regulator_tau_ms"];

/// Where the scenario text came from, for error messages.
#[derive(Debug, Clone)]
pub struct Source {
    /// Display name (a path, or `<default scenario>`).
    pub name: String,
    /// The text.
    pub text: String,
    /// Folder that relative paths in the scenario are resolved against.
    pub dir: PathBuf,
}

impl Source {
    /// Read a scenario file (at most [`MAX_FILE_MIB`] MiB).
    pub fn from_path(path: &Path) -> Result<Source, ScenarioError> {
        let text = read_capped(path, "scenario").map_err(|e| match e {
            Capped::Io(source) => ScenarioError::Io { path: path.to_owned(), source },
            Capped::TooLarge(e) => e,
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Source { name: path.display().to_string(), text, dir })
    }
    /// The embedded default scenario.
    pub fn default_scenario() -> Source {
        Source {
            name: "<default scenario: scenarios/reference.toml>".into(),
            text: DEFAULT_SCENARIO.into(),
            dir: PathBuf::from("scenarios"),
        }
    }
}

/// Largest scenario or study file read, MiB: reading stops there, so an
/// endless file (/dev/zero) or a huge one never fills memory.
pub const MAX_FILE_MIB: u64 = 16;

/// Why [`read_capped`] failed.
#[derive(Debug)]
pub enum Capped {
    /// The file cannot be opened or read, or is not UTF-8.
    Io(std::io::Error),
    /// Larger than [`MAX_FILE_MIB`] ([`ScenarioError::TooLarge`]).
    TooLarge(ScenarioError),
}

/// The text of a scenario or study file (`what`), refusing one larger than [`MAX_FILE_MIB`] MiB.
pub fn read_capped(path: &Path, what: &'static str) -> Result<String, Capped> {
    use std::io::Read;
    let limit = MAX_FILE_MIB << 20;
    let file = std::fs::File::open(path).map_err(Capped::Io)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(Capped::Io)?;
    if bytes.len() as u64 > limit {
        return Err(Capped::TooLarge(ScenarioError::TooLarge { path: path.to_owned(), what, mib: MAX_FILE_MIB }));
    }
    String::from_utf8(bytes).map_err(|_| {
        Capped::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
    })
}

/// A schema or syntax error of a scenario file, with a hint when the file
/// is a comparison study rather than a scenario.
fn parse_error(source: &Source, e: toml::de::Error) -> ScenarioError {
    let detail = e.to_string().trim_end().to_string();
    // Say what the file is before the schema detail.
    let message = if is_study_text(&source.text) {
        format!(
            "this file is a comparison study (it has [[arm]] tables), not a scenario: run it with `mesobench compare {}`\n{detail}",
            source.name
        )
    } else {
        detail
    };
    ScenarioError::Parse { path: source.name.clone(), message }
}

/// Whether a TOML text is a comparison study (`[[arm]]` tables) rather than a scenario.
pub fn is_study_text(text: &str) -> bool {
    text.lines().any(|l| l.trim() == "[[arm]]")
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
        let (raw, set_keys) = match self.with_numbers(overrides) {
            Some(done) => done,
            None => self.with_document(overrides)?,
        };
        let ctx = Ctx { source: &self.source, set_keys: &set_keys };
        Scenario::from_raw(raw, &ctx, &self.fallback)
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
        let (raw, set_keys) = match self.with_numbers(overrides) {
            Some(done) => done,
            None => self.with_document(overrides)?,
        };
        let ctx = Ctx { source: &self.source, set_keys: &set_keys };
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
        let ctx = Ctx { source: &self.source, set_keys: &set_keys };
        let is_int = is_integer_key;
        if let Some(sw) = &sc.sweep {
            for (key, values) in &sw.axes {
                let where_ = format!("sweep.parameters.\"{key}\"");
                if is_int(key) {
                    if sw.design.is_some() {
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
        ctx: &Ctx,
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

/// `text` as a TOML number would read into a real-valued key: a TOML
/// integer (read as i64, then converted) or a finite decimal float written
/// `[+-]digits[.digits][e[+-]digits]` without underscores or a leading zero.
/// None for anything else (the document route then reads or rejects it).
fn toml_number(text: &str) -> Option<f64> {
    if let Some(i) = toml_integer(text) {
        return Some(i as f64);
    }
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let int_ok = digits(int) && (int == "0" || !int.starts_with('0'));
    let frac_ok = frac.is_none_or(digits);
    let exp_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    if !(int_ok && frac_ok && exp_ok) || (frac.is_none() && exponent.is_none()) {
        return None;
    }
    text.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// `text` as a TOML integer: `[+-]digits` without underscores or a leading zero.
fn toml_integer(text: &str) -> Option<i64> {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) || (body.len() > 1 && body.starts_with('0')) {
        return None;
    }
    text.parse::<i64>().ok()
}

/// The values a distribution can reach, with a description of each: its
/// bounds, or the 1e-9 and 1 − 1e-9 quantiles of an unbounded one.
fn support(d: &Distribution) -> Vec<(f64, &'static str)> {
    const Z: f64 = 5.997807; // Φ⁻¹(1 − 1e-9)
    match *d {
        Distribution::Normal { mean, sd } => {
            vec![(mean - Z * sd, "the 1e-9 quantile of the normal"), (mean + Z * sd, "its 1 − 1e-9 quantile")]
        }
        Distribution::Lognormal { median, gsd } => vec![
            (median * gsd.powf(-Z), "the 1e-9 quantile of the log-normal"),
            (median * gsd.powf(Z), "its 1 − 1e-9 quantile"),
        ],
        Distribution::Uniform { lo, hi } | Distribution::TruncatedNormal { lo, hi, .. } => {
            vec![(lo, "the lower bound of the distribution"), (hi, "its upper bound")]
        }
    }
}

/// Apply one `key.path=value` to a parsed document; returns the key.
fn apply_override(doc: &mut toml::Table, arg: &str) -> Result<String, ScenarioError> {
    let bad = |m: &str| ScenarioError::Override { arg: arg.into(), message: m.into() };
    let (key, value) =
        arg.split_once('=').ok_or_else(|| bad("expected KEY=VALUE, for example firmware.open_time_ms=25"))?;
    let key = key.trim();
    let parts = split_key(key).ok_or_else(|| bad("the key must be a dotted path such as supply.pressure_bar (quote a segment that holds dots: sweep.parameters.\"supply.pressure_bar\")"))?;
    let value = value.trim();
    let parsed: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(value.into())),
        Err(_) => toml::Value::String(value.into()),
    };
    let mut table = doc;
    for part in &parts[..parts.len() - 1] {
        let entry = table.entry(part.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(bad(&format!("`{part}` is a value, not a table"))),
        };
    }
    table.insert(parts[parts.len() - 1].clone(), parsed);
    Ok(key.to_string())
}

/// Split a dotted TOML key into its segments; a segment in double quotes may
/// hold dots. None for an empty segment or an unclosed quote.
fn split_key(key: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    for ch in key.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                was_quoted = true;
            }
            '.' if !quoted => {
                if cur.is_empty() && !was_quoted {
                    return None;
                }
                parts.push(std::mem::take(&mut cur));
                was_quoted = false;
            }
            _ => cur.push(ch),
        }
    }
    if quoted || (cur.is_empty() && !was_quoted) {
        return None;
    }
    parts.push(cur);
    Some(parts)
}

/// Validation context: where keys were written.
struct Ctx<'a> {
    source: &'a Source,
    set_keys: &'a [(String, String)],
}

impl Ctx<'_> {
    fn location(&self, key: &str) -> String {
        let same = |k: &str| k == key || split_key(k).is_some_and(|a| split_key(key).is_some_and(|b| a == b));
        if let Some((_, arg)) = self.set_keys.iter().find(|(k, _)| same(k)) {
            return format!("--set {arg}");
        }
        match locate(&self.source.text, key) {
            Some((line, col)) => format!("{}:{}:{}", self.source.name, line, col),
            None => self.source.name.clone(),
        }
    }

    /// A component's [`Invalid`] value, located where its key was written.
    fn at(&self, e: Invalid) -> ScenarioError {
        ScenarioError::Invalid { location: self.location(&e.key), key: e.key, value: e.value, allowed: e.allowed }
    }

    fn invalid(&self, key: &str, value: impl std::fmt::Display, allowed: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid {
            location: self.location(key),
            key: key.into(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }

    /// A number in [lo, hi] (inclusive), with a default.
    fn num(&self, v: Option<f64>, default: f64, key: &str, lo: f64, hi: f64, unit: &str) -> Result<f64, ScenarioError> {
        let x = v.unwrap_or(default);
        if !x.is_finite() || x < lo || x > hi {
            return Err(self.invalid(
                key,
                fmt_num(x),
                format!("a number from {} to {} {}", fmt_num(lo), fmt_num(hi), unit),
            ));
        }
        Ok(x)
    }

    fn int(&self, v: Option<i64>, default: i64, key: &str, lo: i64, hi: i64) -> Result<i64, ScenarioError> {
        let x = v.unwrap_or(default);
        if x < lo || x > hi {
            return Err(self.invalid(key, x, format!("a whole number from {lo} to {hi}")));
        }
        Ok(x)
    }

    fn choice<'s>(
        &self,
        v: &'s Option<String>,
        default: &'s str,
        key: &str,
        allowed: &[&str],
    ) -> Result<&'s str, ScenarioError> {
        let x = v.as_deref().unwrap_or(default);
        if !allowed.contains(&x) {
            return Err(self.invalid(key, format!("\"{x}\""), format!("one of {}", allowed.join(", "))));
        }
        Ok(x)
    }
}

use crate::model::param::fmt_num;

/// Line and column (1-based) of the value of a dotted key in a TOML text
/// written as `[table]` headers and `key = value` lines.
pub fn locate(text: &str, dotted: &str) -> Option<(usize, usize)> {
    // Segments may be quoted (`sweep.parameters."supply.pressure_bar"`).
    let parts = split_key(dotted)?;
    let (last, path) = parts.split_last()?;
    let table = path.join(".");
    let quoted = format!("\"{last}\"");
    let key =
        if last.contains('.') || !path.is_empty() && dotted.ends_with('"') { quoted.as_str() } else { last.as_str() };
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix('[') {
            if let Some(end) = rest.find(']') {
                current = rest[..end].trim().to_string();
            }
            continue;
        }
        if current == table {
            if let Some(rest) = trimmed.strip_prefix(key) {
                let rest_t = rest.trim_start();
                if let Some(after) = rest_t.strip_prefix('=') {
                    let indent = line.len() - trimmed.len();
                    let eq = key.len() + (rest.len() - rest_t.len());
                    let value_off = after.len() - after.trim_start().len();
                    return Some((i + 1, indent + eq + 1 + value_off + 1));
                }
            }
        }
    }
    None
}

impl Scenario {
    fn from_raw(raw: Raw, c: &Ctx, fallback_name: &str) -> Result<Scenario, ScenarioError> {
        // Without a `name` key the file stem names the scenario; characters
        // that cannot name a folder portably (dots, spaces, …) become '_'.
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
        let seed = raw.seed.unwrap_or(1);

        let loc = |e: Invalid| c.at(e);
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
        let f = &raw.firmware;
        let kind = r.choice(&F::KIND, &f.kind).map_err(loc)?.to_string();
        let tick = 1.0 / r.real(&F::TICK, f.tick_hz).map_err(loc)?;
        let open_time = r.real(&F::OPEN_TIME, f.open_time_ms).map_err(loc)?;
        let s = &raw.session;
        let shots = r.int(&RawSession::SHOTS, s.shots).map_err(loc)? as usize;
        let rate = r.real(&RawSession::RATE, s.rate_hz).map_err(loc)?;
        let period = 1.0 / rate;
        checks::open_time_within_period(open_time, rate).map_err(loc)?;

        // The plant, component by component.
        let supply = SupplyParams::from_raw(&raw.supply, &r, t_amb).map_err(loc)?;
        let valve = ValveParams::from_raw(&raw.valve, &r).map_err(loc)?;
        checks::valve_pulls_in(&valve, &supply, p_atm).map_err(loc)?;
        let line = LineParams::from_raw(&raw.line, &r, t_amb).map_err(loc)?;
        let chamber = ChamberParams::from_raw(&raw.chamber, &r, t_amb).map_err(loc)?;
        let piston = PistonParams::from_raw(&raw.piston, &r).map_err(loc)?;
        let syringe = SyringeParams::from_raw(&raw.syringe, &r).map_err(loc)?;
        let fluid = Fluid::from_raw(&raw.fluid, &r).map_err(loc)?;
        let tubing = match &raw.tubing {
            None => None,
            Some(t) => Some(TubingParams::from_raw(t, &r, &fluid).map_err(loc)?),
        };
        let needles = model::needle::from_raw(&raw.needle, &r, &fluid).map_err(loc)?;
        let sites = TissueParams::from_raw(&raw.tissue, &r, needles.len()).map_err(loc)?;
        let proportional = supply.proportional;

        let params = Params {
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
        };
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
            solver: SolverSettings { step, tick, trace_interval, max_tail },
            firmware: FirmwareSpec::from_raw(
                &raw.firmware,
                &raw.sensors,
                &r,
                Timing { kind: &kind, open_time, period, proportional },
                &c.source.dir,
            )
            .map_err(loc)?,
            session: SessionSettings { shots, period },
        })
    }
}

fn tune_spec(t: &RawTune, c: &Ctx) -> Result<TuneSpec, ScenarioError> {
    let table = t.parameters.clone().unwrap_or_default();
    if table.is_empty() {
        return Err(c.invalid(
            "tune.parameters",
            "(none)",
            "a table of keys with [low, high] bounds, e.g. { \"firmware.kp\" = [0.0, 5.0] }",
        ));
    }
    let mut parameters = Vec::new();
    for (key, v) in &table {
        let where_ = format!("tune.parameters.\"{key}\"");
        let pair: Option<Vec<f64>> = v
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_float().or_else(|| x.as_integer().map(|i| i as f64))).collect());
        match pair {
            Some(b) if b.len() == 2 && b[0].is_finite() && b[1].is_finite() && b[0] < b[1] => {
                parameters.push((key.clone(), b[0], b[1]))
            }
            _ => return Err(c.invalid(&where_, v, "[low, high] with low < high, in the key's own unit")),
        }
    }
    let objective = match c.choice(&t.objective, "cv", "tune.objective", &["cv", "tolerance", "weighted"])? {
        "tolerance" => TuneObjective::Tolerance,
        "weighted" => TuneObjective::Weighted,
        _ => TuneObjective::Cv,
    };
    let target = match t.target_ul {
        None => None,
        Some(v) => Some(c.num(Some(v), v, "tune.target_ul", 0.001, 1e5, "µL")? * 1e-9),
    };
    if target.is_none() && objective == TuneObjective::Tolerance {
        return Err(c.invalid("tune.target_ul", "(missing)", "a target dose in µL: the tolerance objective needs one"));
    }
    let preset = c.choice(&t.acceptance, "mesotherapy", "tune.acceptance", &["mesotherapy", "iso_pen"])?;
    let mut landscape = Vec::new();
    for key in t.landscape.clone().unwrap_or_default() {
        match parameters.iter().position(|p| p.0 == key) {
            Some(i) if !landscape.contains(&i) && landscape.len() < 2 => landscape.push(i),
            _ => {
                return Err(c.invalid(
                    "tune.landscape",
                    format!("{key:?}"),
                    "one or two distinct keys of tune.parameters",
                ))
            }
        }
    }
    let optimizer =
        match c.choice(&t.optimizer, "particle_swarm", "tune.optimizer", &["particle_swarm", "nelder_mead"])? {
            "nelder_mead" => Optimizer::NelderMead,
            _ => Optimizer::ParticleSwarm,
        };
    Ok(TuneSpec {
        parameters,
        objective,
        target,
        max_bias: c.num(t.max_bias_pct, 2.0, "tune.max_bias_pct", 0.0, 100.0, "%")? / 100.0,
        weights: (
            c.num(t.weight_cv, 1.0, "tune.weight_cv", 0.0, 1e6, "")?,
            c.num(t.weight_bias, 1.0, "tune.weight_bias", 0.0, 1e6, "")?,
        ),
        limits: crate::stats::tolerance::Limits::preset(preset).expect("a listed preset"),
        replicates: c.int(t.replicates, 8, "tune.replicates", 1, 100_000)? as usize,
        optimizer,
        particles: c.int(t.particles, 12, "tune.particles", 2, 10_000)? as usize,
        iterations: c.int(t.iterations, 25, "tune.iterations", 1, 100_000)? as usize,
        landscape_grid: c.int(t.landscape_grid, 15, "tune.landscape_grid", 2, 1000)? as usize,
        landscape,
        max_tissue_pressure: match t.max_tissue_pressure_kpa {
            None => None,
            Some(v) => Some(c.num(Some(v), v, "tune.max_tissue_pressure_kpa", 0.0, 1e5, "kPa")? * 1e3),
        },
        max_leak: match t.max_leak_ul {
            None => None,
            Some(v) => Some(c.num(Some(v), v, "tune.max_leak_ul", 0.0, 1e6, "µL")? * 1e-9),
        },
        min_rate: match t.min_shots_per_s {
            None => None,
            Some(v) => Some(c.num(Some(v), v, "tune.min_shots_per_s", 0.0, 1e4, "shots/s")?),
        },
    })
}

/// Most values of one grid-sweep axis.
pub const MAX_AXIS_POINTS: usize = 1_000_000;
/// Most points of a grid sweep (the product of its axes' lengths).
pub const MAX_GRID_POINTS: u64 = 1_000_000_000;
/// Most values (samples × keys) of an `lhs` or `sobol` design, which is held in memory.
pub const MAX_DESIGN_VALUES: usize = 30_000_000;

fn sweep_spec(sw: &RawSweep, c: &Ctx, seed: u64) -> Result<SweepSpec, ScenarioError> {
    let replicates = c.int(sw.replicates, 10, "sweep.replicates", 1, 1_000_000)? as usize;
    let sampling = match c.choice(&sw.sampling, "grid", "sweep.sampling", &["grid", "lhs", "sobol"])? {
        "grid" => Sampling::Grid,
        "lhs" => Sampling::Lhs,
        _ => Sampling::Sobol,
    };
    if sampling != Sampling::Grid {
        let n =
            c.int(sw.samples, 64, "sweep.samples", 1, if sampling == Sampling::Sobol { 65_536 } else { 10_000_000 })?
                as usize;
        let mut axes = Vec::new();
        let mut ranges = Vec::new();
        for (key, value) in sw.parameters.iter().flatten() {
            let where_ = format!("sweep.parameters.\"{key}\"");
            let bad = || {
                c.invalid(&where_, value.to_string(), "{ range = [low, high] } or { logrange = [low, high] } (low < high; logrange positive) with sampling = \"lhs\" or \"sobol\"")
            };
            let t = value.as_table().filter(|t| t.len() == 1).ok_or_else(bad)?;
            let (kind, v) = t.iter().next().expect("one entry");
            let num = |v: &toml::Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
            let lh: Option<Vec<f64>> = v.as_array().and_then(|a| a.iter().map(num).collect());
            let lh = lh.filter(|a| a.len() == 2 && a[0] < a[1] && a.iter().all(|x| x.is_finite())).ok_or_else(bad)?;
            let log = match kind.as_str() {
                "range" => false,
                "logrange" if lh[0] > 0.0 => true,
                _ => return Err(bad()),
            };
            ranges.push((lh[0], lh[1], log));
            axes.push((key.clone(), lh.clone()));
        }
        // The design is held whole: bound its size, not only its rows.
        if n.saturating_mul(ranges.len()) > MAX_DESIGN_VALUES {
            let most = MAX_DESIGN_VALUES / ranges.len().max(1);
            return Err(c.invalid(
                "sweep.samples",
                n,
                format!("at most {most} with {} keys (samples × keys ≤ {MAX_DESIGN_VALUES})", ranges.len()),
            ));
        }
        let design = design(sampling, n, &ranges, seed);
        let histogram = vec![0, (n / 2) as u64, (n - 1) as u64];
        let target = match sw.target_ul {
            None => None,
            Some(v) => Some(c.num(Some(v), v, "sweep.target_ul", 0.001, 1e5, "µL")? * 1e-9),
        };
        return Ok(SweepSpec {
            replicates,
            target,
            axes,
            histogram,
            trace_point: (n / 2) as u64,
            sampling,
            design: Some(design),
        });
    }
    let target = match sw.target_ul {
        None => None,
        Some(v) => Some(c.num(Some(v), v, "sweep.target_ul", 0.001, 1e5, "µL")? * 1e-9),
    };
    let mut axes = Vec::new();
    for (key, value) in sw.parameters.iter().flatten() {
        let where_ = format!("sweep.parameters.\"{key}\"");
        let bad = |allowed: &str| c.invalid(&where_, value.to_string(), allowed.to_string());
        let num = |v: &toml::Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
        let values: Vec<f64> = match value {
            toml::Value::Array(list) => {
                let v: Option<Vec<f64>> = list.iter().map(num).collect();
                v.ok_or_else(|| {
                    bad("a list of numbers, or { linspace = [from, to, n] }, or { logspace = [from, to, n] }")
                })?
            }
            toml::Value::Table(t) if t.len() == 1 => {
                let (kind, args) = t.iter().next().expect("one entry");
                let args: Option<Vec<f64>> = args.as_array().and_then(|a| a.iter().map(num).collect());
                let args = args
                    .filter(|a| a.len() == 3 && a[2] >= 1.0 && a[2] <= MAX_AXIS_POINTS as f64 && a[2].fract() == 0.0);
                let Some(a) = args else {
                    return Err(bad(&format!("[from, to, n] with a whole n from 1 to {MAX_AXIS_POINTS}")));
                };
                let n = a[2] as usize;
                let at = |i: usize| if n == 1 { 0.0 } else { i as f64 / (n - 1) as f64 };
                match kind.as_str() {
                    "linspace" => (0..n).map(|i| a[0] + (a[1] - a[0]) * at(i)).collect(),
                    "logspace" if a[0] > 0.0 && a[1] > 0.0 => {
                        (0..n).map(|i| (a[0].ln() + (a[1].ln() - a[0].ln()) * at(i)).exp()).collect()
                    }
                    _ => {
                        return Err(bad(
                            "{ linspace = [from, to, n] } or { logspace = [from, to, n] } with positive bounds",
                        ))
                    }
                }
            }
            _ => {
                return Err(bad("a list of numbers, or { linspace = [from, to, n] }, or { logspace = [from, to, n] }"))
            }
        };
        if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
            return Err(bad("at least one finite value"));
        }
        if values.len() > MAX_AXIS_POINTS {
            return Err(bad(&format!("at most {MAX_AXIS_POINTS} values")));
        }
        axes.push((key.clone(), values));
        // Checked as the axes come, so no grid beyond the cap is ever built.
        let total = axes.iter().try_fold(1u64, |p, a| p.checked_mul(a.1.len() as u64));
        if total.is_none_or(|t| t > MAX_GRID_POINTS) {
            let sizes: Vec<String> = axes.iter().map(|a| format!("\"{}\" {}", a.0, a.1.len())).collect();
            let total = axes.iter().map(|a| a.1.len() as f64).product::<f64>();
            return Err(c.invalid(
                "sweep.parameters",
                format!("a grid of {total:.3e} points ({})", sizes.join(" × ")),
                format!("at most {MAX_GRID_POINTS} points (the product of the axes' lengths)"),
            ));
        }
    }
    let points: u64 = axes.iter().map(|a| a.1.len() as u64).product();
    let histogram = match &sw.histogram_points {
        None => {
            let mut h = vec![0, points / 2, points.saturating_sub(1)];
            h.dedup();
            h
        }
        Some(list) => {
            if let Some(bad) = list.iter().find(|p| **p < 0 || **p as u64 >= points) {
                return Err(c.invalid(
                    "sweep.histogram_points",
                    bad,
                    format!("point indices from 0 to {}", points.saturating_sub(1)),
                ));
            }
            list.iter().map(|p| *p as u64).collect()
        }
    };
    let trace_point = match sw.trace_point {
        None => points / 2,
        Some(p) if p >= 0 && (p as u64) < points => p as u64,
        Some(p) => {
            return Err(c.invalid(
                "sweep.trace_point",
                p,
                format!("a point index from 0 to {}", points.saturating_sub(1)),
            ))
        }
    };
    Ok(SweepSpec { replicates, target, axes, histogram, trace_point, sampling, design: None })
}

fn uncertain_specs(t: &toml::Table, c: &Ctx) -> Result<Vec<Uncertain>, ScenarioError> {
    parse_uncertain(t, "uncertain", &|key, value, allowed| c.invalid(key, value, allowed))
}

/// Parse a table of `"dotted.key" = { dist = …, level = … }` entries named
/// `table` in messages; `invalid(key, value, allowed)` builds the error.
pub fn parse_uncertain(
    t: &toml::Table,
    table: &str,
    invalid: &dyn Fn(&str, String, String) -> ScenarioError,
) -> Result<Vec<Uncertain>, ScenarioError> {
    let mut out = Vec::new();
    for (key, value) in t {
        let where_ = format!("{table}.\"{key}\"");
        let bad = |allowed: &str| invalid(&where_, value.to_string(), allowed.to_string());
        let Some(tab) = value.as_table() else {
            return Err(bad("an inline table such as { dist = \"normal\", mean = 40, sd = 10 }"));
        };
        let get = |k: &str| tab.get(k).and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)));
        let need = |k: &str| get(k).filter(|v| v.is_finite()).ok_or_else(|| bad(&format!("a number `{k}`")));
        let nonneg =
            |k: &str| get(k).filter(|v| v.is_finite() && *v >= 0.0).ok_or_else(|| bad(&format!("a number `{k}` ≥ 0")));
        let level = match tab.get("level").and_then(|v| v.as_str()).unwrap_or("session") {
            "session" => Level::Session,
            "shot" => Level::Shot,
            "site" => Level::Site,
            _ => return Err(bad("level = \"session\", \"shot\" or \"site\"")),
        };
        if level != Level::Session && !PER_SHOT_KEYS.iter().any(|p| key.starts_with(p)) {
            return Err(bad(&format!(
                "level = \"session\" for this key: only keys starting with {} may change between shots",
                PER_SHOT_KEYS.join(", ")
            )));
        }
        for k in tab.keys() {
            if !["dist", "mean", "sd", "median", "gsd", "lo", "hi", "level"].contains(&k.as_str()) {
                return Err(bad(&format!("no key `{k}`: allowed dist, mean, sd, median, gsd, lo, hi, level")));
            }
        }
        let dist = match tab.get("dist").and_then(|v| v.as_str()) {
            Some("normal") => Distribution::Normal { mean: need("mean")?, sd: nonneg("sd")? },
            Some("lognormal") => {
                let gsd = need("gsd")?;
                let median = need("median")?;
                if gsd <= 1.0 || median <= 0.0 {
                    return Err(bad("median > 0 and gsd > 1"));
                }
                Distribution::Lognormal { median, gsd }
            }
            Some("uniform") => {
                let (lo, hi) = (need("lo")?, need("hi")?);
                if lo > hi {
                    return Err(bad("lo ≤ hi"));
                }
                Distribution::Uniform { lo, hi }
            }
            Some("truncated_normal") => {
                let (lo, hi) = (need("lo")?, need("hi")?);
                if lo >= hi {
                    return Err(bad("lo < hi"));
                }
                Distribution::TruncatedNormal { mean: need("mean")?, sd: nonneg("sd")?, lo, hi }
            }
            _ => return Err(bad("dist = \"normal\", \"lognormal\", \"uniform\" or \"truncated_normal\"")),
        };
        out.push(Uncertain { key: key.clone(), dist, level });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scenario a set of overrides gives, as JSON, or its error text.
    fn outcome(r: Result<Scenario, ScenarioError>) -> String {
        match r {
            Ok(sc) => serde_json::to_string(&sc).expect("serialisable"),
            Err(e) => format!("error: {e}"),
        }
    }

    /// Values worth trying for a key: its bounds, its middle, a whole
    /// number, a negative zero and values just outside.
    fn probes(p: &param::Param) -> Vec<String> {
        match p.kind {
            param::Kind::Real { min, max } => {
                let mid = if max.is_finite() { (min + max) / 2.0 } else { min + 1.0 };
                vec![
                    format!("{min:?}"),
                    format!("{max:?}"),
                    format!("{mid:?}"),
                    format!("{}", mid.round() as i64),
                    "-0".into(),
                    format!("{:?}", min - 1.0),
                    format!("{:e}", max * 2.0),
                ]
            }
            param::Kind::Integer { min, max } => {
                let hi = max.min(1_000_000);
                vec![min.to_string(), hi.to_string(), ((min + hi) / 2).to_string(), (min - 1).to_string(), "2.0".into()]
            }
            _ => Vec::new(),
        }
    }

    #[test]
    fn every_numeric_key_reads_the_same_through_the_registry_as_through_toml() {
        let prep = Prepared::new(&Source::default_scenario(), DEFAULT_NAME).expect("the default scenario");
        let mut checked = 0;
        for key in registry::numeric_keys() {
            let p = registry::find(&key).expect("a declared key");
            for v in probes(p) {
                let arg = vec![format!("{key}={v}")];
                let fast = prep.with_numbers(&arg);
                let direct = prep.with_document(&arg).map(|(raw, keys)| {
                    let ctx = Ctx { source: &prep.source, set_keys: &keys };
                    Scenario::from_raw(raw, &ctx, &prep.fallback)
                });
                let via_toml = match direct {
                    Ok(r) => outcome(r),
                    Err(e) => outcome(Err(e)),
                };
                if let Some((raw, keys)) = fast {
                    let ctx = Ctx { source: &prep.source, set_keys: &keys };
                    assert_eq!(outcome(Scenario::from_raw(raw, &ctx, &prep.fallback)), via_toml, "{key}={v}");
                    checked += 1;
                }
                assert_eq!(outcome(prep.with(&arg)), via_toml, "{key}={v}");
            }
        }
        assert!(checked > 400, "only {checked} overrides took the registry route");
    }

    #[test]
    fn plain_numbers_take_the_registry_route_and_other_values_the_document() {
        let prep = Prepared::new(&Source::default_scenario(), DEFAULT_NAME).expect("the default scenario");
        let fast = |a: &str| prep.with_numbers(&[a.to_string()]).is_some();
        assert!(fast("supply.pressure_bar=3.5"));
        assert!(fast("supply.pressure_bar=4"));
        assert!(fast("sensors.chamber.bits=10"));
        assert!(fast("tubing.length_mm=120"));
        assert!(fast("seed=7"));
        for other in [
            "supply.pressure_bar=1_000",
            "supply.pressure_bar=inf",
            "supply.pressure_bar=.5",
            "supply.pressure_bar=05",
            "session.shots=2.0",
            "seed=-1",
            "firmware.kind=\"pressure_pid\"",
            "supply.presure_bar=3",
            "\"supply\".pressure_bar=3",
        ] {
            assert!(!fast(other), "{other}");
        }
    }
}
