//! Outputs of `mesobench fit` and `mesobench validate`: `fit_summary.json`,
//! `calibrated.toml`, `fit_history.csv`, `validate_summary.json`, and
//! plots (PNG and SVG) of measured against simulated traces, residuals and
//! profiles.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::plot::{err, range, render, Chart, DrawResult, Legend, Mark, Side, FONT};
use super::{csv_bytes, json_bytes, write_atomic, ReportError};
use crate::study::fit::lm::{Estimate, Outcome, Profile};
use crate::study::fit::validate::{ExperimentError, Overlay, Validation, Verdict};
use crate::study::fit::FitFile;

/// One line or point series of a panel.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    dots: bool,
}

/// A panel: axes labels and its series.
struct Panel {
    x_desc: String,
    y_desc: String,
    series: Vec<Series>,
    /// A horizontal reference line (e.g. the profile threshold).
    level: Option<(f64, String)>,
}

/// Panels stacked vertically under one title.
struct Stack {
    title: String,
    panels: Vec<Panel>,
}

impl Chart for Stack {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(err)?;
        let root = root.titled(&self.title, (FONT, 22)).map_err(err)?;
        let areas = root.split_evenly((self.panels.len().max(1), 1));
        let legends: Vec<Legend> = self
            .panels
            .iter()
            .map(|panel| {
                let mut entries: Vec<(String, Mark)> = panel
                    .series
                    .iter()
                    .filter(|s| !s.name.is_empty())
                    .map(|s| {
                        let mark =
                            if s.dots { Mark::Dot(s.color.to_rgba(), 3) } else { Mark::Line(s.color.to_rgba(), 2) };
                        (s.name.clone(), mark)
                    })
                    .collect();
                if let Some((_, name)) = &panel.level {
                    entries.push((name.clone(), Mark::Line(BLACK.mix(0.6), 1)));
                }
                Legend::new(entries).on(Side::Right)
            })
            .collect();
        // Every panel's plot area the same width, so their time axes line up.
        let w = legends.iter().map(|l| l.w).max().unwrap_or(0);
        for ((panel, area), lg) in self.panels.iter().zip(areas).zip(legends) {
            let lg = lg.widen(w);
            let all = || panel.series.iter().flat_map(|s| s.points.iter());
            let (x0, x1) = range(all().map(|p| p.0), false);
            let (mut y0, mut y1) = range(all().map(|p| p.1).chain(panel.level.iter().map(|l| l.0)), false);
            if y1 <= y0 {
                y0 -= 1.0;
                y1 += 1.0;
            }
            let pad = 0.05 * (y1 - y0);
            let mut c = lg
                .reserve(&mut ChartBuilder::on(&area), 10)
                .x_label_area_size(40)
                .y_label_area_size(80)
                .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
                .map_err(err)?;
            c.configure_mesh()
                .x_desc(panel.x_desc.as_str())
                .y_desc(panel.y_desc.as_str())
                .label_style((FONT, 14))
                .draw()
                .map_err(err)?;
            for s in &panel.series {
                if s.dots {
                    c.draw_series(s.points.iter().map(|p| Circle::new(*p, 2, s.color.mix(0.6).filled())))
                        .map_err(err)?;
                } else {
                    c.draw_series(LineSeries::new(s.points.iter().copied(), s.color.stroke_width(2))).map_err(err)?;
                }
            }
            if let Some((y, _)) = &panel.level {
                c.draw_series(LineSeries::new([(x0, *y), (x1, *y)], BLACK.mix(0.6))).map_err(err)?;
            }
            lg.draw(&area, &c, 40)?;
        }
        Ok(())
    }
}

const MEASURED: RGBColor = RGBColor(31, 119, 180);
const SIMULATED: RGBColor = RGBColor(214, 39, 40);
const RESIDUAL: RGBColor = RGBColor(127, 127, 127);

/// The overlay and residual chart of one channel of one experiment.
fn overlay_chart(experiment: &str, o: &Overlay, what: &str) -> Stack {
    let (unit, scale) = o.signal.display_unit();
    let rel = if o.signal.relative() { " (change since the edge)" } else { "" };
    let y = format!("{}{rel}, {unit}", o.signal.name());
    let mut measured = Vec::new();
    let mut simulated = Vec::new();
    let mut residual = Vec::new();
    for (k, shot) in o.shots.iter().enumerate() {
        // Every shot on the same axis (time since its own edge): the
        // measured dots of all shots, one simulated line per shot.
        let pts: Vec<(f64, f64, f64)> = shot.iter().map(|(t, m, s)| (t * 1e3, m / scale, s / scale)).collect();
        measured.extend(pts.iter().map(|p| (p.0, p.1)));
        residual.extend(pts.iter().map(|p| (p.0, p.2 - p.1)));
        simulated.push(Series {
            name: if k == 0 { what.to_string() } else { String::new() },
            points: pts.iter().map(|p| (p.0, p.2)).collect(),
            color: SIMULATED,
            dots: false,
        });
    }
    let mut series =
        vec![Series { name: "measured (every shot)".into(), points: measured, color: MEASURED, dots: true }];
    series.extend(simulated);
    Stack {
        title: format!("{experiment}: {} (column {:?}), {} shot(s)", o.signal.name(), o.column, o.shots.len()),
        panels: vec![
            Panel { x_desc: "time since the shot's edge, ms".into(), y_desc: y, series, level: None },
            Panel {
                x_desc: "time since the shot's edge, ms".into(),
                y_desc: format!("simulated − measured, {unit}"),
                series: vec![Series { name: "residual".into(), points: residual, color: RESIDUAL, dots: true }],
                level: Some((0.0, "zero".into())),
            },
        ],
    }
}

fn profile_chart(profiles: &[Profile], estimates: &[Estimate]) -> Stack {
    let panels = profiles
        .iter()
        .map(|p| {
            let unit = estimates.iter().find(|e| e.key == p.key).map_or("", |e| e.unit);
            Panel {
                x_desc: format!("{}, {unit}", p.key),
                y_desc: "weighted sum of squares".into(),
                series: vec![
                    Series {
                        name: "profile (others re-fitted)".into(),
                        points: p.points.clone(),
                        color: SIMULATED,
                        dots: false,
                    },
                    Series { name: "profile points".into(), points: p.points.clone(), color: SIMULATED, dots: true },
                ],
                level: Some((p.threshold, "95 % threshold".into())),
            }
        })
        .collect();
    Stack { title: "Profiles: the cost with one parameter held, the others re-fitted".into(), panels }
}

fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

fn plot_both(dir: &Path, stem: &str, chart: &impl Chart, files: &mut Vec<PathBuf>) -> Result<(), ReportError> {
    for ext in ["png", "svg"] {
        let p = dir.join(format!("{stem}.{ext}"));
        render(&p, chart)?;
        files.push(p);
    }
    Ok(())
}

/// The parameters as `fit_summary.json` writes them.
#[derive(serde::Serialize)]
struct ParamOut<'a> {
    estimate: f64,
    ci95: Option<[f64; 2]>,
    ci95_profile: Option<[Option<f64>; 2]>,
    se: Option<f64>,
    unit: &'a str,
    start: f64,
    bounds: [f64; 2],
    identifiable: bool,
    at_bound: bool,
}

#[derive(serde::Serialize)]
struct FitSummary<'a> {
    fit_file: &'a str,
    scenario: String,
    converged: bool,
    stop_reason: &'a str,
    parameters: std::collections::BTreeMap<&'a str, ParamOut<'a>>,
    parameter_order: Vec<&'a str>,
    correlation: &'a [Vec<f64>],
    cost: f64,
    sigma2: f64,
    residuals: usize,
    experiments: Vec<ExperimentError>,
    warnings: &'a [String],
    global_stage: Vec<GlobalRow>,
    mesobench_version: &'static str,
}

#[derive(serde::Serialize)]
struct GlobalRow {
    values: Vec<f64>,
    cost: Option<f64>,
}

/// `fit_history.csv`: one row per accepted Levenberg–Marquardt iterate.
fn history_csv(out: &Outcome, keys: &[&str]) -> Vec<u8> {
    let mut s = String::from("start,iteration,cost,lambda");
    for (k, e) in keys.iter().zip(&out.estimates) {
        s.push_str(&format!(",{k} [{}]", e.unit));
    }
    s.push('\n');
    for h in &out.history {
        s.push_str(&format!("{},{},{:?},{:?}", h.start, h.iteration, h.cost, h.lambda));
        for v in &h.values {
            s.push_str(&format!(",{v:?}"));
        }
        s.push('\n');
    }
    s.into_bytes()
}

/// `calibrated.toml`: the base scenario with the estimates written in, each
/// commented with its interval and the fit it came from.
pub fn calibrated_toml(file: &FitFile, out: &Outcome) -> Result<String, ReportError> {
    let text = &file.prepared.source().text;
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| ReportError::Plot {
        path: file.scenario_path.clone(),
        message: format!("cannot edit the scenario: {e}"),
    })?;
    for e in &out.estimates {
        let parts: Vec<&str> = e.key.split('.').collect();
        let (last, tables) = parts.split_last().expect("keys have a table");
        let mut t = doc.as_table_mut();
        for name in tables {
            if !t.contains_key(name) {
                let mut nt = toml_edit::Table::new();
                nt.set_implicit(tables.len() > 1);
                t.insert(name, toml_edit::Item::Table(nt));
            }
            t = t[*name].as_table_mut().expect("a scenario key's parent is a table");
        }
        let ci = match e.ci95 {
            Some([a, b]) => format!("95 % CI [{}, {}]", crate::text::g6(a), crate::text::g6(b)),
            None => "not identifiable from these data".into(),
        };
        let mut v = toml_edit::value(round_sig(e.estimate, 6));
        if let Some(val) = v.as_value_mut() {
            val.decor_mut().set_suffix(format!("  # fitted by mesobench fit ({}): {ci}", file.path));
        }
        t.insert(last, v);
    }
    let mut s = format!(
        "# Calibrated by `mesobench fit {}` from the scenario {}.\n# Estimates below carry their 95 % intervals; the rest is the scenario as written.\n",
        file.path,
        file.scenario_path.display()
    );
    s.push_str(&doc.to_string());
    Ok(s)
}

fn round_sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let e = digits - 1 - x.abs().log10().floor() as i32;
    let f = 10f64.powi(e);
    (x * f).round() / f
}

/// The bytes of a fit's files: `fit_summary.json`, `fit_history.csv` and
/// `calibrated.toml` (what `write_fit` writes, without the plots).
pub struct FitFiles {
    /// `fit_summary.json`.
    pub summary: Vec<u8>,
    /// `fit_history.csv`.
    pub history: Vec<u8>,
    /// `calibrated.toml`.
    pub calibrated: String,
}

/// The fit's files, and each experiment's overlays at the estimates.
/// Each experiment's name and its overlays.
type Overlays = Vec<(String, Vec<Overlay>)>;

fn fit_files(file: &FitFile, out: &Outcome) -> Result<(FitFiles, Overlays), ReportError> {
    let keys: Vec<&str> = out.estimates.iter().map(|e| e.key.as_str()).collect();
    let x: Vec<f64> = out.estimates.iter().map(|e| e.estimate).collect();
    let mut experiments = Vec::new();
    let mut overlays = Vec::new();
    for ex in &file.experiments {
        let sim = crate::study::fit::simulate(file, ex, &x).map_err(|m| ReportError::Plot {
            path: file.scenario_path.clone(),
            message: format!("experiment {:?} at the estimates: {m}", ex.name),
        })?;
        let (e, ov) = crate::study::fit::validate::compare(ex, &sim);
        experiments.push(e);
        overlays.push((ex.name.clone(), ov));
    }
    let summary = FitSummary {
        fit_file: &file.path,
        scenario: file.scenario_path.display().to_string(),
        converged: out.converged,
        stop_reason: &out.reason,
        parameters: out
            .estimates
            .iter()
            .map(|e| {
                (
                    e.key.as_str(),
                    ParamOut {
                        estimate: e.estimate,
                        ci95: e.ci95,
                        ci95_profile: e.ci95_profile,
                        se: e.se,
                        unit: e.unit,
                        start: e.start,
                        bounds: e.bounds,
                        identifiable: e.identifiable,
                        at_bound: e.at_bound,
                    },
                )
            })
            .collect(),
        parameter_order: keys.clone(),
        correlation: &out.correlation,
        cost: out.cost,
        sigma2: out.sigma2,
        residuals: out.residuals,
        experiments,
        warnings: &out.warnings,
        global_stage: out.global.iter().map(|(v, c)| GlobalRow { values: v.clone(), cost: *c }).collect(),
        mesobench_version: crate::VERSION,
    };
    let files = FitFiles {
        summary: json_bytes(&summary),
        history: history_csv(out, &keys),
        calibrated: calibrated_toml(file, out)?,
    };
    Ok((files, overlays))
}

/// The bytes of a fit's files without writing them (for the Python package).
pub fn fit_bytes(file: &FitFile, out: &Outcome) -> Result<FitFiles, ReportError> {
    fit_files(file, out).map(|f| f.0)
}

/// Write every output of a fit into `dir`.
pub fn write_fit(dir: &Path, file: &FitFile, out: &Outcome) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io { path: dir.to_owned(), source })?;
    let mut files = Vec::new();
    let (bytes, overlays) = fit_files(file, out)?;
    for (name, ov) in &overlays {
        for o in ov {
            let chart = overlay_chart(name, o, "simulated at the estimates");
            plot_both(dir, &format!("fit_{}_{}", slug(name), o.signal.name()), &chart, &mut files)?;
        }
    }
    for (name, b) in [
        ("fit_summary.json", bytes.summary.as_slice()),
        ("fit_history.csv", bytes.history.as_slice()),
        ("calibrated.toml", bytes.calibrated.as_bytes()),
    ] {
        let p = dir.join(name);
        write_atomic(&p, b)?;
        files.push(p);
    }
    if !out.profiles.is_empty() {
        plot_both(dir, "fit_profiles", &profile_chart(&out.profiles, &out.estimates), &mut files)?;
    }
    Ok(files)
}

#[derive(serde::Serialize)]
struct ValidateSummary<'a> {
    validation_file: &'a str,
    scenario: String,
    pass: bool,
    verdicts: &'a [Verdict],
    experiments: &'a [ExperimentError],
    mesobench_version: &'static str,
}

/// Write every output of a validation into `dir`.
pub fn write_validation(dir: &Path, file: &FitFile, v: &Validation) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io { path: dir.to_owned(), source })?;
    let mut files = Vec::new();
    for (ex, ov) in file.experiments.iter().zip(&v.overlays) {
        for o in ov {
            let chart = overlay_chart(&ex.name, o, "simulated (scenario as written)");
            plot_both(dir, &format!("validate_{}_{}", slug(&ex.name), o.signal.name()), &chart, &mut files)?;
        }
    }
    let summary = ValidateSummary {
        validation_file: &file.path,
        scenario: file.scenario_path.display().to_string(),
        pass: v.pass,
        verdicts: &v.verdicts,
        experiments: &v.experiments,
        mesobench_version: crate::VERSION,
    };
    let p = dir.join("validate_summary.json");
    write_atomic(&p, &json_bytes(&summary))?;
    files.push(p);
    #[derive(serde::Serialize)]
    struct ShotRow<'a> {
        experiment: &'a str,
        shot: usize,
        #[serde(serialize_with = "super::tidy_opt")]
        measured_ul: Option<f64>,
        #[serde(serialize_with = "super::tidy_f64")]
        simulated_ul: f64,
        #[serde(serialize_with = "super::tidy_opt")]
        dose_error_pct: Option<f64>,
        #[serde(serialize_with = "super::tidy_opt")]
        valve_delay_measured_ms: Option<f64>,
        #[serde(serialize_with = "super::tidy_opt")]
        valve_delay_simulated_ms: Option<f64>,
    }
    let rows: Vec<ShotRow> = v
        .experiments
        .iter()
        .flat_map(|e| {
            e.shots.iter().map(|s| ShotRow {
                experiment: &e.name,
                shot: s.shot,
                measured_ul: s.measured_ul,
                simulated_ul: s.simulated_ul,
                dose_error_pct: s.dose_error_pct,
                valve_delay_measured_ms: s.valve_delay_measured_ms,
                valve_delay_simulated_ms: s.valve_delay_simulated_ms,
            })
        })
        .collect();
    let p = dir.join("validate_shots.csv");
    write_atomic(&p, &csv_bytes(rows.iter(), &p)?)?;
    files.push(p);
    Ok(files)
}
