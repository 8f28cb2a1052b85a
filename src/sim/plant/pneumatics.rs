//! The pneumatic part of a step: valve mass flows, the hose (explicit
//! ladder or linearly implicit solve) and the chamber fed by the valve.

use super::cache::LineScratch;
use super::PlantState;
use crate::model::chamber::ChamberRates;
use crate::model::gas::R_AIR;
use crate::model::Params;

/// Solve a tridiagonal system in place (Thomas algorithm): `lower[i]`
/// multiplies x[i−1], `upper[i]` x[i+1]; the solution replaces `rhs`. The
/// systems here are diagonally dominant, so no pivoting is needed.
fn solve_tridiagonal(lower: &[f64], diag: &mut [f64], upper: &[f64], rhs: &mut [f64]) {
    let n = rhs.len();
    for i in 1..n {
        let m = lower[i] / diag[i - 1];
        diag[i] -= m * upper[i - 1];
        rhs[i] -= m * rhs[i - 1];
    }
    rhs[n - 1] /= diag[n - 1];
    for i in (0..n - 1).rev() {
        rhs[i] = (rhs[i] - upper[i] * rhs[i + 1]) / diag[i];
    }
}

/// The chamber's volume, its rate and its wall area at the start of a step.
pub(super) struct ChamberGeometry {
    /// Volume, m³.
    v_c: f64,
    /// Rate of change of the volume, m³/s.
    dv_c: f64,
    /// Wall area for heat transfer, m².
    a_w: f64,
}

impl ChamberGeometry {
    #[inline]
    pub(super) fn of(p: &Params, s: &PlantState) -> ChamberGeometry {
        let v_c = p.chamber.dead_volume + p.piston.area * s.x_p;
        let dv_c = p.piston.area * s.v_p;
        let bore = (4.0 * p.piston.area / std::f64::consts::PI).sqrt();
        let a_w = 2.0 * p.piston.area + std::f64::consts::PI * bore * v_c / p.piston.area;
        ChamberGeometry { v_c, dv_c, a_w }
    }

    /// The volume after `dt` at the current rate, m³.
    #[inline]
    fn end_volume(&self, dt: f64) -> f64 {
        self.v_c + dt * self.dv_c
    }
}

/// The valve seats' flows at the outlet node (the first line node, or the chamber).
pub(super) struct ValveFlows {
    /// Supply temperature, K.
    t_s: f64,
    /// Inlet mass flow into the outlet node, kg/s.
    pub(super) q_in: f64,
    /// Exhaust mass flow out of the outlet node (negative when drawing air in), kg/s.
    pub(super) q_ex: f64,
    /// ∂(inlet flow)/∂p_out, kg/(s·Pa).
    pub(super) dq_in: f64,
    /// ∂(flow from the atmosphere into the outlet)/∂p_out, kg/(s·Pa).
    dq_atm: f64,
    /// ∂(net inflow)/∂p_out, kg/(s·Pa).
    dq_net_dp: f64,
    /// The inlet is choked and open.
    pub(super) choked: bool,
}

impl ValveFlows {
    #[inline]
    pub(super) fn at(p: &Params, s: &PlantState, segs: usize) -> ValveFlows {
        let o = s.valve.opening;
        let t_s = p.supply.temperature;
        let (p_out, t_out) = if segs > 0 { (s.line_p[0], p.line.temperature) } else { (s.p_c, s.t_c) };
        let fin = p.valve.inlet.flow(o, s.p_reg, t_s, p_out, t_out);
        let fex = p.valve.exhaust.flow(1.0 - o, p.p_atm, p.t_ambient, p_out, t_out);
        // fex.q is the flow from the atmosphere into the outlet (negative when venting).
        ValveFlows {
            t_s,
            q_in: fin.q,
            q_ex: -fex.q,
            dq_in: fin.dq_dp2,
            dq_atm: fex.dq_dp2,
            dq_net_dp: fin.dq_dp2 + fex.dq_dp2,
            choked: fin.choked && o > 0.0,
        }
    }

    /// Flow from the atmosphere into the outlet node, kg/s.
    #[inline]
    fn q_atm(&self) -> f64 {
        -self.q_ex
    }
}
/// The pneumatic line solved linearly implicitly with the chamber (N + 1
/// pressures, tridiagonal); returns the line's largest Mach number.
pub(super) fn line_implicit(
    p: &Params,
    s: &mut PlantState,
    ls: &mut LineScratch,
    vf: &ValveFlows,
    geom: &ChamberGeometry,
    dt: f64,
) -> f64 {
    let segs = s.line_p.len();
    let line = &p.line;
    let a = line.area();
    let inert = line.length / segs as f64 / a;
    let k = line.polytropic * R_AIR * line.temperature / line.segment_volume();
    // Connection flows as affine functions of the new pressures:
    // w' = ŵ + c·(δ_a − δ_b), ŵ being the explicit prediction.
    for j in 0..segs {
        let pa = s.line_p[j];
        let pb = if j + 1 < segs { s.line_p[j + 1] } else { s.p_c };
        let w = s.line_w[j];
        let (dpf, g, _) = line.connection_drop(w, 0.5 * (pa + pb));
        let den = 1.0 + dt / inert * g;
        ls.w_hat[j] = (w + dt / inert * (pa - pb - dpf + g * w)) / den;
        ls.c[j] = dt / inert / den;
    }
    // Chamber rates at the predicted inflow, linearised in it.
    let w = ls.w_hat[segs - 1];
    let (qi, qo) = if w >= 0.0 { (w, 0.0) } else { (0.0, -w) };
    let r = p.chamber.rates(s.p_c, s.t_c, geom.v_c, geom.dv_c, qi, line.temperature, qo, geom.a_w);
    let gain = if w >= 0.0 { r.gain_in } else { r.gain_out };
    // Tridiagonal system in the pressure changes δ_0 … δ_{n−1}, δ_c.
    let kd = k * dt;
    ls.diag[0] = 1.0 - kd * vf.dq_net_dp + kd * ls.c[0];
    ls.upper[0] = -kd * ls.c[0];
    ls.rhs[0] = kd * (vf.q_in + vf.q_atm() - ls.w_hat[0]);
    for j in 1..segs {
        ls.lower[j] = -kd * ls.c[j - 1];
        ls.diag[j] = 1.0 + kd * (ls.c[j - 1] + ls.c[j]);
        ls.upper[j] = -kd * ls.c[j];
        ls.rhs[j] = kd * (ls.w_hat[j - 1] - ls.w_hat[j]);
    }
    ls.lower[segs] = -dt * gain * ls.c[segs - 1];
    ls.diag[segs] = 1.0 - dt * r.dp_dp_volume.min(0.0) + dt * gain * ls.c[segs - 1];
    ls.rhs[segs] = dt * r.dp;
    solve_tridiagonal(&ls.lower, &mut ls.diag, &ls.upper, &mut ls.rhs);
    let delta = &ls.rhs;
    let mut mach: f64 = 0.0;
    for j in 0..segs {
        s.line_w[j] = ls.w_hat[j] + ls.c[j] * (delta[j] - delta[j + 1]);
        s.line_p[j] += delta[j];
    }
    update_chamber(s, geom, &r, delta[segs], s.line_w[segs - 1], dt);
    for j in 0..segs {
        let pb = if j + 1 < segs { s.line_p[j + 1] } else { s.p_c };
        let rho = s.line_p[j].max(pb) / (R_AIR * line.temperature);
        mach = mach.max((s.line_w[j] / (rho * a)).abs() / line.wave_speed());
    }
    mach
}

/// The pneumatic line stepped explicitly (connection flows semi-implicit in
/// their friction, then the node pressures), the first node linearly
/// implicitly in its own pressure; returns the line's largest Mach number.
pub(super) fn line_explicit(p: &Params, s: &mut PlantState, vf: &ValveFlows, geom: &ChamberGeometry, dt: f64) -> f64 {
    let segs = s.line_p.len();
    let line = &p.line;
    let a = line.area();
    let lc = line.length / segs as f64;
    let inert = lc / a;
    let v_seg = line.segment_volume();
    let k = line.polytropic * R_AIR * line.temperature / v_seg;
    let mut mach: f64 = 0.0;
    // Connection flows (semi-implicit friction).
    for j in 0..segs {
        let pa = s.line_p[j];
        let pb = if j + 1 < segs { s.line_p[j + 1] } else { s.p_c };
        let w = s.line_w[j];
        let (dpf, g, _) = line.connection_drop(w, 0.5 * (pa + pb));
        s.line_w[j] = (w + dt / inert * (pa - pb - dpf + g * w)) / (1.0 + dt / inert * g);
        let rho = pa.max(pb) / (R_AIR * line.temperature);
        mach = mach.max((s.line_w[j] / (rho * a)).abs() / line.wave_speed());
    }
    // First node: linearly implicit in its own pressure.
    let f0 = k * (vf.q_in + vf.q_atm() - s.line_w[0]);
    let j0 = k * vf.dq_net_dp;
    s.line_p[0] += dt * f0 / (1.0 - dt * j0);
    for j in 1..segs {
        s.line_p[j] += dt * k * (s.line_w[j - 1] - s.line_w[j]);
    }
    // Chamber fed by the last connection.
    let w = s.line_w[segs - 1];
    let (qi, qo) = if w >= 0.0 { (w, 0.0) } else { (0.0, -w) };
    let r = p.chamber.rates(s.p_c, s.t_c, geom.v_c, geom.dv_c, qi, line.temperature, qo, geom.a_w);
    let dp = dt * r.dp / (1.0 - dt * r.dp_dp_volume.min(0.0));
    update_chamber(s, geom, &r, dp, w, dt);
    mach
}

/// The chamber fed directly by the valve (no line), linearly implicit in its
/// pressure through the seat flows' derivatives.
pub(super) fn chamber_at_valve(p: &Params, s: &mut PlantState, vf: &ValveFlows, geom: &ChamberGeometry, dt: f64) {
    let (qi, qo, gi, go) = {
        let mut qi = 0.0;
        let mut qo = vf.q_ex.max(0.0);
        if vf.q_in >= 0.0 {
            qi += vf.q_in;
        } else {
            qo -= vf.q_in;
        }
        if vf.q_ex < 0.0 {
            qi -= vf.q_ex;
        }
        (qi, qo, vf.dq_in, -vf.dq_atm)
    };
    let r = p.chamber.rates(s.p_c, s.t_c, geom.v_c, geom.dv_c, qi, vf.t_s, qo, geom.a_w);
    // ∂(dp/dt)/∂p: inflow derivative through gain_in, outflow through gain_out.
    let jac = r.dp_dp_volume.min(0.0) + r.gain_in * gi.min(0.0) - r.gain_out * go.max(0.0);
    let dp = dt * r.dp / (1.0 - dt * jac.min(0.0));
    let inflow = vf.q_in + vf.q_atm() + vf.dq_net_dp * dp;
    update_chamber(s, geom, &r, dp, inflow, dt);
}

/// Bring the chamber to its new pressure `p_c + dp`; an energy-model
/// chamber takes the temperature the gas law gives for the mass it holds
/// after a net inflow `inflow` (kg/s) over the step, so the gas the chamber
/// holds is the gas that flowed in (a temperature advanced by its own rate
/// drifts from it at first order in the step, and the supply with it).
#[inline]
fn update_chamber(s: &mut PlantState, geom: &ChamberGeometry, r: &ChamberRates, dp: f64, inflow: f64, dt: f64) {
    // Polytropic chambers keep their temperature (r.dt is 0): only an
    // energy-model chamber's temperature follows its mass.
    if r.dt != 0.0 {
        let m = s.p_c * geom.v_c / (R_AIR * s.t_c);
        let m_new = m + dt * inflow;
        let t_new = (s.p_c + dp) * geom.end_volume(dt) / (R_AIR * m_new);
        s.t_c = if m_new > 0.0 && t_new > 0.0 && t_new.is_finite() { t_new } else { heat(s.t_c, r.dt, dt) };
    }
    s.p_c += dp;
}

/// The chamber gas temperature `t_c` after `dt` at the rate `rate` (K/s),
/// exactly exponential. Not inlined, so that the exponential is not
/// evaluated speculatively where a polytropic chamber skips it.
#[inline(never)]
fn heat(t_c: f64, rate: f64, dt: f64) -> f64 {
    t_c * (dt * rate / t_c).exp()
}
