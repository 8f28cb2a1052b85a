//! The needle head: one or more needles, each a hydraulic conduit (see
//! `docs/physics.md`, *Needle hydraulics*; the conduit law is in
//! [`super::hydraulics`]).

use super::fluid::Fluid;
use super::hydraulics::Conduit;
use super::param::{fmt_num, int, invalid, list, real, real_from, real_opt, section, units::*, Invalid, Reader};

/// Nominal regular-wall needle inner diameters by gauge, m (ISO 9626
/// regular wall; Wikipedia needle-gauge chart [V]).
pub const NEEDLE_GAUGES: [(u32, f64); 6] =
    [(27, 0.210e-3), (30, 0.159e-3), (31, 0.133e-3), (32, 0.108e-3), (33, 0.108e-3), (34, 0.0826e-3)];

/// Nominal outer diameters by gauge, m (ISO 9626 tubing; Wikipedia
/// needle-gauge chart [V]). Thin and extra-thin walls share the OD.
pub const NEEDLE_OUTER_DIAMETERS: [(u32, f64); 6] =
    [(27, 0.4128e-3), (30, 0.3112e-3), (31, 0.2604e-3), (32, 0.2350e-3), (33, 0.2096e-3), (34, 0.1842e-3)];

/// Thinnest wall a bore may leave on its gauge's OD, m: just under the
/// 0.05 mm regular wall of 33G and 34G, leaving room for thin and
/// extra-thin walls [D].
pub const MIN_WALL: f64 = 0.04e-3;

/// Inner diameter of a regular-wall needle of the given gauge, m.
pub fn needle_inner_diameter(gauge: u32) -> Option<f64> {
    NEEDLE_GAUGES.iter().find(|(g, _)| *g == gauge).map(|(_, d)| *d)
}

/// Outer diameter of a needle of the given gauge, m.
pub fn needle_outer_diameter(gauge: u32) -> Option<f64> {
    NEEDLE_OUTER_DIAMETERS.iter().find(|(g, _)| *g == gauge).map(|(_, d)| *d)
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
        /// Entrance (hub-to-needle contraction) loss coefficient.
        entrance_loss_k: f64 as ENTRANCE_LOSS = real(ONE, 0.5, 0.0, 5.0)
            .src("sharp-edged inlet flush with the wall (Idelchik, Handbook of Hydraulic Resistance; Crane Technical Paper 410)"),
        /// Exit loss coefficient (the jet's kinetic energy, not recovered in the tissue).
        exit_loss_k: f64 as EXIT_LOSS = real(ONE, 1.0, 0.0, 5.0)
            .src("Borda–Carnot loss of a discharge into a large volume (Idelchik, Handbook of Hydraulic Resistance; Crane Technical Paper 410)"),
        /// Deprecated lumped minor-loss coefficient K (replaces the entrance and exit losses and the developing-flow term).
        minor_loss_k: f64 as MINOR_LOSS = real_opt(ONE, "none: split losses (entrance, exit, developing flow)", 0.0, 10.0)
            .note("deprecated: an explicit lumped override; the run warns. Use needle.entrance_loss_k and needle.exit_loss_k"),
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
    let devs = c.per_needle(&RawNeedle::ID_DEVIATION, &nd.id_deviation_pct, count)?;
    if let Some(od) = needle_outer_diameter(gauge as u32) {
        let max_bore = od - 2.0 * MIN_WALL;
        let allowed = |what: &str| {
            format!(
                "{what} at most {} mm: a {gauge}G needle's outer diameter is {} mm (ISO 9626) and its wall at least {} mm",
                fmt_num(max_bore * 1e3),
                fmt_num(od * 1e3),
                fmt_num(MIN_WALL * 1e3)
            )
        };
        if id > max_bore {
            return Err(invalid(RawNeedle::DIAMETER.key, fmt_num(id * 1e3), allowed("a bore")));
        }
        if let Some(dv) = devs.iter().find(|dv| id * (1.0 + *dv / 100.0) > max_bore) {
            return Err(invalid(
                RawNeedle::ID_DEVIATION.key,
                fmt_num(*dv),
                allowed(&format!("a deviation that keeps the {} mm bore", fmt_num(id * 1e3))),
            ));
        }
    }
    let lumped = match nd.minor_loss_k {
        None => None,
        Some(_) => {
            for (p, v) in [(&RawNeedle::ENTRANCE_LOSS, nd.entrance_loss_k), (&RawNeedle::EXIT_LOSS, nd.exit_loss_k)] {
                if let Some(v) = v {
                    return Err(invalid(
                        p.key,
                        fmt_num(v),
                        format!("not together with {} (the deprecated lumped K replaces the split losses): remove one of them", RawNeedle::MINOR_LOSS.key),
                    ));
                }
            }
            Some(c.real_or(&RawNeedle::MINOR_LOSS, nd.minor_loss_k, 0.0)?)
        }
    };
    let k_in = c.real(&RawNeedle::ENTRANCE_LOSS, nd.entrance_loss_k)?;
    let k_out = c.real(&RawNeedle::EXIT_LOSS, nd.exit_loss_k)?;
    Ok(devs
        .iter()
        .map(|dv| {
            let d = id * (1.0 + dv / 100.0);
            match lumped {
                Some(k) => Conduit::new(nlen, d, k, fluid),
                None => Conduit::needle(nlen, d, k_in, k_out, fluid),
            }
        })
        .collect())
}
