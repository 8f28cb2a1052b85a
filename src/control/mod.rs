//! Firmware in the loop: what runs on the gun's controller at its own tick.
//!
//! A [`Controller`] is called once per firmware tick with what the firmware
//! sees ([`FwInput`]: sampled sensors, the debounced trigger, time since the
//! trigger) and fills what it commands ([`FwOutput`]: valve drive off/on/PWM/
//! peak-and-hold, an optional proportional-regulator set pressure, and
//! telemetry for traces). The command is applied after a configurable compute
//! delay and held until the next tick (zero-order hold); PWM on-times are
//! quantised to the hardware timer by the [`drive`] module. Both structs are
//! `#[repr(C)]` and are the C plugin ABI of `include/mesobench_firmware.h`,
//! so built-in firmware and C plugins see exactly the same thing.

pub mod builtin;
pub mod drive;
pub mod fmu;
pub mod host;
pub mod manual;
pub mod plugin;
pub mod sensors;
pub mod spec;

pub use builtin::{OpenLoop, PressurePid, VolumeTarget};

/// Version of the firmware ABI (`MB_FW_ABI_VERSION` in the C header).
pub const ABI_VERSION: u32 = 1;

/// Valve drive modes (`FwOutput::valve_mode`).
pub mod mode {
    /// Coil off.
    pub const OFF: u8 = 0;
    /// Coil at the full drive voltage.
    pub const ON: u8 = 1;
    /// Coil PWM at `duty` with period `pwm_period`.
    pub const PWM: u8 = 2;
    /// Full voltage for `peak_time` after the mode starts, then PWM at `duty`.
    pub const PEAK_AND_HOLD: u8 = 3;
}

/// What the firmware sees at a tick (SI; pressures gauge, as measured).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FwInput {
    /// Time since the session started, s.
    pub t: f64,
    /// Firmware tick period, s.
    pub tick_period: f64,
    /// Tick counter.
    pub tick: u64,
    /// Index of the latest trigger press (the shot being or last delivered).
    pub shot: u32,
    /// Debounced trigger level (1 pressed).
    pub trigger: u32,
    /// Time since the debounced trigger's last rising edge, s (infinite before the first).
    pub t_since_trigger: f64,
    /// Supply (regulator outlet) pressure sensor, Pa gauge.
    pub p_supply: f64,
    /// Chamber pressure sensor, Pa gauge.
    pub p_chamber: f64,
    /// Syringe pressure sensor, Pa gauge.
    pub p_syringe: f64,
    /// Plunger position from the encoder, m.
    pub plunger: f64,
    /// Syringe bore, m² (to turn plunger travel into volume).
    pub syringe_area: f64,
}

/// What the firmware commands until its next tick.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FwOutput {
    /// Valve drive mode, one of [`mode`].
    pub valve_mode: u32,
    /// 1 when nothing will change until the next trigger (lets the
    /// simulator skip quiet time); 0 otherwise.
    pub idle: u32,
    /// PWM duty (PWM) or hold duty (peak-and-hold), 0 to 1.
    pub duty: f64,
    /// PWM period, s.
    pub pwm_period: f64,
    /// Peak time of peak-and-hold, s.
    pub peak_time: f64,
    /// Proportional-regulator set pressure, Pa gauge (NaN: leave it).
    pub regulator_setpoint: f64,
    /// Telemetry: the controlled quantity's setpoint.
    pub sig_setpoint: f64,
    /// Telemetry: the measured value.
    pub sig_measured: f64,
    /// Telemetry: the controller's command.
    pub sig_command: f64,
    /// Telemetry: the integrator state.
    pub sig_integrator: f64,
}

impl Default for FwOutput {
    fn default() -> Self {
        FwOutput {
            valve_mode: mode::OFF as u32,
            idle: 1,
            duty: 0.0,
            pwm_period: 0.0,
            peak_time: 0.0,
            regulator_setpoint: f64::NAN,
            sig_setpoint: f64::NAN,
            sig_measured: f64::NAN,
            sig_command: f64::NAN,
            sig_integrator: f64::NAN,
        }
    }
}

impl FwOutput {
    /// The same valve drive (mode, duty, PWM period, peak time), bit for bit.
    pub fn same_drive(&self, other: &FwOutput) -> bool {
        let f = |a: f64, b: f64| a.to_bits() == b.to_bits();
        self.valve_mode == other.valve_mode
            && f(self.duty, other.duty)
            && f(self.pwm_period, other.pwm_period)
            && f(self.peak_time, other.peak_time)
    }

    /// Check a command for values the driver cannot apply.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [("duty", self.duty), ("pwm_period", self.pwm_period), ("peak_time", self.peak_time)] {
            if !v.is_finite() {
                return Err(format!("non-finite command: {name} = {v}"));
            }
        }
        if self.valve_mode > mode::PEAK_AND_HOLD as u32 {
            return Err(format!("valve_mode = {} (allowed 0 to 3)", self.valve_mode));
        }
        let pwm = self.valve_mode == mode::PWM as u32 || self.valve_mode == mode::PEAK_AND_HOLD as u32;
        if pwm {
            if !(self.duty.is_finite() && (0.0..=1.0).contains(&self.duty)) {
                return Err(format!("duty = {} (allowed 0 to 1)", self.duty));
            }
            if !(self.pwm_period.is_finite() && self.pwm_period > 0.0) {
                return Err(format!("pwm_period = {} s (must be finite and positive)", self.pwm_period));
            }
        }
        if self.valve_mode == mode::PEAK_AND_HOLD as u32 && !(self.peak_time.is_finite() && self.peak_time >= 0.0) {
            return Err(format!("peak_time = {} s (must be finite and not negative)", self.peak_time));
        }
        if self.regulator_setpoint.is_infinite() {
            return Err(format!(
                "regulator_setpoint = {} (must be finite, or NaN to leave it)",
                self.regulator_setpoint
            ));
        }
        Ok(())
    }
}

/// A firmware failure.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    /// A plugin could not be loaded.
    #[error("firmware plugin {path}: {message}")]
    Load {
        /// Library path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A plugin crashed, exited or hung in its host process (or the host
    /// could not be started).
    #[error("firmware plugin {path} {what}{at}")]
    Host {
        /// Library path.
        path: String,
        /// What happened, e.g. `crashed (signal 11, SIGSEGV)`.
        what: String,
        /// Where: ` at shot 3, tick 1204, t = 120.4 ms`, ` in mb_fw_reset`, …
        at: String,
    },
    /// The firmware returned an error code or a command that cannot be applied.
    #[error("firmware {name} at t = {t_ms:.3} ms (tick {tick}): {message}")]
    Step {
        /// Firmware name.
        name: String,
        /// Time, ms.
        t_ms: f64,
        /// Tick.
        tick: u64,
        /// What is wrong.
        message: String,
    },
}

/// Firmware called at every tick. Built-in firmware and C plugins alike.
pub trait Controller {
    /// Name for messages.
    fn name(&self) -> String;
    /// Return to the power-on state.
    fn reset(&mut self) -> Result<(), FirmwareError>;
    /// One tick: read `input`, write `output`.
    fn step(&mut self, input: &FwInput, output: &mut FwOutput) -> Result<(), FirmwareError>;
    /// Which inputs [`Controller::step`] reads besides the trigger and the
    /// clock, so the host samples only those sensors (everything, unless
    /// the firmware says otherwise).
    fn reads(&self) -> Reads {
        Reads::ALL
    }
    /// Ticks after the last [`Controller::step`] over which the firmware
    /// promises the same output, bit for bit, whatever its inputs, as long as
    /// the debounced trigger level stays as it was: the host may skip that
    /// many calls and tell it with [`Controller::skip`]. 0 (the default):
    /// call every tick.
    fn steady_ticks(&self) -> u64 {
        0
    }
    /// The host skipped `ticks` ticks inside the window [`Controller::steady_ticks`] promised.
    fn skip(&mut self, ticks: u64) {
        let _ = ticks;
    }
}

/// The inputs a firmware reads (besides the trigger and the clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reads {
    /// The supply, chamber and syringe pressure sensors.
    pub pressures: [bool; 3],
    /// The plunger encoder.
    pub plunger: bool,
}

impl Reads {
    /// Every sensor.
    pub const ALL: Reads = Reads { pressures: [true; 3], plunger: true };
    /// No sensor: the trigger and the clock only.
    pub const NONE: Reads = Reads { pressures: [false; 3], plunger: false };
}
