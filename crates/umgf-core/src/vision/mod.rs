//! Images without a model: decoding and the COCO class names the detector predicts.
pub mod coco;
pub mod decode;
