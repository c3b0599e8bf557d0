//! `eval`: scores a trained model on the test split of a labelled dataset (another one than it was
//! trained on for the cross-domain rows) and prints the table.
use clap::Parser;
use pipeline::stages::predict::{self, ModelFiles, Which};
use pipeline::text::encoder::default_files;

#[derive(Parser, Debug)]
#[command(about = "Score a trained model on a labelled test set (umgf)")]
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
        Which::Test,
    )?;
    let view = format!("{}/eval", run.dataset.label);
    for (name, entry) in &outcome.manifest.outputs {
        run.artifacts.link_view(&view, name, &entry.digest)?;
    }
    run.report("eval", &outcome);
    let table = outcome.manifest.output(predict::TABLE).map_err(|_| {
        anyhow::anyhow!(
            "dataset {} is not labelled: nothing to score",
            run.dataset.label
        )
    })?;
    print!(
        "{}",
        std::fs::read_to_string(run.artifacts.store.blob_path(&table.digest))?
    );
    eprintln!("  -> {}", run.artifacts.root().join(view).display());
    Ok(())
}
