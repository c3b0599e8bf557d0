//! `train`: trains the tagger (UMGF or the text-only baseline, frozen or fine-tune) on a dataset's
//! cached artifacts (tweets, text and visual features, graph edges), selects the epoch on dev, and
//! scores dev and test with the kept weights. A cached stage like the others: the same inputs and
//! settings (seed included) are a cache hit, so a second `make train` does no work.
//!
//! Splits: a benchmark's train / dev / test files. A single labelled dump (no splits) is split
//! deterministically: the tweets with the smallest text digests, a tenth of them (at least one),
//! are dev; the rest train; there is no test.
use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::digest::Digest;
use crate::eval::{Evaluation, conll_predictions, table};
use crate::labels::Tag;
use crate::model::batch::Example;
use crate::model::join::{ArtifactPaths, BLOCK, JoinedArtifacts, in_memory_bytes};
use crate::model::tagger::{self, ModelKind, Tagger, TaggerConfig, TextMode};
use crate::model::train::{
    BUCKET_POOL, EpochLog, Examples, PREDICT_CHUNK, TrainConfig, evaluate_set, length_batches,
    train,
};
use crate::model::umgf::UmgfConfig;
use crate::report::chart::{EpochPoint, training_curve};
use crate::rng::Rng;
use crate::schema::{NodeKind, Split};
use crate::stages::Stage;
use crate::stages::predict::OutputFile;
use crate::stages::text_features::{StateShape, TextFeatureParams};
use crate::store::{Checkpoints, RunOutcome, RunOutputs, RunSpec, Store};
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

    /// The artifacts' files in the store (one file each).
    pub fn paths(&self, store: &Store) -> ArtifactPaths {
        let path = |d: &Digest| vec![store.blob_path(d)];
        ArtifactPaths {
            tweets: path(&self.tweets),
            text_features: path(&self.text_features),
            visual_features: path(&self.visual_features),
            graph_edges: path(&self.graph_edges),
        }
    }

    /// The artifacts opened for the streamed join (see [`crate::model::join`]).
    pub fn open(&self, store: &Store) -> Result<JoinedArtifacts> {
        JoinedArtifacts::open(&self.paths(store))
    }

    /// Reads and joins the artifacts: one example per tweet, in the tweets' order, all in memory.
    pub fn examples(&self, store: &Store) -> Result<Vec<Example>> {
        let joined = self.open(store)?;
        joined.examples(0..joined.len(), |_| true).collect()
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
    /// The most memory (bytes) training may give the dataset's examples; [`TrainParams::fit`]
    /// turns it into `streamed`. Not in the run's key: when the examples fit, the run is the same
    /// whatever the budget.
    #[serde(skip)]
    pub memory_budget: u64,
    /// Each epoch is streamed from the artifacts (the examples do not fit in the budget), with
    /// dev and test: the batches are drawn in another order than in memory (blocks of tweets in a
    /// shuffled order, then shuffled within a pool), so the result differs, and the key says so.
    /// In the key only when true, so the keys of in-memory runs are those of before the option.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub streamed: bool,
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
            memory_budget: crate::memory::default_budget(),
            streamed: false,
        }
    }

    /// Decides `streamed`: whether the examples of `data` exceed `memory_budget`, by the
    /// uncompressed sizes in the artifacts' footers (about what the examples hold; the model,
    /// libtorch and a batch come on top, hence a budget below physical memory).
    pub fn fit(&mut self, store: &Store, data: &DatasetArtifacts) -> Result<()> {
        let bytes = in_memory_bytes(&data.paths(store))?;
        self.streamed = bytes > self.memory_budget;
        if self.streamed {
            tracing::info!(
                "the examples take about {} MB, over the memory budget of {} MB: training streams them",
                bytes >> 20,
                self.memory_budget >> 20
            );
        }
        Ok(())
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
    let spec = spec(inputs, encoder.digest()?, params)?;
    // The run's per-epoch checkpoints: a killed or stopped run continues from its last epoch.
    let checkpoints = store.checkpoints(&spec.key());
    let outcome = store.run(&spec, |outputs| {
        if params.streamed {
            let joined = inputs.open(store)?;
            let [train_set, dev, test] = streamed_split(&joined)?;
            let caption_dim = streamed_caption_width(&joined)?;
            train_on(
                outputs,
                encoder,
                params,
                &checkpoints,
                [&train_set, &dev, &test],
                caption_dim,
            )
        } else {
            let (train_set, dev, test) = split(inputs.examples(store)?)?;
            let caption_dim = caption_width(train_set.iter().chain(&dev).chain(&test))?;
            train_on(
                outputs,
                encoder,
                params,
                &checkpoints,
                [&train_set, &dev, &test],
                caption_dim,
            )
        }
    })?;
    checkpoints.clear()?;
    Ok(outcome)
}

/// Trains on `sets` (train, dev, test), then writes the model, its scores, the curve and the dev and
/// test predictions; the run's counts.
fn train_on(
    outputs: &mut RunOutputs<'_>,
    encoder: &EncoderFiles,
    params: &TrainParams,
    checkpoints: &Checkpoints<'_>,
    sets: [&dyn Examples; 3],
    caption_dim: i64,
) -> Result<serde_json::Value> {
    let [train_set, dev, test] = sets;
    let encoder_digest = encoder.digest()?;
    let device = crate::torch::default_device();
    tracing::info!(
        "training {:?} ({:?}) on {}: {} train, {} dev, {} test tweets, seed {}, {device:?}{}",
        params.kind,
        params.mode,
        params.dataset,
        train_set.len(),
        dev.len(),
        test.len(),
        params.training.seed,
        if params.streamed {
            ", streamed from the artifacts"
        } else {
            ""
        }
    );
    let shape = StateShape::of(&params.features, encoder)?;
    let mut model = params.model.clone();
    model.text_dim = shape.hidden as i64;
    model.text.layers = shape.layers.len() as i64;
    model.caption_dim = caption_dim;
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
        train_set,
        dev,
        &params.training,
        Some(checkpoints),
    )?;
    tagger.save(&outputs.path(CONFIG), &outputs.path(MODEL))?;

    let dev_eval = evaluate_to(&tagger, dev, outputs, DEV_PREDICTIONS)?;
    let test_eval = if test.is_empty() {
        None
    } else {
        Some(evaluate_to(&tagger, test, outputs, TEST_PREDICTIONS)?)
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
}

/// Predicts `examples` and scores them, writing their conlleval-format predictions to the output
/// `name` chunk by chunk.
fn evaluate_to(
    tagger: &Tagger,
    examples: &dyn Examples,
    outputs: &mut RunOutputs<'_>,
    name: &str,
) -> Result<Evaluation> {
    let mut out = OutputFile::create(outputs, name)?;
    let evaluation = evaluate_set(tagger, examples, &mut |chunk, tags| {
        out.write(&predictions(chunk, tags))
    })?;
    out.finish()?;
    Ok(evaluation)
}

/// One split of a dataset streamed from its artifacts: the tweets it holds, by position.
struct StreamedSplit<'a> {
    joined: &'a JoinedArtifacts,
    members: Vec<bool>,
    len: usize,
}

impl<'a> StreamedSplit<'a> {
    fn new(joined: &'a JoinedArtifacts, members: Vec<bool>) -> Self {
        let len = members.iter().filter(|&&m| m).count();
        Self {
            joined,
            members,
            len,
        }
    }

    /// The blocks ([`BLOCK`] tweets) that hold some of its tweets.
    fn blocks(&self) -> Vec<u32> {
        self.members
            .chunks(BLOCK as usize)
            .enumerate()
            .filter(|(_, block)| block.iter().any(|&m| m))
            .map(|(b, _)| b as u32)
            .collect()
    }

    fn examples(&self, positions: Range<u32>) -> impl Iterator<Item = Result<Example>> + '_ {
        self.joined
            .examples(positions, |p| self.members[p as usize])
    }
}

impl Examples for StreamedSplit<'_> {
    fn len(&self) -> usize {
        self.len
    }

    /// The blocks in an order shuffled with `rng`, their tweets gathered into pools of
    /// [`BUCKET_POOL`] batches, each pool shuffled and cut into length batches as a whole dataset
    /// is in memory: what stays in memory is a pool and a block.
    fn epoch(
        &self,
        batch_size: usize,
        rng: &mut Rng,
        step: &mut dyn FnMut(&[&Example], &mut Rng) -> Result<()>,
    ) -> Result<()> {
        let mut blocks = self.blocks();
        rng.shuffle(&mut blocks);
        let pool_size = batch_size * BUCKET_POOL;
        let mut pool: Vec<Example> = Vec::with_capacity(pool_size);
        let mut train_pool = |pool: &mut Vec<Example>, rng: &mut Rng| -> Result<()> {
            let mut order: Vec<usize> = (0..pool.len()).collect();
            rng.shuffle(&mut order);
            for chunk in length_batches(&mut order, |i| pool[i].len(), batch_size, rng) {
                let examples: Vec<&Example> = chunk.iter().map(|&i| &pool[i]).collect();
                step(&examples, rng)?;
            }
            pool.clear();
            Ok(())
        };
        for block in blocks {
            for example in self.examples(block * BLOCK..(block + 1) * BLOCK) {
                pool.push(example?);
                if pool.len() == pool_size {
                    train_pool(&mut pool, rng)?;
                }
            }
        }
        if !pool.is_empty() {
            train_pool(&mut pool, rng)?;
        }
        Ok(())
    }

    /// Its tweets in order, [`PREDICT_CHUNK`] at a time, reading only the blocks that hold some.
    fn chunks(&self, each: &mut dyn FnMut(&[Example]) -> Result<()>) -> Result<()> {
        // Runs of consecutive blocks, each read as one range.
        let mut ranges: Vec<Range<u32>> = Vec::new();
        for block in self.blocks() {
            match ranges.last_mut() {
                Some(range) if range.end == block * BLOCK => range.end += BLOCK,
                _ => ranges.push(block * BLOCK..(block + 1) * BLOCK),
            }
        }
        for range in ranges {
            let mut stream = self.examples(range);
            loop {
                let chunk = stream
                    .by_ref()
                    .take(PREDICT_CHUNK)
                    .collect::<Result<Vec<_>>>()?;
                if chunk.is_empty() {
                    break;
                }
                each(&chunk)?;
            }
        }
        Ok(())
    }
}

/// [`split`] of a streamed dataset: train, dev and test by position, each read from the artifacts
/// when used. A single dump's dev tweets are those [`split`] picks (the smallest text digests).
fn streamed_split(joined: &JoinedArtifacts) -> Result<[StreamedSplit<'_>; 3]> {
    let index = joined.tweets();
    let n = index.len();
    if (0..n).any(|p| !index.labelled(p)) {
        let mut first = None;
        joined.for_each_tweet(|_, t| {
            if first.is_none() && t.labels.is_none() {
                first = Some(t.id.clone());
            }
            Ok(())
        })?;
        crate::bail!(
            Config,
            "tweet {} has no labels: training needs a labelled dataset",
            first.unwrap_or_default()
        );
    }
    let has = |s: Split| (0..n).any(|p| index.split(p) == s);
    let of = |s: Split| (0..n).map(|p| index.split(p) == s).collect::<Vec<_>>();
    if has(Split::Train) && has(Split::Dev) {
        return Ok([
            StreamedSplit::new(joined, of(Split::Train)),
            StreamedSplit::new(joined, of(Split::Dev)),
            StreamedSplit::new(joined, of(Split::Test)),
        ]);
    }
    if n < 2 {
        crate::bail!(
            Config,
            "a dump of {n} tweet(s) cannot be split into train and dev"
        );
    }
    let mut keyed: Vec<(String, u32)> = Vec::with_capacity(n as usize);
    joined.for_each_tweet(|p, t| {
        keyed.push((Digest::of_strings(&t.tokens).hex(), p));
        Ok(())
    })?;
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let n_dev = (keyed.len() / 10).max(1);
    let mut dev = vec![false; n as usize];
    for (_, p) in &keyed[..n_dev] {
        dev[*p as usize] = true;
    }
    let train = dev.iter().map(|d| !d).collect();
    Ok([
        StreamedSplit::new(joined, train),
        StreamedSplit::new(joined, dev),
        StreamedSplit::new(joined, vec![false; n as usize]),
    ])
}

/// [`caption_width`] of a streamed dataset, from its visual features' rows.
fn streamed_caption_width(joined: &JoinedArtifacts) -> Result<i64> {
    let mut width = None;
    joined.for_each_visual(|v| {
        if v.kind != NodeKind::Caption || v.object_id.is_none() {
            return Ok(());
        }
        match width {
            None => width = Some(v.features.len()),
            Some(w) if w != v.features.len() => {
                return Err(crate::Error::Store(format!(
                    "tweet {}: a caption node of {} features, others have {w}",
                    v.tweet_id,
                    v.features.len()
                )));
            }
            Some(_) => {}
        }
        Ok(())
    })?;
    Ok(width.unwrap_or(0) as i64)
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::model::join::fixture;

    fn ids(examples: &[&Example]) -> Vec<String> {
        examples.iter().map(|e| e.tweet_id.clone()).collect()
    }

    /// The batches of one streamed epoch, as tweet ids.
    fn epoch(set: &StreamedSplit<'_>, batch_size: usize, seed: u64) -> Vec<Vec<String>> {
        let mut batches = Vec::new();
        set.epoch(batch_size, &mut Rng::new(seed), &mut |batch, _| {
            batches.push(ids(batch));
            Ok(())
        })
        .unwrap();
        batches
    }

    #[test]
    fn a_streamed_epoch_draws_every_training_tweet_once_the_same_way_per_seed() {
        let dir = tempfile::tempdir().unwrap();
        let rows = fixture::rows(1000);
        let joined = JoinedArtifacts::open(&fixture::write_all(dir.path(), &rows, 2)).unwrap();
        let [train_set, dev, test] = streamed_split(&joined).unwrap();
        let (in_memory_train, in_memory_dev, in_memory_test) = split(
            joined
                .examples(0..joined.len(), |_| true)
                .collect::<Result<_>>()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (train_set.len(), dev.len(), test.len()),
            (
                in_memory_train.len(),
                in_memory_dev.len(),
                in_memory_test.len()
            )
        );

        let batch_size = 3;
        let batches = epoch(&train_set, batch_size, 7);
        // As many steps as in memory: only the last batch may be short.
        assert_eq!(batches.len(), train_set.len().div_ceil(batch_size));
        let drawn: Vec<&String> = batches.iter().flatten().collect();
        let unique: BTreeSet<&String> = drawn.iter().copied().collect();
        let expected: BTreeSet<&String> = in_memory_train.iter().map(|e| &e.tweet_id).collect();
        assert_eq!(drawn.len(), train_set.len());
        assert_eq!(unique, expected);
        assert_eq!(epoch(&train_set, batch_size, 7), batches);
        assert_ne!(epoch(&train_set, batch_size, 8), batches);
        // Shuffled beyond a pool: the pools do not follow the tweets' order.
        let first_blocks: Vec<u32> = batches
            .chunks(BUCKET_POOL)
            .map(|pool| {
                let block = |id: &String| id[1..].parse::<u32>().unwrap() / BLOCK;
                pool.iter().flatten().map(block).min().unwrap()
            })
            .collect();
        assert!(first_blocks.len() > 3, "{first_blocks:?}");
        assert!(!first_blocks.is_sorted(), "{first_blocks:?}");

        // Dev and test are read in order, as in memory.
        for (set, in_memory) in [(&dev, &in_memory_dev), (&test, &in_memory_test)] {
            let mut read = Vec::new();
            set.chunks(&mut |chunk| {
                read.extend(chunk.iter().map(|e| format!("{e:?}")));
                Ok(())
            })
            .unwrap();
            let expected: Vec<String> = in_memory.iter().map(|e| format!("{e:?}")).collect();
            assert_eq!(read, expected);
        }
    }

    #[test]
    fn a_streamed_dump_is_split_as_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows = fixture::rows(300);
        for t in &mut rows.tweets {
            t.split = Split::Dump;
        }
        let joined = JoinedArtifacts::open(&fixture::write_all(dir.path(), &rows, 1)).unwrap();
        let [train_set, dev, test] = streamed_split(&joined).unwrap();
        let (in_memory_train, in_memory_dev, _) = split(
            joined
                .examples(0..joined.len(), |_| true)
                .collect::<Result<_>>()
                .unwrap(),
        )
        .unwrap();
        let members = |set: &StreamedSplit<'_>| -> BTreeSet<String> {
            let mut ids = BTreeSet::new();
            set.chunks(&mut |chunk| {
                ids.extend(chunk.iter().map(|e| e.tweet_id.clone()));
                Ok(())
            })
            .unwrap();
            ids
        };
        let of = |examples: &[Example]| -> BTreeSet<String> {
            examples.iter().map(|e| e.tweet_id.clone()).collect()
        };
        assert_eq!(members(&dev), of(&in_memory_dev));
        assert_eq!(members(&train_set), of(&in_memory_train));
        assert_eq!(test.len(), 0);
    }
}
