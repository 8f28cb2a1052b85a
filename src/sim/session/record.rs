//! A shot's record: started at the trigger, folded step by step, finished
//! with its doses and t90, and checked for volume conservation.

use super::{Flags, NeedleShot, ShotRecord};
use crate::sim::plant::{Plant, SimError};
use crate::sim::PlantState;

impl ShotRecord {
    pub(super) fn starting(index: usize, t_start: f64, s0: &PlantState, pa: f64, n: usize) -> ShotRecord {
        ShotRecord {
            index,
            t_start,
            duration: 0.0,
            open_time_cmd: 0.0,
            dose: 0.0,
            leak: 0.0,
            expelled: 0.0,
            stored_change: 0.0,
            peak_flow: 0.0,
            peak_syringe_pressure: 0.0,
            peak_tissue_pressure: 0.0,
            peak_chamber_pressure: 0.0,
            t90: f64::NAN,
            valve_open_effective: 0.0,
            valve_t_on: f64::NAN,
            valve_t_off: f64::NAN,
            max_re: 0.0,
            supply_pressure_start: s0.p_reg - pa,
            chamber_pressure_start: s0.p_c - pa,
            chamber_temperature_start: s0.t_c,
            piston_start: s0.x_p,
            plunger_end: 0.0,
            inlet_choked: false,
            hit_stroke: false,
            steps: 0,
            breakaways: 0,
            needles: vec![NeedleShot { dose: 0.0, leak: 0.0, peak_site_pressure: 0.0, max_re: 0.0 }; n],
            flags: Flags::default(),
        }
    }

    /// Fold one step into the record; `t_rel` is the time since the trigger,
    /// `t_rise`/`t_fall` the drive's edges (NaN before they happen).
    #[inline]
    pub(super) fn accumulate(&mut self, plant: &Plant, t_rel: f64, h: f64, t_rise: f64, t_fall: f64, pa: f64) {
        let s = &plant.state;
        let sig = &plant.signals;
        self.peak_flow = self.peak_flow.max(sig.q_total);
        self.peak_syringe_pressure = self.peak_syringe_pressure.max(s.p_s - pa);
        self.peak_chamber_pressure = self.peak_chamber_pressure.max(s.p_c - pa);
        self.valve_open_effective += h * s.valve.opening;
        if self.valve_t_on.is_nan() && !t_rise.is_nan() && s.valve.opening >= 0.9 {
            self.valve_t_on = t_rel - t_rise;
        }
        if self.valve_t_off.is_nan() && !t_fall.is_nan() && s.valve.opening <= 0.1 {
            self.valve_t_off = t_rel - t_fall;
        }
        self.inlet_choked |= sig.inlet_choked;
        self.breakaways += sig.breakaway as u32;
        self.hit_stroke |= s.x_p >= plant.params.piston.stroke;
        self.flags.extrapolated |= sig.extrapolated;
        self.flags.line_mach = self.flags.line_mach.max(sig.line_mach);
        self.flags.slide(s.v_p);
        // One pass over the needles, on slices of one length.
        let n = self.needles.len();
        let (p_site, re) = (&sig.p_site[..n], &sig.re[..n]);
        let (v_bleb, q_needle) = (&s.v_bleb[..n], &s.q_needle[..n]);
        let (mut site_volume, mut site_flow) = (self.flags.site_volume, self.flags.site_flow);
        for (k, ns) in self.needles.iter_mut().enumerate() {
            ns.peak_site_pressure = ns.peak_site_pressure.max(p_site[k]);
            ns.max_re = ns.max_re.max(re[k]);
            site_volume = site_volume.max(v_bleb[k]);
            site_flow = site_flow.max(q_needle[k]);
        }
        self.flags.site_volume = site_volume;
        self.flags.site_flow = site_flow;
    }

    pub(super) fn finish(&mut self, plant: &Plant, s0: &PlantState, steps_before: u64, cumulative: &[(f64, f64)]) {
        let s = &plant.state;
        self.duration = s.t - self.t_start;
        self.steps = plant.steps() - steps_before;
        self.expelled = s.expelled - s0.expelled;
        self.stored_change = (s.w_syr + s.w_hub) - (s0.w_syr + s0.w_hub);
        self.plunger_end = s.z;
        for i in 0..self.needles.len() {
            let ns = &mut self.needles[i];
            ns.dose = s.delivered[i] - s0.delivered[i];
            ns.leak = s.leaked[i] - s0.leaked[i];
            self.dose += ns.dose;
            self.leak += ns.leak;
            self.peak_tissue_pressure = self.peak_tissue_pressure.max(ns.peak_site_pressure);
            self.max_re = self.max_re.max(ns.max_re);
            let ratio = plant.params.needles[i].entrance_length(ns.max_re) / plant.params.needles[i].length;
            self.flags.entrance_ratio = self.flags.entrance_ratio.max(ratio);
        }
        self.t90 = time_to_fraction(cumulative, 0.9 * self.dose);
    }
}

/// The invariants of a finished shot: the plunger's swept volume is the
/// delivered dose plus the reflux plus the change of the volume stored by
/// compression (to 1e-6 of the largest term), and no needle delivers or
/// refluxes a negative volume.
pub(super) fn check_shot(rec: &ShotRecord, plant: &Plant) -> Result<(), SimError> {
    use crate::text::g6;
    let t_ms = plant.state.t * 1e3;
    let ul = |v: f64| g6(v * 1e9);
    check_balance(rec.index, t_ms, rec.expelled, rec.dose, rec.leak, rec.stored_change)?;
    for (i, n) in rec.needles.iter().enumerate() {
        if !(n.dose >= -1e-18 && n.leak >= -1e-18) {
            return Err(SimError::Invariant {
                component: "tissue",
                t_ms,
                state: format!(
                    "needle {} of shot {} delivered {} µL and refluxed {} µL: volumes cannot be negative",
                    i + 1,
                    rec.index + 1,
                    ul(n.dose),
                    ul(n.leak)
                ),
            });
        }
    }
    Ok(())
}

/// Volume conservation of shot `index` (from 0), ending at `t_ms`: the
/// swept volume equals delivered + reflux + stored change to 1e-6 of the
/// largest term, and the dose and reflux are not negative.
pub fn check_balance(
    index: usize,
    t_ms: f64,
    expelled: f64,
    dose: f64,
    leak: f64,
    stored_change: f64,
) -> Result<(), SimError> {
    use crate::text::g6;
    let ul = |v: f64| g6(v * 1e9);
    let balance = expelled - dose - leak - stored_change;
    let scale = expelled.abs().max(dose.abs()).max(leak.abs()).max(stored_change.abs()).max(1e-12);
    if balance.abs() <= 1e-6 * scale && dose >= -1e-18 && leak >= -1e-18 {
        return Ok(());
    }
    Err(SimError::Invariant {
        component: "syringe",
        t_ms,
        state: format!(
            "volume not conserved in shot {}: expelled {} µL, delivered {} µL, reflux {} µL, stored change {} µL (imbalance {} µL)",
            index + 1,
            ul(expelled),
            ul(dose),
            ul(leak),
            ul(stored_change),
            ul(balance)
        ),
    })
}

fn time_to_fraction(cum: &[(f64, f64)], target: f64) -> f64 {
    if target <= 0.0 {
        return f64::NAN;
    }
    let mut prev = (0.0, 0.0);
    for &(t, v) in cum {
        if v >= target {
            let f = if v > prev.1 { (target - prev.1) / (v - prev.1) } else { 1.0 };
            return prev.0 + f * (t - prev.0);
        }
        prev = (t, v);
    }
    f64::NAN
}
