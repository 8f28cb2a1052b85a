//! Resuming an interrupted sweep table: the fingerprint of the settings a
//! table is computed from, and the complete rows of a partial table and of
//! its raw table.

use std::fs::File;

use super::run::{cut_and_append, io, Opened, Sweep};
use super::{as_written, run_point, stats_from_row, PointStats, SweepError};
use crate::scenario::{Prepared, Scenario, SweepSpec};

/// 64-bit FNV-1a of `bytes`, as 16 hex digits.
fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// What a sweep table is computed from: the scenario's content, the
/// overrides, the seed, the mesobench version, the shard and the design.
/// A partial (or finished) table is resumed only when its recorded
/// fingerprint equals this run's; the thread count is not part of it (it
/// does not change a byte).
pub fn fingerprint(
    prep: &Prepared,
    sc: &Scenario,
    spec: &SweepSpec,
    base: &[String],
    shard: Option<(u64, u64)>,
) -> serde_json::Value {
    let design = crate::study::design::rows(spec)
        .map(|d| fnv1a(d.iter().flat_map(|row| row.iter().flat_map(|v| v.to_bits().to_le_bytes()))));
    serde_json::json!({
        "mesobench_version": crate::VERSION,
        "shard": shard.map(|(i, n)| format!("{i}/{n}")),
        "seed": sc.seed,
        "overrides": base,
        "sweep": spec,
        "points": spec.points(),
        "design": design,
        "uncertain": sc.uncertain,
        "scenario_text_fnv1a64": fnv1a(prep.source().text.bytes()),
        "resolved_base": sc,
    })
}

/// The first difference between a recorded fingerprint and this run's, as
/// "was made with …, this run has …".
fn fingerprint_mismatch(old: &serde_json::Value, new: &serde_json::Value) -> Option<String> {
    let show = |key: &str, v: &serde_json::Value| match v {
        serde_json::Value::Null if key == "shard" => "none (unsharded)".to_string(),
        serde_json::Value::Null => "none".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let keys = [
        ("mesobench_version", "mesobench version"),
        ("shard", "shard"),
        ("seed", "seed"),
        ("overrides", "--set overrides"),
        ("points", "number of points"),
        ("sweep", "[sweep] table"),
        ("design", "design (sampled points)"),
        ("uncertain", "[uncertain] table"),
        ("scenario_text_fnv1a64", "scenario file content"),
        ("resolved_base", "resolved scenario"),
    ];
    for (key, what) in keys {
        if old.get(key) != new.get(key) {
            return Some(match key {
                "mesobench_version" | "shard" | "seed" | "overrides" | "points" => format!(
                    "was made with {what} {}, this run has {what} {}",
                    show(key, old.get(key).unwrap_or(&serde_json::Value::Null)),
                    show(key, &new[key])
                ),
                _ => format!("was made with a different {what}"),
            });
        }
    }
    None
}

/// The complete rows of a partial table: for each, the byte offset of its
/// end and its shot count. Rows must be the range's prefix in order; an
/// incomplete last line is dropped.
fn table_rows(
    text: &str,
    header: &str,
    range: &std::ops::Range<u64>,
    shots_col: usize,
) -> Result<Vec<(u64, u64)>, String> {
    if !text.starts_with(header) {
        return Err("its header differs from this sweep's".into());
    }
    let fields = header.trim_end().split(',').count();
    let mut end = header.len() as u64;
    let mut rows = Vec::new();
    for (i, line) in text[header.len()..].split_inclusive('\n').enumerate() {
        if !line.ends_with('\n') {
            break;
        }
        let line_no = i + 2;
        let f: Vec<&str> = line.trim_end().split(',').collect();
        if f.len() != fields {
            return Err(format!("line {line_no} has {} fields, the header {fields}", f.len()));
        }
        let expected = range.start + rows.len() as u64;
        let p: u64 = f[0].parse().map_err(|_| format!("line {line_no} does not start with a point index"))?;
        if p != expected || p >= range.end {
            return Err(format!("line {line_no}: point {p} where {expected} was expected"));
        }
        let shots: u64 = f[shots_col]
            .parse()
            .map_err(|_| format!("line {line_no}: shots {:?} is not a whole number", f[shots_col]))?;
        end += line.len() as u64;
        rows.push((end, shots));
    }
    Ok(rows)
}

/// Raw rows of a partial raw table that belong to points holding all their
/// shots (`shots[k]` rows for point `start + k`, in order): their byte length
/// with the header and the first point that is incomplete; `None` when the
/// header is missing or differs.
fn raw_complete<R: std::io::BufRead>(
    mut r: R,
    header: &str,
    start: u64,
    shots: &[u64],
) -> std::io::Result<Option<(u64, u64)>> {
    // Streamed line by line: a raw table can be far larger than memory.
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line != header.as_bytes() {
        return Ok(None);
    }
    let fields = header.trim_end().split(',').count();
    let (mut kept, mut len) = (header.len() as u64, header.len() as u64);
    let (mut k, mut count) = (0usize, 0u64);
    loop {
        while k < shots.len() && count == shots[k] {
            k += 1;
            count = 0;
            kept = len;
        }
        if k == shots.len() {
            break;
        }
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 || !line.ends_with(b"\n") {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim_end().split(',').count() != fields {
            break;
        }
        if text.split(',').next().and_then(|f| f.parse::<u64>().ok()) != Some(start + k as u64) {
            break;
        }
        count += 1;
        len += line.len() as u64;
    }
    Ok(Some((kept, start + k as u64)))
}

impl Sweep<'_> {
    /// Continue the partial (or finished) table of an earlier run with the
    /// same fingerprint `fp`: keep its complete rows whose points have all
    /// their raw rows, cut the rest.
    pub(super) fn resume(&self, fp: &serde_json::Value) -> Result<Opened, SweepError> {
        let (f, faults) = (&self.files, &self.faults);
        let which = if f.partial.exists() { "the partial table" } else { "the finished table" };
        self.check_fingerprint(which, fp)?;
        // A finished table (or raw table) is resumed like a partial one: it
        // is checked the same way and renamed back when complete.
        if !f.partial.exists() {
            faults.point();
            std::fs::rename(&f.final_path, &f.partial).map_err(io(&f.final_path))?;
        }
        if self.opts.raw && !f.raw_partial.exists() && f.raw_final.exists() {
            faults.point();
            std::fs::rename(&f.raw_final, &f.raw_partial).map_err(io(&f.raw_final))?;
        }
        let table_text = String::from_utf8_lossy(&std::fs::read(&f.partial).map_err(io(&f.partial))?).into_owned();
        // A header cut short by an interruption is an empty table.
        let torn = table_text.len() < self.header.len() && self.header.starts_with(table_text.as_str());
        let rows = if torn {
            Vec::new()
        } else {
            table_rows(&table_text, &self.header, &self.range, 1 + self.spec.axes.len())
                .map_err(|m| self.resume_err(format!("{}: {m}", f.partial.display())))?
        };
        let row_shots: Vec<u64> = rows.iter().map(|r| r.1).collect();
        let mut done = rows.len();
        let raw_out = if self.opts.raw { Some(self.resume_raw(&row_shots, &mut done)?) } else { None };
        let len = if done == 0 { self.header.len() as u64 } else { rows[done - 1].0 };
        let out = if torn {
            let mut out = File::create(&f.partial).map_err(io(&f.partial))?;
            faults.write(&mut out, self.header.as_bytes()).map_err(io(&f.partial))?;
            out
        } else {
            cut_and_append(&f.partial, len, faults)?
        };
        let shots = row_shots[..done].iter().sum();
        let start = self.range.start + done as u64;
        let kept = if self.keep { self.read_back(&table_text, len)? } else { Vec::new() };
        Ok(Opened { out, raw_out, start, shots, kept })
    }

    /// Refuse to resume `which` table unless its recorded fingerprint is `fp`.
    fn check_fingerprint(&self, which: &str, fp: &serde_json::Value) -> Result<(), SweepError> {
        let fp_path = &self.files.fp_path;
        let old: serde_json::Value = match std::fs::read(fp_path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| self.resume_err(format!("its fingerprint {} is unreadable ({e})", fp_path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.resume_err(format!(
                    "{which} has no fingerprint ({}), so the settings it was made with are unknown",
                    fp_path.display()
                )))
            }
            Err(e) => return Err(io(fp_path)(e)),
        };
        match fingerprint_mismatch(&old, fp) {
            Some(m) => Err(self.resume_err(format!("{which} {m}"))),
            None => Ok(()),
        }
    }

    /// The raw table of a resumed run, open for appending after the rows of
    /// the points that hold all their shots (`row_shots`, from the table);
    /// `done`, the table's complete points, drops to the first point missing
    /// some raw rows (those points are recomputed).
    fn resume_raw(&self, row_shots: &[u64], done: &mut usize) -> Result<File, SweepError> {
        let raw_partial = &self.files.raw_partial;
        let found = match File::open(raw_partial) {
            Ok(f) => raw_complete(std::io::BufReader::new(f), &self.raw_head, self.range.start, row_shots)
                .map_err(io(raw_partial))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(raw_partial)(e)),
        };
        Ok(match found {
            Some((len, next)) => {
                *done = (*done).min((next - self.range.start) as usize);
                cut_and_append(raw_partial, len, &self.faults)?
            }
            None => {
                *done = 0;
                let mut f = File::create(raw_partial).map_err(io(raw_partial))?;
                self.faults.write(&mut f, self.raw_head.as_bytes()).map_err(io(raw_partial))?;
                f
            }
        })
    }

    /// The statistics of the points already on disk (the first `len` bytes
    /// of `table_text`), read back for the plots; the histogram points'
    /// shots are recomputed.
    fn read_back(&self, table_text: &str, len: u64) -> Result<Vec<PointStats>, SweepError> {
        let mut kept = Vec::new();
        for line in table_text.get(self.header.len()..len as usize).unwrap_or("").lines() {
            let f: Vec<&str> = line.split(',').collect();
            let mut p = stats_from_row(&f, self.spec.axes.len());
            if self.spec.histogram.contains(&p.point) {
                p = as_written(run_point(self.prep, &self.sc, &self.spec, self.base, p.point, true, false)?);
            }
            kept.push(p);
        }
        Ok(kept)
    }
}
