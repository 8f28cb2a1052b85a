//! Studies, end to end through the library (no plots, no terminal), one
//! thread so the figure does not depend on the machine's cores:
//!
//! - `ha_sweep`: `skin_booster_ha` on a 3 × 2 grid of open time and supply
//!   pressure, 4 replicates of 3 shots, with the valve voltage drawn per
//!   shot, the needle bore and the stopper friction per session and the
//!   tissue per site (24 sessions; issue 13's HA sweep with per-shot draws);
//!   `ha_sweep_adaptive` the same with `solver.mode = "adaptive"`.
//! - `compare`: `manual_vs_gun` cut to one target, 2 units per arm and 3
//!   shots per unit (manual and gun arms, calibration, acceptance);
//!   `compare_adaptive` the same on the reference plant in the adaptive mode.
//!
//! Run `cargo bench --bench studies`; docs/numerics.md gives measured figures.

use criterion::{criterion_group, criterion_main, Criterion};
use mesobench::scenario::{Prepared, Source};
use mesobench::study::sweep::RunOptions;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `skin_booster_ha` with the sweep and its draws appended.
fn ha_sweep_source() -> Source {
    let path = root().join("scenarios/skin_booster_ha.toml");
    let mut text = std::fs::read_to_string(&path).expect("scenarios/skin_booster_ha.toml");
    text.push_str(
        r#"
[sweep]
replicates = 4

[sweep.parameters]
"firmware.open_time_ms" = [40.0, 60.0, 80.0]
"supply.pressure_bar" = [3.0, 4.0]

[uncertain]
"valve.voltage_v" = { dist = "normal", mean = 12.0, sd = 0.3, level = "shot" }
"needle.inner_diameter_mm" = { dist = "normal", mean = 0.108, sd = 0.003, level = "session" }
"syringe.break_loose_n" = { dist = "truncated_normal", mean = 4.0, sd = 1.0, lo = 2.6, hi = 10.0, level = "session" }
"tissue.opening_pressure_kpa" = { dist = "uniform", lo = 20.0, hi = 50.0, level = "site" }
"#,
    );
    Source { name: "ha_sweep.toml".into(), text, dir: root().join("scenarios") }
}

fn ha_sweep(c: &mut Criterion) {
    let prep = Prepared::new(&ha_sweep_source(), "ha_sweep").expect("the HA sweep is valid");
    let dir = std::env::temp_dir().join(format!("mesobench-bench-ha-sweep-{}", std::process::id()));
    let run = |dir: &Path, sets: &[String]| {
        std::fs::create_dir_all(dir).expect("temporary directory");
        let opts = RunOptions { shard: None, resume: false, raw: false, fault_after: None };
        let (summary, points) =
            mesobench::study::sweep::run(&prep, sets, dir, 1, true, &|_| {}, opts).expect("the sweep runs");
        std::fs::remove_dir_all(dir).ok();
        (summary, points)
    };
    let adaptive = ["solver.mode=\"adaptive\"".to_string()];
    let (_, points) = run(&dir, &[]);
    eprintln!("ha_sweep: {} points", points.len());
    let mut group = c.benchmark_group("studies");
    group.sample_size(10);
    group.bench_function("ha_sweep", |b| b.iter(|| run(std::hint::black_box(&dir), &[])));
    group.bench_function("ha_sweep_adaptive", |b| b.iter(|| run(std::hint::black_box(&dir), &adaptive)));
    group.finish();
}

/// `manual_vs_gun` cut down, on the plant of the scenario file `scenario`.
fn small_compare_study(scenario: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("scenarios/manual_vs_gun.toml")).expect("manual_vs_gun.toml");
    let replace = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "manual_vs_gun.toml no longer has {from:?}");
        text.replacen(from, to, 1)
    };
    let text = replace(text, "targets_ul = [10.0, 20.0, 50.0]", "targets_ul = [20.0]");
    let text = replace(text, "units = 12", "units = 2");
    let text = replace(text, "shots = 15", "shots = 3");
    let text = replace(text, "bootstrap = 2000", "bootstrap = 200");
    let text = replace(text, "scenario = \"reference.toml\"", "scenario = \"__SCENARIO__\"");
    let text = text.replace("__SCENARIO__", &scenario.display().to_string());
    let path = std::env::temp_dir().join(format!("mesobench-bench-compare-{}.toml", std::process::id()));
    std::fs::write(&path, text).expect("temporary study");
    path
}

/// `scenarios/reference.toml` in the adaptive mode, in a temporary file.
fn adaptive_reference() -> PathBuf {
    let text = std::fs::read_to_string(root().join("scenarios/reference.toml")).expect("reference.toml");
    assert!(text.contains("\n[solver]\n"), "reference.toml no longer has a [solver] table");
    let text = text.replacen("\n[solver]\n", "\n[solver]\nmode = \"adaptive\"\n", 1);
    let path = std::env::temp_dir().join(format!("mesobench-bench-reference-adaptive-{}.toml", std::process::id()));
    std::fs::write(&path, text).expect("temporary scenario");
    path
}

/// The cut-down comparison on the shipped reference plant (fixed mode) and
/// on the same plant in the adaptive mode (manual and gun shots adaptive).
fn compare(c: &mut Criterion) {
    let adaptive = adaptive_reference();
    let load = |scenario: &Path| {
        let path = small_compare_study(scenario);
        let study = mesobench::study::compare::load(&path).expect("the cut-down study is valid");
        std::fs::remove_file(&path).ok();
        study
    };
    let fixed = load(&root().join("scenarios/reference.toml"));
    let adaptive_study = load(&adaptive);
    std::fs::remove_file(&adaptive).ok();
    eprintln!("compare: {} operator/device sessions", fixed.tasks());
    let mut group = c.benchmark_group("studies");
    group.sample_size(10);
    for (name, study) in [("compare", &fixed), ("compare_adaptive", &adaptive_study)] {
        group.bench_function(name, |b| {
            b.iter(|| mesobench::study::compare::run(std::hint::black_box(study), 1, &|_| {}).expect("the study runs"))
        });
    }
    group.finish();
}

criterion_group!(benches, ha_sweep, compare);
criterion_main!(benches);
