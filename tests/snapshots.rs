//! Snapshots of the numerics: step counts and doses of every shipped
//! scenario, and a seeded Monte Carlo summary, pinned in
//! `tests/snapshots/*.snap` so that any change to them, however small,
//! shows in review (as diffsol pins its solver statistics). After an
//! intended change, review the new values with `cargo insta review` (or
//! rerun with `INSTA_UPDATE=always`) and commit the `.snap` files.

use crate::util;

/// A shot's numbers to 10 significant digits.
fn e(x: f64) -> String {
    format!("{x:.9e}")
}

#[test]
fn shipped_scenarios_steps_and_doses() {
    let mut out = String::new();
    for path in util::scenario_files() {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name.contains("plugin") {
            continue; // the built-in open loop gives the same numbers (tests/firmware.rs)
        }
        let sc = util::shipped(&name, &[]);
        let run = mesobench::simulate(&sc, false).expect("runs");
        out.push_str(&format!("{name}: {} steps, {} ticks\n", run.result.steps, run.result.ticks));
        for s in &run.result.shots {
            out.push_str(&format!(
                "  shot {}: {} steps, dose {} m3, leak {} m3, peak syringe {} Pa\n",
                s.index,
                s.steps,
                e(s.dose),
                e(s.leak),
                e(s.peak_syringe_pressure)
            ));
        }
    }
    insta::assert_snapshot!(out);
}

#[test]
fn seeded_sweep_summary() {
    let prep = mesobench::scenario::Prepared::new(
        &mesobench::scenario::Source::from_path(&util::root().join("scenarios/sweep_open_time_pressure.toml")).unwrap(),
        "sweep_open_time_pressure",
    )
    .unwrap();
    let base = vec![
        "sweep.replicates=2".to_string(),
        "session.shots=2".to_string(),
        "sweep.parameters={\"firmware.open_time_ms\"=[30.0, 60.0], \"supply.pressure_bar\"=[3.0]}".to_string(),
    ];
    let sc = prep.with(&base).unwrap();
    let spec = sc.sweep.clone().unwrap();
    let mut out = String::new();
    for p in 0..spec.points() {
        let s = mesobench::study::sweep::run_point(&prep, &sc, &spec, &base, p, false, false).unwrap();
        out.push_str(&format!(
            "point {p} {:?}: {} shots, mean {} m3, sd {} m3, p5 {} m3, p95 {} m3\n",
            s.values,
            s.shots,
            e(s.mean),
            e(s.sd),
            e(s.p5),
            e(s.p95)
        ));
    }
    insta::assert_snapshot!(out);
}
