//! `doctor`: proves the set-up works. libtorch loads (no LD_LIBRARY_PATH needed), computes correctly,
//! and every installed safetensors file loads with finite values. `make setup` ends with it.
use std::path::PathBuf;

use anyhow::{Context, ensure};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Check libtorch and the installed model weights")]
struct Cli {
    /// The folder `make setup` fills with weights.
    #[arg(long, default_value = "models")]
    models: PathBuf,
}

fn main() -> anyhow::Result<()> {
    stages::init();
    let cli = Cli::parse();
    let info = pipeline::torch::info();
    println!(
        "libtorch: ok (device {:?}, cuda available: {}, {} cuda devices, {} cpu threads)",
        pipeline::torch::default_device(),
        info.cuda_available,
        info.cuda_devices,
        info.cpu_threads
    );
    ensure!(info.matmul_ok, "libtorch computed a wrong matrix product");

    let manifest_path = cli.models.join("MANIFEST.json");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&manifest_path)
            .with_context(|| format!("{}: run `make setup`", manifest_path.display()))?,
    )?;
    let files = manifest["files"]
        .as_array()
        .context("MANIFEST.json has no \"files\" list")?;
    for entry in files {
        let name = entry["path"]
            .as_str()
            .context("MANIFEST.json: a file without \"path\"")?;
        let path = cli.models.join(name);
        ensure!(
            path.is_file(),
            "{} is listed in MANIFEST.json but missing",
            path.display()
        );
        if name.ends_with(".safetensors") {
            let weights = pipeline::torch::inspect_safetensors(&path)?;
            ensure!(
                weights.non_finite.is_empty(),
                "{}: non-finite values in {:?}",
                path.display(),
                weights.non_finite
            );
            println!(
                "{name}: {} tensors, {:.1} M parameters, all finite ({})",
                weights.tensors,
                weights.parameters as f64 / 1e6,
                entry["source"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(())
}
