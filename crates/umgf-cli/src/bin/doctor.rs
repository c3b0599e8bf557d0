//! `doctor`: proves the set-up works. libtorch loads (no LD_LIBRARY_PATH needed), computes correctly,
//! every installed safetensors file loads with finite values, and every text encoder (a folder with
//! config.json, model.safetensors, tokenizer.json: MiniLM-L6, MPNet base) loads into its tch module by
//! name and encodes a sentence. `make setup` ends with it.
use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};
use clap::Parser;
use tch::nn::VarStore;
use tch::{Device, Tensor};
use umgf::text::bert::{Bert, BertConfig};
use umgf::text::mpnet::{Mpnet, MpnetConfig};
use umgf::text::transformer::Init;
use umgf::text::wordpiece::{Architecture, WordPieces};

#[derive(Parser, Debug)]
#[command(about = "Check libtorch and the installed model weights")]
struct Cli {
    /// The folder `make setup` fills with weights.
    #[arg(long, default_value = "models")]
    models: PathBuf,
}

fn main() -> anyhow::Result<()> {
    umgf_cli::init();
    let cli = Cli::parse();
    let info = umgf::torch::info();
    println!(
        "libtorch: ok (device {:?}, cuda available: {}, {} cuda devices, {} cpu threads)",
        umgf::torch::default_device(),
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
            let weights = umgf::torch::inspect_safetensors(&path)?;
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
            let dir = path.parent().context("a weights file without a folder")?;
            if dir.join("config.json").is_file() && dir.join("tokenizer.json").is_file() {
                check_text_encoder(dir)?;
            }
        }
    }
    Ok(())
}

/// Loads a text encoder's weights into its module (every tensor by name and shape, as the pipeline
/// does) and its tokenizer, and encodes one sentence: finite states of the configured width.
fn check_text_encoder(dir: &Path) -> anyhow::Result<()> {
    let config = dir.join("config.json");
    let architecture = Architecture::of_config(&config)?;
    let pieces = WordPieces::from_files(&dir.join("tokenizer.json"), architecture)?;
    let words = ["RT", "@user", ":", "Obama", "visits", "Paris", "#news"];
    let tweet = pieces.tweet(&words)?;
    let ids: Vec<i64> = tweet.ids.iter().map(|&i| i64::from(i)).collect();
    let ids = Tensor::from_slice(&ids).unsqueeze(0);
    let mask = ids.ones_like();
    let vs = VarStore::new(Device::Cpu);
    let root = vs.root() / "encoder";
    let load = || umgf::torch::load_safetensors(&vs, "encoder.", &dir.join("model.safetensors"));
    let (hidden, loaded, states) = match architecture {
        Architecture::Bert => {
            let model = Bert::new(&root, BertConfig::from_file(&config)?, Init::Zeros);
            let loaded = load()?;
            let states = tch::no_grad(|| model.forward_t(&ids, &mask, false));
            (model.config.hidden_size, loaded, states)
        }
        Architecture::Mpnet => {
            let model = Mpnet::new(&root, MpnetConfig::from_file(&config)?, Init::Zeros);
            let loaded = load()?;
            let states = tch::no_grad(|| model.forward_t(&ids, &mask, false));
            (model.config.hidden_size, loaded, states)
        }
    };
    ensure!(
        states.size() == [1, ids.size()[1], hidden],
        "{}: states of shape {:?}",
        dir.display(),
        states.size()
    );
    ensure!(
        states.isfinite().all().int64_value(&[]) == 1,
        "{}: non-finite states",
        dir.display()
    );
    println!(
        "{}: {architecture:?} encoder, {loaded} tensors loaded, {} pieces -> {hidden}-wide states, finite",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
        tweet.ids.len()
    );
    Ok(())
}
