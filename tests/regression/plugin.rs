//! Regressions of firmware plugins: path resolution, containment of crashes and hangs.

use crate::util::{assert_exit2, build_plugin, root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The open-loop example's source with `code` run at the start of every step.
fn open_loop_with(code: &str) -> String {
    let src = std::fs::read_to_string(root().join("examples/firmware/open_loop.c")).unwrap();
    let head = "int32_t mb_fw_step(void *p, const mb_fw_input *in, mb_fw_output *out) {\n";
    assert!(src.contains(head));
    let src = src.replace(head, &format!("{head}    {code}\n"));
    format!("#include <stdio.h>\n#include <signal.h>\n{src}")
}

/// Write `dir/name.toml`: the shipped C-plugin scenario with `plugin = "<plugin>"` and `extra` firmware keys.
fn scenario_with_plugin(dir: &Path, name: &str, plugin: &str, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join("scenarios/c_plugin_open_loop.toml")).unwrap();
    let line = text.lines().find(|l| l.starts_with("plugin = ")).unwrap();
    let text = text.replace(line, &format!("plugin = \"{plugin}\"\n{extra}"));
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn mesobench(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mesobench"));
    cmd.args(args).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("binary runs")
}

fn run_ok(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Vec<u8> {
    let o = mesobench(dir, args, env);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = args.iter().skip_while(|a| **a != "--out").nth(1).expect("--out DIR");
    std::fs::read(dir.join(out).join("shots.csv")).unwrap()
}

#[test]
fn bare_plugin_name_resolves_to_the_scenario_folder_not_the_library_path() {
    let tmp = tempfile::tempdir().unwrap();
    let (scn, decoy) = (tmp.path().join("scn"), tmp.path().join("decoy"));
    std::fs::create_dir_all(&scn).unwrap();
    std::fs::create_dir_all(&decoy).unwrap();
    let real = build_plugin(&scn, "fw", &open_loop_with(""));
    // Another libfw.so on the library path, which opens the valve half as long.
    let src = open_loop_with("").replace("c->open_time = params[0];", "c->open_time = 0.5 * params[0];");
    let fake = build_plugin(&decoy, "fw", &src);
    scenario_with_plugin(&scn, "bare", "libfw.so", "");
    let env = [("LD_LIBRARY_PATH", decoy.as_path())];
    // Run from the scenario's folder, so that the path as written is a bare name.
    let bare = run_ok(&scn, &["run", "bare.toml", "--out", "a", "-q"], &env);
    let set_real = format!("firmware.plugin=\"{}\"", real.display());
    let explicit = run_ok(&scn, &["run", "bare.toml", "--out", "b", "-q", "--set", &set_real], &env);
    assert_eq!(bare, explicit, "the bare name must load the scenario folder's libfw.so");
    let set_fake = format!("firmware.plugin=\"{}\"", fake.display());
    let decoyed = run_ok(&scn, &["run", "bare.toml", "--out", "c", "-q", "--set", &set_fake], &env);
    assert_ne!(bare, decoyed, "the decoy gives other doses");
    // The same from another folder: the path stays relative to the scenario's folder.
    let scenario = scn.join("bare.toml");
    let elsewhere = run_ok(tmp.path(), &["run", scenario.to_str().unwrap(), "--out", "d", "-q"], &env);
    assert_eq!(bare, elsewhere);
}

#[test]
fn check_rejects_a_missing_plugin_naming_the_file_key_and_resolved_path() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = scenario_with_plugin(tmp.path(), "missing", "libmissing.so", "");
    let text = std::fs::read_to_string(&scenario).unwrap();
    let line = text.lines().position(|l| l.starts_with("plugin = ")).unwrap() + 1;
    let o = mesobench(tmp.path(), &["check", scenario.to_str().unwrap()], &[]);
    let resolved = tmp.path().join("libmissing.so");
    let location = format!("{}:{line}:", scenario.display());
    assert_exit2(&o, &[&location, "firmware.plugin", "\"libmissing.so\"", "no such file", resolved.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains(": valid"));
    // A bare name from the scenario's own folder resolves there too.
    let o = mesobench(tmp.path(), &["check", "missing.toml"], &[]);
    assert_exit2(&o, &["missing.toml:", "no such file: ./libmissing.so"]);
}

/// Processes whose command line mentions `needle` (a live plugin host): (pid, command line).
fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push((pid, cmdline));
            }
        }
    }
    found
}

/// Fail if a plugin host of the test's own plugin `lib` still runs, killing it first
/// (a stray host would hold the test's output pipe open).
fn assert_no_host_left(lib: &str) {
    let left = processes_mentioning(lib);
    for (pid, _) in &left {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    assert!(left.is_empty(), "a plugin host is left running: {left:?}");
}

/// A plugin that runs `code` at tick 5300 (shot 1, its valve open): the run
/// from the command line ends within seconds with exit 2 and a message with
/// `what`, the plugin, the shot, the tick and the time; no host is left.
fn contained(name: &str, code: &str, what: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let lib = build_plugin(tmp.path(), name, &open_loop_with(&format!("if (in->tick == 5300) {{ {code} }}")));
    let lib_name = lib.file_name().unwrap().to_str().unwrap();
    let scenario = scenario_with_plugin(tmp.path(), name, lib_name, "plugin_timeout_ms = 300");
    let start = Instant::now();
    let o = mesobench(tmp.path(), &["run", scenario.to_str().unwrap(), "--out", "out", "-q"], &[]);
    let took = start.elapsed();
    let at = "at shot 1, tick 5300, t = 530 ms";
    let err = assert_exit2(&o, &[&format!("firmware plugin {}", lib.display()), what, at]);
    assert_eq!(err.trim().lines().count(), 1, "one message: {err}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_no_host_left(lib.to_str().unwrap());
}

#[test]
fn plugin_segfault_is_an_error_naming_plugin_shot_tick_and_time() {
    contained("segv", "*(volatile int *)0 = 1;", "crashed (signal 11, SIGSEGV)");
}

#[test]
fn plugin_abort_is_an_error_naming_plugin_shot_tick_and_time() {
    contained("abrt", "abort();", "crashed (signal 6, SIGABRT)");
}

#[test]
fn plugin_exit_is_an_error_not_a_silent_success() {
    contained("exit0", "exit(0);", "exit status 0");
}

#[test]
fn plugin_hang_is_stopped_by_the_watchdog() {
    contained("hang", "volatile int forever = 1; while (forever) {}", "did not answer within 300 ms");
}

#[test]
fn in_process_and_host_process_plugins_give_identical_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    build_plugin(tmp.path(), "fw", &open_loop_with(""));
    let scenario = scenario_with_plugin(tmp.path(), "modes", "libfw.so", "");
    let s = scenario.to_str().unwrap();
    let process = run_ok(tmp.path(), &["run", s, "--out", "p", "-q"], &[]);
    let set = "firmware.plugin_isolation=\"in_process\"";
    let in_process = run_ok(tmp.path(), &["run", s, "--out", "i", "-q", "--set", set], &[]);
    assert_eq!(process, in_process);
    for f in ["needles.csv", "trace.csv", "summary.json"] {
        let a = std::fs::read(tmp.path().join("p").join(f)).unwrap();
        assert_eq!(a, std::fs::read(tmp.path().join("i").join(f)).unwrap(), "{f} differs");
    }
}

#[test]
fn plugin_crash_while_loading_is_an_error_naming_the_plugin() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open_loop_with("").replace("if (n < 1) return NULL;", "if (n < 1) return NULL;\n    abort();");
    let lib = build_plugin(tmp.path(), "create_abrt", &src);
    let scenario = scenario_with_plugin(tmp.path(), "create_abrt", "libcreate_abrt.so", "");
    let o = mesobench(tmp.path(), &["run", scenario.to_str().unwrap(), "--out", "out", "-q"], &[]);
    assert_exit2(&o, &[&lib.display().to_string(), "crashed (signal 6, SIGABRT)", "while it was being loaded"]);
}

#[test]
fn parallel_simulations_each_own_a_host_and_leave_none_behind() {
    crate::util::use_plugin_host();
    let tmp = tempfile::tempdir().unwrap();
    let lib = build_plugin(tmp.path(), "par", &open_loop_with(""));
    let load = |isolation: &str| {
        let sets: Vec<String> = vec![
            "session.shots=2".into(),
            "firmware.kind=\"plugin\"".into(),
            format!("firmware.plugin=\"{}\"", lib.display()),
            "firmware.plugin_params=[0.060]".into(),
            format!("firmware.plugin_isolation=\"{isolation}\""),
        ];
        mesobench::scenario::load(&mesobench::scenario::Source::default_scenario(), &sets, "reference").unwrap()
    };
    let (hosted, local) = (load("process"), load("in_process"));
    let doses = |sc: &mesobench::scenario::Scenario| -> Vec<u64> {
        crate::util::shots(sc).iter().map(|s| s.dose.to_bits()).collect()
    };
    let expected = doses(&local);
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..4).map(|_| s.spawn(|| (0..3).map(|_| doses(&hosted)).collect::<Vec<_>>())).collect();
        for r in runs {
            for d in r.join().unwrap() {
                assert_eq!(d, expected);
            }
        }
    });
    // Idle hosts are kept for the next simulation until shut down.
    mesobench::control::host::shut_down_idle_hosts();
    assert_no_host_left(lib.to_str().unwrap());
}

#[test]
fn killing_mesobench_during_a_hung_plugin_leaves_no_host_running() {
    let tmp = tempfile::tempdir().unwrap();
    let lib =
        build_plugin(tmp.path(), "spin", &open_loop_with("if (in->tick >= 10) { volatile int f = 1; while (f) {} }"));
    let scenario = scenario_with_plugin(tmp.path(), "spin", "libspin.so", "plugin_timeout_ms = 600000");
    let mut run = Command::new(env!("CARGO_BIN_EXE_mesobench"))
        .args(["run", scenario.to_str().unwrap(), "--out", "out", "-q"])
        .current_dir(tmp.path())
        .spawn()
        .unwrap();
    let lib = lib.to_str().unwrap();
    let start = Instant::now();
    while processes_mentioning(lib).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "no plugin host started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the plugin enter its loop, then kill mesobench alone (not its host).
    std::thread::sleep(Duration::from_millis(300));
    // The host keeps none of the descriptors it inherited (a build lock, a pipe) but its shared page.
    for (pid, _) in processes_mentioning(lib) {
        for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
            let n: i32 = fd.file_name().to_str().unwrap().parse().unwrap();
            let target = std::fs::read_link(fd.path()).map(|t| t.display().to_string()).unwrap_or_default();
            assert!(n <= 2 || target.contains("memfd:") || target.is_empty(), "host fd {n} -> {target}");
        }
    }
    run.kill().unwrap();
    run.wait().unwrap();
    let killed = Instant::now();
    while !processes_mentioning(lib).is_empty() && killed.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_no_host_left(lib);
}
