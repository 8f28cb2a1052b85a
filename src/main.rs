//! The `mesobench` command line: parses arguments ([`cli`]), runs one
//! function per command on the library, prints a short summary, and maps
//! failures to exit codes (0 ok, 1 not accepted, 2 any error, 3 stopped early).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;

use mesobench::scenario::{self, Scenario, Source};

use cli::{Cli, Command, StudyArgs};

mod cli;

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
        Command::Check { scenario, set, params } => check(&scenario, &set, params),
        Command::Sweep { study, shard, resume, raw, quiet, slurm_script } => {
            if let Some(n) = slurm_script {
                return write_slurm_script(&study, n, raw);
            }
            let shard = cli::shard_arg(shard)?;
            let fault_after = cli::fault_after()?;
            let opts = mesobench::study::sweep::RunOptions { shard, resume, raw, fault_after };
            sweep(&study, opts, quiet)
        }
        Command::Sensitivity { study, quiet } => sensitivity(&study, quiet),
        Command::ToleranceK { n, coverage, confidence, one_sided } => tolerance_k(n, coverage, confidence, one_sided),
        Command::Accept { doses, target_ul, filters, preset, alpha_ul, beta, coverage, confidence } => {
            let base = mesobench::stats::tolerance::Limits::preset(&preset).expect("clap checks the preset");
            let limits = mesobench::stats::tolerance::Limits {
                alpha: alpha_ul.unwrap_or(base.alpha),
                beta: beta.unwrap_or(base.beta),
                coverage: coverage.unwrap_or(base.coverage),
                confidence: confidence.unwrap_or(base.confidence),
            };
            accept(&doses, target_ul, &filters, &limits)
        }
        Command::Merge { dirs, out } => merge(&dirs, out),
        Command::Compare { study, out, threads, quiet } => compare(&study, out, threads, quiet),
        Command::Docs { out, check } => docs(&out, check),
        Command::Tune { study, quiet } => tune(&study, quiet),
        Command::Fit { file, out, threads, quiet } => fit(&file, out, threads, quiet),
        Command::Validate { file, scenario, out, quiet } => validate(&file, scenario.as_deref(), out, quiet),
        Command::Run { scenario, out, set, quiet } => run_scenario(scenario.as_deref(), out, &set, quiet),
        Command::Fmu(args) => fmu(&args),
    }
}

/// `mesobench fmu`: write the scenario's plant as an FMU.
fn fmu(args: &cli::FmuArgs) -> anyhow::Result<()> {
    use mesobench::fmi;
    let (source, fallback) = match &args.scenario {
        Some(p) => (Source::from_path(p)?, p.file_stem().and_then(|s| s.to_str()).unwrap_or("scenario").to_string()),
        None => (Source::default_scenario(), scenario::DEFAULT_NAME.to_string()),
    };
    let lib = match &args.lib {
        Some(p) => p.clone(),
        None => std::env::current_exe().ok().and_then(|exe| fmi::package::library_near(&exe)).with_context(|| {
            format!(
                "the FMU binary {} is not next to this executable: build it with `cargo build --release -p mesobench-fmu` (it lands in target/release/), or give its path with --lib",
                fmi::package::LIBRARY_FILE
            )
        })?,
    };
    let version = fmi::Version::from_number(args.fmi).context("--fmi must be 2 or 3")?;
    let text = fmi::plant_scenario(&source, &args.set, &fallback)?;
    let model = fmi::Model::new(&text, source.dir.clone())?;
    fmi::package::write_fmu(&model, version, &lib, &args.out)?;
    eprintln!("wrote {} (FMI {}, {} parameters)", args.out.display(), args.fmi, model.parameters().count());
    Ok(())
}

/// `mesobench check`: validate a scenario (or a comparison study) and print
/// its resolved parameters.
fn check(scenario: &Path, set: &[String], params: bool) -> anyhow::Result<()> {
    let text = mesobench::scenario::read_capped(scenario, "scenario").unwrap_or_default();
    if mesobench::scenario::is_study_text(&text) {
        // A comparison study: validate it as `compare` would.
        if !set.is_empty() {
            anyhow::bail!("--set applies to scenarios; {} is a comparison study", scenario.display());
        }
        let study = mesobench::study::compare::load(scenario)?;
        eprintln!(
            "{}: valid comparison study ({} × {})",
            scenario.display(),
            cli::plural(study.arms.len() as u64, "arm"),
            cli::plural(study.targets.len() as u64, "target")
        );
        return Ok(());
    }
    let (sc, _) = load(Some(scenario), set)?;
    // The JSON alone on stdout, so that it can be piped; the verdict on stderr.
    eprintln!("{}: valid", scenario.display());
    if params {
        let source = Source::from_path(scenario)?;
        let prep = scenario::Prepared::new(&source, "scenario")?;
        print!("{}", cli::params_table(&prep.entries(set)?));
        return Ok(());
    }
    println!("{}", serde_json::to_string_pretty(&sc)?);
    Ok(())
}

/// `mesobench sensitivity`: Sobol indices of the dose, written and printed.
fn sensitivity(study: &StudyArgs, quiet: bool) -> anyhow::Result<()> {
    let (_, prep, sc, dir, threads) = study.load()?;
    let set = &study.set;
    let started = Instant::now();
    // The bar learns its length from the first evaluation (n × (parameters + 2)).
    let bar = cli::progress_bar(quiet, 0, "{spinner} {bar:40} {pos}/{len} sessions  {elapsed} elapsed, eta {eta}");
    let progress = |done: u64, total: u64| {
        if let Some(b) = &bar {
            b.set_length(total);
            // Sessions finish on several threads: never step back.
            if done > b.position() {
                b.set_position(done);
            }
        }
    };
    let a = with_outputs(&dir, "sensitivity", || {
        let a = mesobench::study::sensitivity::dose_sensitivity_with_progress(&prep, set, threads, &progress);
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        let a = a.map_err(anyhow::Error::msg)?;
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

/// `mesobench tolerance-k`: print the normal tolerance factor.
fn tolerance_k(n: usize, coverage: f64, confidence: f64, one_sided: bool) -> anyhow::Result<()> {
    cli::check_probabilities(n, coverage, confidence)?;
    let k = if one_sided {
        mesobench::stats::tolerance::k_one_sided(n, coverage, confidence)
    } else {
        mesobench::stats::tolerance::k_two_sided(n, coverage, confidence)
    };
    println!("{k:.4}");
    Ok(())
}

/// `mesobench accept`: the dose-accuracy rule on a dose file, with the
/// limits of the preset as the options override them.
fn accept(
    doses: &Path,
    target_ul: f64,
    filters: &[String],
    limits: &mesobench::stats::tolerance::Limits,
) -> anyhow::Result<()> {
    cli::check_probabilities(2, limits.coverage, limits.confidence)?;
    let volume = format!("a volume in µL, greater than 0 and at most {}", mesobench::stats::doses::MAX_UL);
    for (name, v, max, allowed) in [
        ("--target-ul", target_ul, mesobench::stats::doses::MAX_UL, volume.as_str()),
        ("--alpha-ul", limits.alpha, mesobench::stats::doses::MAX_UL, volume.as_str()),
        ("--beta", limits.beta, 1.0, "a fraction of the target, greater than 0 and at most 1"),
    ] {
        if !(v.is_finite() && v > 0.0 && v <= max) {
            anyhow::bail!("{name} = {v} is not allowed: {allowed}");
        }
    }
    let filters = filters.iter().map(|f| cli::where_arg(f)).collect::<anyhow::Result<Vec<_>>>()?;
    let values = mesobench::stats::doses::read(doses, &filters)?;
    let v = mesobench::stats::tolerance::accept(&values, target_ul, limits);
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

/// `mesobench merge`: join a sweep's shards and draw its plots.
fn merge(dirs: &[PathBuf], out: Option<PathBuf>) -> anyhow::Result<()> {
    let out = out.unwrap_or_else(|| dirs[0].clone());
    let (s, raw) = with_outputs(&out, "merge", || {
        let m = mesobench::study::sweep::merge(dirs, &out)?;
        // The plots an unsharded sweep draws.
        match &m.plots {
            Ok(p) => {
                mesobench::report::write_sweep_plots(&out, &p.scenario, &p.points)?;
                if let (Some(spec), false) = (&p.scenario.sweep, p.points.is_empty()) {
                    let traces = mesobench::study::sweep::point_traces(&p.prep, &p.overrides, spec.trace_point, 20)?;
                    mesobench::report::write_sweep_traces(&out, &p.scenario, spec.trace_point, &traces)?;
                }
            }
            Err(e) => eprintln!("warning: no plots drawn: {e}"),
        }
        Ok((m.summary, m.raw))
    })?;
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

/// `mesobench run`: simulate a scenario's session, write its outputs and
/// print a summary; exit 3 when the session stopped early.
fn run_scenario(path: Option<&Path>, out: Option<PathBuf>, set: &[String], quiet: bool) -> anyhow::Result<()> {
    let (sc, source) = load(path, set)?;
    let dir = out.unwrap_or_else(|| Path::new("output").join(&sc.name));
    let started = Instant::now();
    let (run, elapsed, files) = with_outputs(&dir, "run", || {
        // trace.csv is streamed to a temporary file as the run samples.
        let mut trace = mesobench::report::TraceCsv::create(&dir, &sc)?;
        // A bar per shot for sessions long enough to wait for (on a terminal only).
        let shots = sc.session.shots as u64;
        let bar = cli::progress_bar(
            quiet || shots < 5,
            shots,
            "{spinner} {bar:40} {pos}/{len} shots  {elapsed} elapsed, eta {eta}",
        );
        let mut progress = |started: usize| {
            if let Some(b) = &bar {
                b.set_position(started as u64);
            }
        };
        let run = mesobench::simulate_traced_with_progress(&sc, &mut trace, &mut progress);
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        let run = run.with_context(|| format!("scenario {}", sc.name))?;
        let elapsed = started.elapsed();
        let files = mesobench::report::write_run(&dir, &sc, &source, set, &run, trace)?;
        Ok((run, elapsed, files))
    })?;
    if !quiet {
        cli::print_summary(&sc, &run, elapsed.as_secs_f64(), &dir, files.len());
    }
    match run.result.stopped {
        Some(why) => Err(StoppedEarly(why).into()),
        None => Ok(()),
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
    let (source, prep, sc, dir, threads) = study.load()?;
    let spec = sc
        .tune
        .clone()
        .ok_or_else(|| anyhow::anyhow!("{}: the scenario has no [tune] table", study.scenario.display()))?;
    let outputs = Outputs::claim(&dir, "tune")?;
    let bar = cli::progress_bar(
        quiet,
        mesobench::study::tune::planned_evaluations(&spec),
        "{spinner} {bar:40} {pos}/~{len} candidates  {elapsed} elapsed",
    );
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
        cli::print_tune(&sc.name, &spec, &outcome, seconds, threads, files.len(), &dir);
    }
    Ok(())
}

fn compare(path: &Path, out: Option<PathBuf>, threads: Option<usize>, quiet: bool) -> anyhow::Result<()> {
    let study = mesobench::study::compare::load(path)?;
    let dir = out.unwrap_or_else(|| Path::new("output").join(&study.name));
    let outputs = Outputs::claim(&dir, "compare")?;
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let bar = cli::progress_bar(
        quiet,
        study.tasks(),
        "{spinner} {bar:40} {pos}/{len} operator/device sessions  {elapsed} elapsed, eta {eta}",
    );
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
        cli::print_compare(&study, &outcome, seconds, threads, files.len(), &dir);
    }
    Ok(())
}

/// The default output folder of a fit or validation file: output/<stem>/.
fn default_out(file: &Path) -> PathBuf {
    Path::new("output").join(file.file_stem().and_then(|s| s.to_str()).unwrap_or("fit"))
}

fn fit(file: &Path, out: Option<PathBuf>, threads: Option<usize>, quiet: bool) -> anyhow::Result<()> {
    use mesobench::study::fit;
    let spec = fit::load(file, fit::Purpose::Fit)?;
    let dir = out.unwrap_or_else(|| default_out(file));
    let outputs = Outputs::claim(&dir, "fit")?;
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let bar = cli::spinner(quiet);
    let progress = |stage: &str| {
        if let Some(b) = &bar {
            b.set_message(stage.to_string());
        }
    };
    let started = Instant::now();
    let outcome = pool.install(|| fit::lm::fit(&spec, &progress))?;
    if let Some(b) = &bar {
        b.set_message("writing outputs");
    }
    let files = pool.install(|| mesobench::report::fit::write_fit(&dir, &spec, &outcome))?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    outputs.finished();
    if !quiet {
        cli::print_fit(&spec, &outcome, started.elapsed().as_secs_f64(), threads, files.len(), &dir);
    }
    if !outcome.converged {
        eprintln!("mesobench: the fit did not converge ({}); its best point is in {}", outcome.reason, dir.display());
        return Err(AcceptanceFailed.into());
    }
    Ok(())
}

fn validate(file: &Path, scenario: Option<&Path>, out: Option<PathBuf>, quiet: bool) -> anyhow::Result<()> {
    use mesobench::study::fit;
    let spec = fit::load_with(file, fit::Purpose::Validate, scenario)?;
    let dir = out.unwrap_or_else(|| default_out(file));
    let outputs = Outputs::claim(&dir, "validate")?;
    let v = fit::validate::validate(&spec)?;
    let files = mesobench::report::fit::write_validation(&dir, &spec, &v)?;
    outputs.finished();
    if !quiet {
        cli::print_validation(&spec, &v, files.len(), &dir);
    }
    if !v.pass {
        eprintln!("mesobench: outside the tolerances of {}", file.display());
        return Err(AcceptanceFailed.into());
    }
    Ok(())
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

fn sweep(study: &StudyArgs, opts: mesobench::study::sweep::RunOptions, quiet: bool) -> anyhow::Result<()> {
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
    let total = match shard {
        Some((i, n)) => mesobench::study::sweep::shard_range(spec.points(), i, n).count() as u64,
        None => spec.points(),
    };
    let bar = cli::progress_bar(quiet, total, "{spinner} {bar:40} {pos}/{len} points  {elapsed} elapsed, eta {eta}");
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
        cli::print_sweep(&sc.name, spec.replicates, &summary, seconds, threads, shard, &dir);
    }
    Ok(())
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
