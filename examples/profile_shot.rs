//! Runs the reference shot N times, for profilers and instruction counts:
//!   cargo run --release --example profile_shot -- 200 [path/to/libfw_open_loop.so]
//! With a plugin path, the C open-loop plugin drives the gun instead of the
//! built-in firmware, loaded into this process (in a host process when
//! MESOBENCH_PLUGIN_HOST names the mesobench binary).
fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let mut sets = vec!["session.shots=1".to_string()];
    if let Some(lib) = args.next() {
        sets.push("firmware.kind=\"plugin\"".into());
        sets.push(format!("firmware.plugin=\"{lib}\""));
        sets.push("firmware.plugin_params=[0.060]".into());
        // In a host process only when told where the mesobench binary is.
        if std::env::var_os(mesobench::control::host::HOST_ENV).is_none() {
            sets.push("firmware.plugin_isolation=\"in_process\"".into());
        }
    }
    let sc = mesobench::scenario::load(&mesobench::scenario::Source::default_scenario(), &sets, "reference")
        .expect("valid scenario");
    let mut d = 0.0;
    for _ in 0..n {
        d += mesobench::simulate(&sc, false).expect("runs").result.shots[0].dose;
    }
    println!("{:.6} µL per shot over {n} shots", d / n as f64 * 1e9);
}
