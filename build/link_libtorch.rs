//! Build script shared by every crate that produces an executable linking libtorch (stage binaries, tests).
//!
//! libtorch comes from PyPI's `torch` wheel inside `.venv` (see setup/). Its shared libraries are not on the
//! loader's path, so we bake an rpath into each executable: users never export LD_LIBRARY_PATH.
//! With the GPU set-up (the wheel's nvidia packages present) we also force libtorch_cuda into the link:
//! tch 0.26 executables otherwise drop it (`--as-needed`) and silently run on CPU only.
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(libtorch) = std::env::var_os("LIBTORCH").map(PathBuf::from) else {
        return;
    };
    let libtorch = libtorch.canonicalize().unwrap_or(libtorch);
    let lib = libtorch.join("lib");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());

    let Some(site_packages) = libtorch.parent() else {
        return;
    };
    // Installing or removing the GPU packages changes site-packages: re-decide then.
    println!("cargo:rerun-if-changed={}", site_packages.display());
    if has_cuda_runtime(&site_packages.join("nvidia")) {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,-ltorch,--as-needed");
    }
}

/// The CPU set-up installs only the small cudart/cupti packages; the GPU one adds cuBLAS and cuDNN.
fn has_cuda_runtime(nvidia: &Path) -> bool {
    nvidia.join("cublas").is_dir() && nvidia.join("cudnn").is_dir()
}
