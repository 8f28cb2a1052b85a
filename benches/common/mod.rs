//! Helpers shared by the benches.

use std::path::PathBuf;

/// Build examples/firmware/open_loop.c into target/bench-firmware/`file`.
pub fn build_plugin(file: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target/bench-firmware");
    std::fs::create_dir_all(&out).expect("target/ is writable");
    let lib = out.join(file);
    let status = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-O2", "-std=c11", "-shared", "-fPIC", "-I"])
        .arg(root.join("include"))
        .arg("-o")
        .arg(&lib)
        .arg(root.join("examples/firmware/open_loop.c"))
        .arg("-lm")
        .status()
        .expect("a C compiler (cc) is installed");
    assert!(status.success(), "cc failed");
    lib
}
