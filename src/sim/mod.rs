//! Simulation: the plant state, the fixed-step integrator and the
//! co-simulation of the plant with the firmware over sessions of shots.

pub mod adaptive;
pub mod input;
pub mod manual;
pub mod plant;
pub mod session;
pub mod trace;

pub use plant::{Drive, Plant, PlantState, Signals, SimError, Snapshot};
pub use session::{
    run_session, run_session_with, FirmwareLoop, Observer, RunError, SessionResult, SessionSettings, ShotHook,
    ShotRecord, SolverMode, SolverSettings,
};
pub use trace::{TraceRecorder, TraceSample, TraceSink, PLOT_POINTS};
