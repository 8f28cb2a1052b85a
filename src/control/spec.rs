//! The firmware's and sensors' scenario tables (`[firmware]`, `[sensors]`):
//! their declarations and the validated [`FirmwareSpec`].

use std::path::{Path, PathBuf};

use crate::control::builtin::{AntiWindup, DriveSpec, Measured, Pid};
use crate::control::sensors::{PressureSensorSpec, SensorSpec};
use crate::model::param::{
    choice, fmt_num, int, invalid, list, real, real_from, section, table, text, units::*, Invalid, Reader,
};

section! {
    /// `[firmware]`: which firmware runs on the gun's controller and its settings.
    pub struct RawFirmware in "firmware" {
        /// Firmware: built-in open loop, pressure PID, volume target, a C plugin, or a controller FMU.
        kind: String as KIND = choice("open_loop", &["open_loop", "pressure_pid", "volume_target", "plugin", "fmu"]),
        /// Firmware tick rate.
        tick_hz: f64 as TICK = real(HZ, 10_000.0, 100.0, 20_000.0).src("a 100 µs control loop (derived)"),
        /// Valve open time per shot (open loop, pressure PID).
        open_time_ms: f64 as OPEN_TIME = real(MS, 40.0, 0.1, 2000.0)
            .src("a 20 µL papule (derived)")
            .note("whole ticks; less than the shot period"),
        /// Ticks between computing a command and applying it.
        compute_delay_ticks: i64 as COMPUTE_DELAY = int(0, 0, 1000).src("a setting: the command applies at the next tick"),
        /// Hardware timer rate that quantises PWM on-times.
        timer_hz: f64 as TIMER = real(HZ, 1e6, 1e3, 1e9).src("a 1 MHz timer (derived)"),
        /// Delay between the trigger and the valve opening.
        pre_pressurise_ms: f64 as PRE = real(MS, 0.0, 0.0, 1000.0).note("with the open time, less than the shot period").src("a setting (the reference gun's)"),
        /// Coil drive: full voltage, PWM, or peak-and-hold.
        drive: String as DRIVE = choice("on", &["on", "pwm", "peak_and_hold"]),
        /// PWM duty (drive = "pwm").
        pwm_duty: f64 as PWM_DUTY = real(ONE, 0.5, 0.0, 1.0).src("a setting (the reference gun's)"),
        /// PWM period (drive = "pwm" or "peak_and_hold").
        pwm_period_ms: f64 as PWM_PERIOD = real(MS, 0.05, 0.001, 1000.0).src("20 kHz PWM (derived)"),
        /// Full-voltage time before the hold (drive = "peak_and_hold").
        peak_ms: f64 as PEAK = real(MS, 3.0, 0.0, 100.0).src("a setting (the reference gun's)"),
        /// Hold duty after the peak (drive = "peak_and_hold").
        hold_duty: f64 as HOLD_DUTY = real(ONE, 0.4, 0.0, 1.0).src("a setting (the reference gun's)"),
        /// Pressure the PID holds (firmware.kind = "pressure_pid").
        measured: String as MEASURED = choice("supply", &["supply", "chamber"]),
        /// PID set point.
        setpoint_bar: f64 as SETPOINT = real(BAR_GAUGE_REL, 3.0, 0.0, 10.0).src("the supply's default set pressure"),
        /// Time of an optional set-point step.
        setpoint_step_ms: f64 as SETPOINT_STEP_TIME = real(MS, 0.0, 0.0, 1e7)
            .note("absent: no step; either step key enables it").src("a setting (the reference gun's)"),
        /// Set point after the step.
        setpoint_step_bar: f64 as SETPOINT_STEP = real_from(BAR_GAUGE_REL, "firmware.setpoint_bar", 0.0, 10.0),
        /// PID proportional gain (bar per bar).
        kp: f64 as KP = real(ONE, 0.5, 0.0, 1000.0).src("a setting, to tune (mesobench tune)"),
        /// PID integral gain.
        ki_per_s: f64 as KI = real(PER_S, 20.0, 0.0, 1e5).src("a setting, to tune (mesobench tune)"),
        /// PID derivative gain.
        kd_s: f64 as KD = real(S, 0.0, 0.0, 10.0).src("a setting: no derivative action"),
        /// Derivative filter time constant.
        derivative_filter_ms: f64 as DERIVATIVE_FILTER = real(MS, 1.0, 0.0, 1000.0).src("a setting (the reference gun's)"),
        /// Lowest PID output.
        u_min_bar: f64 as U_MIN = real(BAR_GAUGE_REL, 0.0, 0.0, 10.0).src("a setting: no lower limit"),
        /// Highest PID output.
        u_max_bar: f64 as U_MAX = real(BAR_GAUGE_REL, 8.0, 0.0, 10.0).note("above firmware.u_min_bar").src("the proportional regulator's 8 bar(g) limit"),
        /// PID anti-windup scheme.
        anti_windup: String as ANTI_WINDUP = choice("back_calculation", &["none", "back_calculation", "conditional"]),
        /// Back-calculation tracking time.
        tracking_time_ms: f64 as TRACKING_TIME = real(MS, 20.0, 0.01, 1e5).src("a setting (the reference gun's)"),
        /// Dose each shot aims at (firmware.kind = "volume_target").
        target_ul: f64 as TARGET = real(UL, 20.0, 0.1, 10_000.0).src("a 20 µL papule, the middle of the 0.01–0.1 mL mesotherapy doses"),
        /// Initial (calibrated) latency lead of the volume target.
        lead_ms: f64 as LEAD = real(MS, 0.0, 0.0, 1000.0).src("a setting: no lead until calibrated"),
        /// Shot-to-shot learning gain of the lead.
        learn_gain: f64 as LEARN_GAIN = real(ONE, 0.0, 0.0, 1.0).src("a setting: no learning"),
        /// Longest open time of the volume target.
        max_open_ms: f64 as MAX_OPEN = real_from(MS, "80 % of the shot period, at most 2000 ms", 0.1, 1e5)
            .note("at most the shot period"),
        /// Shared library of a C plugin (relative to the scenario's folder).
        plugin: String as PLUGIN = text("required when firmware.kind = \"plugin\""),
        /// Numbers passed to the plugin's mb_fw_create.
        plugin_params: Vec<f64> as PLUGIN_PARAMS = list(ONE, "none", f64::INFINITY),
        /// Where a plugin runs: in a host process of its own, or inside mesobench.
        plugin_isolation: String as PLUGIN_ISOLATION = choice("process", &["process", "in_process"]),
        /// Longest wait for one plugin call in a host process.
        plugin_timeout_ms: f64 as PLUGIN_TIMEOUT = real(MS, 1000.0, 1.0, 3_600_000.0).src("a setting: far above any plugin call"),
        /// FMI 2.0 or FMI 3.0 co-simulation FMU of the controller (relative to the scenario's folder; docs/fmu.md).
        fmu: String as FMU = text("required when firmware.kind = \"fmu\""),
    }
}

section! {
    /// `[sensors]`: what the firmware measures.
    pub struct RawSensors in "sensors" {
        /// Plunger encoder resolution.
        encoder_resolution_um: f64 as ENCODER = real(UM, 1.0, 0.0, 1000.0).src("a 1 µm linear encoder (derived)"),
        /// Trigger debounce time.
        trigger_debounce_ms: f64 as DEBOUNCE = real(MS, 5.0, 0.0, 100.0).note("less than sensors.trigger_press_ms").src("a common debounce time (derived)"),
        /// How long the trigger is held per shot.
        trigger_press_ms: f64 as PRESS = real(MS, 30.0, 0.1, 10_000.0).note("less than the shot period").src("a short press (derived)"),
        /// The supply pressure sensor.
        supply: RawPressureSensor as SUPPLY = table("defaults of sensors.*"),
        /// The chamber pressure sensor.
        chamber: RawPressureSensor as CHAMBER = table("defaults of sensors.*"),
        /// The syringe pressure sensor.
        syringe: RawPressureSensor as SYRINGE = table("defaults of sensors.*"),
    }
}

section! {
    /// `[sensors.supply]`, `[sensors.chamber]`, `[sensors.syringe]`: one pressure sensor.
    pub struct RawPressureSensor in "sensors.*" {
        /// First-order lag of the sensor.
        tau_ms: f64 as TAU = real(MS, 0.5, 0.0, 1000.0).src("a small piezoresistive transducer (derived)"),
        /// Gaussian noise (standard deviation).
        noise_kpa: f64 as NOISE = real(KPA, 0.2, 0.0, 100.0).src("derived: of the order of one ADC count"),
        /// Offset.
        offset_kpa: f64 as OFFSET = real(KPA, 0.0, -100.0, 100.0).src("an ideal sensor"),
        /// Gain error.
        gain_error_pct: f64 as GAIN_ERROR = real(PCT, 0.0, -20.0, 20.0).src("an ideal sensor"),
        /// ADC resolution over 0 to full scale.
        bits: i64 as BITS = int(12, 6, 24).src("12 bits over 10 bar: 2.4 mbar per count (derived)"),
        /// Full scale of the ADC.
        full_scale_bar: f64 as FULL_SCALE = real(BAR, 10.0, 0.1, 100.0).src("a 10 bar transducer (derived)"),
        /// Sample rate.
        sample_hz: f64 as SAMPLE = real_from(HZ, "the tick rate, at most 1000 Hz", 1.0, 20_000.0)
            .note("at most the tick rate"),
    }
}

/// Firmware and its hardware (SI).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FirmwareSpec {
    /// Which firmware and its settings.
    pub kind: FirmwareKind,
    /// Ticks between computing a command and applying it.
    pub compute_delay_ticks: usize,
    /// Hardware timer tick for PWM on-times, s.
    pub timer_tick: f64,
    /// Sensors the firmware reads.
    pub sensors: SensorSpec,
}

/// Firmware chosen by `firmware.kind`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FirmwareKind {
    /// Timed valve pulse per shot.
    OpenLoop {
        /// Open time, s.
        open_time: f64,
        /// Delay between the trigger and the valve, s.
        pre: f64,
        /// Coil drive.
        drive: DriveSpec,
    },
    /// Pressure PID on a proportional regulator, with timed shots.
    PressurePid {
        /// Open time, s.
        open_time: f64,
        /// Delay between the trigger and the valve, s.
        pre: f64,
        /// Coil drive.
        drive: DriveSpec,
        /// Which sensor is held.
        measured: Measured,
        /// Setpoint, Pa gauge.
        setpoint: f64,
        /// Optional setpoint step (time s, value Pa gauge).
        step: Option<(f64, f64)>,
        /// The controller.
        pid: Pid,
    },
    /// Close when the encoder volume plus a latency lead reaches the target.
    VolumeTarget {
        /// Target, m³.
        target: f64,
        /// Initial (calibrated) latency lead, s.
        lead: f64,
        /// Learning gain, –.
        gain: f64,
        /// Longest open time, s.
        max_open: f64,
        /// Coil drive.
        drive: DriveSpec,
    },
    /// A controller FMU (FMI 2.0 co-simulation), stepped at the tick.
    Fmu {
        /// The `.fmu` file, resolved against the scenario's folder.
        path: PathBuf,
    },
    /// A C plugin.
    Plugin {
        /// Shared library, resolved against the scenario's folder (never a
        /// bare name, so the system library search is never used).
        path: PathBuf,
        /// Parameters passed to `mb_fw_create`.
        params: Vec<f64>,
        /// Where the plugin runs.
        isolation: PluginIsolation,
        /// Longest wait for one plugin call in a host process, s.
        timeout: f64,
    },
}

/// Where a C plugin runs (`firmware.plugin_isolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginIsolation {
    /// In a host process of its own: a crash, an exit or a hang of the
    /// plugin is reported as an error instead of ending mesobench.
    Process,
    /// Loaded into mesobench itself: faster, but a crash ends mesobench.
    InProcess,
}

fn drive_spec(f: &RawFirmware, c: &Reader) -> Result<DriveSpec, Invalid> {
    Ok(match c.choice(&RawFirmware::DRIVE, &f.drive)? {
        "on" => DriveSpec::On,
        "pwm" => DriveSpec::Pwm {
            duty: c.real(&RawFirmware::PWM_DUTY, f.pwm_duty)?,
            period: c.real(&RawFirmware::PWM_PERIOD, f.pwm_period_ms)?,
        },
        _ => DriveSpec::PeakAndHold {
            peak: c.real(&RawFirmware::PEAK, f.peak_ms)?,
            hold_duty: c.real(&RawFirmware::HOLD_DUTY, f.hold_duty)?,
            period: c.real(&RawFirmware::PWM_PERIOD, f.pwm_period_ms)?,
        },
    })
}

impl PressureSensorSpec {
    /// One pressure sensor from its table (`c` reads its keys under its name).
    pub fn from_raw(r: &Option<RawPressureSensor>, c: &Reader, tick: f64) -> Result<PressureSensorSpec, Invalid> {
        let r = r.clone().unwrap_or_default();
        type P = RawPressureSensor;
        let sample_hz = c.real_within(
            &P::SAMPLE,
            r.sample_hz,
            (1.0 / tick).min(1000.0),
            1.0,
            1.0 / tick,
            "Hz (at most the tick rate)",
        )?;
        Ok(PressureSensorSpec {
            tau: c.real(&P::TAU, r.tau_ms)?,
            noise_sd: c.real(&P::NOISE, r.noise_kpa)?,
            offset: c.real(&P::OFFSET, r.offset_kpa)?,
            gain_error: c.real(&P::GAIN_ERROR, r.gain_error_pct)?,
            bits: c.int(&P::BITS, r.bits)? as u32,
            full_scale: c.real(&P::FULL_SCALE, r.full_scale_bar)?,
            sample_ticks: ((1.0 / sample_hz) / tick).round().max(1.0) as u64,
        })
    }
}

/// What the session settings contribute to the firmware (read before it).
#[derive(Debug, Clone, Copy)]
pub struct Timing<'a> {
    /// `firmware.kind`, validated.
    pub kind: &'a str,
    /// Open time, s.
    pub open_time: f64,
    /// Shot period, s.
    pub period: f64,
    /// The supply has a proportional regulator.
    pub proportional: bool,
}

impl FirmwareSpec {
    /// The firmware, its sensors and its hardware from `[firmware]` and
    /// `[sensors]`; a plugin path is relative to `dir`.
    pub fn from_raw(
        f: &RawFirmware,
        sn: &RawSensors,
        c: &Reader,
        t: Timing,
        dir: &Path,
    ) -> Result<FirmwareSpec, Invalid> {
        let Timing { kind, open_time, period, proportional } = t;
        let tick = 1.0 / f.tick_hz.unwrap_or(10_000.0);
        let pre = c.real(&RawFirmware::PRE, f.pre_pressurise_ms)?;
        let press = c.real(&RawSensors::PRESS, sn.trigger_press_ms)?;
        let debounce = c.real(&RawSensors::DEBOUNCE, sn.trigger_debounce_ms)?;
        if press >= period {
            return Err(invalid(
                RawSensors::PRESS.key,
                fmt_num(press * 1e3),
                format!("less than the shot period {} ms", fmt_num(period * 1e3)),
            ));
        }
        if debounce >= press {
            return Err(invalid(
                RawSensors::DEBOUNCE.key,
                fmt_num(debounce * 1e3),
                format!("less than sensors.trigger_press_ms = {}", fmt_num(press * 1e3)),
            ));
        }
        if pre + open_time >= period && kind != "volume_target" && kind != "plugin" && kind != "fmu" {
            return Err(invalid(
                RawFirmware::PRE.key,
                fmt_num(pre * 1e3),
                format!("pre-pressurise plus open time below the shot period {} ms", fmt_num(period * 1e3)),
            ));
        }
        let sensors = SensorSpec {
            supply: PressureSensorSpec::from_raw(&sn.supply, &c.under("supply"), tick)?,
            chamber: PressureSensorSpec::from_raw(&sn.chamber, &c.under("chamber"), tick)?,
            syringe: PressureSensorSpec::from_raw(&sn.syringe, &c.under("syringe"), tick)?,
            encoder_resolution: c.real(&RawSensors::ENCODER, sn.encoder_resolution_um)?,
            debounce,
            trigger_press: press,
        };
        let kind = match kind {
            "open_loop" => FirmwareKind::OpenLoop { open_time, pre, drive: drive_spec(f, c)? },
            "pressure_pid" => pressure_pid(f, c, open_time, pre, proportional)?,
            "volume_target" => FirmwareKind::VolumeTarget {
                target: c.real(&RawFirmware::TARGET, f.target_ul)?,
                lead: c.real(&RawFirmware::LEAD, f.lead_ms)?,
                gain: c.real(&RawFirmware::LEARN_GAIN, f.learn_gain)?,
                max_open: c.real_within(
                    &RawFirmware::MAX_OPEN,
                    f.max_open_ms,
                    (period * 1e3 * 0.8).min(2000.0),
                    0.1,
                    period * 1e3,
                    "ms (at most the shot period)",
                )?,
                drive: drive_spec(f, c)?,
            },
            "fmu" => controller_fmu(f, dir)?,
            _ => plugin(f, c, dir)?,
        };
        Ok(FirmwareSpec {
            kind,
            compute_delay_ticks: c.int(&RawFirmware::COMPUTE_DELAY, f.compute_delay_ticks)? as usize,
            timer_tick: 1.0 / c.real(&RawFirmware::TIMER, f.timer_hz)?,
            sensors,
        })
    }
}

fn pressure_pid(
    f: &RawFirmware,
    c: &Reader,
    open_time: f64,
    pre: f64,
    proportional: bool,
) -> Result<FirmwareKind, Invalid> {
    type F = RawFirmware;
    if !proportional {
        return Err(invalid(
            F::KIND.key,
            "\"pressure_pid\"",
            "a proportional regulator to drive: set supply.regulator = \"proportional\"",
        ));
    }
    let setpoint = c.real(&F::SETPOINT, f.setpoint_bar)?;
    let step = match (f.setpoint_step_ms, f.setpoint_step_bar) {
        (None, None) => None,
        (t, v) => Some((c.real(&F::SETPOINT_STEP_TIME, t)?, c.real_or(&F::SETPOINT_STEP, v, setpoint / 1e5)?)),
    };
    let u_min = c.real(&F::U_MIN, f.u_min_bar)?;
    let u_max = c.real(&F::U_MAX, f.u_max_bar)?;
    if u_max <= u_min {
        return Err(invalid(
            F::U_MAX.key,
            fmt_num(u_max / 1e5),
            format!("above firmware.u_min_bar = {}", fmt_num(u_min / 1e5)),
        ));
    }
    let kp = c.real(&F::KP, f.kp)?;
    let ki = c.real(&F::KI, f.ki_per_s)?;
    let anti_windup = match c.choice(&F::ANTI_WINDUP, &f.anti_windup)? {
        "none" => AntiWindup::None,
        "conditional" => AntiWindup::Conditional,
        _ => AntiWindup::BackCalculation { tt: c.real(&F::TRACKING_TIME, f.tracking_time_ms)? },
    };
    let measured = match c.choice(&F::MEASURED, &f.measured)? {
        "chamber" => Measured::Chamber,
        _ => Measured::Supply,
    };
    let pid = Pid::new(
        kp,
        ki,
        c.real(&F::KD, f.kd_s)?,
        c.real(&F::DERIVATIVE_FILTER, f.derivative_filter_ms)?,
        u_min,
        u_max,
        anti_windup,
    );
    Ok(FirmwareKind::PressurePid { open_time, pre, drive: drive_spec(f, c)?, measured, setpoint, step, pid })
}

fn plugin(f: &RawFirmware, c: &Reader, dir: &Path) -> Result<FirmwareKind, Invalid> {
    let written = match &f.plugin {
        Some(p) => p,
        None => {
            return Err(invalid(
                RawFirmware::PLUGIN.key,
                "(missing)",
                "the path of a shared library, relative to the scenario file",
            ))
        }
    };
    let path = resolve_plugin(written, dir);
    if !path.is_file() {
        return Err(invalid(
            RawFirmware::PLUGIN.key,
            format!("{written:?}"),
            format!(
                "an existing shared library: no such file: {} (a relative path is relative to the scenario's folder; build the examples with `make -C examples/firmware`)",
                path.display()
            ),
        ));
    }
    let isolation = match c.choice(&RawFirmware::PLUGIN_ISOLATION, &f.plugin_isolation)? {
        "in_process" => PluginIsolation::InProcess,
        _ => PluginIsolation::Process,
    };
    let timeout = c.real(&RawFirmware::PLUGIN_TIMEOUT, f.plugin_timeout_ms)?;
    Ok(FirmwareKind::Plugin { path, params: f.plugin_params.clone().unwrap_or_default(), isolation, timeout })
}

fn controller_fmu(f: &RawFirmware, dir: &Path) -> Result<FirmwareKind, Invalid> {
    let Some(written) = &f.fmu else {
        return Err(invalid(
            RawFirmware::FMU.key,
            "(missing)",
            "the path of an .fmu file, relative to the scenario file",
        ));
    };
    let path = resolve_plugin(written, dir);
    if !path.is_file() {
        return Err(invalid(
            RawFirmware::FMU.key,
            format!("{written:?}"),
            format!(
                "an existing FMU: no such file: {} (a relative path is relative to the scenario's folder)",
                path.display()
            ),
        ));
    }
    Ok(FirmwareKind::Fmu { path })
}

/// The plugin path written in a scenario, resolved against the scenario's
/// folder `dir`: an absolute path stays; a relative one, a bare file name
/// included, is relative to `dir` (`./name` when `dir` is the working
/// directory, so that the dynamic loader never searches the system paths).
fn resolve_plugin(written: &str, dir: &Path) -> PathBuf {
    let path = Path::new(written);
    if path.is_absolute() {
        return path.to_path_buf();
    }
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    dir.join(path)
}
