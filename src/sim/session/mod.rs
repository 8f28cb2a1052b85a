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

mod firmware;
mod quiet;
mod record;
mod shot;
mod warnings;

pub use self::quiet::{delivery_over, fast_forward, quiescent};
pub use self::record::check_balance;

use self::firmware::{FwState, Timing, Trigger};
use self::record::check_shot;
use self::shot::{ShotContext, ShotRun};
use self::warnings::warnings;
use super::adaptive::Adaptive;
use super::plant::{Plant, SimError};
use crate::control::drive::Driver;
use crate::control::sensors::Sensors;
use crate::control::{Controller, FirmwareError, FwOutput};

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
    /// Relative tolerance on the local error of an adaptive step (not
    /// written when it is the default).
    #[serde(skip_serializing_if = "is_default_tolerance")]
    pub tolerance: f64,
}

fn is_default_tolerance(t: &f64) -> bool {
    *t == super::adaptive::TOLERANCE
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
    /// The deepest mid-stroke near-stick of the shot: the plunger's sliding
    /// speed fell below [`NEAR_STICK_DIP`] of its peak and rose again above
    /// [`NEAR_STICK_RECOVERY`] of it without stopping, as (lowest speed, the
    /// peak before it), m/s.
    pub near_stick: Option<(f64, f64)>,
    /// The sliding speed followed for [`Flags::near_stick`].
    #[serde(skip)]
    slide: Slide,
}

/// The plunger's sliding speed as [`Flags::slide`] follows it, m/s.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Slide {
    /// Peak since the plunger last started, or since the last near-stick
    /// (0 while it is stopped).
    peak: f64,
    /// Lowest since that peak.
    low: f64,
}

/// A sliding plunger slowed below this fraction of its peak speed...
pub const NEAR_STICK_DIP: f64 = 0.25;
/// ... and sped up again above this fraction of it, without stopping, came
/// close to sticking (see [`Flags::near_stick`]).
pub const NEAR_STICK_RECOVERY: f64 = 0.5;

impl Flags {
    /// Follow the plunger's velocity `v` (m/s) after a step for a mid-stroke
    /// near-stick.
    #[inline]
    pub(super) fn slide(&mut self, v: f64) {
        let sl = &mut self.slide;
        if v <= 0.0 {
            *sl = Slide::default();
            return;
        }
        sl.low = sl.low.min(v);
        let dipped = sl.low < NEAR_STICK_DIP * sl.peak;
        if dipped && v > NEAR_STICK_RECOVERY * sl.peak {
            let (low, peak) = (sl.low, sl.peak);
            if self.near_stick.is_none_or(|(l, p)| low / peak < l / p) {
                self.near_stick = Some((low, peak));
            }
            *sl = Slide { peak: v, low: v };
        } else if v >= sl.peak {
            *sl = Slide { peak: v, low: v };
        }
    }
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
    let mut ad = (solver.mode == SolverMode::Adaptive).then(|| Adaptive::new(plant, solver.tolerance));
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
    let warnings = warnings(plant, &shots, stopped.as_deref(), tm.h, ad.is_some());
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
