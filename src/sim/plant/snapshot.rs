//! Saving and restoring the plant's state and signals without allocating.

use super::{Plant, PlantState, Signals};

/// A saved plant state and its signals ([`Plant::save`]).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// State.
    pub state: PlantState,
    /// Signals of the last step.
    pub signals: Signals,
}

impl Snapshot {
    /// A snapshot of `plant` now.
    pub fn of(plant: &Plant) -> Snapshot {
        Snapshot { state: plant.state.clone(), signals: plant.signals.clone() }
    }
}

pub(super) fn copy_state(d: &mut PlantState, s: &PlantState) {
    let PlantState {
        t,
        p_set,
        p_reg,
        p_res,
        valve,
        line_p,
        line_w,
        p_c,
        t_c,
        x_p,
        v_p,
        stuck,
        z,
        w_syr,
        p_s,
        q_tube,
        w_hub,
        p_hub,
        q_needle,
        v_bleb,
        expelled,
        delivered,
        leaked,
        supply_mass,
        syringe_empty,
    } = s;
    d.t = *t;
    d.p_set = *p_set;
    d.p_reg = *p_reg;
    d.p_res = *p_res;
    d.valve = *valve;
    copy_vec(&mut d.line_p, line_p);
    copy_vec(&mut d.line_w, line_w);
    d.p_c = *p_c;
    d.t_c = *t_c;
    d.x_p = *x_p;
    d.v_p = *v_p;
    d.stuck = *stuck;
    d.z = *z;
    d.w_syr = *w_syr;
    d.p_s = *p_s;
    d.q_tube = *q_tube;
    d.w_hub = *w_hub;
    d.p_hub = *p_hub;
    copy_vec(&mut d.q_needle, q_needle);
    copy_vec(&mut d.v_bleb, v_bleb);
    d.expelled = *expelled;
    copy_vec(&mut d.delivered, delivered);
    copy_vec(&mut d.leaked, leaked);
    d.supply_mass = *supply_mass;
    d.syringe_empty = *syringe_empty;
}

pub(super) fn copy_signals(d: &mut Signals, s: &Signals) {
    let Signals {
        q_valve_in,
        q_valve_ex,
        inlet_choked,
        p_site,
        re,
        q_leak,
        extrapolated,
        line_mach,
        q_total,
        delivered_total,
        breakaway,
    } = s;
    d.q_valve_in = *q_valve_in;
    d.q_valve_ex = *q_valve_ex;
    d.inlet_choked = *inlet_choked;
    copy_vec(&mut d.p_site, p_site);
    copy_vec(&mut d.re, re);
    copy_vec(&mut d.q_leak, q_leak);
    d.extrapolated = *extrapolated;
    d.line_mach = *line_mach;
    d.q_total = *q_total;
    d.delivered_total = *delivered_total;
    d.breakaway = *breakaway;
}

/// `d` becomes a copy of `s`, reusing its allocation; the lengths of one
/// plant (no line, one needle) are copied without a call to `memcpy`.
#[inline]
fn copy_vec(d: &mut Vec<f64>, s: &[f64]) {
    match (d.len(), s.len()) {
        (0, 0) => {}
        (1, 1) => d[0] = s[0],
        _ => {
            d.clear();
            d.extend_from_slice(s);
        }
    }
}
