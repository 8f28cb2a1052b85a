//! Every scenario key, gathered from the components that declare them, and
//! the reference documentation generated from them (`mesobench docs`).

use crate::control::spec::{RawFirmware, RawPressureSensor, RawSensors};
use crate::model::chamber::RawChamber;
use crate::model::fluid::RawFluid;
use crate::model::line::RawLine;
use crate::model::needle::RawNeedle;
use crate::model::param::{self, int, text, Def, Kind, Param, Slot};
use crate::model::piston::RawPiston;
use crate::model::supply::RawSupply;
use crate::model::syringe::RawSyringe;
use crate::model::tissue::RawTissue;
use crate::model::tubing::RawTubing;
use crate::model::valve::RawValve;
use crate::model::RawAmbient;
use crate::sim::input::{RawSession, RawSolver};

use super::Raw;

/// `name`.
pub const NAME: Param = text("the file stem (characters other than letters, digits, '-' become '_')")
    .note("letters, digits, '_' and '-'; it names the output folder")
    .named("name", "Scenario name.");
/// `description`.
pub const DESCRIPTION: Param = text("empty").named("description", "One line on what the scenario is.");
/// `seed`.
pub const SEED: Param = int(1, 0, i64::MAX).src("a setting").named("seed", "Master seed of every random stream.");

/// The top-level keys.
pub const TOP: &[&Param] = &[&NAME, &DESCRIPTION, &SEED];

/// Every table with its keys, in the order of the documentation.
pub const TABLES: &[(&str, &str, &[&Param])] = &[
    ("", "Top-level keys", TOP),
    ("solver", "Time stepping", RawSolver::PARAMS),
    ("session", "Session", RawSession::PARAMS),
    ("firmware", "Firmware", RawFirmware::PARAMS),
    ("sensors", "Sensors", RawSensors::PARAMS),
    (
        "sensors.*",
        "Each pressure sensor: `[sensors.supply]`, `[sensors.chamber]`, `[sensors.syringe]`",
        RawPressureSensor::PARAMS,
    ),
    ("ambient", "Ambient air", RawAmbient::PARAMS),
    ("supply", "Supply and regulator", RawSupply::PARAMS),
    ("valve", "Solenoid valve", RawValve::PARAMS),
    ("line", "Pneumatic line", RawLine::PARAMS),
    ("chamber", "Piston chamber", RawChamber::PARAMS),
    ("piston", "Piston", RawPiston::PARAMS),
    ("syringe", "Syringe", RawSyringe::PARAMS),
    ("tubing", "Extension tubing (the table is optional)", RawTubing::PARAMS),
    ("needle", "Needles", RawNeedle::PARAMS),
    ("fluid", "Fluid", RawFluid::PARAMS),
    ("tissue", "Tissue", RawTissue::PARAMS),
];

/// The pressure sensors a `sensors.*` key applies to.
pub const SENSORS: [&str; 3] = ["supply", "chamber", "syringe"];

/// Every declaration, in documentation order.
pub fn params() -> impl Iterator<Item = &'static Param> {
    TABLES.iter().flat_map(|(_, _, ps)| ps.iter().copied())
}

/// The declaration of a dotted key (`sensors.chamber.bits` finds `sensors.*.bits`).
pub fn find(key: &str) -> Option<&'static Param> {
    let generic = match key.strip_prefix("sensors.").and_then(|r| r.split_once('.')) {
        Some((sensor, field)) if SENSORS.contains(&sensor) => format!("sensors.*.{field}"),
        _ => key.to_string(),
    };
    params().find(|p| p.key == generic)
}

/// Every key a study can sweep, draw or tune (numbers), sensor keys expanded.
pub fn numeric_keys() -> Vec<String> {
    let mut keys = Vec::new();
    for p in params().filter(|p| p.is_number()) {
        if p.key.contains('*') {
            keys.extend(SENSORS.iter().map(|s| p.key.replace('*', s)));
        } else {
            keys.push(p.key.to_string());
        }
    }
    keys
}

/// The keys closest to a mistyped one (for "did you mean").
pub fn closest(key: &str) -> Vec<String> {
    let mut scored: Vec<(usize, String)> =
        numeric_keys().into_iter().map(|k| (strsim::levenshtein(key, &k), k)).filter(|(d, _)| *d <= 3).collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, k)| k).collect()
}

impl Raw {
    /// The numeric field of a declared numeric key, creating an optional
    /// table (`[tubing]`, `[sensors.chamber]`) as writing the key in the file would.
    pub fn slot(&mut self, key: &str) -> Option<Slot<'_>> {
        if !find(key).is_some_and(Param::is_number) {
            return None;
        }
        let (table, field) = key.rsplit_once('.').unwrap_or(("", key));
        match table {
            "" if field == "seed" => Some(Slot::Seed(&mut self.seed)),
            "solver" => self.solver.slot(field),
            "session" => self.session.slot(field),
            "firmware" => self.firmware.slot(field),
            "sensors" => self.sensors.slot(field),
            "sensors.supply" => self.sensors.supply.get_or_insert_with(Default::default).slot(field),
            "sensors.chamber" => self.sensors.chamber.get_or_insert_with(Default::default).slot(field),
            "sensors.syringe" => self.sensors.syringe.get_or_insert_with(Default::default).slot(field),
            "ambient" => self.ambient.slot(field),
            "supply" => self.supply.slot(field),
            "valve" => self.valve.slot(field),
            "line" => self.line.slot(field),
            "chamber" => self.chamber.slot(field),
            "piston" => self.piston.slot(field),
            "syringe" => self.syringe.slot(field),
            "tubing" => self.tubing.get_or_insert_with(Default::default).slot(field),
            "needle" => self.needle.slot(field),
            "fluid" => self.fluid.slot(field),
            "tissue" => self.tissue.slot(field),
            _ => None,
        }
    }
}

impl Raw {
    /// The value written at a declared key (file or `--set`), None when absent.
    pub fn written(&self, key: &str) -> Option<String> {
        let (table, field) = key.rsplit_once('.').unwrap_or(("", key));
        match table {
            "" => match field {
                "name" => self.name.as_ref().map(|v| format!("{v:?}")),
                "description" => self.description.as_ref().map(|v| format!("{v:?}")),
                "seed" => self.seed.map(|v| v.to_string()),
                _ => None,
            },
            "solver" => self.solver.written(field),
            "session" => self.session.written(field),
            "firmware" => self.firmware.written(field),
            "sensors" => self.sensors.written(field),
            "sensors.supply" => self.sensors.supply.as_ref()?.written(field),
            "sensors.chamber" => self.sensors.chamber.as_ref()?.written(field),
            "sensors.syringe" => self.sensors.syringe.as_ref()?.written(field),
            "ambient" => self.ambient.written(field),
            "supply" => self.supply.written(field),
            "valve" => self.valve.written(field),
            "line" => self.line.written(field),
            "chamber" => self.chamber.written(field),
            "piston" => self.piston.written(field),
            "syringe" => self.syringe.written(field),
            "tubing" => self.tubing.as_ref()?.written(field),
            "needle" => self.needle.written(field),
            "fluid" => self.fluid.written(field),
            "tissue" => self.tissue.written(field),
            _ => None,
        }
    }
}

/// One key as a scenario sets it: for `check --params`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Entry {
    /// Dotted key.
    pub key: String,
    /// The value written, or the default.
    pub value: String,
    /// Human unit ("" for none).
    pub unit: &'static str,
    /// Where the value comes from: `file:line:column`, `--set …`, or `default`.
    pub origin: String,
    /// The value in SI with its unit (`401325 Pa (absolute)`), as the
    /// simulation uses it; empty for texts, flags, pure numbers and values
    /// derived from other keys.
    pub si: String,
}

/// Every declared key (sensor keys expanded, sub-tables left out) with the
/// value `raw` gives it; `locate` says where a written key was written.
pub fn entries(raw: &Raw, locate: impl Fn(&str) -> String) -> Vec<Entry> {
    use crate::model::RawAmbient;
    let ambient = &RawAmbient::PRESSURE;
    let kpa = match ambient.default {
        Def::Value(v) => raw.ambient.pressure_kpa.unwrap_or(v),
        _ => raw.ambient.pressure_kpa.unwrap_or(crate::model::gas::P_ATM / 1e3),
    };
    let p_atm = (ambient.unit.to_si)(kpa, 0.0);
    let mut out = Vec::new();
    for p in params().filter(|p| !matches!(p.kind, Kind::Table)) {
        let keys: Vec<String> = if p.key.contains('*') {
            SENSORS.iter().map(|s| p.key.replace('*', s)).collect()
        } else {
            vec![p.key.to_string()]
        };
        for key in keys {
            let mut unit = if p.unit.symbol == "—" { "" } else { p.unit.symbol };
            let absent_table = (key.starts_with("tubing.") && raw.tubing.is_none())
                || (key.starts_with("supply.reservoir_")
                    && raw.supply.reservoir_volume_ml.is_none()
                    && raw.supply.reservoir_pressure_bar.is_none());
            let mut number = None;
            let (value, origin) = match raw.written(&key) {
                Some(v) => {
                    number = v.parse::<f64>().ok();
                    (v, locate(&key))
                }
                None if absent_table => {
                    unit = "";
                    ("(not used: its table or feature is absent)".to_string(), "default".to_string())
                }
                None => {
                    if matches!(p.default, Def::Derived(_) | Def::None(_)) {
                        unit = "";
                    }
                    if let Def::Value(v) = p.default {
                        number = Some(v);
                    }
                    (default_text(p), "default".to_string())
                }
            };
            let si = match number {
                Some(x) if p.is_number() && !unit.is_empty() && p.unit.si != "—" => {
                    format!("{} {}", shown((p.unit.to_si)(x, p_atm)), p.unit.si)
                }
                _ => String::new(),
            };
            out.push(Entry { key, value, unit, origin, si });
        }
    }
    out
}

fn default_text(p: &Param) -> String {
    match p.default {
        Def::Value(v) => crate::text::g6(v),
        Def::Int(i) => i.to_string(),
        Def::Text(t) => format!("{t:?}"),
        Def::Flag(b) => b.to_string(),
        Def::Derived(from) => format!("(from {from})"),
        Def::None(what) => format!("({what})"),
    }
}

/// A number as the docs show it.
fn shown(x: f64) -> String {
    if x == f64::INFINITY {
        "∞".into()
    } else if x == f64::NEG_INFINITY {
        "−∞".into()
    } else {
        param::fmt_num(x)
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// `docs/parameters.md`, generated from the declarations.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Scenario parameters\n\n\
         Generated by `mesobench docs` from the parameter declarations in the source \
         (one per key, in the module of its component); do not edit by hand — a test \
         fails when this file is stale.\n\n\
         Every key is optional. Values are written in the unit their name carries, \
         checked against the range below (inclusive) and converted once to SI. \
         Pressures named `_bar` are gauge. Any key whose values are numbers can be swept, \
         drawn (`[uncertain]`) or tuned; whole numbers can only be swept on a grid. \
         The physics behind each key is in [physics.md](physics.md); the study \
         tables (`[sweep]`, `[uncertain]`, `[sensitivity]`, `[tune]`) are in \
         [studies.md](studies.md).\n",
    );
    for (table, title, ps) in TABLES {
        out.push_str(&format!("\n## {title}\n\n"));
        if !table.is_empty() {
            out.push_str(&format!("Table `[{table}]`.\n\n"));
        }
        out.push_str("| key | meaning | unit | default | allowed | SI | source of the default |\n");
        out.push_str("|---|---|---|---|---|---|---|\n");
        for p in ps.iter() {
            let field = p.key.rsplit('.').next().unwrap_or(p.key);
            let (allowed, unit, si) = match p.kind {
                Kind::Real { min, max } => {
                    (format!("number, {} to {}", shown(min), shown(max)), p.unit.symbol, p.unit.si)
                }
                Kind::Integer { min, max } => {
                    let max = if max == i64::MAX { "2⁶³ − 1".to_string() } else { max.to_string() };
                    (format!("whole number, {min} to {max}"), "—", "—")
                }
                Kind::Choice(names) => {
                    (names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "), "—", "—")
                }
                Kind::Text => ("text".to_string(), "—", "—"),
                Kind::Flag => ("`true`, `false`".to_string(), "—", "—"),
                Kind::List { limit } if limit.is_finite() => {
                    (format!("list, each −{} to {}", shown(limit), shown(limit)), p.unit.symbol, "—")
                }
                Kind::List { .. } => ("list of numbers".to_string(), p.unit.symbol, "—"),
                Kind::Table => ("table".to_string(), "—", "—"),
            };
            let allowed = if p.note.is_empty() { allowed } else { format!("{allowed}; {}", p.note) };
            let default = match p.default {
                Def::Value(v) => shown(v),
                Def::Int(i) => i.to_string(),
                Def::Text(t) => format!("`\"{t}\"`"),
                Def::Flag(b) => format!("`{b}`"),
                Def::Derived(from) => format!("from {from}"),
                Def::None(what) => what.to_string(),
            };
            out.push_str(&format!(
                "| `{field}` | {} | {} | {} | {} | {} | {} |\n",
                cell(p.doc()),
                cell(unit),
                cell(&default),
                cell(&allowed),
                cell(si),
                cell(p.source)
            ));
        }
    }
    out
}
