//! `chunker`: trains the noun-phrase chunker on CoNLL-2000 (a cached stage like any other: its key is
//! the training data, the encoder and the training settings).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::io::conll2000;
use crate::stages::Stage;
use crate::store::{RunOutcome, RunSpec, Store};
use crate::text::chunker::{ChunkerReport, ChunkerTraining, NpChunker};
use crate::text::encoder::EncoderFiles;
use crate::{Error, Result};

const STAGE: &str = "chunker";
/// 2: training also splits handles, hashtags and possessives the way Twitter-2017 does. 3: the head's
/// initialisation is seeded and metrics.json holds no wall-clock time (byte-reproducible runs). 4: dev
/// and test scoring run the encoder in batches of fixed padded lengths (scores, and so the epoch kept, can move
/// by float noise).
const VERSION: u32 = 4;
pub const MODEL: &str = "chunker.safetensors";
pub const METRICS: &str = "metrics.json";

/// Where the chunker learns from: `<data dir>/conll2000/{train,test}.txt` and the text encoder.
#[derive(Clone, Debug)]
pub struct ChunkerInputs {
    pub train: PathBuf,
    pub test: PathBuf,
    pub encoder: EncoderFiles,
}

impl ChunkerInputs {
    pub fn new(data_dir: &Path, encoder: EncoderFiles) -> Self {
        let dir = data_dir.join("conll2000");
        Self {
            train: dir.join("train.txt"),
            test: dir.join("test.txt"),
            encoder,
        }
    }
}

fn spec(inputs: &ChunkerInputs, config: &ChunkerTraining) -> Result<RunSpec> {
    let params = serde_json::to_value(config)?;
    Ok(RunSpec {
        stage: STAGE.to_owned(),
        version: VERSION,
        params,
        inputs: BTreeMap::from([
            ("train".to_owned(), Digest::of_file(&inputs.train)?),
            ("test".to_owned(), Digest::of_file(&inputs.test)?),
            ("encoder".to_owned(), inputs.encoder.digest()?),
        ]),
    })
}

/// Trains the chunker unless a verified one with the same key is stored, here or in the per-user
/// store (its inputs are the same for every dataset and artifacts folder).
fn run(store: &Store, inputs: &ChunkerInputs, config: &ChunkerTraining) -> Result<RunOutcome> {
    let spec = spec(inputs, config)?;
    store.run_shared(&spec, |outputs| {
        let train = conll2000::read(&inputs.train)?;
        let test = conll2000::read(&inputs.test)?;
        tracing::info!(
            "training the noun-phrase chunker on {} CoNLL-2000 sentences",
            train.len()
        );
        // Seeded before the tagging head is initialised, so the same seed gives the same chunker.
        tch::manual_seed(config.seed as i64);
        let mut chunker = NpChunker::new(&inputs.encoder, crate::torch::default_device())?;
        let report = chunker.train(&train, &test, config)?;
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
        format!("CoNLL-2000 test NP F1 {:.2}", c.test_f1)
    }

    fn spec(input: &Input) -> Result<RunSpec> {
        spec(&input.files, &input.training)
    }

    fn run(store: &Store, input: &Input) -> Result<RunOutcome> {
        run(store, &input.files, &input.training)
    }
}
