//! `predict` (and `eval`): a trained tagger on a dataset's cached artifacts. Writes the entities of
//! each tweet as JSONL and the tagged tweets as CoNLL (the Twitter-2015 format, `IMGID:` lines, so the
//! output can be ingested again); on labelled tweets also the metrics and a conlleval-format file of
//! gold and predicted tags; and what a report shows of each tweet ([`crate::analysis`]). Cached like
//! every stage: the key is the model's files, the tweets' artifacts and the split.
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::analysis::{Entity, TweetAnalysis};
use crate::digest::Digest;
use crate::eval::{Evaluation, table};
use crate::labels::spans;
use crate::model::batch::Example;
use crate::model::tagger::{self, Tagger};
use crate::model::train::{Prediction, evaluate_predicted, predict_with_gates};
use crate::schema::{Artifact, GroundedObject, Split, Tweet};
use crate::stages::Stage;
use crate::stages::train::{DatasetArtifacts, predictions};
use crate::store::{RunOutcome, RunSpec, Store};
use crate::text::encoder::EncoderFiles;
use crate::{IoContext, Result};

const STAGE: &str = "predict";
// Version 2: `analysis.jsonl` (and the objects artifact among the inputs).
const VERSION: u32 = 2;
pub const ENTITIES: &str = "entities.jsonl";
/// Per tweet, what a report shows: entities, visual nodes, links and gates ([`TweetAnalysis`]).
pub const ANALYSIS: &str = "analysis.jsonl";
pub const CONLL: &str = "predictions.conll";
/// Labelled tweets only: gold and predicted tags side by side (conlleval's input), and the scores.
pub const SCORED: &str = "scored.conll";
pub const METRICS: &str = "metrics.json";
pub const TABLE: &str = "metrics.txt";

/// A trained model's two files (a `train` run's outputs, or a folder holding them).
#[derive(Clone, Debug)]
pub struct ModelFiles {
    pub config: PathBuf,
    pub weights: PathBuf,
}

impl ModelFiles {
    pub fn in_dir(dir: &std::path::Path) -> Self {
        Self {
            config: dir.join(tagger::CONFIG),
            weights: dir.join(tagger::WEIGHTS),
        }
    }

    /// Both files are there (else an error saying how to get a model).
    pub fn check(&self) -> Result<()> {
        for path in [&self.config, &self.weights] {
            if !path.is_file() {
                crate::bail!(
                    Config,
                    "{}: no trained model there; run `make train` first (or pass --model DIR)",
                    path.display()
                );
            }
        }
        Ok(())
    }

    /// The model's config (how to rebuild it, and how its text features were made).
    pub fn config(&self) -> Result<tagger::TaggerConfig> {
        self.check()?;
        tagger::TaggerConfig::read(&self.config)
    }
}

/// Which tweets of the dataset to tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Which {
    All,
    /// The test split (what `eval` scores).
    Test,
}

fn spec(
    model: &ModelFiles,
    inputs: &DatasetArtifacts,
    objects: Digest,
    encoder: Digest,
    which: Which,
) -> Result<RunSpec> {
    let mut all = inputs.inputs();
    all.insert("objects".to_owned(), objects);
    all.insert("model_config".to_owned(), Digest::of_file(&model.config)?);
    all.insert("model_weights".to_owned(), Digest::of_file(&model.weights)?);
    all.insert("encoder".to_owned(), encoder);
    Ok(RunSpec {
        stage: STAGE.to_owned(),
        version: VERSION,
        params: json!({ "tweets": which }),
        inputs: all,
    })
}

fn run(store: &Store, input: &Input) -> Result<RunOutcome> {
    let Input {
        model,
        data: inputs,
        objects,
        dataset,
        encoder,
        which,
    } = input;
    let which = *which;
    model.check()?;
    let spec = spec(model, inputs, *objects, encoder.digest()?, which)?;
    store.run(&spec, |outputs| {
        let mut examples = inputs.examples(store)?;
        if which == Which::Test {
            examples.retain(|e| e.split == Split::Test);
            if examples.is_empty() {
                crate::bail!(Config, "dataset {dataset} has no test split to evaluate");
            }
        }
        let tagger = Tagger::load_files(
            &model.config,
            &model.weights,
            encoder,
            crate::torch::default_device(),
        )?;
        let with_gates = predict_with_gates(&tagger, &examples);
        let predicted: Vec<_> = with_gates.iter().map(|p| p.tags.clone()).collect();
        let evaluation = evaluate_predicted(&examples, &predicted);
        let entities = entities_jsonl(&examples, &predicted)?;
        write(&outputs.path(ENTITIES), &entities)?;
        let analysis = analysis_jsonl(store, inputs.tweets, *objects, &examples, &with_gates)?;
        write(&outputs.path(ANALYSIS), &analysis)?;
        write(&outputs.path(CONLL), &tagged_conll(&examples, &predicted))?;
        let labelled = examples.iter().all(|e| e.tags.is_some());
        let found: usize = predicted.iter().map(|p| spans(p).len()).sum();
        if labelled {
            write(&outputs.path(SCORED), &predictions(&examples, &predicted))?;
            let metrics = json!({
                "train_dataset": tagger.config.trained_on,
                "test_dataset": dataset,
                "tweets": which,
                "model": tagger.config.kind,
                "mode": tagger.config.mode,
                "test": evaluation,
            });
            write(
                &outputs.path(METRICS),
                &serde_json::to_string_pretty(&metrics)?,
            )?;
            let heading = format!(
                "{} {} trained on {}, tested on {} ({} tweets)\n",
                tagger.config.kind.name(),
                tagger.config.mode.name(),
                tagger.config.trained_on,
                dataset,
                examples.len()
            );
            let columns: [(&str, &Evaluation); 1] = [("test", &evaluation)];
            write(&outputs.path(TABLE), &(heading + &table(&columns)))?;
        }
        Ok(serde_json::to_value(Counts {
            tweets: examples.len(),
            entities: found,
            labelled,
            f1: labelled.then_some(evaluation.overall.f1),
        })?)
    })
}

/// One line per tweet: `{"id", "tokens", "entities": [{"text", "type", "start", "end"}]}` (word
/// indices, end exclusive).
fn entities_jsonl(examples: &[Example], predicted: &[Vec<crate::labels::Tag>]) -> Result<String> {
    let mut out = String::new();
    for (e, tags) in examples.iter().zip(predicted) {
        let entities = Entity::all(&e.words, tags);
        let line = json!({"id": e.tweet_id, "tokens": e.words, "entities": entities});
        out.push_str(&serde_json::to_string(&line)?);
        out.push('\n');
    }
    Ok(out)
}

/// One [`TweetAnalysis`] line per predicted tweet, from the tweets and objects artifacts.
fn analysis_jsonl(
    store: &Store,
    tweets: Digest,
    objects: Digest,
    examples: &[Example],
    predictions: &[Prediction],
) -> Result<String> {
    let tweets = Tweet::read(&store.blob_path(&tweets))?;
    let tweets: HashMap<&str, &Tweet> = tweets.iter().map(|t| (t.id.as_str(), t)).collect();
    let objects = GroundedObject::read(&store.blob_path(&objects))?;
    let mut by_tweet: HashMap<&str, Vec<&GroundedObject>> = HashMap::new();
    for row in &objects {
        by_tweet.entry(row.tweet_id.as_str()).or_default().push(row);
    }
    let mut out = String::new();
    for (e, p) in examples.iter().zip(predictions) {
        let tweet = tweets.get(e.tweet_id.as_str()).ok_or_else(|| {
            crate::Error::Internal(format!(
                "tweet {} is not in the tweets artifact",
                e.tweet_id
            ))
        })?;
        let rows = by_tweet
            .get(e.tweet_id.as_str())
            .map_or(&[][..], Vec::as_slice);
        let line = TweetAnalysis::new(tweet, rows, &p.tags, &e.links, &p.gates);
        out.push_str(&serde_json::to_string(&line)?);
        out.push('\n');
    }
    Ok(out)
}

/// The Twitter-2015 format: `IMGID:<id>`, then `word<TAB>tag` lines, a blank line after each tweet.
fn tagged_conll(examples: &[Example], predicted: &[Vec<crate::labels::Tag>]) -> String {
    let mut out = String::new();
    for (e, tags) in examples.iter().zip(predicted) {
        let _ = writeln!(out, "IMGID:{}", e.tweet_id);
        for (word, tag) in e.words.iter().zip(tags) {
            let _ = writeln!(out, "{word}\t{tag}");
        }
        out.push('\n');
    }
    out
}

fn write(path: &std::path::Path, text: &str) -> Result<()> {
    std::fs::write(path, text).at(path)
}

/// What `predict` counts: tweets tagged, entities found, and the F1 when every tweet has gold tags.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub tweets: usize,
    pub entities: usize,
    pub labelled: bool,
    pub f1: Option<f64>,
}

/// The `predict` stage (and `eval`, which predicts the test split): a trained model on a dataset.
pub struct PredictStage;

/// What a prediction run reads: the model, the dataset's artifacts (and its label), the text encoder,
/// and which tweets to tag.
pub struct Input {
    pub model: ModelFiles,
    pub data: DatasetArtifacts,
    /// The `objects` artifact the graphs were built from (what each visual node is).
    pub objects: Digest,
    pub dataset: String,
    pub encoder: EncoderFiles,
    pub which: Which,
}

impl Stage for PredictStage {
    const NAME: &'static str = STAGE;
    const VERSION: u32 = VERSION;
    type Input = Input;
    type Counts = Counts;

    fn headline(c: &Counts) -> String {
        match c.f1 {
            Some(f1) => format!("{} tweets, {} entities, F1 {f1:.2}", c.tweets, c.entities),
            None => format!("{} tweets, {} entities", c.tweets, c.entities),
        }
    }

    fn spec(input: &Input) -> Result<RunSpec> {
        spec(
            &input.model,
            &input.data,
            input.objects,
            input.encoder.digest()?,
            input.which,
        )
    }

    fn run(store: &Store, input: &Input) -> Result<RunOutcome> {
        run(store, input)
    }
}
