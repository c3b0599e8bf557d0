//! `eval`: scores a trained model on the test split of a labelled dataset (another one than it was
//! trained on for the cross-domain rows) and prints the table.
use clap::Parser;
use umgf::stages::predict::{self, Which};

#[derive(Parser, Debug)]
#[command(about = "Score a trained model on a labelled test set (umgf)")]
struct Cli {
    #[command(flatten)]
    args: umgf_cli::PredictArgs,
}

fn main() -> anyhow::Result<()> {
    umgf_cli::init();
    let cli = Cli::parse();
    let (run, outcome, dir) = umgf_cli::predict_on(&cli.args, Which::Test, "eval")?;
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
    eprintln!("  -> {}", dir.display());
    Ok(())
}
