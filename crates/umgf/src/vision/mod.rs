//! The vision side: image decoding (`image`), the EfficientNet-Lite0 image encoder (`efficientnet`),
//! TF.js graph models (`tfjs` loads them, `graph` runs them) and the COCO detector built on them
//! (`detector`, classes in `coco`).
pub mod coco;
pub mod detector;
pub mod efficientnet;
pub mod graph;
pub mod image;
pub mod tfjs;
pub mod workers;
