//! Firmware in the loop: plugins, control laws, quantisation, sensors.

use crate::util::{build_plugin, example_plugin, reference, rel, shipped, shots};
use mesobench::control::sensors::{PressureSensorSpec, SensorSpec, Sensors};
use mesobench::stats::describe;

fn doses(sc: &mesobench::scenario::Scenario) -> Vec<f64> {
    shots(sc).iter().map(|s| s.dose).collect()
}

#[test]
fn c_open_loop_plugin_gives_the_built_in_doses() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = example_plugin(tmp.path(), "open_loop");
    let builtin = doses(&reference(&[]));
    let plugin = doses(&reference(&[
        "firmware.kind=\"plugin\"",
        &format!("firmware.plugin=\"{}\"", lib.display()),
        "firmware.plugin_params=[0.060]",
    ]));
    assert_eq!(builtin.len(), plugin.len());
    for (a, b) in builtin.iter().zip(&plugin) {
        assert!(rel(*a, *b) <= 1e-12, "built-in {a:e} vs plugin {b:e}");
    }
}

#[test]
fn c_pid_plugin_gives_the_built_in_doses() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = example_plugin(tmp.path(), "pressure_pid");
    let base = ["session.shots=6"];
    let builtin = doses(&shipped("closed_loop_pressure", &base));
    // open time, setpoint, kp, ki, kd, derivative filter, u_min, u_max, tracking time (scenario's values).
    let plugin = doses(&shipped(
        "closed_loop_pressure",
        &[
            base[0],
            "firmware.kind=\"plugin\"",
            &format!("firmware.plugin=\"{}\"", lib.display()),
            "firmware.plugin_params=[0.015, 250000, 1.5, 40, 0, 0.001, 0, 600000, 0.010]",
        ],
    ));
    for (a, b) in builtin.iter().zip(&plugin) {
        assert!(rel(*a, *b) <= 1e-9, "built-in {a:e} vs plugin {b:e}");
    }
}

#[test]
fn closed_loop_beats_open_loop_on_a_sagging_supply() {
    let closed = doses(&shipped("closed_loop_pressure", &[]));
    let open = doses(&shipped("closed_loop_pressure", &["firmware.kind=\"open_loop\""]));
    assert!(open.iter().chain(&closed).all(|d| *d > 3e-9), "every trigger delivers a shot: {open:?}");
    let (c, o) = (describe(&closed), describe(&open));
    eprintln!("9 shots/s, sagging supply: closed-loop CV {:.3} %, open-loop CV {:.3} %", 100.0 * c.cv, 100.0 * o.cv);
    assert!(c.cv < 0.5 * o.cv, "closed {} vs open {}", c.cv, o.cv);
    assert!(c.cv < 0.005);
}

#[test]
fn volume_target_holds_the_dose_on_a_sagging_supply() {
    let d = doses(&shipped("volume_target", &[]));
    let settled = describe(&d[3..]);
    eprintln!("volume target 5 µL: mean {:.3} µL, CV {:.2} % after learning", settled.mean * 1e9, 100.0 * settled.cv);
    assert!(rel(settled.mean, 5e-9) < 0.03, "mean {:e}", settled.mean);
    assert!(settled.cv < 0.02, "CV {}", settled.cv);
    // The same gun in open loop loses about half its dose by the end of the session.
    let open = doses(&shipped("nappage_9hz", &[]));
    assert!(describe(&open).cv > 5.0 * settled.cv);
}

/// Supply-pressure trace of a setpoint step from 2.5 to 3.0 bar at 100 ms.
fn step_response(extra: &[&str]) -> (f64, f64) {
    let mut sets = vec![
        "session.shots=1",
        "session.rate_hz=2",
        "firmware.setpoint_step_ms=100",
        "firmware.setpoint_step_bar=3.0",
        "solver.trace_interval_us=100",
    ];
    sets.extend_from_slice(extra);
    let sc = shipped("closed_loop_pressure", &sets);
    let run = mesobench::simulate(&sc, true).unwrap();
    let (r0, r1) = (2.5e5, 3.0e5);
    let after: Vec<(f64, f64)> = run.trace.iter().filter(|s| s.t >= 0.1).map(|s| (s.t - 0.1, s.supply)).collect();
    let peak = after.iter().map(|x| x.1).fold(f64::MIN, f64::max);
    let overshoot = (peak - r1) / (r1 - r0);
    // Settling: last time outside ±2 % of the step.
    let band = 0.02 * (r1 - r0);
    let settle = after.iter().filter(|x| (x.1 - r1).abs() > band).map(|x| x.0).fold(0.0, f64::max);
    (overshoot, settle)
}

#[test]
fn pressure_loop_step_response_meets_its_spec() {
    // Spec: overshoot under 10 % of the step, settled within ±2 % in 150 ms.
    let (overshoot, settle) = step_response(&[]);
    eprintln!("step response: overshoot {:.1} %, settling {:.1} ms", 100.0 * overshoot, settle * 1e3);
    assert!(overshoot < 0.10, "overshoot {overshoot}");
    assert!(settle < 0.150, "settling {settle} s");
}

#[test]
fn anti_windup_limits_overshoot_after_saturation() {
    // A command ceiling just above the need saturates the loop during the rise.
    let sat = ["firmware.u_max_bar=3.3", "firmware.ki_per_s=120", "supply.regulator_tau_ms=50"];
    let mut with = sat.to_vec();
    with.push("firmware.anti_windup=\"back_calculation\"");
    let mut without = sat.to_vec();
    without.push("firmware.anti_windup=\"none\"");
    let mut conditional = sat.to_vec();
    conditional.push("firmware.anti_windup=\"conditional\"");
    let (o_with, _) = step_response(&with);
    let (o_without, _) = step_response(&without);
    let (o_cond, _) = step_response(&conditional);
    eprintln!(
        "overshoot after saturation: none {:.1} %, back-calculation {:.1} %, conditional {:.1} %",
        100.0 * o_without,
        100.0 * o_with,
        100.0 * o_cond
    );
    assert!(o_without > o_with + 0.05, "without {o_without}, with {o_with}");
    assert!(o_without > o_cond + 0.05, "without {o_without}, conditional {o_cond}");
}

#[test]
fn dose_error_follows_tick_quantisation() {
    // The open time (20.7 ms) is realised in whole ticks: 20.7 / 20.5 / 21 / 20 / 20 ms
    // at 0.1 / 0.5 / 1 / 2 / 4 ms ticks. The dose error is the flow times the
    // quantisation error of the open time, and never more than flow × T/2.
    let dose = |tick_hz: f64| {
        shots(&reference(&["session.shots=1", "firmware.open_time_ms=20.7", &format!("firmware.tick_hz={tick_hz}")]))[0]
            .clone()
    };
    let exact = dose(20_000.0);
    let rate = {
        let a = shots(&reference(&["session.shots=1", "firmware.open_time_ms=30", "firmware.tick_hz=20000"]))[0].dose;
        (a - exact.dose) / 9.3e-3
    };
    for tick_hz in [10_000.0, 2_000.0, 1_000.0, 500.0, 250.0] {
        let t = 1.0 / tick_hz;
        let s = dose(tick_hz);
        let quantised = (20.7e-3 / t).round() * t;
        assert!((s.open_time_cmd - quantised).abs() < 1e-12, "open {} vs {quantised}", s.open_time_cmd);
        let predicted = rate * (quantised - 20.7e-3);
        let err = s.dose - exact.dose;
        assert!((err - predicted).abs() < 0.02 * exact.dose, "tick {t}: error {err:e}, predicted {predicted:e}");
        assert!(err.abs() <= rate * t / 2.0 + 0.02 * exact.dose, "tick {t}: error {err:e} beyond half a tick");
    }
}

#[test]
fn compute_delay_shifts_the_shot() {
    let base = shots(&reference(&["session.shots=1"]))[0].clone();
    let late = shots(&reference(&["session.shots=1", "firmware.compute_delay_ticks=20"]))[0].clone();
    // 20 ticks of 0.1 ms: everything happens 2 ms later, the dose is unchanged.
    assert!((late.t90 - base.t90 - 2e-3).abs() < 1e-4, "{} vs {}", late.t90, base.t90);
    assert!(rel(late.dose, base.dose) < 1e-3);
}

#[test]
fn drive_modes_act_on_the_valve() {
    let on = shots(&reference(&["session.shots=1"]))[0].clone();
    // Peak-and-hold: full voltage for 3 ms, then 40 % at 20 kHz holds the armature,
    // and the lower current decays faster at closing.
    let ph = shots(&reference(&[
        "session.shots=1",
        "firmware.drive=\"peak_and_hold\"",
        "firmware.peak_ms=3",
        "firmware.hold_duty=0.4",
    ]))[0]
        .clone();
    assert!(rel(ph.dose, on.dose) < 0.05, "{} vs {}", ph.dose, on.dose);
    assert!(ph.valve_t_off < 0.8 * on.valve_t_off, "t_off {} vs {}", ph.valve_t_off, on.valve_t_off);
    // A 10 % PWM cannot pull the armature in: no dose.
    let weak = shots(&reference(&["session.shots=1", "firmware.drive=\"pwm\"", "firmware.pwm_duty=0.1"]))[0].clone();
    assert_eq!(weak.dose, 0.0);
}

#[test]
fn pressure_sensor_quantises_lags_and_adds_seeded_noise() {
    let ideal = ideal_spec();
    let spec = |p: PressureSensorSpec| SensorSpec {
        supply: p.clone(),
        chamber: p.clone(),
        syringe: p,
        encoder_resolution: 1e-6,
        debounce: 0.0,
        trigger_press: 0.01,
    };
    // ADC: 12 bits over 10 bar → 244 Pa per count (2.4 mbar).
    let mut s = Sensors::new(spec(ideal.clone()), 1);
    s.settle([123_456.0, 0.0, 2e6]);
    s.sample(0);
    let lsb = 10e5 / 4095.0;
    assert!((s.pressures()[0] - 123_456.0).abs() <= lsb / 2.0 + 1e-9);
    let counts = s.pressures()[0] / lsb;
    assert!((counts - counts.round()).abs() < 1e-9, "a reading is a whole number of counts: {counts}");
    assert_eq!(s.pressures()[2], 10e5, "clips at full scale");
    // Lag: after one time constant the reading has covered 63 % of a step.
    let mut s = Sensors::new(spec(PressureSensorSpec { tau: 1e-3, bits: 24, ..ideal.clone() }), 1);
    for _ in 0..20 {
        s.track([1e5, 0.0, 0.0], 50e-6);
    }
    s.sample(0);
    assert!((s.pressures()[0] / 1e5 - (1.0 - (-1.0f64).exp())).abs() < 1e-3);
    // Noise: seeded, reproducible, with the stated standard deviation.
    let noisy = PressureSensorSpec { noise_sd: 1000.0, bits: 24, ..ideal };
    let read = |seed| {
        let mut s = Sensors::new(spec(noisy.clone()), seed);
        s.settle([5e5, 5e5, 5e5]);
        (0..4000u64)
            .map(|k| {
                s.sample(k);
                s.pressures()[0]
            })
            .collect::<Vec<f64>>()
    };
    let a = read(3);
    assert_eq!(a, read(3));
    assert_ne!(a, read(4));
    assert!(rel(describe(&a).sd, 1000.0) < 0.05);
    // Encoder: whole counts of its resolution, rounded down.
    let enc = Sensors::new(spec(ideal_spec()), 1);
    assert!((enc.encoder(2.7e-6) - 2e-6).abs() < 1e-15);
}

fn ideal_spec() -> PressureSensorSpec {
    PressureSensorSpec {
        tau: 0.0,
        noise_sd: 0.0,
        offset: 0.0,
        gain_error: 0.0,
        bits: 12,
        full_scale: 10e5,
        sample_ticks: 1,
    }
}
/// Run the binary on the reference scenario with a plugin; expect exit 2 and `fragments` in stderr.
fn plugin_rejected(lib: &str, fragments: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mesobench"))
        .args(["run", "--out", tmp.path().to_str().unwrap(), "--set", "firmware.kind=\"plugin\""])
        .arg("--set")
        .arg(format!("firmware.plugin=\"{lib}\""))
        .args(["--set", "firmware.plugin_params=[0.06]"])
        .output()
        .unwrap();
    crate::util::assert_exit2(&o, fragments);
}

const GOOD_PARTS: &str = r#"
#include <math.h>
#include <stdlib.h>
#include "mesobench_firmware.h"
void *mb_fw_create(const double *p, uint32_t n) { (void)p; (void)n; return malloc(8); }
int32_t mb_fw_reset(void *c) { (void)c; return 0; }
void mb_fw_destroy(void *c) { free(c); }
"#;

#[test]
fn broken_plugins_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    plugin_rejected("/no/such/libfw.so", &["/no/such/libfw.so", "no such file"]);
    let wrong_abi = build_plugin(
        tmp.path(),
        "wrong_abi",
        &format!("{GOOD_PARTS}uint32_t mb_fw_abi_version(void) {{ return 99; }}\nint32_t mb_fw_step(void *c, const mb_fw_input *i, mb_fw_output *o) {{ (void)c; (void)i; (void)o; return 0; }}\n"),
    );
    plugin_rejected(wrong_abi.to_str().unwrap(), &["ABI version 99", "version 1"]);
    let no_step =
        build_plugin(tmp.path(), "no_step", &format!("{GOOD_PARTS}uint32_t mb_fw_abi_version(void) {{ return 1; }}\n"));
    plugin_rejected(no_step.to_str().unwrap(), &["mb_fw_step is missing"]);
    let nan = build_plugin(
        tmp.path(),
        "nan",
        &format!(
            "{GOOD_PARTS}uint32_t mb_fw_abi_version(void) {{ return 1; }}\nint32_t mb_fw_step(void *c, const mb_fw_input *i, mb_fw_output *o) {{ (void)c; (void)i; o->valve_mode = MB_VALVE_PWM; o->idle = 0; o->duty = NAN; o->pwm_period = 1e-3; o->peak_time = 0; o->regulator_setpoint = NAN; return 0; }}\n"
        ),
    );
    plugin_rejected(nan.to_str().unwrap(), &["non-finite command", "duty = NaN", "tick 0"]);
    let failing = build_plugin(
        tmp.path(),
        "failing",
        &format!("{GOOD_PARTS}uint32_t mb_fw_abi_version(void) {{ return 1; }}\nint32_t mb_fw_step(void *c, const mb_fw_input *i, mb_fw_output *o) {{ (void)c; (void)o; return i->tick > 5 ? 7 : -1; }}\n"),
    );
    plugin_rejected(failing.to_str().unwrap(), &["mb_fw_step returned -1"]);
    let not_a_library = tmp.path().join("libjunk.so");
    std::fs::write(&not_a_library, b"not an ELF file").unwrap();
    plugin_rejected(not_a_library.to_str().unwrap(), &["cannot load the shared library"]);
}

#[test]
fn every_trigger_fires_even_when_the_plant_rests_before_release() {
    // An 8 ms shot is over long before the 60 ms trigger press ends.
    let d = doses(&reference(&[
        "session.shots=6",
        "session.rate_hz=5",
        "firmware.open_time_ms=8",
        "sensors.trigger_press_ms=60",
    ]));
    assert_eq!(d.len(), 6);
    assert!(d.iter().all(|x| *x > 0.0), "{d:?}");
    let spread = describe(&d);
    assert!(spread.cv < 0.05, "{d:?}");
}
