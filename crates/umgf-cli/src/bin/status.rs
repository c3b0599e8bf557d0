//! `status`: which stages are up to date for a dataset and which would re-run (like `dvc status`).
//! Read-only: the upstream resolver computes each stage's run key from its inputs (upstream outputs
//! included) and looks it up in the store, with the settings `make train` passes, so the rows name
//! the runs `make train` would use. A stage whose upstream has not run cannot be keyed yet.
use clap::Parser;
use umgf_cli::upstream::{Mode, PIPELINE, Upstream, is_not_run};

#[derive(Parser, Debug)]
#[command(
    about = "Show which umgf stages are up to date and which would re-run",
    // As `train`: a later value of an option wins.
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
    /// Also check every object in the store against its digest.
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    common: umgf_cli::Common,
}

fn main() -> anyhow::Result<()> {
    umgf_cli::init();
    let cli = Cli::parse();
    let dataset = cli.data.resolve(&cli.common)?;
    let artifacts = cli.common.open_artifacts()?;
    let store = &artifacts.store;
    println!(
        "dataset {} (store {})",
        dataset.label,
        store.root().display()
    );
    println!("{:<16} {:<24} {:<14} detail", "stage", "state", "run");
    let upstream = Upstream::new(
        &cli.common,
        &artifacts,
        &dataset,
        cli.data.on_error,
        cli.data.limits(),
        cli.ground.params(),
        Mode::Status,
    );
    let params = cli.train.params(&dataset.label, cli.text.params());
    // Every stage in upstream order, each printing its row once; a stage that has not run ends its
    // chain (NotRun), the others go on.
    for (_, resolve) in PIPELINE {
        if let Err(e) = resolve(&upstream, &params)
            && !is_not_run(&e)
        {
            return Err(e);
        }
    }

    if cli.verify {
        let report = store.verify()?;
        println!(
            "store: {} runs, {} objects, {} memo entries in {} segments: {}",
            report.runs,
            report.blobs,
            report.memo_entries,
            report.memo_segments,
            if report.is_valid() {
                "all verified"
            } else {
                "PROBLEMS"
            }
        );
        for problem in &report.problems {
            println!("  {problem}");
        }
        anyhow::ensure!(
            report.is_valid(),
            "the store has {} problems",
            report.problems.len()
        );
    }
    Ok(())
}
