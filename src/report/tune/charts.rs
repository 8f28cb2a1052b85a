//! The figures of a tuning run: convergence, the doses of the best
//! candidate, and the objective's landscape over two parameters with a
//! rank colour scale.

use crate::report::plot::{
    dose_histogram_axes, err, histogram, item, item_axis, item_label, range, viridis, Chart, DrawResult, Legend, Mark,
    Side, FONT, SIZE,
};
use crate::scenario::TuneSpec;
use crate::study::tune::{Evaluation, Outcome};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const SIZE_W: u32 = SIZE.0;

fn short(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// Objective of every evaluation and the best so far.
pub struct ConvergenceChart<'a> {
    pub(super) name: &'a str,
    pub(super) history: &'a [Evaluation],
    pub(super) search: usize,
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
    pub(super) name: &'a str,
    pub(super) start: &'a [f64],
    pub(super) best: &'a [f64],
    pub(super) target: Option<f64>,
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

/// A colour scale by rank: each value's fraction of the sorted values below
/// it, so the colours spread over the whole map however the values bunch
/// (a tuning landscape is flat near its optimum and steep at its edges,
/// where a linear or log scale spends every colour on a few cells).
#[derive(Clone, Debug)]
struct RankScale {
    sorted: Vec<f64>,
}

impl RankScale {
    /// The scale of the finite `values`.
    pub fn new(values: impl Iterator<Item = f64>) -> Self {
        let mut sorted: Vec<f64> = values.filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        RankScale { sorted }
    }

    /// Where `v` falls, 0 (the smallest value) to 1 (the largest),
    /// interpolated between neighbouring values.
    pub fn fraction(&self, v: f64) -> f64 {
        let s = &self.sorted;
        if s.len() < 2 || !v.is_finite() {
            return 0.0;
        }
        let k = s.partition_point(|x| *x < v);
        if k == 0 {
            return 0.0;
        }
        if k >= s.len() {
            return 1.0;
        }
        let (a, b) = (s[k - 1], s[k]);
        let t = if b > a { (v - a) / (b - a) } else { 1.0 };
        // Ties: the middle of their run.
        let run = s[k..].partition_point(|x| *x <= v);
        ((k - 1) as f64 + t + run.saturating_sub(1) as f64 / 2.0) / (s.len() - 1) as f64
    }

    /// The value at fraction `f` (the inverse of [`RankScale::fraction`]).
    pub fn value(&self, f: f64) -> f64 {
        let s = &self.sorted;
        if s.is_empty() {
            return f64::NAN;
        }
        let x = f.clamp(0.0, 1.0) * (s.len() - 1) as f64;
        let k = (x.floor() as usize).min(s.len().saturating_sub(2));
        match s.get(k + 1) {
            Some(b) => s[k] + (x - k as f64) * (b - s[k]),
            None => s[k],
        }
    }
}

/// The cost over the two most sensitive keys (or a curve over one), the
/// other keys held at the optimum.
pub struct LandscapeChart<'a> {
    pub(super) name: &'a str,
    pub(super) spec: &'a TuneSpec,
    pub(super) outcome: &'a Outcome,
}

/// The keys a landscape holds, with the value each is held at: every tuned
/// key (of `parameters`, with their bounds) that is not one of its `axes`,
/// at the optimum `best`.
fn held(parameters: &[(String, f64, f64)], axes: &[usize], best: &[f64]) -> Vec<(String, f64)> {
    parameters.iter().enumerate().filter(|(k, _)| !axes.contains(k)).map(|(k, p)| (p.0.clone(), best[k])).collect()
}

impl Chart for LandscapeChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(err)?;
        let l = &self.outcome.landscape;
        let keys = &self.spec.parameters;
        let best = &self.outcome.best().values;
        let title = if l.keys.len() == 1 {
            format!("{}: objective along {}", self.name, keys[l.keys[0]].0)
        } else {
            format!("{}: objective over {} × {}", self.name, short(&keys[l.keys[0]].0), short(&keys[l.keys[1]].0))
        };
        let root = root.titled(&title, (FONT, 22)).map_err(err)?;
        let held = held(&self.spec.parameters, &l.keys, best);
        let root = if held.is_empty() {
            root
        } else {
            let text: Vec<String> = held.iter().map(|(k, v)| format!("{k} = {}", crate::text::g6(*v))).collect();
            let (line, rest) = root.split_vertically(26);
            let style = TextStyle::from((FONT, 16).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
            line.draw_text(&format!("held at the optimum: {}", text.join(", ")), &style, (SIZE_W as i32 / 2, 2))
                .map_err(err)?;
            rest
        };
        if l.keys.len() == 1 {
            self.draw_line(&root)
        } else {
            self.draw_map(&root)
        }
    }
}

impl LandscapeChart<'_> {
    /// A one-key landscape: the feasible objectives along the key, the
    /// optimum in red.
    fn draw_line<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let l = &self.outcome.landscape;
        let keys = &self.spec.parameters;
        let best = &self.outcome.best().values;
        let i = l.keys[0];
        let (x0, x1) = (keys[i].1, keys[i].2);
        let (lo, hi) = range(l.points.iter().filter(|p| p.2).map(|p| p.1), false);
        let mut c = ChartBuilder::on(root)
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(80)
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
        Ok(())
    }

    /// A two-key landscape: the objective as a colour map with the start,
    /// the optimum and a colour bar.
    fn draw_map<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let l = &self.outcome.landscape;
        let keys = &self.spec.parameters;
        let (start, best) = (&self.outcome.start().values, &self.outcome.best().values);
        let (i, j) = (l.keys[0], l.keys[1]);
        let g = self.spec.landscape_grid;
        // A rank colour scale over every simulated point; infeasible ones are drawn pale.
        let simulated = |o: f64| o.is_finite() && o < crate::study::tune::FAILED;
        let scale = RankScale::new(l.points.iter().map(|p| p.1).filter(|o| simulated(*o)));
        let lg = Legend::new(vec![
            ("start".into(), Mark::Ring(BLACK.to_rgba(), 5)),
            ("tuned".into(), Mark::Cross(RED.to_rgba(), 5)),
        ])
        .on(Side::Below);
        let (root, bar) = root.split_horizontally(SIZE_W - 190);
        let (dx, dy) = ((keys[i].2 - keys[i].1) / (g - 1) as f64, (keys[j].2 - keys[j].1) / (g - 1) as f64);
        let mut b = ChartBuilder::on(&root);
        // The cells are centred on the grid values: the axes take in the outer halves.
        let mut c = lg
            .reserve(&mut b, 15)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(keys[i].1 - dx / 2.0..keys[i].2 + dx / 2.0, keys[j].1 - dy / 2.0..keys[j].2 + dy / 2.0)
            .map_err(err)?;
        c.configure_mesh()
            .disable_mesh()
            .x_desc(keys[i].0.as_str())
            .y_desc(keys[j].0.as_str())
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        let shade = |objective: f64| -> RGBColor {
            if !simulated(objective) {
                return RGBColor(200, 200, 200);
            }
            viridis(scale.fraction(objective))
        };
        c.draw_series(l.points.iter().map(|(v, objective, feasible)| {
            Rectangle::new(
                [(v[i] - dx / 2.0, v[j] - dy / 2.0), (v[i] + dx / 2.0, v[j] + dy / 2.0)],
                if *feasible { shade(*objective).filled() } else { shade(*objective).mix(0.3).filled() },
            )
        }))
        .map_err(err)?;
        c.draw_series([
            Circle::new((start[i], start[j]), 7, WHITE.filled()),
            Circle::new((start[i], start[j]), 7, BLACK.stroke_width(2)),
        ])
        .map_err(err)?;
        c.draw_series([Cross::new((best[i], best[j]), 9, RED.stroke_width(3))]).map_err(err)?;
        lg.draw(&root, &c, 45)?;
        colour_bar(&bar, &scale)
    }
}

/// The colour bar of a landscape map: the objective at each rank.
fn colour_bar<DB: DrawingBackend>(bar: &DrawingArea<DB, Shift>, scale: &RankScale) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let mut cb = ChartBuilder::on(bar)
        .margin_top(30)
        .margin_bottom(60)
        .margin_left(10)
        .margin_right(45)
        .y_label_area_size(75)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)
        .map_err(err)?;
    cb.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(9)
        .y_label_formatter(&|f| crate::text::g6(scale.value(*f)))
        .label_style((FONT, 14))
        .draw()
        .map_err(err)?;
    cb.draw_series((0..100).map(|k| {
        let t = k as f64 / 100.0;
        Rectangle::new([(0.0, t), (1.0, t + 0.01)], viridis(t + 0.005).filled())
    }))
    .map_err(err)?;
    let desc = TextStyle::from((FONT, 14).into_font().transform(FontTransform::Rotate90))
        .pos(Pos::new(HPos::Center, VPos::Top));
    let (bw, bh) = bar.dim_in_pixel();
    bar.draw_text("objective, colour by rank; pale: infeasible", &desc, (bw as i32 - 12, bh as i32 / 2 - 15))
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rank_scale_spreads_bunched_values_over_the_whole_map() {
        // A tuning landscape: most points within 0.5 % of the optimum, a row
        // of outliers three times higher. A log scale put all but that row in
        // the bottom 3 % of its colours.
        let mut values: Vec<f64> = (0..156).map(|k| 1.1445 + 0.005 * (k as f64 / 155.0)).collect();
        values.extend([3.54; 13]);
        let scale = RankScale::new(values.iter().copied());
        let log = |v: f64| (v.ln() - 1.1445f64.ln()) / (3.54f64.ln() - 1.1445f64.ln());
        assert!(log(1.1495) < 0.01);
        assert!(scale.fraction(1.1495) > 0.85, "{}", scale.fraction(1.1495));
        assert_eq!(scale.fraction(1.0), 0.0);
        assert_eq!(scale.fraction(1.1445), 0.0);
        assert_eq!(scale.fraction(9.0), 1.0);
        // Monotone, and the colour bar's labels invert it.
        let mut prev = -1.0;
        for k in 0..=100 {
            let v = 1.1445 + 0.006 * k as f64 / 100.0;
            let f = scale.fraction(v);
            assert!(f >= prev, "{v}: {f} < {prev}");
            prev = f;
        }
        for v in [1.145, 1.146, 1.148] {
            assert!((scale.value(scale.fraction(v)) - v).abs() < 1e-9, "{v}");
        }
        // The tied outliers sit at the middle of their run.
        assert!(scale.fraction(3.54) > 0.9 && scale.fraction(3.54) < 1.0);
    }

    #[test]
    fn the_landscape_names_the_keys_it_holds() {
        let parameters = vec![
            ("firmware.ki_per_s".to_string(), 0.0, 150.0),
            ("firmware.kp".to_string(), 0.0, 4.0),
            ("firmware.open_time_ms".to_string(), 10.0, 30.0),
        ];
        let best = [105.0, 0.0, 16.4];
        assert_eq!(held(&parameters, &[1, 0], &best), vec![("firmware.open_time_ms".to_string(), 16.4)]);
        assert_eq!(held(&parameters, &[2, 0], &best), vec![("firmware.kp".to_string(), 0.0)]);
        assert!(held(&parameters, &[0, 1, 2], &best).is_empty());
    }
}
