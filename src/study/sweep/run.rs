//! Running a sweep (or a shard of it): its files, the fault-injection hook
//! of the interruption tests, a fresh start, and the chunks of points
//! computed in parallel and written in point order.

use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{
    as_written, csv_header, csv_row, file_names, overrides, raw_header, raw_name, raw_row, run_point, shard_range,
};
use super::{PointStats, RunOptions, SweepError, SweepSummary};
use crate::scenario::{Prepared, Scenario, SweepSpec};

/// The cancel flag of a run that cannot be cancelled.
static NEVER: AtomicBool = AtomicBool::new(false);

/// Fault injection for interruption tests (see [`RunOptions::fault_after`]):
/// counts the write, sync, truncation, removal and rename points of a run.
pub(super) struct Faults {
    after: Option<u64>,
    seen: std::cell::Cell<u64>,
}

impl Faults {
    /// Count one point; true at the chosen one.
    fn hit(&self) -> bool {
        let n = self.seen.get() + 1;
        self.seen.set(n);
        self.after == Some(n)
    }
    /// Before a step that is not a write: abort the process at the chosen point.
    pub(super) fn point(&self) {
        if self.hit() {
            std::process::abort();
        }
    }
    /// Write `bytes`; at the chosen point write only their first half, then
    /// abort the process (a torn write).
    pub(super) fn write(&self, f: &mut std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
        if self.hit() {
            let _ = f.write_all(&bytes[..bytes.len() / 2]);
            let _ = f.sync_data();
            std::process::abort();
        }
        f.write_all(bytes)
    }
}

/// The files of one sweep table (or shard) in its folder: the finished
/// table, its partial form while it is written, its fingerprint (and that
/// fingerprint's temporary name), and the same for the raw table.
pub(super) struct Files {
    pub(super) final_path: PathBuf,
    pub(super) partial: PathBuf,
    pub(super) fp_path: PathBuf,
    pub(super) fp_tmp: PathBuf,
    pub(super) raw_final: PathBuf,
    pub(super) raw_partial: PathBuf,
}

impl Files {
    fn new(dir: &Path, shard: Option<(u64, u64)>) -> Files {
        let (table, _) = file_names(shard);
        let raw_name = raw_name(shard);
        Files {
            final_path: dir.join(&table),
            partial: dir.join(format!(".{table}.partial")),
            fp_path: dir.join(format!(".{table}.fingerprint.json")),
            fp_tmp: dir.join(format!(".{table}.fingerprint.json.partial")),
            raw_final: dir.join(&raw_name),
            raw_partial: dir.join(format!(".{raw_name}.partial")),
        }
    }
}

/// One sweep (or shard) being run: what each of its steps reads.
pub(super) struct Sweep<'a> {
    pub(super) prep: &'a Prepared,
    pub(super) base: &'a [String],
    pub(super) sc: Scenario,
    pub(super) spec: SweepSpec,
    pub(super) range: Range<u64>,
    pub(super) opts: RunOptions,
    pub(super) keep: bool,
    pub(super) header: String,
    pub(super) raw_head: String,
    pub(super) files: Files,
    pub(super) faults: Faults,
    /// Set by the caller to stop the run before its next point.
    pub(super) cancel: &'a AtomicBool,
}

/// The open table (and raw table) of a run, the first point still to
/// compute, the shots of the points before it and the statistics kept.
pub(super) struct Opened {
    pub(super) out: File,
    pub(super) raw_out: Option<File>,
    pub(super) start: u64,
    pub(super) shots: u64,
    pub(super) kept: Vec<PointStats>,
}

/// The error of an I/O step on `path`.
pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SweepError {
    let path = path.to_owned();
    move |source| SweepError::Io { path, source }
}

/// Remove `path` if it exists.
fn remove_if_exists(path: &Path) -> Result<(), SweepError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SweepError::Io { path: path.to_owned(), source: e }),
        _ => Ok(()),
    }
}

/// Open `path` for appending after cutting it to `len` bytes.
pub(super) fn cut_and_append(path: &Path, len: u64, faults: &Faults) -> Result<std::fs::File, SweepError> {
    let io = |source| SweepError::Io { path: path.to_owned(), source };
    let f = std::fs::OpenOptions::new().write(true).open(path).map_err(io)?;
    faults.point();
    f.set_len(len).map_err(io)?;
    drop(f);
    std::fs::OpenOptions::new().append(true).open(path).map_err(io)
}

/// Run the sweep of `prep` (with base `--set` overrides), writing its table
/// into `dir` in point order as chunks finish; `progress` is called with the
/// number of points done in this run's range. Returns the per-point
/// statistics when `keep` (for plots), as the table writes them (to its
/// shortest round-trip digits in µL and kPa), those of points resumed from
/// disk read back from it.
///
/// Each chunk's raw rows (with `raw`) reach the disk before its table rows.
/// A fresh run removes the earlier table and raw files of the same name and
/// records its fingerprint beside the table (`.sweep.csv.fingerprint.json`);
/// a resumed run refuses a table made with other settings, keeps the
/// table's complete rows whose points have all their raw rows, and
/// recomputes the rest.
#[allow(clippy::too_many_arguments)]
pub fn run(
    prep: &Prepared,
    base: &[String],
    dir: &Path,
    threads: usize,
    keep: bool,
    progress: &(dyn Fn(u64) + Sync),
    opts: RunOptions,
) -> Result<(SweepSummary, Vec<PointStats>), SweepError> {
    run_cancellable(prep, base, dir, threads, keep, progress, opts, &AtomicBool::new(false))
}

/// [`run`] that stops with [`SweepError::Cancelled`] before the next point
/// once `cancel` is set (e.g. by Ctrl-C in the Python module); the points
/// running then finish first, and the partial table is left as an
/// interrupted run leaves it (resumable). A run never cancelled is [`run`].
#[allow(clippy::too_many_arguments)]
pub fn run_cancellable(
    prep: &Prepared,
    base: &[String],
    dir: &Path,
    threads: usize,
    keep: bool,
    progress: &(dyn Fn(u64) + Sync),
    opts: RunOptions,
    cancel: &AtomicBool,
) -> Result<(SweepSummary, Vec<PointStats>), SweepError> {
    let mut sw = Sweep::new(prep, base, dir, keep, opts)?;
    sw.cancel = cancel;
    let fp = super::fingerprint(prep, &sw.sc, &sw.spec, base, opts.shard);
    let opened = if opts.resume && (sw.files.partial.exists() || sw.files.final_path.exists()) {
        sw.resume(&fp)?
    } else {
        sw.fresh(&fp)?
    };
    let (first_new, shots_before) = (opened.start, opened.shots);
    let (shots, kept) = sw.chunks(opened, threads, progress)?;
    let pts = sw.range.end - sw.range.start;
    let summary = SweepSummary {
        points: pts,
        sessions: pts * sw.spec.replicates as u64,
        shots,
        computed_points: sw.range.end - first_new,
        computed_shots: shots - shots_before,
    };
    Ok((summary, kept))
}

impl<'a> Sweep<'a> {
    /// The sweep of `prep` with `base`, its first and last points checked
    /// before any work, and its folder created.
    fn new(
        prep: &'a Prepared,
        base: &'a [String],
        dir: &Path,
        keep: bool,
        opts: RunOptions,
    ) -> Result<Sweep<'a>, SweepError> {
        let sc = prep.with(base).map_err(|source| SweepError::Point { point: 0, source })?;
        let spec = sc.sweep.clone().ok_or_else(|| SweepError::NoSweep(prep.source().name.clone()))?;
        let n = spec.points();
        let range = match opts.shard {
            None => 0..n,
            Some((i, k)) => shard_range(n, i, k),
        };
        // Check the first and last points before any work.
        for p in [0, n.saturating_sub(1)] {
            prep.with(&overrides(&sc, &spec, base, p, 0)).map_err(|source| SweepError::Point { point: p, source })?;
        }
        std::fs::create_dir_all(dir).map_err(|source| SweepError::Io { path: dir.to_owned(), source })?;
        let faults = Faults { after: opts.fault_after, seen: std::cell::Cell::new(0) };
        let keys: Vec<String> = sc.uncertain.iter().map(|u| u.key.clone()).collect();
        let (header, raw_head) = (csv_header(&spec), raw_header(&spec, &keys));
        let files = Files::new(dir, opts.shard);
        let cancel = &NEVER;
        Ok(Sweep { prep, base, sc, spec, range, opts, keep, header, raw_head, files, faults, cancel })
    }

    /// `--resume` refused: `message` says why.
    pub(super) fn resume_err(&self, message: String) -> SweepError {
        SweepError::Resume { path: self.files.final_path.clone(), message }
    }

    /// A fresh start: nothing of an earlier run of this table survives, and
    /// the fingerprint is on disk before the first row.
    fn fresh(&self, fp: &serde_json::Value) -> Result<Opened, SweepError> {
        let (f, faults) = (&self.files, &self.faults);
        for p in [&f.final_path, &f.partial, &f.raw_final, &f.raw_partial] {
            faults.point();
            remove_if_exists(p)?;
        }
        let tmp = &f.fp_tmp;
        let mut file = File::create(tmp).map_err(io(tmp))?;
        faults.write(&mut file, &crate::files::json_bytes(fp)).map_err(io(tmp))?;
        drop(file);
        faults.point();
        std::fs::rename(tmp, &f.fp_path).map_err(io(&f.fp_path))?;
        let mut out = File::create(&f.partial).map_err(io(&f.partial))?;
        faults.write(&mut out, self.header.as_bytes()).map_err(io(&f.partial))?;
        let raw_out = if self.opts.raw {
            let mut r = File::create(&f.raw_partial).map_err(io(&f.raw_partial))?;
            faults.write(&mut r, self.raw_head.as_bytes()).map_err(io(&f.raw_partial))?;
            Some(r)
        } else {
            None
        };
        Ok(Opened { out, raw_out, start: self.range.start, shots: 0, kept: Vec::new() })
    }

    /// Compute the points from `o.start` to the end of the range on
    /// `threads` workers, which take them in point order, and write each
    /// point's rows as soon as every point before it is written (a kill
    /// loses only the points in flight and those finished out of order
    /// behind one); the tables are synced every `64 × threads` points and
    /// at the end, then given their final names. Returns the shots of the
    /// whole range and the statistics kept.
    fn chunks(
        &self,
        mut o: Opened,
        threads: usize,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(u64, Vec<PointStats>), SweepError> {
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
        let sync_every = (64 * threads) as u64;
        let range = self.range.clone();
        progress(o.start - range.start);
        // Progress moves with every finished point, not with every write.
        let done = AtomicU64::new(o.start - range.start);
        // The next point a worker takes, and the lowest point that failed
        // (workers take no point past it, so the error reported is the
        // first in point order whatever the threads).
        let next = AtomicU64::new(o.start);
        let failed = AtomicU64::new(u64::MAX);
        // The workers share these, not `self` (whose fault counter is not `Sync`).
        let (prep, sc, spec, base, raw, keep) = (self.prep, &self.sc, &self.spec, self.base, self.opts.raw, self.keep);
        let cancel = self.cancel;
        let wanted = |p: u64| raw || (keep && spec.histogram.contains(&p));
        let (tx, rx) = std::sync::mpsc::channel::<(u64, Result<PointStats, SweepError>)>();
        let written = pool.in_place_scope(|scope| -> Result<u64, SweepError> {
            for _ in 0..threads {
                let tx = tx.clone();
                let (next, failed, done, wanted) = (&next, &failed, &done, &wanted);
                scope.spawn(move |_| loop {
                    if cancel.load(Ordering::Relaxed) {
                        return;
                    }
                    let p = next.fetch_add(1, Ordering::Relaxed);
                    if p >= range.end || p > failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let r = run_point(prep, sc, spec, base, p, wanted(p), raw);
                    if r.is_err() {
                        failed.fetch_min(p, Ordering::Relaxed);
                    }
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                    if tx.send((p, r)).is_err() {
                        return;
                    }
                });
            }
            drop(tx);
            self.write_in_order(&rx, &mut o, sync_every)
        })?;
        if o.start < range.end {
            // Cancelled before every point was taken: what was written stays
            // (an interrupted run's partial table).
            if written > 0 {
                self.sync(&mut o)?;
            }
            return Err(SweepError::Cancelled);
        }
        if written > 0 {
            self.sync(&mut o)?;
        }
        progress(range.end - range.start);
        self.finish(o)
    }

    /// Write the points received on `rx` in point order as they arrive,
    /// syncing the tables every `sync_every` points; returns the points
    /// written since the last sync. After an error it only drains `rx`, so
    /// the workers can finish.
    fn write_in_order(
        &self,
        rx: &std::sync::mpsc::Receiver<(u64, Result<PointStats, SweepError>)>,
        o: &mut Opened,
        sync_every: u64,
    ) -> Result<u64, SweepError> {
        let mut waiting = std::collections::BTreeMap::new();
        let mut since_sync = 0u64;
        let mut stop = None;
        for (p, r) in rx.iter() {
            if stop.is_some() {
                continue; // let the workers finish
            }
            waiting.insert(p, r);
            while let Some(r) = waiting.remove(&o.start) {
                if let Err(e) = self.write_point(r, o) {
                    stop = Some(e);
                    break;
                }
                o.start += 1;
                since_sync += 1;
                if since_sync == sync_every {
                    since_sync = 0;
                    if let Err(e) = self.sync(o) {
                        stop = Some(e);
                        break;
                    }
                }
            }
        }
        match stop {
            Some(e) => Err(e),
            None => Ok(since_sync),
        }
    }

    /// Write one point's raw rows, then its table row (the statistics kept
    /// and the shots counted in `o`).
    fn write_point(&self, r: Result<PointStats, SweepError>, o: &mut Opened) -> Result<(), SweepError> {
        let (rows, raw_rows) = self.gather(vec![r], o)?;
        let (f, faults) = (&self.files, &self.faults);
        if let Some(w) = o.raw_out.as_mut() {
            faults.write(w, &raw_rows).map_err(io(&f.raw_partial))?;
        }
        faults.write(&mut o.out, &rows).map_err(io(&f.partial))
    }

    /// Sync the tables: the raw table first.
    fn sync(&self, o: &mut Opened) -> Result<(), SweepError> {
        let (f, faults) = (&self.files, &self.faults);
        if let Some(r) = o.raw_out.as_mut() {
            faults.point();
            r.sync_data().map_err(io(&f.raw_partial))?;
        }
        faults.point();
        o.out.sync_data().map_err(io(&f.partial))
    }

    /// The table rows and raw rows of points, in point order; their
    /// shots are added to `o.shots` and their statistics kept in `o.kept`.
    fn gather(
        &self,
        results: Vec<Result<PointStats, SweepError>>,
        o: &mut Opened,
    ) -> Result<(Vec<u8>, Vec<u8>), SweepError> {
        let (mut rows, mut raw_rows) = (Vec::new(), Vec::new());
        for r in results {
            let mut p = r?;
            rows.extend_from_slice(csv_row(&p).as_bytes());
            if self.opts.raw {
                for s in &p.raw {
                    raw_rows.extend_from_slice(raw_row(&p, s).as_bytes());
                }
            }
            if !(self.keep && self.spec.histogram.contains(&p.point)) {
                p.raw = Vec::new();
            }
            o.shots += p.shots as u64;
            if self.keep {
                o.kept.push(as_written(p));
            }
        }
        Ok((rows, raw_rows))
    }

    /// Close the tables and give them their final names (the raw table first).
    fn finish(&self, o: Opened) -> Result<(u64, Vec<PointStats>), SweepError> {
        let (f, faults) = (&self.files, &self.faults);
        drop(o.out);
        if let Some(r) = o.raw_out {
            drop(r);
            faults.point();
            std::fs::rename(&f.raw_partial, &f.raw_final).map_err(io(&f.raw_partial))?;
        }
        faults.point();
        std::fs::rename(&f.partial, &f.final_path).map_err(io(&f.final_path))?;
        Ok((o.shots, o.kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_sweep_stops_before_its_points_and_leaves_no_table() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/sweep_open_time_pressure.toml");
        let prep = Prepared::new(&crate::scenario::Source::from_path(&path).unwrap(), "sweep").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let done = AtomicU64::new(0);
        let progress = |n: u64| done.store(n, Ordering::Relaxed);
        let cancel = AtomicBool::new(true);
        let base = ["sweep.replicates=1".to_string()];
        let r = run_cancellable(&prep, &base, dir.path(), 2, false, &progress, RunOptions::default(), &cancel);
        assert!(matches!(r, Err(SweepError::Cancelled)), "{r:?}");
        assert!(!dir.path().join("sweep.csv").exists());
        assert_eq!(done.load(Ordering::Relaxed), 0);
        // Not cancelled: the same call runs every point.
        cancel.store(false, Ordering::Relaxed);
        let (s, _) =
            run_cancellable(&prep, &base, dir.path(), 2, false, &progress, RunOptions::default(), &cancel).unwrap();
        assert_eq!(s.points, 35);
        assert!(dir.path().join("sweep.csv").exists());
    }
}
