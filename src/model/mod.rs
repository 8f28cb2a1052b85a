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
pub mod piston;
pub mod supply;
pub mod syringe;
pub mod tissue;
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

/// Nominal regular-wall needle inner diameters by gauge, m (ISO 9626
/// regular wall; Wikipedia needle-gauge chart [V]).
pub const NEEDLE_GAUGES: [(u32, f64); 6] =
    [(27, 0.210e-3), (30, 0.159e-3), (31, 0.133e-3), (32, 0.108e-3), (33, 0.108e-3), (34, 0.0826e-3)];

/// Inner diameter of a regular-wall needle of the given gauge, m.
pub fn needle_inner_diameter(gauge: u32) -> Option<f64> {
    NEEDLE_GAUGES.iter().find(|(g, _)| *g == gauge).map(|(_, d)| *d)
}

/// Extension tubing between the syringe and the needle head.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TubingParams {
    /// The tube as a hydraulic conduit.
    pub conduit: Conduit,
    /// Wall compliance of the tube plus the head's liquid, m³/Pa.
    pub compliance: f64,
}

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
