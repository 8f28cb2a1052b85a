//! Outputs of a manual-versus-gun study: `arms.csv` (every shot),
//! `summary.json`, three plots (PNG and SVG) and `report.html`, one
//! self-contained page (styles inline, plots embedded as PNG data URIs).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::plot::{err, histogram, range, render, Chart, DrawResult, Legend, Mark, Side, FONT, SIZE};
use super::{csv_bytes, json_bytes, write_atomic, ReportError};
use crate::study::compare::{ArmSummary, Outcome, Study};

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
    beta: f64,
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

/// Dose error by arm and target: box (quartiles), whiskers (P5–P95) and every shot.
pub struct StripChart<'a> {
    study: &'a Study,
    out: &'a Outcome,
}

fn quantiles(x: &[f64]) -> [f64; 5] {
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    let q = |p| crate::stats::percentile(&s, p);
    [q(0.05), q(0.25), q(0.5), q(0.75), q(0.95)]
}

impl Chart for StripChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(err)?;
        let e = errors(self.study, self.out);
        let (na, nt) = (self.study.arms.len(), self.study.targets.len());
        let limits: Vec<f64> = self
            .study
            .targets
            .iter()
            .map(|&v| 100.0 * self.study.limits.alpha.max(self.study.limits.beta * v * 1e9) / (v * 1e9))
            .collect();
        let (lo, hi) = range(e.iter().flatten().flatten().copied().chain(limits.iter().flat_map(|l| [*l, -*l])), false);
        let width = (nt * (na + 1)) as f64 - 1.0;
        let lg = Legend::new(
            self.study
                .arms
                .iter()
                .enumerate()
                .map(|(a, arm)| (arm.name.clone(), Mark::Swatch(color(a).to_rgba())))
                .collect(),
        );
        let mut b = ChartBuilder::on(&root);
        b.caption(format!("{}: dose error by arm and target", self.study.name), (FONT, 22));
        let mut c = lg
            .reserve(&mut b, 15)
            .x_label_area_size(20)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..width + 0.5, lo..hi + 0.08 * (hi - lo))
            .map_err(err)?;
        c.configure_mesh()
            .disable_x_mesh()
            .disable_x_axis()
            .y_desc("dose error, % of target")
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (t, limit) in limits.iter().enumerate() {
            let x0 = (t * (na + 1)) as f64;
            let label = format!("{} µL", fmt(self.study.targets_ul[t]));
            c.draw_series(std::iter::once(Text::new(
                label,
                (x0 + na as f64 / 2.0 - 0.6, hi + 0.06 * (hi - lo)),
                (FONT, 18),
            )))
            .map_err(err)?;
            // Acceptance limits ±L(V)/V.
            for s in [-1.0, 1.0] {
                c.draw_series(std::iter::once(PathElement::new(
                    vec![(x0 - 0.4, s * limit), (x0 + na as f64 - 0.6, s * limit)],
                    RED.mix(0.6).stroke_width(1),
                )))
                .map_err(err)?;
            }
        }
        for (a, per_target) in e.iter().enumerate() {
            let col = color(a);
            for (t, v) in per_target.iter().enumerate() {
                let x = (t * (na + 1) + a) as f64;
                let [p5, q1, med, q3, p95] = quantiles(v);
                c.draw_series(v.iter().enumerate().map(|(i, y)| {
                    let jitter = ((i as f64 * 0.618_034) % 1.0 - 0.5) * 0.6;
                    Circle::new((x + jitter, *y), 2, col.mix(0.35).filled())
                }))
                .map_err(err)?;
                c.draw_series([
                    PathElement::new(vec![(x, p5), (x, q1)], BLACK.stroke_width(1)),
                    PathElement::new(vec![(x, q3), (x, p95)], BLACK.stroke_width(1)),
                    PathElement::new(vec![(x - 0.3, med), (x + 0.3, med)], BLACK.stroke_width(3)),
                ])
                .map_err(err)?;
                c.draw_series(std::iter::once(Rectangle::new([(x - 0.3, q1), (x + 0.3, q3)], col.stroke_width(2))))
                    .map_err(err)?;
            }
        }
        lg.draw(&root, &c, 20)?;
        Ok(())
    }
}

fn fmt(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Overlaid histograms of the dose error, one panel per target.
pub struct HistogramsChart<'a> {
    study: &'a Study,
    out: &'a Outcome,
}

impl Chart for HistogramsChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(err)?;
        let root =
            root.titled(&format!("{}: distribution of the dose error", self.study.name), (FONT, 22)).map_err(err)?;
        let e = errors(self.study, self.out);
        let (na, nt) = (self.study.arms.len(), self.study.targets.len());
        let panels = root.split_evenly((nt, 1));
        // The legend goes beside the first panel; every panel keeps its room.
        let lg = Legend::new(
            self.study
                .arms
                .iter()
                .enumerate()
                .map(|(a, arm)| (arm.name.clone(), Mark::Swatch(color(a).mix(0.6))))
                .collect(),
        )
        .on(Side::Right);
        for (t, panel) in panels.iter().enumerate() {
            let (lo, hi) = range((0..na).flat_map(|a| e[a][t].iter().copied()), false);
            let bins = 40usize;
            let w = (hi - lo) / bins as f64;
            let counts: Vec<Vec<f64>> = (0..na).map(|a| histogram(e[a][t].iter().copied(), lo, w, bins)).collect();
            let top = counts.iter().flatten().copied().fold(0.0, f64::max).max(1e-9);
            let mut c = lg
                .reserve(&mut ChartBuilder::on(panel), 8)
                .x_label_area_size(35)
                .y_label_area_size(60)
                .caption(format!("target {} µL", fmt(self.study.targets_ul[t])), (FONT, 16))
                .build_cartesian_2d(lo..hi, 0.0..top * 1.1)
                .map_err(err)?;
            c.configure_mesh()
                .x_desc(if t + 1 == nt { "dose error, % of target" } else { "" })
                .y_desc("fraction")
                .label_style((FONT, 12))
                .draw()
                .map_err(err)?;
            for (a, cs) in counts.iter().enumerate() {
                let col = color(a);
                c.draw_series(cs.iter().enumerate().map(|(i, h)| {
                    let x0 = lo + i as f64 * w;
                    Rectangle::new([(x0, 0.0), (x0 + w, *h)], col.mix(0.35).filled())
                }))
                .map_err(err)?;
            }
            if t == 0 {
                lg.draw(panel, &c, 35)?;
            }
        }
        Ok(())
    }
}

/// Mean ± SD of each operator or device, one panel per target.
pub struct UnitsChart<'a> {
    study: &'a Study,
    out: &'a Outcome,
}

impl Chart for UnitsChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(err)?;
        let root = root
            .titled(&format!("{}: each operator or device, mean ± SD of the dose error", self.study.name), (FONT, 22))
            .map_err(err)?;
        let (na, nt, nu) = (self.study.arms.len(), self.study.targets.len(), self.study.units);
        let panels = root.split_evenly((nt, 1));
        let lg = Legend::new(
            self.study
                .arms
                .iter()
                .enumerate()
                .map(|(a, arm)| (arm.name.clone(), Mark::Dot(color(a).to_rgba(), 4)))
                .collect(),
        )
        .on(Side::Right);
        for (t, panel) in panels.iter().enumerate() {
            let v = self.study.targets[t] * 1e9;
            let rel = |x: f64| 100.0 * (x / v - 1.0);
            let sums: Vec<&ArmSummary> = (0..na).map(|a| &self.out.arms[a * nt + t]).collect();
            let (lo, hi) = range(
                sums.iter().flat_map(|s| {
                    s.unit_mean_ul.iter().zip(&s.unit_sd_ul).flat_map(move |(m, sd)| [rel(m - sd), rel(m + sd)])
                }),
                false,
            );
            let width = (na * (nu + 1)) as f64 - 1.0;
            let mut c = lg
                .reserve(&mut ChartBuilder::on(panel), 8)
                .x_label_area_size(10)
                .y_label_area_size(60)
                .caption(format!("target {} µL", fmt(v)), (FONT, 16))
                .build_cartesian_2d(-0.5..width + 0.5, lo..hi)
                .map_err(err)?;
            c.configure_mesh()
                .disable_x_mesh()
                .disable_x_axis()
                .y_desc("error, %")
                .label_style((FONT, 12))
                .draw()
                .map_err(err)?;
            c.draw_series(std::iter::once(PathElement::new(vec![(-0.5, 0.0), (width + 0.5, 0.0)], BLACK.mix(0.4))))
                .map_err(err)?;
            for (a, s) in sums.iter().enumerate() {
                let col = color(a);
                c.draw_series(s.unit_mean_ul.iter().zip(&s.unit_sd_ul).enumerate().flat_map(|(u, (m, sd))| {
                    let x = (a * (nu + 1) + u) as f64;
                    [
                        PathElement::new(vec![(x, rel(m - sd)), (x, rel(m + sd))], col.stroke_width(2)).into_dyn(),
                        Circle::new((x, rel(*m)), 4, col.filled()).into_dyn(),
                    ]
                }))
                .map_err(err)?;
            }
            if t == 0 {
                lg.draw(panel, &c, 10)?;
            }
        }
        Ok(())
    }
}

const PLOTS: [(&str, &str); 3] = [
    ("doses_by_arm", "Dose error of every shot by arm and target: boxes span the quartiles, whiskers P5–P95, red lines the acceptance limits ±L(V)."),
    ("histograms", "Distribution of the dose error per target, arms overlaid."),
    ("operators", "Spread between operators (manual arms) and devices (gun arms): each unit's mean ± SD."),
];

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn report_html(study: &Study, out: &Outcome, pngs: &[(String, Vec<u8>)]) -> String {
    let mut h = String::new();
    let l = &study.limits;
    let title = format!("mesobench — {}", study.name);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n\
body{{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}}\n\
table{{border-collapse:collapse;margin:1em 0;font-size:0.9em;display:block;overflow-x:auto;max-width:100%}}th,td{{border:1px solid #bbb;padding:0.25em 0.6em;text-align:right}}\n\
th{{background:#eee}}td.l{{text-align:left}}.pass{{color:#176317;font-weight:bold}}.fail{{color:#b01c1c;font-weight:bold}}\n\
img{{max-width:100%;border:1px solid #ddd}}figure{{margin:1.5em 0}}figcaption{{font-size:0.9em;color:#555}}\n\
</style>\n</head>\n<body>\n<h1>{}</h1>\n<p>{}</p>\n",
        html_escape(&title),
        html_escape(&title),
        html_escape(&study.description)
    );
    let targets: Vec<String> = study.targets_ul.iter().map(|t| fmt(*t)).collect();
    let _ = write!(
        h,
        "<h2>Set-up</h2>\n<table>\n<tr><th>study file</th><td class=\"l\">{}</td></tr>\n<tr><th>shared scenario</th><td class=\"l\">{}</td></tr>\n\
<tr><th>seed</th><td class=\"l\">{}</td></tr>\n<tr><th>targets</th><td class=\"l\">{} µL</td></tr>\n\
<tr><th>units per arm</th><td class=\"l\">{} (operators or devices)</td></tr>\n<tr><th>shots per unit and target</th><td class=\"l\">{}</td></tr>\n\
<tr><th>acceptance</th><td class=\"l\">{}: L(V) = max({} µL, {} % of V); two-sided tolerance interval, coverage {}, confidence {}</td></tr>\n\
<tr><th>mesobench</th><td class=\"l\">{}</td></tr>\n</table>\n",
        html_escape(&study.source),
        html_escape(&study.scenario.source().name),
        study.seed,
        targets.join(", "),
        study.units,
        study.shots,
        html_escape(&study.preset),
        fmt(l.alpha),
        fmt(100.0 * l.beta),
        l.coverage,
        l.confidence,
        crate::VERSION
    );
    h.push_str(
        "<h2>Dose accuracy per arm</h2>\n<p>Pass if and only if x̄ − k·s ≥ V − L and x̄ + k·s ≤ V + L (ISO 11608-1 method, exact two-sided k). \
Within and between: variance components of the doses grouped by operator or device.</p>\n<table>\n\
<tr><th>arm</th><th>kind</th><th>target µL</th><th>n</th><th>mean µL</th><th>SD µL</th><th>CV %</th><th>bias %</th>\
<th>within SD µL</th><th>between SD µL</th><th>k</th><th>x̄ ± k·s µL</th><th>limits µL</th><th>verdict</th></tr>\n",
    );
    for s in &out.arms {
        let v = &s.acceptance;
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.2}</td><td>{:+.1}</td>\
<td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.2} – {:.2}</td><td>{:.2} – {:.2}</td><td class=\"{}\">{}</td></tr>",
            html_escape(&s.arm),
            s.kind,
            fmt(s.target_ul),
            s.n,
            s.mean_ul,
            s.sd_ul,
            100.0 * s.cv,
            100.0 * s.bias,
            s.within_sd_ul,
            s.between_sd_ul,
            v.k,
            v.lower,
            v.upper,
            s.target_ul - v.limit,
            s.target_ul + v.limit,
            if v.pass { "pass" } else { "fail" },
            if v.pass { "PASS" } else { "FAIL" }
        );
    }
    h.push_str("</table>\n");
    let _ = write!(
        h,
        "<h2>Arm against arm</h2>\n<p>CV ratio with a {:.0} % cluster-bootstrap interval ({} resamples of whole operators or devices); \
F test and Brown–Forsythe test of equal variances (two-sided p; both treat shots as independent, so with clustered doses \
they overstate significance; the bootstrap interval does not).</p>\n<table>\n<tr><th>target µL</th><th>arm a</th><th>arm b</th>\
<th>CV a / CV b</th><th>interval</th><th>F</th><th>p (F)</th><th>p (Brown–Forsythe)</th></tr>\n",
        100.0 * study.interval,
        study.bootstrap
    );
    for p in &out.pairs {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{:.3}</td><td>{:.3} – {:.3}</td><td>{:.3}</td><td>{}</td><td>{}</td></tr>",
            fmt(p.target_ul),
            html_escape(&p.a),
            html_escape(&p.b),
            p.cv_ratio.ratio,
            p.cv_ratio.lo,
            p.cv_ratio.hi,
            p.f_test.statistic,
            p_value(p.f_test.p),
            p_value(p.brown_forsythe.p)
        );
    }
    h.push_str("</table>\n<h2>Plots</h2>\n");
    for ((name, caption), (_, png)) in PLOTS.iter().zip(pngs) {
        let _ = write!(
            h,
            "<figure>\n<img src=\"data:image/png;base64,{}\" alt=\"{}\" width=\"{}\" height=\"{}\">\n<figcaption>{} ({name}.png, {name}.svg)</figcaption>\n</figure>\n",
            base64::engine::general_purpose::STANDARD.encode(png),
            name,
            SIZE.0,
            SIZE.1,
            html_escape(caption)
        );
    }
    h.push_str("<h2>What each arm assumes</h2>\n<table>\n<tr><th>arm</th><th>assumptions</th></tr>\n");
    for a in &study.arms {
        let _ = writeln!(h, "<tr><td>{}</td><td>{}</td></tr>", html_escape(&a.name), html_escape(&a.assumptions()));
    }
    h.push_str("</table>\n");
    h.push_str(
        "<h2>Models</h2>\n<p>Manual arms: the operator pushes the same syringe, needle, fluid and tissue plant as the gun through a hand \
impedance that follows an intended plunger speed, with physiological tremor (8–12 Hz), start-of-stroke force pulses, a stop decided by \
reading the graduations (reading error and parallax), a reaction time partly anticipated, and needle-tip drift during the stroke. \
Operators are drawn once, their shots around them (hierarchical). Gun arms run the scenario's gun and firmware. Shared variability \
(needle lot, friction, tissue) uses the same random streams in every arm. Sources and priors: mesobench docs/physics.md (manual operator) and docs/studies.md (manual injection against the gun).</p>\n",
    );
    h.push_str("</body>\n</html>\n");
    h
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

/// The bytes of a study's `summary.json`.
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
            beta: study.limits.beta,
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
    let path = dir.join("summary.json");
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

/// A p-value for the report: two significant digits, or `< 1e-16` where it
/// underflows the precision of the tail probabilities (it printed `0.00e0`).
fn p_value(p: f64) -> String {
    if p < 1e-16 {
        "&lt; 1e-16".into()
    } else {
        format!("{p:.2e}")
    }
}

#[cfg(test)]
mod tests {
    use super::p_value;

    #[test]
    fn p_values_that_underflow_read_below_1e_16() {
        assert_eq!(p_value(0.0), "&lt; 1e-16");
        assert_eq!(p_value(3e-20), "&lt; 1e-16");
        assert_eq!(p_value(0.0123), "1.23e-2");
    }
}
