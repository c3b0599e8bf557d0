//! Helpers shared by the integration tests.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use umgf::dataset::Dataset;
use umgf::schema::{Artifact, Split, Tweet};
use umgf::stages::ingest::{self, OnError};
use umgf::stages::{Artifacts, Stage};
use umgf::text::words::is_url;

/// The real data (../shared/data here). Tests that need it fail, loudly, without it.
pub(crate) fn data_dir() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    umgf::dataset::default_data_dir(here)
        .filter(|d| d.join("twitter2015").is_dir())
        .unwrap_or_else(|| panic!("no data directory with twitter2015/: set UMGF_DATA_DIR"))
}

/// Where the stage binaries are: $UMGF_BIN_DIR, else the profile folder this test binary was built in
/// (`make test` builds the binaries first).
pub(crate) fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("UMGF_BIN_DIR").map_or_else(
        || {
            let exe = std::env::current_exe().expect("current exe");
            exe.parent()
                .and_then(Path::parent)
                .expect("target/<profile>")
                .to_owned()
        },
        PathBuf::from,
    );
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} not built: run `make test` (it builds the stage binaries first)",
        path.display()
    );
    path
}

/// The environment that keeps stage binaries off the per-user store (`~/.cache/umgf/store`): each
/// test's artifacts folder stands alone, whatever earlier runs on this machine left there.
pub(crate) const NO_USER_STORE: (&str, &str) = ("UMGF_USER_STORE", "none");

/// Runs a stage binary with `args`, with the artifacts folder `artifacts`.
pub(crate) fn run_bin(name: &str, artifacts: &Path, args: &[&str]) -> Output {
    Command::new(bin(name))
        .env(NO_USER_STORE.0, NO_USER_STORE.1)
        .args(args)
        .arg("--artifacts")
        .arg(artifacts)
        .arg("--data-dir")
        .arg(data_dir())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run stage binary")
}

/// Ingests `dataset` into a fresh store under `dir` and reads the tweets back.
pub(crate) fn ingest(
    dir: &Path,
    dataset: &Dataset,
    on_error: OnError,
) -> umgf::Result<(umgf::store::Manifest, Vec<Tweet>)> {
    let artifacts = Artifacts::open(dir)?;
    let plan = ingest::plan(&ingest::Input {
        dataset: dataset.clone(),
        on_error,
        limits: Default::default(),
    })?;
    let outcome = ingest::run_plan(&artifacts.store, plan)?;
    let tweets_blob = artifacts
        .store
        .blob_path(&outcome.manifest.output(ingest::TWEETS)?.digest);
    let tweets = Tweet::read(&tweets_blob)?;
    Ok((outcome.manifest, tweets))
}

/// Ingests a dump file (CoNLL or JSONL) into `store` and returns its `tweets` digest.
pub(crate) fn ingest_dump(store: &umgf::store::Store, path: &Path) -> umgf::Digest {
    let dataset = Dataset::resolve(path.to_str().unwrap(), None, None).unwrap();
    let input = ingest::Input {
        dataset,
        on_error: OnError::Fail,
        limits: Default::default(),
    };
    let outcome = ingest::IngestStage::run(store, &input).unwrap();
    outcome.manifest.output(ingest::TWEETS).unwrap().digest
}

/// The repository root.
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Runs a reference script with the reference venv's Python.
pub(crate) fn reference(script: &str, args: &[&str]) {
    let python = repo().join(".venv-ref/bin/python");
    assert!(
        python.is_file(),
        "{} missing: run `make setup-reference` (make test does)",
        python.display()
    );
    let out = Command::new(python)
        .arg(repo().join("scripts/reference").join(script))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first `n` tweets of a Twitter-2017 split, as words.
pub(crate) fn real_tweets(split: Split, n: usize) -> Vec<Vec<String>> {
    twitter2017(split)
        .into_iter()
        .take(n)
        .map(|t| t.tokens)
        .collect()
}

/// The tweets of a Twitter-2017 split, ingested into a scratch store.
fn twitter2017(split: Split) -> Vec<Tweet> {
    let dir = tempfile::tempdir().unwrap();
    let dataset = Dataset::resolve("twitter2017", Some(&data_dir()), None).unwrap();
    let (_, tweets) = ingest(dir.path(), &dataset, OnError::Fail).unwrap();
    tweets.into_iter().filter(|t| t.split == split).collect()
}

/// The first `n` captioned tweets of a Twitter-2017 split, with their BLIP-2 captions.
pub(crate) fn real_captioned_tweets(split: Split, n: usize) -> Vec<(Vec<String>, String)> {
    twitter2017(split)
        .into_iter()
        .filter_map(|t| Some((t.tokens, t.caption?)))
        .take(n)
        .collect()
}

/// A tweet's words as the encoder reads them: a URL is the word "url".
pub(crate) fn encoder_words(words: &[String]) -> Vec<String> {
    words
        .iter()
        .map(|w| {
            if is_url(w) {
                "url".to_owned()
            } else {
                w.clone()
            }
        })
        .collect()
}

/// Runs a reference encoder script (`bert_states.py`, `mpnet_states.py`) on the model in `model`, in
/// `mode` (`--input` ids or `--tokenize` words) on `input`, written as JSON in `dir`, with `extra`
/// arguments; returns the path of its output file `output`.
pub(crate) fn run_encoder_reference(
    script: &str,
    model: &Path,
    dir: &Path,
    (mode, input): (&str, serde_json::Value),
    output: &str,
    extra: &[&str],
) -> PathBuf {
    let input_path = dir.join("input.json");
    std::fs::write(&input_path, input.to_string()).unwrap();
    let out = dir.join(output);
    let mut args = vec![
        "--model",
        model.to_str().unwrap(),
        mode,
        input_path.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    reference(script, &args);
    out
}

/// How HF's tokenizer splits one tweet.
pub(crate) struct HfPieces {
    /// The whole tweet's piece ids, special pieces included.
    pub ids: Vec<u32>,
    /// Each word's first piece; `None` when HF's normaliser erased a word (it then has no piece).
    pub word_starts: Option<Vec<u32>>,
    /// Each word's pieces, tokenized alone without special pieces.
    pub word_pieces: Vec<Vec<u32>>,
}

/// HF's word pieces of `tweets` from the tokenizer in `model`, by the reference `script`'s tokenizer
/// mode. URLs go in as the word "url", as the pipeline feeds them to the encoder.
pub(crate) fn hf_word_pieces(script: &str, model: &Path, tweets: &[Vec<String>]) -> Vec<HfPieces> {
    let words: Vec<Vec<String>> = tweets.iter().map(|t| encoder_words(t)).collect();
    let dir = tempfile::tempdir().unwrap();
    let out = run_encoder_reference(
        script,
        model,
        dir.path(),
        ("--tokenize", serde_json::json!({ "words": words })),
        "tok.json",
        &[],
    );
    let hf: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let field = |name: &str, i: usize| hf[name][i].clone();
    tweets
        .iter()
        .enumerate()
        .map(|(i, tweet)| {
            let word_ids: Vec<Option<usize>> =
                serde_json::from_value(field("word_ids", i)).unwrap();
            let starts: Vec<u32> = (0..tweet.len())
                .filter_map(|w| {
                    word_ids
                        .iter()
                        .position(|x| *x == Some(w))
                        .map(|p| p as u32)
                })
                .collect();
            HfPieces {
                ids: serde_json::from_value(field("input_ids", i)).unwrap(),
                word_starts: (starts.len() == tweet.len()).then_some(starts),
                word_pieces: serde_json::from_value(field("word_pieces", i)).unwrap(),
            }
        })
        .collect()
}

/// Runs a Node reference script (its modules come from `.node-ref`, installed by set-up).
pub(crate) fn node_reference(script: &str, args: &[&str]) {
    assert!(
        repo().join(".node-ref/node_modules").is_dir(),
        ".node-ref missing: run `make setup-reference` (make test does)"
    );
    let out = Command::new("node")
        .arg(repo().join("scripts/reference").join(script))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ground` with the installed detector and text encoder.
pub(crate) fn ground(
    store: &umgf::store::Store,
    tweets: umgf::Digest,
    phrases: umgf::Digest,
    params: &umgf::stages::ground::GroundParams,
) -> umgf::store::RunOutcome {
    let models = repo().join("models");
    let input = umgf::stages::ground::Input {
        tweets,
        phrases,
        models: umgf::stages::ground::GroundModels {
            detector: umgf::vision::detector::default_model(&models),
            encoder: umgf::text::encoder::default_files(&models),
        },
        params: params.clone(),
    };
    umgf::stages::ground::GroundStage::run(store, &input).unwrap()
}

/// The installed MiniLM (the chunker's, the grounder's and the default text encoder).
fn minilm() -> umgf::text::encoder::EncoderFiles {
    umgf::text::encoder::default_files(&repo().join("models"))
}

/// `chunk` with the chunker stored as `chunker`, on the installed MiniLM.
pub(crate) fn chunk(
    store: &umgf::store::Store,
    tweets: umgf::Digest,
    chunker: umgf::Digest,
) -> umgf::store::RunOutcome {
    let input = umgf::stages::chunk::Input {
        tweets,
        chunker,
        encoder: minilm(),
    };
    umgf::stages::chunk::ChunkStage::run(store, &input).unwrap()
}

/// `features` (text) with `params`, on the installed MiniLM.
pub(crate) fn text_features(
    store: &umgf::store::Store,
    tweets: umgf::Digest,
    params: &umgf::stages::text_features::TextFeatureParams,
) -> umgf::store::RunOutcome {
    let input = umgf::stages::text_features::Input {
        tweets,
        encoder: minilm(),
        params: params.clone(),
    };
    umgf::stages::text_features::TextFeaturesStage::run(store, &input).unwrap()
}

/// `graphs` on the tweets and their objects.
pub(crate) fn graphs(
    store: &umgf::store::Store,
    tweets: umgf::Digest,
    objects: umgf::Digest,
) -> umgf::store::RunOutcome {
    let input = umgf::stages::graphs::Input { tweets, objects };
    umgf::stages::graphs::GraphsStage::run(store, &input).unwrap()
}

/// `train` with `params`, on the installed MiniLM.
pub(crate) fn train(
    store: &umgf::store::Store,
    data: umgf::stages::train::DatasetArtifacts,
    params: &umgf::stages::train::TrainParams,
) -> umgf::store::RunOutcome {
    let input = umgf::stages::train::Input {
        data,
        encoder: minilm(),
        params: params.clone(),
    };
    umgf::stages::train::TrainStage::run(store, &input).unwrap()
}

/// `visual_features` with the installed EfficientNet-Lite0.
pub(crate) fn visual_features(
    store: &umgf::store::Store,
    tweets: umgf::Digest,
    objects: umgf::Digest,
) -> umgf::store::RunOutcome {
    let input = umgf::stages::visual_features::Input {
        tweets,
        objects,
        model: umgf::vision::efficientnet::default_model(&repo().join("models")),
        text_encoder: minilm(),
    };
    umgf::stages::visual_features::VisualFeaturesStage::run(store, &input).unwrap()
}

/// The labelled slice: the photo tweets of `train.rs` plus `n` real Twitter-2017 dev tweets.
pub(crate) fn write_labelled_slice(path: &Path, n: usize) {
    crate::train::write_labelled_dump(path, &crate::train::records());
    let dev = data_dir().join("twitter2017/valid.txt");
    let parsed = umgf::io::conll::read(&dev, &Default::default()).unwrap();
    let mut lines = std::fs::read_to_string(path).unwrap();
    for tweet in parsed.tweets.iter().take(n) {
        let labels: Vec<String> = tweet
            .labels
            .iter()
            .flatten()
            .map(ToString::to_string)
            .collect();
        let record = serde_json::json!({"id": tweet.id, "tokens": tweet.tokens, "image": null, "labels": labels});
        lines += &(record.to_string() + "\n");
    }
    std::fs::write(path, lines).unwrap();
}
