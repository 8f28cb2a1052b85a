//! Auto-tuning: the firmware settings that give the target dose most
//! consistently within the safety limits (`mesobench tune`).
//!
//! The scenario's `[tune]` table names keys with bounds, an objective over
//! Monte Carlo replicates and constraints. Candidates are searched in the
//! unit cube (each key scaled to [0, 1]) by argmin's particle swarm or
//! Nelder–Mead. Every candidate is simulated with **common random
//! numbers**: replicate r of every candidate draws its session-, shot- and
//! site-level variability from the same streams (those of sweep point 0),
//! so two candidates differ only by their settings and comparisons are not
//! noise. A swarm's candidates are evaluated in parallel and recorded in
//! their order; the same seed gives the same history and the same result
//! whatever the thread count.
//!
//! Infeasible candidates (a constraint or the bias limit violated, or a
//! failed simulation) cost 100 + 100·(normalised violation) on top of the
//! objective, so any feasible candidate with an objective under 100 beats
//! every infeasible one while the optimiser still sees which way is better.

use std::sync::Mutex;

use argmin::core::{CostFunction, Error as ArgminError, Executor, SyncAlias};
use argmin::solver::neldermead::NelderMead;
use argmin::solver::particleswarm::ParticleSwarm;
use rand_xoshiro::rand_core::SeedableRng;
use rayon::prelude::*;

use super::sweep::{replicate_sets, simulate_replicate};
use crate::scenario::{Prepared, Scenario, TuneObjective, TuneSpec};
use crate::stats::tolerance::k_two_sided;

/// Cost of a candidate whose simulation failed.
pub const FAILED: f64 = 1e6;

/// Errors of a tuning run.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// The scenario has no `[tune]` table.
    #[error("{0}: the scenario has no [tune] table")]
    NoTune(String),
    /// A tuned key or its start value is invalid.
    #[error("tune.parameters.\"{key}\": {message}")]
    Parameter {
        /// Key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The optimiser failed.
    #[error("optimiser: {0}")]
    Optimiser(String),
}

/// What one candidate achieved (volumes µL, pressures kPa).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Metrics {
    /// Doses simulated.
    pub shots: usize,
    /// Mean dose, µL.
    pub mean_ul: f64,
    /// SD, µL.
    pub sd_ul: f64,
    /// CV, %.
    pub cv_pct: f64,
    /// Bias against the target, % (NaN without a target).
    pub bias_pct: f64,
    /// Highest tissue gauge pressure, kPa.
    pub peak_tissue_kpa: f64,
    /// Mean reflux per shot, µL.
    pub leak_ul: f64,
    /// Lowest achieved shot rate over the replicates, shots/s.
    pub shots_per_s: f64,
}

/// One evaluated candidate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Evaluation {
    /// Evaluation number (0: the scenario's own settings).
    pub index: usize,
    /// Key values, in the keys' units.
    pub values: Vec<f64>,
    /// Objective before penalties.
    pub objective: f64,
    /// Objective with penalties (what the optimiser minimises).
    pub cost: f64,
    /// All constraints and the bias limit met.
    pub feasible: bool,
    /// Metrics (None when the simulation failed).
    pub metrics: Option<Metrics>,
    /// Constraint margins by name (positive: met), in each constraint's unit.
    pub margins: Vec<(String, f64)>,
    /// Why the simulation failed.
    pub error: Option<String>,
}

/// The candidate problem: scenario, tuned keys, replicates.
pub struct Problem<'a> {
    prep: &'a Prepared,
    sc: &'a Scenario,
    spec: &'a TuneSpec,
    base: &'a [String],
}

impl<'a> Problem<'a> {
    /// The problem of `sc` (with `[tune]`), whose variants come from `prep` with `base` overrides.
    pub fn new(prep: &'a Prepared, sc: &'a Scenario, base: &'a [String]) -> Result<Problem<'a>, TuneError> {
        let spec = sc.tune.as_ref().ok_or_else(|| TuneError::NoTune(prep.source().name.clone()))?;
        Ok(Problem { prep, sc, spec, base })
    }

    /// Key values at the unit-cube point `u` (clamped into the bounds).
    pub fn values(&self, u: &[f64]) -> Vec<f64> {
        self.spec.parameters.iter().zip(u).map(|((_, lo, hi), x)| lo + x.clamp(0.0, 1.0) * (hi - lo)).collect()
    }

    /// The unit-cube point of key values `v`.
    pub fn unit(&self, v: &[f64]) -> Vec<f64> {
        self.spec.parameters.iter().zip(v).map(|((_, lo, hi), x)| (x - lo) / (hi - lo)).collect()
    }

    /// The scenario's own value of every tuned key (the start), or the
    /// middle of its range when the file does not set it.
    pub fn start(&self) -> Result<Vec<f64>, TuneError> {
        let mut v = Vec::new();
        for (key, lo, hi) in &self.spec.parameters {
            let set = self.base.iter().rev().find_map(|s| {
                let (k, val) = s.split_once('=')?;
                (k.trim() == key).then(|| val.trim().parse::<f64>().ok()).flatten()
            });
            let x = set.or_else(|| self.prep.number_at(key)).unwrap_or(0.5 * (lo + hi));
            if !(*lo..=*hi).contains(&x) {
                return Err(TuneError::Parameter {
                    key: key.clone(),
                    message: format!("the scenario's value {x} is outside the bounds [{lo}, {hi}]"),
                });
            }
            v.push(x);
        }
        Ok(v)
    }

    /// Check every key at both ends of its range (a clear error before any search).
    pub fn check_keys(&self) -> Result<(), TuneError> {
        let start = self.start()?;
        for (i, (key, lo, hi)) in self.spec.parameters.iter().enumerate() {
            for x in [*lo, *hi] {
                let mut v = start.clone();
                v[i] = x;
                self.prep
                    .with(&self.sets(&v))
                    .map_err(|e| TuneError::Parameter { key: key.clone(), message: e.to_string() })?;
            }
        }
        Ok(())
    }

    fn sets(&self, values: &[f64]) -> Vec<String> {
        let mut sets = self.base.to_vec();
        for ((key, _, _), v) in self.spec.parameters.iter().zip(values) {
            sets.push(format!("{key}={v:?}"));
        }
        sets
    }

    /// Simulate the replicates at key values `values`; the doses (m³) in
    /// replicate then shot order, and the metrics.
    pub fn simulate(&self, values: &[f64]) -> Result<(Vec<f64>, Metrics), String> {
        let sets = self.sets(values);
        let runs: Vec<Result<crate::Run, String>> = (0..self.spec.replicates as u64)
            .into_par_iter()
            .map(|r| {
                // Common random numbers: every candidate uses point 0's streams.
                let rs = replicate_sets(self.sc, sets.clone(), 0, r);
                let variant = self.prep.with(&rs).map_err(|e| e.to_string())?;
                simulate_replicate(self.prep, &self.sc.uncertain, &rs, &variant, self.sc.seed, 0, r, false)
                    .map_err(|e| e.to_string())
            })
            .collect();
        let mut doses = Vec::new();
        let (mut peak, mut leak, mut rate) = (0.0f64, 0.0, f64::INFINITY);
        for run in runs {
            let run = run?;
            let shots = &run.result.shots;
            if let Some(stop) = &run.result.stopped {
                return Err(format!("the session stopped: {stop}"));
            }
            for s in shots {
                doses.push(s.dose);
                peak = peak.max(s.peak_tissue_pressure);
                leak += s.leak;
            }
            if shots.len() > 1 {
                let span = shots[shots.len() - 1].t_start - shots[0].t_start;
                rate = rate.min((shots.len() - 1) as f64 / span);
            }
        }
        let d = crate::stats::describe(&doses);
        let m = Metrics {
            shots: d.n,
            mean_ul: d.mean * 1e9,
            sd_ul: d.sd * 1e9,
            cv_pct: 100.0 * d.cv,
            bias_pct: self.spec.target.map(|t| 100.0 * (d.mean / t - 1.0)).unwrap_or(f64::NAN),
            peak_tissue_kpa: peak / 1e3,
            leak_ul: leak * 1e9 / d.n.max(1) as f64,
            shots_per_s: if rate.is_finite() { rate } else { 1.0 / self.sc.session.period },
        };
        Ok((doses, m))
    }

    /// Objective without penalties.
    pub fn objective(&self, m: &Metrics) -> f64 {
        match self.spec.objective {
            TuneObjective::Cv => m.cv_pct,
            TuneObjective::Weighted => {
                self.spec.weights.0 * m.cv_pct
                    + if m.bias_pct.is_finite() { self.spec.weights.1 * m.bias_pct.abs() } else { 0.0 }
            }
            TuneObjective::Tolerance => {
                let v = self.spec.target.expect("checked at load") * 1e9;
                let l = &self.spec.limits;
                let k = k_two_sided(m.shots, l.coverage, l.confidence);
                ((m.mean_ul - v).abs() + k * m.sd_ul) / l.alpha.max(l.beta * v)
            }
        }
    }

    /// Constraint margins (positive: met), by name, in the constraint's unit.
    pub fn margins(&self, m: &Metrics) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        if self.spec.target.is_some() && self.spec.objective == TuneObjective::Cv {
            out.push(("bias_pct".into(), 100.0 * self.spec.max_bias - m.bias_pct.abs()));
        }
        if let Some(p) = self.spec.max_tissue_pressure {
            out.push(("max_tissue_pressure_kpa".into(), p / 1e3 - m.peak_tissue_kpa));
        }
        if let Some(l) = self.spec.max_leak {
            out.push(("max_leak_ul".into(), l * 1e9 - m.leak_ul));
        }
        if let Some(r) = self.spec.min_rate {
            out.push(("min_shots_per_s".into(), m.shots_per_s - r));
        }
        out
    }

    /// Normalised total violation (0 when every constraint is met).
    fn violation(&self, m: &Metrics) -> f64 {
        let limit = |name: &str| -> f64 {
            match name {
                "bias_pct" => (100.0 * self.spec.max_bias).max(1e-3),
                "max_tissue_pressure_kpa" => self.spec.max_tissue_pressure.unwrap_or(1.0) / 1e3,
                "max_leak_ul" => (self.spec.max_leak.unwrap_or(1.0) * 1e9).max(1e-3),
                _ => self.spec.min_rate.unwrap_or(1.0).max(1e-3),
            }
        };
        self.margins(m).iter().map(|(name, margin)| (-margin).max(0.0) / limit(name)).sum()
    }

    /// Evaluate the key values `values`.
    pub fn evaluate(&self, index: usize, values: Vec<f64>) -> Evaluation {
        match self.simulate(&values) {
            Ok((_, m)) => {
                let objective = self.objective(&m);
                let violation = self.violation(&m);
                let feasible = violation == 0.0;
                let cost = if feasible { objective } else { objective + 100.0 + 100.0 * violation };
                let margins = self.margins(&m);
                Evaluation { index, values, objective, cost, feasible, metrics: Some(m), margins, error: None }
            }
            Err(e) => Evaluation {
                index,
                values,
                objective: FAILED,
                cost: FAILED,
                feasible: false,
                metrics: None,
                margins: Vec::new(),
                error: Some(e),
            },
        }
    }
}

/// How far `u` lies outside the unit cube (L1), 0 inside. Nelder–Mead can
/// step out; such points are evaluated clamped, plus a penalty on this.
fn outside(u: &[f64]) -> f64 {
    u.iter().map(|x| (x - x.clamp(0.0, 1.0)).abs()).sum()
}

/// The optimiser's view: unit-cube points to cost, every evaluation recorded in order.
struct Recorder<'p, 'a> {
    problem: &'p Problem<'a>,
    history: Mutex<Vec<Evaluation>>,
    progress: &'p (dyn Fn(u64) + Sync),
}

impl Recorder<'_, '_> {
    fn record(&self, batch: Vec<Vec<f64>>) -> Vec<f64> {
        let first = self.history.lock().expect("no poisoning").len();
        let evals: Vec<Evaluation> = batch
            .into_par_iter()
            .enumerate()
            .map(|(i, u)| {
                // `values` clamps into the bounds.
                let out = outside(&u);
                let mut e = self.problem.evaluate(first + i, self.problem.values(&u));
                if out > 0.0 {
                    e.cost += 100.0 + 100.0 * out;
                }
                e
            })
            .collect();
        let costs = evals.iter().map(|e| e.cost).collect();
        let mut h = self.history.lock().expect("no poisoning");
        h.extend(evals);
        (self.progress)(h.len() as u64);
        costs
    }
}

impl CostFunction for &Recorder<'_, '_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, u: &Vec<f64>) -> Result<f64, ArgminError> {
        Ok(self.record(vec![u.clone()])[0])
    }

    fn bulk_cost<P>(&self, params: &[P]) -> Result<Vec<f64>, ArgminError>
    where
        P: std::borrow::Borrow<Vec<f64>> + SyncAlias,
        f64: argmin::core::SendAlias,
        Self: SyncAlias,
    {
        Ok(self.record(params.iter().map(|p| p.borrow().clone()).collect()))
    }
}

/// The landscape of the objective over two keys (others at the optimum).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Landscape {
    /// Indices of the two keys (one for a single tuned key).
    pub keys: Vec<usize>,
    /// One-at-a-time sensitivity of the objective to each key around the
    /// optimum (largest change for a step of a quarter of its range).
    pub sensitivity: Vec<f64>,
    /// Grid points: key values, objective and feasibility.
    pub points: Vec<(Vec<f64>, f64, bool)>,
}

/// Everything a tuning run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Every evaluation, in order (0 is the start).
    pub history: Vec<Evaluation>,
    /// Index of the best evaluation in `history`.
    pub best: usize,
    /// Doses (m³) at the start and at the best settings.
    pub doses: (Vec<f64>, Vec<f64>),
    /// The landscape.
    pub landscape: Landscape,
}

impl Outcome {
    /// The start evaluation.
    pub fn start(&self) -> &Evaluation {
        &self.history[0]
    }
    /// The best evaluation.
    pub fn best(&self) -> &Evaluation {
        &self.history[self.best]
    }
}

/// Minimise `problem` over the unit cube of dimension `start.len()` from
/// `start` with the spec's optimiser (Nelder–Mead from a simplex of steps of
/// 0.15 around the start, or a particle swarm seeded from `seed`).
fn optimise<C>(problem: C, spec: &TuneSpec, start: &[f64], seed: u64, sd_tolerance: f64) -> Result<(), TuneError>
where
    C: CostFunction<Param = Vec<f64>, Output = f64> + SyncAlias,
{
    let d = start.len();
    let fail = |e: ArgminError| TuneError::Optimiser(e.to_string());
    if spec.optimizer == crate::scenario::Optimizer::NelderMead {
        let mut simplex = vec![start.to_vec()];
        for i in 0..d {
            let mut v = start.to_vec();
            v[i] = if v[i] + 0.15 <= 1.0 { v[i] + 0.15 } else { v[i] - 0.15 };
            simplex.push(v);
        }
        let solver = NelderMead::new(simplex).with_sd_tolerance(sd_tolerance).map_err(fail)?;
        Executor::new(problem, solver).configure(|s| s.max_iters(spec.iterations as u64)).run().map_err(fail)?;
    } else {
        let rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(super::splitmix(seed ^ 0x7475_6e65));
        let solver = ParticleSwarm::new((vec![0.0; d], vec![1.0; d]), spec.particles).with_rng_generator(rng);
        Executor::new(problem, solver).configure(|s| s.max_iters(spec.iterations as u64)).run().map_err(fail)?;
    }
    Ok(())
}

/// Total evaluations a run will make (for a progress bar; Nelder–Mead may use fewer).
pub fn planned_evaluations(spec: &TuneSpec) -> u64 {
    let d = spec.parameters.len();
    let search = if spec.optimizer == crate::scenario::Optimizer::NelderMead {
        (d + 1 + spec.iterations * (d + 2)) as u64
    } else {
        (spec.particles * (spec.iterations + 1)) as u64
    };
    let g = spec.landscape_grid as u64;
    1 + search + 2 * d as u64 + if d >= 2 { g * g } else { g }
}

/// Run the tuning described by the scenario's `[tune]` table.
pub fn run(
    prep: &Prepared,
    sc: &Scenario,
    base: &[String],
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Outcome, TuneError> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build().expect("thread pool");
    pool.install(|| run_inner(prep, sc, base, progress))
}

fn run_inner(
    prep: &Prepared,
    sc: &Scenario,
    base: &[String],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Outcome, TuneError> {
    let problem = Problem::new(prep, sc, base)?;
    let spec = problem.spec;
    problem.check_keys()?;
    let start = problem.start()?;
    let rec = Recorder { problem: &problem, history: Mutex::new(Vec::new()), progress };
    rec.record(vec![problem.unit(&start)]);
    optimise(&rec, spec, &problem.unit(&start), sc.seed, 1e-9)?;
    let mut history = rec.history.into_inner().expect("no poisoning");
    // The best: lowest cost, first occurrence (deterministic).
    let best = (0..history.len()).fold(0, |b, i| if history[i].cost < history[b].cost { i } else { b });
    let best_u = problem.unit(&history[best].values);
    // Landscape: one-at-a-time sensitivity around the optimum, then a grid over the two most sensitive keys.
    let d = spec.parameters.len();
    let probes: Vec<Vec<f64>> = (0..d)
        .flat_map(|i| {
            [-0.25, 0.25].into_iter().map({
                let best_u = best_u.clone();
                move |du| {
                    let mut u = best_u.clone();
                    u[i] = (u[i] + du).clamp(0.0, 1.0);
                    u
                }
            })
        })
        .collect();
    let n0 = history.len();
    let evals: Vec<Evaluation> =
        probes.par_iter().enumerate().map(|(i, u)| problem.evaluate(n0 + i, problem.values(u))).collect();
    progress((n0 + evals.len()) as u64);
    // Sensitivity of the objective itself (penalties would rank whichever key
    // first breaks a constraint, not what shapes the objective).
    let best_objective = history[best].objective;
    let delta = |e: &Evaluation| if e.metrics.is_some() { (e.objective - best_objective).abs() } else { 0.0 };
    let sensitivity: Vec<f64> = (0..d).map(|i| delta(&evals[2 * i]).max(delta(&evals[2 * i + 1]))).collect();
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| sensitivity[b].total_cmp(&sensitivity[a]).then(a.cmp(&b)));
    let keys: Vec<usize> =
        if spec.landscape.is_empty() { order.into_iter().take(2).collect() } else { spec.landscape.clone() };
    let g = spec.landscape_grid;
    let grid: Vec<Vec<f64>> = if keys.len() == 2 {
        (0..g * g)
            .map(|k| {
                let mut u = best_u.clone();
                u[keys[0]] = (k / g) as f64 / (g - 1) as f64;
                u[keys[1]] = (k % g) as f64 / (g - 1) as f64;
                u
            })
            .collect()
    } else {
        (0..g)
            .map(|k| {
                let mut u = best_u.clone();
                u[keys[0]] = k as f64 / (g - 1) as f64;
                u
            })
            .collect()
    };
    let n1 = n0 + evals.len();
    let points: Vec<(Vec<f64>, f64, bool)> = grid
        .par_iter()
        .enumerate()
        .map(|(i, u)| {
            let e = problem.evaluate(n1 + i, problem.values(u));
            (e.values, e.objective, e.feasible)
        })
        .collect();
    progress((n1 + points.len()) as u64);
    let doses_at = |v: &[f64]| problem.simulate(v).map(|r| r.0).unwrap_or_default();
    let doses = (doses_at(&history[0].values), doses_at(&history[best].values));
    history.shrink_to_fit();
    Ok(Outcome { history, best, doses, landscape: Landscape { keys, sensitivity, points } })
}

/// Minimise a function of the unit cube with the spec's optimiser, recorded
/// like a tuning run (for tests and for users of the library with their
/// own objective): returns the best point and its value.
pub fn minimize_unit(
    f: &(dyn Fn(&[f64]) -> f64 + Sync),
    start: &[f64],
    spec: &TuneSpec,
    seed: u64,
) -> Result<(Vec<f64>, f64, usize), TuneError> {
    struct F<'f> {
        f: &'f (dyn Fn(&[f64]) -> f64 + Sync),
        evals: Mutex<Vec<(Vec<f64>, f64)>>,
    }
    impl CostFunction for &F<'_> {
        type Param = Vec<f64>;
        type Output = f64;
        fn cost(&self, u: &Vec<f64>) -> Result<f64, ArgminError> {
            let out = outside(u);
            let clamped: Vec<f64> = u.iter().map(|x| x.clamp(0.0, 1.0)).collect();
            let c = (self.f)(&clamped) + if out > 0.0 { 1e3 * (1.0 + out) } else { 0.0 };
            self.evals.lock().expect("no poisoning").push((clamped, c));
            Ok(c)
        }
    }
    let problem = F { f, evals: Mutex::new(vec![(start.to_vec(), f(start))]) };
    optimise(&problem, spec, start, seed, 1e-12)?;
    let evals = problem.evals.into_inner().expect("no poisoning");
    let n = evals.len();
    let best = evals.into_iter().fold((Vec::new(), f64::INFINITY), |b, e| if e.1 < b.1 { e } else { b });
    Ok((best.0, best.1, n))
}
