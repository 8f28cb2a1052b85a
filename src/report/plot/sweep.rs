//! The figures of studies: sweep means and CV heat maps, sensitivity
//! indices, dose histograms and overlays.

use super::{
    dose_histogram_axes, err, histogram, item, item_axis, item_edges, item_label, range, viridis, Chart, DrawResult,
    Legend, Mark, Side, FONT, SIZE,
};
use crate::sim::TraceSample;
use crate::text::g6;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Mean dose with its P5–P95 band against the first swept key (one curve per
/// value of the second key, if any).
pub struct SweepMeanChart<'a> {
    /// Scenario name.
    pub name: &'a str,
    /// Swept keys.
    pub keys: Vec<String>,
    /// Values of the second key (one curve each), or a single NaN.
    pub series: Vec<f64>,
    /// Point statistics.
    pub points: &'a [crate::study::sweep::PointStats],
}

impl Chart for SweepMeanChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(err)?;
        let p = self.points;
        let lg = Legend::new(
            self.series
                .iter()
                .enumerate()
                .map(|(k, s)| {
                    let label = if s.is_nan() { "mean".to_string() } else { format!("{} = {}", self.keys[1], g6(*s)) };
                    (label, Mark::Line(Palette99::pick(k).to_rgba(), 2))
                })
                .collect(),
        );
        let (x0, x1) = range(p.iter().map(|q| q.values[0]), false);
        let (_, y1) = range(p.iter().flat_map(|q| [q.p95 * 1e9, q.mean * 1e9]), true);
        let mut b = ChartBuilder::on(&root);
        b.caption(format!("{}: dose mean and P5–P95 against {}", self.name, self.keys[0]), (FONT, 22));
        let mut c = lg
            .reserve(&mut b, 15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, 0.0..y1)
            .map_err(err)?;
        c.configure_mesh()
            .x_desc(self.keys[0].as_str())
            .y_desc("dose, µL")
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (k, s) in self.series.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            let pts: Vec<_> = p.iter().filter(|q| s.is_nan() || q.values.get(1) == Some(s)).collect();
            let band: Vec<(f64, f64)> = pts
                .iter()
                .map(|q| (q.values[0], q.p95 * 1e9))
                .chain(pts.iter().rev().map(|q| (q.values[0], q.p5 * 1e9)))
                .collect();
            c.draw_series(std::iter::once(Polygon::new(band, color.mix(0.2).filled()))).map_err(err)?;
            c.draw_series(LineSeries::new(pts.iter().map(|q| (q.values[0], q.mean * 1e9)), color.stroke_width(2)))
                .map_err(err)?;
        }
        lg.draw(&root, &c, 45)?;
        Ok(())
    }
}

/// Dose CV over two swept keys, as a heatmap: one cell per grid point,
/// labelled at its centre with the swept value, coloured with viridis.
pub struct SweepCvChart<'a> {
    /// Scenario name.
    pub name: &'a str,
    /// The two keys.
    pub keys: [String; 2],
    /// Values of each key.
    pub axes: [Vec<f64>; 2],
    /// Point statistics (point order: second key fastest).
    pub points: &'a [crate::study::sweep::PointStats],
}

/// Grids up to this many cells print each cell's value in it.
const CELL_TEXT_MAX: usize = 144;

/// Black or white, whichever reads better on `c`.
fn ink_on(c: RGBColor) -> &'static RGBColor {
    let y = 0.2126 * f64::from(c.0) + 0.7152 * f64::from(c.1) + 0.0722 * f64::from(c.2);
    if y > 140.0 {
        &BLACK
    } else {
        &WHITE
    }
}

impl Chart for SweepCvChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(err)?;
        let (nx, ny) = (self.axes[0].len(), self.axes[1].len());
        let cv_max = self.points.iter().map(|q| q.cv).filter(|v| v.is_finite()).fold(0.0, f64::max).max(1e-12);
        let (main, bar) = root.split_horizontally(SIZE.0 as i32 - 140);
        let mut c = ChartBuilder::on(&main)
            .caption(format!("{}: dose CV, % (max {:.2} %)", self.name, 100.0 * cv_max), (FONT, 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(item_axis(nx), item_axis(ny))
            .map_err(err)?;
        let (ax, ay) = (&self.axes[0], &self.axes[1]);
        c.configure_mesh()
            .disable_mesh()
            .x_desc(self.keys[0].as_str())
            .y_desc(self.keys[1].as_str())
            .x_labels(nx.min(12))
            .y_labels(ny.min(12))
            .x_label_formatter(&|v| item_label(v, nx, |k| g6(ax[k])))
            .y_label_formatter(&|v| item_label(v, ny, |k| g6(ay[k])))
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        let cell =
            |q: &crate::study::sweep::PointStats| ((q.point / ny as u64) as usize, (q.point % ny as u64) as usize);
        c.draw_series(self.points.iter().map(|q| {
            let (i, j) = cell(q);
            let ((x0, x1), (y0, y1)) = (item_edges(i, nx), item_edges(j, ny));
            let fill = if q.cv.is_finite() { viridis(q.cv / cv_max) } else { RGBColor(200, 200, 200) };
            Rectangle::new([(x0, y0), (x1, y1)], fill.filled())
        }))
        .map_err(err)?;
        if nx * ny <= CELL_TEXT_MAX {
            c.draw_series(self.points.iter().filter(|q| q.cv.is_finite()).map(|q| {
                let (i, j) = cell(q);
                let style = TextStyle::from((FONT, 14).into_font())
                    .color(ink_on(viridis(q.cv / cv_max)))
                    .pos(Pos::new(HPos::Center, VPos::Center));
                Text::new(format!("{:.1}", 100.0 * q.cv), (item(i), item(j)), style)
            }))
            .map_err(err)?;
        }
        // Colour bar.
        let mut b = ChartBuilder::on(&bar)
            .margin(15)
            .margin_top(45)
            .margin_bottom(60)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..1.0, 0.0..100.0 * cv_max)
            .map_err(err)?;
        b.configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_desc("dose CV, %")
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        b.draw_series((0..100).map(|k| {
            let f = k as f64 / 100.0;
            Rectangle::new([(0.0, f * 100.0 * cv_max), (1.0, (f + 0.01) * 100.0 * cv_max)], viridis(f + 0.005).filled())
        }))
        .map_err(err)?;
        Ok(())
    }
}

/// First-order and total Sobol indices with their intervals, as bars.
pub struct SensitivityChart<'a> {
    /// Scenario name.
    pub name: &'a str,
    /// The analysis.
    pub analysis: &'a crate::study::sensitivity::Analysis,
}

impl Chart for SensitivityChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(err)?;
        let idx = &self.analysis.indices;
        let n = idx.len() as f64;
        let top = idx
            .iter()
            .flat_map(|i| [i.total, i.total_ci.1, i.first_ci.1])
            .filter(|v| v.is_finite())
            .fold(1.0_f64, f64::max);
        let low = idx.iter().flat_map(|i| [i.first, i.first_ci.0]).filter(|v| v.is_finite()).fold(0.0_f64, f64::min);
        let names: Vec<String> = idx.iter().map(|i| i.name.clone()).collect();
        let blue = RGBColor(31, 119, 180);
        let orange = RGBColor(255, 127, 14);
        let lg = Legend::new(vec![
            ("first order".into(), Mark::Swatch(blue.to_rgba())),
            ("total effect".into(), Mark::Swatch(orange.to_rgba())),
        ]);
        let mut b = ChartBuilder::on(&root);
        b.caption(format!("{}: Sobol indices of the dose", self.name), (FONT, 22));
        let mut c = lg
            .reserve(&mut b, 15)
            .x_label_area_size(60)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..(n - 0.5), low.min(0.0)..top * 1.05)
            .map_err(err)?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(idx.len())
            .x_label_formatter(&|v| {
                // A name under each bar pair only: nothing at in-between ticks.
                let k = v.round();
                if (v - k).abs() < 1e-9 && k >= 0.0 {
                    names.get(k as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("index")
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (k, (color, total)) in [(blue, false), (orange, true)].into_iter().enumerate() {
            let off = if k == 0 { -0.2 } else { 0.2 };
            c.draw_series(idx.iter().enumerate().map(|(i, s)| {
                let v = if total { s.total } else { s.first };
                Rectangle::new([(i as f64 + off - 0.18, 0.0), (i as f64 + off + 0.18, v)], color.filled())
            }))
            .map_err(err)?;
            c.draw_series(idx.iter().enumerate().map(|(i, s)| {
                let (lo, hi) = if total { s.total_ci } else { s.first_ci };
                PathElement::new(vec![(i as f64 + off, lo), (i as f64 + off, hi)], BLACK.stroke_width(2))
            }))
            .map_err(err)?;
        }
        lg.draw(&root, &c, 60)?;
        Ok(())
    }
}

/// Overlaid dose histograms of chosen sweep points.
pub struct HistogramChart<'a> {
    /// Scenario name.
    pub name: &'a str,
    /// Swept keys (for the legend).
    pub keys: Vec<String>,
    /// Points with their raw shots.
    pub points: &'a [&'a crate::study::sweep::PointStats],
}

impl Chart for HistogramChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(err)?;
        let all = || self.points.iter().flat_map(|p| p.raw.iter().map(|r| r.dose * 1e9));
        let (lo, hi) = range(all(), false);
        let bins = 40usize;
        let width = (hi - lo) / bins as f64;
        let counts: Vec<Vec<f64>> =
            self.points.iter().map(|p| histogram(p.raw.iter().map(|r| r.dose * 1e9), lo, width, bins)).collect();
        let top = counts.iter().flatten().cloned().fold(0.0, f64::max).max(1e-9);
        let labels: Vec<String> = self
            .points
            .iter()
            .map(|p| {
                let kv: Vec<String> =
                    self.keys.iter().zip(&p.values).map(|(key, v)| format!("{key} = {}", g6(*v))).collect();
                format!("point {}: {}", p.point, kv.join(", "))
            })
            .collect();
        let lg = Legend::new(
            labels
                .into_iter()
                .enumerate()
                .map(|(k, l)| (l, Mark::Swatch(Palette99::pick(k).to_rgba().mix(0.6))))
                .collect(),
        );
        let mut c =
            dose_histogram_axes(&root, format!("{}: dose distribution at chosen points", self.name), lo..hi, top, &lg)?;
        for (k, cs) in counts.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            c.draw_series(cs.iter().enumerate().map(|(i, h)| {
                let x0 = lo + i as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, *h)], color.mix(0.35).filled())
            }))
            .map_err(err)?;
        }
        lg.draw(&root, &c, 45)?;
        Ok(())
    }
}

/// Chamber and syringe pressure and needle flow of several Monte Carlo replicates, overlaid.
pub struct OverlayChart<'a> {
    /// Scenario name.
    pub name: &'a str,
    /// Sweep point.
    pub point: u64,
    /// One trace per replicate.
    pub traces: &'a [Vec<TraceSample>],
}

impl Chart for OverlayChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(err)?;
        let root = root
            .titled(
                &format!("{}: {} Monte Carlo replicates of point {}", self.name, self.traces.len(), self.point),
                (FONT, 22),
            )
            .map_err(err)?;
        let (top, bottom) = root.split_vertically(SIZE.1 as i32 / 2);
        let (blue, red) = (RGBColor(31, 119, 180), RGBColor(214, 39, 40));
        let lg = Legend::new(vec![
            ("chamber".into(), Mark::Line(blue.to_rgba(), 1)),
            ("syringe".into(), Mark::Line(red.to_rgba(), 1)),
        ])
        .on(Side::Right);
        let all = || self.traces.iter().flatten();
        let (t0, t1) = range(all().map(|x| x.t * 1e3), false);
        let (_, p1) = range(all().flat_map(|x| [x.chamber / 1e3, x.syringe / 1e3]), true);
        let mut c = lg
            .reserve(&mut ChartBuilder::on(&top), 10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(t0..t1, 0.0..p1)
            .map_err(err)?;
        c.configure_mesh().y_desc("pressure, kPa (gauge)").label_style((FONT, 14)).draw().map_err(err)?;
        for tr in self.traces {
            c.draw_series(LineSeries::new(tr.iter().map(|x| (x.t * 1e3, x.chamber / 1e3)), blue.mix(0.5)))
                .map_err(err)?;
            c.draw_series(LineSeries::new(tr.iter().map(|x| (x.t * 1e3, x.syringe / 1e3)), red.mix(0.5)))
                .map_err(err)?;
        }
        lg.draw(&top, &c, 30)?;
        let (_, q1) = range(all().map(|x| x.flow * 1e9), true);
        let mut c = lg
            .reserve(&mut ChartBuilder::on(&bottom), 10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(t0..t1, 0.0..q1)
            .map_err(err)?;
        c.configure_mesh()
            .x_desc("time, ms")
            .y_desc("needle flow, µL/s")
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        let purple = RGBColor(148, 103, 189);
        for tr in self.traces {
            c.draw_series(LineSeries::new(tr.iter().map(|x| (x.t * 1e3, x.flow * 1e9)), purple.mix(0.5)))
                .map_err(err)?;
        }
        Ok(())
    }
}
