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

impl Stribeck {
    /// Friction magnitude opposing motion at speed `v` ≥ 0, N, without the viscous term.
    #[inline]
    pub fn dry(&self, v: f64) -> f64 {
        let r2 = (v / self.v_s) * (v / self.v_s);
        if r2 > 50.0 {
            // e^−50 ≈ 2e−22: the Stribeck excess has vanished.
            return self.glide;
        }
        self.glide + (self.break_loose - self.glide) * (-r2).exp()
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
