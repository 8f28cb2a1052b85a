//! Stick-slip convergence probe.
fn main() {
    for step in [
        "solver.step_us=10",
        "solver.step_us=5",
        "solver.step_us=2.5",
        "solver.step_us=1.25",
    ] {
        let src = mesobench::scenario::Source::from_path(std::path::Path::new(
            "scenarios/console_valve_long_hose.toml",
        ))
        .unwrap();
        let sets: Vec<String> = ["session.shots=1", "syringe.preset=\"bd_3ml\"", step]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let sc = mesobench::scenario::load(&src, &sets, "c").unwrap();
        let r = mesobench::simulate(&sc, false).unwrap().result;
        println!(
            "{step}: dose {:.5} µL breakaways {}",
            r.shots[0].dose * 1e9,
            r.shots[0].breakaways
        );
    }
}
