//! The study tables of a scenario file (`[sweep]`, `[uncertain]`,
//! `[sensitivity]`, `[tune]`): as written, and validated into specs.

use serde::Deserialize;

use super::{Checker, ScenarioError};

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
    /// For `lhs` and `sobol`: what the design is drawn from; the axes then
    /// hold each key's [low, high] range.
    #[serde(skip)]
    pub space_filling: Option<SpaceFilling>,
}

/// The request for a space-filling design: the study layer draws its points
/// (`study::sweep::design_rows`) once, when they are first needed.
#[derive(Debug, Clone, PartialEq)]
pub struct SpaceFilling {
    /// Number of points.
    pub samples: usize,
    /// Each key's [low, high] range and whether it is spaced logarithmically.
    pub ranges: Vec<(f64, f64, bool)>,
    /// Seed of the strata shuffles (`lhs`) or the scrambling (`sobol`).
    pub seed: u64,
    /// The points, one row of key values each, once drawn.
    pub rows: std::sync::OnceLock<Vec<Vec<f64>>>,
}

impl SweepSpec {
    /// Number of points.
    pub fn points(&self) -> u64 {
        match &self.space_filling {
            Some(d) => d.samples as u64,
            None => self.axes.iter().map(|a| a.1.len() as u64).product(),
        }
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

/// The values a distribution can reach, with a description of each: its
/// bounds, or the 1e-9 and 1 − 1e-9 quantiles of an unbounded one.
pub(super) fn support(d: &Distribution) -> Vec<(f64, &'static str)> {
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

pub(super) fn tune_spec(t: &RawTune, c: &Checker) -> Result<TuneSpec, ScenarioError> {
    let parameters = tune_bounds(t, c)?;
    let objective = match c.choice(&t.objective, "cv", "tune.objective", &["cv", "tolerance", "weighted"])? {
        "tolerance" => TuneObjective::Tolerance,
        "weighted" => TuneObjective::Weighted,
        _ => TuneObjective::Cv,
    };
    let target = optional(c, t.target_ul, "tune.target_ul", (0.001, 1e5), "µL", 1e-9)?;
    if target.is_none() && objective == TuneObjective::Tolerance {
        return Err(c.invalid("tune.target_ul", "(missing)", "a target dose in µL: the tolerance objective needs one"));
    }
    let preset = c.choice(&t.acceptance, "mesotherapy", "tune.acceptance", &["mesotherapy", "iso_pen"])?;
    let landscape = tune_landscape(t, c, &parameters)?;
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
        max_tissue_pressure: optional(
            c,
            t.max_tissue_pressure_kpa,
            "tune.max_tissue_pressure_kpa",
            (0.0, 1e5),
            "kPa",
            1e3,
        )?,
        max_leak: optional(c, t.max_leak_ul, "tune.max_leak_ul", (0.0, 1e6), "µL", 1e-9)?,
        min_rate: optional(c, t.min_shots_per_s, "tune.min_shots_per_s", (0.0, 1e4), "shots/s", 1.0)?,
    })
}

/// An optional study value in [`lo`, `hi`] (human units), times `scale` to SI.
fn optional(
    c: &Checker,
    v: Option<f64>,
    key: &str,
    range: (f64, f64),
    unit: &str,
    scale: f64,
) -> Result<Option<f64>, ScenarioError> {
    match v {
        None => Ok(None),
        Some(v) => Ok(Some(c.num(Some(v), v, key, range.0, range.1, unit)? * scale)),
    }
}

/// `tune.landscape`: one or two keys of `tune.parameters`, as indices.
fn tune_landscape(t: &RawTune, c: &Checker, parameters: &[(String, f64, f64)]) -> Result<Vec<usize>, ScenarioError> {
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
    Ok(landscape)
}

/// `tune.parameters`: each key with its `[low, high]` bounds.
fn tune_bounds(t: &RawTune, c: &Checker) -> Result<Vec<(String, f64, f64)>, ScenarioError> {
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
    Ok(parameters)
}

/// Most values of one grid-sweep axis.
pub const MAX_AXIS_POINTS: usize = 1_000_000;
/// Most points of a grid sweep (the product of its axes' lengths).
pub const MAX_GRID_POINTS: u64 = 1_000_000_000;
/// Most values (samples × keys) of an `lhs` or `sobol` design, which is held in memory.
pub const MAX_DESIGN_VALUES: usize = 30_000_000;

pub(super) fn sweep_spec(sw: &RawSweep, c: &Checker, seed: u64) -> Result<SweepSpec, ScenarioError> {
    let replicates = c.int(sw.replicates, 10, "sweep.replicates", 1, 1_000_000)? as usize;
    let sampling = match c.choice(&sw.sampling, "grid", "sweep.sampling", &["grid", "lhs", "sobol"])? {
        "grid" => Sampling::Grid,
        "lhs" => Sampling::Lhs,
        _ => Sampling::Sobol,
    };
    if sampling != Sampling::Grid {
        return design_sweep(sw, c, seed, replicates, sampling);
    }
    grid_sweep(sw, c, replicates)
}

/// A Latin-hypercube or Sobol sweep over `{ range = … }` / `{ logrange = … }` keys.
fn design_sweep(
    sw: &RawSweep,
    c: &Checker,
    seed: u64,
    replicates: usize,
    sampling: Sampling,
) -> Result<SweepSpec, ScenarioError> {
    let n = c.int(sw.samples, 64, "sweep.samples", 1, if sampling == Sampling::Sobol { 65_536 } else { 10_000_000 })?
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
    let space_filling = SpaceFilling { samples: n, ranges, seed, rows: std::sync::OnceLock::new() };
    let histogram = vec![0, (n / 2) as u64, (n - 1) as u64];
    let target = optional(c, sw.target_ul, "sweep.target_ul", (0.001, 1e5), "µL", 1e-9)?;
    Ok(SweepSpec {
        replicates,
        target,
        axes,
        histogram,
        trace_point: (n / 2) as u64,
        sampling,
        space_filling: Some(space_filling),
    })
}

/// A grid sweep: every combination of the axes' values.
fn grid_sweep(sw: &RawSweep, c: &Checker, replicates: usize) -> Result<SweepSpec, ScenarioError> {
    let target = optional(c, sw.target_ul, "sweep.target_ul", (0.001, 1e5), "µL", 1e-9)?;
    let mut axes = Vec::new();
    for (key, value) in sw.parameters.iter().flatten() {
        axes.push((key.clone(), grid_axis(key, value, c)?));
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
    let (histogram, trace_point) = shown_points(sw, c, points)?;
    Ok(SweepSpec { replicates, target, axes, histogram, trace_point, sampling: Sampling::Grid, space_filling: None })
}

/// The values of one grid axis: a list, `{ linspace = … }` or `{ logspace = … }`.
fn grid_axis(key: &str, value: &toml::Value, c: &Checker) -> Result<Vec<f64>, ScenarioError> {
    let where_ = format!("sweep.parameters.\"{key}\"");
    let bad = |allowed: &str| c.invalid(&where_, value.to_string(), allowed.to_string());
    let num = |v: &toml::Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
    let values: Vec<f64> = match value {
        toml::Value::Array(list) => {
            let v: Option<Vec<f64>> = list.iter().map(num).collect();
            v.ok_or_else(|| bad("a list of numbers, or { linspace = [from, to, n] }, or { logspace = [from, to, n] }"))?
        }
        toml::Value::Table(t) if t.len() == 1 => {
            let (kind, args) = t.iter().next().expect("one entry");
            let args: Option<Vec<f64>> = args.as_array().and_then(|a| a.iter().map(num).collect());
            let args =
                args.filter(|a| a.len() == 3 && a[2] >= 1.0 && a[2] <= MAX_AXIS_POINTS as f64 && a[2].fract() == 0.0);
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
        _ => return Err(bad("a list of numbers, or { linspace = [from, to, n] }, or { logspace = [from, to, n] }")),
    };
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return Err(bad("at least one finite value"));
    }
    if values.len() > MAX_AXIS_POINTS {
        return Err(bad(&format!("at most {MAX_AXIS_POINTS} values")));
    }
    Ok(values)
}

/// The grid points whose histograms and trace are drawn.
fn shown_points(sw: &RawSweep, c: &Checker, points: u64) -> Result<(Vec<u64>, u64), ScenarioError> {
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
    Ok((histogram, trace_point))
}

pub(super) fn uncertain_specs(t: &toml::Table, c: &Checker) -> Result<Vec<Uncertain>, ScenarioError> {
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
