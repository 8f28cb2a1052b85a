//! Quiescence: when nothing but slow relaxation is left, the plant jumps
//! ahead with the closed-form solution of what still moves.

use super::{FirmwareLoop, Observer};
use crate::control::FwOutput;
use crate::model::chamber::Thermal;
use crate::model::gas::{CV_AIR, R_AIR};
use crate::sim::plant::Plant;

/// True when nothing but slow relaxation is left in the plant.
pub fn quiescent(plant: &Plant) -> bool {
    let s = &plant.state;
    let pa = plant.params.p_atm;
    plant.valve_at_rest()
        && (s.p_c - pa).abs() < 5.0
        && s.line_p.iter().all(|p| (p - pa).abs() < 5.0)
        && s.line_w.iter().all(|w| w.abs() < 1e-9)
        && s.v_p == 0.0
        && s.q_needle.iter().all(|q| q.abs() < 1e-12)
        && s.q_tube.abs() < 1e-12
}

/// Skip quiet time to `t_to` in closed form and tell the sensors and the observer.
pub(super) fn skip_to<O: Observer + ?Sized>(
    plant: &mut Plant,
    fw: &mut FirmwareLoop,
    observer: &mut O,
    applied: &FwOutput,
    t_to: f64,
) {
    fast_forward(plant, t_to);
    let pa = plant.params.p_atm;
    fw.sensors.settle([plant.state.p_reg - pa, plant.state.p_c - pa, plant.state.p_s - pa]);
    observer.observe(plant, 0.0, applied);
}

/// True when no more liquid can be delivered: the valve is at rest (its
/// inlet closed, so the chamber can only vent), every needle flow is under
/// 1 nL/s, the piston is not advancing and the chamber's push cannot break
/// the plunger loose. Used to end the last shot of a session; a hose may
/// still hold pressure, so with a line only full quiescence counts.
pub fn delivery_over(plant: &Plant) -> bool {
    let s = &plant.state;
    let p = &plant.params;
    let pa = p.p_atm;
    let push = (s.p_c - pa) * p.piston.area - (p.piston.spring_preload + p.piston.spring_rate * s.x_p);
    s.line_p.is_empty()
        && plant.valve_at_rest()
        && s.v_p <= 0.0
        && s.q_needle.iter().all(|q| q.abs() < 1e-12)
        && s.q_tube.abs() < 1e-12
        && push <= p.syringe.friction.break_loose + p.piston.seal_coulomb + p.syringe.area * (s.p_s - pa)
}

/// Jump to time `t_to` using the closed-form evolution of the slow states.
pub fn fast_forward(plant: &mut Plant, t_to: f64) {
    let dt = t_to - plant.state.t;
    if dt <= 0.0 {
        return;
    }
    let p = &plant.params;
    let s = &mut plant.state;
    let target = p.supply.target(s.p_set, s.p_res, 0.0);
    s.p_reg = p.supply.advance_output(s.p_reg, target, dt);
    for (v, site) in s.v_bleb.iter_mut().zip(&p.sites) {
        *v = site.relax_bleb(*v, dt);
    }
    if let Thermal::Energy { h, t_wall } = p.chamber.thermal {
        let v_c = p.chamber.dead_volume + p.piston.area * s.x_p;
        let bore = (4.0 * p.piston.area / std::f64::consts::PI).sqrt();
        let a_w = 2.0 * p.piston.area + std::f64::consts::PI * bore * v_c / p.piston.area;
        // Open to the exhaust at constant pressure: m·cp·dT/dt = h·A·(Tw − T).
        let m = s.p_c * v_c / (R_AIR * s.t_c);
        let tau = m * (CV_AIR + R_AIR) / (h * a_w).max(1e-30);
        s.t_c = t_wall + (s.t_c - t_wall) * (-dt / tau).exp();
    }
    s.valve.since_edge += dt;
    for q in &mut s.q_needle {
        *q = 0.0;
    }
    s.q_tube = 0.0;
    s.t = t_to;
}
