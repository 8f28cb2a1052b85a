//! One reference shot (the embedded default scenario, single shot, no trace).
//! Target (issue 2): at least 5,000 shots per second on one core.

use criterion::{criterion_group, criterion_main, Criterion};
use mesobench::scenario::{self, Source};

fn reference_shot(c: &mut Criterion) {
    let sc = scenario::load(&Source::default_scenario(), &["session.shots=1".into()], "reference")
        .expect("default scenario is valid");
    let steps = mesobench::simulate(&sc, false).expect("runs").result.steps;
    eprintln!("reference shot: {steps} plant steps of {} µs", sc.solver.effective_step() * 1e6);
    c.bench_function("reference_shot", |b| {
        b.iter(|| mesobench::simulate(std::hint::black_box(&sc), false).expect("runs"))
    });
}

criterion_group! {
    name = benches;
    config = { mesobench::report::plot::register_fonts(); Criterion::default() };
    targets = reference_shot
}
criterion_main!(benches);
