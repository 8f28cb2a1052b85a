//! Plant state and the fixed-step integrator.
//!
//! # Scheme
//! One step of length `dt` is a partitioned, first-order scheme:
//! 1. Valve actuator: exact exponential update of the coil current with the
//!    inductance and motional EMF frozen over the step, then semi-implicit
//!    Euler for the armature with inelastic end stops.
//! 2. Pneumatics: the line connections' mass flows are advanced
//!    semi-implicitly (friction linearised), then the node pressures with the
//!    new flows (symplectic Euler for the line's LC ladder). The node fed by
//!    the valve (first line node, or the chamber) is updated linearly
//!    implicitly in its own pressure, because the ISO 6358 laminar branch
//!    near p2/p1 → 1 makes it stiff for small volumes.
//! 3. Piston, plunger and liquid: backward Euler on the piston velocity, the
//!    syringe and hub pressures and every needle flow, with the flow laws
//!    linearised at the start of the step (one Newton iteration, i.e. a
//!    linearly implicit Euler step). The tree syringe → tubing → head →
//!    needles → sites is eliminated in closed form, O(needles), with no
//!    matrix. Stick-slip follows Karnopp: the stuck solution is tried first
//!    and kept while the required friction stays under break-loose; the
//!    one-way sites are an active set (a needle whose flow would reverse is
//!    closed and the step re-solved).
//!
//! The liquid side is integrated on its stored volume, so expelled =
//! delivered + leaked + stored holds to rounding. The scheme is stable for
//! the stiff liquid node at any step; its accuracy is first order (the
//! observed order is measured in the tests and reported in `docs/numerics.md`).

use crate::model::chamber::ChamberRates;
use crate::model::gas::R_AIR;
use crate::model::piston::Stribeck;
use crate::model::syringe::Storage;
use crate::model::valve::{Actuation, ValveState};
use crate::model::Params;
use crate::text::{g6, g6_list};

/// Errors from the simulation.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A state became non-finite.
    #[error("numerical failure in the {component} at t = {t_ms:.4} ms: {state}")]
    NonFinite {
        /// Plant element where the failure was detected.
        component: &'static str,
        /// Simulation time, ms.
        t_ms: f64,
        /// Description of the offending state.
        state: String,
    },
    /// A physical invariant (conservation, sign, validity) failed.
    #[error("invariant violated in the {component} at t = {t_ms:.4} ms: {state}")]
    Invariant {
        /// Plant element where the failure was detected.
        component: &'static str,
        /// Simulation time, ms.
        t_ms: f64,
        /// What failed, with the state.
        state: String,
    },
}

/// The full plant state (SI, pressures absolute).
#[derive(Debug, Clone, PartialEq)]
pub struct PlantState {
    /// Time, s.
    pub t: f64,
    /// Regulator set pressure in force, Pa (fixed, or commanded by firmware).
    pub p_set: f64,
    /// Regulator output pressure, Pa.
    pub p_reg: f64,
    /// Reservoir pressure, Pa (constant when there is no reservoir).
    pub p_res: f64,
    /// Valve actuator.
    pub valve: ValveState,
    /// Line node pressures, Pa.
    pub line_p: Vec<f64>,
    /// Line connection mass flows (node j → j+1, the last into the chamber), kg/s.
    pub line_w: Vec<f64>,
    /// Chamber pressure, Pa.
    pub p_c: f64,
    /// Chamber gas temperature, K.
    pub t_c: f64,
    /// Piston position from home, m.
    pub x_p: f64,
    /// Piston velocity, m/s.
    pub v_p: f64,
    /// Piston held by static friction.
    pub stuck: bool,
    /// Plunger travel since the start of the session, m.
    pub z: f64,
    /// Liquid volume stored in the syringe by compression, m³.
    pub w_syr: f64,
    /// Syringe liquid pressure, Pa.
    pub p_s: f64,
    /// Tubing flow, m³/s.
    pub q_tube: f64,
    /// Liquid volume stored in the tubing and head, m³.
    pub w_hub: f64,
    /// Head (needle hub) pressure, Pa.
    pub p_hub: f64,
    /// Needle flows, m³/s.
    pub q_needle: Vec<f64>,
    /// Bleb volumes at each site, m³.
    pub v_bleb: Vec<f64>,
    /// Total plunger-swept volume, m³.
    pub expelled: f64,
    /// Delivered into each site, m³.
    pub delivered: Vec<f64>,
    /// Refluxed at each site, m³.
    pub leaked: Vec<f64>,
    /// Gas mass drawn from the supply, kg.
    pub supply_mass: f64,
    /// The stopper has reached the bottom of the syringe.
    pub syringe_empty: bool,
}

/// Actuator inputs held over a plant step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drive {
    /// Coil voltage as a fraction of the drive voltage, averaged over the step (0 to 1).
    pub coil: f64,
    /// Proportional-regulator set pressure, Pa absolute (NaN: unchanged).
    pub regulator_setpoint: f64,
    /// External force pushing the piston forward (a thumb on the plunger), N.
    pub force: f64,
    /// Damping of that force source, N·s/m: the force applied is
    /// `force − force_damping·v`, taken implicitly in the piston velocity.
    pub force_damping: f64,
}

impl Drive {
    /// The valve coil at `coil` (0 to 1), nothing else.
    pub fn coil(coil: f64) -> Drive {
        Drive { coil, regulator_setpoint: f64::NAN, force: 0.0, force_damping: 0.0 }
    }
}

/// Signals computed during the last step, for observers and shot records.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// Mass flow through the valve inlet, kg/s.
    pub q_valve_in: f64,
    /// Mass flow out of the valve exhaust, kg/s.
    pub q_valve_ex: f64,
    /// Inlet choked in this step.
    pub inlet_choked: bool,
    /// Site gauge pressures, Pa.
    pub p_site: Vec<f64>,
    /// Reynolds number per needle.
    pub re: Vec<f64>,
    /// Reflux flow per site, m³/s.
    pub q_leak: Vec<f64>,
    /// Some flow curve was extrapolated beyond its table.
    pub extrapolated: bool,
    /// Largest line Mach number.
    pub line_mach: f64,
    /// Total needle flow after the step, m³/s.
    pub q_total: f64,
    /// Total delivered into all sites so far, m³.
    pub delivered_total: f64,
    /// The plunger broke loose (stuck → sliding forward) in this step.
    pub breakaway: bool,
}

/// A plant: parameters, state and scratch space. Advancing it allocates nothing.
#[derive(Debug, Clone)]
pub struct Plant {
    /// Parameters (SI).
    pub params: Params,
    /// State.
    pub state: PlantState,
    /// Signals from the last step.
    pub signals: Signals,
    storage: Storage,
    a: Vec<f64>,
    b: Vec<f64>,
    open: Vec<bool>,
    line: LineScratch,
    steps: u64,
    cache: StepCache,
    /// Caches of other step lengths (adaptive stepping alternates a few).
    spare: Vec<StepCache>,
}

/// Scratch space of the implicit line solve (segments + 1 unknowns: the
/// node pressures and the chamber's).
#[derive(Debug, Clone, Default)]
struct LineScratch {
    /// Connection flows predicted with the old pressures, kg/s.
    w_hat: Vec<f64>,
    /// ∂w/∂(p_a − p_b) over the step, kg/(s·Pa).
    c: Vec<f64>,
    lower: Vec<f64>,
    diag: Vec<f64>,
    upper: Vec<f64>,
    rhs: Vec<f64>,
}

impl LineScratch {
    fn new(segs: usize) -> LineScratch {
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
struct StepCache {
    dt: f64,
    supply_decay: f64,
    absorb_decay: Vec<f64>,
    needle_ci: Vec<f64>,
    tube_ci: f64,
    fric: Stribeck,
    seal: Stribeck,
    z_max: f64,
    /// Pneumatic substeps per plant step: the explicit line ladder is
    /// stepped at most at its stability limit (1 without a line).
    line_substeps: u32,
    /// The regulator's decay over one pneumatic substep.
    supply_decay_sub: f64,
    /// The line would need more than [`MAX_LINE_SUBSTEPS`]: solve it linearly implicitly instead.
    line_implicit: bool,
}

/// Most explicit line substeps per plant step. Beyond this the line's waves
/// are so much faster than the step that it acts as a lumped volume, which
/// the linearly implicit solve reproduces without resolving them.
const MAX_LINE_SUBSTEPS: u32 = 8;

impl StepCache {
    fn refresh(&mut self, p: &Params, dt: f64) {
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

impl Plant {
    /// A plant at rest: atmosphere everywhere but the regulator, piston home.
    pub fn new(params: Params) -> Plant {
        let n = params.needles.len();
        let segs = if params.line.is_absent() { 0 } else { params.line.segments };
        let p_atm = params.p_atm;
        let p_res = params.supply.reservoir.as_ref().map(|r| r.p_initial).unwrap_or(params.supply.p_set);
        let p_set = params.supply.p_set;
        let p_reg = params.supply.target(p_set, p_res, 0.0);
        let storage = storage_for(&params, 0.0);
        let state = PlantState {
            t: 0.0,
            p_set,
            p_reg,
            p_res,
            valve: ValveState::default(),
            line_p: vec![p_atm; segs],
            line_w: vec![0.0; segs],
            p_c: p_atm,
            t_c: params.t_ambient,
            x_p: 0.0,
            v_p: 0.0,
            stuck: true,
            z: 0.0,
            w_syr: 0.0,
            p_s: p_atm,
            q_tube: 0.0,
            w_hub: 0.0,
            p_hub: p_atm,
            q_needle: vec![0.0; n],
            v_bleb: vec![0.0; n],
            expelled: 0.0,
            delivered: vec![0.0; n],
            leaked: vec![0.0; n],
            supply_mass: 0.0,
            syringe_empty: false,
        };
        let signals = Signals { p_site: vec![0.0; n], re: vec![0.0; n], q_leak: vec![0.0; n], ..Default::default() };
        Plant {
            params,
            state,
            signals,
            storage,
            a: vec![0.0; n],
            b: vec![0.0; n],
            open: vec![true; n],
            line: LineScratch::new(segs),
            steps: 0,
            cache: StepCache::default(),
            spare: Vec::new(),
        }
    }

    /// Number of steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Liquid volume left in the syringe, m³.
    pub fn liquid_volume(&self) -> f64 {
        self.params.syringe.fill_volume - self.params.syringe.area * self.state.z
    }

    /// Total volume stored by compression in the syringe and the tubing, m³.
    pub fn stored_volume(&self) -> f64 {
        self.state.w_syr + self.state.w_hub
    }

    /// Refresh the liquid compliance for the current fill (call between shots;
    /// the stored volume is kept and the pressure follows).
    pub fn refresh_storage(&mut self) {
        self.storage = storage_for(&self.params, self.state.z);
        self.state.p_s = self.storage.pressure(self.state.w_syr);
    }

    /// Replace the parameters between shots (per-shot variability). The
    /// element counts (needles, line segments) must not change.
    pub fn set_params(&mut self, params: Params) -> Result<(), String> {
        if params.needles.len() != self.params.needles.len() || params.line.segments != self.params.line.segments {
            return Err("a parameter drawn per shot changed the number of needles or line segments".into());
        }
        // A fixed regulator's set pressure is a parameter; a proportional
        // one's is the firmware's, which keeps it.
        if !params.supply.proportional {
            self.state.p_set = params.supply.p_set;
        }
        self.params = params;
        self.cache = StepCache::default();
        self.spare.clear();
        self.refresh_storage();
        Ok(())
    }

    /// Move every site to fresh tissue (bleb volumes to zero).
    pub fn new_sites(&mut self) {
        for v in &mut self.state.v_bleb {
            *v = 0.0;
        }
    }

    /// Pressure at the valve outlet (first line node, or the chamber), Pa.
    pub fn valve_outlet_pressure(&self) -> f64 {
        self.state.line_p.first().copied().unwrap_or(self.state.p_c)
    }

    /// Advance by `dt` seconds with the coil at full voltage (`command`) or off.
    pub fn step(&mut self, command: bool, dt: f64) -> Result<(), SimError> {
        self.step_with(&Drive::coil(if command { 1.0 } else { 0.0 }), dt)
    }

    /// Advance by `dt` seconds under the actuator inputs `drive`.
    pub fn step_with(&mut self, drive: &Drive, dt: f64) -> Result<(), SimError> {
        self.advance(drive, dt);
        self.check()
    }

    /// Advance by `dt` seconds without checking the state for non-finite
    /// values; call [`Plant::check`] at least once per firmware tick.
    pub fn advance(&mut self, drive: &Drive, dt: f64) {
        if self.cache.dt != dt && self.cache.dt != 0.0 {
            self.swap_cache(dt);
        }
        self.cache.refresh(&self.params, dt);
        if self.params.supply.proportional && drive.regulator_setpoint.is_finite() {
            self.state.p_set = drive.regulator_setpoint.clamp(self.params.p_atm, self.params.supply.p_set_max);
        }
        self.step_valve(drive.coil, dt);
        if self.cache.line_substeps == 1 {
            self.step_pneumatics(dt, self.cache.supply_decay);
        } else {
            let n = self.cache.line_substeps;
            let h = dt / n as f64;
            let mut mach: f64 = 0.0;
            for _ in 0..n {
                self.step_pneumatics(h, self.cache.supply_decay_sub);
                mach = mach.max(self.signals.line_mach);
            }
            self.signals.line_mach = mach;
        }
        self.step_liquid(dt, drive.force, drive.force_damping);
        self.state.t += dt;
        self.steps += 1;
    }

    /// Bring the coefficients of step length `dt` into use, keeping the
    /// current ones (a bounded set of step lengths: adaptive stepping uses
    /// powers of two of one step).
    fn swap_cache(&mut self, dt: f64) {
        const KEEP: usize = 24;
        match self.spare.iter().position(|c| c.dt == dt) {
            Some(i) => std::mem::swap(&mut self.cache, &mut self.spare[i]),
            None => {
                let old = std::mem::take(&mut self.cache);
                if self.spare.len() < KEEP {
                    self.spare.push(old);
                } else {
                    // Reuse the oldest slot's allocations.
                    self.spare.rotate_left(1);
                    self.cache = std::mem::replace(&mut self.spare[KEEP - 1], old);
                    self.cache.dt = 0.0;
                }
            }
        }
    }

    /// Copy the state and the signals into `to` (reusing its allocations).
    pub fn save(&self, to: &mut Snapshot) {
        copy_state(&mut to.state, &self.state);
        copy_signals(&mut to.signals, &self.signals);
    }

    /// Return to a state and signals saved with [`Plant::save`] (the step
    /// count is kept: it counts every step taken).
    pub fn restore(&mut self, from: &Snapshot) {
        copy_state(&mut self.state, &from.state);
        copy_signals(&mut self.signals, &from.signals);
    }

    /// Copy the state alone into `to`: the signals are outputs of a step,
    /// which the next step rewrites.
    pub fn save_state(&self, to: &mut PlantState) {
        copy_state(to, &self.state);
    }

    /// Return to a state saved with [`Plant::save_state`] (the signals stay
    /// those of the last step until the next one).
    pub fn restore_state(&mut self, from: &PlantState) {
        copy_state(&mut self.state, from);
    }

    fn step_valve(&mut self, drive: f64, dt: f64) {
        let dp = self.state.p_reg - self.valve_outlet_pressure();
        self.params.valve.advance(&mut self.state.valve, drive, dp, dt);
    }

    fn step_pneumatics(&mut self, dt: f64, supply_decay: f64) {
        let p = &self.params;
        let s = &mut self.state;
        let segs = s.line_p.len();
        let geom = ChamberGeometry::of(p, s);
        let vf = ValveFlows::at(p, s, segs);
        self.signals.q_valve_in = vf.q_in;
        self.signals.q_valve_ex = vf.q_ex;
        self.signals.inlet_choked = vf.choked;
        let p_out = if segs > 0 { s.line_p[0] } else { s.p_c };
        if segs > 0 && self.cache.line_implicit {
            self.signals.line_mach = line_implicit(p, s, &mut self.line, &vf, &geom, dt);
        } else if segs > 0 {
            self.signals.line_mach = line_explicit(p, s, &vf, &geom, dt);
        } else {
            chamber_at_valve(p, s, &vf, &geom, dt);
        }
        // Supply: regulator lag towards its drooped target; reservoir drawn
        // down by the inflow the outlet node received in this step (the
        // seat flow linearised at its new pressure), so that the gas the
        // supply loses is the gas the chamber and line gain.
        let p_out_new = if segs > 0 { s.line_p[0] } else { s.p_c };
        let draw = (vf.q_in + vf.dq_in * (p_out_new - p_out)).max(0.0);
        // The regulator's droop follows the seat flow at the step's start.
        let target = p.supply.target(s.p_set, s.p_res, vf.q_in.max(0.0));
        s.p_reg = target + (s.p_reg - target) * supply_decay;
        s.p_res -= p.supply.reservoir_drop(draw * dt);
        s.supply_mass += draw * dt;
    }

    fn step_liquid(&mut self, dt: f64, f_ext: f64, damping: f64) {
        let p = &self.params;
        let s = &mut self.state;
        let n = p.needles.len();
        // Per-needle arrays as slices of one length: no bounds checks or
        // reloads of the vectors in the loops.
        let mut lin = NeedleLin { a: &mut self.a[..n], b: &mut self.b[..n], open: &mut self.open[..n] };
        self.signals.extrapolated = lin.linearise(p, s, &self.cache.needle_ci[..n], &mut self.signals.re[..n]);
        let chain = LiquidChain::at(p, s, &self.cache, self.storage.compliance(s.p_s), f_ext, damping);
        let (v_new, plunger_v) = chain.solve(s, &mut lin, dt);
        s.p_s = self.storage.pressure(s.w_syr);
        if p.tubing.is_none() {
            s.p_hub = s.p_s;
        }
        // Mechanics update.
        self.signals.breakaway = s.stuck && plunger_v > 0.0;
        move_piston(p, s, v_new, plunger_v, self.cache.z_max, dt);
        // Sites: reflux split, bleb growth with exact absorption decay.
        update_sites(p, s, &self.cache.absorb_decay[..n], &mut self.signals, dt);
    }

    /// A non-finite or non-physical state, with the component it is in.
    pub fn check(&self) -> Result<(), SimError> {
        if self.signals.line_mach >= 1.0 {
            let s = &self.state;
            return Err(SimError::Invariant {
                component: "line",
                t_ms: s.t * 1e3,
                state: format!(
                    "Mach number {} (the lumped line is valid for subsonic flow only); pressures {} Pa, flows {} kg/s",
                    g6(self.signals.line_mach),
                    g6_list(&s.line_p),
                    g6_list(&s.line_w)
                ),
            });
        }
        let s = &self.state;
        // Fast path: NaN and infinities propagate through a sum.
        let mut sum = s.p_reg
            + s.p_res
            + s.valve.current
            + s.valve.x
            + s.p_c
            + s.t_c
            + s.x_p
            + s.v_p
            + s.p_s
            + s.p_hub
            + s.q_tube;
        for v in s.line_p.iter().chain(&s.line_w).chain(&s.q_needle).chain(&s.v_bleb) {
            sum += v;
        }
        if sum.is_finite() && s.p_c > 0.0 && s.t_c > 0.0 {
            return Ok(());
        }
        let t_ms = s.t * 1e3;
        let bad = |component: &'static str, state: String| Err(SimError::NonFinite { component, t_ms, state });
        if !(s.p_reg.is_finite() && s.p_res.is_finite()) {
            return bad("supply", format!("regulator {} Pa, reservoir {} Pa", g6(s.p_reg), g6(s.p_res)));
        }
        if !(s.valve.current.is_finite() && s.valve.x.is_finite() && s.valve.opening.is_finite()) {
            return bad("valve", format!("coil current {} A, armature {} m", g6(s.valve.current), g6(s.valve.x)));
        }
        if s.line_p.iter().chain(s.line_w.iter()).any(|v| !v.is_finite()) {
            return bad("line", format!("pressures {} Pa, flows {} kg/s", g6_list(&s.line_p), g6_list(&s.line_w)));
        }
        if !(s.p_c.is_finite() && s.t_c.is_finite() && s.p_c > 0.0 && s.t_c > 0.0) {
            return bad("chamber", format!("pressure {} Pa, temperature {} K", g6(s.p_c), g6(s.t_c)));
        }
        if !(s.x_p.is_finite() && s.v_p.is_finite()) {
            return bad("piston", format!("position {} m, velocity {} m/s", g6(s.x_p), g6(s.v_p)));
        }
        if !(s.p_s.is_finite() && s.p_hub.is_finite() && s.q_tube.is_finite()) {
            return bad("syringe", format!("pressure {} Pa, hub {} Pa", g6(s.p_s), g6(s.p_hub)));
        }
        if s.q_needle.iter().chain(s.v_bleb.iter()).any(|v| !v.is_finite()) {
            return bad("needle", format!("flows {} m³/s, blebs {} m³", g6_list(&s.q_needle), g6_list(&s.v_bleb)));
        }
        Ok(())
    }

    /// True when the valve actuator is at rest and de-energised.
    pub fn valve_at_rest(&self) -> bool {
        let v = &self.state.valve;
        match self.params.valve.actuation {
            Actuation::Coil(_) => v.current == 0.0 && v.x == 0.0 && v.v == 0.0,
            Actuation::Catalogue(_) => v.opening == 0.0,
        }
    }
}

/// A saved plant state and its signals ([`Plant::save`]).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// State.
    pub state: PlantState,
    /// Signals of the last step.
    pub signals: Signals,
}

impl Snapshot {
    /// A snapshot of `plant` now.
    pub fn of(plant: &Plant) -> Snapshot {
        Snapshot { state: plant.state.clone(), signals: plant.signals.clone() }
    }
}

fn copy_state(d: &mut PlantState, s: &PlantState) {
    let PlantState {
        t,
        p_set,
        p_reg,
        p_res,
        valve,
        line_p,
        line_w,
        p_c,
        t_c,
        x_p,
        v_p,
        stuck,
        z,
        w_syr,
        p_s,
        q_tube,
        w_hub,
        p_hub,
        q_needle,
        v_bleb,
        expelled,
        delivered,
        leaked,
        supply_mass,
        syringe_empty,
    } = s;
    d.t = *t;
    d.p_set = *p_set;
    d.p_reg = *p_reg;
    d.p_res = *p_res;
    d.valve = *valve;
    d.line_p.clone_from(line_p);
    d.line_w.clone_from(line_w);
    d.p_c = *p_c;
    d.t_c = *t_c;
    d.x_p = *x_p;
    d.v_p = *v_p;
    d.stuck = *stuck;
    d.z = *z;
    d.w_syr = *w_syr;
    d.p_s = *p_s;
    d.q_tube = *q_tube;
    d.w_hub = *w_hub;
    d.p_hub = *p_hub;
    d.q_needle.clone_from(q_needle);
    d.v_bleb.clone_from(v_bleb);
    d.expelled = *expelled;
    d.delivered.clone_from(delivered);
    d.leaked.clone_from(leaked);
    d.supply_mass = *supply_mass;
    d.syringe_empty = *syringe_empty;
}

fn copy_signals(d: &mut Signals, s: &Signals) {
    let Signals {
        q_valve_in,
        q_valve_ex,
        inlet_choked,
        p_site,
        re,
        q_leak,
        extrapolated,
        line_mach,
        q_total,
        delivered_total,
        breakaway,
    } = s;
    d.q_valve_in = *q_valve_in;
    d.q_valve_ex = *q_valve_ex;
    d.inlet_choked = *inlet_choked;
    d.p_site.clone_from(p_site);
    d.re.clone_from(re);
    d.q_leak.clone_from(q_leak);
    d.extrapolated = *extrapolated;
    d.line_mach = *line_mach;
    d.q_total = *q_total;
    d.delivered_total = *delivered_total;
    d.breakaway = *breakaway;
}

/// Solve a tridiagonal system in place (Thomas algorithm): `lower[i]`
/// multiplies x[i−1], `upper[i]` x[i+1]; the solution replaces `rhs`. The
/// systems here are diagonally dominant, so no pivoting is needed.
fn solve_tridiagonal(lower: &[f64], diag: &mut [f64], upper: &[f64], rhs: &mut [f64]) {
    let n = rhs.len();
    for i in 1..n {
        let m = lower[i] / diag[i - 1];
        diag[i] -= m * upper[i - 1];
        rhs[i] -= m * rhs[i - 1];
    }
    rhs[n - 1] /= diag[n - 1];
    for i in (0..n - 1).rev() {
        rhs[i] = (rhs[i] - upper[i] * rhs[i + 1]) / diag[i];
    }
}

/// The chamber's volume, its rate and its wall area at the start of a step.
struct ChamberGeometry {
    /// Volume, m³.
    v_c: f64,
    /// Rate of change of the volume, m³/s.
    dv_c: f64,
    /// Wall area for heat transfer, m².
    a_w: f64,
}

impl ChamberGeometry {
    #[inline]
    fn of(p: &Params, s: &PlantState) -> ChamberGeometry {
        let v_c = p.chamber.dead_volume + p.piston.area * s.x_p;
        let dv_c = p.piston.area * s.v_p;
        let bore = (4.0 * p.piston.area / std::f64::consts::PI).sqrt();
        let a_w = 2.0 * p.piston.area + std::f64::consts::PI * bore * v_c / p.piston.area;
        ChamberGeometry { v_c, dv_c, a_w }
    }

    /// The volume after `dt` at the current rate, m³.
    #[inline]
    fn end_volume(&self, dt: f64) -> f64 {
        self.v_c + dt * self.dv_c
    }
}

/// The valve seats' flows at the outlet node (the first line node, or the chamber).
struct ValveFlows {
    /// Supply temperature, K.
    t_s: f64,
    /// Inlet mass flow into the outlet node, kg/s.
    q_in: f64,
    /// Exhaust mass flow out of the outlet node (negative when drawing air in), kg/s.
    q_ex: f64,
    /// ∂(inlet flow)/∂p_out, kg/(s·Pa).
    dq_in: f64,
    /// ∂(flow from the atmosphere into the outlet)/∂p_out, kg/(s·Pa).
    dq_atm: f64,
    /// ∂(net inflow)/∂p_out, kg/(s·Pa).
    dq_net_dp: f64,
    /// The inlet is choked and open.
    choked: bool,
}

impl ValveFlows {
    #[inline]
    fn at(p: &Params, s: &PlantState, segs: usize) -> ValveFlows {
        let o = s.valve.opening;
        let t_s = p.supply.temperature;
        let (p_out, t_out) = if segs > 0 { (s.line_p[0], p.line.temperature) } else { (s.p_c, s.t_c) };
        let fin = p.valve.inlet.flow(o, s.p_reg, t_s, p_out, t_out);
        let fex = p.valve.exhaust.flow(1.0 - o, p.p_atm, p.t_ambient, p_out, t_out);
        // fex.q is the flow from the atmosphere into the outlet (negative when venting).
        ValveFlows {
            t_s,
            q_in: fin.q,
            q_ex: -fex.q,
            dq_in: fin.dq_dp2,
            dq_atm: fex.dq_dp2,
            dq_net_dp: fin.dq_dp2 + fex.dq_dp2,
            choked: fin.choked && o > 0.0,
        }
    }

    /// Flow from the atmosphere into the outlet node, kg/s.
    #[inline]
    fn q_atm(&self) -> f64 {
        -self.q_ex
    }
}
/// The pneumatic line solved linearly implicitly with the chamber (N + 1
/// pressures, tridiagonal); returns the line's largest Mach number.
fn line_implicit(
    p: &Params,
    s: &mut PlantState,
    ls: &mut LineScratch,
    vf: &ValveFlows,
    geom: &ChamberGeometry,
    dt: f64,
) -> f64 {
    let segs = s.line_p.len();
    let line = &p.line;
    let a = line.area();
    let inert = line.length / segs as f64 / a;
    let k = line.polytropic * R_AIR * line.temperature / line.segment_volume();
    // Connection flows as affine functions of the new pressures:
    // w' = ŵ + c·(δ_a − δ_b), ŵ being the explicit prediction.
    for j in 0..segs {
        let pa = s.line_p[j];
        let pb = if j + 1 < segs { s.line_p[j + 1] } else { s.p_c };
        let w = s.line_w[j];
        let (dpf, g, _) = line.connection_drop(w, 0.5 * (pa + pb));
        let den = 1.0 + dt / inert * g;
        ls.w_hat[j] = (w + dt / inert * (pa - pb - dpf + g * w)) / den;
        ls.c[j] = dt / inert / den;
    }
    // Chamber rates at the predicted inflow, linearised in it.
    let w = ls.w_hat[segs - 1];
    let (qi, qo) = if w >= 0.0 { (w, 0.0) } else { (0.0, -w) };
    let r = p.chamber.rates(s.p_c, s.t_c, geom.v_c, geom.dv_c, qi, line.temperature, qo, geom.a_w);
    let gain = if w >= 0.0 { r.gain_in } else { r.gain_out };
    // Tridiagonal system in the pressure changes δ_0 … δ_{n−1}, δ_c.
    let kd = k * dt;
    ls.diag[0] = 1.0 - kd * vf.dq_net_dp + kd * ls.c[0];
    ls.upper[0] = -kd * ls.c[0];
    ls.rhs[0] = kd * (vf.q_in + vf.q_atm() - ls.w_hat[0]);
    for j in 1..segs {
        ls.lower[j] = -kd * ls.c[j - 1];
        ls.diag[j] = 1.0 + kd * (ls.c[j - 1] + ls.c[j]);
        ls.upper[j] = -kd * ls.c[j];
        ls.rhs[j] = kd * (ls.w_hat[j - 1] - ls.w_hat[j]);
    }
    ls.lower[segs] = -dt * gain * ls.c[segs - 1];
    ls.diag[segs] = 1.0 - dt * r.dp_dp_volume.min(0.0) + dt * gain * ls.c[segs - 1];
    ls.rhs[segs] = dt * r.dp;
    solve_tridiagonal(&ls.lower, &mut ls.diag, &ls.upper, &mut ls.rhs);
    let delta = &ls.rhs;
    let mut mach: f64 = 0.0;
    for j in 0..segs {
        s.line_w[j] = ls.w_hat[j] + ls.c[j] * (delta[j] - delta[j + 1]);
        s.line_p[j] += delta[j];
    }
    update_chamber(s, geom, &r, delta[segs], s.line_w[segs - 1], dt);
    for j in 0..segs {
        let pb = if j + 1 < segs { s.line_p[j + 1] } else { s.p_c };
        let rho = s.line_p[j].max(pb) / (R_AIR * line.temperature);
        mach = mach.max((s.line_w[j] / (rho * a)).abs() / line.wave_speed());
    }
    mach
}

/// The pneumatic line stepped explicitly (connection flows semi-implicit in
/// their friction, then the node pressures), the first node linearly
/// implicitly in its own pressure; returns the line's largest Mach number.
fn line_explicit(p: &Params, s: &mut PlantState, vf: &ValveFlows, geom: &ChamberGeometry, dt: f64) -> f64 {
    let segs = s.line_p.len();
    let line = &p.line;
    let a = line.area();
    let lc = line.length / segs as f64;
    let inert = lc / a;
    let v_seg = line.segment_volume();
    let k = line.polytropic * R_AIR * line.temperature / v_seg;
    let mut mach: f64 = 0.0;
    // Connection flows (semi-implicit friction).
    for j in 0..segs {
        let pa = s.line_p[j];
        let pb = if j + 1 < segs { s.line_p[j + 1] } else { s.p_c };
        let w = s.line_w[j];
        let (dpf, g, _) = line.connection_drop(w, 0.5 * (pa + pb));
        s.line_w[j] = (w + dt / inert * (pa - pb - dpf + g * w)) / (1.0 + dt / inert * g);
        let rho = pa.max(pb) / (R_AIR * line.temperature);
        mach = mach.max((s.line_w[j] / (rho * a)).abs() / line.wave_speed());
    }
    // First node: linearly implicit in its own pressure.
    let f0 = k * (vf.q_in + vf.q_atm() - s.line_w[0]);
    let j0 = k * vf.dq_net_dp;
    s.line_p[0] += dt * f0 / (1.0 - dt * j0);
    for j in 1..segs {
        s.line_p[j] += dt * k * (s.line_w[j - 1] - s.line_w[j]);
    }
    // Chamber fed by the last connection.
    let w = s.line_w[segs - 1];
    let (qi, qo) = if w >= 0.0 { (w, 0.0) } else { (0.0, -w) };
    let r = p.chamber.rates(s.p_c, s.t_c, geom.v_c, geom.dv_c, qi, line.temperature, qo, geom.a_w);
    let dp = dt * r.dp / (1.0 - dt * r.dp_dp_volume.min(0.0));
    update_chamber(s, geom, &r, dp, w, dt);
    mach
}

/// The chamber fed directly by the valve (no line), linearly implicit in its
/// pressure through the seat flows' derivatives.
fn chamber_at_valve(p: &Params, s: &mut PlantState, vf: &ValveFlows, geom: &ChamberGeometry, dt: f64) {
    let (qi, qo, gi, go) = {
        let mut qi = 0.0;
        let mut qo = vf.q_ex.max(0.0);
        if vf.q_in >= 0.0 {
            qi += vf.q_in;
        } else {
            qo -= vf.q_in;
        }
        if vf.q_ex < 0.0 {
            qi -= vf.q_ex;
        }
        (qi, qo, vf.dq_in, -vf.dq_atm)
    };
    let r = p.chamber.rates(s.p_c, s.t_c, geom.v_c, geom.dv_c, qi, vf.t_s, qo, geom.a_w);
    // ∂(dp/dt)/∂p: inflow derivative through gain_in, outflow through gain_out.
    let jac = r.dp_dp_volume.min(0.0) + r.gain_in * gi.min(0.0) - r.gain_out * go.max(0.0);
    let dp = dt * r.dp / (1.0 - dt * jac.min(0.0));
    let inflow = vf.q_in + vf.q_atm() + vf.dq_net_dp * dp;
    update_chamber(s, geom, &r, dp, inflow, dt);
}

/// Bring the chamber to its new pressure `p_c + dp`; an energy-model
/// chamber takes the temperature the gas law gives for the mass it holds
/// after a net inflow `inflow` (kg/s) over the step, so the gas the chamber
/// holds is the gas that flowed in (a temperature advanced by its own rate
/// drifts from it at first order in the step, and the supply with it).
#[inline]
fn update_chamber(s: &mut PlantState, geom: &ChamberGeometry, r: &ChamberRates, dp: f64, inflow: f64, dt: f64) {
    if r.dt != 0.0 {
        // Polytropic chambers keep their temperature (r.dt is 0).
        let m = s.p_c * geom.v_c / (R_AIR * s.t_c);
        let m_new = m + dt * inflow;
        let t_new = (s.p_c + dp) * geom.end_volume(dt) / (R_AIR * m_new);
        s.t_c = if m_new > 0.0 && t_new > 0.0 && t_new.is_finite() { t_new } else { heat(s.t_c, r.dt, dt) };
    }
    s.p_c += dp;
}

/// The needles' flows linearised at the start of a step, Q' = a + b·p_hub'
/// (gauge), and the active set of the one-way sites (open needles).
struct NeedleLin<'a> {
    a: &'a mut [f64],
    b: &'a mut [f64],
    open: &'a mut [bool],
}

impl NeedleLin<'_> {
    /// Linearise every needle and its site at the current flows (all open);
    /// writes the Reynolds numbers and returns whether a flow curve was
    /// evaluated beyond its table.
    #[inline]
    fn linearise(&mut self, p: &Params, s: &PlantState, needle_ci: &[f64], re: &mut [f64]) -> bool {
        let n = self.a.len();
        let (needles, sites) = (&p.needles[..n], &p.sites[..n]);
        let (q_needle, v_bleb) = (&s.q_needle[..n], &s.v_bleb[..n]);
        let (needle_ci, re) = (&needle_ci[..n], &mut re[..n]);
        let (lin_a, lin_b, open) = (&mut self.a[..n], &mut self.b[..n], &mut self.open[..n]);
        let mut extrapolated = false;
        for k in 0..n {
            let q = q_needle[k];
            let d = needles[k].drop(q);
            let site = sites[k].at_flow(q.max(0.0), v_bleb[k]);
            let ci = needle_ci[k];
            let b = 1.0 / (ci + d.slope + site.slope);
            lin_a[k] = b * (ci * q - d.dp + d.slope * q - site.p + site.slope * q.max(0.0));
            lin_b[k] = b;
            open[k] = true;
            re[k] = d.re;
            extrapolated |= d.extrapolated;
        }
        extrapolated
    }

    /// Σa and Σb over the open needles.
    #[inline]
    fn open_sums(&self) -> (f64, f64) {
        let n = self.a.len();
        let (a, b, open) = (&self.a[..n], &self.b[..n], &self.open[..n]);
        let (mut sa, mut sb) = (0.0, 0.0);
        for k in 0..n {
            if open[k] {
                sa += a[k];
                sb += b[k];
            }
        }
        (sa, sb)
    }

    /// Active set: close any needle whose flow would reverse at hub gauge
    /// pressure `ph`; true if one was closed.
    #[inline]
    fn close_reversed(&mut self, ph: f64) -> bool {
        let n = self.a.len();
        let (a, b, open) = (&self.a[..n], &self.b[..n], &mut self.open[..n]);
        let mut changed = false;
        for k in 0..n {
            if open[k] && a[k] + b[k] * ph < 0.0 {
                open[k] = false;
                changed = true;
            }
        }
        changed
    }
}

/// The liquid chain syringe → tubing → head over one step: the piston's
/// forces, the compliances and the linearised tubing, fixed for the step.
struct LiquidChain<'p> {
    p: &'p Params,
    cache: &'p StepCache,
    /// Forces on the piston other than friction and liquid (forward +), N.
    fp: f64,
    c_syr: f64,
    ps_g: f64,
    ph_g: f64,
    /// Tubing inertance/dt, its linearised drop and its compliance.
    tube_lin: Option<(f64, crate::model::hydraulics::Drop, f64)>,
    damping: f64,
}

impl<'p> LiquidChain<'p> {
    #[inline]
    fn at(
        p: &'p Params,
        s: &PlantState,
        cache: &'p StepCache,
        c_syr: f64,
        f_ext: f64,
        damping: f64,
    ) -> LiquidChain<'p> {
        let pa = p.p_atm;
        LiquidChain {
            p,
            cache,
            fp: (s.p_c - pa) * p.piston.area - (p.piston.spring_preload + p.piston.spring_rate * s.x_p) + f_ext,
            c_syr,
            ps_g: s.p_s - pa,
            ph_g: s.p_hub - pa,
            tube_lin: p.tubing.as_ref().map(|t| (cache.tube_ci, t.conduit.drop(s.q_tube), t.compliance)),
            damping,
        }
    }

    /// Solve the chain with the active set of the needles and commit the
    /// flows and stored volumes; returns the piston's and the plunger's new
    /// velocities.
    #[inline]
    fn solve(&self, s: &mut PlantState, lin: &mut NeedleLin, dt: f64) -> (f64, f64) {
        let n = lin.a.len();
        let area = self.p.syringe.area;
        let mut iterations = 0;
        loop {
            let (sa, sb) = lin.open_sums();
            // Q_out' = f0 + f1·p_s'.
            let (f0, f1, hub) = match self.tube_lin {
                Some((ci, d, ch)) => {
                    let den = 1.0 + dt * sb / ch;
                    let c0 = (self.ph_g - dt * sa / ch) / den;
                    let c1 = (dt / ch) / den;
                    let g = ci + d.slope + c1;
                    let f0 = (-c0 + ci * s.q_tube - d.dp + d.slope * s.q_tube) / g;
                    (f0, 1.0 / g, Some((c0, c1)))
                }
                None => (sa, sb, None),
            };
            // p_s' = h0 + h1·v.
            let den = 1.0 + dt * f1 / self.c_syr;
            let h0 = (self.ps_g - dt * f0 / self.c_syr) / den;
            let h1 = (dt * area / self.c_syr) / den;
            let (v, pv) = self.velocities(s, h0, h1, dt);
            let ps_new = h0 + h1 * pv;
            let q_out = f0 + f1 * ps_new;
            let ph_new = match hub {
                Some((c0, c1)) => c0 + c1 * q_out,
                None => ps_new,
            };
            let changed = lin.close_reversed(ph_new);
            iterations += 1;
            if !changed || iterations > n {
                self.commit(s, lin, ph_new, q_out, pv, dt);
                return (v, pv);
            }
        }
    }

    /// Piston and plunger velocities with the syringe pressure p_s' = h0 +
    /// h1·v: Karnopp stick-slip, then the end stops (front stop, home,
    /// bottom of the syringe).
    #[inline]
    fn velocities(&self, s: &PlantState, h0: f64, h1: f64, dt: f64) -> (f64, f64) {
        let (area, fp, m, damping) = (self.p.syringe.area, self.fp, self.p.piston.mass, self.damping);
        let (fric, seal) = (&self.cache.fric, &self.cache.seal);
        let (stroke, z_max) = (self.p.piston.stroke, self.cache.z_max);
        let engaged_force = fp - area * h0; // friction must cancel this to stay stuck
        let (mut v, mut pv) = if s.v_p > 0.0 || (s.stuck && engaged_force > fric.break_loose) {
            let dry = fric.dry(s.v_p.max(0.0));
            let v = (m * s.v_p / dt + fp - dry - area * h0) / (m / dt + fric.viscous + damping + area * h1);
            if v > 0.0 {
                (v, v)
            } else {
                (0.0, 0.0)
            }
        } else if s.v_p < 0.0 || (s.stuck && fp < -seal.break_loose) {
            let v = (m * s.v_p / dt + fp + seal.glide) / (m / dt + seal.viscous + damping);
            (v.min(0.0), 0.0)
        } else {
            (0.0, 0.0)
        };
        if s.x_p + dt * v > stroke {
            v = (stroke - s.x_p) / dt;
            pv = v.max(0.0);
        }
        if s.z + dt * pv > z_max {
            pv = (z_max - s.z).max(0.0) / dt;
            v = pv;
        }
        if s.x_p + dt * v < 0.0 {
            v = -s.x_p / dt;
        }
        (v, pv)
    }

    /// Commit the needle flows at hub gauge pressure `ph`, the tubing flow
    /// and the stored volumes.
    #[inline]
    fn commit(&self, s: &mut PlantState, lin: &NeedleLin, ph: f64, q_out: f64, pv: f64, dt: f64) {
        let n = lin.a.len();
        let (a, b, open) = (&lin.a[..n], &lin.b[..n], &lin.open[..n]);
        let mut q_sum = 0.0;
        for (k, q_k) in s.q_needle[..n].iter_mut().enumerate() {
            let q = if open[k] { (a[k] + b[k] * ph).max(0.0) } else { 0.0 };
            *q_k = q;
            q_sum += q;
        }
        let area = self.p.syringe.area;
        match self.p.tubing.as_ref() {
            Some(t) => {
                s.q_tube = q_out;
                s.w_hub += dt * (q_out - q_sum);
                s.p_hub = self.p.p_atm + s.w_hub / t.compliance;
                s.w_syr += dt * (area * pv - q_out);
            }
            None => {
                s.w_syr += dt * (area * pv - q_sum);
            }
        }
    }
}

/// The piston and the plunger after a step at velocities `v_new` and
/// `plunger_v`: position within its stops, stuck or sliding, plunger travel
/// and swept volume, an empty syringe.
#[inline]
fn move_piston(p: &Params, s: &mut PlantState, v_new: f64, plunger_v: f64, z_max: f64, dt: f64) {
    let area = p.syringe.area;
    let stopped = v_new == 0.0;
    s.x_p = (s.x_p + dt * v_new).clamp(0.0, p.piston.stroke);
    s.v_p = if (s.x_p >= p.piston.stroke && v_new > 0.0) || (s.x_p <= 0.0 && v_new < 0.0) { 0.0 } else { v_new };
    s.stuck = stopped || s.v_p == 0.0;
    s.z += dt * plunger_v;
    s.expelled += dt * area * plunger_v;
    if s.z >= z_max - 1e-15 {
        s.syringe_empty = true;
    }
}

/// The sites after a step: reflux split, bleb growth with the exact
/// absorption decay, delivered and refluxed volumes, and their signals.
#[inline]
fn update_sites(p: &Params, s: &mut PlantState, absorb_decay: &[f64], sig: &mut Signals, dt: f64) {
    let n = absorb_decay.len();
    let sites = &p.sites[..n];
    let mut q_total = 0.0;
    let mut delivered_total = 0.0;
    let (q_needle, v_bleb) = (&s.q_needle[..n], &mut s.v_bleb[..n]);
    let (delivered, leaked) = (&mut s.delivered[..n], &mut s.leaked[..n]);
    let (p_site, q_leak) = (&mut sig.p_site[..n], &mut sig.q_leak[..n]);
    for k in 0..n {
        let q = q_needle[k];
        q_total += q;
        let site = sites[k].at_flow(q, v_bleb[k]);
        let q_tis = q - site.q_leak;
        v_bleb[k] = sites[k].grow_bleb(v_bleb[k], q_tis, absorb_decay[k], dt);
        delivered[k] += dt * q_tis;
        leaked[k] += dt * site.q_leak;
        p_site[k] = if q > 0.0 { site.p } else { sites[k].static_pressure(v_bleb[k]) };
        q_leak[k] = site.q_leak;
        delivered_total += delivered[k];
    }
    sig.q_total = q_total;
    sig.delivered_total = delivered_total;
}

/// The chamber gas temperature `t_c` after `dt` at the rate `rate` (K/s),
/// exactly exponential. Not inlined, so that the exponential is not
/// evaluated speculatively where a polytropic chamber skips it.
#[inline(never)]
fn heat(t_c: f64, rate: f64, dt: f64) -> f64 {
    t_c * (dt * rate / t_c).exp()
}

fn storage_for(params: &Params, z: f64) -> Storage {
    let liquid = (params.syringe.fill_volume - params.syringe.area * z).max(0.0);
    Storage {
        c: params.fluid.compressibility * liquid + params.syringe.wall_compliance,
        air: params.syringe.bubble,
        p_atm: params.p_atm,
    }
}
