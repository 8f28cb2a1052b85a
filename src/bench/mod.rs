//! Bench data: traces logged on an injection test rig and per-shot masses
//! from a balance, read into SI and cut into shots (see `docs/calibration.md`).
//!
//! A trace is a delimited text file (`,`, `;` or tab, sniffed from the
//! header row; a decimal comma is read where the delimiter is not a comma)
//! with one header row. A channel map says which column is which mesobench
//! [`Signal`]; each column's unit comes from its header (`P syringe [bar]`,
//! `p_kpa`, `Time (ms)`) or from the map. Pressures are gauge unless the
//! unit says absolute (`bar(a)`, `kPa abs`, `psia`). Parquet files
//! (`.parquet`, or the `PAR1` magic) are read too, one column per
//! top-level field; their "line" in messages is the row number from 1.

pub mod units;

use std::path::Path;

use crate::sim::TraceSample;
pub use units::{ColumnUnit, Quantity};

/// Largest bench file read, MiB (a 20 kHz, 10-channel log of 10 minutes is
/// about 1 GiB as text; split longer logs).
pub const MAX_TRACE_MIB: u64 = 512;

/// A mesobench signal that a bench column can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Sample time.
    Time,
    /// The valve command (logic level or drive voltage): aligns shots.
    ValveCommand,
    /// A trigger column (aligns shots on its rising edges).
    Trigger,
    /// Coil current.
    CoilCurrent,
    /// Regulator output pressure.
    PSupply,
    /// Piston-chamber pressure.
    PChamber,
    /// Pressure between syringe and needle.
    PSyringe,
    /// Plunger travel.
    PlungerPosition,
    /// Needle flow.
    Flow,
    /// Volume delivered since the start of the log.
    CumulativeVolume,
}

impl Signal {
    /// Every signal with its name in fit files.
    pub const ALL: [Signal; 10] = [
        Signal::Time,
        Signal::ValveCommand,
        Signal::Trigger,
        Signal::CoilCurrent,
        Signal::PSupply,
        Signal::PChamber,
        Signal::PSyringe,
        Signal::PlungerPosition,
        Signal::Flow,
        Signal::CumulativeVolume,
    ];

    /// Name in fit files and outputs.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Time => "time",
            Signal::ValveCommand => "valve_command",
            Signal::Trigger => "trigger",
            Signal::CoilCurrent => "coil_current",
            Signal::PSupply => "p_supply",
            Signal::PChamber => "p_chamber",
            Signal::PSyringe => "p_syringe",
            Signal::PlungerPosition => "plunger_position",
            Signal::Flow => "flow",
            Signal::CumulativeVolume => "cumulative_volume",
        }
    }

    /// The signal of a name.
    pub fn from_name(name: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Every name, for messages.
    pub fn names() -> String {
        Signal::ALL.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
    }

    /// What it measures.
    pub fn quantity(self) -> Quantity {
        match self {
            Signal::Time => Quantity::Time,
            Signal::ValveCommand | Signal::Trigger => Quantity::Level,
            Signal::CoilCurrent => Quantity::Current,
            Signal::PSupply | Signal::PChamber | Signal::PSyringe => Quantity::Pressure,
            Signal::PlungerPosition => Quantity::Length,
            Signal::Flow => Quantity::Flow,
            Signal::CumulativeVolume => Quantity::Volume,
        }
    }

    /// Whether a fit compares it with the simulation (the rest align shots).
    pub fn is_measured(self) -> bool {
        !matches!(self, Signal::Time | Signal::ValveCommand | Signal::Trigger)
    }

    /// The simulated value of this signal in a trace sample, SI (pressures gauge).
    pub fn of(self, s: &TraceSample) -> f64 {
        match self {
            Signal::Time => s.t,
            Signal::ValveCommand | Signal::Trigger => s.command,
            Signal::CoilCurrent => s.coil_current,
            Signal::PSupply => s.supply,
            Signal::PChamber => s.chamber,
            Signal::PSyringe => s.syringe,
            Signal::PlungerPosition => s.plunger,
            Signal::Flow => s.flow,
            Signal::CumulativeVolume => s.delivered,
        }
    }

    /// The unit outputs and plots use, with its SI value.
    pub fn display_unit(self) -> (&'static str, f64) {
        match self.quantity() {
            Quantity::Time => ("ms", 1e-3),
            Quantity::Pressure => ("kPa", 1e3),
            Quantity::Current => ("A", 1.0),
            Quantity::Length => ("mm", 1e-3),
            Quantity::Volume => ("µL", 1e-9),
            Quantity::Flow => ("µL/s", 1e-9),
            Quantity::Mass => ("mg", 1e-6),
            Quantity::Level => ("-", 1.0),
        }
    }

    /// Whether the fit compares the change since the shot's edge rather
    /// than the level (a cumulative volume or a position whose zero the
    /// bench sets where it likes).
    pub fn relative(self) -> bool {
        matches!(self, Signal::CumulativeVolume | Signal::PlungerPosition)
    }
}

/// How one column is read.
#[derive(Debug, Clone)]
pub struct ColumnSpec {
    /// Header as written in the file.
    pub column: String,
    /// Which signal it is.
    pub signal: Signal,
    /// Unit given in the channel map (overrides the header's).
    pub unit: Option<String>,
    /// Noise standard deviation, SI; estimated from the pre-trigger baseline when absent.
    pub sd: Option<f64>,
    /// Where the channel map wrote this column (`file:line:column`), for messages.
    pub origin: String,
}

/// One channel of a bench trace, in SI (pressures gauge).
#[derive(Debug, Clone)]
pub struct Channel {
    /// Which signal.
    pub signal: Signal,
    /// Header in the file.
    pub column: String,
    /// Values, one per sample.
    pub values: Vec<f64>,
    /// Noise standard deviation given in the channel map, SI.
    pub sd: Option<f64>,
}

/// A bench trace: sample times and the channels the map names.
#[derive(Debug, Clone)]
pub struct BenchTrace {
    /// File it was read from.
    pub file: String,
    /// Sample times, s, strictly increasing.
    pub time: Vec<f64>,
    /// Channels in map order (time excluded).
    pub channels: Vec<Channel>,
}

/// Why bench data cannot be used; every message names the file and where in it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BenchError(pub String);

fn fail(msg: impl Into<String>) -> BenchError {
    BenchError(msg.into())
}

/// Read a bench file as text, refusing one larger than [`MAX_TRACE_MIB`].
fn read_text(path: &Path) -> Result<String, BenchError> {
    use std::io::Read;
    let limit = MAX_TRACE_MIB << 20;
    let file =
        std::fs::File::open(path).map_err(|e| fail(format!("cannot read bench data {}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read bench data {}: {e}", path.display())))?;
    if bytes.len() as u64 > limit {
        return Err(fail(format!(
            "{} is larger than {MAX_TRACE_MIB} MiB: split the log into shorter files",
            path.display()
        )));
    }
    // A BOM from a spreadsheet export.
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).map(<[u8]>::to_vec).unwrap_or(bytes);
    String::from_utf8(bytes).map_err(|e| {
        fail(format!(
            "{}: not UTF-8 text (byte {}): export the log as CSV",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

/// The delimiter of a header row: tab or `;` when present, else `,`.
pub fn sniff_delimiter(header: &str) -> u8 {
    if header.contains('\t') {
        b'\t'
    } else if header.contains(';') {
        b';'
    } else {
        b','
    }
}

/// A delimited table: header and rows of numbers, with the line of each row.
struct Table {
    delimiter: u8,
    headers: Vec<String>,
    rows: Vec<(u64, Vec<String>)>,
}

/// Whether a file is Parquet: its `.parquet`/`.pq` extension or its magic bytes.
fn is_parquet(path: &Path) -> bool {
    use std::io::Read;
    if path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"))
    {
        return true;
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"PAR1"
}

/// A Parquet file as a table: one column per top-level field (numbers,
/// booleans as 0/1, text), rows numbered from 1 in place of lines.
fn read_parquet(path: &Path) -> Result<Table, BenchError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let file = path.display();
    let cannot = |e: &dyn std::fmt::Display| fail(format!("cannot read bench data {file} (Parquet): {e}"));
    let f = std::fs::File::open(path).map_err(|e| cannot(&e))?;
    let size = f.metadata().map_err(|e| cannot(&e))?.len();
    if size > MAX_TRACE_MIB << 20 {
        return Err(fail(format!("{file} is larger than {MAX_TRACE_MIB} MiB: split the log into shorter files")));
    }
    let reader = SerializedFileReader::new(f).map_err(|e| cannot(&e))?;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let root = schema.root_schema();
    let headers: Vec<String> = root.get_fields().iter().map(|c| c.name().to_string()).collect();
    if let Some(nested) = root.get_fields().iter().find(|c| c.is_group()) {
        return Err(fail(format!(
            "{file}: column {:?} is nested (a group): bench data must be flat columns of numbers",
            nested.name()
        )));
    }
    let mut rows = Vec::new();
    for (i, row) in reader.get_row_iter(None).map_err(|e| cannot(&e))?.enumerate() {
        let row = row.map_err(|e| cannot(&e))?;
        let cells = row
            .get_column_iter()
            .map(|(_, v)| match v {
                Field::Double(x) => format!("{x:?}"),
                Field::Float(x) => format!("{:?}", f64::from(*x)),
                Field::Bool(b) => if *b { "1" } else { "0" }.to_string(),
                Field::Byte(x) => x.to_string(),
                Field::Short(x) => x.to_string(),
                Field::Int(x) => x.to_string(),
                Field::Long(x) => x.to_string(),
                Field::UByte(x) => x.to_string(),
                Field::UShort(x) => x.to_string(),
                Field::UInt(x) => x.to_string(),
                Field::ULong(x) => x.to_string(),
                Field::Str(s) => s.clone(),
                Field::Null => String::new(),
                other => other.to_string(),
            })
            .collect();
        rows.push((i as u64 + 1, cells));
    }
    Ok(Table { delimiter: b',', headers, rows })
}

fn read_table(path: &Path) -> Result<Table, BenchError> {
    if is_parquet(path) {
        return read_parquet(path);
    }
    let text = read_text(path)?;
    let file = path.display();
    let first = text.lines().find(|l| !l.trim().is_empty() && !l.starts_with('#'));
    let Some(first) = first else {
        return Err(fail(format!("{file}: no header row: the first line must name the columns")));
    };
    let delimiter = sniff_delimiter(first);
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| fail(format!("{file}: the header row cannot be read: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            fail(format!("{file}:{line}: {}", csv_reason(&e)))
        })?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        rows.push((line, rec.iter().map(str::to_string).collect()));
    }
    Ok(Table { delimiter, headers, rows })
}

fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("this row has {len} fields, the header has {expected_len}")
        }
        _ => e.to_string(),
    }
}

/// A number as a logger writes it (`1.5`, `1,5` where the delimiter is not a comma, `1e-3`).
fn number(cell: &str, decimal_comma: bool) -> Option<f64> {
    let x = if decimal_comma && cell.contains(',') { cell.replace(',', ".").parse() } else { cell.parse() };
    x.ok().filter(|v: &f64| v.is_finite())
}

/// The unit of a column: the channel map's, else the header's.
fn column_unit(file: &str, spec: &ColumnSpec) -> Result<ColumnUnit, BenchError> {
    let want = spec.signal.quantity();
    let written = spec.unit.clone().or_else(|| units::in_header(&spec.column));
    let Some(written) = written else {
        if want == Quantity::Level {
            return Ok(ColumnUnit { name: "-".into(), quantity: Quantity::Level, scale: 1.0, absolute: false });
        }
        return Err(fail(format!(
            "{}: column {:?} of {file} ({}) has no unit: write it in the header (\"{} [kPa]\", \"p_kpa\") \
             or give unit = \"…\" in the channel map; {} units: {}",
            spec.origin,
            spec.column,
            spec.signal.name(),
            spec.column,
            want.name(),
            want.allowed()
        )));
    };
    match units::parse(&written) {
        Some(u) if u.quantity == want || want == Quantity::Level => Ok(u),
        Some(u) => Err(fail(format!(
            "{}: column {:?} of {file}: unit {written:?} is a {} unit, but {} is a {}: use one of {}",
            spec.origin,
            spec.column,
            u.quantity.name(),
            spec.signal.name(),
            want.name(),
            want.allowed()
        ))),
        None => Err(fail(format!(
            "{}: column {:?} of {file}: unit {written:?} is not known; {} units: {}",
            spec.origin,
            spec.column,
            want.name(),
            want.allowed()
        ))),
    }
}

/// Read a bench trace: the time column (a [`Signal::Time`] entry of `specs`,
/// or the first column whose header starts with `time` or is `t`) and every
/// mapped column, converted to SI; absolute pressures become gauge with `p_atm`.
pub fn read_trace(path: &Path, specs: &[ColumnSpec], p_atm: f64) -> Result<BenchTrace, BenchError> {
    let table = read_table(path)?;
    let file = path.display().to_string();
    let columns = || table.headers.iter().map(|h| format!("{h:?}")).collect::<Vec<_>>().join(", ");
    let index_of = |spec: &ColumnSpec| -> Result<usize, BenchError> {
        table.headers.iter().position(|h| h == &spec.column).ok_or_else(|| {
            fail(format!(
                "{}: channel {:?} names no column of {file}; its columns are {}",
                spec.origin,
                spec.column,
                columns()
            ))
        })
    };
    let time_spec = match specs.iter().find(|s| s.signal == Signal::Time) {
        Some(s) => s.clone(),
        None => {
            let h = table.headers.iter().find(|h| {
                let l = h.to_lowercase();
                l.starts_with("time") || l == "t" || l.starts_with("t [") || l.starts_with("t_") || l.starts_with("t (")
            });
            let Some(h) = h else {
                return Err(fail(format!(
                    "{file}: no time column: name one in the channel map (\"…\" = {{ signal = \"time\" }}); \
                     its columns are {}",
                    columns()
                )));
            };
            ColumnSpec { column: h.clone(), signal: Signal::Time, unit: None, sd: None, origin: format!("{file}:1") }
        }
    };
    // Where the delimiter is not a comma, a logger may write decimal commas.
    let decimal_comma = table.delimiter != b',';
    let read_column = |spec: &ColumnSpec| -> Result<Vec<f64>, BenchError> {
        let k = index_of(spec)?;
        let unit = column_unit(&file, spec)?;
        let offset = if unit.quantity == Quantity::Pressure && unit.absolute { p_atm } else { 0.0 };
        let mut out = Vec::with_capacity(table.rows.len());
        for (line, row) in &table.rows {
            let cell = &row[k];
            let v = number(cell, decimal_comma).ok_or_else(|| {
                fail(format!("{file}:{line}:{}: column {:?}: {cell:?} is not a number", k + 1, spec.column))
            })?;
            out.push(v * unit.scale - offset);
        }
        Ok(out)
    };
    let time = read_column(&time_spec)?;
    if time.len() < 2 {
        return Err(fail(format!("{file}: {} sample(s): a trace needs at least two rows", time.len())));
    }
    for (i, w) in time.windows(2).enumerate() {
        if w[1] <= w[0] {
            let line = table.rows[i + 1].0;
            return Err(fail(format!(
                "{file}:{line}: time {} s follows {} s: sample times must increase",
                crate::text::g6(w[1]),
                crate::text::g6(w[0])
            )));
        }
    }
    let mut channels = Vec::new();
    for spec in specs.iter().filter(|s| s.signal != Signal::Time) {
        let values = read_column(spec)?;
        channels.push(Channel { signal: spec.signal, column: spec.column.clone(), values, sd: spec.sd });
    }
    Ok(BenchTrace { file, time, channels })
}

impl BenchTrace {
    /// The channel of a signal.
    pub fn channel(&self, signal: Signal) -> Option<&Channel> {
        self.channels.iter().find(|c| c.signal == signal)
    }
}

/// Rising edges of `v(t)` through the middle of its range, with hysteresis
/// (re-armed only after falling below 30 % of the range), each located by
/// linear interpolation between the samples around the 50 % level.
pub fn rising_edges(t: &[f64], v: &[f64]) -> Vec<f64> {
    let (lo, hi) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    if hi - lo <= 0.0 || hi.is_nan() || lo.is_nan() {
        return Vec::new();
    }
    crossings(t, v, lo + 0.5 * (hi - lo), lo + 0.3 * (hi - lo))
}

/// Rising crossings of `level`, re-armed below `rearm`, interpolated.
pub fn crossings(t: &[f64], v: &[f64], level: f64, rearm: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut armed = v.first().is_some_and(|&x| x < level);
    for i in 1..v.len() {
        if !armed {
            armed = v[i] < rearm;
            continue;
        }
        if v[i] >= level && v[i - 1] < level {
            let f = (level - v[i - 1]) / (v[i] - v[i - 1]);
            out.push(t[i - 1] + f * (t[i] - t[i - 1]));
            armed = false;
        }
    }
    out
}

/// Per-shot masses from a balance: a table with a `shot` column and a
/// `mass_mg` or `mass_g` column (or `mass [mg]`), shots numbered from 0 or 1.
/// Returns (shot index from 0, mass in kg).
pub fn read_masses(path: &Path) -> Result<Vec<(usize, f64)>, BenchError> {
    let table = read_table(path)?;
    let file = path.display().to_string();
    let shot_col = table
        .headers
        .iter()
        .position(|h| h.trim().eq_ignore_ascii_case("shot"))
        .ok_or_else(|| fail(format!("{file}: no \"shot\" column; its columns are {:?}", table.headers)))?;
    let (mass_col, unit) = table
        .headers
        .iter()
        .enumerate()
        .filter(|(_, h)| h.to_lowercase().starts_with("mass"))
        .find_map(|(k, h)| units::in_header(h).and_then(|u| units::parse(&u)).map(|u| (k, u)))
        .ok_or_else(|| {
            fail(format!(
                "{file}: no mass column with a unit (\"mass_mg\", \"mass [g]\"); its columns are {:?}",
                table.headers
            ))
        })?;
    if unit.quantity != Quantity::Mass {
        return Err(fail(format!("{file}: column {:?} is not in a mass unit (mg, g, kg)", table.headers[mass_col])));
    }
    let mut out = Vec::new();
    for (line, row) in &table.rows {
        let shot: i64 = row[shot_col].parse().map_err(|_| {
            fail(format!("{file}:{line}:{}: shot {:?} is not a whole number", shot_col + 1, row[shot_col]))
        })?;
        let m = number(&row[mass_col], table.delimiter != b',').filter(|m| *m >= 0.0).ok_or_else(|| {
            fail(format!("{file}:{line}:{}: mass {:?} is not a number ≥ 0", mass_col + 1, row[mass_col]))
        })?;
        out.push((shot, m * unit.scale, *line));
    }
    let first = out.iter().map(|s| s.0).min().unwrap_or(0);
    if first != 0 && first != 1 {
        return Err(fail(format!("{file}: shots must be numbered from 0 or 1 (the first is {first})")));
    }
    let mut shots: Vec<(usize, f64)> = out.iter().map(|(s, m, _)| ((*s - first) as usize, *m)).collect();
    shots.sort_by_key(|s| s.0);
    if let Some(w) = shots.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(fail(format!("{file}: shot {} is weighed twice", w[0].0 as i64 + first)));
    }
    Ok(shots)
}

/// The trace at time `t`: the last sample at or before `t` with every
/// continuous signal interpolated to `t`.
fn at(trace: &[TraceSample], times: &[f64], t: f64) -> TraceSample {
    let k = times.partition_point(|&x| x <= t).clamp(1, trace.len());
    let a = trace[k - 1];
    let Some(b) = trace.get(k) else { return TraceSample { t, ..a } };
    let f = ((t - a.t) / (b.t - a.t)).clamp(0.0, 1.0);
    let mix = |x: f64, y: f64| x + f * (y - x);
    TraceSample {
        t,
        coil_current: mix(a.coil_current, b.coil_current),
        supply: mix(a.supply, b.supply),
        chamber: mix(a.chamber, b.chamber),
        piston: mix(a.piston, b.piston),
        plunger: mix(a.plunger, b.plunger),
        syringe: mix(a.syringe, b.syringe),
        tissue: mix(a.tissue, b.tissue),
        flow: mix(a.flow, b.flow),
        delivered: mix(a.delivered, b.delivered),
        ..a
    }
}

/// A column of a synthetic bench log.
#[derive(Debug, Clone)]
pub struct SynthColumn<'a> {
    /// Signal.
    pub signal: Signal,
    /// Header as the log writes it (with its unit, e.g. `P syringe [kPa]`).
    pub header: &'a str,
    /// The unit values are written in (`kPa`, `bar(a)`, …).
    pub unit: &'a str,
    /// Gaussian noise sd, SI.
    pub sd: f64,
}

/// Write a bench-style log of a simulated trace (for examples and
/// round-trip tests): `Time [ms]`, the valve command as a 0/1 level and the
/// given columns, sampled every `interval` seconds (linear interpolation of
/// the trace; the command is the sample's own), with Gaussian noise; `baseline`
/// seconds of the resting state are logged before the first sample (as a
/// logger's pre-trigger window). Absolute units get `p_atm` added. A `;`
/// delimiter writes decimal commas.
pub fn synthesize(
    trace: &[TraceSample],
    columns: &[SynthColumn],
    interval: f64,
    baseline: f64,
    p_atm: f64,
    delimiter: u8,
    rng: &mut impl rand::Rng,
) -> Result<String, BenchError> {
    use rand_distr::{Distribution, Normal};
    let Some(first) = trace.first() else { return Err(fail("an empty trace")) };
    let mut head = vec!["Time [ms]".to_string(), "Valve cmd".to_string()];
    let mut conv = Vec::new();
    for c in columns {
        let u = units::parse(c.unit).filter(|u| u.quantity == c.signal.quantity()).ok_or_else(|| {
            fail(format!(
                "{:?} is not a {} unit ({})",
                c.unit,
                c.signal.quantity().name(),
                c.signal.quantity().allowed()
            ))
        })?;
        let noise = Normal::new(0.0, c.sd.max(0.0)).map_err(|e| fail(e.to_string()))?;
        let offset = if u.absolute { p_atm } else { 0.0 };
        head.push(c.header.to_string());
        conv.push((c.signal, u.scale, offset, noise));
    }
    let d = (delimiter as char).to_string();
    let mut out = head.join(&d);
    out.push('\n');
    let fmt = |x: f64| {
        let s = format!("{x:.6}");
        if delimiter == b';' {
            s.replace('.', ",")
        } else {
            s
        }
    };
    let times: Vec<f64> = trace.iter().map(|s| s.t).collect();
    let last = trace[trace.len() - 1].t;
    let n_base = (baseline / interval).round() as i64;
    let n = ((last - first.t) / interval).floor() as i64;
    let rest = TraceSample { command: 0.0, ..*first };
    for k in -n_base..=n {
        let t = first.t + k as f64 * interval;
        let s = if k < 0 { TraceSample { t, ..rest } } else { at(trace, &times, t) };
        let mut row = vec![fmt(t * 1e3), if s.command > 0.0 { "1".into() } else { "0".into() }];
        for (sig, scale, offset, noise) in &conv {
            row.push(fmt((sig.of(&s) + offset + noise.sample(rng)) / scale));
        }
        out.push_str(&row.join(&d));
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_are_interpolated_and_debounced() {
        let t: Vec<f64> = (0..10).map(f64::from).collect();
        let v = [0.0, 0.0, 1.0, 1.0, 0.6, 1.0, 0.0, 0.0, 0.5, 1.0];
        // 0.6 does not re-arm (above 30 %); the edge at 8→9 is at 0.5 exactly.
        assert_eq!(rising_edges(&t, &v), vec![1.5, 8.0]);
        assert!(rising_edges(&t, &[1.0; 10]).is_empty());
    }

    #[test]
    fn decimal_commas_are_read_where_the_delimiter_allows() {
        assert_eq!(number("1,5", true), Some(1.5));
        assert_eq!(number("1,5", false), None);
        assert_eq!(number("nan", false), None);
        assert_eq!(number("-2e-3", false), Some(-2e-3));
    }
}
