//! `report`: one static HTML page of a run (`eval` by default, or `predict`), from its outputs and
//! the trained model's metrics; never runs a model. See `umgf::report`.
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Parser;
use umgf::analysis::TweetAnalysis;
use umgf::digest::Digest;
use umgf::eval::Evaluation;
use umgf::report::{self, Report, chart::EpochPoint};
use umgf::stages::predict::{ANALYSIS, METRICS};
use umgf::stages::{Stage, predict::PredictStage, train};
use umgf::store::Store;

#[derive(Parser, Debug)]
#[command(about = "Write an HTML report of an eval or predict run (umgf)")]
struct Cli {
    #[command(flatten)]
    data: umgf_cli::DatasetArgs,
    /// The run to show: `eval` or `predictions` (the dataset's latest) or a folder holding a run's
    /// analysis.jsonl.
    #[arg(long, default_value = "eval")]
    run: String,
    /// The trained model whose metrics (dev table, training curve) the report shows. Default: the
    /// model the run used, found in the store by the run's outputs.
    #[arg(long = "model")]
    model_dir: Option<PathBuf>,
    /// Another run over the same tweets (same forms as --run): the report lists where they differ.
    #[arg(long)]
    compare: Option<String>,
    /// Where the report goes (default: artifacts/<dataset>/report).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    common: umgf_cli::Common,
}

/// A run folder: `eval`/`predictions` of the dataset, or a path.
fn run_dir(dataset_dir: &Path, run: &str) -> PathBuf {
    match run {
        "eval" | "predictions" => dataset_dir.join(run),
        path => PathBuf::from(path),
    }
}

fn read_analysis(dir: &Path) -> anyhow::Result<Vec<TweetAnalysis>> {
    let path = dir.join(ANALYSIS);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{}: no analysis of a run there; run `make eval` or `make predict` first",
            path.display()
        )
    })?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not a tweet analysis", path.display(), i + 1))
        })
        .collect()
}

fn read_json(path: &Path) -> anyhow::Result<Option<serde_json::Value>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    Ok(Some(serde_json::from_str(&text).with_context(|| {
        format!("{}: invalid JSON", path.display())
    })?))
}

/// The metrics.json of the model that made the run in `run_dir`: the predict run whose analysis it
/// holds names the model's weights, and the train run that wrote those weights has the metrics.
fn model_metrics_of(store: &Store, run_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let analysis = Digest::of_file(&run_dir.join(ANALYSIS))?;
    let Some(predict) = store.producer(PredictStage::NAME, ANALYSIS, &analysis)? else {
        return Ok(None);
    };
    let Some(weights) = predict.spec.inputs.get("model_weights") else {
        return Ok(None);
    };
    let trained = store.producer(train::TrainStage::NAME, train::MODEL, weights)?;
    Ok(trained.and_then(|m| {
        m.outputs
            .get(train::METRICS)
            .map(|o| store.blob_path(&o.digest))
    }))
}

fn evaluation(value: &serde_json::Value) -> Option<Evaluation> {
    serde_json::from_value(value.clone()).ok()
}

/// What the model's metrics.json adds: a line about the model, its dev table, and its training
/// curve with the kept epoch.
fn model_section(
    m: &serde_json::Value,
    model: &str,
    about: &mut Vec<String>,
    tables: &mut Vec<(String, Evaluation)>,
) -> (Vec<EpochPoint>, Option<usize>) {
    about.push(format!(
        "model: {model} ({} {}, trained on {}, seed {})",
        m["model"].as_str().unwrap_or("?"),
        m["mode"].as_str().unwrap_or("?"),
        m["train_dataset"].as_str().unwrap_or("?"),
        m["seed"]
    ));
    if let Some(dev) = evaluation(&m["dev"]) {
        let name = format!("dev, {}", m["train_dataset"].as_str().unwrap_or("?"));
        tables.push((name, dev));
    }
    let training = &m["training"];
    let epochs = serde_json::from_value(training["epochs"].clone()).unwrap_or_default();
    let kept = training["best_epoch"].as_u64().map(|e| e as usize);
    (epochs, kept)
}

/// What an eval run's metrics.json adds: its test table; returns the page's title.
fn run_section(m: &serde_json::Value, tables: &mut Vec<(String, Evaluation)>) -> String {
    if let Some(test) = evaluation(&m["test"]) {
        let name = format!("test, {}", m["test_dataset"].as_str().unwrap_or("?"));
        tables.push((name, test));
    }
    format!(
        "umgf report: {} {} trained on {}, tested on {}",
        m["model"].as_str().unwrap_or("?"),
        m["mode"].as_str().unwrap_or("?"),
        m["train_dataset"].as_str().unwrap_or("?"),
        m["test_dataset"].as_str().unwrap_or("?")
    )
}

/// How many of the tweets both runs tagged got different predictions.
fn compare_summary(tweets: &[TweetAnalysis], name: &str, other: &[TweetAnalysis]) -> String {
    let theirs: std::collections::HashMap<&str, &TweetAnalysis> =
        other.iter().map(|t| (t.id.as_str(), t)).collect();
    let shared: Vec<(&TweetAnalysis, &TweetAnalysis)> = tweets
        .iter()
        .filter_map(|t| theirs.get(t.id.as_str()).map(|o| (t, *o)))
        .collect();
    let differ = shared
        .iter()
        .filter(|(t, o)| o.predicted != t.predicted)
        .count();
    format!(
        "compared with {name}: {differ} of the {} tweets both runs tagged differ (filter \"differs from the other run\")",
        shared.len()
    )
}

fn main() -> anyhow::Result<()> {
    umgf_cli::init();
    let cli = Cli::parse();
    let started = std::time::Instant::now();
    let label = cli.data.resolve(&cli.common)?.label;
    let dataset_dir = cli.common.artifacts.join(&label);
    let run = run_dir(&dataset_dir, &cli.run);
    let tweets = read_analysis(&run)?;
    let compare = match &cli.compare {
        Some(other) => {
            let dir = run_dir(&dataset_dir, other);
            Some((dir.display().to_string(), read_analysis(&dir)?))
        }
        None => None,
    };
    let run_metrics = read_json(&run.join(METRICS))?;
    let store = cli.common.open_artifacts()?.store;
    let (model, model_path) = match &cli.model_dir {
        Some(dir) => (dir.display().to_string(), Some(dir.join(METRICS))),
        None => (
            "the one that made the run".to_owned(),
            model_metrics_of(&store, &run)?,
        ),
    };
    let model_metrics = match &model_path {
        Some(path) => read_json(path)?,
        None => None,
    };

    let mut about = vec![format!("run: {}", run.display())];
    let mut tables = Vec::new();
    let curve = match &model_metrics {
        Some(m) => Some(model_section(m, &model, &mut about, &mut tables)),
        None => {
            about.push(
                "model: not in this store (pass --model DIR for its dev table and training curve)"
                    .into(),
            );
            None
        }
    };
    let title = match &run_metrics {
        Some(m) => run_section(m, &mut tables),
        None => format!("umgf report: predictions on {label}"),
    };
    about.push(format!(
        "{} tweets, {} with visual nodes, {} with an image",
        tweets.len(),
        tweets.iter().filter(|t| !t.nodes.is_empty()).count(),
        tweets.iter().filter(|t| t.image.is_some()).count()
    ));
    if let Some((name, other)) = &compare {
        about.push(compare_summary(&tweets, name, other));
    }
    let report = Report {
        title,
        about,
        tables,
        curve,
        tweets: &tweets,
        compare: compare
            .as_ref()
            .map(|(name, t)| (name.clone(), t.as_slice())),
    };
    let out = cli.out.unwrap_or_else(|| dataset_dir.join("report"));
    let written = report::write(&out, &report)?;
    eprintln!(
        "report {label}: {} tweets, {} images ({} unreadable), {:.1} MB of HTML in {:.2} s -> {}",
        written.tweets,
        written.images,
        written.missing_images,
        written.html_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        out.join("index.html").display()
    );
    Ok(())
}
