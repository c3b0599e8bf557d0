//! `chunker`: trains the noun-phrase chunker on CoNLL-2000 (a cached stage like any other: its key is
//! the training data, the encoder and the training settings).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::io::conll2000::ChunkedSentence;
use crate::io::{conll2000, conllu};
use crate::stages::Stage;
use crate::store::{RunOutcome, RunSpec, Store};
use crate::text::chunker::{ChunkerReport, ChunkerTraining, NpChunker, SpanScores};
use crate::text::encoder::EncoderFiles;
use crate::text::np::base_noun_phrases;
use crate::{Error, Result};

const STAGE: &str = "chunker";
/// 2: training also splits handles, hashtags and possessives the way Twitter-2017 does. 3: the head's
/// initialisation is seeded and metrics.json holds no wall-clock time (byte-reproducible runs). 4: dev
/// and test scoring run the encoder in batches of fixed padded lengths (scores, and so the epoch kept, can move
/// by float noise).
const VERSION: u32 = 4;
pub const MODEL: &str = "chunker.safetensors";
pub const METRICS: &str = "metrics.json";

/// Where the chunker learns from: `<data dir>/conll2000/{train,test}.txt` and the text encoder, and
/// with `ChunkerTraining::tweebank` also `<data dir>/tweebank/en-ud-tweet-{train,test}.conllu`.
#[derive(Clone, Debug)]
pub struct ChunkerInputs {
    pub train: PathBuf,
    pub test: PathBuf,
    pub encoder: EncoderFiles,
    /// Tweebank v2's train and test trees, when the training asks for them.
    pub tweebank: Option<(PathBuf, PathBuf)>,
}

impl ChunkerInputs {
    pub fn new(data_dir: &Path, encoder: EncoderFiles, training: &ChunkerTraining) -> Self {
        let dir = data_dir.join("conll2000");
        let tweebank = data_dir.join("tweebank");
        Self {
            train: dir.join("train.txt"),
            test: dir.join("test.txt"),
            encoder,
            tweebank: training.tweebank.then(|| {
                (
                    tweebank.join("en-ud-tweet-train.conllu"),
                    tweebank.join("en-ud-tweet-test.conllu"),
                )
            }),
        }
    }
}

/// Tweebank trees as NP-chunked sentences (`text::np::base_noun_phrases`).
pub fn tweebank_chunks(path: &Path) -> Result<Vec<ChunkedSentence>> {
    Ok(conllu::read(path)?
        .iter()
        .map(|tree| ChunkedSentence {
            words: tree.words.iter().map(|w| w.form.clone()).collect(),
            tags: base_noun_phrases(tree),
        })
        .collect())
}

fn spec(inputs: &ChunkerInputs, config: &ChunkerTraining) -> Result<RunSpec> {
    let params = serde_json::to_value(config)?;
    Ok(RunSpec {
        stage: STAGE.to_owned(),
        version: VERSION,
        params,
        inputs: {
            let mut inputs_map = BTreeMap::from([
                ("train".to_owned(), Digest::of_file(&inputs.train)?),
                ("test".to_owned(), Digest::of_file(&inputs.test)?),
                ("encoder".to_owned(), inputs.encoder.digest()?),
            ]);
            if let Some((train, test)) = &inputs.tweebank {
                inputs_map.insert("tweebank_train".to_owned(), Digest::of_file(train)?);
                inputs_map.insert("tweebank_test".to_owned(), Digest::of_file(test)?);
            }
            inputs_map
        },
    })
}

/// Trains the chunker unless a verified one with the same key is stored, here or in the per-user
/// store (its inputs are the same for every dataset and artifacts folder).
fn run(store: &Store, inputs: &ChunkerInputs, config: &ChunkerTraining) -> Result<RunOutcome> {
    let spec = spec(inputs, config)?;
    store.run_shared(&spec, |outputs| {
        let mut train = conll2000::read(&inputs.train)?;
        let test = conll2000::read(&inputs.test)?;
        tracing::info!(
            "training the noun-phrase chunker on {} CoNLL-2000 sentences",
            train.len()
        );
        let tweebank = match &inputs.tweebank {
            Some((tweets, test)) => {
                let tweets = tweebank_chunks(tweets)?;
                tracing::info!("and on {} Tweebank v2 tweets", tweets.len());
                train.extend(tweets);
                Some(tweebank_chunks(test)?)
            }
            None => None,
        };
        // Seeded before the tagging head is initialised, so the same seed gives the same chunker.
        tch::manual_seed(config.seed as i64);
        let mut chunker = NpChunker::new(&inputs.encoder, crate::torch::default_device())?;
        let mut report = chunker.train(&train, &test, config)?;
        if let Some(test) = tweebank {
            let (p, r, f1) = chunker.evaluate(&test)?;
            report.tweebank_test = Some(SpanScores {
                precision: p,
                recall: r,
                f1,
            });
        }
        chunker.save(&outputs.path(MODEL))?;
        // No wall-clock time in the report (the manifest records it): artifacts are byte-reproducible.
        let path = outputs.path(METRICS);
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(&path, text).map_err(|source| Error::Io { path, source })?;
        Ok(serde_json::to_value(report)?)
    })
}

/// The `chunker` stage: trains the noun-phrase chunker.
pub struct ChunkerStage;

/// What the chunker is trained from, and how.
pub struct Input {
    pub files: ChunkerInputs,
    pub training: ChunkerTraining,
}

impl Stage for ChunkerStage {
    const NAME: &'static str = STAGE;
    const VERSION: u32 = VERSION;
    type Input = Input;
    /// The training report, which is also `metrics.json`.
    type Counts = ChunkerReport;

    fn headline(c: &ChunkerReport) -> String {
        match &c.tweebank_test {
            Some(t) => format!(
                "CoNLL-2000 test NP F1 {:.2}, Tweebank test {:.2}",
                c.test_f1, t.f1
            ),
            None => format!("CoNLL-2000 test NP F1 {:.2}", c.test_f1),
        }
    }

    fn spec(input: &Input) -> Result<RunSpec> {
        spec(&input.files, &input.training)
    }

    fn run(store: &Store, input: &Input) -> Result<RunOutcome> {
        run(store, &input.files, &input.training)
    }
}
