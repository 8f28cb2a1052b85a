//! The output folder: the files each command writes, removing stale ones,
//! and the lock that keeps two runs out of one folder.

use super::ReportError;
use crate::files::tmp_path;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The files a command (`run`, `sweep`, `merge`, `sensitivity`, `tune`,
/// `compare`) writes into its output folder; for `sweep`, those of shard
/// `shard` or of the whole sweep.
pub fn command_outputs(command: &str, shard: Option<(u64, u64)>) -> Vec<String> {
    let both = |stems: &[&str]| -> Vec<String> {
        stems.iter().flat_map(|s| [format!("{s}.png"), format!("{s}.svg")]).collect()
    };
    let sweep_plots = || both(&["sweep_mean", "sweep_hist", "sweep_cv", "sweep_traces"]);
    let mut out: Vec<String> = match command {
        "run" => ["shots.csv", "needles.csv", "trace.csv", "summary.json", "manifest.json"].map(String::from).into(),
        "sweep" | "merge" => {
            let (table, manifest) = crate::study::sweep::file_names(shard);
            vec![table, manifest, crate::study::sweep::raw_name(shard)]
        }
        "sensitivity" => vec!["sensitivity.csv".into(), "sensitivity.json".into()],
        "tune" => ["tune_summary.json", "tune_best.toml", "tune_best.h", "tune_history.csv", "tune_landscape.csv"]
            .map(String::from)
            .into(),
        "compare" => vec!["arms.csv".into(), "compare_summary.json".into(), "report.html".into()],
        "fit" => ["fit_summary.json", "fit_history.csv", "calibrated.toml"].map(String::from).into(),
        "validate" => vec!["validate_summary.json".into(), "validate_shots.csv".into()],
        _ => Vec::new(),
    };
    out.extend(match command {
        "run" => both(&["trace", "doses"]),
        "sweep" | "merge" if shard.is_none() => sweep_plots(),
        "sensitivity" => both(&["sensitivity"]),
        "tune" => both(&["tune_convergence", "tune_doses", "tune_landscape"]),
        "compare" => both(&["doses_by_arm", "histograms", "operators"]),
        "fit" => both(&["fit_profiles"]),
        _ => Vec::new(),
    });
    out
}

/// Remove the files `names` (and their temporary siblings) from `dir` when
/// they exist; anything else in the folder is left alone.
pub fn remove_outputs(dir: &Path, names: &[String]) -> Result<(), ReportError> {
    for name in names {
        let p = dir.join(name);
        for f in [tmp_path(&p), p] {
            if f.is_dir() {
                continue;
            }
            match std::fs::remove_file(&f) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(ReportError::Io { path: f, source: e })
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// An output folder that another mesobench holds.
#[derive(Debug, thiserror::Error)]
#[error("output folder {dir} is in use by another mesobench ({holder}); wait for it to finish or choose another --out")]
pub struct FolderInUse {
    /// The folder.
    pub dir: PathBuf,
    /// Who holds it ("pid N").
    pub holder: String,
}

/// A lock on an output folder, held until dropped: an OS advisory lock on
/// `DIR/.mesobench.lock` (exclusive, or shared by the shards of one sweep,
/// each of which also holds `DIR/.mesobench.shard-I-of-N.lock` exclusively).
/// The holder's pid is written into the file it holds exclusively.
#[derive(Debug)]
pub struct OutputLock {
    main: std::fs::File,
    exclusive: bool,
    shard: Option<std::fs::File>,
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Forget the pid while the lock is still held.
        if self.exclusive {
            let _ = self.main.set_len(0);
        }
        if let Some(f) = &self.shard {
            let _ = f.set_len(0);
        }
    }
}

/// Lock the output folder `dir` (created if needed) for a command; a shard of
/// a sweep (`shard`) shares the folder with the other shards only.
pub fn lock_output(dir: &Path, shard: Option<(u64, u64)>) -> Result<OutputLock, LockError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| LockError::Io(ReportError::Io { path: path.clone(), source })
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let open = |p: &Path| {
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(p).map_err(io(p))
    };
    let main_path = dir.join(".mesobench.lock");
    let mut main = open(&main_path)?;
    let busy = |holder: String| LockError::InUse(FolderInUse { dir: dir.to_owned(), holder });
    let claim = |f: &mut std::fs::File, p: &Path| -> Result<(), LockError> {
        f.set_len(0).map_err(io(p))?;
        f.write_all(format!("{}\n", std::process::id()).as_bytes()).map_err(io(p))
    };
    let locked = match shard {
        None => main.try_lock(),
        Some(_) => main.try_lock_shared(),
    };
    match locked {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(busy(holders(dir, &main_path))),
        Err(std::fs::TryLockError::Error(e)) => return Err(io(&main_path)(e)),
    }
    let Some((i, n)) = shard else {
        claim(&mut main, &main_path)?;
        return Ok(OutputLock { main, exclusive: true, shard: None });
    };
    let shard_path = dir.join(format!(".mesobench.shard-{i:05}-of-{n:05}.lock"));
    let mut f = open(&shard_path)?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(busy(holders(dir, &shard_path))),
        Err(std::fs::TryLockError::Error(e)) => return Err(io(&shard_path)(e)),
    }
    claim(&mut f, &shard_path)?;
    Ok(OutputLock { main, exclusive: false, shard: Some(f) })
}

/// "pid N" of the holder of `path`, or of the sweep shards holding the folder.
fn holders(dir: &Path, path: &Path) -> String {
    let pid = |p: &Path| std::fs::read_to_string(p).ok().and_then(|t| t.trim().parse::<u32>().ok());
    if let Some(p) = pid(path) {
        return format!("pid {p}");
    }
    let mut pids: Vec<u32> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".mesobench.shard-"))
        .filter_map(|e| pid(&e.path()))
        .collect();
    pids.sort_unstable();
    match pids.len() {
        0 => "pid unknown".into(),
        1 => format!("pid {}", pids[0]),
        _ => format!("pids {}", pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// An output folder that cannot be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another mesobench holds it.
    #[error(transparent)]
    InUse(FolderInUse),
    /// The lock file cannot be created.
    #[error(transparent)]
    Io(ReportError),
}
