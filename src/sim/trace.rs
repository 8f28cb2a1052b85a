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

/// Records a [`TraceSample`] every `interval` seconds.
#[derive(Debug, Clone)]
pub struct TraceRecorder {
    interval: f64,
    next: f64,
    /// The samples.
    pub samples: Vec<TraceSample>,
}

impl TraceRecorder {
    /// Sample every `interval` s.
    pub fn new(interval: f64) -> TraceRecorder {
        TraceRecorder { interval, next: 0.0, samples: Vec::new() }
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

impl Observer for TraceRecorder {
    fn observe(&mut self, plant: &Plant, command: f64, fw: &FwOutput) {
        let t = plant.state.t;
        if t + 1e-12 >= self.next {
            self.samples.push(sample(plant, command, fw));
            // Next sample on the grid, skipping any fast-forwarded gap.
            let k = ((t + 1e-12) / self.interval).floor() + 1.0;
            self.next = k * self.interval;
        }
    }
}
