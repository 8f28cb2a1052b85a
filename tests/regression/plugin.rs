//! Regressions of firmware plugins: path resolution.

use crate::util::{assert_exit2, build_plugin, root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The open-loop example's source with `code` run at the start of every step.
fn open_loop_with(code: &str) -> String {
    let src = std::fs::read_to_string(root().join("examples/firmware/open_loop.c")).unwrap();
    let head = "int32_t mb_fw_step(void *p, const mb_fw_input *in, mb_fw_output *out) {\n";
    assert!(src.contains(head));
    src.replace(head, &format!("{head}    {code}\n"))
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
    assert!(!String::from_utf8_lossy(&o.stdout).contains("valid"));
    // A bare name from the scenario's own folder resolves there too.
    let o = mesobench(tmp.path(), &["check", "missing.toml"], &[]);
    assert_exit2(&o, &["missing.toml:", "no such file: ./libmissing.so"]);
}
