//! Tolerance factors and the dose-accuracy rule.

use mesobench::stats::tolerance::{accept, howe_k, k_one_sided, k_two_sided, Limits};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

#[test]
fn two_sided_k_matches_exact_values() {
    // Exact (Odeh–Owen integral, scipy), rust-stack.md §1.3: 3.3934, 2.5549, 2.9355.
    for (n, p, g, exact) in [(10, 0.95, 0.95, 3.3934), (30, 0.95, 0.95, 2.5549), (100, 0.99, 0.95, 2.9355)] {
        let k = k_two_sided(n, p, g);
        assert!((k - exact).abs() < 5e-4, "k({n}, {p}, {g}) = {k}, exact {exact}");
    }
    // Howe's approximation is close but anti-conservative at small n (3.3819 < 3.3934).
    assert!((howe_k(10, 0.95, 0.95) - 3.3819).abs() < 5e-4);
}

#[test]
fn one_sided_k_matches_published_tables() {
    // Natrella / NIST one-sided 95 % / 95 % factors: n = 10, 20, 30 → 2.911, 2.396, 2.220.
    for (n, exact) in [(10, 2.911), (20, 2.396), (30, 2.220)] {
        let k = k_one_sided(n, 0.95, 0.95);
        assert!((k - exact).abs() < 1e-3, "k1({n}) = {k}, table {exact}");
    }
}

#[test]
fn exact_k_achieves_its_confidence() {
    // Monte Carlo: x̄ ± k·s must contain 95 % of the population in 95 % of samples of n = 10.
    let norm = statrs::distribution::Normal::new(0.0, 1.0).unwrap();
    use statrs::distribution::ContinuousCDF;
    let (n, p) = (10, 0.95);
    let k = k_two_sided(n, p, 0.95);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let trials = 40_000;
    let mut ok = 0;
    for _ in 0..trials {
        let x: Vec<f64> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
        let d = mesobench::stats::describe(&x);
        if norm.cdf(d.mean + k * d.sd) - norm.cdf(d.mean - k * d.sd) >= p {
            ok += 1;
        }
    }
    let coverage = ok as f64 / trials as f64;
    // Binomial SD at 40,000 trials ≈ 0.0011.
    assert!((coverage - 0.95).abs() < 0.004, "confidence achieved {coverage}");
}

#[test]
fn acceptance_rule_follows_iso_11608_1() {
    let limits = Limits::iso_pen();
    // 20 µL target: L = max(10, 1) = 10 µL.
    let tight: Vec<f64> = (0..60).map(|i| 20.0 + 0.5 * ((i % 7) as f64 - 3.0) / 3.0).collect();
    let v = accept(&tight, 20.0, &limits);
    assert!(v.pass && v.limit == 10.0, "{v:?}");
    let loose: Vec<f64> = (0..60).map(|i| 20.0 + 8.0 * ((i % 7) as f64 - 3.0) / 3.0).collect();
    assert!(!accept(&loose, 20.0, &limits).pass);
    // Biased but tight also fails once x̄ + k·s crosses V + L.
    let biased: Vec<f64> = tight.iter().map(|x| x + 9.5).collect();
    assert!(!accept(&biased, 20.0, &limits).pass);
}

fn run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mesobench")).args(args).output().unwrap()
}

#[test]
fn tolerance_k_and_accept_commands() {
    let o = run(&["tolerance-k", "--n", "10", "--coverage", "0.95", "--confidence", "0.95"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "3.3934");
    let o = run(&["tolerance-k", "--n", "20", "--coverage", "0.95", "--one-sided"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "2.3960");
    assert_eq!(run(&["tolerance-k", "--n", "1"]).status.code(), Some(2));
    assert_eq!(run(&["tolerance-k", "--n", "10", "--coverage", "1.5"]).status.code(), Some(2));
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.csv");
    let lines: String = (0..30).map(|i| format!("{}\n", 20.0 + 0.1 * ((i % 5) as f64 - 2.0))).collect();
    std::fs::write(&good, format!("dose_ul\n{lines}")).unwrap();
    let o = run(&["accept", good.to_str().unwrap(), "--target-ul", "20", "--alpha-ul", "1", "--beta", "0.05"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("PASS"));
    let o = run(&["accept", good.to_str().unwrap(), "--target-ul", "25", "--alpha-ul", "1", "--beta", "0.05"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("FAIL"));
    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, "dose_ul\n20.0\nabc\n").unwrap();
    let o = run(&["accept", bad.to_str().unwrap(), "--target-ul", "20"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bad.csv:3: dose \"abc\" is not a number"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
