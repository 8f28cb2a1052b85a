//! Model-validity and event warnings of a session, one function per element.

use super::ShotRecord;
use crate::sim::plant::Plant;

/// Model-validity and event warnings of a session, in a fixed order
/// (`step` is the fixed mode's step, s; `adaptive` whether the run stepped adaptively).
pub(super) fn warnings(
    plant: &Plant,
    shots: &[ShotRecord],
    stopped: Option<&str>,
    step: f64,
    adaptive: bool,
) -> Vec<String> {
    let mut w = Vec::new();
    needle_warnings(&mut w, plant, shots);
    element_warnings(&mut w, plant, shots);
    flow_warnings(&mut w, shots, step, adaptive);
    stroke_warnings(&mut w, plant, shots);
    if let Some(msg) = stopped {
        w.push(format!("session stopped early: {msg}"));
    }
    w
}

/// Shots of `shots` for which `f` holds.
fn count(shots: &[ShotRecord], f: impl Fn(&ShotRecord) -> bool) -> usize {
    shots.iter().filter(|s| f(s)).count()
}

/// The needle flow regime: turbulence, shear-thinning validity, the flow
/// curve's range, developing flow and the deprecated lumped loss.
fn needle_warnings(w: &mut Vec<String>, plant: &Plant, shots: &[ShotRecord]) {
    let newtonian = plant.params.fluid.is_newtonian();
    let max_re = shots.iter().map(|s| s.max_re).fold(0.0, f64::max);
    if newtonian && max_re > 2000.0 {
        w.push(format!(
            "needle flow left the laminar regime in {} of {} shots (max Re {:.0}): Hagen–Poiseuille alone would under-predict the pressure drop; the smooth laminar–turbulent blend (Blasius above Re 4000) is used",
            count(shots, |s| s.max_re > 2000.0),
            shots.len(),
            max_re
        ));
    }
    if newtonian && max_re > 1e5 {
        w.push(format!("max Re {max_re:.0} exceeds 1e5, beyond the Blasius correlation's validity"));
    }
    if !newtonian && max_re > 2100.0 {
        w.push(format!(
            "Metzner–Reed Reynolds number {max_re:.0} exceeds 2100: the laminar generalized-Newtonian needle model is outside its validity"
        ));
    }
    if shots.iter().any(|s| s.flags.extrapolated) {
        w.push("a needle flow exceeded 100 mL/s, beyond the tabulated flow curve (extrapolated)".into());
    }
    let lumped = plant.params.needles.iter().any(|n| !n.developing);
    let entrance = shots.iter().map(|s| s.flags.entrance_ratio).fold(0.0, f64::max);
    if entrance > 1.0 {
        w.push(if lumped {
            format!(
                "the entrance length reaches {entrance:.1}× the needle length: the flow is developing over the whole needle; the lumped needle.minor_loss_k accounts for it only approximately"
            )
        } else {
            format!(
                "the entrance length reaches {entrance:.1}× the needle length: the flow is developing over the whole needle (Shah's apparent friction below Re 2000; the transitional blend is uncertain)"
            )
        });
    }
    if lumped {
        w.push(
            "needle.minor_loss_k is deprecated: it lumps the entrance, exit and developing-flow losses into one constant (too high in turbulent flow and for short needles); give needle.entrance_loss_k and needle.exit_loss_k instead, and the developing flow is modelled"
                .into(),
        );
    }
}

/// The tissue sites' validated range and the pneumatic line's Mach number.
fn element_warnings(w: &mut Vec<String>, plant: &Plant, shots: &[ShotRecord]) {
    if let Some(site) = plant.params.sites.first() {
        let volume = shots.iter().map(|s| s.flags.site_volume).fold(0.0, f64::max);
        let flow = shots.iter().map(|s| s.flags.site_flow).fold(0.0, f64::max);
        if let Some(msg) = site.validated.outside(volume, flow) {
            w.push(msg);
        }
    }
    let mach = shots.iter().map(|s| s.flags.line_mach).fold(0.0, f64::max);
    if mach > 0.3 {
        w.push(format!(
            "pneumatic line Mach number reaches {mach:.2} (> 0.3): the lumped line is outside its validity"
        ));
    }
}

/// Reflux to the skin surface, plunger stick-slip and mid-stroke near-sticks.
fn flow_warnings(w: &mut Vec<String>, shots: &[ShotRecord], step: f64, adaptive: bool) {
    let leaky = count(shots, |s| s.leak > 1e-12);
    if leaky > 0 {
        let total: f64 = shots.iter().map(|s| s.leak).sum();
        w.push(format!(
            "{:.2} µL refluxed to the skin surface in {} of {} shots (site pressure above the leak pressure)",
            total * 1e9,
            leaky,
            shots.len()
        ));
    }
    let slip = count(shots, |s| s.breakaways > 1);
    if slip > 0 {
        let worst = shots.iter().map(|s| s.breakaways).max().unwrap_or(0);
        w.push(format!(
            "the plunger stick-slipped in {} of {} shots (up to {} breakaways in a shot): the drive force is close to the stopper friction, so the dose depends on the friction law's details and converges slowly with the step ({})",
            slip,
            shots.len(),
            worst,
            finer_step(step, adaptive)
        ));
    }
    let near: Vec<(f64, f64)> = shots.iter().filter_map(|s| s.flags.near_stick).collect();
    if let Some(&(low, peak)) = near.iter().min_by(|a, b| (a.0 / a.1).total_cmp(&(b.0 / b.1))) {
        use crate::text::g6;
        w.push(format!(
            "the plunger nearly stuck mid-stroke in {} of {} shots (it slowed to {} mm/s from {} mm/s and sped up again without stopping): the first-order step damps the plunger's oscillation on the liquid, so a finer step may find it sticking there, which changes the dose ({})",
            near.len(),
            shots.len(),
            g6(low * 1e3),
            g6(peak * 1e3),
            finer_step(step, adaptive)
        ));
    }
}

/// A finer step to check a step-sensitive result with than the run's `step`
/// (s), in the fixed mode: the adaptive mode's error estimate does not see
/// the events these warnings are about before they happen.
fn finer_step(step: f64, adaptive: bool) -> String {
    if adaptive {
        format!("check with solver.mode = \"fixed\" and solver.step_us ≤ {}", crate::text::g6((step * 1e6).min(10.0)))
    } else if step > 10.5e-6 {
        "check with solver.step_us ≤ 10".to_string()
    } else {
        format!(
            "the run already steps at {} µs: check with solver.step_us = {}",
            crate::text::g6(step * 1e6),
            crate::text::g6(step * 0.5e6)
        )
    }
}

/// Shots limited by the piston's stroke, and dry shots.
fn stroke_warnings(w: &mut Vec<String>, plant: &Plant, shots: &[ShotRecord]) {
    let stroke = count(shots, |s| s.hit_stroke);
    if stroke > 0 {
        w.push(format!(
            "the piston reached its front stop in {} of {} shots: those doses are limited by the stroke",
            stroke,
            shots.len()
        ));
    }
    let dry = count(shots, |s| s.dose < DRY_SHOT);
    if let Some(first) = shots.iter().find(|s| s.dose < DRY_SHOT) {
        let reservoir =
            if plant.params.supply.reservoir.is_some() { "; the finite supply reservoir may be exhausted" } else { "" };
        w.push(format!(
            "{} of {} shots delivered less than 1 nL (the first: shot {}, supply at {} kPa at its start{reservoir}): their doses are zero",
            dry,
            shots.len(),
            first.index,
            crate::text::g6(first.supply_pressure_start / 1e3),
        ));
    }
}

/// A shot that delivered less than this (1 nL) delivered nothing, m³.
const DRY_SHOT: f64 = 1e-12;
