//! Decoded images into model inputs: the crops the image models expect. Decoding itself (never an
//! error of the run) lives in `umgf_core::vision::decode` and is re-exported here.
use image::RgbImage;
use tch::{Kind, Tensor};

use super::detector::BBox;

use crate::torch::TorchResult;
pub use umgf_core::vision::decode::{BadImage, MAX_SIDE, load_rgb};

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
        Some((x, y, w, h)) => pixels
            .f_narrow(2, i64::from(y), i64::from(h))
            .torch()?
            .f_narrow(3, i64::from(x), i64::from(w))
            .torch()?,
        None => pixels.shallow_clone(),
    };
    let (h, w) = match region.size()[..] {
        [_, _, h, w] => (h, w),
        _ => crate::bail!(Internal, "crop: expected [1, 3, H, W] pixels, got {size:?}"),
    };
    let (side, short) = (i64::from(side), i64::from(side * 8 / 7));
    let scale = short as f64 / h.min(w) as f64;
    let (nh, nw) = (
        ((h as f64 * scale).round() as i64).max(side),
        ((w as f64 * scale).round() as i64).max(side),
    );
    let resized = region
        .f_internal_upsample_bilinear2d_aa([nh, nw], false, None, None)
        .torch()?;
    resized
        .f_narrow(2, (nh - side) / 2, side)
        .torch()?
        .f_narrow(3, (nw - side) / 2, side)
        .torch()?
        .f_squeeze_dim(0)
        .torch()?
        .f_to_kind(Kind::Float)
        .torch()
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
