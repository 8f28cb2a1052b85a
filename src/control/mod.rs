//! Firmware: what runs on the gun's controller at its own tick rate.
//!
//! A [`Controller`] is called once per firmware tick with what the firmware
//! sees and returns what it commands; the command is held (zero-order hold)
//! until the next tick. This issue ships the timed open-loop pulse; closed
//! loop firmware and C plugins plug into the same trait.

/// What the firmware sees at a tick.
#[derive(Debug, Clone, Copy, Default)]
pub struct FirmwareInput {
    /// Time since the start of the session, s.
    pub t: f64,
    /// Index of the current shot.
    pub shot: usize,
    /// Time since the current shot's trigger, s.
    pub t_in_shot: f64,
}

/// What the firmware commands until its next tick.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FirmwareOutput {
    /// Valve coil energised.
    pub valve: bool,
}

/// Firmware called at every tick.
pub trait Controller {
    /// One tick.
    fn step(&mut self, input: &FirmwareInput) -> FirmwareOutput;
    /// Commanded open time of the current shot after quantisation, s (for records).
    fn commanded_open_time(&self) -> f64;
}

/// Open loop: the valve opens for a set time per shot, quantised to the tick.
#[derive(Debug, Clone)]
pub struct OpenLoop {
    open_ticks: u64,
    tick: f64,
}

impl OpenLoop {
    /// Open for `open_time` s at a tick period of `tick` s (rounded to whole ticks).
    pub fn new(open_time: f64, tick: f64) -> OpenLoop {
        OpenLoop {
            open_ticks: (open_time / tick).round() as u64,
            tick,
        }
    }
}

impl Controller for OpenLoop {
    fn step(&mut self, input: &FirmwareInput) -> FirmwareOutput {
        // Ticks elapsed since the trigger, robust to rounding of the time.
        let k = (input.t_in_shot / self.tick + 1e-6).floor() as u64;
        FirmwareOutput {
            valve: k < self.open_ticks,
        }
    }
    fn commanded_open_time(&self) -> f64 {
        self.open_ticks as f64 * self.tick
    }
}
