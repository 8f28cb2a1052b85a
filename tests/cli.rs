//! The binary on every shipped scenario and on malformed input.

use crate::util::{root, scenario_files, stem};
use std::path::Path;
use std::process::{Command, Output};

fn mesobench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mesobench")).args(args).current_dir(root()).output().expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const OUTPUTS: [&str; 9] = [
    "shots.csv",
    "needles.csv",
    "trace.csv",
    "summary.json",
    "manifest.json",
    "trace.png",
    "trace.svg",
    "doses.png",
    "doses.svg",
];

fn assert_outputs(dir: &Path) {
    for f in OUTPUTS {
        let p = dir.join(f);
        let bytes = std::fs::read(&p).unwrap_or_else(|_| panic!("{} missing", p.display()));
        assert!(bytes.len() > 100, "{} is tiny", p.display());
        if f.ends_with(".png") {
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{f} is not a PNG");
        }
        if f.ends_with(".svg") {
            let s = String::from_utf8(bytes).unwrap();
            assert!(s.contains("<svg") && s.contains("<text"), "{f} has no text");
        }
    }
    // No temporary files are left behind.
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".partial."), "left {name}");
    }
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn every_shipped_scenario_runs() {
    let tmp = tempfile::tempdir().unwrap();
    // c_plugin_open_loop.toml loads the example plugin from examples/firmware/build/.
    let build = root().join("examples/firmware/build");
    std::fs::create_dir_all(&build).unwrap();
    crate::util::example_plugin(&build, "fw_open_loop_src").parent().unwrap();
    std::fs::rename(build.join("libfw_open_loop_src.so"), build.join("libfw_open_loop.so")).unwrap();
    let files = scenario_files();
    assert!(files.len() >= 6);
    for f in files {
        let out = tmp.path().join(stem(&f));
        let o = mesobench(&["run", f.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}: {}", f.display(), stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("dose"));
        assert_outputs(&out);
        let s = summary(&out);
        for key in [
            "shots",
            "dose_mean_ul",
            "dose_sd_ul",
            "dose_cv_pct",
            "dose_min_ul",
            "dose_max_ul",
            "leak_mean_ul",
            "peak_tissue_pressure_kpa",
            "max_reynolds",
            "warnings",
        ] {
            assert!(s.get(key).is_some(), "{}: summary lacks {key}", f.display());
        }
        assert!(s["dose_mean_ul"].as_f64().unwrap() > 0.0);
        // A long session's trace plot shows its first shots, and says so.
        let shots = s["shots"].as_u64().unwrap();
        let trace = std::fs::read_to_string(out.join("trace.svg")).unwrap();
        let window = format!("first 3 of {shots} shots");
        assert_eq!(trace.contains(&window), shots > 4, "{}: {shots} shots, title {window:?}", f.display());
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
        assert!(m["solver_stats"]["steps_total"].as_u64().unwrap() > 0);
        assert!(m["resolved"]["params"]["supply"]["p_set"].as_f64().unwrap() > 1e5, "manifest holds SI values");
        let check = mesobench(&["check", f.to_str().unwrap()]);
        assert!(check.status.success(), "{}", stderr(&check));
    }
}

#[test]
fn default_run_is_the_reference_scenario_and_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let c = tmp.path().join("c");
    assert!(mesobench(&["run", "--out", a.to_str().unwrap()]).status.success());
    assert!(mesobench(&["run", "scenarios/reference.toml", "--out", b.to_str().unwrap()]).status.success());
    assert!(mesobench(&["run", "--quiet", "--out", c.to_str().unwrap()]).status.success());
    for f in ["shots.csv", "needles.csv", "trace.csv", "summary.json", "trace.svg", "doses.svg", "trace.png"] {
        let fa = std::fs::read(a.join(f)).unwrap();
        assert_eq!(
            fa,
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs between the default and scenarios/reference.toml"
        );
        assert_eq!(fa, std::fs::read(c.join(f)).unwrap(), "{f} differs between two identical runs");
    }
    let s = summary(&a);
    let dose = s["dose_mean_ul"].as_f64().unwrap();
    assert!((15.0..25.0).contains(&dose), "reference shot should be about 20 µL, got {dose}");
}

#[test]
fn set_overrides_any_key_and_lands_in_the_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let o = mesobench(&[
        "run",
        "--out",
        tmp.path().to_str().unwrap(),
        "--set",
        "firmware.open_time_ms=25",
        "--set",
        "solver.step_us=2.5",
        "--set",
        "session.shots=1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["overrides"][0], "firmware.open_time_ms=25");
    assert!((m["resolved"]["firmware"]["kind"]["open_time"].as_f64().unwrap() - 0.025).abs() < 1e-12);
    assert!((m["solver_stats"]["effective_step_s"].as_f64().unwrap() - 2.5e-6).abs() < 1e-12);
    assert_eq!(summary(tmp.path())["shots"], 1);
}

#[test]
fn empty_syringe_stops_the_session_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let o = mesobench(&[
        "run",
        "--out",
        tmp.path().to_str().unwrap(),
        "--set",
        "syringe.fill_ml=0.15",
        "--set",
        "session.shots=20",
    ]);
    // Issue 17: exit 3 (outputs written, the session stopped early), the
    // message once on stderr.
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.matches("the syringe is empty after shot").count(), 1, "once: {err}");
    assert!(err.contains("mesobench: the session stopped early: the syringe is empty"), "{err}");
    let s = summary(tmp.path());
    let stopped = s["stopped"].as_str().expect("stopped message");
    assert!(stopped.contains("syringe is empty"), "{stopped}");
    assert!(s["shots"].as_u64().unwrap() < 20);
}

/// Run on a scenario text; expect exit 2 and every fragment in stderr.
fn rejects(text: &str, sets: &[&str], fragments: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let mut args = vec!["run", path.to_str().unwrap(), "--out", tmp.path().to_str().unwrap()];
    for s in sets {
        args.push("--set");
        args.push(s);
    }
    let o = mesobench(&args);
    let err = crate::util::assert_exit2(&o, fragments);
    assert!(!err.contains("backtrace") && !err.contains("RUST_BACKTRACE"), "{err}");
    assert!(!tmp.path().join("summary.json").exists(), "a rejected scenario must not produce results");
}

const GOOD: &str = "name = \"t\"\n[supply]\npressure_bar = 3.0\n[needle]\ngauge = 30\n";

#[test]
fn out_of_range_value_names_file_line_key_value_and_range() {
    rejects(
        "name = \"t\"\n[supply]\npressure_bar = 50.0\n",
        &[],
        &["bad.toml:3:16", "supply.pressure_bar = 50", "0.2 to 10 bar"],
    );
}

#[test]
fn unknown_key_is_an_error_with_its_line() {
    rejects(
        "name = \"t\"\n[supply]\npresure_bar = 3.0\n",
        &[],
        &["bad.toml", "line 3", "unknown field", "presure_bar"],
    );
}

#[test]
fn syntax_error_names_the_line() {
    rejects("name = \"t\"\n[supply\npressure_bar = 3.0\n", &[], &["bad.toml", "line 2"]);
}

#[test]
fn wrong_type_is_an_error() {
    rejects("name = \"t\"\n[needle]\ngauge = \"thirty\"\n", &[], &["bad.toml", "line 3"]);
}

#[test]
fn unsupported_gauge_lists_the_allowed_ones() {
    rejects("[needle]\ngauge = 29\n", &[], &["bad.toml:2:9", "needle.gauge = 29", "27, 30, 31, 32, 33, 34"]);
}

#[test]
fn inconsistent_values_are_errors() {
    rejects(
        "[firmware]\nopen_time_ms = 600\n[session]\nrate_hz = 2\n",
        &[],
        &["firmware.open_time_ms = 600", "shot period 500 ms"],
    );
    rejects(
        "[syringe]\nbreak_loose_n = 1\nglide_n = 3\n",
        &[],
        &["syringe.break_loose_n = 1", "at least syringe.glide_n = 3"],
    );
    rejects(
        "[needle]\ncount = 3\nid_deviation_pct = [1, 2]\n",
        &[],
        &["needle.id_deviation_pct", "a list of 3 numbers"],
    );
    rejects("[valve]\nvoltage_v = 1.5\n", &[], &["valve.voltage_v = 1.5", "pulls the armature in"]);
    rejects(
        "[fluid]\npreset = \"saline\"\nflow_index = 0.5\n",
        &[],
        &["fluid.flow_index", "does not apply to a newtonian fluid"],
    );
}

#[test]
fn bad_set_overrides_are_named() {
    rejects(GOOD, &["supply.pressure_bar=-1"], &["--set supply.pressure_bar=-1", "0.2 to 10 bar"]);
    rejects(GOOD, &["supply.pressure_bar=abc"], &["--set supply.pressure_bar=abc", "invalid type"]);
    rejects(GOOD, &["supply.nope=3"], &["--set supply.nope=3", "unknown field"]);
    rejects(GOOD, &["novalue"], &["--set novalue", "KEY=VALUE"]);
    rejects(GOOD, &["supply.pressure_bar.deep=1"], &["--set supply.pressure_bar.deep=1"]);
}

#[test]
fn missing_file_is_an_error() {
    let o = mesobench(&["run", "no/such/file.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read scenario no/such/file.toml"), "{}", stderr(&o));
}

#[test]
fn check_prints_resolved_si_parameters() {
    let o = mesobench(&["check", "scenarios/reference.toml"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("\"p_set\""), "{out}");
    // Issue 17: stdout is the JSON alone (it can be piped), the verdict on stderr.
    let json: serde_json::Value = serde_json::from_str(&out).expect("stdout is one JSON document");
    assert_eq!(json["params"]["supply"]["p_set"].as_f64(), Some(401325.0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("scenarios/reference.toml: valid"));
}

/// The rows of a CSV file as (header, records).
fn csv_table(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| panic!("{} missing", path.display()));
    let mut lines = text.lines();
    let head = lines.next().expect("a header").split(',').map(String::from).collect();
    (head, lines.map(|l| l.split(',').map(String::from).collect()).collect())
}

#[test]
fn every_table_column_and_summary_key_names_its_unit_and_cv_is_a_percentage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pid");
    let o = mesobench(&["run", "scenarios/closed_loop_pressure.toml", "--out", dir.to_str().unwrap(), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The pressure PID's telemetry is in kPa gauge, as the other pressures.
    let (head, rows) = csv_table(&dir.join("trace.csv"));
    for name in ["fw_setpoint_kpa", "fw_measured_kpa", "fw_command_kpa", "fw_integrator_kpa"] {
        assert!(head.iter().any(|h| h == name), "{name} in {head:?}");
    }
    let sp = head.iter().position(|h| h == "fw_setpoint_kpa").unwrap();
    let setpoints: Vec<f64> = rows.iter().filter_map(|r| r[sp].parse().ok()).filter(|v: &f64| v.is_finite()).collect();
    // The scenario holds 2.5 bar gauge (250 kPa).
    assert!(setpoints.iter().any(|v| (v - 250.0).abs() < 1e-9), "setpoints {:?}", &setpoints[..5.min(setpoints.len())]);
    // dose_cv_pct is SD / mean in percent.
    let s = summary(&dir);
    let (mean, sd, cv) =
        (s["dose_mean_ul"].as_f64().unwrap(), s["dose_sd_ul"].as_f64().unwrap(), s["dose_cv_pct"].as_f64().unwrap());
    assert!((cv - 100.0 * sd / mean).abs() < 1e-12 * cv.max(1.0), "cv {cv} sd {sd} mean {mean}");
    assert!(s.get("dose_cv").is_none(), "no unitless fraction key");
    // The open-loop reference: the volume target's and a plugin's columns are named too.
    let dir = tmp.path().join("vt");
    let o = mesobench(&["run", "scenarios/volume_target.toml", "--out", dir.to_str().unwrap(), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (head, _) = csv_table(&dir.join("trace.csv"));
    assert_eq!(&head[head.len() - 4..], ["fw_setpoint_ul", "fw_measured_ul", "fw_valve_open", "fw_lead_ms"]);
}

#[test]
fn tables_print_no_residue_of_unit_conversions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ref");
    let o = mesobench(&["run", "scenarios/reference.toml", "--out", dir.to_str().unwrap(), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (head, rows) = csv_table(&dir.join("shots.csv"));
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    // 0.06 s in ms, and valve edges 2.35 ms after shots that start at 0.5 s, 1 s.
    for r in &rows {
        assert_eq!(r[col("open_time_cmd_ms")], "60.0");
        assert_eq!(r[col("valve_t_on_ms")], "2.35");
        assert_eq!(r[col("valve_t_off_ms")], "3.45");
    }
    // No cell of any table carries more than 12 significant digits.
    for file in ["shots.csv", "needles.csv", "trace.csv"] {
        let (_, rows) = csv_table(&dir.join(file));
        for cell in rows.iter().flatten() {
            crate::util::assert_at_most_12_digits(file, cell);
        }
    }
}

/// Run `args` on a pseudo-terminal (util-linux `script`), returning what the
/// terminal showed, or None where `script` is missing.
fn on_a_terminal(args: &[&str]) -> Option<String> {
    if !Path::new("/usr/bin/script").exists() {
        eprintln!("skipped: util-linux script not installed");
        return None;
    }
    let cmd =
        std::iter::once(env!("CARGO_BIN_EXE_mesobench")).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
    let o = Command::new("/usr/bin/script").args(["-qec", &cmd, "/dev/null"]).current_dir(root()).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn long_runs_and_sensitivity_show_a_progress_bar_on_a_terminal_only() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let out = out.to_str().unwrap();
    let args = ["run", "scenarios/reference.toml", "--out", out, "--set", "session.shots=12"];
    if let Some(shown) = on_a_terminal(&args) {
        assert!(shown.contains("/12 shots"), "no per-shot bar on a terminal: {shown:?}");
    }
    // Not a terminal: not a byte of progress, on stdout or stderr.
    let o = mesobench(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(!all.contains("/12 shots") && !all.contains('\r') && !all.contains("\x1b["), "{all:?}");
    let sens = tmp.path().join("sens");
    let sens = sens.to_str().unwrap();
    let args =
        ["sensitivity", "scenarios/sensitivity_reference.toml", "--out", sens, "--set", "sensitivity.samples=16"];
    if let Some(shown) = on_a_terminal(&args) {
        assert!(shown.contains(" sessions "), "no bar for sensitivity on a terminal: {shown:?}");
    }
    let o = mesobench(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(!all.contains(" sessions ") && !all.contains('\r') && !all.contains("\x1b["), "{all:?}");
}

#[test]
fn study_help_texts_describe_their_own_tables() {
    let help = |cmd: &str| {
        let o = mesobench(&[cmd, "--help"]);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let (sweep, sens, tune) = (help("sweep"), help("sensitivity"), help("tune"));
    assert!(sweep.contains("[sweep] table") && !sweep.contains("[tune]"), "{sweep}");
    assert!(sens.contains("[uncertain] table") && sens.contains("first_lo") && !sens.contains("[tune]"), "{sens}");
    assert!(sens.contains("No progress bar or summary"), "{sens}");
    assert!(tune.contains("[tune] table") && tune.contains("tune_history.csv (one row per"), "{tune}");
    assert!(!tune.contains("[uncertain] for sensitivity"), "{tune}");
}
