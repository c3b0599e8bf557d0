//! The vision side. Built so far: the EfficientNet-Lite0 image encoder (`efficientnet`). Not built yet:
//! image decoding, the COCO detector, grounding, visual features (issue 4).
pub mod efficientnet;
