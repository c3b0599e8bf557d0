//! The training curve as a PNG: train loss (top panel, blue) and dev F1 (bottom panel, orange) per
//! epoch, the kept epoch marked by a green line, axis ranges written in a tiny built-in digit font
//! (no font files, no plotting dependency).
use std::path::Path;

use image::{Rgb, RgbImage};

use super::train::EpochLog;
use crate::{Error, Result};

const WIDTH: u32 = 640;
const PANEL: u32 = 200;
const MARGIN: u32 = 40;
const BLUE: Rgb<u8> = Rgb([31, 119, 180]);
const ORANGE: Rgb<u8> = Rgb([255, 127, 14]);
const GREEN: Rgb<u8> = Rgb([44, 160, 44]);
const GREY: Rgb<u8> = Rgb([200, 200, 200]);
const BLACK: Rgb<u8> = Rgb([0, 0, 0]);

/// Draws the curve of `epochs` (with `best_epoch` marked) and writes it to `path` as PNG.
pub(crate) fn write_png(path: &Path, epochs: &[EpochLog], best_epoch: usize) -> Result<()> {
    let height = 2 * PANEL + 3 * MARGIN;
    let mut img = RgbImage::from_pixel(WIDTH, height, Rgb([255, 255, 255]));
    let loss: Vec<f64> = epochs.iter().map(|e| e.train_loss).collect();
    let f1: Vec<f64> = epochs.iter().map(|e| e.dev_f1).collect();
    panel(&mut img, MARGIN, &loss, BLUE, best_epoch);
    panel(&mut img, 2 * MARGIN + PANEL, &f1, ORANGE, best_epoch);
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| Error::Io {
            path: path.to_owned(),
            source: std::io::Error::other(e),
        })
}

/// One panel at height `top`: a frame, horizontal grid lines, the series, its min and max written at
/// the left, the epoch count at the bottom right.
fn panel(img: &mut RgbImage, top: u32, values: &[f64], colour: Rgb<u8>, best_epoch: usize) {
    let (left, right) = (MARGIN, WIDTH - MARGIN / 2);
    let bottom = top + PANEL;
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (lo.min(0.0), lo.max(0.0) + 1.0)
    };
    for k in 0..=4 {
        let y = top + k * PANEL / 4;
        line(img, (left, y), (right, y), GREY);
    }
    line(img, (left, top), (left, bottom), BLACK);
    line(img, (left, bottom), (right, bottom), BLACK);
    let n = values.len().max(2) - 1;
    let x_of = |i: usize| left + (i as u32) * (right - left) / n as u32;
    let y_of = |v: f64| bottom - ((v - lo) / (hi - lo) * f64::from(PANEL)).round() as u32;
    if (1..=values.len()).contains(&best_epoch) {
        let x = x_of(best_epoch - 1);
        line(img, (x, top), (x, bottom), GREEN);
    }
    for (i, pair) in values.windows(2).enumerate() {
        line(
            img,
            (x_of(i), y_of(pair[0])),
            (x_of(i + 1), y_of(pair[1])),
            colour,
        );
    }
    for (i, &v) in values.iter().enumerate() {
        let (x, y) = (x_of(i), y_of(v));
        for dx in 0..5 {
            for dy in 0..5 {
                put(img, x + dx, y + dy, -2, -2, colour);
            }
        }
    }
    text(img, 2, top, &format!("{hi:.2}"));
    text(img, 2, bottom - 10, &format!("{lo:.2}"));
    text(img, right - 20, bottom + 6, &values.len().to_string());
}

fn put(img: &mut RgbImage, x: u32, y: u32, dx: i32, dy: i32, colour: Rgb<u8>) {
    let (x, y) = (x as i64 + i64::from(dx), y as i64 + i64::from(dy));
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, colour);
    }
}

/// Bresenham's line.
fn line(img: &mut RgbImage, from: (u32, u32), to: (u32, u32), colour: Rgb<u8>) {
    let (mut x, mut y) = (i64::from(from.0), i64::from(from.1));
    let (x1, y1) = (i64::from(to.0), i64::from(to.1));
    let (dx, dy) = ((x1 - x).abs(), -(y1 - y).abs());
    let (sx, sy) = (if x < x1 { 1 } else { -1 }, if y < y1 { 1 } else { -1 });
    let mut err = dx + dy;
    loop {
        put(img, x as u32, y as u32, 0, 0, colour);
        if x == x1 && y == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

/// Digits, '.' and '-' in a 3x5 font, drawn at 2x.
fn text(img: &mut RgbImage, x: u32, y: u32, s: &str) {
    const GLYPHS: [(char, [u8; 5]); 12] = [
        ('0', [7, 5, 5, 5, 7]),
        ('1', [2, 6, 2, 2, 7]),
        ('2', [7, 1, 7, 4, 7]),
        ('3', [7, 1, 7, 1, 7]),
        ('4', [5, 5, 7, 1, 1]),
        ('5', [7, 4, 7, 1, 7]),
        ('6', [7, 4, 7, 5, 7]),
        ('7', [7, 1, 1, 1, 1]),
        ('8', [7, 5, 7, 5, 7]),
        ('9', [7, 5, 7, 1, 7]),
        ('.', [0, 0, 0, 0, 2]),
        ('-', [0, 0, 7, 0, 0]),
    ];
    for (k, c) in s.chars().enumerate() {
        let Some((_, rows)) = GLYPHS.iter().find(|(g, _)| *g == c) else {
            continue;
        };
        for (row, bits) in rows.iter().enumerate() {
            for col in 0..3u32 {
                if bits & (4 >> col) != 0 {
                    let (px, py) = (x + k as u32 * 8 + col * 2, y + row as u32 * 2);
                    for (ox, oy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        put(img, px + ox, py + oy, 0, 0, BLACK);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png_of_the_expected_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curve.png");
        let epochs: Vec<EpochLog> = (1..=4)
            .map(|e| EpochLog {
                epoch: e,
                train_loss: 10.0 / e as f64,
                dev_f1: 50.0 + e as f64,
                seconds: 1.0,
            })
            .collect();
        write_png(&path, &epochs, 3).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (WIDTH, 2 * PANEL + 3 * MARGIN));
        // The series were drawn: some blue and some orange pixels.
        assert!(img.pixels().any(|p| *p == BLUE));
        assert!(img.pixels().any(|p| *p == ORANGE));
        assert!(img.pixels().any(|p| *p == GREEN));
        // A single epoch still draws (no division by zero).
        write_png(&path, &epochs[..1], 1).unwrap();
    }
}
