//! The study's statistics: each arm's accuracy and precision at each
//! target, and the paired comparisons between arms.

use super::tasks::PAIRS;
use super::{ArmKind, ArmSummary, PairSummary, ShotRow, Study};
use crate::stats::compare::{brown_forsythe, cv_ratio_interval, f_test, variance_components};
use crate::stats::tolerance::accept;
use crate::study::task_rng;

/// The doses (µL) of arm `a` at target `t`, one group per unit.
fn doses_ul(study: &Study, shots: &[ShotRow], a: usize, t: usize) -> Vec<Vec<f64>> {
    let per = study.units * study.shots;
    let start = (a * study.targets.len() + t) * per;
    shots[start..start + per].chunks(study.shots).map(|c| c.iter().map(|s| s.dose * 1e9).collect()).collect()
}

/// The statistics of arm `a` at target `t`.
pub(super) fn arm_summary(study: &Study, shots: &[ShotRow], a: usize, t: usize, calibrated: Option<f64>) -> ArmSummary {
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
pub(super) fn pairs(study: &Study, shots: &[ShotRow]) -> Vec<PairSummary> {
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
