//! Plots with plotters, PNG and SVG, using an embedded DejaVu Sans font so
//! they render on a machine with no system fonts (plotters' `ab_glyph`
//! backend; its `ttf` feature must stay off). PNGs are drawn through
//! `raster::Raster`, which places glyphs and wide lines correctly.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::raster::Raster;
use super::{tmp_path, write_atomic, ReportError};
use crate::sim::{ShotRecord, TraceSample};

static FONTS: Once = Once::new();

/// Register the embedded font as "sans-serif" (idempotent; call before plotting).
pub fn register_fonts() {
    FONTS.call_once(|| {
        use plotters::style::{register_font, FontStyle};
        // The embedded faces are valid TrueType data; registration cannot fail.
        let _ = register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
        let _ = register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());
    });
}

pub(crate) const SIZE: (u32, u32) = (1200, 900);
pub(crate) const FONT: &str = "sans-serif";

/// Result of drawing: an error message on failure.
pub type DrawResult = Result<(), String>;

/// A trace series: label, colour and the value it plots.
type Series = (&'static str, RGBColor, fn(&TraceSample) -> f64);

pub(crate) fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Draw the series labels of `c` in the common style.
pub(crate) fn legend<'a, DB, CT>(c: &mut ChartContext<'a, DB, CT>) -> DrawResult
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    CT: plotters::coord::CoordTranslate,
{
    c.configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// A chart that can draw itself on any plotters backend.
pub trait Chart {
    /// Draw on `root`.
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static;
}

/// Render `chart` to `path` as PNG or SVG according to its extension,
/// atomically (temporary file, then rename).
pub fn render(path: &Path, chart: &impl Chart) -> Result<(), ReportError> {
    register_fonts();
    let fail = |message: String| ReportError::Plot { path: path.to_owned(), message };
    match path.extension().and_then(|e| e.to_str()) {
        Some("svg") => {
            let mut s = String::new();
            {
                let root = SVGBackend::with_string(&mut s, SIZE).into_drawing_area();
                chart.draw(root.clone()).map_err(fail)?;
                root.present().map_err(|e| fail(e.to_string()))?;
            }
            write_atomic(path, s.as_bytes())
        }
        _ => {
            let tmp = tmp_path(path);
            {
                let root = Raster(BitMapBackend::new(&tmp, SIZE)).into_drawing_area();
                chart.draw(root.clone()).map_err(fail)?;
                root.present().map_err(|e| fail(e.to_string()))?;
            }
            std::fs::rename(&tmp, path).map_err(|source| ReportError::Io { path: path.to_owned(), source })
        }
    }
}

pub(crate) fn range(values: impl Iterator<Item = f64>, pad_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if pad_zero {
        lo = lo.min(0.0);
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    let pad = 0.05 * (hi - lo);
    (lo - if pad_zero && lo == 0.0 { 0.0 } else { pad }, hi + pad)
}

/// Fractions of `values` in `bins` equal bins of width `width` from `lo`
/// (values beyond the last bin count in it).
pub(crate) fn histogram(values: impl Iterator<Item = f64>, lo: f64, width: f64, bins: usize) -> Vec<f64> {
    let mut c = vec![0.0; bins];
    let mut n = 0usize;
    for v in values {
        c[(((v - lo) / width).max(0.0) as usize).min(bins - 1)] += 1.0;
        n += 1;
    }
    for x in &mut c {
        *x /= n.max(1) as f64;
    }
    c
}

/// Axes of a dose histogram: dose in µL against the fraction of shots up to
/// 110 % of `top`, with `caption`.
pub(crate) fn dose_histogram_axes<'a, DB: DrawingBackend + 'a>(
    root: &'a DrawingArea<DB, Shift>,
    caption: String,
    x: std::ops::Range<f64>,
    top: f64,
) -> Result<
    ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>,
    String,
>
where
    DB::ErrorType: 'static,
{
    let mut c = ChartBuilder::on(root)
        .caption(caption, (FONT, 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x, 0.0..top * 1.1)
        .map_err(err)?;
    c.configure_mesh().x_desc("dose, µL").y_desc("fraction of shots").label_style((FONT, 14)).draw().map_err(err)?;
    Ok(c)
}

/// Pressures, flow and valve state against time.
pub struct TraceChart<'a> {
    /// Scenario name for the title.
    pub name: &'a str,
    /// Samples.
    pub samples: &'a [TraceSample],
    /// Scale from the firmware's SI telemetry to `fw_unit`.
    pub fw_scale: f64,
    /// Unit of the firmware panel.
    pub fw_unit: &'a str,
}

impl Chart for TraceChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_trace(root, self)
    }
}

fn draw_trace<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &TraceChart) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (name, s) = (chart.name, chart.samples);
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(&format!("{name}: pressures, flow, valve and firmware"), (FONT, 24)).map_err(err)?;
    let has_fw = s.iter().any(|x| x.fw_setpoint.is_finite() || x.fw_measured.is_finite());
    let h = SIZE.1 as i32;
    let (top, rest) = root.split_vertically(if has_fw { h * 34 / 100 } else { h * 45 / 100 });
    let (mid, rest) = rest.split_vertically(if has_fw { h * 20 / 100 } else { h * 25 / 100 });
    let (bottom, fw_area) = if has_fw { rest.split_vertically(h * 18 / 100) } else { (rest.clone(), rest) };
    let (t0, t1) = range(s.iter().map(|x| x.t * 1e3), false);

    // Pressures.
    let series: [Series; 4] = [
        ("supply", RGBColor(120, 120, 120), |x| x.supply / 1e3),
        ("chamber", RGBColor(31, 119, 180), |x| x.chamber / 1e3),
        ("syringe", RGBColor(214, 39, 40), |x| x.syringe / 1e3),
        ("tissue (needle 1)", RGBColor(44, 160, 44), |x| x.tissue / 1e3),
    ];
    let (p0, p1) = range(s.iter().flat_map(|x| series.iter().map(move |(_, _, f)| f(x))), true);
    let mut c = ChartBuilder::on(&top)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(t0..t1, p0..p1)
        .map_err(err)?;
    c.configure_mesh().y_desc("pressure, kPa (gauge)").label_style((FONT, 14)).draw().map_err(err)?;
    for (label, color, f) in series {
        c.draw_series(LineSeries::new(s.iter().map(|x| (x.t * 1e3, f(x))), color.stroke_width(2)))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    legend(&mut c)?;

    // Flow.
    let (q0, q1) = range(s.iter().map(|x| x.flow * 1e9), true);
    let mut c = ChartBuilder::on(&mid)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(t0..t1, q0..q1)
        .map_err(err)?;
    c.configure_mesh().y_desc("needle flow, µL/s").label_style((FONT, 14)).draw().map_err(err)?;
    c.draw_series(LineSeries::new(
        s.iter().map(|x| (x.t * 1e3, x.flow * 1e9)),
        RGBColor(148, 103, 189).stroke_width(2),
    ))
    .map_err(err)?;

    // Valve command and opening.
    let mut c = ChartBuilder::on(&bottom)
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(t0..t1, -0.05..1.1)
        .map_err(err)?;
    c.configure_mesh().x_desc("time, ms").y_desc("valve").label_style((FONT, 14)).draw().map_err(err)?;
    c.draw_series(LineSeries::new(s.iter().map(|x| (x.t * 1e3, x.command)), BLACK.stroke_width(1)))
        .map_err(err)?
        .label("command")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    c.draw_series(LineSeries::new(s.iter().map(|x| (x.t * 1e3, x.opening)), RGBColor(255, 127, 14).stroke_width(2)))
        .map_err(err)?
        .label("opening")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(255, 127, 14)));
    legend(&mut c)?;
    if has_fw {
        let k = chart.fw_scale;
        let series: [Series; 3] = [
            ("setpoint", RGBColor(0, 0, 0), |x| x.fw_setpoint),
            ("measured", RGBColor(214, 39, 40), |x| x.fw_measured),
            ("command", RGBColor(31, 119, 180), |x| x.fw_command),
        ];
        let (y0, y1) = range(s.iter().flat_map(|x| series.iter().map(move |(_, _, f)| f(x) * k)), false);
        let mut c = ChartBuilder::on(&fw_area)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(t0..t1, y0..y1)
            .map_err(err)?;
        c.configure_mesh()
            .x_desc("time, ms")
            .y_desc(format!("firmware, {}", chart.fw_unit))
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (label, color, f) in series {
            if s.iter().any(|x| f(x).is_finite()) {
                c.draw_series(LineSeries::new(
                    s.iter().filter(|x| f(x).is_finite()).map(|x| (x.t * 1e3, f(x) * k)),
                    color.stroke_width(2),
                ))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            }
        }
        legend(&mut c)?;
    }
    Ok(())
}

/// Dose (and reflux, and each needle's share) per shot.
pub struct DoseChart<'a> {
    /// Scenario name for the title.
    pub name: &'a str,
    /// Shots.
    pub shots: &'a [ShotRecord],
}

impl Chart for DoseChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_doses(root, self.name, self.shots)
    }
}

fn draw_doses<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, name: &str, shots: &[ShotRecord]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let n = shots.len().max(1) as f64;
    let needles = shots.first().map(|s| s.needles.len()).unwrap_or(1);
    let (_, y1) = range(shots.iter().flat_map(|s| [s.dose * 1e9, s.leak * 1e9]), true);
    let mut c = ChartBuilder::on(&root)
        .caption(format!("{name}: dose per shot"), (FONT, 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..(n - 0.5), 0.0..y1)
        .map_err(err)?;
    c.configure_mesh().x_desc("shot").y_desc("volume, µL").label_style((FONT, 14)).draw().map_err(err)?;
    let blue = RGBColor(31, 119, 180);
    c.draw_series(shots.iter().map(|s| Circle::new((s.index as f64, s.dose * 1e9), 5, blue.filled())))
        .map_err(err)?
        .label("dose into tissue")
        .legend(move |(x, y)| Circle::new((x + 10, y), 5, blue.filled()));
    if shots.len() > 1 {
        c.draw_series(LineSeries::new(shots.iter().map(|s| (s.index as f64, s.dose * 1e9)), blue)).map_err(err)?;
    }
    let red = RGBColor(214, 39, 40);
    c.draw_series(shots.iter().map(|s| TriangleMarker::new((s.index as f64, s.leak * 1e9), 6, red.filled())))
        .map_err(err)?
        .label("reflux to the surface")
        .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 6, red.filled()));
    if needles > 1 {
        for k in 0..needles {
            let color = Palette99::pick(k + 2).to_rgba();
            c.draw_series(
                shots
                    .iter()
                    .map(move |s| Cross::new((s.index as f64, s.needles[k].dose * 1e9), 5, color.stroke_width(2))),
            )
            .map_err(err)?
            .label(format!("needle {}", k + 1))
            .legend(move |(x, y)| Cross::new((x + 10, y), 5, color.stroke_width(2)));
        }
    }
    legend(&mut c)?;
    Ok(())
}

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
        let (x0, x1) = range(p.iter().map(|q| q.values[0]), false);
        let (_, y1) = range(p.iter().flat_map(|q| [q.p95 * 1e9, q.mean * 1e9]), true);
        let mut c = ChartBuilder::on(&root)
            .caption(format!("{}: dose mean and P5–P95 against {}", self.name, self.keys[0]), (FONT, 22))
            .margin(15)
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
            let label = if s.is_nan() { "mean".to_string() } else { format!("{} = {}", self.keys[1], s) };
            c.draw_series(LineSeries::new(pts.iter().map(|q| (q.values[0], q.mean * 1e9)), color.stroke_width(2)))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        legend(&mut c)?;
        Ok(())
    }
}

/// Dose CV over two swept keys, as a heatmap.
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
            .caption(format!("{}: dose CV (max {:.2} %)", self.name, 100.0 * cv_max), (FONT, 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..nx as f64, 0.0..ny as f64)
            .map_err(err)?;
        let (ax, ay) = (self.axes[0].clone(), self.axes[1].clone());
        c.configure_mesh()
            .disable_mesh()
            .x_desc(self.keys[0].as_str())
            .y_desc(self.keys[1].as_str())
            .x_labels(nx.min(12))
            .y_labels(ny.min(12))
            .x_label_formatter(&|v| ax.get(*v as usize).map(|x| format!("{x:.3}")).unwrap_or_default())
            .y_label_formatter(&|v| ay.get(*v as usize).map(|x| format!("{x:.3}")).unwrap_or_default())
            .label_style((FONT, 13))
            .draw()
            .map_err(err)?;
        let color = |f: f64| HSLColor(0.66 * (1.0 - f.clamp(0.0, 1.0)), 0.8, 0.5);
        c.draw_series(self.points.iter().map(|q| {
            let (i, j) = ((q.point / ny as u64) as f64, (q.point % ny as u64) as f64);
            Rectangle::new([(i, j), (i + 1.0, j + 1.0)], color(q.cv / cv_max).filled())
        }))
        .map_err(err)?;
        // Colour bar.
        let mut b = ChartBuilder::on(&bar)
            .margin(15)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..1.0, 0.0..100.0 * cv_max)
            .map_err(err)?;
        b.configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_desc("CV, %")
            .label_style((FONT, 13))
            .draw()
            .map_err(err)?;
        b.draw_series((0..100).map(|k| {
            let f = k as f64 / 100.0;
            Rectangle::new([(0.0, f * 100.0 * cv_max), (1.0, (f + 0.01) * 100.0 * cv_max)], color(f).filled())
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
        let mut c = ChartBuilder::on(&root)
            .caption(format!("{}: Sobol indices of the dose", self.name), (FONT, 22))
            .margin(15)
            .x_label_area_size(60)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..(n - 0.5), low.min(0.0)..top * 1.05)
            .map_err(err)?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(idx.len())
            .x_label_formatter(&|v| names.get(v.round() as usize).cloned().unwrap_or_default())
            .y_desc("index")
            .label_style((FONT, 13))
            .draw()
            .map_err(err)?;
        let blue = RGBColor(31, 119, 180);
        let orange = RGBColor(255, 127, 14);
        for (k, (color, total)) in [(blue, false), (orange, true)].into_iter().enumerate() {
            let off = if k == 0 { -0.2 } else { 0.2 };
            c.draw_series(idx.iter().enumerate().map(|(i, s)| {
                let v = if total { s.total } else { s.first };
                Rectangle::new([(i as f64 + off - 0.18, 0.0), (i as f64 + off + 0.18, v)], color.filled())
            }))
            .map_err(err)?
            .label(if total { "total effect" } else { "first order" })
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
            c.draw_series(idx.iter().enumerate().map(|(i, s)| {
                let (lo, hi) = if total { s.total_ci } else { s.first_ci };
                PathElement::new(vec![(i as f64 + off, lo), (i as f64 + off, hi)], BLACK.stroke_width(2))
            }))
            .map_err(err)?;
        }
        legend(&mut c)?;
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
        let all = || self.points.iter().flat_map(|p| p.raw.iter().map(|r| r.2 * 1e9));
        let (lo, hi) = range(all(), false);
        let bins = 40usize;
        let width = (hi - lo) / bins as f64;
        let counts: Vec<Vec<f64>> =
            self.points.iter().map(|p| histogram(p.raw.iter().map(|r| r.2 * 1e9), lo, width, bins)).collect();
        let top = counts.iter().flatten().cloned().fold(0.0, f64::max).max(1e-9);
        let mut c =
            dose_histogram_axes(&root, format!("{}: dose distribution at chosen points", self.name), lo..hi, top)?;
        for (k, (p, cs)) in self.points.iter().zip(&counts).enumerate() {
            let color = Palette99::pick(k).to_rgba();
            let label: Vec<String> = self.keys.iter().zip(&p.values).map(|(key, v)| format!("{key} = {v}")).collect();
            c.draw_series(cs.iter().enumerate().map(|(i, h)| {
                let x0 = lo + i as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, *h)], color.mix(0.35).filled())
            }))
            .map_err(err)?
            .label(format!("point {}: {}", p.point, label.join(", ")))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.mix(0.6).filled()));
        }
        legend(&mut c)?;
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
        let all = || self.traces.iter().flatten();
        let (t0, t1) = range(all().map(|x| x.t * 1e3), false);
        let (_, p1) = range(all().flat_map(|x| [x.chamber / 1e3, x.syringe / 1e3]), true);
        let mut c = ChartBuilder::on(&top)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(t0..t1, 0.0..p1)
            .map_err(err)?;
        c.configure_mesh().y_desc("pressure, kPa (gauge)").label_style((FONT, 14)).draw().map_err(err)?;
        let (blue, red) = (RGBColor(31, 119, 180), RGBColor(214, 39, 40));
        for (k, tr) in self.traces.iter().enumerate() {
            let s1 = c
                .draw_series(LineSeries::new(tr.iter().map(|x| (x.t * 1e3, x.chamber / 1e3)), blue.mix(0.5)))
                .map_err(err)?;
            if k == 0 {
                s1.label("chamber").legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue));
            }
            let s2 = c
                .draw_series(LineSeries::new(tr.iter().map(|x| (x.t * 1e3, x.syringe / 1e3)), red.mix(0.5)))
                .map_err(err)?;
            if k == 0 {
                s2.label("syringe").legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red));
            }
        }
        legend(&mut c)?;
        let (_, q1) = range(all().map(|x| x.flow * 1e9), true);
        let mut c = ChartBuilder::on(&bottom)
            .margin(10)
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
