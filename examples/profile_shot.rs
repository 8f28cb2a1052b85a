//! Runs the reference shot many times (for profilers).
fn main() {
    let sc = mesobench::scenario::load(
        &mesobench::scenario::Source::default_scenario(),
        &["session.shots=1".into()],
        "reference",
    )
    .unwrap();
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let mut d = 0.0;
    for _ in 0..n {
        d += mesobench::simulate(&sc, false).unwrap().result.shots[0].dose;
    }
    println!("{d}");
}
