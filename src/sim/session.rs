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

use super::adaptive::{self, Adaptive};
use super::plant::{Drive, Plant, SimError};
use crate::control::drive::Driver;
use crate::control::sensors::Sensors;
use crate::control::{Controller, FirmwareError, FwInput, FwOutput};
use crate::model::chamber::Thermal;
use crate::model::gas::{CV_AIR, R_AIR};

/// How the plant's step is chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SolverMode {
    /// Fixed steps of `step` (at most), whole per tick: the reference mode.
    #[default]
    Fixed,
    /// Steps chosen by an error estimate, events located, one step across
    /// ticks where the firmware promised a steady output (`src/sim/adaptive.rs`).
    Adaptive,
}

impl SolverMode {
    /// True for the fixed-step reference mode.
    pub fn is_fixed(&self) -> bool {
        *self == SolverMode::Fixed
    }
}

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
    /// How the step is chosen (not written for the fixed mode, the default).
    #[serde(skip_serializing_if = "SolverMode::is_fixed")]
    pub mode: SolverMode,
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
    /// Opening delay: drive on to 90 % opening, s (NaN if never reached).
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
    /// Largest bleb volume at any site, m³.
    pub site_volume: f64,
    /// Largest flow into any site, m³/s.
    pub site_flow: f64,
}

/// Receives the plant after every step.
pub trait Observer {
    /// Called after each step with the coil drive applied over the step and
    /// the firmware output in force.
    fn observe(&mut self, plant: &Plant, coil: f64, fw: &FwOutput);
}

impl Observer for () {
    #[inline]
    fn observe(&mut self, _: &Plant, _: f64, _: &FwOutput) {}
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
    /// Firmware ticks simulated (ticks skipped while quiescent are not counted).
    pub ticks: u64,
    /// Human-readable warnings about model validity, in a fixed order.
    pub warnings: Vec<String>,
}

/// The firmware side of the co-simulation: controller, sensors, valve driver
/// and the compute delay between a tick's computation and its application.
pub struct FirmwareLoop<'a> {
    /// The firmware.
    pub controller: &'a mut dyn Controller,
    /// Sensor models.
    pub sensors: Sensors,
    /// Valve driver.
    pub driver: Driver,
    /// Ticks between computing a command and applying it.
    pub delay_ticks: usize,
}

/// A failure during a session.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The plant failed numerically.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// The firmware failed.
    #[error(transparent)]
    Firmware(#[from] FirmwareError),
    /// Parameters for a shot could not be applied.
    #[error("shot {shot}: {message}")]
    Shot {
        /// Shot index.
        shot: usize,
        /// What went wrong.
        message: String,
    },
}

/// Called before each shot with its index and the plant (to vary parameters
/// from shot to shot); an error stops the session.
pub type ShotHook<'a> = &'a mut dyn FnMut(usize, &mut Plant) -> Result<(), String>;

/// Run `session` on `plant` with the firmware loop `fw`, reporting every step to `observer`.
pub fn run_session<O: Observer + ?Sized>(
    plant: &mut Plant,
    fw: &mut FirmwareLoop,
    solver: &SolverSettings,
    session: &SessionSettings,
    observer: &mut O,
) -> Result<SessionResult, RunError> {
    run_session_with(plant, fw, solver, session, observer, None)
}

/// [`run_session`] with a hook called before each shot.
pub fn run_session_with<O: Observer + ?Sized>(
    plant: &mut Plant,
    fw: &mut FirmwareLoop,
    solver: &SolverSettings,
    session: &SessionSettings,
    observer: &mut O,
    mut before_shot: Option<ShotHook>,
) -> Result<SessionResult, RunError> {
    let n_sub = solver.substeps();
    let tick = solver.tick;
    let h = tick / n_sub as f64;
    let period_ticks = ((session.period / tick).round() as u64).max(1);
    let tail_ticks = (solver.max_tail / tick).ceil() as u64;
    let press_ticks = ((fw.sensors.spec().trigger_press / tick).round() as u64).max(1);
    let debounce_ticks = (fw.sensors.spec().debounce / tick).round() as u64;
    let pa = plant.params.p_atm;
    let n = plant.params.needles.len();
    let area = plant.params.syringe.area;
    let mut shots = Vec::with_capacity(session.shots);
    let mut stopped = None;
    let mut cumulative: Vec<(f64, f64)> = Vec::new();
    let steps0 = plant.steps();
    fw.controller.reset()?;
    let mut queue: std::collections::VecDeque<FwOutput> = std::collections::VecDeque::with_capacity(fw.delay_ticks + 1);
    let mut applied = FwOutput::default();
    // The firmware's last (validated) output, the ticks it promised to hold
    // it for, the trigger level it saw, and the ticks skipped since.
    let mut out = FwOutput::default();
    let mut steady = 0u64;
    let mut fw_level = 0u32;
    let mut skipped = 0u64;
    let mut last_command = FwOutput::default();
    let mut commanded = false;
    let reads = fw.controller.reads();
    fw.sensors.read_only(reads.pressures);
    // The lag filters are followed only when the firmware reads a pressure.
    let any_read = fw.sensors.any_read();
    let mut ad = (solver.mode == SolverMode::Adaptive).then(|| Adaptive::new(plant));
    // Trigger: raw level, debounced level, ticks the raw level has differed from the debounced one.
    let mut debounced = 0u32;
    let mut pending = 0u64;
    let mut edges = 0u32;
    let mut t_edge = f64::NEG_INFINITY;
    let mut ticks_run = 0u64;
    let truth = |p: &Plant| [p.state.p_reg - pa, p.state.p_c - pa, p.state.p_s - pa];
    fw.sensors.settle(truth(plant));
    for shot in 0..session.shots {
        let start_tick = shot as u64 * period_ticks;
        let last = shot + 1 == session.shots;
        if let Some(hook) = before_shot.as_mut() {
            hook(shot, plant).map_err(|message| RunError::Shot { shot, message })?;
        }
        if plant.params.new_site_each_shot {
            plant.new_sites();
        }
        plant.refresh_storage();
        let s0 = plant.state.clone();
        let steps_before = plant.steps();
        let mut rec = ShotRecord::starting(shot, start_tick as f64 * tick, &s0, pa, n);
        cumulative.clear();
        // Room for a shot period of steps (bounded), so the t90 buffer does not regrow.
        cumulative.reserve((period_ticks.saturating_mul(n_sub)).min(1 << 16) as usize);
        let delivered0: f64 = s0.delivered.iter().sum();
        let mut was_active = false;
        let mut t_rise = f64::NAN;
        let mut t_fall = f64::NAN;
        let mut active_ticks = 0u64;
        let mut k = 0u64;
        let mut end_tick = period_ticks;
        while k < end_tick {
            let tick_no = start_tick + k;
            let t_tick = tick_no as f64 * tick;
            // Trigger and debounce.
            let raw = (k < press_ticks) as u32;
            if raw != debounced {
                pending += 1;
                if pending > debounce_ticks {
                    debounced = raw;
                    pending = 0;
                    if raw == 1 {
                        edges += 1;
                        t_edge = t_tick;
                    }
                }
            } else {
                pending = 0;
            }
            // Firmware tick: sample, compute, delay, apply. Inside a window
            // where the firmware promised the same output whatever it reads
            // (and with the trigger level it saw), its last output stands in
            // for the call: nothing is sampled, built or validated.
            if steady > 0 && debounced == fw_level {
                steady -= 1;
                skipped += 1;
                if fw.sensors.any_read() {
                    fw.sensors.sample(tick_no);
                }
            } else {
                if skipped > 0 {
                    fw.controller.skip(skipped);
                    skipped = 0;
                }
                fw.sensors.sample(tick_no);
                let [p_supply, p_chamber, p_syringe] = fw.sensors.pressures();
                let input = FwInput {
                    t: t_tick,
                    tick_period: tick,
                    tick: tick_no,
                    shot: edges.saturating_sub(1),
                    trigger: debounced,
                    t_since_trigger: t_tick - t_edge,
                    p_supply,
                    p_chamber,
                    p_syringe,
                    plunger: if reads.plunger { fw.sensors.encoder(plant.state.z) } else { f64::NAN },
                    syringe_area: area,
                };
                out = FwOutput::default();
                fw.controller.step(&input, &mut out)?;
                out.validate().map_err(|message| FirmwareError::Step {
                    name: fw.controller.name(),
                    t_ms: t_tick * 1e3,
                    tick: tick_no,
                    message,
                })?;
                steady = fw.controller.steady_ticks();
                fw_level = debounced;
            }
            if fw.delay_ticks == 0 {
                applied = out;
            } else {
                queue.push_back(out);
                if queue.len() > fw.delay_ticks {
                    applied = queue.pop_front().expect("non-empty");
                }
            }
            // The driver depends on its command and, on a change of mode, the time.
            if !commanded || !applied.same_drive(&last_command) {
                fw.driver.command(&applied, t_tick);
                last_command = applied;
                commanded = true;
            }
            let active = fw.driver.active();
            if active && !was_active && t_rise.is_nan() {
                t_rise = k as f64 * tick;
            }
            if !active && was_active {
                t_fall = k as f64 * tick;
            }
            was_active = active;
            active_ticks += active as u64;
            let regulator_setpoint =
                if applied.regulator_setpoint.is_nan() { f64::NAN } else { applied.regulator_setpoint + pa };
            let resting = applied.idle == 1 && !active && (fw.delay_ticks == 0 || queue.iter().all(|o| o.idle == 1));
            if resting && regulator_setpoint.is_nan() && quiescent(plant) {
                // Nothing moves but slow relaxation: advance this tick in closed form.
                fast_forward(plant, t_tick + tick);
                fw.sensors.settle(truth(plant));
                observer.observe(plant, 0.0, &applied);
                k += 1;
                ticks_run += 1;
                if !t_fall.is_nan() && raw == 0 && debounced == 0 && pending == 0 {
                    if !last {
                        skip_to(plant, fw, observer, &applied, (start_tick + end_tick) as f64 * tick);
                    }
                    break;
                }
                continue;
            }
            let mut span = 1u64;
            if let Some(ad) = ad.as_mut() {
                // One window across the ticks the firmware promised to hold
                // its output for (the trigger level, and with it the
                // firmware's input, staying as it is).
                if steady > 0 && fw.delay_ticks == 0 && !fw.sensors.any_read() {
                    let mut extra = steady.min(end_tick - k - 1).min(MAX_WINDOW_TICKS - 1);
                    // The raw trigger level holds until the press ends...
                    if k < press_ticks {
                        extra = extra.min(press_ticks - 1 - k);
                    }
                    // ...and a debounce under way does not complete inside the window.
                    if raw != debounced {
                        extra = extra.min(debounce_ticks.saturating_sub(pending));
                    }
                    if last && !t_fall.is_nan() {
                        let cut = (t_fall / tick).round() as u64 + tail_ticks;
                        extra = extra.min(cut.saturating_sub(k + 1));
                    }
                    span = 1 + extra;
                }
                let window = Window {
                    t0: t_tick,
                    units: span * n_sub * adaptive::MIN_STEP_DIVISOR,
                    h0: h / adaptive::MIN_STEP_DIVISOR as f64,
                    regulator_setpoint,
                };
                let edges = (t_rise, t_fall, delivered0);
                adaptive_window(ad, plant, fw, &window, &mut rec, &mut cumulative, edges, pa, observer, &applied);
                if span > 1 {
                    if raw != debounced {
                        pending += span - 1;
                    }
                    steady -= span - 1;
                    skipped += span - 1;
                    active_ticks += (span - 1) * active as u64;
                }
            } else {
                for j in 0..n_sub {
                    let t0 = t_tick + j as f64 * h;
                    let t1 = t_tick + (j + 1) as f64 * h;
                    let coil = fw.driver.mean(t0, t1);
                    plant.advance(&Drive { coil, regulator_setpoint, force: 0.0, force_damping: 0.0 }, h);
                    // Keep time exact (no drift from repeated additions).
                    plant.state.t = t1;
                    if any_read {
                        fw.sensors.track(truth(plant), h);
                    }
                    rec.accumulate(plant, t1 - rec.t_start, h, t_rise, t_fall, pa);
                    cumulative.push((t1 - rec.t_start, plant.signals.delivered_total - delivered0));
                    observer.observe(plant, coil, &applied);
                }
            }
            plant.check()?;
            k += span;
            ticks_run += span;
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
            let idle = applied.idle == 1 && queue.iter().all(|o| o.idle == 1) && !active && raw == 0 && debounced == 0;
            if last && idle && !t_fall.is_nan() && delivery_over(plant) {
                break;
            }
            if idle && !t_fall.is_nan() && quiescent(plant) {
                if !last {
                    skip_to(plant, fw, observer, &applied, (start_tick + end_tick) as f64 * tick);
                }
                break;
            }
            if last && !t_fall.is_nan() && k >= (t_fall / tick).round() as u64 + tail_ticks {
                end_tick = k;
            }
        }
        rec.open_time_cmd = active_ticks as f64 * tick;
        rec.finish(plant, &s0, steps_before, &cumulative);
        check_shot(&rec, plant)?;
        shots.push(rec);
        if stopped.is_some() {
            break;
        }
    }
    let warnings = warnings(plant, &shots, stopped.as_deref(), h);
    Ok(SessionResult {
        shots,
        stopped,
        steps: plant.steps() - steps0,
        substeps: n_sub,
        effective_step: h,
        ticks: ticks_run,
        warnings,
    })
}

/// Most ticks one adaptive window spans (so the end of a shot is seen within it).
const MAX_WINDOW_TICKS: u64 = 64;

/// A stretch of ticks the adaptive stepper crosses under one firmware output.
struct Window {
    /// Start, s (a tick).
    t0: f64,
    /// Length in smallest steps.
    units: u64,
    /// Smallest step, s.
    h0: f64,
    /// Regulator set pressure commanded, Pa absolute (NaN: unchanged).
    regulator_setpoint: f64,
}

/// Advance the plant across `w` with steps chosen by step doubling (see
/// `src/sim/adaptive.rs`), folding each accepted step into the shot record.
#[allow(clippy::too_many_arguments)]
fn adaptive_window<O: Observer + ?Sized>(
    ad: &mut Adaptive,
    plant: &mut Plant,
    fw: &mut FirmwareLoop,
    w: &Window,
    rec: &mut ShotRecord,
    cumulative: &mut Vec<(f64, f64)>,
    (t_rise, t_fall, delivered0): (f64, f64, f64),
    pa: f64,
    observer: &mut O,
    applied: &FwOutput,
) {
    let truth = |p: &Plant| [p.state.p_reg - pa, p.state.p_c - pa, p.state.p_s - pa];
    let step = |plant: &mut Plant, driver: &crate::control::drive::Driver, a: u64, len: u64| -> f64 {
        let t0 = w.t0 + a as f64 * w.h0;
        let t1 = w.t0 + (a + len) as f64 * w.h0;
        let coil = driver.mean(t0, t1);
        let drive = Drive { coil, regulator_setpoint: w.regulator_setpoint, force: 0.0, force_damping: 0.0 };
        plant.advance(&drive, len as f64 * w.h0);
        plant.state.t = t1;
        coil
    };
    let mut m = 0u64;
    while m < w.units {
        // The largest aligned level that fits the window and the stability limit.
        let aligned = if m == 0 { adaptive::MAX_LEVEL } else { m.trailing_zeros().min(adaptive::MAX_LEVEL) };
        let fits = 63 - (w.units - m).leading_zeros();
        let cap = aligned.min(fits).min(adaptive::stable_level(plant, w.h0));
        let mut level = ad.level.min(cap);
        let (len, coil) = loop {
            if level == 0 {
                // No estimate at the smallest step: take it, then try a larger one.
                ad.level = 1;
                break (1, step(plant, &fw.driver, m, 1));
            }
            let len = 1u64 << level;
            let half = len / 2;
            let mode0 = adaptive::mode(plant);
            ad.save_start(plant);
            step(plant, &fw.driver, m, len);
            let mode_full = adaptive::mode(plant);
            ad.save_full(plant);
            ad.restore_start(plant);
            let c1 = step(plant, &fw.driver, m, half);
            let mode_mid = adaptive::mode(plant);
            let c2 = step(plant, &fw.driver, m + half, half);
            let mode_end = adaptive::mode(plant);
            let same_mode = mode0 == mode_full && mode0 == mode_mid && mode0 == mode_end;
            let err = if same_mode { ad.error(plant) } else { f64::INFINITY };
            if err <= 1.0 {
                ad.level = if err < 0.25 { level + 1 } else { level };
                break (len, 0.5 * (c1 + c2));
            }
            // Rejected: back to the start, half the step.
            ad.restore_start(plant);
            // (A change of mode is bisected: the event is found within h₀.)
            level -= 1;
            ad.level = level;
        };
        let h = len as f64 * w.h0;
        m += len;
        if fw.sensors.any_read() {
            fw.sensors.track(truth(plant), h);
        }
        let t1 = plant.state.t;
        rec.accumulate(plant, t1 - rec.t_start, h, t_rise, t_fall, pa);
        cumulative.push((t1 - rec.t_start, plant.signals.delivered_total - delivered0));
        observer.observe(plant, coil, applied);
    }
}

impl ShotRecord {
    fn starting(index: usize, t_start: f64, s0: &super::PlantState, pa: f64, n: usize) -> ShotRecord {
        ShotRecord {
            index,
            t_start,
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
            needles: vec![NeedleShot { dose: 0.0, leak: 0.0, peak_site_pressure: 0.0, max_re: 0.0 }; n],
            flags: Flags::default(),
        }
    }

    /// Fold one step into the record; `t_rel` is the time since the trigger,
    /// `t_rise`/`t_fall` the drive's edges (NaN before they happen).
    #[inline]
    fn accumulate(&mut self, plant: &Plant, t_rel: f64, h: f64, t_rise: f64, t_fall: f64, pa: f64) {
        let s = &plant.state;
        let sig = &plant.signals;
        self.peak_flow = self.peak_flow.max(sig.q_total);
        self.peak_syringe_pressure = self.peak_syringe_pressure.max(s.p_s - pa);
        self.peak_chamber_pressure = self.peak_chamber_pressure.max(s.p_c - pa);
        self.valve_open_effective += h * s.valve.opening;
        if self.valve_t_on.is_nan() && !t_rise.is_nan() && s.valve.opening >= 0.9 {
            self.valve_t_on = t_rel - t_rise;
        }
        if self.valve_t_off.is_nan() && !t_fall.is_nan() && s.valve.opening <= 0.1 {
            self.valve_t_off = t_rel - t_fall;
        }
        self.inlet_choked |= sig.inlet_choked;
        self.breakaways += sig.breakaway as u32;
        self.hit_stroke |= s.x_p >= plant.params.piston.stroke;
        self.flags.extrapolated |= sig.extrapolated;
        self.flags.line_mach = self.flags.line_mach.max(sig.line_mach);
        // One pass over the needles, on slices of one length.
        let n = self.needles.len();
        let (p_site, re) = (&sig.p_site[..n], &sig.re[..n]);
        let (v_bleb, q_needle) = (&s.v_bleb[..n], &s.q_needle[..n]);
        let (mut site_volume, mut site_flow) = (self.flags.site_volume, self.flags.site_flow);
        for (k, ns) in self.needles.iter_mut().enumerate() {
            ns.peak_site_pressure = ns.peak_site_pressure.max(p_site[k]);
            ns.max_re = ns.max_re.max(re[k]);
            site_volume = site_volume.max(v_bleb[k]);
            site_flow = site_flow.max(q_needle[k]);
        }
        self.flags.site_volume = site_volume;
        self.flags.site_flow = site_flow;
    }

    fn finish(&mut self, plant: &Plant, s0: &super::PlantState, steps_before: u64, cumulative: &[(f64, f64)]) {
        let s = &plant.state;
        self.duration = s.t - self.t_start;
        self.steps = plant.steps() - steps_before;
        self.expelled = s.expelled - s0.expelled;
        self.stored_change = (s.w_syr + s.w_hub) - (s0.w_syr + s0.w_hub);
        self.plunger_end = s.z;
        for i in 0..self.needles.len() {
            let ns = &mut self.needles[i];
            ns.dose = s.delivered[i] - s0.delivered[i];
            ns.leak = s.leaked[i] - s0.leaked[i];
            self.dose += ns.dose;
            self.leak += ns.leak;
            self.peak_tissue_pressure = self.peak_tissue_pressure.max(ns.peak_site_pressure);
            self.max_re = self.max_re.max(ns.max_re);
            let ratio = plant.params.needles[i].entrance_length(ns.max_re) / plant.params.needles[i].length;
            self.flags.entrance_ratio = self.flags.entrance_ratio.max(ratio);
        }
        self.t90 = time_to_fraction(cumulative, 0.9 * self.dose);
    }
}

/// The invariants of a finished shot: the plunger's swept volume is the
/// delivered dose plus the reflux plus the change of the volume stored by
/// compression (to 1e-6 of the largest term), and no needle delivers or
/// refluxes a negative volume.
fn check_shot(rec: &ShotRecord, plant: &Plant) -> Result<(), SimError> {
    use crate::text::g6;
    let t_ms = plant.state.t * 1e3;
    let ul = |v: f64| g6(v * 1e9);
    check_balance(rec.index, t_ms, rec.expelled, rec.dose, rec.leak, rec.stored_change)?;
    for (i, n) in rec.needles.iter().enumerate() {
        if !(n.dose >= -1e-18 && n.leak >= -1e-18) {
            return Err(SimError::Invariant {
                component: "tissue",
                t_ms,
                state: format!(
                    "needle {} of shot {} delivered {} µL and refluxed {} µL: volumes cannot be negative",
                    i + 1,
                    rec.index + 1,
                    ul(n.dose),
                    ul(n.leak)
                ),
            });
        }
    }
    Ok(())
}

/// Volume conservation of shot `index` (from 0), ending at `t_ms`: the
/// swept volume equals delivered + reflux + stored change to 1e-6 of the
/// largest term, and the dose and reflux are not negative.
pub fn check_balance(
    index: usize,
    t_ms: f64,
    expelled: f64,
    dose: f64,
    leak: f64,
    stored_change: f64,
) -> Result<(), SimError> {
    use crate::text::g6;
    let ul = |v: f64| g6(v * 1e9);
    let balance = expelled - dose - leak - stored_change;
    let scale = expelled.abs().max(dose.abs()).max(leak.abs()).max(stored_change.abs()).max(1e-12);
    if balance.abs() <= 1e-6 * scale && dose >= -1e-18 && leak >= -1e-18 {
        return Ok(());
    }
    Err(SimError::Invariant {
        component: "syringe",
        t_ms,
        state: format!(
            "volume not conserved in shot {}: expelled {} µL, delivered {} µL, reflux {} µL, stored change {} µL (imbalance {} µL)",
            index + 1,
            ul(expelled),
            ul(dose),
            ul(leak),
            ul(stored_change),
            ul(balance)
        ),
    })
}

fn time_to_fraction(cum: &[(f64, f64)], target: f64) -> f64 {
    if target <= 0.0 {
        return f64::NAN;
    }
    let mut prev = (0.0, 0.0);
    for &(t, v) in cum {
        if v >= target {
            let f = if v > prev.1 { (target - prev.1) / (v - prev.1) } else { 1.0 };
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

/// Skip quiet time to `t_to` in closed form and tell the sensors and the observer.
fn skip_to<O: Observer + ?Sized>(
    plant: &mut Plant,
    fw: &mut FirmwareLoop,
    observer: &mut O,
    applied: &FwOutput,
    t_to: f64,
) {
    fast_forward(plant, t_to);
    let pa = plant.params.p_atm;
    fw.sensors.settle([plant.state.p_reg - pa, plant.state.p_c - pa, plant.state.p_s - pa]);
    observer.observe(plant, 0.0, applied);
}

/// True when no more liquid can be delivered: the valve is at rest (its
/// inlet closed, so the chamber can only vent), every needle flow is under
/// 1 nL/s, the piston is not advancing and the chamber's push cannot break
/// the plunger loose. Used to end the last shot of a session; a hose may
/// still hold pressure, so with a line only full quiescence counts.
pub fn delivery_over(plant: &Plant) -> bool {
    let s = &plant.state;
    let p = &plant.params;
    let pa = p.p_atm;
    let push = (s.p_c - pa) * p.piston.area - (p.piston.spring_preload + p.piston.spring_rate * s.x_p);
    s.line_p.is_empty()
        && plant.valve_at_rest()
        && s.v_p <= 0.0
        && s.q_needle.iter().all(|q| q.abs() < 1e-12)
        && s.q_tube.abs() < 1e-12
        && push <= p.syringe.friction.break_loose + p.piston.seal_coulomb + p.syringe.area * (s.p_s - pa)
}

/// Jump to time `t_to` using the closed-form evolution of the slow states.
pub fn fast_forward(plant: &mut Plant, t_to: f64) {
    let dt = t_to - plant.state.t;
    if dt <= 0.0 {
        return;
    }
    let p = &plant.params;
    let s = &mut plant.state;
    let target = p.supply.target(s.p_set, s.p_res, 0.0);
    s.p_reg = p.supply.advance_output(s.p_reg, target, dt);
    for (v, site) in s.v_bleb.iter_mut().zip(&p.sites) {
        *v = site.relax_bleb(*v, dt);
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

fn warnings(plant: &Plant, shots: &[ShotRecord], stopped: Option<&str>, step: f64) -> Vec<String> {
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
        w.push(format!("max Re {max_re:.0} exceeds 1e5, beyond the Blasius correlation's validity"));
    }
    if !newtonian && max_re > 2100.0 {
        w.push(format!(
            "Metzner–Reed Reynolds number {max_re:.0} exceeds 2100: the laminar generalized-Newtonian needle model is outside its validity"
        ));
    }
    if shots.iter().any(|s| s.flags.extrapolated) {
        w.push("a needle flow exceeded 100 mL/s, beyond the tabulated flow curve (extrapolated)".into());
    }
    let lumped = plant.params.needles.iter().any(|n| !n.developing);
    let entrance = shots.iter().map(|s| s.flags.entrance_ratio).fold(0.0, f64::max);
    if entrance > 1.0 {
        w.push(if lumped {
            format!(
                "the entrance length reaches {entrance:.1}× the needle length: the flow is developing over the whole needle; the lumped needle.minor_loss_k accounts for it only approximately"
            )
        } else {
            format!(
                "the entrance length reaches {entrance:.1}× the needle length: the flow is developing over the whole needle (Shah's apparent friction below Re 2000; the transitional blend is uncertain)"
            )
        });
    }
    if lumped {
        w.push(
            "needle.minor_loss_k is deprecated: it lumps the entrance, exit and developing-flow losses into one constant (too high in turbulent flow and for short needles); give needle.entrance_loss_k and needle.exit_loss_k instead, and the developing flow is modelled"
                .into(),
        );
    }
    if let Some(site) = plant.params.sites.first() {
        let volume = shots.iter().map(|s| s.flags.site_volume).fold(0.0, f64::max);
        let flow = shots.iter().map(|s| s.flags.site_flow).fold(0.0, f64::max);
        if let Some(msg) = site.validated.outside(volume, flow) {
            w.push(msg);
        }
    }
    let mach = shots.iter().map(|s| s.flags.line_mach).fold(0.0, f64::max);
    if mach > 0.3 {
        w.push(format!(
            "pneumatic line Mach number reaches {mach:.2} (> 0.3): the lumped line is outside its validity"
        ));
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
        // Suggest a finer step than the one the run already uses.
        let check = if step > 10.5e-6 {
            "check with solver.step_us ≤ 10".to_string()
        } else {
            format!(
                "the run already steps at {} µs: check with solver.step_us = {}",
                crate::text::g6(step * 1e6),
                crate::text::g6(step * 0.5e6)
            )
        };
        w.push(format!(
            "the plunger stick-slipped in {} of {} shots (up to {} breakaways in a shot): the drive force is close to the stopper friction, so the dose depends on the friction law's details and converges slowly with the step ({check})",
            slip,
            shots.len(),
            worst
        ));
    }
    let stroke = count(&|s| s.hit_stroke);
    if stroke > 0 {
        w.push(format!(
            "the piston reached its front stop in {} of {} shots: those doses are limited by the stroke",
            stroke,
            shots.len()
        ));
    }
    if let Some(msg) = stopped {
        w.push(format!("session stopped early: {msg}"));
    }
    w
}
