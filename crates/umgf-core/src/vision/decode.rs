//! Image decoding that never fails the run: a bad file is a bad image for its tweet, which then has
//! no visual nodes. (The crops the image models take are `umgf::vision::image`.)
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
