//! Closed-form validation of the plant elements (`docs/validation.md`:
//! published cases VC1–VC4, VC13 and internal analytic checks).

use crate::util::rel;
use mesobench::model::fluid::{Fluid, Rheology};
use mesobench::model::gas::{darcy_friction, sanville, Iso6358, DM3_PER_S_BAR, T_ANR};
use mesobench::model::hydraulics::Conduit;
use mesobench::model::syringe::Storage;
use mesobench::model::tissue::TissueParams;
use mesobench::model::valve::Actuation;
use mesobench::reference::{Blowdown, ChokedFill, Poiseuille};

fn blocked_plant(sets: &[&str]) -> mesobench::sim::Plant {
    crate::util::use_plugin_host();
    mesobench::reference::blocked_plant(sets).expect("valid scenario")
}
use std::f64::consts::PI;

fn water() -> Fluid {
    Fluid {
        name: "water".into(),
        density: 1000.0,
        compressibility: 4.6e-10,
        rheology: Rheology::Newtonian { mu: 1.0e-3 },
    }
}

#[test]
fn hagen_poiseuille_at_low_reynolds() {
    let needle = Poiseuille::NEEDLE_30G;
    let c = needle.conduit();
    for q in [1e-10, 1e-9, 5e-9] {
        let drop = c.drop(q);
        assert!(drop.re < 100.0, "Re {}", drop.re);
        let hp = needle.exact_drop(q);
        assert!(rel(drop.dp, hp) < 1e-12, "{} vs {}", drop.dp, hp);
        assert!(rel(drop.slope, hp / q) < 1e-12);
        assert!(rel(drop.re, 4.0 * 1000.0 * q / (PI * 1.0e-3 * needle.diameter)) < 1e-12);
    }
}

#[test]
fn needle_table_of_physics_reference() {
    // docs/physics.md, *Needle hydraulics* [D], water at 20 °C: 30G × 13 mm at 0.01 mL/s gives
    // ΔP_HP 8.3 kPa, Re 80; 32G × 4 mm at 0.01 mL/s gives 12 kPa, Re 118.
    let c = Conduit::new(13e-3, 0.159e-3, 0.0, &water());
    let d = c.drop(1e-8);
    assert!(rel(d.dp, 8.3e3) < 0.02, "{}", d.dp);
    assert!(rel(d.re, 80.0) < 0.02, "{}", d.re);
    let c = Conduit::new(4e-3, 0.108e-3, 0.0, &water());
    let d = c.drop(1e-8);
    assert!(rel(d.dp, 12e3) < 0.04, "{}", d.dp);
    assert!(rel(d.re, 118.0) < 0.02, "{}", d.re);
}

#[test]
fn minor_losses_add_the_kinetic_term() {
    let (l, d, k) = (4e-3, 0.159e-3, 2.5);
    let plain = Conduit::new(l, d, 0.0, &water());
    let lossy = Conduit::new(l, d, k, &water());
    let q = 5e-9;
    let v = q / (PI * d * d / 4.0);
    assert!(rel(lossy.drop(q).dp - plain.drop(q).dp, k * 1000.0 * v * v / 2.0) < 1e-10);
}

#[test]
fn friction_blend_is_continuous_and_meets_blasius() {
    let eps = 1e-6;
    for re in [2000.0, 4000.0] {
        let (a, da) = darcy_friction(re - eps);
        let (b, db) = darcy_friction(re + eps);
        assert!((a - b).abs() < 1e-9, "value jump at Re {re}");
        assert!((da - db).abs() < 1e-7, "slope jump at Re {re}: {da} vs {db}");
    }
    assert!(rel(darcy_friction(1e4).0, 0.3164 / 1e4f64.powf(0.25)) < 1e-12);
    assert!(rel(darcy_friction(500.0).0, 64.0 / 500.0) < 1e-12);
    // The pressure drop rises monotonically with flow through the blend.
    let c = Conduit::new(13e-3, 0.159e-3, 0.0, &water());
    let mut last = 0.0;
    for i in 1..400 {
        let dp = c.drop(i as f64 * 2e-9).dp;
        assert!(dp > last);
        last = dp;
    }
    // 30G × 13 mm at 0.42 mL/s, Re ≈ 3360: laminar 348 kPa, Blasius 759 kPa [D];
    // the blend lies between them.
    let d = c.drop(0.42e-6);
    assert!(d.dp > 348e3 && d.dp < 759e3, "{}", d.dp);
}

#[test]
fn rabinowitsch_matches_the_power_law_closed_form() {
    // docs/physics.md, *Fluids and rheology* [D]: K = 5 Pa·sⁿ, n = 0.4 through 30G × 13 mm: 107 kPa at
    // 0.01 mL/s and 269 kPa at 0.1 mL/s; the tabulated Rabinowitsch integral
    // must reproduce the closed form.
    let (k, n, l, d) = (5.0, 0.4, 13e-3, 0.159e-3);
    let fluid = Fluid {
        name: "pl".into(),
        density: 1000.0,
        compressibility: 4.6e-10,
        rheology: Rheology::PowerLaw { k, n, eta0: 1e6 },
    };
    let c = Conduit::new(l, d, 0.0, &fluid);
    for q in [1e-9, 1e-8, 1e-7, 5e-7] {
        let closed = 4.0 * k * l / d * ((3.0 * n + 1.0) / (4.0 * n) * 32.0 * q / (PI * d.powi(3))).powf(n);
        assert!(rel(c.drop(q).dp, closed) < 1e-3, "Q {q}: {} vs {}", c.drop(q).dp, closed);
    }
    assert!(rel(c.drop(1e-8).dp, 107e3) < 0.01);
    assert!(rel(c.drop(1e-7).dp, 269e3) < 0.01);
}

#[test]
fn carreau_reduces_to_poiseuille_at_low_shear() {
    let fluid = Fluid {
        name: "c".into(),
        density: 1000.0,
        compressibility: 4.6e-10,
        rheology: Rheology::Carreau { eta0: 2.0, eta_inf: 1e-3, lambda: 1e-6, n: 0.4 },
    };
    let (l, d) = (13e-3, 0.159e-3);
    let c = Conduit::new(l, d, 0.0, &fluid);
    let q = 1e-10; // wall shear ≈ 250 1/s, λγ̇ ≈ 2.5e-4
    let hp = 128.0 * 2.0 * l * q / (PI * d.powi(4));
    assert!(rel(c.drop(q).dp, hp) < 1e-3, "{} vs {hp}", c.drop(q).dp);
}

#[test]
fn iso6358_catalogue_worked_example_vc1() {
    // SMC: C = 2 dm³/(s·bar), b = 0.3, P1 = 0.4 MPa(g), P2 = 0.3 MPa(g), 20 °C, m = 0.5:
    // 600 dm³/min ANR choked, flow ratio 0.7 at pressure ratio 0.8 → 420 dm³/min (±1 %).
    let e = Iso6358 { c: 2.0 * DM3_PER_S_BAR, b: 0.3, m: 0.5 };
    let t = 293.15;
    let to_lpm = |q_mass: f64| Iso6358::anr_volume_flow(q_mass) * 1e3 * 60.0;
    let sub = e.flow(1.0, 0.5e6, t, 0.4e6, t);
    assert!(!sub.choked);
    assert!(rel(to_lpm(sub.q), 420.0) < 0.01, "{}", to_lpm(sub.q));
    let choked = e.flow(1.0, 0.5e6, t, 0.1e6, t);
    assert!(choked.choked);
    assert!(rel(to_lpm(choked.q), 600.0) < 1e-9);
    // Below b the flow does not depend on the downstream pressure.
    assert_eq!(e.flow(1.0, 0.5e6, t, 0.05e6, t).q, choked.q);
    // Reverse flow is the mirror image.
    assert!(rel(-e.flow(1.0, 0.4e6, t, 0.5e6, t).q, sub.q) < 1e-12);
    // The analytic derivative matches a finite difference, in both directions.
    for (p1, p2) in [(0.5e6, 0.4e6), (0.5e6, 0.49995e6), (0.4e6, 0.5e6)] {
        let h = 1.0;
        let fd = (e.flow(1.0, p1, t, p2 + h, t).q - e.flow(1.0, p1, t, p2 - h, t).q) / (2.0 * h);
        assert!(rel(e.flow(1.0, p1, t, p2, t).dq_dp2, fd) < 1e-4, "{p1} {p2}");
    }
}

#[test]
fn choked_threshold_of_an_ideal_orifice_vc2() {
    // 80 psig upstream: mass flow independent of downstream below 35.30 psig (±0.2 psi).
    let atm_psi = 14.696;
    let threshold = (80.0 + atm_psi) * sanville::critical_ratio() - atm_psi;
    assert!((threshold - 35.30).abs() < 0.2, "{threshold}");
    // C1 and C2 are usually quoted for R = 287; mesobench uses R = 287.05 J/(kg·K).
    assert!(rel(sanville::c1(), 0.040418) < 2e-4);
    assert!(rel(sanville::c2(), 0.156174) < 2e-4);
}

#[test]
fn conductance_to_effective_area_vc3() {
    // S[mm²] ≈ 5.0 × C[dm³/(s·bar)] (CKD), ours 5.02 (±3 %).
    let s = sanville::effective_area_from_conductance(DM3_PER_S_BAR) * 1e6;
    assert!(rel(s, 5.0) < 0.03, "{s}");
    // And the two choked flows agree at that area.
    let e = Iso6358 { c: DM3_PER_S_BAR, b: 0.5283, m: 0.5 };
    let q_iso = e.flow(1.0, 4e5, T_ANR, 1e5, T_ANR).q;
    let q_sv = sanville::mass_flow(s * 1e-6, 4e5, T_ANR, 1e5);
    assert!(rel(q_iso, q_sv) < 1e-9);
}

#[test]
fn isentropic_tank_blowdown() {
    // A closed adiabatic chamber vents through a choked exhaust; the exact
    // pressure and temperature are in mesobench::reference::Blowdown.
    let mut ref_ = Blowdown::new().expect("valid");
    let dt = 2e-6;
    let end = ref_.end_pressure();
    let mut worst: f64 = 0.0;
    let mut n = 0;
    while ref_.plant.state.p_c > end {
        ref_.plant.step(false, dt).unwrap();
        worst = worst.max(rel(ref_.plant.state.p_c, ref_.exact_pressure(ref_.plant.state.t)));
        n += 1;
    }
    assert!(n > 1000, "blowdown too short to test: {n} steps");
    assert!(worst < 2e-3, "worst relative error {worst}");
    // The gas cooled isentropically: T/T_i = (p/p_i)^((γ−1)/γ).
    let t_exact = ref_.exact_temperature(ref_.plant.state.p_c);
    assert!(rel(ref_.plant.state.t_c, t_exact) < 2e-3, "{} vs {t_exact}", ref_.plant.state.t_c);
}

#[test]
fn choked_fill_is_a_linear_ramp() {
    // Polytropic chamber, constant supply, valve open: a linear ramp while
    // choked (mesobench::reference::ChokedFill).
    let mut ref_ = ChokedFill::new().expect("valid");
    let slope = ref_.exact_slope();
    let end = ref_.end_pressure();
    let dt = 1e-6;
    let mut samples = Vec::new();
    let plant = &mut ref_.plant;
    while plant.state.p_c < end {
        plant.step(true, dt).unwrap();
        if plant.state.valve.opening >= 1.0 && plant.state.p_c > 1.05 * plant.params.p_atm {
            samples.push((plant.state.t, plant.state.p_c));
        }
    }
    let (t, p): (Vec<f64>, Vec<f64>) = samples.into_iter().unzip();
    let (_, fitted, r2) = mesobench::stats::linear_fit(&t, &p);
    assert!(rel(fitted, slope) < 1e-3, "{fitted} vs {slope}");
    assert!(r2 > 0.99999, "{r2}");
}

#[test]
fn valve_opening_delay_follows_the_coil_and_armature() {
    // Standard solenoid model: the armature starts to move when the current reaches
    // the pull-in current, at t_e = τ·ln(1/(1 − I_pull/I_ss)) (exact while
    // the armature rests: L is constant); the travel then takes at least
    // √(2·s·m/F_net) with F_net at the steady current (the closed form's
    // lower bound: the real current is lower and back-EMF slows it).
    let mut plant = blocked_plant(&[]);
    let Actuation::Coil(coil) = plant.params.valve.actuation.clone() else { panic!("coil") };
    let dp = plant.params.supply.p_set - plant.params.p_atm;
    let i_ss = coil.steady_current();
    let t_e = coil.inductance / coil.resistance() * (1.0 / (1.0 - coil.pull_in_current(dp) / i_ss)).ln();
    let lower = coil.opening_delay_estimate(dp).expect("pulls in");
    let dt = 1e-6;
    let mut t_move = None;
    while plant.state.valve.opening < 1.0 {
        plant.step(true, dt).unwrap();
        if t_move.is_none() && plant.state.valve.x > 0.0 {
            t_move = Some(plant.state.t);
        }
        assert!(plant.state.t < 0.05, "never opened");
    }
    let t_move = t_move.unwrap();
    let t_on = plant.state.t;
    assert!((t_move - t_e).abs() < 3.0 * dt, "motion starts at {t_move}, closed form {t_e}");
    assert!(t_on > lower && t_on < 2.5 * lower, "t_on {t_on}, closed-form lower bound {lower}");
    // A hotter coil (higher resistance) pulls in later.
    let mut hot = blocked_plant(&["valve.coil_temperature_c=80"]);
    while hot.state.valve.opening < 1.0 {
        hot.step(true, dt).unwrap();
    }
    assert!(hot.state.t > t_on * 1.05, "hot {} vs cold {t_on}", hot.state.t);
    // A Zener clamp closes faster than a plain diode.
    let off_time = |clamp: &str| {
        let mut p = blocked_plant(&[clamp]);
        for _ in 0..20_000 {
            p.step(true, dt).unwrap();
        }
        let t0 = p.state.t;
        while p.state.valve.opening > 0.0 {
            p.step(false, dt).unwrap();
        }
        p.state.t - t0
    };
    let diode = off_time("valve.clamp_voltage_v=0.7");
    let zener = off_time("valve.clamp_voltage_v=24");
    assert!(zener < 0.7 * diode, "zener {zener}, diode {diode}");
}

#[test]
fn catalogue_valve_reproduces_its_response_times_vc4() {
    for (on, off) in [(4.0, 4.0), (10.0, 6.0)] {
        let mut plant = blocked_plant(&[
            "valve.model=\"catalogue\"",
            &format!("valve.response_on_ms={on}"),
            &format!("valve.response_off_ms={off}"),
        ]);
        let dt = 10e-6;
        while plant.state.valve.opening < 1.0 {
            plant.step(true, dt).unwrap();
        }
        assert!((plant.state.t - on * 1e-3).abs() < 1.5 * dt, "on {}", plant.state.t);
        let t0 = plant.state.t;
        while plant.state.valve.opening > 0.0 {
            plant.step(false, dt).unwrap();
        }
        assert!((plant.state.t - t0 - off * 1e-3).abs() < 1.5 * dt, "off {}", plant.state.t - t0);
    }
}

#[test]
fn line_reproduces_the_transport_delay() {
    // A pressure front crosses a 2 m hose in L/c = 5.83 ms [D].
    let mut plant = blocked_plant(&[
        "line.length_mm=2000",
        "line.inner_diameter_mm=4",
        "line.segments=32",
        "valve.model=\"catalogue\"",
        "valve.response_on_ms=0.05",
    ]);
    let delay = plant.params.line.transport_delay();
    assert!(rel(delay, 5.83e-3) < 0.01, "{delay}");
    let pa = plant.params.p_atm;
    let (mut t_in, mut t_out) = (None, None);
    let dt = 2e-6;
    while t_out.is_none() {
        plant.step(true, dt).unwrap();
        if t_in.is_none() && plant.valve_outlet_pressure() - pa > 5e3 {
            t_in = Some(plant.state.t);
        }
        if plant.state.p_c - pa > 5e3 {
            t_out = Some(plant.state.t);
        }
        assert!(plant.state.t < 0.05);
    }
    let measured = t_out.unwrap() - t_in.unwrap();
    assert!(rel(measured, delay) < 0.15, "measured {measured}, L/c {delay}");
    // Its volume is the hose's.
    assert!(rel(plant.params.line.volume(), PI * 0.004f64.powi(2) / 4.0 * 2.0) < 1e-12);
}

#[test]
fn trapped_air_absorbs_volume_as_in_physics_table() {
    // Isothermal bubble: 10 µL absorbs 3.3 / 5.0 / 7.5 µL at +50 / +100 / +300 kPa [D].
    let s = Storage { c: 0.0, air: 10e-9, p_atm: 101_325.0 };
    for (dp, absorbed) in [(50e3, 3.3), (100e3, 5.0), (300e3, 7.5)] {
        assert!(rel(s.volume(101_325.0 + dp) * 1e9, absorbed) < 0.02);
    }
    let s = Storage { c: 2e-15, air: 10e-9, p_atm: 101_325.0 };
    for p in [101_325.0, 2e5, 1.2e6] {
        assert!(rel(s.pressure(s.volume(p)), p) < 1e-12);
    }
    let stiff = Storage { c: 2e-15, air: 0.0, p_atm: 101_325.0 };
    assert!(rel(stiff.pressure(stiff.volume(5e5)), 5e5) < 1e-12);
}

#[test]
fn tissue_reflux_starts_at_the_leak_pressure_without_a_jump() {
    let t = TissueParams::preset("intradermal").unwrap();
    // Flow at which the site pressure reaches the leak pressure with no bleb.
    let q0 = (t.leak_pressure - t.p_open) / t.resistance;
    let below = t.at_flow(q0 * (1.0 - 1e-9), 0.0);
    let above = t.at_flow(q0 * (1.0 + 1e-9), 0.0);
    assert_eq!(below.q_leak, 0.0);
    assert!((above.p - below.p).abs() < 1e-3);
    let far = t.at_flow(3.0 * q0, 0.0);
    assert!(far.q_leak > 0.0 && far.q_leak < 3.0 * q0);
    // Flow balance at the site: p = p_open + R_t·(Q − Q_leak), Q_leak = (p − p_leak)/R_leak.
    assert!(rel(far.p, t.p_open + t.resistance * (3.0 * q0 - far.q_leak)) < 1e-12);
    assert!(rel(far.q_leak, (far.p - t.leak_pressure) / t.leak_resistance) < 1e-12);
}

#[test]
fn subcutaneous_counter_pressure_is_of_the_minipig_order_vc13() {
    // VC13 (Thomsen et al., PLoS ONE 9:e104054, 2014): with Thomsen-type SC parameters the counter-pressure
    // should be of the order of the minipig data (≈1–30 kPa) without retuning.
    let sc = crate::util::shipped("subcutaneous", &["session.shots=1"]);
    let peak = crate::util::shots(&sc)[0].peak_tissue_pressure;
    assert!((1e3..30e3).contains(&peak), "peak SC tissue pressure {peak} Pa");
}

#[test]
fn a_non_finite_state_stops_with_component_time_and_state() {
    let mut plant = blocked_plant(&[]);
    plant.step(true, 1e-5).unwrap();
    plant.state.v_bleb[0] = f64::NAN;
    let err = plant.step(true, 1e-5).unwrap_err().to_string();
    assert!(err.contains("numerical failure in the") && err.contains("t = 0.0200 ms"), "{err}");
    assert!(err.contains("NaN"), "the message shows the offending state: {err}");
}
