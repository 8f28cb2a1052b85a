//! Syringe barrel, plunger stopper and the liquid stored under pressure
//! (see `docs/physics.md`, *Syringe and liquid storage*).
//!
//! The liquid node stores the volume W(p) = C·(p − p_a) + V_air·(1 − p_a/p):
//! liquid and wall compliance C = κ·V_liquid + C_wall plus an optional
//! trapped air bubble compressed isothermally. Integrating W (not p) makes
//! the volume balance exact: expelled = delivered + leaked + ΔW.

use super::piston::Stribeck;

/// Syringe parameters (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SyringeParams {
    /// Barrel bore, m².
    pub area: f64,
    /// Liquid volume at the start of the session, m³.
    pub fill_volume: f64,
    /// Liquid that stays in the syringe when the stopper bottoms (dead space), m³.
    pub dead_space: f64,
    /// Stopper friction.
    pub friction: Stribeck,
    /// Barrel, stopper and rod compliance, m³/Pa.
    pub wall_compliance: f64,
    /// Trapped air bubble at atmospheric pressure, m³ (0: none).
    pub bubble: f64,
}

/// Presets: name, bore diameter (m), dead space (m³), nominal capacity (m³).
///
/// BD 1 mL bore 4.78 mm, BD 3 mL 8.66 mm, BD 5 mL 12.0 mm, BD 10 mL 14.5 mm
/// (public syringe-pump code [V]); BD Plastipak 1 mL dead space 0.07 mL
/// [V, BD EU syringes technical data sheet]; the larger syringes' dead space is taken
/// as 0.07 mL too [D].
pub const PRESETS: [(&str, f64, f64, f64); 4] = [
    ("bd_1ml", 4.78e-3, 0.07e-6, 1e-6),
    ("bd_3ml", 8.66e-3, 0.07e-6, 3e-6),
    ("bd_5ml", 12.0e-3, 0.07e-6, 5e-6),
    ("bd_10ml", 14.5e-3, 0.07e-6, 10e-6),
];

/// Stored-volume law of the liquid node (compliance and bubble), SI.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Storage {
    /// Linear compliance (liquid plus wall), m³/Pa.
    pub c: f64,
    /// Bubble volume at atmospheric pressure, m³.
    pub air: f64,
    /// Atmospheric pressure, Pa.
    pub p_atm: f64,
}

impl Storage {
    /// Stored volume at absolute pressure `p`, m³.
    #[inline]
    pub fn volume(&self, p: f64) -> f64 {
        self.c * (p - self.p_atm) + self.air * (1.0 - self.p_atm / p)
    }

    /// Compliance dW/dp at `p`, m³/Pa.
    #[inline]
    pub fn compliance(&self, p: f64) -> f64 {
        self.c + self.air * self.p_atm / (p * p)
    }

    /// Absolute pressure at stored volume `w` (the inverse of [`Storage::volume`]).
    #[inline]
    pub fn pressure(&self, w: f64) -> f64 {
        if self.air <= 0.0 {
            return self.p_atm + w / self.c;
        }
        // c·p² + B·p − V_air·p_a = 0, B = V_air − c·p_a − w; stable root.
        let b = self.air - self.c * self.p_atm - w;
        let disc = (b * b + 4.0 * self.c * self.air * self.p_atm).sqrt();
        if b < 0.0 {
            (-b + disc) / (2.0 * self.c)
        } else {
            2.0 * self.air * self.p_atm / (b + disc)
        }
    }
}

use super::param::{choice, fmt_num, invalid, real, real_from, section, units::*, Invalid, Reader};

/// Names of the [`PRESETS`], in order.
pub const PRESET_NAMES: [&str; 4] = ["bd_1ml", "bd_3ml", "bd_5ml", "bd_10ml"];

section! {
    /// `[syringe]`: the syringe barrel, its stopper and the liquid it holds.
    pub struct RawSyringe in "syringe" {
        /// Syringe preset: bore, dead space and capacity.
        preset: String as PRESET = choice("bd_1ml", &PRESET_NAMES)
            .src("bores used in public syringe-pump code; BD Plastipak 1 mL dead space (BD EU syringes technical data sheet)"),
        /// Barrel inner diameter.
        inner_diameter_mm: f64 as DIAMETER = real_from(MM, "syringe.preset", 1.0, 30.0),
        /// Liquid in the syringe at the start of the session.
        fill_ml: f64 as FILL = real_from(ML, "syringe.preset (its capacity)", 0.01, 50.0).note("more than the dead space, at most the barrel's capacity"),
        /// Liquid left in the syringe when the stopper bottoms.
        dead_space_ml: f64 as DEAD_SPACE = real_from(ML, "syringe.preset", 0.0, 1.0),
        /// Stopper break-loose (static) force.
        break_loose_n: f64 as BREAK_LOOSE = real(N, 4.0, 0.0, 50.0)
            .src("1 mL siliconised syringes: 2–10 N (Rathore et al., PDA J Pharm Sci Technol 65:468, 2011)")
            .note("at least syringe.glide_n"),
        /// Stopper glide (Coulomb) force.
        glide_n: f64 as GLIDE = real(N, 2.5, 0.0, 50.0)
            .src("1 mL siliconised syringes: 1–8 N (Rathore et al., PDA J Pharm Sci Technol 65:468, 2011)"),
        /// Stribeck velocity of the stopper friction.
        stribeck_velocity_mm_s: f64 as STRIBECK_VELOCITY = real(MM_S, 1.0, 0.01, 100.0).src("derived"),
        /// Viscous friction of the stopper.
        viscous_n_s_per_m: f64 as VISCOUS = real(N_S_PER_M, 20.0, 0.0, 1000.0).src("derived"),
        /// Compliance of the barrel, stopper and rod.
        wall_compliance_ul_per_bar: f64 as WALL_COMPLIANCE = real(UL_PER_BAR, 0.15, 0.0, 100.0)
            .src("placeholder (derived): measure it"),
        /// Trapped air bubble at atmospheric pressure.
        bubble_ul: f64 as BUBBLE = real(UL, 0.0, 0.0, 500.0).src("none"),
    }
}

impl SyringeParams {
    /// The syringe from its `[syringe]` table.
    pub fn from_raw(sy: &RawSyringe, c: &Reader) -> Result<SyringeParams, Invalid> {
        let preset = c.choice(&RawSyringe::PRESET, &sy.preset)?;
        let (_, d0, dead0, cap) = *PRESETS.iter().find(|p| p.0 == preset).expect("a declared preset");
        let d = c.real_or(&RawSyringe::DIAMETER, sy.inner_diameter_mm, d0 * 1e3)?;
        let fill = c.real_or(&RawSyringe::FILL, sy.fill_ml, cap * 1e6)?;
        let dead_space = c.real_or(&RawSyringe::DEAD_SPACE, sy.dead_space_ml, dead0 * 1e6)?;
        // The barrel holds its capacity: the preset's barrel length over the bore used.
        let capacity = cap * (d / d0).powi(2);
        if fill > capacity * (1.0 + 1e-9) {
            return Err(invalid(
                RawSyringe::FILL.key,
                fmt_num(fill * 1e6),
                format!(
                    "at most the barrel's capacity, {} mL ({} over a {} mm bore; a larger syringe.preset holds more)",
                    fmt_num(capacity * 1e6),
                    preset,
                    fmt_num(d * 1e3)
                ),
            ));
        }
        if dead_space >= fill {
            return Err(invalid(
                RawSyringe::FILL.key,
                fmt_num(fill * 1e6),
                format!("more than the dead space {} mL", fmt_num(dead_space * 1e6)),
            ));
        }
        let glide = c.real(&RawSyringe::GLIDE, sy.glide_n)?;
        let break_loose = c.real(&RawSyringe::BREAK_LOOSE, sy.break_loose_n)?;
        if break_loose < glide {
            return Err(invalid(
                RawSyringe::BREAK_LOOSE.key,
                fmt_num(break_loose),
                format!("at least syringe.glide_n = {}", fmt_num(glide)),
            ));
        }
        Ok(SyringeParams {
            area: std::f64::consts::PI * d * d / 4.0,
            fill_volume: fill,
            dead_space,
            friction: Stribeck {
                break_loose,
                glide,
                v_s: c.real(&RawSyringe::STRIBECK_VELOCITY, sy.stribeck_velocity_mm_s)?,
                viscous: c.real(&RawSyringe::VISCOUS, sy.viscous_n_s_per_m)?,
            },
            wall_compliance: c.real(&RawSyringe::WALL_COMPLIANCE, sy.wall_compliance_ul_per_bar)?,
            bubble: c.real(&RawSyringe::BUBBLE, sy.bubble_ul)?,
        })
    }
}

#[cfg(test)]
mod registry_tests {
    #[test]
    fn preset_names_follow_the_presets() {
        let names: Vec<&str> = super::PRESETS.iter().map(|p| p.0).collect();
        assert_eq!(names, super::PRESET_NAMES);
    }
}
