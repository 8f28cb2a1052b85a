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

pub mod control;
pub mod model;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod stats;

use control::{Controller, OpenLoop};
use scenario::{FirmwareSpec, Scenario};
use sim::{Plant, SessionResult, SimError, TraceRecorder, TraceSample};

/// Version of this build, written into every manifest.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The outcome of simulating a scenario.
#[derive(Debug, Clone)]
pub struct Run {
    /// Shot records, warnings and solver counts.
    pub result: SessionResult,
    /// Trace samples (empty unless asked for).
    pub trace: Vec<TraceSample>,
}

/// Build the firmware a scenario asks for.
pub fn controller_for(sc: &Scenario) -> Box<dyn Controller> {
    match sc.firmware {
        FirmwareSpec::OpenLoop { open_time } => Box::new(OpenLoop::new(open_time, sc.solver.tick)),
    }
}

/// Simulate a scenario's session from rest, optionally recording a trace.
pub fn simulate(sc: &Scenario, trace: bool) -> Result<Run, SimError> {
    let mut plant = Plant::new(sc.params.clone());
    let mut fw = controller_for(sc);
    if trace {
        let mut rec = TraceRecorder::new(sc.solver.trace_interval);
        let result = sim::run_session(&mut plant, fw.as_mut(), &sc.solver, &sc.session, &mut rec)?;
        Ok(Run {
            result,
            trace: rec.samples,
        })
    } else {
        let result = sim::run_session(&mut plant, fw.as_mut(), &sc.solver, &sc.session, &mut ())?;
        Ok(Run {
            result,
            trace: Vec::new(),
        })
    }
}
