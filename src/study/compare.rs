//! Manual injection against gun injection: a consistency study.
//!
//! A study file names one scenario (the syringe, needle, fluid and tissue
//! every arm shares), target doses, how many operators or devices (units)
//! each arm has and how many shots each unit gives per target, then the
//! arms: `manual` arms drive the plant with an operator population
//! ([`crate::control::manual`]), `gun` arms run the scenario's gun with
//! overrides (for example another firmware), their dose key either set to
//! the target or calibrated to it on the nominal device.
//!
//! Common random numbers: the study's shared `[variability]` (needle lot,
//! stopper friction, tissue) is drawn from streams keyed by unit, target and
//! shot only, so every arm meets the same needles and the same tissue;
//! what belongs to an arm (its operators, its devices) has streams keyed by
//! the arm too. Tasks run in parallel and are gathered in task order: the
//! results do not depend on the thread count.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::Deserialize;
use toml::Spanned;

use super::sweep::{draw, simulate_per_shot};
use super::task_rng;
use crate::control::manual::{OperatorParams, PRESETS as OPERATOR_PRESETS};
use crate::scenario::{self, Level, Prepared, ScenarioError, Source, Uncertain};
use crate::sim::manual::{manual_params, manual_shot};
use crate::sim::Plant;
use crate::stats::compare::{brown_forsythe, cv_ratio_interval, f_test, variance_components, RatioInterval, Test};
use crate::stats::tolerance::{accept, Limits, Verdict};

/// Errors of a comparison study.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// The study file cannot be read, parsed or has a value out of range
    /// (the same messages as a scenario's: file:line:column, key, value, allowed).
    #[error(transparent)]
    Input(#[from] ScenarioError),
    /// The study file cannot be read.
    #[error("cannot read study {path}: {source}")]
    Read {
        /// File.
        path: std::path::PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The shared scenario, or an arm's variant of it, is invalid.
    #[error("{context}: {source}")]
    Scenario {
        /// Which arm or draw.
        context: String,
        /// Cause.
        source: ScenarioError,
    },
    /// A simulation failed.
    #[error("arm '{arm}', target {target_ul} µL, unit {unit}: {message}")]
    Run {
        /// Arm name.
        arm: String,
        /// Target dose, µL.
        target_ul: f64,
        /// Operator or device index.
        unit: usize,
        /// What failed.
        message: String,
    },
    /// A gun arm cannot reach a target with its calibrated key.
    #[error("arm '{arm}': target {target_ul} µL is out of reach: {message}")]
    Calibration {
        /// Arm name.
        arm: String,
        /// Target dose, µL.
        target_ul: f64,
        /// Why.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStudy {
    name: Option<String>,
    description: Option<String>,
    seed: Option<Spanned<i64>>,
    scenario: Option<Spanned<String>>,
    targets_ul: Spanned<Vec<f64>>,
    units: Option<Spanned<i64>>,
    shots: Option<Spanned<i64>>,
    #[serde(default)]
    acceptance: RawAcceptance,
    variability: Option<Spanned<toml::Table>>,
    arm: Vec<RawArm>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAcceptance {
    preset: Option<Spanned<String>>,
    alpha_ul: Option<Spanned<f64>>,
    beta: Option<Spanned<f64>>,
    coverage: Option<Spanned<f64>>,
    confidence: Option<Spanned<f64>>,
    bootstrap: Option<Spanned<i64>>,
    interval: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArm {
    name: Spanned<String>,
    kind: Spanned<String>,
    operator: Option<RawOperator>,
    #[serde(default)]
    set: Vec<String>,
    dose_key: Option<Spanned<String>>,
    calibrate_key: Option<Spanned<String>>,
    calibrate_range: Option<Spanned<Vec<f64>>>,
    calibrate_each_unit: Option<bool>,
    variability: Option<Spanned<toml::Table>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperator {
    preset: Option<Spanned<String>>,
    flow_ul_per_s: Option<Spanned<f64>>,
    flow_gsd_between: Option<Spanned<f64>>,
    flow_gsd_within: Option<Spanned<f64>>,
    reaction_ms: Option<Spanned<f64>>,
    reaction_gsd_between: Option<Spanned<f64>>,
    reaction_gsd_within: Option<Spanned<f64>>,
    anticipation: Option<Spanned<f64>>,
    anticipation_sd: Option<Spanned<f64>>,
    graduation_ul: Option<Spanned<f64>>,
    reading_sd_graduations: Option<Spanned<f64>>,
    wall_mm: Option<Spanned<f64>>,
    view_angle_sd_deg: Option<Spanned<f64>>,
    stiffness_n_per_mm: Option<Spanned<f64>>,
    damping_n_s_per_m: Option<Spanned<f64>>,
    preload_n: Option<Spanned<f64>>,
    ramp_ms: Option<Spanned<f64>>,
    release_ms: Option<Spanned<f64>>,
    tremor_rms_n: Option<Spanned<f64>>,
    tremor_hz_lo: Option<Spanned<f64>>,
    tremor_hz_hi: Option<Spanned<f64>>,
    pulses_per_shot: Option<Spanned<f64>>,
    pulse_force_n: Option<Spanned<f64>>,
    pulse_width_ms: Option<Spanned<f64>>,
    pulse_window: Option<Spanned<f64>>,
    drift_mm: Option<Spanned<f64>>,
    drift_gsd: Option<Spanned<f64>>,
    depth_mm: Option<Spanned<f64>>,
    dermis_mm: Option<Spanned<f64>>,
}

/// How a gun arm is set to a target dose.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum DoseSetting {
    /// The key takes the target in µL (a volume-target firmware).
    Direct {
        /// Scenario key.
        key: String,
    },
    /// The key is bisected until the mean dose is the target: on the
    /// nominal device (factory calibration), or on each unit with its own
    /// drawn needle, syringe and device (calibration in use).
    Calibrate {
        /// Scenario key.
        key: String,
        /// Search range in the key's unit.
        lo: f64,
        /// Upper end.
        hi: f64,
        /// Calibrate every unit on itself.
        each_unit: bool,
    },
}

/// What an arm is.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ArmKind {
    /// A person with a syringe.
    Manual {
        /// Preset the population started from.
        preset: String,
        /// The population (SI).
        operator: OperatorParams,
    },
    /// The scenario's gun.
    Gun {
        /// How the dose is set.
        dose: DoseSetting,
    },
}

/// One arm of the study.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Arm {
    /// Name (unique).
    pub name: String,
    /// Manual or gun.
    #[serde(flatten)]
    pub kind: ArmKind,
    /// Scenario overrides of this arm.
    pub set: Vec<String>,
    /// Variability of this arm's own units (devices) and shots.
    pub variability: Vec<Uncertain>,
}

/// A loaded, validated study.
#[derive(Debug, Clone)]
pub struct Study {
    /// Name.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// Study file name (for messages and the manifest).
    pub source: String,
    /// The shared scenario, parsed once.
    pub scenario: Prepared,
    /// Master seed.
    pub seed: u64,
    /// Target doses, m³.
    pub targets: Vec<f64>,
    /// Target doses as written, µL.
    pub targets_ul: Vec<f64>,
    /// Operators (manual arms) or devices (gun arms) per arm.
    pub units: usize,
    /// Shots per unit and target.
    pub shots: usize,
    /// Acceptance limits (µL) and the preset they came from.
    pub limits: Limits,
    /// Name of the acceptance preset.
    pub preset: String,
    /// Bootstrap resamples for the CV-ratio intervals.
    pub bootstrap: usize,
    /// Confidence level of those intervals.
    pub interval: f64,
    /// Variability shared by every arm.
    pub shared: Vec<Uncertain>,
    /// Arms.
    pub arms: Vec<Arm>,
}

/// `file:line:column` of byte offset `at` in `text`.
fn location(file: &str, text: &str, at: usize) -> String {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    format!("{file}:{line}:{col}")
}

struct Checker<'a> {
    file: &'a str,
    text: &'a str,
}

impl Checker<'_> {
    fn invalid(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        value: impl std::fmt::Display,
        allowed: &str,
    ) -> StudyError {
        StudyError::Input(ScenarioError::Invalid {
            location: location(self.file, self.text, span.start),
            key: key.into(),
            value: value.to_string(),
            allowed: allowed.into(),
        })
    }

    /// A number in [lo, hi] (`scale` converts to SI), or the default (SI).
    #[allow(clippy::too_many_arguments)]
    fn num(
        &self,
        v: &Option<Spanned<f64>>,
        default: f64,
        key: &str,
        lo: f64,
        hi: f64,
        scale: f64,
        unit: &str,
    ) -> Result<f64, StudyError> {
        match v {
            None => Ok(default),
            Some(s) => {
                let x = *s.get_ref();
                if !x.is_finite() || x < lo || x > hi {
                    return Err(self.invalid(s.span(), key, x, format!("{lo} to {hi} {unit}").trim_end()));
                }
                Ok(x * scale)
            }
        }
    }

    fn int(&self, v: &Option<Spanned<i64>>, default: i64, key: &str, lo: i64, hi: i64) -> Result<i64, StudyError> {
        match v {
            None => Ok(default),
            Some(s) if (lo..=hi).contains(s.get_ref()) => Ok(*s.get_ref()),
            Some(s) => Err(self.invalid(s.span(), key, s.get_ref(), &format!("a whole number from {lo} to {hi}"))),
        }
    }

    fn uncertain(&self, t: &Spanned<toml::Table>, table: &str) -> Result<Vec<Uncertain>, StudyError> {
        let loc = location(self.file, self.text, t.span().start);
        scenario::parse_uncertain(t.get_ref(), table, &|key, value, allowed| ScenarioError::Invalid {
            location: loc.clone(),
            key: key.into(),
            value,
            allowed,
        })
        .map_err(StudyError::Input)
    }
}

fn operator_params(raw: &RawOperator, c: &Checker, arm: &str) -> Result<(String, OperatorParams), StudyError> {
    let preset = raw.preset.as_ref().map(|s| s.get_ref().clone()).unwrap_or_else(|| "experienced".into());
    let base = OperatorParams::preset(&preset).ok_or_else(|| {
        c.invalid(
            raw.preset.as_ref().map(|s| s.span()).unwrap_or(0..0),
            &format!("arm '{arm}' operator.preset"),
            format!("{preset:?}"),
            &format!("one of {}", OPERATOR_PRESETS.join(", ")),
        )
    })?;
    let k = |name: &str| format!("arm '{arm}' operator.{name}");
    let p = OperatorParams {
        flow: c.num(&raw.flow_ul_per_s, base.flow, &k("flow_ul_per_s"), 0.1, 10_000.0, 1e-9, "µL/s")?,
        flow_gsd_between: c.num(
            &raw.flow_gsd_between,
            base.flow_gsd_between,
            &k("flow_gsd_between"),
            1.0,
            10.0,
            1.0,
            "",
        )?,
        flow_gsd_within: c.num(
            &raw.flow_gsd_within,
            base.flow_gsd_within,
            &k("flow_gsd_within"),
            1.0,
            10.0,
            1.0,
            "",
        )?,
        reaction: c.num(&raw.reaction_ms, base.reaction, &k("reaction_ms"), 0.0, 2000.0, 1e-3, "ms")?,
        reaction_gsd_between: c.num(
            &raw.reaction_gsd_between,
            base.reaction_gsd_between,
            &k("reaction_gsd_between"),
            1.0,
            10.0,
            1.0,
            "",
        )?,
        reaction_gsd_within: c.num(
            &raw.reaction_gsd_within,
            base.reaction_gsd_within,
            &k("reaction_gsd_within"),
            1.0,
            10.0,
            1.0,
            "",
        )?,
        anticipation: c.num(&raw.anticipation, base.anticipation, &k("anticipation"), 0.0, 1.0, 1.0, "")?,
        anticipation_sd: c.num(&raw.anticipation_sd, base.anticipation_sd, &k("anticipation_sd"), 0.0, 1.0, 1.0, "")?,
        graduation: c.num(&raw.graduation_ul, base.graduation, &k("graduation_ul"), 0.1, 1000.0, 1e-9, "µL")?,
        reading_sd: c.num(
            &raw.reading_sd_graduations,
            base.reading_sd,
            &k("reading_sd_graduations"),
            0.0,
            5.0,
            1.0,
            "graduations",
        )?,
        wall: c.num(&raw.wall_mm, base.wall, &k("wall_mm"), 0.0, 5.0, 1e-3, "mm")?,
        view_angle_sd: c.num(
            &raw.view_angle_sd_deg,
            base.view_angle_sd,
            &k("view_angle_sd_deg"),
            0.0,
            45.0,
            1f64.to_radians(),
            "°",
        )?,
        stiffness: c.num(
            &raw.stiffness_n_per_mm,
            base.stiffness,
            &k("stiffness_n_per_mm"),
            0.05,
            1000.0,
            1e3,
            "N/mm",
        )?,
        damping: c.num(&raw.damping_n_s_per_m, base.damping, &k("damping_n_s_per_m"), 0.0, 10_000.0, 1.0, "N·s/m")?,
        preload: c.num(&raw.preload_n, base.preload, &k("preload_n"), 0.0, 40.0, 1.0, "N")?,
        ramp: c.num(&raw.ramp_ms, base.ramp, &k("ramp_ms"), 0.1, 10_000.0, 1e-3, "ms")?,
        release: c.num(&raw.release_ms, base.release, &k("release_ms"), 0.1, 10_000.0, 1e-3, "ms")?,
        tremor_rms: c.num(&raw.tremor_rms_n, base.tremor_rms, &k("tremor_rms_n"), 0.0, 10.0, 1.0, "N")?,
        tremor_hz: (
            c.num(&raw.tremor_hz_lo, base.tremor_hz.0, &k("tremor_hz_lo"), 0.1, 100.0, 1.0, "Hz")?,
            c.num(&raw.tremor_hz_hi, base.tremor_hz.1, &k("tremor_hz_hi"), 0.1, 100.0, 1.0, "Hz")?,
        ),
        pulses: c.num(&raw.pulses_per_shot, base.pulses, &k("pulses_per_shot"), 0.0, 10.0, 1.0, "")?,
        pulse_force: c.num(&raw.pulse_force_n, base.pulse_force, &k("pulse_force_n"), 0.0, 40.0, 1.0, "N")?,
        pulse_width: c.num(&raw.pulse_width_ms, base.pulse_width, &k("pulse_width_ms"), 1.0, 1000.0, 1e-3, "ms")?,
        pulse_window: c.num(&raw.pulse_window, base.pulse_window, &k("pulse_window"), 0.0, 1.0, 1.0, "")?,
        drift: c.num(&raw.drift_mm, base.drift, &k("drift_mm"), 0.0, 10.0, 1e-3, "mm")?,
        drift_gsd: c.num(&raw.drift_gsd, base.drift_gsd, &k("drift_gsd"), 1.0, 10.0, 1.0, "")?,
        depth: c.num(&raw.depth_mm, base.depth, &k("depth_mm"), 0.1, 20.0, 1e-3, "mm")?,
        dermis: c.num(&raw.dermis_mm, base.dermis, &k("dermis_mm"), 0.5, 5.0, 1e-3, "mm")?,
    };
    if p.tremor_hz.1 < p.tremor_hz.0 {
        let span = raw.tremor_hz_hi.as_ref().map(|s| s.span()).unwrap_or(0..0);
        return Err(c.invalid(span, &k("tremor_hz_hi"), p.tremor_hz.1, "at least tremor_hz_lo"));
    }
    Ok((preset, p))
}

/// Load and validate a study file.
pub fn load(path: &Path) -> Result<Study, StudyError> {
    let text = crate::scenario::read_capped(path, "study").map_err(|e| match e {
        crate::scenario::Capped::Io(source) => StudyError::Read { path: path.to_owned(), source },
        crate::scenario::Capped::TooLarge(e) => StudyError::Input(e),
    })?;
    let file = path.display().to_string();
    let raw: RawStudy = toml::from_str(&text).map_err(|e| {
        let detail = e.to_string().trim_end().to_string();
        // Say what the file is before the schema detail.
        let message = if crate::scenario::is_study_text(&text) {
            detail
        } else {
            format!("this file is a scenario (it has no [[arm]] tables), not a comparison study: run it with `mesobench run {file}` (or sweep, tune, sensitivity)\n{detail}")
        };
        ScenarioError::Parse { path: file.clone(), message }
    })?;
    let c = Checker { file: &file, text: &text };
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("study").to_string();
    // The shared scenario: a path relative to the study, or the embedded default.
    let source = match &raw.scenario {
        None => Source::default_scenario(),
        Some(s) => {
            let p = dir.join(s.get_ref());
            Source::from_path(&p).map_err(|e| {
                let why = match e {
                    ScenarioError::TooLarge { .. } => format!(" ({e})"),
                    _ => String::new(),
                };
                c.invalid(
                    s.span(),
                    "scenario",
                    format!("{:?}", s.get_ref()),
                    &format!("a readable scenario file, relative to the study file{why}"),
                )
            })?
        }
    };
    let scenario_stem = raw
        .scenario
        .as_ref()
        .and_then(|s| Path::new(s.get_ref()).file_stem()?.to_str().map(String::from))
        .unwrap_or("reference".into());
    let prepared = Prepared::new(&source, &scenario_stem)
        .map_err(|source| StudyError::Scenario { context: format!("{file}: shared scenario"), source })?;
    prepared
        .with(&[])
        .map_err(|source| StudyError::Scenario { context: format!("{file}: shared scenario"), source })?;
    let targets_ul = raw.targets_ul.get_ref();
    if targets_ul.is_empty() || targets_ul.iter().any(|t| !(t.is_finite() && (0.1..=1000.0).contains(t))) {
        return Err(c.invalid(
            raw.targets_ul.span(),
            "targets_ul",
            format!("{targets_ul:?}"),
            "a non-empty list of doses from 0.1 to 1000 µL",
        ));
    }
    let units = c.int(&raw.units, 8, "units", 2, 4095)? as usize;
    let shots = c.int(&raw.shots, 15, "shots", 2, 4095)? as usize;
    let seed = c.int(&raw.seed, 1, "seed", 0, i64::MAX)? as u64;
    let a = &raw.acceptance;
    let preset = a.preset.as_ref().map(|s| s.get_ref().clone()).unwrap_or_else(|| "mesotherapy".into());
    let base = Limits::preset(&preset).ok_or_else(|| {
        c.invalid(
            a.preset.as_ref().map(|s| s.span()).unwrap_or(0..0),
            "acceptance.preset",
            format!("{preset:?}"),
            "\"iso_pen\" or \"mesotherapy\"",
        )
    })?;
    let limits = Limits {
        alpha: c.num(&a.alpha_ul, base.alpha, "acceptance.alpha_ul", 0.0, 1e4, 1.0, "µL")?,
        beta: c.num(&a.beta, base.beta, "acceptance.beta", 0.0, 1.0, 1.0, "")?,
        coverage: c.num(&a.coverage, base.coverage, "acceptance.coverage", 0.5, 0.9999, 1.0, "")?,
        confidence: c.num(&a.confidence, base.confidence, "acceptance.confidence", 0.5, 0.9999, 1.0, "")?,
    };
    let bootstrap = c.int(&a.bootstrap, 2000, "acceptance.bootstrap", 100, 1_000_000)? as usize;
    let interval = c.num(&a.interval, 0.95, "acceptance.interval", 0.5, 0.999, 1.0, "")?;
    let shared = match &raw.variability {
        Some(t) => c.uncertain(t, "variability")?,
        None => Vec::new(),
    };
    if raw.arm.is_empty() {
        return Err(StudyError::Input(ScenarioError::Invalid {
            location: file.clone(),
            key: "arm".into(),
            value: "(none)".into(),
            allowed: "at least one [[arm]] table".into(),
        }));
    }
    let mut arms: Vec<Arm> = Vec::new();
    for ra in &raw.arm {
        let name = ra.name.get_ref().clone();
        if name.is_empty() || arms.iter().any(|a| a.name == name || arm_key(&a.name) == arm_key(&name)) {
            return Err(c.invalid(
                ra.name.span(),
                "arm.name",
                format!("{name:?}"),
                "a non-empty name, unique in the study",
            ));
        }
        let kind = match ra.kind.get_ref().as_str() {
            "manual" => {
                let (preset, operator) =
                    operator_params(ra.operator.as_ref().unwrap_or(&RawOperator::default()), &c, &name)?;
                ArmKind::Manual { preset, operator }
            }
            "gun" => {
                let dose = match (&ra.dose_key, &ra.calibrate_key) {
                    (Some(k), None) => DoseSetting::Direct { key: k.get_ref().clone() },
                    (None, Some(k)) => {
                        let (lo, hi) = match &ra.calibrate_range {
                            Some(r) if r.get_ref().len() == 2 && r.get_ref()[0] < r.get_ref()[1] => {
                                (r.get_ref()[0], r.get_ref()[1])
                            }
                            Some(r) => {
                                return Err(c.invalid(
                                    r.span(),
                                    &format!("arm '{name}' calibrate_range"),
                                    format!("{:?}", r.get_ref()),
                                    "[lo, hi] with lo < hi, in the key's unit",
                                ))
                            }
                            None => {
                                return Err(c.invalid(
                                    k.span(),
                                    &format!("arm '{name}' calibrate_range"),
                                    "(missing)",
                                    "[lo, hi] to search for the key's value",
                                ))
                            }
                        };
                        DoseSetting::Calibrate {
                            key: k.get_ref().clone(),
                            lo,
                            hi,
                            each_unit: ra.calibrate_each_unit.unwrap_or(false),
                        }
                    }
                    _ => return Err(c.invalid(
                        ra.kind.span(),
                        &format!("arm '{name}'"),
                        "gun",
                        "exactly one of dose_key (set to the target in µL) or calibrate_key (bisected to the target)",
                    )),
                };
                ArmKind::Gun { dose }
            }
            other => {
                return Err(c.invalid(
                    ra.kind.span(),
                    &format!("arm '{name}' kind"),
                    format!("{other:?}"),
                    "\"manual\" or \"gun\"",
                ))
            }
        };
        let variability = match &ra.variability {
            Some(t) => c.uncertain(t, &format!("arm '{name}' variability"))?,
            None => Vec::new(),
        };
        let arm = Arm { name, kind, set: ra.set.clone(), variability };
        // Validate the arm's overrides and every varied key at a first target.
        let mut sets = arm.set.clone();
        if let ArmKind::Gun { dose } = &arm.kind {
            sets.push(match dose {
                DoseSetting::Direct { key } => format!("{key}={:?}", targets_ul[0]),
                DoseSetting::Calibrate { key, lo, hi, .. } => format!("{key}={:?}", 0.5 * (lo + hi)),
            });
        }
        for u in shared.iter().chain(&arm.variability) {
            sets.push(format!("{}={:?}", u.key, central(&u.dist)));
        }
        prepared
            .with(&sets)
            .map_err(|source| StudyError::Scenario { context: format!("{file}: arm '{}'", arm.name), source })?;
        arms.push(arm);
    }
    Ok(Study {
        name: raw.name.unwrap_or(stem),
        description: raw.description.unwrap_or_default(),
        source: file,
        scenario: prepared,
        seed,
        targets: targets_ul.iter().map(|t| t * 1e-9).collect(),
        targets_ul: targets_ul.clone(),
        units,
        shots,
        limits,
        preset,
        bootstrap,
        interval,
        shared,
        arms,
    })
}

fn central(d: &scenario::Distribution) -> f64 {
    match *d {
        scenario::Distribution::Normal { mean, .. } => mean,
        scenario::Distribution::Lognormal { median, .. } => median,
        scenario::Distribution::Uniform { lo, hi } => 0.5 * (lo + hi),
        scenario::Distribution::TruncatedNormal { mean, lo, hi, .. } => mean.clamp(lo, hi),
    }
}

/// One shot of the study.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ShotRow {
    /// Arm index.
    pub arm: usize,
    /// Target index.
    pub target: usize,
    /// Operator or device index.
    pub unit: usize,
    /// Shot index.
    pub shot: usize,
    /// Delivered dose, m³.
    pub dose: f64,
    /// Reflux, m³.
    pub leak: f64,
    /// Peak tissue gauge pressure, Pa.
    pub peak_tissue_pressure: f64,
    /// Shot duration, s.
    pub duration: f64,
}

/// Statistics of one arm at one target (volumes in µL).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ArmSummary {
    /// Arm name.
    pub arm: String,
    /// "manual" or "gun".
    pub kind: String,
    /// Target dose, µL.
    pub target_ul: f64,
    /// Shots.
    pub n: usize,
    /// Mean dose, µL.
    pub mean_ul: f64,
    /// SD, µL.
    pub sd_ul: f64,
    /// CV.
    pub cv: f64,
    /// Bias (mean / target − 1).
    pub bias: f64,
    /// 5th, 50th and 95th percentiles, µL.
    pub p5_ul: f64,
    /// Median, µL.
    pub p50_ul: f64,
    /// 95th percentile, µL.
    pub p95_ul: f64,
    /// Within-unit SD, µL.
    pub within_sd_ul: f64,
    /// Between-unit SD (variance component), µL.
    pub between_sd_ul: f64,
    /// Mean dose of each unit, µL.
    pub unit_mean_ul: Vec<f64>,
    /// SD of each unit, µL.
    pub unit_sd_ul: Vec<f64>,
    /// Mean reflux, µL.
    pub leak_ul: f64,
    /// Mean shot duration, ms.
    pub duration_ms: f64,
    /// Dose-key value calibrated on the nominal device, in the key's unit
    /// (gun arms calibrated to the target).
    pub calibrated: Option<f64>,
    /// Tolerance-interval verdict.
    pub acceptance: Verdict,
}

/// Comparison of two arms at one target.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PairSummary {
    /// Target dose, µL.
    pub target_ul: f64,
    /// First arm.
    pub a: String,
    /// Second arm.
    pub b: String,
    /// CV(a) / CV(b) with its cluster-bootstrap interval.
    pub cv_ratio: RatioInterval,
    /// F test of var(a) = var(b).
    pub f_test: Test,
    /// Brown–Forsythe test.
    pub brown_forsythe: Test,
}

/// Everything a study produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Every shot, in (arm, target, unit, shot) order.
    pub shots: Vec<ShotRow>,
    /// Per (arm, target), arm-major.
    pub arms: Vec<ArmSummary>,
    /// Per target, then pair (a < b).
    pub pairs: Vec<PairSummary>,
    /// Plant steps simulated.
    pub steps: u64,
}

// Stream families (the `point` of `task_rng`); units and shots < 4096 keep
// the replicate index below 2^24.
const SHARED_UNIT: u64 = 1 << 36;
const SHARED_SHOT: u64 = 2 << 36;
const ARM_UNIT: u64 = 3 << 36;
const ARM_SHOT: u64 = 4 << 36;
const PAIRS: u64 = 5 << 36;

/// An arm's stream key from its name (FNV-1a, 20 bits), so adding or
/// reordering arms leaves the others' draws unchanged.
fn arm_key(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h & 0xf_ffff
}

fn draws(list: &[Uncertain], session: bool, rng: &mut rand_chacha::ChaCha8Rng, out: &mut Vec<String>) {
    for u in list.iter().filter(|u| (u.level == Level::Session) == session) {
        out.push(format!("{}={:?}", u.key, draw(&u.dist, rng)));
    }
}

impl Study {
    /// Tasks: (arm, target, unit), arm-major.
    pub fn tasks(&self) -> u64 {
        (self.arms.len() * self.targets.len() * self.units) as u64
    }

    fn unit_sets(&self, a: usize, t: usize, unit: usize) -> Vec<String> {
        let arm = &self.arms[a];
        let mut sets = arm.set.clone();
        draws(&self.shared, true, &mut task_rng(self.seed, SHARED_UNIT, unit as u64), &mut sets);
        draws(&arm.variability, true, &mut task_rng(self.seed, ARM_UNIT + arm_key(&arm.name), unit as u64), &mut sets);
        sets.push(format!("seed={}", super::splitmix(self.seed ^ ((t as u64) << 40) ^ unit as u64) >> 1));
        sets
    }

    fn shot_sets(&self, a: usize, t: usize, unit: usize, shot: usize, base: &[String]) -> Vec<String> {
        let id = ((unit as u64) << 12) | shot as u64;
        let mut sets = base.to_vec();
        draws(&self.shared, false, &mut task_rng(self.seed, SHARED_SHOT + t as u64, id), &mut sets);
        let arm_stream = ARM_SHOT + (arm_key(&self.arms[a].name) << 12) + t as u64;
        draws(&self.arms[a].variability, false, &mut task_rng(self.seed, arm_stream, id), &mut sets);
        sets
    }

    fn per_shot(&self, a: usize) -> bool {
        self.shared.iter().chain(&self.arms[a].variability).any(|u| u.level != Level::Session)
    }

    /// Calibrate gun arm `a` to target `t` on the device the overrides
    /// `device` describe (none: the nominal device).
    fn calibrate(&self, a: usize, t: usize, device: &[String]) -> Result<Option<f64>, StudyError> {
        let arm = &self.arms[a];
        let ArmKind::Gun { dose: DoseSetting::Calibrate { key, lo, hi, .. } } = &arm.kind else {
            return Ok(None);
        };
        let target = self.targets[t];
        let fail =
            |message: String| StudyError::Calibration { arm: arm.name.clone(), target_ul: self.targets_ul[t], message };
        let dose_at = |x: f64| -> Result<f64, StudyError> {
            let mut sets = if device.is_empty() { arm.set.clone() } else { device.to_vec() };
            sets.push("session.shots=3".into());
            sets.push(format!("{key}={x:?}"));
            let sc = self.scenario.with(&sets).map_err(|e| fail(e.to_string()))?;
            let run = crate::simulate(&sc, false).map_err(|e| fail(e.to_string()))?;
            let d: Vec<f64> = run.result.shots.iter().map(|s| s.dose).collect();
            Ok(crate::stats::describe(&d).mean)
        };
        let (mut a_x, mut b_x) = (*lo, *hi);
        let (da, db) = (dose_at(a_x)?, dose_at(b_x)?);
        if !(da <= target && target <= db) {
            return Err(fail(format!(
                "{key} from {lo} to {hi} gives {:.3} to {:.3} µL on the nominal device",
                da * 1e9,
                db * 1e9
            )));
        }
        for _ in 0..60 {
            let m = 0.5 * (a_x + b_x);
            if dose_at(m)? < target {
                a_x = m;
            } else {
                b_x = m;
            }
            if b_x - a_x < 1e-6 * (hi - lo) {
                break;
            }
        }
        Ok(Some(0.5 * (a_x + b_x)))
    }

    /// Run one (arm, target, unit) task.
    fn task(
        &self,
        a: usize,
        t: usize,
        unit: usize,
        calibrated: Option<f64>,
    ) -> Result<(Vec<ShotRow>, u64), StudyError> {
        let arm = &self.arms[a];
        let target = self.targets[t];
        let fail =
            |message: String| StudyError::Run { arm: arm.name.clone(), target_ul: self.targets_ul[t], unit, message };
        let mut base = self.unit_sets(a, t, unit);
        let row = |shot, dose, leak, peak, duration| ShotRow {
            arm: a,
            target: t,
            unit,
            shot,
            dose,
            leak,
            peak_tissue_pressure: peak,
            duration,
        };
        match &arm.kind {
            ArmKind::Manual { operator, .. } => {
                let sc = self.scenario.with(&base).map_err(|e| fail(e.to_string()))?;
                let op = operator.draw_operator(&mut task_rng(
                    self.seed,
                    ARM_UNIT + arm_key(&arm.name),
                    unit as u64 | 1 << 20,
                ));
                let mut plant = Plant::new(manual_params(sc.params.clone()));
                let dt = sc.solver.effective_step();
                let mut rows = Vec::with_capacity(self.shots);
                let per_shot = self.per_shot(a);
                for s in 0..self.shots {
                    if per_shot {
                        let shot_sc = self
                            .scenario
                            .with(&self.shot_sets(a, t, unit, s, &base))
                            .map_err(|e| fail(e.to_string()))?;
                        plant.set_params(manual_params(shot_sc.params)).map_err(fail)?;
                    }
                    let id = ((unit as u64) << 12) | s as u64;
                    let mut rng = task_rng(self.seed, ARM_SHOT + (arm_key(&arm.name) << 12) + t as u64, id | 1 << 23);
                    let plan = operator.draw_shot(&op, target, plant.params.syringe.area, &mut rng);
                    let r = manual_shot(&mut plant, operator, &plan, target, dt).map_err(|e| fail(e.to_string()))?;
                    rows.push(row(s, r.dose, r.leak, r.peak_tissue_pressure, r.duration));
                }
                Ok((rows, plant.steps()))
            }
            ArmKind::Gun { dose } => {
                base.push(format!("session.shots={}", self.shots));
                let value = match dose {
                    DoseSetting::Direct { .. } => self.targets_ul[t],
                    DoseSetting::Calibrate { each_unit: true, .. } => {
                        self.calibrate(a, t, &base)?.expect("a calibrated arm")
                    }
                    DoseSetting::Calibrate { .. } => calibrated.expect("calibrated first"),
                };
                let (DoseSetting::Direct { key } | DoseSetting::Calibrate { key, .. }) = dose;
                base.push(format!("{key}={value:?}"));
                let sc = self.scenario.with(&base).map_err(|e| fail(e.to_string()))?;
                let run = if self.per_shot(a) {
                    simulate_per_shot(&self.scenario, &sc, &|shot| self.shot_sets(a, t, unit, shot, &base), false)
                } else {
                    crate::simulate(&sc, false)
                }
                .map_err(|e| fail(e.to_string()))?;
                if run.result.shots.len() != self.shots {
                    return Err(fail(format!(
                        "the session stopped after {} of {} shots{}",
                        run.result.shots.len(),
                        self.shots,
                        run.result.stopped.as_deref().map(|s| format!(": {s}")).unwrap_or_default()
                    )));
                }
                let rows = run
                    .result
                    .shots
                    .iter()
                    .map(|s| row(s.index, s.dose, s.leak, s.peak_tissue_pressure, s.duration))
                    .collect();
                Ok((rows, run.result.steps))
            }
        }
    }
}

/// Run the study on `threads` threads; `progress` gets the number of finished tasks.
pub fn run(study: &Study, threads: usize, progress: &(dyn Fn(u64) + Sync)) -> Result<Outcome, StudyError> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build().expect("thread pool");
    pool.install(|| run_inner(study, progress))
}

fn run_inner(study: &Study, progress: &(dyn Fn(u64) + Sync)) -> Result<Outcome, StudyError> {
    let (na, nt, nu) = (study.arms.len(), study.targets.len(), study.units);
    // Calibration of every (gun arm, target) first, in parallel.
    // Results are gathered in index order before the first error is taken,
    // so that a failing study reports the same error whatever the threads.
    let calibration: Vec<Result<Option<f64>, _>> =
        (0..na * nt).into_par_iter().map(|i| study.calibrate(i / nt, i % nt, &[])).collect();
    let calibration: Vec<Option<f64>> = calibration.into_iter().collect::<Result<_, _>>()?;
    let done = AtomicU64::new(0);
    let results: Vec<Result<(Vec<ShotRow>, u64), _>> = (0..na * nt * nu)
        .into_par_iter()
        .map(|i| {
            let (a, t, u) = (i / (nt * nu), (i / nu) % nt, i % nu);
            let r = study.task(a, t, u, calibration[a * nt + t]);
            progress(done.fetch_add(1, Ordering::Relaxed) + 1);
            r
        })
        .collect();
    let results: Vec<(Vec<ShotRow>, u64)> = results.into_iter().collect::<Result<_, _>>()?;
    let steps = results.iter().map(|r| r.1).sum();
    let shots: Vec<ShotRow> = results.into_iter().flat_map(|r| r.0).collect();
    // Summaries, sequentially in a fixed order.
    let per = study.units * study.shots;
    let doses_ul = |a: usize, t: usize| -> Vec<Vec<f64>> {
        let start = (a * nt + t) * per;
        shots[start..start + per].chunks(study.shots).map(|c| c.iter().map(|s| s.dose * 1e9).collect()).collect()
    };
    let mut arms = Vec::new();
    for (a, arm) in study.arms.iter().enumerate() {
        for t in 0..nt {
            let groups = doses_ul(a, t);
            let all: Vec<f64> = groups.iter().flatten().copied().collect();
            let d = crate::stats::describe(&all);
            let mut sorted = all.clone();
            sorted.sort_by(f64::total_cmp);
            let refs: Vec<&[f64]> = groups.iter().map(Vec::as_slice).collect();
            let (within, between) = variance_components(&refs);
            let start = (a * nt + t) * per;
            let slice = &shots[start..start + per];
            let v = study.targets_ul[t];
            arms.push(ArmSummary {
                arm: arm.name.clone(),
                kind: match arm.kind {
                    ArmKind::Manual { .. } => "manual".into(),
                    ArmKind::Gun { .. } => "gun".into(),
                },
                target_ul: v,
                n: d.n,
                mean_ul: d.mean,
                sd_ul: d.sd,
                cv: d.cv,
                bias: d.mean / v - 1.0,
                p5_ul: crate::stats::percentile(&sorted, 0.05),
                p50_ul: crate::stats::percentile(&sorted, 0.5),
                p95_ul: crate::stats::percentile(&sorted, 0.95),
                within_sd_ul: within,
                between_sd_ul: between,
                unit_mean_ul: groups.iter().map(|g| crate::stats::describe(g).mean).collect(),
                unit_sd_ul: groups.iter().map(|g| crate::stats::describe(g).sd).collect(),
                leak_ul: slice.iter().map(|s| s.leak).sum::<f64>() * 1e9 / per as f64,
                duration_ms: slice.iter().map(|s| s.duration).sum::<f64>() * 1e3 / per as f64,
                calibrated: calibration[a * nt + t],
                acceptance: accept(&all, v, &study.limits),
            });
        }
    }
    let mut pairs = Vec::new();
    for t in 0..nt {
        for a in 0..na {
            for b in a + 1..na {
                let (ga, gb) = (doses_ul(a, t), doses_ul(b, t));
                let (ra, rb): (Vec<&[f64]>, Vec<&[f64]>) =
                    (ga.iter().map(Vec::as_slice).collect(), gb.iter().map(Vec::as_slice).collect());
                let (fa, fb): (Vec<f64>, Vec<f64>) = (ga.concat(), gb.concat());
                let mut rng = task_rng(study.seed, PAIRS + t as u64, ((a as u64) << 12) | b as u64);
                pairs.push(PairSummary {
                    target_ul: study.targets_ul[t],
                    a: study.arms[a].name.clone(),
                    b: study.arms[b].name.clone(),
                    cv_ratio: cv_ratio_interval(&ra, &rb, study.bootstrap, study.interval, &mut rng),
                    f_test: f_test(&fa, &fb),
                    brown_forsythe: brown_forsythe(&[&fa, &fb]),
                });
            }
        }
    }
    Ok(Outcome { shots, arms, pairs, steps })
}
