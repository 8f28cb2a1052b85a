//! Air properties and compressible flow through restrictions.
//!
//! * ISO 6358-1:2013 sonic conductance form (C, b, m) for valves and fittings
//!   (SMC catalogue front matter [V]; see `docs/physics.md`, *Solenoid valve*).
//! * Sanville (1971) ideal-orifice form as used by Richer & Hurmuzlu (2000),
//!   kept for validation and for orifices of known geometry (Sanville, BHRA
//!   2nd Fluid Power Symposium, 1971).
//!
//! Every function takes and returns SI units: Pa (absolute), K, kg/s, m³/(s·Pa).

/// Specific gas constant of dry air, J/(kg·K).
pub const R_AIR: f64 = 287.05;
/// Ratio of specific heats of air, –.
pub const GAMMA: f64 = 1.4;
/// Specific heat of air at constant volume, J/(kg·K).
pub const CV_AIR: f64 = R_AIR / (GAMMA - 1.0);
/// Standard (ANR, ISO 8778) density, kg/m³ (ISO 8778 [R]).
pub const RHO_ANR: f64 = 1.185;
/// Standard (ANR, ISO 8778) temperature, K.
pub const T_ANR: f64 = 293.15;
/// Standard atmospheric pressure, Pa.
pub const P_ATM: f64 = 101_325.0;
/// Dynamic viscosity of air at 20 °C, Pa·s (standard property).
pub const MU_AIR: f64 = 1.81e-5;
/// Pressure ratio above which the ISO 6358 law is replaced by a linear
/// (laminar) branch, as Simscape's *Constant Area Pneumatic Orifice (ISO
/// 6358)* does (laminar threshold 0.995–0.999, MathWorks documentation [V]): keeps the flow
/// derivative finite as p2/p1 → 1.
pub const LAMINAR_RATIO: f64 = 0.999;

/// 1 dm³/(s·bar) expressed in m³/(s·Pa).
pub const DM3_PER_S_BAR: f64 = 1e-8;

/// ISO 6358 flow element: sonic conductance `c` (m³/(s·Pa)), critical
/// pressure ratio `b` (–) and subsonic exponent `m` (–).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Iso6358 {
    /// Sonic conductance, m³/(s·Pa).
    pub c: f64,
    /// Critical pressure ratio, –.
    pub b: f64,
    /// Subsonic exponent, – (0.5 is the classic elliptic law).
    pub m: f64,
}

/// Mass flow through an ISO 6358 element and its derivative with respect to
/// the downstream pressure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flow {
    /// Mass flow from the first to the second port, kg/s (negative: reverse).
    pub q: f64,
    /// ∂q/∂p_second, kg/(s·Pa) (≤ 0).
    pub dq_dp2: f64,
    /// True when the element is choked.
    pub choked: bool,
}

impl Iso6358 {
    /// Mass flow from port 1 (pressure `pa`, temperature `ta`) to port 2
    /// (pressure `pb`, temperature `tb`), either direction, scaled by the
    /// opening fraction `open` in [0, 1]. Also returns ∂q/∂pb.
    #[inline]
    pub fn flow(&self, open: f64, pa: f64, ta: f64, pb: f64, tb: f64) -> Flow {
        let c = self.c * open;
        if c <= 0.0 || pa == pb {
            return Flow {
                q: 0.0,
                dq_dp2: if c <= 0.0 { 0.0 } else { self.laminar_slope(c, pa.max(pb), ta) },
                choked: false,
            };
        }
        if pa > pb {
            let (q, dq_dr, choked) = self.forward(c, pa, ta, pb / pa);
            // r = pb/pa, dr/dpb = 1/pa.
            Flow { q, dq_dp2: dq_dr / pa, choked }
        } else {
            let (q, dq_dr, choked) = self.forward(c, pb, tb, pa / pb);
            // Reverse flow: q = -f(pb, pa/pb); ∂q/∂pb = -(∂f/∂p1 + ∂f/∂r·∂r/∂pb)
            // with f linear in p1: ∂f/∂p1 = f/pb, ∂r/∂pb = -pa/pb².
            let d = -(q / pb - dq_dr * pa / (pb * pb));
            Flow { q: -q, dq_dp2: d, choked }
        }
    }

    /// Slope ∂q/∂p2 at p2 = p1 on the laminar branch, kg/(s·Pa), negative.
    fn laminar_slope(&self, c: f64, p1: f64, t1: f64) -> f64 {
        let qc = c * RHO_ANR * p1 * (T_ANR / t1).sqrt();
        -qc * self.ratio_factor(LAMINAR_RATIO) / ((1.0 - LAMINAR_RATIO) * p1)
    }

    /// Subsonic factor φ(r) = [1 − ((r − b)/(1 − b))²]^m for b < r ≤ 1.
    #[inline]
    fn ratio_factor(&self, r: f64) -> f64 {
        let s = (r - self.b) / (1.0 - self.b);
        let base = (1.0 - s * s).max(0.0);
        if self.m == 0.5 {
            base.sqrt()
        } else {
            base.powf(self.m)
        }
    }

    /// Forward flow for upstream p1, T1 and ratio r = p2/p1 < 1: (q, ∂q/∂r, choked).
    #[inline]
    fn forward(&self, c: f64, p1: f64, t1: f64, r: f64) -> (f64, f64, bool) {
        let qc = c * RHO_ANR * p1 * (T_ANR / t1).sqrt();
        if r <= self.b {
            (qc, 0.0, true)
        } else if r < LAMINAR_RATIO {
            let s = (r - self.b) / (1.0 - self.b);
            let base = 1.0 - s * s;
            let phi = if self.m == 0.5 { base.sqrt() } else { base.powf(self.m) };
            // dφ/dr = m·base^(m−1)·(−2s/(1−b))
            let dphi = if base > 0.0 { self.m * phi / base * (-2.0 * s / (1.0 - self.b)) } else { 0.0 };
            (qc * phi, qc * dphi, false)
        } else {
            let phi_l = self.ratio_factor(LAMINAR_RATIO);
            let k = qc * phi_l / (1.0 - LAMINAR_RATIO);
            (k * (1.0 - r), -k, false)
        }
    }

    /// Volumetric flow at standard (ANR) conditions, m³/s, for a mass flow.
    pub fn anr_volume_flow(q_mass: f64) -> f64 {
        q_mass / RHO_ANR
    }
}

/// Sanville ideal-orifice constants for air (Richer & Hurmuzlu 2000, eqs. 39–40).
pub mod sanville {
    use super::{GAMMA, R_AIR};

    /// Critical pressure ratio (2/(γ+1))^(γ/(γ−1)) = 0.5283.
    pub fn critical_ratio() -> f64 {
        (2.0 / (GAMMA + 1.0)).powf(GAMMA / (GAMMA - 1.0))
    }

    /// C1 = sqrt(γ/R·(2/(γ+1))^((γ+1)/(γ−1))), √(kg·K/J)·…, = 0.040418 for air.
    pub fn c1() -> f64 {
        (GAMMA / R_AIR * (2.0 / (GAMMA + 1.0)).powf((GAMMA + 1.0) / (GAMMA - 1.0))).sqrt()
    }

    /// C2 = sqrt(2γ/(R(γ−1))) = 0.156174 for air.
    pub fn c2() -> f64 {
        (2.0 * GAMMA / (R_AIR * (GAMMA - 1.0))).sqrt()
    }

    /// Mass flow through an orifice of effective area `cf_a` (m²) from `pu`
    /// (Pa, abs) at `tu` (K) to `pd` (Pa, abs), kg/s.
    pub fn mass_flow(cf_a: f64, pu: f64, tu: f64, pd: f64) -> f64 {
        let r = pd / pu;
        if r <= critical_ratio() {
            cf_a * c1() * pu / tu.sqrt()
        } else {
            cf_a * c2() * pu / tu.sqrt() * r.powf(1.0 / GAMMA) * (1.0 - r.powf((GAMMA - 1.0) / GAMMA)).max(0.0).sqrt()
        }
    }

    /// Effective area C_f·A (m²) that gives the same choked flow as an ISO 6358
    /// sonic conductance `c` (m³/(s·Pa)): C_f·A = C·ρ0·√T0 / C1 [D]; 1 dm³/(s·bar)
    /// ↔ 5.02 mm², the catalogue rule S ≈ 5.0·C (CKD M3G/M4G manual [V]).
    pub fn effective_area_from_conductance(c: f64) -> f64 {
        c * super::RHO_ANR * super::T_ANR.sqrt() / c1()
    }
}

/// Darcy friction factor with a smooth laminar-to-turbulent blend:
/// 64/Re below Re = 2000, Blasius 0.3164·Re^−¼ above Re = 4000, and a C¹
/// cubic (smoothstep) blend of the two in between (see `docs/physics.md`, *Needle
/// hydraulics*).
/// Returns (f, df/dRe).
#[inline]
pub fn darcy_friction(re: f64) -> (f64, f64) {
    let re = re.max(1e-12);
    if re <= 2000.0 {
        (64.0 / re, -64.0 / (re * re))
    } else {
        let q = re.sqrt().sqrt();
        let ft = 0.3164 / q;
        let dft = -0.25 * ft / re;
        if re >= 4000.0 {
            (ft, dft)
        } else {
            let fl = 64.0 / re;
            let dfl = -64.0 / (re * re);
            let s = (re - 2000.0) / 2000.0;
            let w = s * s * (3.0 - 2.0 * s);
            let dw = 6.0 * s * (1.0 - s) / 2000.0;
            ((1.0 - w) * fl + w * ft, (1.0 - w) * dfl + w * dft + dw * (ft - fl))
        }
    }
}
