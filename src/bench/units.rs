//! Units of bench-data columns: read from a header (`P syringe [bar]`,
//! `p_kpa`, `Time (ms)`) or a channel map, converted once to SI.

/// What a column measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// Time, s.
    Time,
    /// Pressure, Pa.
    Pressure,
    /// Electric current, A.
    Current,
    /// Length (plunger position), m.
    Length,
    /// Volume, m³.
    Volume,
    /// Volume flow, m³/s.
    Flow,
    /// Mass, kg.
    Mass,
    /// A logic or analogue command (only its edges are used): no unit.
    Level,
}

impl Quantity {
    /// Name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Quantity::Time => "time",
            Quantity::Pressure => "pressure",
            Quantity::Current => "current",
            Quantity::Length => "length",
            Quantity::Volume => "volume",
            Quantity::Flow => "flow",
            Quantity::Mass => "mass",
            Quantity::Level => "command level",
        }
    }

    /// The units accepted for this quantity, for messages.
    pub fn allowed(self) -> String {
        let names: Vec<&str> = UNITS.iter().filter(|u| u.2 == self).map(|u| u.0).collect();
        names.join(", ")
    }
}

/// A column's unit: the factor to SI and, for a pressure, whether it is absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnUnit {
    /// The unit as written.
    pub name: String,
    /// What it measures.
    pub quantity: Quantity,
    /// SI value of one unit.
    pub scale: f64,
    /// A pressure measured against vacuum (converted to gauge with the scenario's ambient).
    pub absolute: bool,
}

/// (name, SI value of one unit, quantity), names lower case with `u` for µ.
const UNITS: &[(&str, f64, Quantity)] = &[
    ("s", 1.0, Quantity::Time),
    ("ms", 1e-3, Quantity::Time),
    ("us", 1e-6, Quantity::Time),
    ("pa", 1.0, Quantity::Pressure),
    ("hpa", 1e2, Quantity::Pressure),
    ("kpa", 1e3, Quantity::Pressure),
    ("mpa", 1e6, Quantity::Pressure),
    ("mbar", 1e2, Quantity::Pressure),
    ("bar", 1e5, Quantity::Pressure),
    // 1 psi = 0.45359237 kg × 9.80665 m/s² / (0.0254 m)² exactly.
    ("psi", 6894.757293168361, Quantity::Pressure),
    ("a", 1.0, Quantity::Current),
    ("ma", 1e-3, Quantity::Current),
    ("m", 1.0, Quantity::Length),
    ("mm", 1e-3, Quantity::Length),
    ("um", 1e-6, Quantity::Length),
    ("ul", 1e-9, Quantity::Volume),
    ("ml", 1e-6, Quantity::Volume),
    ("m3", 1.0, Quantity::Volume),
    ("ul/s", 1e-9, Quantity::Flow),
    ("ul/min", 1e-9 / 60.0, Quantity::Flow),
    ("ml/s", 1e-6, Quantity::Flow),
    ("ml/min", 1e-6 / 60.0, Quantity::Flow),
    ("ml/h", 1e-6 / 3600.0, Quantity::Flow),
    ("m3/s", 1.0, Quantity::Flow),
    ("mg", 1e-6, Quantity::Mass),
    ("g", 1e-3, Quantity::Mass),
    ("kg", 1.0, Quantity::Mass),
    ("1", 1.0, Quantity::Level),
    ("-", 1.0, Quantity::Level),
    ("v", 1.0, Quantity::Level),
    ("%", 0.01, Quantity::Level),
];

/// Parse a unit as written (`bar`, `kPa abs`, `bar(a)`, `psig`, `µL/s`,
/// `mL/min`); `None` when it is not one mesobench knows.
pub fn parse(written: &str) -> Option<ColumnUnit> {
    let mut s = written.trim().to_lowercase().replace(['µ', 'μ'], "u").replace("³", "3");
    s.retain(|c| !c.is_whitespace());
    let mut absolute = false;
    for (suffix, abs) in [("(abs)", true), ("(a)", true), ("_abs", true), ("abs", true), ("(g)", false), ("_g", false)]
    {
        if let Some(stem) = s.strip_suffix(suffix) {
            if UNITS.iter().any(|u| u.0 == stem && u.2 == Quantity::Pressure) {
                absolute = abs;
                s = stem.to_string();
                break;
            }
        }
    }
    // `bara`, `psia`, `barg`, `psig`, `kpaa`, `kpag`.
    if !UNITS.iter().any(|u| u.0 == s) {
        for (suffix, abs) in [("a", true), ("g", false)] {
            if let Some(stem) = s.strip_suffix(suffix) {
                if UNITS.iter().any(|u| u.0 == stem && u.2 == Quantity::Pressure) {
                    absolute = abs;
                    s = stem.to_string();
                    break;
                }
            }
        }
    }
    if s == "sec" {
        s = "s".into();
    }
    let (_, scale, quantity) = *UNITS.iter().find(|u| u.0 == s)?;
    Some(ColumnUnit { name: written.trim().to_string(), quantity, scale, absolute })
}

/// The unit a header carries: in brackets or parentheses (`P syringe [bar]`,
/// `Time (ms)`), or as the last `_` part (`p_kpa`, `time_ms`).
/// Returns the unit text, or `None` when the header names none.
pub fn in_header(header: &str) -> Option<String> {
    let h = header.trim();
    for (open, close) in [('[', ']'), ('(', ')')] {
        if let (Some(a), true) = (h.rfind(open), h.ends_with(close)) {
            let inner = &h[a + open.len_utf8()..h.len() - close.len_utf8()];
            // `bar(a)` written without brackets: the whole header is the unit.
            if parse(inner).is_some() {
                return Some(inner.to_string());
            }
        }
    }
    let (_, last) = h.rsplit_once('_')?;
    let two = h.rsplitn(3, '_').collect::<Vec<_>>();
    // `p_kpa_abs`: the unit is the last two parts.
    if two.len() == 3 && last.eq_ignore_ascii_case("abs") {
        let unit = format!("{}_{}", two[1], two[0]);
        if parse(&unit).is_some() {
            return Some(unit);
        }
    }
    parse(last).map(|_| last.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_units_in_brackets_parentheses_and_suffixes() {
        assert_eq!(in_header("P syringe [bar]").as_deref(), Some("bar"));
        assert_eq!(in_header("Time (ms)").as_deref(), Some("ms"));
        assert_eq!(in_header("p_kpa").as_deref(), Some("kpa"));
        assert_eq!(in_header("p_chamber_kpa_abs").as_deref(), Some("kpa_abs"));
        assert_eq!(in_header("flow [µL/s]").as_deref(), Some("µL/s"));
        assert_eq!(in_header("Valve cmd"), None);
        assert_eq!(in_header("p_syringe"), None);
    }

    #[test]
    fn units_convert_exactly_and_know_absolute_pressure() {
        let bar = parse("bar").unwrap();
        assert_eq!((bar.scale, bar.absolute, bar.quantity), (1e5, false, Quantity::Pressure));
        for abs in ["bar(a)", "bara", "bar abs", "BAR_ABS"] {
            assert!(parse(abs).unwrap().absolute, "{abs}");
        }
        assert!(!parse("psig").unwrap().absolute);
        assert!((parse("psi").unwrap().scale - 6894.757).abs() < 1e-3);
        assert_eq!(parse("mL/min").unwrap().scale, 1e-6 / 60.0);
        assert_eq!(parse("µL").unwrap().scale, 1e-9);
        assert_eq!(parse("mg").unwrap().quantity, Quantity::Mass);
        assert!(parse("furlong").is_none());
        assert!(parse("sa").is_none(), "an `a` suffix is absolute only on a pressure unit");
    }
}
