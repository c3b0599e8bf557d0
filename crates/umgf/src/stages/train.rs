//! `train`: trains the tagger (UMGF or the text-only baseline, frozen or fine-tune) on a dataset's
//! cached artifacts (tweets, text and visual features, graph edges), selects the epoch on dev, and
//! scores dev and test with the kept weights. A cached stage like the others: the same inputs and
//! settings (seed included) are a cache hit, so a second `make train` does no work.
//!
//! Splits: a benchmark's train / dev / test files. A single labelled dump (no splits) is split
//! deterministically: the tweets with the smallest text digests, a tenth of them (at least one),
//! are dev; the rest train; there is no test.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::digest::Digest;
use crate::eval::{Evaluation, conll_predictions, table};
use crate::labels::Tag;
use crate::model::batch::{Example, assemble};
use crate::model::tagger::{self, ModelKind, Tagger, TaggerConfig, TextMode};
use crate::model::train::{EpochLog, TrainConfig, evaluate_examples, train};
use crate::model::umgf::UmgfConfig;
use crate::report::chart::{EpochPoint, training_curve};
use crate::schema::{Artifact, GraphEdge, Split, TextFeatures, Tweet, VisualFeatures};
use crate::stages::Stage;
use crate::stages::text_features::{StateShape, TextFeatureParams};
use crate::store::{RunOutcome, RunSpec, Store};
use crate::text::encoder::EncoderFiles;
use crate::{IoContext, Result};

const STAGE: &str = "train";
/// 2: length-bucketed training batches. 3: the initialisation is seeded, and no wall-clock times in
/// metrics.json and metrics.txt (they are in the manifest): the same seed and inputs give
/// byte-identical artifacts. 4: text features with several layers, the text head (mix, characters,
/// BiLSTM); AdamW of our own (its state goes into checkpoints), every epoch reseeded (a resumed run
/// continues exactly). 5: `curve.png` is the report's chart (named axes, ticks, a legend, the kept
/// epoch), drawn with the carried font.
const VERSION: u32 = 5;
pub const MODEL: &str = tagger::WEIGHTS;
pub const CONFIG: &str = tagger::CONFIG;
pub const METRICS: &str = "metrics.json";
pub const TABLE: &str = "metrics.txt";
pub const CURVE: &str = "curve.png";
pub const DEV_PREDICTIONS: &str = "dev.predictions.conll";
pub const TEST_PREDICTIONS: &str = "test.predictions.conll";

/// The cached artifacts of one dataset that the model reads.
#[derive(Clone, Copy, Debug)]
pub struct DatasetArtifacts {
    pub tweets: Digest,
    pub text_features: Digest,
    pub visual_features: Digest,
    pub graph_edges: Digest,
}

impl DatasetArtifacts {
    pub(crate) fn inputs(&self) -> BTreeMap<String, Digest> {
        BTreeMap::from([
            ("tweets".to_owned(), self.tweets),
            ("text_features".to_owned(), self.text_features),
            ("visual_features".to_owned(), self.visual_features),
            ("graph_edges".to_owned(), self.graph_edges),
        ])
    }

    /// Reads and joins the artifacts: one example per tweet, in the tweets' order.
    pub fn examples(&self, store: &Store) -> Result<Vec<Example>> {
        let path = |d: &Digest| store.blob_path(d);
        let tweets = Tweet::read(&path(&self.tweets))?;
        let text = TextFeatures::read(&path(&self.text_features))?;
        let visual = VisualFeatures::read(&path(&self.visual_features))?;
        let edges = GraphEdge::read(&path(&self.graph_edges))?;
        assemble(&tweets, &text, &visual, &edges)
    }
}

/// What to train and how.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrainParams {
    /// The dataset's label (reports only; its content is in the inputs).
    pub dataset: String,
    pub kind: ModelKind,
    pub mode: TextMode,
    /// The model; its encoder width and cached layer count are set from `features` when it is built.
    pub model: UmgfConfig,
    pub training: TrainConfig,
    /// The text features it trains on (how `features` made them).
    pub features: TextFeatureParams,
}

impl TrainParams {
    /// What `make train` trains with no options: UMGF on frozen states, the default model and
    /// training settings (seed 1).
    pub fn defaults(dataset: &str) -> Self {
        Self {
            dataset: dataset.to_owned(),
            kind: ModelKind::Umgf,
            mode: TextMode::Frozen,
            model: UmgfConfig::default(),
            training: TrainConfig::default(),
            features: TextFeatureParams::default(),
        }
    }
}

fn spec(inputs: &DatasetArtifacts, encoder: Digest, params: &TrainParams) -> Result<RunSpec> {
    let mut all = inputs.inputs();
    all.insert("encoder".to_owned(), encoder);
    Ok(RunSpec {
        stage: STAGE.to_owned(),
        version: VERSION,
        params: serde_json::to_value(params)?,
        inputs: all,
    })
}

/// Train, dev and test examples (see the module's note on dumps).
pub fn split(examples: Vec<Example>) -> Result<(Vec<Example>, Vec<Example>, Vec<Example>)> {
    if let Some(e) = examples.iter().find(|e| e.tags.is_none()) {
        crate::bail!(
            Config,
            "tweet {} has no labels: training needs a labelled dataset",
            e.tweet_id
        );
    }
    let has = |s: Split| examples.iter().any(|e| e.split == s);
    if has(Split::Train) && has(Split::Dev) {
        let (mut train, mut dev, mut test) = (Vec::new(), Vec::new(), Vec::new());
        for e in examples {
            match e.split {
                Split::Train => train.push(e),
                Split::Dev => dev.push(e),
                Split::Test => test.push(e),
                Split::Dump => {}
            }
        }
        return Ok((train, dev, test));
    }
    if examples.len() < 2 {
        crate::bail!(
            Config,
            "a dump of {} tweet(s) cannot be split into train and dev",
            examples.len()
        );
    }
    let mut keyed: Vec<(Digest, Example)> = examples
        .into_iter()
        .map(|e| (Digest::of_strings(&e.words), e))
        .collect();
    keyed.sort_by_key(|(digest, _)| digest.hex());
    let n_dev = (keyed.len() / 10).max(1);
    let train = keyed.split_off(n_dev).into_iter().map(|(_, e)| e).collect();
    let dev = keyed.into_iter().map(|(_, e)| e).collect();
    Ok((train, dev, Vec::new()))
}

/// The width of the caption nodes' features in `examples` (0 when there are none); they must agree.
fn caption_width<'a>(examples: impl Iterator<Item = &'a Example>) -> Result<i64> {
    let mut width = None;
    for e in examples {
        for (features, _) in e.objects.iter().zip(&e.caption_nodes).filter(|(_, c)| **c) {
            match width {
                None => width = Some(features.len()),
                Some(w) if w != features.len() => {
                    return Err(crate::Error::Store(format!(
                        "tweet {}: a caption node of {} features, others have {w}",
                        e.tweet_id,
                        features.len()
                    )));
                }
                Some(_) => {}
            }
        }
    }
    Ok(width.unwrap_or(0) as i64)
}

/// Trains unless a verified run with the same key is stored.
fn run(
    store: &Store,
    inputs: &DatasetArtifacts,
    encoder: &EncoderFiles,
    params: &TrainParams,
) -> Result<RunOutcome> {
    let encoder_digest = encoder.digest()?;
    let spec = spec(inputs, encoder_digest, params)?;
    // The run's per-epoch checkpoints: a killed or stopped run continues from its last epoch.
    let checkpoints = store.checkpoints(&spec.key());
    let outcome = store.run(&spec, |outputs| {
        let (train_set, dev, test) = split(inputs.examples(store)?)?;
        let device = crate::torch::default_device();
        tracing::info!(
            "training {:?} ({:?}) on {}: {} train, {} dev, {} test tweets, seed {}, {device:?}",
            params.kind,
            params.mode,
            params.dataset,
            train_set.len(),
            dev.len(),
            test.len(),
            params.training.seed
        );
        let shape = StateShape::of(&params.features, encoder)?;
        let mut model = params.model.clone();
        model.text_dim = shape.hidden as i64;
        model.text.layers = shape.layers.len() as i64;
        model.caption_dim = caption_width(train_set.iter().chain(&dev).chain(&test))?;
        let config = TaggerConfig::new(
            params.kind,
            params.mode,
            model,
            encoder_digest.hex(),
            params.features.clone(),
            params.dataset.clone(),
        );
        // Seeded before the layers are initialised, so the same seed gives the same model.
        tch::manual_seed(params.training.seed as i64);
        let mut tagger = Tagger::new(config, encoder, device)?;
        let report = train(
            &mut tagger,
            &train_set,
            &dev,
            &params.training,
            Some(&checkpoints),
        )?;
        tagger.save(&outputs.path(CONFIG), &outputs.path(MODEL))?;

        let (dev_tags, dev_eval) = evaluate_examples(&tagger, &dev);
        write_text(
            &outputs.path(DEV_PREDICTIONS),
            &predictions(&dev, &dev_tags),
        )?;
        let test_eval = if test.is_empty() {
            None
        } else {
            let (test_tags, test_eval) = evaluate_examples(&tagger, &test);
            write_text(
                &outputs.path(TEST_PREDICTIONS),
                &predictions(&test, &test_tags),
            )?;
            Some(test_eval)
        };
        write_curve(&outputs.path(CURVE), &report.epochs, report.best_epoch)?;
        let mut columns: Vec<(&str, &Evaluation)> = vec![("dev", &dev_eval)];
        if let Some(t) = &test_eval {
            columns.push(("test", t));
        }
        let heading = format!(
            "{} {} on {} (seed {}, epoch {} of {})\n",
            params.kind.name(),
            params.mode.name(),
            params.dataset,
            params.training.seed,
            report.best_epoch,
            report.epochs.len(),
        );
        write_text(&outputs.path(TABLE), &(heading + &table(&columns)))?;
        let metrics = json!({
            "train_dataset": params.dataset,
            "test_dataset": params.dataset,
            "seed": params.training.seed,
            "model": params.kind,
            "mode": params.mode,
            "device": format!("{device:?}"),
            "dev": dev_eval,
            "test": test_eval,
            "training": report,
            // Which of the cached hidden states the model leaned on (the layers' names are in
            // the features' params: `text_features`).
            "layer_weights": tagger.layer_weights(),
            "text_features": params.features,
        });
        write_text(
            &outputs.path(METRICS),
            &serde_json::to_string_pretty(&metrics)?,
        )?;
        Ok(serde_json::to_value(Counts {
            train_tweets: train_set.len(),
            dev_tweets: dev.len(),
            test_tweets: test.len(),
            best_epoch: report.best_epoch,
            dev_f1: dev_eval.overall.f1,
            test_f1: test_eval.map(|t| t.overall.f1),
            epoch_seconds: report.epochs.iter().map(|e| e.seconds).collect(),
            resumed_after_epoch: report.resumed_after,
        })?)
    })?;
    checkpoints.clear()?;
    Ok(outcome)
}

/// The conlleval-format prediction file of `examples`.
pub fn predictions(examples: &[Example], predicted: &[Vec<Tag>]) -> String {
    let words: Vec<Vec<String>> = examples.iter().map(|e| e.words.clone()).collect();
    let gold: Vec<Option<Vec<Tag>>> = examples.iter().map(|e| e.tags.clone()).collect();
    conll_predictions(&words, &gold, predicted)
}

fn write_text(path: &std::path::Path, text: &str) -> Result<()> {
    std::fs::write(path, text).at(path)
}

/// `curve.png`: the report's training-curve chart at twice its size (sharp on high-density screens).
fn write_curve(path: &std::path::Path, epochs: &[EpochLog], kept_epoch: usize) -> Result<()> {
    let points: Vec<EpochPoint> = epochs
        .iter()
        .map(|e| EpochPoint {
            epoch: e.epoch,
            train_loss: e.train_loss,
            dev_f1: e.dev_f1,
        })
        .collect();
    training_curve(&points, Some(kept_epoch)).write_png(path, 2.0)
}

/// What `train` counts: the tweets, the epoch kept and its scores.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub train_tweets: usize,
    pub dev_tweets: usize,
    pub test_tweets: usize,
    pub best_epoch: usize,
    pub dev_f1: f64,
    /// `None` when the dataset has no labelled test split.
    pub test_f1: Option<f64>,
    /// Wall-clock seconds per epoch: timings live in the manifest (beside its `seconds`), not in
    /// the byte-reproducible artifacts.
    pub epoch_seconds: Vec<f64>,
    /// The epoch a resumed run continued from its checkpoint (0: not resumed).
    pub resumed_after_epoch: usize,
}

/// The `train` stage: trains the tagger on a dataset's artifacts.
pub struct TrainStage;

/// What training reads: the dataset's artifacts, the text encoder and every setting.
pub struct Input {
    pub data: DatasetArtifacts,
    pub encoder: EncoderFiles,
    pub params: TrainParams,
}

impl Stage for TrainStage {
    const NAME: &'static str = STAGE;
    const VERSION: u32 = VERSION;
    type Input = Input;
    type Counts = Counts;

    fn headline(c: &Counts) -> String {
        match c.test_f1 {
            Some(test) => format!("dev F1 {:.2}, test F1 {test:.2}", c.dev_f1),
            None => format!("dev F1 {:.2}", c.dev_f1),
        }
    }

    fn spec(input: &Input) -> Result<RunSpec> {
        spec(&input.data, input.encoder.digest()?, &input.params)
    }

    fn run(store: &Store, input: &Input) -> Result<RunOutcome> {
        run(store, &input.data, &input.encoder, &input.params)
    }
}
