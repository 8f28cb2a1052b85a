//! The figures of one run: the trace of the first shots (pressures, flows,
//! valve, firmware) and the dose of every shot.

use super::{err, item, item_axis, item_label, range, Chart, DrawResult, Legend, Mark, Side, FONT, SIZE};
use crate::sim::{ShotRecord, TraceSample};
use plotters::coord::Shift;
use plotters::prelude::*;

/// A trace series: label, colour and the value it plots.
type Series = (&'static str, RGBColor, fn(&TraceSample) -> f64);

/// Most shots a trace plot shows: a longer session (a nappage run) shows
/// its first `TRACE_SHOTS` shots, so that each stays readable; `trace.csv`
/// holds them all.
const TRACE_SHOTS: usize = 3;

/// The end of the window a trace plot shows, s, from the shots' start
/// times: the start of shot `TRACE_SHOTS` when the session has more than
/// `TRACE_SHOTS + 1` shots (one more would hardly crowd it), else `None`
/// (the whole session).
fn trace_window_end(starts: &[f64]) -> Option<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_session_plots_its_first_shots() {
        let starts: Vec<f64> = (0..27).map(|k| 0.005 + k as f64 / 9.0).collect();
        assert_eq!(trace_window_end(&starts), Some(starts[TRACE_SHOTS]));
        // A short session is drawn whole.
        assert_eq!(trace_window_end(&starts[..3]), None);
        assert_eq!(trace_window_end(&starts[..TRACE_SHOTS + 1]), None);
    }
}
