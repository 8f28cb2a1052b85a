//! The liquid part of a step: piston, plunger, syringe, tubing, hub and
//! needles eliminated in closed form, and the injection sites.

use super::cache::StepCache;
use super::{PlantState, Signals};
use crate::model::Params;

/// The needles' flows linearised at the start of a step, Q' = a + b·p_hub'
/// (gauge), and the active set of the one-way sites (open needles).
pub(super) struct NeedleLin<'a> {
    pub(super) a: &'a mut [f64],
    pub(super) b: &'a mut [f64],
    pub(super) open: &'a mut [bool],
}

impl NeedleLin<'_> {
    /// Linearise every needle and its site at the current flows (all open);
    /// writes the Reynolds numbers and returns whether a flow curve was
    /// evaluated beyond its table.
    #[inline]
    pub(super) fn linearise(&mut self, p: &Params, s: &PlantState, needle_ci: &[f64], re: &mut [f64]) -> bool {
        let n = self.a.len();
        let (needles, sites) = (&p.needles[..n], &p.sites[..n]);
        let (q_needle, v_bleb) = (&s.q_needle[..n], &s.v_bleb[..n]);
        let (needle_ci, re) = (&needle_ci[..n], &mut re[..n]);
        let (lin_a, lin_b, open) = (&mut self.a[..n], &mut self.b[..n], &mut self.open[..n]);
        let mut extrapolated = false;
        for k in 0..n {
            let q = q_needle[k];
            let d = needles[k].drop(q);
            let site = sites[k].at_flow(q.max(0.0), v_bleb[k]);
            let ci = needle_ci[k];
            let b = 1.0 / (ci + d.slope + site.slope);
            lin_a[k] = b * (ci * q - d.dp + d.slope * q - site.p + site.slope * q.max(0.0));
            lin_b[k] = b;
            open[k] = true;
            re[k] = d.re;
            extrapolated |= d.extrapolated;
        }
        extrapolated
    }

    /// Σa and Σb over the open needles.
    #[inline]
    fn open_sums(&self) -> (f64, f64) {
        let n = self.a.len();
        let (a, b, open) = (&self.a[..n], &self.b[..n], &self.open[..n]);
        let (mut sa, mut sb) = (0.0, 0.0);
        for k in 0..n {
            if open[k] {
                sa += a[k];
                sb += b[k];
            }
        }
        (sa, sb)
    }

    /// Active set: close any needle whose flow would reverse at hub gauge
    /// pressure `ph`; true if one was closed.
    #[inline]
    fn close_reversed(&mut self, ph: f64) -> bool {
        let n = self.a.len();
        let (a, b, open) = (&self.a[..n], &self.b[..n], &mut self.open[..n]);
        let mut changed = false;
        for k in 0..n {
            if open[k] && a[k] + b[k] * ph < 0.0 {
                open[k] = false;
                changed = true;
            }
        }
        changed
    }
}

/// The liquid chain syringe → tubing → head over one step: the piston's
/// forces, the compliances and the linearised tubing, fixed for the step.
pub(super) struct LiquidChain<'p> {
    pub(super) p: &'p Params,
    pub(super) cache: &'p StepCache,
    /// Forces on the piston other than friction and liquid (forward +), N.
    fp: f64,
    c_syr: f64,
    ps_g: f64,
    ph_g: f64,
    /// Tubing inertance/dt, its linearised drop and its compliance.
    tube_lin: Option<(f64, crate::model::hydraulics::Drop, f64)>,
    damping: f64,
}

impl<'p> LiquidChain<'p> {
    #[inline]
    pub(super) fn at(
        p: &'p Params,
        s: &PlantState,
        cache: &'p StepCache,
        c_syr: f64,
        f_ext: f64,
        damping: f64,
    ) -> LiquidChain<'p> {
        let pa = p.p_atm;
        LiquidChain {
            p,
            cache,
            fp: (s.p_c - pa) * p.piston.area - (p.piston.spring_preload + p.piston.spring_rate * s.x_p) + f_ext,
            c_syr,
            ps_g: s.p_s - pa,
            ph_g: s.p_hub - pa,
            tube_lin: p.tubing.as_ref().map(|t| (cache.tube_ci, t.conduit.drop(s.q_tube), t.compliance)),
            damping,
        }
    }

    /// Solve the chain with the active set of the needles and commit the
    /// flows and stored volumes; returns the piston's and the plunger's new
    /// velocities.
    #[inline]
    pub(super) fn solve(&self, s: &mut PlantState, lin: &mut NeedleLin, dt: f64) -> (f64, f64) {
        let n = lin.a.len();
        let area = self.p.syringe.area;
        let mut iterations = 0;
        loop {
            let (sa, sb) = lin.open_sums();
            // Q_out' = f0 + f1·p_s'.
            let (f0, f1, hub) = match self.tube_lin {
                Some((ci, d, ch)) => {
                    let den = 1.0 + dt * sb / ch;
                    let c0 = (self.ph_g - dt * sa / ch) / den;
                    let c1 = (dt / ch) / den;
                    let g = ci + d.slope + c1;
                    let f0 = (-c0 + ci * s.q_tube - d.dp + d.slope * s.q_tube) / g;
                    (f0, 1.0 / g, Some((c0, c1)))
                }
                None => (sa, sb, None),
            };
            // p_s' = h0 + h1·v.
            let den = 1.0 + dt * f1 / self.c_syr;
            let h0 = (self.ps_g - dt * f0 / self.c_syr) / den;
            let h1 = (dt * area / self.c_syr) / den;
            let (v, pv) = self.velocities(s, h0, h1, dt);
            let ps_new = h0 + h1 * pv;
            let q_out = f0 + f1 * ps_new;
            let ph_new = match hub {
                Some((c0, c1)) => c0 + c1 * q_out,
                None => ps_new,
            };
            let changed = lin.close_reversed(ph_new);
            iterations += 1;
            if !changed || iterations > n {
                self.commit(s, lin, ph_new, q_out, pv, dt);
                return (v, pv);
            }
        }
    }

    /// Piston and plunger velocities with the syringe pressure p_s' = h0 +
    /// h1·v: Karnopp stick-slip, then the end stops (front stop, home,
    /// bottom of the syringe).
    #[inline]
    fn velocities(&self, s: &PlantState, h0: f64, h1: f64, dt: f64) -> (f64, f64) {
        let (area, fp, m, damping) = (self.p.syringe.area, self.fp, self.p.piston.mass, self.damping);
        let (fric, seal) = (&self.cache.fric, &self.cache.seal);
        let (stroke, z_max) = (self.p.piston.stroke, self.cache.z_max);
        let engaged_force = fp - area * h0; // friction must cancel this to stay stuck
        let (mut v, mut pv) = if s.v_p > 0.0 || (s.stuck && engaged_force > fric.break_loose) {
            let dry = fric.dry(s.v_p.max(0.0));
            let v = (m * s.v_p / dt + fp - dry - area * h0) / (m / dt + fric.viscous + damping + area * h1);
            if v > 0.0 {
                (v, v)
            } else {
                (0.0, 0.0)
            }
        } else if s.v_p < 0.0 || (s.stuck && fp < -seal.break_loose) {
            let v = (m * s.v_p / dt + fp + seal.glide) / (m / dt + seal.viscous + damping);
            (v.min(0.0), 0.0)
        } else {
            (0.0, 0.0)
        };
        if s.x_p + dt * v > stroke {
            v = (stroke - s.x_p) / dt;
            pv = v.max(0.0);
        }
        if s.z + dt * pv > z_max {
            pv = (z_max - s.z).max(0.0) / dt;
            v = pv;
        }
        if s.x_p + dt * v < 0.0 {
            v = -s.x_p / dt;
        }
        (v, pv)
    }

    /// Commit the needle flows at hub gauge pressure `ph`, the tubing flow
    /// and the stored volumes.
    #[inline]
    fn commit(&self, s: &mut PlantState, lin: &NeedleLin, ph: f64, q_out: f64, pv: f64, dt: f64) {
        let n = lin.a.len();
        let (a, b, open) = (&lin.a[..n], &lin.b[..n], &lin.open[..n]);
        let mut q_sum = 0.0;
        for (k, q_k) in s.q_needle[..n].iter_mut().enumerate() {
            let q = if open[k] { (a[k] + b[k] * ph).max(0.0) } else { 0.0 };
            *q_k = q;
            q_sum += q;
        }
        let area = self.p.syringe.area;
        match self.p.tubing.as_ref() {
            Some(t) => {
                s.q_tube = q_out;
                s.w_hub += dt * (q_out - q_sum);
                s.p_hub = self.p.p_atm + s.w_hub / t.compliance;
                s.w_syr += dt * (area * pv - q_out);
            }
            None => {
                s.w_syr += dt * (area * pv - q_sum);
            }
        }
    }
}

/// The piston and the plunger after a step at velocities `v_new` and
/// `plunger_v`: position within its stops, stuck or sliding, plunger travel
/// and swept volume, an empty syringe.
#[inline]
pub(super) fn move_piston(p: &Params, s: &mut PlantState, v_new: f64, plunger_v: f64, z_max: f64, dt: f64) {
    let area = p.syringe.area;
    let stopped = v_new == 0.0;
    s.x_p = (s.x_p + dt * v_new).clamp(0.0, p.piston.stroke);
    s.v_p = if (s.x_p >= p.piston.stroke && v_new > 0.0) || (s.x_p <= 0.0 && v_new < 0.0) { 0.0 } else { v_new };
    s.stuck = stopped || s.v_p == 0.0;
    s.z += dt * plunger_v;
    s.expelled += dt * area * plunger_v;
    if s.z >= z_max - 1e-15 {
        s.syringe_empty = true;
    }
}

/// The sites after a step: reflux split, bleb growth with the exact
/// absorption decay, delivered and refluxed volumes, and their signals.
#[inline]
pub(super) fn update_sites(p: &Params, s: &mut PlantState, absorb_decay: &[f64], sig: &mut Signals, dt: f64) {
    let n = absorb_decay.len();
    let sites = &p.sites[..n];
    let mut q_total = 0.0;
    let mut delivered_total = 0.0;
    let (q_needle, v_bleb) = (&s.q_needle[..n], &mut s.v_bleb[..n]);
    let (delivered, leaked) = (&mut s.delivered[..n], &mut s.leaked[..n]);
    let (p_site, q_leak) = (&mut sig.p_site[..n], &mut sig.q_leak[..n]);
    for k in 0..n {
        let q = q_needle[k];
        q_total += q;
        let site = sites[k].at_flow(q, v_bleb[k]);
        let q_tis = q - site.q_leak;
        v_bleb[k] = sites[k].grow_bleb(v_bleb[k], q_tis, absorb_decay[k], dt);
        delivered[k] += dt * q_tis;
        leaked[k] += dt * site.q_leak;
        p_site[k] = if q > 0.0 { site.p } else { sites[k].static_pressure(v_bleb[k]) };
        q_leak[k] = site.q_leak;
        delivered_total += delivered[k];
    }
    sig.q_total = q_total;
    sig.delivered_total = delivered_total;
}
