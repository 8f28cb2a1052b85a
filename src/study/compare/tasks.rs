//! The study's tasks: one unit of one arm at one target, its random streams
//! derived from the arm's name and the unit, its dose calibration, and the
//! manual or gun session it runs.

use super::{ArmKind, DoseSetting, GunSession, ShotRow, Study, StudyError};
use crate::control::manual::OperatorParams;
use crate::scenario::{Level, Uncertain};
use crate::sim::manual::{manual_params, manual_shot_stepped, Stepping};
use crate::sim::Plant;
use crate::study::sweep::{draw, simulate_per_shot};
use crate::study::task_rng;

/// What one task produced: its shots, its plant steps and, for a gun arm,
/// its session's notes.
pub(super) type TaskOut = (Vec<ShotRow>, u64, Option<GunSession>);

// Stream families (the `point` of `task_rng`); units and shots < 4096 keep
// the replicate index below 2^24.
const SHARED_UNIT: u64 = 1 << 36;
const SHARED_SHOT: u64 = 2 << 36;
const ARM_UNIT: u64 = 3 << 36;
const ARM_SHOT: u64 = 4 << 36;
pub(super) const PAIRS: u64 = 5 << 36;
const HAND: u64 = 6 << 36;

/// An arm's stream key from its name (FNV-1a, 20 bits), so adding or
/// reordering arms leaves the others' draws unchanged.
pub(super) fn arm_key(name: &str) -> u64 {
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
        sets.push(format!("seed={}", crate::study::splitmix(self.seed ^ ((t as u64) << 40) ^ unit as u64) >> 1));
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
    pub(super) fn calibrate(&self, a: usize, t: usize, device: &[String]) -> Result<Option<f64>, StudyError> {
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
    pub(super) fn task(&self, a: usize, t: usize, unit: usize, calibrated: Option<f64>) -> Result<TaskOut, StudyError> {
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
        let stepping = Stepping::of(&sc.solver);
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
            let r =
                manual_shot_stepped(&mut plant, operator, &plan, target, stepping).map_err(|e| fail(e.to_string()))?;
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
