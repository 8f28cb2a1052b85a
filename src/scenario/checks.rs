//! Rules that tie keys of different components together (each component's
//! own ranges are in its declarations).

use crate::control::spec::RawFirmware;
use crate::model::param::{fmt_num, invalid, Invalid};
use crate::model::supply::SupplyParams;
use crate::model::valve::RawValve;
use crate::model::valve::{Actuation, ValveParams};

/// The open time must be shorter than the shot period (1 / `rate`, Hz).
pub fn open_time_within_period(open_time: f64, rate: f64) -> Result<(), Invalid> {
    let period = 1.0 / rate;
    if open_time >= period {
        return Err(invalid(
            RawFirmware::OPEN_TIME.key,
            fmt_num(open_time * 1e3),
            format!("less than the shot period {} ms (session.rate_hz = {})", fmt_num(period * 1e3), fmt_num(rate)),
        ));
    }
    Ok(())
}

/// `solver.tolerance` sets the adaptive stepper's error control; in the
/// fixed mode it would be silently ignored, so it is refused there.
pub fn tolerance_needs_adaptive(tolerance: Option<f64>, adaptive: bool) -> Result<(), Invalid> {
    match tolerance {
        Some(t) if !adaptive => Err(invalid(
            crate::sim::input::RawSolver::TOLERANCE.key,
            fmt_num(t),
            "only with solver.mode = \"adaptive\" (the fixed mode takes steps of solver.step_us, without an error estimate)",
        )),
        _ => Ok(()),
    }
}

/// A coil valve must pull its armature in against the spring preload and the
/// set pressure acting on its seat.
pub fn valve_pulls_in(valve: &ValveParams, supply: &SupplyParams, p_atm: f64) -> Result<(), Invalid> {
    let Actuation::Coil(coil) = &valve.actuation else { return Ok(()) };
    let dp = supply.p_set - p_atm;
    if coil.pull_in_current(dp) >= coil.steady_current() {
        return Err(invalid(
            RawValve::VOLTAGE.key,
            fmt_num(coil.voltage),
            format!(
                "a drive that pulls the armature in: the steady current {:.3} A is below the {:.3} A needed against the spring preload and {:.2} bar on the seat",
                coil.steady_current(),
                coil.pull_in_current(dp),
                dp / 1e5
            ),
        ));
    }
    Ok(())
}
