//! One simulation of a [`Model`]: its FMI life cycle, its parameter and
//! input values, and the plant it steps.

use super::state::State;
use super::{setpoint_start, Causality, Model, Value, Variable, VR_FIRST_OUTPUT, VR_FIRST_PARAMETER, VR_VALVE_COMMAND};
use crate::scenario::Scenario;
use crate::sim::session::{fast_forward, quiescent};
use crate::sim::{Drive, Plant};

/// Where an instance is in the FMI life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Instantiated: parameters may be set.
    Instantiated,
    /// In initialisation mode: parameters may still be set.
    Initializing,
    /// Stepping.
    Stepping,
    /// A step failed or the simulation was terminated: only reset or free.
    Stopped,
}

/// One simulation of a [`Model`].
#[derive(Debug, Clone)]
pub struct Instance {
    model: Model,
    phase: Phase,
    values: Vec<Value>,
    inputs: [f64; 2],
    time: f64,
    sim: Option<Sim>,
}

/// The plant being stepped.
#[derive(Debug, Clone)]
struct Sim {
    sc: Scenario,
    plant: Plant,
    /// Coil drive of the last step (a rising edge starts a shot).
    last_coil: f64,
    /// Shots started.
    shots: u64,
    /// Plunger travel when the liquid compliance was last refreshed.
    z_storage: f64,
}

impl Sim {
    fn new(sc: Scenario) -> Sim {
        let plant = Plant::new(sc.params.clone());
        Sim { sc, plant, last_coil: 0.0, shots: 0, z_storage: 0.0 }
    }
}

impl Instance {
    /// A fresh instance, every parameter at its start.
    pub fn new(model: Model) -> Instance {
        let values = model.parameters().map(|v| v.start).collect();
        let inputs = [0.0, setpoint_start(&model.base)];
        Instance { model, phase: Phase::Instantiated, values, inputs, time: 0.0, sim: None }
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The life-cycle phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Back to a fresh instance (FMI reset).
    pub fn reset(&mut self) {
        self.values = self.model.parameters().map(|v| v.start).collect();
        self.inputs = [0.0, setpoint_start(&self.model.base)];
        self.time = 0.0;
        self.sim = None;
        self.phase = Phase::Instantiated;
    }

    /// Set the start time and enter initialisation mode.
    pub fn enter_initialization(&mut self, start_time: f64) -> Result<(), String> {
        if self.phase != Phase::Instantiated {
            return Err(format!("cannot enter initialisation mode from {:?}", self.phase));
        }
        if !start_time.is_finite() {
            return Err(format!("start time {start_time} is not a finite number"));
        }
        self.time = start_time;
        self.phase = Phase::Initializing;
        Ok(())
    }

    /// Apply the parameters (through the registry) and build the plant at rest.
    pub fn exit_initialization(&mut self) -> Result<(), String> {
        if self.phase != Phase::Initializing {
            return Err(format!("cannot exit initialisation mode from {:?}", self.phase));
        }
        self.build()?;
        self.phase = Phase::Stepping;
        Ok(())
    }

    fn build(&mut self) -> Result<(), String> {
        if self.sim.is_none() {
            let sc = self.model.scenario_with(&self.values)?;
            self.sim = Some(Sim::new(sc));
        }
        Ok(())
    }

    /// End of the simulation.
    pub fn terminate(&mut self) {
        self.phase = Phase::Stopped;
    }

    /// Set a variable. Parameters only before initialisation ends.
    pub fn set(&mut self, vr: u32, x: Value) -> Result<(), String> {
        let v = self.model.variable(vr).ok_or_else(|| format!("no variable has value reference {vr}"))?;
        match v.causality {
            Causality::Input => {
                let Value::Real(r) = x else { return Err(format!("{} is a real variable", v.name)) };
                if !r.is_finite() {
                    return Err(format!("{} = {r} is not allowed: a finite number", v.name));
                }
                self.inputs[(vr - VR_VALVE_COMMAND) as usize] = r;
                Ok(())
            }
            Causality::Parameter => {
                if !matches!(self.phase, Phase::Instantiated | Phase::Initializing) {
                    return Err(format!(
                        "{} is a parameter: it can be set only before initialisation ends (reset the instance to change it)",
                        v.name
                    ));
                }
                check_value(v, &x)?;
                let i = (vr - VR_FIRST_PARAMETER) as usize;
                if self.values[i] != x {
                    self.values[i] = x;
                    self.sim = None;
                }
                Ok(())
            }
            Causality::Output | Causality::Independent => Err(format!("{} cannot be set", v.name)),
        }
    }

    /// The value of a variable. Outputs before initialisation ends are those of the plant at rest.
    pub fn get(&mut self, vr: u32) -> Result<Value, String> {
        let v = self.model.variable(vr).ok_or_else(|| format!("no variable has value reference {vr}"))?;
        match v.causality {
            Causality::Independent => Ok(Value::Real(self.time)),
            Causality::Input => Ok(Value::Real(self.inputs[(vr - VR_VALVE_COMMAND) as usize])),
            Causality::Parameter => Ok(self.values[(vr - VR_FIRST_PARAMETER) as usize]),
            Causality::Output => {
                self.build()?;
                let plant = &self.sim.as_ref().expect("built").plant;
                Ok(Value::Real(output(plant, (vr - VR_FIRST_OUTPUT) as usize)))
            }
        }
    }

    /// Advance from `t` by `h` seconds with the inputs held, in steps of at
    /// most `solver.step_us`; quiet stretches with the valve off are
    /// skipped in closed form, as `mesobench run` does.
    pub fn do_step(&mut self, t: f64, h: f64) -> Result<(), String> {
        if self.phase != Phase::Stepping {
            return Err(format!("doStep is allowed after initialisation only (the instance is {:?})", self.phase));
        }
        if !(h > 0.0 && h.is_finite()) {
            return Err(format!("communication step size {h} is not allowed: a positive number"));
        }
        let coil = self.inputs[0];
        if !(0.0..=1.0).contains(&coil) {
            return Err(format!("valve_command = {coil} is not allowed: a number from 0 to 1"));
        }
        let sim = self.sim.as_mut().expect("built at initialisation");
        let result = sim.advance(t, h, coil, self.inputs[1]);
        self.time = t + h;
        if result.is_err() {
            self.phase = Phase::Stopped;
        }
        result
    }

    /// The instance's state (FMI get FMU state).
    pub fn get_state(&self) -> State {
        State {
            phase: self.phase,
            values: self.values.clone(),
            inputs: self.inputs,
            time: self.time,
            last_coil: self.sim.as_ref().map(|s| s.last_coil).unwrap_or(0.0),
            shots: self.sim.as_ref().map(|s| s.shots).unwrap_or(0),
            plant: self.sim.as_ref().map(|s| (s.plant.state.clone(), s.plant.signals.clone(), s.z_storage)),
        }
    }

    /// Return to a saved state (FMI set FMU state).
    pub fn set_state(&mut self, st: &State) -> Result<(), String> {
        if st.values.len() != self.values.len() {
            return Err("the FMU state belongs to another model".into());
        }
        self.values.clone_from(&st.values);
        self.sim = None;
        if let Some((ps, sig, z_storage)) = &st.plant {
            self.build()?;
            let sim = self.sim.as_mut().expect("built");
            if ps.q_needle.len() != sim.plant.state.q_needle.len() || ps.line_p.len() != sim.plant.state.line_p.len() {
                return Err("the FMU state does not fit the plant (needle count or line segments)".into());
            }
            // The liquid compliance as it was refreshed, then the state itself.
            sim.plant.state.z = *z_storage;
            sim.plant.refresh_storage();
            sim.plant.restore_state(ps);
            sim.plant.signals.clone_from(sig);
            sim.z_storage = *z_storage;
            sim.last_coil = st.last_coil;
            sim.shots = st.shots;
        }
        self.phase = st.phase;
        self.inputs = st.inputs;
        self.time = st.time;
        Ok(())
    }
}

impl Sim {
    fn advance(&mut self, t: f64, h: f64, coil: f64, setpoint_kpa: f64) -> Result<(), String> {
        let plant = &mut self.plant;
        let pa = plant.params.p_atm;
        if coil > 0.0 && self.last_coil == 0.0 {
            // A new shot, as a session starts one: fresh sites, the liquid
            // compliance for the current fill.
            if self.shots > 0 && plant.params.new_site_each_shot {
                plant.new_sites();
            }
            plant.refresh_storage();
            self.z_storage = plant.state.z;
            self.shots += 1;
        }
        self.last_coil = coil;
        let proportional = plant.params.supply.proportional;
        let setpoint = if proportional { setpoint_kpa * 1e3 + pa } else { f64::NAN };
        let steady_setpoint = !proportional || setpoint.clamp(pa, plant.params.supply.p_set_max) == plant.state.p_set;
        plant.state.t = t;
        if coil == 0.0 && steady_setpoint && quiescent(plant) {
            fast_forward(plant, t + h);
            return Ok(());
        }
        let step = self.sc.solver.step;
        let n = ((h / step) - 1e-9).ceil().max(1.0) as u64;
        let dt = h / n as f64;
        let drive = Drive { coil, regulator_setpoint: setpoint, force: 0.0, force_damping: 0.0 };
        for j in 0..n {
            plant.advance(&drive, dt);
            plant.state.t = t + (j + 1) as f64 * dt;
        }
        plant.check().map_err(|e| e.to_string())
    }
}

/// The value of output `i` ([`OUTPUTS`](super::OUTPUTS)) in its unit.
pub fn output(plant: &Plant, i: usize) -> f64 {
    let s = crate::sim::trace::sample(plant, 0.0, &crate::control::FwOutput::default());
    match i {
        0 => s.delivered * 1e9,
        1 => s.leaked * 1e9,
        2 => s.supply / 1e3,
        3 => s.chamber / 1e3,
        4 => s.syringe / 1e3,
        5 => s.tissue / 1e3,
        6 => s.flow * 1e9,
        7 => s.plunger * 1e3,
        8 => s.coil_current,
        _ => s.opening,
    }
}

/// A value against the parameter's kind and range (the whole scenario is checked at initialisation).
fn check_value(v: &Variable, x: &Value) -> Result<(), String> {
    let label = v.param.map(|p| p.unit.label).unwrap_or("");
    let range = || match (v.min, v.max) {
        (Some(lo), Some(hi)) => {
            format!("from {} to {}", crate::model::param::fmt_num(lo), crate::model::param::fmt_num(hi))
        }
        (Some(lo), None) => format!("from {}", crate::model::param::fmt_num(lo)),
        _ => "finite".into(),
    };
    let bad = |shown: String, allowed: String| Err(format!("parameter {} = {shown} is not allowed: {allowed}", v.name));
    match (*x, v.start) {
        (Value::Real(r), Value::Real(_)) => {
            if !r.is_finite() || v.min.is_some_and(|lo| r < lo) || v.max.is_some_and(|hi| r > hi) {
                return bad(
                    crate::model::param::fmt_num(r),
                    format!("a number {} {label}", range()).trim_end().to_string(),
                );
            }
            Ok(())
        }
        (Value::Integer(i), Value::Integer(_)) => {
            if v.min.is_some_and(|lo| (i as f64) < lo) || v.max.is_some_and(|hi| (i as f64) > hi) {
                return bad(i.to_string(), format!("a whole number {}", range()));
            }
            Ok(())
        }
        (Value::Enumeration(i), Value::Enumeration(_)) => {
            if i >= v.items.len() {
                return bad(
                    format!("item {}", i + 1),
                    format!(
                        "one of {}",
                        v.items
                            .iter()
                            .enumerate()
                            .map(|(k, n)| format!("{} ({n})", k + 1))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            Ok(())
        }
        (Value::Boolean(_), Value::Boolean(_)) => Ok(()),
        _ => Err(format!("parameter {} has another type", v.name)),
    }
}
