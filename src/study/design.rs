//! Where a sweep's points lie: the Cartesian product of grid axes, or a
//! space-filling design (Latin hypercube, Owen-scrambled Sobol) drawn from
//! the scenario's `[sweep]` request.

use crate::scenario::{Sampling, SweepSpec};

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
            let mut rng = super::task_rng(seed, u64::MAX - 1, k as u64);
            let mut strata: Vec<usize> = (0..n).collect();
            strata.shuffle(&mut rng);
            for (i, row) in rows.iter_mut().enumerate() {
                let u = (strata[i] as f64 + rng.random::<f64>()) / n as f64;
                row[k] = map(u, *r);
            }
        } else {
            let s = (super::splitmix(seed) & 0xffff_ffff) as u32;
            for (i, row) in rows.iter_mut().enumerate() {
                let u = sobol_burley::sample(i as u32, k as u32, s) as f64 + 0.5 / 16_777_216.0;
                row[k] = map(u.min(1.0), *r);
            }
        }
    }
    rows
}

/// The rows of a space-filling sweep's design (drawn on first use and kept
/// with the spec), or `None` for a grid.
pub fn rows(spec: &SweepSpec) -> Option<&[Vec<f64>]> {
    let d = spec.space_filling.as_ref()?;
    Some(d.rows.get_or_init(|| design(spec.sampling, d.samples, &d.ranges, d.seed)))
}

/// The key values of point `index` of `spec`; grid points run with the last
/// key varying fastest.
pub fn point(spec: &SweepSpec, mut index: u64) -> Vec<(String, f64)> {
    if let Some(d) = rows(spec) {
        return spec.axes.iter().zip(&d[index as usize]).map(|(a, v)| (a.0.clone(), *v)).collect();
    }
    let mut out = vec![(String::new(), 0.0); spec.axes.len()];
    for (i, (key, values)) in spec.axes.iter().enumerate().rev() {
        let n = values.len() as u64;
        out[i] = (key.clone(), values[(index % n) as usize]);
        index /= n;
    }
    out
}
