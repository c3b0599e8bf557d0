//! `graphs`: each tweet's multimodal graph as an edge list (runs ingest, chunk and ground first, all
//! cached).
use clap::Parser;
use umgf::stages::Stage;
use umgf::stages::graphs::{self, GraphsStage};

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
    let c = GraphsStage::counts(&outcome.manifest)?;
    eprintln!(
        "  {} tweets, {} edges: {} word-word, {} object-object, {} phrase-object, {} general-object -> {}",
        c.tweets,
        c.edges,
        c.word_word,
        c.object_object,
        c.phrase_object,
        c.general_object,
        link.display()
    );
    Ok(())
}
