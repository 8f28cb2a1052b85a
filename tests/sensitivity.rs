//! Sobol sensitivity indices.

use crate::util::root;
use mesobench::scenario::Distribution;
use mesobench::study::sensitivity::{analyse, normal_cdf, normal_quantile, quantile};
use std::f64::consts::PI;

/// Ishigami function with a = 7, b = 0.1 on inputs uniform in (−π, π).
fn ishigami(u: &[f64]) -> Result<f64, String> {
    let x: Vec<f64> = u.iter().map(|v| -PI + 2.0 * PI * v).collect();
    Ok(x[0].sin() + 7.0 * x[1].sin().powi(2) + 0.1 * x[2].powi(4) * x[0].sin())
}

#[test]
fn ishigami_indices_match_their_analytic_values() {
    // Analytic (Ishigami & Homma 1990; Sobol' & Levitan 1999):
    let (a, b) = (7.0_f64, 0.1_f64);
    let v = a * a / 8.0 + b * PI.powi(4) / 5.0 + b * b * PI.powi(8) / 18.0 + 0.5;
    let v1 = 0.5 * (1.0 + b * PI.powi(4) / 5.0).powi(2);
    let v2 = a * a / 8.0;
    let v13 = b * b * PI.powi(8) * (1.0 / 18.0 - 1.0 / 50.0);
    let exact_first = [v1 / v, v2 / v, 0.0];
    let exact_total = [(v1 + v13) / v, v2 / v, v13 / v];
    assert!((exact_first[0] - 0.3139).abs() < 1e-4 && (exact_total[2] - 0.2437).abs() < 1e-4);
    let names: Vec<String> = ["x1", "x2", "x3"].map(String::from).to_vec();
    let r = analyse(&names, 8192, 1, 300, 2, ishigami).unwrap();
    for i in 0..3 {
        let s = &r.indices[i];
        eprintln!(
            "x{}: first {:.4} (exact {:.4}) total {:.4} (exact {:.4})",
            i + 1,
            s.first,
            exact_first[i],
            s.total,
            exact_total[i]
        );
        assert!((s.first - exact_first[i]).abs() < 0.02, "S{} = {} vs {}", i + 1, s.first, exact_first[i]);
        assert!((s.total - exact_total[i]).abs() < 0.02, "ST{} = {} vs {}", i + 1, s.total, exact_total[i]);
        // The 95 % bootstrap intervals cover the exact values.
        assert!(s.first_ci.0 - 0.005 <= exact_first[i] && exact_first[i] <= s.first_ci.1 + 0.005, "{:?}", s.first_ci);
        assert!(s.total_ci.0 - 0.005 <= exact_total[i] && exact_total[i] <= s.total_ci.1 + 0.005, "{:?}", s.total_ci);
    }
    assert!((r.variance - v).abs() / v < 0.02);
    // Same seed, same answer, whatever the thread count.
    assert_eq!(r, analyse(&names, 8192, 1, 300, 1, ishigami).unwrap());
}

#[test]
fn quantile_functions_invert_their_distributions() {
    for p in [1e-6, 0.01, 0.3, 0.5, 0.9, 0.999] {
        assert!((normal_cdf(normal_quantile(p)) - p).abs() < 1e-8 * p.max(1e-3), "{p}");
    }
    let t = Distribution::TruncatedNormal { mean: 4.0, sd: 1.0, lo: 2.6, hi: 10.0 };
    assert!((quantile(&t, 1e-9) - 2.6).abs() < 1e-3 && quantile(&t, 0.5) > 4.0);
    let l = Distribution::Lognormal { median: 4.0, gsd: 1.3 };
    assert!((quantile(&l, 0.5) - 4.0).abs() < 1e-9);
}

#[test]
fn dose_sensitivity_ranks_the_needle_bore_first() {
    let tmp = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mesobench"))
        .current_dir(root())
        .args(["sensitivity", "scenarios/sensitivity_reference.toml", "--out", tmp.path().to_str().unwrap(), "--quiet"])
        .args(["--set", "sensitivity.samples=64", "--set", "sensitivity.bootstrap=50"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["sensitivity.csv", "sensitivity.json", "sensitivity.png", "sensitivity.svg"] {
        assert!(tmp.path().join(f).exists(), "{f}");
    }
    let csv = std::fs::read_to_string(tmp.path().join("sensitivity.csv")).unwrap();
    let totals: Vec<(String, f64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[4].parse().unwrap())
        })
        .collect();
    // Indices print at most 12 significant digits, like every table.
    for cell in csv.lines().skip(1).flat_map(|l| l.split(',').skip(1)) {
        crate::util::assert_at_most_12_digits("sensitivity.csv", cell);
    }
    let top = totals.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    assert_eq!(top.0, "needle.inner_diameter_mm", "{totals:?}");
    // Without [uncertain] there is nothing to analyse: exit 2.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mesobench"))
        .current_dir(root())
        .args(["sensitivity", "scenarios/reference.toml", "--out", tmp.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no [uncertain] parameters"));
}
