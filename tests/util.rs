//! Shared helpers.

use mesobench::scenario::{self, Scenario, Source};
use mesobench::sim::ShotRecord;
use std::path::{Path, PathBuf};

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Plugins run in host processes: the library is told where the mesobench binary is.
pub fn use_plugin_host() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| mesobench::control::host::set_host_executable(Path::new(env!("CARGO_BIN_EXE_mesobench"))));
}

/// The default scenario with overrides.
pub fn reference(sets: &[&str]) -> Scenario {
    use_plugin_host();
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    scenario::load(&Source::default_scenario(), &sets, "reference").expect("valid scenario")
}

/// A shipped scenario with overrides.
pub fn shipped(name: &str, sets: &[&str]) -> Scenario {
    use_plugin_host();
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let path = root().join("scenarios").join(format!("{name}.toml"));
    scenario::load(&Source::from_path(&path).expect("readable"), &sets, name).expect("valid scenario")
}

/// Run a scenario and return its shots.
pub fn shots(sc: &Scenario) -> Vec<ShotRecord> {
    mesobench::simulate(sc, false).expect("simulation runs").result.shots
}

/// Dose of a single-shot run of the reference scenario with overrides, µL.
pub fn reference_dose(sets: &[&str]) -> f64 {
    let mut all = vec!["session.shots=1"];
    all.extend_from_slice(sets);
    shots(&reference(&all))[0].dose * 1e9
}

/// Relative difference.
pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

/// All scenario files shipped in scenarios/.
pub fn scenario_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios"))
        .expect("scenarios/ exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter(|p| !study_files().contains(p))
        .collect();
    v.sort();
    v
}

/// Shipped comparison studies (`mesobench compare`), which live beside the scenarios.
pub fn study_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios"))
        .expect("scenarios/ exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.lines().any(|l| l.trim() == "[[arm]]")))
        .collect();
    v.sort();
    v
}

/// File stem.
pub fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

/// Compile a C firmware plugin from `source` into `dir`; returns the library path.
pub fn build_plugin(dir: &Path, name: &str, source: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let lib = dir.join(format!("lib{name}.so"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = std::process::Command::new(cc)
        .args(["-O2", "-std=c11", "-Wall", "-shared", "-fPIC", "-I"])
        .arg(root().join("include"))
        .arg("-o")
        .arg(&lib)
        .arg(&c)
        .arg("-lm")
        .status()
        .expect("a C compiler (cc) is installed");
    assert!(status.success(), "cc failed on {name}");
    lib
}

/// The example plugin `examples/firmware/<name>.c`, built into `dir`
/// (a `_src` suffix on `name` is dropped to find the source).
pub fn example_plugin(dir: &Path, name: &str) -> PathBuf {
    let stem = name.trim_start_matches("fw_").trim_end_matches("_src");
    let src = std::fs::read_to_string(root().join("examples/firmware").join(format!("{stem}.c"))).unwrap();
    build_plugin(dir, name, &src)
}

/// Assert that a run of the binary failed with exit code 2, printed every
/// fragment on stderr and did not panic; returns stderr.
pub fn assert_exit2(o: &std::process::Output, fragments: &[&str]) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "expected exit 2, got {:?}: {err}", o.status.code());
    for f in fragments {
        assert!(err.contains(f), "stderr lacks {f:?}:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Panic unless the cell prints at most 12 significant digits (every
/// table's precision); `what` names the file in the message.
pub fn assert_at_most_12_digits(what: &str, cell: &str) {
    let digits: String = cell.split('e').next().unwrap_or("").chars().filter(char::is_ascii_digit).collect();
    assert!(digits.trim_start_matches('0').len() <= 12, "{what}: {cell} has more than 12 significant digits");
}
