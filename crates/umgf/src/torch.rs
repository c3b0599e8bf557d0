//! libtorch (through tch): device choice and the set-up check (`doctor`) that proves the installed
//! libtorch works and the installed weights load.
use std::collections::HashMap;
use std::path::Path;

use tch::nn;
use tch::{Device, Kind, Tensor};

use crate::{Error, Result};

/// Turns a libtorch error into the library's [`Error::Torch`]: `tensor.f_matmul(&w).torch()?`. (The
/// error type lives in `umgf-core`, which does not link libtorch, so `?` cannot convert on its own.)
pub trait TorchResult<T> {
    fn torch(self) -> Result<T>;
}

impl<T> TorchResult<T> for std::result::Result<T, tch::TchError> {
    fn torch(self) -> Result<T> {
        self.map_err(|e| Error::Torch(Box::new(e)))
    }
}

/// The GPU when libtorch sees one, else the CPU.
pub fn default_device() -> Device {
    Device::cuda_if_available()
}

/// The CPUs this process may use: what Slurm gave the task (`SLURM_CPUS_PER_TASK`, which without a
/// cgroup or affinity plugin nothing else enforces), else what the OS lets it run on.
pub fn cpu_budget() -> usize {
    slurm_cpus().unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

fn slurm_cpus() -> Option<usize> {
    let cpus = std::env::var("SLURM_CPUS_PER_TASK").ok()?;
    cpus.trim().parse().ok().filter(|&n| n > 0)
}

/// In a Slurm task, libtorch's threads follow the task's CPUs: by default it starts one per core of
/// the node, and tasks sharing a node would each take all of them.
pub fn use_task_cpus() {
    if let Some(cpus) = slurm_cpus() {
        tch::set_num_threads(i32::try_from(cpus).unwrap_or(i32::MAX));
    }
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
    let tensors = Tensor::read_safetensors(path)
        .map_err(|e| Error::model_file(path, format!("cannot read as safetensors: {e}")))?;
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

/// Copies a safetensors checkpoint into the variables of `vs` whose names start with `prefix` (e.g.
/// "encoder."), by name: variable `<prefix><name>` takes tensor `<name>` (or `bert.<name>`: HF BertFor*
/// checkpoints). Tensors the model does not use (a pooler, position_ids, batch-norm counters) are
/// ignored; a missing tensor or a shape mismatch is an error. Unlike `VarStore::load`, this does not
/// guess the format from the file extension (stored blobs have none).
pub fn load_safetensors(vs: &nn::VarStore, prefix: &str, path: &Path) -> Result<usize> {
    let tensors = Tensor::read_safetensors(path)
        .map_err(|e| Error::model_file(path, format!("cannot read safetensors: {e}")))?;
    let by_name: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(name, t)| (name.strip_prefix("bert.").unwrap_or(&name).to_owned(), t))
        .collect();
    let mut loaded = 0;
    let mut missing = Vec::new();
    tch::no_grad(|| -> Result<()> {
        for (name, mut var) in vs.variables() {
            let Some(local) = name.strip_prefix(prefix) else {
                continue;
            };
            match by_name.get(local) {
                None => missing.push(local.to_owned()),
                Some(src) if src.size() != var.size() => {
                    crate::bail!(
                        Config,
                        "{}: {local} has shape {:?}, the model expects {:?}",
                        path.display(),
                        src.size(),
                        var.size()
                    )
                }
                Some(src) => {
                    var.copy_(src);
                    loaded += 1;
                }
            }
        }
        Ok(())
    })?;
    if !missing.is_empty() {
        missing.sort();
        return Err(Error::model_file(
            path,
            format!("missing tensors {missing:?}"),
        ));
    }
    Ok(loaded)
}

/// A copy of every variable of `vs` (the weights of the best epoch so far).
pub fn snapshot(vs: &nn::VarStore) -> HashMap<String, Tensor> {
    tch::no_grad(|| {
        vs.variables()
            .into_iter()
            .map(|(k, v)| (k, v.detach().copy()))
            .collect()
    })
}

/// Copies a [`snapshot`] back into the variables of `vs`.
pub fn restore(vs: &nn::VarStore, weights: &HashMap<String, Tensor>) {
    tch::no_grad(|| {
        for (name, mut var) in vs.variables() {
            if let Some(w) = weights.get(&name) {
                var.copy_(w);
            }
        }
    });
}
