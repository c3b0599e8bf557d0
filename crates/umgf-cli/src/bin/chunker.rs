//! `chunker`: trains (once; then cached) the noun-phrase chunker on CoNLL-2000 and reports its F1.
use std::time::Instant;

use clap::Parser;
use umgf::stages::Stage;
use umgf::stages::chunker::{self, ChunkerInputs, ChunkerStage};
use umgf::text::encoder::default_files;

#[derive(Parser, Debug)]
#[command(about = "Train the noun-phrase chunker on CoNLL-2000 NP chunks")]
struct Cli {
    // The training settings are `--chunker-epochs`, `--chunker-seed` and `--chunker-limit`, which
    // every stage takes (umgf_cli::ChunkerArgs).
    #[command(flatten)]
    common: umgf_cli::Common,
}

fn main() -> anyhow::Result<()> {
    umgf_cli::init();
    let cli = Cli::parse();
    let started = Instant::now();
    let data_dir = cli.common.require_data_dir()?;
    let artifacts = cli.common.open_artifacts()?;
    let input = chunker::Input {
        files: ChunkerInputs::new(&data_dir, default_files(&cli.common.models)),
        training: cli.common.chunker.training(),
    };
    let outcome = ChunkerStage::run(&artifacts.store, &input)?;
    for name in [chunker::MODEL, chunker::METRICS] {
        artifacts.link_view("chunker", name, &outcome.manifest.output(name)?.digest)?;
    }
    let m = ChunkerStage::counts(&outcome.manifest)?;
    umgf_cli::report("chunker", "conll2000", &outcome, started);
    eprintln!(
        "  CoNLL-2000 test NP F1 {:.2} (P {:.2}, R {:.2}); dev F1 per epoch {}; seed {}",
        m.test_f1,
        m.test_precision,
        m.test_recall,
        m.dev_f1_per_epoch
            .iter()
            .map(|f| format!("{f:.2}"))
            .collect::<Vec<_>>()
            .join(" "),
        input.training.seed
    );
    Ok(())
}
