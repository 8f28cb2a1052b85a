//! Regressions of the command line: `accept`'s input, and bounded resources
//! (sweep grids, file sizes, threads, `tolerance-k`, long traces).

use crate::util::{reference, root};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn mesobench(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mesobench")).args(args).current_dir(dir).output().expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Exit 2 with one `error:` line (no panic, no backtrace) that contains every `needle`.
fn assert_error(o: &Output, needles: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stdout: {}\nstderr: {e}", stdout(o));
    assert!(!e.contains("panicked") && !e.contains("internal error") && !e.contains("backtrace"), "{e}");
    for n in needles {
        assert!(e.contains(n), "{n:?} missing from: {e}");
    }
}

fn accept(dir: &Path, file: &str, text: &str, args: &[&str]) -> Output {
    std::fs::write(dir.join(file), text).unwrap();
    let mut all = vec!["accept", file];
    all.extend_from_slice(args);
    mesobench(dir, &all)
}

const DOSES: &str = "10.0\n10.1\n9.9\n10.05\n9.95\n10.02\n";

#[test]
fn accept_reads_the_first_dose_of_a_headerless_column() {
    let tmp = tempfile::tempdir().unwrap();
    let o = accept(tmp.path(), "d.csv", DOSES, &["--target-ul", "10"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("n 6 "), "{}", stdout(&o));
    // The same doses under a header give the same verdict line.
    let h = accept(tmp.path(), "h.csv", &format!("dose_ul\n{DOSES}"), &["--target-ul", "10"]);
    assert_eq!(stdout(&o), stdout(&h));
}

#[test]
fn accept_rejects_non_finite_or_non_positive_limits() {
    let tmp = tempfile::tempdir().unwrap();
    for (arg, value) in [
        ("--alpha-ul", "inf"),
        ("--alpha-ul", "0"),
        ("--alpha-ul", "-1"),
        ("--beta", "NaN"),
        ("--beta", "0"),
        ("--target-ul", "inf"),
        ("--target-ul", "0"),
        ("--target-ul", "2e6"),
        ("--coverage", "NaN"),
    ] {
        let mut args = vec!["--target-ul", "10"];
        if arg == "--target-ul" {
            args = vec![];
        }
        let pair = format!("{arg}={value}");
        args.push(&pair);
        let o = accept(tmp.path(), "d.csv", DOSES, &args);
        assert_error(&o, &[arg, if value == "2e6" { "2000000" } else { value }]);
    }
}

#[test]
fn accept_rejects_doses_whose_statistics_would_overflow() {
    let tmp = tempfile::tempdir().unwrap();
    let o = accept(tmp.path(), "big.csv", "dose_ul\n10\n1e308\n10\n", &["--target-ul", "10"]);
    assert_error(&o, &["big.csv:3", "1e308", "1000000"]);
}

#[test]
fn accept_refuses_a_duplicated_dose_column() {
    let tmp = tempfile::tempdir().unwrap();
    let o = accept(tmp.path(), "dup.csv", "dose_ul,shot,dose_ul\n1,0,2\n1,1,2\n1,2,2\n", &["--target-ul", "1"]);
    assert_error(&o, &["dup.csv", "dose_ul", "1", "3"]);
}

#[test]
fn accept_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    // A ragged row.
    let o = accept(tmp.path(), "ragged.csv", "shot,dose_ul\n0,10\n1,10,3\n2,10\n", &["--target-ul", "10"]);
    assert_error(&o, &["ragged.csv:3"]);
    // Too few doses.
    let o = accept(tmp.path(), "one.csv", "dose_ul\n10\n", &["--target-ul", "10"]);
    assert_error(&o, &["one.csv", "at least 2"]);
    // Empty.
    let o = accept(tmp.path(), "empty.csv", "", &["--target-ul", "10"]);
    assert_error(&o, &["empty.csv"]);
    // Not a number.
    let o = accept(tmp.path(), "word.csv", "dose_ul\n10\nten\n", &["--target-ul", "10"]);
    assert_error(&o, &["word.csv:3", "ten"]);
    // Several columns and none is dose_ul.
    let o = accept(tmp.path(), "cols.csv", "a,b\n1,2\n1,2\n", &["--target-ul", "10"]);
    assert_error(&o, &["cols.csv", "dose_ul"]);
}

const ARMS: &str = "arm,kind,target_ul,unit,shot,dose_ul\n\
gun,gun,10,0,0,10.0\ngun,gun,10,0,1,10.1\ngun,gun,10,0,2,9.9\n\
gun,gun,20,0,0,20.0\ngun,gun,20,0,1,20.1\ngun,gun,20,0,2,19.9\n\
manual,manual,10,0,0,9.0\nmanual,manual,10,0,1,11.0\nmanual,manual,10,0,2,10.5\n";

#[test]
fn accept_refuses_to_pool_arms_and_targets() {
    let tmp = tempfile::tempdir().unwrap();
    let o = accept(tmp.path(), "arms.csv", ARMS, &["--target-ul", "10"]);
    assert_error(&o, &["arms.csv", "gun", "manual", "--where arm="]);
    let o = accept(tmp.path(), "arms.csv", ARMS, &["--target-ul", "10", "--where", "arm=gun"]);
    assert_error(&o, &["arms.csv", "target_ul", "10", "20", "--where target_ul="]);
}

#[test]
fn accept_where_selects_one_arm_and_target() {
    let tmp = tempfile::tempdir().unwrap();
    let o =
        accept(tmp.path(), "arms.csv", ARMS, &["--target-ul", "20", "--where", "arm=gun", "--where", "target_ul=20"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("n 3 ") && stdout(&o).contains("mean 20.0000"), "{}", stdout(&o));
    // A number matches whatever its spelling.
    let o =
        accept(tmp.path(), "arms.csv", ARMS, &["--target-ul", "20", "--where", "arm=gun", "--where", "target_ul=20.0"]);
    assert!(stdout(&o).starts_with("n 3 "), "{}", stderr(&o));
}

#[test]
fn accept_where_names_a_missing_column_or_an_empty_selection() {
    let tmp = tempfile::tempdir().unwrap();
    let o = accept(tmp.path(), "arms.csv", ARMS, &["--target-ul", "10", "--where", "colour=red"]);
    assert_error(&o, &["arms.csv", "--where", "colour", "arm, kind, target_ul"]);
    let o = accept(tmp.path(), "arms.csv", ARMS, &["--target-ul", "10", "--where", "arm=robot"]);
    assert_error(&o, &["arms.csv", "arm=robot", "no row"]);
    let o = accept(tmp.path(), "arms.csv", ARMS, &["--target-ul", "10", "--where", "arm"]);
    assert_error(&o, &["--where", "COL=VALUE"]);
}

#[test]
fn endless_input_files_are_refused_at_a_size_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let o = mesobench(tmp.path(), &["check", "/dev/zero"]);
    assert_error(&o, &["/dev/zero is larger than 16 MiB: not a scenario"]);
    let o = mesobench(tmp.path(), &["run", "/dev/zero"]);
    assert_error(&o, &["/dev/zero is larger than 16 MiB: not a scenario"]);
    let o = mesobench(tmp.path(), &["compare", "/dev/zero"]);
    assert_error(&o, &["/dev/zero is larger than 16 MiB: not a study"]);
    let o = mesobench(tmp.path(), &["accept", "/dev/zero", "--target-ul", "10"]);
    assert_error(&o, &["/dev/zero", "line 1", "longer than"]);
    assert!(started.elapsed() < Duration::from_secs(60));
}

fn sweep_file(dir: &Path, parameters: &str) -> String {
    let text =
        format!("name = \"big\"\n[session]\nshots = 1\n[sweep]\nreplicates = 1\n[sweep.parameters]\n{parameters}\n");
    std::fs::write(dir.join("big.toml"), text).unwrap();
    "big.toml".into()
}

#[test]
fn a_sweep_axis_or_grid_too_large_is_refused_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let f = sweep_file(tmp.path(), "\"firmware.open_time_ms\" = { linspace = [5.0, 30.0, 1e12] }");
    let o = mesobench(tmp.path(), &["check", &f]);
    assert_error(&o, &["sweep.parameters.\"firmware.open_time_ms\"", "1000000"]);
    let f = sweep_file(
        tmp.path(),
        "\"firmware.open_time_ms\" = { linspace = [5.0, 30.0, 1000000] }\n\"supply.pressure_bar\" = { linspace = [1.0, 3.0, 1000000] }",
    );
    for args in [vec!["check", &f], vec!["sweep", &f, "--out", "o"]] {
        let o = mesobench(tmp.path(), &args);
        assert_error(&o, &["sweep.parameters", "supply.pressure_bar", "1000000000"]);
    }
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
}

#[test]
fn thread_counts_are_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = root().join("scenarios/sweep_open_time_pressure.toml");
    let study = root().join("scenarios/manual_vs_gun.toml");
    for (cmd, file) in [("sweep", &scenario), ("compare", &study), ("sensitivity", &scenario)] {
        for n in ["1000000", "0"] {
            let o = mesobench(tmp.path(), &[cmd, file.to_str().unwrap(), "--threads", n, "--out", "o"]);
            assert_error(&o, &["--threads", n, "1..=1024"]);
        }
    }
}

#[test]
fn tolerance_k_bounds_n_and_answers_the_largest_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    for n in ["18446744073709551615", "10000001", "1"] {
        let o = mesobench(tmp.path(), &["tolerance-k", "--n", n]);
        assert_error(&o, &["--n", n, "2..=10000000"]);
    }
    let started = Instant::now();
    let two = mesobench(tmp.path(), &["tolerance-k", "--n", "10000000"]);
    let one = mesobench(tmp.path(), &["tolerance-k", "--n", "10000000", "--one-sided"]);
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    // Large n: k tends to the normal quantile, z(0.9875) = 2.2414, z(0.975) = 1.9600.
    let k2: f64 = stdout(&two).trim().parse().unwrap_or_else(|_| panic!("{}", stderr(&two)));
    let k1: f64 = stdout(&one).trim().parse().unwrap_or_else(|_| panic!("{}", stderr(&one)));
    assert!((k2 - 2.2414).abs() < 2e-3, "two-sided k = {k2}");
    assert!((k1 - 1.9600).abs() < 2e-3, "one-sided k = {k1}");
}

#[test]
fn a_long_trace_is_streamed_while_the_recorder_holds_a_bounded_copy() {
    use mesobench::sim::{TraceRecorder, TraceSample};
    let sc = reference(&["session.shots=3"]);
    // Every sample, as trace.csv receives them.
    let mut all: Vec<TraceSample> = Vec::new();
    let cap = 1000;
    let mut fw = mesobench::controller_for(&sc).unwrap();
    let rec = TraceRecorder::with_sink(sc.solver.trace_interval, cap, Some(&mut all));
    let run = mesobench::simulate_recorded(&sc, fw.as_mut(), rec, None).unwrap();
    assert!(all.len() > 4 * cap, "{} samples", all.len());
    assert!(run.trace.len() <= cap && run.trace.len() >= cap / 4, "{} plotted", run.trace.len());
    // Same first and last times, and the peaks survive the decimation.
    assert_eq!(run.trace[0].t, all[0].t);
    assert_eq!(run.trace.last().unwrap().t, all.last().unwrap().t);
    for f in [|s: &TraceSample| s.chamber, |s: &TraceSample| s.flow, |s: &TraceSample| s.syringe] {
        let max = |v: &[TraceSample]| v.iter().map(f).fold(f64::MIN, f64::max);
        let min = |v: &[TraceSample]| v.iter().map(f).fold(f64::MAX, f64::min);
        assert_eq!(max(&run.trace), max(&all));
        assert_eq!(min(&run.trace), min(&all));
    }
    assert!(run.trace.windows(2).all(|w| w[0].t <= w[1].t));
    // Below the cap the copy is every sample, and the streamed rows are the full trace.
    let same = |a: &[TraceSample], b: &[TraceSample]| format!("{a:?}") == format!("{b:?}");
    let plain = mesobench::simulate(&sc, true).unwrap();
    assert!(same(&plain.trace, &all), "{} against {} samples", plain.trace.len(), all.len());
    let mut streamed: Vec<TraceSample> = Vec::new();
    let run = mesobench::simulate_traced(&sc, &mut streamed).unwrap();
    assert!(same(&streamed, &all) && same(&run.trace, &all));
}

#[test]
fn run_streams_every_trace_row_to_trace_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = reference(&["session.shots=3"]);
    let rows = mesobench::simulate(&sc, true).unwrap().trace.len();
    let o = mesobench(tmp.path(), &["run", "--set", "session.shots=3", "--out", "r", "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(tmp.path().join("r/trace.csv")).unwrap();
    assert_eq!(text.lines().count(), rows + 1);
    assert!(text.starts_with("t_ms,valve_cmd,"));
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("r"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // A run that fails leaves neither a partial trace nor the folder it created.
    std::fs::write(tmp.path().join("p.toml"), "[firmware]\nkind = \"plugin\"\nplugin = \"nope.so\"\n").unwrap();
    let o = mesobench(tmp.path(), &["run", "p.toml", "--out", "f", "--quiet"]);
    assert_error(&o, &["nope.so"]);
    // (The folder's lock file stays: removing a lock file races with its next holder.)
    let f = tmp.path().join("f");
    assert!(
        !f.exists()
            || std::fs::read_dir(&f).unwrap().all(|e| e.unwrap().file_name().to_string_lossy() == ".mesobench.lock")
    );
}

#[test]
fn a_space_filling_design_too_large_to_hold_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let keys: Vec<String> = (0..4)
        .map(|i| {
            format!(
                "\"{}\" = {{ range = [1.0, 2.0] }}",
                ["supply.pressure_bar", "valve.voltage_v", "firmware.open_time_ms", "needle.length_mm"][i]
            )
        })
        .collect();
    let text = format!(
        "[session]\nshots = 1\n[sweep]\nsampling = \"lhs\"\nsamples = 10000000\n[sweep.parameters]\n{}\n",
        keys.join("\n")
    );
    std::fs::write(tmp.path().join("lhs.toml"), text).unwrap();
    let o = mesobench(tmp.path(), &["check", "lhs.toml"]);
    assert_error(&o, &["lhs.toml:5", "sweep.samples = 10000000", "7500000 with 4 keys"]);
}

/// A failing comparison study reported whichever target's error a thread
/// met first (target 10 or 20 µL from run to run); errors are now taken in
/// index order, the same on every run.
#[test]
fn a_failing_study_reports_the_same_error_on_every_run() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = crate::util::root().join("scenarios/reference.toml");
    let text = format!(
        "name = \"small\"\nseed = 3\nscenario = {:?}\ntargets_ul = [10.0, 20.0, 30.0, 40.0]\nunits = 2\nshots = 2\n\
         [[arm]]\nname = \"x\"\nkind = \"gun\"\ncalibrate_key = \"firmware.open_time_ms\"\ncalibrate_range = [5.0, 6.0]\n",
        reference.to_str().unwrap()
    );
    let path = tmp.path().join("study.toml");
    std::fs::write(&path, text).unwrap();
    for _ in 0..6 {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_mesobench"))
            .args(["compare", path.to_str().unwrap(), "--threads", "2", "--out"])
            .arg(tmp.path().join("o"))
            .output()
            .unwrap();
        crate::util::assert_exit2(&o, &["target 10 µL is out of reach"]);
    }
}

/// Issue 17's messages: resuming a complete sweep printed "482994885
/// shots/s"; one thread was "1 threads"; a shard said it wrote "sweep.csv
/// and plots".
#[test]
fn sweep_summaries_say_what_was_computed_and_written() {
    let tmp = tempfile::tempdir().unwrap();
    let f = sweep_file(tmp.path(), "\"firmware.open_time_ms\" = [30.0, 40.0]");
    let o = mesobench(tmp.path(), &["sweep", &f, "--out", "o", "--threads", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("2 points × 1 replicate = 2 sessions, 2 shots"), "{out}");
    assert!(out.contains("computed 2 points (2 shots)") && out.contains("on 1 thread ("), "{out}");
    assert!(out.contains("wrote sweep.csv, sweep_manifest.json and plots"), "{out}");
    let o = mesobench(tmp.path(), &["sweep", &f, "--out", "o", "--threads", "1", "--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("already complete: nothing was computed"), "{out}");
    assert!(!out.contains("shots/s"), "{out}");
    let o = mesobench(tmp.path(), &["sweep", &f, "--out", "s", "--threads", "1", "--shard", "1/2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("wrote sweep.shard-00001-of-00002.csv and sweep_manifest.shard-00001-of-00002.json"), "{out}");
    assert!(out.contains("mesobench merge") && !out.contains("plots"), "{out}");
}

/// Issue 17: `run` on a study and `compare` on a scenario said what the
/// file is only after the schema detail; `check` could not validate a study.
#[test]
fn the_wrong_kind_of_file_is_named_first_and_check_validates_studies() {
    let study = root().join("scenarios/manual_vs_gun.toml");
    let scenario = root().join("scenarios/reference.toml");
    let o = mesobench(&root(), &["run", study.to_str().unwrap(), "--out", "/nonexistent/x"]);
    let first = stderr(&o).lines().next().unwrap_or("").to_string();
    assert_eq!(o.status.code(), Some(2));
    assert!(first.contains("is a comparison study") && first.contains("mesobench compare"), "{first}");
    let o = mesobench(&root(), &["compare", scenario.to_str().unwrap(), "--out", "/nonexistent/x"]);
    let first = stderr(&o).lines().next().unwrap_or("").to_string();
    assert_eq!(o.status.code(), Some(2));
    assert!(first.contains("is a scenario") && first.contains("mesobench run"), "{first}");
    let o = mesobench(&root(), &["check", study.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("valid comparison study (5 arms × 3 targets)"), "{}", stderr(&o));
}

/// Issue 17: a scenario file whose stem has dots or spaces (and no `name`
/// key) was refused as a name.
#[test]
fn file_stems_with_dots_or_spaces_name_the_scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("scenarios/reference.toml")).unwrap();
    let text: String = text.lines().filter(|l| !l.starts_with("name = ")).map(|l| format!("{l}\n")).collect();
    std::fs::write(tmp.path().join("my gun.v2.toml"), text).unwrap();
    let o = mesobench(tmp.path(), &["run", "my gun.v2.toml", "--quiet", "--set", "session.shots=1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(tmp.path().join("output/my_gun_v2/shots.csv").exists());
}

/// Issue 17: the stick-slip warning suggested `solver.step_us ≤ 10` to a run
/// already stepping at 5 µs.
#[test]
fn the_stick_slip_warning_suggests_a_finer_step_than_the_run_uses() {
    let warn = |step: &str| {
        let sc = reference(&["session.shots=1", "line.length_mm=3000", step]);
        let run = mesobench::simulate(&sc, false).unwrap();
        run.result.warnings.into_iter().find(|w| w.contains("stick-slipped")).expect("the 3 m hose stick-slips")
    };
    assert!(warn("solver.step_us=50").contains("check with solver.step_us ≤ 10"));
    let w = warn("solver.step_us=5");
    assert!(w.contains("the run already steps at 5 µs: check with solver.step_us = 2.5"), "{w}");
}
