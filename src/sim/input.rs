//! The solver's and session's scenario tables (`[solver]`, `[session]`).

use crate::model::param::{choice, int, real, section, units::*};

section! {
    /// `[solver]`: the plant's time stepping.
    pub struct RawSolver in "solver" {
        /// Plant time step (at most the firmware tick).
        step_us: f64 as STEP = real(US, 50.0, 0.1, 200.0).src("converged to 0.1 % on the reference shot (docs/numerics.md)"),
        /// Interval between recorded trace samples.
        trace_interval_us: f64 as TRACE_INTERVAL = real(US, 50.0, 1.0, 1e6).src("a setting: one sample per default step"),
        /// How long the last shot may run on after the valve closes.
        max_tail_ms: f64 as MAX_TAIL = real(MS, 300.0, 1.0, 10_000.0).src("a setting: long enough for the reference shot to settle"),
        /// Step control: `fixed` (steps of step_us, whole per tick: the reference) or `adaptive` (h/4 to 64·h by step doubling, events located; docs/numerics.md).
        mode: String as MODE = choice("fixed", &["fixed", "adaptive"])
            .src("fixed: the converged reference mode; adaptive is opt-in (docs/numerics.md)"),
        /// Relative tolerance on the local error of an adaptive step (pressures against their level, volumes against 1 µL, the valve against its travel and full current; docs/numerics.md).
        tolerance: f64 as TOLERANCE = real(ONE, crate::sim::adaptive::TOLERANCE, 1e-6, 0.1)
            .src("every shipped scenario's doses within 0.1 % of converged but where noted (docs/numerics.md)"),
    }
}

section! {
    /// `[session]`: how many shots, how often.
    pub struct RawSession in "session" {
        /// Number of shots.
        shots: i64 as SHOTS = int(1, 1, 1_000_000).src("a setting (the reference gun's)"),
        /// Shot rate (trigger presses per second).
        rate_hz: f64 as RATE = real(HZ, 2.0, 0.01, 50.0).src("a papule every half second (derived)"),
    }
}
