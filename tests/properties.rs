//! Property-based tests over the whole allowed parameter box.
//!
//! Random valid scenarios either run with every run-time invariant holding
//! (the session checks conservation, signs, finiteness and the line's Mach
//! number itself) and no NaN where a number is defined, or stop with a
//! clear error; random and mutated scenario texts never panic the parser.
//! `cargo test` runs a few dozen cases; set `MESOBENCH_PROPTEST_CASES` for
//! a longer run, e.g. `MESOBENCH_PROPTEST_CASES=2000 cargo test --release
//! properties`.

use mesobench::scenario::{self, Source};
use proptest::prelude::*;

fn cases(default: u32) -> u32 {
    std::env::var("MESOBENCH_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Every physical parameter of the plant with its allowed range (the
/// scenario's own checks; values are drawn log-uniformly when the range
/// spans more than a factor of 100). Time settings (step, tick, open time,
/// rate, shots) are held so that a case stays under a second.
const BOX: &[(&str, f64, f64)] = &[
    ("ambient.pressure_kpa", 50.0, 110.0),
    ("ambient.temperature_c", 0.0, 45.0),
    ("chamber.alpha", 1.0, 1.4),
    ("chamber.alpha_in", 1.0, 1.4),
    ("chamber.alpha_out", 1.0, 1.4),
    ("chamber.dead_volume_ml", 0.005, 100.0),
    ("firmware.open_time_ms", 0.1, 100.0),
    ("fluid.viscosity_mpa_s", 0.1, 1e6),
    ("fluid.temperature_c", 4.0, 45.0),
    ("line.inner_diameter_mm", 0.5, 10.0),
    ("line.length_mm", 0.0, 10_000.0),
    ("line.polytropic", 1.0, 1.4),
    ("needle.inner_diameter_mm", 0.05, 1.0),
    ("needle.length_mm", 0.5, 100.0),
    ("needle.entrance_loss_k", 0.0, 5.0),
    ("needle.exit_loss_k", 0.0, 5.0),
    ("piston.diameter_mm", 2.0, 50.0),
    ("piston.mass_g", 0.5, 500.0),
    ("piston.seal_coulomb_n", 0.0, 50.0),
    ("piston.spring_preload_n", 0.0, 200.0),
    ("piston.spring_rate_n_per_mm", 0.0, 50.0),
    ("piston.stroke_mm", 0.1, 50.0),
    ("supply.pressure_bar", 0.2, 10.0),
    ("supply.regulator_tau_ms", 0.0, 1000.0),
    ("syringe.break_loose_n", 0.0, 50.0),
    ("syringe.bubble_ul", 0.0, 500.0),
    ("syringe.dead_space_ml", 0.0, 1.0),
    ("syringe.fill_ml", 0.01, 50.0),
    ("syringe.glide_n", 0.0, 50.0),
    ("syringe.inner_diameter_mm", 1.0, 30.0),
    ("syringe.stribeck_velocity_mm_s", 0.01, 100.0),
    ("syringe.viscous_n_s_per_m", 0.0, 1000.0),
    ("tissue.opening_pressure_kpa", 0.0, 500.0),
    ("tissue.compliance_ul_per_kpa", 0.01, 1e4),
    ("tissue.resistance_kpa_s_per_ml", 0.0, 1e5),
    ("tissue.leak_pressure_kpa", 0.0, 1000.0),
    ("tissue.leak_resistance_kpa_s_per_ml", 1.0, 1e7),
    ("tissue.absorption_time_s", 0.1, 1e5),
    ("valve.armature_mass_g", 0.05, 50.0),
    ("valve.b", 0.0, 0.95),
    ("valve.c_dm3_per_s_bar", 0.001, 10.0),
    ("valve.clamp_voltage_v", 0.0, 200.0),
    ("valve.coil_resistance_ohm", 0.5, 1000.0),
    ("valve.coil_temperature_c", -20.0, 180.0),
    ("valve.damping_n_s_per_m", 0.0, 100.0),
    ("valve.gap_mm", 0.05, 5.0),
    ("valve.inductance_mh", 0.1, 1000.0),
    ("valve.iron_gap_mm", 0.0, 5.0),
    ("valve.m", 0.3, 1.0),
    ("valve.seat_diameter_mm", 0.1, 5.0),
    ("valve.spring_preload_n", 0.0, 100.0),
    ("valve.spring_rate_n_per_mm", 0.0, 100.0),
    ("valve.stroke_mm", 0.02, 5.0),
    ("valve.voltage_v", 1.0, 48.0),
];

fn value(lo: f64, hi: f64, u: f64) -> f64 {
    if lo > 0.0 && hi / lo > 100.0 {
        (lo.ln() + u * (hi.ln() - lo.ln())).exp()
    } else {
        lo + u * (hi - lo)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), failure_persistence: None, ..ProptestConfig::default() })]

    /// A random point of the box runs with its invariants, or is a clear error.
    #[test]
    fn random_valid_scenarios_run_or_stop_cleanly(picks in prop::collection::vec((0..BOX.len(), 0.0f64..1.0), 1..6)) {
        let mut sets = vec!["session.shots=2".to_string(), "session.rate_hz=5".to_string()];
        for (i, u) in &picks {
            let (key, lo, hi) = BOX[*i];
            sets.push(scenario::set_arg(key, value(lo, hi, *u)));
        }
        let sc = match scenario::load(&Source::default_scenario(), &sets, "p") {
            Ok(sc) => sc,
            Err(e) => {
                // A refused combination: one message that names a key.
                let m = e.to_string();
                prop_assert!(!m.is_empty() && m.len() < 2000, "{m}");
                return Ok(());
            }
        };
        match mesobench::simulate(&sc, false) {
            Ok(run) => {
                for s in &run.result.shots {
                    for v in [s.dose, s.leak, s.expelled, s.stored_change, s.peak_flow, s.peak_syringe_pressure,
                              s.peak_tissue_pressure, s.peak_chamber_pressure, s.max_re, s.plunger_end] {
                        prop_assert!(v.is_finite(), "{sets:?}: {s:?}");
                    }
                    prop_assert!(s.dose >= 0.0 && s.leak >= 0.0, "{sets:?}: {s:?}");
                    let balance = s.expelled - s.dose - s.leak - s.stored_change;
                    prop_assert!(balance.abs() <= 1e-6 * s.expelled.abs().max(1e-12), "{sets:?}: {s:?}");
                }
            }
            Err(e) => {
                let m = e.to_string();
                prop_assert!(!m.is_empty() && m.len() < 2000, "{m}");
                // No 40-digit numbers in messages.
                prop_assert!(!m.split(|c: char| !c.is_ascii_digit()).any(|d| d.len() > 12), "{m}");
            }
        }
    }

    /// Arbitrary text is parsed or refused, never a panic.
    #[test]
    fn arbitrary_text_never_panics_the_scenario_parser(text in ".{0,400}") {
        let src = Source { name: "f.toml".into(), text, dir: ".".into() };
        let _ = scenario::load(&src, &[], "f");
    }

    /// The reference scenario cut, with a line removed or a byte replaced,
    /// is parsed or refused with a message naming the file, never a panic.
    #[test]
    fn mutated_scenarios_never_panic_the_parser(cut in 0usize..3000, line in 0usize..90, pos in 0usize..3000, byte in any::<u8>()) {
        let base = scenario::DEFAULT_SCENARIO;
        let mut variants = vec![base[..base.floor_char_boundary(cut.min(base.len()))].to_string()];
        variants.push(base.lines().enumerate().filter(|(i, _)| *i != line).map(|(_, l)| l).collect::<Vec<_>>().join("\n"));
        let mut bytes = base.as_bytes().to_vec();
        let p = pos.min(bytes.len() - 1);
        bytes[p] = byte;
        variants.push(String::from_utf8_lossy(&bytes).into_owned());
        for text in variants {
            let src = Source { name: "m.toml".into(), text, dir: ".".into() };
            if let Err(e) = scenario::load(&src, &[], "m") {
                prop_assert!(e.to_string().contains("m.toml"), "{e}");
            }
        }
    }
}

/// Run the binary on a file holding `bytes`; its exit code and stderr.
fn cli_on_file(args: &[&str], bytes: &[u8]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("in.csv");
    std::fs::write(&path, bytes).expect("writable");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mesobench"))
        .args(args)
        .arg(&path)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the binary runs");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(32), failure_persistence: None, ..ProptestConfig::default() })]

    /// A dose CSV of arbitrary lines (numbers, words, separators, quotes,
    /// empty fields) gives a verdict (0 or 1) or one clear error (2), never
    /// an internal error.
    #[test]
    fn arbitrary_dose_csv_gives_a_verdict_or_a_clear_error(
        lines in prop::collection::vec(prop_oneof![
            Just("dose_ul".to_string()),
            Just("arm,target_ul,dose_ul".to_string()),
            "-?[0-9]{1,3}(\\.[0-9]{0,4})?(e[0-9]{1,3})?",
            "[a-z,;\" \t]{0,12}",
            "[0-9.,eE+-]{0,20}",
            Just(String::new()),
        ], 0..12),
        raw in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = lines.join("\n").into_bytes();
        bytes.extend_from_slice(&raw);
        let (code, err) = cli_on_file(&["accept", "--target-ul", "20"], &bytes);
        prop_assert!(matches!(code, Some(0) | Some(1) | Some(2)), "exit {code:?}: {err}");
        prop_assert!(!err.contains("internal error") && !err.contains("panicked"), "{err}");
        if code == Some(2) {
            prop_assert!(err.contains("in.csv"), "the error names the file: {err}");
        }
    }
}
