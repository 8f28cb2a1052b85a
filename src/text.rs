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
