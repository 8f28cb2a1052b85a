//! Regressions of scenario validation: study tables checked up front.

use mesobench::scenario::{self, Distribution, Prepared, Source};
use rand::SeedableRng;

/// The reference scenario with `extra` appended, as a file named x.toml.
fn source(extra: &str) -> Source {
    Source { name: "x.toml".into(), text: format!("{}\n{extra}", scenario::DEFAULT_SCENARIO), dir: ".".into() }
}

fn load_err(extra: &str) -> String {
    match scenario::load(&source(extra), &[], "x") {
        Ok(_) => panic!("accepted:\n{extra}"),
        Err(e) => e.to_string(),
    }
}

/// Issue 11.4: a key both swept and `[uncertain]` had its swept value
/// silently replaced by the draw (the row labelled 2 bar held the 3-bar
/// dose). It is refused, naming the key and the line.
#[test]
fn a_key_both_swept_and_uncertain_is_refused() {
    let m = load_err(
        "[sweep]\nreplicates = 2\n[sweep.parameters]\n\"supply.pressure_bar\" = [2.0, 3.0]\n\
         [uncertain]\n\"supply.pressure_bar\" = { dist = \"normal\", mean = 3.0, sd = 0.1 }\n",
    );
    assert!(m.contains("uncertain.\"supply.pressure_bar\""), "{m}");
    assert!(m.contains("not also swept"), "{m}");
    assert!(m.starts_with("x.toml:"), "names the file and line: {m}");
}

/// Issue 11.10: `check` said "valid" for study tables that fail later.
#[test]
fn check_validates_every_study_value_up_front() {
    let cases = [
        // A swept value out of the key's range, with the line of the entry.
        ("[sweep]\n[sweep.parameters]\n\"supply.pressure_bar\" = [2.0, 50.0]\n", "0.2 to 10 bar"),
        // A distribution that reaches outside the range.
        ("[uncertain]\n\"supply.pressure_bar\" = { dist = \"normal\", mean = 3.0, sd = 5.0 }\n", "quantile"),
        ("[uncertain]\n\"supply.pressure_bar\" = { dist = \"uniform\", lo = 2.0, hi = 20.0 }\n", "upper bound"),
        // A negative spread.
        ("[uncertain]\n\"supply.pressure_bar\" = { dist = \"normal\", mean = 3.0, sd = -0.1 }\n", "≥ 0"),
        ("[uncertain]\n\"supply.pressure_bar\" = { dist = \"uniform\", lo = 3.0, hi = 2.0 }\n", "lo ≤ hi"),
        // A key with a trailing space, and a key that does not exist.
        ("[uncertain]\n\"supply.pressure_bar \" = { dist = \"normal\", mean = 3.0, sd = 0.1 }\n", "spaces"),
        ("[sweep]\n[sweep.parameters]\n\"supply.presure_bar\" = [2.0, 3.0]\n", "numeric scenario key"),
        // Integer keys cannot be drawn, nor swept with fractions.
        ("[uncertain]\n\"needle.gauge\" = { dist = \"uniform\", lo = 27, hi = 33 }\n", "whole-number"),
        ("[sweep]\n[sweep.parameters]\n\"needle.gauge\" = [27, 30.5]\n", "whole numbers"),
        ("[sweep]\n[sweep.parameters]\n\"needle.gauge\" = [27, 50]\n", "needle.gauge"),
    ];
    for (extra, needle) in cases {
        let m = load_err(extra);
        assert!(m.contains(needle), "expected {needle:?} in:\n{m}\nfor\n{extra}");
        assert!(m.starts_with("x.toml:"), "{m}");
    }
    // The CLI's `check` fails the same way, exit 2.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, source(cases[0].0).text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mesobench")).arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sweep.parameters.\"supply.pressure_bar\""), "{err}");
}

/// Issue 11.10: integer keys could not be swept at all.
#[test]
fn integer_keys_can_be_swept() {
    let prep = Prepared::new(
        &source(
            "[sweep]\nreplicates = 1\n[sweep.parameters]\n\"needle.gauge\" = [27, 33]\n\"session.shots\" = [1, 2]\n",
        ),
        "x",
    )
    .unwrap();
    let sc = prep.with(&[]).unwrap();
    prep.check_study(&sc, &[]).unwrap();
    let spec = sc.sweep.clone().unwrap();
    let mut bores = Vec::new();
    for p in 0..spec.points() {
        let sets = mesobench::study::sweep::overrides(&sc, &spec, &[], p, 0);
        let v = prep.with(&sets).unwrap();
        bores.push((v.params.needles[0].diameter, v.session.shots));
    }
    assert_eq!(bores.len(), 4);
    assert!(bores[0].0 > bores[2].0, "27G is wider than 33G: {bores:?}");
    assert_eq!((bores[0].1, bores[1].1), (1, 2));
}

/// Issue 11.10: a truncated normal whose window lies far in the tail
/// returned its lower bound every time (rejection gave up).
#[test]
fn a_truncated_normal_far_in_the_tail_is_sampled_exactly() {
    let d = Distribution::TruncatedNormal { mean: 0.0, sd: 1.0, lo: 10.0, hi: 11.0 };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let xs: Vec<f64> = (0..20_000).map(|_| mesobench::study::sweep::draw(&d, &mut rng)).collect();
    assert!(xs.iter().all(|x| (10.0..=11.0).contains(x)));
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    // E[X | 10 ≤ X ≤ 11] = (φ(10) − φ(11))/(Φ(11) − Φ(10)) = 10.0981 (the
    // Mills ratio; the upper cut removes a negligible mass).
    assert!((mean - 10.0981).abs() < 3e-3, "mean {mean}");
    let below = xs.iter().filter(|x| **x < 10.1).count() as f64 / xs.len() as f64;
    // P(X < 10.1 | X > 10) = 1 − exp(−10·0.1 − 0.005) ≈ 0.634.
    assert!((below - 0.634).abs() < 0.02, "{below}");
    // Windows near the middle still use the stream as before (rejection).
    let c = Distribution::TruncatedNormal { mean: 4.0, sd: 0.5, lo: 2.6, hi: 8.0 };
    let mut r1 = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let x = mesobench::study::sweep::draw(&c, &mut r1);
    let mut r2 = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut y = f64::NAN;
    for _ in 0..100 {
        let z: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut r2);
        y = 4.0 + 0.5 * z;
        if (2.6..=8.0).contains(&y) {
            break;
        }
    }
    assert_eq!(x, y);
}

/// A study value given with `--set` is reported at the `--set` argument,
/// not at the file's line of the same key.
#[test]
fn a_bad_study_value_from_set_names_the_set_argument() {
    let src = source("[sweep]\n[sweep.parameters]\n\"supply.pressure_bar\" = [2.0, 3.0]\n");
    let arg = "sweep.parameters.\"supply.pressure_bar\"=[2.0, 30.0]".to_string();
    let m = scenario::load(&src, &[arg], "x").unwrap_err().to_string();
    assert!(m.starts_with("--set sweep.parameters.\"supply.pressure_bar\"=[2.0, 30.0]: "), "{m}");
    assert!(m.contains("= 30 is not allowed"), "{m}");
}

/// A 1 mL syringe "filled" with 10 mL was accepted: the session then ran
/// on a barrel half a metre long. The fill is refused above the barrel's
/// capacity (the preset's, scaled by a custom bore), naming the key, the
/// value, the capacity and the way out; at the capacity it loads.
#[test]
fn a_fill_beyond_the_syringe_capacity_is_refused() {
    let load = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        scenario::load(&Source::default_scenario(), &sets, "x")
    };
    let m = load(&["syringe.fill_ml=10"]).expect_err("10 mL in a 1 mL syringe").to_string();
    assert!(m.contains("syringe.fill_ml") && m.contains("10"), "{m}");
    assert!(m.contains("capacity, 1 mL") && m.contains("bd_1ml") && m.contains("syringe.preset"), "{m}");
    // Twice the bore, four times the capacity.
    let m = load(&["syringe.inner_diameter_mm=9.56", "syringe.fill_ml=4.5"]).expect_err("over 4 mL").to_string();
    assert!(m.contains("capacity, 4 mL"), "{m}");
    for ok in [&["syringe.fill_ml=1.0"][..], &["syringe.inner_diameter_mm=9.56", "syringe.fill_ml=4.0"]] {
        assert!(load(ok).is_ok(), "{ok:?}");
    }
    let ten = load(&["syringe.preset=\"bd_10ml\"", "syringe.fill_ml=10"]);
    assert!(ten.is_ok(), "{:?}", ten.err());
}

/// A bad value written as a top-level dotted key (`supply.pressure_bar =
/// 50`) or inside an inline table (`supply = { pressure_bar = 50 }`) was
/// reported with the file name only: the key was found by searching the
/// text for `[supply]` headers. Every scenario key is now located from the
/// spans of the parsed document, so the message names line and column.
#[test]
fn a_bad_value_in_a_dotted_key_or_an_inline_table_names_its_line_and_column() {
    let load = |text: &str| {
        let src = Source { name: "d.toml".into(), text: text.into(), dir: ".".into() };
        scenario::load(&src, &[], "d").map(|_| ()).unwrap_err().to_string()
    };
    let m = load("name = \"d\"\nsupply.pressure_bar = 50.0\n");
    assert!(m.starts_with("d.toml:2:23: supply.pressure_bar = 50 is not allowed"), "{m}");
    let m = load("name = \"d\"\nsupply = { pressure_bar = 50.0 }\n");
    assert!(m.starts_with("d.toml:2:27: supply.pressure_bar = 50 is not allowed"), "{m}");
    // A header table, as before.
    let m = load("name = \"d\"\n[supply]\npressure_bar = 50.0\n");
    assert!(m.starts_with("d.toml:3:16: supply.pressure_bar = 50 is not allowed"), "{m}");
}
