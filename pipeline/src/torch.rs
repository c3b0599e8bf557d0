//! libtorch (through tch): device choice and the set-up check (`doctor`) that proves the installed
//! libtorch works and the installed weights load.
use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// The GPU when libtorch sees one, else the CPU.
pub fn default_device() -> Device {
    Device::cuda_if_available()
}

/// What libtorch reports about itself, for `doctor` and run manifests.
#[derive(Debug, serde::Serialize)]
pub struct TorchInfo {
    pub cuda_available: bool,
    pub cuda_devices: i64,
    pub cpu_threads: i32,
    /// A 64x64 matmul on the default device agreed with the same product computed by hand.
    pub matmul_ok: bool,
}

pub fn info() -> TorchInfo {
    let device = default_device();
    let a = Tensor::arange(64 * 64, (Kind::Float, device)).reshape([64, 64]) / 4096.0;
    let eye = Tensor::eye(64, (Kind::Float, device));
    let matmul_ok = a.matmul(&eye).allclose(&a, 1e-6, 1e-6, false);
    TorchInfo {
        cuda_available: tch::Cuda::is_available(),
        cuda_devices: tch::Cuda::device_count(),
        cpu_threads: tch::get_num_threads(),
        matmul_ok,
    }
}

/// Summary of a safetensors file as libtorch reads it.
#[derive(Debug, serde::Serialize)]
pub struct WeightsInfo {
    pub tensors: usize,
    pub parameters: i64,
    /// Tensors with a NaN or infinite value (a bad conversion shows up here).
    pub non_finite: Vec<String>,
}

pub fn inspect_safetensors(path: &Path) -> Result<WeightsInfo> {
    let tensors = Tensor::read_safetensors(path).map_err(|e| {
        Error::Config(format!(
            "{}: cannot read as safetensors: {e}",
            path.display()
        ))
    })?;
    let mut parameters = 0;
    let mut non_finite = Vec::new();
    for (name, tensor) in &tensors {
        parameters += tensor.numel() as i64;
        if tensor.is_floating_point() {
            let finite = tensor.isfinite().all().int64_value(&[]) == 1;
            if !finite {
                non_finite.push(name.clone());
            }
        }
    }
    Ok(WeightsInfo {
        tensors: tensors.len(),
        parameters,
        non_finite,
    })
}
