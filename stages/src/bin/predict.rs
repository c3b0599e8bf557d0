//! `predict`: tags the tweets of a dump (or of a dataset) with a trained model, through the same
//! cached stages as training; writes the entities per tweet as JSONL and the tagged tweets as CoNLL.
use clap::Parser;
use pipeline::stages::predict::{self, ModelFiles, Which};
use pipeline::text::encoder::default_files;

#[derive(Parser, Debug)]
#[command(about = "Find the entities of new tweets with a trained model (stage 8 of umgf)")]
struct Cli {
    #[command(flatten)]
    data: stages::DatasetArgs,
    #[command(flatten)]
    model: stages::ModelArgs,
    #[command(flatten)]
    ground: stages::GroundArgs,
    #[command(flatten)]
    common: stages::Common,
}

fn main() -> anyhow::Result<()> {
    stages::init_logging();
    let cli = Cli::parse();
    let run = cli.data.start(&cli.common)?;
    let model = ModelFiles::in_dir(&cli.model.dir(&cli.common));
    let inputs = stages::model_inputs(&cli.common, &run, &cli.ground, cli.model.precision)?;
    let outcome = predict::run(
        &run.artifacts.store,
        &model,
        &inputs,
        &run.dataset.label,
        &default_files(&cli.common.models),
        Which::All,
    )?;
    let view = format!("{}/predictions", run.dataset.label);
    for (name, entry) in &outcome.manifest.outputs {
        run.artifacts.link_view(&view, name, &entry.digest)?;
    }
    run.report("predict", &outcome);
    let c = &outcome.manifest.counts;
    eprintln!(
        "  {} tweets, {} entities -> {}",
        c["tweets"],
        c["entities"],
        run.artifacts.root().join(view).display()
    );
    Ok(())
}
