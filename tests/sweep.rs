//! Parameter sweeps with Monte Carlo replicates.

use crate::util::{rel, root};
use mesobench::scenario::{Distribution, Prepared, Source};
use mesobench::stats::describe;
use mesobench::stats::percentile;
use mesobench::study::sweep::{draw, run};
use mesobench::study::task_rng;

fn prepared() -> Prepared {
    let src = Source::from_path(&root().join("scenarios/sweep_open_time_pressure.toml")).unwrap();
    Prepared::new(&src, "sweep_open_time_pressure").unwrap()
}

const SMALL: [&str; 3] =
    ["sweep.replicates=3", "sweep.parameters.\"firmware.open_time_ms\"=[30.0, 60.0]", "session.shots=2"];

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let prep = prepared();
    let sets: Vec<String> = SMALL.iter().map(|s| s.to_string()).collect();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, _) = run(&prep, &sets, a.path(), 1, false, &|_| {}, Default::default()).unwrap();
    let (sb, _) = run(&prep, &sets, b.path(), 2, false, &|_| {}, Default::default()).unwrap();
    let csv_a = std::fs::read(a.path().join("sweep.csv")).unwrap();
    assert_eq!(csv_a, std::fs::read(b.path().join("sweep.csv")).unwrap(), "1 and 2 threads differ");
    assert_eq!(sa.shots, sb.shots);
    // 2 open times × 5 pressures, in point order, last key fastest.
    let text = String::from_utf8(csv_a).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 11);
    assert!(rows[0].starts_with("point,firmware.open_time_ms,supply.pressure_bar,shots,dose_mean_ul"));
    assert!(rows[1].starts_with("0,30.0,2.0,6,"), "{}", rows[1]);
    assert!(rows[6].starts_with("5,60.0,2.0,6,"), "{}", rows[6]);
    assert!(!a.path().join(".sweep.csv.partial").exists());
}

#[test]
fn replicates_differ_but_repeat_exactly() {
    let prep = prepared();
    let sets: Vec<String> = SMALL.iter().map(|s| s.to_string()).collect();
    let dir = tempfile::tempdir().unwrap();
    let (_, pts) = run(&prep, &sets, dir.path(), 2, true, &|_| {}, Default::default()).unwrap();
    let (_, again) = run(&prep, &sets, dir.path(), 1, true, &|_| {}, Default::default()).unwrap();
    assert_eq!(pts, again);
    // Device and patient variability give every point a spread.
    assert!(pts.iter().all(|p| p.sd > 0.0 && p.p5 <= p.p50 && p.p50 <= p.p95));
    // And the dose rises with pressure at a fixed open time.
    assert!(pts[..5].windows(2).all(|w| w[1].mean > w[0].mean));
}

#[test]
fn progress_reports_every_point() {
    let prep = prepared();
    let sets: Vec<String> = SMALL.iter().map(|s| s.to_string()).collect();
    let dir = tempfile::tempdir().unwrap();
    let last = std::sync::atomic::AtomicU64::new(0);
    run(
        &prep,
        &sets,
        dir.path(),
        2,
        false,
        &|d| last.store(d, std::sync::atomic::Ordering::Relaxed),
        Default::default(),
    )
    .unwrap();
    assert_eq!(last.load(std::sync::atomic::Ordering::Relaxed), 10);
    // Issue 17: every point moves the progress, not only every written chunk
    // (a 35-point sweep used to show 0/35 until it ended).
    let seen = std::sync::Mutex::new(Vec::new());
    let dir = tempfile::tempdir().unwrap();
    run(&prep, &sets, dir.path(), 2, false, &|d| seen.lock().unwrap().push(d), Default::default()).unwrap();
    let mut seen = seen.into_inner().unwrap();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, (0..=10).collect::<Vec<u64>>());
}

#[test]
fn grids_and_distributions() {
    let src = Source::from_path(&root().join("scenarios/sweep_open_time_pressure.toml")).unwrap();
    let prep = Prepared::new(&src, "s").unwrap();
    let sc = prep.with(&["sweep.parameters.\"supply.pressure_bar\"={ logspace = [1.0, 4.0, 3] }".into()]).unwrap();
    let spec = sc.sweep.unwrap();
    assert_eq!(spec.points(), 21);
    let p = &spec.axes[1].1;
    assert!((p[0] - 1.0).abs() < 1e-12 && (p[1] - 2.0).abs() < 1e-12 && (p[2] - 4.0).abs() < 1e-12, "{p:?}");
    assert_eq!(mesobench::study::design::point(&spec, 4)[0].1, 30.0);
    assert_eq!(mesobench::study::design::point(&spec, 4)[1].1, 2.0);
    // Each distribution has its stated moments; draws repeat per task stream.
    let n = 20_000;
    let sample = |d: Distribution| {
        let mut r = task_rng(5, 1, 2);
        (0..n).map(|_| draw(&d, &mut r)).collect::<Vec<f64>>()
    };
    let s = describe(&sample(Distribution::Normal { mean: 10.0, sd: 2.0 }));
    assert!(rel(s.mean, 10.0) < 0.01 && rel(s.sd, 2.0) < 0.03);
    let u = describe(&sample(Distribution::Uniform { lo: 2.0, hi: 4.0 }));
    assert!(rel(u.mean, 3.0) < 0.01 && rel(u.sd, 2.0 / 12f64.sqrt()) < 0.03);
    let mut l = sample(Distribution::Lognormal { median: 4.0, gsd: 1.3 });
    l.sort_by(f64::total_cmp);
    assert!(rel(percentile(&l, 0.5), 4.0) < 0.02);
    let t = sample(Distribution::TruncatedNormal { mean: 4.0, sd: 1.0, lo: 2.6, hi: 10.0 });
    assert!(t.iter().all(|x| (2.6..=10.0).contains(x)));
    assert_eq!(
        sample(Distribution::Normal { mean: 0.0, sd: 1.0 }),
        sample(Distribution::Normal { mean: 0.0, sd: 1.0 })
    );
    let other: Vec<f64> = {
        let mut r = task_rng(5, 1, 3);
        (0..10).map(|_| draw(&Distribution::Normal { mean: 0.0, sd: 1.0 }, &mut r)).collect()
    };
    assert_ne!(other[..], sample(Distribution::Normal { mean: 0.0, sd: 1.0 })[..10]);
}

#[test]
fn percentiles_interpolate_linearly() {
    let x = [1.0, 2.0, 3.0, 4.0, 5.0];
    assert_eq!(percentile(&x, 0.0), 1.0);
    assert_eq!(percentile(&x, 0.5), 3.0);
    assert_eq!(percentile(&x, 1.0), 5.0);
    assert!((percentile(&x, 0.05) - 1.2).abs() < 1e-12);
}

fn sweep_cli(text: &str, fragments: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.toml");
    std::fs::write(&path, text).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mesobench"))
        .args(["sweep", path.to_str().unwrap(), "--out", tmp.path().join("o").to_str().unwrap(), "--quiet"])
        .output()
        .unwrap();
    crate::util::assert_exit2(&o, fragments);
}

#[test]
fn bad_sweeps_are_clear_errors() {
    sweep_cli("name = \"x\"\n", &["no [sweep] table"]);
    sweep_cli(
        "[sweep]\nreplicates = 2\n[sweep.parameters]\n\"supply.pressure_bar\" = \"high\"\n",
        &["sweep.parameters.\"supply.pressure_bar\"", "a list of numbers"],
    );
    sweep_cli(
        "[sweep]\n[sweep.parameters]\n\"supply.pressure_bar\" = [3.0, 30.0]\n",
        &["s.toml:3:25:", "sweep.parameters.\"supply.pressure_bar\" = 30 is not allowed", "0.2 to 10 bar"],
    );
    sweep_cli(
        "[sweep]\n[uncertain]\n\"syringe.break_loose_n\" = { dist = \"normal\", mean = 4.0, sd = 0.5, level = \"shot\" }\n",
        &["uncertain.\"syringe.break_loose_n\"", "only keys starting with valve., tissue."],
    );
    sweep_cli("[sweep]\n[uncertain]\n\"valve.coil_temperature_c\" = { dist = \"gamma\" }\n", &["dist = \"normal\""]);
}

#[test]
fn sweep_command_writes_its_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mesobench"))
        .current_dir(root())
        .args([
            "sweep",
            "scenarios/sweep_open_time_pressure.toml",
            "--out",
            tmp.path().to_str().unwrap(),
            "--threads",
            "2",
        ])
        .args(SMALL.iter().flat_map(|s| ["--set", s]))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "sweep.csv",
        "sweep_manifest.json",
        "sweep_mean.png",
        "sweep_mean.svg",
        "sweep_cv.png",
        "sweep_cv.svg",
        "sweep_hist.png",
        "sweep_traces.png",
        "sweep_traces.svg",
    ] {
        assert!(tmp.path().join(f).exists(), "{f}");
    }
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("sweep_manifest.json")).unwrap()).unwrap();
    assert_eq!(m["seed"], 11);
    assert_eq!(m["summary"]["points"], 10);
}

fn cli(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_mesobench"));
    c.current_dir(root()).args(args).env_remove("SLURM_ARRAY_TASK_ID").env_remove("SLURM_ARRAY_TASK_COUNT");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn sweep_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["sweep", "scenarios/sweep_open_time_pressure.toml", "--out", out, "--quiet"];
    for s in SMALL {
        a.push("--set");
        a.push(s);
    }
    a.extend_from_slice(extra);
    a
}

#[test]
fn shards_merge_into_the_bytes_of_an_unsharded_run() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    assert!(cli(&sweep_args(whole.to_str().unwrap(), &[]), &[]).status.success());
    // Shards 0 and 2 of 3 from --shard, shard 1 from Slurm's array variables.
    assert!(cli(&sweep_args(a.to_str().unwrap(), &["--shard", "0/3"]), &[]).status.success());
    assert!(cli(
        &sweep_args(b.to_str().unwrap(), &[]),
        &[("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_COUNT", "3")]
    )
    .status
    .success());
    assert!(b.join("sweep.shard-00001-of-00003.csv").exists());
    assert!(cli(&sweep_args(a.to_str().unwrap(), &["--shard", "2/3"]), &[]).status.success());
    let merged = tmp.path().join("merged");
    let o = cli(&["merge", a.to_str().unwrap(), b.to_str().unwrap(), "--out", merged.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["sweep.csv", "sweep_manifest.json"] {
        let (m, w) =
            (std::fs::read_to_string(merged.join(f)).unwrap(), std::fs::read_to_string(whole.join(f)).unwrap());
        assert!(m == w, "{f} differs:\n{m}\n---\n{w}");
    }
    // Missing, duplicated and foreign shards are refused with exit 2.
    let err = |o: std::process::Output| {
        assert_eq!(
            o.status.code(),
            Some(2),
            "stdout {} stderr {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = err(cli(&["merge", a.to_str().unwrap(), "--out", tmp.path().join("x").to_str().unwrap()], &[]));
    assert!(e.contains("missing shard(s) [1] of 3"), "{e}");
    std::fs::copy(b.join("sweep.shard-00001-of-00003.csv"), a.join("sweep.shard-00001-of-00003.csv")).unwrap();
    std::fs::copy(
        b.join("sweep_manifest.shard-00001-of-00003.json"),
        a.join("sweep_manifest.shard-00001-of-00003.json"),
    )
    .unwrap();
    let e = err(cli(
        &["merge", a.to_str().unwrap(), b.to_str().unwrap(), "--out", tmp.path().join("x").to_str().unwrap()],
        &[],
    ));
    assert!(e.contains("shard 1 of 3 appears twice"), "{e}");
    let c = tmp.path().join("c");
    assert!(cli(&sweep_args(c.to_str().unwrap(), &["--shard", "1/3", "--set", "seed=12"]), &[]).status.success());
    std::fs::remove_file(a.join("sweep.shard-00001-of-00003.csv")).unwrap();
    std::fs::remove_file(a.join("sweep_manifest.shard-00001-of-00003.json")).unwrap();
    let e = err(cli(
        &["merge", a.to_str().unwrap(), c.to_str().unwrap(), "--out", tmp.path().join("x").to_str().unwrap()],
        &[],
    ));
    assert!(e.contains("different sweep") && e.contains("seed"), "{e}");
    let d = tmp.path().join("d");
    assert!(cli(&sweep_args(d.to_str().unwrap(), &["--shard", "1/2"]), &[]).status.success());
    let e = err(cli(
        &["merge", a.to_str().unwrap(), d.to_str().unwrap(), "--out", tmp.path().join("x").to_str().unwrap()],
        &[],
    ));
    assert!(e.contains("disagree on the shard count"), "{e}");
    let e = err(cli(&sweep_args(d.to_str().unwrap(), &["--shard", "2/2"]), &[]));
    assert!(e.contains("--shard = \"2/2\" is not allowed"), "{e}");
}

#[test]
fn an_interrupted_sweep_resumes_to_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    assert!(cli(&sweep_args(whole.to_str().unwrap(), &[]), &[]).status.success());
    let full = std::fs::read_to_string(whole.join("sweep.csv")).unwrap();
    // An interruption leaves the flushed rows and half a row in the partial file.
    let cut = tmp.path().join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    let lines: Vec<&str> = full.split_inclusive('\n').collect();
    let mut partial: String = lines[..5].concat();
    partial.push_str(&lines[5][..10]);
    std::fs::write(cut.join(".sweep.csv.partial"), &partial).unwrap();
    // With the fingerprint of the settings it was made with.
    std::fs::copy(whole.join(".sweep.csv.fingerprint.json"), cut.join(".sweep.csv.fingerprint.json")).unwrap();
    let o = cli(&sweep_args(cut.to_str().unwrap(), &["--resume"]), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(cut.join("sweep.csv")).unwrap(), full);
    assert!(!cut.join(".sweep.csv.partial").exists());
    // Resuming a finished sweep recomputes nothing and keeps the bytes.
    let o = cli(&sweep_args(cut.to_str().unwrap(), &["--resume"]), &[]);
    assert!(o.status.success());
    assert_eq!(std::fs::read_to_string(cut.join("sweep.csv")).unwrap(), full);
    // A partial file from another sweep is refused.
    std::fs::write(cut.join(".sweep.csv.partial"), "point,other\n").unwrap();
    let o = cli(&sweep_args(cut.to_str().unwrap(), &["--resume"]), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot resume"));
}

#[test]
fn per_shot_draws_vary_shots_within_a_session() {
    // Only per-shot valve-voltage ripple and per-site tissue: shots of one
    // session differ, and the sweep still repeats exactly.
    let prep = prepared();
    let sc = prep.with(&[]).unwrap();
    let spec = sc.sweep.clone().unwrap();
    let sets = mesobench::study::sweep::overrides(&sc, &spec, &[], 3, 0);
    let variant = prep.with(&sets).unwrap();
    let only_shot: Vec<_> =
        sc.uncertain.iter().filter(|u| u.level != mesobench::scenario::Level::Session).cloned().collect();
    assert_eq!(only_shot.len(), 2);
    let run = |r| {
        mesobench::study::sweep::simulate_replicate(&prep, &only_shot, &sets, &variant, sc.seed, 3, r, false).unwrap()
    };
    let a: Vec<f64> = run(0).result.shots.iter().map(|s| s.dose).collect();
    assert!(a.windows(2).all(|w| w[0] != w[1]), "{a:?}");
    let again: Vec<f64> = run(0).result.shots.iter().map(|s| s.dose).collect();
    assert_eq!(a, again);
    let other: Vec<f64> = run(1).result.shots.iter().map(|s| s.dose).collect();
    assert_ne!(a, other);
}

#[test]
fn raw_output_lists_every_shot_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    assert!(cli(&sweep_args(a.to_str().unwrap(), &["--raw", "--threads", "1"]), &[]).status.success());
    assert!(cli(&sweep_args(b.to_str().unwrap(), &["--raw", "--threads", "2"]), &[]).status.success());
    let raw = std::fs::read_to_string(a.join("raw.csv")).unwrap();
    assert_eq!(raw, std::fs::read_to_string(b.join("raw.csv")).unwrap());
    // 10 points × 3 replicates × 2 shots, plus the header.
    assert_eq!(raw.lines().count(), 61);
    assert!(raw.starts_with(
        "point,replicate,shot,firmware.open_time_ms,supply.pressure_bar,dose_ul,leak_ul,peak_tissue_kpa,\
         needle.inner_diameter_mm,syringe.break_loose_n,tissue.opening_pressure_kpa,valve.coil_temperature_c,\
         valve.voltage_v\n"
    ));
    for f in ["sweep_hist.png", "sweep_hist.svg"] {
        assert!(a.join(f).exists(), "{f}");
    }
    // An interruption after four points: both tables resume to the same bytes.
    let c = tmp.path().join("c");
    std::fs::create_dir_all(&c).unwrap();
    let table = std::fs::read_to_string(a.join("sweep.csv")).unwrap();
    let t: Vec<&str> = table.split_inclusive('\n').collect();
    std::fs::write(c.join(".sweep.csv.partial"), t[..5].concat()).unwrap();
    std::fs::copy(a.join(".sweep.csv.fingerprint.json"), c.join(".sweep.csv.fingerprint.json")).unwrap();
    let r: Vec<&str> = raw.split_inclusive('\n').collect();
    std::fs::write(c.join(".raw.csv.partial"), r[..30].concat()).unwrap();
    assert!(cli(&sweep_args(c.to_str().unwrap(), &["--raw", "--resume"]), &[]).status.success());
    assert_eq!(std::fs::read_to_string(c.join("raw.csv")).unwrap(), raw);
    assert_eq!(std::fs::read_to_string(c.join("sweep.csv")).unwrap(), table);
}

#[test]
fn latin_hypercube_and_sobol_designs() {
    use mesobench::study::design::design;
    let n = 50;
    let ranges = [(20.0, 80.0, false), (1.0, 100.0, true)];
    let lhs = design(mesobench::scenario::Sampling::Lhs, n, &ranges, 9);
    assert_eq!(lhs, design(mesobench::scenario::Sampling::Lhs, n, &ranges, 9));
    assert_ne!(lhs, design(mesobench::scenario::Sampling::Lhs, n, &ranges, 10));
    // One point in each of the n strata of every key (in log space for the log key).
    for (k, (lo, hi, log)) in ranges.iter().enumerate() {
        let mut strata: Vec<usize> = lhs
            .iter()
            .map(|r| {
                let u = if *log { (r[k].ln() - lo.ln()) / (hi.ln() - lo.ln()) } else { (r[k] - lo) / (hi - lo) };
                (u * n as f64) as usize
            })
            .collect();
        strata.sort();
        assert_eq!(strata, (0..n).collect::<Vec<_>>(), "key {k}");
    }
    let sob = design(mesobench::scenario::Sampling::Sobol, 64, &ranges, 9);
    assert!(sob.iter().all(|r| (20.0..=80.0).contains(&r[0]) && (1.0..=100.0).contains(&r[1])));
    // A Sobol sweep runs, shards and merges like a grid.
    let tmp = tempfile::tempdir().unwrap();
    let sets = [
        "--set",
        "sweep.sampling=\"sobol\"",
        "--set",
        "sweep.samples=8",
        "--set",
        "sweep.parameters.\"firmware.open_time_ms\"={ range = [20.0, 80.0] }",
        "--set",
        "sweep.parameters.\"supply.pressure_bar\"={ logrange = [2.0, 4.0] }",
    ];
    let (whole, parts) = (tmp.path().join("w"), tmp.path().join("p"));
    let mut a = sweep_args(whole.to_str().unwrap(), &sets);
    assert!(cli(&a, &[]).status.success());
    for i in ["0/2", "1/2"] {
        a = sweep_args(parts.to_str().unwrap(), &sets);
        a.extend_from_slice(&["--shard", i]);
        assert!(cli(&a, &[]).status.success());
    }
    assert!(cli(&["merge", parts.to_str().unwrap()], &[]).status.success());
    let text = std::fs::read_to_string(whole.join("sweep.csv")).unwrap();
    assert_eq!(text.lines().count(), 9);
    assert_eq!(text, std::fs::read_to_string(parts.join("sweep.csv")).unwrap());
}

#[test]
fn a_killed_sweep_resumes_to_the_bytes_of_an_uninterrupted_run() {
    // 200 points in chunks of 64 (one thread): kill after the first chunk is on disk.
    let tmp = tempfile::tempdir().unwrap();
    let (whole, killed) = (tmp.path().join("whole"), tmp.path().join("killed"));
    let extra = [
        "--threads",
        "1",
        "--set",
        "sweep.parameters.\"firmware.open_time_ms\"={ linspace = [20.0, 80.0, 40] }",
        "--set",
        "sweep.replicates=1",
        "--set",
        "session.shots=1",
    ];
    assert!(cli(&sweep_args(whole.to_str().unwrap(), &extra), &[]).status.success());
    let expected = std::fs::read_to_string(whole.join("sweep.csv")).unwrap();
    assert_eq!(expected.lines().count(), 201);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mesobench"))
        .current_dir(root())
        .args(sweep_args(killed.to_str().unwrap(), &extra))
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .spawn()
        .unwrap();
    let partial = killed.join(".sweep.csv.partial");
    let start = std::time::Instant::now();
    let mut rows = 0;
    while start.elapsed() < std::time::Duration::from_secs(120) {
        rows = std::fs::read_to_string(&partial).map(|t| t.lines().count()).unwrap_or(0);
        if rows > 1 || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    if killed.join("sweep.csv").exists() {
        // The machine finished the whole sweep before the kill: nothing to resume.
        eprintln!("the sweep finished before it could be killed");
        return;
    }
    eprintln!("killed with {rows} lines on disk");
    assert!(rows > 1 && rows < 201, "partial rows {rows}");
    assert!(cli(&sweep_args(killed.to_str().unwrap(), &[&extra[..], &["--resume"]].concat()), &[]).status.success());
    assert_eq!(std::fs::read_to_string(killed.join("sweep.csv")).unwrap(), expected);
}

#[test]
fn shard_index_from_kubernetes_and_slurm_scripts() {
    let tmp = tempfile::tempdir().unwrap();
    let k = tmp.path().join("k");
    let o = cli(&sweep_args(k.to_str().unwrap(), &["--shard", "/3"]), &[("JOB_COMPLETION_INDEX", "2")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(k.join("sweep.shard-00002-of-00003.csv").exists());
    let o = cli(&sweep_args(k.to_str().unwrap(), &["--shard", "/3"]), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("JOB_COMPLETION_INDEX"));
    // The Slurm driver pins the scenario, the seed and the shard count.
    let s = tmp.path().join("s");
    let o = cli(&sweep_args(s.to_str().unwrap(), &["--slurm-script", "4"]), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let shard = std::fs::read_to_string(s.join("slurm_shard.sbatch")).unwrap();
    assert!(
        shard.contains("--shard \"$SLURM_ARRAY_TASK_ID/4\"")
            && shard.contains("--set seed=11")
            && shard.contains("--resume"),
        "{shard}"
    );
    let driver = std::fs::read_to_string(s.join("slurm_sweep.sh")).unwrap();
    assert!(driver.contains("--array=\"$INDICES\"") && driver.contains("--dependency=afterok:\"$ARRAY\""), "{driver}");
    assert!(std::fs::read_to_string(s.join("slurm_merge.sbatch")).unwrap().contains(" merge "));
    let o = cli(&sweep_args(s.to_str().unwrap(), &["--slurm-script", "99"]), &[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn raw_csv_carries_every_drawn_value_as_simulated() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    assert!(cli(&sweep_args(a.to_str().unwrap(), &["--raw"]), &[]).status.success());
    let raw = std::fs::read_to_string(a.join("raw.csv")).unwrap();
    let mut lines = raw.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<f64>> = lines.map(|l| l.split(',').map(|f| f.parse().unwrap()).collect()).collect();
    let col = |k: &str| head.iter().position(|h| *h == k).unwrap_or_else(|| panic!("{k} in {head:?}"));
    let (rep, dose, bore, volts) =
        (col("replicate"), col("dose_ul"), col("needle.inner_diameter_mm"), col("valve.voltage_v"));
    // A session-level draw is the same in every shot of a replicate, a
    // per-shot draw differs from shot to shot.
    for pair in rows.windows(2).filter(|w| w[0][0] == w[1][0] && w[0][rep] == w[1][rep]) {
        assert_eq!(pair[0][bore], pair[1][bore]);
        assert_ne!(pair[0][volts], pair[1][volts]);
    }
    // The drawn values are those the sweep's own draws give.
    let sc = prepared().with(&SMALL.map(String::from)).unwrap();
    for r in rows.iter().take(8) {
        let drawn = mesobench::study::sweep::drawn_values(&sc, r[0] as u64, r[rep] as u64, r[2] as usize);
        let listed: Vec<f64> = r[col("needle.inner_diameter_mm")..].to_vec();
        assert_eq!(drawn, listed, "row {r:?}");
    }
    // ...and they are what was simulated: the dose follows the drawn bore
    // (Poiseuille: a wider needle delivers more), point by point.
    let mut positive = 0;
    let points: std::collections::BTreeSet<u64> = rows.iter().map(|r| r[0] as u64).collect();
    for p in &points {
        let pts: Vec<&Vec<f64>> = rows.iter().filter(|r| r[0] as u64 == *p).collect();
        let (mx, my) = (
            pts.iter().map(|r| r[bore]).sum::<f64>() / pts.len() as f64,
            pts.iter().map(|r| r[dose]).sum::<f64>() / pts.len() as f64,
        );
        let cov: f64 = pts.iter().map(|r| (r[bore] - mx) * (r[dose] - my)).sum();
        positive += (cov > 0.0) as usize;
    }
    assert!(
        positive * 10 >= points.len() * 8,
        "dose rises with the drawn bore in {positive} of {} points",
        points.len()
    );
}
