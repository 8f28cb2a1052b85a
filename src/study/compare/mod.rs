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
//!
//! Reading and checking the study file is in `load.rs`.

pub(crate) mod load;
mod summary;
mod tasks;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rayon::prelude::*;

pub use load::load;

use self::summary::{arm_summary, pairs};
use self::tasks::TaskOut;
use crate::control::manual::OperatorParams;
use crate::scenario::{Prepared, ScenarioError, Uncertain};
use crate::stats::compare::{RatioInterval, Test};
use crate::stats::tolerance::{Limits, Verdict};

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
    /// The caller cancelled the study (see [`run_cancellable`]).
    #[error("the study was cancelled")]
    Cancelled,
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
        /// How a hand holds it (None: at the scenario's site, held, perpendicular).
        #[serde(skip_serializing_if = "Option::is_none")]
        hand: Option<Hand>,
    },
}

/// How a hand holds a gun arm's device, drawn shot by shot (`hand = {...}`
/// of a gun arm; docs/physics.md, *A gun held by a hand*).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hand {
    /// Intended tip depth (the nose's depth setting), m.
    pub depth: f64,
    /// Shot-to-shot SD of the tip depth, m.
    pub depth_sd: f64,
    /// Dermis thickness (depth of the dermis–fat junction), m.
    pub dermis: f64,
    /// Mean tilt of the needle from the perpendicular, degrees.
    pub tilt_deg: f64,
    /// Shot-to-shot SD of the tilt, degrees.
    pub tilt_sd_deg: f64,
    /// The nose is held against the skin.
    pub contact: bool,
    /// Factor on the reflux onset when the nose is not held against the skin.
    pub hover_leak_factor: f64,
}

impl Hand {
    /// Apply one shot's hand to the sites: the tip depth along the needle
    /// d ~ N(depth, depth_sd) (at least 0.1 mm), the tilt |N(tilt, sd)| (at
    /// most 80°), the layer at the vertical depth d·cos(tilt) (the manual
    /// operator's depth law, [`crate::sim::manual::tissue_at_depth`]), the
    /// reflux onset ∝ the track length d, times `hover_leak_factor` when
    /// the nose hovers.
    pub fn apply(&self, sites: &mut [crate::model::tissue::TissueParams], rng: &mut rand_chacha::ChaCha8Rng) {
        use rand_distr::{Distribution as _, StandardNormal};
        let z1: f64 = StandardNormal.sample(rng);
        let z2: f64 = StandardNormal.sample(rng);
        let d = (self.depth + self.depth_sd * z1).max(0.1e-3);
        let tilt = (self.tilt_deg + self.tilt_sd_deg * z2).abs().min(80.0);
        let vertical = d * tilt.to_radians().cos();
        for site in sites.iter_mut() {
            let track = site.leak_pressure * (d / self.depth).max(0.1);
            *site = crate::sim::manual::tissue_at_depth(site, self.depth, self.dermis, vertical);
            site.leak_pressure = track * if self.contact { 1.0 } else { self.hover_leak_factor };
        }
    }

    /// The hand's assumptions in words.
    pub fn describe(&self) -> String {
        format!(
            "hand-held: tip depth {} ± {} mm (SD) along the needle, dermis {} mm, tilt {} ± {}° from the perpendicular, {}",
            crate::text::g6(self.depth * 1e3),
            crate::text::g6(self.depth_sd * 1e3),
            crate::text::g6(self.dermis * 1e3),
            crate::text::g6(self.tilt_deg),
            crate::text::g6(self.tilt_sd_deg),
            if self.contact {
                "nose held against the skin".to_string()
            } else {
                format!("nose not held against the skin (reflux onset × {})", crate::text::g6(self.hover_leak_factor))
            }
        )
    }
}

impl Arm {
    /// What the arm assumes, in words (report.html and compare_summary.json).
    pub fn assumptions(&self) -> String {
        match &self.kind {
            ArmKind::Manual { preset, .. } => format!(
                "manual: a {preset} operator pushes the plunger by hand; tip depth, drift and reading errors from the operator population"
            ),
            ArmKind::Gun { dose, hand } => {
                let dose = match dose {
                    DoseSetting::Direct { key } => format!("{key} set to the target"),
                    DoseSetting::Calibrate { key, each_unit: false, .. } => {
                        format!("{key} calibrated on the nominal device (factory)")
                    }
                    DoseSetting::Calibrate { key, each_unit: true, .. } => format!("{key} calibrated on each device"),
                };
                let hand = match hand {
                    Some(h) => h.describe(),
                    None => "the scenario's tissue site at every shot, nose held against the skin, perpendicular (no hand effects)".into(),
                };
                format!("gun: {dose}; {hand}")
            }
        }
    }
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
    /// The study file's comment on each varied key of the arm's
    /// `[arm.variability]` (its stated source), by key; not in compare_summary.json.
    #[serde(skip)]
    pub notes: std::collections::BTreeMap<String, String>,
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
    /// The study file's comment on each key of `[variability]` (its stated
    /// source), by key.
    pub shared_notes: std::collections::BTreeMap<String, String>,
    /// Arms.
    pub arms: Vec<Arm>,
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
    /// CV, a fraction (written as `cv_pct`, percent).
    #[serde(rename = "cv_pct", serialize_with = "crate::text::as_pct")]
    pub cv: f64,
    /// Bias (mean / target − 1), a fraction (written as `bias_pct`, percent).
    #[serde(rename = "bias_pct", serialize_with = "crate::text::as_pct")]
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
    /// What each gun session (arm, target, device) reported besides its
    /// shots, in task order (report.html; not in compare_summary.json).
    pub sessions: Vec<GunSession>,
}

/// One gun arm's session at one target on one device: the dose-key value it
/// ran with and the model-validity warnings it raised.
#[derive(Debug, Clone, PartialEq)]
pub struct GunSession {
    /// Arm index.
    pub arm: usize,
    /// Target index.
    pub target: usize,
    /// Device index.
    pub unit: usize,
    /// The dose key's value, in the key's unit (the target, or the
    /// calibrated value).
    pub dose_value: f64,
    /// The session's warnings, in their fixed order.
    pub warnings: Vec<String>,
}

/// Run the study on `threads` threads; `progress` gets the number of finished tasks.
pub fn run(study: &Study, threads: usize, progress: &(dyn Fn(u64) + Sync)) -> Result<Outcome, StudyError> {
    run_cancellable(study, threads, progress, &AtomicBool::new(false))
}

/// [`run`] that stops with [`StudyError::Cancelled`] before its next task
/// once `cancel` is set (e.g. by Ctrl-C in the Python module); the tasks
/// running then finish first. A study never cancelled is [`run`].
pub fn run_cancellable(
    study: &Study,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
    cancel: &AtomicBool,
) -> Result<Outcome, StudyError> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build().expect("thread pool");
    pool.install(|| run_inner(study, progress, cancel))
}

fn run_inner(study: &Study, progress: &(dyn Fn(u64) + Sync), cancel: &AtomicBool) -> Result<Outcome, StudyError> {
    let (na, nt, nu) = (study.arms.len(), study.targets.len(), study.units);
    // Calibration of every (gun arm, target) first, in parallel.
    // Results are gathered in index order before the first error is taken,
    // so that a failing study reports the same error whatever the threads.
    let calibration: Vec<Result<Option<f64>, _>> =
        (0..na * nt).into_par_iter().map(|i| study.calibrate(i / nt, i % nt, &[])).collect();
    let calibration: Vec<Option<f64>> = calibration.into_iter().collect::<Result<_, _>>()?;
    let done = AtomicU64::new(0);
    let results: Vec<Result<TaskOut, _>> = (0..na * nt * nu)
        .into_par_iter()
        .map(|i| {
            if cancel.load(Ordering::Relaxed) {
                return Err(StudyError::Cancelled);
            }
            let (a, t, u) = (i / (nt * nu), (i / nu) % nt, i % nu);
            let r = study.task(a, t, u, calibration[a * nt + t]);
            progress(done.fetch_add(1, Ordering::Relaxed) + 1);
            r
        })
        .collect();
    let results: Vec<TaskOut> = results.into_iter().collect::<Result<_, _>>()?;
    let steps = results.iter().map(|r| r.1).sum();
    let mut sessions = Vec::new();
    let mut shots = Vec::new();
    for (rows, _, session) in results {
        shots.extend(rows);
        sessions.extend(session);
    }
    // Summaries, sequentially in a fixed order.
    let mut arms = Vec::new();
    for a in 0..na {
        for t in 0..nt {
            arms.push(arm_summary(study, &shots, a, t, calibration[a * nt + t]));
        }
    }
    let pairs = pairs(study, &shots);
    Ok(Outcome { shots, arms, pairs, steps, sessions })
}
