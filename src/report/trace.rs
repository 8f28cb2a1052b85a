//! `trace.csv` streamed row by row as the simulation samples, so a long run
//! never holds its trace in memory.

use super::rows::FwColumns;
use super::ReportError;
use crate::files::tmp_path;
use crate::scenario::Scenario;
use crate::sim::{TraceSample, TraceSink};
use std::path::{Path, PathBuf};

/// `trace.csv` as a table of rows on any writer: its header (with the
/// firmware's telemetry columns) first, then one row per sample.
pub struct TraceTable<W: std::io::Write> {
    writer: csv::Writer<W>,
    fw: FwColumns,
    error: Option<std::io::Error>,
    rows: u64,
}

impl<W: std::io::Write> TraceTable<W> {
    /// A table for `sc`'s trace on `w`; the header is written at once.
    pub fn new(w: W, sc: &Scenario) -> TraceTable<W> {
        let fw = FwColumns::of(sc);
        let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(w);
        let error = writer.write_record(fw.header()).err().map(std::io::Error::other);
        TraceTable { writer, fw, error, rows: 0 }
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The writer back, or the first write error.
    pub fn into_inner(mut self) -> std::io::Result<W> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.writer.into_inner().map_err(|e| std::io::Error::other(e.to_string()))
    }
}

impl<W: std::io::Write> TraceSink for TraceTable<W> {
    fn sample(&mut self, s: &TraceSample) {
        if self.error.is_some() {
            return;
        }
        match self.writer.serialize(self.fw.row(s)) {
            Ok(()) => self.rows += 1,
            Err(e) => self.error = Some(std::io::Error::other(e)),
        }
    }
}

/// `trace.csv` written row by row as the simulation samples, to a
/// temporary name in the output folder; [`TraceCsv::finish`] renames it into
/// place, and dropping it unfinished (a failed run) removes it.
pub struct TraceCsv {
    path: PathBuf,
    tmp: PathBuf,
    /// The folder, when this created it (removed again, if empty, by a failed run).
    created: Option<PathBuf>,
    table: Option<TraceTable<std::fs::File>>,
}

impl TraceCsv {
    /// Create `dir` if needed and open its temporary trace file for `sc`'s trace.
    pub fn create(dir: &Path, sc: &Scenario) -> Result<TraceCsv, ReportError> {
        let created = (!dir.exists()).then(|| dir.to_owned());
        std::fs::create_dir_all(dir).map_err(|source| ReportError::Io { path: dir.to_owned(), source })?;
        let path = dir.join("trace.csv");
        let tmp = tmp_path(&path);
        let file = std::fs::File::create(&tmp).map_err(|source| ReportError::Io { path: path.clone(), source })?;
        Ok(TraceCsv { path, tmp, created, table: Some(TraceTable::new(file, sc)) })
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.table.as_ref().map_or(0, TraceTable::rows)
    }

    /// Flush, sync and rename into `trace.csv`; the first write error, if any.
    pub fn finish(mut self) -> Result<PathBuf, ReportError> {
        let io = |source| ReportError::Io { path: self.path.clone(), source };
        let table = self.table.take().expect("an unfinished trace");
        let file = table.into_inner().map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(io)?;
        self.created = None;
        Ok(self.path.clone())
    }
}

impl TraceSink for TraceCsv {
    fn sample(&mut self, s: &TraceSample) {
        if let Some(t) = self.table.as_mut() {
            t.sample(s);
        }
    }
}

impl Drop for TraceCsv {
    fn drop(&mut self) {
        if self.table.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
            if let Some(dir) = &self.created {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}
