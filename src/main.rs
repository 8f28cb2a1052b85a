//! The `mesobench` command line: parses arguments, calls the library, prints
//! a short summary, and maps failures to exit codes (0 ok, 2 any error).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};

use mesobench::scenario::{self, Scenario, Source};

#[derive(Parser)]
#[command(
    name = "mesobench",
    version,
    about = "Simulator and virtual test bench for pneumatic mesotherapy injection guns"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What every study command takes.
#[derive(clap::Args)]
struct StudyArgs {
    /// Scenario file (TOML) holding the table the command reads: [sweep]
    /// for sweep, [uncertain] for sensitivity, [tune] for tune.
    scenario: PathBuf,
    /// Output folder [default: output/<scenario name>/].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Worker threads, 1 to 1024 [default: all cores].
    #[arg(long, value_name = "N", value_parser = threads_arg())]
    threads: Option<usize>,
    /// Override any scenario key by its dotted path (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl StudyArgs {
    /// The scenario parsed once (for variants), its resolved base, the output folder and the thread count.
    fn load(&self) -> anyhow::Result<(Source, scenario::Prepared, Scenario, PathBuf, usize)> {
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
enum Command {
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
    /// writes sensitivity.csv, sensitivity.json and a bar chart.
    Sensitivity {
        #[command(flatten)]
        study: StudyArgs,
        /// No summary.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Search the firmware settings named in the scenario's [tune] table for
    /// the most consistent target dose within its constraints (particle
    /// swarm or Nelder–Mead, common random numbers); writes tune_summary.json,
    /// tune_best.toml, tune_best.h, the history, the landscape and plots.
    Tune {
        #[command(flatten)]
        study: StudyArgs,
        /// No progress bar or summary.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Manual injection against gun injection: run a study's arms × targets
    /// × operators or devices × shots and write arms.csv, summary.json,
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
    /// Validate a scenario and print the resolved SI parameters.
    Check {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// Override any scenario key by its dotted path (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Print every scenario key in its human unit, with where its value comes from (the file's line, --set, or the default), instead of the SI JSON.
        #[arg(long)]
        params: bool,
    },
}

fn main() -> ExitCode {
    // `mesobench __plugin-host …`: this process hosts one firmware plugin for
    // a simulation in another process (see mesobench::control::host).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == mesobench::control::host::HOST_COMMAND) {
        mesobench::control::host::host_main(&args[2..]);
    }
    if let Ok(exe) = std::env::current_exe() {
        mesobench::control::host::set_host_executable(&exe);
    }
    // A panic is a bug: report it in one line, without a backtrace, exit 2.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("mesobench: internal error: {info}");
    }));
    let cli = Cli::parse();
    let outcome = std::panic::catch_unwind(|| run(cli));
    mesobench::control::host::shut_down_idle_hosts();
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) if e.downcast_ref::<AcceptanceFailed>().is_some() => ExitCode::from(1),
        Ok(Err(e)) if e.downcast_ref::<StoppedEarly>().is_some() => {
            eprintln!("mesobench: {e}");
            ExitCode::from(3)
        }
        Ok(Err(e)) => {
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {}", message(&e));
            ExitCode::from(2)
        }
        Err(_) => ExitCode::from(2),
    }
}

fn load(path: Option<&Path>, set: &[String]) -> anyhow::Result<(Scenario, String)> {
    let (source, fallback) = match path {
        Some(p) => (Source::from_path(p)?, p.file_stem().and_then(|s| s.to_str()).unwrap_or("scenario").to_string()),
        None => (Source::default_scenario(), scenario::DEFAULT_NAME.to_string()),
    };
    let sc = scenario::load(&source, set, &fallback)?;
    Ok((sc, source.name))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Check { scenario, set, params } => {
            let text = mesobench::scenario::read_capped(&scenario, "scenario").unwrap_or_default();
            if mesobench::scenario::is_study_text(&text) {
                // A comparison study: validate it as `compare` would.
                if !set.is_empty() {
                    anyhow::bail!("--set applies to scenarios; {} is a comparison study", scenario.display());
                }
                let study = mesobench::study::compare::load(&scenario)?;
                eprintln!(
                    "{}: valid comparison study ({} × {})",
                    scenario.display(),
                    plural(study.arms.len() as u64, "arm"),
                    plural(study.targets.len() as u64, "target")
                );
                return Ok(());
            }
            let (sc, _) = load(Some(&scenario), &set)?;
            // The JSON alone on stdout, so that it can be piped; the verdict on stderr.
            eprintln!("{}: valid", scenario.display());
            if params {
                let source = Source::from_path(&scenario)?;
                let prep = scenario::Prepared::new(&source, "scenario")?;
                print!("{}", params_table(&prep.entries(&set)?));
                return Ok(());
            }
            println!("{}", serde_json::to_string_pretty(&sc)?);
            Ok(())
        }
        Command::Sweep { study, shard, resume, raw, quiet, slurm_script } => {
            if let Some(n) = slurm_script {
                return write_slurm_script(&study, n, raw);
            }
            let shard = shard_arg(shard)?;
            let fault_after = fault_after()?;
            let opts = mesobench::study::sweep::RunOptions { shard, resume, raw, fault_after };
            sweep(&study, opts, quiet)
        }
        Command::Sensitivity { study, quiet } => {
            let (_, prep, sc, dir, threads) = study.load()?;
            let set = &study.set;
            let started = Instant::now();
            let a = with_outputs(&dir, "sensitivity", || {
                let a =
                    mesobench::study::sensitivity::dose_sensitivity(&prep, set, threads).map_err(anyhow::Error::msg)?;
                mesobench::report::write_sensitivity(&dir, &sc, &a)?;
                Ok(a)
            })?;
            if !quiet {
                println!(
                    "mesobench {} — sensitivity of '{}': {} evaluations in {:.2} s; dose {:.3} µL, SD {:.3} µL",
                    mesobench::VERSION,
                    sc.name,
                    a.evaluations,
                    started.elapsed().as_secs_f64(),
                    a.mean,
                    a.variance.sqrt()
                );
                for i in &a.indices {
                    println!(
                        "  {:<34} first {:6.3} [{:6.3}, {:6.3}]   total {:6.3} [{:6.3}, {:6.3}]",
                        i.name, i.first, i.first_ci.0, i.first_ci.1, i.total, i.total_ci.0, i.total_ci.1
                    );
                }
                println!("  wrote sensitivity.csv, sensitivity.json and plots to {}", dir.display());
            }
            Ok(())
        }
        Command::ToleranceK { n, coverage, confidence, one_sided } => {
            check_probabilities(n, coverage, confidence)?;
            let k = if one_sided {
                mesobench::stats::tolerance::k_one_sided(n, coverage, confidence)
            } else {
                mesobench::stats::tolerance::k_two_sided(n, coverage, confidence)
            };
            println!("{k:.4}");
            Ok(())
        }
        Command::Accept { doses, target_ul, filters, preset, alpha_ul, beta, coverage, confidence } => {
            let base = mesobench::stats::tolerance::Limits::preset(&preset).expect("clap checks the preset");
            let (alpha_ul, beta) = (alpha_ul.unwrap_or(base.alpha), beta.unwrap_or(base.beta));
            let (coverage, confidence) = (coverage.unwrap_or(base.coverage), confidence.unwrap_or(base.confidence));
            check_probabilities(2, coverage, confidence)?;
            let volume = format!("a volume in µL, greater than 0 and at most {}", mesobench::stats::doses::MAX_UL);
            for (name, v, max, allowed) in [
                ("--target-ul", target_ul, mesobench::stats::doses::MAX_UL, volume.as_str()),
                ("--alpha-ul", alpha_ul, mesobench::stats::doses::MAX_UL, volume.as_str()),
                ("--beta", beta, 1.0, "a fraction of the target, greater than 0 and at most 1"),
            ] {
                if !(v.is_finite() && v > 0.0 && v <= max) {
                    anyhow::bail!("{name} = {v} is not allowed: {allowed}");
                }
            }
            let filters = filters.iter().map(|f| where_arg(f)).collect::<anyhow::Result<Vec<_>>>()?;
            let values = mesobench::stats::doses::read(&doses, &filters)?;
            let limits = mesobench::stats::tolerance::Limits { alpha: alpha_ul, beta, coverage, confidence };
            let v = mesobench::stats::tolerance::accept(&values, target_ul, &limits);
            println!(
                "n {}  mean {:.4} µL  SD {:.4} µL  k {:.4}  interval [{:.4}, {:.4}] µL  limits [{:.4}, {:.4}] µL  {}",
                v.n,
                v.mean,
                v.sd,
                v.k,
                v.lower,
                v.upper,
                target_ul - v.limit,
                target_ul + v.limit,
                if v.pass { "PASS" } else { "FAIL" }
            );
            if v.pass {
                Ok(())
            } else {
                Err(AcceptanceFailed.into())
            }
        }
        Command::Merge { dirs, out } => {
            let out = out.unwrap_or_else(|| dirs[0].clone());
            let s = with_outputs(&out, "merge", || {
                let m = mesobench::study::sweep::merge(&dirs, &out)?;
                // The plots an unsharded sweep draws.
                match &m.plots {
                    Ok(p) => {
                        mesobench::report::write_sweep_plots(&out, &p.scenario, &p.points)?;
                        if let (Some(spec), false) = (&p.scenario.sweep, p.points.is_empty()) {
                            let traces =
                                mesobench::study::sweep::point_traces(&p.prep, &p.overrides, spec.trace_point, 20)?;
                            mesobench::report::write_sweep_traces(&out, &p.scenario, spec.trace_point, &traces)?;
                        }
                    }
                    Err(e) => eprintln!("warning: no plots drawn: {e}"),
                }
                Ok((m.summary, m.raw))
            })?;
            let (s, raw) = s;
            println!(
                "merged {} points ({} sessions, {} shots) into {}{}",
                s.points,
                s.sessions,
                s.shots,
                out.join("sweep.csv").display(),
                if raw { " and raw.csv" } else { "" }
            );
            Ok(())
        }
        Command::Compare { study, out, threads, quiet } => compare(&study, out, threads, quiet),
        Command::Docs { out, check } => docs(&out, check),
        Command::Tune { study, quiet } => tune(&study, quiet),
        Command::Run { scenario, out, set, quiet } => {
            let (sc, source) = load(scenario.as_deref(), &set)?;
            let dir = out.unwrap_or_else(|| Path::new("output").join(&sc.name));
            let started = Instant::now();
            let (run, elapsed, files) = with_outputs(&dir, "run", || {
                // trace.csv is streamed to a temporary file as the run samples.
                let mut trace = mesobench::report::TraceCsv::create(&dir)?;
                let run =
                    mesobench::simulate_traced(&sc, &mut trace).with_context(|| format!("scenario {}", sc.name))?;
                let elapsed = started.elapsed();
                let files = mesobench::report::write_run(&dir, &sc, &source, &set, &run, trace)?;
                Ok((run, elapsed, files))
            })?;
            if !quiet {
                print_summary(&sc, &run, elapsed.as_secs_f64(), &dir, files.len());
            }
            match run.result.stopped {
                Some(why) => Err(StoppedEarly(why).into()),
                None => Ok(()),
            }
        }
    }
}

/// The output folder of a command, locked while this lives. Claiming it
/// removes the outputs an earlier run of the command left there; dropping it
/// before [`Outputs::finished`] removes them again, so a failed command
/// leaves none of its outputs looking valid.
struct Outputs {
    _lock: mesobench::report::OutputLock,
    dir: PathBuf,
    files: Vec<String>,
    finished: bool,
}

impl Outputs {
    fn claim(dir: &Path, command: &str) -> anyhow::Result<Outputs> {
        let lock = mesobench::report::lock_output(dir, None)?;
        let files = mesobench::report::command_outputs(command, None);
        mesobench::report::remove_outputs(dir, &files)?;
        Ok(Outputs { _lock: lock, dir: dir.to_owned(), files, finished: false })
    }
    fn finished(mut self) {
        self.finished = true;
    }
}

impl Drop for Outputs {
    fn drop(&mut self) {
        if !self.finished {
            let _ = mesobench::report::remove_outputs(&self.dir, &self.files);
        }
    }
}

/// Run `f` with the output folder `dir` of `command` claimed (see [`Outputs`]).
fn with_outputs<T>(dir: &Path, command: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let outputs = Outputs::claim(dir, command)?;
    let r = f()?;
    outputs.finished();
    Ok(r)
}

/// The interruption-test hook `MESOBENCH_FAULT_AFTER=N`: abort the sweep at
/// its N-th write, sync, truncation, removal or rename (tests only).
fn fault_after() -> anyhow::Result<Option<u64>> {
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

/// The error and its causes, each cause left out when the message before it
/// already ends with it (errors that print their own cause).
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.is_empty() {
            out = text;
        } else if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

fn tune(study: &StudyArgs, quiet: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let (source, prep, sc, dir, threads) = study.load()?;
    let spec = sc
        .tune
        .clone()
        .ok_or_else(|| anyhow::anyhow!("{}: the scenario has no [tune] table", study.scenario.display()))?;
    let outputs = Outputs::claim(&dir, "tune")?;
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(mesobench::study::tune::planned_evaluations(&spec));
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {bar:40} {pos}/~{len} candidates  {elapsed} elapsed")
                .expect("valid template"),
        );
        b
    });
    let progress = |done: u64| {
        if let Some(b) = &bar {
            b.set_position(done);
        }
    };
    let started = Instant::now();
    let outcome = mesobench::study::tune::run(&prep, &sc, &study.set, threads, &progress)?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let seconds = started.elapsed().as_secs_f64();
    let files = mesobench::report::tune::write_tune(&dir, &sc, &source.name, &study.set, &outcome)?;
    outputs.finished();
    if !quiet {
        let (s, b) = (outcome.start(), outcome.best());
        println!(
            "mesobench {} — tune '{}': {} × {} in {:.1} s on {} ({})",
            mesobench::VERSION,
            sc.name,
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
        println!("  wrote {} files to {} (tune_best.toml, tune_best.h)", files.len(), dir.display());
    }
    Ok(())
}

fn compare(path: &Path, out: Option<PathBuf>, threads: Option<usize>, quiet: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let study = mesobench::study::compare::load(path)?;
    let dir = out.unwrap_or_else(|| Path::new("output").join(&study.name));
    let outputs = Outputs::claim(&dir, "compare")?;
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(study.tasks());
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {bar:40} {pos}/{len} operator/device sessions  {elapsed} elapsed, eta {eta}",
            )
            .expect("valid template"),
        );
        b
    });
    let progress = |done: u64| {
        if let Some(b) = &bar {
            b.set_position(done);
        }
    };
    let started = Instant::now();
    let outcome = mesobench::study::compare::run(&study, threads, &progress)?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let seconds = started.elapsed().as_secs_f64();
    let files = mesobench::report::compare::write_compare(&dir, &study, &outcome)?;
    outputs.finished();
    if !quiet {
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
        println!("  wrote {} files to {} (open report.html)", files.len(), dir.display());
    }
    Ok(())
}

fn print_summary(sc: &Scenario, run: &mesobench::Run, seconds: f64, dir: &Path, files: usize) {
    let s = mesobench::report::summary(sc, run);
    println!("mesobench {} — scenario '{}'", mesobench::VERSION, sc.name);
    if !sc.description.is_empty() {
        println!("  {}", sc.description);
    }
    println!(
        "  shots {}   dose {:.3} µL ± {:.3} (CV {:.2} %)   range {:.3} – {:.3} µL",
        s.shots,
        s.dose_mean_ul,
        s.dose_sd_ul,
        100.0 * s.dose_cv,
        s.dose_min_ul,
        s.dose_max_ul
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

/// `run` finished and wrote its outputs, but the session stopped before
/// its last shot (the syringe emptied): exit code 3.
#[derive(Debug)]
struct StoppedEarly(String);

impl std::fmt::Display for StoppedEarly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the session stopped early: {}; the outputs hold the shots delivered until then", self.0)
    }
}

impl std::error::Error for StoppedEarly {}

/// `--shard I/N`, or Slurm's array variables when set.
fn shard_arg(arg: Option<String>) -> anyhow::Result<Option<(u64, u64)>> {
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

fn sweep(study: &StudyArgs, opts: mesobench::study::sweep::RunOptions, quiet: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let shard = opts.shard;
    let (source, prep, sc, dir, threads) = study.load()?;
    let set = &study.set;
    let path = &study.scenario;
    let spec =
        sc.sweep.clone().ok_or_else(|| anyhow::anyhow!("{}: the scenario has no [sweep] table", path.display()))?;
    let _lock = mesobench::report::lock_output(&dir, shard)?;
    if !opts.resume {
        mesobench::report::remove_outputs(&dir, &mesobench::report::command_outputs("sweep", shard))?;
    }
    let bar = if !quiet && std::io::stderr().is_terminal() {
        let total = match shard {
            Some((i, n)) => mesobench::study::sweep::shard_range(spec.points(), i, n).count() as u64,
            None => spec.points(),
        };
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {bar:40} {pos}/{len} points  {elapsed} elapsed, eta {eta}",
            )
            .expect("valid template"),
        );
        Some(b)
    } else {
        None
    };
    let started = Instant::now();
    let keep = spec.points() <= 100_000;
    let progress = |done: u64| {
        if let Some(b) = &bar {
            // Points finish on several threads: never step back.
            if done > b.position() {
                b.set_position(done);
            }
        }
    };
    let (summary, points) =
        mesobench::study::sweep::run(&prep, set, &dir, threads, keep && shard.is_none(), &progress, opts)?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let seconds = started.elapsed().as_secs_f64();
    mesobench::report::write_sweep(&dir, &sc, &source, set, &summary, &points, shard)?;
    if shard.is_none() && !points.is_empty() {
        let traces = mesobench::study::sweep::point_traces(&prep, set, spec.trace_point, 20)?;
        mesobench::report::write_sweep_traces(&dir, &sc, spec.trace_point, &traces)?;
    }
    if !quiet {
        println!(
            "mesobench {} — sweep '{}': {} × {} = {}, {}",
            mesobench::VERSION,
            sc.name,
            plural(summary.points, "point"),
            plural(spec.replicates as u64, "replicate"),
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
    Ok(())
}

/// `n` and a noun, plural unless n is 1: "1 thread", "2 threads".
fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn write_slurm_script(study: &StudyArgs, n: u64, raw: bool) -> anyhow::Result<()> {
    let (_, _, sc, dir, _) = study.load()?;
    let path = &study.scenario;
    let spec =
        sc.sweep.clone().ok_or_else(|| anyhow::anyhow!("{}: the scenario has no [sweep] table", path.display()))?;
    if n == 0 || n > spec.points() {
        anyhow::bail!("--slurm-script {n} is not allowed: from 1 to the sweep's {} points", spec.points());
    }
    let cwd = std::env::current_dir()?;
    let abs = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { cwd.join(p) };
    let dir = abs(&dir);
    let _lock = mesobench::report::lock_output(&dir, None)?;
    let job = mesobench::study::slurm::Job {
        exe: std::env::current_exe()?,
        scenario: abs(path),
        dir: dir.clone(),
        threads: study.threads.unwrap_or(1).max(1),
        raw,
        set: study.set.clone(),
        shards: n,
    };
    let files = mesobench::study::slurm::scripts(&job, &sc, spec.points());
    for (file, text) in &files {
        mesobench::report::write_atomic(&dir.join(file), text.as_bytes())?;
    }
    let p = dir.join(mesobench::study::slurm::SUBMIT);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    }
    println!("wrote {} (submit it with: bash {})", p.display(), p.display());
    Ok(())
}

/// "Ran, but the acceptance check failed": exit code 1.
#[derive(Debug)]
struct AcceptanceFailed;

impl std::fmt::Display for AcceptanceFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "dose accuracy not accepted")
    }
}

impl std::error::Error for AcceptanceFailed {}

fn check_probabilities(n: usize, coverage: f64, confidence: f64) -> anyhow::Result<()> {
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

fn threads_arg() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024)
}

/// `--where COL=VALUE`.
fn where_arg(s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((c, v)) if !c.trim().is_empty() => Ok((c.trim().to_string(), v.trim().to_string())),
        _ => anyhow::bail!("--where {s:?} is not allowed: COL=VALUE, e.g. --where arm=gun"),
    }
}

/// `mesobench docs`: write or check the generated parameter reference.
fn docs(out: &Path, check: bool) -> anyhow::Result<()> {
    let text = mesobench::scenario::registry::markdown();
    if check {
        let current = std::fs::read_to_string(out).unwrap_or_default();
        if current != text {
            eprintln!("{} is stale: run `mesobench docs --out {}`", out.display(), out.display());
            return Err(AcceptanceFailed.into());
        }
        eprintln!("{} is up to date", out.display());
        return Ok(());
    }
    mesobench::report::write_atomic(out, text.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// `check --params`: one aligned line per key: key, value with its unit, origin.
fn params_table(entries: &[mesobench::scenario::registry::Entry]) -> String {
    let shown: Vec<String> = entries
        .iter()
        .map(|e| if e.unit.is_empty() { e.value.clone() } else { format!("{} {}", e.value, e.unit) })
        .collect();
    let wk = entries.iter().map(|e| e.key.chars().count()).max().unwrap_or(0);
    // Long texts (a description) run past the column instead of widening it.
    let wv = shown.iter().map(|v| v.chars().count()).filter(|n| *n <= 32).max().unwrap_or(0);
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
    let mut out = String::new();
    for (e, v) in entries.iter().zip(&shown) {
        out.push_str(&format!("{}  {}  {}\n", pad(&e.key, wk), pad(v, wv), e.origin));
    }
    out
}
