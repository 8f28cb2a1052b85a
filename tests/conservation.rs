//! Volume conservation: expelled = delivered + leaked + Δstored, shot by shot.

use crate::util::{shipped, shots};

fn check(name: &str, sets: &[&str]) -> f64 {
    let sc = shipped(name, sets);
    let mut leak = 0.0;
    for s in shots(&sc) {
        let balance = s.expelled - (s.dose + s.leak + s.stored_change);
        let scale = s.expelled.abs().max(1e-12);
        assert!(
            balance.abs() / scale < 1e-9,
            "{name} {sets:?} shot {}: imbalance {balance:e} m³ of {:e}",
            s.index,
            s.expelled
        );
        assert!(s.dose > 0.0, "{name}: no dose");
        leak += s.leak;
    }
    leak
}

#[test]
fn reference_conserves_volume() {
    check("reference", &[]);
}

#[test]
fn multi_needle_head_conserves_volume() {
    check("stamp_5_needle", &[]);
}

#[test]
fn tubing_and_long_hose_conserve_volume() {
    check("console_valve_long_hose", &["session.shots=2"]);
}

#[test]
fn trapped_bubble_conserves_volume() {
    check("reference", &["syringe.bubble_ul=10"]);
}

#[test]
fn shear_thinning_fluid_conserves_volume() {
    check("skin_booster_ha", &["session.shots=2"]);
}

#[test]
fn reflux_is_accounted_for() {
    let leak = check("reference", &["tissue.leak_pressure_kpa=35"]);
    assert!(leak > 1e-10, "the low leak pressure should make some liquid reflux: {leak:e} m³");
}

#[test]
fn bubble_delays_delivery_and_keeps_it_after_closure() {
    // docs/physics.md, *Syringe and liquid storage*: with a 10–20 µL bubble delivery lags and continues after the valve closes.
    let plain = &shots(&shipped("reference", &["session.shots=1"]))[0];
    let bubbly = &shots(&shipped("reference", &["session.shots=1", "syringe.bubble_ul=15"]))[0];
    assert!(bubbly.t90 > plain.t90 + 1e-3, "t90 {} vs {}", bubbly.t90, plain.t90);
    // The stopper's friction holds a residual pressure after the shot, which
    // keeps the bubble compressed: the first shot leaves microlitres stored.
    assert!(bubbly.stored_change > 1e-9, "stored {:e} m³", bubbly.stored_change);
    assert!(plain.stored_change.abs() < 0.1e-9);
}
