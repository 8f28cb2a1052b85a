//! The estimator: a Sobol global stage, Levenberg–Marquardt on bounded
//! parameters (each mapped to the real line by a logistic transform, so no
//! step leaves its bounds), the covariance σ²(JᵀJ)⁻¹ at the optimum with
//! Student-t intervals, profiles, and identifiability checks.
//!
//! Levenberg–Marquardt is written here on nalgebra (about 100 lines):
//! argmin 0.11 has none, and the `levenberg-marquardt` crate is built on an
//! older nalgebra than this project's. The damping follows Nielsen's
//! update (Madsen, Nielsen & Tingleff, *Methods for non-linear least
//! squares problems*, 2nd ed., IMM DTU 2004, §3.2); the Jacobian is
//! computed by central differences, its columns in parallel.

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;

use super::{advice, cost, evaluate, evaluate_many, FitFile, FitParam};

/// Student-t quantile used for the 95 % intervals.
fn t975(dof: usize) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    StudentsT::new(0.0, 1.0, dof.max(1) as f64).map(|t| t.inverse_cdf(0.975)).unwrap_or(1.959964)
}

/// χ²₁ 95 % quantile (1.959964²).
pub const CHI2_1_95: f64 = 3.841_458_820_694_124;

fn logistic(u: f64) -> f64 {
    1.0 / (1.0 + (-u).exp())
}

/// Parameter value of transformed coordinate `u` within `[lo, hi]`.
fn to_value(lo: f64, hi: f64, u: f64) -> f64 {
    lo + (hi - lo) * logistic(u)
}

fn to_u(lo: f64, hi: f64, x: f64) -> f64 {
    let f = ((x - lo) / (hi - lo)).clamp(1e-9, 1.0 - 1e-9);
    (f / (1.0 - f)).ln()
}

/// One row of the optimiser's history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Step {
    /// Which start (0 = the first LM start).
    pub start: usize,
    /// Iteration within the start.
    pub iteration: usize,
    /// Weighted sum of squared residuals.
    pub cost: f64,
    /// Damping λ.
    pub lambda: f64,
    /// Parameter values (human units, in [parameters] order).
    pub values: Vec<f64>,
}

/// A bounded least-squares problem in transformed coordinates: the free
/// parameters of `file` (some may be held fixed for a profile).
struct Problem<'a> {
    file: &'a FitFile,
    /// Full parameter vector; `free` entries are replaced by the iterate.
    base: Vec<f64>,
    free: Vec<usize>,
}

impl Problem<'_> {
    fn values(&self, u: &[f64]) -> Vec<f64> {
        let mut x = self.base.clone();
        for (k, &j) in self.free.iter().enumerate() {
            let p = &self.file.parameters[j];
            x[j] = to_value(p.lo, p.hi, u[k]);
        }
        x
    }

    fn residuals(&self, u: &[f64]) -> Option<DVector<f64>> {
        evaluate(self.file, &self.values(u)).ok().map(DVector::from_vec)
    }

    /// Central-difference Jacobian in `u`, columns in parallel.
    fn jacobian(&self, u: &[f64], n: usize) -> Option<DMatrix<f64>> {
        const H: f64 = 1e-3;
        let pts: Vec<Vec<f64>> = (0..2 * u.len())
            .map(|i| {
                let mut v = u.to_vec();
                v[i / 2] += if i % 2 == 0 { H } else { -H };
                self.values(&v)
            })
            .collect();
        let rs = evaluate_many(self.file, &pts);
        let mut j = DMatrix::zeros(n, u.len());
        for k in 0..u.len() {
            let (Ok(a), Ok(b)) = (&rs[2 * k], &rs[2 * k + 1]) else { return None };
            for i in 0..n {
                j[(i, k)] = (a[i] - b[i]) / (2.0 * H);
            }
        }
        Some(j)
    }
}

/// The result of one Levenberg–Marquardt run.
struct Minimum {
    u: Vec<f64>,
    cost: f64,
    converged: bool,
    reason: String,
}

fn levenberg_marquardt(
    pb: &Problem,
    u0: Vec<f64>,
    max_iter: usize,
    start: usize,
    hist: &mut Vec<Step>,
) -> Option<Minimum> {
    let mut u = u0;
    let mut r = pb.residuals(&u)?;
    let mut c = r.norm_squared();
    let n = r.len();
    let mut lambda = -1.0;
    let mut nu = 2.0;
    hist.push(Step { start, iteration: 0, cost: c, lambda: 0.0, values: pb.values(&u) });
    if u.is_empty() {
        return Some(Minimum { u, cost: c, converged: true, reason: "nothing to estimate".into() });
    }
    for it in 1..=max_iter {
        let Some(j) = pb.jacobian(&u, n) else {
            return Some(Minimum {
                u,
                cost: c,
                converged: false,
                reason: "a simulation failed next to the iterate".into(),
            });
        };
        let a = j.transpose() * &j;
        let g = j.transpose() * &r;
        if g.amax() <= 1e-12 * (1.0 + c) {
            return Some(Minimum { u, cost: c, converged: true, reason: "gradient vanished".into() });
        }
        if lambda < 0.0 {
            lambda = 1e-3 * a.diagonal().max();
        }
        let accepted = damped_step(pb, &u, (&a, &g, &j), c, &mut lambda, &mut nu);
        let Some((trial, rt, ct, step)) = accepted else {
            return Some(Minimum { u, cost: c, converged: true, reason: "no step lowers the cost further".into() });
        };
        let rel = (c - ct) / c.max(f64::MIN_POSITIVE);
        let unorm = trial.iter().map(|v| v * v).sum::<f64>().sqrt();
        u = trial;
        r = rt;
        c = ct;
        hist.push(Step { start, iteration: it, cost: c, lambda, values: pb.values(&u) });
        if rel < 1e-9 {
            return Some(Minimum { u, cost: c, converged: true, reason: "relative cost change below 1e-9".into() });
        }
        if step < 1e-8 * (unorm + 1e-8) {
            return Some(Minimum { u, cost: c, converged: true, reason: "step below 1e-8".into() });
        }
    }
    Some(Minimum {
        u,
        cost: c,
        converged: false,
        reason: format!("{max_iter} iterations without meeting a stopping rule"),
    })
}

/// An accepted step, its residuals, its cost and its length.
type Accepted = (Vec<f64>, DVector<f64>, f64, f64);

/// One damped Gauss–Newton step from `u` (normal matrix `a`, gradient `g`,
/// Jacobian `j`, cost `c`): raise the damping `lambda` until a step lowers
/// the cost (at most 30 tries), then lower it by the gain ratio.
fn damped_step(
    pb: &Problem,
    u: &[f64],
    (a, g, j): (&DMatrix<f64>, &DVector<f64>, &DMatrix<f64>),
    c: f64,
    lambda: &mut f64,
    nu: &mut f64,
) -> Option<Accepted> {
    for _ in 0..30 {
        let mut m = a.clone();
        for k in 0..m.nrows() {
            m[(k, k)] += *lambda * a[(k, k)].max(1e-12 * a.diagonal().max());
        }
        let Some(chol) = m.cholesky() else {
            *lambda *= *nu;
            *nu *= 2.0;
            continue;
        };
        let delta = chol.solve(&(-g));
        let trial: Vec<f64> = u.iter().zip(delta.iter()).map(|(a, b)| a + b).collect();
        match pb.residuals(&trial) {
            Some(rt) if rt.norm_squared() < c => {
                let ct = rt.norm_squared();
                let predicted = -2.0 * delta.dot(g) - (j * &delta).norm_squared();
                let rho = if predicted > 0.0 { (c - ct) / predicted.max(f64::MIN_POSITIVE) } else { 1.0 };
                *lambda *= (1.0f64 / 3.0).max(1.0 - (2.0 * rho - 1.0).powi(3));
                *nu = 2.0;
                return Some((trial, rt, ct, delta.norm()));
            }
            _ => {
                *lambda *= *nu;
                *nu *= 2.0;
            }
        }
    }
    None
}

/// A parameter's estimate and its uncertainty.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Estimate {
    /// Key.
    pub key: String,
    /// Human unit.
    pub unit: &'static str,
    /// Estimate.
    pub estimate: f64,
    /// Starting value given or taken from the scenario.
    pub start: f64,
    /// [lo, hi].
    pub bounds: [f64; 2],
    /// Standard error from the covariance (None when not identifiable).
    pub se: Option<f64>,
    /// 95 % interval from the covariance (None when not identifiable).
    pub ci95: Option<[f64; 2]>,
    /// 95 % interval from the profile (a side is None where the profile stays below the threshold).
    pub ci95_profile: Option<[Option<f64>; 2]>,
    /// Whether the data pin the parameter down.
    pub identifiable: bool,
    /// The estimate sits at a bound.
    pub at_bound: bool,
}

/// One parameter's profile: fixed values and the re-optimised cost.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Profile {
    /// Key.
    pub key: String,
    /// (value, cost) in increasing value, the optimum included.
    pub points: Vec<(f64, f64)>,
    /// The cost at which the 95 % profile interval ends (minimum + χ²₁·σ²).
    pub threshold: f64,
}

/// Everything a fit finds.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// One per parameter, in [parameters] order.
    pub estimates: Vec<Estimate>,
    /// Correlation matrix (NaN where not defined).
    pub correlation: Vec<Vec<f64>>,
    /// Weighted sum of squares at the optimum.
    pub cost: f64,
    /// Residual variance σ² = cost / (n − p).
    pub sigma2: f64,
    /// Residual count.
    pub residuals: usize,
    /// Whether the best run met a stopping rule.
    pub converged: bool,
    /// Why it stopped.
    pub reason: String,
    /// The optimiser's history: every accepted Levenberg–Marquardt iterate of every start.
    pub history: Vec<Step>,
    /// The global stage: (values, cost or None where the simulation failed).
    pub global: Vec<(Vec<f64>, Option<f64>)>,
    /// Profiles.
    pub profiles: Vec<Profile>,
    /// Identifiability and fit warnings.
    pub warnings: Vec<String>,
}

/// Run the fit: global stage, LM from the best starts, uncertainty, profiles.
pub fn fit(file: &FitFile, progress: &(dyn Fn(&str) + Sync)) -> Result<Outcome, super::FitError> {
    let ps = &file.parameters;
    let p = ps.len();
    let start: Vec<f64> = ps.iter().map(|q| q.start).collect();
    let r0 = evaluate(file, &start).map_err(|e| super::FitError::Run(format!("at the starting point: {e}")))?;
    let n = r0.len();
    if n <= p {
        return Err(super::FitError::Input(format!(
            "{}: {n} residual(s) for {p} parameter(s): the data cannot determine them (log more samples or shots)",
            file.path
        )));
    }
    // Global stage: the start and a scrambled Sobol set in the box.
    progress("global stage");
    let mut points = vec![start.clone()];
    for i in 0..file.settings.starts {
        points.push(
            ps.iter()
                .enumerate()
                .map(|(d, q)| {
                    let f = f64::from(sobol_burley::sample(i as u32, d as u32, 0x6d65_736f)).clamp(1e-6, 1.0 - 1e-6);
                    q.lo + f * (q.hi - q.lo)
                })
                .collect(),
        );
    }
    let global: Vec<(Vec<f64>, Option<f64>)> =
        evaluate_many(file, &points).into_iter().zip(points).map(|(r, x)| (x, r.ok().map(|r| cost(&r)))).collect();
    let mut order: Vec<usize> = (0..global.len()).filter(|&i| global[i].1.is_some()).collect();
    order.sort_by(|&a, &b| global[a].1.partial_cmp(&global[b].1).unwrap().then(a.cmp(&b)));
    let free: Vec<usize> = (0..p).collect();
    let pb = Problem { file, base: start.clone(), free: free.clone() };
    let mut history = Vec::new();
    let mut best: Option<Minimum> = None;
    for (s, &i) in order.iter().take(3).enumerate() {
        progress(&format!("Levenberg–Marquardt from start {}", s + 1));
        let u0: Vec<f64> = ps.iter().zip(&global[i].0).map(|(q, x)| to_u(q.lo, q.hi, *x)).collect();
        if let Some(m) = levenberg_marquardt(&pb, u0, file.settings.max_iterations, s, &mut history) {
            if best.as_ref().is_none_or(|b| m.cost < b.cost) {
                best = Some(m);
            }
        }
    }
    let best = best.ok_or_else(|| super::FitError::Run("every start failed to simulate".into()))?;
    let xhat = pb.values(&best.u);
    progress("uncertainty");
    let mut out = uncertainty(file, &xhat, best.cost, n)?;
    out.converged = best.converged;
    out.reason = best.reason;
    out.history = history;
    out.global = global;
    if file.settings.profile {
        progress("profiles");
        profiles(file, &mut out, &xhat);
    }
    Ok(out)
}

/// Covariance, intervals, correlation and identifiability at `xhat`.
fn uncertainty(file: &FitFile, xhat: &[f64], c: f64, n: usize) -> Result<Outcome, super::FitError> {
    let ps = &file.parameters;
    let p = ps.len();
    let jm = jacobian_at(file, xhat, n)?;
    let dof = n - p;
    let sigma2 = c / dof as f64;
    let t = t975(dof);
    let mut warnings = Vec::new();
    let (cov, blind, weak) = covariance(ps, &jm, sigma2, &mut warnings);
    let correlation = correlation_of(&cov);
    let estimates = estimates_of(ps, xhat, (&cov, &blind, &weak), t, &mut warnings);
    correlation_warnings(ps, &correlation, &mut warnings);
    Ok(Outcome {
        estimates,
        correlation,
        cost: c,
        sigma2,
        residuals: n,
        converged: true,
        reason: String::new(),
        history: Vec::new(),
        global: Vec::new(),
        profiles: Vec::new(),
        warnings,
    })
}

/// The Jacobian of the `n` residuals at `xhat` in the parameters' own
/// units (central differences, one-sided at a bound).
fn jacobian_at(file: &FitFile, xhat: &[f64], n: usize) -> Result<DMatrix<f64>, super::FitError> {
    let ps = &file.parameters;
    let p = ps.len();
    let mut pts = Vec::with_capacity(2 * p);
    let mut steps = Vec::with_capacity(p);
    for (j, q) in ps.iter().enumerate() {
        let h = 1e-3 * (q.hi - q.lo);
        let up = (xhat[j] + h).min(q.hi);
        let down = (xhat[j] - h).max(q.lo);
        steps.push(up - down);
        for v in [up, down] {
            let mut x = xhat.to_vec();
            x[j] = v;
            pts.push(x);
        }
    }
    let rs = evaluate_many(file, &pts);
    let mut jm = DMatrix::zeros(n, p);
    for j in 0..p {
        let (Ok(a), Ok(b)) = (&rs[2 * j], &rs[2 * j + 1]) else {
            return Err(super::FitError::Run(format!(
                "a simulation next to the optimum failed ({} at {})",
                ps[j].key, xhat[j]
            )));
        };
        for i in 0..n {
            jm[(i, j)] = (a[i] - b[i]) / steps[j];
        }
    }
    Ok(jm)
}

/// The covariance `sigma2`·(JᵀJ)⁻¹ of the parameters from the Jacobian
/// `jm`, with the parameters the data do not see (`blind`) and those in a
/// near-singular combination (`weak`); warns of each such combination.
fn covariance(
    ps: &[FitParam],
    jm: &DMatrix<f64>,
    sigma2: f64,
    warnings: &mut Vec<String>,
) -> (DMatrix<f64>, Vec<bool>, Vec<bool>) {
    let (n, p) = jm.shape();
    // Scale columns to unit norm: the scaled JᵀJ has a unit diagonal and
    // its eigenvalues show which combinations the data cannot see.
    let norms: Vec<f64> = (0..p).map(|j| jm.column(j).norm()).collect();
    let scale_max = norms.iter().cloned().fold(0.0, f64::max);
    let mut blind = vec![false; p];
    for j in 0..p {
        if norms[j].is_nan() || norms[j] <= 1e-9 * scale_max || norms[j] == 0.0 {
            blind[j] = true;
        }
    }
    let keep: Vec<usize> = (0..p).filter(|&j| !blind[j]).collect();
    let mut cov = DMatrix::from_element(p, p, f64::NAN);
    let mut weak = vec![false; p];
    if !keep.is_empty() {
        let mut js = DMatrix::zeros(n, keep.len());
        for (k, &j) in keep.iter().enumerate() {
            js.set_column(k, &(jm.column(j) / norms[j]));
        }
        let a = js.transpose() * &js;
        let eig = a.clone().symmetric_eigen();
        let lmax = eig.eigenvalues.max();
        for (e, lam) in eig.eigenvalues.iter().enumerate() {
            if *lam < 1e-8 * lmax {
                let v = eig.eigenvectors.column(e);
                let members: Vec<&str> = keep
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| v[*k].abs() > 0.3)
                    .map(|(_, &j)| ps[j].key.as_str())
                    .collect();
                for (k, &j) in keep.iter().enumerate() {
                    if v[k].abs() > 0.3 {
                        weak[j] = true;
                    }
                }
                warnings.push(format!(
                    "not identifiable: the data see only a combination of {} (JᵀJ is near-singular)",
                    members.join(", ")
                ));
            }
        }
        if let Ok(inv) = a.pseudo_inverse(1e-12 * lmax) {
            for (k1, &j1) in keep.iter().enumerate() {
                for (k2, &j2) in keep.iter().enumerate() {
                    cov[(j1, j2)] = sigma2 * inv[(k1, k2)] / (norms[j1] * norms[j2]);
                }
            }
        }
    }
    (cov, blind, weak)
}

/// The correlation matrix of a covariance (NaN where a variance is not
/// finite and positive).
fn correlation_of(cov: &DMatrix<f64>) -> Vec<Vec<f64>> {
    let p = cov.nrows();
    let mut correlation = vec![vec![f64::NAN; p]; p];
    for j1 in 0..p {
        for j2 in 0..p {
            let d = (cov[(j1, j1)] * cov[(j2, j2)]).sqrt();
            if d > 0.0 && d.is_finite() {
                correlation[j1][j2] = if j1 == j2 { 1.0 } else { cov[(j1, j2)] / d };
            }
        }
    }
    correlation
}

/// Each parameter's estimate, standard error and 95 % interval (`t` the
/// Student quantile); warns of those not identifiable or at a bound.
fn estimates_of(
    ps: &[FitParam],
    xhat: &[f64],
    (cov, blind, weak): (&DMatrix<f64>, &[bool], &[bool]),
    t: f64,
    warnings: &mut Vec<String>,
) -> Vec<Estimate> {
    let mut estimates = Vec::with_capacity(ps.len());
    for (j, q) in ps.iter().enumerate() {
        let width = q.hi - q.lo;
        let at_bound = (xhat[j] - q.lo) < 1e-4 * width || (q.hi - xhat[j]) < 1e-4 * width;
        let se = Some(cov[(j, j)].sqrt()).filter(|s| s.is_finite() && !blind[j] && !weak[j]);
        let mut identifiable = se.is_some();
        if blind[j] {
            warnings.push(format!(
                "not identifiable: {} — the data do not depend on it; to pin it: {}",
                q.key,
                advice(&q.key)
            ));
        } else if weak[j] {
            warnings.push(format!("not identifiable: {} — to pin it: {}", q.key, advice(&q.key)));
        }
        if let Some(s) = se {
            if 2.0 * t * s > width {
                identifiable = false;
                warnings.push(format!(
                    "not identifiable: {} — its 95 % interval (± {} {}) is wider than its bounds; to pin it: {}",
                    q.key,
                    crate::text::g6(t * s),
                    q.unit,
                    advice(&q.key)
                ));
            }
        }
        if at_bound {
            warnings.push(format!(
                "{} = {} {} is at its bound: widen the bounds or check the model; its interval is not reliable",
                q.key,
                crate::text::g6(xhat[j]),
                q.unit
            ));
        }
        estimates.push(Estimate {
            key: q.key.clone(),
            unit: q.unit,
            estimate: xhat[j],
            start: q.start,
            bounds: [q.lo, q.hi],
            se: se.filter(|_| identifiable),
            ci95: se.filter(|_| identifiable).map(|s| [xhat[j] - t * s, xhat[j] + t * s]),
            ci95_profile: None,
            identifiable,
            at_bound,
        });
    }
    estimates
}

/// Warn of every pair of parameters correlated beyond |r| = 0.95.
fn correlation_warnings(ps: &[FitParam], correlation: &[Vec<f64>], warnings: &mut Vec<String>) {
    let p = ps.len();
    for j1 in 0..p {
        for j2 in j1 + 1..p {
            let r = correlation[j1][j2];
            if r.abs() > 0.95 {
                warnings.push(format!(
                    "{} and {} are strongly correlated (r = {:.3}): the data constrain mainly a combination of them; \
                     to separate them: {}",
                    ps[j1].key,
                    ps[j2].key,
                    r,
                    advice(&ps[j2].key)
                ));
            }
        }
    }
}

/// Profile each parameter: hold it at points around the optimum and
/// re-optimise the others; the 95 % profile interval ends where the cost
/// rises by χ²₁(0.95)·σ².
fn profiles(file: &FitFile, out: &mut Outcome, xhat: &[f64]) {
    let ps = &file.parameters;
    let p = ps.len();
    let half = (file.settings.profile_points / 2).max(1);
    let threshold = out.cost + CHI2_1_95 * out.sigma2;
    let jobs: Vec<(usize, f64)> = (0..p)
        .flat_map(|j| {
            let q = &ps[j];
            let e = &out.estimates[j];
            let reach = e.se.map(|s| 2.0 * t975(out.residuals - p) * s);
            (1..=half)
                .flat_map(move |k| {
                    let f = k as f64 / half as f64;
                    let (down, up) = match reach {
                        Some(r) => ((xhat[j] - f * r).max(q.lo), (xhat[j] + f * r).min(q.hi)),
                        None => (xhat[j] - f * (xhat[j] - q.lo), xhat[j] + f * (q.hi - xhat[j])),
                    };
                    [(j, down), (j, up)]
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let costs: Vec<Option<f64>> = jobs
        .par_iter()
        .map(|&(j, v)| {
            let mut base = xhat.to_vec();
            base[j] = v;
            let free: Vec<usize> = (0..p).filter(|&k| k != j).collect();
            let pb = Problem { file, base, free: free.clone() };
            let u0: Vec<f64> = free.iter().map(|&k| to_u(ps[k].lo, ps[k].hi, xhat[k])).collect();
            let mut h = Vec::new();
            levenberg_marquardt(&pb, u0, 12, 0, &mut h).map(|m| m.cost)
        })
        .collect();
    for j in 0..p {
        let mut pts: Vec<(f64, f64)> = vec![(xhat[j], out.cost)];
        for (k, &(jj, v)) in jobs.iter().enumerate() {
            if jj == j {
                if let Some(c) = costs[k] {
                    pts.push((v, c.min(f64::MAX)));
                }
            }
        }
        pts.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        pts.dedup_by(|a, b| a.0 == b.0);
        close_profile(out, j, &ps[j].key, pts, xhat[j], threshold);
    }
}

/// Parameter `j`'s profile from its points `pts` (sorted, the optimum
/// `x0` among them): where the cost crosses `threshold` on each side, and
/// the warnings when it never does or the interval differs from the
/// covariance one.
fn close_profile(out: &mut Outcome, j: usize, key: &str, pts: Vec<(f64, f64)>, x0: f64, threshold: f64) {
    let i0 = pts.iter().position(|x| x.0 == x0).unwrap_or(0);
    let side = |range: Box<dyn Iterator<Item = usize>>| -> Option<f64> {
        let mut prev = pts[i0];
        for i in range {
            let cur = pts[i];
            if cur.1 >= threshold {
                let f = (threshold - prev.1) / (cur.1 - prev.1);
                return Some(prev.0 + f * (cur.0 - prev.0));
            }
            prev = cur;
        }
        None
    };
    let lo = side(Box::new((0..i0).rev()));
    let hi = side(Box::new(i0 + 1..pts.len()));
    let e = &mut out.estimates[j];
    e.ci95_profile = Some([lo, hi]);
    match (e.ci95, lo, hi) {
        (_, None, None) => {
            if e.identifiable {
                e.identifiable = false;
                e.se = None;
                e.ci95 = None;
            }
            out.warnings.push(format!(
                "not identifiable: {key} — its profile stays flat over the points tried; to pin it: {}",
                advice(key)
            ));
        }
        (Some([a, b]), l, h) => {
            let half_w = 0.5 * (b - a);
            let off = |w: Option<f64>, x: f64| w.is_none_or(|w| (w - x).abs() > 0.25 * half_w);
            if off(l, a) || off(h, b) {
                let show = |v: Option<f64>| v.map_or("open".to_string(), crate::text::g6);
                out.warnings.push(format!(
                    "{key}: the profile interval [{}, {}] differs from the covariance interval [{}, {}] \
                         (the model is nonlinear there): prefer the profile interval",
                    show(l),
                    show(h),
                    crate::text::g6(a),
                    crate::text::g6(b)
                ));
            }
        }
        _ => {}
    }
    out.profiles.push(Profile { key: key.to_string(), points: pts, threshold });
}
