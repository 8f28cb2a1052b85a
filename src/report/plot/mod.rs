//! Plots with plotters, PNG and SVG, using an embedded DejaVu Sans font so
//! they render on a machine with no system fonts (plotters' `ab_glyph`
//! backend; its `ttf` feature must stay off). PNGs are drawn through
//! `raster::Raster`, which places glyphs and wide lines correctly.

mod sweep;
mod trace;

pub use self::sweep::{HistogramChart, OverlayChart, SensitivityChart, SweepCvChart, SweepMeanChart};
pub use self::trace::{DoseChart, TraceChart};

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::raster::Raster;
use super::{write_atomic, ReportError};
use crate::files::tmp_path;

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

pub(crate) fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Where a legend goes: beside the plot area, or under its x-axis labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// In a column right of the plot area.
    Right,
    /// Under the x-axis labels.
    Below,
}

/// The key of a legend entry, drawn as the series draws its data.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mark {
    /// A line of this colour and width.
    Line(RGBAColor, u32),
    /// A filled circle of this radius.
    Dot(RGBAColor, u32),
    /// A circle outline of this radius.
    Ring(RGBAColor, u32),
    /// A filled triangle of this size.
    Triangle(RGBAColor, u32),
    /// A cross of this size.
    Cross(RGBAColor, u32),
    /// A filled square.
    Swatch(RGBAColor),
}

/// A legend kept out of the data, in a margin the chart reserves for it:
/// beside the plot area or under its x-axis labels.
#[derive(Clone, Debug)]
pub(crate) struct Legend {
    entries: Vec<(String, Mark)>,
    /// Side of the plot area.
    pub side: Side,
    /// Width, px.
    pub w: i32,
    /// Height, px.
    pub h: i32,
}

/// Font size of legend labels, px.
const LEGEND_FONT: u32 = 14;
/// Space between the plot area (or its x-axis labels) and the legend, px.
const LEGEND_GAP: i32 = 12;
/// The widest legend kept beside the plot; a wider one goes below it.
const LEGEND_MAX_RIGHT: i32 = 320;
/// Padding inside the legend box and the width of its key column, px.
const LEGEND_PAD: i32 = 10;
const LEGEND_KEY: i32 = 30;

impl Legend {
    /// The legend of `entries`, beside the plot if it is narrow enough, else below.
    pub fn new(entries: Vec<(String, Mark)>) -> Self {
        register_fonts();
        let font: TextStyle = (FONT, LEGEND_FONT).into_font().into();
        let mut text = MultiLineText::<_, &str>::new((0, 0), &font);
        for (label, _) in &entries {
            text.push_line(label.as_str());
        }
        let (w, h) = if entries.is_empty() { (0, 0) } else { text.estimate_dimension().unwrap_or((0, 0)) };
        let (w, h) = (w + LEGEND_KEY + 2 * LEGEND_PAD, h + 2 * LEGEND_PAD);
        let side = if w <= LEGEND_MAX_RIGHT { Side::Right } else { Side::Below };
        Legend { entries, side, w, h }
    }

    /// The same legend on side `side`.
    pub fn on(self, side: Side) -> Self {
        Legend { side, ..self }
    }

    /// The same legend at least `w` px wide (panels that share a time axis
    /// share one legend width, so that their plot areas line up).
    pub fn widen(self, w: i32) -> Self {
        Legend { w: self.w.max(w), ..self }
    }

    /// Reserve the legend's room in the margin of `b`, on top of `margin`
    /// on every side.
    pub fn reserve<'a, 'b, 'c, DB: DrawingBackend>(
        &self,
        b: &'c mut ChartBuilder<'a, 'b, DB>,
        margin: i32,
    ) -> &'c mut ChartBuilder<'a, 'b, DB> {
        b.margin(margin);
        match self.side {
            Side::Right => b.margin_right(margin + self.w + LEGEND_GAP),
            Side::Below => b.margin_bottom(margin + self.h + LEGEND_GAP),
        }
    }

    /// The legend's rectangle `[x0, y0, x1, y1]` relative to the top left of
    /// a plot area of `plot` px that has `x_labels` px of x-axis labels under it.
    pub fn rect(&self, plot: (u32, u32), x_labels: u32) -> [i32; 4] {
        let (x0, y0) = match self.side {
            Side::Right => (plot.0 as i32 + LEGEND_GAP, 0),
            Side::Below => (0, plot.1 as i32 + x_labels as i32 + LEGEND_GAP / 2),
        };
        [x0, y0, x0 + self.w, y0 + self.h]
    }

    /// Draw the legend on `root` (the area `c` was built on with
    /// [`Legend::reserve`] and `x_labels` px of x-axis labels), in its margin.
    pub fn draw<DB, CT>(&self, root: &DrawingArea<DB, Shift>, c: &ChartContext<'_, DB, CT>, x_labels: u32) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
        CT: plotters::coord::CoordTranslate,
    {
        if self.entries.is_empty() {
            return Ok(());
        }
        let plot = c.plotting_area();
        let (px, py) = plot.get_base_pixel();
        let (rx, ry) = root.get_base_pixel();
        let r = self.rect(plot.dim_in_pixel(), x_labels);
        let (x0, y0) = (px - rx + r[0], py - ry + r[1]);
        let frame = [(x0, y0), (x0 + self.w, y0 + self.h)];
        root.draw(&Rectangle::new(frame, WHITE.filled())).map_err(err)?;
        root.draw(&Rectangle::new(frame, BLACK.mix(0.4))).map_err(err)?;
        let style = TextStyle::from((FONT, LEGEND_FONT).into_font()).pos(Pos::new(HPos::Left, VPos::Top));
        let line_h = 1.25 * f64::from(LEGEND_FONT);
        for (k, (label, mark)) in self.entries.iter().enumerate() {
            let top = y0 + LEGEND_PAD + (k as f64 * line_h).round() as i32;
            let (x, y) = (x0 + LEGEND_PAD, top + super::raster::box_height(f64::from(LEGEND_FONT)) / 2);
            match *mark {
                Mark::Line(col, w) => root.draw(&PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(w))),
                Mark::Dot(col, r) => root.draw(&Circle::new((x + 10, y), r, col.filled())),
                Mark::Ring(col, r) => root.draw(&Circle::new((x + 10, y), r, col.stroke_width(2))),
                Mark::Triangle(col, r) => root.draw(&TriangleMarker::new((x + 10, y), r, col.filled())),
                Mark::Cross(col, r) => root.draw(&Cross::new((x + 10, y), r, col.stroke_width(2))),
                Mark::Swatch(col) => root.draw(&Rectangle::new([(x + 2, y - 6), (x + 18, y + 6)], col.filled())),
            }
            .map_err(err)?;
            root.draw(&Text::new(label.clone(), (x0 + LEGEND_PAD + LEGEND_KEY, top), style.clone())).map_err(err)?;
        }
        Ok(())
    }
}

/// An axis of `n` numbered items (shots, evaluations, grid cells, swept
/// values, parameters): item k is the segment from k to k + 1, drawn and
/// labelled at its centre ([`item`]), so every tick is a whole item.
pub(crate) type ItemAxis = plotters::coord::ranged1d::SegmentedCoord<plotters::coord::types::RangedCoordi32>;

/// The axis of `n` items (at least one).
pub(crate) fn item_axis(n: usize) -> ItemAxis {
    (0..n.max(1) as i32 - 1).into_segmented()
}

/// Where item `k` is drawn: the centre of its segment.
pub(crate) fn item(k: usize) -> SegmentValue<i32> {
    SegmentValue::CenterOf(k as i32)
}

/// The two edges of item `k` of `n` (a heatmap cell spans them).
pub(crate) fn item_edges(k: usize, n: usize) -> (SegmentValue<i32>, SegmentValue<i32>) {
    let end = if k + 1 < n { SegmentValue::Exact(k as i32 + 1) } else { SegmentValue::Last };
    (SegmentValue::Exact(k as i32), end)
}

/// The tick label at `v` of an item axis: `name(k)` at the centre of item k,
/// nothing anywhere else.
pub(crate) fn item_label(v: &SegmentValue<i32>, n: usize, name: impl Fn(usize) -> String) -> String {
    match v {
        SegmentValue::CenterOf(k) if *k >= 0 && (*k as usize) < n => name(*k as usize),
        _ => String::new(),
    }
}

/// Viridis, matplotlib's perceptually uniform colour map (van der Walt and
/// Smith), at nine evenly spaced stops, from dark purple to yellow.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (0x44, 0x01, 0x54),
    (0x47, 0x2d, 0x7b),
    (0x3b, 0x52, 0x8b),
    (0x2c, 0x72, 0x8e),
    (0x21, 0x91, 0x8c),
    (0x28, 0xae, 0x80),
    (0x5e, 0xc9, 0x62),
    (0xad, 0xdc, 0x30),
    (0xfd, 0xe7, 0x25),
];

/// The viridis colour of `f` in [0, 1] (clamped; NaN is the low end),
/// interpolated between the stops.
pub(crate) fn viridis(f: f64) -> RGBColor {
    let f = if f.is_nan() { 0.0 } else { f.clamp(0.0, 1.0) };
    let x = f * (VIRIDIS.len() - 1) as f64;
    let k = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let t = x - k as f64;
    let (a, b) = (VIRIDIS[k], VIRIDIS[k + 1]);
    let mix = |p: u8, q: u8| (f64::from(p) + t * (f64::from(q) - f64::from(p))).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
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
/// 110 % of `top`, with `caption` and room for `legend`.
pub(crate) fn dose_histogram_axes<'a, DB: DrawingBackend + 'a>(
    root: &'a DrawingArea<DB, Shift>,
    caption: String,
    x: std::ops::Range<f64>,
    top: f64,
    legend: &Legend,
) -> Result<
    ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>,
    String,
>
where
    DB::ErrorType: 'static,
{
    let mut b = ChartBuilder::on(root);
    b.caption(caption, (FONT, 22));
    let mut c = legend
        .reserve(&mut b, 15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x, 0.0..top * 1.1)
        .map_err(err)?;
    c.configure_mesh().x_desc("dose, µL").y_desc("fraction of shots").label_style((FONT, 14)).draw().map_err(err)?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::coord::ranged1d::{BoldPoints, Ranged};

    /// CIE L* of an sRGB colour.
    fn lightness(c: RGBColor) -> f64 {
        let lin = |v: u8| {
            let v = f64::from(v) / 255.0;
            if v <= 0.04045 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        let y = 0.2126 * lin(c.0) + 0.7152 * lin(c.1) + 0.0722 * lin(c.2);
        if y > 216.0 / 24389.0 {
            116.0 * y.cbrt() - 16.0
        } else {
            y * 24389.0 / 27.0
        }
    }

    #[test]
    fn viridis_runs_from_dark_to_light_evenly() {
        assert_eq!(viridis(0.0), RGBColor(0x44, 0x01, 0x54));
        assert_eq!(viridis(1.0), RGBColor(0xfd, 0xe7, 0x25));
        assert_eq!(viridis(f64::NAN), viridis(0.0));
        assert_eq!(viridis(2.0), viridis(1.0));
        // Perceptual: lightness rises with the value, in steps of similar size
        // (the rainbow it replaced went light–dark–light–dark).
        let l: Vec<f64> = (0..=100).map(|k| lightness(viridis(k as f64 / 100.0))).collect();
        let steps: Vec<f64> = l.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(steps.iter().all(|d| *d > 0.0), "{l:?}");
        let mean = (l[100] - l[0]) / 100.0;
        assert!(steps.iter().all(|d| *d < 2.5 * mean), "{steps:?}");
        assert!(l[100] - l[0] > 70.0, "{l:?}");
    }

    #[test]
    fn item_axes_tick_whole_items_at_their_centres() {
        for n in [1usize, 2, 3, 5, 7, 12, 27, 253] {
            let axis = item_axis(n);
            let ticks = axis.key_points(BoldPoints(n.min(12)));
            assert!(!ticks.is_empty(), "{n} items: no tick");
            for t in &ticks {
                // Every tick is the centre of an item, and is labelled with it.
                let SegmentValue::CenterOf(k) = t else { panic!("{n} items: tick {t:?} not at an item") };
                assert!((0..n as i32).contains(k), "{n} items: tick {k}");
                assert_eq!(item_label(t, n, |k| format!("#{k}")), format!("#{k}"));
                // The centre lies midway between the item's edges.
                let (a, b) = item_edges(*k as usize, n);
                let px = |v: &SegmentValue<i32>| axis.map(v, (0, 1000));
                assert!((2 * px(t) - px(&a) - px(&b)).abs() <= 2, "{n} items: item {k} at {}", px(t));
            }
            // Nothing but a centre gets a label.
            assert_eq!(item_label(&SegmentValue::Exact(0), n, |k| k.to_string()), "");
            assert_eq!(item_label(&SegmentValue::Last, n, |k| k.to_string()), "");
            // The items tile the axis.
            let px = |v: &SegmentValue<i32>| axis.map(v, (0, 1000));
            assert_eq!(px(&item_edges(0, n).0), 0);
            assert_eq!(px(&item_edges(n - 1, n).1), 1000);
        }
    }

    #[test]
    fn legends_sit_outside_the_plot_area_and_inside_the_figure() {
        let short = vec![("dose into tissue".to_string(), Mark::Dot(BLUE.to_rgba(), 5))];
        let long = vec![(
            "point 17: firmware.open_time_ms = 50, supply.pressure_bar = 3".to_string(),
            Mark::Swatch(BLUE.to_rgba()),
        )];
        for (entries, side) in [(short, Side::Right), (long, Side::Below)] {
            let lg = Legend::new(entries);
            assert_eq!(lg.side, side);
            let mut buf = vec![255u8; (SIZE.0 * SIZE.1 * 3) as usize];
            let root = BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area();
            let mut b = ChartBuilder::on(&root);
            b.caption("caption", (FONT, 22));
            let c = lg
                .reserve(&mut b, 15)
                .x_label_area_size(45)
                .y_label_area_size(70)
                .build_cartesian_2d(0.0..1.0, 0.0..1.0)
                .unwrap();
            let plot = c.plotting_area();
            let (w, h) = plot.dim_in_pixel();
            let (px, py) = plot.get_base_pixel();
            let r = lg.rect((w, h), 45);
            // Outside the data: right of it or under its x-axis labels.
            match side {
                Side::Right => assert!(r[0] > w as i32, "{r:?} against {w} × {h}"),
                Side::Below => assert!(r[1] >= h as i32 + 45, "{r:?} against {w} × {h}"),
            }
            // Inside the figure.
            let abs = [px + r[0], py + r[1], px + r[2], py + r[3]];
            assert!(abs[0] >= 0 && abs[1] >= 0, "{abs:?}");
            assert!(abs[2] <= SIZE.0 as i32 && abs[3] <= SIZE.1 as i32, "{abs:?}");
            lg.draw(&root, &c, 45).unwrap();
        }
    }
}
