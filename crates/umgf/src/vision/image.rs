//! Images into model inputs: decoding that never fails the run (a bad file is a bad image for its
//! tweet, which then has no visual nodes) and the crop the image models expect.
//!
//! JPEG, PNG, GIF (first frame) and WebP; EXIF orientation applied; grayscale, palette and alpha
//! images become RGB; images with a side over [`MAX_SIDE`] are downscaled after decoding; a header
//! that claims an enormous image is refused before anything is allocated.
use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};
use tch::{Kind, Tensor};

use super::detector::BBox;

/// Longest side kept after decoding: detectors and crops never need more.
pub const MAX_SIDE: u32 = 1600;
/// Largest decode buffer allowed (a 20000x20000 header would ask for 1.2 GB).
const MAX_DECODE_BYTES: u64 = 256 << 20;
/// Largest side a decoder may even start on.
const MAX_DECODE_SIDE: u32 = 16384;

/// Why an image could not be used: recorded for its tweet and counted, never an error of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadImage(pub String);

impl fmt::Display for BadImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decodes an image file to 8-bit RGB, upright, at most [`MAX_SIDE`] on its longer side.
pub fn load_rgb(path: &Path) -> Result<RgbImage, BadImage> {
    let bad = |what: &str, e: &dyn fmt::Display| BadImage(format!("{what}: {e}"));
    let file = File::open(path).map_err(|e| bad("cannot open", &e))?;
    if file.metadata().is_ok_and(|m| m.len() == 0) {
        return Err(BadImage("empty file (0 bytes)".to_owned()));
    }
    // The format comes from the content alone: a web page saved as .jpg is not a JPEG.
    let mut reader = ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| bad("cannot read", &e))?;
    if reader.format().is_none() {
        return Err(BadImage(
            "not an image (no known format signature)".to_owned(),
        ));
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits.max_image_width = Some(MAX_DECODE_SIDE);
    limits.max_image_height = Some(MAX_DECODE_SIDE);
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| bad("cannot decode", &e))?;
    let orientation = decoder.orientation().ok();
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| bad("cannot decode", &e))?;
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    if image.width() == 0 || image.height() == 0 {
        return Err(BadImage("empty image (0 pixels)".to_owned()));
    }
    if image.width().max(image.height()) > MAX_SIDE {
        image = image.resize(MAX_SIDE, MAX_SIDE, FilterType::Triangle);
    }
    Ok(image.to_rgb8())
}

/// Whole-pixel bounds (x, y, width, height) covering a box, clamped to a `width` x `height` image,
/// at least 1x1.
pub fn box_bounds(width: u32, height: u32, b: &BBox) -> (u32, u32, u32, u32) {
    let x1 = (b.x1.floor().max(0.0) as u32).min(width - 1);
    let y1 = (b.y1.floor().max(0.0) as u32).min(height - 1);
    let x2 = (b.x2.ceil().max(0.0) as u32).clamp(x1 + 1, width);
    let y2 = (b.y2.ceil().max(0.0) as u32).clamp(y1 + 1, height);
    (x1, y1, x2 - x1, y2 - y1)
}

/// An image's pixels as a uint8 [1, 3, H, W] tensor, channels-last in memory (one copy).
pub fn to_tensor(image: &RgbImage) -> Tensor {
    let (w, h) = image.dimensions();
    Tensor::from_slice(image.as_raw())
        .view([1, i64::from(h), i64::from(w), 3])
        .permute([0, 3, 1, 2])
}

/// The centre `side`x`side` crop of a region of `pixels` ([`to_tensor`]) after scaling the region's
/// shorter side to `side * 8 / 7` (256 for 224, the usual ImageNet evaluation) with antialiased
/// bilinear filtering (PIL's), as a [3, side, side] float tensor of RGB values in 0..=255. `None`:
/// the whole image.
pub fn center_crop_region(
    pixels: &Tensor,
    region: Option<(u32, u32, u32, u32)>,
    side: u32,
) -> crate::Result<Tensor> {
    let size = pixels.size();
    let region = match region {
        Some((x, y, w, h)) => pixels.f_narrow(2, i64::from(y), i64::from(h))?.f_narrow(
            3,
            i64::from(x),
            i64::from(w),
        )?,
        None => pixels.shallow_clone(),
    };
    let (h, w) = match region.size()[..] {
        [_, _, h, w] => (h, w),
        _ => crate::bail!(Config, "crop: expected [1, 3, H, W] pixels, got {size:?}"),
    };
    let (side, short) = (i64::from(side), i64::from(side * 8 / 7));
    let scale = short as f64 / h.min(w) as f64;
    let (nh, nw) = (
        ((h as f64 * scale).round() as i64).max(side),
        ((w as f64 * scale).round() as i64).max(side),
    );
    let resized = region.f_internal_upsample_bilinear2d_aa([nh, nw], false, None, None)?;
    Ok(resized
        .f_narrow(2, (nh - side) / 2, side)?
        .f_narrow(3, (nw - side) / 2, side)?
        .f_squeeze_dim(0)?
        .f_to_kind(Kind::Float)?)
}

/// The centre `side`x`side` crop of a whole image (see [`center_crop_region`]).
pub fn center_crop(image: &RgbImage, side: u32) -> crate::Result<Tensor> {
    center_crop_region(&to_tensor(image), None, side)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_cover_the_box_in_whole_pixels_and_stay_inside() {
        let c = |x1, y1, x2, y2| {
            let (_, _, w, h) = box_bounds(100, 50, &BBox { x1, y1, x2, y2 });
            (w, h)
        };
        assert_eq!(c(10.5, 5.2, 20.1, 9.0), (11, 4));
        assert_eq!(c(-5.0, -5.0, 500.0, 500.0), (100, 50));
        // A box outside or empty still gives one pixel.
        assert_eq!(c(120.0, 60.0, 130.0, 70.0), (1, 1));
        assert_eq!(c(10.0, 10.0, 10.0, 10.0), (1, 1));
    }
}
