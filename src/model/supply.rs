//! Supply and pressure regulator (see `docs/physics.md`, *Supply and regulator*).
//!
//! The regulator output is a pressure source with static droop and a
//! first-order response: τ·dp/dt = p_target − p, with
//! p_target = min(p_set − droop·Q_ANR, p_reservoir). An optional finite
//! reservoir (a cartridge or a small tank) empties isothermally through the
//! regulator, so the supply sags over a session.

use super::gas::{self, R_AIR};

/// Supply and regulator parameters (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SupplyParams {
    /// Regulator set pressure, Pa absolute. Default 3 bar(g): middle of the
    /// 2–4 bar(g) drive pressures considered for a needle mesogun [D].
    pub p_set: f64,
    /// Static droop, Pa per (m³/s ANR). Default 0.1 bar per 100 L/min ANR,
    /// a small mechanical regulator [D].
    pub droop: f64,
    /// First-order time constant of the regulator, s. Default 20 ms, in the
    /// 10–50 ms range for small mechanical regulators [R, not verified against a source].
    pub tau: f64,
    /// Supply gas temperature, K. Default 293.15 K.
    pub temperature: f64,
    /// Optional finite reservoir upstream of the regulator.
    pub reservoir: Option<Reservoir>,
    /// Supply-pressure effect: change of the output per change of the
    /// reservoir pressure from its initial value, – (single-stage regulators
    /// follow their inlet a little; 0 for an ideal regulator).
    pub inlet_sensitivity: f64,
    /// The firmware sets the regulator's set pressure (an electronic
    /// proportional regulator) instead of it being fixed.
    pub proportional: bool,
    /// Highest set pressure a proportional regulator accepts, Pa absolute.
    pub p_set_max: f64,
}

/// A finite gas reservoir that empties isothermally.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Reservoir {
    /// Volume, m³.
    pub volume: f64,
    /// Initial pressure, Pa absolute.
    pub p_initial: f64,
}

impl SupplyParams {
    /// Pressure the regulator steers towards for set pressure `p_set`, a
    /// reservoir pressure and an outflow (kg/s), Pa absolute.
    #[inline]
    pub fn target(&self, p_set: f64, p_reservoir: f64, q_mass: f64) -> f64 {
        let droop = self.droop * gas::Iso6358::anr_volume_flow(q_mass.max(0.0));
        match &self.reservoir {
            Some(r) => (p_set - droop + self.inlet_sensitivity * (p_reservoir - r.p_initial)).min(p_reservoir),
            None => p_set - droop,
        }
    }

    /// Advance the regulator output `p` by `dt` towards `target` (exact
    /// solution of the first-order lag for a constant target).
    #[inline]
    pub fn advance_output(&self, p: f64, target: f64, dt: f64) -> f64 {
        if self.tau <= 0.0 {
            target
        } else {
            target + (p - target) * (-dt / self.tau).exp()
        }
    }

    /// Reservoir pressure change for a mass drawn `dm` (kg), isothermal, Pa.
    #[inline]
    pub fn reservoir_drop(&self, dm: f64) -> f64 {
        match &self.reservoir {
            Some(r) => dm * R_AIR * self.temperature / r.volume,
            None => 0.0,
        }
    }
}
