//! `predict` (and `eval`): a trained tagger on a dataset's cached artifacts. Writes the entities of
//! each tweet as JSONL and the tagged tweets as CoNLL (the Twitter-2015 format, `IMGID:` lines, so the
//! output can be ingested again); on labelled tweets also the metrics and a conlleval-format file of
//! gold and predicted tags; and what a report shows of each tweet ([`crate::analysis`]). Cached like
//! every stage: the key is the model's files, the tweets' artifacts and the split.
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::analysis::{Entity, TweetAnalysis};
use crate::digest::Digest;
use crate::eval::{EntityCounts, Evaluation, table};
use crate::labels::{Tag, spans};
use crate::model::batch::Example;
use crate::model::join::{JoinedArtifacts, RowIndex};
use crate::model::tagger::{self, Tagger};
use crate::model::train::{PREDICT_CHUNK, predict_with_gates};
use crate::schema::{GroundedObject, Split};
use crate::stages::Stage;
use crate::stages::train::{DatasetArtifacts, predictions};
use crate::store::{ByParts, RunOutcome, RunOutputs, RunSpec, Store};
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

/// Tweets predicted at a time (see [`PREDICT_CHUNK`]).
pub const CHUNK: usize = PREDICT_CHUNK;

/// Part by part (see [`crate::store::parts`]): each part of the dataset is tagged in a run of its
/// own, so a grown dump tags only the parts that changed. The text outputs are the parts' joined;
/// the scores are computed from the parts' entity counts added up (the same as scoring all tweets
/// at once), so they are written once all parts are in.
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
    let tagger: RefCell<Option<Tagger>> = RefCell::new(None);
    let plan = ByParts {
        inputs: &[
            "tweets",
            "text_features",
            "visual_features",
            "graph_edges",
            "objects",
        ],
        joined: &[ENTITIES, ANALYSIS, CONLL, SCORED],
        ..ByParts::default()
    };
    let work = |part: &BTreeMap<String, Digest>, outputs: &mut RunOutputs<'_>| {
        let data = DatasetArtifacts {
            tweets: part["tweets"],
            text_features: part["text_features"],
            visual_features: part["visual_features"],
            graph_edges: part["graph_edges"],
        };
        let joined = data.open(store)?;
        let mut tagger = tagger.borrow_mut();
        let tagger = match &mut *tagger {
            Some(tagger) => tagger,
            None => tagger.insert(Tagger::load_files(
                &model.config,
                &model.weights,
                encoder,
                crate::torch::default_device(),
            )?),
        };
        let objects = RowIndex::<GroundedObject>::open(
            &[store.blob_path(&part["objects"])],
            joined.tweets(),
        )?;
        let summary = predict_streamed(tagger, &joined, &objects, which, CHUNK, outputs)?;
        Ok(match summary {
            // A part without test tweets (eval): empty outputs, nothing to score.
            None => {
                for name in [ENTITIES, ANALYSIS, CONLL] {
                    write(&outputs.path(name), "")?;
                }
                json!({ "tweets": 0, "entities": 0, "unlabelled": 0 })
            }
            Some(Summary {
                tweets,
                entities,
                counts,
                labelled,
            }) => json!({
                "tweets": tweets,
                "entities": entities,
                "unlabelled": usize::from(!labelled && tweets > 0),
                "entity_counts": counts.to_json(),
            }),
        })
    };
    let finish =
        |parts: &[serde_json::Value], total: serde_json::Value, outputs: &mut RunOutputs<'_>| {
            let tweets = total["tweets"].as_u64().unwrap_or(0) as usize;
            let entities = total["entities"].as_u64().unwrap_or(0) as usize;
            if which == Which::Test && tweets == 0 {
                return Err(crate::Error::Config(format!(
                    "dataset {dataset} has no test split to evaluate"
                )));
            }
            // Scored only when every tweet tagged has gold tags (as a single run decides).
            let labelled = tweets > 0 && total["unlabelled"].as_u64() == Some(0);
            let evaluation = if labelled {
                let mut counts = EntityCounts::default();
                for part in parts.iter().filter_map(|p| p.get("entity_counts")) {
                    let part = EntityCounts::from_json(part).ok_or_else(|| {
                        crate::Error::Store(format!(
                            "predict: a part's entity counts are unreadable: {part}"
                        ))
                    })?;
                    counts.merge(&part);
                }
                Some(counts.evaluation())
            } else {
                outputs.discard(SCORED);
                None
            };
            if let Some(evaluation) = &evaluation {
                let config = tagger::TaggerConfig::read(&model.config)?;
                let metrics = json!({
                    "train_dataset": config.trained_on,
                    "test_dataset": dataset,
                    "tweets": which,
                    "model": config.kind,
                    "mode": config.mode,
                    "test": evaluation,
                });
                write(
                    &outputs.path(METRICS),
                    &serde_json::to_string_pretty(&metrics)?,
                )?;
                let heading = format!(
                    "{} {} trained on {}, tested on {} ({} tweets)\n",
                    config.kind.name(),
                    config.mode.name(),
                    config.trained_on,
                    dataset,
                    tweets
                );
                let columns: [(&str, &Evaluation); 1] = [("test", evaluation)];
                write(&outputs.path(TABLE), &(heading + &table(&columns)))?;
            }
            Ok(serde_json::to_value(Counts {
                tweets,
                entities,
                labelled,
                f1: evaluation.map(|e| e.overall.f1),
            })?)
        };
    store.run_by_parts_then(&spec, &plan, work, finish)
}

/// What a streamed prediction found: tweets tagged, entities, their counts against the gold tags
/// (against no entities for tweets without), and whether every tweet had gold tags.
pub struct Summary {
    pub tweets: usize,
    pub entities: usize,
    pub counts: EntityCounts,
    pub labelled: bool,
}

impl Summary {
    /// The scores, when every tweet had gold tags.
    pub fn evaluation(&self) -> Option<Evaluation> {
        self.labelled.then(|| self.counts.evaluation())
    }
}

/// A file written as it goes (`BufWriter`), errors naming it.
pub(crate) struct OutputFile {
    path: PathBuf,
    file: BufWriter<File>,
}

impl OutputFile {
    pub(crate) fn create(outputs: &mut RunOutputs<'_>, name: &str) -> Result<Self> {
        let path = outputs.path(name);
        let file = BufWriter::new(File::create(&path).at(&path)?);
        Ok(Self { path, file })
    }

    pub(crate) fn write(&mut self, text: &str) -> Result<()> {
        self.file.write_all(text.as_bytes()).at(&self.path)
    }

    pub(crate) fn finish(mut self) -> Result<()> {
        self.file.flush().at(&self.path)
    }
}

/// Predicts the tweets `which` says, `chunk` at a time, in the tweets' order, writing the entities,
/// the tagged tweets, the analysis and (on labelled tweets) the scored tweets to `outputs` as it
/// goes; `None` when `which` is the test split and there is none. What stays in memory is a chunk.
pub fn predict_streamed(
    tagger: &Tagger,
    joined: &JoinedArtifacts,
    objects: &RowIndex<GroundedObject>,
    which: Which,
    chunk: usize,
    outputs: &mut RunOutputs<'_>,
) -> Result<Option<Summary>> {
    let index = joined.tweets();
    let keep = |p: u32| which == Which::All || index.split(p) == Split::Test;
    let all = 0..joined.len();
    if which == Which::Test && !all.clone().any(keep) {
        return Ok(None);
    }
    let labelled = all.clone().filter(|&p| keep(p)).all(|p| index.labelled(p));
    let mut entities_out = OutputFile::create(outputs, ENTITIES)?;
    let mut analysis_out = OutputFile::create(outputs, ANALYSIS)?;
    let mut conll_out = OutputFile::create(outputs, CONLL)?;
    let mut scored_out = labelled
        .then(|| OutputFile::create(outputs, SCORED))
        .transpose()?;
    let mut objects = objects.merge(index, all.clone());
    let mut counts = EntityCounts::default();
    let (mut tweets, mut entities) = (0, 0);
    let mut stream = joined.join(all, keep);
    loop {
        let mut examples = Vec::with_capacity(chunk);
        let mut rows = Vec::with_capacity(chunk);
        for joined in stream.by_ref().take(chunk.max(1)) {
            let joined = joined?;
            examples.push(joined.example);
            rows.push((joined.position, joined.tweet));
        }
        if examples.is_empty() {
            break;
        }
        let with_gates = predict_with_gates(tagger, &examples);
        let predicted: Vec<Vec<Tag>> = with_gates.iter().map(|p| p.tags.clone()).collect();
        for (e, p) in examples.iter().zip(&predicted) {
            match &e.tags {
                Some(gold) => counts.add(gold, p),
                None => counts.add(&vec![Tag::O; e.len()], p),
            }
        }
        tweets += examples.len();
        entities += predicted.iter().map(|p| spans(p).len()).sum::<usize>();
        entities_out.write(&entities_jsonl(&examples, &predicted)?)?;
        let mut analysis = String::new();
        for (((position, tweet), e), p) in rows.iter().zip(&examples).zip(&with_gates) {
            let mine = objects.take(*position)?;
            let mine: Vec<&GroundedObject> = mine.iter().collect();
            let line = TweetAnalysis::new(tweet, &mine, &p.tags, &e.links, &p.gates);
            analysis.push_str(&serde_json::to_string(&line)?);
            analysis.push('\n');
        }
        analysis_out.write(&analysis)?;
        conll_out.write(&tagged_conll(&examples, &predicted))?;
        if let Some(scored) = &mut scored_out {
            scored.write(&predictions(&examples, &predicted))?;
        }
    }
    for out in [entities_out, analysis_out, conll_out]
        .into_iter()
        .chain(scored_out)
    {
        out.finish()?;
    }
    Ok(Some(Summary {
        tweets,
        entities,
        counts,
        labelled,
    }))
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
