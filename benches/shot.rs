//! The reference shot (the embedded default scenario, single shot, no trace)
//! with the built-in open-loop firmware and with the same firmware as a C
//! plugin. Targets: at least 5,000 shots per second on one core (issue 2);
//! the plugin at most 20 % slower than the built-in (issue 3).

use criterion::{criterion_group, criterion_main, Criterion};
use mesobench::scenario::{self, Source};

#[path = "common/mod.rs"]
mod common;

fn reference_shot(c: &mut Criterion) {
    let sc = scenario::load(&Source::default_scenario(), &["session.shots=1".into()], "reference")
        .expect("default scenario is valid");
    let steps = mesobench::simulate(&sc, false).expect("runs").result.steps;
    eprintln!("reference shot: {steps} plant steps of {} µs", sc.solver.effective_step() * 1e6);
    c.bench_function("reference_shot", |b| {
        b.iter(|| mesobench::simulate(std::hint::black_box(&sc), false).expect("runs"))
    });

    let lib = common::build_plugin("libfw_open_loop.so");
    let sets = vec![
        "session.shots=1".to_string(),
        "firmware.kind=\"plugin\"".to_string(),
        format!("firmware.plugin=\"{}\"", lib.display()),
        "firmware.plugin_params=[0.060]".to_string(),
        // Loaded into mesobench, as issue 3's target is stated (benches/plugin.rs
        // measures the host-process mode against it).
        "firmware.plugin_isolation=\"in_process\"".to_string(),
    ];
    let sc_plugin = scenario::load(&Source::default_scenario(), &sets, "reference").expect("plugin scenario is valid");
    let a = mesobench::simulate(&sc, false).expect("runs").result.shots[0].dose;
    let b = mesobench::simulate(&sc_plugin, false).expect("runs").result.shots[0].dose;
    assert_eq!(a, b, "the C plugin must give the built-in dose");
    // The plugin is loaded once per simulation (a fresh context per run), as in a sweep.
    c.bench_function("reference_shot_c_plugin", |b| {
        b.iter(|| mesobench::simulate(std::hint::black_box(&sc_plugin), false).expect("runs"))
    });
}

/// One manual 20 µL shot by an experienced operator on the reference
/// syringe, needle and tissue (a fixed plan: the same draws every iteration).
fn manual_shot(c: &mut Criterion) {
    use mesobench::control::manual::OperatorParams;
    use mesobench::sim::manual::{manual_params, manual_shot};
    use rand::SeedableRng;
    let sc = scenario::load(&Source::default_scenario(), &[], "reference").expect("default scenario is valid");
    let pop = OperatorParams::preset("experienced").expect("preset");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let op = pop.draw_operator(&mut rng);
    let params = manual_params(sc.params.clone());
    let plan = pop.draw_shot(&op, 20e-9, params.syringe.area, &mut rng);
    let dt = sc.solver.effective_step();
    let shot = manual_shot(&mut mesobench::sim::Plant::new(params.clone()), &pop, &plan, 20e-9, dt).expect("runs");
    eprintln!("manual shot: {} plant steps, {:.2} s simulated, {:.2} µL", shot.steps, shot.duration, shot.dose * 1e9);
    c.bench_function("manual_shot_20ul", |b| {
        b.iter(|| {
            let mut plant = mesobench::sim::Plant::new(params.clone());
            manual_shot(&mut plant, &pop, std::hint::black_box(&plan), 20e-9, dt).expect("runs")
        })
    });
}

/// One shot (the first of its session) of every shipped scenario, in the
/// fixed-step reference mode and in the adaptive mode. Instruction counts,
/// which do not depend on the machine's load, are measured with
/// `examples/profile_scenario.rs` under valgrind (docs/numerics.md, *Speed*).
fn shipped_shots(c: &mut Criterion) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut group = c.benchmark_group("shot");
    for name in SHIPPED {
        let source = Source::from_path(&root.join(format!("scenarios/{name}.toml"))).expect("shipped scenario");
        for mode in ["fixed", "adaptive"] {
            let sets = vec!["session.shots=1".to_string(), format!("solver.mode=\"{mode}\"")];
            let sc = scenario::load(&source, &sets, name).expect("shipped scenario is valid");
            let run = mesobench::simulate(&sc, false).expect("runs");
            eprintln!("{name} ({mode}): {} plant steps, {:.4} µL", run.result.steps, run.result.shots[0].dose * 1e9);
            group.bench_function(format!("{name}/{mode}"), |b| {
                b.iter(|| mesobench::simulate(std::hint::black_box(&sc), false).expect("runs"))
            });
        }
    }
    group.finish();
}

/// The shipped scenarios of one gun each (the studies' sessions and the C
/// plugin's are the reference gun's, benched above).
const SHIPPED: [&str; 8] = [
    "reference",
    "subcutaneous",
    "skin_booster_ha",
    "nappage_9hz",
    "stamp_5_needle",
    "console_valve_long_hose",
    "closed_loop_pressure",
    "volume_target",
];

criterion_group! {
    name = benches;
    config = { mesobench::report::plot::register_fonts(); Criterion::default() };
    targets = reference_shot, manual_shot, shipped_shots
}
criterion_main!(benches);
