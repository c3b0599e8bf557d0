//! The vision side: images into model inputs (`image`; decoding is `umgf_core::vision::decode`), the
//! EfficientNet-Lite0 image encoder (`efficientnet`), the TF.js graph interpreter (`tfjs`: model,
//! plan, ops) and the COCO detector it runs (`detector`, classes in `coco`).
pub mod detector;
pub mod efficientnet;
pub mod image;
pub mod tfjs;
pub mod workers;

pub use umgf_core::vision::{coco, decode};
