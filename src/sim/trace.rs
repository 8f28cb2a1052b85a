//! Time-series recording of the plant at a fixed sampling interval.

use super::plant::Plant;
use super::session::Observer;
use crate::control::FwOutput;

/// One trace sample (SI, pressures gauge).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TraceSample {
    /// Time, s.
    pub t: f64,
    /// Coil drive over the last step, fraction of the drive voltage.
    pub command: f64,
    /// Valve opening fraction, –.
    pub opening: f64,
    /// Coil current, A.
    pub coil_current: f64,
    /// Regulator output, Pa (gauge).
    pub supply: f64,
    /// Valve outlet (first line node or chamber), Pa (gauge).
    pub valve_outlet: f64,
    /// Chamber, Pa (gauge).
    pub chamber: f64,
    /// Chamber gas temperature, K.
    pub chamber_temperature: f64,
    /// Piston position, m.
    pub piston: f64,
    /// Plunger travel, m.
    pub plunger: f64,
    /// Syringe, Pa (gauge).
    pub syringe: f64,
    /// Site of needle 1, Pa (gauge).
    pub tissue: f64,
    /// Total needle flow, m³/s.
    pub flow: f64,
    /// Delivered so far, m³.
    pub delivered: f64,
    /// Refluxed so far, m³.
    pub leaked: f64,
    /// Regulator set pressure in force, Pa (gauge).
    pub regulator_setpoint: f64,
    /// Firmware telemetry: setpoint.
    pub fw_setpoint: f64,
    /// Firmware telemetry: measured value.
    pub fw_measured: f64,
    /// Firmware telemetry: command.
    pub fw_command: f64,
    /// Firmware telemetry: integrator.
    pub fw_integrator: f64,
}

/// Receives every trace sample as it is taken (e.g. a CSV writer), so a
/// long run never holds its whole trace in memory.
pub trait TraceSink {
    /// One sample, in time order.
    fn sample(&mut self, s: &TraceSample);
}

/// Collects every sample (for tests and short runs).
impl TraceSink for Vec<TraceSample> {
    fn sample(&mut self, s: &TraceSample) {
        self.push(*s);
    }
}

/// Most points a recorder keeps for plotting: a longer trace is decimated
/// to at most this many samples (about 40 shots of the reference scenario
/// at its 50 µs interval; every shipped scenario stays below it).
pub const PLOT_POINTS: usize = 65_536;

/// A bucket of consecutive samples: the first sample's time with every
/// field's minimum, and the last sample's time with every field's maximum.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    lo: TraceSample,
    hi: TraceSample,
    n: u64,
}

/// Field by field `f` of two samples (not the time), at time `t`.
fn fieldwise(a: &TraceSample, b: &TraceSample, t: f64, f: fn(f64, f64) -> f64) -> TraceSample {
    TraceSample {
        t,
        command: f(a.command, b.command),
        opening: f(a.opening, b.opening),
        coil_current: f(a.coil_current, b.coil_current),
        supply: f(a.supply, b.supply),
        valve_outlet: f(a.valve_outlet, b.valve_outlet),
        chamber: f(a.chamber, b.chamber),
        chamber_temperature: f(a.chamber_temperature, b.chamber_temperature),
        piston: f(a.piston, b.piston),
        plunger: f(a.plunger, b.plunger),
        syringe: f(a.syringe, b.syringe),
        tissue: f(a.tissue, b.tissue),
        flow: f(a.flow, b.flow),
        delivered: f(a.delivered, b.delivered),
        leaked: f(a.leaked, b.leaked),
        regulator_setpoint: f(a.regulator_setpoint, b.regulator_setpoint),
        fw_setpoint: f(a.fw_setpoint, b.fw_setpoint),
        fw_measured: f(a.fw_measured, b.fw_measured),
        fw_command: f(a.fw_command, b.fw_command),
        fw_integrator: f(a.fw_integrator, b.fw_integrator),
    }
}

impl Bucket {
    fn merge(&mut self, other: &Bucket) {
        self.lo = fieldwise(&self.lo, &other.lo, self.lo.t, f64::min);
        self.hi = fieldwise(&self.hi, &other.hi, other.hi.t, f64::max);
        self.n += other.n;
    }
    fn points(&self) -> usize {
        if self.n == 1 {
            1
        } else {
            2
        }
    }
}

/// Records a [`TraceSample`] every `interval` seconds: each one goes to the
/// sink, if any, and into a bounded copy for plots that holds every sample
/// while there are at most `cap` of them, and beyond that min/max pairs of
/// equal runs of samples (so peaks survive), never more than `cap` points.
pub struct TraceRecorder<'a> {
    interval: f64,
    next: f64,
    cap: usize,
    /// Samples per bucket (a power of two).
    width: u64,
    buckets: Vec<Bucket>,
    points: usize,
    recorded: u64,
    sink: Option<&'a mut dyn TraceSink>,
}

impl std::fmt::Debug for TraceRecorder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceRecorder")
            .field("interval", &self.interval)
            .field("cap", &self.cap)
            .field("recorded", &self.recorded)
            .field("held", &self.points)
            .finish()
    }
}

impl<'a> TraceRecorder<'a> {
    /// Sample every `interval` s, keeping at most [`PLOT_POINTS`] points.
    pub fn new(interval: f64) -> TraceRecorder<'a> {
        TraceRecorder::with_sink(interval, PLOT_POINTS, None)
    }

    /// Sample every `interval` s into `sink`, keeping at most `cap` (≥ 4) points for plots.
    pub fn with_sink(interval: f64, cap: usize, sink: Option<&'a mut dyn TraceSink>) -> TraceRecorder<'a> {
        TraceRecorder {
            interval,
            next: 0.0,
            cap: cap.max(4),
            width: 1,
            buckets: Vec::new(),
            points: 0,
            recorded: 0,
            sink,
        }
    }

    /// Samples taken so far.
    pub fn recorded(&self) -> u64 {
        self.recorded
    }

    /// Samples held in memory for plots (at most the cap).
    pub fn held(&self) -> usize {
        self.points
    }

    /// The plot copy in time order: every sample, or min/max pairs once decimated.
    pub fn into_samples(self) -> Vec<TraceSample> {
        let mut out = Vec::with_capacity(self.points);
        for b in &self.buckets {
            out.push(b.lo);
            if b.n > 1 {
                out.push(b.hi);
            }
        }
        out
    }

    fn keep(&mut self, s: TraceSample) {
        let b = Bucket { lo: s, hi: s, n: 1 };
        match self.buckets.last_mut() {
            Some(last) if last.n < self.width => {
                self.points -= last.points();
                last.merge(&b);
                self.points += last.points();
            }
            _ => {
                self.buckets.push(b);
                self.points += 1;
            }
        }
        while self.points > self.cap {
            // Join neighbours: twice as many samples per bucket.
            let old = std::mem::take(&mut self.buckets);
            for pair in old.chunks(2) {
                let mut b = pair[0];
                if let Some(next) = pair.get(1) {
                    b.merge(next);
                }
                self.buckets.push(b);
            }
            self.width *= 2;
            self.points = self.buckets.iter().map(Bucket::points).sum();
        }
    }
}

/// A sample of the plant and the firmware now.
pub fn sample(plant: &Plant, command: f64, fw: &FwOutput) -> TraceSample {
    let s = &plant.state;
    let pa = plant.params.p_atm;
    TraceSample {
        t: s.t,
        command,
        opening: s.valve.opening,
        coil_current: s.valve.current,
        supply: s.p_reg - pa,
        valve_outlet: plant.valve_outlet_pressure() - pa,
        chamber: s.p_c - pa,
        chamber_temperature: s.t_c,
        piston: s.x_p,
        plunger: s.z,
        syringe: s.p_s - pa,
        tissue: plant.signals.p_site.first().copied().unwrap_or(0.0),
        flow: s.q_needle.iter().sum(),
        delivered: s.delivered.iter().sum(),
        leaked: s.leaked.iter().sum(),
        regulator_setpoint: s.p_set - pa,
        fw_setpoint: fw.sig_setpoint,
        fw_measured: fw.sig_measured,
        fw_command: fw.sig_command,
        fw_integrator: fw.sig_integrator,
    }
}

impl Observer for TraceRecorder<'_> {
    fn observe(&mut self, plant: &Plant, command: f64, fw: &FwOutput) {
        let t = plant.state.t;
        if t + 1e-12 >= self.next {
            let s = sample(plant, command, fw);
            if let Some(sink) = self.sink.as_mut() {
                sink.sample(&s);
            }
            self.recorded += 1;
            self.keep(s);
            // Next sample on the grid, skipping any fast-forwarded gap.
            let k = ((t + 1e-12) / self.interval).floor() + 1.0;
            self.next = k * self.interval;
        }
    }
}
