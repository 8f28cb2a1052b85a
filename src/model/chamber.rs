//! Piston chamber gas (see `docs/physics.md`, *Piston chamber*).
//!
//! * Polytropic (Richer & Hurmuzlu 2000): dp/dt = (R·T_s/V)(α_in·ṁ_in −
//!   α_out·ṁ_out) − α·(p/V)·dV/dt with V = V_dead + A_p·x.
//! * Energy: pressure and temperature as states, with inflow enthalpy at the
//!   supply temperature, outflow at the chamber temperature and wall heat
//!   exchange h·A_w·(T_w − T): V·dp/dt = γR(T_in·ṁ_in − T·ṁ_out) +
//!   (γ−1)·Q̇ − γ·p·dV/dt and dT/dt = T·(ṗ/p + V̇/V − ṁ/m). Use it at high
//!   repetition rates, where successive shots start with warmer or cooler gas.

use super::gas::{GAMMA, R_AIR};

/// Chamber thermal model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Thermal {
    /// Polytropic coefficients (Richer & Hurmuzlu 2000; α_in ≈ 1.4, α_out ≈ 1.0, α ≈ 1.2, J. Dyn. Sys. Meas. Control 122:416 [R]).
    Polytropic {
        /// Charging coefficient, –.
        alpha_in: f64,
        /// Discharging coefficient, –.
        alpha_out: f64,
        /// Compression/expansion coefficient, –.
        alpha: f64,
    },
    /// Gas temperature as a state with wall heat transfer.
    Energy {
        /// Wall heat transfer coefficient, W/(m²·K) (30–100 [D]).
        h: f64,
        /// Wall temperature, K.
        t_wall: f64,
    },
}

/// Chamber parameters (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChamberParams {
    /// Dead volume with the piston at home (ports, clearance), m³.
    pub dead_volume: f64,
    /// Thermal model.
    pub thermal: Thermal,
}

/// Time derivatives of the chamber gas for given flows.
#[derive(Debug, Clone, Copy)]
pub struct ChamberRates {
    /// dp/dt, Pa/s.
    pub dp: f64,
    /// ∂(dp/dt)/∂p through the flows' pressure dependence is added by the caller;
    /// this is the part from the volume change, 1/s.
    pub dp_dp_volume: f64,
    /// dT/dt, K/s (energy model; 0 otherwise).
    pub dt: f64,
    /// Multiplier turning a mass-flow derivative (kg/(s·Pa)) into a dp/dt
    /// derivative (1/s), for the inflow and the outflow branches.
    pub gain_in: f64,
    /// As `gain_in`, for outflow.
    pub gain_out: f64,
}

impl ChamberParams {
    /// Rates for pressure `p` (Pa abs), temperature `t` (K), volume `v` (m³),
    /// volume rate `dv` (m³/s), inflow `q_in` ≥ 0 at `t_in` and outflow
    /// `q_out` ≥ 0 (kg/s), wall area `a_w` (m²).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn rates(&self, p: f64, t: f64, v: f64, dv: f64, q_in: f64, t_in: f64, q_out: f64, a_w: f64) -> ChamberRates {
        match self.thermal {
            Thermal::Polytropic { alpha_in, alpha_out, alpha } => {
                let g = R_AIR * t_in / v;
                ChamberRates {
                    dp: g * (alpha_in * q_in - alpha_out * q_out) - alpha * p / v * dv,
                    dp_dp_volume: -alpha * dv / v,
                    dt: 0.0,
                    gain_in: g * alpha_in,
                    gain_out: g * alpha_out,
                }
            }
            Thermal::Energy { h, t_wall } => {
                let qdot = h * a_w * (t_wall - t);
                let dp = (GAMMA * R_AIR * (t_in * q_in - t * q_out) + (GAMMA - 1.0) * qdot - GAMMA * p * dv) / v;
                let m = p * v / (R_AIR * t);
                let dt = t * (dp / p + dv / v - (q_in - q_out) / m);
                ChamberRates {
                    dp,
                    dp_dp_volume: -GAMMA * dv / v,
                    dt,
                    gain_in: GAMMA * R_AIR * t_in / v,
                    gain_out: GAMMA * R_AIR * t / v,
                }
            }
        }
    }
}

use super::param::{choice, real, section, units::*, Invalid, Reader};

section! {
    /// `[chamber]`: the piston chamber's gas.
    pub struct RawChamber in "chamber" {
        /// Chamber volume with the piston at home (ports and clearance).
        dead_volume_ml: f64 as DEAD_VOLUME = real(ML, 0.5, 0.005, 100.0)
            .src("ports and clearance of a small single-acting cylinder (derived)"),
        /// Thermal model: polytropic coefficients, or the energy equation with wall heat exchange.
        thermal: String as THERMAL = choice("polytropic", &["polytropic", "energy"]),
        /// Polytropic coefficient while charging.
        alpha_in: f64 as ALPHA_IN = real(ONE, 1.4, 1.0, 1.4)
            .src("Richer & Hurmuzlu, J. Dyn. Sys. Meas. Control 122(3):416 (2000), as publicly re-implemented"),
        /// Polytropic coefficient while discharging.
        alpha_out: f64 as ALPHA_OUT = real(ONE, 1.0, 1.0, 1.4)
            .src("Richer & Hurmuzlu (2000), as publicly re-implemented"),
        /// Polytropic coefficient for compression and expansion.
        alpha: f64 as ALPHA = real(ONE, 1.2, 1.0, 1.4).src("Richer & Hurmuzlu (2000), as publicly re-implemented"),
        /// Gas–wall heat-transfer coefficient (energy model).
        wall_h_w_per_m2k: f64 as WALL_H = real(W_PER_M2K, 50.0, 0.0, 1000.0).src("within 30–100 W/(m²·K) (derived)"),
    }
}

impl ChamberParams {
    /// The chamber from its `[chamber]` table; the wall is at `t_amb`, K.
    pub fn from_raw(ch: &RawChamber, c: &Reader, t_amb: f64) -> Result<ChamberParams, Invalid> {
        let thermal = match c.choice(&RawChamber::THERMAL, &ch.thermal)? {
            "polytropic" => Thermal::Polytropic {
                alpha_in: c.real(&RawChamber::ALPHA_IN, ch.alpha_in)?,
                alpha_out: c.real(&RawChamber::ALPHA_OUT, ch.alpha_out)?,
                alpha: c.real(&RawChamber::ALPHA, ch.alpha)?,
            },
            _ => Thermal::Energy { h: c.real(&RawChamber::WALL_H, ch.wall_h_w_per_m2k)?, t_wall: t_amb },
        };
        Ok(ChamberParams { dead_volume: c.real(&RawChamber::DEAD_VOLUME, ch.dead_volume_ml)?, thermal })
    }
}
