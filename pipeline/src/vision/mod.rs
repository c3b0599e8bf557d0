//! The vision side. Built so far: image decoding (`image`), the EfficientNet-Lite0 image encoder
//! (`efficientnet`), and loading TF.js graph models (`tfjs`). Not built yet (issue 4): executing the
//! detector graph, grounding, visual features.
pub mod efficientnet;
pub mod image;
pub mod tfjs;
