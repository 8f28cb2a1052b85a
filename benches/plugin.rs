//! What running a C plugin in a host process costs against loading it into
//! mesobench: one firmware tick (one `mb_fw_step` call) in each isolation
//! mode, and the reference shot (the embedded default scenario, single shot)
//! with the example open-loop plugin in each mode, which includes starting
//! and stopping the host process once per simulation.

use criterion::{criterion_group, criterion_main, Criterion};
use mesobench::control::host::{set_host_executable, HostedPlugin};
use mesobench::control::plugin::Plugin;
use mesobench::control::{Controller, FwInput, FwOutput};
use mesobench::scenario::{self, Source};
use std::path::Path;

#[path = "common/mod.rs"]
mod common;

/// Ticks of a session: the trigger pressed for the first 300 of every 5000.
fn tick_loop(fw: &mut dyn Controller, n: u64, first: u64) {
    let mut out = FwOutput::default();
    for k in first..first + n {
        let input = FwInput {
            t: k as f64 * 1e-4,
            tick_period: 1e-4,
            tick: k,
            trigger: (k % 5000 < 300) as u32,
            p_supply: 3e5,
            ..FwInput::default()
        };
        fw.step(std::hint::black_box(&input), &mut out).expect("steps");
    }
    std::hint::black_box(out);
}

fn per_tick(c: &mut Criterion) {
    set_host_executable(Path::new(env!("CARGO_BIN_EXE_mesobench")));
    let lib = common::build_plugin("libfw_open_loop_isolation.so");
    let mut group = c.benchmark_group("plugin_tick");
    let mut local = Plugin::load(&lib, &[0.060]).expect("loads");
    local.reset().expect("resets");
    let mut tick = 0u64;
    group.bench_function("in_process", |b| {
        b.iter(|| {
            tick_loop(&mut local, 1, tick);
            tick += 1;
        })
    });
    let mut hosted = HostedPlugin::load(&lib, &[0.060], 1.0).expect("loads");
    hosted.reset().expect("resets");
    let mut tick = 0u64;
    group.bench_function("host_process", |b| {
        b.iter(|| {
            tick_loop(&mut hosted, 1, tick);
            tick += 1;
        })
    });
    group.finish();
}

fn reference_shot(c: &mut Criterion) {
    set_host_executable(Path::new(env!("CARGO_BIN_EXE_mesobench")));
    let lib = common::build_plugin("libfw_open_loop_isolation.so");
    let mut group = c.benchmark_group("reference_shot_c_plugin");
    let mut doses = Vec::new();
    for isolation in ["in_process", "process"] {
        let sets = vec![
            "session.shots=1".to_string(),
            "firmware.kind=\"plugin\"".to_string(),
            format!("firmware.plugin=\"{}\"", lib.display()),
            "firmware.plugin_params=[0.060]".to_string(),
            format!("firmware.plugin_isolation=\"{isolation}\""),
        ];
        let sc = scenario::load(&Source::default_scenario(), &sets, "reference").expect("plugin scenario is valid");
        let run = mesobench::simulate(&sc, false).expect("runs");
        eprintln!("{isolation}: {} firmware ticks in the reference shot", run.result.ticks);
        doses.push(run.result.shots[0].dose);
        group.bench_function(isolation, |b| {
            b.iter(|| mesobench::simulate(std::hint::black_box(&sc), false).expect("runs"))
        });
    }
    assert_eq!(doses[0], doses[1], "both modes give the same dose");
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = per_tick, reference_shot
}
criterion_main!(benches);
