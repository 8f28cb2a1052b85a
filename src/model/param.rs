//! The parameter registry: every scenario key declared once.
//!
//! A component module declares its `[table]` with [`section!`]: one line per
//! key gives the field of the raw (as-written) struct, its doc line, its
//! human unit and conversion to SI, its default, its allowed range and the
//! source of the default — as a Modelica `parameter` declaration does. The
//! key (`supply.pressure_bar`) is built from the table and the field name at
//! compile time, so the file format, validation ([`Reader`]), `--set`, study
//! keys and the generated `docs/parameters.md` cannot drift apart.
//!
//! A [`Reader`] turns an as-written value into SI: the default when the key
//! is absent, the range check in human units (the message names the key, the
//! value and the range), then the unit's conversion.

/// A human unit and its exact conversion to SI.
#[derive(Debug, Clone, Copy)]
pub struct Unit {
    /// As written in range messages ("bar (gauge)", "(critical pressure ratio)", "").
    pub label: &'static str,
    /// Short symbol for tables ("bar(g)", "—").
    pub symbol: &'static str,
    /// The SI unit the value is converted to ("Pa (absolute)", "m").
    pub si: &'static str,
    /// Human value → SI; the second argument is the ambient pressure, Pa
    /// (gauge pressures become absolute).
    pub to_si: fn(f64, f64) -> f64,
    /// SI → human value (the inverse of `to_si`).
    pub from_si: fn(f64, f64) -> f64,
}

macro_rules! units {
    ($($(#[$m:meta])* $name:ident = $label:literal, $symbol:literal, $si:literal, |$x:ident, $pa:ident| $to:expr, |$y:ident, $pb:ident| $from:expr;)*) => {
        $(
            $(#[$m])*
            #[allow(unused_variables)]
            pub const $name: Unit = Unit {
                label: $label,
                symbol: $symbol,
                si: $si,
                to_si: |$x, $pa| $to,
                from_si: |$y, $pb| $from,
            };
        )*
    };
}

/// Units of the scenario keys. Each conversion is written as the expression
/// the value has always gone through, so results are bit-for-bit stable.
pub mod units {
    use super::Unit;
    use crate::model::gas;

    units! {
        /// A pure number.
        ONE = "", "—", "—", |x, p| x, |y, p| y;
        /// Gauge pressure in bar, to absolute Pa.
        BAR_GAUGE = "bar (gauge)", "bar(g)", "Pa (absolute)", |x, p| x * 1e5 + p, |y, p| (y - p) / 1e5;
        /// Gauge pressure in bar, kept gauge (a set point, a PID output).
        BAR_GAUGE_REL = "bar (gauge)", "bar(g)", "Pa (gauge)", |x, p| x * 1e5, |y, p| y / 1e5;
        /// A pressure span in bar.
        BAR = "bar", "bar", "Pa", |x, p| x * 1e5, |y, p| y / 1e5;
        /// Kilopascal (ambient: absolute; tissue: gauge; a span otherwise).
        KPA = "kPa", "kPa", "Pa", |x, p| x * 1e3, |y, p| y / 1e3;
        /// Regulator droop.
        BAR_PER_100LPM = "bar per 100 L/min", "bar/(100 L/min ANR)", "Pa/(m³/s ANR)",
            |x, p| x * 1e5 / (100e-3 / 60.0), |y, p| y * (100e-3 / 60.0) / 1e5;
        /// Degrees Celsius.
        CELSIUS = "°C", "°C", "K", |x, p| x + 273.15, |y, p| y - 273.15;
        /// Microseconds.
        US = "µs", "µs", "s", |x, p| x * 1e-6, |y, p| y * 1e6;
        /// Milliseconds.
        MS = "ms", "ms", "s", |x, p| x * 1e-3, |y, p| y * 1e3;
        /// Seconds.
        S = "s", "s", "s", |x, p| x, |y, p| y;
        /// Hertz.
        HZ = "Hz", "Hz", "Hz", |x, p| x, |y, p| y;
        /// Per second.
        PER_S = "1/s", "1/s", "1/s", |x, p| x, |y, p| y;
        /// Millilitres.
        ML = "mL", "mL", "m³", |x, p| x * 1e-6, |y, p| y * 1e6;
        /// Microlitres.
        UL = "µL", "µL", "m³", |x, p| x * 1e-9, |y, p| y * 1e9;
        /// Millimetres.
        MM = "mm", "mm", "m", |x, p| x * 1e-3, |y, p| y * 1e3;
        /// Micrometres.
        UM = "µm", "µm", "m", |x, p| x * 1e-6, |y, p| y * 1e6;
        /// Millimetres per second.
        MM_S = "mm/s", "mm/s", "m/s", |x, p| x * 1e-3, |y, p| y * 1e3;
        /// Grams.
        G = "g", "g", "kg", |x, p| x * 1e-3, |y, p| y * 1e3;
        /// Newtons.
        N = "N", "N", "N", |x, p| x, |y, p| y;
        /// Spring rate.
        N_PER_MM = "N/mm", "N/mm", "N/m", |x, p| x * 1e3, |y, p| y / 1e3;
        /// Viscous damping.
        N_S_PER_M = "N·s/m", "N·s/m", "N·s/m", |x, p| x, |y, p| y;
        /// Volts.
        VOLT = "V", "V", "V", |x, p| x, |y, p| y;
        /// Ohms.
        OHM = "Ω", "Ω", "Ω", |x, p| x, |y, p| y;
        /// Millihenries.
        MH = "mH", "mH", "H", |x, p| x * 1e-3, |y, p| y * 1e3;
        /// ISO 6358 sonic conductance.
        SONIC_CONDUCTANCE = "dm³/(s·bar)", "dm³/(s·bar)", "m³/(s·Pa)", |x, p| x * gas::DM3_PER_S_BAR, |y, p| y / gas::DM3_PER_S_BAR;
        /// Heat-transfer coefficient.
        W_PER_M2K = "W/(m²·K)", "W/(m²·K)", "W/(m²·K)", |x, p| x, |y, p| y;
        /// Syringe wall compliance.
        UL_PER_BAR = "µL/bar", "µL/bar", "m³/Pa", |x, p| x * 1e-9 / 1e5, |y, p| y * 1e5 / 1e-9;
        /// Tubing compliance (the same unit; converted in one multiplication).
        UL_PER_BAR_1 = "µL/bar", "µL/bar", "m³/Pa", |x, p| x * 1e-14, |y, p| y / 1e-14;
        /// Tissue compliance.
        UL_PER_KPA = "µL/kPa", "µL/kPa", "m³/Pa", |x, p| x * 1e-12, |y, p| y / 1e-12;
        /// Hydraulic resistance.
        KPA_S_PER_ML = "kPa·s/mL", "kPa·s/mL", "Pa·s/m³", |x, p| x * 1e9, |y, p| y / 1e9;
        /// Dynamic viscosity, mPa·s.
        MPA_S = "mPa·s", "mPa·s", "Pa·s", |x, p| x * 1e-3, |y, p| y * 1e3;
        /// Dynamic viscosity, Pa·s.
        PA_S = "Pa·s", "Pa·s", "Pa·s", |x, p| x, |y, p| y;
        /// Power-law consistency.
        PA_SN = "Pa·sⁿ", "Pa·sⁿ", "Pa·sⁿ", |x, p| x, |y, p| y;
        /// Density.
        KG_M3 = "kg/m³", "kg/m³", "kg/m³", |x, p| x, |y, p| y;
        /// Percent, to a fraction.
        PCT = "%", "%", "—", |x, p| x / 100.0, |y, p| y * 100.0;
    }

    /// A pure number whose range message names what it is.
    pub const fn ratio(label: &'static str) -> Unit {
        Unit { label, ..ONE }
    }
}

/// What a key holds and what it allows.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A real number in `[min, max]`, human units.
    Real {
        /// Lowest allowed value.
        min: f64,
        /// Highest allowed value.
        max: f64,
    },
    /// A whole number in `[min, max]`.
    Integer {
        /// Lowest allowed value.
        min: i64,
        /// Highest allowed value.
        max: i64,
    },
    /// One of a fixed set of names.
    Choice(&'static [&'static str]),
    /// Free text (a path, a name).
    Text,
    /// `true` or `false`.
    Flag,
    /// A list of numbers, each in `[-limit, limit]`.
    List {
        /// Largest magnitude of an entry.
        limit: f64,
    },
    /// A sub-table.
    Table,
}

/// The default of a key.
#[derive(Debug, Clone, Copy)]
pub enum Def {
    /// A number, in the key's human unit.
    Value(f64),
    /// A whole number.
    Int(i64),
    /// A name or text.
    Text(&'static str),
    /// A flag.
    Flag(bool),
    /// Computed from other keys; says from which.
    Derived(&'static str),
    /// The key is absent unless written; says what absence means.
    None(&'static str),
}

/// One scenario key: built by [`section!`] from a [`Spec`] and the field.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Dotted key (`supply.pressure_bar`; `sensors.*.tau_ms` for a key of
    /// every pressure sensor).
    pub key: &'static str,
    /// One-line description.
    pub doc: &'static str,
    /// Kind and range.
    pub kind: Kind,
    /// Human unit and conversion.
    pub unit: Unit,
    /// Default.
    pub default: Def,
    /// Where the default comes from (a citation, "derived: …" or "—").
    pub source: &'static str,
    /// A constraint the range cannot express (shown in the docs).
    pub note: &'static str,
}

/// A key's declaration without its name, as written in [`section!`].
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    kind: Kind,
    unit: Unit,
    default: Def,
    source: &'static str,
    note: &'static str,
}

/// A real number with a default.
pub const fn real(unit: Unit, default: f64, min: f64, max: f64) -> Spec {
    Spec { kind: Kind::Real { min, max }, unit, default: Def::Value(default), source: "—", note: "" }
}

/// A real number whose default comes from other keys.
pub const fn real_from(unit: Unit, from: &'static str, min: f64, max: f64) -> Spec {
    Spec { kind: Kind::Real { min, max }, unit, default: Def::Derived(from), source: "—", note: "" }
}

/// An optional real number (absent unless written).
pub const fn real_opt(unit: Unit, absent: &'static str, min: f64, max: f64) -> Spec {
    Spec { kind: Kind::Real { min, max }, unit, default: Def::None(absent), source: "—", note: "" }
}

/// A whole number.
pub const fn int(default: i64, min: i64, max: i64) -> Spec {
    Spec { kind: Kind::Integer { min, max }, unit: units::ONE, default: Def::Int(default), source: "—", note: "" }
}

/// One of `allowed`.
pub const fn choice(default: &'static str, allowed: &'static [&'static str]) -> Spec {
    Spec { kind: Kind::Choice(allowed), unit: units::ONE, default: Def::Text(default), source: "—", note: "" }
}

/// Free text; `absent` says what its absence means.
pub const fn text(absent: &'static str) -> Spec {
    Spec { kind: Kind::Text, unit: units::ONE, default: Def::None(absent), source: "—", note: "" }
}

/// A flag.
pub const fn flag(default: bool) -> Spec {
    Spec { kind: Kind::Flag, unit: units::ONE, default: Def::Flag(default), source: "—", note: "" }
}

/// A list of numbers each within ±`limit`.
pub const fn list(unit: Unit, absent: &'static str, limit: f64) -> Spec {
    Spec { kind: Kind::List { limit }, unit, default: Def::None(absent), source: "—", note: "" }
}

/// A sub-table.
pub const fn table(doc_default: &'static str) -> Spec {
    Spec { kind: Kind::Table, unit: units::ONE, default: Def::None(doc_default), source: "—", note: "" }
}

impl Spec {
    /// The source of the default.
    pub const fn src(self, source: &'static str) -> Spec {
        Spec { source, ..self }
    }

    /// A constraint the range cannot express.
    pub const fn note(self, note: &'static str) -> Spec {
        Spec { note, ..self }
    }

    /// The declaration with its key and doc line.
    pub const fn named(self, key: &'static str, doc: &'static str) -> Param {
        Param {
            key,
            doc,
            kind: self.kind,
            unit: self.unit,
            default: self.default,
            source: self.source,
            note: self.note,
        }
    }
}

impl Param {
    /// Whether studies can sweep, draw or tune this key.
    pub fn is_number(&self) -> bool {
        matches!(self.kind, Kind::Real { .. } | Kind::Integer { .. })
    }

    /// The doc line without the leading space a doc comment carries.
    pub fn doc(&self) -> &'static str {
        self.doc.trim()
    }
}

/// A writable numeric field of a raw struct, for applying a study's value
/// without going through TOML.
#[derive(Debug)]
pub enum Slot<'a> {
    /// A real-valued key.
    Real(&'a mut Option<f64>),
    /// A whole-number key.
    Int(&'a mut Option<i64>),
    /// The scenario seed.
    Seed(&'a mut Option<u64>),
}

/// Raw field types that can hand out a [`Slot`].
pub trait AsSlot {
    /// The slot, for numeric fields.
    fn as_slot(&mut self) -> Option<Slot<'_>> {
        None
    }
}
impl AsSlot for Option<f64> {
    fn as_slot(&mut self) -> Option<Slot<'_>> {
        Some(Slot::Real(self))
    }
}
impl AsSlot for Option<i64> {
    fn as_slot(&mut self) -> Option<Slot<'_>> {
        Some(Slot::Int(self))
    }
}
impl AsSlot for Option<u64> {
    fn as_slot(&mut self) -> Option<Slot<'_>> {
        Some(Slot::Seed(self))
    }
}
impl AsSlot for Option<String> {}
impl AsSlot for Option<bool> {}
impl AsSlot for Option<Vec<f64>> {}
impl<T: RawTable> AsSlot for Option<T> {}

/// Raw field types that can show the value written.
pub trait Written {
    /// The value as written, None when absent (or a sub-table).
    fn written(&self) -> Option<String>;
}
impl Written for Option<f64> {
    fn written(&self) -> Option<String> {
        self.map(crate::text::g6)
    }
}
impl Written for Option<i64> {
    fn written(&self) -> Option<String> {
        self.map(|v| v.to_string())
    }
}
impl Written for Option<u64> {
    fn written(&self) -> Option<String> {
        self.map(|v| v.to_string())
    }
}
impl Written for Option<String> {
    fn written(&self) -> Option<String> {
        self.as_ref().map(|v| format!("{v:?}"))
    }
}
impl Written for Option<bool> {
    fn written(&self) -> Option<String> {
        self.map(|v| v.to_string())
    }
}
impl Written for Option<Vec<f64>> {
    fn written(&self) -> Option<String> {
        self.as_deref().map(crate::text::g6_list)
    }
}
impl<T: RawTable> Written for Option<T> {
    fn written(&self) -> Option<String> {
        None
    }
}

/// Marker for raw structs (sub-tables are not numeric slots).
pub trait RawTable {}

/// Declare a raw `[table]` struct and the registry entries of its keys.
///
/// ```ignore
/// section! {
///     /// `[supply]`
///     pub struct RawSupply in "supply" {
///         /// Regulator set pressure.
///         pressure_bar: f64 as PRESSURE = real(BAR_GAUGE, 3.0, 0.2, 10.0).src("…"),
///     }
/// }
/// ```
/// gives `RawSupply { pub pressure_bar: Option<f64> }` (serde, unknown keys
/// rejected), the constant `RawSupply::PRESSURE: Param` with key
/// `supply.pressure_bar`, `RawSupply::PARAMS` (every key, in order) and
/// `RawSupply::slot(field)`.
macro_rules! section {
    ($(#[$m:meta])* pub struct $name:ident in $table:literal {
        $(#[doc = $doc:literal] $field:ident : $ty:ty as $konst:ident = $spec:expr),* $(,)?
    }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name { $(#[doc = $doc] pub $field: Option<$ty>),* }

        impl $crate::model::param::RawTable for $name {}

        #[allow(missing_docs)]
        impl $name {
            $(pub const $konst: $crate::model::param::Param =
                $spec.named(concat!($table, ".", stringify!($field)), $doc);)*
            /// Every key of the table, in declaration order.
            pub const PARAMS: &'static [&'static $crate::model::param::Param] = &[$(&Self::$konst),*];

            /// The numeric field named `field`, if there is one.
            pub fn slot(&mut self, field: &str) -> Option<$crate::model::param::Slot<'_>> {
                use $crate::model::param::AsSlot;
                match field {
                    $(stringify!($field) => self.$field.as_slot(),)*
                    _ => None,
                }
            }

            /// The value written at `field`, as TOML would show it (None when absent).
            pub fn written(&self, field: &str) -> Option<String> {
                use $crate::model::param::Written;
                match field {
                    $(stringify!($field) => self.$field.written(),)*
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use section;

/// A value outside what its key allows (the caller adds where it was written).
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// Dotted key.
    pub key: String,
    /// The value, as shown.
    pub value: String,
    /// What is allowed.
    pub allowed: String,
}

/// An [`Invalid`] value.
pub fn invalid(key: &str, value: impl std::fmt::Display, allowed: impl Into<String>) -> Invalid {
    Invalid { key: key.into(), value: value.to_string(), allowed: allowed.into() }
}

/// A number for a message: at most six significant digits.
pub fn fmt_num(x: f64) -> String {
    if x != 0.0 && (x.abs() >= 1e6 || x.abs() < 1e-3) {
        crate::text::g6_exp(x)
    } else {
        crate::text::g6(x)
    }
}

/// Reads as-written values through their declarations: default, range
/// check, conversion to SI.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    /// Ambient pressure, Pa (for gauge pressures).
    pub p_atm: f64,
    /// Replaces `*` in a key (`sensors.*.tau_ms` → `sensors.chamber.tau_ms`).
    pub star: &'a str,
}

impl<'a> Reader<'a> {
    /// A reader at ambient pressure `p_atm`.
    pub fn new(p_atm: f64) -> Reader<'static> {
        Reader { p_atm, star: "" }
    }

    /// The same reader for the keys of one sub-table (`*` → `star`).
    pub fn under<'b>(&self, star: &'b str) -> Reader<'b> {
        Reader { p_atm: self.p_atm, star }
    }

    /// The key of `p` as the user wrote it.
    pub fn key(&self, p: &Param) -> String {
        if p.key.contains('*') {
            p.key.replace('*', self.star)
        } else {
            p.key.to_string()
        }
    }

    /// A declared real key, SI. Its default is the declared one.
    pub fn real(&self, p: &Param, v: Option<f64>) -> Result<f64, Invalid> {
        let default = match p.default {
            Def::Value(d) => d,
            _ => f64::NAN,
        };
        self.real_or(p, v, default)
    }

    /// A declared real key with a default computed by the caller (human units), SI.
    pub fn real_or(&self, p: &Param, v: Option<f64>, default: f64) -> Result<f64, Invalid> {
        let Kind::Real { min, max } = p.kind else { return Err(self.not_declared(p)) };
        self.real_within(p, v, default, min, max, p.unit.label)
    }

    /// A declared real key whose range depends on other keys (the message
    /// gives `label` after the range), SI.
    pub fn real_within(
        &self,
        p: &Param,
        v: Option<f64>,
        default: f64,
        lo: f64,
        hi: f64,
        label: &str,
    ) -> Result<f64, Invalid> {
        let x = v.unwrap_or(default);
        if !x.is_finite() || x < lo || x > hi {
            return Err(invalid(
                &self.key(p),
                fmt_num(x),
                format!("a number from {} to {} {}", fmt_num(lo), fmt_num(hi), label),
            ));
        }
        Ok((p.unit.to_si)(x, self.p_atm))
    }

    /// A declared whole-number key.
    pub fn int(&self, p: &Param, v: Option<i64>) -> Result<i64, Invalid> {
        let (Kind::Integer { min, max }, Def::Int(default)) = (p.kind, p.default) else {
            return Err(self.not_declared(p));
        };
        let x = v.unwrap_or(default);
        if x < min || x > max {
            return Err(invalid(&self.key(p), x, format!("a whole number from {min} to {max}")));
        }
        Ok(x)
    }

    /// A declared choice.
    pub fn choice<'s>(&self, p: &'s Param, v: &'s Option<String>) -> Result<&'s str, Invalid> {
        let (Kind::Choice(allowed), Def::Text(default)) = (p.kind, p.default) else {
            return Err(self.not_declared(p));
        };
        let x = v.as_deref().unwrap_or(default);
        if !allowed.contains(&x) {
            return Err(invalid(&self.key(p), format!("\"{x}\""), format!("one of {}", allowed.join(", "))));
        }
        Ok(x)
    }

    /// A declared list with one percentage per needle (zeros when absent).
    pub fn per_needle(&self, p: &Param, v: &Option<Vec<f64>>, count: usize) -> Result<Vec<f64>, Invalid> {
        let Kind::List { limit } = p.kind else { return Err(self.not_declared(p)) };
        match v {
            None => Ok(vec![0.0; count]),
            Some(list) => {
                if list.len() != count {
                    return Err(invalid(
                        &self.key(p),
                        format!("{list:?}"),
                        format!("a list of {count} numbers, one per needle (needle.count = {count})"),
                    ));
                }
                if let Some(x) = list.iter().find(|x| !x.is_finite() || x.abs() > limit) {
                    return Err(invalid(&self.key(p), fmt_num(*x), format!("percentages from -{limit} to {limit}")));
                }
                Ok(list.clone())
            }
        }
    }

    fn not_declared(&self, p: &Param) -> Invalid {
        invalid(&self.key(p), "(any)", "a value of the declared kind: this is a bug in mesobench's registry")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    section! {
        /// A test table.
        pub struct RawDemo in "demo" {
            /// A pressure.
            pressure_bar: f64 as PRESSURE = real(units::BAR_GAUGE, 3.0, 0.2, 10.0).src("a test"),
            /// A count.
            count: i64 as COUNT = int(2, 1, 9),
            /// A name.
            kind: String as KIND = choice("a", &["a", "b"]),
        }
    }

    #[test]
    fn a_declaration_names_its_key_from_table_and_field() {
        assert_eq!(RawDemo::PRESSURE.key, "demo.pressure_bar");
        assert_eq!(RawDemo::PRESSURE.doc(), "A pressure.");
        assert_eq!(RawDemo::PRESSURE.source, "a test");
        assert_eq!(RawDemo::PARAMS.len(), 3);
    }

    #[test]
    fn a_reader_applies_default_range_and_conversion() {
        let r = Reader::new(1e5);
        assert_eq!(r.real(&RawDemo::PRESSURE, None), Ok(3.0 * 1e5 + 1e5));
        assert_eq!(r.real(&RawDemo::PRESSURE, Some(1.0)), Ok(2e5));
        let e = r.real(&RawDemo::PRESSURE, Some(12.0)).unwrap_err();
        assert_eq!(e.key, "demo.pressure_bar");
        assert_eq!(e.value, "12");
        assert_eq!(e.allowed, "a number from 0.2 to 10 bar (gauge)");
        assert!(r.real(&RawDemo::PRESSURE, Some(f64::NAN)).is_err());
        assert_eq!(r.int(&RawDemo::COUNT, None), Ok(2));
        assert_eq!(r.int(&RawDemo::COUNT, Some(10)).unwrap_err().allowed, "a whole number from 1 to 9");
        assert_eq!(r.choice(&RawDemo::KIND, &Some("c".into())).unwrap_err().allowed, "one of a, b");
    }

    #[test]
    fn a_slot_writes_only_numeric_fields() {
        let mut d = RawDemo::default();
        match d.slot("pressure_bar") {
            Some(Slot::Real(v)) => *v = Some(4.0),
            other => panic!("{other:?}"),
        }
        assert_eq!(d.pressure_bar, Some(4.0));
        assert_eq!(d.written("pressure_bar").as_deref(), Some("4"));
        assert_eq!(d.written("kind"), None);
        assert!(matches!(d.slot("count"), Some(Slot::Int(_))));
        assert!(d.slot("kind").is_none());
        assert!(d.slot("nothing").is_none());
    }

    #[test]
    fn every_unit_converts_back() {
        use units::*;
        for u in [
            ONE,
            BAR_GAUGE,
            BAR_GAUGE_REL,
            BAR,
            KPA,
            BAR_PER_100LPM,
            CELSIUS,
            US,
            MS,
            ML,
            UL,
            MM,
            UM,
            MM_S,
            G,
            N_PER_MM,
            MH,
            SONIC_CONDUCTANCE,
            UL_PER_BAR,
            UL_PER_BAR_1,
            UL_PER_KPA,
            KPA_S_PER_ML,
            MPA_S,
            PCT,
        ] {
            let x = 3.7;
            let back = (u.from_si)((u.to_si)(x, 101_325.0), 101_325.0);
            assert!((back - x).abs() < 1e-12, "{}: {back}", u.symbol);
        }
    }
}
