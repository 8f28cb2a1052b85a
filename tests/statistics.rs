//! Tolerance factors and the dose-accuracy rule.

use mesobench::stats::tolerance::{accept, howe_k, k_one_sided, k_two_sided, Limits};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

#[test]
fn two_sided_k_matches_exact_values() {
    // Exact (Odeh–Owen integral, scipy), computed offline: 3.3934, 2.5549, 2.9355.
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
    // Presets: SD 1.5 µL at 20 µL passes the pen limits (±10 µL) but not the
    // mesotherapy ones (±3 µL); an explicit option overrides the preset.
    let wide = tmp.path().join("wide.csv");
    let lines: String = (0..30).map(|i| format!("{}\n", 20.0 + 1.5 * 1.2 * ((i % 5) as f64 - 2.0))).collect();
    std::fs::write(&wide, format!("dose_ul\n{lines}")).unwrap();
    let w = wide.to_str().unwrap();
    assert_eq!(run(&["accept", w, "--target-ul", "20"]).status.code(), Some(0));
    assert_eq!(run(&["accept", w, "--target-ul", "20", "--preset", "mesotherapy"]).status.code(), Some(1));
    assert_eq!(
        run(&["accept", w, "--target-ul", "20", "--preset", "mesotherapy", "--beta", "0.5"]).status.code(),
        Some(0)
    );
    assert_eq!(run(&["accept", w, "--target-ul", "20", "--preset", "fda"]).status.code(), Some(2));
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

fn normal_sample(rng: &mut rand_chacha::ChaCha8Rng, n: usize, sd: f64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(rng);
            sd * z
        })
        .collect()
}

#[test]
fn f_test_p_value_matches_the_f_table() {
    use mesobench::stats::compare::f_test;
    // F(0.975; 10, 10) = 3.7168 (Fisher–Snedecor tables): a variance ratio
    // exactly there has a two-sided p of 0.05. Build two samples with that ratio.
    let a: Vec<f64> = (0..11).map(|i| (i as f64 - 5.0) * 3.7168f64.sqrt()).collect();
    let b: Vec<f64> = (0..11).map(|i| i as f64 - 5.0).collect();
    let t = f_test(&a, &b);
    assert!((t.statistic - 3.7168).abs() < 1e-9);
    assert!((t.p - 0.05).abs() < 2e-4, "p = {}", t.p);
    // Symmetric: swapping the arms gives the same p.
    assert!((f_test(&b, &a).p - t.p).abs() < 1e-9);
}

#[test]
fn brown_forsythe_is_anova_on_median_deviations_and_holds_its_level() {
    use mesobench::stats::compare::brown_forsythe;
    // Hand computation: medians 3 and 30; |deviations| (2,1,0,1,3) and (20,10,0,20,40):
    // means 1.4 and 18, grand 9.7; SSB = 5·(8.3² + 8.3²) = 688.9; SSW = 5.2 + 880 = 885.2;
    // F = 688.9 / (885.2 / 8) = 6.2259.
    let a = [1.0, 2.0, 3.0, 4.0, 6.0];
    let b = [10.0, 20.0, 30.0, 50.0, 70.0];
    let t = brown_forsythe(&[&a, &b]);
    assert!((t.statistic - 688.9 / (885.2 / 8.0)).abs() < 1e-9, "F = {}", t.statistic);
    assert_eq!((t.df1, t.df2), (1.0, 8.0));
    // Under H0 the test rejects about 5 % of the time; with a 2× SD it nearly always does.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let (mut h0, mut h1) = (0, 0);
    for _ in 0..2000 {
        let (x, y, w) =
            (normal_sample(&mut rng, 30, 1.0), normal_sample(&mut rng, 30, 1.0), normal_sample(&mut rng, 30, 2.0));
        h0 += (brown_forsythe(&[&x, &y]).p < 0.05) as u32;
        h1 += (brown_forsythe(&[&x, &w]).p < 0.05) as u32;
    }
    let size = h0 as f64 / 2000.0;
    assert!((0.03..0.07).contains(&size), "size {size}");
    assert!(h1 as f64 / 2000.0 > 0.8, "power {}", h1 as f64 / 2000.0);
}

#[test]
fn cluster_bootstrap_interval_covers_the_cv_ratio() {
    use mesobench::stats::compare::{cv_ratio_interval, variance_components};
    // Arm a: CV 20 %, arm b: CV 5 % (means 10); 12 clusters of 10 in each arm.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let mut covered = 0;
    let trials = 100;
    for _ in 0..trials {
        let a: Vec<Vec<f64>> =
            (0..12).map(|_| normal_sample(&mut rng, 10, 2.0).iter().map(|v| v + 10.0).collect()).collect();
        let b: Vec<Vec<f64>> =
            (0..12).map(|_| normal_sample(&mut rng, 10, 0.5).iter().map(|v| v + 10.0).collect()).collect();
        let ar: Vec<&[f64]> = a.iter().map(Vec::as_slice).collect();
        let br: Vec<&[f64]> = b.iter().map(Vec::as_slice).collect();
        let ci = cv_ratio_interval(&ar, &br, 400, 0.95, &mut rng);
        assert!(ci.lo < ci.ratio && ci.ratio < ci.hi);
        covered += (ci.lo <= 4.0 && 4.0 <= ci.hi) as u32;
    }
    assert!(covered >= 88, "covered {covered} of {trials}");
    // Variance components recover a between-operator SD of 1 and a within SD of 0.5.
    let groups: Vec<Vec<f64>> = (0..400)
        .map(|_| {
            let m: f64 = StandardNormal.sample(&mut rng);
            normal_sample(&mut rng, 8, 0.5).iter().map(|v| v + m).collect()
        })
        .collect();
    let g: Vec<&[f64]> = groups.iter().map(Vec::as_slice).collect();
    let (within, between) = variance_components(&g);
    assert!((within - 0.5).abs() < 0.03 && (between - 1.0).abs() < 0.08, "{within} {between}");
}
