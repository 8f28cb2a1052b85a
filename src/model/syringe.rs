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
