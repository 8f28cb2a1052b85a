//! A manual shot: the operator of [`crate::control::manual`] pushing the
//! plunger of the same syringe, needle, fluid and tissue plant as the gun.
//!
//! The gun's drive is taken out (valve never energised, so the chamber stays
//! at ambient; no return spring, no piston seal) and the thumb force enters
//! the piston's force balance through [`Drive::force`], its damping
//! implicitly. The operator's logic runs at every plant step; in the
//! adaptive mode the stop decision and the release are located as events.

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
        if self.decision_due(plant, travel) {
            self.decided = Some(self.t);
        }
        if self.release_due() {
            self.released = Some(self.t);
        }
    }

    /// Not decided yet, and the reading (with the anticipated travel) has
    /// reached the mark, or the syringe is empty.
    fn decision_due(&self, plant: &Plant, travel: f64) -> bool {
        let plan = self.plan;
        self.decided.is_none()
            && (travel + plan.reading >= self.travel_target - plan.anticipation * self.v_seen
                || plant.state.syringe_empty)
    }

    /// Decided, not yet released, and the reaction time has passed.
    fn release_due(&self) -> bool {
        matches!((self.decided, self.released), (Some(td), None) if self.t >= td + self.plan.reaction)
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

    /// What a trial step changes of the hand.
    fn snapshot(&self) -> HandState {
        HandState { x_cmd: self.x_cmd, v_seen: self.v_seen, t: self.t }
    }

    /// Back to the hand of [`Hand::snapshot`].
    fn restore(&mut self, s: HandState) {
        self.x_cmd = s.x_cmd;
        self.v_seen = s.v_seen;
        self.t = s.t;
    }

    /// The hand's pending events as bits: the stop decision would be taken
    /// now (bit 0), the release is due (bit 1). A step across which they
    /// change holds the event, as a change of the plant's mode does.
    fn events(&self, plant: &Plant) -> u64 {
        self.decision_due(plant, plant.state.z - self.z0) as u64 | (self.release_due() as u64) << 1
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

/// The part of the hand a trial step changes.
#[derive(Debug, Clone, Copy)]
struct HandState {
    x_cmd: f64,
    v_seen: f64,
    t: f64,
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

/// How a manual shot's plant steps are chosen (the scenario's `[solver]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stepping {
    /// Fixed steps of this length, s (`solver.mode = "fixed"`).
    Fixed(f64),
    /// Step doubling from a quarter of `step` (s) up, with relative
    /// tolerance `tolerance` (`solver.mode = "adaptive"`, see
    /// `src/sim/adaptive.rs`): the stop decision and the release are located
    /// as events.
    Adaptive {
        /// The fixed mode's step, s.
        step: f64,
        /// Relative tolerance on a step's local error.
        tolerance: f64,
    },
}

impl Stepping {
    /// The stepping a scenario's solver settings ask for.
    pub fn of(solver: &super::SolverSettings) -> Stepping {
        match solver.mode {
            super::SolverMode::Fixed => Stepping::Fixed(solver.effective_step()),
            super::SolverMode::Adaptive => {
                Stepping::Adaptive { step: solver.effective_step(), tolerance: solver.tolerance }
            }
        }
    }
}

/// One manual shot of `target` m³ from the plant's current state, at fixed
/// steps of `dt` s.
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
    manual_shot_stepped(plant, pop, plan, target, Stepping::Fixed(dt))
}

/// One manual shot as [`manual_shot`], stepped as `stepping` says.
pub fn manual_shot_stepped(
    plant: &mut Plant,
    pop: &OperatorParams,
    plan: &ShotPlan,
    target: f64,
    stepping: Stepping,
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
    let result = match stepping {
        Stepping::Fixed(dt) => push(plant, &mut hand, &mut out, dt),
        Stepping::Adaptive { step, tolerance } => push_adaptive(plant, &mut hand, &mut out, step, tolerance),
    };
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
        out.peak_force = out.peak_force.max(hand_step(plant, hand, dt));
        record_step(out, plant);
        if plant.steps().is_multiple_of(64) {
            plant.check()?;
        }
        if over(plant, hand)? {
            return Ok(());
        }
    }
}

/// Delivery is over ([`Hand::finished`]), or an error when the shot has
/// outlasted [`MAX_SHOT_TIME`].
fn over(plant: &Plant, hand: &Hand) -> Result<bool, ManualError> {
    if hand.finished(plant) {
        return Ok(true);
    }
    if hand.t > MAX_SHOT_TIME {
        return Err(ManualError::Stalled(MAX_SHOT_TIME));
    }
    Ok(false)
}

/// One step of `dt` under the hand; returns the thumb's force on the rod
/// at its start, N.
fn hand_step(plant: &mut Plant, hand: &mut Hand, dt: f64) -> f64 {
    let (drive, v_cmd) = hand.drive(plant);
    let v = plant.state.v_p.max(0.0);
    plant.advance(&drive, dt);
    hand.advance(plant, v_cmd, dt);
    drive.force - drive.force_damping * v
}

/// Step the plant under the hand until delivery is over, with steps chosen
/// by step doubling on a ladder of powers of two of h₀ = `step`/4, as the
/// gun's adaptive mode does (`src/sim/adaptive.rs`). The thumb's spring acts
/// through the force at each step's start, so the step is kept within 1/ω
/// of the thumb on the moving mass; the hand decides and lets go at step
/// boundaries, and a step across which the decision or the release falls
/// due is bisected down to h₀, like a change of the plant's mode.
fn push_adaptive(
    plant: &mut Plant,
    hand: &mut Hand,
    out: &mut ManualShot,
    step: f64,
    tolerance: f64,
) -> Result<(), ManualError> {
    use super::adaptive::{self, Adaptive};
    let h0 = step / adaptive::MIN_STEP_DIVISOR as f64;
    let mut ad = Adaptive::new(plant, tolerance);
    let omega = (hand.pop.stiffness / plant.params.piston.mass).sqrt().max(1e-300);
    let thumb_level = adaptive::level_within(1.0 / omega, h0);
    let mode = |plant: &Plant, hand: &Hand| adaptive::mode(plant) ^ hand.events(plant) << 62;
    let mut m = 0u64;
    let mut checked = plant.steps();
    loop {
        let travel = plant.state.z - hand.z0;
        hand.follow_depth(plant, travel);
        hand.decide(plant, travel);
        let aligned = if m == 0 { adaptive::MAX_LEVEL } else { m.trailing_zeros().min(adaptive::MAX_LEVEL) };
        let cap = aligned.min(thumb_level).min(adaptive::stable_level(plant, h0));
        let mut level = ad.level.min(cap);
        let mode0 = mode(plant, hand);
        let (len, force) = loop {
            if level == 0 {
                ad.level = 1;
                ad.unestimated();
                break (1, hand_step(plant, hand, h0));
            }
            let len = 1u64 << level;
            let h = len as f64 * h0;
            ad.save_start(plant, false);
            let start = hand.snapshot();
            hand_step(plant, hand, h);
            if mode(plant, hand) == mode0 {
                ad.save_full(plant);
                ad.restore_start(plant);
                hand.restore(start);
                let f1 = hand_step(plant, hand, 0.5 * h);
                let mode_mid = mode(plant, hand);
                let f2 = hand_step(plant, hand, 0.5 * h);
                let same_mode = mode_mid == mode0 && mode(plant, hand) == mode0;
                let err = if same_mode { ad.error(plant) } else { f64::INFINITY };
                if err <= 1.0 {
                    ad.accepted(len, false);
                    ad.level = adaptive::next_level(level, err);
                    break (len, f1.max(f2));
                }
            }
            ad.restore_start(plant);
            hand.restore(start);
            level -= 1;
            ad.level = level;
        };
        m += len;
        out.peak_force = out.peak_force.max(force);
        record_step(out, plant);
        if plant.steps() >= checked + 64 {
            plant.check()?;
            checked = plant.steps();
        }
        if over(plant, hand)? {
            return Ok(());
        }
    }
}
