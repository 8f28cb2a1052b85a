//! Descriptive statistics, reduced in index order so results never depend on
//! how work was split between threads.

pub mod compare;
pub mod doses;
pub mod tolerance;

/// Percentile `q` (0–1) of sorted data, linear interpolation (Hyndman–Fan type 7).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Quantile `u` ∈ [0, 1] of the standard normal truncated to [a, b] (a < b).
///
/// Exact in the far tails too: a window above the mean is inverted through
/// the survival function Q(x) = erfc(x/√2)/2, one below it by symmetry, so
/// that a window 10 sd out (Φ(a) = 1 − 7.6e-24, which rounds to 1) still
/// spreads its draws over the window instead of returning a bound. Beyond
/// about 38 sd, where Q underflows, the exponential tail a + E/a (E
/// standard exponential) is used, which is the limit of the truncated
/// normal there.
pub fn truncated_normal_quantile(a: f64, b: f64, u: f64) -> f64 {
    use statrs::function::erf::{erfc, erfc_inv};
    let r2 = std::f64::consts::SQRT_2;
    let x = if a >= 0.0 {
        let (qa, qb) = (0.5 * erfc(a / r2), 0.5 * erfc(b / r2));
        if qa <= 0.0 {
            a - (1.0 - u).max(f64::MIN_POSITIVE).ln() / a.max(1.0)
        } else {
            r2 * erfc_inv(2.0 * (qa - u * (qa - qb)))
        }
    } else if b <= 0.0 {
        -truncated_normal_quantile(-b, -a, 1.0 - u)
    } else {
        let (pa, pb) = (0.5 * erfc(-a / r2), 0.5 * erfc(-b / r2));
        -r2 * erfc_inv(2.0 * (pa + u * (pb - pa)))
    };
    x.clamp(a, b)
}

/// Probability mass of the standard normal on [a, b], accurate in the tails.
pub fn normal_mass(a: f64, b: f64) -> f64 {
    use statrs::function::erf::erfc;
    let r2 = std::f64::consts::SQRT_2;
    if a >= 0.0 {
        0.5 * (erfc(a / r2) - erfc(b / r2))
    } else if b <= 0.0 {
        normal_mass(-b, -a)
    } else {
        1.0 - 0.5 * (erfc(-a / r2) + erfc(b / r2))
    }
}

/// Mean, sample standard deviation (n − 1), coefficient of variation, extremes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Describe {
    /// Number of values.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for n < 2).
    pub sd: f64,
    /// SD / mean (0 when the mean is 0).
    pub cv: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

/// Describe `x` (two passes, sequential).
pub fn describe(x: &[f64]) -> Describe {
    let n = x.len();
    if n == 0 {
        return Describe { n, mean: f64::NAN, sd: f64::NAN, cv: f64::NAN, min: f64::NAN, max: f64::NAN };
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let ss: f64 = x.iter().map(|v| (v - mean) * (v - mean)).sum();
    let sd = if n > 1 { (ss / (n - 1) as f64).sqrt() } else { 0.0 };
    Describe {
        n,
        mean,
        sd,
        cv: if mean != 0.0 { sd / mean } else { 0.0 },
        min: x.iter().copied().fold(f64::INFINITY, f64::min),
        max: x.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

/// Ordinary least-squares line y = a + b·x and its R² (nalgebra QR).
pub fn linear_fit(x: &[f64], y: &[f64]) -> (f64, f64, f64) {
    use nalgebra::{DMatrix, DVector};
    let n = x.len();
    let a = DMatrix::from_fn(n, 2, |i, j| if j == 0 { 1.0 } else { x[i] });
    let b = DVector::from_column_slice(y);
    // Least squares through the thin QR of the design matrix.
    let qr = a.clone().qr();
    let qtb = qr.q().transpose() * &b;
    let r = qr.r();
    let coef = r.solve_upper_triangular(&qtb).unwrap_or_else(|| DVector::from_column_slice(&[describe(y).mean, 0.0]));
    let mean = describe(y).mean;
    let fitted = &a * &coef;
    let ss_res: f64 = (0..n).map(|i| (y[i] - fitted[i]).powi(2)).sum();
    let ss_tot: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    (coef[0], coef[1], if ss_tot > 0.0 { 1.0 - ss_res / ss_tot } else { 1.0 })
}
