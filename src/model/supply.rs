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

use super::param::{choice, real, section, units::*, Invalid, Reader};

section! {
    /// `[supply]`: the air supply and its regulator.
    pub struct RawSupply in "supply" {
        /// Regulator set pressure (the pressure the gun is driven with).
        pressure_bar: f64 as PRESSURE = real(BAR_GAUGE, 3.0, 0.2, 10.0)
            .src("middle of the 2–4 bar(g) drive pressures considered for a needle mesogun (derived)"),
        /// First-order time constant of the regulator.
        regulator_tau_ms: f64 as TAU = real(MS, 20.0, 0.0, 1000.0)
            .src("within the 10–50 ms of small mechanical regulators (recalled, not verified)"),
        /// Static droop of the regulator output with the flow drawn.
        droop_bar_per_100lpm: f64 as DROOP = real(BAR_PER_100LPM, 0.1, 0.0, 10.0)
            .src("a small mechanical regulator (derived)"),
        /// Volume of a finite reservoir (cartridge, tank) upstream of the regulator; either reservoir key enables it.
        reservoir_volume_ml: f64 as RESERVOIR_VOLUME = real(ML, 50.0, 1.0, 1e5)
            .note("absent: an unlimited supply; 50 mL when only supply.reservoir_pressure_bar is given").src("a small tank (derived)"),
        /// Initial pressure of the reservoir.
        reservoir_pressure_bar: f64 as RESERVOIR_PRESSURE = real(BAR_GAUGE, 6.0, 0.2, 300.0)
            .note("absent: an unlimited supply; 6 bar(g) when only supply.reservoir_volume_ml is given").src("a small tank (derived)"),
        /// Regulator kind: a fixed mechanical set pressure, or one the firmware commands.
        regulator: String as REGULATOR = choice("mechanical", &["mechanical", "proportional"]),
        /// Change of the regulator output per change of its inlet (reservoir) pressure.
        inlet_sensitivity: f64 as INLET_SENSITIVITY =
            real(ratio("(output change per inlet change)"), 0.0, 0.0, 0.5).src("an ideal regulator"),
        /// Highest set pressure a proportional regulator accepts.
        max_pressure_bar: f64 as MAX_PRESSURE = real(BAR_GAUGE, 8.0, 0.2, 10.0).src("a proportional regulator's range (derived)"),
    }
}

impl SupplyParams {
    /// The supply from its `[supply]` table at ambient temperature `t_amb`, K.
    pub fn from_raw(r: &RawSupply, c: &Reader, t_amb: f64) -> Result<SupplyParams, Invalid> {
        let p_set = c.real(&RawSupply::PRESSURE, r.pressure_bar)?;
        let tau = c.real(&RawSupply::TAU, r.regulator_tau_ms)?;
        let droop = c.real(&RawSupply::DROOP, r.droop_bar_per_100lpm)?;
        let reservoir = match (r.reservoir_volume_ml, r.reservoir_pressure_bar) {
            (None, None) => None,
            (v, pr) => Some(Reservoir {
                volume: c.real(&RawSupply::RESERVOIR_VOLUME, v)?,
                p_initial: c.real(&RawSupply::RESERVOIR_PRESSURE, pr)?,
            }),
        };
        let proportional = c.choice(&RawSupply::REGULATOR, &r.regulator)? == "proportional";
        Ok(SupplyParams {
            p_set,
            droop,
            tau,
            temperature: t_amb,
            reservoir,
            inlet_sensitivity: c.real(&RawSupply::INLET_SENSITIVITY, r.inlet_sensitivity)?,
            proportional,
            p_set_max: c.real(&RawSupply::MAX_PRESSURE, r.max_pressure_bar)?,
        })
    }
}
