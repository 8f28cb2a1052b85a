//! Reference problems that carry their exact answer, shared by the
//! validation tests (`tests/closed_forms.rs`) and the benchmarks
//! (`benches/reference.rs`), as in diffsol's test models: each builds the
//! plant or element and gives the closed-form solution to compare with.

use crate::model::chamber::Thermal;
use crate::model::fluid::{Fluid, Rheology};
use crate::model::gas::{GAMMA, RHO_ANR, R_AIR, T_ANR};
use crate::model::hydraulics::Conduit;
use crate::scenario::{self, Scenario, ScenarioError, Source};
use crate::sim::Plant;

/// Water at 20 °C (1 mPa·s, 1000 kg/m³).
pub fn water() -> Fluid {
    Fluid {
        name: "water".into(),
        density: 1000.0,
        compressibility: 4.6e-10,
        rheology: Rheology::Newtonian { mu: 1.0e-3 },
    }
}

/// Laminar flow of water through a needle: Hagen–Poiseuille,
/// ΔP = 128·μ·L·Q/(π·d⁴).
#[derive(Debug, Clone, Copy)]
pub struct Poiseuille {
    /// Length, m.
    pub length: f64,
    /// Bore, m.
    pub diameter: f64,
}

impl Poiseuille {
    /// A 30G × 13 mm needle.
    pub const NEEDLE_30G: Poiseuille = Poiseuille { length: 13e-3, diameter: 0.159e-3 };

    /// The needle as mesobench models it (no minor losses), with water.
    pub fn conduit(&self) -> Conduit {
        Conduit::new(self.length, self.diameter, 0.0, &water())
    }

    /// The exact pressure drop at flow `q`, m³/s, Pa.
    pub fn exact_drop(&self, q: f64) -> f64 {
        128.0 * 1.0e-3 * self.length * q / (std::f64::consts::PI * self.diameter.powi(4))
    }
}

/// The reference gun with overrides and its piston blocked (the chamber is
/// a fixed volume): the plant of the pneumatic reference problems.
pub fn blocked_plant(sets: &[&str]) -> Result<Plant, ScenarioError> {
    Ok(Plant::new(blocked(sets)?.params))
}

/// The reference scenario with overrides, its piston blocked.
fn blocked(sets: &[&str]) -> Result<Scenario, ScenarioError> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let mut sc = scenario::load(&Source::default_scenario(), &sets, "reference")?;
    sc.params.syringe.friction.break_loose = 1e9;
    sc.params.syringe.friction.glide = 1e9;
    Ok(sc)
}

/// A closed adiabatic chamber at 6 bar(a) venting through a choked exhaust
/// (b = 0.5283): p(t) = p_i·[1 + (γ−1)/2·(A_e·σ·√(R·T_i)/V)·t]^(−2γ/(γ−1)),
/// the closed-form adiabatic tank discharge, with A_e·σ = C·ρ0·√(T0·R) from
/// the ISO 6358 choked flow. Valid while the exhaust is choked.
#[derive(Debug, Clone)]
pub struct Blowdown {
    /// The plant, chamber at the initial state, valve closed.
    pub plant: Plant,
    /// Initial pressure, Pa.
    pub p_i: f64,
    /// Initial temperature, K.
    pub t_i: f64,
    k: f64,
}

impl Blowdown {
    /// The problem.
    pub fn new() -> Result<Blowdown, ScenarioError> {
        let sc = blocked(&["chamber.thermal=\"energy\"", "chamber.wall_h_w_per_m2k=0", "valve.exhaust_b=0.5283"])?;
        let mut plant = Plant::new(sc.params);
        let (p_i, t_i) = (6e5, 293.15);
        plant.state.p_c = p_i;
        plant.state.t_c = t_i;
        let v = plant.params.chamber.dead_volume;
        let ae_sigma = plant.params.valve.exhaust.c * RHO_ANR * (T_ANR * R_AIR).sqrt();
        let k = (GAMMA - 1.0) / 2.0 * ae_sigma * (R_AIR * t_i).sqrt() / v;
        Ok(Blowdown { plant, p_i, t_i, k })
    }

    /// The exact chamber pressure at time `t`, Pa.
    pub fn exact_pressure(&self, t: f64) -> f64 {
        self.p_i * (1.0 + self.k * t).powf(-2.0 * GAMMA / (GAMMA - 1.0))
    }

    /// The exact (isentropic) temperature at pressure `p`, K.
    pub fn exact_temperature(&self, p: f64) -> f64 {
        self.t_i * (p / self.p_i).powf((GAMMA - 1.0) / GAMMA)
    }

    /// The pressure below which the exhaust is no longer safely choked, Pa.
    pub fn end_pressure(&self) -> f64 {
        self.plant.params.p_atm / 0.5283 * 1.05
    }
}

/// A polytropic chamber filled from a constant supply through a fully open,
/// choked valve: dp/dt = α_in·R·T_s·C·ρ0·p_s/V, a linear ramp while
/// p/p_s < b.
#[derive(Debug, Clone)]
pub struct ChokedFill {
    /// The plant, chamber at ambient, valve closed (open it to fill).
    pub plant: Plant,
}

impl ChokedFill {
    /// The problem.
    pub fn new() -> Result<ChokedFill, ScenarioError> {
        let sc = blocked(&[
            "valve.model=\"catalogue\"",
            "valve.response_on_ms=0.05",
            "supply.regulator_tau_ms=0",
            "supply.droop_bar_per_100lpm=0",
            "valve.b=0.5",
        ])?;
        Ok(ChokedFill { plant: Plant::new(sc.params) })
    }

    /// The exact slope of the chamber pressure while choked, Pa/s.
    pub fn exact_slope(&self) -> f64 {
        let p = &self.plant.params;
        let alpha_in = match p.chamber.thermal {
            Thermal::Polytropic { alpha_in, .. } => alpha_in,
            Thermal::Energy { .. } => GAMMA,
        };
        alpha_in * R_AIR * p.supply.temperature * p.valve.inlet.c * RHO_ANR * p.supply.p_set / p.chamber.dead_volume
    }

    /// The pressure up to which the inlet stays choked (with a 5 % margin), Pa.
    pub fn end_pressure(&self) -> f64 {
        0.95 * self.plant.params.valve.inlet.b * self.plant.params.supply.p_set
    }
}
