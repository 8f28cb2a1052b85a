//! Numbers in messages: at most six significant digits, whatever the
//! magnitude, so a diverging state reads `4.70000e8`, not a 40-digit integer.

/// `x` with at most six significant digits (trailing zeros dropped);
/// scientific notation outside 1e-4 ≤ |x| < 1e6.
pub fn g6(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if (1e-4..1e6).contains(&a) {
        let digits = (5 - a.log10().floor() as i32).clamp(0, 10) as usize;
        let s = format!("{x:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        g6_exp(x)
    }
}

/// `x` in scientific notation with at most six significant digits (`4.7e8`).
pub fn g6_exp(x: f64) -> String {
    let s = format!("{x:.5e}");
    let (m, e) = s.split_once('e').expect("an exponent");
    let m = if m.contains('.') { m.trim_end_matches('0').trim_end_matches('.') } else { m };
    format!("{m}e{e}")
}

/// A list of numbers, each with [`g6`].
pub fn g6_list(xs: &[f64]) -> String {
    let parts: Vec<String> = xs.iter().map(|x| g6(*x)).collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::g6;

    #[test]
    fn six_significant_digits_at_any_magnitude() {
        assert_eq!(g6(4.7e8), "4.7e8");
        assert_eq!(g6(1e40), "1e40");
        assert_eq!(g6(123456789.0), "1.23457e8");
        assert_eq!(g6(401325.0), "401325");
        assert_eq!(g6(0.1 + 0.2), "0.3");
        assert_eq!(g6(-2.5e-7), "-2.5e-7");
        assert_eq!(g6(19.786032123), "19.786");
        assert_eq!(g6(0.0), "0");
        assert_eq!(g6(f64::NAN), "NaN");
    }
}

/// `x` rounded to 12 significant digits: the value a table prints, so that
/// the residue of a unit conversion or of a time summed over a session does
/// not show (`0.06 s` in ms is `60`, not `60.00000000000001`; a valve edge
/// 2.35 ms after a shot that starts at 500 ms is `2.35`, not
/// `2.3499999999999677`). Twelve digits are far below what the models
/// resolve (their accuracy is 1e-3 at best) and above what the
/// arithmetic disturbs (1e-13 relative over a long session); zeros and
/// non-finite values pass through. JSON files keep every digit.
pub fn tidy(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let k = 11 - x.abs().log10().floor() as i32;
    // n / 10^k (or n · 10^−k) is correctly rounded: the double nearest to
    // the 12-digit decimal, as parsing its text would give.
    let y = if (0..=22).contains(&k) {
        let p = 10f64.powi(k);
        (x * p).round() / p
    } else if (-22..0).contains(&k) {
        let p = 10f64.powi(-k);
        (x / p).round() * p
    } else {
        format!("{x:.11e}").parse().unwrap_or(x)
    };
    if y.is_finite() {
        y
    } else {
        x
    }
}

/// A table cell: [`tidy`], printed as the shortest text that reads back to
/// it (`60.0`, `2.35`, `1e-20`).
pub fn cell(x: f64) -> String {
    format!("{:?}", tidy(x))
}

#[cfg(test)]
mod tidy_tests {
    use super::{cell, tidy};

    #[test]
    fn table_numbers_drop_the_residue_of_unit_conversions() {
        assert_eq!(cell(0.06000000000000001 * 1e3), "60.0");
        assert_eq!(cell(60.00000000000001), "60.0");
        assert_eq!(cell(2.3499999999999996), "2.35");
        assert_eq!(cell(0.1 + 0.2), "0.3");
        assert_eq!(cell(3.4500000000000086), "3.45");
        assert_eq!(cell(2.3499999999999677), "2.35");
        assert_eq!(cell(-299.999999999982), "-300.0");
        assert_eq!(cell(20.76357984735046), "20.7635798474");
    }

    #[test]
    fn tidy_keeps_twelve_significant_digits_and_special_values() {
        for x in [20.76357984735046, 1.2345678901234e-20, 6.02214076e23, -4.7e8, 1e-300, f64::MAX] {
            let rel = ((tidy(x) - x) / x).abs();
            assert!(rel <= 5e-12, "{x}: {}", tidy(x));
        }
        assert_eq!(tidy(0.0), 0.0);
        assert!(tidy(f64::NAN).is_nan());
        assert_eq!(tidy(f64::INFINITY), f64::INFINITY);
        // Idempotent: a tidied value prints and reads back unchanged.
        for x in [60.00000000000001, 2.3499999999999996, 1.0 / 3.0] {
            assert_eq!(tidy(tidy(x)), tidy(x));
            assert_eq!(cell(x).parse::<f64>().unwrap(), tidy(x));
        }
    }
}

/// A fraction written as a percentage (a `_pct` key of a JSON file, every
/// digit kept).
pub(crate) fn as_pct<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(100.0 * v)
}
