//! The plant: pure physics of each element, SI units throughout.
//!
//! One module per element, each with documented parameters and the source of
//! every default (tags as in `docs/physics.md`: [V] read in the source, [R]
//! recalled from it, not verified, [D] derived). [`Params`] gathers them for one
//! gun, syringe, needle head and set of injection sites.

pub mod chamber;
pub mod fluid;
pub mod gas;
pub mod hydraulics;
pub mod line;
pub mod needle;
pub mod param;
pub mod piston;
pub mod supply;
pub mod syringe;
pub mod tissue;
pub mod tubing;
pub mod valve;

use chamber::ChamberParams;
use fluid::Fluid;
use hydraulics::Conduit;
use line::LineParams;
use piston::PistonParams;
use supply::SupplyParams;
use syringe::SyringeParams;
use tissue::TissueParams;
use valve::ValveParams;

pub use needle::{needle_inner_diameter, NEEDLE_GAUGES};
pub use tubing::TubingParams;

/// Every parameter of one gun and its load (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Params {
    /// Atmospheric pressure, Pa.
    pub p_atm: f64,
    /// Ambient temperature, K.
    pub t_ambient: f64,
    /// Supply and regulator.
    pub supply: SupplyParams,
    /// Solenoid valve.
    pub valve: ValveParams,
    /// Pneumatic line from the valve to the handpiece.
    pub line: LineParams,
    /// Piston chamber gas.
    pub chamber: ChamberParams,
    /// Piston and return spring.
    pub piston: PistonParams,
    /// Syringe barrel, stopper and liquid storage.
    pub syringe: SyringeParams,
    /// Injected fluid.
    pub fluid: Fluid,
    /// Optional extension tubing.
    pub tubing: Option<TubingParams>,
    /// Needles of the head (1 for a single needle, 3 to 9 for a stamp head).
    pub needles: Vec<Conduit>,
    /// One injection site per needle.
    pub sites: Vec<TissueParams>,
    /// Each shot goes into fresh sites (the gun moves between points).
    pub new_site_each_shot: bool,
}

use param::{real, section, units::*};

section! {
    /// `[ambient]`: the air around the gun.
    pub struct RawAmbient in "ambient" {
        /// Ambient (atmospheric) pressure, absolute.
        pressure_kpa: f64 as PRESSURE = real(KPA, gas::P_ATM / 1e3, 50.0, 110.0).src("the standard sea-level atmosphere"),
        /// Ambient temperature (supply gas, line gas, chamber wall).
        temperature_c: f64 as TEMPERATURE = real(CELSIUS, 20.0, 0.0, 45.0).src("room temperature"),
    }
}
