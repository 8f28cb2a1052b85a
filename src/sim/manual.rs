//! A manual shot: the operator of [`crate::control::manual`] pushing the
//! plunger of the same syringe, needle, fluid and tissue plant as the gun.
//!
//! The gun's drive is taken out (valve never energised, so the chamber stays
//! at ambient; no return spring, no piston seal) and the thumb force enters
//! the piston's force balance through [`Drive::force`], its damping
//! implicitly. The operator's logic runs at every plant step.

use super::plant::{Drive, Plant, SimError};
use crate::control::manual::{OperatorParams, ShotPlan};
use crate::model::tissue::TissueParams;
use crate::model::Params;

/// Longest a manual shot may last before it is reported as stalled, s.
pub const MAX_SHOT_TIME: f64 = 60.0;

/// The outcome of one manual shot (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ManualShot {
    /// Volume delivered into the tissue, m³.
    pub dose: f64,
    /// Volume refluxed along the needle track, m³.
    pub leak: f64,
    /// Plunger-swept volume, m³.
    pub expelled: f64,
    /// From the first push to the end of delivery, s.
    pub duration: f64,
    /// Time from the first push to the stop decision, s.
    pub decision_time: f64,
    /// Largest thumb force, N.
    pub peak_force: f64,
    /// Largest needle flow, m³/s.
    pub peak_flow: f64,
    /// Largest tissue gauge pressure, Pa.
    pub peak_tissue_pressure: f64,
    /// Tip depth at the end of the stroke, m.
    pub final_depth: f64,
    /// Times the stopper broke loose (stick-slip events).
    pub breakaways: u32,
    /// Plant steps taken.
    pub steps: u64,
}

/// Errors of a manual shot.
#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    /// The plant failed numerically.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// The shot did not finish in [`MAX_SHOT_TIME`].
    #[error("manual shot still delivering after {0} s (is the stopper force beyond the hand's reach?)")]
    Stalled(f64),
}

/// The gun's plant with its pneumatic drive taken out, for a hand on the plunger.
pub fn manual_params(mut p: Params) -> Params {
    p.piston.spring_preload = 0.0;
    p.piston.spring_rate = 0.0;
    p.piston.seal_coulomb = 0.0;
    p.piston.seal_viscous = 0.0;
    // The thumb follows the rod over the whole barrel.
    p.piston.stroke = 1.0;
    p
}

/// Tissue at tip depth `d` for a site drawn at the intended depth `d0`.
///
/// Reflux onset scales with the track length (∝ depth). Inside the dermis
/// nothing else changes; as the tip approaches and passes the dermis–fat
/// junction the opening pressure, compliance and resistance move
/// geometrically from the site's own values by the ratio of the
/// subcutaneous to the intradermal preset (smoothstep over the last
/// quarter of the dermis before the junction and as far past it).
pub fn tissue_at_depth(site: &TissueParams, d0: f64, dermis: f64, d: f64) -> TissueParams {
    let mut t = site.clone();
    t.leak_pressure = site.leak_pressure * (d / d0).max(0.1);
    if d0 >= dermis {
        return t;
    }
    let band = 0.25 * dermis;
    let x = ((d - (dermis - band)) / (2.0 * band)).clamp(0.0, 1.0);
    let w = x * x * (3.0 - 2.0 * x);
    if w > 0.0 {
        let (id, sc) = (
            TissueParams::preset("intradermal").expect("preset"),
            TissueParams::preset("subcutaneous").expect("preset"),
        );
        t.p_open *= (sc.p_open / id.p_open).powf(w);
        t.compliance *= (sc.compliance / id.compliance).powf(w);
        t.resistance *= (sc.resistance / id.resistance).powf(w);
        // The bleb's nonlinearity: the inverse stiffening volume² and the
        // inverse dissection pressure (0: none) move linearly.
        let inv = |x: f64| if x > 0.0 { 1.0 / x } else { 0.0 };
        let back = |x: f64| if x > 0.0 { 1.0 / x } else { 0.0 };
        let s2 = (1.0 - w) * inv(site.stiffening_volume.powi(2)) + w * inv(sc.stiffening_volume.powi(2));
        t.stiffening_volume = back(s2).sqrt();
        t.dissection_pressure = back((1.0 - w) * inv(site.dissection_pressure) + w * inv(sc.dissection_pressure));
    }
    t
}

/// One manual shot of `target` m³ from the plant's current state.
///
/// The plant must have been built from [`manual_params`]; its sites are the
/// tissue at the intended depth (drawn by the caller), and are restored at
/// the end.
pub fn manual_shot(
    plant: &mut Plant,
    pop: &OperatorParams,
    plan: &ShotPlan,
    target: f64,
    dt: f64,
) -> Result<ManualShot, ManualError> {
    let area = plant.params.syringe.area;
    let sites = plant.params.sites.clone();
    plant.new_sites();
    plant.state.x_p = 0.0;
    plant.state.v_p = 0.0;
    plant.state.stuck = true;
    let z0 = plant.state.z;
    let expelled0 = plant.state.expelled;
    let delivered0: f64 = plant.state.delivered.iter().sum();
    let leaked0: f64 = plant.state.leaked.iter().sum();
    let stored0 = plant.stored_volume();
    let steps0 = plant.steps();
    let travel_target = target / area;
    let (k, b) = (pop.stiffness, pop.damping);
    // Commanded position starts where the preload is felt.
    let mut x_cmd = z0 + pop.preload / k;
    let mut v_seen = 0.0;
    let mut t = 0.0;
    let mut decided: Option<f64> = None;
    let mut released: Option<f64> = None;
    let mut depth = pop.depth;
    let mut next_depth_update = 0.0;
    let mut out = ManualShot {
        dose: 0.0,
        leak: 0.0,
        expelled: 0.0,
        duration: 0.0,
        decision_time: f64::NAN,
        peak_force: 0.0,
        peak_flow: 0.0,
        peak_tissue_pressure: 0.0,
        final_depth: depth,
        breakaways: 0,
        steps: 0,
    };
    let result = loop {
        let travel = plant.state.z - z0;
        // Tip depth follows the stroke's progress; tissue updated every ms.
        if t >= next_depth_update {
            let progress = (travel / travel_target).clamp(0.0, 1.0);
            depth = pop.depth + plan.drift * progress;
            for (site, base) in plant.params.sites.iter_mut().zip(&sites) {
                *site = tissue_at_depth(base, pop.depth, pop.dermis, depth);
            }
            next_depth_update += 1e-3;
        }
        // Stop decision from the reading, anticipating at the speed seen.
        if decided.is_none()
            && (travel + plan.reading >= travel_target - plan.anticipation * v_seen || plant.state.syringe_empty)
        {
            decided = Some(t);
        }
        if let (Some(td), None) = (decided, released) {
            if t >= td + plan.reaction {
                released = Some(t);
            }
        }
        let v_int = plan.flow / area;
        let (v_cmd, gain) = match released {
            None => (v_int * (t / pop.ramp).min(1.0), 1.0),
            Some(tr) => (0.0, (-(t - tr) / pop.release).exp()),
        };
        let v = plant.state.v_p.max(0.0);
        let mut force = gain * (k * (x_cmd - plant.state.z) + b * v_cmd)
            + gain * (plan.tremor(pop.tremor_rms, t) + plan.pulse_force(pop.pulse_width, t));
        let mut damping = gain * b;
        if force - damping * v < 0.0 {
            force = 0.0;
            damping = 0.0;
        }
        out.peak_force = out.peak_force.max(force - damping * v);
        plant.advance(&Drive { coil: 0.0, regulator_setpoint: f64::NAN, force, force_damping: damping }, dt);
        t += dt;
        x_cmd += v_cmd * dt;
        let v_new = plant.state.v_p.max(0.0);
        v_seen += (v_new - v_seen) * (dt / 0.1).min(1.0);
        if plant.signals.breakaway {
            out.breakaways += 1;
        }
        out.peak_flow = out.peak_flow.max(plant.signals.q_total);
        for p in &plant.signals.p_site {
            out.peak_tissue_pressure = out.peak_tissue_pressure.max(*p);
        }
        if plant.steps().is_multiple_of(64) {
            if let Err(e) = plant.check() {
                break Err(ManualError::Sim(e));
            }
        }
        if let Some(tr) = released {
            let flows_stopped = plant.state.q_needle.iter().all(|q| q.abs() < 1e-13);
            if t - tr > 5.0 * pop.release && plant.state.v_p <= 0.0 && flows_stopped {
                break Ok(());
            }
        }
        if t > MAX_SHOT_TIME {
            break Err(ManualError::Stalled(MAX_SHOT_TIME));
        }
    };
    plant.params.sites = sites;
    plant.check()?;
    result?;
    out.dose = plant.state.delivered.iter().sum::<f64>() - delivered0;
    out.leak = plant.state.leaked.iter().sum::<f64>() - leaked0;
    out.expelled = plant.state.expelled - expelled0;
    super::session::check_balance(
        0,
        plant.state.t * 1e3,
        out.expelled,
        out.dose,
        out.leak,
        plant.stored_volume() - stored0,
    )?;
    out.duration = t;
    out.decision_time = decided.unwrap_or(f64::NAN);
    out.final_depth = depth;
    out.steps = plant.steps() - steps0;
    Ok(out)
}
