//! The valve driver: turns the firmware's drive mode into the coil voltage
//! averaged over each plant step.
//!
//! PWM periods and on-times are quantised to the hardware timer tick. The
//! waveform is integrated exactly over each plant step, so the coil sees the
//! right average whatever the relation between the PWM period and the step:
//! PWM faster than the step acts as its mean voltage (what the coil's L/R
//! filter does), slower PWM is resolved edge by edge to within one step.

use super::{mode, FwOutput};

/// The driver's state.
#[derive(Debug, Clone)]
pub struct Driver {
    timer_tick: f64,
    mode: u32,
    started: f64,
    period: f64,
    on_time: f64,
    peak_time: f64,
}

impl Driver {
    /// A driver whose timer ticks every `timer_tick` s.
    pub fn new(timer_tick: f64) -> Driver {
        Driver { timer_tick, mode: mode::OFF as u32, started: 0.0, period: 1.0, on_time: 0.0, peak_time: 0.0 }
    }

    fn quantise(&self, t: f64) -> f64 {
        (t / self.timer_tick).round() * self.timer_tick
    }

    /// Apply a firmware command at time `t` (a tick).
    pub fn command(&mut self, out: &FwOutput, t: f64) {
        if out.valve_mode != self.mode {
            self.mode = out.valve_mode;
            self.started = t;
        }
        if self.mode == mode::PWM as u32 || self.mode == mode::PEAK_AND_HOLD as u32 {
            self.period = self.quantise(out.pwm_period).max(self.timer_tick);
            self.on_time = self.quantise(out.duty * self.period).min(self.period);
            self.peak_time = self.quantise(out.peak_time);
        }
    }

    /// Time the coil has been on from the start of the mode up to `t`, s.
    fn on_integral(&self, t: f64) -> f64 {
        let s = (t - self.started).max(0.0);
        match self.mode {
            m if m == mode::ON as u32 => s,
            m if m == mode::PWM as u32 => pwm_integral(s, self.period, self.on_time),
            m if m == mode::PEAK_AND_HOLD as u32 => {
                if s <= self.peak_time {
                    s
                } else {
                    self.peak_time + pwm_integral(s - self.peak_time, self.period, self.on_time)
                }
            }
            _ => 0.0,
        }
    }

    /// Mean drive (fraction of the full voltage) over the step [t0, t1].
    #[inline]
    pub fn mean(&self, t0: f64, t1: f64) -> f64 {
        match self.mode {
            m if m == mode::OFF as u32 => 0.0,
            m if m == mode::ON as u32 => 1.0,
            _ => ((self.on_integral(t1) - self.on_integral(t0)) / (t1 - t0)).clamp(0.0, 1.0),
        }
    }

    /// True when the coil is driven at all.
    pub fn active(&self) -> bool {
        self.mode != mode::OFF as u32
    }
}

fn pwm_integral(s: f64, period: f64, on: f64) -> f64 {
    let k = (s / period).floor();
    k * on + (s - k * period).min(on)
}
