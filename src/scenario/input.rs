//! Where an input value was written, and the one checker every input file
//! is read through.
//!
//! Every location is found from the spans of a TOML parse: a scenario key by
//! walking the parsed document ([`Locator`], `toml_edit` spans), a field of a
//! study, fit or validation file by the `toml::Spanned` it was read into.
//! Both end as `file:line:column` (1-based, columns in characters) through
//! [`line_col`]; a key given on the command line is reported as the
//! `--set` argument that gave it. A [`Checker`] turns a bad value into
//! [`ScenarioError::Invalid`], so every reader words its messages alike:
//! `file:line:col: key = value is not allowed: what is`.

use super::source::split_key;
use super::ScenarioError;
use crate::model::param::{fmt_num, Invalid};
use std::cell::OnceCell;
use std::ops::Range;
use toml::Spanned;

/// Line and column (1-based; the column counts characters) of byte `at` of `text`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

/// The spans of a parsed TOML text, to find where a dotted key's value was
/// written (in a `[table]`, as a dotted key, or in an inline table).
pub struct Locator<'a> {
    text: &'a str,
    doc: Option<toml_edit::Document<&'a str>>,
}

impl<'a> Locator<'a> {
    /// Parse `text` once (a text that does not parse locates nothing).
    pub fn new(text: &'a str) -> Locator<'a> {
        Locator { text, doc: toml_edit::Document::parse(text).ok() }
    }

    /// Line and column of the value of `dotted` (segments may be quoted:
    /// `sweep.parameters."supply.pressure_bar"`), if it was written.
    pub fn find(&self, dotted: &str) -> Option<(usize, usize)> {
        let parts = split_key(dotted)?;
        let mut item = self.doc.as_ref()?.as_item();
        for part in &parts {
            item = item.as_table_like()?.get(part)?;
        }
        Some(line_col(self.text, item.span()?.start))
    }
}

/// Line and column of the value of a dotted key in a TOML text ([`Locator::find`]).
pub fn locate(text: &str, dotted: &str) -> Option<(usize, usize)> {
    Locator::new(text).find(dotted)
}

/// Checks values read from one input file and reports a bad one where it
/// was written.
pub struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    /// `--set` arguments by the key they set (reported instead of the file).
    set_keys: &'a [(String, String)],
    locator: OnceCell<Locator<'a>>,
}

impl<'a> Checker<'a> {
    /// A checker of `text`, read from `file`.
    pub fn new(file: &'a str, text: &'a str) -> Checker<'a> {
        Checker { file, text, set_keys: &[], locator: OnceCell::new() }
    }

    /// The same checker with keys given on the command line: `(key, argument)`.
    pub fn with_sets(self, set_keys: &'a [(String, String)]) -> Checker<'a> {
        Checker { set_keys, ..self }
    }

    /// The file's name as messages give it.
    pub fn file(&self) -> &'a str {
        self.file
    }

    /// `file:line:col` of a span of the text.
    pub fn at(&self, span: Range<usize>) -> String {
        let (line, col) = line_col(self.text, span.start);
        format!("{}:{line}:{col}", self.file)
    }

    /// Where the value of a dotted key came from: its `--set` argument,
    /// `file:line:col` of its value, or the file when it was not written.
    pub fn location(&self, key: &str) -> String {
        let parts = split_key(key);
        let same = |k: &str| k == key || parts.is_some() && split_key(k) == parts;
        if let Some((_, arg)) = self.set_keys.iter().find(|(k, _)| same(k)) {
            return format!("--set {arg}");
        }
        match self.locator.get_or_init(|| Locator::new(self.text)).find(key) {
            Some((line, col)) => format!("{}:{line}:{col}", self.file),
            None => self.file.to_string(),
        }
    }

    /// A component's [`Invalid`] value, located where its key was written.
    pub fn located(&self, e: Invalid) -> ScenarioError {
        ScenarioError::Invalid { location: self.location(&e.key), key: e.key, value: e.value, allowed: e.allowed }
    }

    /// A bad value of `key`, located where the key was written.
    pub fn invalid(&self, key: &str, value: impl std::fmt::Display, allowed: impl Into<String>) -> ScenarioError {
        bad_value(self.location(key), key, value, allowed)
    }

    /// A bad value of `key` written at `span`.
    pub fn invalid_at(
        &self,
        span: Range<usize>,
        key: &str,
        value: impl std::fmt::Display,
        allowed: impl Into<String>,
    ) -> ScenarioError {
        bad_value(self.at(span), key, value, allowed)
    }

    /// A number of `key` in [lo, hi] (inclusive), or the default.
    pub fn num(
        &self,
        v: Option<f64>,
        default: f64,
        key: &str,
        lo: f64,
        hi: f64,
        unit: &str,
    ) -> Result<f64, ScenarioError> {
        let x = v.unwrap_or(default);
        if !in_range(x, lo, hi) {
            return Err(self.invalid(key, fmt_num(x), number_range(lo, hi, unit)));
        }
        Ok(x)
    }

    /// A whole number of `key` in [lo, hi], or the default.
    pub fn int(&self, v: Option<i64>, default: i64, key: &str, lo: i64, hi: i64) -> Result<i64, ScenarioError> {
        let x = v.unwrap_or(default);
        if x < lo || x > hi {
            return Err(self.invalid(key, x, whole_range(lo, hi)));
        }
        Ok(x)
    }

    /// One of `allowed` for `key`, or the default.
    pub fn choice<'s>(
        &self,
        v: &'s Option<String>,
        default: &'s str,
        key: &str,
        allowed: &[&str],
    ) -> Result<&'s str, ScenarioError> {
        let x = v.as_deref().unwrap_or(default);
        if !allowed.contains(&x) {
            return Err(self.invalid(key, format!("\"{x}\""), format!("one of {}", allowed.join(", "))));
        }
        Ok(x)
    }

    /// A spanned number of `key` in [lo, hi] as written (in `unit`), times
    /// `scale` (to SI); the default is returned as given, in the result's unit.
    pub fn spanned_num(
        &self,
        v: &Option<Spanned<f64>>,
        default: f64,
        key: &str,
        (lo, hi): (f64, f64),
        (scale, unit): (f64, &str),
    ) -> Result<f64, ScenarioError> {
        match v {
            None => Ok(default),
            Some(s) if in_range(*s.get_ref(), lo, hi) => Ok(*s.get_ref() * scale),
            Some(s) => Err(self.invalid_at(s.span(), key, fmt_num(*s.get_ref()), number_range(lo, hi, unit))),
        }
    }

    /// A spanned whole number of `key` in [lo, hi], or the default.
    pub fn spanned_int(
        &self,
        v: &Option<Spanned<i64>>,
        default: i64,
        key: &str,
        lo: i64,
        hi: i64,
    ) -> Result<i64, ScenarioError> {
        match v {
            None => Ok(default),
            Some(s) if (lo..=hi).contains(s.get_ref()) => Ok(*s.get_ref()),
            Some(s) => Err(self.invalid_at(s.span(), key, s.get_ref(), whole_range(lo, hi))),
        }
    }
}

fn bad_value(location: String, key: &str, value: impl std::fmt::Display, allowed: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid { location, key: key.into(), value: value.to_string(), allowed: allowed.into() }
}

fn in_range(x: f64, lo: f64, hi: f64) -> bool {
    x.is_finite() && x >= lo && x <= hi
}

fn number_range(lo: f64, hi: f64, unit: &str) -> String {
    format!("a number from {} to {} {}", fmt_num(lo), fmt_num(hi), unit).trim_end().to_string()
}

fn whole_range(lo: i64, hi: i64) -> String {
    format!("a whole number from {lo} to {hi}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name = \"x\"\n\n[valve]\nmodel = \"coil\"\nb = 0.4\n\n[sweep]\nparameters = { \"supply.pressure_bar\" = [1, 2] }\nsolver.step_us = 5\n";

    #[test]
    fn a_key_is_found_in_its_table_inline_table_or_dotted_key() {
        let l = Locator::new(TEXT);
        assert_eq!(l.find("valve.b"), Some((5, 5)));
        assert_eq!(l.find("sweep.parameters.\"supply.pressure_bar\""), Some((8, 40)));
        assert_eq!(l.find("sweep.solver.step_us"), Some((9, 18)));
        assert_eq!(l.find("valve.missing"), None);
        assert_eq!(locate("not = = toml", "not"), None);
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(line_col("a = \"µµ\"\nb = 1", 4), (1, 5));
        assert_eq!(line_col("k = \"µ\" # x", 9), (1, 9));
        // Inside a multi-byte character, the character's own column.
        assert_eq!(line_col("µ", 1), (1, 1));
        assert_eq!(line_col("x\ny", 99), (2, 2));
    }

    #[test]
    fn a_set_key_is_reported_as_its_argument() {
        let sets = [("valve.b".to_string(), "valve.b=9".to_string())];
        let c = Checker::new("s.toml", TEXT).with_sets(&sets);
        assert_eq!(c.location("valve.b"), "--set valve.b=9");
        assert_eq!(c.location("valve.model"), "s.toml:4:9");
        assert_eq!(c.location("valve.nothing"), "s.toml");
        let e = c.num(Some(7.0), 0.0, "valve.model", 0.0, 1.0, "mm").unwrap_err();
        assert_eq!(e.to_string(), "s.toml:4:9: valve.model = 7 is not allowed: a number from 0 to 1 mm");
    }

    #[test]
    fn spanned_values_are_checked_where_they_were_written() {
        #[derive(serde::Deserialize)]
        struct T {
            n: Option<Spanned<i64>>,
            x: Option<Spanned<f64>>,
        }
        let text = "n = 5\nx = 1e-9\n";
        let t: T = toml::from_str(text).unwrap();
        let c = Checker::new("f.toml", text);
        let e = c.spanned_int(&t.n, 1, "n", 0, 4).unwrap_err();
        assert_eq!(e.to_string(), "f.toml:1:5: n = 5 is not allowed: a whole number from 0 to 4");
        let e = c.spanned_num(&t.x, 0.0, "x", (1e-6, 1.0), (1.0, "")).unwrap_err();
        assert_eq!(e.to_string(), "f.toml:2:5: x = 1e-9 is not allowed: a number from 1e-6 to 1");
        assert_eq!(c.spanned_num(&None, 0.5, "x", (0.0, 1.0), (1e-3, "mm")).unwrap(), 0.5);
    }
}
