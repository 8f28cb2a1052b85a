//! `mesobench fit` and `validate`: round trips on data made at known
//! parameters, interval coverage, identifiability, and bad input.

use std::path::Path;
use std::process::{Command, Output};

use mesobench::bench::{synthesize, Signal, SynthColumn};
use mesobench::study::fit::{self, lm, Purpose};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use crate::util::{reference, root};

const TRUE_BORE_MM: f64 = 0.150;
const TRUE_C: f64 = 0.08;

/// A one-experiment bench folder: two shots of the reference gun at the
/// true bore and valve conductance, logged at 5 kHz with noise, and weighed.
fn bench_folder(dir: &Path, seed: u64) {
    let sc = reference(&[
        &format!("needle.inner_diameter_mm={TRUE_BORE_MM}"),
        &format!("valve.c_dm3_per_s_bar={TRUE_C}"),
        "session.shots=2",
    ]);
    let mut trace = Vec::new();
    let run = mesobench::simulate_traced(&sc, &mut trace).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let columns = [
        SynthColumn { signal: Signal::PChamber, header: "P chamber [bar]", unit: "bar", sd: 1e3 },
        SynthColumn { signal: Signal::PSyringe, header: "p_syringe_kpa", unit: "kPa", sd: 2e3 },
    ];
    let csv = synthesize(&trace, &columns, 2e-4, 0.02, sc.params.p_atm, b';', &mut rng).unwrap();
    std::fs::write(dir.join("trace.csv"), csv).unwrap();
    let balance = Normal::new(0.0, 0.1).unwrap();
    let mut masses = String::from("shot;mass [mg]\n");
    for s in &run.result.shots {
        let mg = s.dose * sc.params.fluid.density * 1e6 + balance.sample(&mut rng);
        masses.push_str(&format!("{};{}\n", s.index + 1, format!("{mg:.3}").replace('.', ",")));
    }
    std::fs::write(dir.join("mass.csv"), masses).unwrap();
}

/// A fit file over `bench_folder`'s data; `parameters` is the [parameters] body.
fn fit_file(dir: &Path, parameters: &str, extra: &str) -> std::path::PathBuf {
    let scenario = root().join("scenarios/reference.toml");
    let text = format!(
        r#"scenario = {scenario:?}
[fit]
starts = 4
profile = false
{extra}
[[experiment]]
name = "bench"
trace = "trace.csv"
masses = "mass.csv"
[experiment.channels]
"Valve cmd" = {{ signal = "valve_command" }}
"P chamber [bar]" = {{ signal = "p_chamber" }}
"p_syringe_kpa" = {{ signal = "p_syringe", sd = 2.0e3 }}
[parameters]
{parameters}
"#
    );
    let p = dir.join("fit.toml");
    std::fs::write(&p, text).unwrap();
    p
}

const TWO: &str = r#""needle.inner_diameter_mm" = { lo = 0.12, hi = 0.20 }
"valve.c_dm3_per_s_bar" = { lo = 0.03, hi = 0.3 }"#;

fn quiet(_: &str) {}

fn covers(e: &lm::Estimate, truth: f64) -> bool {
    e.ci95.is_some_and(|[a, b]| a <= truth && truth <= b)
}

#[test]
fn fit_recovers_known_parameters_within_their_intervals() {
    let tmp = tempfile::tempdir().unwrap();
    bench_folder(tmp.path(), 1);
    let file = fit::load(&fit_file(tmp.path(), TWO, ""), Purpose::Fit).unwrap();
    let out = lm::fit(&file, &quiet).unwrap();
    assert!(out.converged, "{}", out.reason);
    let (bore, c) = (&out.estimates[0], &out.estimates[1]);
    // Within three standard errors (a 95 % interval misses one time in
    // twenty by design; its coverage is the next test's business).
    for (e, truth) in [(bore, TRUE_BORE_MM), (c, TRUE_C)] {
        assert!((e.estimate - truth).abs() < 3.0 * e.se.unwrap(), "{e:?}");
    }
    // Intervals narrow enough to mean something: under 1 % of the value.
    assert!(bore.se.unwrap() < 0.003 * TRUE_BORE_MM && c.se.unwrap() < 0.003 * TRUE_C, "{out:?}");
    // The residual variance is that of the noise the data were made with.
    assert!((0.8..1.25).contains(&out.sigma2), "σ² = {}", out.sigma2);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

#[test]
fn ninety_five_percent_intervals_cover_the_truth_over_noise_seeds() {
    // Small seed count for the test suite (the figure over 100 seeds is in
    // docs/calibration.md): 4 seeds × 2 parameters = 8 intervals; with true
    // 95 % coverage, 6 or fewer covering has probability 0.6 %.
    let mut covered = 0;
    for seed in 10..14 {
        let tmp = tempfile::tempdir().unwrap();
        bench_folder(tmp.path(), seed);
        let file = fit::load(&fit_file(tmp.path(), TWO, ""), Purpose::Fit).unwrap();
        let out = lm::fit(&file, &quiet).unwrap();
        covered +=
            usize::from(covers(&out.estimates[0], TRUE_BORE_MM)) + usize::from(covers(&out.estimates[1], TRUE_C));
    }
    assert!(covered >= 7, "{covered} of 8 intervals cover the truth");
}

#[test]
fn a_parameter_the_data_cannot_see_is_flagged_not_given_an_interval() {
    let tmp = tempfile::tempdir().unwrap();
    bench_folder(tmp.path(), 2);
    // The open-loop firmware never reads the chamber sensor: its offset
    // changes nothing the bench logs.
    let params = format!("{TWO}\n\"sensors.chamber.offset_kpa\" = {{ lo = -5.0, hi = 5.0 }}");
    let file = fit::load(&fit_file(tmp.path(), &params, ""), Purpose::Fit).unwrap();
    let out = lm::fit(&file, &quiet).unwrap();
    let blind = &out.estimates[2];
    assert!(!blind.identifiable && blind.ci95.is_none() && blind.se.is_none(), "{blind:?}");
    assert!(
        out.warnings.iter().any(|w| w.contains("not identifiable: sensors.chamber.offset_kpa")),
        "{:?}",
        out.warnings
    );
    // The others are still estimated with intervals.
    assert!(covers(&out.estimates[0], TRUE_BORE_MM), "{:?}", out.estimates[0]);
}

#[test]
fn aligned_edges_stay_within_a_bench_sample() {
    let tmp = tempfile::tempdir().unwrap();
    bench_folder(tmp.path(), 3);
    let file = fit::load(&fit_file(tmp.path(), TWO, ""), Purpose::Fit).unwrap();
    let ex = &file.experiments[0];
    assert_eq!(ex.shots, 2);
    assert!((ex.align_window - 2e-4).abs() < 1e-9, "{}", ex.align_window);
    let sim = fit::simulate(&file, ex, &[TRUE_BORE_MM, TRUE_C]).unwrap();
    let al = fit::align(ex, &sim);
    assert!(al.offsets.iter().all(|o| o.abs() <= ex.align_window), "{:?}", al.offsets);
    // At the truth the weighted residuals are the noise: mean square ≈ 1.
    let mut r = Vec::new();
    fit::residuals(ex, &sim, &mut r);
    let ms = r.iter().map(|v| v * v).sum::<f64>() / r.len() as f64;
    assert!((0.8..1.25).contains(&ms), "mean square {ms}");
}

fn mesobench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mesobench")).args(args).output().expect("binary runs")
}

fn fails_with(args: &[&str], code: i32, fragments: &[&str]) -> String {
    let o = mesobench(args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(code), "{err}");
    for f in fragments {
        assert!(err.contains(f), "{f:?} not in: {err}");
    }
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    err
}

#[test]
fn bad_fit_input_names_the_file_the_place_and_what_is_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    bench_folder(tmp.path(), 4);
    let d = tmp.path();
    let out = d.join("out");
    let out = out.to_str().unwrap();
    let base = std::fs::read_to_string(fit_file(d, TWO, "")).unwrap();
    let case = |name: &str, text: String, fragments: &[&str]| {
        let p = d.join(format!("{name}.toml"));
        std::fs::write(&p, text).unwrap();
        fails_with(&["fit", p.to_str().unwrap(), "--out", out, "--quiet"], 2, fragments);
    };
    // A channel naming no column lists the columns there are.
    case(
        "missing_column",
        base.replace("\"p_syringe_kpa\" =", "\"P syringe\" ="),
        &["missing_column.toml:", "\"P syringe\" names no column", "trace.csv", "\"p_syringe_kpa\""],
    );
    // An unknown unit in the channel map.
    case(
        "unknown_unit",
        base.replace("signal = \"p_chamber\" }", "signal = \"p_chamber\", unit = \"atm\" }"),
        &["unknown_unit.toml:", "unit \"atm\" is not known", "kpa, mpa, mbar, bar, psi"],
    );
    // An invalid condition key, with its line.
    case(
        "bad_set",
        base.replace("name = \"bench\"", "name = \"bench\"\nset = { \"supply.presure_bar\" = 3.0 }"),
        &["bad_set.toml:", "supply.presure_bar", "expected one of `pressure_bar`"],
    );
    // Bounds outside the key's registry range.
    case(
        "bounds",
        base.replace("lo = 0.12, hi = 0.20", "lo = 0.01, hi = 0.20"),
        &["bounds.toml:", "needle.inner_diameter_mm\".lo = 0.01", "0.05 to 1 mm"],
    );
    // A key that cannot be fitted.
    case("not_real", base.replace("\"valve.c_dm3_per_s_bar\"", "\"needle.count\""), &["needle.count", "real-valued"]);
    // A trace with no valve edge.
    let flat: String = std::fs::read_to_string(d.join("trace.csv"))
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut f: Vec<&str> = l.split(';').collect();
            if i > 0 {
                f[1] = "0";
            }
            f.join(";") + "\n"
        })
        .collect();
    std::fs::write(d.join("flat.csv"), flat).unwrap();
    case(
        "no_edge",
        base.replace("trace = \"trace.csv\"", "trace = \"flat.csv\""),
        &["no_edge.toml:", "no shot found", "valve_command", "\"Valve cmd\""],
    );
    // A cell that is not a number: file, line and column.
    let text = std::fs::read_to_string(d.join("trace.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mut f: Vec<String> = lines[5].split(';').map(String::from).collect();
    f[3] = "n/a".into();
    lines[5] = f.join(";");
    std::fs::write(d.join("bad_cell.csv"), lines.join("\n") + "\n").unwrap();
    case(
        "bad_cell",
        base.replace("trace = \"trace.csv\"", "trace = \"bad_cell.csv\""),
        &["bad_cell.csv:6:4", "\"n/a\" is not a number"],
    );
    // A header without a unit and no unit in the map.
    let text = std::fs::read_to_string(d.join("trace.csv")).unwrap().replacen("p_syringe_kpa", "p_syringe", 1);
    std::fs::write(d.join("no_unit.csv"), text).unwrap();
    case(
        "no_unit",
        base.replace("trace = \"trace.csv\"", "trace = \"no_unit.csv\"")
            .replace("\"p_syringe_kpa\" =", "\"p_syringe\" ="),
        &["has no unit", "\"p_syringe [kPa]\""],
    );
}

#[test]
fn a_fit_that_does_not_converge_says_so_writes_its_best_point_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    bench_folder(tmp.path(), 5);
    let p = fit_file(tmp.path(), TWO, "max_iterations = 1");
    let out = tmp.path().join("out");
    let err =
        fails_with(&["fit", p.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"], 1, &["did not converge"]);
    assert!(err.contains("best point"), "{err}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fit_summary.json")).unwrap()).unwrap();
    assert_eq!(summary["converged"], false);
    assert!(summary["parameters"]["needle.inner_diameter_mm"]["estimate"].is_number());
    assert!(out.join("calibrated.toml").exists());
}

#[test]
fn calibrated_scenario_carries_the_estimates_and_passes_validation() {
    let tmp = tempfile::tempdir().unwrap();
    bench_folder(tmp.path(), 6);
    let d = tmp.path();
    let out = d.join("out");
    let o = mesobench(&["fit", fit_file(d, TWO, "").to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fit_summary.json")).unwrap()).unwrap();
    let est = summary["parameters"]["needle.inner_diameter_mm"]["estimate"].as_f64().unwrap();
    let ci = summary["parameters"]["needle.inner_diameter_mm"]["ci95"].as_array().unwrap().clone();
    assert!(ci[0].as_f64().unwrap() < est && est < ci[1].as_f64().unwrap());
    let calibrated = std::fs::read_to_string(out.join("calibrated.toml")).unwrap();
    assert!(calibrated.contains("# fitted by mesobench fit"), "{calibrated}");
    for f in ["fit_bench_p_syringe.png", "fit_bench_p_chamber.svg", "fit_history.csv"] {
        assert!(out.join(f).exists(), "{f}");
    }
    // validate: the written scenario against the same data, with tolerances.
    let fit_text = std::fs::read_to_string(d.join("fit.toml")).unwrap();
    let body = fit_text.split("[parameters]").next().unwrap().replace("[fit]\nstarts = 4\nprofile = false\n", "");
    let val = d.join("validate.toml");
    std::fs::write(&val, format!("{body}\n[tolerance]\np_syringe_rms_kpa = 3.0\ndose_error_pct = 2.0\n")).unwrap();
    let vout = d.join("vout");
    let args = |sc: Option<&Path>| {
        let mut a = vec!["validate".to_string(), val.display().to_string(), "--out".into(), vout.display().to_string()];
        if let Some(s) = sc {
            a.extend(["--scenario".to_string(), s.display().to_string()]);
        }
        a.push("--quiet".into());
        a
    };
    let run = |a: Vec<String>| Command::new(env!("CARGO_BIN_EXE_mesobench")).args(a).output().unwrap();
    // The uncalibrated reference gun is not this gun: exit 1.
    assert_eq!(run(args(None)).status.code(), Some(1));
    let o = run(args(Some(&out.join("calibrated.toml"))));
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vout.join("validate_summary.json")).unwrap()).unwrap();
    assert_eq!(v["pass"], true);
}

#[test]
fn shipped_fit_example_loads_with_both_csv_dialects() {
    let file = fit::load(&root().join("scenarios/fit_example/fit.toml"), Purpose::Fit).unwrap();
    assert_eq!(file.experiments.len(), 2);
    for ex in &file.experiments {
        assert_eq!(ex.shots, 3, "{}", ex.name);
        assert_eq!(ex.volumes.len(), 3);
        // The chamber's noise, estimated from the baseline, is the 1 kPa the data were made with.
        let ch = ex.channels.iter().find(|c| c.signal == Signal::PChamber).unwrap();
        assert!(ch.sd_estimated && (ch.sd - 1e3).abs() < 150.0, "{}: {}", ex.name, ch.sd);
    }
    // The absolute chamber column of the second log reads as gauge.
    let ex = &file.experiments[1];
    let ch = ex.channels.iter().find(|c| c.signal == Signal::PChamber).unwrap();
    let first = ch.shots[0][0].1;
    assert!(first.abs() < 5e3, "{first}");
    let _ = fit::load(&root().join("scenarios/fit_example/validate.toml"), Purpose::Validate).unwrap();
}

/// Write a table of numbers as a Parquet file (snappy), one DOUBLE column per header.
fn write_parquet(path: &Path, headers: &[String], columns: &[Vec<f64>]) {
    use parquet::basic::{Compression, Repetition, Type as Physical};
    use parquet::data_type::DoubleType;
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::Type;
    use std::sync::Arc;
    let fields: Vec<Arc<Type>> = headers
        .iter()
        .map(|h| {
            Arc::new(
                Type::primitive_type_builder(h, Physical::DOUBLE)
                    .with_repetition(Repetition::REQUIRED)
                    .build()
                    .unwrap(),
            )
        })
        .collect();
    let schema = Arc::new(Type::group_type_builder("bench").with_fields(fields).build().unwrap());
    let props = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
    let mut w = SerializedFileWriter::new(std::fs::File::create(path).unwrap(), schema, props).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut k = 0;
    while let Some(mut col) = rg.next_column().unwrap() {
        col.typed::<DoubleType>().write_batch(&columns[k], None, None).unwrap();
        col.close().unwrap();
        k += 1;
    }
    rg.close().unwrap();
    w.close().unwrap();
}

#[test]
fn a_parquet_log_reads_as_its_csv_export() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    bench_folder(d, 7);
    let text = std::fs::read_to_string(d.join("trace.csv")).unwrap();
    let mut lines = text.lines();
    let headers: Vec<String> = lines.next().unwrap().split(';').map(String::from).collect();
    let mut columns = vec![Vec::new(); headers.len()];
    for l in lines {
        for (k, cell) in l.split(';').enumerate() {
            columns[k].push(cell.replace(',', ".").parse::<f64>().unwrap());
        }
    }
    write_parquet(&d.join("trace.parquet"), &headers, &columns);
    let csv = fit::load(&fit_file(d, TWO, ""), Purpose::Fit).unwrap();
    let text = std::fs::read_to_string(d.join("fit.toml")).unwrap().replace("trace.csv", "trace.parquet");
    std::fs::write(d.join("fit_pq.toml"), text).unwrap();
    let pq = fit::load(&d.join("fit_pq.toml"), Purpose::Fit).unwrap();
    let (a, b) = (&csv.experiments[0], &pq.experiments[0]);
    assert_eq!(a.bench_edges, b.bench_edges);
    for (x, y) in a.channels.iter().zip(&b.channels) {
        assert_eq!((x.signal, x.sd, &x.shots), (y.signal, y.sd, &y.shots));
    }
    // A Parquet column that is not mapped right is named like a CSV one.
    let bad = std::fs::read_to_string(d.join("fit_pq.toml")).unwrap().replace("\"p_syringe_kpa\" =", "\"P syr\" =");
    std::fs::write(d.join("bad_pq.toml"), bad).unwrap();
    let e = fit::load(&d.join("bad_pq.toml"), Purpose::Fit).unwrap_err().to_string();
    assert!(e.contains("\"P syr\" names no column") && e.contains("trace.parquet"), "{e}");
}
