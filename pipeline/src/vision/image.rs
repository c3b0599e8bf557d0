//! Images into model inputs. Built so far: PNG and JPEG decoding and the ImageNet-style crop. Not built
//! yet (issue 4): GIF/WebP, EXIF orientation, CMYK, huge-image downscaling, the bad-image catalogue.
use std::path::Path;

use image::imageops::FilterType;
use image::{RgbImage, imageops};
use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// Decodes an image file to 8-bit RGB.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let image = image::open(path)
        .map_err(|e| Error::Config(format!("{}: cannot decode image: {e}", path.display())))?;
    Ok(image.to_rgb8())
}

/// The centre `side`x`side` crop after scaling the shorter side to `side * 8 / 7` (256 for 224, the
/// usual ImageNet evaluation), as a [3, side, side] float tensor of RGB values in 0..=255.
pub fn center_crop(image: &RgbImage, side: u32) -> Tensor {
    let short = side * 8 / 7;
    let (w, h) = image.dimensions();
    let scale = f64::from(short) / f64::from(w.min(h));
    let (nw, nh) = (
        ((f64::from(w) * scale).round() as u32).max(side),
        ((f64::from(h) * scale).round() as u32).max(side),
    );
    let resized = imageops::resize(image, nw, nh, FilterType::Triangle);
    let crop =
        imageops::crop_imm(&resized, (nw - side) / 2, (nh - side) / 2, side, side).to_image();
    Tensor::from_slice(crop.as_raw())
        .view([i64::from(side), i64::from(side), 3])
        .permute([2, 0, 1])
        .to_kind(Kind::Float)
}
