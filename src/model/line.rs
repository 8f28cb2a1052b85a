//! Pneumatic line from the valve to the handpiece (see `docs/physics.md`,
//! *Pneumatic line*).
//!
//! The hose is split into `segments` lumped volumes joined by connections
//! that carry the mass flow as a state (inertance L_seg/A) against a
//! friction drop from the same smooth laminar/turbulent Darcy law as the
//! needle. The capacitance V_seg/(n·R·T) and inertance per unit length make a
//! ladder whose wave speed is √(n·R·T) (343 m/s for n = 1.4 at 20 °C), so the
//! transport delay L/c and the line volume are both reproduced; friction
//! gives the Andersen attenuation. A zero-length line (valve in the
//! handpiece) has no segments: the valve feeds the chamber directly.

use super::gas::{darcy_friction, MU_AIR, R_AIR};

/// Line parameters (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LineParams {
    /// Hose length, m (0: valve in the handpiece).
    pub length: f64,
    /// Hose inner diameter, m.
    pub diameter: f64,
    /// Number of lumped segments (≥ 4 when the length is not zero [D]).
    pub segments: usize,
    /// Polytropic exponent of the gas in the hose, – (1.4: adiabatic waves, c = 343 m/s).
    pub polytropic: f64,
    /// Gas temperature in the hose, K.
    pub temperature: f64,
}

impl LineParams {
    /// True when there is no hose (valve in the handpiece).
    pub fn is_absent(&self) -> bool {
        self.length <= 0.0 || self.segments == 0
    }
    /// Cross-section, m².
    pub fn area(&self) -> f64 {
        std::f64::consts::PI * self.diameter * self.diameter / 4.0
    }
    /// Total internal volume, m³.
    pub fn volume(&self) -> f64 {
        self.area() * self.length
    }
    /// Volume of one segment, m³.
    pub fn segment_volume(&self) -> f64 {
        self.volume() / self.segments as f64
    }
    /// Wave speed √(n·R·T), m/s.
    pub fn wave_speed(&self) -> f64 {
        (self.polytropic * R_AIR * self.temperature).sqrt()
    }
    /// Longest step at which the explicit (symplectic Euler) ladder is
    /// stable with a factor 2 to spare, s: 1/ω_max, with ω_max bounded by
    /// Gershgorin's theorem over the nodes (2·k_j·Σ 1/I at node j, k_j =
    /// n·R·T/V_j, I = l_seg/A), the chamber's dead volume closing the
    /// ladder with γ = 1.4. A uniform ladder gives ω_max = 2c/l_seg, so
    /// the limit is l_seg/(2c): half a segment's transit time.
    pub fn explicit_step_limit(&self, chamber_volume: f64) -> f64 {
        if self.is_absent() {
            return f64::INFINITY;
        }
        let inert = self.length / self.segments as f64 / self.area();
        let k_seg = self.polytropic * R_AIR * self.temperature / self.segment_volume();
        let k_ch = 1.4 * R_AIR * self.temperature / chamber_volume;
        let connections = if self.segments > 1 { 2.0 } else { 1.0 };
        let w2 = (2.0 * k_seg * connections / inert).max(2.0 * k_ch / inert);
        1.0 / w2.sqrt()
    }
    /// Transport delay L/c, s.
    pub fn transport_delay(&self) -> f64 {
        self.length / self.wave_speed()
    }
    /// Friction pressure drop over one connection for mass flow `w` (kg/s)
    /// at mean pressure `p` (Pa abs): (ΔP, dΔP/dw, Re).
    #[inline]
    pub fn connection_drop(&self, w: f64, p: f64) -> (f64, f64, f64) {
        let a = self.area();
        let d = self.diameter;
        let l = self.length / self.segments as f64;
        let rho = p / (R_AIR * self.temperature);
        let re = w.abs() * d / (a * MU_AIR);
        let (f, df) = darcy_friction(re);
        // ΔP = f·(l/d)·w|w|/(2ρA²)
        let k = l / (2.0 * d * rho * a * a);
        let dp = f * k * w * w.abs();
        let ddp = k * (2.0 * f * w.abs() + df * (d / (a * MU_AIR)) * w * w);
        (dp, ddp, re)
    }
}

use super::param::{int, real, section, units::*, Invalid, Reader};

section! {
    /// `[line]`: the pneumatic hose from the valve to the handpiece.
    pub struct RawLine in "line" {
        /// Hose length (0: the valve sits in the handpiece).
        length_mm: f64 as LENGTH = real(MM, 0.0, 0.0, 10_000.0).src("valve in the handpiece"),
        /// Hose inner diameter.
        inner_diameter_mm: f64 as DIAMETER = real(MM, 2.5, 0.5, 10.0).src("a common small pneumatic hose (derived)"),
        /// Number of lumped segments (used when the length is not zero).
        segments: i64 as SEGMENTS = int(8, 4, 64).src("at least 4 segments reproduce the delay and first resonances (derived)"),
        /// Polytropic exponent of the gas in the hose (1.4: adiabatic waves).
        polytropic: f64 as POLYTROPIC = real(ONE, 1.4, 1.0, 1.4).src("adiabatic waves"),
    }
}

impl LineParams {
    /// The line from its `[line]` table at ambient temperature `t_amb`, K.
    pub fn from_raw(l: &RawLine, c: &Reader, t_amb: f64) -> Result<LineParams, Invalid> {
        let length = c.real(&RawLine::LENGTH, l.length_mm)?;
        Ok(LineParams {
            length,
            diameter: c.real(&RawLine::DIAMETER, l.inner_diameter_mm)?,
            segments: if length > 0.0 { c.int(&RawLine::SEGMENTS, l.segments)? as usize } else { 0 },
            polytropic: c.real(&RawLine::POLYTROPIC, l.polytropic)?,
            temperature: t_amb,
        })
    }
}
