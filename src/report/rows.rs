//! The rows of the CSV tables, in human units named in every column:
//! `shots.csv`, `needles.csv` and `trace.csv` (with the firmware's telemetry).

use super::{finite_or_empty, tidy_f64};
use crate::scenario::Scenario;
use crate::sim::{ShotRecord, TraceSample};

/// One row of `shots.csv` (human units).
#[derive(Debug, serde::Serialize)]
pub struct ShotRow {
    /// Shot index.
    pub shot: usize,
    /// Trigger time, ms.
    #[serde(serialize_with = "tidy_f64")]
    pub t_start_ms: f64,
    /// Commanded open time, ms.
    #[serde(serialize_with = "tidy_f64")]
    pub open_time_cmd_ms: f64,
    /// Effective valve open time ∫opening dt, ms.
    #[serde(serialize_with = "tidy_f64")]
    pub valve_open_effective_ms: f64,
    /// Opening delay, ms.
    #[serde(serialize_with = "finite_or_empty")]
    pub valve_t_on_ms: f64,
    /// Closing delay, ms.
    #[serde(serialize_with = "finite_or_empty")]
    pub valve_t_off_ms: f64,
    /// Delivered into tissue, µL.
    #[serde(serialize_with = "tidy_f64")]
    pub dose_ul: f64,
    /// Refluxed, µL.
    #[serde(serialize_with = "tidy_f64")]
    pub leak_ul: f64,
    /// Swept by the plunger, µL.
    #[serde(serialize_with = "tidy_f64")]
    pub expelled_ul: f64,
    /// Change of compressed storage, µL.
    #[serde(serialize_with = "tidy_f64")]
    pub stored_change_ul: f64,
    /// Peak flow, µL/s.
    #[serde(serialize_with = "tidy_f64")]
    pub peak_flow_ul_s: f64,
    /// Peak syringe pressure, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub peak_syringe_kpa: f64,
    /// Peak tissue pressure, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub peak_tissue_kpa: f64,
    /// Peak chamber pressure, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub peak_chamber_kpa: f64,
    /// Time to 90 % of the dose, ms.
    #[serde(serialize_with = "finite_or_empty")]
    pub t90_ms: f64,
    /// Maximum needle Reynolds number.
    #[serde(serialize_with = "tidy_f64")]
    pub max_reynolds: f64,
    /// Supply pressure at trigger, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub supply_start_kpa: f64,
    /// Chamber pressure at trigger, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub chamber_start_kpa: f64,
    /// Chamber temperature at trigger, °C.
    #[serde(serialize_with = "tidy_f64")]
    pub chamber_temp_start_c: f64,
    /// Piston position at trigger, mm.
    #[serde(serialize_with = "tidy_f64")]
    pub piston_start_mm: f64,
    /// Plunger travel at the end of the shot, mm.
    #[serde(serialize_with = "tidy_f64")]
    pub plunger_end_mm: f64,
    /// Inlet choked during the shot.
    pub inlet_choked: bool,
    /// Plant steps.
    pub steps: u64,
    /// Plunger breakaways (more than one: stick-slip).
    pub breakaways: u32,
}

impl From<&ShotRecord> for ShotRow {
    fn from(r: &ShotRecord) -> ShotRow {
        ShotRow {
            shot: r.index,
            t_start_ms: r.t_start * 1e3,
            open_time_cmd_ms: r.open_time_cmd * 1e3,
            valve_open_effective_ms: r.valve_open_effective * 1e3,
            valve_t_on_ms: r.valve_t_on * 1e3,
            valve_t_off_ms: r.valve_t_off * 1e3,
            dose_ul: r.dose * 1e9,
            leak_ul: r.leak * 1e9,
            expelled_ul: r.expelled * 1e9,
            stored_change_ul: r.stored_change * 1e9,
            peak_flow_ul_s: r.peak_flow * 1e9,
            peak_syringe_kpa: r.peak_syringe_pressure / 1e3,
            peak_tissue_kpa: r.peak_tissue_pressure / 1e3,
            peak_chamber_kpa: r.peak_chamber_pressure / 1e3,
            t90_ms: r.t90 * 1e3,
            max_reynolds: r.max_re,
            supply_start_kpa: r.supply_pressure_start / 1e3,
            chamber_start_kpa: r.chamber_pressure_start / 1e3,
            chamber_temp_start_c: r.chamber_temperature_start - 273.15,
            piston_start_mm: r.piston_start * 1e3,
            plunger_end_mm: r.plunger_end * 1e3,
            inlet_choked: r.inlet_choked,
            steps: r.steps,
            breakaways: r.breakaways,
        }
    }
}

/// One row of `needles.csv`: one needle in one shot.
#[derive(Debug, serde::Serialize)]
pub struct NeedleRow {
    /// Shot index.
    pub shot: usize,
    /// Needle index.
    pub needle: usize,
    /// Delivered into this site, µL.
    #[serde(serialize_with = "tidy_f64")]
    pub dose_ul: f64,
    /// Refluxed at this site, µL.
    #[serde(serialize_with = "tidy_f64")]
    pub leak_ul: f64,
    /// Share of the shot's dose, –.
    #[serde(serialize_with = "finite_or_empty")]
    pub share: f64,
    /// Peak site pressure, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub peak_tissue_kpa: f64,
    /// Maximum Reynolds number.
    #[serde(serialize_with = "tidy_f64")]
    pub max_reynolds: f64,
}

/// One row of `trace.csv`.
#[derive(Debug, serde::Serialize)]
pub struct TraceRow {
    /// Time, ms.
    #[serde(serialize_with = "tidy_f64")]
    pub t_ms: f64,
    /// Coil drive over the step, fraction of the drive voltage (1 = on).
    #[serde(serialize_with = "tidy_f64")]
    pub valve_cmd: f64,
    /// Valve opening, –.
    #[serde(serialize_with = "tidy_f64")]
    pub valve_opening: f64,
    /// Coil current, A.
    #[serde(serialize_with = "tidy_f64")]
    pub coil_current_a: f64,
    /// Supply, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub supply_kpa: f64,
    /// Valve outlet, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub valve_outlet_kpa: f64,
    /// Chamber, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub chamber_kpa: f64,
    /// Chamber gas temperature, °C.
    #[serde(serialize_with = "tidy_f64")]
    pub chamber_temp_c: f64,
    /// Piston position, mm.
    #[serde(serialize_with = "tidy_f64")]
    pub piston_mm: f64,
    /// Plunger travel, mm.
    #[serde(serialize_with = "tidy_f64")]
    pub plunger_mm: f64,
    /// Syringe, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub syringe_kpa: f64,
    /// Tissue at needle 1, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub tissue_kpa: f64,
    /// Total needle flow, µL/s.
    #[serde(serialize_with = "tidy_f64")]
    pub flow_ul_s: f64,
    /// Delivered so far, µL.
    #[serde(serialize_with = "tidy_f64")]
    pub delivered_ul: f64,
    /// Refluxed so far, µL.
    #[serde(serialize_with = "tidy_f64")]
    pub leaked_ul: f64,
    /// Regulator set pressure in force, kPa gauge.
    #[serde(serialize_with = "tidy_f64")]
    pub regulator_setpoint_kpa: f64,
    /// Firmware telemetry: the controlled quantity's setpoint, in the unit
    /// its column names ([`FwColumns`]).
    #[serde(serialize_with = "tidy_f64")]
    pub fw_setpoint: f64,
    /// Firmware telemetry: measured value.
    #[serde(serialize_with = "tidy_f64")]
    pub fw_measured: f64,
    /// Firmware telemetry: command.
    #[serde(serialize_with = "tidy_f64")]
    pub fw_command: f64,
    /// Firmware telemetry: integrator state.
    #[serde(serialize_with = "tidy_f64")]
    pub fw_integrator: f64,
}

/// The names and scales of `trace.csv`'s four firmware-telemetry columns:
/// the telemetry is SI inside (Pa gauge for the pressure PID, m³ and s for
/// the volume target); each column carries its unit in its name, as every
/// other column does. A C plugin's or a controller FMU's telemetry has no
/// declared unit: its columns end in `_si`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FwColumns {
    /// Column names: setpoint, measured, command, integrator.
    pub names: [&'static str; 4],
    /// Scale from the SI telemetry to each column's unit.
    pub scales: [f64; 4],
    /// The unit of the trace plot's firmware panel (setpoint, measured and
    /// command share it), and its scale from SI.
    pub plot: (&'static str, f64),
}

impl FwColumns {
    /// The telemetry columns of `sc`'s firmware.
    pub fn of(sc: &Scenario) -> FwColumns {
        use crate::scenario::FirmwareKind;
        match sc.firmware.kind {
            FirmwareKind::PressurePid { .. } => FwColumns {
                names: ["fw_setpoint_kpa", "fw_measured_kpa", "fw_command_kpa", "fw_integrator_kpa"],
                scales: [1e-3; 4],
                plot: ("kPa", 1e-3),
            },
            FirmwareKind::VolumeTarget { .. } => FwColumns {
                names: ["fw_setpoint_ul", "fw_measured_ul", "fw_valve_open", "fw_lead_ms"],
                scales: [1e9, 1e9, 1.0, 1e3],
                plot: ("µL", 1e9),
            },
            _ => FwColumns {
                names: ["fw_setpoint_si", "fw_measured_si", "fw_command_si", "fw_integrator_si"],
                scales: [1.0; 4],
                plot: ("firmware units (SI)", 1.0),
            },
        }
    }

    /// The header of `trace.csv`.
    pub fn header(&self) -> Vec<&'static str> {
        let mut h = vec![
            "t_ms",
            "valve_cmd",
            "valve_opening",
            "coil_current_a",
            "supply_kpa",
            "valve_outlet_kpa",
            "chamber_kpa",
            "chamber_temp_c",
            "piston_mm",
            "plunger_mm",
            "syringe_kpa",
            "tissue_kpa",
            "flow_ul_s",
            "delivered_ul",
            "leaked_ul",
            "regulator_setpoint_kpa",
        ];
        h.extend(self.names);
        h
    }

    /// The row of sample `s`.
    pub fn row(&self, s: &TraceSample) -> TraceRow {
        let k = self.scales;
        TraceRow {
            fw_setpoint: s.fw_setpoint * k[0],
            fw_measured: s.fw_measured * k[1],
            fw_command: s.fw_command * k[2],
            fw_integrator: s.fw_integrator * k[3],
            ..TraceRow::from(s)
        }
    }
}

impl From<&TraceSample> for TraceRow {
    fn from(s: &TraceSample) -> TraceRow {
        TraceRow {
            t_ms: s.t * 1e3,
            valve_cmd: s.command,
            valve_opening: s.opening,
            coil_current_a: s.coil_current,
            supply_kpa: s.supply / 1e3,
            valve_outlet_kpa: s.valve_outlet / 1e3,
            chamber_kpa: s.chamber / 1e3,
            chamber_temp_c: s.chamber_temperature - 273.15,
            piston_mm: s.piston * 1e3,
            plunger_mm: s.plunger * 1e3,
            syringe_kpa: s.syringe / 1e3,
            tissue_kpa: s.tissue / 1e3,
            flow_ul_s: s.flow * 1e9,
            delivered_ul: s.delivered * 1e9,
            leaked_ul: s.leaked * 1e9,
            regulator_setpoint_kpa: s.regulator_setpoint / 1e3,
            fw_setpoint: s.fw_setpoint,
            fw_measured: s.fw_measured,
            fw_command: s.fw_command,
            fw_integrator: s.fw_integrator,
        }
    }
}
