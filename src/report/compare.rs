//! Outputs of a manual-versus-gun study: `arms.csv` (every shot),
//! `compare_summary.json`, three plots (PNG and SVG) and `report.html`, one
//! self-contained page (styles inline, plots embedded as PNG data URIs).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::plot::{err, histogram, range, render, Chart, DrawResult, Legend, Mark, Side, FONT, SIZE};
use super::{csv_bytes, json_bytes, write_atomic, ReportError};
use crate::control::manual::OperatorParams;
use crate::scenario::{Distribution, Level, Uncertain};
use crate::study::compare::{Arm, ArmKind, ArmSummary, DoseSetting, Hand, Outcome, Study};
use crate::text::g6;

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
    let mut h = head_html(study, out);
    h.push_str(&setup_html(study));
    h.push_str(&accuracy_html(out));
    h.push_str(&pairs_html(study, out));
    h.push_str(&warnings_html(study, out));
    h.push_str(&plots_html(pngs));
    h.push_str(&arms_html(study, out));
    h.push_str(MODELS_HTML);
    h.push_str("</body>\n</html>\n");
    h
}

/// The document's head, style, title, description and conclusion.
fn head_html(study: &Study, out: &Outcome) -> String {
    let mut h = String::new();
    let title = format!("mesobench — {}", study.name);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n\
body{{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;overflow-wrap:break-word}}\n\
.wrap{{overflow-x:auto;max-width:100%;margin:1em 0}}table{{border-collapse:collapse;font-size:0.9em}}\n\
th,td{{border:1px solid #bbb;padding:0.25em 0.6em;text-align:right;white-space:nowrap;vertical-align:top}}\n\
table.text td,table.text th{{white-space:normal;min-width:6em}}th{{background:#eee}}.l{{text-align:left}}\n\
.pass{{color:#176317;font-weight:bold}}.fail{{color:#b01c1c;font-weight:bold}}p.conclusion{{background:#f4f7fb;border-left:4px solid #1f77b4;padding:0.6em 1em}}\n\
img{{max-width:100%;height:auto;border:1px solid #ddd}}figure{{margin:1.5em 0}}figcaption{{font-size:0.9em;color:#555}}\n\
</style>\n</head>\n<body>\n<h1>{}</h1>\n<p>{}</p>\n<h2>Conclusion</h2>\n<p class=\"conclusion\">{}</p>\n",
        html_escape(&title),
        html_escape(&title),
        html_escape(&study.description),
        html_escape(&conclusion(study, out))
    );
    h
}

/// The set-up table: files, seed, targets, units, shots, acceptance.
fn setup_html(study: &Study) -> String {
    let mut h = String::new();
    let l = &study.limits;
    let targets: Vec<String> = study.targets_ul.iter().map(|t| fmt(*t)).collect();
    let _ = write!(
        h,
        "<h2>Set-up</h2>\n<div class=\"wrap\"><table class=\"text\">\n<tr><th>study file</th><td class=\"l\">{}</td></tr>\n<tr><th>shared scenario</th><td class=\"l\">{}</td></tr>\n\
<tr><th>seed</th><td class=\"l\">{}</td></tr>\n<tr><th>targets</th><td class=\"l\">{} µL</td></tr>\n\
<tr><th>units per arm</th><td class=\"l\">{} (operators or devices)</td></tr>\n<tr><th>shots per unit and target</th><td class=\"l\">{}</td></tr>\n\
<tr><th>acceptance</th><td class=\"l\">{}: L(V) = max({} µL, {} % of V); two-sided tolerance interval, coverage {}, confidence {}</td></tr>\n\
<tr><th>mesobench</th><td class=\"l\">{}</td></tr>\n</table></div>\n",
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
    h
}

/// The dose-accuracy table, one row per arm and target.
fn accuracy_html(out: &Outcome) -> String {
    let mut h = String::new();
    h.push_str(
        "<h2>Dose accuracy per arm</h2>\n<p>Pass if and only if x̄ − k·s ≥ V − L and x̄ + k·s ≤ V + L (ISO 11608-1 method, exact two-sided k). \
Within and between: variance components of the doses grouped by operator or device.</p>\n<div class=\"wrap\"><table>\n\
<tr><th class=\"l\">arm</th><th class=\"l\">kind</th><th>target µL</th><th>n</th><th>mean µL</th><th>SD µL</th><th>CV %</th><th>bias %</th>\
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
    h.push_str("</table></div>\n");
    h
}

/// The arm-against-arm table: CV ratios and tests of equal variances.
fn pairs_html(study: &Study, out: &Outcome) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<h2>Arm against arm</h2>\n<p>CV ratio with a {:.0} % cluster-bootstrap interval ({} resamples of whole operators or devices); \
F test and Brown–Forsythe test of equal variances (two-sided p; both treat shots as independent, so with clustered doses \
they overstate significance; the bootstrap interval does not). A p-value below 1e-16 is printed as &lt; 1e-16: \
the two-sided p is 2·min(P, 1 − P) of the F distribution's tail P, and double precision does not resolve 1 − P below about 1e-16, \
so the digits of smaller values depend on which tail was computed and no conclusion changes with them; compare_summary.json keeps the computed number, \
down to 0, to be read the same way.</p>\n\
<div class=\"wrap\"><table>\n<tr><th>target µL</th><th class=\"l\">arm a</th><th class=\"l\">arm b</th>\
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
    h.push_str("</table></div>\n");
    h
}

/// The plots, embedded as base64 PNGs with their captions.
fn plots_html(pngs: &[(String, Vec<u8>)]) -> String {
    let mut h = String::new();
    h.push_str("<h2>Plots</h2>\n");
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
    h
}

/// What the manual and gun arms model, and where the sources are.
const MODELS_HTML: &str = "<h2>Models</h2>\n<p>Manual arms: the operator pushes the same syringe, needle, fluid and tissue plant as the gun through a hand \
impedance that follows an intended plunger speed, with physiological tremor (8–12 Hz), start-of-stroke force pulses, a stop decided by \
reading the graduations (reading error and parallax), a reaction time partly anticipated, and needle-tip drift during the stroke. \
Operators are drawn once, their shots around them (hierarchical). Gun arms run the scenario's gun and firmware. Shared variability \
(needle lot, friction, tissue) uses the same random streams in every arm. Sources and priors: mesobench docs/physics.md (manual operator) and docs/studies.md (manual injection against the gun).</p>\n";

// ---------------------------------------------------------------------------
// The words of the report: its conclusion and what every arm is.

/// A CV (fraction) as the tables print it, in %.
fn cv_pct(cv: f64) -> String {
    format!("{:.2} %", 100.0 * cv)
}

/// `items` joined as words: "a", "a and b", "a, b and c".
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The summary of arm `a` at target `t`.
fn summary<'o>(study: &Study, out: &'o Outcome, a: usize, t: usize) -> &'o ArmSummary {
    &out.arms[a * study.targets.len() + t]
}

/// The arm of `kind` with the lowest CV averaged over the targets.
fn best_of(study: &Study, out: &Outcome, manual: bool) -> Option<usize> {
    let nt = study.targets.len();
    (0..study.arms.len())
        .filter(|&a| matches!(study.arms[a].kind, ArmKind::Manual { .. }) == manual)
        .map(|a| (a, (0..nt).map(|t| summary(study, out, a, t).cv).sum::<f64>()))
        .min_by(|x, y| x.1.total_cmp(&y.1))
        .map(|(a, _)| a)
}

/// CV(manual arm m) / CV(gun arm g) at target `t` with its bootstrap
/// interval, from the pair table (inverted when the gun arm came first).
fn manual_over_gun(study: &Study, out: &Outcome, m: usize, g: usize, t: usize) -> Option<(f64, f64, f64)> {
    let (name_m, name_g) = (&study.arms[m].name, &study.arms[g].name);
    let v = study.targets_ul[t];
    out.pairs.iter().filter(|p| p.target_ul == v).find_map(|p| {
        let r = &p.cv_ratio;
        if &p.a == name_m && &p.b == name_g {
            Some((r.ratio, r.lo, r.hi))
        } else if &p.a == name_g && &p.b == name_m {
            Some((1.0 / r.ratio, 1.0 / r.hi, 1.0 / r.lo))
        } else {
            None
        }
    })
}

/// The model-validity warnings of the gun sessions, grouped by kind (the
/// message without its numbers): an example message, the sessions that
/// raised it and the arms they belong to, most frequent first.
fn warning_groups(study: &Study, out: &Outcome) -> Vec<(String, usize, Vec<String>)> {
    let mut groups: Vec<(String, String, usize, Vec<String>)> = Vec::new();
    for s in &out.sessions {
        for w in &s.warnings {
            let class: String = w.chars().filter(|c| !c.is_ascii_digit()).collect();
            let arm = study.arms[s.arm].name.clone();
            match groups.iter_mut().find(|g| g.0 == class) {
                Some(g) => {
                    g.2 += 1;
                    if !g.3.contains(&arm) {
                        g.3.push(arm);
                    }
                }
                None => groups.push((class, w.clone(), 1, vec![arm])),
            }
        }
    }
    // Extrapolations and models used outside their validity first, then
    // the most frequent; ties keep the order of first appearance.
    let beyond = |w: &str| ["extrapolat", "validity", "beyond"].iter().any(|k| w.contains(k));
    groups.sort_by(|a, b| beyond(&b.1).cmp(&beyond(&a.1)).then(b.2.cmp(&a.2)));
    groups.into_iter().map(|(_, example, n, arms)| (example, n, arms)).collect()
}

/// The report's opening paragraph, in words with the numbers of the tables.
pub(crate) fn conclusion(study: &Study, out: &Outcome) -> String {
    let mut s = most_consistent_sentence(study, out);
    s.push_str(&gun_against_hand_sentence(study, out));
    s.push_str(&acceptance_sentence(study, out));
    s.push_str(&caveat_sentence(study, out));
    s
}

/// A target as prose names it ("10 µL").
fn target_words(study: &Study, t: usize) -> String {
    format!("{} µL", fmt(study.targets_ul[t]))
}

/// The conclusion's first sentence: the most consistent arm at each target.
fn most_consistent_sentence(study: &Study, out: &Outcome) -> String {
    let nt = study.targets.len();
    let na = study.arms.len();
    let at = |t: usize| target_words(study, t);
    let mut s = String::new();
    let best: Vec<usize> = (0..nt)
        .map(|t| {
            (0..na).min_by(|&x, &y| summary(study, out, x, t).cv.total_cmp(&summary(study, out, y, t).cv)).unwrap_or(0)
        })
        .collect();
    if best.iter().all(|&b| b == best[0]) {
        let cvs: Vec<String> =
            (0..nt).map(|t| format!("{} at {}", cv_pct(summary(study, out, best[0], t).cv), at(t))).collect();
        let every = if nt == 1 { "the target" } else { "every target" };
        let _ =
            write!(s, "The most consistent arm is {} at {every} (CV {}).", study.arms[best[0]].name, and_list(&cvs));
    } else {
        let per: Vec<String> = (0..nt)
            .map(|t| {
                format!("{} at {} (CV {})", study.arms[best[t]].name, at(t), cv_pct(summary(study, out, best[t], t).cv))
            })
            .collect();
        let _ = write!(s, "The most consistent arm is {}.", and_list(&per));
    }
    s
}

/// The CV of the best manual arm over that of the best gun arm, per target
/// ("" without both kinds of arm).
fn gun_against_hand_sentence(study: &Study, out: &Outcome) -> String {
    let nt = study.targets.len();
    let at = |t: usize| target_words(study, t);
    let mut s = String::new();
    if let (Some(m), Some(g)) = (best_of(study, out, true), best_of(study, out, false)) {
        let ratios: Vec<String> = (0..nt)
            .filter_map(|t| {
                manual_over_gun(study, out, m, g, t).map(|(r, lo, hi)| {
                    format!("{r:.2} at {} ({:.0} % interval {lo:.2} – {hi:.2})", at(t), 100.0 * study.interval)
                })
            })
            .collect();
        let _ = write!(
            s,
            " The CV of the most consistent manual arm, {}, divided by that of the most consistent gun arm, {}, is {}.",
            study.arms[m].name,
            study.arms[g].name,
            and_list(&ratios)
        );
    }
    s
}

/// How many arms pass the acceptance rule at every, some or no target.
fn acceptance_sentence(study: &Study, out: &Outcome) -> String {
    let nt = study.targets.len();
    let na = study.arms.len();
    let mut s = String::new();
    let passes: Vec<Vec<usize>> =
        (0..na).map(|a| (0..nt).filter(|&t| summary(study, out, a, t).acceptance.pass).collect()).collect();
    let all: Vec<String> = (0..na).filter(|&a| passes[a].len() == nt).map(|a| study.arms[a].name.clone()).collect();
    let some: Vec<String> = (0..na)
        .filter(|&a| !passes[a].is_empty() && passes[a].len() < nt)
        .map(|a| {
            let ts: Vec<String> = passes[a].iter().map(|&t| fmt(study.targets_ul[t])).collect();
            format!("{} ({} µL)", study.arms[a].name, and_list(&ts))
        })
        .collect();
    let none: Vec<String> = (0..na).filter(|&a| passes[a].is_empty()).map(|a| study.arms[a].name.clone()).collect();
    let l = &study.limits;
    let _ = write!(
        s,
        " Against the {} acceptance rule (L(V) = max({} µL, {} % of V), coverage {}, confidence {}), {} of {} arms pass at every target{}",
        study.preset,
        fmt(l.alpha),
        fmt(100.0 * l.beta),
        l.coverage,
        l.confidence,
        all.len(),
        na,
        if all.is_empty() { String::new() } else { format!(" ({})", and_list(&all)) }
    );
    let mut rest = Vec::new();
    if !some.is_empty() {
        rest.push(format!("only at some targets: {}", and_list(&some)));
    }
    if !none.is_empty() {
        rest.push(format!("at none: {}", and_list(&none)));
    }
    if rest.is_empty() {
        s.push('.');
    } else {
        let _ = write!(s, "; {}.", rest.join("; "));
    }
    s
}

/// The main caveat: the most important model-validity warning, and what
/// the manual arms are.
fn caveat_sentence(study: &Study, out: &Outcome) -> String {
    let mut s = String::new();
    let groups = warning_groups(study, out);
    let sessions = out.sessions.len();
    let warned = out.sessions.iter().filter(|s| !s.warnings.is_empty()).count();
    if let Some((example, n, arms)) = groups.first() {
        let _ = write!(
            s,
            " Caveat: {warned} of {sessions} gun sessions raised model-validity warnings ({} kinds, listed below); the main one, in {n} sessions of {}: “{}”.",
            groups.len(),
            and_list(arms),
            example
        );
    } else if sessions > 0 {
        s.push_str(" No gun session raised a model-validity warning.");
    }
    if study.arms.iter().any(|a| matches!(a.kind, ArmKind::Manual { .. })) {
        s.push_str(
            " The manual arms are a behavioural model whose priors were set to reproduce published ranges of syringe dosing, not measurements of these operators.",
        );
    }
    s
}

/// The unit symbol of a scenario key for prose ("" for a pure number).
fn unit_of(key: &str) -> &'static str {
    match crate::scenario::registry::find(key).map(|p| p.unit.symbol) {
        Some("—") | None => "",
        Some(u) => u,
    }
}

/// `x` with its unit.
fn with_unit(x: f64, unit: &str) -> String {
    if unit.is_empty() {
        g6(x)
    } else {
        format!("{} {unit}", g6(x))
    }
}

/// A distribution in words, in the key's unit.
fn distribution(d: &Distribution, unit: &str) -> String {
    let u = |x: f64| with_unit(x, unit);
    match *d {
        Distribution::Normal { mean, sd } => format!("normal, mean {}, SD {}", u(mean), u(sd)),
        Distribution::Lognormal { median, gsd } => {
            format!("log-normal, median {}, geometric SD {}", u(median), g6(gsd))
        }
        Distribution::Uniform { lo, hi } => format!("uniform from {} to {}", g6(lo), u(hi)),
        Distribution::TruncatedNormal { mean, sd, lo, hi } => {
            format!("normal, mean {}, SD {}, truncated to {} – {}", u(mean), u(sd), g6(lo), u(hi))
        }
    }
}

/// When a draw is made.
fn level(l: Level, shared: bool) -> &'static str {
    match (l, shared) {
        (Level::Session, true) => "once per operator or device",
        (Level::Session, false) => "once per device",
        (Level::Shot, _) => "before every shot",
        (Level::Site, _) => "for every injection site (every shot)",
    }
}

/// The source a study file's comment states, or that there is none: a
/// comment citing a paper, a standard or a catalogue (a year, or a [R]/[V]
/// mark) is given as written; one that only says "chosen here" ([D]) or
/// none at all reads "no published source".
fn stated_source(note: Option<&String>) -> String {
    let cites = |n: &str| {
        n.contains("[R]")
            || n.contains("[V]")
            || n.as_bytes()
                .windows(4)
                .any(|w| (w.starts_with(b"19") || w.starts_with(b"20")) && w.iter().all(u8::is_ascii_digit))
    };
    match note {
        None => "no published source".into(),
        Some(n) if cites(n) => format!("study file: {n}"),
        Some(n) => format!("no published source (study file: {n})"),
    }
}

/// Rows (parameter, distribution, when drawn, source) of a variability table.
fn variability_rows(list: &[Uncertain], notes: &std::collections::BTreeMap<String, String>, shared: bool) -> String {
    let mut h = String::new();
    for u in list {
        let _ = writeln!(
            h,
            "<tr><td class=\"l\"><code>{}</code></td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            html_escape(&u.key),
            html_escape(&distribution(&u.dist, unit_of(&u.key))),
            level(u.level, shared),
            html_escape(&stated_source(notes.get(&u.key)))
        );
    }
    h
}

const VARIABILITY_HEAD: &str =
    "<tr><th class=\"l\">parameter</th><th class=\"l\">distribution</th><th class=\"l\">drawn</th><th class=\"l\">source</th></tr>\n";

/// One row of an operator population: (what, value, when drawn, source).
type OperatorRow = (&'static str, String, &'static str, String);

/// The operator population of a manual arm: (what, value, when drawn, source).
fn operator_rows(preset: &str, p: &OperatorParams) -> Vec<OperatorRow> {
    let base = OperatorParams::preset(preset).unwrap_or_else(|| p.clone());
    let mut rows = decision_rows(p, &base);
    rows.extend(hand_rows(p, &base));
    rows
}

/// The preset's source `s` when the study kept the preset's values.
fn kept_source(same: bool, s: &str) -> String {
    if same {
        s.to_string()
    } else {
        "set in the study file: no published source".into()
    }
}

/// The operator's decisions: plunger flow, reaction, anticipation, reading.
fn decision_rows(p: &OperatorParams, base: &OperatorParams) -> Vec<OperatorRow> {
    let src = kept_source;
    let prior =
        "no published source (a prior [D], set with the others to reproduce the published outcome ranges below)";
    vec![
        (
            "intended plunger flow",
            format!(
                "median {} µL/s; geometric SD {} between operators, {} between one operator's shots",
                g6(p.flow * 1e9),
                g6(p.flow_gsd_between),
                g6(p.flow_gsd_within)
            ),
            "per operator, then per shot",
            src((p.flow, p.flow_gsd_between, p.flow_gsd_within) == (base.flow, base.flow_gsd_between, base.flow_gsd_within), prior),
        ),
        (
            "reaction time (decision to release)",
            format!(
                "median {} ms; geometric SD {} between operators, {} within",
                g6(p.reaction * 1e3),
                g6(p.reaction_gsd_between),
                g6(p.reaction_gsd_within)
            ),
            "per operator, then per shot",
            src(
                (p.reaction, p.reaction_gsd_between, p.reaction_gsd_within)
                    == (base.reaction, base.reaction_gsd_between, base.reaction_gsd_within),
                "no published source (a prior [D]: a visual choice reaction)",
            ),
        ),
        (
            "anticipated fraction of the latency",
            format!("normal, mean {}, SD {} between operators (clamped to 0 – 1)", g6(p.anticipation), g6(p.anticipation_sd)),
            "per operator",
            src((p.anticipation, p.anticipation_sd) == (base.anticipation, base.anticipation_sd), prior),
        ),
        (
            "reading the graduations",
            format!(
                "graduations every {} µL; reading SD {} graduation; viewing-angle SD {}° through a {} mm barrel wall (parallax)",
                g6(p.graduation * 1e9),
                g6(p.reading_sd),
                g6(p.view_angle_sd.to_degrees()),
                g6(p.wall * 1e3)
            ),
            "at the start and at the stop of every shot",
            src(
                (p.graduation, p.reading_sd, p.view_angle_sd, p.wall)
                    == (base.graduation, base.reading_sd, base.view_angle_sd, base.wall),
                "graduations: 0.01 mL marks of BD 1 mL tuberculin syringes; reading and angle SDs and the wall: no published source ([D])",
            ),
        ),
    ]
}

/// The operator's hand: tremor, force pulses, tip drift, impedance, depth.
fn hand_rows(p: &OperatorParams, base: &OperatorParams) -> Vec<OperatorRow> {
    let src = kept_source;
    vec![
        (
            "tremor",
            format!(
                "{} N RMS, centre frequency uniform from {} to {} Hz between operators",
                g6(p.tremor_rms),
                g6(p.tremor_hz.0),
                g6(p.tremor_hz.1)
            ),
            "per operator (frequency), every shot",
            src(
                (p.tremor_rms, p.tremor_hz) == (base.tremor_rms, base.tremor_hz),
                "8–12 Hz: the textbook physiological-tremor band (not verified here); tremor in manual injection: Micheels et al., J Méd Esthét Chir Dermatol n°197 (2023); amplitude: no published source ([D])",
            ),
        ),
        (
            "start-of-stroke force pulses",
            format!(
                "Poisson, mean {} per shot, peak 50–100 % of {} N, width {} ms, in the first {} % of the stroke",
                g6(p.pulses),
                g6(p.pulse_force),
                g6(p.pulse_width * 1e3),
                g6(100.0 * p.pulse_window)
            ),
            "per shot",
            src(
                (p.pulses, p.pulse_force, p.pulse_width, p.pulse_window)
                    == (base.pulses, base.pulse_force, base.pulse_width, base.pulse_window),
                "pulses in every operator, mostly early: Tzafalia & Sixou, Anesth Prog 58(2):61–65 (2011); their number and size: no published source ([D])",
            ),
        ),
        (
            "needle-tip drift during the stroke",
            format!("log-normal, median {} mm, geometric SD {}", g6(p.drift * 1e3), g6(p.drift_gsd)),
            "per shot",
            src(
                (p.drift, p.drift_gsd) == (base.drift, base.drift_gsd),
                "mean 1.9 mm, 0.6–4.1 mm, less with experience: Aesthet Surg J 42(10):1109 [V]",
            ),
        ),
        (
            "hand on the plunger",
            format!(
                "stiffness {} N/mm, damping {} N·s/m, preload {} N, speed ramp {} ms, release {} ms",
                g6(p.stiffness * 1e-3),
                g6(p.damping),
                g6(p.preload),
                g6(p.ramp * 1e3),
                g6(p.release * 1e3)
            ),
            "fixed",
            src(
                (p.stiffness, p.damping, p.preload, p.ramp, p.release)
                    == (base.stiffness, base.damping, base.preload, base.ramp, base.release),
                "no published source ([D]: a reflex-stiffened thumb)",
            ),
        ),
        (
            "intended depth, dermis",
            format!("{} mm, dermis {} mm", g6(p.depth * 1e3), g6(p.dermis * 1e3)),
            "fixed",
            src((p.depth, p.dermis) == (base.depth, base.dermis), "no published source ([D]: facial dermis)"),
        ),
    ]
}

/// Firmware keys that only one kind of firmware reads.
fn firmware_key_applies(key: &str, kind: &str) -> bool {
    const VOLUME: [&str; 4] = ["target_ul", "lead_ms", "learn_gain", "max_open_ms"];
    const PID: [&str; 12] = [
        "measured",
        "setpoint_bar",
        "setpoint_step_ms",
        "setpoint_step_bar",
        "kp",
        "ki_per_s",
        "kd_s",
        "derivative_filter_ms",
        "u_min_bar",
        "u_max_bar",
        "anti_windup",
        "tracking_time_ms",
    ];
    let k = key.trim_start_matches("firmware.");
    if VOLUME.contains(&k) {
        kind == "volume_target"
    } else if PID.contains(&k) {
        kind == "pressure_pid"
    } else if k == "open_time_ms" {
        kind == "open_loop" || kind == "pressure_pid"
    } else if k.starts_with("plugin") {
        kind == "plugin"
    } else if k == "fmu" {
        kind == "fmu"
    } else {
        true
    }
}

/// A gun arm's firmware: its kind and the settings written in the scenario
/// or the arm that this kind reads (the dose key apart), and the arm's other
/// overrides.
fn firmware_text(study: &Study, arm: &Arm, dose_key: &str) -> (String, String) {
    let Ok(entries) = study.scenario.entries(&arm.set) else {
        return ("(the arm's overrides could not be resolved)".into(), String::new());
    };
    let value = |e: &crate::scenario::registry::Entry| {
        let v = e.value.trim_matches('"');
        if e.unit.is_empty() {
            v.to_string()
        } else {
            format!("{v} {}", e.unit)
        }
    };
    let kind = entries.iter().find(|e| e.key == "firmware.kind").map(|e| e.value.trim_matches('"').to_string());
    let kind = kind.unwrap_or_else(|| "open_loop".into());
    let settings: Vec<String> = entries
        .iter()
        .filter(|e| e.key.starts_with("firmware.") && e.key != "firmware.kind" && e.key != dose_key)
        .filter(|e| e.origin != "default" && firmware_key_applies(&e.key, &kind))
        .map(|e| format!("{} = {}", e.key, value(e)))
        .collect();
    let fw = if settings.is_empty() {
        format!("{kind} (every setting at its default)")
    } else {
        format!("{kind}: {} (others at their defaults)", settings.join(", "))
    };
    let other: Vec<String> = arm.set.iter().filter(|s| !s.trim_start().starts_with("firmware.")).cloned().collect();
    (fw, other.join(", "))
}

/// How a gun arm is set to each target, with the values it ran with.
fn calibration_text(study: &Study, out: &Outcome, a: usize, dose: &DoseSetting) -> String {
    let nt = study.targets.len();
    match dose {
        DoseSetting::Direct { key } => format!(
            "{key} set to the target ({} µL); no calibration",
            and_list(&study.targets_ul.iter().map(|t| fmt(*t)).collect::<Vec<_>>())
        ),
        DoseSetting::Calibrate { key, lo, hi, each_unit: false } => {
            let unit = unit_of(key);
            let values: Vec<String> = (0..nt)
                .filter_map(|t| {
                    summary(study, out, a, t)
                        .calibrated
                        .map(|v| format!("{v:.2} {unit} at {} µL", fmt(study.targets_ul[t])))
                })
                .collect();
            format!(
                "factory calibration: {key} bisected in {} – {} until the mean of 3 shots on the nominal device (no variability drawn) is the target; every device then runs with the same value: {}",
                g6(*lo),
                with_unit(*hi, unit),
                and_list(&values)
            )
        }
        DoseSetting::Calibrate { key, lo, hi, each_unit: true } => {
            let unit = unit_of(key);
            let values: Vec<String> = (0..nt)
                .map(|t| {
                    let v: Vec<f64> =
                        out.sessions.iter().filter(|s| s.arm == a && s.target == t).map(|s| s.dose_value).collect();
                    let (mn, mx) =
                        v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| (l.min(*x), h.max(*x)));
                    format!("{mn:.2} – {mx:.2} {unit} at {} µL", fmt(study.targets_ul[t]))
                })
                .collect();
            format!(
                "calibration in use: {key} bisected in {} – {} on each device, with its own drawn needle, syringe and device variability (3 shots), until its mean dose is the target: {} over the {} devices",
                g6(*lo),
                with_unit(*hi, unit),
                and_list(&values),
                study.units
            )
        }
    }
}

const HAND_SOURCE: &str = "depth SD: the ±0.15 mm depth-scale tolerance of motorised microneedling pens (FDA 510(k) K182407) [V]; \
more accurate volume with the nose pressed on the skin: ASME J Med Devices 13(2):021007 [V]; depth, dermis, tilt and the hover factor: no published source ([D])";

/// One section per arm: what it is, its firmware, calibration and the
/// variability it assumes with the source of each.
fn arms_html(study: &Study, out: &Outcome) -> String {
    let mut h = String::new();
    h.push_str("<h2>What each arm assumes</h2>\n");
    if !study.shared.is_empty() {
        h.push_str(
            "<h3 id=\"shared\">Shared by every arm</h3>\n<p>Drawn from the same random streams in every arm (common random numbers): \
every arm meets the same needles, stoppers and tissue.</p>\n<div class=\"wrap\"><table class=\"text\">\n",
        );
        h.push_str(VARIABILITY_HEAD);
        h.push_str(&variability_rows(&study.shared, &study.shared_notes, true));
        h.push_str("</table></div>\n");
    }
    for (a, arm) in study.arms.iter().enumerate() {
        let _ = writeln!(h, "<h3 id=\"arm-{a}\">{}</h3>", html_escape(&arm.name));
        match &arm.kind {
            ArmKind::Manual { preset, operator } => manual_arm_html(&mut h, study, arm, preset, operator),
            ArmKind::Gun { dose, hand } => gun_arm_html(&mut h, study, out, a, dose, hand.as_ref()),
        }
    }
    h.push_str(
        "<p>Manual arms: the priors of the operator presets were set so that the simulated outcome falls in the ranges \
insulin-syringe studies report (bias +20 to +60 %, CV 5–33 % at ≤ 0.01 mL: Casella et al., Pediatrics 91(6):1155 (1993); \
Gnanalingham et al., Arch Dis Child 79:59 (1998)); they are a calibrated behavioural model, not independent measurements of each mechanism.</p>\n",
    );
    h
}

/// A manual arm's description table and its operator population.
fn manual_arm_html(h: &mut String, study: &Study, arm: &Arm, preset: &str, operator: &OperatorParams) {
    let mut rows: Vec<(&str, String)> = Vec::new();
    rows.push((
                    "kind",
                    format!(
                        "manual: {} {preset} operator pushes the plunger of the shared syringe by thumb; no firmware; the stop is read on the graduations",
                        if preset.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
                    ),
                ));
    rows.push(("calibration", "none: each operator aims at the target by eye".into()));
    if !arm.set.is_empty() {
        rows.push(("overrides", arm.set.join(", ")));
    }
    rows.push(("in short", arm.assumptions()));
    table_rows(h, &rows);
    h.push_str(&format!(
                    "<p>Operator population ({} operators, each drawn once, their shots around them):</p>\n<div class=\"wrap\"><table class=\"text\">\n",
                    study.units
                ));
    h.push_str("<tr><th class=\"l\">what</th><th class=\"l\">value</th><th class=\"l\">drawn</th><th class=\"l\">source</th></tr>\n");
    for (what, value, when, src) in operator_rows(preset, operator) {
        let _ = writeln!(
                        h,
                        "<tr><td class=\"l\">{what}</td><td class=\"l\">{}</td><td class=\"l\">{when}</td><td class=\"l\">{}</td></tr>",
                        html_escape(&value),
                        html_escape(&src)
                    );
    }
    h.push_str("</table></div>\n");
}

/// A gun arm's description table and its device-to-device variability.
fn gun_arm_html(h: &mut String, study: &Study, out: &Outcome, a: usize, dose: &DoseSetting, hand: Option<&Hand>) {
    let arm = &study.arms[a];
    let mut rows: Vec<(&str, String)> = Vec::new();
    let (DoseSetting::Direct { key } | DoseSetting::Calibrate { key, .. }) = dose;
    let (fw, other) = firmware_text(study, arm, key);
    rows.push(("kind", "gun: the shared scenario's gun and plant".into()));
    rows.push(("firmware", fw));
    rows.push(("calibration", calibration_text(study, out, a, dose)));
    if !other.is_empty() {
        rows.push(("other overrides", other));
    }
    rows.push((
        "hand",
        match hand {
            Some(hd) => format!("{}; sources: {HAND_SOURCE}", hd.describe()),
            None => "none: the scenario's tissue site at every shot, nose held against the skin, perpendicular".into(),
        },
    ));
    rows.push(("in short", arm.assumptions()));
    table_rows(h, &rows);
    if arm.variability.is_empty() {
        h.push_str("<p>No device-to-device variability of its own (only the shared variability).</p>\n");
    } else {
        let _ = writeln!(
            h,
            "<p>Device-to-device variability ({} devices):</p>\n<div class=\"wrap\"><table class=\"text\">",
            study.units
        );
        h.push_str(VARIABILITY_HEAD);
        h.push_str(&variability_rows(&arm.variability, &arm.notes, false));
        h.push_str("</table></div>\n");
    }
}

/// A two-column description table.
fn table_rows(h: &mut String, rows: &[(&str, String)]) {
    h.push_str("<div class=\"wrap\"><table class=\"text\">\n");
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><th class=\"l\">{k}</th><td class=\"l\">{}</td></tr>", html_escape(v));
    }
    h.push_str("</table></div>\n");
}

/// The model-validity warnings of the gun sessions, grouped.
fn warnings_html(study: &Study, out: &Outcome) -> String {
    let groups = warning_groups(study, out);
    if groups.is_empty() {
        return String::new();
    }
    let mut h = format!(
        "<h2>Model-validity warnings</h2>\n<p>Raised by {} of the {} gun sessions (one session: one arm, target and device); \
one example message per kind (its numbers are those of the first session that raised it).</p>\n<div class=\"wrap\"><table class=\"text\">\n\
<tr><th>sessions</th><th class=\"l\">arms</th><th class=\"l\">warning</th></tr>\n",
        out.sessions.iter().filter(|s| !s.warnings.is_empty()).count(),
        out.sessions.len()
    );
    for (example, n, arms) in groups {
        let _ = writeln!(
            h,
            "<tr><td>{n}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            html_escape(&arms.join(", ")),
            html_escape(&example)
        );
    }
    h.push_str("</table></div>\n");
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
    use super::{and_list, p_value, stated_source};

    #[test]
    fn a_source_is_given_as_the_study_states_it_or_as_none() {
        assert_eq!(stated_source(None), "no published source");
        let d = "needle lot, ±3 % bore [D]".to_string();
        assert_eq!(stated_source(Some(&d)), "no published source (study file: needle lot, ±3 % bore [D])");
        let r = "2–10 N [R] (Rathore et al.)".to_string();
        assert_eq!(stated_source(Some(&r)), "study file: 2–10 N [R] (Rathore et al.)");
        let y = "fitted to Gupta et al., Biomaterials 32:6823 (2011)".to_string();
        assert_eq!(stated_source(Some(&y)), format!("study file: {y}"));
    }

    #[test]
    fn lists_read_as_words() {
        let l = |v: &[&str]| and_list(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            (l(&[]), l(&["a"]), l(&["a", "b"]), l(&["a", "b", "c"])),
            (String::new(), "a".into(), "a and b".into(), "a, b and c".into())
        );
    }

    #[test]
    fn p_values_that_underflow_read_below_1e_16() {
        assert_eq!(p_value(0.0), "&lt; 1e-16");
        assert_eq!(p_value(3e-20), "&lt; 1e-16");
        assert_eq!(p_value(0.0123), "1.23e-2");
        assert_eq!(p_value(1e-16), "1.00e-16");
        assert_eq!(p_value(1.0), "1.00e0");
    }
}
