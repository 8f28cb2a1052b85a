//! Piston, plunger and their friction (see `docs/physics.md`, *Piston,
//! plunger and friction*).
//!
//! m·ẍ = (p_c − p_a)·A_p − (F0 + k_s·x) − F_fric − (p_syr − p_a)·A_syr, with
//! end stops at home and at full stroke. The piston pushes the syringe
//! plunger through a one-way pawl: forward it carries the plunger (stopper
//! friction and liquid pressure load it), backward it returns alone under
//! its spring while the plunger stays where it is. Friction is Stribeck with
//! a stick state (Karnopp): F = F_c + (F_bl − F_c)·e^{−(v/v_s)²} + β·v.

/// Piston and return-spring parameters (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PistonParams {
    /// Moving mass (piston, rod, plunger), kg. Default 10 g [D].
    pub mass: f64,
    /// Piston area, m². Default: 8 mm bore [D].
    pub area: f64,
    /// Return spring preload, N.
    pub spring_preload: f64,
    /// Return spring rate, N/m.
    pub spring_rate: f64,
    /// Stroke to the front stop, m.
    pub stroke: f64,
    /// Piston seal Coulomb friction, N (0.486 N, Richer's 3/4″ cylinder, public re-implementation of Richer &
    /// Hurmuzlu 2000 [V there]).
    pub seal_coulomb: f64,
    /// Piston seal viscous friction, N·s/m (4.47 N·s/m, same source).
    pub seal_viscous: f64,
}

/// Stribeck friction law with a break-loose force (SI).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Stribeck {
    /// Break-loose (static) force, N.
    pub break_loose: f64,
    /// Glide (Coulomb) force, N.
    pub glide: f64,
    /// Stribeck velocity, m/s.
    pub v_s: f64,
    /// Viscous coefficient, N·s/m.
    pub viscous: f64,
}

/// e^−r2. Not inlined, so that the exponential is not evaluated
/// speculatively in the steps (the fast sliding ones) that skip it.
#[inline(never)]
fn decay(r2: f64) -> f64 {
    (-r2).exp()
}

impl Stribeck {
    /// Friction magnitude opposing motion at speed `v` ≥ 0, N, without the viscous term.
    #[inline]
    pub fn dry(&self, v: f64) -> f64 {
        let r2 = (v / self.v_s) * (v / self.v_s);
        if r2 > 50.0 {
            // e^−50 ≈ 2e−22: the Stribeck excess has vanished.
            return self.glide;
        }
        self.glide + (self.break_loose - self.glide) * decay(r2)
    }

    /// Combine two friction laws acting on one body (same velocity).
    pub fn plus(&self, other: &Stribeck) -> Stribeck {
        // The Stribeck velocity of the sum is weighted by each law's excess.
        let ea = self.break_loose - self.glide;
        let eb = other.break_loose - other.glide;
        let v_s = if ea + eb > 0.0 { (ea * self.v_s + eb * other.v_s) / (ea + eb) } else { self.v_s };
        Stribeck {
            break_loose: self.break_loose + other.break_loose,
            glide: self.glide + other.glide,
            v_s,
            viscous: self.viscous + other.viscous,
        }
    }
}

impl PistonParams {
    /// Seal friction as a Stribeck law with no break-loose excess.
    pub fn seal(&self) -> Stribeck {
        Stribeck { break_loose: self.seal_coulomb, glide: self.seal_coulomb, v_s: 1e-3, viscous: self.seal_viscous }
    }
}

use super::param::{real, section, units::*, Invalid, Reader};

section! {
    /// `[piston]`: the piston, its seal and its return spring.
    pub struct RawPiston in "piston" {
        /// Piston bore.
        diameter_mm: f64 as DIAMETER = real(MM, 8.0, 2.0, 50.0).src("derived"),
        /// Moving mass: piston, rod and plunger.
        mass_g: f64 as MASS = real(G, 10.0, 0.5, 500.0)
            .src("gives a piston/liquid mode of about 1.6 ms with a BD 1 mL syringe (derived)"),
        /// Return spring preload.
        spring_preload_n: f64 as SPRING_PRELOAD = real(N, 3.0, 0.0, 200.0).src("derived"),
        /// Return spring rate.
        spring_rate_n_per_mm: f64 as SPRING_RATE = real(N_PER_MM, 0.5, 0.0, 50.0).src("derived"),
        /// Stroke to the front stop.
        stroke_mm: f64 as STROKE = real(MM, 5.0, 0.1, 50.0).src("derived"),
        /// Piston seal Coulomb friction.
        seal_coulomb_n: f64 as SEAL_COULOMB = real(N, 0.486, 0.0, 50.0)
            .src("Richer's 3/4-inch cylinder, public re-implementation of Richer & Hurmuzlu (2000)"),
        /// Piston seal viscous friction.
        seal_viscous_n_s_per_m: f64 as SEAL_VISCOUS = real(N_S_PER_M, 4.47, 0.0, 1000.0)
            .src("Richer's 3/4-inch cylinder, public re-implementation of Richer & Hurmuzlu (2000)"),
    }
}

impl PistonParams {
    /// The piston from its `[piston]` table.
    pub fn from_raw(pi: &RawPiston, c: &Reader) -> Result<PistonParams, Invalid> {
        let bore = c.real(&RawPiston::DIAMETER, pi.diameter_mm)?;
        Ok(PistonParams {
            mass: c.real(&RawPiston::MASS, pi.mass_g)?,
            area: std::f64::consts::PI * bore * bore / 4.0,
            spring_preload: c.real(&RawPiston::SPRING_PRELOAD, pi.spring_preload_n)?,
            spring_rate: c.real(&RawPiston::SPRING_RATE, pi.spring_rate_n_per_mm)?,
            stroke: c.real(&RawPiston::STROKE, pi.stroke_mm)?,
            seal_coulomb: c.real(&RawPiston::SEAL_COULOMB, pi.seal_coulomb_n)?,
            seal_viscous: c.real(&RawPiston::SEAL_VISCOUS, pi.seal_viscous_n_s_per_m)?,
        })
    }
}
