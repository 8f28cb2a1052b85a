//! Writes the bench data of `scenarios/fit_example/`: the reference gun
//! simulated at hidden parameter values (the "truth" below), logged as a
//! bench rig would (5 kHz, sensor noise, a 20 ms pre-trigger baseline,
//! two CSV dialects) and weighed per shot on a 0.1 mg balance.
//!
//! `cargo run --release --example make_fit_example` regenerates the files;
//! the same seed gives the same bytes.

use std::path::Path;

use mesobench::bench::{synthesize, Signal, SynthColumn};
use mesobench::scenario::{self, Source};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

/// The hidden parameter values (the fit should recover them).
pub const TRUTH: [(&str, f64); 3] =
    [("needle.inner_diameter_mm", 0.150), ("syringe.break_loose_n", 5.5), ("valve.c_dm3_per_s_bar", 0.08)];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new("scenarios/fit_example");
    std::fs::create_dir_all(dir)?;
    let source = Source::from_path(Path::new("scenarios/reference.toml"))?;
    let prepared = scenario::Prepared::new(&source, "reference")?;
    let experiments: [(&str, f64, f64, u8); 2] =
        [("exp_2p5bar_60ms", 2.5, 60.0, b';'), ("exp_3p5bar_40ms", 3.5, 40.0, b',')];
    for (k, (name, bar, ms, delim)) in experiments.into_iter().enumerate() {
        let mut set: Vec<String> = TRUTH.iter().map(|(key, v)| format!("{key}={v}")).collect();
        set.push(format!("supply.pressure_bar={bar}"));
        set.push(format!("firmware.open_time_ms={ms}"));
        set.push("session.shots=3".into());
        let sc = prepared.with(&set)?;
        let mut trace = Vec::new();
        let run = mesobench::simulate_traced(&sc, &mut trace)?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20261202 + k as u64);
        let columns = if delim == b';' {
            vec![
                SynthColumn { signal: Signal::PChamber, header: "P chamber [bar]", unit: "bar", sd: 1.0e3 },
                SynthColumn { signal: Signal::PSyringe, header: "P syringe [kPa]", unit: "kPa", sd: 2.0e3 },
            ]
        } else {
            vec![
                SynthColumn { signal: Signal::PChamber, header: "p_chamber_kpa_abs", unit: "kPa abs", sd: 1.0e3 },
                SynthColumn { signal: Signal::PSyringe, header: "p_syringe_kpa", unit: "kPa", sd: 2.0e3 },
            ]
        };
        let csv = synthesize(&trace, &columns, 2e-4, 0.02, sc.params.p_atm, delim, &mut rng)?;
        std::fs::write(dir.join(format!("{name}.csv")), csv)?;
        let balance = Normal::new(0.0, 0.1)?;
        let mut masses = String::from("shot,mass_mg\n");
        for s in &run.result.shots {
            let mg = s.dose * sc.params.fluid.density * 1e6 + balance.sample(&mut rng);
            masses.push_str(&format!("{},{mg:.2}\n", s.index + 1));
        }
        std::fs::write(dir.join(format!("{name}_mass.csv")), masses)?;
        println!(
            "{name}: doses {:?} µL",
            run.result.shots.iter().map(|s| (s.dose * 1e11).round() / 100.0).collect::<Vec<_>>()
        );
    }
    Ok(())
}
