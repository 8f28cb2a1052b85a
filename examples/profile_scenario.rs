//! Runs a scenario's session N times, for profilers and instruction counts:
//!   cargo run --release --example profile_scenario -- scenarios/nappage_9hz.toml 43 [KEY=VALUE]...
//! Instructions per shot are the difference of two run counts (for example
//! 43 and 3 under `valgrind --tool=callgrind`) divided by the difference of
//! the shots simulated, so start-up and loading cancel. Prints the shots,
//! the plant steps and the mean dose per shot.
fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: profile_scenario SCENARIO [N] [KEY=VALUE]...");
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let sets: Vec<String> = args.collect();
    let source = mesobench::scenario::Source::from_path(std::path::Path::new(&path)).expect("readable scenario");
    let sc = mesobench::scenario::load(&source, &sets, "scenario").expect("valid scenario");
    let (mut shots, mut steps, mut dose) = (0usize, 0u64, 0.0);
    for _ in 0..n {
        let run = mesobench::simulate(&sc, false).expect("runs");
        shots += run.result.shots.len();
        steps += run.result.steps;
        dose += run.result.shots.iter().map(|s| s.dose).sum::<f64>();
    }
    println!(
        "{n} sessions, {shots} shots, {:.1} steps per shot, {:.6} µL per shot",
        steps as f64 / shots as f64,
        dose / shots as f64 * 1e9
    );
}
