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

/// The operator's side of one manual shot: where the thumb is commanded,
/// what it has seen, and when it decided to stop and let go.
struct Hand<'a> {
    pop: &'a OperatorParams,
    plan: &'a ShotPlan,
    /// The sites at the intended depth, as drawn by the caller.
    sites: &'a [TissueParams],
    /// Plunger area, m².
    area: f64,
    /// Rod position at the first push, m.
    z0: f64,
    /// Rod travel that delivers the target, m.
    travel_target: f64,
    /// Commanded thumb position, m.
    x_cmd: f64,
    /// Rod speed as the operator perceives it (0.1 s lag), m/s.
    v_seen: f64,
    /// Time since the first push, s.
    t: f64,
    decided: Option<f64>,
    released: Option<f64>,
    /// Tip depth, m.
    depth: f64,
    next_depth_update: f64,
}

impl Hand<'_> {
    /// Tip depth follows the stroke's progress; the tissue is updated every ms.
    fn follow_depth(&mut self, plant: &mut Plant, travel: f64) {
        if self.t < self.next_depth_update {
            return;
        }
        let progress = (travel / self.travel_target).clamp(0.0, 1.0);
        self.depth = self.pop.depth + self.plan.drift * progress;
        for (site, base) in plant.params.sites.iter_mut().zip(self.sites) {
            *site = tissue_at_depth(base, self.pop.depth, self.pop.dermis, self.depth);
        }
        self.next_depth_update += 1e-3;
    }

    /// Stop decision from the reading, anticipating at the speed seen; the
    /// release follows after the reaction time.
    fn decide(&mut self, plant: &Plant, travel: f64) {
        let plan = self.plan;
        if self.decided.is_none()
            && (travel + plan.reading >= self.travel_target - plan.anticipation * self.v_seen
                || plant.state.syringe_empty)
        {
            self.decided = Some(self.t);
        }
        if let (Some(td), None) = (self.decided, self.released) {
            if self.t >= td + plan.reaction {
                self.released = Some(self.t);
            }
        }
    }

    /// The thumb's drive at this step and the commanded rod speed, m/s.
    fn drive(&self, plant: &Plant) -> (Drive, f64) {
        let (pop, plan, t) = (self.pop, self.plan, self.t);
        let (k, b) = (pop.stiffness, pop.damping);
        let v_int = plan.flow / self.area;
        let (v_cmd, gain) = match self.released {
            None => (v_int * (t / pop.ramp).min(1.0), 1.0),
            Some(tr) => (0.0, (-(t - tr) / pop.release).exp()),
        };
        let v = plant.state.v_p.max(0.0);
        let mut force = gain * (k * (self.x_cmd - plant.state.z) + b * v_cmd)
            + gain * (plan.tremor(pop.tremor_rms, t) + plan.pulse_force(pop.pulse_width, t));
        let mut damping = gain * b;
        // A thumb pushes; it never pulls the rod back.
        if force - damping * v < 0.0 {
            force = 0.0;
            damping = 0.0;
        }
        (Drive { coil: 0.0, regulator_setpoint: f64::NAN, force, force_damping: damping }, v_cmd)
    }

    /// Time, commanded position and perceived speed after a step of `dt`.
    fn advance(&mut self, plant: &Plant, v_cmd: f64, dt: f64) {
        self.t += dt;
        self.x_cmd += v_cmd * dt;
        let v_new = plant.state.v_p.max(0.0);
        self.v_seen += (v_new - self.v_seen) * (dt / 0.1).min(1.0);
    }

    /// Delivery is over: released for five release times, rod at rest and
    /// every needle flow stopped.
    fn finished(&self, plant: &Plant) -> bool {
        self.released.is_some_and(|tr| {
            let flows_stopped = plant.state.q_needle.iter().all(|q| q.abs() < 1e-13);
            self.t - tr > 5.0 * self.pop.release && plant.state.v_p <= 0.0 && flows_stopped
        })
    }
}

/// The plant's totals at the start of a manual shot, to difference at its end.
struct Totals {
    expelled: f64,
    delivered: f64,
    leaked: f64,
    stored: f64,
    steps: u64,
}

impl Totals {
    fn of(plant: &Plant) -> Self {
        Totals {
            expelled: plant.state.expelled,
            delivered: plant.state.delivered.iter().sum(),
            leaked: plant.state.leaked.iter().sum(),
            stored: plant.stored_volume(),
            steps: plant.steps(),
        }
    }
}

/// Peaks and stick-slip events after one step.
fn record_step(out: &mut ManualShot, plant: &Plant) {
    if plant.signals.breakaway {
        out.breakaways += 1;
    }
    out.peak_flow = out.peak_flow.max(plant.signals.q_total);
    for p in &plant.signals.p_site {
        out.peak_tissue_pressure = out.peak_tissue_pressure.max(*p);
    }
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
    let start = Totals::of(plant);
    let mut hand = Hand {
        pop,
        plan,
        sites: &sites,
        area,
        z0,
        travel_target: target / area,
        // Commanded position starts where the preload is felt.
        x_cmd: z0 + pop.preload / pop.stiffness,
        v_seen: 0.0,
        t: 0.0,
        decided: None,
        released: None,
        depth: pop.depth,
        next_depth_update: 0.0,
    };
    let mut out = ManualShot {
        dose: 0.0,
        leak: 0.0,
        expelled: 0.0,
        duration: 0.0,
        decision_time: f64::NAN,
        peak_force: 0.0,
        peak_flow: 0.0,
        peak_tissue_pressure: 0.0,
        final_depth: pop.depth,
        breakaways: 0,
        steps: 0,
    };
    let result = push(plant, &mut hand, &mut out, dt);
    let (duration, decided, depth) = (hand.t, hand.decided, hand.depth);
    plant.params.sites = sites;
    plant.check()?;
    result?;
    out.dose = plant.state.delivered.iter().sum::<f64>() - start.delivered;
    out.leak = plant.state.leaked.iter().sum::<f64>() - start.leaked;
    out.expelled = plant.state.expelled - start.expelled;
    super::session::check_balance(
        0,
        plant.state.t * 1e3,
        out.expelled,
        out.dose,
        out.leak,
        plant.stored_volume() - start.stored,
    )?;
    out.duration = duration;
    out.decision_time = decided.unwrap_or(f64::NAN);
    out.final_depth = depth;
    out.steps = plant.steps() - start.steps;
    Ok(out)
}

/// Step the plant under the hand until delivery is over.
fn push(plant: &mut Plant, hand: &mut Hand, out: &mut ManualShot, dt: f64) -> Result<(), ManualError> {
    loop {
        let travel = plant.state.z - hand.z0;
        hand.follow_depth(plant, travel);
        hand.decide(plant, travel);
        let (drive, v_cmd) = hand.drive(plant);
        let v = plant.state.v_p.max(0.0);
        out.peak_force = out.peak_force.max(drive.force - drive.force_damping * v);
        plant.advance(&drive, dt);
        hand.advance(plant, v_cmd, dt);
        record_step(out, plant);
        if plant.steps().is_multiple_of(64) {
            plant.check()?;
        }
        if hand.finished(plant) {
            return Ok(());
        }
        if hand.t > MAX_SHOT_TIME {
            return Err(ManualError::Stalled(MAX_SHOT_TIME));
        }
    }
}
