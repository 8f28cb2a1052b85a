//! Plots with plotters, PNG and SVG, using an embedded DejaVu Sans font so
//! they render on a machine with no system fonts (plotters' `ab_glyph`
//! backend; its `ttf` feature must stay off). PNGs are drawn through
//! `raster::Raster`, which places glyphs and wide lines correctly.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::raster::Raster;
use super::{write_atomic, ReportError};
use crate::files::tmp_path;
use crate::sim::{ShotRecord, TraceSample};
use crate::text::g6;

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

/// Most shots a trace plot shows: a longer session (a nappage run) shows
/// its first `TRACE_SHOTS` shots, so that each stays readable; `trace.csv`
/// holds them all.
pub(crate) const TRACE_SHOTS: usize = 3;

/// The end of the window a trace plot shows, s, from the shots' start
/// times: the start of shot `TRACE_SHOTS` when the session has more than
/// `TRACE_SHOTS + 1` shots (one more would hardly crowd it), else `None`
/// (the whole session).
pub(crate) fn trace_window_end(starts: &[f64]) -> Option<f64> {
    (starts.len() > TRACE_SHOTS + 1).then(|| starts[TRACE_SHOTS])
}

/// Pressures, flow and valve state against time.
pub struct TraceChart<'a> {
    /// Scenario name for the title.
    pub name: &'a str,
    /// Samples.
    pub samples: &'a [TraceSample],
    /// The session's shots (a long session's plot shows the first few).
    pub shots: &'a [ShotRecord],
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
    let name = chart.name;
    let end = trace_window_end(&chart.shots.iter().map(|s| s.t_start).collect::<Vec<_>>());
    let kept = match end {
        Some(t) => chart.samples.partition_point(|x| x.t < t),
        None => chart.samples.len(),
    };
    let s = &chart.samples[..kept];
    root.fill(&WHITE).map_err(err)?;
    let title = match end {
        Some(_) => {
            format!("{name}: pressures, flow, valve and firmware, first {TRACE_SHOTS} of {} shots", chart.shots.len())
        }
        None => format!("{name}: pressures, flow, valve and firmware"),
    };
    let root = root.titled(&title, (FONT, 24)).map_err(err)?;
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
    let fw_series: [Series; 3] = [
        ("setpoint", RGBColor(0, 0, 0), |x| x.fw_setpoint),
        ("measured", RGBColor(214, 39, 40), |x| x.fw_measured),
        ("command", RGBColor(31, 119, 180), |x| x.fw_command),
    ];
    let orange = RGBColor(255, 127, 14);
    let line = |c: RGBColor, w: u32| Mark::Line(c.to_rgba(), w);
    let p_lg = Legend::new(series.iter().map(|(l, c, _)| (l.to_string(), line(*c, 2))).collect()).on(Side::Right);
    let v_lg =
        Legend::new(vec![("command".into(), line(BLACK, 1)), ("opening".into(), line(orange, 2))]).on(Side::Right);
    let fw_lg = Legend::new(
        fw_series
            .iter()
            .filter(|(_, _, f)| s.iter().any(|x| f(x).is_finite()))
            .map(|(l, c, _)| (l.to_string(), line(*c, 2)))
            .collect(),
    )
    .on(Side::Right);
    // One legend width for every panel, so that their time axes line up.
    let w = p_lg.w.max(v_lg.w).max(if has_fw { fw_lg.w } else { 0 });
    let (p_lg, v_lg, fw_lg) = (p_lg.widen(w), v_lg.widen(w), fw_lg.widen(w));
    pressure_panel(&top, s, (t0, t1), &series, &p_lg)?;
    flow_panel(&mid, s, (t0, t1), &p_lg)?;
    valve_panel(&bottom, s, (t0, t1), &v_lg, orange)?;
    if has_fw {
        firmware_panel(&fw_area, s, (t0, t1), chart, &fw_series, &fw_lg)?;
    }
    Ok(())
}

/// The trace's pressure panel: supply, chamber, syringe and tissue.
fn pressure_panel<DB: DrawingBackend>(
    top: &DrawingArea<DB, Shift>,
    s: &[TraceSample],
    (t0, t1): (f64, f64),
    series: &[Series; 4],
    p_lg: &Legend,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (p0, p1) = range(s.iter().flat_map(|x| series.iter().map(move |(_, _, f)| f(x))), true);
    let mut c = p_lg
        .reserve(&mut ChartBuilder::on(top), 10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(t0..t1, p0..p1)
        .map_err(err)?;
    c.configure_mesh().y_desc("pressure, kPa (gauge)").label_style((FONT, 14)).draw().map_err(err)?;
    for &(_, color, f) in series {
        c.draw_series(LineSeries::new(s.iter().map(|x| (x.t * 1e3, f(x))), color.stroke_width(2))).map_err(err)?;
    }
    p_lg.draw(top, &c, 30)
}

/// The trace's flow panel: the needle flow (with the pressure panel's
/// legend width, so that the time axes line up).
fn flow_panel<DB: DrawingBackend>(
    mid: &DrawingArea<DB, Shift>,
    s: &[TraceSample],
    (t0, t1): (f64, f64),
    p_lg: &Legend,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (q0, q1) = range(s.iter().map(|x| x.flow * 1e9), true);
    let mut c = p_lg
        .reserve(&mut ChartBuilder::on(mid), 10)
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
    Ok(())
}

/// The trace's valve panel: the command and the opening.
fn valve_panel<DB: DrawingBackend>(
    bottom: &DrawingArea<DB, Shift>,
    s: &[TraceSample],
    (t0, t1): (f64, f64),
    v_lg: &Legend,
    orange: RGBColor,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let mut c = v_lg
        .reserve(&mut ChartBuilder::on(bottom), 10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(t0..t1, -0.05..1.1)
        .map_err(err)?;
    c.configure_mesh().x_desc("time, ms").y_desc("valve").label_style((FONT, 14)).draw().map_err(err)?;
    c.draw_series(LineSeries::new(s.iter().map(|x| (x.t * 1e3, x.command)), BLACK.stroke_width(1))).map_err(err)?;
    c.draw_series(LineSeries::new(s.iter().map(|x| (x.t * 1e3, x.opening)), orange.stroke_width(2))).map_err(err)?;
    v_lg.draw(bottom, &c, 40)
}

/// The trace's firmware panel: setpoint, measurement and command, in the
/// firmware's unit.
fn firmware_panel<DB: DrawingBackend>(
    fw_area: &DrawingArea<DB, Shift>,
    s: &[TraceSample],
    (t0, t1): (f64, f64),
    chart: &TraceChart,
    fw_series: &[Series; 3],
    fw_lg: &Legend,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let k = chart.fw_scale;
    let (y0, y1) = range(s.iter().flat_map(|x| fw_series.iter().map(move |(_, _, f)| f(x) * k)), false);
    let mut c = fw_lg
        .reserve(&mut ChartBuilder::on(fw_area), 10)
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
    for &(_, color, f) in fw_series {
        if s.iter().any(|x| f(x).is_finite()) {
            c.draw_series(LineSeries::new(
                s.iter().filter(|x| f(x).is_finite()).map(|x| (x.t * 1e3, f(x) * k)),
                color.stroke_width(2),
            ))
            .map_err(err)?;
        }
    }
    fw_lg.draw(fw_area, &c, 40)
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
    let n = shots.iter().map(|s| s.index + 1).max().unwrap_or(1);
    let needles = shots.first().map(|s| s.needles.len()).unwrap_or(1);
    let (blue, red) = (RGBColor(31, 119, 180), RGBColor(214, 39, 40));
    let needle_color = |k: usize| Palette99::pick(k + 2).to_rgba();
    let mut entries = vec![
        ("dose into tissue".to_string(), Mark::Dot(blue.to_rgba(), 5)),
        ("reflux to the surface".to_string(), Mark::Triangle(red.to_rgba(), 6)),
    ];
    if needles > 1 {
        entries.extend((0..needles).map(|k| (format!("needle {}", k + 1), Mark::Cross(needle_color(k), 5))));
    }
    let lg = Legend::new(entries);
    let (_, y1) = range(shots.iter().flat_map(|s| [s.dose * 1e9, s.leak * 1e9]), true);
    let mut b = ChartBuilder::on(&root);
    b.caption(format!("{name}: dose per shot"), (FONT, 24));
    let mut c = lg
        .reserve(&mut b, 15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(item_axis(n), 0.0..y1)
        .map_err(err)?;
    c.configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|v| item_label(v, n, |k| k.to_string()))
        .x_desc("shot")
        .y_desc("volume, µL")
        .label_style((FONT, 14))
        .draw()
        .map_err(err)?;
    c.draw_series(shots.iter().map(|s| Circle::new((item(s.index), s.dose * 1e9), 5, blue.filled()))).map_err(err)?;
    if shots.len() > 1 {
        c.draw_series(LineSeries::new(shots.iter().map(|s| (item(s.index), s.dose * 1e9)), blue)).map_err(err)?;
    }
    c.draw_series(shots.iter().map(|s| TriangleMarker::new((item(s.index), s.leak * 1e9), 6, red.filled())))
        .map_err(err)?;
    if needles > 1 {
        for k in 0..needles {
            let color = needle_color(k);
            c.draw_series(
                shots
                    .iter()
                    .map(move |s| Cross::new((item(s.index), s.needles[k].dose * 1e9), 5, color.stroke_width(2))),
            )
            .map_err(err)?;
        }
    }
    lg.draw(&root, &c, 45)?;
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

    #[test]
    fn a_long_session_plots_its_first_shots() {
        let starts: Vec<f64> = (0..27).map(|k| 0.005 + k as f64 / 9.0).collect();
        assert_eq!(trace_window_end(&starts), Some(starts[TRACE_SHOTS]));
        // A short session is drawn whole.
        assert_eq!(trace_window_end(&starts[..3]), None);
        assert_eq!(trace_window_end(&starts[..TRACE_SHOTS + 1]), None);
    }
}
