//! `graphs`: each tweet's multimodal graph as an edge list (runs ingest, chunk and ground first, all
//! cached).
use clap::Parser;
use umgf::stages::graphs;

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
    let outcome = run.upstream(&cli.common, cli.ground.params()).graphs()?;
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
