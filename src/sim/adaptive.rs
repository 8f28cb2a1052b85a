//! Adaptive stepping (`solver.mode = "adaptive"`): the plant's step is
//! chosen by an error estimate instead of being fixed, and may span several
//! firmware ticks while the firmware has promised a steady output.
//!
//! Steps are powers of two of a smallest step h₀ (a quarter of the fixed
//! mode's step), aligned on their own length within each window of ticks, so
//! every window edge (a tick where the firmware acts) is a step boundary and
//! each step length keeps its coefficients cached. A step of 2h is taken
//! once whole and once as two steps of h (step doubling); their difference
//! estimates the local error of the first-order scheme, weighed against a
//! tolerance per state; the two half steps are kept. The step doubles after
//! a step whose error is under a quarter of the tolerance (the local error
//! grows as h²) and halves after a rejected one. A step in which the plant
//! changes mode (the plunger sticks or slips, the armature reaches or leaves
//! a stop, the coil current reaches zero, a needle's check valve or a site's
//! reflux path opens or closes, the syringe empties) is rejected down to h₀,
//! so each event is located within h₀ instead of being stepped over. The
//! stiff parts stay linearly implicit (the plant's scheme is unchanged), the
//! pneumatic line keeps its own stability limit (explicit substeps or the
//! implicit solve, in the plant), and a moving armature limits the step to
//! its explicit stability limit.

use super::plant::{Plant, PlantState};
use crate::model::valve::Actuation;

/// Relative tolerance on the local error of a step.
pub const TOLERANCE: f64 = 1e-3;
/// The smallest step is the fixed mode's step over this.
pub const MIN_STEP_DIVISOR: u64 = 4;
/// Pressure scale of the reservoir's sag per step, Pa.
pub const RESERVOIR_SCALE: f64 = 10.0;
/// Largest step: h₀·2^MAX_LEVEL.
pub const MAX_LEVEL: u32 = 8;

/// Scratch space and step-size memory of the adaptive stepper.
#[derive(Debug)]
pub struct Adaptive {
    start: PlantState,
    full: Compared,
    /// Level (step h₀·2^level) to try next.
    pub level: u32,
    /// Volume scale of the dose error, m³.
    pub volume_scale: f64,
}

/// The states the error estimate compares, from the whole step.
#[derive(Debug, Default)]
struct Compared {
    scalars: [f64; 9],
    line_p: Vec<f64>,
    delivered: Vec<f64>,
    leaked: Vec<f64>,
}

impl Compared {
    fn set(&mut self, s: &PlantState) {
        self.scalars = scalars(s);
        self.line_p.clone_from(&s.line_p);
        self.delivered.clone_from(&s.delivered);
        self.leaked.clone_from(&s.leaked);
    }
}

/// Pressures (absolute, against their level), then the rest.
fn scalars(s: &PlantState) -> [f64; 9] {
    [s.p_c, s.p_reg, s.p_res, s.p_s, s.p_hub, s.t_c, s.expelled, s.valve.opening, s.valve.current]
}

impl Adaptive {
    /// A stepper for `plant`.
    pub fn new(plant: &Plant) -> Adaptive {
        Adaptive { start: plant.state.clone(), full: Compared::default(), level: 0, volume_scale: 1e-9 }
    }

    /// Save the state before a trial step.
    pub fn save_start(&mut self, plant: &Plant) {
        plant.save_state(&mut self.start);
    }
    /// Keep what the error estimate needs of the whole step.
    pub fn save_full(&mut self, plant: &Plant) {
        self.full.set(&plant.state);
    }
    /// Back to the state before the trial step.
    pub fn restore_start(&self, plant: &mut Plant) {
        plant.restore_state(&self.start);
    }

    /// The weighed local error of the plant's state (two half steps)
    /// against the whole step's: 1 is the tolerance.
    pub fn error(&self, plant: &Plant) -> f64 {
        let p = &plant.params;
        let b = &plant.state;
        let tol = TOLERANCE;
        let rel = |x: f64, y: f64, scale: f64| (x - y).abs() / (tol * scale);
        let a = &self.full.scalars;
        let bs = scalars(b);
        // Pressures against their absolute level (the gauge level of a
        // vented chamber would make an atmosphere's rounding count).
        let mut e: f64 = 0.0;
        for k in [0, 1, 3, 4] {
            e = e.max(rel(a[k], bs[k], bs[k].abs().max(p.p_atm)));
        }
        // A finite reservoir's sag sets the late doses of a session: its
        // drop is weighed against RESERVOIR_SCALE, not its level.
        e = e.max(rel(a[2], bs[2], RESERVOIR_SCALE));
        for (x, y) in self.full.line_p.iter().zip(&b.line_p) {
            e = e.max(rel(*x, *y, y.abs().max(p.p_atm)));
        }
        e = e.max(rel(a[5], bs[5], bs[5]));
        // Volumes against the dose scale.
        e = e.max(rel(a[6], bs[6], self.volume_scale));
        for (x, y) in self.full.delivered.iter().zip(&b.delivered) {
            e = e.max(rel(*x, *y, self.volume_scale));
        }
        for (x, y) in self.full.leaked.iter().zip(&b.leaked) {
            e = e.max(rel(*x, *y, self.volume_scale));
        }
        // The valve: its opening, and the coil current against its full value.
        e = e.max(rel(a[7], bs[7], 1.0));
        if let Actuation::Coil(c) = &p.valve.actuation {
            let i_full = c.voltage / c.resistance();
            e = e.max(rel(a[8], bs[8], i_full));
        }
        if e.is_nan() {
            f64::INFINITY
        } else {
            e
        }
    }
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
    for (k, q) in s.q_needle.iter().enumerate().take(24) {
        m |= ((*q > 0.0) as u64) << (9 + k);
    }
    for (k, q) in plant.signals.q_leak.iter().enumerate().take(24) {
        m |= ((*q > 0.0) as u64) << (33 + k);
    }
    m
}

/// The largest level whose step the plant's explicit parts allow now: a
/// moving armature (off its stops or with its coil current changing) is
/// stepped within its explicit stability limit.
pub fn stable_level(plant: &Plant, h0: f64) -> u32 {
    let v = &plant.state.valve;
    if let Actuation::Coil(c) = &plant.params.valve.actuation {
        if v.v != 0.0 || (v.x > 0.0 && v.x < c.stroke) {
            // Symplectic Euler on m·ẍ = −k·x is stable for h < 2/ω: keep h ≤ 1/ω.
            let omega = (c.spring_rate / c.armature_mass).sqrt().max(1e-300);
            return level_within(1.0 / omega, h0);
        }
    }
    MAX_LEVEL
}

/// The largest level l ≤ MAX_LEVEL with h₀·2^l ≤ h (0 when h < 2h₀).
pub fn level_within(h: f64, h0: f64) -> u32 {
    let mut l = 0;
    while l < MAX_LEVEL && h0 * (1u64 << (l + 1)) as f64 <= h {
        l += 1;
    }
    l
}
