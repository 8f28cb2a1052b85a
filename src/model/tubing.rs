//! Optional extension tubing between the syringe and the needle head (see
//! `docs/physics.md`, *Extension tubing*): a conduit of the needle's law plus
//! a wall compliance.

use super::fluid::Fluid;
use super::hydraulics::Conduit;
use super::param::{real, section, units::*, Invalid, Reader};

/// Extension tubing between the syringe and the needle head.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TubingParams {
    /// The tube as a hydraulic conduit.
    pub conduit: Conduit,
    /// Wall compliance of the tube plus the head's liquid, m³/Pa.
    pub compliance: f64,
}

section! {
    /// `[tubing]`: extension tubing (absent: the needle sits on the syringe).
    pub struct RawTubing in "tubing" {
        /// Tube length.
        length_mm: f64 as LENGTH = real(MM, 150.0, 1.0, 3000.0)
            .src("about 15 cm on French electronic guns (AFME web page on injection aids in mesotherapy)"),
        /// Tube inner diameter.
        inner_diameter_mm: f64 as DIAMETER = real(MM, 0.5, 0.1, 5.0).src("derived"),
        /// Wall compliance of the tube and the head's liquid.
        compliance_ul_per_bar: f64 as COMPLIANCE = real(UL_PER_BAR_1, 0.3, 0.001, 100.0).src("derived"),
    }
}

impl TubingParams {
    /// The tubing from its `[tubing]` table, for `fluid`.
    pub fn from_raw(t: &RawTubing, c: &Reader, fluid: &Fluid) -> Result<TubingParams, Invalid> {
        let len = c.real(&RawTubing::LENGTH, t.length_mm)?;
        let id = c.real(&RawTubing::DIAMETER, t.inner_diameter_mm)?;
        let compliance = c.real(&RawTubing::COMPLIANCE, t.compliance_ul_per_bar)?;
        Ok(TubingParams { conduit: Conduit::new(len, id, 0.0, fluid), compliance })
    }
}
