//! `ingest`: tweets from a CoNLL file or JSONL dump into the `tweets` artifact.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use pipeline::dataset::Dataset;
use pipeline::stages::ingest::{self, OnError};

#[derive(Parser, Debug)]
#[command(about = "Read, validate and store a tweet dataset (stage 1 of umgf)")]
struct Cli {
    /// twitter2015, twitter2017 (from the data directory), or a path to a CoNLL file or JSONL dump.
    #[arg(long, default_value = "twitter2017")]
    dataset: String,
    /// Folder of `<IMGID>.jpg` images for CoNLL data (default: <data dir>/<dataset>_images, or images/
    /// beside a CoNLL dump). Missing images are counted, not an error.
    #[arg(long)]
    image_dir: Option<PathBuf>,
    /// fail: stop at the first bad record. skip: leave bad records out and list them in report.jsonl.
    #[arg(long, default_value = "fail")]
    on_error: OnError,
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

    let plan = ingest::plan(&dataset, cli.on_error)?;
    let outcome = ingest::run(&artifacts.store, plan).context("ingest failed")?;
    for name in [ingest::TWEETS, ingest::REPORT] {
        artifacts.link_view(&dataset.label, name, &outcome.manifest.output(name)?.digest)?;
    }

    let counts = &outcome.manifest.counts;
    eprintln!(
        "{}",
        stages::describe(
            "ingest",
            &dataset.label,
            &outcome,
            started.elapsed().as_secs_f64()
        )
    );
    eprintln!("{}", ingest::summary(counts));
    eprintln!(
        "  -> {}",
        artifacts
            .root()
            .join(&dataset.label)
            .join(ingest::TWEETS)
            .display()
    );
    Ok(())
}
