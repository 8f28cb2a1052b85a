//! Built-in firmware: open loop, pressure PID and volume target, with the
//! session logic they share (trigger → optional pre-pressurise → shot →
//! vent → dwell).

use super::{mode, Controller, FirmwareError, FwInput, FwOutput, Reads};

/// How the valve coil is driven while the valve should be open.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum DriveSpec {
    /// Full voltage.
    On,
    /// PWM at `duty` with `period` s.
    Pwm {
        /// Duty, 0 to 1.
        duty: f64,
        /// Period, s.
        period: f64,
    },
    /// Full voltage for `peak` s, then PWM at `hold_duty` with `period` s.
    PeakAndHold {
        /// Peak time, s.
        peak: f64,
        /// Hold duty, 0 to 1.
        hold_duty: f64,
        /// Hold PWM period, s.
        period: f64,
    },
}

impl DriveSpec {
    fn apply(&self, out: &mut FwOutput) {
        match *self {
            DriveSpec::On => out.valve_mode = mode::ON as u32,
            DriveSpec::Pwm { duty, period } => {
                out.valve_mode = mode::PWM as u32;
                out.duty = duty;
                out.pwm_period = period;
            }
            DriveSpec::PeakAndHold { peak, hold_duty, period } => {
                out.valve_mode = mode::PEAK_AND_HOLD as u32;
                out.peak_time = peak;
                out.duty = hold_duty;
                out.pwm_period = period;
            }
        }
    }
}

/// Session logic shared by the built-ins: detects trigger edges and runs
/// pre-pressurise → open → closed, counting whole ticks.
#[derive(Debug, Clone, Default)]
struct Sequencer {
    prev_trigger: u32,
    ticks_since_edge: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Idle,
    Pre,
    Open,
    After,
}

impl Sequencer {
    /// Advance on `input`; returns the phase for an open window of
    /// `open_ticks` after `pre_ticks`.
    fn phase(&mut self, input: &FwInput, pre_ticks: u64, open_ticks: u64) -> Phase {
        if input.trigger == 1 && self.prev_trigger == 0 {
            self.ticks_since_edge = Some(0);
        } else if let Some(k) = self.ticks_since_edge.as_mut() {
            *k += 1;
        }
        self.prev_trigger = input.trigger;
        match self.ticks_since_edge {
            None => Phase::Idle,
            Some(k) if k < pre_ticks => Phase::Pre,
            Some(k) if k < pre_ticks + open_ticks => Phase::Open,
            Some(_) => Phase::After,
        }
    }
    /// Further ticks (with the trigger level unchanged) that stay in the
    /// phase of the last tick.
    fn steady(&self, pre_ticks: u64, open_ticks: u64) -> u64 {
        match self.ticks_since_edge {
            None => u64::MAX,
            Some(k) if k < pre_ticks => pre_ticks - 1 - k,
            Some(k) if k < pre_ticks + open_ticks => pre_ticks + open_ticks - 1 - k,
            Some(_) => u64::MAX,
        }
    }
    /// `ticks` ticks passed with the trigger level unchanged.
    fn skip(&mut self, ticks: u64) {
        if let Some(k) = self.ticks_since_edge.as_mut() {
            *k = k.saturating_add(ticks);
        }
    }
    /// True on the tick of a rising edge.
    fn edge(&self) -> bool {
        self.ticks_since_edge == Some(0)
    }
}

/// Whole firmware ticks of a duration `t` (s) at tick period `tick` (s),
/// rounded to the nearest: how the built-in firmware times its phases.
pub fn whole_ticks(t: f64, tick: f64) -> u64 {
    (t / tick + 0.5).max(0.0) as u64
}

/// Whole ticks of a duration, recomputed only when the tick period changes.
#[derive(Debug, Clone, Default)]
struct Ticks {
    tick: f64,
    pre: u64,
    open: u64,
}

impl Ticks {
    fn get(&mut self, tick: f64, pre: f64, open: f64) -> (u64, u64) {
        if tick != self.tick {
            *self = Ticks { tick, pre: whole_ticks(pre, tick), open: whole_ticks(open, tick) };
        }
        (self.pre, self.open)
    }
}

/// Open loop: the valve opens for a set time per shot (whole ticks).
#[derive(Debug, Clone)]
pub struct OpenLoop {
    /// Open time, s.
    pub open_time: f64,
    /// Pre-pressurise delay between the trigger and the valve, s.
    pub pre: f64,
    /// Coil drive while open.
    pub drive: DriveSpec,
    seq: Sequencer,
    ticks: Ticks,
}

impl OpenLoop {
    /// Open for `open_time` s after `pre` s, driving the coil as `drive`.
    pub fn new(open_time: f64, pre: f64, drive: DriveSpec) -> OpenLoop {
        OpenLoop { open_time, pre, drive, seq: Sequencer::default(), ticks: Ticks::default() }
    }
}

impl Controller for OpenLoop {
    fn name(&self) -> String {
        "open_loop".into()
    }
    fn reset(&mut self) -> Result<(), FirmwareError> {
        self.seq = Sequencer::default();
        Ok(())
    }
    fn step(&mut self, input: &FwInput, out: &mut FwOutput) -> Result<(), FirmwareError> {
        *out = FwOutput::default();
        let (pre, open) = self.ticks.get(input.tick_period, self.pre, self.open_time);
        let phase = self.seq.phase(input, pre, open);
        if phase == Phase::Open {
            self.drive.apply(out);
        }
        out.idle = (phase == Phase::Idle || phase == Phase::After) as u32;
        out.sig_command = (phase == Phase::Open) as u32 as f64;
        Ok(())
    }
    fn reads(&self) -> Reads {
        Reads::NONE
    }
    fn steady_ticks(&self) -> u64 {
        // The output is a function of the phase alone.
        if self.ticks.tick == 0.0 {
            return 0;
        }
        self.seq.steady(self.ticks.pre, self.ticks.open)
    }
    fn skip(&mut self, ticks: u64) {
        self.seq.skip(ticks);
    }
}

/// Which pressure the PID holds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measured {
    /// The supply (regulator outlet) sensor, continuously.
    Supply,
    /// The chamber sensor, while the valve is open (the loop holds its state
    /// while the chamber is vented).
    Chamber,
}

/// Integrator anti-windup.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AntiWindup {
    /// None: the integrator runs free.
    None,
    /// Back-calculation with tracking time `tt` s: dI/dt += (u − v)/T_t.
    BackCalculation {
        /// Tracking time constant, s.
        tt: f64,
    },
    /// Conditional integration: stop integrating while saturated and the
    /// error pushes further into saturation.
    Conditional,
}

/// Discrete PID (standard form; `docs/physics.md`, *Sensors and firmware-side models*): u = u_ff + Kp·e + I + D with
/// I_k = I_{k−1} + Ki·T·e_k, D_k = (τ_d·D_{k−1} + Kd·(e_k − e_{k−1}))/(τ_d + T),
/// output saturation and anti-windup. Units: e in Pa, u in Pa, Kp –, Ki 1/s, Kd s.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Pid {
    /// Proportional gain, –.
    pub kp: f64,
    /// Integral gain, 1/s.
    pub ki: f64,
    /// Derivative gain, s.
    pub kd: f64,
    /// Derivative filter time constant, s.
    pub tau_d: f64,
    /// Lowest command, Pa gauge.
    pub u_min: f64,
    /// Highest command, Pa gauge.
    pub u_max: f64,
    /// Anti-windup scheme.
    pub anti_windup: AntiWindup,
    #[serde(skip)]
    i: f64,
    #[serde(skip)]
    d: f64,
    #[serde(skip)]
    e_prev: Option<f64>,
}

impl Pid {
    /// A PID at rest.
    pub fn new(kp: f64, ki: f64, kd: f64, tau_d: f64, u_min: f64, u_max: f64, anti_windup: AntiWindup) -> Pid {
        Pid { kp, ki, kd, tau_d, u_min, u_max, anti_windup, i: 0.0, d: 0.0, e_prev: None }
    }

    /// Back to rest.
    pub fn reset(&mut self) {
        self.i = 0.0;
        self.d = 0.0;
        self.e_prev = None;
    }

    /// Integrator state, Pa.
    pub fn integrator(&self) -> f64 {
        self.i
    }

    /// One update with error `e`, feedforward `ff` and period `t`; returns the saturated command.
    pub fn update(&mut self, e: f64, ff: f64, t: f64) -> f64 {
        let de = e - self.e_prev.unwrap_or(e);
        self.e_prev = Some(e);
        self.d = (self.tau_d * self.d + self.kd * de) / (self.tau_d + t);
        let p = self.kp * e;
        let i_next = self.i + self.ki * t * e;
        let v = ff + p + i_next + self.d;
        let u = v.clamp(self.u_min, self.u_max);
        self.i = match self.anti_windup {
            AntiWindup::None => i_next,
            AntiWindup::BackCalculation { tt } => i_next + t / tt * (u - v),
            AntiWindup::Conditional => {
                let pushing_out = (v > self.u_max && e > 0.0) || (v < self.u_min && e < 0.0);
                if pushing_out {
                    self.i
                } else {
                    i_next
                }
            }
        };
        u
    }
}

/// Pressure PID driving a proportional regulator's set pressure, plus the
/// open-loop shot sequence for the valve.
#[derive(Debug, Clone)]
pub struct PressurePid {
    /// Shot sequence.
    pub shot: OpenLoop,
    /// Which sensor is held.
    pub measured: Measured,
    /// Setpoint, Pa gauge.
    pub setpoint: f64,
    /// Optional setpoint step: (time s, new setpoint Pa gauge).
    pub step: Option<(f64, f64)>,
    /// Controller.
    pub pid: Pid,
    u: f64,
}

impl PressurePid {
    /// A pressure loop around `shot`.
    pub fn new(shot: OpenLoop, measured: Measured, setpoint: f64, step: Option<(f64, f64)>, pid: Pid) -> PressurePid {
        PressurePid { shot, measured, setpoint, step, pid, u: setpoint }
    }
}

impl Controller for PressurePid {
    fn name(&self) -> String {
        "pressure_pid".into()
    }
    fn reset(&mut self) -> Result<(), FirmwareError> {
        self.pid.reset();
        self.u = self.setpoint;
        self.shot.reset()
    }
    fn step(&mut self, input: &FwInput, out: &mut FwOutput) -> Result<(), FirmwareError> {
        self.shot.step(input, out)?;
        let r = match self.step {
            Some((t, v)) if input.t >= t => v,
            _ => self.setpoint,
        };
        let (y, active) = match self.measured {
            Measured::Supply => (input.p_supply, true),
            Measured::Chamber => (input.p_chamber, out.valve_mode != mode::OFF as u32),
        };
        if active {
            self.u = self.pid.update(r - y, r, input.tick_period);
        }
        out.regulator_setpoint = self.u;
        out.idle = 0;
        out.sig_setpoint = r;
        out.sig_measured = y;
        out.sig_command = self.u;
        out.sig_integrator = self.pid.integrator();
        Ok(())
    }
    fn reads(&self) -> Reads {
        let mut pressures = [false; 3];
        pressures[match self.measured {
            Measured::Supply => 0,
            Measured::Chamber => 1,
        }] = true;
        Reads { pressures, plunger: false }
    }
}

/// Volume target: open on the trigger, close when the volume measured by the
/// plunger encoder plus the flow times a latency lead reaches the target.
/// The lead starts from a calibration value and, with a learning gain,
/// corrects itself from each shot's final volume.
#[derive(Debug, Clone)]
pub struct VolumeTarget {
    /// Target volume, m³.
    pub target: f64,
    /// Latency lead, s.
    pub lead: f64,
    /// Learning gain, – (0: keep the calibrated lead).
    pub gain: f64,
    /// Longest the valve may stay open, s.
    pub max_open: f64,
    /// Window for the flow estimate, s.
    pub flow_window: f64,
    /// Coil drive while open.
    pub drive: DriveSpec,
    lead0: f64,
    seq: Sequencer,
    z0: f64,
    open: bool,
    closed_at: Option<(f64, f64)>,
    history: Vec<f64>,
}

impl VolumeTarget {
    /// A volume-target firmware.
    pub fn new(target: f64, lead: f64, gain: f64, max_open: f64, drive: DriveSpec) -> VolumeTarget {
        VolumeTarget {
            target,
            lead,
            gain,
            max_open,
            flow_window: 2e-3,
            drive,
            lead0: lead,
            seq: Sequencer::default(),
            z0: 0.0,
            open: false,
            closed_at: None,
            history: Vec::new(),
        }
    }
}

impl Controller for VolumeTarget {
    fn name(&self) -> String {
        "volume_target".into()
    }
    fn reset(&mut self) -> Result<(), FirmwareError> {
        let fresh = VolumeTarget::new(self.target, self.lead0, self.gain, self.max_open, self.drive);
        *self = fresh;
        Ok(())
    }
    fn step(&mut self, input: &FwInput, out: &mut FwOutput) -> Result<(), FirmwareError> {
        *out = FwOutput::default();
        let window = whole_ticks(self.flow_window, input.tick_period).max(1) as usize;
        self.seq.phase(input, 0, u64::MAX / 2);
        if self.seq.edge() {
            // Learn from the previous shot: its final volume against the target.
            if let Some((q_close, z_start)) = self.closed_at.take() {
                let v_final = input.syringe_area * (input.plunger - z_start);
                if self.gain > 0.0 && q_close > 0.0 {
                    self.lead = (self.lead + self.gain * (v_final - self.target) / q_close).max(0.0);
                }
            }
            self.z0 = input.plunger;
            self.open = true;
            self.history.clear();
        }
        let v = input.syringe_area * (input.plunger - self.z0);
        self.history.push(input.plunger);
        let q = if self.history.len() > window {
            input.syringe_area * (input.plunger - self.history[self.history.len() - 1 - window])
                / (window as f64 * input.tick_period)
        } else {
            0.0
        };
        if self.open {
            let elapsed = self.history.len() as f64 * input.tick_period;
            if v + q * self.lead >= self.target || elapsed >= self.max_open {
                self.open = false;
                self.closed_at = Some((q, self.z0));
            }
        }
        if self.open {
            self.drive.apply(out);
        }
        out.idle = (!self.open) as u32;
        out.sig_setpoint = self.target;
        out.sig_measured = v;
        out.sig_command = self.open as u32 as f64;
        out.sig_integrator = self.lead;
        Ok(())
    }
    fn reads(&self) -> Reads {
        Reads { pressures: [false; 3], plunger: true }
    }
}
