//! What every stage binary shares: common arguments, logging, and how results are reported.
use std::path::PathBuf;

use clap::Args;
mod train_args;
pub mod upstream;

use umgf::Digest;
use umgf::dataset::{CaptionsChoice, Dataset};
use umgf::io::Limits;
use umgf::schema::StateStorage;
use umgf::stages::ground::{CaptionNodes, GroundParams};
use umgf::stages::ingest::{self, IngestStage, OnError};
use umgf::stages::predict;
use umgf::stages::text_features::{LayerSelection, Pooling, TextContext, TextFeatureParams};
use umgf::stages::train::DatasetArtifacts;
use umgf::stages::{Artifacts, ShardedStage, Stage, graphs, text_features, visual_features};
use umgf::store::{RunOutcome, Shard, Store};
use umgf::text::chunker::ChunkerTraining;
use umgf::text::encoder::{EncoderName, Precision};

pub use train_args::TrainArgs;
pub use upstream::{Mode, Upstream};

/// Arguments every stage takes.
#[derive(Args, Debug)]
pub struct Common {
    /// Where artifacts live: the store, plus one folder of friendly links per dataset.
    #[arg(long, env = "UMGF_ARTIFACTS", default_value = "artifacts")]
    pub artifacts: PathBuf,
    /// The data directory (default: $UMGF_DATA_DIR, else the first `shared/data` above the current folder).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The folder `make setup` fills with weights.
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// The per-user store where the chunker, trained once, is found by every clone and artifacts
    /// folder (default: store/ in the download cache, $UMGF_CACHE or ~/.cache/umgf; `none`: off).
    #[arg(long, env = "UMGF_USER_STORE")]
    pub user_store: Option<PathBuf>,
    #[command(flatten)]
    pub chunker: ChunkerArgs,
}

/// Which noun-phrase chunker the stages use: it is trained on CoNLL-2000 on first use (about 10
/// minutes on 2 cores), then cached. Every stage takes these, so that all agree on the chunker.
#[derive(Args, Debug)]
pub struct ChunkerArgs {
    #[arg(long, env = "UMGF_CHUNKER_EPOCHS", default_value_t = ChunkerTraining::default().epochs)]
    pub chunker_epochs: usize,
    #[arg(long, default_value_t = ChunkerTraining::default().seed)]
    pub chunker_seed: u64,
    /// Train the chunker on the first N CoNLL-2000 sentences only (quick checks and tests; 0 = all).
    /// (Tweets without images get no objects whatever the chunker finds: on the benchmarks here a small
    /// chunker gives the same graphs, and so the same trained models, as the full one.)
    #[arg(
        long,
        value_name = "N",
        env = "UMGF_CHUNKER_LIMIT",
        default_value_t = 0
    )]
    pub chunker_limit: usize,
    /// Also train the chunker on Tweebank v2's tweets (<data dir>/tweebank; CC BY-NC-SA 4.0, so
    /// research use only: opt-in), with NP chunks derived from their dependency trees.
    #[arg(long, env = "UMGF_CHUNKER_TWEEBANK")]
    pub chunker_tweebank: bool,
}

impl ChunkerArgs {
    pub fn training(&self) -> ChunkerTraining {
        ChunkerTraining {
            epochs: self.chunker_epochs,
            seed: self.chunker_seed,
            limit: self.chunker_limit,
            tweebank: self.chunker_tweebank,
            ..ChunkerTraining::default()
        }
    }
}

/// Which tweets a stage works on; every stage after ingest runs ingest first (a cache hit normally).
#[derive(Args, Debug)]
pub struct DatasetArgs {
    /// twitter2015, twitter2017 (from the data directory), or a path to a CoNLL file or JSONL dump.
    #[arg(long, default_value = "twitter2017")]
    pub dataset: String,
    /// Folder of `<IMGID>.jpg` images for CoNLL data (default: <data dir>/<dataset>_images, or images/
    /// beside a CoNLL dump). Missing images are counted, not an error.
    #[arg(long)]
    pub image_dir: Option<PathBuf>,
    /// fail: stop at the first bad record. skip: leave bad records out and list them in report.jsonl.
    #[arg(long, default_value = "fail")]
    pub on_error: OnError,
    /// Image captions: a file of `<image file> :<caption>` lines, or none (not even a JSONL dump's own
    /// "caption" fields). Default: a benchmark's BLIP-2 captions in the data directory; a dump's own.
    #[arg(
        long,
        env = "UMGF_CAPTIONS",
        default_value = "default",
        value_name = "FILE|none"
    )]
    pub captions: CaptionsChoice,
    /// The most bytes one record may hold (a JSONL line, a CoNLL tweet, a caption line); a longer one
    /// is a bad record.
    #[arg(long, default_value_t = Limits::DEFAULT_MAX_RECORD_BYTES)]
    pub max_record_bytes: usize,
}

impl DatasetArgs {
    pub fn resolve(&self, common: &Common) -> anyhow::Result<Dataset> {
        let data_dir = common.data_dir()?;
        Ok(Dataset::resolve(
            &self.dataset,
            data_dir.as_deref(),
            self.image_dir.as_deref(),
        )?
        .with_captions(&self.captions)?)
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_record_bytes: self.max_record_bytes,
        }
    }

    /// Ingests the dataset (or finds it ingested).
    pub fn ingest(&self, artifacts: &Artifacts, dataset: &Dataset) -> anyhow::Result<RunOutcome> {
        let input = ingest::Input {
            dataset: dataset.clone(),
            on_error: self.on_error,
            limits: self.limits(),
        };
        Ok(IngestStage::run(&artifacts.store, &input)?)
    }
}

/// How the text features are made (`features`, `train`, `status`; `eval` and `predict` take them from
/// the model). Every one enters the cache keys.
#[derive(Args, Debug)]
pub struct TextFeatureArgs {
    /// Text encoder: minilm (all-MiniLM-L6-v2) or mpnet (all-mpnet-base-v2).
    #[arg(long, env = "UMGF_ENCODER", default_value = "minilm")]
    pub encoder: EncoderName,
    /// Encoder compute precision: f32 (the reference) or bf16 (faster on CPUs with AVX-512 BF16).
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
    /// Hidden states cached per word: all, last, lastN, or indices like 4,5,6 (0 = the embeddings).
    #[arg(long, default_value_t = TextFeatureParams::default().layers)]
    pub text_layers: LayerSelection,
    /// A word's state from its pieces: first (its first piece) or mean.
    #[arg(long, default_value = "first")]
    pub pooling: Pooling,
    /// Number format of the cached states: f16 (half the size) or f32.
    #[arg(long, default_value = "f16")]
    pub storage: StateStorage,
    /// What the encoder reads after each tweet: none, or caption (the tweet's image caption as the
    /// second text of a pair; only the tweet's words are kept).
    #[arg(long, default_value = "none")]
    pub text_context: TextContext,
}

impl TextFeatureArgs {
    pub fn params(&self) -> TextFeatureParams {
        TextFeatureParams {
            encoder: self.encoder,
            precision: self.precision,
            layers: self.text_layers.clone(),
            pooling: self.pooling,
            storage: self.storage,
            context: self.text_context,
        }
    }
}

/// Which trained model `predict` and `eval` use.
#[derive(Args, Debug)]
pub struct ModelArgs {
    /// A folder holding a trained model's config.json and model.safetensors (default: the latest
    /// model trained on twitter2017, artifacts/twitter2017/model).
    #[arg(long = "model")]
    pub model_dir: Option<PathBuf>,
}

impl ModelArgs {
    pub fn dir(&self, common: &Common) -> PathBuf {
        self.model_dir
            .clone()
            .unwrap_or_else(|| common.artifacts.join("twitter2017").join("model"))
    }
}

/// How `ground` chooses objects (the `ground` and `features` binaries take these).
#[derive(Args, Debug)]
pub struct GroundArgs {
    /// Objects kept per image (best detector score first).
    #[arg(long, default_value_t = GroundParams::default().max_objects)]
    pub max_objects: usize,
    /// Detections scoring at or below this are dropped.
    #[arg(long, default_value_t = GroundParams::default().detector.min_score)]
    pub min_score: f32,
    /// Words grounded for every tweet besides its noun phrases (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = GroundParams::default().general_words)]
    pub general_words: Vec<String>,
    /// Ablation "w/o targeted objects": the cells of a K x K grid of each image are its objects,
    /// linked to every word (0: targeted objects).
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub grid: usize,
    /// Visual nodes from the image's caption: off, targeted (the caption's noun phrases the tweet's
    /// phrases and general words point at), general (those the general words alone point at: an
    /// ablation) or all (every caption phrase, linked to every word: an ablation). Default: off;
    /// for `eval` and `predict`, as the model was trained (targeted if it reads caption nodes).
    #[arg(long, env = "UMGF_CAPTION_NODES")]
    pub caption_nodes: Option<CaptionNodes>,
}

impl GroundArgs {
    pub fn params(&self) -> GroundParams {
        let mut params = GroundParams {
            max_objects: self.max_objects,
            general_words: self.general_words.clone(),
            grid: self.grid,
            caption_nodes: self.caption_nodes.unwrap_or(CaptionNodes::Off),
            ..Default::default()
        };
        params.detector.min_score = self.min_score;
        params
    }
}

/// Sharded runs of a per-record stage (`chunk`, `ground`, `features`; docs/cluster.md):
/// `scripts/shards.sh` asks which shards are missing, runs them (Slurm array tasks or
/// local processes), then runs the stage plainly, which merges.
#[derive(Args, Debug)]
pub struct ShardArgs {
    /// Do only shard K of N of the stage's records (0 <= K < N), into the store, for the plain run
    /// to merge. A Slurm array task passes --shard $SLURM_ARRAY_TASK_ID/N.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Print which of N shards have not run, as "K,K,..." (nothing once the stage has merged), and
    /// exit.
    #[arg(long, value_name = "N", conflicts_with = "shard")]
    pub missing_shards: Option<u32>,
}

/// What a per-record stage binary is asked to do.
pub enum ShardMode {
    /// The plain run: everything (a merge, when shards ran before).
    Whole,
    Shard(Shard),
    /// List the shards of N that have not run.
    Missing(u32),
}

impl ShardArgs {
    pub fn mode(&self) -> ShardMode {
        match (self.shard, self.missing_shards) {
            (Some(shard), _) if !shard.is_whole() => ShardMode::Shard(shard),
            (_, Some(count)) => ShardMode::Missing(count),
            _ => ShardMode::Whole,
        }
    }
}

/// What a per-record stage binary does in `mode`: the whole run (returned), or one shard (its report
/// line printed), or the list of missing shards (printed); `None` in the last two cases.
pub fn run_sharded<S: ShardedStage>(
    run: &DatasetRun,
    mode: ShardMode,
    input: &S::Input,
) -> anyhow::Result<Option<RunOutcome>> {
    let store = &run.artifacts.store;
    match mode {
        ShardMode::Whole => Ok(Some(S::run(store, input)?)),
        ShardMode::Shard(shard) => {
            let outcome = S::run_shard(store, input, shard)?;
            run.report_shard(S::NAME, shard, &outcome);
            Ok(None)
        }
        ShardMode::Missing(count) => {
            print_missing_shards(S::missing_shards(store, input, count)?);
            Ok(None)
        }
    }
}

/// Prints `--missing-shards`' answer on stdout: the indices, comma-separated.
pub fn print_missing_shards(missing: impl IntoIterator<Item = Shard>) {
    let indices: std::collections::BTreeSet<u32> = missing.into_iter().map(|s| s.index).collect();
    let list: Vec<String> = indices.iter().map(u32::to_string).collect();
    println!("{}", list.join(","));
}

/// Runs every stage the model reads on the dataset (text features, chunk, ground, visual features,
/// graphs; each a cache hit when nothing changed), linking the features and graphs and printing their
/// report lines, and returns their artifacts.
pub fn model_inputs(
    upstream: &Upstream<'_>,
    run: &DatasetRun,
    text_features: &TextFeatureParams,
) -> anyhow::Result<DatasetArtifacts> {
    let inputs = upstream.model_inputs(text_features)?;
    run.publish(
        "features",
        &upstream.text_features(text_features)?,
        text_features::TEXT_FEATURES,
    )?;
    run.publish(
        "visual features",
        &upstream.visual_features()?,
        visual_features::VISUAL_FEATURES,
    )?;
    run.publish("graphs", &upstream.graphs()?, graphs::EDGES)?;
    Ok(inputs)
}

/// The command line `predict` and `eval` share: a dataset, a trained model, grounding and the
/// common options.
#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    pub data: DatasetArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub ground: GroundArgs,
    #[command(flatten)]
    pub common: Common,
}

/// What `predict` and `eval` share: run every stage on the dataset, then the model on `which` of its
/// tweets; links the outputs as `artifacts/<dataset>/<view>/` and prints the report line.
pub fn predict_on(
    args: &PredictArgs,
    which: predict::Which,
    view: &str,
) -> anyhow::Result<(DatasetRun, RunOutcome, PathBuf)> {
    let PredictArgs {
        data,
        model,
        ground,
        common,
    } = args;
    let run = data.start(common)?;
    let files = predict::ModelFiles::in_dir(&model.dir(common));
    // New tweets get the text features the model was trained on (encoder, layers, pooling, storage).
    let config = files.config()?;
    let text_features = config.text_features();
    let mut ground_params = ground.params();
    ground_params.caption_nodes =
        caption_nodes_for_model(ground.caption_nodes, config.model.caption_dim > 0);
    let ground = ground_params;
    let upstream = run.upstream(common, ground);
    model_inputs(&upstream, &run, &text_features)?;
    let outcome = upstream.predict(files, &text_features, which)?;
    let view = format!("{}/{view}", run.dataset.label);
    let dir = run.artifacts.link_run_folder(&view, &outcome.manifest)?;
    let stage = match which {
        predict::Which::All => "predict",
        predict::Which::Test => "eval",
    };
    run.report(stage, &outcome);
    Ok((run, outcome, dir))
}

/// The caption nodes `predict` and `eval` give a model. Grounding settings are not part of the model:
/// unless told, they follow it (targeted if it has a caption projection; an ablation's variant has to
/// be named), and when told, a warning says if they cannot be the ones it learnt with.
fn caption_nodes_for_model(told: Option<CaptionNodes>, trained_with: bool) -> CaptionNodes {
    let Some(told) = told else {
        return match trained_with {
            true => CaptionNodes::Targeted,
            false => CaptionNodes::Off,
        };
    };
    if trained_with != (told != CaptionNodes::Off) {
        let (with, gives) = match trained_with {
            true => ("with", "none"),
            false => ("without", "some"),
        };
        tracing::warn!(
            "the model was trained {with} caption nodes, and CAPTION_NODES={} gives it {gives}",
            told.name()
        );
    }
    told
}

/// A stage binary's work on one dataset: what every stage after ingest starts from.
pub struct DatasetRun {
    pub dataset: Dataset,
    pub artifacts: Artifacts,
    /// The dataset's `tweets` artifact (ingested, or found ingested).
    pub tweets: Digest,
    ingest: RunOutcome,
    on_error: OnError,
    limits: Limits,
    started: std::time::Instant,
}

impl DatasetArgs {
    /// Resolves the dataset, opens the artifacts folder and ingests the dataset (normally a cache hit).
    pub fn start(&self, common: &Common) -> anyhow::Result<DatasetRun> {
        let started = std::time::Instant::now();
        let dataset = self.resolve(common)?;
        let artifacts = common.open_artifacts()?;
        let ingest = self.ingest(&artifacts, &dataset)?;
        Ok(DatasetRun {
            dataset,
            tweets: ingest.manifest.output(ingest::TWEETS)?.digest,
            artifacts,
            ingest,
            on_error: self.on_error,
            limits: self.limits(),
            started,
        })
    }
}

impl DatasetRun {
    /// The resolver of the stages after ingest (which has run), grounding as `ground` says.
    pub fn upstream<'a>(&'a self, common: &'a Common, ground: GroundParams) -> Upstream<'a> {
        let upstream = Upstream::new(
            common,
            &self.artifacts,
            &self.dataset,
            self.on_error,
            self.limits,
            ground,
            Mode::Run,
        );
        upstream.seed::<IngestStage>(self.ingest.clone());
        upstream
    }

    /// Links the output `name` of a stage run as `artifacts/<dataset>/<name>`, prints the run's
    /// report line, and returns the link.
    pub fn publish(
        &self,
        stage: &str,
        outcome: &RunOutcome,
        name: &str,
    ) -> anyhow::Result<PathBuf> {
        let link = self.link(outcome, name)?;
        self.report(stage, outcome);
        Ok(link)
    }

    /// Links the output `name` of a stage run as `artifacts/<dataset>/<name>`, and returns the link.
    pub fn link(&self, outcome: &RunOutcome, name: &str) -> anyhow::Result<PathBuf> {
        let digest = outcome.manifest.output(name)?.digest;
        Ok(self
            .artifacts
            .link_view(&self.dataset.label, name, &digest)?)
    }

    /// Prints the run's report line (see [`describe`]).
    pub fn report(&self, stage: &str, outcome: &RunOutcome) {
        report(stage, &self.dataset.label, outcome, self.started);
    }

    /// Prints a shard run's report line and what it did with its records.
    pub fn report_shard(&self, stage: &str, shard: Shard, outcome: &RunOutcome) {
        self.report(&format!("{stage} shard {shard}"), outcome);
        eprintln!("  {}", outcome.manifest.counts);
    }
}

impl Common {
    pub fn open_artifacts(&self) -> anyhow::Result<Artifacts> {
        let mut artifacts = Artifacts::open(&self.artifacts)?;
        if let Some(dir) = self.user_store_dir() {
            // Optional: without it the chunker is trained in this store, as before the level.
            match Store::open(&dir) {
                Ok(user) => artifacts.store = artifacts.store.with_user_level(user),
                Err(e) => tracing::warn!("no per-user store ({e}); the chunker is not shared"),
            }
        }
        Ok(artifacts)
    }

    /// `--user-store`, else store/ in the download cache that set-up uses; `None` when it is `none`
    /// or no cache folder can be named.
    fn user_store_dir(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.user_store {
            return (dir.as_os_str() != "none").then(|| dir.clone());
        }
        let env = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let cache = env("UMGF_CACHE")
            .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("umgf")))
            .or_else(|| env("HOME").map(|d| d.join(".cache/umgf")))?;
        Some(cache.join("store"))
    }

    /// The data directory, if one is given or found (only benchmark datasets need it).
    pub fn data_dir(&self) -> anyhow::Result<Option<PathBuf>> {
        if let Some(dir) = &self.data_dir {
            return Ok(Some(dir.clone()));
        }
        Ok(umgf::dataset::default_data_dir(&std::env::current_dir()?))
    }

    /// The data directory, for stages that always read from it.
    pub fn require_data_dir(&self) -> anyhow::Result<PathBuf> {
        self.data_dir()?.ok_or_else(|| {
            anyhow::anyhow!(
                "no data directory: set {} or pass --data-dir (DATA_DIR= for make); see README.md, section Data",
                umgf::dataset::DATA_DIR_ENV
            )
        })
    }
}

/// What every stage binary does first: logging, and libtorch's threads in a Slurm task.
pub fn init() {
    init_logging();
    umgf::torch::use_task_cpus();
}

/// Logs to stderr; `RUST_LOG` overrides the default level (info).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}

/// Prints [`describe`]'s line to stderr, timing from `started`.
pub fn report(stage: &str, label: &str, outcome: &RunOutcome, started: std::time::Instant) {
    eprintln!(
        "{}",
        describe(stage, label, outcome, started.elapsed().as_secs_f64())
    );
}

/// One line saying how the run went: a cache hit, or work done (and whether downstream stays cached).
pub fn describe(stage: &str, label: &str, outcome: &RunOutcome, seconds: f64) -> String {
    let key = outcome.manifest.key.short();
    let how = if outcome.hit {
        "cache hit, nothing to do".to_owned()
    } else if outcome.outputs_unchanged {
        format!(
            "ran in {:.2} s; outputs unchanged, downstream stays cached",
            outcome.manifest.seconds
        )
    } else {
        format!("ran in {:.2} s", outcome.manifest.seconds)
    };
    format!("{stage} {label}: {how} (run {key}, {seconds:.2} s in all)")
}

/// Peak resident memory of this process so far, in MiB (Linux `VmHWM`); 0 where unknown.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caption_nodes_follow_the_model_unless_told() {
        use CaptionNodes::{All, Off, Targeted};
        assert_eq!(caption_nodes_for_model(None, true), Targeted);
        assert_eq!(caption_nodes_for_model(None, false), Off);
        // Told, it is what it was told, even where it cannot be what the model learnt with.
        assert_eq!(caption_nodes_for_model(Some(All), true), All);
        assert_eq!(caption_nodes_for_model(Some(Off), true), Off);
        assert_eq!(caption_nodes_for_model(Some(Targeted), false), Targeted);
    }
}
