//! What a step reuses: coefficients that depend only on the parameters and
//! the step length, and the scratch space of the implicit line solve.

use crate::model::piston::Stribeck;
use crate::model::Params;

/// Scratch space of the implicit line solve (segments + 1 unknowns: the
/// node pressures and the chamber's).
#[derive(Debug, Clone, Default)]
pub(super) struct LineScratch {
    /// Connection flows predicted with the old pressures, kg/s.
    pub(super) w_hat: Vec<f64>,
    /// ∂w/∂(p_a − p_b) over the step, kg/(s·Pa).
    pub(super) c: Vec<f64>,
    pub(super) lower: Vec<f64>,
    pub(super) diag: Vec<f64>,
    pub(super) upper: Vec<f64>,
    pub(super) rhs: Vec<f64>,
}

impl LineScratch {
    pub(super) fn new(segs: usize) -> LineScratch {
        let v = |n: usize| vec![0.0; n];
        LineScratch {
            w_hat: v(segs),
            c: v(segs),
            lower: v(segs + 1),
            diag: v(segs + 1),
            upper: v(segs + 1),
            rhs: v(segs + 1),
        }
    }
}

/// Coefficients that depend only on the parameters and the step length.
#[derive(Debug, Clone, Default)]
pub(super) struct StepCache {
    pub(super) dt: f64,
    pub(super) supply_decay: f64,
    pub(super) absorb_decay: Vec<f64>,
    pub(super) needle_ci: Vec<f64>,
    pub(super) tube_ci: f64,
    pub(super) fric: Stribeck,
    pub(super) seal: Stribeck,
    pub(super) z_max: f64,
    /// Pneumatic substeps per plant step: the explicit line ladder is
    /// stepped at most at its stability limit (1 without a line).
    pub(super) line_substeps: u32,
    /// The regulator's decay over one pneumatic substep.
    pub(super) supply_decay_sub: f64,
    /// The line would need more than [`MAX_LINE_SUBSTEPS`]: solve it linearly implicitly instead.
    pub(super) line_implicit: bool,
}

/// Most explicit line substeps per plant step. Beyond this the line's waves
/// are so much faster than the step that it acts as a lumped volume, which
/// the linearly implicit solve reproduces without resolving them.
pub const MAX_LINE_SUBSTEPS: u32 = 8;

impl StepCache {
    pub(super) fn refresh(&mut self, p: &Params, dt: f64) {
        if self.dt == dt {
            return;
        }
        self.dt = dt;
        self.supply_decay = if p.supply.tau > 0.0 { (-dt / p.supply.tau).exp() } else { 0.0 };
        self.absorb_decay = p.sites.iter().map(|s| s.absorption_decay(dt)).collect();
        self.needle_ci = p.needles.iter().map(|n| n.inertance() / dt).collect();
        self.tube_ci = p.tubing.as_ref().map(|t| t.conduit.inertance() / dt).unwrap_or(0.0);
        self.seal = p.piston.seal();
        self.fric = p.syringe.friction.plus(&self.seal);
        self.z_max = (p.syringe.fill_volume - p.syringe.dead_space) / p.syringe.area;
        let limit = p.line.explicit_step_limit(p.chamber.dead_volume);
        let needed = if dt <= limit { 1.0 } else { (dt / limit).ceil() };
        self.line_implicit = needed > MAX_LINE_SUBSTEPS as f64;
        self.line_substeps = if self.line_implicit { 1 } else { needed as u32 };
        let h = dt / self.line_substeps as f64;
        self.supply_decay_sub = if p.supply.tau > 0.0 { (-h / p.supply.tau).exp() } else { 0.0 };
    }
}
