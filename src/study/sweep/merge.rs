//! Joining the shards of a sweep into the table, manifest and raw table
//! an unsharded run writes, every row of every shard checked.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{as_written, csv_header, file_names, raw_header, raw_name, run_point, shard_range, stats_from_row};
use super::{PointStats, SweepSummary};
use crate::scenario::{Prepared, Scenario, SweepSpec};

/// A merge that cannot produce the whole sweep.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// No shard files in the folders.
    #[error("no sweep shards (sweep.shard-*-of-*.csv) in {0}")]
    None(String),
    /// Shards disagree on their count.
    #[error("shards disagree on the shard count: {0}")]
    Count(String),
    /// Some shards are missing.
    #[error("missing shard(s) {missing:?} of {count}")]
    Missing {
        /// Missing indices.
        missing: Vec<u64>,
        /// Shard count.
        count: u64,
    },
    /// A shard appears twice.
    #[error("shard {index} of {count} appears twice: {first} and {second}")]
    Duplicate {
        /// Index.
        index: u64,
        /// Count.
        count: u64,
        /// First file.
        first: String,
        /// Second file.
        second: String,
    },
    /// Shards come from different sweeps.
    #[error("{file} comes from a different sweep than {reference}: its {what} differs")]
    Mismatch {
        /// Offending manifest.
        file: String,
        /// Reference manifest.
        reference: String,
        /// What differs.
        what: String,
    },
    /// A shard is unreadable or incomplete.
    #[error("{file}: {message}")]
    Bad {
        /// File.
        file: String,
        /// What is wrong.
        message: String,
    },
}

/// A merged sweep.
#[derive(Debug)]
pub struct Merged {
    /// Points, sessions and shots of the whole sweep.
    pub summary: SweepSummary,
    /// Whether raw shards were joined into raw.csv.
    pub raw: bool,
    /// What the plots are drawn from, or why they cannot be (the scenario
    /// recorded in the manifest no longer loads, e.g. a plugin moved).
    pub plots: Result<MergedPlots, String>,
}

/// What the plots of an unsharded sweep are drawn from, after a merge: the
/// scenario rebuilt from the manifest, and every point's statistics read
/// back from the table (those of the histogram points recomputed with their shots).
#[derive(Debug)]
pub struct MergedPlots {
    /// The scenario, parsed once.
    pub prep: Prepared,
    /// The base overrides.
    pub overrides: Vec<String>,
    /// The resolved base scenario.
    pub scenario: Scenario,
    /// Per-point statistics (empty for sweeps too large to plot).
    pub points: Vec<PointStats>,
}

/// The complete, well-formed rows of one shard's table or raw table, checked
/// line by line: the text ends with a line end, every row has the header's
/// field count and numbers only. Returns the rows' fields (header excluded).
fn shard_lines<'a>(file: &Path, text: &'a str, header: &str) -> Result<Vec<(usize, Vec<&'a str>)>, MergeError> {
    let bad = |m: String| MergeError::Bad { file: file.display().to_string(), message: m };
    let Some(body) = text.strip_prefix(header) else {
        let first = text.lines().next().unwrap_or("");
        return Err(bad(format!("line 1: the header {first:?} differs from this sweep's {:?}", header.trim_end())));
    };
    let fields = header.trim_end().split(',').count();
    let mut rows = Vec::new();
    for (i, line) in body.split_inclusive('\n').enumerate() {
        let line_no = i + 2;
        let Some(line) = line.strip_suffix('\n') else {
            return Err(bad(format!(
                "line {line_no} is cut short (no line end): the shard was interrupted mid-row; rerun it with --resume"
            )));
        };
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != fields {
            return Err(bad(format!("line {line_no} has {} fields, the header has {fields}", f.len())));
        }
        if let Some(v) = f.iter().find(|v| v.parse::<f64>().is_err()) {
            return Err(bad(format!("line {line_no}: {v:?} is not a number")));
        }
        rows.push((line_no, f));
    }
    Ok(rows)
}

/// Check raw shard `raw_file` row by row (line ends, field count, numbers,
/// and `shots[k]` rows for point `start + k`, as its table `csv` says) and
/// append its rows to `w`, holding one row at a time.
fn merge_raw_shard(
    raw_file: &Path,
    raw_head: &str,
    start: u64,
    shots: &[u64],
    csv: &Path,
    w: &mut impl Write,
) -> Result<(), MergeError> {
    use std::io::BufRead;
    let bad = |m: String| MergeError::Bad { file: raw_file.display().to_string(), message: m };
    let f = std::fs::File::open(raw_file).map_err(|e| bad(e.to_string()))?;
    let mut r = std::io::BufReader::new(f);
    let mut line = Vec::new();
    let read = |r: &mut std::io::BufReader<std::fs::File>, line: &mut Vec<u8>| -> Result<bool, MergeError> {
        line.clear();
        Ok(r.read_until(b'\n', line).map_err(|e| bad(e.to_string()))? > 0)
    };
    read(&mut r, &mut line)?;
    if line != raw_head.as_bytes() {
        let first = String::from_utf8_lossy(&line).trim_end().to_string();
        return Err(bad(format!("line 1: the header {first:?} differs from this sweep's {:?}", raw_head.trim_end())));
    }
    let fields = raw_head.trim_end().split(',').count();
    let mut line_no = 1usize;
    for (k, &n) in shots.iter().enumerate() {
        let p = start + k as u64;
        for _ in 0..n {
            line_no += 1;
            if !read(&mut r, &mut line)? {
                return Err(bad(format!(
                    "ends before the {n} rows of point {p} (rows are missing; rerun the shard with --resume)"
                )));
            }
            check_raw_row(&line, line_no, fields, Some(p), csv, n).map_err(bad)?;
            w.write_all(&line).map_err(|e| bad(e.to_string()))?;
        }
    }
    if read(&mut r, &mut line)? {
        let first = String::from_utf8_lossy(&line).split(',').next().unwrap_or("").to_string();
        return Err(bad(format!("line {}: a row of point {first} beyond the shard's shots", line_no + 1)));
    }
    Ok(())
}

/// One raw row: a line end, `fields` numbers, and point `p`.
fn check_raw_row(line: &[u8], line_no: usize, fields: usize, p: Option<u64>, csv: &Path, n: u64) -> Result<(), String> {
    let text = String::from_utf8_lossy(line);
    let Some(text) = text.strip_suffix('\n') else {
        return Err(format!(
            "line {line_no} is cut short (no line end): the shard was interrupted mid-row; rerun it with --resume"
        ));
    };
    let f: Vec<&str> = text.split(',').collect();
    if f.len() != fields {
        return Err(format!("line {line_no} has {} fields, the header has {fields}", f.len()));
    }
    if let Some(v) = f.iter().find(|v| v.parse::<f64>().is_err()) {
        return Err(format!("line {line_no}: {v:?} is not a number"));
    }
    match p {
        Some(p) if f[0] != p.to_string() => Err(format!(
            "line {line_no}: point {} where a row of point {p} was expected (point {p} has {n} shots in {})",
            f[0],
            csv.display()
        )),
        _ => Ok(()),
    }
}

/// A shard file is unreadable or incomplete: `m` says how.
fn bad(f: &Path, m: String) -> MergeError {
    MergeError::Bad { file: f.display().to_string(), message: m }
}

/// One shard found: its index, the shard count it names, its table and its manifest.
struct Shard {
    index: u64,
    count: u64,
    csv: PathBuf,
    manifest: PathBuf,
}

/// The shape of the merged table, from the first shard's manifest.
struct Shape {
    /// Swept keys.
    axes: usize,
    /// Points whose shots the histograms draw.
    histogram: Vec<u64>,
    /// Points of the whole sweep.
    points: u64,
    /// Header of the table.
    header: String,
    /// Header of the raw table.
    raw_head: String,
}

/// What the shards add up to while they are joined.
struct Joined {
    total: SweepSummary,
    table: Vec<u8>,
    raw: Option<std::io::BufWriter<std::fs::File>>,
    stats: Vec<PointStats>,
    keep: bool,
}

/// Join the shards found in `dirs` into `out`/sweep.csv and
/// `out`/sweep_manifest.json (and their raw tables into raw.csv), byte for
/// byte what an unsharded run writes. Every row of every shard is checked:
/// its field count, its numbers, its point index against the shard's range
/// and, for raw rows, their count against the table's shots.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Merged, MergeError> {
    let mut found = find_shards(dirs)?;
    let count = check_shard_set(&mut found)?;
    // Every manifest must describe the same sweep.
    let man0 = &found[0].manifest;
    let reference = read_manifest(man0)?;
    let shape = Shape::of(&reference, man0)?;
    // The table's shape comes from the manifest; the scenario, rebuilt from it, only for the plots.
    let plots = rebuild(&reference).map_err(|e| format!("{}: {e}", man0.display()));
    let raw_files = raw_files(&found)?;
    let with_raw = raw_files.is_some();
    // Raw shards can be far larger than memory: they are checked and copied
    // row by row into a temporary file in the output folder.
    let raw_tmp = out.join(".raw.csv.merge.partial");
    let raw = if with_raw {
        std::fs::create_dir_all(out).map_err(|e| bad(out, e.to_string()))?;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&raw_tmp).map_err(|e| bad(&raw_tmp, e.to_string()))?);
        w.write_all(shape.raw_head.as_bytes()).map_err(|e| bad(&raw_tmp, e.to_string()))?;
        Some(w)
    } else {
        None
    };
    let total = SweepSummary { points: 0, sessions: 0, shots: 0, computed_points: 0, computed_shots: 0 };
    let keep = shape.points <= 100_000;
    let mut j = Joined { total, table: shape.header.as_bytes().to_vec(), raw, stats: Vec::new(), keep };
    let result = (|| {
        for (k, shard) in found.iter().enumerate() {
            let raw_file = raw_files.as_ref().map(|r| r[k].as_path());
            join_shard(shard, raw_file, count, &reference, man0, &shape, &mut j)?;
        }
        if j.total.points != shape.points {
            return Err(bad(
                man0,
                format!("the shards hold {} points, the sweep has {}", j.total.points, shape.points),
            ));
        }
        Ok(())
    })();
    if let Err(e) = result {
        drop(j.raw.take());
        let _ = std::fs::remove_file(&raw_tmp);
        return Err(e);
    }
    let plots =
        plots.and_then(|(prep, overrides, sc)| with_histograms(prep, overrides, sc, &shape.histogram, j.keep, j.stats));
    write_merged(out, j.raw, &raw_tmp, &j.table, &reference, &j.total)?;
    Ok(Merged { summary: j.total, raw: with_raw, plots })
}

/// The shard tables (`sweep.shard-I-of-N.csv`) in `dirs`, each folder's in name order.
fn find_shards(dirs: &[PathBuf]) -> Result<Vec<Shard>, MergeError> {
    let mut found = Vec::new();
    for d in dirs {
        let entries = std::fs::read_dir(d).map_err(|e| bad(d, e.to_string()))?;
        let mut names: Vec<String> =
            entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        for name in names {
            let Some(rest) = name.strip_prefix("sweep.shard-").and_then(|r| r.strip_suffix(".csv")) else { continue };
            let Some((i, n)) = rest.split_once("-of-") else { continue };
            let (Ok(i), Ok(n)) = (i.parse::<u64>(), n.parse::<u64>()) else { continue };
            let (_, manifest) = file_names(Some((i, n)));
            found.push(Shard { index: i, count: n, csv: d.join(&name), manifest: d.join(manifest) });
        }
    }
    if found.is_empty() {
        return Err(MergeError::None(dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")));
    }
    Ok(found)
}

/// Sort the shards by index; refuse them unless they are each shard of one
/// count once. Returns the count.
fn check_shard_set(found: &mut [Shard]) -> Result<u64, MergeError> {
    let count = found[0].count;
    if let Some(other) = found.iter().find(|f| f.count != count) {
        return Err(MergeError::Count(format!(
            "{} says {count}, {} says {}",
            found[0].csv.display(),
            other.csv.display(),
            other.count
        )));
    }
    found.sort_by_key(|f| f.index);
    for w in found.windows(2) {
        if w[0].index == w[1].index {
            return Err(MergeError::Duplicate {
                index: w[0].index,
                count,
                first: w[0].csv.display().to_string(),
                second: w[1].csv.display().to_string(),
            });
        }
    }
    let missing: Vec<u64> = (0..count).filter(|i| found.binary_search_by_key(i, |f| f.index).is_err()).collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing { missing, count });
    }
    Ok(count)
}

/// A shard's manifest.
fn read_manifest(p: &Path) -> Result<serde_json::Value, MergeError> {
    let bytes = std::fs::read(p).map_err(|e| bad(p, format!("cannot read the shard's manifest: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| bad(p, format!("not a sweep manifest: {e}")))
}

impl Shape {
    /// The shape manifest `man0` (`reference`) records.
    fn of(reference: &serde_json::Value, man0: &Path) -> Result<Shape, MergeError> {
        let axes: Vec<String> = reference["sweep"]["axes"]
            .as_array()
            .map(|a| a.iter().filter_map(|k| k[0].as_str().map(String::from)).collect())
            .ok_or_else(|| bad(man0, "no sweep axes in the manifest".into()))?;
        let histogram: Vec<u64> = reference["sweep"]["histogram"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
            .unwrap_or_default();
        let points =
            reference["sweep_points"].as_u64().ok_or_else(|| bad(man0, "no sweep_points in the manifest".into()))?;
        let shape = SweepSpec {
            replicates: 0,
            target: None,
            axes: axes.iter().map(|k| (k.clone(), Vec::new())).collect(),
            histogram: Vec::new(),
            trace_point: 0,
            sampling: crate::scenario::Sampling::Grid,
            space_filling: None,
        };
        // raw.csv lists the drawn value of every [uncertain] key the manifest records.
        let uncertain: Vec<String> = reference["uncertain"]
            .as_array()
            .map(|a| a.iter().filter_map(|u| u["key"].as_str().map(String::from)).collect())
            .unwrap_or_default();
        let (header, raw_head) = (csv_header(&shape), raw_header(&shape, &uncertain));
        Ok(Shape { axes: axes.len(), histogram, points, header, raw_head })
    }
}

/// The raw table of every shard, or `None` when no shard has one; refused
/// when only some have.
fn raw_files(found: &[Shard]) -> Result<Option<Vec<PathBuf>>, MergeError> {
    let raw_files: Vec<PathBuf> =
        found.iter().map(|s| s.csv.with_file_name(raw_name(Some((s.index, s.count))))).collect();
    let with_raw = raw_files.iter().filter(|p| p.exists()).count();
    if with_raw != 0 && with_raw != raw_files.len() {
        let absent = raw_files.iter().find(|p| !p.exists()).expect("one is missing");
        return Err(bad(
            absent,
            "missing, while other shards have their raw table (were all shards run with --raw?)".into(),
        ));
    }
    Ok((with_raw > 0).then_some(raw_files))
}

/// Check one shard against the reference manifest and its range, and add
/// its rows (and raw rows) to `j`.
fn join_shard(
    shard: &Shard,
    raw_file: Option<&Path>,
    count: u64,
    reference: &serde_json::Value,
    man0: &Path,
    shape: &Shape,
    j: &mut Joined,
) -> Result<(), MergeError> {
    let (i, csv, man) = (shard.index, &shard.csv, &shard.manifest);
    let m = read_manifest(man)?;
    for what in
        ["scenario", "scenario_text", "seed", "overrides", "sweep", "uncertain", "resolved_base", "mesobench_version"]
    {
        if m[what] != reference[what] {
            return Err(MergeError::Mismatch {
                file: man.display().to_string(),
                reference: man0.display().to_string(),
                what: what.to_string(),
            });
        }
    }
    let range = shard_range(shape.points, i, count);
    let part: SweepSummary = serde_json::from_value(m["summary"].clone()).map_err(|e| bad(man, e.to_string()))?;
    if part.points != range.end - range.start {
        return Err(bad(
            man,
            format!("its summary counts {} points, shard {i} of {count} has {}", part.points, range.end - range.start),
        ));
    }
    let text = std::fs::read_to_string(csv).map_err(|e| bad(csv, e.to_string()))?;
    let shots = shard_shots(shard, &text, &range, shape, j)?;
    if shots.iter().sum::<u64>() != part.shots {
        return Err(bad(
            csv,
            format!("its rows hold {} shots, its manifest says {}", shots.iter().sum::<u64>(), part.shots),
        ));
    }
    j.table.extend_from_slice(&text.as_bytes()[shape.header.len()..]);
    j.total.points += part.points;
    j.total.sessions += part.sessions;
    j.total.shots += part.shots;
    if let (Some(w), Some(raw_file)) = (j.raw.as_mut(), raw_file) {
        merge_raw_shard(raw_file, &shape.raw_head, range.start, &shots, csv, w)?;
    }
    Ok(())
}

/// The shots of each row of shard table `text`, every row checked against
/// the shard's `range`; their statistics are kept in `j` for the plots.
fn shard_shots(
    shard: &Shard,
    text: &str,
    range: &std::ops::Range<u64>,
    shape: &Shape,
    j: &mut Joined,
) -> Result<Vec<u64>, MergeError> {
    let (i, count, csv) = (shard.index, shard.count, &shard.csv);
    let shots_col = 1 + shape.axes;
    let rows = shard_lines(csv, text, &shape.header)?;
    let mut shots = Vec::with_capacity(rows.len());
    for (k, (line_no, f)) in rows.iter().enumerate() {
        let expected = range.start + k as u64;
        let p: u64 = f[0].parse().map_err(|_| bad(csv, format!("line {line_no}: point {:?} is not an index", f[0])))?;
        if p != expected || p >= range.end {
            return Err(bad(
                csv,
                format!(
                    "line {line_no}: point {p} where {} was expected (shard {i} of {count} holds points {} to {})",
                    if expected < range.end { expected.to_string() } else { "the end of the file".into() },
                    range.start,
                    range.end - 1
                ),
            ));
        }
        let s: u64 = f[shots_col]
            .parse()
            .map_err(|_| bad(csv, format!("line {line_no}: shots {:?} is not a count", f[shots_col])))?;
        shots.push(s);
        if j.keep {
            j.stats.push(stats_from_row(f, shape.axes));
        }
    }
    if rows.len() as u64 != range.end - range.start {
        return Err(bad(
            csv,
            format!(
                "holds {} of the {} points of shard {i} of {count} (points {} to {}): rows are missing; rerun the shard with --resume",
                rows.len(),
                range.end - range.start,
                range.start,
                range.end - 1
            ),
        ));
    }
    Ok(shots)
}

/// What the plots are drawn from, the histogram points' shots recomputed
/// (a few points; deterministic).
fn with_histograms(
    prep: Prepared,
    overrides: Vec<String>,
    sc: Scenario,
    histogram: &[u64],
    keep: bool,
    mut stats: Vec<PointStats>,
) -> Result<MergedPlots, String> {
    let spec = sc.sweep.clone().ok_or("the recorded scenario has no [sweep] table")?;
    if keep {
        for &h in histogram {
            if let Some(slot) = stats.get_mut(h as usize) {
                *slot = as_written(
                    run_point(&prep, &sc, &spec, &overrides, h, true, false)
                        .map_err(|e| format!("cannot recompute histogram point {h}: {e}"))?,
                );
            }
        }
    }
    Ok(MergedPlots { prep, overrides, scenario: sc, points: if keep { stats } else { Vec::new() } })
}

/// Write the merged raw table (from `raw_tmp`), table and manifest into `out`.
fn write_merged(
    out: &Path,
    raw: Option<std::io::BufWriter<std::fs::File>>,
    raw_tmp: &Path,
    table: &[u8],
    reference: &serde_json::Value,
    total: &SweepSummary,
) -> Result<(), MergeError> {
    std::fs::create_dir_all(out).map_err(|e| bad(out, e.to_string()))?;
    if let Some(w) = raw {
        let f = w.into_inner().map_err(|e| bad(raw_tmp, e.to_string()))?;
        f.sync_all().map_err(|e| bad(raw_tmp, e.to_string()))?;
        std::fs::rename(raw_tmp, out.join("raw.csv")).map_err(|e| bad(out, e.to_string()))?;
    }
    crate::files::write_atomic(&out.join("sweep.csv"), table).map_err(|e| bad(out, e.to_string()))?;
    let mut merged = reference.clone();
    if let Some(obj) = merged.as_object_mut() {
        obj.remove("shard");
        obj.insert("summary".into(), serde_json::to_value(total).expect("plain data"));
    }
    crate::files::write_atomic(&out.join("sweep_manifest.json"), &crate::files::json_bytes(&merged))
        .map_err(|e| bad(out, e.to_string()))
}

/// The scenario a sweep manifest records (its text and overrides), checked
/// against the resolved base scenario the manifest holds.
fn rebuild(m: &serde_json::Value) -> Result<(Prepared, Vec<String>, Scenario), String> {
    let text = m["scenario_text"].as_str().ok_or("the manifest has no scenario_text")?;
    let name = m["source"].as_str().unwrap_or("").to_string();
    let overrides: Vec<String> =
        serde_json::from_value(m["overrides"].clone()).map_err(|e| format!("its overrides are unreadable: {e}"))?;
    let dir = Path::new(&name).parent().map(Path::to_path_buf).unwrap_or_default();
    let source = crate::scenario::Source { name, text: text.to_string(), dir };
    let prep = Prepared::new(&source, m["scenario"].as_str().unwrap_or("scenario")).map_err(|e| e.to_string())?;
    let sc = prep.with(&overrides).map_err(|e| e.to_string())?;
    if serde_json::to_value(&sc).ok().as_ref() != Some(&m["resolved_base"]) {
        return Err("the scenario it records no longer resolves to its resolved_base".into());
    }
    Ok((prep, overrides, sc))
}
