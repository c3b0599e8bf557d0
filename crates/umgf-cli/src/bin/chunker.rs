//! `chunker`: trains (once; then cached) the noun-phrase chunker on CoNLL-2000 and reports its F1;
//! `--evaluate <file.conllu>` scores it on NP chunks derived from dependency trees (Tweebank v2).
use std::time::Instant;

use clap::Parser;
use umgf::stages::Stage;
use umgf::stages::chunker::{self, ChunkerInputs, ChunkerStage};
use umgf::text::chunker::NpChunker;
use umgf::text::encoder::default_files;

#[derive(Parser, Debug)]
#[command(about = "Train the noun-phrase chunker on CoNLL-2000 NP chunks")]
struct Cli {
    // The training settings are `--chunker-epochs`, `--chunker-seed`, `--chunker-limit` and
    // `--chunker-tweebank`, which every stage takes (umgf_cli::ChunkerArgs).
    #[command(flatten)]
    common: umgf_cli::Common,
    /// Also score the chunker on the base noun phrases of these CoNLL-U trees (e.g. Tweebank v2's
    /// test split, `<data dir>/tweebank/en-ud-tweet-test.conllu`); trains nothing more.
    #[arg(long, value_name = "FILE.conllu")]
    evaluate: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    umgf_cli::init();
    let cli = Cli::parse();
    let started = Instant::now();
    let data_dir = cli.common.require_data_dir()?;
    let artifacts = cli.common.open_artifacts()?;
    let training = cli.common.chunker.training();
    let input = chunker::Input {
        files: ChunkerInputs::new(&data_dir, default_files(&cli.common.models), &training),
        training,
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
    if let Some(t) = &m.tweebank_test {
        eprintln!(
            "  Tweebank v2 test NP F1 {:.2} (P {:.2}, R {:.2})",
            t.f1, t.precision, t.recall
        );
    }
    if let Some(path) = &cli.evaluate {
        let sentences = chunker::tweebank_chunks(path)?;
        let model = artifacts
            .store
            .blob_path(&outcome.manifest.output(chunker::MODEL)?.digest);
        let chunker = NpChunker::load(&input.files.encoder, &model, umgf::torch::default_device())?;
        let (p, r, f1) = chunker.evaluate(&sentences)?;
        println!(
            "{}: NP F1 {f1:.2} (P {p:.2}, R {r:.2}) over {} sentences",
            path.display(),
            sentences.len()
        );
    }
    Ok(())
}
