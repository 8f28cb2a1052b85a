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

mod cache;
mod liquid;
mod pneumatics;
mod snapshot;

pub use self::snapshot::Snapshot;

pub use self::cache::MAX_LINE_SUBSTEPS;
use self::cache::{LineScratch, StepCache};
use self::liquid::{move_piston, update_sites, LiquidChain, NeedleLin};
use self::pneumatics::{chamber_at_valve, line_explicit, line_implicit, ChamberGeometry, ValveFlows};
use self::snapshot::{copy_signals, copy_state};
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

fn storage_for(params: &Params, z: f64) -> Storage {
    let liquid = (params.syringe.fill_volume - params.syringe.area * z).max(0.0);
    Storage {
        c: params.fluid.compressibility * liquid + params.syringe.wall_compliance,
        air: params.syringe.bubble,
        p_atm: params.p_atm,
    }
}
