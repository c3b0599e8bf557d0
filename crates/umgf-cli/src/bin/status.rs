//! `status`: which stages are up to date for a dataset and which would re-run (like `dvc status`).
//! Read-only: it computes each stage's run key from its inputs (upstream outputs included) and looks it
//! up in the store, verifying stored objects. A stage whose upstream has not run cannot be keyed yet.
use clap::Parser;
use umgf::Digest;
use umgf::stages::chunker::{self, ChunkerInputs};
use umgf::stages::ingest::{self, OnError};
use umgf::stages::train::{self, DatasetArtifacts, TrainParams};
use umgf::stages::{chunk, features, graphs, ground, visual_features};
use umgf::store::{Manifest, RunSpec, Store};
use umgf::text::encoder::default_files;
use umgf::vision::detector::CenterNet;
use umgf::vision::efficientnet;

#[derive(Parser, Debug)]
#[command(about = "Show which umgf stages are up to date and which would re-run")]
struct Cli {
    #[command(flatten)]
    data: umgf_cli::DatasetArgs,
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

/// Prints a stage's row; returns its manifest when it is up to date.
fn row(
    store: &Store,
    stage: &str,
    spec: anyhow::Result<RunSpec>,
) -> anyhow::Result<Option<Manifest>> {
    let spec = match spec {
        Ok(spec) => spec,
        Err(e) => {
            println!("{stage:<16} {:<24} {:<14} {e:#}", "cannot plan", "-");
            return Ok(None);
        }
    };
    let key = spec.key().short();
    let manifest = store.lookup(&spec)?;
    match &manifest {
        Some(m) => println!(
            "{stage:<16} {:<24} {key:<14} {}",
            "up to date",
            brief(stage, &m.counts)
        ),
        None => println!(
            "{stage:<16} {:<24} {key:<14} inputs, parameters or code changed",
            "would run"
        ),
    }
    Ok(manifest)
}

/// The headline numbers of a run's counts.
fn brief(stage: &str, counts: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    for (key, label) in [
        ("tweets", "tweets"),
        ("rejected", "rejected"),
        ("phrases", "noun phrases"),
        ("pieces", "word pieces"),
        ("tweets_with_image", "with an image"),
        ("objects", "objects"),
        ("regions", "image regions"),
        ("edges", "edges"),
        ("dev_f1", "dev F1"),
        (
            "test_f1",
            if stage == "chunker" {
                "CoNLL-2000 test NP F1"
            } else {
                "test F1"
            },
        ),
    ] {
        match &counts[key] {
            serde_json::Value::Number(n) if n.is_f64() => {
                parts.push(format!("{label} {:.2}", n.as_f64().unwrap_or(0.0)))
            }
            serde_json::Value::Number(n) => parts.push(format!("{n} {label}")),
            _ => {}
        }
    }
    parts.join(", ")
}

fn waiting(stage: &str, on: &str) {
    println!(
        "{stage:<16} {:<24} {:<14} runs after {on}",
        "waits for upstream", "-"
    );
}

fn output(manifest: &Manifest, name: &str) -> anyhow::Result<Digest> {
    Ok(manifest.output(name)?.digest)
}

fn main() -> anyhow::Result<()> {
    umgf_cli::init();
    let cli = Cli::parse();
    let data_dir = cli.common.data_dir()?;
    let dataset = cli.data.resolve(&cli.common)?;
    let artifacts = cli.common.open_artifacts()?;
    let store = &artifacts.store;
    let encoder = default_files(&cli.common.models);

    println!(
        "dataset {} (store {})",
        dataset.label,
        store.root().display()
    );
    println!("{:<16} {:<24} {:<14} detail", "stage", "state", "run");
    let tweets = row(
        store,
        "ingest",
        ingest::plan(&dataset, OnError::Skip)
            .map(|p| p.spec)
            .map_err(Into::into),
    )?;
    let chunker_spec = match &data_dir {
        Some(dir) => chunker::spec(
            &ChunkerInputs::new(dir, encoder.clone()),
            &cli.common.chunker.training(),
        )
        .map_err(Into::into),
        None => Err(anyhow::anyhow!("no data directory for CoNLL-2000")),
    };
    let trained = row(store, "chunker", chunker_spec)?;
    let phrases = match (&tweets, &trained) {
        (Some(t), Some(c)) => row(
            store,
            "chunk",
            Ok(chunk::spec(
                output(t, ingest::TWEETS)?,
                output(c, chunker::MODEL)?,
            )),
        )?,
        _ => {
            waiting("chunk", "ingest and chunker");
            None
        }
    };
    let objects = match (&tweets, &phrases) {
        (Some(t), Some(p)) => {
            let detector = umgf::vision::detector::default_model(&cli.common.models);
            let spec = (|| -> anyhow::Result<RunSpec> {
                Ok(ground::spec(
                    output(t, ingest::TWEETS)?,
                    output(p, chunk::NOUN_PHRASES)?,
                    CenterNet::digest(&detector)?,
                    encoder.digest()?,
                    &cli.ground.params(),
                ))
            })();
            row(store, "ground", spec)?
        }
        _ => {
            waiting("ground", "ingest and chunk");
            None
        }
    };
    let text = match &tweets {
        Some(t) => {
            let tweets = output(t, ingest::TWEETS)?;
            let params = cli.text.params();
            let spec = params
                .encoder
                .files(&cli.common.models)
                .digest()
                .map(|e| features::spec(tweets, e, &params));
            row(store, "features", spec.map_err(Into::into))?
        }
        None => {
            waiting("features", "ingest");
            None
        }
    };
    let visual = match (&tweets, &objects) {
        (Some(t), Some(o)) => {
            let model = efficientnet::default_model(&cli.common.models);
            let spec = (|| -> anyhow::Result<RunSpec> {
                Ok(visual_features::spec(
                    output(t, ingest::TWEETS)?,
                    output(o, ground::OBJECTS)?,
                    Digest::of_file(&model)?,
                ))
            })();
            row(store, "visual-features", spec)?
        }
        _ => {
            waiting("visual-features", "ingest and ground");
            None
        }
    };
    let edges = match (&tweets, &objects) {
        (Some(t), Some(o)) => {
            let spec = graphs::spec(output(t, ingest::TWEETS)?, output(o, ground::OBJECTS)?);
            row(store, "graphs", Ok(spec))?
        }
        _ => {
            waiting("graphs", "ingest and ground");
            None
        }
    };
    // `make train`'s default run (UMGF, frozen, seed 1).
    match (&tweets, &text, &visual, &edges) {
        (Some(t), Some(x), Some(v), Some(e)) => {
            let inputs = DatasetArtifacts {
                tweets: output(t, ingest::TWEETS)?,
                text_features: output(x, features::TEXT_FEATURES)?,
                visual_features: output(v, visual_features::VISUAL_FEATURES)?,
                graph_edges: output(e, graphs::EDGES)?,
            };
            let params = TrainParams {
                features: cli.text.params(),
                ..TrainParams::defaults(&dataset.label)
            };
            let spec = params
                .features
                .encoder
                .files(&cli.common.models)
                .digest()
                .map_err(Into::into)
                .and_then(|d| train::spec(&inputs, d, &params).map_err(Into::into));
            row(store, "train", spec)?;
        }
        _ => waiting("train", "features and graphs"),
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
