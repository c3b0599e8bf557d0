//! A chart as a list of marks on a canvas, drawn either as SVG (inline in the HTML report) or as a
//! PNG (train's `curve.png`), so that both show one layout. The PNG's text is set in the DejaVu Sans
//! subset the crate carries (`assets/README.md`), so it looks the same on a machine without fonts;
//! the SVG names the same family and lets the browser fall back to its sans-serif.
//!
//! Coordinates are CSS pixels with the origin at the top left; `to_png` multiplies them by a scale.
use std::fmt::Write as _;
use std::path::Path;
use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::{Rgb, RgbImage};

use super::escape;
use crate::{IoContext, Result};

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-subset.ttf");
const FONT_FAMILY: &str = "DejaVu Sans, sans-serif";
/// Dashed lines: on and off lengths, in canvas pixels.
const DASH: (f64, f64) = (5.0, 3.0);

/// A point on the canvas: (x, y).
pub type Point = (f64, f64);

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Colour(pub u8, pub u8, pub u8);

impl Colour {
    pub const BLACK: Colour = Colour(0, 0, 0);

    fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// Which point of a text its `at` names, along the text's own direction.
#[derive(Clone, Copy, Debug)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

/// One thing drawn.
#[derive(Clone, Debug)]
pub enum Mark {
    Line {
        from: Point,
        to: Point,
        colour: Colour,
        width: f64,
        dashed: bool,
    },
    Polyline {
        points: Vec<Point>,
        colour: Colour,
        width: f64,
    },
    /// A filled circle; `title` is its tooltip in the SVG.
    Dot {
        at: Point,
        radius: f64,
        colour: Colour,
        title: String,
    },
    /// A rectangle's outline, one pixel wide.
    Frame {
        corner: Point,
        size: (f64, f64),
        colour: Colour,
    },
    /// Black text with its baseline through `at`; `rotated` turns it a quarter anticlockwise, to be
    /// read upwards (a y-axis title).
    Text {
        at: Point,
        text: String,
        size: f64,
        anchor: Anchor,
        rotated: bool,
    },
}

/// A drawing: its size, what it shows in words (the SVG's accessible name) and its marks in order.
#[derive(Clone, Debug)]
pub struct Canvas {
    pub width: f64,
    pub height: f64,
    pub label: String,
    pub marks: Vec<Mark>,
}

fn font() -> &'static FontRef<'static> {
    static PARSED: OnceLock<FontRef<'static>> = OnceLock::new();
    PARSED.get_or_init(|| {
        #[allow(clippy::expect_used)]
        FontRef::try_from_slice(FONT).expect("the carried font parses (a unit test reads it)")
    })
}

/// The glyph scale whose em is `size` pixels, as CSS's `font-size` means it.
fn px_scale(size: f64) -> PxScale {
    let font = font();
    let em = font.units_per_em().unwrap_or(2048.0);
    PxScale::from((size * f64::from(font.height_unscaled()) / f64::from(em)) as f32)
}

/// How wide `text` is at font size `size`, in the same pixels.
pub fn text_width(text: &str, size: f64) -> f64 {
    let font = font().as_scaled(px_scale(size));
    let mut width = 0.0;
    let mut previous = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = previous {
            width += font.kern(p, id);
        }
        width += font.h_advance(id);
        previous = Some(id);
    }
    f64::from(width)
}

impl Canvas {
    pub fn new(width: f64, height: f64, label: impl Into<String>) -> Canvas {
        Canvas {
            width,
            height,
            label: label.into(),
            marks: Vec::new(),
        }
    }

    pub fn push(&mut self, mark: Mark) {
        self.marks.push(mark);
    }

    pub fn to_svg(&self) -> String {
        let (w, h) = (self.width, self.height);
        let mut svg = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="{FONT_FAMILY}" role="img" aria-label="{}">"#,
            escape(&self.label)
        );
        for mark in &self.marks {
            let _ = match mark {
                Mark::Line {
                    from,
                    to,
                    colour,
                    width,
                    dashed,
                } => {
                    let dash = if *dashed {
                        format!(r#" stroke-dasharray="{} {}""#, DASH.0, DASH.1)
                    } else {
                        String::new()
                    };
                    write!(
                        svg,
                        r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="{width}"{dash}/>"#,
                        from.0,
                        from.1,
                        to.0,
                        to.1,
                        colour.hex()
                    )
                }
                Mark::Polyline {
                    points,
                    colour,
                    width,
                } => {
                    let points: Vec<String> = points
                        .iter()
                        .map(|(x, y)| format!("{x:.1},{y:.1}"))
                        .collect();
                    write!(
                        svg,
                        r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="{width}"/>"#,
                        points.join(" "),
                        colour.hex()
                    )
                }
                Mark::Dot {
                    at,
                    radius,
                    colour,
                    title,
                } => write!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="{radius}" fill="{}"><title>{}</title></circle>"#,
                    at.0,
                    at.1,
                    colour.hex(),
                    escape(title)
                ),
                Mark::Frame {
                    corner,
                    size,
                    colour,
                } => write!(
                    svg,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="{}"/>"#,
                    corner.0,
                    corner.1,
                    size.0,
                    size.1,
                    colour.hex()
                ),
                Mark::Text {
                    at,
                    text,
                    size,
                    anchor,
                    rotated,
                } => {
                    let anchor = match anchor {
                        Anchor::Start => "start",
                        Anchor::Middle => "middle",
                        Anchor::End => "end",
                    };
                    let place = if *rotated {
                        format!(
                            r#"transform="translate({:.1} {:.1}) rotate(-90)""#,
                            at.0, at.1
                        )
                    } else {
                        format!(r#"x="{:.1}" y="{:.1}""#, at.0, at.1)
                    };
                    write!(
                        svg,
                        r#"<text {place} text-anchor="{anchor}" font-size="{size}">{}</text>"#,
                        escape(text)
                    )
                }
            };
        }
        svg.push_str("</svg>");
        svg
    }

    /// The drawing as an image `scale` times the canvas's size, antialiased, on white.
    pub fn to_png(&self, scale: f64) -> RgbImage {
        let mut raster = Raster {
            image: RgbImage::from_pixel(
                (self.width * scale).ceil() as u32,
                (self.height * scale).ceil() as u32,
                Rgb([255, 255, 255]),
            ),
            scale,
        };
        for mark in &self.marks {
            match mark {
                Mark::Line {
                    from,
                    to,
                    colour,
                    width,
                    dashed,
                } => raster.stroke(&[*from, *to], *colour, *width, *dashed),
                Mark::Polyline {
                    points,
                    colour,
                    width,
                } => raster.stroke(points, *colour, *width, false),
                Mark::Dot {
                    at, radius, colour, ..
                } => raster.dot(*at, *radius, *colour),
                Mark::Frame {
                    corner: (x, y),
                    size: (w, h),
                    colour,
                } => raster.stroke(
                    &[(*x, *y), (x + w, *y), (x + w, y + h), (*x, y + h), (*x, *y)],
                    *colour,
                    1.0,
                    false,
                ),
                Mark::Text {
                    at,
                    text,
                    size,
                    anchor,
                    rotated,
                } => raster.text(*at, text, *size, *anchor, *rotated),
            }
        }
        raster.image
    }

    /// Writes `to_png(scale)` to `path`.
    pub fn write_png(&self, path: &Path, scale: f64) -> Result<()> {
        self.to_png(scale)
            .save_with_format(path, image::ImageFormat::Png)
            .map_err(std::io::Error::other)
            .at(path)
    }
}

/// The PNG being drawn: canvas coordinates times `scale` are pixel coordinates, a pixel's centre at
/// +0.5.
struct Raster {
    image: RgbImage,
    scale: f64,
}

impl Raster {
    /// Mixes `colour` into pixel (x, y) by `coverage` (0 to 1); outside the image, nothing.
    fn blend(&mut self, x: i64, y: i64, colour: Colour, coverage: f64) {
        let (Ok(x), Ok(y)) = (u32::try_from(x), u32::try_from(y)) else {
            return;
        };
        if coverage <= 0.0 || x >= self.image.width() || y >= self.image.height() {
            return;
        }
        let a = coverage.min(1.0);
        let pixel = self.image.get_pixel_mut(x, y);
        for (old, new) in pixel.0.iter_mut().zip([colour.0, colour.1, colour.2]) {
            *old = (f64::from(*old) * (1.0 - a) + f64::from(new) * a).round() as u8;
        }
    }

    /// The polyline through `points`, `width` canvas pixels wide: each pixel is covered by how far
    /// its centre lies inside the nearest segment's half-width (one pixel of antialiasing), once.
    fn stroke(&mut self, points: &[Point], colour: Colour, width: f64, dashed: bool) {
        let s = self.scale;
        let points: Vec<Point> = points.iter().map(|(x, y)| (x * s, y * s)).collect();
        let half = (width * s / 2.0).max(0.5);
        let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for (x, y) in &points {
            (x0, y0, x1, y1) = (x0.min(*x), y0.min(*y), x1.max(*x), y1.max(*y));
        }
        let pad = half + 1.0;
        let (dash_on, dash_period) = (DASH.0 * s, (DASH.0 + DASH.1) * s);
        for py in (y0 - pad).floor() as i64..=(y1 + pad).ceil() as i64 {
            for px in (x0 - pad).floor() as i64..=(x1 + pad).ceil() as i64 {
                let centre = (px as f64 + 0.5, py as f64 + 0.5);
                let mut distance = f64::MAX;
                let mut along_path = 0.0;
                let mut walked = 0.0;
                for pair in points.windows(2) {
                    let ((d, along), length) = nearest_on_segment(centre, pair[0], pair[1]);
                    if d < distance {
                        distance = d;
                        along_path = walked + along;
                    }
                    walked += length;
                }
                if dashed && along_path % dash_period > dash_on {
                    continue;
                }
                self.blend(px, py, colour, half + 0.5 - distance);
            }
        }
    }

    fn dot(&mut self, (cx, cy): Point, radius: f64, colour: Colour) {
        let (cx, cy, r) = (cx * self.scale, cy * self.scale, radius * self.scale);
        for py in (cy - r - 1.0).floor() as i64..=(cy + r + 1.0).ceil() as i64 {
            for px in (cx - r - 1.0).floor() as i64..=(cx + r + 1.0).ceil() as i64 {
                let d = (px as f64 + 0.5 - cx).hypot(py as f64 + 0.5 - cy);
                self.blend(px, py, colour, r + 0.5 - d);
            }
        }
    }

    fn text(&mut self, (x, y): Point, text: &str, size: f64, anchor: Anchor, rotated: bool) {
        let s = self.scale;
        let (x, y, size) = (x * s, y * s, size * s);
        let scale = px_scale(size);
        let font = font().as_scaled(scale);
        let width = text_width(text, size);
        // `u` runs along the text, `v` down from its baseline; both from the anchor.
        let mut caret = match anchor {
            Anchor::Start => 0.0,
            Anchor::Middle => -width / 2.0,
            Anchor::End => -width,
        } as f32;
        let mut previous = None;
        let mut coverage = Vec::new();
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(p) = previous {
                caret += font.kern(p, id);
            }
            let glyph = id.with_scale_and_position(scale, ab_glyph::point(caret, 0.0));
            if let Some(outline) = font.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                outline.draw(|gx, gy, c| {
                    let u = f64::from(bounds.min.x) + f64::from(gx);
                    let v = f64::from(bounds.min.y) + f64::from(gy);
                    coverage.push((u, v, f64::from(c)));
                });
            }
            caret += font.h_advance(id);
            previous = Some(id);
        }
        for (u, v, c) in coverage {
            // SVG's rotate(-90) takes (u, v) to (v, -u); the cell [u, u+1) lands on row -u-1.
            let (px, py) = if rotated {
                (x + v, y - u - 1.0)
            } else {
                (x + u, y + v)
            };
            self.blend(px.round() as i64, py.round() as i64, Colour::BLACK, c);
        }
    }
}

/// The distance from `p` to the segment `a`-`b` and how far along it the nearest point lies, and
/// the segment's length.
fn nearest_on_segment(p: Point, a: Point, b: Point) -> ((f64, f64), f64) {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length = dx.hypot(dy);
    let t = if length > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / (length * length)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let nearest = (a.0 + t * dx, a.1 + t * dy);
    (
        ((p.0 - nearest.0).hypot(p.1 - nearest.1), t * length),
        length,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dark(image: &RgbImage, x0: u32, y0: u32, x1: u32, y1: u32) -> usize {
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| image.get_pixel(x, y).0.iter().all(|c| *c < 100))
            .count()
    }

    #[test]
    fn the_carried_font_sets_text_of_a_sensible_width() {
        let w = text_width("epoch", 12.0);
        assert!((20.0..50.0).contains(&w), "{w}");
        assert!(text_width("train loss", 12.0) > w);
        assert!((text_width("epoch", 24.0) - 2.0 * w).abs() < 0.5);
    }

    #[test]
    fn text_lands_where_the_anchor_says_upright_and_rotated() {
        let mut canvas = Canvas::new(200.0, 200.0, "test");
        canvas.push(Mark::Text {
            at: (100.0, 40.0),
            text: "Mid".into(),
            size: 20.0,
            anchor: Anchor::Middle,
            rotated: false,
        });
        canvas.push(Mark::Text {
            at: (40.0, 150.0),
            text: "UH".into(),
            size: 20.0,
            anchor: Anchor::Start,
            rotated: true,
        });
        let image = canvas.to_png(1.0);
        // Centred on x = 100 above the baseline; nothing left of 70 or right of 130 on those rows.
        assert!(dark(&image, 85, 20, 100, 40) > 20 && dark(&image, 100, 20, 115, 40) > 20);
        assert_eq!(
            dark(&image, 0, 20, 70, 40) + dark(&image, 130, 20, 200, 40),
            0
        );
        // Read upwards from (40, 150): left of x = 40 (no descenders), above y = 150.
        assert!(dark(&image, 22, 120, 40, 150) > 20);
        assert_eq!(dark(&image, 41, 100, 200, 200), 0);
        assert_eq!(dark(&image, 0, 151, 200, 200), 0);
    }

    #[test]
    fn lines_dashes_and_dots_cover_their_pixels() {
        let red = Colour(214, 39, 40);
        let mut canvas = Canvas::new(100.0, 40.0, "test");
        canvas.push(Mark::Line {
            from: (0.0, 10.0),
            to: (100.0, 10.0),
            colour: red,
            width: 2.0,
            dashed: false,
        });
        canvas.push(Mark::Line {
            from: (0.0, 30.0),
            to: (100.0, 30.0),
            colour: red,
            width: 2.0,
            dashed: true,
        });
        let image = canvas.to_png(2.0);
        assert_eq!(image.dimensions(), (200, 80));
        let on = |y| {
            (0..200)
                .filter(|&x| *image.get_pixel(x, y) == Rgb([214, 39, 40]))
                .count()
        };
        assert_eq!(on(20), 200, "solid");
        let dashed = on(60);
        assert!((110..140).contains(&dashed), "5 on, 3 off: {dashed}");
        assert_eq!(*image.get_pixel(100, 40), Rgb([255, 255, 255]));
        assert!(canvas.to_svg().contains(r#"stroke-dasharray="5 3""#));
    }
}
