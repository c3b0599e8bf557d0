//! `ingest`: tweets from a CoNLL file or JSONL dump into the `tweets` artifact.
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use umgf::stages::Stage;
use umgf::stages::ingest::{self, IngestStage};

#[derive(Parser, Debug)]
#[command(about = "Read, validate and store a tweet dataset (stage 1 of umgf)")]
struct Cli {
    #[command(flatten)]
    data: umgf_cli::DatasetArgs,
    #[command(flatten)]
    common: umgf_cli::Common,
}

fn main() -> anyhow::Result<()> {
    umgf_cli::init();
    let cli = Cli::parse();
    let started = Instant::now();
    let dataset = cli.data.resolve(&cli.common)?;
    let artifacts = cli.common.open_artifacts()?;

    let outcome = cli
        .data
        .ingest(&artifacts, &dataset)
        .context("ingest failed")?;
    for name in [ingest::TWEETS, ingest::REPORT] {
        artifacts.link_view(&dataset.label, name, &outcome.manifest.output(name)?.digest)?;
    }

    let counts = IngestStage::counts(&outcome.manifest)?;
    umgf_cli::report("ingest", &dataset.label, &outcome, started);
    eprintln!("{}", ingest::summary(&counts));
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
