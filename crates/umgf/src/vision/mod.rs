//! The vision side: images into model inputs (`image`; decoding is `umgf_core::vision::decode`), the EfficientNet-Lite0 image encoder (`efficientnet`),
//! TF.js graph models (`tfjs` loads them, `graph` runs them) and the COCO detector built on them
//! (`detector`, classes in `coco`).
pub mod detector;
pub mod efficientnet;
pub mod graph;
pub mod image;
pub mod tfjs;
pub mod workers;

pub use umgf_core::vision::{coco, decode};
