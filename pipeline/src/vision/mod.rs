//! The vision side. Built so far: the EfficientNet-Lite0 image encoder (`efficientnet`) and PNG/JPEG
//! decoding to its input (`image`). Not built yet (issue 4): robust decoding of every format, the COCO
//! detector, grounding, visual features, PyTorch parity of the encoder.
pub mod efficientnet;
pub mod image;
