//! Outputs of a manual-versus-gun study: `arms.csv` (every shot),
//! `compare_summary.json`, three plots (PNG and SVG) and `report.html`, one
//! self-contained page (styles inline, plots embedded as PNG data URIs).

mod arms;
mod charts;
mod html;

use self::charts::PLOTS;
pub use self::charts::{HistogramsChart, StripChart, UnitsChart};
use self::html::report_html;
use super::plot::render;
use super::{csv_bytes, json_bytes, write_atomic, ReportError};
use crate::study::compare::{ArmSummary, Outcome, Study};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Tableau-10 colours, one per arm.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(a: usize) -> RGBColor {
    COLORS[a % COLORS.len()]
}

#[derive(serde::Serialize)]
struct Row<'a> {
    arm: &'a str,
    kind: &'a str,
    #[serde(serialize_with = "super::tidy_f64")]
    target_ul: f64,
    unit: usize,
    shot: usize,
    #[serde(serialize_with = "super::tidy_f64")]
    dose_ul: f64,
    #[serde(serialize_with = "super::tidy_f64")]
    error_pct: f64,
    #[serde(serialize_with = "super::tidy_f64")]
    leak_ul: f64,
    #[serde(serialize_with = "super::tidy_f64")]
    peak_tissue_kpa: f64,
    #[serde(serialize_with = "super::tidy_f64")]
    duration_ms: f64,
}

#[derive(serde::Serialize)]
struct Acceptance<'a> {
    preset: &'a str,
    alpha_ul: f64,
    /// The relative part of L(V), percent of V.
    beta_pct: f64,
    coverage: f64,
    confidence: f64,
}

#[derive(serde::Serialize)]
struct Summary<'a> {
    mesobench_version: &'a str,
    study: &'a str,
    description: &'a str,
    source: &'a str,
    scenario: &'a str,
    seed: u64,
    targets_ul: Vec<f64>,
    units: usize,
    shots: usize,
    acceptance: Acceptance<'a>,
    bootstrap: usize,
    interval: f64,
    shared_variability: &'a [crate::scenario::Uncertain],
    arm_definitions: &'a [crate::study::compare::Arm],
    arm_assumptions: Vec<ArmAssumptions<'a>>,
    plant_steps: u64,
    arms: &'a [ArmSummary],
    pairs: &'a [crate::study::compare::PairSummary],
}

#[derive(serde::Serialize)]
struct ArmAssumptions<'a> {
    arm: &'a str,
    assumptions: String,
}

/// Relative dose error in %, per (arm, target), in shot order.
fn errors(study: &Study, out: &Outcome) -> Vec<Vec<Vec<f64>>> {
    let (na, nt) = (study.arms.len(), study.targets.len());
    let mut e = vec![vec![Vec::new(); nt]; na];
    for s in &out.shots {
        e[s.arm][s.target].push(100.0 * (s.dose / study.targets[s.target] - 1.0));
    }
    e
}

/// The bytes of a study's `arms.csv`: every shot (`path` names the file in an error).
pub fn arms_csv(study: &Study, out: &Outcome, path: &Path) -> Result<Vec<u8>, ReportError> {
    let rows = out.shots.iter().map(|s| {
        let arm = &study.arms[s.arm];
        let target = study.targets[s.target];
        Row {
            arm: &arm.name,
            kind: match arm.kind {
                crate::study::compare::ArmKind::Manual { .. } => "manual",
                crate::study::compare::ArmKind::Gun { .. } => "gun",
            },
            target_ul: study.targets_ul[s.target],
            unit: s.unit,
            shot: s.shot,
            dose_ul: s.dose * 1e9,
            error_pct: 100.0 * (s.dose / target - 1.0),
            leak_ul: s.leak * 1e9,
            peak_tissue_kpa: s.peak_tissue_pressure / 1e3,
            duration_ms: s.duration * 1e3,
        }
    });
    csv_bytes(rows, path)
}

/// The bytes of a study's `compare_summary.json`.
pub fn summary_json(study: &Study, out: &Outcome) -> Vec<u8> {
    let summary = Summary {
        mesobench_version: crate::VERSION,
        study: &study.name,
        description: &study.description,
        source: &study.source,
        scenario: &study.scenario.source().name,
        seed: study.seed,
        targets_ul: study.targets_ul.clone(),
        units: study.units,
        shots: study.shots,
        acceptance: Acceptance {
            preset: &study.preset,
            alpha_ul: study.limits.alpha,
            beta_pct: 100.0 * study.limits.beta,
            coverage: study.limits.coverage,
            confidence: study.limits.confidence,
        },
        bootstrap: study.bootstrap,
        interval: study.interval,
        shared_variability: &study.shared,
        arm_definitions: &study.arms,
        arm_assumptions: study
            .arms
            .iter()
            .map(|a| ArmAssumptions { arm: &a.name, assumptions: a.assumptions() })
            .collect(),
        plant_steps: out.steps,
        arms: &out.arms,
        pairs: &out.pairs,
    };
    json_bytes(&summary)
}

/// Write every output of a study into `dir`; returns the files written.
pub fn write_compare(dir: &Path, study: &Study, out: &Outcome) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io { path: dir.to_owned(), source })?;
    let mut files = Vec::new();
    let path = dir.join("arms.csv");
    write_atomic(&path, &arms_csv(study, out, &path)?)?;
    files.push(path);
    let path = dir.join("compare_summary.json");
    write_atomic(&path, &summary_json(study, out))?;
    files.push(path);
    let mut pngs = Vec::new();
    for (name, _) in PLOTS {
        for ext in ["png", "svg"] {
            let path = dir.join(format!("{name}.{ext}"));
            match name {
                "doses_by_arm" => render(&path, &StripChart { study, out })?,
                "histograms" => render(&path, &HistogramsChart { study, out })?,
                _ => render(&path, &UnitsChart { study, out })?,
            }
            if ext == "png" {
                let bytes = std::fs::read(&path).map_err(|source| ReportError::Io { path: path.clone(), source })?;
                pngs.push((name.to_string(), bytes));
            }
            files.push(path);
        }
    }
    let path = dir.join("report.html");
    write_atomic(&path, report_html(study, out, &pngs).as_bytes())?;
    files.push(path);
    Ok(files)
}
