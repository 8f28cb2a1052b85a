//! The PNG backend: plotters' bitmap backend with two things done right that
//! plotters 0.3.7 gets wrong when it rasterises.
//!
//! - **Text.** plotters' `ab_glyph` font code draws every glyph's bitmap at
//!   the pen position and drops the glyph's own offset from it (its left side
//!   bearing, `px_bounds().min.x`), and it applies the font's kerning pairs.
//!   A full stop loses most: a third of its advance is bearing (1.3 px at
//!   14 px), and DejaVu Sans kerns `y.` by −1.7 px and `r.` by −1.1 px, so the
//!   dot of `supply.pressure_bar` lands inside the `y` (`supplypressure_bar`);
//!   a `1` leaves a gap after itself (`1 7`). Here each glyph is placed at the
//!   pen position plus its bearing, at its sub-pixel position, from the same
//!   embedded DejaVu Sans faces, and no pair that has punctuation in it is
//!   kerned (kerning meant for print pulls the dot into the letter at the
//!   12–24 px of a plot's labels).
//! - **Wide lines.** plotters fills a polyline wider than one pixel as one
//!   polygon around the whole path; where the path folds back on itself (a
//!   stick-slip ripple, a steep spike) that outline crosses itself and the
//!   fill leaves holes, so the line breaks into detached dashes; and a
//!   steep segment two pixels wide rounds to no width at all. Here a square
//!   brush as wide as the line is dragged along the path.
//!
//! Everything else goes to the wrapped backend unchanged. SVG output needs
//! neither: text stays text there and the viewer strokes the paths.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, ScaleFont};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind, FontStyle,
};

/// The embedded faces: regular and bold DejaVu Sans.
fn faces() -> &'static [FontRef<'static>; 2] {
    static FACES: OnceLock<[FontRef<'static>; 2]> = OnceLock::new();
    FACES.get_or_init(|| {
        // The embedded faces are valid TrueType data.
        let face = |bytes| FontRef::try_from_slice(bytes).expect("the embedded DejaVu Sans face");
        [face(dejavu::sans::regular()), face(dejavu::sans::bold())]
    })
}

/// The face for a plotters font style.
pub(crate) fn face(style: FontStyle) -> &'static FontRef<'static> {
    &faces()[usize::from(matches!(style, FontStyle::Bold))]
}

/// Height of the layout box plotters gives text of `size` px (its own rule,
/// kept so that every layout plotters computes stays as it is).
pub(crate) fn box_height(size: f64) -> i32 {
    (size / 1.24) as i32
}

/// Pixel bounds `[x0, x1) × [y0, y1)` of each visible glyph of `text` set in
/// `face` at `size` px, relative to the top left of its layout box: the pen
/// moves by the advances and the kerning (none next to punctuation), each
/// glyph sits at the pen plus its own bearing, and the baseline is placed so
/// that capitals are centred in the box.
#[cfg(test)]
pub(crate) fn glyph_boxes(face: &FontRef<'_>, size: f64, text: &str) -> Vec<(char, [i32; 4])> {
    let mut out = Vec::new();
    lay_out(face, size, text, |c, g| {
        let r = g.px_bounds();
        out.push((c, [r.min.x as i32, r.max.x as i32, r.min.y as i32, r.max.y as i32]));
    });
    out
}

/// Width of `text` set as [`glyph_boxes`] sets it, px.
pub(crate) fn text_width(face: &FontRef<'_>, size: f64, text: &str) -> i32 {
    lay_out(face, size, text, |_, _| {}) as i32
}

/// Visit each visible glyph of `text` as placed by [`glyph_boxes`]; returns
/// the pen position after the last glyph.
fn lay_out(face: &FontRef<'_>, size: f64, text: &str, mut visit: impl FnMut(char, ab_glyph::OutlinedGlyph)) -> f32 {
    let font = face.as_scaled(size as f32);
    // Cap height: the top of an 'H' (whichever way up the outline's bounds are stored).
    let cap = face
        .outline(face.glyph_id('H'))
        .map(|o| o.bounds.min.y.max(o.bounds.max.y) * font.v_scale_factor())
        .unwrap_or(0.0);
    let baseline = (box_height(size) as f32 + cap) / 2.0;
    let mut pen = 0.0f32;
    let mut prev: Option<(char, ab_glyph::GlyphId)> = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some((pc, p)) = prev {
            if !(pc.is_ascii_punctuation() || c.is_ascii_punctuation()) {
                pen += font.kern(p, id);
            }
        }
        prev = Some((c, id));
        if let Some(g) = font.outline_glyph(id.with_scale_and_position(font.scale(), point(pen, baseline))) {
            visit(c, g);
        }
        pen += font.h_advance(id);
    }
    pen
}

/// Every ink pixel of `text` (see [`glyph_boxes`]) with its coverage in (0, 1].
pub(crate) fn text_ink(face: &FontRef<'_>, size: f64, text: &str, mut put: impl FnMut(i32, i32, f32)) {
    lay_out(face, size, text, |_, g| {
        let r = g.px_bounds();
        g.draw(|x, y, a| {
            if a > 0.0 {
                put(r.min.x as i32 + x as i32, r.min.y as i32 + y as i32, a.min(1.0));
            }
        });
    });
}

/// A drawing backend that sets text and wide lines itself (see the module
/// documentation) and hands everything else to `DB`.
pub struct Raster<DB>(pub DB);

impl<DB: DrawingBackend> DrawingBackend for Raster<DB> {
    type ErrorType = DB::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let width = style.stroke_width();
        if width <= 1 || style.color().alpha == 0.0 {
            return self.0.draw_path(path, style);
        }
        let mut points = path.into_iter().collect::<Vec<_>>();
        points.dedup();
        // A translucent line would darken where the brush overlaps itself;
        // every wide line here is opaque, so that case keeps plotters' way.
        if style.color().alpha < 1.0 {
            return self.0.draw_path(points, style);
        }
        // A square brush `width` px on a side, dragged along the path as
        // one-pixel lines: no outline to cross itself, no segment too steep.
        let color = style.color();
        let lo = -((width as i32 - 1) / 2);
        for dy in lo..lo + width as i32 {
            for dx in lo..lo + width as i32 {
                self.0.draw_path(points.iter().map(|p| (p.0 + dx, p.1 + dy)), &color)?;
            }
        }
        Ok(())
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.fill_polygon(vert, style)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let face = face(style.style());
        let (width, height) = (text_width(face, style.size(), text), box_height(style.size()));
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let trans = style.transform();
        let (w, h) = self.get_size();
        let mut result = Ok(());
        text_ink(face, style.size(), text, |x, y, a| {
            if result.is_err() {
                return;
            }
            let (x, y) = trans.transform(x + dx, y + dy);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if x >= 0 && x < w as i32 && y >= 0 && y < h as i32 {
                result = self.0.draw_pixel((x, y), BackendColor { alpha: color.alpha * f64::from(a), rgb: color.rgb });
            }
        });
        result
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let face = face(style.style());
        Ok((text_width(face, style.size(), text).max(0) as u32, box_height(style.size()).max(0) as u32))
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.blit_bitmap(pos, size, src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::prelude::*;

    fn boxes(text: &str, size: f64) -> Vec<(char, [i32; 4])> {
        glyph_boxes(face(FontStyle::Normal), size, text)
    }

    /// The columns where `text` at `size` px has ink of coverage over one half.
    fn ink_columns_of(text: &str, size: f64) -> Vec<bool> {
        let mut cols = vec![false; 200];
        let mut cover = std::collections::HashMap::new();
        text_ink(face(FontStyle::Normal), size, text, |x, y, a| *cover.entry((x, y)).or_insert(0.0) += a);
        for ((x, _), a) in cover {
            if a > 0.5 {
                cols[x as usize] = true;
            }
        }
        cols
    }

    /// Runs of inked columns.
    fn runs(cols: &[bool]) -> usize {
        cols.windows(2).filter(|p| p[1] && !p[0]).count() + usize::from(cols[0])
    }

    #[test]
    fn a_full_stop_stands_clear_of_its_neighbours() {
        // plotters drew the '.' of "supply.pressure_bar" inside the 'y': the
        // kerning of "y." and the dropped bearing of '.' add up to 3 px at 14 px.
        for size in [12.0, 13.0, 14.0, 22.0] {
            for text in ["y.", "r.", ".l"] {
                assert_eq!(runs(&ink_columns_of(text, size)), 2, "{text:?} at {size} px");
            }
            let b = boxes("supply.pressure_bar", size);
            let k = b.iter().position(|(c, _)| *c == '.').unwrap();
            let (y, dot) = (b[k - 1].1, b[k].1);
            assert!(dot[0] >= y[1] - 1, "size {size}: the dot {dot:?} inside the y {y:?}");
            // It sits on the baseline, as low as the bottom of the 'l'.
            let l = b.iter().find(|(c, _)| *c == 'l').unwrap().1;
            assert!((dot[3] - l[3]).abs() <= 1, "size {size}: dot {dot:?} against l {l:?}");
        }
    }

    #[test]
    fn digits_are_evenly_spaced() {
        // Tabular digits: the gaps between the ink of '1' and '7' and of '7' and
        // '1' differ by what the two glyphs' bearings differ by, not by the
        // width of a bearing plotters dropped ("1 7").
        let b = boxes("171", 14.0);
        let gap = |i: usize| b[i + 1].1[0] - b[i].1[1];
        assert!((gap(0) - gap(1)).abs() <= 1, "{b:?}");
        // And a glyph's ink starts at its bearing: the '1' is drawn right of its pen.
        assert!(b[0].1[0] >= 1, "{b:?}");
    }

    #[test]
    fn capitals_are_centred_in_the_layout_box() {
        for size in [13.0, 14.0, 24.0] {
            let h = boxes("H", size)[0].1;
            let middle = (h[2] + h[3]) as f64 / 2.0;
            assert!((middle - box_height(size) as f64 / 2.0).abs() <= 1.0, "size {size}: {h:?}");
        }
    }

    /// Columns that hold ink in a rendered RGB buffer of width `w`.
    fn ink_columns(buf: &[u8], w: usize) -> Vec<bool> {
        let mut cols = vec![false; w];
        for (i, px) in buf.chunks(3).enumerate() {
            if px.iter().any(|&v| v < 160) {
                cols[i % w] = true;
            }
        }
        cols
    }

    #[test]
    fn the_backend_draws_the_dot_apart_from_the_letter() {
        crate::report::plot::register_fonts();
        let (w, h) = (40u32, 24u32);
        let mut buf = vec![255u8; (w * h * 3) as usize];
        {
            let root = Raster(BitMapBackend::with_buffer(&mut buf, (w, h))).into_drawing_area();
            let style = TextStyle::from((crate::report::plot::FONT, 14).into_font()).color(&BLACK);
            root.draw_text("y.", &style, (2, 2)).unwrap();
            root.present().unwrap();
        }
        // Two runs of inked columns: the 'y', then the dot.
        let cols = ink_columns(&buf, w as usize);
        let runs = cols.windows(2).filter(|p| p[1] && !p[0]).count() + usize::from(cols[0]);
        assert_eq!(runs, 2, "{cols:?}");
    }

    /// Centre-line points of `path` drawn 2 px wide that are left unpainted.
    fn holes(path: &[(i32, i32)]) -> Vec<(usize, usize)> {
        let (w, h) = (80usize, 80usize);
        let mut buf = vec![255u8; w * h * 3];
        {
            let mut b = Raster(BitMapBackend::with_buffer(&mut buf, (w as u32, h as u32)));
            b.draw_path(path.to_vec(), &Color::stroke_width(&BLACK, 2)).unwrap();
            b.present().unwrap();
        }
        let mut out = Vec::new();
        for s in path.windows(2) {
            for t in 0..=20 {
                let f = t as f64 / 20.0;
                let x = (s[0].0 as f64 + f * (s[1].0 - s[0].0) as f64).round() as usize;
                let y = (s[0].1 as f64 + f * (s[1].1 - s[0].1) as f64).round() as usize;
                if buf[(y * w + x) * 3..][..3].iter().any(|&v| v >= 128) {
                    out.push((x, y));
                }
            }
        }
        out
    }

    #[test]
    fn a_folding_wide_line_has_no_holes() {
        // Paths that fold back on themselves or climb steeply, as a stick-slip
        // ripple or a decimated trace does: plotters' single outline polygon
        // left 11, 16 and 5 centre-line points of these unpainted.
        let zigzag: Vec<(i32, i32)> = (0..12).map(|k| (5 + 4 * k, if k % 2 == 0 { 5 } else { 55 })).collect();
        let steep: Vec<(i32, i32)> = (0..30).map(|k| (5 + k, 5 + (k * k) % 70)).collect();
        let ripple: Vec<(i32, i32)> = (0..60).map(|k| (5 + k, (40.0 + 20.0 * (k as f64 * 2.5).sin()) as i32)).collect();
        for path in [zigzag, steep, ripple] {
            assert_eq!(holes(&path), vec![], "{path:?}");
        }
    }
}
