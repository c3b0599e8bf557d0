//! `status`: which stages are up to date for a dataset and which would re-run (like `dvc status`).
//! Read-only: it computes each stage's run key and looks it up in the store, verifying stored objects.
use clap::Parser;
use pipeline::dataset::Dataset;
use pipeline::stages::ingest::{self, OnError};

#[derive(Parser, Debug)]
#[command(about = "Show which umgf stages are up to date and which would re-run")]
struct Cli {
    #[arg(long, default_value = "twitter2017")]
    dataset: String,
    #[arg(long)]
    image_dir: Option<std::path::PathBuf>,
    /// Also check every object in the store against its digest.
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    common: stages::Common,
}

fn main() -> anyhow::Result<()> {
    stages::init_logging();
    let cli = Cli::parse();
    let data_dir = cli.common.data_dir()?;
    let dataset = Dataset::resolve(&cli.dataset, data_dir.as_deref(), cli.image_dir.as_deref())?;
    let artifacts = cli.common.open_artifacts()?;
    let store = &artifacts.store;

    println!(
        "dataset {} (store {})",
        dataset.label,
        store.root().display()
    );
    println!("{:<10} {:<28} {:<14} detail", "stage", "state", "run");
    // Stages are listed as they are built; each later stage's key needs its upstream's outputs.
    match ingest::plan(&dataset, OnError::Skip) {
        Err(e) => println!("{:<10} {:<28} {:<14} {e}", "ingest", "cannot plan", "-"),
        Ok(plan) => {
            let key = plan.spec.key().short();
            match store.lookup(&plan.spec)? {
                Some(manifest) => println!(
                    "{:<10} {:<28} {:<14} {} tweets, {} rejected",
                    "ingest",
                    "up to date",
                    key,
                    manifest.counts["tweets"],
                    manifest.counts["rejected"]
                ),
                None => println!(
                    "{:<10} {:<28} {:<14} inputs or parameters changed",
                    "ingest", "would run", key
                ),
            }
        }
    }

    if cli.verify {
        let report = store.verify()?;
        println!(
            "store: {} runs, {} objects, {} memo entries: {}",
            report.runs,
            report.blobs,
            report.memo_entries,
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
