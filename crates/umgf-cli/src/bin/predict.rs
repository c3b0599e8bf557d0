//! `predict`: tags the tweets of a dump (or of a dataset) with a trained model, through the same
//! cached stages as training; writes the entities per tweet as JSONL and the tagged tweets as CoNLL.
use clap::Parser;
use umgf::stages::Stage;
use umgf::stages::predict::{PredictStage, Which};

#[derive(Parser, Debug)]
#[command(about = "Find the entities of new tweets with a trained model (stage 8 of umgf)")]
struct Cli {
    #[command(flatten)]
    args: umgf_cli::PredictArgs,
}

fn main() -> anyhow::Result<()> {
    umgf_cli::init();
    let cli = Cli::parse();
    let (_, outcome, dir) = umgf_cli::predict_on(&cli.args, Which::All, "predictions")?;
    let c = PredictStage::counts(&outcome.manifest)?;
    eprintln!(
        "  {} tweets, {} entities -> {}",
        c.tweets,
        c.entities,
        dir.display()
    );
    Ok(())
}
