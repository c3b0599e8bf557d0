//! `graphs`: each tweet's multimodal graph as an edge list (runs ingest, chunk and ground first, all
//! cached).
use std::time::Instant;

use clap::Parser;
use pipeline::stages::{graphs, ground};

#[derive(Parser, Debug)]
#[command(about = "Build each tweet's multimodal graph as edge lists (stage 5 of umgf)")]
struct Cli {
    #[command(flatten)]
    data: stages::DatasetArgs,
    #[command(flatten)]
    ground: stages::GroundArgs,
    #[command(flatten)]
    common: stages::Common,
}

fn main() -> anyhow::Result<()> {
    stages::init_logging();
    let cli = Cli::parse();
    let started = Instant::now();
    let dataset = cli.data.resolve(&cli.common)?;
    let artifacts = cli.common.open_artifacts()?;
    let tweets = cli.data.tweets(&artifacts, &dataset)?;
    let objects = stages::objects(&cli.common, &artifacts, tweets, &cli.ground)?
        .manifest
        .output(ground::OBJECTS)?
        .digest;
    let outcome = graphs::run(&artifacts.store, tweets, objects)?;
    let link = artifacts.link_view(
        &dataset.label,
        graphs::EDGES,
        &outcome.manifest.output(graphs::EDGES)?.digest,
    )?;
    stages::report("graphs", &dataset.label, &outcome, started);
    let c = &outcome.manifest.counts;
    eprintln!(
        "  {} tweets, {} edges: {} word-word, {} object-object, {} phrase-object, {} general-object -> {}",
        c["tweets"],
        c["edges"],
        c["word-word_edges"],
        c["object-object_edges"],
        c["phrase-object_edges"],
        c["general-object_edges"],
        link.display()
    );
    Ok(())
}
