//! Coverage of `mesobench fit`'s 95 % intervals: bench data are made at
//! known parameters (the reference gun with a 0.150 mm bore and a valve
//! conductance C of 0.08 dm³/(s·bar), two shots logged at 5 kHz with 1 kPa
//! and 2 kPa noise, weighed on a 0.1 mg balance) for N noise seeds; each is
//! fitted and the share of intervals holding the truth is counted, with
//! the mean and spread of the standardised errors (estimate − truth) / se.
//!
//! `cargo run --release --example fit_coverage -- 100` (the figure in
//! docs/calibration.md; about 2 s per seed on one core).

use std::path::Path;

use mesobench::bench::{synthesize, Signal, SynthColumn};
use mesobench::scenario::{self, Source};
use mesobench::study::fit::{self, lm, Purpose};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

const TRUTH: [(&str, f64, f64, f64); 2] =
    [("needle.inner_diameter_mm", 0.150, 0.12, 0.20), ("valve.c_dm3_per_s_bar", 0.08, 0.03, 0.3)];

fn make(dir: &Path, seed: u64) -> Result<(), Box<dyn std::error::Error>> {
    let source = Source::default_scenario();
    let mut set: Vec<String> = TRUTH.iter().map(|(k, v, _, _)| format!("{k}={v}")).collect();
    set.push("session.shots=2".into());
    let sc = scenario::load(&source, &set, "reference")?;
    let mut trace = Vec::new();
    let run = mesobench::simulate_traced(&sc, &mut trace)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let columns = [
        SynthColumn { signal: Signal::PChamber, header: "P chamber [bar]", unit: "bar", sd: 1e3 },
        SynthColumn { signal: Signal::PSyringe, header: "p_syringe_kpa", unit: "kPa", sd: 2e3 },
    ];
    std::fs::write(dir.join("trace.csv"), synthesize(&trace, &columns, 2e-4, 0.02, sc.params.p_atm, b',', &mut rng)?)?;
    let balance = Normal::new(0.0, 0.1)?;
    let mut masses = String::from("shot,mass_mg\n");
    for s in &run.result.shots {
        masses.push_str(&format!(
            "{},{:.3}\n",
            s.index + 1,
            s.dose * sc.params.fluid.density * 1e6 + balance.sample(&mut rng)
        ));
    }
    std::fs::write(dir.join("mass.csv"), masses)?;
    let params: String = TRUTH.iter().map(|(k, _, lo, hi)| format!("\"{k}\" = {{ lo = {lo}, hi = {hi} }}\n")).collect();
    let scenario_path = std::env::current_dir()?.join("scenarios/reference.toml");
    std::fs::write(
        dir.join("fit.toml"),
        format!(
            "scenario = {scenario_path:?}\n[fit]\nstarts = 4\nprofile = false\n[[experiment]]\nname = \"bench\"\n\
             trace = \"trace.csv\"\nmasses = \"mass.csv\"\n[experiment.channels]\n\"Valve cmd\" = {{ signal = \"valve_command\" }}\n\
             \"P chamber [bar]\" = {{ signal = \"p_chamber\" }}\n\"p_syringe_kpa\" = {{ signal = \"p_syringe\", sd = 2.0e3 }}\n\
             [parameters]\n{params}"
        ),
    )?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(100);
    let started = std::time::Instant::now();
    let mut covered = [0u64; 2];
    let mut z: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for seed in 0..n {
        let tmp = std::env::temp_dir().join(format!("mesobench_fit_coverage_{seed}"));
        std::fs::create_dir_all(&tmp)?;
        make(&tmp, 1000 + seed)?;
        let file = fit::load(&tmp.join("fit.toml"), Purpose::Fit)?;
        let out = lm::fit(&file, &|_| {})?;
        for (j, (_, truth, _, _)) in TRUTH.iter().enumerate() {
            let e = &out.estimates[j];
            if e.ci95.is_some_and(|[a, b]| a <= *truth && *truth <= b) {
                covered[j] += 1;
            }
            if let Some(se) = e.se {
                z[j].push((e.estimate - truth) / se);
            }
        }
        std::fs::remove_dir_all(&tmp)?;
    }
    for (j, (key, ..)) in TRUTH.iter().enumerate() {
        let m = z[j].iter().sum::<f64>() / z[j].len() as f64;
        let sd = (z[j].iter().map(|v| (v - m).powi(2)).sum::<f64>() / (z[j].len() as f64 - 1.0)).sqrt();
        println!(
            "{key}: {} of {n} intervals cover the truth ({:.1} %); standardised error mean {m:.3}, sd {sd:.3}",
            covered[j],
            100.0 * covered[j] as f64 / n as f64
        );
    }
    println!("{n} fits in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
