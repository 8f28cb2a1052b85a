//! Calibration from bench data (`mesobench fit`) and checking a scenario
//! against it (`mesobench validate`); see `docs/calibration.md`.
//!
//! A fit file names a base scenario, experiments (bench traces and
//! per-shot masses, each with the conditions it was run at) and the
//! parameters to estimate with their bounds. Each experiment is simulated
//! with its conditions; its shots are aligned on the same event in bench
//! and simulation (the valve command's rising edge, a trigger, or a
//! pressure threshold) and every measured sample becomes a residual
//! scaled by its channel's noise. The parameters are estimated by
//! weighted least squares (Levenberg–Marquardt on bounded parameters,
//! after a Sobol global stage; [`lm`]), with covariance intervals checked
//! by profiles and identifiability warnings.

pub mod lm;
pub mod load;
pub mod validate;

use rayon::prelude::*;

use crate::bench::{crossings, rising_edges, BenchTrace, Channel, Signal};
use crate::scenario::Prepared;
use crate::sim::TraceSample;

pub use load::{load, load_with, Purpose};

/// Why a fit or validation cannot run; every message says where.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// The fit file, a scenario or bench data is invalid (exit 2).
    #[error("{0}")]
    Input(String),
    /// A simulation at the starting point failed.
    #[error("{0}")]
    Run(String),
}

impl From<crate::scenario::ScenarioError> for FitError {
    fn from(e: crate::scenario::ScenarioError) -> FitError {
        FitError::Input(e.to_string())
    }
}

/// Optimiser settings (`[fit]`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sobol points of the global stage.
    pub starts: usize,
    /// Levenberg–Marquardt iterations per start.
    pub max_iterations: usize,
    /// Profile each parameter at the optimum.
    pub profile: bool,
    /// Profile points per parameter (half on each side).
    pub profile_points: usize,
}

/// A parameter to estimate, in its key's human unit.
#[derive(Debug, Clone)]
pub struct FitParam {
    /// Scenario key.
    pub key: String,
    /// Human unit.
    pub unit: &'static str,
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
    /// Starting value.
    pub start: f64,
    /// Where the fit file names it.
    pub origin: String,
}

/// Which event aligns a shot in bench and simulation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Align {
    /// The valve command's rising edge.
    ValveCommand,
    /// A trigger column's rising edge (the simulated trigger press).
    Trigger,
    /// A pressure's rising crossing of a level (Pa, gauge).
    Level {
        /// Which pressure.
        signal: Signal,
        /// Level, Pa.
        level: f64,
    },
}

/// One measured channel cut into shots.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Signal.
    pub signal: Signal,
    /// Column in the bench file.
    pub column: String,
    /// Noise sd, SI.
    pub sd: f64,
    /// Whether the sd was estimated from the pre-trigger baseline.
    pub sd_estimated: bool,
    /// Per shot: (time since the shot's edge, s; value, SI — the change since the edge for a relative signal).
    pub shots: Vec<Vec<(f64, f64)>>,
}

/// One experiment: its conditions and its data, cut into shots.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// Name.
    pub name: String,
    /// Where it is written (`file:line:column (experiment "…")`).
    pub origin: String,
    /// Its conditions as `--set` overrides.
    pub set: Vec<String>,
    /// Alignment.
    pub align: Align,
    /// Shots in the data.
    pub shots: usize,
    /// Edge times in the bench trace, s.
    pub bench_edges: Vec<f64>,
    /// Measured channels.
    pub channels: Vec<Measured>,
    /// Weighed shots: (shot index, volume m³ = mass / density).
    pub volumes: Vec<(usize, f64)>,
    /// Volume sd of a weighed shot, m³.
    pub volume_sd: f64,
    /// Largest shift of a simulated edge when lining shots up, s ([`align`]).
    pub align_window: f64,
}

/// A tolerance of `validate`.
#[derive(Debug, Clone)]
pub struct Tolerance {
    /// Key as written.
    pub key: String,
    /// What it limits.
    pub kind: ToleranceKind,
    /// Limit, in the key's unit.
    pub limit: f64,
    /// Where it is written.
    pub origin: String,
}

/// What a tolerance limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ToleranceKind {
    /// RMS error of a signal (display unit).
    Rms(Signal),
    /// Largest per-shot peak error of a signal (display unit).
    Peak(Signal),
    /// Largest per-shot dose error, %.
    DosePct,
    /// Largest per-shot valve-delay error, ms.
    ValveDelayMs,
}

impl ToleranceKind {
    /// Key suffix of a signal's display unit.
    fn unit_suffix(signal: Signal) -> &'static str {
        match signal.display_unit().0 {
            "kPa" => "kpa",
            "A" => "a",
            "mm" => "mm",
            "µL" => "ul",
            "µL/s" => "ul_per_s",
            _ => "",
        }
    }

    /// The tolerance a key names (`p_syringe_rms_kpa`, `dose_error_pct`, …).
    pub fn parse(key: &str) -> Option<ToleranceKind> {
        match key {
            "dose_error_pct" => return Some(ToleranceKind::DosePct),
            "valve_delay_ms" => return Some(ToleranceKind::ValveDelayMs),
            _ => {}
        }
        Signal::ALL.into_iter().filter(|s| s.is_measured()).find_map(|s| {
            let unit = ToleranceKind::unit_suffix(s);
            if key == format!("{}_rms_{unit}", s.name()) {
                Some(ToleranceKind::Rms(s))
            } else if key == format!("{}_peak_{unit}", s.name()) {
                Some(ToleranceKind::Peak(s))
            } else {
                None
            }
        })
    }
}

/// A checked fit or validation file with its data.
#[derive(Debug)]
pub struct FitFile {
    /// The file as named.
    pub path: String,
    /// The base scenario's file.
    pub scenario_path: std::path::PathBuf,
    /// The base scenario.
    pub prepared: Prepared,
    /// Experiments.
    pub experiments: Vec<Experiment>,
    /// Parameters to estimate (empty for `validate`).
    pub parameters: Vec<FitParam>,
    /// Optimiser settings.
    pub settings: Settings,
    /// Tolerances (`validate`).
    pub tolerance: Vec<Tolerance>,
}

/// Samples before the first edge needed to estimate a channel's noise.
const MIN_BASELINE: usize = 20;

fn sample_sd(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

/// Linear interpolation of `v(t)` at `x`, holding the end values.
fn interp(t: &[f64], v: &[f64], x: f64) -> f64 {
    lerp_at(t, v, t.partition_point(|&ti| ti <= x), x)
}

/// `v(t)` at `x`, where `k` is the first sample after `x`.
fn lerp_at(t: &[f64], v: &[f64], k: usize, x: f64) -> f64 {
    if k == 0 {
        return v[0];
    }
    if k >= t.len() {
        return v[t.len() - 1];
    }
    let f = (x - t[k - 1]) / (t[k] - t[k - 1]);
    v[k - 1] + f * (v[k] - v[k - 1])
}

impl Experiment {
    /// Cut the data into shots and fix every channel's noise.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        origin: String,
        set: Vec<String>,
        trace: Option<BenchTrace>,
        masses: Vec<(usize, f64)>,
        mass_sd: f64,
        density: f64,
        align: Align,
        pre: f64,
        align_window: Option<f64>,
    ) -> Result<Experiment, FitError> {
        let volumes: Vec<(usize, f64)> = masses.iter().map(|(k, m)| (*k, m / density)).collect();
        let mut ex = Experiment {
            name,
            origin,
            set,
            align,
            shots: volumes.iter().map(|v| v.0 + 1).max().unwrap_or(0),
            bench_edges: Vec::new(),
            channels: Vec::new(),
            volumes,
            volume_sd: mass_sd / density,
            align_window: align_window.unwrap_or(0.0),
        };
        let Some(tr) = trace else { return Ok(ex) };
        let (edges, what) = shot_edges(&tr, align);
        if edges.is_empty() {
            return Err(FitError::Input(format!(
                "{}: {}: no shot found: the trace never shows {what}; check the channel map or set align",
                ex.origin, tr.file
            )));
        }
        if let Some(&(k, _)) = ex.volumes.iter().find(|(k, _)| *k >= edges.len()) {
            return Err(FitError::Input(format!(
                "{}: the masses weigh shot {} but the trace {} holds {} shot(s)",
                ex.origin,
                k + 1,
                tr.file,
                edges.len()
            )));
        }
        ex.shots = edges.len();
        let t = &tr.time;
        for ch in tr.channels.iter().filter(|c| c.signal.is_measured()) {
            let (sd, sd_estimated) = channel_sd(&ex.origin, &tr, ch, edges[0] - pre)?;
            let shots = cut_shots(t, ch, &edges, pre);
            ex.channels.push(Measured { signal: ch.signal, column: ch.column.clone(), sd, sd_estimated, shots });
        }
        ex.bench_edges = edges;
        // By default one bench sample interval (the median).
        if align_window.is_none() {
            let mut d: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
            d.sort_by(f64::total_cmp);
            ex.align_window = d[d.len() / 2];
        }
        Ok(ex)
    }
}

/// The bench shots' edges in the trace `tr` by `align`, and what an edge
/// is (for the error when there is none).
fn shot_edges(tr: &BenchTrace, align: Align) -> (Vec<f64>, String) {
    match align {
        Align::ValveCommand => {
            let c = tr.channel(Signal::ValveCommand).expect("checked when loading");
            (rising_edges(&tr.time, &c.values), format!("a rising edge of valve_command (column {:?})", c.column))
        }
        Align::Trigger => {
            let c = tr.channel(Signal::Trigger).expect("checked when loading");
            (rising_edges(&tr.time, &c.values), format!("a rising edge of the trigger (column {:?})", c.column))
        }
        Align::Level { signal, level } => {
            let c = tr.channel(signal).expect("checked when loading");
            (
                crossings(&tr.time, &c.values, level, 0.5 * level),
                format!("{} (column {:?}) rising through {} kPa", signal.name(), c.column, level / 1e3),
            )
        }
    }
}

/// A measured channel's noise sd: given in the channel map, or estimated
/// from its baseline before `before` (the first shot's window); whether it
/// was estimated.
fn channel_sd(origin: &str, tr: &BenchTrace, ch: &Channel, before: f64) -> Result<(f64, bool), FitError> {
    let t = &tr.time;
    let baseline: Vec<f64> = t.iter().zip(&ch.values).take_while(|(ti, _)| **ti < before).map(|(_, v)| *v).collect();
    let sd = match ch.sd {
        Some(sd) => (sd, false),
        None if baseline.len() < MIN_BASELINE => {
            return Err(FitError::Input(format!(
                "{}: column {:?} of {}: {} sample(s) before the first shot, too few to estimate its noise \
                         (at least {MIN_BASELINE}): give sd in the channel map or log a longer baseline",
                origin,
                ch.column,
                tr.file,
                baseline.len()
            )))
        }
        None => {
            let sd = sample_sd(&baseline);
            if sd.is_nan() || sd <= 0.0 {
                return Err(FitError::Input(format!(
                    "{}: column {:?} of {}: its pre-trigger baseline is flat (sd 0), so its noise cannot \
                             be estimated: give sd in the channel map (SI units)",
                    origin, ch.column, tr.file
                )));
            }
            (sd, true)
        }
    };
    Ok(sd)
}

/// A channel's samples cut into shots: from `pre` before each edge to `pre`
/// before the next, in time since the edge (relative signals less their
/// value at the edge).
fn cut_shots(t: &[f64], ch: &Channel, edges: &[f64], pre: f64) -> Vec<Vec<(f64, f64)>> {
    let mut shots = Vec::with_capacity(edges.len());
    for (k, &e) in edges.iter().enumerate() {
        let end = edges.get(k + 1).map_or(f64::INFINITY, |n| n - pre);
        let zero = if ch.signal.relative() { interp(t, &ch.values, e) } else { 0.0 };
        let pts: Vec<(f64, f64)> = t
            .iter()
            .zip(&ch.values)
            .filter(|(ti, _)| **ti >= e - pre && **ti < end)
            .map(|(ti, v)| (ti - e, v - zero))
            .collect();
        shots.push(pts);
    }
    shots
}

/// A simulated experiment: its trace, shot doses and shot edges.
#[derive(Debug, Clone)]
pub struct Simulated {
    /// Every trace sample.
    pub trace: Vec<TraceSample>,
    /// Dose per shot, m³.
    pub doses: Vec<f64>,
    /// Edge of each shot, s.
    pub edges: Vec<f64>,
    /// The session's warnings.
    pub warnings: Vec<String>,
}

/// The overrides of an experiment at parameter values `x`.
pub fn overrides(ex: &Experiment, params: &[FitParam], x: &[f64]) -> Vec<String> {
    let mut o = ex.set.clone();
    o.push(format!("session.shots={}", ex.shots.max(1)));
    for (p, v) in params.iter().zip(x) {
        o.push(format!("{}={v:?}", p.key));
    }
    o
}

/// Simulate an experiment at parameter values `x` (human units).
pub fn simulate(file: &FitFile, ex: &Experiment, x: &[f64]) -> Result<Simulated, String> {
    let sc = file.prepared.with(&overrides(ex, &file.parameters, x)).map_err(|e| e.to_string())?;
    let mut trace: Vec<TraceSample> = Vec::new();
    let run = crate::simulate_traced(&sc, &mut trace).map_err(|e| e.to_string())?;
    if let Some(why) = &run.result.stopped {
        return Err(format!("the session stopped early: {why}"));
    }
    let shots = &run.result.shots;
    let times: Vec<f64> = trace.iter().map(|s| s.t).collect();
    let mut edges = Vec::with_capacity(shots.len());
    for (k, shot) in shots.iter().enumerate() {
        let end = shots.get(k + 1).map_or(f64::INFINITY, |n| n.t_start);
        let a = times.partition_point(|&t| t < shot.t_start).saturating_sub(1);
        let b = times.partition_point(|&t| t < end);
        let (t, s) = (&times[a..b], &trace[a..b]);
        let found = match ex.align {
            Align::Trigger => Some(shot.t_start),
            Align::ValveCommand => {
                let v: Vec<f64> = s.iter().map(|x| x.command.min(1.0)).collect();
                crossings(t, &v, 0.5, 0.3).first().copied()
            }
            Align::Level { signal, level } => {
                let v: Vec<f64> = s.iter().map(|x| signal.of(x)).collect();
                crossings(t, &v, level, 0.5 * level).first().copied()
            }
        };
        edges.push(found.ok_or_else(|| {
            format!(
                "simulated shot {} never reaches the alignment event (valve never opened or pressure never rose)",
                k + 1
            )
        })?);
    }
    Ok(Simulated { doses: shots.iter().map(|s| s.dose).collect(), trace, edges, warnings: run.result.warnings })
}

/// A simulation lined up with an experiment's data: the simulated value
/// of every channel at every bench sample, per shot, after locating each
/// shot's edge to within a bench sample.
///
/// A logged edge is known only to the bench's sample interval (and the
/// simulated one to the trace interval), so each shot's simulated edge is
/// shifted by the offset, within ± `align_window`, that best matches that
/// shot's samples (golden-section search on its weighted sum of squares;
/// the offset is a nuisance parameter profiled out, and the fit's
/// Jacobian, taken by differences of the aligned residuals, includes it).
#[derive(Debug, Clone)]
pub struct Aligned {
    /// Per channel, per shot: the simulated value at each sample (SI; the
    /// change since the edge for a relative signal).
    pub values: Vec<Vec<Vec<f64>>>,
    /// Per shot: the offset applied to the simulated edge, s.
    pub offsets: Vec<f64>,
}

fn shot_values(ex: &Experiment, t: &[f64], cols: &[Vec<f64>], k: usize, e: f64) -> Vec<Vec<f64>> {
    ex.channels
        .iter()
        .zip(cols)
        .map(|(ch, v)| {
            let zero = if ch.signal.relative() { interp(t, v, e) } else { 0.0 };
            // The samples are in time order: walk the trace once.
            let mut i = t.partition_point(|&ti| ti <= e + ch.shots[k].first().map_or(0.0, |p| p.0));
            ch.shots[k]
                .iter()
                .map(|(dt, _)| {
                    let x = e + dt;
                    while i < t.len() && t[i] <= x {
                        i += 1;
                    }
                    lerp_at(t, v, i, x) - zero
                })
                .collect()
        })
        .collect()
}

fn shot_cost(ex: &Experiment, k: usize, vals: &[Vec<f64>]) -> f64 {
    ex.channels
        .iter()
        .zip(vals)
        .map(|(ch, v)| ch.shots[k].iter().zip(v).map(|((_, m), s)| ((s - m) / ch.sd).powi(2)).sum::<f64>())
        .sum()
}

/// Line a simulation up with an experiment's data.
pub fn align(ex: &Experiment, sim: &Simulated) -> Aligned {
    let t: Vec<f64> = sim.trace.iter().map(|s| s.t).collect();
    let cols: Vec<Vec<f64>> =
        ex.channels.iter().map(|ch| sim.trace.iter().map(|s| ch.signal.of(s)).collect()).collect();
    let mut per_shot = Vec::with_capacity(ex.shots);
    let mut offsets = Vec::with_capacity(ex.shots);
    for k in 0..ex.channels.first().map_or(0, |c| c.shots.len()) {
        let e = sim.edges.get(k).copied().unwrap_or(f64::NAN);
        let w = ex.align_window;
        let mut best = 0.0;
        if w > 0.0 && e.is_finite() {
            // Golden-section search over [-w, w]: the interval shrinks to
            // 1e-4 of the window in 20 steps.
            let g = 0.5 * (5f64.sqrt() - 1.0);
            let (mut a, mut b) = (-w, w);
            let f = |d: f64| shot_cost(ex, k, &shot_values(ex, &t, &cols, k, e + d));
            let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
            let (mut fc, mut fd) = (f(c), f(d));
            for _ in 0..20 {
                if fc <= fd {
                    b = d;
                    d = c;
                    fd = fc;
                    c = b - g * (b - a);
                    fc = f(c);
                } else {
                    a = c;
                    c = d;
                    fc = fd;
                    d = a + g * (b - a);
                    fd = f(d);
                }
            }
            best = 0.5 * (a + b);
        }
        per_shot.push(shot_values(ex, &t, &cols, k, e + best));
        offsets.push(best);
    }
    // Reorder to channel, shot.
    let values = (0..ex.channels.len()).map(|c| per_shot.iter().map(|s| s[c].clone()).collect()).collect();
    Aligned { values, offsets }
}

/// Weighted residuals of one experiment against its simulation, in the
/// order channel, shot, sample, then weighed shots.
pub fn residuals(ex: &Experiment, sim: &Simulated, out: &mut Vec<f64>) {
    let al = align(ex, sim);
    for (ch, vals) in ex.channels.iter().zip(&al.values) {
        for (pts, v) in ch.shots.iter().zip(vals) {
            out.extend(pts.iter().zip(v).map(|((_, m), s)| (s - m) / ch.sd));
        }
    }
    for (k, vol) in &ex.volumes {
        out.push((sim.doses.get(*k).copied().unwrap_or(f64::NAN) - vol) / ex.volume_sd);
    }
}

/// The weighted residuals of every experiment at `x`; `Err` when a
/// simulation fails there.
pub fn evaluate(file: &FitFile, x: &[f64]) -> Result<Vec<f64>, String> {
    let mut r = Vec::new();
    for ex in &file.experiments {
        let sim = simulate(file, ex, x).map_err(|e| format!("experiment {:?}: {e}", ex.name))?;
        if sim.edges.len() < ex.shots {
            return Err(format!(
                "experiment {:?}: {} simulated shot(s), the data hold {}",
                ex.name,
                sim.edges.len(),
                ex.shots
            ));
        }
        residuals(ex, &sim, &mut r);
    }
    if r.iter().any(|v| !v.is_finite()) {
        return Err("a residual is not finite".into());
    }
    Ok(r)
}

/// Evaluate many points in parallel, results in point order.
pub fn evaluate_many(file: &FitFile, xs: &[Vec<f64>]) -> Vec<Result<Vec<f64>, String>> {
    xs.par_iter().map(|x| evaluate(file, x)).collect()
}

/// Sum of squares.
pub fn cost(r: &[f64]) -> f64 {
    r.iter().map(|v| v * v).sum()
}

/// Advice on the kind of experiment that pins a parameter down.
pub fn advice(key: &str) -> &'static str {
    let table = key.split('.').next().unwrap_or("");
    match table {
        "needle" | "tubing" | "fluid" => {
            "shots into air (no tissue) at two or three supply pressures with a pressure transducer between \
             syringe and needle, or a flow rig"
        }
        "syringe" => {
            "a slow shot (low supply pressure) with plunger_position logged, or a break-loose and glide force \
             test on a texture analyser"
        }
        "tissue" => "the same shots into tissue and into air, with p_syringe logged (separates tissue from needle)",
        "valve" => "coil_current and p_chamber logged at ≥ 10 kHz around the valve edges",
        "supply" | "line" | "chamber" | "ambient" => "p_chamber (and p_supply) logged at two or more supply pressures",
        "piston" => "plunger_position logged at two or more supply pressures",
        _ => "an experiment whose logged signals depend on it (vary the condition it acts on)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_keys_name_signal_metric_and_unit() {
        assert_eq!(ToleranceKind::parse("p_syringe_rms_kpa"), Some(ToleranceKind::Rms(Signal::PSyringe)));
        assert_eq!(ToleranceKind::parse("flow_peak_ul_per_s"), Some(ToleranceKind::Peak(Signal::Flow)));
        assert_eq!(ToleranceKind::parse("dose_error_pct"), Some(ToleranceKind::DosePct));
        assert_eq!(ToleranceKind::parse("p_syringe_rms_bar"), None);
        assert_eq!(ToleranceKind::parse("time_rms_ms"), None);
    }

    #[test]
    fn interpolation_holds_the_ends() {
        let t = [0.0, 1.0, 2.0];
        let v = [0.0, 10.0, 20.0];
        assert_eq!(interp(&t, &v, -1.0), 0.0);
        assert_eq!(interp(&t, &v, 0.5), 5.0);
        assert_eq!(interp(&t, &v, 5.0), 20.0);
    }
}
