//! Scenario text: where it came from, reading it with a size cap, dotted
//! keys, `--set` on the parsed document, and locating a key's line.

use std::path::{Path, PathBuf};

use super::{ScenarioError, DEFAULT_SCENARIO};

/// Where the scenario text came from, for error messages.
#[derive(Debug, Clone)]
pub struct Source {
    /// Display name (a path, or `<default scenario>`).
    pub name: String,
    /// The text.
    pub text: String,
    /// Folder that relative paths in the scenario are resolved against.
    pub dir: PathBuf,
}

impl Source {
    /// Read a scenario file (at most [`MAX_FILE_MIB`] MiB).
    pub fn from_path(path: &Path) -> Result<Source, ScenarioError> {
        let text = read_capped(path, "scenario").map_err(|e| match e {
            Capped::Io(source) => ScenarioError::Io { path: path.to_owned(), source },
            Capped::TooLarge(e) => e,
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Source { name: path.display().to_string(), text, dir })
    }
    /// The embedded default scenario.
    pub fn default_scenario() -> Source {
        Source {
            name: "<default scenario: scenarios/reference.toml>".into(),
            text: DEFAULT_SCENARIO.into(),
            dir: PathBuf::from("scenarios"),
        }
    }
}

/// Largest scenario or study file read, MiB: reading stops there, so an
/// endless file (/dev/zero) or a huge one never fills memory.
pub const MAX_FILE_MIB: u64 = 16;

/// Why [`read_capped`] failed.
#[derive(Debug)]
pub enum Capped {
    /// The file cannot be opened or read, or is not UTF-8.
    Io(std::io::Error),
    /// Larger than [`MAX_FILE_MIB`] ([`ScenarioError::TooLarge`]).
    TooLarge(ScenarioError),
}

/// The text of a scenario or study file (`what`), refusing one larger than [`MAX_FILE_MIB`] MiB.
pub fn read_capped(path: &Path, what: &'static str) -> Result<String, Capped> {
    use std::io::Read;
    let limit = MAX_FILE_MIB << 20;
    let file = std::fs::File::open(path).map_err(Capped::Io)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(Capped::Io)?;
    if bytes.len() as u64 > limit {
        return Err(Capped::TooLarge(ScenarioError::TooLarge { path: path.to_owned(), what, mib: MAX_FILE_MIB }));
    }
    String::from_utf8(bytes).map_err(|_| {
        Capped::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
    })
}

/// A schema or syntax error of a scenario file, with a hint when the file
/// is a comparison study rather than a scenario.
pub(super) fn parse_error(source: &Source, e: toml::de::Error) -> ScenarioError {
    let detail = e.to_string().trim_end().to_string();
    // Say what the file is before the schema detail.
    let message = if is_study_text(&source.text) {
        format!(
            "this file is a comparison study (it has [[arm]] tables), not a scenario: run it with `mesobench compare {}`\n{detail}",
            source.name
        )
    } else {
        detail
    };
    ScenarioError::Parse { path: source.name.clone(), message }
}

/// Whether a TOML text is a comparison study (`[[arm]]` tables) rather than a scenario.
pub fn is_study_text(text: &str) -> bool {
    text.lines().any(|l| l.trim() == "[[arm]]")
}

/// `text` as a TOML number would read into a real-valued key: a TOML
/// integer (read as i64, then converted) or a finite decimal float written
/// `[+-]digits[.digits][e[+-]digits]` without underscores or a leading zero.
/// None for anything else (the document route then reads or rejects it).
pub(super) fn toml_number(text: &str) -> Option<f64> {
    if let Some(i) = toml_integer(text) {
        return Some(i as f64);
    }
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let int_ok = digits(int) && (int == "0" || !int.starts_with('0'));
    let frac_ok = frac.is_none_or(digits);
    let exp_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    if !(int_ok && frac_ok && exp_ok) || (frac.is_none() && exponent.is_none()) {
        return None;
    }
    text.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// `text` as a TOML integer: `[+-]digits` without underscores or a leading zero.
pub(super) fn toml_integer(text: &str) -> Option<i64> {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) || (body.len() > 1 && body.starts_with('0')) {
        return None;
    }
    text.parse::<i64>().ok()
}

/// Apply one `key.path=value` to a parsed document; returns the key.
pub(super) fn apply_override(doc: &mut toml::Table, arg: &str) -> Result<String, ScenarioError> {
    let bad = |m: &str| ScenarioError::Override { arg: arg.into(), message: m.into() };
    let (key, value) =
        arg.split_once('=').ok_or_else(|| bad("expected KEY=VALUE, for example firmware.open_time_ms=25"))?;
    let key = key.trim();
    let parts = split_key(key).ok_or_else(|| bad("the key must be a dotted path such as supply.pressure_bar (quote a segment that holds dots: sweep.parameters.\"supply.pressure_bar\")"))?;
    let value = value.trim();
    let parsed: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(value.into())),
        Err(_) => toml::Value::String(value.into()),
    };
    let mut table = doc;
    for part in &parts[..parts.len() - 1] {
        let entry = table.entry(part.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(bad(&format!("`{part}` is a value, not a table"))),
        };
    }
    table.insert(parts[parts.len() - 1].clone(), parsed);
    Ok(key.to_string())
}

/// Split a dotted TOML key into its segments; a segment in double quotes may
/// hold dots. None for an empty segment or an unclosed quote.
pub(super) fn split_key(key: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    for ch in key.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                was_quoted = true;
            }
            '.' if !quoted => {
                if cur.is_empty() && !was_quoted {
                    return None;
                }
                parts.push(std::mem::take(&mut cur));
                was_quoted = false;
            }
            _ => cur.push(ch),
        }
    }
    if quoted || (cur.is_empty() && !was_quoted) {
        return None;
    }
    parts.push(cur);
    Some(parts)
}
