//! `graphs`: each tweet's multimodal graph as an edge list (runs ingest, chunk and ground first, all
//! cached).
use clap::Parser;
use umgf::stages::{graphs, ground};

#[derive(Parser, Debug)]
#[command(about = "Build each tweet's multimodal graph as edge lists (stage 5 of umgf)")]
struct Cli {
    #[command(flatten)]
    data: umgf_cli::DatasetArgs,
    #[command(flatten)]
    ground: umgf_cli::GroundArgs,
    #[command(flatten)]
    common: umgf_cli::Common,
}

fn main() -> anyhow::Result<()> {
    umgf_cli::init();
    let cli = Cli::parse();
    let run = cli.data.start(&cli.common)?;
    let objects = umgf_cli::objects(&cli.common, &run.artifacts, run.tweets, &cli.ground)?
        .manifest
        .output(ground::OBJECTS)?
        .digest;
    let outcome = graphs::run(&run.artifacts.store, run.tweets, objects)?;
    let link = run.publish("graphs", &outcome, graphs::EDGES)?;
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
