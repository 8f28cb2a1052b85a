//! Dose tables from the bench or from mesobench (`mesobench accept`): a
//! CSV with a `dose_ul` column, or a single column of doses, read with
//! bounded memory; rows selected with `--where`; every error names the file,
//! and the line when a row is at fault.

use std::path::Path;

/// A dose table that cannot be used: the message names the file (and line).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct DoseFileError(pub String);

macro_rules! err {
    ($($t:tt)*) => { DoseFileError(format!($($t)*)) };
}
macro_rules! fail {
    ($($t:tt)*) => { return Err(err!($($t)*)) };
}

/// Largest dose magnitude and target `accept` takes, µL (the statistics of
/// up to [`MAX_DOSES`] such doses stay far from overflow).
pub const MAX_UL: f64 = 1e6;
/// Most doses `accept` reads, and the largest `tolerance-k --n`.
pub const MAX_DOSES: usize = 10_000_000;
/// Longest line of a dose file, bytes.
pub const MAX_LINE: u64 = 1 << 20;
/// Largest dose file, bytes.
pub const MAX_CSV: u64 = 1 << 30;

/// A reader that refuses a line longer than [`MAX_LINE`] or a file larger
/// than [`MAX_CSV`], so an endless or binary file (/dev/zero) ends in an
/// error instead of filling memory.
struct CappedReader<R> {
    inner: R,
    line: u64,
    since_newline: u64,
    total: u64,
}

impl<R: std::io::Read> std::io::Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if b == b'\n' {
                self.line += 1;
                self.since_newline = 0;
            } else {
                self.since_newline += 1;
                if self.since_newline > MAX_LINE {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("line {} is longer than {} MiB: not a dose table", self.line, MAX_LINE >> 20),
                    ));
                }
            }
        }
        self.total += n as u64;
        if self.total > MAX_CSV {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("larger than {} MiB: not a dose table", MAX_CSV >> 20),
            ));
        }
        Ok(n)
    }
}

/// The column named `name` (0-based), if any; an error if two columns have that name.
fn column(file: &str, header: &[String], name: &str) -> Result<Option<usize>, DoseFileError> {
    let at: Vec<usize> = header.iter().enumerate().filter(|(_, h)| *h == name).map(|(i, _)| i).collect();
    match at[..] {
        [] => Ok(None),
        [c] => Ok(Some(c)),
        _ => {
            let cols: Vec<String> = at.iter().map(|c| (c + 1).to_string()).collect();
            fail!(
                "{file}:1: columns {} are {} named {name}: which one to use is ambiguous; keep one",
                cols.join(" and "),
                if cols.len() == 2 { "both" } else { "all" }
            )
        }
    }
}

/// Whether a field holds the `--where` value: the same text, or the same number.
fn same_value(field: &str, want: &str) -> bool {
    field == want || matches!((field.parse::<f64>(), want.parse::<f64>()), (Ok(a), Ok(b)) if a == b)
}

/// A column that must hold one value among the selected rows (`arm`, `target_ul`).
struct Guard {
    col: usize,
    name: &'static str,
    what: &'static str,
    seen: Vec<String>,
    more: bool,
}

/// Where the doses are in a file: its header (empty for a file without
/// one), its width and the dose column.
struct Layout {
    headerless: bool,
    header: Vec<String>,
    width: usize,
    dose_col: usize,
}

/// The error of the CSV reader on `file`, with the line it gives.
fn cannot(file: &str, e: csv::Error) -> DoseFileError {
    match e.kind() {
        csv::ErrorKind::Io(io) => err!("{file}: {io}"),
        _ => {
            let line = e.position().map(|p| format!(":{}", p.line())).unwrap_or_default();
            let text = e.to_string();
            // csv's message starts with the position it gives; keep what follows.
            let text = text.split_once("): ").map(|(_, t)| t.to_string()).unwrap_or(text);
            err!("{file}{line}: {text}")
        }
    }
}

/// The layout the first row of `file` gives.
fn layout(file: &str, first: &csv::StringRecord) -> Result<Layout, DoseFileError> {
    let cells: Vec<String> = first
        .iter()
        .enumerate()
        .map(|(i, f)| if i == 0 { f.trim_start_matches('\u{feff}') } else { f }.trim().to_string())
        .collect();
    // A first row of numbers is data, not a header.
    let headerless = cells.iter().all(|c| c.parse::<f64>().is_ok());
    let header: Vec<String> = if headerless { Vec::new() } else { cells.clone() };
    let width = cells.len();
    let dose_col = match column(file, &header, "dose_ul")? {
        Some(c) => c,
        None if width == 1 => 0,
        None if headerless => fail!(
            "{file}:1: {width} columns of numbers and no header: a header row with a dose_ul column, or one column of doses in µL"
        ),
        None => fail!("{file}:1: no dose_ul column (columns: {})", header.join(", ")),
    };
    Ok(Layout { headerless, header, width, dose_col })
}

/// The `--where` filters as (column, value).
fn wanted<'a>(
    file: &str,
    header: &[String],
    filters: &'a [(String, String)],
) -> Result<Vec<(usize, &'a str)>, DoseFileError> {
    let columns = if header.is_empty() { "none: the file has no header row".to_string() } else { header.join(", ") };
    let mut wanted = Vec::new();
    for (col, value) in filters {
        match column(file, header, col)? {
            Some(c) => wanted.push((c, value.as_str())),
            None => fail!("{file}: --where {col}={value}: there is no column {col} (columns: {columns})"),
        }
    }
    Ok(wanted)
}

/// The guards of the `arm` and `target_ul` columns the header has.
fn guards(file: &str, header: &[String]) -> Result<Vec<Guard>, DoseFileError> {
    let mut guards = Vec::new();
    for (name, what) in [("arm", "arms"), ("target_ul", "targets")] {
        if let Some(col) = column(file, header, name)? {
            guards.push(Guard { col, name, what, seen: Vec::new(), more: false });
        }
    }
    Ok(guards)
}

impl Guard {
    /// Note value `v` of a selected row (the first 20 distinct ones).
    fn see(&mut self, v: &str) {
        if !self.seen.iter().any(|s| same_value(s, v)) {
            if self.seen.len() < 20 {
                self.seen.push(v.to_string());
            } else {
                self.more = true;
            }
        }
    }
}

/// The doses of the data `rows` that match every filter in `wanted`, each
/// checked; the guards see every selected row.
fn select(
    file: &str,
    rows: impl Iterator<Item = csv::Result<csv::StringRecord>>,
    l: &Layout,
    wanted: &[(usize, &str)],
    guards: &mut [Guard],
) -> Result<Vec<f64>, DoseFileError> {
    let width = l.width;
    let mut out = Vec::new();
    for rec in rows {
        let rec = rec.map_err(|e| cannot(file, e))?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        if rec.len() != width {
            fail!("{file}:{line}: {} fields where the first row has {width}", rec.len());
        }
        let field = |c: usize| rec.get(c).unwrap_or("").trim();
        if !wanted.iter().all(|(c, v)| same_value(field(*c), v)) {
            continue;
        }
        for g in guards.iter_mut() {
            g.see(field(g.col));
        }
        let text = field(l.dose_col);
        let v: f64 = text.parse().map_err(|_| err!("{file}:{line}: dose {text:?} is not a number"))?;
        if !(v.is_finite() && v.abs() <= MAX_UL) {
            fail!("{file}:{line}: dose {text} is not allowed: a finite volume in µL, at most {MAX_UL} in magnitude");
        }
        if out.len() == MAX_DOSES {
            fail!("{file}:{line}: more than {MAX_DOSES} doses: at most {MAX_DOSES}");
        }
        out.push(v);
    }
    Ok(out)
}

/// Refuse selected rows that mix arms or targets: their doses would be pooled.
fn check_pooled(file: &str, guards: &[Guard]) -> Result<(), DoseFileError> {
    let pooled: Vec<String> = guards
        .iter()
        .filter(|g| g.seen.len() > 1)
        .map(|g| {
            let count = if g.more { "more than 20".to_string() } else { g.seen.len().to_string() };
            format!(
                "{count} {} in column {} ({}{})",
                g.what,
                g.name,
                g.seen.join(", "),
                if g.more { ", …" } else { "" }
            )
        })
        .collect();
    if !pooled.is_empty() {
        let hint: Vec<String> = guards.iter().map(|g| format!("--where {}={}", g.name, g.seen[0])).collect();
        fail!("{file}: the selected rows mix {}; select one with {}", pooled.join(" and "), hint.join(" "));
    }
    Ok(())
}

/// Doses (µL) from a CSV: the `dose_ul` column, or the only column (a file
/// whose first row is all numbers has no header), of the rows that match
/// every `--where` filter. Refuses to pool the arms or targets of an
/// arms.csv. Every error names the file, and the line when a row is at fault.
pub fn read(path: &Path, filters: &[(String, String)]) -> Result<Vec<f64>, DoseFileError> {
    let file = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|e| DoseFileError(format!("cannot read {file}: {e}")))?;
    let reader = CappedReader { inner: std::io::BufReader::new(f), line: 1, since_newline: 0, total: 0 };
    let mut r = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(reader);
    let mut records = r.records();
    let first = match records.next() {
        None => fail!("{file}: no doses (the file is empty): a dose_ul column, or one column of doses in µL"),
        Some(rec) => rec.map_err(|e| cannot(&file, e))?,
    };
    let l = layout(&file, &first)?;
    let wanted = wanted(&file, &l.header, filters)?;
    // Without a single arm and target the doses of different arms or targets would be pooled.
    let mut guards = guards(&file, &l.header)?;
    let rows = std::iter::once(Ok(first)).chain(records).skip(usize::from(!l.headerless));
    let out = select(&file, rows, &l, &wanted, &mut guards)?;
    if out.is_empty() && !filters.is_empty() {
        let f: Vec<String> = filters.iter().map(|(c, v)| format!("{c}={v}")).collect();
        fail!("{file}: no row has {}", f.join(" and "));
    }
    check_pooled(&file, &guards)?;
    if out.len() < 2 {
        fail!("{file}: {} dose{} selected: at least 2 are needed", out.len(), if out.len() == 1 { "" } else { "s" });
    }
    Ok(out)
}
