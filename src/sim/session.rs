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
    let tm = Timing::new(solver, session, fw, plant);
    let mut shots = Vec::with_capacity(session.shots);
    let mut stopped = None;
    let mut cumulative: Vec<(f64, f64)> = Vec::new();
    let steps0 = plant.steps();
    fw.controller.reset()?;
    let mut fs = FwState::new(fw);
    let mut ad = (solver.mode == SolverMode::Adaptive).then(|| Adaptive::new(plant));
    let mut trig = Trigger { debounced: 0, pending: 0, edges: 0, t_edge: f64::NEG_INFINITY };
    let mut ticks_run = 0u64;
    fw.sensors.settle(tm.truth(plant));
    for shot in 0..session.shots {
        if let Some(hook) = before_shot.as_mut() {
            hook(shot, plant).map_err(|message| RunError::Shot { shot, message })?;
        }
        if plant.params.new_site_each_shot {
            plant.new_sites();
        }
        plant.refresh_storage();
        let mut run = ShotRun::start(shot, shot as u64 * tm.period_ticks, &tm, plant);
        cumulative.clear();
        // Room for a shot period of steps (bounded), so the t90 buffer does not regrow.
        cumulative.reserve((tm.period_ticks.saturating_mul(tm.n_sub)).min(1 << 16) as usize);
        let mut ctx = ShotContext {
            tm: &tm,
            fw: &mut *fw,
            fs: &mut fs,
            trig: &mut trig,
            ad: ad.as_mut(),
            cumulative: &mut cumulative,
            last: shot + 1 == session.shots,
            ticks_run: &mut ticks_run,
        };
        if let Some(msg) = ctx.run_shot(plant, &mut run, observer)? {
            stopped = Some(format!("{msg} after shot {} of {} {}", shot + 1, session.shots, empty_detail(plant)));
        }
        let mut rec = run.rec;
        rec.open_time_cmd = run.active_ticks as f64 * tm.tick;
        rec.finish(plant, &run.s0, run.steps_before, &cumulative);
        check_shot(&rec, plant)?;
        shots.push(rec);
        if stopped.is_some() {
            break;
        }
    }
    let warnings = warnings(plant, &shots, stopped.as_deref(), tm.h);
    Ok(SessionResult {
        shots,
        stopped,
        steps: plant.steps() - steps0,
        substeps: tm.n_sub,
        effective_step: tm.h,
        ticks: ticks_run,
        warnings,
    })
}

/// Where the stopper stands when the syringe is empty, for the stop message.
fn empty_detail(plant: &Plant) -> String {
    format!(
        "(stopper at {:.2} mm, {:.1} µL left as dead space)",
        plant.state.z * 1e3,
        plant.params.syringe.dead_space * 1e9
    )
}

/// The session's time base and the constants every tick uses.
struct Timing {
    /// Plant steps per tick.
    n_sub: u64,
    /// Tick period, s.
    tick: f64,
    /// Plant step, s.
    h: f64,
    /// Ticks per shot period.
    period_ticks: u64,
    /// Longest tail of the last shot after the drive falls, ticks.
    tail_ticks: u64,
    /// Ticks the trigger is held pressed.
    press_ticks: u64,
    /// Ticks the raw trigger level must hold to be taken.
    debounce_ticks: u64,
    /// Atmospheric pressure, Pa.
    pa: f64,
    /// Syringe bore area, m².
    area: f64,
}

impl Timing {
    fn new(solver: &SolverSettings, session: &SessionSettings, fw: &FirmwareLoop, plant: &Plant) -> Timing {
        let n_sub = solver.substeps();
        let tick = solver.tick;
        Timing {
            n_sub,
            tick,
            h: tick / n_sub as f64,
            period_ticks: ((session.period / tick).round() as u64).max(1),
            tail_ticks: (solver.max_tail / tick).ceil() as u64,
            press_ticks: ((fw.sensors.spec().trigger_press / tick).round() as u64).max(1),
            debounce_ticks: (fw.sensors.spec().debounce / tick).round() as u64,
            pa: plant.params.p_atm,
            area: plant.params.syringe.area,
        }
    }

    /// The true gauge pressures the sensors follow: supply, chamber, syringe.
    #[inline]
    fn truth(&self, p: &Plant) -> [f64; 3] {
        let pa = self.pa;
        [p.state.p_reg - pa, p.state.p_c - pa, p.state.p_s - pa]
    }
}

/// The trigger: debounced level, ticks the raw level has differed from the
/// debounced one, rising edges taken and the time of the last.
struct Trigger {
    debounced: u32,
    pending: u64,
    edges: u32,
    t_edge: f64,
}

impl Trigger {
    /// Debounce the raw level at tick `k` of a shot (pressed for the first
    /// `press_ticks`); returns the raw level.
    #[inline]
    fn update(&mut self, k: u64, t_tick: f64, tm: &Timing) -> u32 {
        let raw = (k < tm.press_ticks) as u32;
        if raw != self.debounced {
            self.pending += 1;
            if self.pending > tm.debounce_ticks {
                self.debounced = raw;
                self.pending = 0;
                if raw == 1 {
                    self.edges += 1;
                    self.t_edge = t_tick;
                }
            }
        } else {
            self.pending = 0;
        }
        raw
    }

    /// Raw and debounced levels released, no debounce under way.
    fn released(&self, raw: u32) -> bool {
        raw == 0 && self.debounced == 0 && self.pending == 0
    }
}

/// The firmware side between ticks: its last (validated) output, the ticks
/// it promised to hold it for, the trigger level it saw, the ticks skipped
/// since; the compute-delay queue, the output applied, and the last command
/// given to the valve driver.
struct FwState {
    queue: std::collections::VecDeque<FwOutput>,
    applied: FwOutput,
    out: FwOutput,
    steady: u64,
    fw_level: u32,
    skipped: u64,
    last_command: FwOutput,
    commanded: bool,
    reads: crate::control::Reads,
    /// The lag filters are followed only when the firmware reads a pressure.
    any_read: bool,
}

impl FwState {
    fn new(fw: &mut FirmwareLoop) -> FwState {
        let reads = fw.controller.reads();
        fw.sensors.read_only(reads.pressures);
        FwState {
            queue: std::collections::VecDeque::with_capacity(fw.delay_ticks + 1),
            applied: FwOutput::default(),
            out: FwOutput::default(),
            steady: 0,
            fw_level: 0,
            skipped: 0,
            last_command: FwOutput::default(),
            commanded: false,
            reads,
            any_read: fw.sensors.any_read(),
        }
    }

    /// Firmware tick: sample, compute, delay, apply. Inside a window where
    /// the firmware promised the same output whatever it reads (and with the
    /// trigger level it saw), its last output stands in for the call:
    /// nothing is sampled, built or validated.
    #[inline]
    fn tick(
        &mut self,
        fw: &mut FirmwareLoop,
        plant: &Plant,
        trig: &Trigger,
        tm: &Timing,
        tick_no: u64,
        t_tick: f64,
    ) -> Result<(), RunError> {
        if self.steady > 0 && trig.debounced == self.fw_level {
            self.steady -= 1;
            self.skipped += 1;
            if fw.sensors.any_read() {
                fw.sensors.sample(tick_no);
            }
        } else {
            self.compute(fw, plant, trig, tm, tick_no, t_tick)?;
        }
        if fw.delay_ticks == 0 {
            self.applied = self.out;
        } else {
            self.queue.push_back(self.out);
            if self.queue.len() > fw.delay_ticks {
                self.applied = self.queue.pop_front().expect("non-empty");
            }
        }
        // The driver depends on its command and, on a change of mode, the time.
        if !self.commanded || !self.applied.same_drive(&self.last_command) {
            fw.driver.command(&self.applied, t_tick);
            self.last_command = self.applied;
            self.commanded = true;
        }
        Ok(())
    }

    /// Call the firmware: sample its sensors, build its input, validate its output.
    fn compute(
        &mut self,
        fw: &mut FirmwareLoop,
        plant: &Plant,
        trig: &Trigger,
        tm: &Timing,
        tick_no: u64,
        t_tick: f64,
    ) -> Result<(), RunError> {
        if self.skipped > 0 {
            fw.controller.skip(self.skipped);
            self.skipped = 0;
        }
        fw.sensors.sample(tick_no);
        let [p_supply, p_chamber, p_syringe] = fw.sensors.pressures();
        let input = FwInput {
            t: t_tick,
            tick_period: tm.tick,
            tick: tick_no,
            shot: trig.edges.saturating_sub(1),
            trigger: trig.debounced,
            t_since_trigger: t_tick - trig.t_edge,
            p_supply,
            p_chamber,
            p_syringe,
            plunger: if self.reads.plunger { fw.sensors.encoder(plant.state.z) } else { f64::NAN },
            syringe_area: tm.area,
        };
        self.out = FwOutput::default();
        fw.controller.step(&input, &mut self.out)?;
        self.out.validate().map_err(|message| FirmwareError::Step {
            name: fw.controller.name(),
            t_ms: t_tick * 1e3,
            tick: tick_no,
            message,
        })?;
        self.steady = fw.controller.steady_ticks();
        self.fw_level = trig.debounced;
        Ok(())
    }

    /// Every output applied or still in the delay queue is idle.
    fn all_idle(&self) -> bool {
        self.applied.idle == 1 && self.queue.iter().all(|o| o.idle == 1)
    }
}

/// One shot under way: its record, the state at its trigger, and the
/// drive's edges.
struct ShotRun {
    rec: ShotRecord,
    s0: super::PlantState,
    steps_before: u64,
    delivered0: f64,
    start_tick: u64,
    was_active: bool,
    t_rise: f64,
    t_fall: f64,
    active_ticks: u64,
}

impl ShotRun {
    fn start(shot: usize, start_tick: u64, tm: &Timing, plant: &Plant) -> ShotRun {
        let s0 = plant.state.clone();
        let rec = ShotRecord::starting(shot, start_tick as f64 * tm.tick, &s0, tm.pa, plant.params.needles.len());
        let delivered0: f64 = s0.delivered.iter().sum();
        ShotRun {
            rec,
            s0,
            steps_before: plant.steps(),
            delivered0,
            start_tick,
            was_active: false,
            t_rise: f64::NAN,
            t_fall: f64::NAN,
            active_ticks: 0,
        }
    }

    /// Track the drive's rising and falling edges at tick `k` of the shot.
    #[inline]
    fn drive_edges(&mut self, active: bool, k: u64, tick: f64) {
        if active && !self.was_active && self.t_rise.is_nan() {
            self.t_rise = k as f64 * tick;
        }
        if !active && self.was_active {
            self.t_fall = k as f64 * tick;
        }
        self.was_active = active;
        self.active_ticks += active as u64;
    }

    /// Fold a step ending at `t1` into the record and the t90 buffer.
    #[inline]
    fn record_step(&mut self, plant: &Plant, cumulative: &mut Vec<(f64, f64)>, t1: f64, h: f64, pa: f64) {
        let rec = &mut self.rec;
        rec.accumulate(plant, t1 - rec.t_start, h, self.t_rise, self.t_fall, pa);
        cumulative.push((t1 - rec.t_start, plant.signals.delivered_total - self.delivered0));
    }
}

/// What a shot's ticks share with the session.
struct ShotContext<'s, 'f, 'c> {
    tm: &'s Timing,
    fw: &'s mut FirmwareLoop<'f>,
    fs: &'s mut FwState,
    trig: &'s mut Trigger,
    ad: Option<&'s mut Adaptive>,
    cumulative: &'c mut Vec<(f64, f64)>,
    last: bool,
    ticks_run: &'s mut u64,
}

/// How a tick ends the shot's loop.
enum TickEnd {
    /// Go on with the next tick.
    Next,
    /// The shot is over.
    Done,
    /// The syringe is empty: the session stops.
    Empty,
}

impl ShotContext<'_, '_, '_> {
    /// The ticks of one shot; `Some(message)` when the session must stop after it.
    fn run_shot<O: Observer + ?Sized>(
        &mut self,
        plant: &mut Plant,
        run: &mut ShotRun,
        observer: &mut O,
    ) -> Result<Option<&'static str>, RunError> {
        let tm = self.tm;
        let mut k = 0u64;
        let mut end_tick = tm.period_ticks;
        while k < end_tick {
            let tick_no = run.start_tick + k;
            let t_tick = tick_no as f64 * tm.tick;
            let raw = self.trig.update(k, t_tick, tm);
            self.fs.tick(self.fw, plant, self.trig, tm, tick_no, t_tick)?;
            let active = self.fw.driver.active();
            run.drive_edges(active, k, tm.tick);
            let applied = self.fs.applied;
            let regulator_setpoint =
                if applied.regulator_setpoint.is_nan() { f64::NAN } else { applied.regulator_setpoint + tm.pa };
            let resting = applied.idle == 1 && !active && (self.fw.delay_ticks == 0 || self.fs.all_idle());
            if resting && regulator_setpoint.is_nan() && quiescent(plant) {
                // Nothing moves but slow relaxation: advance this tick in closed form.
                fast_forward(plant, t_tick + tm.tick);
                self.fw.sensors.settle(tm.truth(plant));
                observer.observe(plant, 0.0, &applied);
                k += 1;
                *self.ticks_run += 1;
                if !run.t_fall.is_nan() && self.trig.released(raw) {
                    self.skip_rest(plant, observer, &applied, run.start_tick + end_tick);
                    return Ok(None);
                }
                continue;
            }
            let span = if self.ad.is_some() {
                self.adaptive_tick(plant, run, observer, k, end_tick, raw, active, t_tick, regulator_setpoint)
            } else {
                self.fixed_tick(plant, run, observer, t_tick, regulator_setpoint);
                1
            };
            plant.check()?;
            k += span;
            *self.ticks_run += span;
            match self.tick_end(plant, run, observer, raw, active, k, &mut end_tick) {
                TickEnd::Next => {}
                TickEnd::Done => return Ok(None),
                TickEnd::Empty => return Ok(Some("the syringe is empty")),
            }
        }
        Ok(None)
    }

    /// The plant's fixed steps over one tick.
    #[inline]
    fn fixed_tick<O: Observer + ?Sized>(
        &mut self,
        plant: &mut Plant,
        run: &mut ShotRun,
        observer: &mut O,
        t_tick: f64,
        regulator_setpoint: f64,
    ) {
        let tm = self.tm;
        let h = tm.h;
        let applied = self.fs.applied;
        for j in 0..tm.n_sub {
            let t0 = t_tick + j as f64 * h;
            let t1 = t_tick + (j + 1) as f64 * h;
            let coil = self.fw.driver.mean(t0, t1);
            plant.advance(&Drive { coil, regulator_setpoint, force: 0.0, force_damping: 0.0 }, h);
            // Keep time exact (no drift from repeated additions).
            plant.state.t = t1;
            if self.fs.any_read {
                self.fw.sensors.track(tm.truth(plant), h);
            }
            run.record_step(plant, self.cumulative, t1, h, tm.pa);
            observer.observe(plant, coil, &applied);
        }
    }

    /// The adaptive stepper from tick `k`: one window across the ticks the
    /// firmware promised to hold its output for (the trigger level, and with
    /// it the firmware's input, staying as it is). Returns the ticks crossed.
    #[allow(clippy::too_many_arguments)]
    fn adaptive_tick<O: Observer + ?Sized>(
        &mut self,
        plant: &mut Plant,
        run: &mut ShotRun,
        observer: &mut O,
        k: u64,
        end_tick: u64,
        raw: u32,
        active: bool,
        t_tick: f64,
        regulator_setpoint: f64,
    ) -> u64 {
        let tm = self.tm;
        let span = self.window_span(run, k, end_tick, raw);
        let window = Window {
            t0: t_tick,
            units: span * tm.n_sub * adaptive::MIN_STEP_DIVISOR,
            h0: tm.h / adaptive::MIN_STEP_DIVISOR as f64,
            regulator_setpoint,
        };
        let edges = (run.t_rise, run.t_fall, run.delivered0);
        let applied = self.fs.applied;
        let ad = self.ad.as_deref_mut().expect("adaptive mode");
        adaptive_window(ad, plant, self.fw, &window, &mut run.rec, self.cumulative, edges, tm.pa, observer, &applied);
        if span > 1 {
            if raw != self.trig.debounced {
                self.trig.pending += span - 1;
            }
            self.fs.steady -= span - 1;
            self.fs.skipped += span - 1;
            run.active_ticks += (span - 1) * active as u64;
        }
        span
    }

    /// Ticks one adaptive window may cross from tick `k` (at least 1).
    fn window_span(&self, run: &ShotRun, k: u64, end_tick: u64, raw: u32) -> u64 {
        let tm = self.tm;
        let steady = self.fs.steady;
        if !(steady > 0 && self.fw.delay_ticks == 0 && !self.fw.sensors.any_read()) {
            return 1;
        }
        let mut extra = steady.min(end_tick - k - 1).min(MAX_WINDOW_TICKS - 1);
        // The raw trigger level holds until the press ends...
        if k < tm.press_ticks {
            extra = extra.min(tm.press_ticks - 1 - k);
        }
        // ...and a debounce under way does not complete inside the window.
        if raw != self.trig.debounced {
            extra = extra.min(tm.debounce_ticks.saturating_sub(self.trig.pending));
        }
        if self.last && !run.t_fall.is_nan() {
            let cut = (run.t_fall / tm.tick).round() as u64 + tm.tail_ticks;
            extra = extra.min(cut.saturating_sub(k + 1));
        }
        1 + extra
    }

    /// After the steps of a tick (ending at tick `k` of the shot): an empty
    /// syringe, the end of delivery in the last shot, quiescence (the rest
    /// of the period skipped), or the last shot's tail cut.
    #[allow(clippy::too_many_arguments)]
    fn tick_end<O: Observer + ?Sized>(
        &mut self,
        plant: &mut Plant,
        run: &ShotRun,
        observer: &mut O,
        raw: u32,
        active: bool,
        k: u64,
        end_tick: &mut u64,
    ) -> TickEnd {
        if plant.state.syringe_empty {
            return TickEnd::Empty;
        }
        let idle = self.fs.all_idle() && !active && raw == 0 && self.trig.debounced == 0;
        let fell = !run.t_fall.is_nan();
        if self.last && idle && fell && delivery_over(plant) {
            return TickEnd::Done;
        }
        if idle && fell && quiescent(plant) {
            let applied = self.fs.applied;
            self.skip_rest(plant, observer, &applied, run.start_tick + *end_tick);
            return TickEnd::Done;
        }
        if self.last && fell && k >= (run.t_fall / self.tm.tick).round() as u64 + self.tm.tail_ticks {
            *end_tick = k;
        }
        TickEnd::Next
    }

    /// Skip the rest of the shot period (not after the last shot).
    fn skip_rest<O: Observer + ?Sized>(
        &mut self,
        plant: &mut Plant,
        observer: &mut O,
        applied: &FwOutput,
        to_tick: u64,
    ) {
        if !self.last {
            skip_to(plant, self.fw, observer, applied, to_tick as f64 * self.tm.tick);
        }
    }
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

/// Model-validity and event warnings of a session, in a fixed order.
fn warnings(plant: &Plant, shots: &[ShotRecord], stopped: Option<&str>, step: f64) -> Vec<String> {
    let mut w = Vec::new();
    needle_warnings(&mut w, plant, shots);
    element_warnings(&mut w, plant, shots);
    flow_warnings(&mut w, shots, step);
    stroke_warnings(&mut w, plant, shots);
    if let Some(msg) = stopped {
        w.push(format!("session stopped early: {msg}"));
    }
    w
}

/// Shots of `shots` for which `f` holds.
fn count(shots: &[ShotRecord], f: impl Fn(&ShotRecord) -> bool) -> usize {
    shots.iter().filter(|s| f(s)).count()
}

/// The needle flow regime: turbulence, shear-thinning validity, the flow
/// curve's range, developing flow and the deprecated lumped loss.
fn needle_warnings(w: &mut Vec<String>, plant: &Plant, shots: &[ShotRecord]) {
    let newtonian = plant.params.fluid.is_newtonian();
    let max_re = shots.iter().map(|s| s.max_re).fold(0.0, f64::max);
    if newtonian && max_re > 2000.0 {
        w.push(format!(
            "needle flow left the laminar regime in {} of {} shots (max Re {:.0}): Hagen–Poiseuille alone would under-predict the pressure drop; the smooth laminar–turbulent blend (Blasius above Re 4000) is used",
            count(shots, |s| s.max_re > 2000.0),
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
}

/// The tissue sites' validated range and the pneumatic line's Mach number.
fn element_warnings(w: &mut Vec<String>, plant: &Plant, shots: &[ShotRecord]) {
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
}

/// Reflux to the skin surface and plunger stick-slip.
fn flow_warnings(w: &mut Vec<String>, shots: &[ShotRecord], step: f64) {
    let leaky = count(shots, |s| s.leak > 1e-12);
    if leaky > 0 {
        let total: f64 = shots.iter().map(|s| s.leak).sum();
        w.push(format!(
            "{:.2} µL refluxed to the skin surface in {} of {} shots (site pressure above the leak pressure)",
            total * 1e9,
            leaky,
            shots.len()
        ));
    }
    let slip = count(shots, |s| s.breakaways > 1);
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
}

/// Shots limited by the piston's stroke, and dry shots.
fn stroke_warnings(w: &mut Vec<String>, plant: &Plant, shots: &[ShotRecord]) {
    let stroke = count(shots, |s| s.hit_stroke);
    if stroke > 0 {
        w.push(format!(
            "the piston reached its front stop in {} of {} shots: those doses are limited by the stroke",
            stroke,
            shots.len()
        ));
    }
    let dry = count(shots, |s| s.dose < DRY_SHOT);
    if let Some(first) = shots.iter().find(|s| s.dose < DRY_SHOT) {
        let reservoir =
            if plant.params.supply.reservoir.is_some() { "; the finite supply reservoir may be exhausted" } else { "" };
        w.push(format!(
            "{} of {} shots delivered less than 1 nL (the first: shot {}, supply at {} kPa at its start{reservoir}): their doses are zero",
            dry,
            shots.len(),
            first.index,
            crate::text::g6(first.supply_pressure_start / 1e3),
        ));
    }
}

/// A shot that delivered less than this (1 nL) delivered nothing, m³.
const DRY_SHOT: f64 = 1e-12;
