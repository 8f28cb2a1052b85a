//! The command line's arguments and what it prints: the clap structs of
//! every command, the checks of the values clap cannot check itself (shards,
//! probabilities, `--where` filters, the fault-injection hook), the progress
//! bar and the printed summaries.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use mesobench::scenario::{self, Scenario, Source};

#[derive(Parser)]
#[command(
    name = "mesobench",
    version,
    about = "Simulator and virtual test bench for pneumatic mesotherapy injection guns"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What every study command takes.
#[derive(clap::Args)]
pub struct StudyArgs {
    /// Scenario file (TOML) holding the table the command reads.
    pub scenario: PathBuf,
    /// Output folder [default: output/<scenario name>/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Worker threads, 1 to 1024 [default: all cores].
    #[arg(long, value_name = "N", value_parser = threads_arg())]
    pub threads: Option<usize>,
    /// Override any scenario key by its dotted path (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl StudyArgs {
    /// The scenario parsed once (for variants), its resolved base, the output folder and the thread count.
    pub fn load(&self) -> anyhow::Result<(Source, scenario::Prepared, Scenario, PathBuf, usize)> {
        let source = Source::from_path(&self.scenario)?;
        let stem = self.scenario.file_stem().and_then(|s| s.to_str()).unwrap_or("scenario").to_string();
        let prep = scenario::Prepared::new(&source, &stem)?;
        let sc = prep.with(&self.set)?;
        prep.check_study(&sc, &self.set)?;
        let dir = self.out.clone().unwrap_or_else(|| Path::new("output").join(&sc.name));
        let threads =
            self.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        Ok((source, prep, sc, dir, threads))
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a scenario's session and write shots.csv, needles.csv, trace.csv,
    /// summary.json, manifest.json and the trace and dose plots.
    Run {
        /// Scenario file (TOML); without it the embedded default
        /// (identical to scenarios/reference.toml) runs.
        scenario: Option<PathBuf>,
        /// Output folder [default: output/<scenario name>/].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Override any scenario key by its dotted path, e.g.
        /// --set firmware.open_time_ms=25 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Print nothing but errors.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Run the scenario's [sweep]: every point of its parameter grid for
    /// its Monte Carlo replicates, in parallel; writes sweep.csv (in point
    /// order, as points finish), sweep_manifest.json and plots.
    #[command(mut_arg("scenario", |a| a.help("Scenario file (TOML) with a [sweep] table (the swept keys and their values, replicates) and optionally [uncertain] (what varies between replicates)")))]
    Sweep {
        #[command(flatten)]
        study: StudyArgs,
        /// Run only shard I of N (0-based), a contiguous slice of the points;
        /// `--shard /N` takes I from JOB_COMPLETION_INDEX (Kubernetes Indexed
        /// Jobs) or SLURM_ARRAY_TASK_ID [default: from SLURM_ARRAY_TASK_ID and
        /// SLURM_ARRAY_TASK_COUNT when set].
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// Write DIR/slurm_sweep.sh, which submits the sweep as a Slurm job
        /// array of N shards plus a merge job that waits for it, and exit.
        #[arg(long, value_name = "N")]
        slurm_script: Option<u64>,
        /// Finish an interrupted sweep (or shard) without recomputing finished
        /// points; refused when it was made with other settings.
        #[arg(long)]
        resume: bool,
        /// Also write every shot to raw.csv.
        #[arg(long)]
        raw: bool,
        /// No progress bar or summary.
        #[arg(long, short)]
        quiet: bool,
    },
    /// First-order and total Sobol indices of the dose for each [uncertain]
    /// parameter (Saltelli sampling over Sobol points, bootstrap intervals);
    /// writes sensitivity.csv (one row per parameter: first, first_lo,
    /// first_hi, total, total_lo, total_hi), sensitivity.json and a bar chart.
    #[command(mut_arg("scenario", |a| a.help("Scenario file (TOML) with an [uncertain] table (each key's distribution and level) and an optional [sensitivity] table (samples, bootstrap)")))]
    Sensitivity {
        #[command(flatten)]
        study: StudyArgs,
        /// No progress bar or summary.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Search the firmware settings named in the scenario's [tune] table for
    /// the most consistent target dose within its constraints (particle
    /// swarm or Nelder–Mead, common random numbers); writes tune_summary.json,
    /// tune_best.toml, tune_best.h, tune_history.csv (one row per
    /// evaluation: key values, objective, cost, feasibility, dose metrics),
    /// tune_landscape.csv (the objective on a grid of one or two keys) and
    /// plots.
    #[command(mut_arg("scenario", |a| a.help("Scenario file (TOML) with a [tune] table: the firmware keys and their bounds, the objective (cv, tolerance or weighted), target_ul and the constraints")))]
    Tune {
        #[command(flatten)]
        study: StudyArgs,
        /// No progress bar or summary.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Manual injection against gun injection: run a study's arms × targets
    /// × operators or devices × shots and write arms.csv, compare_summary.json,
    /// plots and a self-contained report.html (exit 0 whatever the verdicts).
    Compare {
        /// Study file (TOML), e.g. scenarios/manual_vs_gun.toml.
        study: PathBuf,
        /// Output folder [default: output/<study name>/].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Worker threads, 1 to 1024 [default: all cores].
        #[arg(long, value_name = "N", value_parser = threads_arg())]
        threads: Option<usize>,
        /// No progress bar or summary.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Calibrate the plant from bench data: weighted least squares over
    /// every experiment of a fit file (Sobol global stage, then
    /// Levenberg–Marquardt in the bounds), with 95 % intervals, profiles and
    /// identifiability warnings; writes fit_summary.json, calibrated.toml,
    /// fit_history.csv and plots. Exit 1 when it does not converge (the best
    /// point is still written).
    Fit {
        /// Fit file (TOML), e.g. scenarios/fit_example/fit.toml.
        file: PathBuf,
        /// Output folder [default: output/<fit file stem>/].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Worker threads, 1 to 1024 [default: all cores].
        #[arg(long, value_name = "N", value_parser = threads_arg())]
        threads: Option<usize>,
        /// No progress or summary.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Check a scenario against bench data: per-channel RMS and peak
    /// error, dose and valve-delay error per shot, overlay plots, and a
    /// verdict against the file's [tolerance] (exit 1 when outside).
    Validate {
        /// Validation file (TOML): a fit file's shape without [parameters].
        file: PathBuf,
        /// Validate this scenario instead of the file's (e.g. the calibrated.toml a fit wrote).
        #[arg(long, value_name = "SCENARIO")]
        scenario: Option<PathBuf>,
        /// Output folder [default: output/<file stem>/].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// No summary.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Print the normal tolerance factor k for n doses (exact two-sided by
    /// the Odeh–Owen integral, or one-sided by the non-central t).
    ToleranceK {
        /// Number of doses, 2 to 10,000,000.
        #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..=mesobench::stats::doses::MAX_DOSES as u64))]
        n: usize,
        /// Population proportion to cover, p.
        #[arg(long, default_value_t = 0.975)]
        coverage: f64,
        /// Confidence, γ.
        #[arg(long, default_value_t = 0.95)]
        confidence: f64,
        /// One-sided factor.
        #[arg(long)]
        one_sided: bool,
    },
    /// Dose-accuracy acceptance (ISO 11608-1 tolerance-interval rule) of
    /// measured or simulated doses: exit 0 pass, 1 fail, 2 error.
    Accept {
        /// CSV with a dose_ul column (or a single column of doses in µL).
        doses: PathBuf,
        /// Target dose V, µL (0 < V ≤ 1,000,000).
        #[arg(long)]
        target_ul: f64,
        /// Use only the rows whose column COL holds VALUE (repeatable; all
        /// must match), e.g. --where arm=gun --where target_ul=10 for an
        /// arms.csv of `mesobench compare`.
        #[arg(long = "where", value_name = "COL=VALUE")]
        filters: Vec<String>,
        /// Limits preset: iso_pen (α 10 µL, β 5 %, p 0.975) or mesotherapy
        /// (α 2 µL, β 15 %, p 0.95); the options below override it.
        #[arg(long, default_value = "iso_pen", value_parser = ["iso_pen", "mesotherapy"])]
        preset: String,
        /// Absolute limit α, µL.
        #[arg(long)]
        alpha_ul: Option<f64>,
        /// Relative limit β.
        #[arg(long)]
        beta: Option<f64>,
        /// Coverage p.
        #[arg(long)]
        coverage: Option<f64>,
        /// Confidence γ.
        #[arg(long)]
        confidence: Option<f64>,
    },
    /// Join the shards of a sweep (sweep.shard-*-of-*.csv, and raw.shard-*
    /// when present) into sweep.csv (and raw.csv), byte for byte what an
    /// unsharded run writes, and draw the sweep's plots.
    Merge {
        /// Folders holding the shards.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Output folder [default: the first folder].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Write the scenario-parameter reference (docs/parameters.md), generated from the parameter declarations
    Docs {
        /// Output file.
        #[arg(long, value_name = "FILE", default_value = "docs/parameters.md")]
        out: PathBuf,
        /// Write nothing; exit 1 when the file differs from what would be written.
        #[arg(long)]
        check: bool,
    },
    /// Validate a scenario (or a comparison study) and print its resolved parameters as JSON in SI (pressures in Pa absolute, lengths in m, times in s, volumes in m³, temperatures in K); `--params` prints each key's human value next to its SI value instead.
    Check {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// Override any scenario key by its dotted path (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Print every scenario key in its human unit next to its SI value as simulated (`3 bar(g)  401325 Pa (absolute)`), with where its value comes from (the file's line, --set, or the default), instead of the SI JSON.
        #[arg(long)]
        params: bool,
    },
    /// Write the scenario's plant as a co-simulation FMU (docs/fmu.md).
    Fmu(FmuArgs),
}

/// `mesobench fmu`.
#[derive(clap::Args)]
pub struct FmuArgs {
    /// Scenario file (TOML) whose plant the FMU holds; without it the embedded default.
    pub scenario: Option<PathBuf>,
    /// FMI version: 2 (FMI 2.0) or 3 (FMI 3.0).
    #[arg(long, value_name = "2|3", value_parser = clap::builder::RangedU64ValueParser::<u8>::new().range(2..=3))]
    pub fmi: u8,
    /// The FMU file to write.
    #[arg(long, value_name = "FILE.fmu")]
    pub out: PathBuf,
    /// The FMU binary (libmesobench_fmu.so) [default: next to this executable].
    #[arg(long, value_name = "PATH")]
    pub lib: Option<PathBuf>,
    /// Override any plant key by its dotted path (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// `--shard I/N`, or Slurm's array variables when set.
pub fn shard_arg(arg: Option<String>) -> anyhow::Result<Option<(u64, u64)>> {
    let (text, origin) = match arg {
        Some(a) if a.trim_start().starts_with('/') => {
            let index = std::env::var("JOB_COMPLETION_INDEX").or_else(|_| std::env::var("SLURM_ARRAY_TASK_ID")).map_err(|_| {
                anyhow::anyhow!("--shard {a}: the index comes from JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID, and neither is set")
            })?;
            (format!("{}{}", index.trim(), a.trim()), "--shard (index from the environment)".to_string())
        }
        Some(a) => (a, "--shard".to_string()),
        None => match (std::env::var("SLURM_ARRAY_TASK_ID"), std::env::var("SLURM_ARRAY_TASK_COUNT")) {
            (Ok(i), Ok(n)) => (format!("{i}/{n}"), "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT".to_string()),
            (Ok(i), Err(_)) => anyhow::bail!(
                "SLURM_ARRAY_TASK_ID = {i:?} is set but SLURM_ARRAY_TASK_COUNT is not, so the shard count is unknown \
                 (every task would run the whole sweep); pass --shard I/N or --shard /N"
            ),
            (Err(_), Ok(n)) => anyhow::bail!(
                "SLURM_ARRAY_TASK_COUNT = {n:?} is set but SLURM_ARRAY_TASK_ID is not, so the shard index is unknown; \
                 pass --shard I/N"
            ),
            _ => return Ok(None),
        },
    };
    let parsed =
        text.split_once('/').and_then(|(i, n)| Some((i.trim().parse::<u64>().ok()?, n.trim().parse::<u64>().ok()?)));
    match parsed {
        Some((i, n)) if n >= 1 && i < n => Ok(Some((i, n))),
        _ => anyhow::bail!("{origin} = {text:?} is not allowed: I/N with whole numbers, N ≥ 1 and 0 ≤ I < N"),
    }
}

/// The interruption-test hook `MESOBENCH_FAULT_AFTER=N`: abort the sweep at
/// its N-th write, sync, truncation, removal or rename (tests only).
pub fn fault_after() -> anyhow::Result<Option<u64>> {
    match std::env::var("MESOBENCH_FAULT_AFTER") {
        Err(_) => Ok(None),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => anyhow::bail!(
                "MESOBENCH_FAULT_AFTER = {v:?} is not allowed: a whole number ≥ 1 (a test hook; unset it)"
            ),
        },
    }
}

/// `--where COL=VALUE`.
pub fn where_arg(s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((c, v)) if !c.trim().is_empty() => Ok((c.trim().to_string(), v.trim().to_string())),
        _ => anyhow::bail!("--where {s:?} is not allowed: COL=VALUE, e.g. --where arm=gun"),
    }
}

/// The coverage and confidence of a tolerance interval for `n` doses.
pub fn check_probabilities(n: usize, coverage: f64, confidence: f64) -> anyhow::Result<()> {
    if n < 2 {
        anyhow::bail!("n = {n} is not allowed: at least 2 doses");
    }
    for (name, v) in [("--coverage", coverage), ("--confidence", confidence)] {
        if !(v > 0.0 && v < 1.0) {
            anyhow::bail!("{name} = {v} is not allowed: a probability strictly between 0 and 1");
        }
    }
    Ok(())
}

/// `--threads`: 1 to 1024.
pub fn threads_arg() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024)
}

/// The printed summary of a scenario's run (its warnings on stderr).
pub fn print_summary(sc: &Scenario, run: &mesobench::Run, seconds: f64, dir: &Path, files: usize) {
    let s = mesobench::report::summary(sc, run);
    println!("mesobench {} — scenario '{}'", mesobench::VERSION, sc.name);
    if !sc.description.is_empty() {
        println!("  {}", sc.description);
    }
    println!(
        "  shots {}   dose {:.3} µL ± {:.3} (CV {:.2} %)   range {:.3} – {:.3} µL",
        s.shots, s.dose_mean_ul, s.dose_sd_ul, s.dose_cv_pct, s.dose_min_ul, s.dose_max_ul
    );
    if s.needle_dose_mean_ul.len() > 1 {
        let per: Vec<String> = s.needle_dose_mean_ul.iter().map(|d| format!("{d:.3}")).collect();
        println!("  per needle (µL): {}", per.join("  "));
    }
    println!(
        "  reflux {:.3} µL/shot   peak tissue {:.1} kPa   peak syringe {:.1} kPa   peak flow {:.0} µL/s",
        s.leak_mean_ul, s.peak_tissue_pressure_kpa, s.peak_syringe_pressure_kpa, s.peak_flow_ul_s
    );
    println!(
        "  t90 {:.2} ms   effective valve-open {:.2} ms   max Re {:.0}",
        s.t90_mean_ms, s.valve_open_effective_mean_ms, s.max_reynolds
    );
    println!(
        "  {} steps of {:.2} µs in {:.3} s ({:.0} µs per shot)",
        run.result.steps,
        run.result.effective_step * 1e6,
        seconds,
        seconds * 1e6 / s.shots.max(1) as f64
    );
    println!("  wrote {} files to {}", files, dir.display());
    // Warnings on stderr; an early stop is said once, as the exit reason.
    let stop = s.stopped.as_deref().unwrap_or("\u{0}");
    for w in s.warnings.iter().filter(|w| !w.contains(stop)) {
        eprintln!("warning: {w}");
    }
}

/// The printed summary of a sweep (or shard).
pub fn print_sweep(
    name: &str,
    replicates: usize,
    summary: &mesobench::study::sweep::SweepSummary,
    seconds: f64,
    threads: usize,
    shard: Option<(u64, u64)>,
    dir: &Path,
) {
    println!(
        "mesobench {} — sweep '{}': {} × {} = {}, {}",
        mesobench::VERSION,
        name,
        plural(summary.points, "point"),
        plural(replicates as u64, "replicate"),
        plural(summary.sessions, "session"),
        plural(summary.shots, "shot"),
    );
    if summary.computed_points == 0 {
        println!("  already complete: nothing was computed (resumed from {})", dir.display());
    } else {
        let resumed = summary.points - summary.computed_points;
        println!(
            "  computed {} ({}) in {:.2} s on {} ({:.0} shots/s){}",
            plural(summary.computed_points, "point"),
            plural(summary.computed_shots, "shot"),
            seconds,
            plural(threads as u64, "thread"),
            summary.computed_shots as f64 / seconds,
            if resumed > 0 { format!("; {} resumed from disk", plural(resumed, "point")) } else { String::new() }
        );
    }
    let (table, manifest) = mesobench::study::sweep::file_names(shard);
    match shard {
        None => println!("  wrote {table}, {manifest} and plots to {}", dir.display()),
        Some(_) => {
            println!("  wrote {table} and {manifest} to {} (join the shards with `mesobench merge`)", dir.display())
        }
    }
}

/// A progress bar on stderr with `template` over `len` steps, when stderr
/// is a terminal and the command is not quiet.
pub fn progress_bar(quiet: bool, len: u64, template: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    (!quiet && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(len);
        b.set_style(indicatif::ProgressStyle::with_template(template).expect("valid template"));
        b
    })
}

/// `n` and a noun, plural unless n is 1: "1 thread", "2 threads".
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `check --params`: one aligned line per key: key, value with its unit, origin.
pub fn params_table(entries: &[mesobench::scenario::registry::Entry]) -> String {
    let shown: Vec<String> = entries
        .iter()
        .map(|e| if e.unit.is_empty() { e.value.clone() } else { format!("{} {}", e.value, e.unit) })
        .collect();
    let wk = entries.iter().map(|e| e.key.chars().count()).max().unwrap_or(0);
    // Long texts (a description) run past the column instead of widening it.
    let wv = shown.iter().map(|v| v.chars().count()).filter(|n| *n <= 32).max().unwrap_or(0);
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
    let ws = entries.iter().map(|e| e.si.chars().count()).max().unwrap_or(0);
    let mut out = format!("{}  {}  {}  from\n", pad("key", wk), pad("value", wv), pad("SI (as simulated)", ws));
    for (e, v) in entries.iter().zip(&shown) {
        out.push_str(&format!("{}  {}  {}  {}\n", pad(&e.key, wk), pad(v, wv), pad(&e.si, ws), e.origin));
    }
    out
}

/// The printed summary of a tuning: the start and the tuned candidate.
pub fn print_tune(
    name: &str,
    spec: &mesobench::scenario::TuneSpec,
    outcome: &mesobench::study::tune::Outcome,
    seconds: f64,
    threads: usize,
    files: usize,
    dir: &Path,
) {
    let (s, b) = (outcome.start(), outcome.best());
    println!(
        "mesobench {} — tune '{}': {} × {} in {:.1} s on {} ({})",
        mesobench::VERSION,
        name,
        plural(outcome.history.len() as u64, "candidate"),
        plural(spec.replicates as u64, "replicate"),
        seconds,
        plural(threads as u64, "thread"),
        spec.optimizer
    );
    let line = |label: &str, e: &mesobench::study::tune::Evaluation| {
        let values: Vec<String> =
            spec.parameters.iter().zip(&e.values).map(|((k, _, _), v)| format!("{k} = {v:.4}")).collect();
        match &e.metrics {
            Some(m) => println!(
                "  {label:<6} objective {:.5}{}  dose {:.3} µL  CV {:.3} %  bias {:+.2} %  peak tissue {:.1} kPa  {:.2} shots/s\n         {}",
                e.objective,
                if e.feasible { "" } else { " (infeasible)" },
                m.mean_ul,
                m.cv_pct,
                m.bias_pct,
                m.peak_tissue_kpa,
                m.shots_per_s,
                values.join(", ")
            ),
            None => println!("  {label:<6} failed: {}", e.error.as_deref().unwrap_or("")),
        }
    };
    line("start", s);
    line("tuned", b);
    println!("  wrote {} files to {} (tune_best.toml, tune_best.h)", files, dir.display());
}

/// The printed summary of a comparison study: one line per arm and target.
pub fn print_compare(
    study: &mesobench::study::compare::Study,
    outcome: &mesobench::study::compare::Outcome,
    seconds: f64,
    threads: usize,
    files: usize,
    dir: &Path,
) {
    println!(
        "mesobench {} — study '{}': {} × {} × {} × {} = {} in {:.2} s on {}",
        mesobench::VERSION,
        study.name,
        plural(study.arms.len() as u64, "arm"),
        plural(study.targets.len() as u64, "target"),
        plural(study.units as u64, "unit"),
        plural(study.shots as u64, "shot"),
        plural(outcome.shots.len() as u64, "shot"),
        seconds,
        plural(threads as u64, "thread")
    );
    println!(
        "  {:<26} {:>9} {:>10} {:>8} {:>8} {:>8} {:>7}  verdict ({}: α {} µL, β {} %)",
        "arm",
        "target µL",
        "mean µL",
        "CV %",
        "bias %",
        "within",
        "between",
        study.preset,
        study.limits.alpha,
        100.0 * study.limits.beta
    );
    for s in &outcome.arms {
        println!(
            "  {:<26} {:>9.1} {:>10.3} {:>8.2} {:>+8.1} {:>8.3} {:>7.3}  {}",
            s.arm,
            s.target_ul,
            s.mean_ul,
            100.0 * s.cv,
            100.0 * s.bias,
            s.within_sd_ul,
            s.between_sd_ul,
            if s.acceptance.pass { "pass" } else { "FAIL" }
        );
    }
    println!("  wrote {} files to {} (open report.html)", files, dir.display());
}

/// A spinner with a stage message on a terminal (none otherwise).
pub fn spinner(quiet: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    (!quiet && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg}  {elapsed}").expect("valid template"));
        b.enable_steady_tick(std::time::Duration::from_millis(200));
        b
    })
}

/// `fit`: the estimates with their intervals, warnings and where the outputs went.
pub fn print_fit(
    spec: &mesobench::study::fit::FitFile,
    out: &mesobench::study::fit::lm::Outcome,
    seconds: f64,
    threads: usize,
    files: usize,
    dir: &std::path::Path,
) {
    use mesobench::text::g6;
    let n_ex = spec.experiments.len();
    println!(
        "fit {}: {} parameter(s) from {} experiment(s), {} residuals, {:.1} s on {}",
        spec.path,
        out.estimates.len(),
        n_ex,
        out.residuals,
        seconds,
        plural(threads as u64, "thread")
    );
    println!(
        "  {} ({}), weighted SSR {} (σ² = {})",
        if out.converged { "converged" } else { "NOT converged" },
        out.reason,
        g6(out.cost),
        g6(out.sigma2)
    );
    let width = out.estimates.iter().map(|e| e.key.len()).max().unwrap_or(0);
    for e in &out.estimates {
        let ci = match e.ci95 {
            Some([a, b]) => format!("95 % CI [{}, {}]", g6(a), g6(b)),
            None => "not identifiable".into(),
        };
        println!("  {:width$}  {} {}  {ci}", e.key, g6(e.estimate), e.unit);
    }
    for w in &out.warnings {
        println!("  warning: {w}");
    }
    println!("wrote {files} files to {}", dir.display());
}

/// `validate`: each tolerance's verdict.
pub fn print_validation(
    spec: &mesobench::study::fit::FitFile,
    v: &mesobench::study::fit::validate::Validation,
    files: usize,
    dir: &std::path::Path,
) {
    use mesobench::text::g6;
    println!("validate {}: {} experiment(s)", spec.path, spec.experiments.len());
    for e in &v.experiments {
        for c in &e.channels {
            println!(
                "  {} {}: RMS {} {u}, peak error {} {u} (noise sd {} {u})",
                e.name,
                c.signal,
                g6(c.rms),
                g6(c.peak_error),
                g6(c.sd),
                u = c.unit
            );
        }
    }
    for t in &v.verdicts {
        let worst = t.worst.map_or("no data".to_string(), g6);
        println!(
            "  {} {}: worst {worst}{} (limit {})",
            if t.pass { "pass" } else { "FAIL" },
            t.key,
            t.experiment.as_ref().map_or(String::new(), |e| format!(" in {e}")),
            g6(t.limit)
        );
    }
    println!(
        "{}; wrote {files} files to {}",
        if v.pass { "within tolerance" } else { "OUTSIDE tolerance" },
        dir.display()
    );
}
