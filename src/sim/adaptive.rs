//! Adaptive stepping (`solver.mode = "adaptive"`): the plant's step is
//! chosen by an error estimate instead of being fixed, and may span several
//! firmware ticks while the firmware has promised a steady output.
//!
//! Steps are powers of two of a smallest step h₀ (a quarter of the fixed
//! mode's step), aligned on their own length within each window of ticks, so
//! every window edge (a tick where the firmware acts) is a step boundary and
//! each step length keeps its coefficients cached. A step of 2h is taken
//! once whole and once as two steps of h (step doubling); their difference
//! estimates the local error of the first-order scheme, weighed against
//! `solver.tolerance` per state; the two half steps are kept. The local
//! error grows as h², so the next step is four times longer after an error
//! under 1/64 of the tolerance, twice as long under 1/4, and half as long
//! after a rejected step. A step in which the plant changes mode (the
//! plunger sticks or slips, the armature reaches or leaves a stop, the coil
//! current reaches zero, a needle's check valve or a site's reflux path
//! opens or closes, the syringe empties) is rejected as soon as the whole
//! step shows it, and bisected down to h₀, so each event is located within
//! h₀ instead of being stepped over. Where the firmware acts at every tick,
//! a quiet tick is stepped once and judged by how its increment differs
//! from the last step's (redone by step doubling when that estimate is too
//! large). The stiff parts stay linearly implicit (the plant's scheme is
//! unchanged), a pneumatic line stepped explicitly at h₀ stays explicit (at
//! most [`MAX_LINE_SUBSTEPS`] substeps of its stability limit per step), and
//! a moving armature limits the step to its explicit stability limit.

use super::plant::{Plant, PlantState, MAX_LINE_SUBSTEPS};
use crate::model::valve::Actuation;

/// Default relative tolerance on the local error of a step (`solver.tolerance`).
pub const TOLERANCE: f64 = 1e-3;
/// The smallest step is the fixed mode's step over this.
pub const MIN_STEP_DIVISOR: u64 = 4;
/// Pressure scale of the reservoir's sag per step, Pa.
pub const RESERVOIR_SCALE: f64 = 10.0;
/// Largest step: h₀·2^MAX_LEVEL.
pub const MAX_LEVEL: u32 = 8;
/// A step taken once, without step doubling, is kept when the estimate from
/// the last step's increment is within this fraction of the tolerance.
pub const SINGLE_STEP_ACCEPT: f64 = 0.5;

/// Scratch space and step-size memory of the adaptive stepper.
#[derive(Debug)]
pub struct Adaptive {
    start: PlantState,
    /// The compared states (see [`compared`]) at the start of the trial step.
    at_start: Vec<f64>,
    /// ... after the whole step of step doubling.
    at_full: Vec<f64>,
    /// ... now (after the two half steps, or the single step).
    now: Vec<f64>,
    /// Their weights, 1/(tolerance · scale), from the state now.
    weights: Vec<f64>,
    /// The increment of the compared states over the last accepted step.
    last_increment: Vec<f64>,
    /// Length of the last accepted step in smallest steps, when its error
    /// was estimated under a quarter of the tolerance in one mode (0 when not:
    /// the next step is not taken once on the strength of its increment).
    last_smooth_len: u64,
    /// Whether the trial step under way keeps its start for [`Adaptive::accepted`].
    tracking: bool,
    /// Level (step h₀·2^level) to try next.
    pub level: u32,
    /// Volume scale of the dose error, m³.
    pub volume_scale: f64,
    /// Relative tolerance on the local error of a step.
    pub tolerance: f64,
}

/// How many single states [`compared`] writes before the line's pressures.
const SCALARS: usize = 9;

/// The states the error estimate compares, in a fixed order: the pressures
/// (chamber, regulator, syringe, hub, reservoir), the chamber temperature,
/// the expelled volume, the valve's opening and coil current, the line's
/// node pressures, then every needle's delivered and leaked volumes.
fn compared(s: &PlantState, out: &mut Vec<f64>) {
    out.clear();
    let scalars: [f64; SCALARS] =
        [s.p_c, s.p_reg, s.p_s, s.p_hub, s.p_res, s.t_c, s.expelled, s.valve.opening, s.valve.current];
    out.extend_from_slice(&scalars);
    out.extend_from_slice(&s.line_p);
    out.extend_from_slice(&s.delivered);
    out.extend_from_slice(&s.leaked);
}

impl Adaptive {
    /// A stepper for `plant` with relative tolerance `tolerance`.
    pub fn new(plant: &Plant, tolerance: f64) -> Adaptive {
        Adaptive {
            start: plant.state.clone(),
            at_start: Vec::new(),
            at_full: Vec::new(),
            now: Vec::new(),
            weights: Vec::new(),
            last_increment: Vec::new(),
            last_smooth_len: 0,
            tracking: false,
            level: 0,
            volume_scale: 1e-9,
            tolerance,
        }
    }

    /// Save the state before a trial step; `track` keeps what a single
    /// step after it would be judged by (its increment, if it is accepted).
    pub fn save_start(&mut self, plant: &Plant, track: bool) {
        plant.save_state(&mut self.start);
        self.tracking = track;
        if track {
            compared(&plant.state, &mut self.at_start);
        }
    }
    /// Keep what the error estimate needs of the whole step.
    pub fn save_full(&mut self, plant: &Plant) {
        compared(&plant.state, &mut self.at_full);
    }

    /// Back to the state before the trial step.
    pub fn restore_start(&self, plant: &mut Plant) {
        plant.restore_state(&self.start);
    }

    /// The compared states now and their weights.
    fn weigh(&mut self, plant: &Plant) {
        let p = &plant.params;
        let b = &plant.state;
        compared(b, &mut self.now);
        let n = self.now.len();
        self.weights.resize(n, 0.0);
        let (w, now) = (&mut self.weights[..n], &self.now[..n]);
        let inv = 1.0 / self.tolerance;
        let atm = p.p_atm;
        // Pressures against their absolute level (the gauge level of a
        // vented chamber would make an atmosphere's rounding count).
        for (w, x) in w[..4].iter_mut().zip(&now[..4]) {
            *w = inv / x.abs().max(atm);
        }
        // A finite reservoir's sag sets the late doses of a session: its
        // drop is weighed against RESERVOIR_SCALE, not its level.
        w[4] = inv / RESERVOIR_SCALE;
        w[5] = inv / b.t_c;
        // Volumes against the dose scale.
        let vol = inv / self.volume_scale;
        w[6] = vol;
        // The valve: its opening, and the coil current against its full value.
        w[7] = inv;
        w[8] = match &p.valve.actuation {
            Actuation::Coil(c) => inv * c.resistance() / c.voltage,
            _ => 0.0,
        };
        let lines = SCALARS + b.line_p.len();
        for (w, x) in w[SCALARS..lines].iter_mut().zip(&now[SCALARS..lines]) {
            *w = inv / x.abs().max(atm);
        }
        for x in &mut w[lines..] {
            *x = vol;
        }
    }

    /// The weighed local error of the plant's state (two half steps)
    /// against the whole step's: 1 is the tolerance.
    pub fn error(&mut self, plant: &Plant) -> f64 {
        self.weigh(plant);
        weighed_max(self.now.iter().zip(&self.at_full).zip(&self.weights).map(|((x, y), w)| (x - y).abs() * w))
    }

    /// Whether a step of `len` smallest steps may be taken once, its error
    /// estimated from the last accepted step's increment: that step had the
    /// same length and a small error in one mode.
    pub fn single_step_allowed(&self, len: u64) -> bool {
        self.last_smooth_len == len
    }

    /// The weighed local error of a step taken once, estimated from how its
    /// increment differs from the last step's (of the same length): for a
    /// first-order step that difference is h²·ÿ, twice the local error.
    pub fn single_step_error(&mut self, plant: &Plant) -> f64 {
        self.weigh(plant);
        if self.now.len() != self.last_increment.len() {
            return f64::INFINITY;
        }
        let terms = self.now.iter().zip(&self.at_start).zip(&self.last_increment).zip(&self.weights);
        weighed_max(terms.map(|(((x, x0), d), w)| 0.5 * ((x - x0) - d).abs() * w))
    }

    /// Record an accepted step of `len` smallest steps (its compared states
    /// weighed by [`Adaptive::error`] or [`Adaptive::single_step_error`]),
    /// `smooth` when its estimated error was small in one mode.
    pub fn accepted(&mut self, len: u64, smooth: bool) {
        self.last_smooth_len = 0;
        if self.tracking && smooth {
            self.last_increment.clear();
            self.last_increment.extend(self.now.iter().zip(&self.at_start).map(|(x, x0)| x - x0));
            self.last_smooth_len = len;
        }
    }

    /// A step taken without an estimate (the smallest step, across an event).
    pub fn unestimated(&mut self) {
        self.last_smooth_len = 0;
    }
}

/// The largest of weighed errors; infinite if any is not a number.
fn weighed_max(terms: impl Iterator<Item = f64>) -> f64 {
    let mut e: f64 = 0.0;
    for v in terms {
        if v.is_nan() {
            return f64::INFINITY;
        }
        e = e.max(v);
    }
    e
}

/// The plant's discrete mode: a step across which it changes holds an event.
pub fn mode(plant: &Plant) -> u64 {
    let s = &plant.state;
    let p = &plant.params;
    let mut m = (s.stuck as u64)
        | ((s.v_p > 0.0) as u64) << 1
        | ((s.v_p < 0.0) as u64) << 2
        | ((s.x_p >= p.piston.stroke) as u64) << 3
        | ((s.x_p <= 0.0) as u64) << 4
        | ((s.valve.opening <= 0.0) as u64) << 5
        | ((s.valve.opening >= 1.0) as u64) << 6
        | ((s.valve.current <= 0.0) as u64) << 7
        | (s.syringe_empty as u64) << 8;
    let flows = &s.q_needle[..s.q_needle.len().min(24)];
    for (k, q) in flows.iter().enumerate() {
        m |= ((*q > 0.0) as u64) << (9 + k);
    }
    let leaks = &plant.signals.q_leak[..plant.signals.q_leak.len().min(24)];
    for (k, q) in leaks.iter().enumerate() {
        m |= ((*q > 0.0) as u64) << (33 + k);
    }
    m
}

/// The largest level whose step the plant's explicit parts allow now: a
/// moving armature (off its stops or with its coil current changing) is
/// stepped within its explicit stability limit, and a pneumatic line whose
/// smallest step is stepped explicitly keeps being stepped explicitly (at
/// most [`MAX_LINE_SUBSTEPS`] substeps of its stability limit), so a long
/// step does not turn its resolved waves into the lumped implicit line.
pub fn stable_level(plant: &Plant, h0: f64) -> u32 {
    let p = &plant.params;
    let mut level = MAX_LEVEL;
    let line_limit = MAX_LINE_SUBSTEPS as f64 * p.line.explicit_step_limit(p.chamber.dead_volume);
    if line_limit >= h0 {
        level = level_within(line_limit, h0);
    }
    let v = &plant.state.valve;
    if let Actuation::Coil(c) = &p.valve.actuation {
        if v.v != 0.0 || (v.x > 0.0 && v.x < c.stroke) {
            // Symplectic Euler on m·ẍ = −k·x is stable for h < 2/ω: keep h ≤ 1/ω.
            let omega = (c.spring_rate / c.armature_mass).sqrt().max(1e-300);
            level = level.min(level_within(1.0 / omega, h0));
        }
    }
    level
}

/// The largest level l ≤ MAX_LEVEL with h₀·2^l ≤ h (0 when h < 2h₀).
pub fn level_within(h: f64, h0: f64) -> u32 {
    let mut l = 0;
    while l < MAX_LEVEL && h0 * (1u64 << (l + 1)) as f64 <= h {
        l += 1;
    }
    l
}

/// The level to try after a step accepted at `level` with weighed error
/// `err` (≤ 1): the local error of the first-order step grows as h², so a
/// step four times longer is tried when err < 1/64 and twice as long when
/// err < 1/4.
pub fn next_level(level: u32, err: f64) -> u32 {
    if err < 1.0 / 64.0 {
        level + 2
    } else if err < 0.25 {
        level + 1
    } else {
        level
    }
}
