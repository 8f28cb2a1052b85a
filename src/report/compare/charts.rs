//! The study's three figures: dose error by arm (strip chart), dose
//! histograms, and the units of a shot (set, expelled, delivered).

use super::{color, errors};
use crate::report::plot::{err, histogram, range, Chart, DrawResult, Legend, Mark, Side, FONT};
use crate::study::compare::{ArmSummary, Outcome, Study};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Dose error by arm and target: box (quartiles), whiskers (P5–P95) and every shot.
pub struct StripChart<'a> {
    pub(super) study: &'a Study,
    pub(super) out: &'a Outcome,
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

pub(super) fn fmt(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Overlaid histograms of the dose error, one panel per target.
pub struct HistogramsChart<'a> {
    pub(super) study: &'a Study,
    pub(super) out: &'a Outcome,
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
    pub(super) study: &'a Study,
    pub(super) out: &'a Outcome,
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

pub(super) const PLOTS: [(&str, &str); 3] = [
    ("doses_by_arm", "Dose error of every shot by arm and target: boxes span the quartiles, whiskers P5–P95, red lines the acceptance limits ±L(V)."),
    ("histograms", "Distribution of the dose error per target, arms overlaid."),
    ("operators", "Spread between operators (manual arms) and devices (gun arms): each unit's mean ± SD."),
];
