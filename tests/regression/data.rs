//! Regressions of the data paths: sweeps, resume, raw output, merge, output folders.

use crate::util::{assert_exit2, root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary, run in `cwd` (a temporary folder, so an aborted run's core
/// file never lands in the repository) without Slurm or test-hook variables.
fn mesobench(cwd: &Path, args: &[String], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mesobench"));
    c.current_dir(cwd).args(args);
    for k in ["SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "JOB_COMPLETION_INDEX", "MESOBENCH_FAULT_AFTER"] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("the binary runs")
}

fn ok(o: &Output) {
    assert!(o.status.success(), "exit {:?}: {}", o.status, String::from_utf8_lossy(&o.stderr));
}

fn scenario() -> PathBuf {
    root().join("scenarios/sweep_open_time_pressure.toml")
}

/// A tiny sweep (6 points × 2 replicates × 2 shots) of `scenario` into `out`, one thread.
fn sweep(scenario: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> =
        ["sweep", &scenario.display().to_string(), "--out", &out.display().to_string()].map(String::from).into();
    for s in [
        "--quiet",
        "--threads",
        "1",
        "--set",
        "sweep.replicates=2",
        "--set",
        "sweep.parameters.\"firmware.open_time_ms\"=[30.0, 60.0]",
        "--set",
        "sweep.parameters.\"supply.pressure_bar\"=[2.0, 3.0, 4.0]",
        "--set",
        "session.shots=2",
    ] {
        a.push(s.into());
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Abort a fresh sweep at fault point `n`.
fn abort_at(cwd: &Path, args: &[String], n: u64) -> Output {
    let o = mesobench(cwd, args, &[("MESOBENCH_FAULT_AFTER", &n.to_string())]);
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if !o.status.success() {
            assert_eq!(o.status.signal(), Some(6), "not aborted: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
    o
}

/// How many fault points a fresh, uninterrupted run of `args` passes (the
/// last is just before the table's final rename): the run aborted at any
/// point up to that number and succeeds past it. Found by bisection.
fn fault_points(cwd: &Path, args: &[String]) -> u64 {
    let (mut lo, mut hi) = (1u64, 2u64);
    while !abort_at(cwd, args, hi).status.success() {
        (lo, hi) = (hi, hi * 2);
        assert!(hi < 1 << 20, "the fault hook never stopped firing");
    }
    // Aborted at lo, succeeded at hi.
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if abort_at(cwd, args, mid).status.success() {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    lo
}

/// The fault points a kill test visits out of `1..=total`: every one of the
/// first 24 (the fingerprint, headers, first rows and first sync) and of the
/// last 6 (the last rows, syncs and renames), and every 7th between (rows
/// are written one point at a time, so the points between repeat).
fn sampled_fault_points(total: u64) -> Vec<u64> {
    (1..=total).filter(|&n| n <= 24 || n + 6 > total || n % 7 == 0).collect()
}

#[test]
fn resume_refuses_a_partial_made_with_other_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (whole, cut) = (t.join("whole"), t.join("cut"));
    ok(&mesobench(t, &sweep(&scenario(), &whole, &["--set", "seed=1"]), &[]));
    // Fault point 8 is the table's first rows, torn in half: a partial of seed 1.
    assert!(!abort_at(t, &sweep(&scenario(), &cut, &["--set", "seed=1"]), 8).status.success());
    assert!(cut.join(".sweep.csv.partial").exists());
    let e = assert_exit2(
        &mesobench(t, &sweep(&scenario(), &cut, &["--set", "seed=2", "--resume"]), &[]),
        &["cannot resume", "made with seed 1, this run has seed 2", "rerun without --resume or with the same settings"],
    );
    assert!(e.contains("sweep.csv"), "{e}");
    assert_exit2(
        &mesobench(
            t,
            &sweep(&scenario(), &cut, &["--set", "seed=1", "--set", "needle.length_mm=5.0", "--resume"]),
            &[],
        ),
        &["cannot resume", "--set overrides"],
    );
    // Nothing of the refused runs reached the partial: the same settings resume to the uninterrupted bytes.
    ok(&mesobench(t, &sweep(&scenario(), &cut, &["--set", "seed=1", "--resume"]), &[]));
    assert_eq!(read(&cut.join("sweep.csv")), read(&whole.join("sweep.csv")));
    assert_eq!(read(&cut.join("sweep_manifest.json")), read(&whole.join("sweep_manifest.json")));
}

#[test]
fn resume_refuses_a_partial_of_an_edited_scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let file = t.join("s.toml");
    let text = std::fs::read_to_string(scenario()).unwrap();
    std::fs::write(&file, &text).unwrap();
    let cut = t.join("cut");
    assert!(!abort_at(t, &sweep(&file, &cut, &[]), 8).status.success());
    std::fs::write(&file, text.replace("rate_hz = 2.0", "rate_hz = 3.0")).unwrap();
    assert_exit2(
        &mesobench(t, &sweep(&file, &cut, &["--resume"]), &[]),
        &["cannot resume", "partial table was made with a different scenario file content"],
    );
}

#[test]
fn resume_refuses_a_finished_sweep_made_with_other_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = t.join("done");
    ok(&mesobench(t, &sweep(&scenario(), &dir, &["--set", "seed=1"]), &[]));
    let (table, manifest) = (read(&dir.join("sweep.csv")), read(&dir.join("sweep_manifest.json")));
    assert_exit2(
        &mesobench(t, &sweep(&scenario(), &dir, &["--set", "seed=2", "--resume"]), &[]),
        &["cannot resume", "finished table was made with seed 1, this run has seed 2"],
    );
    assert_eq!(read(&dir.join("sweep.csv")), table);
    assert_eq!(read(&dir.join("sweep_manifest.json")), manifest);
    // The same settings: nothing to do, the same bytes.
    ok(&mesobench(t, &sweep(&scenario(), &dir, &["--set", "seed=1", "--resume"]), &[]));
    assert_eq!(read(&dir.join("sweep.csv")), table);
}

#[test]
fn resume_refuses_a_partial_without_fingerprint() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = t.join("d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".sweep.csv.partial"), "point,x\n").unwrap();
    assert_exit2(&mesobench(t, &sweep(&scenario(), &dir, &["--resume"]), &[]), &["cannot resume", "no fingerprint"]);
}

#[test]
fn a_kill_at_the_write_sync_and_rename_points_resumes_to_the_bytes_of_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // 66 points, past one sync of the tables (every 64 points on one
    // thread), every shot in raw.csv.
    let extra = [
        "--raw",
        "--set",
        "sweep.parameters.\"firmware.open_time_ms\"={ linspace = [20.0, 80.0, 22] }",
        "--set",
        "session.shots=1",
    ];
    let whole = t.join("whole");
    ok(&mesobench(t, &sweep(&scenario(), &whole, &extra), &[]));
    let (table, raw) = (read(&whole.join("sweep.csv")), read(&whole.join("raw.csv")));
    let mean = read(&whole.join("sweep_mean.png"));
    assert_eq!(table.iter().filter(|&&b| b == b'\n').count(), 67);
    assert_eq!(raw.iter().filter(|&&b| b == b'\n').count(), 133);
    // One folder for every kill, so a fresh run also starts over a finished one.
    let dir = t.join("killed");
    let args = sweep(&scenario(), &dir, &extra);
    let resume = [&args[..], &["--resume".to_string()]].concat();
    let total = fault_points(t, &args);
    // Two writes a point (raw rows, then table rows), the syncs and renames.
    assert!(total > 2 * 66, "only {total} fault points");
    // A kill loses only the point in flight: killed 40 fault points past the
    // first rows, the partial table already holds about 20 finished points
    // (written as they finish, not in chunks of 64).
    assert!(!abort_at(t, &args, 48).status.success());
    let kept = read(&dir.join(".sweep.csv.partial")).iter().filter(|&&b| b == b'\n').count();
    assert!((18..=22).contains(&kept), "{kept} lines kept in the partial table");
    for n in sampled_fault_points(total) {
        assert!(!abort_at(t, &args, n).status.success(), "not killed at fault point {n}");
        ok(&mesobench(t, &resume, &[]));
        assert!(read(&dir.join("sweep.csv")) == table, "kill at point {n}: sweep.csv differs");
        assert!(read(&dir.join("raw.csv")) == raw, "kill at point {n}: raw.csv differs");
        // The plots of a resumed sweep cover every point, not only those of the last run.
        assert!(read(&dir.join("sweep_mean.png")) == mean, "kill at point {n}: sweep_mean.png differs");
        assert!(!dir.join(".sweep.csv.partial").exists() && !dir.join(".raw.csv.partial").exists());
    }
}

#[test]
fn resume_recomputes_points_whose_raw_rows_are_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let whole = t.join("whole");
    ok(&mesobench(t, &sweep(&scenario(), &whole, &["--raw"]), &[]));
    let (table, raw) = (read(&whole.join("sweep.csv")), read(&whole.join("raw.csv")));
    let lines =
        |b: &[u8]| String::from_utf8(b.to_vec()).unwrap().split_inclusive('\n').map(String::from).collect::<Vec<_>>();
    let (t_lines, r_lines) = (lines(&table), lines(&raw));
    // As after a full disk: four table rows, but the raw table stops inside
    // point 1 (4 rows a point); then as after a run without --raw.
    for raw_rows in [Some(6), None] {
        let dir = t.join(format!("cut{raw_rows:?}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(whole.join(".sweep.csv.fingerprint.json"), dir.join(".sweep.csv.fingerprint.json")).unwrap();
        std::fs::write(dir.join(".sweep.csv.partial"), t_lines[..5].concat()).unwrap();
        if let Some(n) = raw_rows {
            std::fs::write(dir.join(".raw.csv.partial"), r_lines[..1 + n].concat()).unwrap();
        }
        ok(&mesobench(t, &sweep(&scenario(), &dir, &["--raw", "--resume"]), &[]));
        assert!(read(&dir.join("raw.csv")) == raw, "{raw_rows:?}: raw.csv differs");
        assert!(read(&dir.join("sweep.csv")) == table, "{raw_rows:?}: sweep.csv differs");
    }
}

/// Three shards of the tiny sweep with raw tables in `dir`.
fn shards(t: &Path, dir: &Path) {
    for i in 0..3 {
        ok(&mesobench(t, &sweep(&scenario(), dir, &["--raw", "--shard", &format!("{i}/3")]), &[]));
    }
}

fn merge(t: &Path, dir: &Path, out: &Path) -> Output {
    mesobench(t, &["merge".into(), dir.display().to_string(), "--out".into(), out.display().to_string()], &[])
}

#[test]
fn merge_joins_raw_shards_and_draws_the_plots_of_an_unsharded_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (whole, parts, merged) = (t.join("whole"), t.join("parts"), t.join("merged"));
    ok(&mesobench(t, &sweep(&scenario(), &whole, &["--raw"]), &[]));
    shards(t, &parts);
    ok(&merge(t, &parts, &merged));
    for f in ["sweep.csv", "raw.csv", "sweep_manifest.json"] {
        assert!(read(&merged.join(f)) == read(&whole.join(f)), "{f} differs");
    }
    // The plots are the same bytes too.
    for stem in ["sweep_mean", "sweep_cv", "sweep_hist", "sweep_traces"] {
        for ext in ["png", "svg"] {
            let f = format!("{stem}.{ext}");
            assert!(read(&merged.join(&f)) == read(&whole.join(&f)), "{f} differs");
        }
    }
}

#[test]
fn merge_refuses_cut_short_and_missing_rows_naming_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let parts = t.join("parts");
    shards(t, &parts);
    let shard = parts.join("sweep.shard-00001-of-00003.csv");
    let good = std::fs::read_to_string(&shard).unwrap();
    let out = t.join("out");
    // Cut in the middle of its last row: a row of fewer fields and no line end.
    let cut = &good[..good.len() - 30];
    std::fs::write(&shard, cut).unwrap();
    assert_exit2(&merge(t, &parts, &out), &["sweep.shard-00001-of-00003.csv", "line 3 is cut short"]);
    // The same cut with a line end: a row of too few fields.
    std::fs::write(&shard, format!("{cut}\n")).unwrap();
    assert_exit2(
        &merge(t, &parts, &out),
        &["sweep.shard-00001-of-00003.csv", "line 3 has", "fields, the header has 13"],
    );
    // The last row gone: the shard itself is named, not the output.
    let rows: Vec<&str> = good.split_inclusive('\n').collect();
    std::fs::write(&shard, rows[..2].concat()).unwrap();
    let e = assert_exit2(
        &merge(t, &parts, &out),
        &["sweep.shard-00001-of-00003.csv", "holds 1 of the 2 points", "rows are missing"],
    );
    assert!(!e.contains(&format!("{}:", out.display())), "{e}");
    // A row of another shard's range.
    std::fs::write(&shard, rows[0].to_string() + rows[1] + &rows[1].replacen('2', "4", 1)).unwrap();
    assert_exit2(&merge(t, &parts, &out), &["sweep.shard-00001-of-00003.csv", "line 3: point 4 where 3 was expected"]);
    std::fs::write(&shard, &good).unwrap();
    // A raw shard cut short.
    let raw = parts.join("raw.shard-00002-of-00003.csv");
    let text = std::fs::read_to_string(&raw).unwrap();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    std::fs::write(&raw, lines[..lines.len() - 1].concat()).unwrap();
    assert_exit2(&merge(t, &parts, &out), &["raw.shard-00002-of-00003.csv", "rows are missing"]);
    std::fs::write(&raw, &text).unwrap();
    ok(&merge(t, &parts, &out));
    assert!(!out.join("sweep.csv").exists() || read(&out.join("sweep.csv")).ends_with(b"\n"));
}

#[test]
fn a_second_command_on_a_locked_output_folder_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = t.join("busy");
    let lock = mesobench::report::lock_output(&dir, None).unwrap();
    let pid = format!("(pid {})", std::process::id());
    let busy = format!("output folder {} is in use by another mesobench {pid}", dir.display());
    assert_exit2(&mesobench(t, &sweep(&scenario(), &dir, &[]), &[]), &[&busy]);
    let run = ["run".to_string(), "--out".into(), dir.display().to_string(), "--quiet".into()];
    assert_exit2(&mesobench(t, &run, &[]), &[&busy]);
    assert_exit2(&mesobench(t, &sweep(&scenario(), &dir, &["--shard", "0/2"]), &[]), &[&busy]);
    assert!(!dir.join("shots.csv").exists() && !dir.join(".sweep.csv.partial").exists());
    drop(lock);
    ok(&mesobench(t, &run, &[]));
    // The shards of one sweep share a folder; one shard runs once at a time.
    let shard = mesobench::report::lock_output(&dir, Some((0, 2))).unwrap();
    ok(&mesobench(t, &sweep(&scenario(), &dir, &["--shard", "1/2"]), &[]));
    assert_exit2(&mesobench(t, &sweep(&scenario(), &dir, &["--shard", "0/2"]), &[]), &[&busy]);
    assert_exit2(&mesobench(t, &run, &[]), &["is in use by another mesobench"]);
    drop(shard);
}

#[test]
fn a_slurm_task_id_without_the_task_count_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = t.join("o");
    assert_exit2(
        &mesobench(t, &sweep(&scenario(), &dir, &[]), &[("SLURM_ARRAY_TASK_ID", "1")]),
        &["SLURM_ARRAY_TASK_ID = \"1\" is set but SLURM_ARRAY_TASK_COUNT is not", "--shard"],
    );
    assert!(!dir.join("sweep.csv").exists());
}

#[test]
fn a_failed_run_leaves_no_outputs_of_the_previous_run() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = t.join("o");
    let run = [
        "run".to_string(),
        "--out".into(),
        dir.display().to_string(),
        "--quiet".into(),
        "--set".into(),
        "session.shots=2".into(),
    ];
    ok(&mesobench(t, &run, &[]));
    assert!(dir.join("shots.csv").exists() && dir.join("summary.json").exists());
    // The next run fails at write time (its plot cannot be written), after
    // its tables were written: none of the command's files remain.
    std::fs::create_dir(dir.join(".doses.partial.png")).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    assert_exit2(&mesobench(t, &run, &[]), &["doses"]);
    for f in ["shots.csv", "needles.csv", "trace.csv", "summary.json", "manifest.json", "trace.png", "trace.svg"] {
        assert!(!dir.join(f).exists(), "{f} survived the failed run");
    }
    // Files the command does not own are left alone.
    assert_eq!(std::fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine");
    // A sweep failing at its second point leaves no table, manifest or plots of the earlier sweep.
    let sw = t.join("sw");
    ok(&mesobench(t, &sweep(&scenario(), &sw, &[]), &[]));
    assert!(sw.join("sweep_mean.png").exists());
    // Each value is valid on its own (checked up front), but 450 ms does not
    // fit the 333 ms period of 3 Hz: the third point fails mid-sweep.
    let bad = "sweep.parameters={\"firmware.open_time_ms\"=[40.0, 450.0, 40.0], \"session.rate_hz\"=[2.0, 3.0]}";
    assert_exit2(&mesobench(t, &sweep(&scenario(), &sw, &["--set", bad]), &[]), &["sweep point 3", "450"]);
    for f in ["sweep.csv", "sweep_manifest.json", "sweep_mean.png", "sweep_cv.svg", "sweep_traces.png"] {
        assert!(!sw.join(f).exists(), "{f} survived the failed sweep");
    }
}

#[test]
fn merge_without_a_loadable_scenario_joins_the_table_and_says_why_it_draws_no_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (whole, parts, merged) = (t.join("whole"), t.join("parts"), t.join("merged"));
    ok(&mesobench(t, &sweep(&scenario(), &whole, &[]), &[]));
    shards(t, &parts);
    // Every manifest records a scenario that no longer resolves to its resolved_base.
    for i in 0..3 {
        let m = parts.join(format!("sweep_manifest.shard-{i:05}-of-00003.json"));
        let text = std::fs::read_to_string(&m).unwrap().replace("rate_hz = 2.0", "rate_hz = 3.0");
        std::fs::write(&m, text).unwrap();
    }
    let o = merge(t, &parts, &merged);
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("warning: no plots drawn") && err.contains("resolved_base"), "{err}");
    assert!(read(&merged.join("sweep.csv")) == read(&whole.join("sweep.csv")));
    assert!(!merged.join("sweep_mean.png").exists());
}

#[test]
fn a_kill_while_resuming_resumes_to_the_bytes_of_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let whole = t.join("whole");
    ok(&mesobench(t, &sweep(&scenario(), &whole, &["--raw"]), &[]));
    let (table, raw) = (read(&whole.join("sweep.csv")), read(&whole.join("raw.csv")));
    // Interrupted while writing its rows (fault 11 tears one), or between
    // the final renames (the last fault point); then every truncation,
    // write, sync and rename of the resume is killed in turn, each resume
    // continuing from what the last one left.
    let total = fault_points(t, &sweep(&scenario(), &t.join("count"), &["--raw"]));
    for (first, at_rename) in [(11, false), (total, true)] {
        let dir = t.join(format!("k{first}"));
        let args = sweep(&scenario(), &dir, &["--raw"]);
        let resume = [&args[..], &["--resume".to_string()]].concat();
        assert!(!abort_at(t, &args, first).status.success());
        assert_eq!(dir.join("raw.csv").exists() && !dir.join("sweep.csv").exists(), at_rename);
        for n in 1.. {
            assert!(n < 400, "the fault hook never stopped firing");
            if abort_at(t, &resume, n).status.success() {
                break;
            }
        }
        assert!(read(&dir.join("sweep.csv")) == table, "after fault {first}: sweep.csv differs");
        assert!(read(&dir.join("raw.csv")) == raw, "after fault {first}: raw.csv differs");
    }
}
