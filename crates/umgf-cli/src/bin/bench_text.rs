//! `bench-text`: text feature extraction speed (word pieces + encoder states) on the tweets of a CoNLL
//! file, printed as one JSON line shaped like `scripts/reference/bench_text.py`'s, for `make bench-text`.
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use serde_json::json;
use umgf::io::conll;
use umgf::text::encoder::{Precision, TextEncoder, default_files};

#[derive(Parser, Debug)]
#[command(about = "Time text feature extraction (tokenise + encode) on a CoNLL file")]
struct Cli {
    #[arg(long)]
    conll: PathBuf,
    #[arg(long, default_value = "models")]
    models: PathBuf,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Intra-op threads of libtorch.
    #[arg(long, default_value_t = 2)]
    threads: i32,
    /// Encoder precision: f32 or bf16.
    #[arg(long, default_value = "f32")]
    precision: Precision,
}

fn main() -> anyhow::Result<()> {
    umgf_cli::init();
    let cli = Cli::parse();
    tch::set_num_threads(cli.threads);
    let tweets = conll::read(&cli.conll, &Default::default())?.tweets;

    let loading = Instant::now();
    let mut encoder =
        TextEncoder::load_for_inference(&default_files(&cli.models), tch::Device::Cpu)?;
    encoder.set_precision(cli.precision);
    let load_seconds = loading.elapsed().as_secs_f64();

    let started = Instant::now();
    let pieces = tweets
        .iter()
        .map(|t| encoder.pieces.tweet(&t.tokens))
        .collect::<umgf::Result<Vec<_>>>()?;
    let states = encoder.word_states(&pieces, cli.batch);
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(states.len() == tweets.len());

    let line = json!({
        "tweets": tweets.len(),
        "wordpieces": pieces.iter().map(|p| p.ids.len()).sum::<usize>(),
        "seconds": seconds,
        "load_seconds": load_seconds,
        "tweets_per_s": tweets.len() as f64 / seconds,
        "peak_rss_mb": umgf_cli::peak_rss_mb(),
        "threads": cli.threads,
        "batch": cli.batch,
        "precision": format!("{:?}", cli.precision).to_lowercase(),
    });
    println!("{line}");
    Ok(())
}
