//! Liquid flow through needles and tubing (see `docs/physics.md`, *Needle
//! hydraulics*).
//!
//! ΔP(Q) = ΔP_friction(Q) + K·ρ·v²/2. Two loss models:
//!
//! * **Lumped** ([`Conduit::new`], tubing and the deprecated
//!   `needle.minor_loss_k`): fully developed friction, the Darcy factor with
//!   a smooth laminar-to-turbulent blend
//!   ([`crate::model::gas::darcy_friction`]): Hagen–Poiseuille
//!   128·μ·L·Q/(π·d⁴) below Re = 2000, Blasius above 4000, plus one constant K.
//! * **Split** ([`Conduit::needle`], the needle's default): K = K_entrance +
//!   K_exit (contraction loss and the jet's kinetic energy) plus, for a
//!   Newtonian fluid, the apparent friction of developing laminar flow by
//!   Shah's correlation (Shah, J Fluids Eng 100:177 (1978)):
//!   f_app·Re = 3.44/√x⁺ + (1.25/(4x⁺) + 16 − 3.44/√x⁺)/(1 + 0.00021/x⁺²),
//!   x⁺ = L/(d·Re), Fanning; it tends to Hagen–Poiseuille plus 1.25·ρv²/2 in
//!   a long tube and to the boundary-layer 13.76·√x⁺·ρv²/2 in a short one.
//!   Above Re = 4000 Blasius (fully developed: the turbulent entrance length
//!   is 10–20 diameters), with the same C¹ smoothstep blend in between.
//!
//! For shear-thinning fluids the laminar flow curve is computed once from the Rabinowitsch–Mooney relation
//! Q = (π·d³/(8·τ_w³))·∫₀^τ_w τ²·γ̇(τ) dτ and tabulated (512 log-spaced
//! points, log-log interpolation), so any generalized-Newtonian law costs the
//! same per step. The Reynolds number reported is the Metzner–Reed one,
//! Re = 8·ρ·v²/τ_w, which equals ρ·v·d/μ for a Newtonian fluid.

use super::fluid::{Fluid, Rheology};
use super::gas::darcy_friction;

/// One conduit (a needle or the extension tubing) carrying one fluid.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Conduit {
    /// Length, m.
    pub length: f64,
    /// Inner diameter, m.
    pub diameter: f64,
    /// Minor-loss coefficient K, – (lumped: entrance, developing flow and
    /// exit; split: entrance plus exit only).
    pub k_minor: f64,
    /// Developing laminar flow by Shah's apparent friction (split losses)
    /// rather than a lumped K.
    pub developing: bool,
    /// Fluid density, kg/m³.
    pub density: f64,
    #[serde(skip)]
    law: Law,
    /// Precomputed: minor-loss factor K·ρ/(2A²), Pa·s²/m⁶.
    #[serde(skip)]
    kin: f64,
    /// Precomputed: 1/A, 1/m².
    #[serde(skip)]
    inv_area: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
enum Law {
    #[default]
    None,
    Newtonian {
        /// Hagen–Poiseuille resistance, Pa·s/m³.
        r_hp: f64,
        /// Re per unit flow, s/m³.
        re_per_q: f64,
        /// (L/d)·ρ/(2A²), Pa·s²/m⁶.
        c_f: f64,
        /// Shah's developing flow: Some((a, ρ/(2A²))) with x⁺ = a/Q, a = L/(d·Re/Q), m³/s.
        shah: Option<(f64, f64)>,
    },
    Table(std::sync::Arc<FlowTable>),
}

/// Tabulated laminar flow curve of a generalized-Newtonian fluid.
#[derive(Debug, Clone, PartialEq)]
struct FlowTable {
    ln_q0: f64,
    h: f64,
    ln_dp: Vec<f64>,
    q_lo: f64,
    dp_lo: f64,
    q_hi: f64,
}

const TABLE_POINTS: usize = 512;
const TABLE_Q_LO: f64 = 1e-13; // 0.1 nL/s
const TABLE_Q_HI: f64 = 1e-4; // 100 mL/s

/// Result of a conduit evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drop {
    /// Pressure drop, Pa (sign of Q).
    pub dp: f64,
    /// dΔP/dQ, Pa·s/m³ (> 0).
    pub slope: f64,
    /// Reynolds number (Metzner–Reed for non-Newtonian fluids), –.
    pub re: f64,
    /// True when Q is beyond the tabulated flow curve (extrapolated).
    pub extrapolated: bool,
}

impl Conduit {
    /// Build a conduit of `length` and `diameter` (m) with the lumped
    /// minor-loss `k_minor` (fully developed friction) for `fluid`.
    pub fn new(length: f64, diameter: f64, k_minor: f64, fluid: &Fluid) -> Conduit {
        Conduit::build(length, diameter, k_minor, false, fluid)
    }

    /// A needle with split losses: entrance `k_entrance` plus exit `k_exit`
    /// (kinetic terms) and, for a Newtonian fluid, Shah's apparent friction
    /// of developing laminar flow.
    pub fn needle(length: f64, diameter: f64, k_entrance: f64, k_exit: f64, fluid: &Fluid) -> Conduit {
        Conduit::build(length, diameter, k_entrance + k_exit, true, fluid)
    }

    fn build(length: f64, diameter: f64, k_minor: f64, developing: bool, fluid: &Fluid) -> Conduit {
        let area = std::f64::consts::PI * diameter * diameter / 4.0;
        let law = match fluid.rheology {
            Rheology::Newtonian { mu } => {
                let re_per_q = fluid.density * diameter / (mu * area);
                Law::Newtonian {
                    r_hp: 128.0 * mu * length / (std::f64::consts::PI * diameter.powi(4)),
                    re_per_q,
                    c_f: length / diameter * fluid.density / (2.0 * area * area),
                    shah: developing.then(|| (length / (diameter * re_per_q), fluid.density / (2.0 * area * area))),
                }
            }
            _ => Law::Table(FlowTable::cached(length, diameter, &fluid.rheology)),
        };
        let kin = k_minor * fluid.density / (2.0 * area * area);
        Conduit { length, diameter, k_minor, developing, density: fluid.density, law, kin, inv_area: 1.0 / area }
    }

    /// Cross-section, m².
    pub fn area(&self) -> f64 {
        std::f64::consts::PI * self.diameter * self.diameter / 4.0
    }

    /// Fluid inertance ρ·L/A, Pa·s²/m³.
    pub fn inertance(&self) -> f64 {
        self.density * self.length / self.area()
    }

    /// Hagen–Poiseuille resistance 128·μ·L/(π·d⁴) for a Newtonian fluid, Pa·s/m³.
    pub fn poiseuille_resistance(&self) -> Option<f64> {
        match self.law {
            Law::Newtonian { r_hp, .. } => Some(r_hp),
            _ => None,
        }
    }

    /// Hydrodynamic entrance length, m: 0.06·Re·d (laminar, Re ≤ 2000),
    /// 4.4·Re^(1/6)·d (turbulent, Re ≥ 4000), the smoothstep blend of the
    /// two in between (White, *Fluid Mechanics*, §6.1).
    pub fn entrance_length(&self, re: f64) -> f64 {
        let laminar = 0.06 * re * self.diameter;
        if re <= 2000.0 {
            return laminar;
        }
        let turbulent = 4.4 * re.powf(1.0 / 6.0) * self.diameter;
        if re >= 4000.0 {
            return turbulent;
        }
        let s = (re - 2000.0) / 2000.0;
        let w = s * s * (3.0 - 2.0 * s);
        (1.0 - w) * laminar + w * turbulent
    }

    /// Pressure drop and slope at volumetric flow `q` (m³/s).
    #[inline]
    pub fn drop(&self, q: f64) -> Drop {
        let sign = if q < 0.0 { -1.0 } else { 1.0 };
        let qa = q.abs();
        let kin = self.kin;
        let (dpf, sf, re, extrapolated) = match &self.law {
            Law::Newtonian { re_per_q, c_f, shah: Some((a, c_kin)), .. } => {
                let re = re_per_q * qa;
                let (dl, sl) = shah_drop(*a, *c_kin, qa);
                if re <= 2000.0 {
                    (dl, sl, re, false)
                } else {
                    // Blasius, fully developed: ΔP = f·c_f·Q², dRe/dQ = Re/Q.
                    let ft = 0.3164 / re.sqrt().sqrt();
                    let dft = -0.25 * ft / re;
                    let (dt, st) = (ft * c_f * qa * qa, c_f * (2.0 * ft * qa + dft * re * qa));
                    if re >= 4000.0 {
                        (dt, st, re, false)
                    } else {
                        let s = (re - 2000.0) / 2000.0;
                        let w = s * s * (3.0 - 2.0 * s);
                        let dw = 6.0 * s * (1.0 - s) / 2000.0 * re_per_q;
                        ((1.0 - w) * dl + w * dt, (1.0 - w) * sl + w * st + dw * (dt - dl), re, false)
                    }
                }
            }
            Law::Newtonian { r_hp, re_per_q, c_f, shah: None } => {
                let re = re_per_q * qa;
                if re <= 2000.0 {
                    // Hagen–Poiseuille, exactly linear.
                    (r_hp * qa, *r_hp, re, false)
                } else {
                    // ΔP_f = f·(L/d)·ρ·Q²/(2A²); dRe/dQ = Re/Q.
                    let (f, dfdre) = darcy_friction(re);
                    (f * c_f * qa * qa, c_f * (2.0 * f * qa + dfdre * re * qa), re, false)
                }
            }
            Law::Table(t) => {
                let (dpf, slope, extra) = t.eval(qa);
                let v = qa * self.inv_area;
                let tau_w = dpf * self.diameter / (4.0 * self.length);
                let re = if tau_w > 0.0 { 8.0 * self.density * v * v / tau_w } else { 0.0 };
                (dpf, slope, re, extra)
            }
            Law::None => (0.0, 0.0, 0.0, false),
        };
        Drop { dp: sign * (dpf + kin * qa * qa), slope: sf + 2.0 * kin * qa, re, extrapolated }
    }

    /// Volumetric flow (m³/s) that gives pressure drop `dp` (Pa) in steady flow,
    /// by bisection on the monotone ΔP(Q). For tests and reports.
    pub fn flow_for_drop(&self, dp: f64) -> f64 {
        let (mut lo, mut hi) = (0.0_f64, 1e-9_f64);
        while self.drop(hi).dp < dp.abs() && hi < 1.0 {
            hi *= 2.0;
        }
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if self.drop(mid).dp < dp.abs() {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi) * dp.signum()
    }
}

/// Shah's apparent-friction drop of developing laminar flow and its slope at
/// flow `q` ≥ 0, with x⁺ = `a`/q and `c_kin` = ρ/(2A²): ΔP = c_kin·Q²·g(x⁺),
/// g = 4·x⁺·f_app·Re = 13.76·√x⁺ + (1.25 + 64·x⁺ − 13.76·√x⁺)/(1 + C/x⁺²),
/// written in Q so that it is finite at Q = 0 (slope Hagen–Poiseuille).
#[inline]
fn shah_drop(a: f64, c_kin: f64, q: f64) -> (f64, f64) {
    const C: f64 = 0.00021;
    let sq = (a * q).sqrt();
    let n = 1.25 * q * q + 64.0 * a * q - 13.76 * sq * q;
    let dn = 2.5 * q + 64.0 * a - 20.64 * sq;
    let den = 1.0 + C * q * q / (a * a);
    let dden = 2.0 * C * q / (a * a);
    (c_kin * (13.76 * sq * q + n / den), c_kin * (20.64 * sq + (dn * den - n * dden) / (den * den)))
}

/// Laminar flow rate (m³/s) of a generalized-Newtonian fluid through a tube of
/// diameter `d` at wall shear stress `tau_w` (Pa), by the Rabinowitsch–Mooney
/// integral with composite Gauss–Legendre quadrature.
pub fn rabinowitsch_flow(rheology: &Rheology, d: f64, tau_w: f64) -> f64 {
    // 8-point Gauss–Legendre nodes and weights on [-1, 1].
    const X: [f64; 4] =
        [0.183_434_642_495_649_8, 0.525_532_409_916_329, 0.796_666_477_413_626_7, 0.960_289_856_497_536_3];
    const W: [f64; 4] =
        [0.362_683_783_378_362, 0.313_706_645_877_887_3, 0.222_381_034_453_374_5, 0.101_228_536_290_376_3];
    let panels = 16;
    let h = tau_w / panels as f64;
    let mut sum = 0.0;
    for p in 0..panels {
        let mid = (p as f64 + 0.5) * h;
        for k in 0..4 {
            for s in [-1.0, 1.0] {
                let tau = mid + s * X[k] * h / 2.0;
                sum += W[k] * h / 2.0 * tau * tau * rheology.shear_rate(tau);
            }
        }
    }
    std::f64::consts::PI * d * d * d / (8.0 * tau_w.powi(3)) * sum
}

/// Flow tables by the exact bits of their inputs (length, diameter, law and
/// its parameters): studies rebuild the plant for every variant and shot,
/// and building a table evaluates the shear rate some 10⁴ times.
type TableKey = [u64; 7];

/// Most tables kept; the oldest is dropped beyond it.
const TABLE_CACHE: usize = 64;

static TABLES: std::sync::Mutex<std::collections::VecDeque<(TableKey, std::sync::Arc<FlowTable>)>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());

fn table_key(length: f64, d: f64, rheology: &Rheology) -> TableKey {
    let b = f64::to_bits;
    match *rheology {
        Rheology::Newtonian { mu } => [0, b(length), b(d), b(mu), 0, 0, 0],
        Rheology::PowerLaw { k, n, eta0 } => [1, b(length), b(d), b(k), b(n), b(eta0), 0],
        Rheology::Carreau { eta0, eta_inf, lambda, n } => [2, b(length), b(d), b(eta0), b(eta_inf), b(lambda), b(n)],
    }
}

impl FlowTable {
    /// The table of `length` × `d` for `rheology`, built once per distinct
    /// input (thread-safe; the same bits as [`FlowTable::build`]).
    fn cached(length: f64, d: f64, rheology: &Rheology) -> std::sync::Arc<FlowTable> {
        let key = table_key(length, d, rheology);
        let lock = || TABLES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, t)) = lock().iter().find(|(k, _)| *k == key) {
            return t.clone();
        }
        // Built outside the lock, so that threads building other tables do not wait.
        let table = std::sync::Arc::new(FlowTable::build(length, d, rheology));
        let mut tables = lock();
        if !tables.iter().any(|(k, _)| *k == key) {
            if tables.len() >= TABLE_CACHE {
                tables.pop_front();
            }
            tables.push_back((key, table.clone()));
        }
        table
    }

    fn build(length: f64, d: f64, rheology: &Rheology) -> FlowTable {
        // Cumulative Rabinowitsch integral I(τ) = ∫₀^τ s²·γ̇(s) ds on a
        // geometric τ grid (ratio e^0.01), then Q(τ) = π·d³·I/(8·τ³); the
        // curve is then resampled on a uniform ln Q grid.
        const X: [f64; 2] = [0.339_981_043_584_856_3, 0.861_136_311_594_052_6];
        const W: [f64; 2] = [0.652_145_154_862_546_1, 0.347_854_845_137_453_9];
        let eta0 = rheology.viscosity(0.0);
        let c = std::f64::consts::PI * d * d * d / 8.0;
        // Below τ_lo the fluid is Newtonian at η0 (γ̇ ≤ 1e-6 s⁻¹).
        let mut tau = eta0 * 1e-6;
        let mut integral = tau.powi(4) / (4.0 * eta0);
        let ratio = 0.01_f64.exp();
        let mut ln_q = vec![(c * integral / tau.powi(3)).ln()];
        let mut ln_tau = vec![tau.ln()];
        while *ln_q.last().unwrap() < TABLE_Q_HI.ln() + 0.1 && ln_q.len() < 200_000 {
            let next = tau * ratio;
            let (mid, half) = (0.5 * (tau + next), 0.5 * (next - tau));
            for k in 0..2 {
                for sg in [-1.0, 1.0] {
                    let s = mid + sg * X[k] * half;
                    integral += W[k] * half * s * s * rheology.shear_rate(s);
                }
            }
            tau = next;
            ln_q.push((c * integral / tau.powi(3)).ln());
            ln_tau.push(tau.ln());
        }
        let ln_q0 = TABLE_Q_LO.ln();
        let h = (TABLE_Q_HI.ln() - ln_q0) / (TABLE_POINTS - 1) as f64;
        let mut ln_dp = Vec::with_capacity(TABLE_POINTS);
        let mut j = 0;
        let k4 = (4.0 * length / d).ln();
        for i in 0..TABLE_POINTS {
            let target = ln_q0 + h * i as f64;
            while j + 2 < ln_q.len() && ln_q[j + 1] < target {
                j += 1;
            }
            let t = (target - ln_q[j]) / (ln_q[j + 1] - ln_q[j]);
            ln_dp.push(k4 + ln_tau[j] + t * (ln_tau[j + 1] - ln_tau[j]));
        }
        FlowTable { ln_q0, h, q_lo: TABLE_Q_LO, dp_lo: ln_dp[0].exp(), q_hi: TABLE_Q_HI, ln_dp }
    }

    #[inline]
    fn eval(&self, q: f64) -> (f64, f64, bool) {
        if q <= self.q_lo {
            // Newtonian zero-shear plateau below the table.
            let s = self.dp_lo / self.q_lo;
            return (s * q, s, false);
        }
        let x = (q.ln() - self.ln_q0) / self.h;
        let n = self.ln_dp.len();
        let i = (x.floor() as usize).min(n - 2);
        let t = x - i as f64;
        let slope_ll = (self.ln_dp[i + 1] - self.ln_dp[i]) / self.h;
        let ln_dp = self.ln_dp[i] + t * (self.ln_dp[i + 1] - self.ln_dp[i]);
        let dp = ln_dp.exp();
        (dp, slope_ll * dp / q, q > self.q_hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flow-table cache returns the one table already built for the same
    /// input bits, equal to a fresh build, and builds another for other inputs.
    #[test]
    fn flow_table_cache_shares_one_table_per_input_and_matches_a_fresh_build() {
        let carreau = Rheology::Carreau { eta0: 3.9, eta_inf: 1.0e-3, lambda: 0.66, n: 0.4 };
        let (length, d) = (4.0e-3, 0.108e-3);
        let a = FlowTable::cached(length, d, &carreau);
        let b = FlowTable::cached(length, d, &carreau);
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        assert_eq!(*a, FlowTable::build(length, d, &carreau));
        let other = FlowTable::cached(length, d * (1.0 + f64::EPSILON), &carreau);
        assert!(!std::sync::Arc::ptr_eq(&a, &other));
        assert_eq!(*other, FlowTable::build(length, d * (1.0 + f64::EPSILON), &carreau));
        let power = Rheology::PowerLaw { k: 5.0, n: 0.4, eta0: 3.9 };
        assert_ne!(table_key(length, d, &carreau), table_key(length, d, &power));
    }
}
