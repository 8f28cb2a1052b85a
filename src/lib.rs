//! # mesobench
//!
//! A simulator and virtual test bench for pneumatic mesotherapy injection
//! guns: it predicts the dose each shot delivers into tissue, and why it
//! varies, from the supply and regulator through the solenoid valve, the
//! pneumatic line, the piston chamber, plunger friction and the liquid path
//! to needle hydraulics and tissue back-pressure, co-simulated with the gun's
//! firmware at its own tick rate.
//!
//! ## Workflow
//! 1. **Scenario** ([`scenario`]): a TOML file with human units in its key
//!    names (`supply_pressure_bar`, `open_time_ms`, …) is parsed into
//!    [`scenario::Raw`], then converted once to SI and range-checked into a
//!    [`scenario::Scenario`]. Nothing downstream sees bar or ms.
//! 2. **Model** ([`model`]): one module per plant element, pure functions of
//!    state and SI parameters, every default with its source.
//! 3. **Simulation** ([`sim`]): [`sim::Plant`] advances the state by fixed
//!    steps (a partitioned, linearly implicit scheme for the stiff liquid
//!    side); [`sim::run_session`] runs a train of shots with a
//!    [`control::Controller`] called at the firmware tick (zero-order hold)
//!    and returns one [`sim::ShotRecord`] per shot.
//! 4. **Statistics and reports** ([`stats`], [`report`]): summaries, CSV,
//!    JSON and plots.
//!
//! ```no_run
//! use mesobench::{scenario, simulate};
//! let sc = scenario::load(&scenario::Source::default_scenario(), &[], "reference").unwrap();
//! let run = simulate(&sc, false).unwrap();
//! println!("dose {:.2} µL", run.result.shots[0].dose * 1e9);
//! ```
//!
//! ## Contracts
//! * **Units**: SI `f64` inside; conversions only in [`scenario`] and [`report`].
//! * **Determinism**: a scenario gives byte-identical outputs on every run;
//!   no wall-clock time or thread-dependent order enters any output file;
//!   floating-point reductions run in index order.
//! * **No terminal**: the library never prints; the binary does.

#![warn(missing_docs)]

pub mod bench;
pub mod control;
pub mod files;
pub mod fmi;
pub mod model;
pub mod reference;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod stats;
pub mod study;
pub mod text;

use control::drive::Driver;
use control::host::HostedPlugin;
use control::plugin::Plugin;
use control::sensors::Sensors;
use control::{Controller, FirmwareError, OpenLoop, PressurePid, VolumeTarget};
use scenario::{FirmwareKind, PluginIsolation, Scenario};
use sim::{FirmwareLoop, Plant, RunError, SessionResult, TraceRecorder, TraceSample, TraceSink};

/// Version of this build, written into every manifest.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The outcome of simulating a scenario.
#[derive(Debug, Clone)]
pub struct Run {
    /// Shot records, warnings and solver counts.
    pub result: SessionResult,
    /// Trace samples for plots (empty unless asked for): every sample up to
    /// [`sim::PLOT_POINTS`], beyond that a decimated copy (min/max pairs);
    /// the full trace goes to a [`TraceSink`] ([`simulate_traced`]).
    pub trace: Vec<TraceSample>,
}

/// Build the firmware a scenario asks for (a fresh context for a plugin).
pub fn controller_for(sc: &Scenario) -> Result<Box<dyn Controller>, FirmwareError> {
    Ok(match &sc.firmware.kind {
        FirmwareKind::OpenLoop { open_time, pre, drive } => Box::new(OpenLoop::new(*open_time, *pre, *drive)),
        FirmwareKind::PressurePid { open_time, pre, drive, measured, setpoint, step, pid } => Box::new(
            PressurePid::new(OpenLoop::new(*open_time, *pre, *drive), *measured, *setpoint, *step, pid.clone()),
        ),
        FirmwareKind::VolumeTarget { target, lead, gain, max_open, drive } => {
            Box::new(VolumeTarget::new(*target, *lead, *gain, *max_open, *drive))
        }
        FirmwareKind::Fmu { path } => Box::new(control::fmu::FmuFirmware::load(path)?),
        FirmwareKind::Plugin { path, params, isolation: PluginIsolation::InProcess, .. } => {
            Box::new(Plugin::load(path, params)?)
        }
        FirmwareKind::Plugin { path, params, isolation: PluginIsolation::Process, timeout } => {
            Box::new(HostedPlugin::load(path, params, *timeout)?)
        }
    })
}

/// Simulate a scenario's session from rest with its firmware, optionally recording a trace.
pub fn simulate(sc: &Scenario, trace: bool) -> Result<Run, RunError> {
    let mut fw = controller_for(sc)?;
    simulate_with(sc, fw.as_mut(), trace)
}

/// Simulate a scenario's session, streaming every trace sample to `sink`
/// (e.g. trace.csv) as it is taken; the run keeps only a bounded copy for plots.
pub fn simulate_traced(sc: &Scenario, sink: &mut dyn TraceSink) -> Result<Run, RunError> {
    let mut fw = controller_for(sc)?;
    let rec = TraceRecorder::with_sink(sc.solver.trace_interval, sim::PLOT_POINTS, Some(sink));
    simulate_recorded(sc, fw.as_mut(), rec, None)
}

/// [`simulate_traced`] calling `progress(shot)` before each shot starts
/// (with the number of shots done); the results do not depend on it.
pub fn simulate_traced_with_progress(
    sc: &Scenario,
    sink: &mut dyn TraceSink,
    progress: &mut dyn FnMut(usize),
) -> Result<Run, RunError> {
    let mut fw = controller_for(sc)?;
    let rec = TraceRecorder::with_sink(sc.solver.trace_interval, sim::PLOT_POINTS, Some(sink));
    let mut hook = |shot: usize, _: &mut sim::Plant| -> Result<(), String> {
        progress(shot);
        Ok(())
    };
    simulate_recorded(sc, fw.as_mut(), rec, Some(&mut hook))
}

/// Simulate a scenario's session with the given firmware.
pub fn simulate_with(sc: &Scenario, controller: &mut dyn Controller, trace: bool) -> Result<Run, RunError> {
    simulate_hooked(sc, controller, trace, None)
}

/// Simulate with a hook that may change the plant's parameters before each shot.
pub fn simulate_hooked(
    sc: &Scenario,
    controller: &mut dyn Controller,
    trace: bool,
    hook: Option<sim::ShotHook>,
) -> Result<Run, RunError> {
    if trace {
        return simulate_recorded(sc, controller, TraceRecorder::new(sc.solver.trace_interval), hook);
    }
    let (mut plant, mut fw) = setup(sc, controller);
    let result = sim::run_session_with(&mut plant, &mut fw, &sc.solver, &sc.session, &mut (), hook)?;
    Ok(Run { result, trace: Vec::new() })
}

/// Simulate into a trace recorder of the caller's (its sink, its cap).
pub fn simulate_recorded(
    sc: &Scenario,
    controller: &mut dyn Controller,
    mut rec: TraceRecorder<'_>,
    hook: Option<sim::ShotHook>,
) -> Result<Run, RunError> {
    let (mut plant, mut fw) = setup(sc, controller);
    let result = sim::run_session_with(&mut plant, &mut fw, &sc.solver, &sc.session, &mut rec, hook)?;
    Ok(Run { result, trace: rec.into_samples() })
}

/// The plant at rest and the firmware loop of a scenario.
fn setup<'c>(sc: &Scenario, controller: &'c mut dyn Controller) -> (Plant, FirmwareLoop<'c>) {
    let plant = Plant::new(sc.params.clone());
    let fw = FirmwareLoop {
        controller,
        sensors: Sensors::new(sc.firmware.sensors.clone(), sc.seed),
        driver: Driver::new(sc.firmware.timer_tick),
        delay_ticks: sc.firmware.compute_delay_ticks,
    };
    (plant, fw)
}
