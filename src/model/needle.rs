//! The needle head: one or more needles, each a hydraulic conduit (see
//! `docs/physics.md`, *Needle hydraulics*; the conduit law is in
//! [`super::hydraulics`]).

use super::fluid::Fluid;
use super::hydraulics::Conduit;
use super::param::{int, list, real, real_from, section, units::*, Invalid, Reader};

/// Nominal regular-wall needle inner diameters by gauge, m (ISO 9626
/// regular wall; Wikipedia needle-gauge chart [V]).
pub const NEEDLE_GAUGES: [(u32, f64); 6] =
    [(27, 0.210e-3), (30, 0.159e-3), (31, 0.133e-3), (32, 0.108e-3), (33, 0.108e-3), (34, 0.0826e-3)];

/// Inner diameter of a regular-wall needle of the given gauge, m.
pub fn needle_inner_diameter(gauge: u32) -> Option<f64> {
    NEEDLE_GAUGES.iter().find(|(g, _)| *g == gauge).map(|(_, d)| *d)
}

section! {
    /// `[needle]`: the needle head.
    pub struct RawNeedle in "needle" {
        /// Needle gauge (sets the inner diameter: 27, 30, 31, 32, 33 or 34).
        gauge: i64 as GAUGE = int(30, 1, 99).src("ISO 9626 regular wall (Wikipedia needle gauge comparison chart)")
            .note("one of 27, 30, 31, 32, 33, 34 unless needle.inner_diameter_mm is given"),
        /// Needle inner diameter.
        inner_diameter_mm: f64 as DIAMETER = real_from(MM, "needle.gauge", 0.05, 1.0),
        /// Needle length.
        length_mm: f64 as LENGTH = real(MM, 4.0, 0.5, 100.0).src("a 4 mm mesotherapy needle"),
        /// Number of needles in the head (1, or 3 to 9 for a stamp head).
        count: i64 as COUNT = int(1, 1, 9).src("a single needle"),
        /// Minor-loss coefficient K (entrance, exit and developing flow).
        minor_loss_k: f64 as MINOR_LOSS = real(ONE, 2.5, 0.0, 10.0).src("recalled, not verified: about 0.5 entrance plus 1 exit plus developing flow"),
        /// Deviation of each needle's bore from nominal, one value per needle.
        id_deviation_pct: Vec<f64> as ID_DEVIATION = list(PCT, "none: every needle nominal", 20.0),
    }
}

/// The needles of the head from the `[needle]` table, for `fluid`.
pub fn from_raw(nd: &RawNeedle, c: &Reader, fluid: &Fluid) -> Result<Vec<Conduit>, Invalid> {
    let count = c.int(&RawNeedle::COUNT, nd.count)? as usize;
    let gauge = c.int(&RawNeedle::GAUGE, nd.gauge)?;
    let id = match needle_inner_diameter(gauge as u32) {
        Some(d) => d,
        None => {
            let gauges: Vec<String> = NEEDLE_GAUGES.iter().map(|g| g.0.to_string()).collect();
            return Err(super::param::invalid(
                RawNeedle::GAUGE.key,
                gauge,
                format!("one of {} (or give needle.inner_diameter_mm)", gauges.join(", ")),
            ));
        }
    };
    let id = c.real_or(&RawNeedle::DIAMETER, nd.inner_diameter_mm, id * 1e3)?;
    let nlen = c.real(&RawNeedle::LENGTH, nd.length_mm)?;
    let k_minor = c.real(&RawNeedle::MINOR_LOSS, nd.minor_loss_k)?;
    let devs = c.per_needle(&RawNeedle::ID_DEVIATION, &nd.id_deviation_pct, count)?;
    Ok(devs.iter().map(|dv| Conduit::new(nlen, id * (1.0 + dv / 100.0), k_minor, fluid)).collect())
}
