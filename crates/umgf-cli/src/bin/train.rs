//! `train`: trains the tagger on a dataset (runs every stage before it first, all cached), selects
//! the epoch on dev, and prints the dev and test table. A second run with the same settings is a
//! cache hit and only prints the table again.
use clap::Parser;
use umgf::stages::Stage;
use umgf::stages::train::{self, TrainStage};

#[derive(Parser, Debug)]
#[command(
    about = "Train the UMGF tagger (or the text-only baseline) on cached artifacts (stage 6 of umgf)",
    // A later value of an option wins: `make train` puts the fine-tune recipe before TRAIN_ARGS.
    args_override_self = true
)]
struct Cli {
    #[command(flatten)]
    data: umgf_cli::DatasetArgs,
    #[command(flatten)]
    train: umgf_cli::TrainArgs,
    #[command(flatten)]
    text: umgf_cli::TextFeatureArgs,
    #[command(flatten)]
    ground: umgf_cli::GroundArgs,
    #[command(flatten)]
    common: umgf_cli::Common,
}

fn main() -> anyhow::Result<()> {
    umgf_cli::init();
    let cli = Cli::parse();
    let run = cli.data.start(&cli.common)?;
    let upstream = run.upstream(&cli.common, cli.ground.params());
    let params = cli.train.params(&run.dataset.label, cli.text.params());
    umgf_cli::model_inputs(&upstream, &run, &params.features)?;
    let outcome = upstream.train(&params)?;
    // The latest model of the dataset: artifacts/<dataset>/model/.
    let view = format!("{}/model", run.dataset.label);
    run.artifacts.link_run_folder(&view, &outcome.manifest)?;
    run.report("train", &outcome);
    let table = outcome.manifest.output(train::TABLE)?.digest;
    print!(
        "{}",
        std::fs::read_to_string(run.artifacts.store.blob_path(&table))?
    );
    let seconds = TrainStage::counts(&outcome.manifest)?.epoch_seconds;
    if !seconds.is_empty() {
        eprintln!(
            "  trained in {:.0} s ({:.1} s per epoch)",
            outcome.manifest.seconds,
            seconds.iter().sum::<f64>() / seconds.len() as f64
        );
    }
    eprintln!(
        "  model, metrics, curve and predictions -> {}",
        run.artifacts.root().join(view).display()
    );
    Ok(())
}
