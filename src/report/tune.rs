//! Outputs of `mesobench tune`: `tune_summary.json`, the best settings as a
//! TOML fragment (`tune_best.toml`) and a C header (`tune_best.h`), the
//! history (`tune_history.csv`) and landscape (`tune_landscape.csv`), and
//! three plots (convergence, dose distributions, landscape).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::plot::{
    dose_histogram_axes, err, histogram, item, item_axis, item_label, range, render, Chart, DrawResult, Legend, Mark,
    Side, FONT,
};
use super::{json_bytes, write_atomic, ReportError};
use crate::scenario::{Scenario, TuneSpec};
use crate::study::tune::{Evaluation, Metrics, Outcome};

#[derive(serde::Serialize)]
struct Summary<'a> {
    mesobench_version: &'a str,
    scenario: &'a str,
    source: &'a str,
    overrides: &'a [String],
    seed: u64,
    tune: &'a TuneSpec,
    evaluations: usize,
    objective_start: f64,
    objective_best: f64,
    cost_start: f64,
    cost_best: f64,
    start_parameters: serde_json::Map<String, serde_json::Value>,
    best_parameters: serde_json::Map<String, serde_json::Value>,
    start_metrics: &'a Option<Metrics>,
    best_metrics: &'a Option<Metrics>,
    start_feasible: bool,
    best_feasible: bool,
    constraint_margins_start: serde_json::Map<String, serde_json::Value>,
    constraint_margins: serde_json::Map<String, serde_json::Value>,
    sensitivity: serde_json::Map<String, serde_json::Value>,
    landscape_keys: Vec<&'a str>,
}

fn params(spec: &TuneSpec, e: &Evaluation) -> serde_json::Map<String, serde_json::Value> {
    spec.parameters.iter().zip(&e.values).map(|((k, _, _), v)| (k.clone(), serde_json::json!(v))).collect()
}

fn margins(e: &Evaluation) -> serde_json::Map<String, serde_json::Value> {
    e.margins.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect()
}

/// The best values as a TOML fragment: one table per first key segment.
pub fn toml_fragment(sc: &Scenario, spec: &TuneSpec, best: &Evaluation, objective: &str) -> String {
    let mut s = format!(
        "# mesobench {} tune: best settings for scenario '{}' ({} = {:.6}).\n# Paste into the scenario.\n",
        crate::VERSION,
        sc.name,
        objective,
        best.objective
    );
    let mut tables: Vec<(String, Vec<(String, f64)>)> = Vec::new();
    for ((key, _, _), v) in spec.parameters.iter().zip(&best.values) {
        let (table, rest) = key.split_once('.').unwrap_or(("", key));
        match tables.iter_mut().find(|(t, _)| t == table) {
            Some((_, items)) => items.push((rest.to_string(), *v)),
            None => tables.push((table.to_string(), vec![(rest.to_string(), *v)])),
        }
    }
    for (table, items) in tables {
        if !table.is_empty() {
            let _ = writeln!(s, "[{table}]");
        }
        for (k, v) in items {
            let k = if k.contains('.') { format!("\"{k}\"") } else { k };
            let _ = writeln!(s, "{k} = {v:?}");
        }
    }
    s
}

/// The best values as C `#define`s: `MB_TUNE_<KEY>` with the unit suffix of
/// the key kept in the name and a comment with the key.
pub fn c_header(sc: &Scenario, spec: &TuneSpec, best: &Evaluation) -> String {
    let mut s = format!(
        "/* mesobench {} tune: best settings for scenario '{}'. Generated; do not edit. */\n\
#ifndef MESOBENCH_TUNE_BEST_H\n#define MESOBENCH_TUNE_BEST_H\n\n",
        crate::VERSION,
        sc.name
    );
    for ((key, lo, hi), v) in spec.parameters.iter().zip(&best.values) {
        let name: String =
            key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
        let _ = writeln!(s, "#define MB_TUNE_{name} {v:.9e} /* {key}, searched in [{lo}, {hi}] */");
        // Durations the built-in firmware counts in whole ticks: the value it
        // really applies, and the count to paste into tick-based firmware.
        if TICK_TIMED.contains(&key.as_str()) {
            let tick_ms = sc.solver.tick * 1e3;
            let n = crate::control::builtin::whole_ticks(v * 1e-3, sc.solver.tick);
            let applied = n as f64 * tick_ms;
            let _ = writeln!(
                s,
                "#define MB_TUNE_{name}_TICKS {n} /* the {} tick ({} ms) quantises it to {} ms */",
                crate::text::g6(1.0 / sc.solver.tick) + " Hz",
                crate::text::g6(tick_ms),
                crate::text::g6(applied)
            );
        }
    }
    s.push_str("\n#endif /* MESOBENCH_TUNE_BEST_H */\n");
    s
}

/// Keys (in ms) that the built-in firmware applies in whole ticks.
const TICK_TIMED: [&str; 2] = ["firmware.open_time_ms", "firmware.pre_pressurise_ms"];

fn short(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// Objective of every evaluation and the best so far.
pub struct ConvergenceChart<'a> {
    name: &'a str,
    history: &'a [Evaluation],
    search: usize,
}

impl Chart for ConvergenceChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(err)?;
        let h = &self.history[..self.search];
        let n = h.iter().map(|e| e.index + 1).max().unwrap_or(1);
        let feasible: Vec<(usize, f64)> = h.iter().filter(|e| e.feasible).map(|e| (e.index, e.objective)).collect();
        let mut best = f64::INFINITY;
        let mut best_cost = f64::INFINITY;
        let mut line = Vec::new();
        for e in h {
            if e.cost < best_cost {
                best_cost = e.cost;
                best = e.objective;
            }
            if best_cost < 100.0 {
                line.push((e.index, best));
            }
        }
        let (blue, red) = (RGBColor(31, 119, 180), RGBColor(214, 39, 40));
        let lg = Legend::new(vec![
            ("candidate".into(), Mark::Dot(blue.to_rgba(), 3)),
            ("best so far".into(), Mark::Line(red.to_rgba(), 2)),
        ]);
        let (lo, hi) = range(feasible.iter().map(|p| p.1).chain(line.iter().map(|p| p.1)), false);
        let mut b = ChartBuilder::on(&root);
        b.caption(format!("{}: tuning convergence", self.name), (FONT, 22));
        let mut c = lg
            .reserve(&mut b, 15)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(item_axis(n), lo..hi)
            .map_err(err)?;
        c.configure_mesh()
            .x_label_formatter(&|v| item_label(v, n, |k| k.to_string()))
            .x_desc("evaluation")
            .y_desc("objective (feasible candidates)")
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        c.draw_series(feasible.iter().map(|p| Circle::new((item(p.0), p.1), 3, blue.mix(0.4).filled())))
            .map_err(err)?;
        // The best so far holds until the next improvement: a step line.
        let steps: Vec<(SegmentValue<i32>, f64)> = line
            .iter()
            .enumerate()
            .flat_map(|(k, p)| {
                let prev = if k > 0 { line[k - 1].1 } else { p.1 };
                [(item(p.0), prev), (item(p.0), p.1)]
            })
            .collect();
        c.draw_series(LineSeries::new(steps, red.stroke_width(2))).map_err(err)?;
        lg.draw(&root, &c, 45)?;
        Ok(())
    }
}

/// Dose histograms at the start and at the optimum.
pub struct DosesChart<'a> {
    name: &'a str,
    start: &'a [f64],
    best: &'a [f64],
    target: Option<f64>,
}

impl Chart for DosesChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(err)?;
        let all = || self.start.iter().chain(self.best).map(|d| d * 1e9).chain(self.target.map(|t| t * 1e9));
        let (lo, hi) = range(all(), false);
        let bins = 50usize;
        let w = (hi - lo) / bins as f64;
        let hist = |x: &[f64]| histogram(x.iter().map(|d| d * 1e9), lo, w, bins);
        let (hs, hb) = (hist(self.start), hist(self.best));
        let top = hs.iter().chain(&hb).copied().fold(0.0, f64::max).max(1e-9);
        let arms =
            [(&hs, RGBColor(127, 127, 127), "start", self.start), (&hb, RGBColor(44, 160, 44), "tuned", self.best)];
        let mut entries: Vec<(String, Mark)> = arms
            .iter()
            .map(|(_, col, label, x)| {
                let d = crate::stats::describe(x);
                (format!("{label}: {:.3} µL, CV {:.2} %", d.mean * 1e9, 100.0 * d.cv), Mark::Swatch(col.to_rgba()))
            })
            .collect();
        if self.target.is_some() {
            entries.push(("target".into(), Mark::Line(RED.to_rgba(), 2)));
        }
        let lg = Legend::new(entries);
        let mut c = dose_histogram_axes(
            &root,
            format!("{}: dose distribution, start against tuned", self.name),
            lo..hi,
            top,
            &lg,
        )?;
        for (h, col, _, _) in arms {
            c.draw_series(h.iter().enumerate().map(|(i, v)| {
                let x0 = lo + i as f64 * w;
                Rectangle::new([(x0, 0.0), (x0 + w, *v)], col.mix(0.45).filled())
            }))
            .map_err(err)?;
        }
        if let Some(t) = self.target {
            c.draw_series(std::iter::once(PathElement::new(
                vec![(t * 1e9, 0.0), (t * 1e9, top * 1.1)],
                RED.stroke_width(2),
            )))
            .map_err(err)?;
        }
        lg.draw(&root, &c, 45)?;
        Ok(())
    }
}

/// The cost over the two most sensitive keys (or a curve over one).
pub struct LandscapeChart<'a> {
    name: &'a str,
    spec: &'a TuneSpec,
    outcome: &'a Outcome,
}

impl Chart for LandscapeChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(err)?;
        let l = &self.outcome.landscape;
        let keys = &self.spec.parameters;
        let (start, best) = (&self.outcome.start().values, &self.outcome.best().values);
        if l.keys.len() == 1 {
            let i = l.keys[0];
            let (x0, x1) = (keys[i].1, keys[i].2);
            let (lo, hi) = range(l.points.iter().filter(|p| p.2).map(|p| p.1), false);
            let mut c = ChartBuilder::on(&root)
                .caption(format!("{}: objective along {}", self.name, keys[i].0), (FONT, 22))
                .margin(15)
                .x_label_area_size(45)
                .y_label_area_size(70)
                .build_cartesian_2d(x0..x1, lo..hi)
                .map_err(err)?;
            c.configure_mesh()
                .x_desc(keys[i].0.as_str())
                .y_desc("objective (feasible points)")
                .label_style((FONT, 14))
                .draw()
                .map_err(err)?;
            c.draw_series(l.points.iter().filter(|p| p.2).map(|p| Circle::new((p.0[i], p.1), 4, BLUE.filled())))
                .map_err(err)?;
            c.draw_series([Circle::new((best[i], self.outcome.best().objective), 7, RED.filled())]).map_err(err)?;
            return Ok(());
        }
        let (i, j) = (l.keys[0], l.keys[1]);
        let g = self.spec.landscape_grid;
        // Log colour scale over every simulated point; infeasible ones are drawn pale.
        let finite: Vec<f64> =
            l.points.iter().filter(|p| p.1 > 0.0 && p.1 < crate::study::tune::FAILED).map(|p| p.1).collect();
        let (mut cmin, mut cmax) = (
            finite.iter().copied().fold(f64::INFINITY, f64::min),
            finite.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        if !(cmin.is_finite() && cmax.is_finite()) {
            // No feasible point on the grid: an arbitrary scale, everything grey.
            (cmin, cmax) = (1.0, 10.0);
        }
        if cmax <= cmin * 1.0001 {
            cmax = cmin * 1.01 + 1e-12;
        }
        let (root, bar) = root.split_horizontally(SIZE_W - 190);
        let lg = Legend::new(vec![
            ("start".into(), Mark::Ring(BLACK.to_rgba(), 5)),
            ("tuned".into(), Mark::Cross(RED.to_rgba(), 5)),
        ])
        .on(Side::Below);
        let mut b = ChartBuilder::on(&root);
        b.caption(format!("{}: objective over {} × {}", self.name, short(&keys[i].0), short(&keys[j].0)), (FONT, 22));
        let mut c = lg
            .reserve(&mut b, 15)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(keys[i].1..keys[i].2, keys[j].1..keys[j].2)
            .map_err(err)?;
        c.configure_mesh()
            .disable_mesh()
            .x_desc(keys[i].0.as_str())
            .y_desc(keys[j].0.as_str())
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        let (dx, dy) = ((keys[i].2 - keys[i].1) / (g - 1) as f64, (keys[j].2 - keys[j].1) / (g - 1) as f64);
        let shade = |cost: f64| -> RGBColor {
            if !(cost > 0.0 && cost < crate::study::tune::FAILED) || finite.is_empty() {
                return RGBColor(200, 200, 200);
            }
            let t = if cmax > cmin { ((cost.max(cmin)).ln() - cmin.ln()) / (cmax.ln() - cmin.ln()) } else { 0.0 };
            let t = t.clamp(0.0, 1.0);
            // Dark blue (low) to yellow (high).
            RGBColor((30.0 + 220.0 * t) as u8, (40.0 + 180.0 * t) as u8, (120.0 - 90.0 * t) as u8)
        };
        c.draw_series(l.points.iter().map(|(v, objective, feasible)| {
            Rectangle::new(
                [(v[i] - dx / 2.0, v[j] - dy / 2.0), (v[i] + dx / 2.0, v[j] + dy / 2.0)],
                if *feasible { shade(*objective).filled() } else { shade(*objective).mix(0.3).filled() },
            )
        }))
        .map_err(err)?;
        c.draw_series([Circle::new((start[i], start[j]), 7, WHITE.stroke_width(3))]).map_err(err)?;
        c.draw_series([Cross::new((best[i], best[j]), 9, RED.stroke_width(3))]).map_err(err)?;
        lg.draw(&root, &c, 45)?;
        // Colour bar.
        let mut cb = ChartBuilder::on(&bar)
            .margin_top(60)
            .margin_bottom(60)
            .margin_left(10)
            .margin_right(10)
            .right_y_label_area_size(110)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(err)?
            .set_secondary_coord(0.0..1.0, cmin.ln()..cmax.ln());
        cb.configure_mesh().disable_mesh().disable_x_axis().disable_y_axis().draw().map_err(err)?;
        cb.configure_secondary_axes()
            .y_desc("objective (log scale); pale: infeasible")
            .y_label_formatter(&|v| format!("{:.3}", v.exp()))
            .label_style((FONT, 12))
            .draw()
            .map_err(err)?;
        cb.draw_series((0..100).map(|k| {
            let t = k as f64 / 100.0;
            let cost = (cmin.ln() + t * (cmax.ln() - cmin.ln())).exp();
            Rectangle::new([(0.0, t), (1.0, t + 0.01)], shade(cost).filled())
        }))
        .map_err(err)?;
        Ok(())
    }
}

const SIZE_W: u32 = super::plot::SIZE.0;

/// Write every output of a tuning run into `dir`; returns the files written.
pub fn write_tune(
    dir: &Path,
    sc: &Scenario,
    source: &str,
    overrides: &[String],
    outcome: &Outcome,
) -> Result<Vec<PathBuf>, ReportError> {
    let spec = sc.tune.as_ref().expect("a tuned scenario");
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io { path: dir.to_owned(), source })?;
    let (start, best) = (outcome.start(), outcome.best());
    let objective = match spec.objective {
        crate::scenario::TuneObjective::Cv => "dose CV, %",
        crate::scenario::TuneObjective::Tolerance => "tolerance half-width / limit",
        crate::scenario::TuneObjective::Weighted => "weighted CV and |bias|, %",
    };
    let mut files = Vec::new();
    let mut put = |name: &str, bytes: Vec<u8>| -> Result<(), ReportError> {
        let path = dir.join(name);
        write_atomic(&path, &bytes)?;
        files.push(path);
        Ok(())
    };
    let summary = Summary {
        mesobench_version: crate::VERSION,
        scenario: &sc.name,
        source,
        overrides,
        seed: sc.seed,
        tune: spec,
        evaluations: outcome.history.len(),
        objective_start: start.objective,
        objective_best: best.objective,
        cost_start: start.cost,
        cost_best: best.cost,
        start_parameters: params(spec, start),
        best_parameters: params(spec, best),
        start_metrics: &start.metrics,
        best_metrics: &best.metrics,
        start_feasible: start.feasible,
        best_feasible: best.feasible,
        constraint_margins_start: margins(start),
        constraint_margins: margins(best),
        sensitivity: spec
            .parameters
            .iter()
            .zip(&outcome.landscape.sensitivity)
            .map(|((k, _, _), s)| (k.clone(), serde_json::json!(s)))
            .collect(),
        landscape_keys: outcome.landscape.keys.iter().map(|&i| spec.parameters[i].0.as_str()).collect(),
    };
    put("tune_summary.json", json_bytes(&summary))?;
    put("tune_best.toml", toml_fragment(sc, spec, best, objective).into_bytes())?;
    put("tune_best.h", c_header(sc, spec, best).into_bytes())?;
    let mut csv = String::from("evaluation");
    for (k, _, _) in &spec.parameters {
        let _ = write!(csv, ",{k}");
    }
    csv.push_str(",objective,cost,feasible,mean_ul,cv_pct,bias_pct,peak_tissue_kpa,leak_ul,shots_per_s,error\n");
    for e in &outcome.history {
        let _ = write!(csv, "{}", e.index);
        for v in &e.values {
            let _ = write!(csv, ",{v:?}");
        }
        let m = e.metrics.as_ref();
        let f = |g: fn(&Metrics) -> f64| m.map(|m| format!("{:?}", g(m))).unwrap_or_default();
        let _ = writeln!(
            csv,
            ",{:?},{:?},{},{},{},{},{},{},{},{}",
            e.objective,
            e.cost,
            e.feasible,
            f(|m| m.mean_ul),
            f(|m| m.cv_pct),
            f(|m| m.bias_pct),
            f(|m| m.peak_tissue_kpa),
            f(|m| m.leak_ul),
            f(|m| m.shots_per_s),
            e.error.as_deref().unwrap_or("").replace([',', '\n'], ";")
        );
    }
    put("tune_history.csv", csv.into_bytes())?;
    let mut land = String::new();
    for (k, _, _) in &spec.parameters {
        let _ = write!(land, "{k},");
    }
    land.push_str("objective,feasible\n");
    for (v, o, f) in &outcome.landscape.points {
        for x in v {
            let _ = write!(land, "{x:?},");
        }
        let _ = writeln!(land, "{o:?},{f}");
    }
    put("tune_landscape.csv", land.into_bytes())?;
    // The search's evaluations are those before the landscape probes.
    let search = outcome.history.len();
    for ext in ["png", "svg"] {
        let path = dir.join(format!("tune_convergence.{ext}"));
        render(&path, &ConvergenceChart { name: &sc.name, history: &outcome.history, search })?;
        files.push(path);
        let path = dir.join(format!("tune_doses.{ext}"));
        render(
            &path,
            &DosesChart { name: &sc.name, start: &outcome.doses.0, best: &outcome.doses.1, target: spec.target },
        )?;
        files.push(path);
        let path = dir.join(format!("tune_landscape.{ext}"));
        render(&path, &LandscapeChart { name: &sc.name, spec, outcome })?;
        files.push(path);
    }
    Ok(files)
}
