//! Co-simulation of the plant with the firmware over a session of shots.
//!
//! Time is counted in firmware ticks: the plant takes `n_sub` equal steps of
//! h = tick/n_sub ≤ `solver.step` per tick, so tick edges (where the firmware
//! output changes under zero-order hold) are always step boundaries and valve
//! switching never falls inside a step. Shots start on ticks, one period
//! apart. When the plant is quiescent (valve at rest, gas vented, piston
//! stopped, needle flows under 1 nL/s, which can leave at most ~1e-6 µL
//! undelivered), the rest of the period is skipped
//! with the closed-form solution of what still moves (regulator recovery,
//! bleb absorption, chamber gas cooling).

use super::plant::{Plant, SimError};
use crate::control::{Controller, FirmwareInput};
use crate::model::chamber::Thermal;
use crate::model::gas::{CV_AIR, R_AIR};

/// Solver settings (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SolverSettings {
    /// Largest plant step, s.
    pub step: f64,
    /// Firmware tick period, s.
    pub tick: f64,
    /// Trace sampling interval, s.
    pub trace_interval: f64,
    /// Longest the last shot may run after the valve closes before it is cut, s.
    pub max_tail: f64,
}

impl SolverSettings {
    /// Plant steps per firmware tick.
    pub fn substeps(&self) -> u64 {
        ((self.tick / self.step) - 1e-9).ceil().max(1.0) as u64
    }
    /// The step actually taken, s.
    pub fn effective_step(&self) -> f64 {
        self.tick / self.substeps() as f64
    }
}

/// A train of shots (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionSettings {
    /// Number of shots.
    pub shots: usize,
    /// Shot period, s (1/rate).
    pub period: f64,
}

/// What one needle delivered in one shot (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NeedleShot {
    /// Delivered into the tissue, m³.
    pub dose: f64,
    /// Refluxed to the surface, m³.
    pub leak: f64,
    /// Peak site gauge pressure, Pa.
    pub peak_site_pressure: f64,
    /// Largest Reynolds number.
    pub max_re: f64,
}

/// Everything measured for one shot (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ShotRecord {
    /// Shot index from 0.
    pub index: usize,
    /// Trigger time, s.
    pub t_start: f64,
    /// Duration simulated for this shot, s.
    pub duration: f64,
    /// Commanded valve open time after tick quantisation, s.
    pub open_time_cmd: f64,
    /// Delivered into tissue (all needles), m³.
    pub dose: f64,
    /// Refluxed to the surface (all needles), m³.
    pub leak: f64,
    /// Swept by the plunger, m³.
    pub expelled: f64,
    /// Change of the volume stored by compression, m³.
    pub stored_change: f64,
    /// Peak total needle flow, m³/s.
    pub peak_flow: f64,
    /// Peak syringe gauge pressure, Pa.
    pub peak_syringe_pressure: f64,
    /// Peak site gauge pressure over all needles, Pa.
    pub peak_tissue_pressure: f64,
    /// Peak chamber gauge pressure, Pa.
    pub peak_chamber_pressure: f64,
    /// Time from the trigger to 90 % of the shot's dose, s.
    pub t90: f64,
    /// Effective valve-open time ∫ opening dt, s.
    pub valve_open_effective: f64,
    /// Opening delay: trigger to 90 % opening, s (NaN if never reached).
    pub valve_t_on: f64,
    /// Closing delay: command off to 10 % opening, s (NaN if never reached).
    pub valve_t_off: f64,
    /// Largest needle Reynolds number.
    pub max_re: f64,
    /// Supply (regulator) gauge pressure at the trigger, Pa.
    pub supply_pressure_start: f64,
    /// Chamber gauge pressure at the trigger, Pa.
    pub chamber_pressure_start: f64,
    /// Chamber gas temperature at the trigger, K.
    pub chamber_temperature_start: f64,
    /// Piston position at the trigger, m.
    pub piston_start: f64,
    /// Plunger travel since the start of the session at the end of the shot, m.
    pub plunger_end: f64,
    /// Inlet choked at some point.
    pub inlet_choked: bool,
    /// The piston reached its front stop.
    pub hit_stroke: bool,
    /// Plant steps taken.
    pub steps: u64,
    /// Times the plunger broke loose from rest (more than one: stick-slip).
    pub breakaways: u32,
    /// Per-needle results.
    pub needles: Vec<NeedleShot>,
    /// Flags raised during the shot (see [`Flags`]).
    pub flags: Flags,
}

/// Regime flags raised during a shot.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Flags {
    /// A needle flow curve was evaluated beyond its table.
    pub extrapolated: bool,
    /// Line Mach number peak.
    pub line_mach: f64,
    /// Longest entrance length relative to its needle.
    pub entrance_ratio: f64,
}

/// Receives the plant after every step.
pub trait Observer {
    /// Called after each step with the firmware command in force.
    fn observe(&mut self, plant: &Plant, command: bool);
}

impl Observer for () {
    #[inline]
    fn observe(&mut self, _: &Plant, _: bool) {}
}

/// Result of a session.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionResult {
    /// One record per completed shot.
    pub shots: Vec<ShotRecord>,
    /// Why the session stopped early, if it did.
    pub stopped: Option<String>,
    /// Total plant steps.
    pub steps: u64,
    /// Plant steps actually taken per tick.
    pub substeps: u64,
    /// Effective step, s.
    pub effective_step: f64,
    /// Human-readable warnings about model validity, in a fixed order.
    pub warnings: Vec<String>,
}

/// Run `session` on `plant` with `controller`, reporting every step to `observer`.
pub fn run_session(
    plant: &mut Plant,
    controller: &mut dyn Controller,
    solver: &SolverSettings,
    session: &SessionSettings,
    observer: &mut dyn Observer,
) -> Result<SessionResult, SimError> {
    let n_sub = solver.substeps();
    let tick = solver.tick;
    let h = tick / n_sub as f64;
    let period_ticks = ((session.period / tick).round() as u64).max(1);
    let tail_ticks = (solver.max_tail / tick).ceil() as u64;
    let pa = plant.params.p_atm;
    let n = plant.params.needles.len();
    let mut shots = Vec::with_capacity(session.shots);
    let mut stopped = None;
    let mut cumulative: Vec<(f64, f64)> = Vec::new();
    let steps0 = plant.steps();
    for shot in 0..session.shots {
        let start_tick = shot as u64 * period_ticks;
        let last = shot + 1 == session.shots;
        if plant.params.new_site_each_shot {
            plant.new_sites();
        }
        plant.refresh_storage();
        let s0 = plant.state.clone();
        let steps_before = plant.steps();
        let mut rec = ShotRecord {
            index: shot,
            t_start: start_tick as f64 * tick,
            duration: 0.0,
            open_time_cmd: 0.0,
            dose: 0.0,
            leak: 0.0,
            expelled: 0.0,
            stored_change: 0.0,
            peak_flow: 0.0,
            peak_syringe_pressure: 0.0,
            peak_tissue_pressure: 0.0,
            peak_chamber_pressure: 0.0,
            t90: f64::NAN,
            valve_open_effective: 0.0,
            valve_t_on: f64::NAN,
            valve_t_off: f64::NAN,
            max_re: 0.0,
            supply_pressure_start: s0.p_reg - pa,
            chamber_pressure_start: s0.p_c - pa,
            chamber_temperature_start: s0.t_c,
            piston_start: s0.x_p,
            plunger_end: 0.0,
            inlet_choked: false,
            hit_stroke: false,
            steps: 0,
            breakaways: 0,
            needles: vec![
                NeedleShot {
                    dose: 0.0,
                    leak: 0.0,
                    peak_site_pressure: 0.0,
                    max_re: 0.0
                };
                n
            ],
            flags: Flags::default(),
        };
        cumulative.clear();
        let delivered0: f64 = s0.delivered.iter().sum();
        let mut prev_command = false;
        let mut t_fall = f64::NAN;
        let mut k = 0u64;
        let mut end_tick = period_ticks;
        while k < end_tick {
            let t_tick = (start_tick + k) as f64 * tick;
            let out = controller.step(&FirmwareInput {
                t: t_tick,
                shot,
                t_in_shot: k as f64 * tick,
            });
            let command = out.valve;
            if command && !prev_command && k == 0 {
                rec.open_time_cmd = controller.commanded_open_time();
            }
            if !command && prev_command {
                t_fall = k as f64 * tick;
            }
            prev_command = command;
            for j in 0..n_sub {
                plant.step(command, h)?;
                // Keep time exact (no drift from repeated additions).
                plant.state.t = t_tick + (j + 1) as f64 * h;
                let t_rel = plant.state.t - rec.t_start;
                let s = &plant.state;
                let sig = &plant.signals;
                rec.peak_flow = rec.peak_flow.max(sig.q_total);
                rec.peak_syringe_pressure = rec.peak_syringe_pressure.max(s.p_s - pa);
                rec.peak_chamber_pressure = rec.peak_chamber_pressure.max(s.p_c - pa);
                rec.valve_open_effective += h * s.valve.opening;
                if rec.valve_t_on.is_nan() && command && s.valve.opening >= 0.9 {
                    rec.valve_t_on = t_rel;
                }
                if rec.valve_t_off.is_nan() && !t_fall.is_nan() && s.valve.opening <= 0.1 {
                    rec.valve_t_off = t_rel - t_fall;
                }
                rec.inlet_choked |= sig.inlet_choked;
                rec.breakaways += sig.breakaway as u32;
                rec.hit_stroke |= s.x_p >= plant.params.piston.stroke;
                rec.flags.extrapolated |= sig.extrapolated;
                rec.flags.line_mach = rec.flags.line_mach.max(sig.line_mach);
                for i in 0..n {
                    let ns = &mut rec.needles[i];
                    ns.peak_site_pressure = ns.peak_site_pressure.max(sig.p_site[i]);
                    ns.max_re = ns.max_re.max(sig.re[i]);
                }
                cumulative.push((t_rel, sig.delivered_total - delivered0));
                observer.observe(plant, command);
            }
            k += 1;
            if plant.state.syringe_empty {
                stopped = Some(format!(
                    "the syringe is empty after shot {} of {} (stopper at {:.2} mm, {:.1} µL left as dead space)",
                    shot + 1,
                    session.shots,
                    plant.state.z * 1e3,
                    plant.params.syringe.dead_space * 1e9
                ));
                break;
            }
            if !command && !t_fall.is_nan() && quiescent(plant) {
                if last {
                    break;
                }
                fast_forward(plant, (start_tick + end_tick) as f64 * tick);
                observer.observe(plant, command);
                break;
            }
            if last && !t_fall.is_nan() && k >= (t_fall / tick).round() as u64 + tail_ticks {
                end_tick = k;
            }
        }
        let s = &plant.state;
        rec.duration = s.t - rec.t_start;
        rec.steps = plant.steps() - steps_before;
        rec.expelled = s.expelled - s0.expelled;
        rec.stored_change = (s.w_syr + s.w_hub) - (s0.w_syr + s0.w_hub);
        rec.plunger_end = s.z;
        for i in 0..n {
            let ns = &mut rec.needles[i];
            ns.dose = s.delivered[i] - s0.delivered[i];
            ns.leak = s.leaked[i] - s0.leaked[i];
            rec.dose += ns.dose;
            rec.leak += ns.leak;
            rec.peak_tissue_pressure = rec.peak_tissue_pressure.max(ns.peak_site_pressure);
            rec.max_re = rec.max_re.max(ns.max_re);
            let ratio =
                plant.params.needles[i].entrance_length(ns.max_re) / plant.params.needles[i].length;
            rec.flags.entrance_ratio = rec.flags.entrance_ratio.max(ratio);
        }
        rec.t90 = time_to_fraction(&cumulative, 0.9 * rec.dose);
        shots.push(rec);
        if stopped.is_some() {
            break;
        }
    }
    let warnings = warnings(plant, &shots, stopped.as_deref());
    Ok(SessionResult {
        shots,
        stopped,
        steps: plant.steps() - steps0,
        substeps: n_sub,
        effective_step: h,
        warnings,
    })
}

fn time_to_fraction(cum: &[(f64, f64)], target: f64) -> f64 {
    if target <= 0.0 {
        return f64::NAN;
    }
    let mut prev = (0.0, 0.0);
    for &(t, v) in cum {
        if v >= target {
            let f = if v > prev.1 {
                (target - prev.1) / (v - prev.1)
            } else {
                1.0
            };
            return prev.0 + f * (t - prev.0);
        }
        prev = (t, v);
    }
    f64::NAN
}

/// True when nothing but slow relaxation is left in the plant.
pub fn quiescent(plant: &Plant) -> bool {
    let s = &plant.state;
    let pa = plant.params.p_atm;
    plant.valve_at_rest()
        && (s.p_c - pa).abs() < 5.0
        && s.line_p.iter().all(|p| (p - pa).abs() < 5.0)
        && s.line_w.iter().all(|w| w.abs() < 1e-9)
        && s.v_p == 0.0
        && s.q_needle.iter().all(|q| q.abs() < 1e-12)
        && s.q_tube.abs() < 1e-12
}

/// Jump to time `t_to` using the closed-form evolution of the slow states.
pub fn fast_forward(plant: &mut Plant, t_to: f64) {
    let dt = t_to - plant.state.t;
    if dt <= 0.0 {
        return;
    }
    let p = &plant.params;
    let s = &mut plant.state;
    let target = p.supply.target(s.p_res, 0.0);
    s.p_reg = p.supply.advance_output(s.p_reg, target, dt);
    for (v, site) in s.v_bleb.iter_mut().zip(&p.sites) {
        *v *= (-dt / site.absorption_time).exp();
    }
    if let Thermal::Energy { h, t_wall } = p.chamber.thermal {
        let v_c = p.chamber.dead_volume + p.piston.area * s.x_p;
        let bore = (4.0 * p.piston.area / std::f64::consts::PI).sqrt();
        let a_w = 2.0 * p.piston.area + std::f64::consts::PI * bore * v_c / p.piston.area;
        // Open to the exhaust at constant pressure: m·cp·dT/dt = h·A·(Tw − T).
        let m = s.p_c * v_c / (R_AIR * s.t_c);
        let tau = m * (CV_AIR + R_AIR) / (h * a_w).max(1e-30);
        s.t_c = t_wall + (s.t_c - t_wall) * (-dt / tau).exp();
    }
    s.valve.since_edge += dt;
    for q in &mut s.q_needle {
        *q = 0.0;
    }
    s.q_tube = 0.0;
    s.t = t_to;
}

fn warnings(plant: &Plant, shots: &[ShotRecord], stopped: Option<&str>) -> Vec<String> {
    let mut w = Vec::new();
    let newtonian = plant.params.fluid.is_newtonian();
    let max_re = shots.iter().map(|s| s.max_re).fold(0.0, f64::max);
    let count = |f: &dyn Fn(&ShotRecord) -> bool| shots.iter().filter(|s| f(s)).count();
    if newtonian && max_re > 2000.0 {
        w.push(format!(
            "needle flow left the laminar regime in {} of {} shots (max Re {:.0}): Hagen–Poiseuille alone would under-predict the pressure drop; the smooth laminar–turbulent blend (Blasius above Re 4000) is used",
            count(&|s| s.max_re > 2000.0),
            shots.len(),
            max_re
        ));
    }
    if newtonian && max_re > 1e5 {
        w.push(format!(
            "max Re {max_re:.0} exceeds 1e5, beyond the Blasius correlation's validity"
        ));
    }
    if !newtonian && max_re > 2100.0 {
        w.push(format!(
            "Metzner–Reed Reynolds number {max_re:.0} exceeds 2100: the laminar generalized-Newtonian needle model is outside its validity"
        ));
    }
    if shots.iter().any(|s| s.flags.extrapolated) {
        w.push(
            "a needle flow exceeded 100 mL/s, beyond the tabulated flow curve (extrapolated)"
                .into(),
        );
    }
    let entrance = shots
        .iter()
        .map(|s| s.flags.entrance_ratio)
        .fold(0.0, f64::max);
    if entrance > 1.0 {
        w.push(format!(
            "the entrance length reaches {entrance:.1}× the needle length: the flow is developing over the whole needle; the minor-loss coefficient accounts for it only approximately"
        ));
    }
    let mach = shots.iter().map(|s| s.flags.line_mach).fold(0.0, f64::max);
    if mach > 0.3 {
        w.push(format!("pneumatic line Mach number reaches {mach:.2} (> 0.3): the lumped line is outside its validity"));
    }
    let leaky = count(&|s| s.leak > 1e-12);
    if leaky > 0 {
        let total: f64 = shots.iter().map(|s| s.leak).sum();
        w.push(format!(
            "{:.2} µL refluxed to the skin surface in {} of {} shots (site pressure above the leak pressure)",
            total * 1e9,
            leaky,
            shots.len()
        ));
    }
    let slip = count(&|s| s.breakaways > 1);
    if slip > 0 {
        let worst = shots.iter().map(|s| s.breakaways).max().unwrap_or(0);
        w.push(format!(
            "the plunger stick-slipped in {} of {} shots (up to {} breakaways in a shot): the drive force is close to the stopper friction, so the dose depends on the friction law's details and converges slowly with the step (check with solver.step_us ≤ 10)",
            slip,
            shots.len(),
            worst
        ));
    }
    let stroke = count(&|s| s.hit_stroke);
    if stroke > 0 {
        w.push(format!("the piston reached its front stop in {} of {} shots: those doses are limited by the stroke", stroke, shots.len()));
    }
    if let Some(msg) = stopped {
        w.push(format!("session stopped early: {msg}"));
    }
    w
}
