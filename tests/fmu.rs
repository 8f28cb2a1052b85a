//! The plant as an FMU: the model built from the registry, the instance's
//! stepping, state and errors (library level), and `mesobench fmu`.

use crate::util::{root, scenario_files, shots, stem};
use mesobench::fmi::{self, Causality, Instance, Model, Value, Version};
use mesobench::scenario::Source;

fn model_of(source: &Source, sets: &[&str]) -> Model {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let text = fmi::plant_scenario(source, &sets, "reference").expect("an FMU can be made");
    Model::new(&text, std::path::PathBuf::new()).expect("valid plant scenario")
}

fn reference_model() -> Model {
    model_of(&Source::default_scenario(), &[])
}

fn vr(m: &Model, name: &str) -> u32 {
    m.variables.iter().find(|v| v.name == name).unwrap_or_else(|| panic!("no variable {name}")).vr
}

fn real(inst: &mut Instance, vr: u32) -> f64 {
    match inst.get(vr).unwrap() {
        Value::Real(x) => x,
        other => panic!("{other:?}"),
    }
}

/// Valve on for `open` s from rest, then off, to `until` s, in steps of `h`; the outputs after every step.
fn shot(inst: &mut Instance, open: f64, until: f64, h: f64) -> Vec<[f64; 10]> {
    let mut out = Vec::new();
    let n = (until / h).round() as u64;
    let n_open = (open / h).round() as u64;
    for k in 0..n {
        inst.set(fmi::VR_VALVE_COMMAND, Value::Real(if k < n_open { 1.0 } else { 0.0 })).unwrap();
        inst.do_step(k as f64 * h, h).unwrap();
        let mut row = [0.0; 10];
        for (i, x) in row.iter_mut().enumerate() {
            *x = real(inst, fmi::VR_FIRST_OUTPUT + i as u32);
        }
        out.push(row);
    }
    out
}

fn initialised(m: &Model) -> Instance {
    let mut inst = Instance::new(m.clone());
    inst.enter_initialization(0.0).unwrap();
    inst.exit_initialization().unwrap();
    inst
}

#[test]
fn every_plant_key_of_a_shipped_scenario_is_an_fmu_parameter() {
    // Lists, and the keys of a table or feature the scenario does not use, are the only ones left out.
    for path in scenario_files() {
        let source = Source::from_path(&path).unwrap();
        let prep = mesobench::scenario::Prepared::new(&source, &stem(&path)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        if text.contains("[sweep]") || text.contains("[tune]") || text.contains("[uncertain]") {
            continue;
        }
        crate::util::use_plugin_host();
        let m = model_of(&source, &[]);
        for e in prep.entries(&[]).unwrap() {
            let table = e.key.rsplit_once('.').map(|(t, _)| t).unwrap_or("");
            if !fmi::PLANT_TABLES.contains(&table) || e.value.starts_with("(not used") {
                continue;
            }
            let p = mesobench::scenario::registry::find(&e.key).unwrap();
            if matches!(p.kind, mesobench::model::param::Kind::List { .. }) {
                continue;
            }
            // A key that does not apply to the scenario's fluid law has no value to start from.
            let other_law = e.key.starts_with("fluid.") && fluid_key_not_for(&m, &e.key);
            if other_law {
                continue;
            }
            // An optional key the scenario leaves out (its absence means
            // something, e.g. the deprecated needle.minor_loss_k override).
            if e.origin == "default" && matches!(p.default, mesobench::model::param::Def::None(_)) {
                continue;
            }
            assert!(
                m.variables.iter().any(|v| v.name == e.key),
                "{}: {} is not an FMU parameter",
                path.display(),
                e.key
            );
        }
    }
}

fn fluid_key_not_for(m: &Model, key: &str) -> bool {
    use mesobench::model::fluid::Rheology;
    let law: &[&str] = match m.base.params.fluid.rheology {
        Rheology::Newtonian { .. } => &["fluid.viscosity_mpa_s"],
        Rheology::PowerLaw { .. } => &["fluid.consistency_pa_sn", "fluid.flow_index", "fluid.eta0_pa_s"],
        Rheology::Carreau { .. } => &["fluid.eta0_pa_s", "fluid.eta_inf_mpa_s", "fluid.lambda_s", "fluid.flow_index"],
    };
    let common = ["fluid.preset", "fluid.model", "fluid.density_kg_m3", "fluid.temperature_c"];
    !law.contains(&key) && !common.contains(&key)
}

#[test]
fn fmu_parameters_start_at_the_scenario_values_with_units() {
    let m = reference_model();
    let p = |name: &str| m.variables.iter().find(|v| v.name == name).unwrap().clone();
    assert_eq!(p("supply.pressure_bar").start, Value::Real(3.0));
    assert_eq!(p("supply.pressure_bar").unit, "bar(g)");
    assert_eq!(p("supply.pressure_bar").causality, Causality::Parameter);
    assert_eq!(p("syringe.inner_diameter_mm").start, Value::Real(4.78));
    assert_eq!(p("needle.inner_diameter_mm").start, Value::Real(0.159));
    assert_eq!(p("valve.exhaust_b").start, Value::Real(0.3));
    assert_eq!(p("needle.gauge").start, Value::Integer(30));
    assert_eq!(p("syringe.preset").start, Value::Enumeration(0));
    assert_eq!(p("tissue.new_site_each_shot").start, Value::Boolean(true));
    assert_eq!(p("solver.step_us").start, Value::Real(50.0));
    // The firmware is not part of the plant.
    assert!(!m.variables.iter().any(|v| v.name.starts_with("firmware.")));
    // Every variable of the issue is there, with its value reference order.
    for name in ["valve_command", "regulator_setpoint_kpa"] {
        assert_eq!(m.variables.iter().find(|v| v.name == name).unwrap().causality, Causality::Input);
    }
    for (name, _, _) in fmi::OUTPUTS {
        assert_eq!(m.variables.iter().find(|v| v.name == name).unwrap().causality, Causality::Output);
    }
    assert!(m.variables.windows(2).all(|w| w[0].vr < w[1].vr));
}

#[test]
fn the_model_description_is_the_same_on_every_export() {
    for version in [Version::Fmi2, Version::Fmi3] {
        let a = fmi::xml::model_description(&reference_model(), version);
        let b = fmi::xml::model_description(&reference_model(), version);
        assert_eq!(a, b);
        assert!(a.contains("name=\"supply.pressure_bar\""), "{a}");
        assert!(a.contains(&reference_model().token));
    }
    let fmu = fmi::package::fmu_bytes(&reference_model(), Version::Fmi2, b"binary").unwrap();
    assert_eq!(fmu, fmi::package::fmu_bytes(&reference_model(), Version::Fmi2, b"binary").unwrap());
}

#[test]
fn an_fmu_shot_delivers_the_dose_of_mesobench_run() {
    let sc = crate::util::reference(&[]);
    let dose = shots(&sc)[0].dose * 1e9;
    let mut inst = initialised(&reference_model());
    let rows = shot(&mut inst, 0.060, 0.5, 1e-4);
    let delivered = rows.last().unwrap()[0];
    assert!((delivered - dose).abs() <= 1e-9 * dose, "FMU {delivered} µL, run {dose} µL");
    // Any communication step: 1 ms steps hold the same 50 µs plant steps inside.
    let mut coarse = initialised(&reference_model());
    let rows = shot(&mut coarse, 0.060, 0.5, 1e-3);
    assert!((rows.last().unwrap()[0] - dose).abs() <= 1e-9 * dose);
}

#[test]
fn get_and_set_state_replay_bit_for_bit() {
    let m = reference_model();
    let mut inst = initialised(&m);
    shot(&mut inst, 0.010, 0.010, 1e-4);
    let saved = inst.get_state();
    let bytes = saved.to_bytes();
    let first = shot(&mut inst, 0.0, 0.02, 1e-4);
    inst.set_state(&saved).unwrap();
    let again = shot(&mut inst, 0.0, 0.02, 1e-4);
    assert_eq!(bits(&first), bits(&again));
    // Through bytes, into another instance.
    let mut other = Instance::new(m.clone());
    other.set_state(&fmi::State::from_bytes(&bytes).unwrap()).unwrap();
    assert_eq!(bits(&shot(&mut other, 0.0, 0.02, 1e-4)), bits(&first));
    assert!(fmi::State::from_bytes(&bytes[..bytes.len() - 3]).is_err());
}

fn bits(rows: &[[f64; 10]]) -> Vec<u64> {
    rows.iter().flatten().map(|x| x.to_bits()).collect()
}

#[test]
fn reset_gives_the_results_of_a_fresh_instance() {
    let m = reference_model();
    let mut inst = Instance::new(m.clone());
    inst.set(vr(&m, "supply.pressure_bar"), Value::Real(4.0)).unwrap();
    inst.enter_initialization(0.0).unwrap();
    inst.exit_initialization().unwrap();
    let high = shot(&mut inst, 0.06, 0.2, 1e-4);
    inst.reset();
    inst.enter_initialization(0.0).unwrap();
    inst.exit_initialization().unwrap();
    let after_reset = shot(&mut inst, 0.06, 0.2, 1e-4);
    let fresh = shot(&mut initialised(&m), 0.06, 0.2, 1e-4);
    assert_eq!(bits(&after_reset), bits(&fresh));
    assert!(high.last().unwrap()[0] > fresh.last().unwrap()[0] * 1.1, "4 bar delivers more than 3 bar");
}

#[test]
fn a_parameter_changes_the_plant_through_the_registry() {
    let m = reference_model();
    let mut inst = Instance::new(m.clone());
    // A preset change moves the keys derived from it (they stay unwritten).
    inst.set(vr(&m, "syringe.preset"), Value::Enumeration(1)).unwrap();
    inst.enter_initialization(0.0).unwrap();
    inst.exit_initialization().unwrap();
    let want = crate::util::reference(&["syringe.preset=\"bd_3ml\"", "syringe.fill_ml=1.0"]);
    let dose = shots(&want)[0].dose * 1e9;
    let got = shot(&mut inst, 0.06, 0.5, 1e-4).last().unwrap()[0];
    assert!((got - dose).abs() <= 1e-9 * dose, "{got} vs {dose}");
}

#[test]
fn a_bad_parameter_value_is_refused_with_the_key_the_value_and_the_range() {
    let m = reference_model();
    let mut inst = Instance::new(m.clone());
    let e = inst.set(vr(&m, "supply.pressure_bar"), Value::Real(60.0)).unwrap_err();
    assert_eq!(e, "parameter supply.pressure_bar = 60 is not allowed: a number from 0.2 to 10 bar (gauge)");
    let e = inst.set(vr(&m, "syringe.preset"), Value::Enumeration(9)).unwrap_err();
    assert!(e.contains("1 (bd_1ml)"), "{e}");
    // A rule across keys is checked when initialisation ends, with the registry's message.
    inst.set(vr(&m, "syringe.glide_n"), Value::Real(8.0)).unwrap();
    inst.enter_initialization(0.0).unwrap();
    let e = inst.exit_initialization().unwrap_err();
    assert!(e.contains("syringe.break_loose_n = 4 is not allowed: at least syringe.glide_n = 8"), "{e}");
    // Parameters are fixed once the simulation runs.
    let mut inst = initialised(&m);
    assert!(inst.set(vr(&m, "supply.pressure_bar"), Value::Real(4.0)).unwrap_err().contains("before initialisation"));
    assert!(inst.set(fmi::VR_VALVE_COMMAND, Value::Real(f64::NAN)).is_err());
    inst.set(fmi::VR_VALVE_COMMAND, Value::Real(1.5)).unwrap();
    assert!(inst.do_step(0.0, 1e-4).unwrap_err().contains("valve_command = 1.5"));
}

#[test]
fn a_scenario_with_overrides_and_a_firmware_plugin_exports_its_plant() {
    let path = root().join("scenarios/c_plugin_open_loop.toml");
    let m = model_of(&Source::from_path(&path).unwrap(), &["supply.pressure_bar=3.5"]);
    assert_eq!(m.variables.iter().find(|v| v.name == "supply.pressure_bar").unwrap().start, Value::Real(3.5));
    assert!(!m.text.contains("[firmware]"));
}

fn mesobench_at(exe: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(exe).args(args).current_dir(root()).output().expect("binary runs")
}

/// The FMU binary of this build (next to the mesobench executable). A binary
/// from another build of the plant refuses to instantiate (its token differs).
fn fmu_library() -> std::path::PathBuf {
    // `cargo test` builds the fmu crate's tests, not its cdylib: build it
    // once per test run (same profile, so it lands next to the mesobench
    // binary; a no-op when it is up to date, and never a stale library
    // whose token no longer matches this build's model description).
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_mesobench"));
    {
        let built = BUILT.get_or_init(|| {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let release = bin.parent().is_some_and(|d| d.ends_with("release"));
            let mut cmd = std::process::Command::new(cargo);
            cmd.args(["build", "--quiet", "-p", "mesobench-fmu"]).current_dir(root());
            if release {
                cmd.arg("--release");
            }
            let o = cmd.output().map_err(|e| e.to_string())?;
            if o.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&o.stderr).into_owned())
            }
        });
        if let Err(e) = built {
            panic!("cannot build the FMU library: {e}");
        }
    }
    fmi::package::library_near(bin).unwrap_or_else(|| {
        panic!(
            "{} is missing next to {}: build it with `cargo build -p mesobench-fmu`",
            fmi::package::LIBRARY_FILE,
            bin.display()
        )
    })
}

#[test]
fn mesobench_fmu_writes_an_fmu_archive() {
    let lib = fmu_library();
    let tmp = tempfile::tempdir().unwrap();
    for (v, dir) in [("2", "binaries/linux64/"), ("3", "binaries/x86_64-linux/")] {
        let out = tmp.path().join(format!("ref{v}.fmu"));
        let o = mesobench_at(
            std::path::Path::new(env!("CARGO_BIN_EXE_mesobench")),
            &["fmu", "scenarios/reference.toml", "--fmi", v, "--out", out.to_str().unwrap()],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let zip = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
        let names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
        for want in [
            "modelDescription.xml".to_string(),
            "resources/scenario.toml".into(),
            format!("{dir}mesobench_reference.so"),
        ] {
            assert!(names.contains(&want), "{want} not in {names:?}");
        }
        // The same inputs give the same bytes.
        let again = tmp.path().join("again.fmu");
        let o = mesobench_at(
            std::path::Path::new(env!("CARGO_BIN_EXE_mesobench")),
            &[
                "fmu",
                "scenarios/reference.toml",
                "--fmi",
                v,
                "--out",
                again.to_str().unwrap(),
                "--lib",
                lib.to_str().unwrap(),
            ],
        );
        assert!(o.status.success());
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    }
}

#[test]
fn mesobench_fmu_without_its_binary_or_with_a_bad_value_exits_2() {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fmu-no-lib");
    std::fs::create_dir_all(&tmp).unwrap();
    let exe = tmp.join("mesobench");
    let _ = std::fs::remove_file(&exe);
    std::fs::hard_link(env!("CARGO_BIN_EXE_mesobench"), &exe)
        .or_else(|_| std::fs::copy(env!("CARGO_BIN_EXE_mesobench"), &exe).map(|_| ()))
        .unwrap();
    let out = tmp.join("x.fmu");
    let o = mesobench_at(&exe, &["fmu", "--fmi", "2", "--out", out.to_str().unwrap()]);
    crate::util::assert_exit2(&o, &["libmesobench_fmu.so", "cargo build --release -p mesobench-fmu", "--lib"]);
    let o = mesobench_at(&exe, &["fmu", "--fmi", "4", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    fmu_library();
    let o = mesobench_at(
        std::path::Path::new(env!("CARGO_BIN_EXE_mesobench")),
        &["fmu", "--fmi", "2", "--out", out.to_str().unwrap(), "--set", "supply.pressure_bar=60"],
    );
    crate::util::assert_exit2(&o, &["supply.pressure_bar = 60 is not allowed", "0.2 to 10"]);
    assert!(!out.exists());
}

/// tests/fmi/test_fmpy.py: FMPy's validation, the dose and traces against
/// `mesobench run`, state, reset, memory, a refused parameter, speed. It
/// needs a Python with FMPy and pytest (`.ci/run` makes target/fmi-venv);
/// without one it is skipped with a note, unless MESOBENCH_REQUIRE_FMPY=1 or
/// CI=true (as `.ci/run` sets), where it fails.
#[test]
fn fmpy_checks_the_exported_fmus() {
    let python = std::env::var_os("MESOBENCH_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join("target/fmi-venv/bin/python"));
    let usable = std::process::Command::new(&python)
        .args(["-c", "import fmpy, pytest"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !usable {
        let msg = format!(
            "{} cannot import fmpy and pytest: make the environment with `python3 -m venv target/fmi-venv && target/fmi-venv/bin/pip install fmpy pytest`, or point MESOBENCH_PYTHON at a Python that has them",
            python.display()
        );
        let required = std::env::var("CI").is_ok_and(|v| v == "true")
            || std::env::var("MESOBENCH_REQUIRE_FMPY").is_ok_and(|v| v == "1");
        if !required {
            eprintln!("skipped (set MESOBENCH_REQUIRE_FMPY=1 to make this a failure): {msg}");
            return;
        }
        panic!("{msg}");
    }
    let lib = fmu_library();
    let o = std::process::Command::new(&python)
        .args(["-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/fmi"])
        .env("MESOBENCH_BIN", env!("CARGO_BIN_EXE_mesobench"))
        .env("MESOBENCH_FMU_LIB", &lib)
        .current_dir(root())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    println!("{out}");
    assert!(o.status.success(), "FMPy checks failed:\n{out}\n{}", String::from_utf8_lossy(&o.stderr));
}

/// The ports of tests/fmi/open_loop_fmu.c in the model description of FMI `version` (2 or 3).
fn open_loop_variables(version: u8) -> String {
    let ports = [
        ("trigger", 1, "input", "Integer"),
        ("tick_period", 2, "input", "Real"),
        ("valve_mode", 3, "output", "Integer"),
        ("idle", 4, "output", "Integer"),
        ("sig_command", 5, "output", "Real"),
    ];
    let mut x = String::new();
    for (name, vr, causality, ty) in ports {
        let start = if causality == "input" { " start=\"0\"" } else { "" };
        x += &if version == 2 {
            format!("    <ScalarVariable name=\"{name}\" valueReference=\"{vr}\" causality=\"{causality}\" variability=\"discrete\"><{ty}{start}/></ScalarVariable>\n")
        } else {
            let ty = if ty == "Real" { "Float64" } else { "Int32" };
            format!("    <{ty} name=\"{name}\" valueReference=\"{vr}\" causality=\"{causality}\" variability=\"discrete\"{start}/>\n")
        };
    }
    x
}

/// An FMU archive of FMI `version` (2 or 3) with the model description of
/// `variables` (its token `token`) and `binary` as `open_loop.so`.
fn controller_archive(
    dir: &std::path::Path,
    version: u8,
    token: &str,
    variables: &str,
    binary: &[u8],
) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (token_attr, platform) =
        if version == 2 { ("guid", "linux64") } else { ("instantiationToken", "x86_64-linux") };
    // FMI 3.0: the ModelStructure after the variables has elements with valueReference too.
    let structure = if version == 3 {
        "  <ModelStructure>\n    <Output valueReference=\"3\"/>\n    <Output valueReference=\"4\"/>\n    <Output valueReference=\"5\"/>\n  </ModelStructure>\n"
    } else {
        ""
    };
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<fmiModelDescription fmiVersion=\"{version}.0\" modelName=\"open_loop\" {token_attr}=\"{token}\">\n  <CoSimulation modelIdentifier=\"open_loop\"/>\n  <ModelVariables>\n    <!-- the ports of the firmware -->\n{variables}  </ModelVariables>\n{structure}</fmiModelDescription>\n"
    );
    let path = dir.join(format!("open_loop_fmi{version}_{n}.fmu"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    use std::io::Write;
    zip.start_file("modelDescription.xml", options).unwrap();
    zip.write_all(xml.as_bytes()).unwrap();
    zip.start_file(format!("binaries/{platform}/open_loop.so"), options).unwrap();
    zip.write_all(binary).unwrap();
    zip.finish().unwrap();
    path
}

/// A controller FMU of FMI `version` (2 or 3) built from
/// tests/fmi/open_loop_fmu.c (the open-loop example behind an FMI wrapper)
/// with the C macros `defines` (`NAME=VALUE`), zipped into `dir`; `token` in
/// its model description (the FMI 3.0 binary's is `{open-loop-3}`).
fn controller_fmu(
    dir: &std::path::Path,
    version: u8,
    open_time_s: f64,
    defines: &[&str],
    token: &str,
) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let source = std::fs::read_to_string(root().join("tests/fmi/open_loop_fmu.c")).unwrap();
    let mut head = format!("#define OPEN_TIME {open_time_s:?}\n");
    if version == 3 {
        head += "#define FMI3\n";
    }
    for d in defines {
        let (name, value) = d.split_once('=').unwrap_or((d, ""));
        head += &format!("#define {name} {value}\n");
    }
    let lib = crate::util::build_plugin(dir, &format!("open_loop_fmu{version}_{n}"), &format!("{head}{source}"));
    controller_archive(dir, version, token, &open_loop_variables(version), &std::fs::read(lib).unwrap())
}

/// The open-loop controller FMU of FMI `version` with its right token.
fn open_loop_controller_fmu(dir: &std::path::Path, version: u8, open_time_s: f64) -> std::path::PathBuf {
    controller_fmu(dir, version, open_time_s, &[], if version == 2 { "{1}" } else { "{open-loop-3}" })
}

fn fmu_set(fmu: &std::path::Path) -> String {
    format!("firmware.fmu={:?}", fmu.display().to_string())
}

#[test]
fn a_controller_fmu_as_firmware_gives_the_doses_of_the_built_in_open_loop() {
    let tmp = tempfile::tempdir().unwrap();
    for version in [2, 3] {
        for (open_ms, sets) in [(60.0, &[][..]), (30.0, &["firmware.open_time_ms=30"][..])] {
            let fmu = open_loop_controller_fmu(tmp.path(), version, open_ms * 1e-3);
            let built_in = crate::util::reference(sets);
            let with_fmu = crate::util::reference(&["firmware.kind=\"fmu\"", &fmu_set(&fmu)]);
            let (a, b) = (shots(&built_in), shots(&with_fmu));
            assert_eq!(a.len(), 3);
            assert_eq!(b.len(), 3);
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(
                    x.dose.to_bits(),
                    y.dose.to_bits(),
                    "FMI {version}: built-in {} µL, FMU {} µL",
                    x.dose * 1e9,
                    y.dose * 1e9
                );
                assert_eq!(x.open_time_cmd, y.open_time_cmd);
                assert!((y.open_time_cmd - open_ms * 1e-3).abs() < 1e-9, "{}", y.open_time_cmd);
            }
        }
    }
}

#[test]
fn a_controller_fmu_that_is_missing_or_of_another_fmi_version_is_refused_with_its_path() {
    let e = mesobench::scenario::load(
        &Source::default_scenario(),
        &["firmware.kind=\"fmu\"".into(), "firmware.fmu=\"nowhere.fmu\"".into()],
        "reference",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("firmware.fmu") && e.contains("nowhere.fmu"), "{e}");
    let tmp = tempfile::tempdir().unwrap();
    let load_error = |fmu: &std::path::Path| match mesobench::control::fmu::FmuFirmware::load(fmu) {
        Ok(_) => panic!("{} loaded", fmu.display()),
        Err(e) => e.to_string(),
    };
    // The plant's FMI 3.0 description (units, type definitions, model
    // structure) is read, and it has no valve_mode output.
    let plant = tmp.path().join("plant3.fmu");
    std::fs::write(&plant, fmi::package::fmu_bytes(&reference_model(), Version::Fmi3, b"x").unwrap()).unwrap();
    let e = load_error(&plant);
    assert!(e.contains("plant3.fmu") && e.contains("no output named valve_mode"), "{e}");
    let other = controller_archive(tmp.path(), 1, "{1}", &open_loop_variables(2), b"x");
    let e = load_error(&other);
    assert!(e.contains(&other.display().to_string()), "{e}");
    assert!(e.contains("FMI 1.0: only FMI 2.0 and FMI 3.0 controller FMUs can be loaded as firmware"), "{e}");
}

#[test]
fn a_controller_fmu_port_of_another_type_is_refused_with_the_variable_and_its_type() {
    let tmp = tempfile::tempdir().unwrap();
    let load_error = |fmu: &std::path::Path| match mesobench::control::fmu::FmuFirmware::load(fmu) {
        Ok(_) => panic!("{} loaded", fmu.display()),
        Err(e) => e.to_string(),
    };
    let cases = [
        (
            3,
            open_loop_variables(3).replace("<Int32 name=\"trigger\"", "<Boolean name=\"trigger\"").replace("start=\"0\"/>", "start=\"false\"/>"),
            "input trigger (valueReference 1) is of type Boolean: a firmware port must be a scalar Float64 or Int32 variable",
        ),
        (
            3,
            open_loop_variables(3).replace("<Float64 name=\"sig_command\" valueReference=\"5\" causality=\"output\" variability=\"discrete\"/>",
                "<Float64 name=\"sig_command\" valueReference=\"5\" causality=\"output\" variability=\"discrete\">\n      <Dimension start=\"2\"/>\n    </Float64>"),
            "output sig_command (valueReference 5) is an array of Float64: a firmware port must be a scalar Float64 or Int32 variable",
        ),
        (
            3,
            open_loop_variables(3).replace("<Int32 name=\"valve_mode\"", "<UInt8 name=\"valve_mode\""),
            "output valve_mode (valueReference 3) is of type UInt8",
        ),
        (
            2,
            open_loop_variables(2).replace("<Integer start=\"0\"/>", "<Boolean start=\"false\"/>"),
            "input trigger (valueReference 1) is of type Boolean: a firmware port must be a Real, Integer or Enumeration variable",
        ),
    ];
    for (version, variables, want) in cases {
        assert_ne!(variables, open_loop_variables(version), "the case changes the description");
        let fmu = controller_archive(tmp.path(), version, "{1}", &variables, b"x");
        let e = load_error(&fmu);
        assert!(e.contains(&fmu.display().to_string()) && e.contains(want), "FMI {version}: {e}");
    }
    // A variable of another type that is not a port is no matter.
    let extra = format!(
        "{}    <Boolean name=\"armed\" valueReference=\"9\" causality=\"output\" variability=\"discrete\"/>\n",
        open_loop_variables(3)
    );
    let fmu = controller_archive(tmp.path(), 3, "{1}", &extra, b"x");
    assert!(load_error(&fmu).contains("cannot load"), "past the ports, to the binary");
}

/// `mesobench run` of the reference scenario with the controller FMU `fmu`.
fn run_with_controller(fmu: &std::path::Path, out: &std::path::Path) -> std::process::Output {
    run_with_controller_pid(fmu, out).0
}

/// As [`run_with_controller`], with the process id of the run.
fn run_with_controller_pid(fmu: &std::path::Path, out: &std::path::Path) -> (std::process::Output, u32) {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_mesobench"))
        .args([
            "run",
            "scenarios/reference.toml",
            "--set",
            "firmware.kind=\"fmu\"",
            "--set",
            &fmu_set(fmu),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("binary runs");
    let pid = child.id();
    (child.wait_with_output().unwrap(), pid)
}

#[test]
fn an_fmi_3_controller_fmu_without_a_required_function_or_with_a_wrong_token_is_refused_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let no_step = controller_fmu(tmp.path(), 3, 0.06, &["OMIT_DOSTEP"], "{open-loop-3}");
    let (o, pid) = run_with_controller_pid(&no_step, &out);
    // The refused FMU's unpacked folder is removed.
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("mesobench-fmu-firmware-{pid}-")))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    crate::util::assert_exit2(
        &o,
        &[
            &no_step.display().to_string(),
            "the binary lacks fmi3DoStep, a function every FMI 3.0 co-simulation FMU has",
        ],
    );
    let wrong = controller_fmu(tmp.path(), 3, 0.06, &[], "{another-build}");
    for _ in 0..3 {
        let o = run_with_controller(&wrong, &out);
        crate::util::assert_exit2(
            &o,
            &[
                &wrong.display().to_string(),
                "fmi3InstantiateCoSimulation returned no instance for instantiationToken \"{another-build}\"",
                "instantiationToken does not match this binary's {open-loop-3}",
            ],
        );
    }
    // The same process then runs a good one.
    let good = open_loop_controller_fmu(tmp.path(), 3, 0.06);
    let o = run_with_controller(&good, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_controller_fmu_failing_or_terminating_mid_run_stops_the_run_with_the_time_and_the_status() {
    let tmp = tempfile::tempdir().unwrap();
    let run_error = |fmu: &std::path::Path| {
        let sc = crate::util::reference(&["firmware.kind=\"fmu\"", &fmu_set(fmu)]);
        match mesobench::simulate(&sc, false) {
            Ok(_) => panic!("{} ran to the end", fmu.display()),
            Err(e) => e.to_string(),
        }
    };
    let cases = [
        (2, "FAIL_AT_TICK=120", "fmi2DoStep returned status 3 (fmi2Error)"),
        (3, "FAIL_AT_TICK=120", "fmi3DoStep returned status 3 (fmi3Error) (the controller failed on purpose)"),
        (3, "TERMINATE_AT_TICK=120", "fmi3DoStep set terminateSimulation: the controller FMU ended the simulation"),
    ];
    for (version, define, want) in cases {
        let token = if version == 2 { "{1}" } else { "{open-loop-3}" };
        let fmu = controller_fmu(tmp.path(), version, 0.06, &[define], token);
        let e = run_error(&fmu);
        assert!(e.contains(&format!("firmware fmu {}", fmu.display())), "{e}");
        assert!(e.contains("at t = 12.000 ms (tick 120)") && e.contains(want), "FMI {version} {define}: {e}");
        // From the command line: exit 2 with the same message.
        let o = run_with_controller(&fmu, &tmp.path().join("out"));
        crate::util::assert_exit2(&o, &["at t = 12.000 ms (tick 120)", want]);
    }
}
