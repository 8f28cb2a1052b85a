//! Scenario files: TOML with human units in the key names, converted once to
//! SI and range-checked before anything runs.
//!
//! Parsing has two stages (as ripgrep's low/high arguments): [`Raw`] mirrors
//! the file (every key optional, unknown keys rejected), then
//! [`Scenario::from_raw`] fills defaults, converts to SI and checks ranges
//! into [`Scenario`], which downstream code uses and which cannot hold bar or
//! ms. `--set key.path=value` overrides are applied to the parsed document.

use serde::Deserialize;
use std::path::{Path, PathBuf};

use crate::control::builtin::{AntiWindup, DriveSpec, Measured, Pid};
use crate::control::sensors::{PressureSensorSpec, SensorSpec};
use crate::model::chamber::{ChamberParams, Thermal};
use crate::model::fluid::{Fluid, Rheology};
use crate::model::gas::{Iso6358, DM3_PER_S_BAR, P_ATM};
use crate::model::hydraulics::Conduit;
use crate::model::line::LineParams;
use crate::model::piston::{PistonParams, Stribeck};
use crate::model::supply::{Reservoir, SupplyParams};
use crate::model::syringe::SyringeParams;
use crate::model::tissue::TissueParams;
use crate::model::valve::{Actuation, Catalogue, Coil, ValveParams};
use crate::model::{self, Params, TubingParams};
use crate::sim::{SessionSettings, SolverSettings};

/// The default scenario, identical to `scenarios/reference.toml`.
pub const DEFAULT_SCENARIO: &str = include_str!("../scenarios/reference.toml");
/// Name of the default scenario.
pub const DEFAULT_NAME: &str = "reference";

/// A scenario that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A file larger than any scenario or study (e.g. /dev/zero).
    #[error("{} is larger than {mib} MiB: not a {what}", path.display())]
    TooLarge {
        /// File.
        path: PathBuf,
        /// What it should have been ("scenario", "study").
        what: &'static str,
        /// The cap, MiB.
        mib: u64,
    },
    /// TOML syntax or schema error (the message carries line, column and a caret).
    #[error("{path}: {message}")]
    Parse {
        /// File.
        path: String,
        /// toml's message.
        message: String,
    },
    /// A `--set` override that is malformed or names no key.
    #[error("--set {arg}: {message}")]
    Override {
        /// The argument as given.
        arg: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A value outside its allowed range, or an inconsistent combination.
    #[error("{location}: {key} = {value} is not allowed: {allowed}")]
    Invalid {
        /// `file:line:column`, or `--set key=value`.
        location: String,
        /// Dotted key.
        key: String,
        /// The value given.
        value: String,
        /// What is allowed.
        allowed: String,
    },
}

macro_rules! raw_section {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(missing_docs)]
        pub struct $name { $($(#[$fm])* pub $field: Option<$ty>),* }
    };
}

/// The scenario file as written (human units in the key names).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Raw {
    pub name: Option<String>,
    pub description: Option<String>,
    pub seed: Option<u64>,
    #[serde(default)]
    pub solver: RawSolver,
    #[serde(default)]
    pub firmware: RawFirmware,
    #[serde(default)]
    pub sensors: RawSensors,
    #[serde(default)]
    pub session: RawSession,
    #[serde(default)]
    pub ambient: RawAmbient,
    #[serde(default)]
    pub supply: RawSupply,
    #[serde(default)]
    pub valve: RawValve,
    #[serde(default)]
    pub line: RawLine,
    #[serde(default)]
    pub chamber: RawChamber,
    #[serde(default)]
    pub piston: RawPiston,
    #[serde(default)]
    pub syringe: RawSyringe,
    pub tubing: Option<RawTubing>,
    #[serde(default)]
    pub needle: RawNeedle,
    #[serde(default)]
    pub fluid: RawFluid,
    #[serde(default)]
    pub tissue: RawTissue,
    pub sweep: Option<RawSweep>,
    pub uncertain: Option<toml::Table>,
    pub sensitivity: Option<RawSensitivity>,
    pub tune: Option<RawTune>,
}

/// `[tune]`: firmware auto-tuning (`mesobench tune`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawTune {
    pub parameters: Option<toml::Table>,
    pub objective: Option<String>,
    pub target_ul: Option<f64>,
    pub max_bias_pct: Option<f64>,
    pub weight_cv: Option<f64>,
    pub weight_bias: Option<f64>,
    pub acceptance: Option<String>,
    pub replicates: Option<i64>,
    pub optimizer: Option<String>,
    pub particles: Option<i64>,
    pub iterations: Option<i64>,
    pub landscape_grid: Option<i64>,
    pub landscape: Option<Vec<String>>,
    pub max_tissue_pressure_kpa: Option<f64>,
    pub max_leak_ul: Option<f64>,
    pub min_shots_per_s: Option<f64>,
}

/// `[sensitivity]`: Sobol analysis settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawSensitivity {
    pub samples: Option<i64>,
    pub bootstrap: Option<i64>,
}

/// `[sweep]`: parameters to sweep and Monte Carlo replicates per point.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawSweep {
    pub replicates: Option<i64>,
    pub target_ul: Option<f64>,
    pub histogram_points: Option<Vec<i64>>,
    pub trace_point: Option<i64>,
    pub sampling: Option<String>,
    pub samples: Option<i64>,
    pub parameters: Option<toml::Table>,
}

raw_section!(/** `[solver]` */ RawSolver { step_us: f64, trace_interval_us: f64, max_tail_ms: f64, mode: String });
raw_section!(/** `[firmware]` */ RawFirmware {
    kind: String, tick_hz: f64, open_time_ms: f64, compute_delay_ticks: i64, timer_hz: f64, pre_pressurise_ms: f64,
    drive: String, pwm_duty: f64, pwm_period_ms: f64, peak_ms: f64, hold_duty: f64,
    measured: String, setpoint_bar: f64, setpoint_step_ms: f64, setpoint_step_bar: f64,
    kp: f64, ki_per_s: f64, kd_s: f64, derivative_filter_ms: f64, u_min_bar: f64, u_max_bar: f64,
    anti_windup: String, tracking_time_ms: f64,
    target_ul: f64, lead_ms: f64, learn_gain: f64, max_open_ms: f64,
    plugin: String, plugin_params: Vec<f64>, plugin_isolation: String, plugin_timeout_ms: f64,
});
raw_section!(/** `[sensors]` */ RawSensors {
    encoder_resolution_um: f64, trigger_debounce_ms: f64, trigger_press_ms: f64,
    supply: RawPressureSensor, chamber: RawPressureSensor, syringe: RawPressureSensor,
});
raw_section!(/** `[sensors.supply]`, `[sensors.chamber]`, `[sensors.syringe]` */ RawPressureSensor {
    tau_ms: f64, noise_kpa: f64, offset_kpa: f64, gain_error_pct: f64, bits: i64, full_scale_bar: f64, sample_hz: f64,
});
raw_section!(/** `[session]` */ RawSession { shots: i64, rate_hz: f64 });
raw_section!(/** `[ambient]` */ RawAmbient { pressure_kpa: f64, temperature_c: f64 });
raw_section!(/** `[supply]` */ RawSupply {
    pressure_bar: f64, regulator_tau_ms: f64, droop_bar_per_100lpm: f64,
    reservoir_volume_ml: f64, reservoir_pressure_bar: f64,
    regulator: String, inlet_sensitivity: f64, max_pressure_bar: f64,
});
raw_section!(/** `[valve]` */ RawValve {
    model: String, c_dm3_per_s_bar: f64, b: f64, m: f64,
    exhaust_c_dm3_per_s_bar: f64, exhaust_b: f64,
    voltage_v: f64, coil_resistance_ohm: f64, coil_temperature_c: f64, inductance_mh: f64,
    gap_mm: f64, iron_gap_mm: f64, stroke_mm: f64, armature_mass_g: f64,
    spring_preload_n: f64, spring_rate_n_per_mm: f64, seat_diameter_mm: f64,
    damping_n_s_per_m: f64, clamp_voltage_v: f64,
    response_on_ms: f64, response_off_ms: f64, travel_fraction: f64,
});
raw_section!(/** `[line]` */ RawLine { length_mm: f64, inner_diameter_mm: f64, segments: i64, polytropic: f64 });
raw_section!(/** `[chamber]` */ RawChamber {
    dead_volume_ml: f64, thermal: String, alpha_in: f64, alpha_out: f64, alpha: f64, wall_h_w_per_m2k: f64,
});
raw_section!(/** `[piston]` */ RawPiston {
    diameter_mm: f64, mass_g: f64, spring_preload_n: f64, spring_rate_n_per_mm: f64, stroke_mm: f64,
    seal_coulomb_n: f64, seal_viscous_n_s_per_m: f64,
});
raw_section!(/** `[syringe]` */ RawSyringe {
    preset: String, inner_diameter_mm: f64, fill_ml: f64, dead_space_ml: f64,
    break_loose_n: f64, glide_n: f64, stribeck_velocity_mm_s: f64, viscous_n_s_per_m: f64,
    wall_compliance_ul_per_bar: f64, bubble_ul: f64,
});
raw_section!(/** `[tubing]` */ RawTubing { length_mm: f64, inner_diameter_mm: f64, compliance_ul_per_bar: f64 });
raw_section!(/** `[needle]` */ RawNeedle {
    gauge: i64, inner_diameter_mm: f64, length_mm: f64, count: i64, minor_loss_k: f64,
    id_deviation_pct: Vec<f64>,
});
raw_section!(/** `[fluid]` */ RawFluid {
    preset: String, model: String, density_kg_m3: f64, viscosity_mpa_s: f64,
    consistency_pa_sn: f64, flow_index: f64, eta0_pa_s: f64, eta_inf_mpa_s: f64, lambda_s: f64,
    temperature_c: f64,
});
raw_section!(/** `[tissue]` */ RawTissue {
    preset: String, opening_pressure_kpa: f64, compliance_ul_per_kpa: f64, resistance_kpa_s_per_ml: f64,
    leak_pressure_kpa: f64, leak_resistance_kpa_s_per_ml: f64, absorption_time_s: f64,
    new_site_each_shot: bool, opening_pressure_deviation_pct: Vec<f64>,
});

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

/// A validated scenario (SI).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scenario {
    /// Scenario name (output folder name).
    pub name: String,
    /// Free text.
    pub description: String,
    /// Master seed for every random stream.
    pub seed: u64,
    /// Plant parameters.
    pub params: Params,
    /// Solver settings.
    pub solver: SolverSettings,
    /// Firmware.
    pub firmware: FirmwareSpec,
    /// Session.
    pub session: SessionSettings,
    /// Parameter sweep, if the scenario has a `[sweep]` table.
    pub sweep: Option<SweepSpec>,
    /// Uncertain parameters (`[uncertain]`), drawn per replicate.
    pub uncertain: Vec<Uncertain>,
    /// Sensitivity analysis settings: (base samples N, bootstrap resamples).
    pub sensitivity: (usize, usize),
    /// Auto-tuning settings, if the scenario has a `[tune]` table.
    pub tune: Option<TuneSpec>,
}

/// What `mesobench tune` minimises.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TuneObjective {
    /// Dose CV in %, subject to |bias| ≤ the bias limit (when a target is given).
    Cv,
    /// (|x̄ − V| + k·s) / L(V): the share of the acceptance limit the
    /// tolerance interval uses (≤ 1 passes).
    Tolerance,
    /// weight_cv · CV % + weight_bias · |bias| %.
    Weighted,
}

/// Auto-tuning settings (`[tune]`; SI except where the name says).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TuneSpec {
    /// Tuned keys with their bounds, in the keys' own units.
    pub parameters: Vec<(String, f64, f64)>,
    /// Objective.
    pub objective: TuneObjective,
    /// Target dose, m³.
    pub target: Option<f64>,
    /// Largest |bias| allowed, fraction.
    pub max_bias: f64,
    /// Weights of the weighted objective (CV, bias).
    pub weights: (f64, f64),
    /// Acceptance limits (µL) of the tolerance objective.
    pub limits: crate::stats::tolerance::Limits,
    /// Monte Carlo replicates (sessions) per candidate.
    pub replicates: usize,
    /// `particle_swarm` or `nelder_mead`.
    pub optimizer: Optimizer,
    /// Swarm size.
    pub particles: usize,
    /// Optimiser iterations.
    pub iterations: usize,
    /// Points per axis of the objective landscape.
    pub landscape_grid: usize,
    /// Indices of the keys the landscape spans (empty: the two to which
    /// the objective is most sensitive around the optimum).
    pub landscape: Vec<usize>,
    /// Largest tissue gauge pressure allowed, Pa.
    pub max_tissue_pressure: Option<f64>,
    /// Largest reflux per shot allowed, m³.
    pub max_leak: Option<f64>,
    /// Smallest achieved shot rate allowed, 1/s.
    pub min_rate: Option<f64>,
}

/// How a sweep places its points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// The Cartesian product of the listed values.
    Grid,
    /// A Latin hypercube of `samples` points.
    Lhs,
    /// An Owen-scrambled Sobol sequence of `samples` points.
    Sobol,
}

/// Which optimiser `mesobench tune` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimizer {
    /// Particle swarm (global).
    ParticleSwarm,
    /// Nelder–Mead simplex (local).
    NelderMead,
}

impl std::fmt::Display for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Optimizer::ParticleSwarm => "particle_swarm",
            Optimizer::NelderMead => "nelder_mead",
        })
    }
}

/// A parameter sweep (values in the keys' own units, as written).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SweepSpec {
    /// Monte Carlo replicates (sessions) per point.
    pub replicates: usize,
    /// Target dose for the bias, m³.
    pub target: Option<f64>,
    /// Swept keys and their values; points are the Cartesian product with the last key varying fastest.
    pub axes: Vec<(String, Vec<f64>)>,
    /// Points whose dose histograms are plotted.
    pub histogram: Vec<u64>,
    /// Point whose Monte Carlo traces are overlaid.
    pub trace_point: u64,
    /// How points are placed.
    pub sampling: Sampling,
    /// For `lhs` and `sobol`: the points (one row of key values each); the
    /// axes then hold each key's [low, high] range.
    #[serde(skip)]
    pub design: Option<Vec<Vec<f64>>>,
}

/// A space-filling design of `n` points over `ranges` ([lo, hi], and whether
/// the key is spaced logarithmically): Latin hypercube (one point per
/// stratum in every key, strata shuffled and jittered from `seed`) or an
/// Owen-scrambled Sobol sequence (at most 65,536 points).
pub fn design(kind: Sampling, n: usize, ranges: &[(f64, f64, bool)], seed: u64) -> Vec<Vec<f64>> {
    use rand::seq::SliceRandom;
    use rand::RngExt;
    let map = |u: f64, (lo, hi, log): (f64, f64, bool)| {
        if log {
            (lo.ln() + u * (hi.ln() - lo.ln())).exp()
        } else {
            lo + u * (hi - lo)
        }
    };
    let mut rows = vec![vec![0.0; ranges.len()]; n];
    for (k, r) in ranges.iter().enumerate() {
        if kind == Sampling::Lhs {
            let mut rng = crate::study::task_rng(seed, u64::MAX - 1, k as u64);
            let mut strata: Vec<usize> = (0..n).collect();
            strata.shuffle(&mut rng);
            for (i, row) in rows.iter_mut().enumerate() {
                let u = (strata[i] as f64 + rng.random::<f64>()) / n as f64;
                row[k] = map(u, *r);
            }
        } else {
            let s = (crate::study::splitmix(seed) & 0xffff_ffff) as u32;
            for (i, row) in rows.iter_mut().enumerate() {
                let u = sobol_burley::sample(i as u32, k as u32, s) as f64 + 0.5 / 16_777_216.0;
                row[k] = map(u.min(1.0), *r);
            }
        }
    }
    rows
}

impl SweepSpec {
    /// Number of points.
    pub fn points(&self) -> u64 {
        match &self.design {
            Some(d) => d.len() as u64,
            None => self.axes.iter().map(|a| a.1.len() as u64).product(),
        }
    }
    /// The key values of point `index`.
    pub fn point(&self, mut index: u64) -> Vec<(String, f64)> {
        if let Some(d) = &self.design {
            return self.axes.iter().zip(&d[index as usize]).map(|(a, v)| (a.0.clone(), *v)).collect();
        }
        let mut out = vec![(String::new(), 0.0); self.axes.len()];
        for (i, (key, values)) in self.axes.iter().enumerate().rev() {
            let n = values.len() as u64;
            out[i] = (key.clone(), values[(index % n) as usize]);
            index /= n;
        }
        out
    }
}

/// A probability distribution, in the key's own units.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(tag = "dist", rename_all = "snake_case")]
pub enum Distribution {
    /// Normal.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        sd: f64,
    },
    /// Log-normal with the given median and geometric standard deviation (> 1).
    Lognormal {
        /// Median.
        median: f64,
        /// Geometric standard deviation.
        gsd: f64,
    },
    /// Uniform on [lo, hi].
    Uniform {
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
    },
    /// Normal truncated to [lo, hi] (by rejection).
    TruncatedNormal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        sd: f64,
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
    },
}

/// When an uncertain parameter is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Once per replicate: a device, a syringe, a needle lot, an operator.
    Session,
    /// Before every shot: valve jitter, supply ripple.
    Shot,
    /// For every injection site (every shot, as each shot goes into a new site): tissue.
    Site,
}

/// An uncertain scenario parameter.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Uncertain {
    /// Dotted scenario key (its own units).
    pub key: String,
    /// Distribution.
    pub dist: Distribution,
    /// When it is drawn.
    pub level: Level,
}

/// Keys that may change between shots (per-shot and per-site levels).
pub const PER_SHOT_KEYS: [&str; 4] = ["valve.", "tissue.", "supply.pressure_bar", "supply.regulator_tau_ms"];

/// Where the scenario text came from, for error messages.
#[derive(Debug, Clone)]
pub struct Source {
    /// Display name (a path, or `<default scenario>`).
    pub name: String,
    /// The text.
    pub text: String,
    /// Folder that relative paths in the scenario are resolved against.
    pub dir: PathBuf,
}

impl Source {
    /// Read a scenario file (at most [`MAX_FILE_MIB`] MiB).
    pub fn from_path(path: &Path) -> Result<Source, ScenarioError> {
        let text = read_capped(path, "scenario").map_err(|e| match e {
            Capped::Io(source) => ScenarioError::Io { path: path.to_owned(), source },
            Capped::TooLarge(e) => e,
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Source { name: path.display().to_string(), text, dir })
    }
    /// The embedded default scenario.
    pub fn default_scenario() -> Source {
        Source {
            name: "<default scenario: scenarios/reference.toml>".into(),
            text: DEFAULT_SCENARIO.into(),
            dir: PathBuf::from("scenarios"),
        }
    }
}

/// Largest scenario or study file read, MiB: reading stops there, so an
/// endless file (/dev/zero) or a huge one never fills memory.
pub const MAX_FILE_MIB: u64 = 16;

/// Why [`read_capped`] failed.
#[derive(Debug)]
pub enum Capped {
    /// The file cannot be opened or read, or is not UTF-8.
    Io(std::io::Error),
    /// Larger than [`MAX_FILE_MIB`] ([`ScenarioError::TooLarge`]).
    TooLarge(ScenarioError),
}

/// The text of a scenario or study file (`what`), refusing one larger than [`MAX_FILE_MIB`] MiB.
pub fn read_capped(path: &Path, what: &'static str) -> Result<String, Capped> {
    use std::io::Read;
    let limit = MAX_FILE_MIB << 20;
    let file = std::fs::File::open(path).map_err(Capped::Io)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(Capped::Io)?;
    if bytes.len() as u64 > limit {
        return Err(Capped::TooLarge(ScenarioError::TooLarge { path: path.to_owned(), what, mib: MAX_FILE_MIB }));
    }
    String::from_utf8(bytes).map_err(|_| {
        Capped::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
    })
}

/// A schema or syntax error of a scenario file, with a hint when the file
/// is a comparison study rather than a scenario.
fn parse_error(source: &Source, e: toml::de::Error) -> ScenarioError {
    let detail = e.to_string().trim_end().to_string();
    // Say what the file is before the schema detail.
    let message = if is_study_text(&source.text) {
        format!(
            "this file is a comparison study (it has [[arm]] tables), not a scenario: run it with `mesobench compare {}`\n{detail}",
            source.name
        )
    } else {
        detail
    };
    ScenarioError::Parse { path: source.name.clone(), message }
}

/// Whether a TOML text is a comparison study (`[[arm]]` tables) rather than a scenario.
pub fn is_study_text(text: &str) -> bool {
    text.lines().any(|l| l.trim() == "[[arm]]")
}

/// Load, override and validate a scenario, including every value its
/// `[sweep]`, `[uncertain]` and `[tune]` tables can apply (see
/// [`Prepared::check_study`]).
///
/// `fallback_name` names the scenario when the file has no `name` key
/// (normally the file stem).
pub fn load(source: &Source, overrides: &[String], fallback_name: &str) -> Result<Scenario, ScenarioError> {
    let prep = Prepared::new(source, fallback_name)?;
    let sc = prep.with(overrides)?;
    prep.check_study(&sc, overrides)?;
    Ok(sc)
}

/// Scenario keys that hold whole numbers. They can be swept on a grid of
/// whole values, but not drawn from a distribution nor tuned.
pub const INTEGER_KEYS: [&str; 9] = [
    "session.shots",
    "firmware.compute_delay_ticks",
    "line.segments",
    "needle.gauge",
    "needle.count",
    "sensors.supply.bits",
    "sensors.chamber.bits",
    "sensors.syringe.bits",
    "seed",
];

/// A `key=value` override for a number: whole numbers are written without
/// a fraction, so that integer keys accept them.
pub fn set_arg(key: &str, v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        format!("{key}={}", v as i64)
    } else {
        format!("{key}={v:?}")
    }
}

/// A scenario parsed once, from which variants with overrides are built
/// quickly (no text parsing) for sweeps and Monte Carlo replicates.
#[derive(Debug, Clone)]
pub struct Prepared {
    source: Source,
    table: toml::Table,
    fallback: String,
}

impl Prepared {
    /// Parse `source` (its own errors reported with line and column) once.
    pub fn new(source: &Source, fallback_name: &str) -> Result<Prepared, ScenarioError> {
        let _: Raw = toml::from_str(&source.text).map_err(|e| parse_error(source, e))?;
        let table: toml::Table = toml::from_str(&source.text)
            .map_err(|e| ScenarioError::Parse { path: source.name.clone(), message: e.to_string() })?;
        Ok(Prepared { source: source.clone(), table, fallback: fallback_name.to_string() })
    }

    /// The scenario with `overrides` (`key=value`) applied and validated.
    pub fn with(&self, overrides: &[String]) -> Result<Scenario, ScenarioError> {
        let mut doc = self.table.clone();
        let mut set_keys = Vec::new();
        for arg in overrides {
            let key = apply_override(&mut doc, arg)?;
            set_keys.push((key, arg.clone()));
        }
        let raw = serde_path_to_error::deserialize::<_, Raw>(toml::Value::Table(doc)).map_err(|e| {
            let path = e.path().to_string();
            let arg = set_keys
                .iter()
                .find(|(k, _)| path.starts_with(k.as_str()) || k.starts_with(&path))
                .map(|(_, a)| a.clone())
                .unwrap_or_else(|| path.clone());
            ScenarioError::Override { arg, message: format!("{}: {}", path, e.into_inner()) }
        })?;
        let ctx = Ctx { source: &self.source, set_keys: &set_keys };
        Scenario::from_raw(raw, &ctx, &self.fallback)
    }

    /// Check up front every value a study can apply, so that `check`
    /// reports what would otherwise fail at some later point or draw: each
    /// key of `[sweep.parameters]`, `[uncertain]` and `[tune.parameters]`
    /// must be a numeric scenario key written without stray spaces; the
    /// lowest and highest swept values, the bounds of every distribution
    /// (its 1e-9 and 1 − 1e-9 quantiles when unbounded) and the tuning bounds
    /// must pass the key's own range check; a key may not be both swept and
    /// uncertain (a draw would silently replace the swept value); integer
    /// keys can only be swept, with whole values.
    pub fn check_study(&self, sc: &Scenario, base: &[String]) -> Result<(), ScenarioError> {
        // Errors point at the --set argument when the table entry came from one.
        let set_keys: Vec<(String, String)> = base
            .iter()
            .filter_map(|arg| arg.split_once('=').map(|(k, _)| (k.trim().to_string(), arg.clone())))
            .collect();
        let ctx = Ctx { source: &self.source, set_keys: &set_keys };
        let is_int = |key: &str| INTEGER_KEYS.contains(&key);
        if let Some(sw) = &sc.sweep {
            for (key, values) in &sw.axes {
                let where_ = format!("sweep.parameters.\"{key}\"");
                if is_int(key) {
                    if sw.design.is_some() {
                        return Err(ctx.invalid(&where_, key, "a key with real values: a whole-number key can only be swept on a grid (sampling = \"grid\")"));
                    }
                    if let Some(v) = values.iter().find(|v| v.fract() != 0.0) {
                        return Err(ctx.invalid(
                            &where_,
                            fmt_num(*v),
                            format!("whole numbers: {key} is an integer key"),
                        ));
                    }
                }
                let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                for v in [lo, hi] {
                    self.check_value(&ctx, &where_, key, v, &fmt_num(v), base)?;
                }
            }
        }
        for u in &sc.uncertain {
            let key = u.key.as_str();
            let where_ = format!("uncertain.\"{key}\"");
            if is_int(key) {
                return Err(ctx.invalid(
                    &where_,
                    key,
                    "a key with real values: a whole-number key cannot be drawn from a distribution (sweep it instead)",
                ));
            }
            if sc.sweep.as_ref().is_some_and(|sw| sw.axes.iter().any(|a| a.0 == key)) {
                return Err(ctx.invalid(
                    &where_,
                    key,
                    "a key that is not also swept: a draw would replace the swept value in every replicate (remove it from [uncertain], or sweep the distribution's centre and keep the spread in another key)",
                ));
            }
            for (v, what) in support(&u.dist) {
                self.check_value(&ctx, &where_, key, v, &format!("{} ({what})", fmt_num(v)), base)?;
            }
        }
        if let Some(t) = &sc.tune {
            for (key, lo, hi) in &t.parameters {
                let where_ = format!("tune.parameters.\"{key}\"");
                if is_int(key) {
                    return Err(ctx.invalid(
                        &where_,
                        key,
                        "a key with real values: a whole-number key cannot be tuned",
                    ));
                }
                for v in [*lo, *hi] {
                    self.check_value(&ctx, &where_, key, v, &fmt_num(v), base)?;
                }
            }
        }
        Ok(())
    }

    /// `key = v` on top of `base` must give a valid scenario; errors are
    /// reported at `where_` (the study table's entry).
    fn check_value(
        &self,
        ctx: &Ctx,
        where_: &str,
        key: &str,
        v: f64,
        shown: &str,
        base: &[String],
    ) -> Result<(), ScenarioError> {
        if key.trim() != key || key.is_empty() {
            return Err(ctx.invalid(
                where_,
                format!("{key:?}"),
                "a dotted scenario key without leading or trailing spaces",
            ));
        }
        let mut sets = base.to_vec();
        sets.push(set_arg(key, v));
        match self.with(&sets) {
            Ok(_) => Ok(()),
            Err(ScenarioError::Invalid { key: k, allowed, .. }) if k == key => Err(ctx.invalid(where_, shown, allowed)),
            Err(ScenarioError::Invalid { key: k, value, allowed, .. }) => Err(ctx.invalid(
                where_,
                shown,
                format!("a value that leaves the scenario valid: with it, {k} = {value} is not allowed: {allowed}"),
            )),
            Err(ScenarioError::Override { message, .. }) => {
                Err(ctx.invalid(where_, format!("{key:?}"), format!("a numeric scenario key ({message})")))
            }
            Err(e) => Err(e),
        }
    }

    /// The number written at a dotted key, if the file sets one.
    pub fn number_at(&self, dotted: &str) -> Option<f64> {
        let parts = split_key(dotted)?;
        let (last, path) = parts.split_last()?;
        let mut t = &self.table;
        for p in path {
            t = t.get(p)?.as_table()?;
        }
        let v = t.get(last)?;
        v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
    }

    /// Where the scenario came from.
    pub fn source(&self) -> &Source {
        &self.source
    }
}

/// The values a distribution can reach, with a description of each: its
/// bounds, or the 1e-9 and 1 − 1e-9 quantiles of an unbounded one.
fn support(d: &Distribution) -> Vec<(f64, &'static str)> {
    const Z: f64 = 5.997807; // Φ⁻¹(1 − 1e-9)
    match *d {
        Distribution::Normal { mean, sd } => {
            vec![(mean - Z * sd, "the 1e-9 quantile of the normal"), (mean + Z * sd, "its 1 − 1e-9 quantile")]
        }
        Distribution::Lognormal { median, gsd } => vec![
            (median * gsd.powf(-Z), "the 1e-9 quantile of the log-normal"),
            (median * gsd.powf(Z), "its 1 − 1e-9 quantile"),
        ],
        Distribution::Uniform { lo, hi } | Distribution::TruncatedNormal { lo, hi, .. } => {
            vec![(lo, "the lower bound of the distribution"), (hi, "its upper bound")]
        }
    }
}

/// Apply one `key.path=value` to a parsed document; returns the key.
fn apply_override(doc: &mut toml::Table, arg: &str) -> Result<String, ScenarioError> {
    let bad = |m: &str| ScenarioError::Override { arg: arg.into(), message: m.into() };
    let (key, value) =
        arg.split_once('=').ok_or_else(|| bad("expected KEY=VALUE, for example firmware.open_time_ms=25"))?;
    let key = key.trim();
    let parts = split_key(key).ok_or_else(|| bad("the key must be a dotted path such as supply.pressure_bar (quote a segment that holds dots: sweep.parameters.\"supply.pressure_bar\")"))?;
    let value = value.trim();
    let parsed: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(value.into())),
        Err(_) => toml::Value::String(value.into()),
    };
    let mut table = doc;
    for part in &parts[..parts.len() - 1] {
        let entry = table.entry(part.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(bad(&format!("`{part}` is a value, not a table"))),
        };
    }
    table.insert(parts[parts.len() - 1].clone(), parsed);
    Ok(key.to_string())
}

/// Split a dotted TOML key into its segments; a segment in double quotes may
/// hold dots. None for an empty segment or an unclosed quote.
fn split_key(key: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    for ch in key.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                was_quoted = true;
            }
            '.' if !quoted => {
                if cur.is_empty() && !was_quoted {
                    return None;
                }
                parts.push(std::mem::take(&mut cur));
                was_quoted = false;
            }
            _ => cur.push(ch),
        }
    }
    if quoted || (cur.is_empty() && !was_quoted) {
        return None;
    }
    parts.push(cur);
    Some(parts)
}

/// Validation context: where keys were written.
struct Ctx<'a> {
    source: &'a Source,
    set_keys: &'a [(String, String)],
}

impl Ctx<'_> {
    fn location(&self, key: &str) -> String {
        let same = |k: &str| k == key || split_key(k).is_some_and(|a| split_key(key).is_some_and(|b| a == b));
        if let Some((_, arg)) = self.set_keys.iter().find(|(k, _)| same(k)) {
            return format!("--set {arg}");
        }
        match locate(&self.source.text, key) {
            Some((line, col)) => format!("{}:{}:{}", self.source.name, line, col),
            None => self.source.name.clone(),
        }
    }

    fn invalid(&self, key: &str, value: impl std::fmt::Display, allowed: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid {
            location: self.location(key),
            key: key.into(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }

    /// A number in [lo, hi] (inclusive), with a default.
    fn num(&self, v: Option<f64>, default: f64, key: &str, lo: f64, hi: f64, unit: &str) -> Result<f64, ScenarioError> {
        let x = v.unwrap_or(default);
        if !x.is_finite() || x < lo || x > hi {
            return Err(self.invalid(
                key,
                fmt_num(x),
                format!("a number from {} to {} {}", fmt_num(lo), fmt_num(hi), unit),
            ));
        }
        Ok(x)
    }

    fn int(&self, v: Option<i64>, default: i64, key: &str, lo: i64, hi: i64) -> Result<i64, ScenarioError> {
        let x = v.unwrap_or(default);
        if x < lo || x > hi {
            return Err(self.invalid(key, x, format!("a whole number from {lo} to {hi}")));
        }
        Ok(x)
    }

    fn choice<'s>(
        &self,
        v: &'s Option<String>,
        default: &'s str,
        key: &str,
        allowed: &[&str],
    ) -> Result<&'s str, ScenarioError> {
        let x = v.as_deref().unwrap_or(default);
        if !allowed.contains(&x) {
            return Err(self.invalid(key, format!("\"{x}\""), format!("one of {}", allowed.join(", "))));
        }
        Ok(x)
    }
}

/// A number for a message: at most six significant digits.
fn fmt_num(x: f64) -> String {
    if x != 0.0 && (x.abs() >= 1e6 || x.abs() < 1e-3) {
        crate::text::g6_exp(x)
    } else {
        crate::text::g6(x)
    }
}

/// Line and column (1-based) of the value of a dotted key in a TOML text
/// written as `[table]` headers and `key = value` lines.
pub fn locate(text: &str, dotted: &str) -> Option<(usize, usize)> {
    // Segments may be quoted (`sweep.parameters."supply.pressure_bar"`).
    let parts = split_key(dotted)?;
    let (last, path) = parts.split_last()?;
    let table = path.join(".");
    let quoted = format!("\"{last}\"");
    let key =
        if last.contains('.') || !path.is_empty() && dotted.ends_with('"') { quoted.as_str() } else { last.as_str() };
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix('[') {
            if let Some(end) = rest.find(']') {
                current = rest[..end].trim().to_string();
            }
            continue;
        }
        if current == table {
            if let Some(rest) = trimmed.strip_prefix(key) {
                let rest_t = rest.trim_start();
                if let Some(after) = rest_t.strip_prefix('=') {
                    let indent = line.len() - trimmed.len();
                    let eq = key.len() + (rest.len() - rest_t.len());
                    let value_off = after.len() - after.trim_start().len();
                    return Some((i + 1, indent + eq + 1 + value_off + 1));
                }
            }
        }
    }
    None
}

impl Scenario {
    fn from_raw(raw: Raw, c: &Ctx, fallback_name: &str) -> Result<Scenario, ScenarioError> {
        // Without a `name` key the file stem names the scenario; characters
        // that cannot name a folder portably (dots, spaces, …) become '_'.
        let name = raw.name.clone().unwrap_or_else(|| {
            fallback_name.chars().map(|ch| if ch.is_ascii_alphanumeric() || ch == '-' { ch } else { '_' }).collect()
        });
        if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-') {
            return Err(c.invalid(
                "name",
                format!("\"{name}\""),
                "letters, digits, '_' and '-' (it names the output folder)",
            ));
        }
        let seed = raw.seed.unwrap_or(1);

        // Ambient.
        let p_atm = c.num(raw.ambient.pressure_kpa, P_ATM / 1e3, "ambient.pressure_kpa", 50.0, 110.0, "kPa")? * 1e3;
        let t_amb = c.num(raw.ambient.temperature_c, 20.0, "ambient.temperature_c", 0.0, 45.0, "°C")? + 273.15;

        // Solver and firmware.
        let r = &raw.solver;
        let step = c.num(r.step_us, 50.0, "solver.step_us", 0.1, 200.0, "µs")? * 1e-6;
        let trace_interval = c.num(r.trace_interval_us, 50.0, "solver.trace_interval_us", 1.0, 1e6, "µs")? * 1e-6;
        let max_tail = c.num(r.max_tail_ms, 300.0, "solver.max_tail_ms", 1.0, 10_000.0, "ms")? * 1e-3;
        let mode = match c.choice(&r.mode, "fixed", "solver.mode", &["fixed", "adaptive"])? {
            "adaptive" => crate::sim::SolverMode::Adaptive,
            _ => crate::sim::SolverMode::Fixed,
        };
        let f = &raw.firmware;
        let kind = c
            .choice(&f.kind, "open_loop", "firmware.kind", &["open_loop", "pressure_pid", "volume_target", "plugin"])?
            .to_string();
        let tick = 1.0 / c.num(f.tick_hz, 10_000.0, "firmware.tick_hz", 100.0, 20_000.0, "Hz")?;
        let open_time = c.num(f.open_time_ms, 40.0, "firmware.open_time_ms", 0.1, 2000.0, "ms")? * 1e-3;
        let s = &raw.session;
        let shots = c.int(s.shots, 1, "session.shots", 1, 1_000_000)? as usize;
        let rate = c.num(s.rate_hz, 2.0, "session.rate_hz", 0.01, 50.0, "Hz")?;
        let period = 1.0 / rate;
        if open_time >= period {
            return Err(c.invalid(
                "firmware.open_time_ms",
                fmt_num(open_time * 1e3),
                format!("less than the shot period {} ms (session.rate_hz = {})", fmt_num(period * 1e3), fmt_num(rate)),
            ));
        }

        // Supply.
        let r = &raw.supply;
        let p_set = c.num(r.pressure_bar, 3.0, "supply.pressure_bar", 0.2, 10.0, "bar (gauge)")? * 1e5 + p_atm;
        let tau = c.num(r.regulator_tau_ms, 20.0, "supply.regulator_tau_ms", 0.0, 1000.0, "ms")? * 1e-3;
        // bar per 100 L/min ANR → Pa per m³/s.
        let droop =
            c.num(r.droop_bar_per_100lpm, 0.1, "supply.droop_bar_per_100lpm", 0.0, 10.0, "bar per 100 L/min")? * 1e5
                / (100e-3 / 60.0);
        let reservoir = match (r.reservoir_volume_ml, r.reservoir_pressure_bar) {
            (None, None) => None,
            (v, pr) => {
                let volume = c.num(v, 50.0, "supply.reservoir_volume_ml", 1.0, 1e5, "mL")? * 1e-6;
                let p0 = c.num(pr, 6.0, "supply.reservoir_pressure_bar", 0.2, 300.0, "bar (gauge)")? * 1e5 + p_atm;
                Some(Reservoir { volume, p_initial: p0 })
            }
        };
        let proportional = c.choice(&r.regulator, "mechanical", "supply.regulator", &["mechanical", "proportional"])?
            == "proportional";
        let supply = SupplyParams {
            p_set,
            droop,
            tau,
            temperature: t_amb,
            reservoir,
            inlet_sensitivity: c.num(
                r.inlet_sensitivity,
                0.0,
                "supply.inlet_sensitivity",
                0.0,
                0.5,
                "(output change per inlet change)",
            )?,
            proportional,
            p_set_max: c.num(r.max_pressure_bar, 8.0, "supply.max_pressure_bar", 0.2, 10.0, "bar (gauge)")? * 1e5
                + p_atm,
        };

        // Valve.
        let v = &raw.valve;
        let model = c.choice(&v.model, "coil", "valve.model", &["coil", "catalogue"])?;
        let cc = c.num(v.c_dm3_per_s_bar, 0.1, "valve.c_dm3_per_s_bar", 0.001, 10.0, "dm³/(s·bar)")? * DM3_PER_S_BAR;
        let b = c.num(v.b, 0.3, "valve.b", 0.0, 0.95, "(critical pressure ratio)")?;
        let m = c.num(v.m, 0.5, "valve.m", 0.3, 1.0, "(subsonic exponent)")?;
        let ce = c.num(
            v.exhaust_c_dm3_per_s_bar,
            cc / DM3_PER_S_BAR,
            "valve.exhaust_c_dm3_per_s_bar",
            0.001,
            10.0,
            "dm³/(s·bar)",
        )? * DM3_PER_S_BAR;
        let be = c.num(v.exhaust_b, b, "valve.exhaust_b", 0.0, 0.95, "(critical pressure ratio)")?;
        let actuation = if model == "coil" {
            let gap = c.num(v.gap_mm, 0.5, "valve.gap_mm", 0.05, 5.0, "mm")? * 1e-3;
            let stroke = c.num(v.stroke_mm, 0.3, "valve.stroke_mm", 0.02, 5.0, "mm")? * 1e-3;
            if stroke >= gap {
                return Err(c.invalid(
                    "valve.stroke_mm",
                    fmt_num(stroke * 1e3),
                    format!("less than valve.gap_mm = {}", fmt_num(gap * 1e3)),
                ));
            }
            let seat_d = c.num(v.seat_diameter_mm, 1.0, "valve.seat_diameter_mm", 0.1, 5.0, "mm")? * 1e-3;
            let coil = Coil {
                voltage: c.num(v.voltage_v, 12.0, "valve.voltage_v", 1.0, 48.0, "V")?,
                resistance_20c: c.num(v.coil_resistance_ohm, 30.0, "valve.coil_resistance_ohm", 0.5, 1000.0, "Ω")?,
                temperature: c.num(v.coil_temperature_c, 20.0, "valve.coil_temperature_c", -20.0, 180.0, "°C")?
                    + 273.15,
                inductance: c.num(v.inductance_mh, 30.0, "valve.inductance_mh", 0.1, 1000.0, "mH")? * 1e-3,
                gap,
                iron_gap: c.num(v.iron_gap_mm, 0.1, "valve.iron_gap_mm", 0.0, 5.0, "mm")? * 1e-3,
                stroke,
                armature_mass: c.num(v.armature_mass_g, 2.0, "valve.armature_mass_g", 0.05, 50.0, "g")? * 1e-3,
                spring_preload: c.num(v.spring_preload_n, 1.5, "valve.spring_preload_n", 0.0, 100.0, "N")?,
                spring_rate: c.num(v.spring_rate_n_per_mm, 0.5, "valve.spring_rate_n_per_mm", 0.0, 100.0, "N/mm")?
                    * 1e3,
                seat_area: std::f64::consts::PI * seat_d * seat_d / 4.0,
                damping: c.num(v.damping_n_s_per_m, 1.0, "valve.damping_n_s_per_m", 0.0, 100.0, "N·s/m")?,
                clamp_voltage: c.num(v.clamp_voltage_v, 0.7, "valve.clamp_voltage_v", 0.0, 200.0, "V")?,
            };
            let dp = p_set - p_atm;
            if coil.pull_in_current(dp) >= coil.steady_current() {
                return Err(c.invalid(
                    "valve.voltage_v",
                    fmt_num(coil.voltage),
                    format!(
                        "a drive that pulls the armature in: the steady current {:.3} A is below the {:.3} A needed against the spring preload and {:.2} bar on the seat",
                        coil.steady_current(),
                        coil.pull_in_current(dp),
                        dp / 1e5
                    ),
                ));
            }
            Actuation::Coil(coil)
        } else {
            Actuation::Catalogue(Catalogue {
                t_on: c.num(v.response_on_ms, 4.0, "valve.response_on_ms", 0.05, 100.0, "ms")? * 1e-3,
                t_off: c.num(v.response_off_ms, 4.0, "valve.response_off_ms", 0.05, 100.0, "ms")? * 1e-3,
                travel_fraction: c.num(v.travel_fraction, 0.3, "valve.travel_fraction", 0.01, 1.0, "")?,
            })
        };
        let valve = ValveParams { inlet: Iso6358 { c: cc, b, m }, exhaust: Iso6358 { c: ce, b: be, m }, actuation };

        // Line.
        let l = &raw.line;
        let length = c.num(l.length_mm, 0.0, "line.length_mm", 0.0, 10_000.0, "mm")? * 1e-3;
        let line = LineParams {
            length,
            diameter: c.num(l.inner_diameter_mm, 2.5, "line.inner_diameter_mm", 0.5, 10.0, "mm")? * 1e-3,
            segments: if length > 0.0 { c.int(l.segments, 8, "line.segments", 4, 64)? as usize } else { 0 },
            polytropic: c.num(l.polytropic, 1.4, "line.polytropic", 1.0, 1.4, "")?,
            temperature: t_amb,
        };

        // Chamber and piston.
        let ch = &raw.chamber;
        let thermal = match c.choice(&ch.thermal, "polytropic", "chamber.thermal", &["polytropic", "energy"])? {
            "polytropic" => Thermal::Polytropic {
                alpha_in: c.num(ch.alpha_in, 1.4, "chamber.alpha_in", 1.0, 1.4, "")?,
                alpha_out: c.num(ch.alpha_out, 1.0, "chamber.alpha_out", 1.0, 1.4, "")?,
                alpha: c.num(ch.alpha, 1.2, "chamber.alpha", 1.0, 1.4, "")?,
            },
            _ => Thermal::Energy {
                h: c.num(ch.wall_h_w_per_m2k, 50.0, "chamber.wall_h_w_per_m2k", 0.0, 1000.0, "W/(m²·K)")?,
                t_wall: t_amb,
            },
        };
        let chamber = ChamberParams {
            dead_volume: c.num(ch.dead_volume_ml, 0.5, "chamber.dead_volume_ml", 0.005, 100.0, "mL")? * 1e-6,
            thermal,
        };
        let pi = &raw.piston;
        let bore = c.num(pi.diameter_mm, 8.0, "piston.diameter_mm", 2.0, 50.0, "mm")? * 1e-3;
        let piston = PistonParams {
            mass: c.num(pi.mass_g, 10.0, "piston.mass_g", 0.5, 500.0, "g")? * 1e-3,
            area: std::f64::consts::PI * bore * bore / 4.0,
            spring_preload: c.num(pi.spring_preload_n, 3.0, "piston.spring_preload_n", 0.0, 200.0, "N")?,
            spring_rate: c.num(pi.spring_rate_n_per_mm, 0.5, "piston.spring_rate_n_per_mm", 0.0, 50.0, "N/mm")? * 1e3,
            stroke: c.num(pi.stroke_mm, 5.0, "piston.stroke_mm", 0.1, 50.0, "mm")? * 1e-3,
            seal_coulomb: c.num(pi.seal_coulomb_n, 0.486, "piston.seal_coulomb_n", 0.0, 50.0, "N")?,
            seal_viscous: c.num(
                pi.seal_viscous_n_s_per_m,
                4.47,
                "piston.seal_viscous_n_s_per_m",
                0.0,
                1000.0,
                "N·s/m",
            )?,
        };

        // Syringe.
        let sy = &raw.syringe;
        let names: Vec<&str> = model::syringe::PRESETS.iter().map(|p| p.0).collect();
        let preset = c.choice(&sy.preset, "bd_1ml", "syringe.preset", &names)?;
        let (_, d0, dead0, cap) = *model::syringe::PRESETS.iter().find(|p| p.0 == preset).expect("checked");
        let d = c.num(sy.inner_diameter_mm, d0 * 1e3, "syringe.inner_diameter_mm", 1.0, 30.0, "mm")? * 1e-3;
        let fill = c.num(sy.fill_ml, cap * 1e6, "syringe.fill_ml", 0.01, 50.0, "mL")? * 1e-6;
        let dead_space = c.num(sy.dead_space_ml, dead0 * 1e6, "syringe.dead_space_ml", 0.0, 1.0, "mL")? * 1e-6;
        if dead_space >= fill {
            return Err(c.invalid(
                "syringe.fill_ml",
                fmt_num(fill * 1e6),
                format!("more than the dead space {} mL", fmt_num(dead_space * 1e6)),
            ));
        }
        let glide = c.num(sy.glide_n, 2.5, "syringe.glide_n", 0.0, 50.0, "N")?;
        let break_loose = c.num(sy.break_loose_n, 4.0, "syringe.break_loose_n", 0.0, 50.0, "N")?;
        if break_loose < glide {
            return Err(c.invalid(
                "syringe.break_loose_n",
                fmt_num(break_loose),
                format!("at least syringe.glide_n = {}", fmt_num(glide)),
            ));
        }
        let syringe = SyringeParams {
            area: std::f64::consts::PI * d * d / 4.0,
            fill_volume: fill,
            dead_space,
            friction: Stribeck {
                break_loose,
                glide,
                v_s: c.num(sy.stribeck_velocity_mm_s, 1.0, "syringe.stribeck_velocity_mm_s", 0.01, 100.0, "mm/s")?
                    * 1e-3,
                viscous: c.num(sy.viscous_n_s_per_m, 20.0, "syringe.viscous_n_s_per_m", 0.0, 1000.0, "N·s/m")?,
            },
            // µL/bar → m³/Pa.
            wall_compliance: c.num(
                sy.wall_compliance_ul_per_bar,
                0.15,
                "syringe.wall_compliance_ul_per_bar",
                0.0,
                100.0,
                "µL/bar",
            )? * 1e-9
                / 1e5,
            bubble: c.num(sy.bubble_ul, 0.0, "syringe.bubble_ul", 0.0, 500.0, "µL")? * 1e-9,
        };

        // Fluid.
        let fl = &raw.fluid;
        let temp = c.num(fl.temperature_c, 20.0, "fluid.temperature_c", 4.0, 45.0, "°C")? + 273.15;
        // A preset or a model sets the law; the law's own parameter keys override it.
        let mut fluid = match (&fl.preset, &fl.model) {
            (Some(p), Some(m)) => {
                return Err(c.invalid(
                    "fluid.model",
                    format!("\"{m}\""),
                    format!("either fluid.preset (here \"{p}\") or fluid.model, not both"),
                ))
            }
            (_, None) => {
                Fluid::preset(c.choice(&fl.preset, "saline", "fluid.preset", &model::fluid::PRESETS)?).expect("checked")
            }
            (None, Some(_)) => {
                let kind = c.choice(&fl.model, "newtonian", "fluid.model", &["newtonian", "power_law", "carreau"])?;
                let rheology = match kind {
                    "newtonian" => Rheology::Newtonian { mu: 1.0e-3 },
                    "power_law" => Rheology::PowerLaw { k: 5.0, n: 0.4, eta0: 10.0 },
                    _ => Rheology::Carreau { eta0: 3.9, eta_inf: 1.0e-3, lambda: 0.66, n: 0.4 },
                };
                Fluid { name: format!("custom_{kind}"), density: 1000.0, compressibility: 4.6e-10, rheology }
            }
        };
        let not_for = |key: &str, v: &Option<f64>, law: &str| -> Result<(), ScenarioError> {
            match v {
                Some(x) => Err(c.invalid(key, fmt_num(*x), format!("no value: it does not apply to a {law} fluid"))),
                None => Ok(()),
            }
        };
        fluid.rheology = match fluid.rheology {
            Rheology::Newtonian { mu } => {
                for (k, v) in [
                    ("fluid.consistency_pa_sn", &fl.consistency_pa_sn),
                    ("fluid.flow_index", &fl.flow_index),
                    ("fluid.eta0_pa_s", &fl.eta0_pa_s),
                    ("fluid.eta_inf_mpa_s", &fl.eta_inf_mpa_s),
                    ("fluid.lambda_s", &fl.lambda_s),
                ] {
                    not_for(k, v, "newtonian")?;
                }
                Rheology::Newtonian {
                    mu: c.num(fl.viscosity_mpa_s, mu * 1e3, "fluid.viscosity_mpa_s", 0.1, 1e6, "mPa·s")? * 1e-3,
                }
            }
            Rheology::PowerLaw { k, n, eta0 } => {
                for (key, v) in [
                    ("fluid.viscosity_mpa_s", &fl.viscosity_mpa_s),
                    ("fluid.eta_inf_mpa_s", &fl.eta_inf_mpa_s),
                    ("fluid.lambda_s", &fl.lambda_s),
                ] {
                    not_for(key, v, "power-law")?;
                }
                Rheology::PowerLaw {
                    k: c.num(fl.consistency_pa_sn, k, "fluid.consistency_pa_sn", 1e-4, 1000.0, "Pa·sⁿ")?,
                    n: c.num(fl.flow_index, n, "fluid.flow_index", 0.1, 1.0, "")?,
                    eta0: c.num(fl.eta0_pa_s, eta0, "fluid.eta0_pa_s", 1e-3, 1e4, "Pa·s")?,
                }
            }
            Rheology::Carreau { eta0, eta_inf, lambda, n } => {
                for (key, v) in
                    [("fluid.viscosity_mpa_s", &fl.viscosity_mpa_s), ("fluid.consistency_pa_sn", &fl.consistency_pa_sn)]
                {
                    not_for(key, v, "Carreau")?;
                }
                Rheology::Carreau {
                    eta0: c.num(fl.eta0_pa_s, eta0, "fluid.eta0_pa_s", 1e-3, 1e4, "Pa·s")?,
                    eta_inf: c.num(fl.eta_inf_mpa_s, eta_inf * 1e3, "fluid.eta_inf_mpa_s", 0.1, 1000.0, "mPa·s")?
                        * 1e-3,
                    lambda: c.num(fl.lambda_s, lambda, "fluid.lambda_s", 1e-6, 1e3, "s")?,
                    n: c.num(fl.flow_index, n, "fluid.flow_index", 0.1, 1.0, "")?,
                }
            }
        };
        fluid.density = c.num(fl.density_kg_m3, fluid.density, "fluid.density_kg_m3", 500.0, 2000.0, "kg/m³")?;
        let fluid = fluid.at_temperature(temp);

        // Tubing.
        let tubing = match &raw.tubing {
            None => None,
            Some(t) => {
                let len = c.num(t.length_mm, 150.0, "tubing.length_mm", 1.0, 3000.0, "mm")? * 1e-3;
                let id = c.num(t.inner_diameter_mm, 0.5, "tubing.inner_diameter_mm", 0.1, 5.0, "mm")? * 1e-3;
                let comp =
                    c.num(t.compliance_ul_per_bar, 0.3, "tubing.compliance_ul_per_bar", 0.001, 100.0, "µL/bar")?
                        * 1e-14;
                Some(TubingParams { conduit: Conduit::new(len, id, 0.0, &fluid), compliance: comp })
            }
        };

        // Needles.
        let nd = &raw.needle;
        let count = c.int(nd.count, 1, "needle.count", 1, 9)? as usize;
        let gauge = c.int(nd.gauge, 30, "needle.gauge", 1, 99)?;
        let gauges: Vec<String> = model::NEEDLE_GAUGES.iter().map(|g| g.0.to_string()).collect();
        let id = match model::needle_inner_diameter(gauge as u32) {
            Some(d) => d,
            None => {
                return Err(c.invalid(
                    "needle.gauge",
                    gauge,
                    format!("one of {} (or give needle.inner_diameter_mm)", gauges.join(", ")),
                ))
            }
        };
        let id = c.num(nd.inner_diameter_mm, id * 1e3, "needle.inner_diameter_mm", 0.05, 1.0, "mm")? * 1e-3;
        let nlen = c.num(nd.length_mm, 4.0, "needle.length_mm", 0.5, 100.0, "mm")? * 1e-3;
        let k_minor = c.num(nd.minor_loss_k, 2.5, "needle.minor_loss_k", 0.0, 10.0, "")?;
        let devs = per_needle(c, &nd.id_deviation_pct, count, "needle.id_deviation_pct", 20.0)?;
        let needles = devs.iter().map(|dv| Conduit::new(nlen, id * (1.0 + dv / 100.0), k_minor, &fluid)).collect();

        // Tissue.
        let ti = &raw.tissue;
        let tp = c.choice(&ti.preset, "intradermal", "tissue.preset", &model::tissue::PRESETS)?;
        let base = TissueParams::preset(tp).expect("checked");
        let site = TissueParams {
            p_open: c.num(
                ti.opening_pressure_kpa,
                base.p_open / 1e3,
                "tissue.opening_pressure_kpa",
                0.0,
                500.0,
                "kPa",
            )? * 1e3,
            // µL/kPa → m³/Pa.
            compliance: c.num(
                ti.compliance_ul_per_kpa,
                base.compliance * 1e12,
                "tissue.compliance_ul_per_kpa",
                0.01,
                1e4,
                "µL/kPa",
            )? * 1e-12,
            // kPa·s/mL → Pa·s/m³.
            resistance: c.num(
                ti.resistance_kpa_s_per_ml,
                base.resistance * 1e-9,
                "tissue.resistance_kpa_s_per_ml",
                0.0,
                1e5,
                "kPa·s/mL",
            )? * 1e9,
            leak_pressure: c.num(
                ti.leak_pressure_kpa,
                base.leak_pressure / 1e3,
                "tissue.leak_pressure_kpa",
                0.0,
                1000.0,
                "kPa",
            )? * 1e3,
            leak_resistance: c.num(
                ti.leak_resistance_kpa_s_per_ml,
                base.leak_resistance * 1e-9,
                "tissue.leak_resistance_kpa_s_per_ml",
                1.0,
                1e7,
                "kPa·s/mL",
            )? * 1e9,
            absorption_time: c.num(
                ti.absorption_time_s,
                base.absorption_time,
                "tissue.absorption_time_s",
                0.1,
                1e5,
                "s",
            )?,
        };
        let pdev =
            per_needle(c, &ti.opening_pressure_deviation_pct, count, "tissue.opening_pressure_deviation_pct", 50.0)?;
        let sites =
            pdev.iter().map(|dv| TissueParams { p_open: site.p_open * (1.0 + dv / 100.0), ..site.clone() }).collect();

        let params = Params {
            p_atm,
            t_ambient: t_amb,
            supply,
            valve,
            line,
            chamber,
            piston,
            syringe,
            fluid,
            tubing,
            needles,
            sites,
            new_site_each_shot: ti.new_site_each_shot.unwrap_or(true),
        };
        let sweep = match &raw.sweep {
            None => None,
            Some(sw) => Some(sweep_spec(sw, c, seed)?),
        };
        let uncertain = match &raw.uncertain {
            None => Vec::new(),
            Some(t) => uncertain_specs(t, c)?,
        };
        let sa = raw.sensitivity.clone().unwrap_or_default();
        let sensitivity = (
            c.int(sa.samples, 256, "sensitivity.samples", 2, 65_536)? as usize,
            c.int(sa.bootstrap, 200, "sensitivity.bootstrap", 0, 100_000)? as usize,
        );
        let tune = match &raw.tune {
            None => None,
            Some(t) => Some(tune_spec(t, c)?),
        };
        Ok(Scenario {
            sweep,
            uncertain,
            sensitivity,
            tune,
            name,
            description: raw.description.unwrap_or_default(),
            seed,
            params,
            solver: SolverSettings { step, tick, trace_interval, max_tail, mode },
            firmware: firmware_spec(&raw.firmware, &raw.sensors, c, &kind, open_time, period, proportional)?,
            session: SessionSettings { shots, period },
        })
    }
}

fn tune_spec(t: &RawTune, c: &Ctx) -> Result<TuneSpec, ScenarioError> {
    let table = t.parameters.clone().unwrap_or_default();
    if table.is_empty() {
        return Err(c.invalid(
            "tune.parameters",
            "(none)",
            "a table of keys with [low, high] bounds, e.g. { \"firmware.kp\" = [0.0, 5.0] }",
        ));
    }
    let mut parameters = Vec::new();
    for (key, v) in &table {
        let where_ = format!("tune.parameters.\"{key}\"");
        let pair: Option<Vec<f64>> = v
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_float().or_else(|| x.as_integer().map(|i| i as f64))).collect());
        match pair {
            Some(b) if b.len() == 2 && b[0].is_finite() && b[1].is_finite() && b[0] < b[1] => {
                parameters.push((key.clone(), b[0], b[1]))
            }
            _ => return Err(c.invalid(&where_, v, "[low, high] with low < high, in the key's own unit")),
        }
    }
    let objective = match c.choice(&t.objective, "cv", "tune.objective", &["cv", "tolerance", "weighted"])? {
        "tolerance" => TuneObjective::Tolerance,
        "weighted" => TuneObjective::Weighted,
        _ => TuneObjective::Cv,
    };
    let target = match t.target_ul {
        None => None,
        Some(v) => Some(c.num(Some(v), v, "tune.target_ul", 0.001, 1e5, "µL")? * 1e-9),
    };
    if target.is_none() && objective == TuneObjective::Tolerance {
        return Err(c.invalid("tune.target_ul", "(missing)", "a target dose in µL: the tolerance objective needs one"));
    }
    let preset = c.choice(&t.acceptance, "mesotherapy", "tune.acceptance", &["mesotherapy", "iso_pen"])?;
    let mut landscape = Vec::new();
    for key in t.landscape.clone().unwrap_or_default() {
        match parameters.iter().position(|p| p.0 == key) {
            Some(i) if !landscape.contains(&i) && landscape.len() < 2 => landscape.push(i),
            _ => {
                return Err(c.invalid(
                    "tune.landscape",
                    format!("{key:?}"),
                    "one or two distinct keys of tune.parameters",
                ))
            }
        }
    }
    let optimizer =
        match c.choice(&t.optimizer, "particle_swarm", "tune.optimizer", &["particle_swarm", "nelder_mead"])? {
            "nelder_mead" => Optimizer::NelderMead,
            _ => Optimizer::ParticleSwarm,
        };
    Ok(TuneSpec {
        parameters,
        objective,
        target,
        max_bias: c.num(t.max_bias_pct, 2.0, "tune.max_bias_pct", 0.0, 100.0, "%")? / 100.0,
        weights: (
            c.num(t.weight_cv, 1.0, "tune.weight_cv", 0.0, 1e6, "")?,
            c.num(t.weight_bias, 1.0, "tune.weight_bias", 0.0, 1e6, "")?,
        ),
        limits: crate::stats::tolerance::Limits::preset(preset).expect("a listed preset"),
        replicates: c.int(t.replicates, 8, "tune.replicates", 1, 100_000)? as usize,
        optimizer,
        particles: c.int(t.particles, 12, "tune.particles", 2, 10_000)? as usize,
        iterations: c.int(t.iterations, 25, "tune.iterations", 1, 100_000)? as usize,
        landscape_grid: c.int(t.landscape_grid, 15, "tune.landscape_grid", 2, 1000)? as usize,
        landscape,
        max_tissue_pressure: match t.max_tissue_pressure_kpa {
            None => None,
            Some(v) => Some(c.num(Some(v), v, "tune.max_tissue_pressure_kpa", 0.0, 1e5, "kPa")? * 1e3),
        },
        max_leak: match t.max_leak_ul {
            None => None,
            Some(v) => Some(c.num(Some(v), v, "tune.max_leak_ul", 0.0, 1e6, "µL")? * 1e-9),
        },
        min_rate: match t.min_shots_per_s {
            None => None,
            Some(v) => Some(c.num(Some(v), v, "tune.min_shots_per_s", 0.0, 1e4, "shots/s")?),
        },
    })
}

/// Most values of one grid-sweep axis.
pub const MAX_AXIS_POINTS: usize = 1_000_000;
/// Most points of a grid sweep (the product of its axes' lengths).
pub const MAX_GRID_POINTS: u64 = 1_000_000_000;
/// Most values (samples × keys) of an `lhs` or `sobol` design, which is held in memory.
pub const MAX_DESIGN_VALUES: usize = 30_000_000;

fn sweep_spec(sw: &RawSweep, c: &Ctx, seed: u64) -> Result<SweepSpec, ScenarioError> {
    let replicates = c.int(sw.replicates, 10, "sweep.replicates", 1, 1_000_000)? as usize;
    let sampling = match c.choice(&sw.sampling, "grid", "sweep.sampling", &["grid", "lhs", "sobol"])? {
        "grid" => Sampling::Grid,
        "lhs" => Sampling::Lhs,
        _ => Sampling::Sobol,
    };
    if sampling != Sampling::Grid {
        let n =
            c.int(sw.samples, 64, "sweep.samples", 1, if sampling == Sampling::Sobol { 65_536 } else { 10_000_000 })?
                as usize;
        let mut axes = Vec::new();
        let mut ranges = Vec::new();
        for (key, value) in sw.parameters.iter().flatten() {
            let where_ = format!("sweep.parameters.\"{key}\"");
            let bad = || {
                c.invalid(&where_, value.to_string(), "{ range = [low, high] } or { logrange = [low, high] } (low < high; logrange positive) with sampling = \"lhs\" or \"sobol\"")
            };
            let t = value.as_table().filter(|t| t.len() == 1).ok_or_else(bad)?;
            let (kind, v) = t.iter().next().expect("one entry");
            let num = |v: &toml::Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
            let lh: Option<Vec<f64>> = v.as_array().and_then(|a| a.iter().map(num).collect());
            let lh = lh.filter(|a| a.len() == 2 && a[0] < a[1] && a.iter().all(|x| x.is_finite())).ok_or_else(bad)?;
            let log = match kind.as_str() {
                "range" => false,
                "logrange" if lh[0] > 0.0 => true,
                _ => return Err(bad()),
            };
            ranges.push((lh[0], lh[1], log));
            axes.push((key.clone(), lh.clone()));
        }
        // The design is held whole: bound its size, not only its rows.
        if n.saturating_mul(ranges.len()) > MAX_DESIGN_VALUES {
            let most = MAX_DESIGN_VALUES / ranges.len().max(1);
            return Err(c.invalid(
                "sweep.samples",
                n,
                format!("at most {most} with {} keys (samples × keys ≤ {MAX_DESIGN_VALUES})", ranges.len()),
            ));
        }
        let design = design(sampling, n, &ranges, seed);
        let histogram = vec![0, (n / 2) as u64, (n - 1) as u64];
        let target = match sw.target_ul {
            None => None,
            Some(v) => Some(c.num(Some(v), v, "sweep.target_ul", 0.001, 1e5, "µL")? * 1e-9),
        };
        return Ok(SweepSpec {
            replicates,
            target,
            axes,
            histogram,
            trace_point: (n / 2) as u64,
            sampling,
            design: Some(design),
        });
    }
    let target = match sw.target_ul {
        None => None,
        Some(v) => Some(c.num(Some(v), v, "sweep.target_ul", 0.001, 1e5, "µL")? * 1e-9),
    };
    let mut axes = Vec::new();
    for (key, value) in sw.parameters.iter().flatten() {
        let where_ = format!("sweep.parameters.\"{key}\"");
        let bad = |allowed: &str| c.invalid(&where_, value.to_string(), allowed.to_string());
        let num = |v: &toml::Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
        let values: Vec<f64> = match value {
            toml::Value::Array(list) => {
                let v: Option<Vec<f64>> = list.iter().map(num).collect();
                v.ok_or_else(|| {
                    bad("a list of numbers, or { linspace = [from, to, n] }, or { logspace = [from, to, n] }")
                })?
            }
            toml::Value::Table(t) if t.len() == 1 => {
                let (kind, args) = t.iter().next().expect("one entry");
                let args: Option<Vec<f64>> = args.as_array().and_then(|a| a.iter().map(num).collect());
                let args = args
                    .filter(|a| a.len() == 3 && a[2] >= 1.0 && a[2] <= MAX_AXIS_POINTS as f64 && a[2].fract() == 0.0);
                let Some(a) = args else {
                    return Err(bad(&format!("[from, to, n] with a whole n from 1 to {MAX_AXIS_POINTS}")));
                };
                let n = a[2] as usize;
                let at = |i: usize| if n == 1 { 0.0 } else { i as f64 / (n - 1) as f64 };
                match kind.as_str() {
                    "linspace" => (0..n).map(|i| a[0] + (a[1] - a[0]) * at(i)).collect(),
                    "logspace" if a[0] > 0.0 && a[1] > 0.0 => {
                        (0..n).map(|i| (a[0].ln() + (a[1].ln() - a[0].ln()) * at(i)).exp()).collect()
                    }
                    _ => {
                        return Err(bad(
                            "{ linspace = [from, to, n] } or { logspace = [from, to, n] } with positive bounds",
                        ))
                    }
                }
            }
            _ => {
                return Err(bad("a list of numbers, or { linspace = [from, to, n] }, or { logspace = [from, to, n] }"))
            }
        };
        if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
            return Err(bad("at least one finite value"));
        }
        if values.len() > MAX_AXIS_POINTS {
            return Err(bad(&format!("at most {MAX_AXIS_POINTS} values")));
        }
        axes.push((key.clone(), values));
        // Checked as the axes come, so no grid beyond the cap is ever built.
        let total = axes.iter().try_fold(1u64, |p, a| p.checked_mul(a.1.len() as u64));
        if total.is_none_or(|t| t > MAX_GRID_POINTS) {
            let sizes: Vec<String> = axes.iter().map(|a| format!("\"{}\" {}", a.0, a.1.len())).collect();
            let total = axes.iter().map(|a| a.1.len() as f64).product::<f64>();
            return Err(c.invalid(
                "sweep.parameters",
                format!("a grid of {total:.3e} points ({})", sizes.join(" × ")),
                format!("at most {MAX_GRID_POINTS} points (the product of the axes' lengths)"),
            ));
        }
    }
    let points: u64 = axes.iter().map(|a| a.1.len() as u64).product();
    let histogram = match &sw.histogram_points {
        None => {
            let mut h = vec![0, points / 2, points.saturating_sub(1)];
            h.dedup();
            h
        }
        Some(list) => {
            if let Some(bad) = list.iter().find(|p| **p < 0 || **p as u64 >= points) {
                return Err(c.invalid(
                    "sweep.histogram_points",
                    bad,
                    format!("point indices from 0 to {}", points.saturating_sub(1)),
                ));
            }
            list.iter().map(|p| *p as u64).collect()
        }
    };
    let trace_point = match sw.trace_point {
        None => points / 2,
        Some(p) if p >= 0 && (p as u64) < points => p as u64,
        Some(p) => {
            return Err(c.invalid(
                "sweep.trace_point",
                p,
                format!("a point index from 0 to {}", points.saturating_sub(1)),
            ))
        }
    };
    Ok(SweepSpec { replicates, target, axes, histogram, trace_point, sampling, design: None })
}

fn uncertain_specs(t: &toml::Table, c: &Ctx) -> Result<Vec<Uncertain>, ScenarioError> {
    parse_uncertain(t, "uncertain", &|key, value, allowed| c.invalid(key, value, allowed))
}

/// Parse a table of `"dotted.key" = { dist = …, level = … }` entries named
/// `table` in messages; `invalid(key, value, allowed)` builds the error.
pub fn parse_uncertain(
    t: &toml::Table,
    table: &str,
    invalid: &dyn Fn(&str, String, String) -> ScenarioError,
) -> Result<Vec<Uncertain>, ScenarioError> {
    let mut out = Vec::new();
    for (key, value) in t {
        let where_ = format!("{table}.\"{key}\"");
        let bad = |allowed: &str| invalid(&where_, value.to_string(), allowed.to_string());
        let Some(tab) = value.as_table() else {
            return Err(bad("an inline table such as { dist = \"normal\", mean = 40, sd = 10 }"));
        };
        let get = |k: &str| tab.get(k).and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)));
        let need = |k: &str| get(k).filter(|v| v.is_finite()).ok_or_else(|| bad(&format!("a number `{k}`")));
        let nonneg =
            |k: &str| get(k).filter(|v| v.is_finite() && *v >= 0.0).ok_or_else(|| bad(&format!("a number `{k}` ≥ 0")));
        let level = match tab.get("level").and_then(|v| v.as_str()).unwrap_or("session") {
            "session" => Level::Session,
            "shot" => Level::Shot,
            "site" => Level::Site,
            _ => return Err(bad("level = \"session\", \"shot\" or \"site\"")),
        };
        if level != Level::Session && !PER_SHOT_KEYS.iter().any(|p| key.starts_with(p)) {
            return Err(bad(&format!(
                "level = \"session\" for this key: only keys starting with {} may change between shots",
                PER_SHOT_KEYS.join(", ")
            )));
        }
        for k in tab.keys() {
            if !["dist", "mean", "sd", "median", "gsd", "lo", "hi", "level"].contains(&k.as_str()) {
                return Err(bad(&format!("no key `{k}`: allowed dist, mean, sd, median, gsd, lo, hi, level")));
            }
        }
        let dist = match tab.get("dist").and_then(|v| v.as_str()) {
            Some("normal") => Distribution::Normal { mean: need("mean")?, sd: nonneg("sd")? },
            Some("lognormal") => {
                let gsd = need("gsd")?;
                let median = need("median")?;
                if gsd <= 1.0 || median <= 0.0 {
                    return Err(bad("median > 0 and gsd > 1"));
                }
                Distribution::Lognormal { median, gsd }
            }
            Some("uniform") => {
                let (lo, hi) = (need("lo")?, need("hi")?);
                if lo > hi {
                    return Err(bad("lo ≤ hi"));
                }
                Distribution::Uniform { lo, hi }
            }
            Some("truncated_normal") => {
                let (lo, hi) = (need("lo")?, need("hi")?);
                if lo >= hi {
                    return Err(bad("lo < hi"));
                }
                Distribution::TruncatedNormal { mean: need("mean")?, sd: nonneg("sd")?, lo, hi }
            }
            _ => return Err(bad("dist = \"normal\", \"lognormal\", \"uniform\" or \"truncated_normal\"")),
        };
        out.push(Uncertain { key: key.clone(), dist, level });
    }
    Ok(out)
}

fn drive_spec(f: &RawFirmware, c: &Ctx) -> Result<DriveSpec, ScenarioError> {
    Ok(match c.choice(&f.drive, "on", "firmware.drive", &["on", "pwm", "peak_and_hold"])? {
        "on" => DriveSpec::On,
        "pwm" => DriveSpec::Pwm {
            duty: c.num(f.pwm_duty, 0.5, "firmware.pwm_duty", 0.0, 1.0, "")?,
            period: c.num(f.pwm_period_ms, 0.05, "firmware.pwm_period_ms", 0.001, 1000.0, "ms")? * 1e-3,
        },
        _ => DriveSpec::PeakAndHold {
            peak: c.num(f.peak_ms, 3.0, "firmware.peak_ms", 0.0, 100.0, "ms")? * 1e-3,
            hold_duty: c.num(f.hold_duty, 0.4, "firmware.hold_duty", 0.0, 1.0, "")?,
            period: c.num(f.pwm_period_ms, 0.05, "firmware.pwm_period_ms", 0.001, 1000.0, "ms")? * 1e-3,
        },
    })
}

fn pressure_sensor(
    r: &Option<RawPressureSensor>,
    c: &Ctx,
    name: &str,
    tick: f64,
) -> Result<PressureSensorSpec, ScenarioError> {
    let r = r.clone().unwrap_or_default();
    let key = |k: &str| format!("sensors.{name}.{k}");
    let sample_hz =
        c.num(r.sample_hz, (1.0 / tick).min(1000.0), &key("sample_hz"), 1.0, 1.0 / tick, "Hz (at most the tick rate)")?;
    Ok(PressureSensorSpec {
        tau: c.num(r.tau_ms, 0.5, &key("tau_ms"), 0.0, 1000.0, "ms")? * 1e-3,
        noise_sd: c.num(r.noise_kpa, 0.2, &key("noise_kpa"), 0.0, 100.0, "kPa")? * 1e3,
        offset: c.num(r.offset_kpa, 0.0, &key("offset_kpa"), -100.0, 100.0, "kPa")? * 1e3,
        gain_error: c.num(r.gain_error_pct, 0.0, &key("gain_error_pct"), -20.0, 20.0, "%")? / 100.0,
        bits: c.int(r.bits, 12, &key("bits"), 6, 24)? as u32,
        full_scale: c.num(r.full_scale_bar, 10.0, &key("full_scale_bar"), 0.1, 100.0, "bar")? * 1e5,
        sample_ticks: ((1.0 / sample_hz) / tick).round().max(1.0) as u64,
    })
}

/// Build the firmware, its sensors and its hardware from `[firmware]` and `[sensors]`.
#[allow(clippy::too_many_arguments)]
fn firmware_spec(
    f: &RawFirmware,
    sn: &RawSensors,
    c: &Ctx,
    kind: &str,
    open_time: f64,
    period: f64,
    proportional: bool,
) -> Result<FirmwareSpec, ScenarioError> {
    let tick = 1.0 / f.tick_hz.unwrap_or(10_000.0);
    let pre = c.num(f.pre_pressurise_ms, 0.0, "firmware.pre_pressurise_ms", 0.0, 1000.0, "ms")? * 1e-3;
    let press = c.num(sn.trigger_press_ms, 30.0, "sensors.trigger_press_ms", 0.1, 10_000.0, "ms")? * 1e-3;
    let debounce = c.num(sn.trigger_debounce_ms, 5.0, "sensors.trigger_debounce_ms", 0.0, 100.0, "ms")? * 1e-3;
    if press >= period {
        return Err(c.invalid(
            "sensors.trigger_press_ms",
            fmt_num(press * 1e3),
            format!("less than the shot period {} ms", fmt_num(period * 1e3)),
        ));
    }
    if debounce >= press {
        return Err(c.invalid(
            "sensors.trigger_debounce_ms",
            fmt_num(debounce * 1e3),
            format!("less than sensors.trigger_press_ms = {}", fmt_num(press * 1e3)),
        ));
    }
    if pre + open_time >= period && kind != "volume_target" && kind != "plugin" {
        return Err(c.invalid(
            "firmware.pre_pressurise_ms",
            fmt_num(pre * 1e3),
            format!("pre-pressurise plus open time below the shot period {} ms", fmt_num(period * 1e3)),
        ));
    }
    let sensors = SensorSpec {
        supply: pressure_sensor(&sn.supply, c, "supply", tick)?,
        chamber: pressure_sensor(&sn.chamber, c, "chamber", tick)?,
        syringe: pressure_sensor(&sn.syringe, c, "syringe", tick)?,
        encoder_resolution: c.num(sn.encoder_resolution_um, 1.0, "sensors.encoder_resolution_um", 0.0, 1000.0, "µm")?
            * 1e-6,
        debounce,
        trigger_press: press,
    };
    let kind = match kind {
        "open_loop" => FirmwareKind::OpenLoop { open_time, pre, drive: drive_spec(f, c)? },
        "pressure_pid" => {
            if !proportional {
                return Err(c.invalid(
                    "firmware.kind",
                    "\"pressure_pid\"",
                    "a proportional regulator to drive: set supply.regulator = \"proportional\"",
                ));
            }
            let setpoint = c.num(f.setpoint_bar, 3.0, "firmware.setpoint_bar", 0.0, 10.0, "bar (gauge)")? * 1e5;
            let step = match (f.setpoint_step_ms, f.setpoint_step_bar) {
                (None, None) => None,
                (t, v) => Some((
                    c.num(t, 0.0, "firmware.setpoint_step_ms", 0.0, 1e7, "ms")? * 1e-3,
                    c.num(v, setpoint / 1e5, "firmware.setpoint_step_bar", 0.0, 10.0, "bar (gauge)")? * 1e5,
                )),
            };
            let u_min = c.num(f.u_min_bar, 0.0, "firmware.u_min_bar", 0.0, 10.0, "bar (gauge)")? * 1e5;
            let u_max = c.num(f.u_max_bar, 8.0, "firmware.u_max_bar", 0.0, 10.0, "bar (gauge)")? * 1e5;
            if u_max <= u_min {
                return Err(c.invalid(
                    "firmware.u_max_bar",
                    fmt_num(u_max / 1e5),
                    format!("above firmware.u_min_bar = {}", fmt_num(u_min / 1e5)),
                ));
            }
            let kp = c.num(f.kp, 0.5, "firmware.kp", 0.0, 1000.0, "")?;
            let ki = c.num(f.ki_per_s, 20.0, "firmware.ki_per_s", 0.0, 1e5, "1/s")?;
            let anti_windup = match c.choice(
                &f.anti_windup,
                "back_calculation",
                "firmware.anti_windup",
                &["none", "back_calculation", "conditional"],
            )? {
                "none" => AntiWindup::None,
                "conditional" => AntiWindup::Conditional,
                _ => AntiWindup::BackCalculation {
                    tt: c.num(f.tracking_time_ms, 20.0, "firmware.tracking_time_ms", 0.01, 1e5, "ms")? * 1e-3,
                },
            };
            let measured = match c.choice(&f.measured, "supply", "firmware.measured", &["supply", "chamber"])? {
                "chamber" => Measured::Chamber,
                _ => Measured::Supply,
            };
            let pid = Pid::new(
                kp,
                ki,
                c.num(f.kd_s, 0.0, "firmware.kd_s", 0.0, 10.0, "s")?,
                c.num(f.derivative_filter_ms, 1.0, "firmware.derivative_filter_ms", 0.0, 1000.0, "ms")? * 1e-3,
                u_min,
                u_max,
                anti_windup,
            );
            FirmwareKind::PressurePid { open_time, pre, drive: drive_spec(f, c)?, measured, setpoint, step, pid }
        }
        "volume_target" => FirmwareKind::VolumeTarget {
            target: c.num(f.target_ul, 20.0, "firmware.target_ul", 0.1, 10_000.0, "µL")? * 1e-9,
            lead: c.num(f.lead_ms, 0.0, "firmware.lead_ms", 0.0, 1000.0, "ms")? * 1e-3,
            gain: c.num(f.learn_gain, 0.0, "firmware.learn_gain", 0.0, 1.0, "")?,
            max_open: c.num(
                f.max_open_ms,
                (period * 1e3 * 0.8).min(2000.0),
                "firmware.max_open_ms",
                0.1,
                period * 1e3,
                "ms (at most the shot period)",
            )? * 1e-3,
            drive: drive_spec(f, c)?,
        },
        _ => {
            let path = match &f.plugin {
                Some(p) => p,
                None => {
                    return Err(c.invalid(
                        "firmware.plugin",
                        "(missing)",
                        "the path of a shared library, relative to the scenario file",
                    ))
                }
            };
            let path = resolve_plugin(path, &c.source.dir);
            if !path.is_file() {
                return Err(c.invalid(
                    "firmware.plugin",
                    format!("{:?}", f.plugin.as_deref().unwrap_or_default()),
                    format!(
                        "an existing shared library: no such file: {} (a relative path is relative to the scenario's folder; build the examples with `make -C examples/firmware`)",
                        path.display()
                    ),
                ));
            }
            let isolation = match c.choice(
                &f.plugin_isolation,
                "process",
                "firmware.plugin_isolation",
                &["process", "in_process"],
            )? {
                "in_process" => PluginIsolation::InProcess,
                _ => PluginIsolation::Process,
            };
            let timeout =
                c.num(f.plugin_timeout_ms, 1000.0, "firmware.plugin_timeout_ms", 1.0, 3_600_000.0, "ms")? * 1e-3;
            FirmwareKind::Plugin { path, params: f.plugin_params.clone().unwrap_or_default(), isolation, timeout }
        }
    };
    Ok(FirmwareSpec {
        kind,
        compute_delay_ticks: c.int(f.compute_delay_ticks, 0, "firmware.compute_delay_ticks", 0, 1000)? as usize,
        timer_tick: 1.0 / c.num(f.timer_hz, 1e6, "firmware.timer_hz", 1e3, 1e9, "Hz")?,
        sensors,
    })
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

fn per_needle(c: &Ctx, v: &Option<Vec<f64>>, count: usize, key: &str, limit: f64) -> Result<Vec<f64>, ScenarioError> {
    match v {
        None => Ok(vec![0.0; count]),
        Some(list) => {
            if list.len() != count {
                return Err(c.invalid(
                    key,
                    format!("{list:?}"),
                    format!("a list of {count} numbers, one per needle (needle.count = {count})"),
                ));
            }
            if let Some(x) = list.iter().find(|x| !x.is_finite() || x.abs() > limit) {
                return Err(c.invalid(key, fmt_num(*x), format!("percentages from -{limit} to {limit}")));
            }
            Ok(list.clone())
        }
    }
}
