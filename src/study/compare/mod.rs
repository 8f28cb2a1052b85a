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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rayon::prelude::*;

pub use load::load;

use super::sweep::{draw, simulate_per_shot};
use super::task_rng;
use crate::control::manual::OperatorParams;
use crate::scenario::{Level, Prepared, ScenarioError, Uncertain};
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

/// What one task produced: its shots, its plant steps and, for a gun arm,
/// its session's notes.
type TaskOut = (Vec<ShotRow>, u64, Option<GunSession>);

// Stream families (the `point` of `task_rng`); units and shots < 4096 keep
// the replicate index below 2^24.
const SHARED_UNIT: u64 = 1 << 36;
const SHARED_SHOT: u64 = 2 << 36;
const ARM_UNIT: u64 = 3 << 36;
const ARM_SHOT: u64 = 4 << 36;
const PAIRS: u64 = 5 << 36;
const HAND: u64 = 6 << 36;

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
        let ArmKind::Gun { dose: DoseSetting::Calibrate { key, lo, hi, .. }, .. } = &arm.kind else {
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
    fn task(&self, a: usize, t: usize, unit: usize, calibrated: Option<f64>) -> Result<TaskOut, StudyError> {
        match &self.arms[a].kind {
            ArmKind::Manual { operator, .. } => self.manual_task(a, t, unit, operator),
            ArmKind::Gun { dose, .. } => self.gun_task(a, t, unit, dose, calibrated),
        }
    }

    /// The error of task (arm `a`, target `t`, `unit`).
    fn fail(&self, a: usize, t: usize, unit: usize) -> impl Fn(String) -> StudyError + '_ {
        move |message: String| StudyError::Run {
            arm: self.arms[a].name.clone(),
            target_ul: self.targets_ul[t],
            unit,
            message,
        }
    }

    /// A manual task: one operator drawn from the arm's population gives
    /// every shot on one plant.
    fn manual_task(&self, a: usize, t: usize, unit: usize, operator: &OperatorParams) -> Result<TaskOut, StudyError> {
        let arm = &self.arms[a];
        let target = self.targets[t];
        let fail = self.fail(a, t, unit);
        let base = self.unit_sets(a, t, unit);
        let sc = self.scenario.with(&base).map_err(|e| fail(e.to_string()))?;
        let op = operator.draw_operator(&mut task_rng(self.seed, ARM_UNIT + arm_key(&arm.name), unit as u64 | 1 << 20));
        let mut plant = Plant::new(manual_params(sc.params.clone()));
        let dt = sc.solver.effective_step();
        let mut rows = Vec::with_capacity(self.shots);
        let per_shot = self.per_shot(a);
        for s in 0..self.shots {
            if per_shot {
                let shot_sc =
                    self.scenario.with(&self.shot_sets(a, t, unit, s, &base)).map_err(|e| fail(e.to_string()))?;
                plant.set_params(manual_params(shot_sc.params)).map_err(&fail)?;
            }
            let id = ((unit as u64) << 12) | s as u64;
            let mut rng = task_rng(self.seed, ARM_SHOT + (arm_key(&arm.name) << 12) + t as u64, id | 1 << 23);
            let plan = operator.draw_shot(&op, target, plant.params.syringe.area, &mut rng);
            let r = manual_shot(&mut plant, operator, &plan, target, dt).map_err(|e| fail(e.to_string()))?;
            rows.push(ShotRow {
                arm: a,
                target: t,
                unit,
                shot: s,
                dose: r.dose,
                leak: r.leak,
                peak_tissue_pressure: r.peak_tissue_pressure,
                duration: r.duration,
            });
        }
        Ok((rows, plant.steps(), None))
    }

    /// A gun task: one device's session, its dose key set to the target or
    /// to its calibrated value.
    fn gun_task(
        &self,
        a: usize,
        t: usize,
        unit: usize,
        dose: &DoseSetting,
        calibrated: Option<f64>,
    ) -> Result<TaskOut, StudyError> {
        let fail = self.fail(a, t, unit);
        let mut base = self.unit_sets(a, t, unit);
        base.push(format!("session.shots={}", self.shots));
        let value = match dose {
            DoseSetting::Direct { .. } => self.targets_ul[t],
            DoseSetting::Calibrate { each_unit: true, .. } => self.calibrate(a, t, &base)?.expect("a calibrated arm"),
            DoseSetting::Calibrate { .. } => calibrated.expect("calibrated first"),
        };
        let (DoseSetting::Direct { key } | DoseSetting::Calibrate { key, .. }) = dose;
        base.push(format!("{key}={value:?}"));
        let sc = self.scenario.with(&base).map_err(|e| fail(e.to_string()))?;
        let run = if let ArmKind::Gun { hand: Some(hand), .. } = &self.arms[a].kind {
            let per_shot = self.per_shot(a);
            let stream = HAND + (arm_key(&self.arms[a].name) << 12) + t as u64;
            let mut hook = |shot: usize, plant: &mut Plant| -> Result<(), String> {
                let mut params = if per_shot {
                    self.scenario.with(&self.shot_sets(a, t, unit, shot, &base)).map_err(|e| e.to_string())?.params
                } else {
                    sc.params.clone()
                };
                hand.apply(&mut params.sites, &mut task_rng(self.seed, stream, ((unit as u64) << 12) | shot as u64));
                plant.set_params(params)
            };
            let mut fw = crate::controller_for(&sc).map_err(|e| fail(e.to_string()))?;
            crate::simulate_hooked(&sc, fw.as_mut(), false, Some(&mut hook))
        } else if self.per_shot(a) {
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
            .map(|s| ShotRow {
                arm: a,
                target: t,
                unit,
                shot: s.index,
                dose: s.dose,
                leak: s.leak,
                peak_tissue_pressure: s.peak_tissue_pressure,
                duration: s.duration,
            })
            .collect();
        let session = GunSession { arm: a, target: t, unit, dose_value: value, warnings: run.result.warnings };
        Ok((rows, run.result.steps, Some(session)))
    }
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

/// The doses (µL) of arm `a` at target `t`, one group per unit.
fn doses_ul(study: &Study, shots: &[ShotRow], a: usize, t: usize) -> Vec<Vec<f64>> {
    let per = study.units * study.shots;
    let start = (a * study.targets.len() + t) * per;
    shots[start..start + per].chunks(study.shots).map(|c| c.iter().map(|s| s.dose * 1e9).collect()).collect()
}

/// The statistics of arm `a` at target `t`.
fn arm_summary(study: &Study, shots: &[ShotRow], a: usize, t: usize, calibrated: Option<f64>) -> ArmSummary {
    let arm = &study.arms[a];
    let per = study.units * study.shots;
    let groups = doses_ul(study, shots, a, t);
    let all: Vec<f64> = groups.iter().flatten().copied().collect();
    let d = crate::stats::describe(&all);
    let mut sorted = all.clone();
    sorted.sort_by(f64::total_cmp);
    let refs: Vec<&[f64]> = groups.iter().map(Vec::as_slice).collect();
    let (within, between) = variance_components(&refs);
    let start = (a * study.targets.len() + t) * per;
    let slice = &shots[start..start + per];
    let v = study.targets_ul[t];
    ArmSummary {
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
        calibrated,
        acceptance: accept(&all, v, &study.limits),
    }
}

/// Every pair of arms (a < b) at every target, target-major.
fn pairs(study: &Study, shots: &[ShotRow]) -> Vec<PairSummary> {
    let (na, nt) = (study.arms.len(), study.targets.len());
    let mut pairs = Vec::new();
    for t in 0..nt {
        for a in 0..na {
            for b in a + 1..na {
                let (ga, gb) = (doses_ul(study, shots, a, t), doses_ul(study, shots, b, t));
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
    pairs
}
