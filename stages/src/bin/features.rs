//! `features`: text features of every tweet (word pieces, shapes, frozen encoder states), memoised per
//! tweet. The visual part is not built yet.
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use pipeline::dataset::Dataset;
use pipeline::stages::features;
use pipeline::stages::ingest::{self, OnError};
use pipeline::text::encoder::{Precision, default_files};

#[derive(Parser, Debug)]
#[command(about = "Cache text features of every tweet to Parquet (stage 4 of umgf)")]
struct Cli {
    #[arg(long, default_value = "twitter2017")]
    dataset: String,
    #[arg(long)]
    image_dir: Option<PathBuf>,
    #[arg(long, default_value = "fail")]
    on_error: OnError,
    #[arg(long, default_value = "models")]
    models: PathBuf,
    /// Encoder precision: f32 (the reference) or bf16 (faster on CPUs with AVX-512 BF16).
    #[arg(long, default_value = "f32")]
    precision: Precision,
    #[command(flatten)]
    common: stages::Common,
}

fn main() -> anyhow::Result<()> {
    stages::init_logging();
    let cli = Cli::parse();
    let started = Instant::now();
    let data_dir = cli.common.data_dir()?;
    let dataset = Dataset::resolve(&cli.dataset, data_dir.as_deref(), cli.image_dir.as_deref())?;
    let artifacts = cli.common.open_artifacts()?;

    let tweets = ingest::ensure(&artifacts.store, &dataset, cli.on_error)?;
    let tweets = tweets.manifest.output(ingest::TWEETS)?.digest;
    let outcome = features::run(
        &artifacts.store,
        tweets,
        &default_files(&cli.models),
        cli.precision,
    )?;
    let link = artifacts.link_view(
        &dataset.label,
        features::TEXT_FEATURES,
        &outcome.manifest.output(features::TEXT_FEATURES)?.digest,
    )?;
    eprintln!(
        "{}",
        stages::describe(
            "features",
            &dataset.label,
            &outcome,
            started.elapsed().as_secs_f64()
        )
    );
    let c = &outcome.manifest.counts;
    eprintln!(
        "  {} tweets, {} word pieces, {} longer than 128 pieces (encoded with a sliding window) -> {}",
        c["tweets"],
        c["pieces"],
        c["longer_than_max_pieces"],
        link.display()
    );
    if !outcome.hit {
        eprintln!(
            "  encoded {} tweets, reused {} from the memo",
            c["memo_computed"], c["memo_reused"]
        );
    }
    Ok(())
}
