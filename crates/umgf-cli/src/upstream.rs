//! The upstream resolver: the one place that knows the order of the stages. Each method returns one
//! stage's run on a dataset after resolving what that stage reads, each stage once per process. The
//! binaries resolve by running (a cache hit when nothing changed); `status` resolves by looking the
//! keys up and printing a row per stage, without running anything.
use std::cell::RefCell;
use std::collections::BTreeMap;

use umgf::Digest;
use umgf::dataset::Dataset;
use umgf::io::Limits;
use umgf::stages::chunk::{self, ChunkStage};
use umgf::stages::chunker::{self, ChunkerInputs, ChunkerStage};
use umgf::stages::graphs::{self, GraphsStage};
use umgf::stages::ground::{self, GroundModels, GroundParams, GroundStage};
use umgf::stages::ingest::{self, IngestStage, OnError};
use umgf::stages::predict::{self, ModelFiles, PredictStage, Which};
use umgf::stages::text_features::{self, TextFeatureParams, TextFeaturesStage};
use umgf::stages::train::{self, DatasetArtifacts, TrainParams, TrainStage};
use umgf::stages::visual_features::{self, VisualFeaturesStage};
use umgf::stages::{Artifacts, Stage};
use umgf::store::{Level, RunOutcome};
use umgf::text::encoder::default_files;

use crate::Common;

/// How stages are resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Run each stage (the stage binaries).
    Run,
    /// Look each stage's key up and print its row (`status`); run nothing.
    Status,
}

/// In [`Mode::Status`], a stage that is not stored, or cannot be keyed: what comes after it cannot be
/// keyed either (its row says it waits).
#[derive(Debug)]
pub struct NotRun;

impl std::fmt::Display for NotRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an upstream stage has not run")
    }
}

impl std::error::Error for NotRun {}

/// True when `error` is a [`NotRun`] (the end of a `status` chain, not a failure).
pub fn is_not_run(error: &anyhow::Error) -> bool {
    error.is::<NotRun>()
}

/// The stages of one dataset, resolved in upstream order. A resolver serves one configuration: each
/// stage resolves once, by name, so asking it for text features with other settings returns the first
/// run (use another resolver for another configuration).
pub struct Upstream<'a> {
    common: &'a Common,
    artifacts: &'a Artifacts,
    dataset: &'a Dataset,
    on_error: OnError,
    limits: Limits,
    ground: GroundParams,
    mode: Mode,
    done: RefCell<BTreeMap<&'static str, Result<RunOutcome, ()>>>,
}

impl<'a> Upstream<'a> {
    pub fn new(
        common: &'a Common,
        artifacts: &'a Artifacts,
        dataset: &'a Dataset,
        on_error: OnError,
        limits: Limits,
        ground: GroundParams,
        mode: Mode,
    ) -> Self {
        Self {
            common,
            artifacts,
            dataset,
            on_error,
            limits,
            ground,
            mode,
            done: RefCell::new(BTreeMap::new()),
        }
    }

    /// Records a run of `S` made elsewhere (ingest, which every binary runs first).
    pub fn seed<S: Stage>(&self, outcome: RunOutcome) {
        self.done.borrow_mut().insert(S::NAME, Ok(outcome));
    }

    /// Resolves stage `S` on the input `input` builds (which resolves the stages it reads).
    pub fn resolve<S: Stage>(
        &self,
        input: impl FnOnce() -> anyhow::Result<S::Input>,
    ) -> anyhow::Result<RunOutcome> {
        if let Some(done) = self.done.borrow().get(S::NAME) {
            return done.clone().map_err(|()| NotRun.into());
        }
        let store = &self.artifacts.store;
        let result = match self.mode {
            Mode::Run => Ok(S::run(store, &input()?)?),
            Mode::Status => {
                let mut found = None;
                let row = match input() {
                    Err(e) if is_not_run(&e) => Row::Waits,
                    Err(e) => Row::CannotPlan(format!("{e:#}")),
                    Ok(input) => match S::spec(&input) {
                        Err(e) => Row::CannotPlan(format!("{e:#}")),
                        // A run kept in the per-user store counts: the next run copies it in.
                        Ok(spec) => match store.lookup_shared(&spec)? {
                            Some((manifest, level)) => {
                                // A manifest of an older version may lack a count: say so, go on.
                                let mut headline = S::counts(&manifest).map_or_else(
                                    |e| format!("(counts unreadable: {e})"),
                                    |c| S::headline(&c),
                                );
                                if level == Level::User {
                                    headline.push_str(" (in the per-user store)");
                                }
                                let row = Row::UpToDate(spec.key().short(), headline);
                                found = Some(RunOutcome {
                                    manifest,
                                    hit: true,
                                    outputs_unchanged: false,
                                });
                                row
                            }
                            None => Row::WouldRun(spec.key().short()),
                        },
                    },
                };
                row.print(S::NAME);
                found.ok_or(())
            }
        };
        self.done.borrow_mut().insert(S::NAME, result.clone());
        result.map_err(|()| NotRun.into())
    }

    /// The run of `ingest`.
    pub fn ingest(&self) -> anyhow::Result<RunOutcome> {
        self.resolve::<IngestStage>(|| {
            Ok(ingest::Input {
                dataset: self.dataset.clone(),
                on_error: self.on_error,
                limits: self.limits,
            })
        })
    }

    /// The dataset's `tweets` artifact.
    pub fn tweets(&self) -> anyhow::Result<Digest> {
        Ok(self.ingest()?.manifest.output(ingest::TWEETS)?.digest)
    }

    pub fn chunker_input(&self) -> anyhow::Result<chunker::Input> {
        let training = self.common.chunker.training();
        Ok(chunker::Input {
            files: ChunkerInputs::new(
                &self.common.require_data_dir()?,
                default_files(&self.common.models),
                &training,
            ),
            training,
        })
    }

    /// The run of `chunker`.
    pub fn chunker(&self) -> anyhow::Result<RunOutcome> {
        self.resolve::<ChunkerStage>(|| self.chunker_input())
    }

    pub fn chunk_input(&self) -> anyhow::Result<chunk::Input> {
        Ok(chunk::Input {
            tweets: self.tweets()?,
            chunker: self.chunker()?.manifest.output(chunker::MODEL)?.digest,
            encoder: default_files(&self.common.models),
        })
    }

    /// The run of `chunk`: the `noun_phrases` artifact and its counts.
    pub fn noun_phrases(&self) -> anyhow::Result<RunOutcome> {
        self.resolve::<ChunkStage>(|| self.chunk_input())
    }

    pub fn ground_input(&self) -> anyhow::Result<ground::Input> {
        let tweets = self.tweets()?;
        let phrases = self.noun_phrases()?;
        Ok(ground::Input {
            tweets,
            phrases: phrases.manifest.output(chunk::NOUN_PHRASES)?.digest,
            models: GroundModels {
                detector: umgf::vision::detector::default_model(&self.common.models),
                encoder: default_files(&self.common.models),
            },
            params: self.ground.clone(),
        })
    }

    /// The run of `ground`: the `objects` artifact and its counts.
    pub fn objects(&self) -> anyhow::Result<RunOutcome> {
        self.resolve::<GroundStage>(|| self.ground_input())
    }

    fn objects_digest(&self) -> anyhow::Result<Digest> {
        Ok(self.objects()?.manifest.output(ground::OBJECTS)?.digest)
    }

    pub fn text_features_input(
        &self,
        params: &TextFeatureParams,
    ) -> anyhow::Result<text_features::Input> {
        Ok(text_features::Input {
            tweets: self.tweets()?,
            encoder: params.encoder.files(&self.common.models),
            params: params.clone(),
        })
    }

    /// The run of `features` (text) with `params`.
    pub fn text_features(&self, params: &TextFeatureParams) -> anyhow::Result<RunOutcome> {
        self.resolve::<TextFeaturesStage>(|| self.text_features_input(params))
    }

    pub fn visual_features_input(&self) -> anyhow::Result<visual_features::Input> {
        Ok(visual_features::Input {
            tweets: self.tweets()?,
            objects: self.objects_digest()?,
            model: umgf::vision::efficientnet::default_model(&self.common.models),
            text_encoder: default_files(&self.common.models),
        })
    }

    /// The run of `visual-features`.
    pub fn visual_features(&self) -> anyhow::Result<RunOutcome> {
        self.resolve::<VisualFeaturesStage>(|| self.visual_features_input())
    }

    /// The run of `graphs`.
    pub fn graphs(&self) -> anyhow::Result<RunOutcome> {
        self.resolve::<GraphsStage>(|| {
            Ok(graphs::Input {
                tweets: self.tweets()?,
                objects: self.objects_digest()?,
            })
        })
    }

    /// Every artifact the model reads, text features made with `params`.
    pub fn model_inputs(&self, params: &TextFeatureParams) -> anyhow::Result<DatasetArtifacts> {
        let text = self.text_features(params)?;
        let visual = self.visual_features()?;
        let edges = self.graphs()?;
        Ok(DatasetArtifacts {
            tweets: self.tweets()?,
            text_features: text.manifest.output(text_features::TEXT_FEATURES)?.digest,
            visual_features: visual
                .manifest
                .output(visual_features::VISUAL_FEATURES)?
                .digest,
            graph_edges: edges.manifest.output(graphs::EDGES)?.digest,
        })
    }

    /// The run of `train` with `params` (its text features made as `params.features` says).
    pub fn train(&self, params: &TrainParams) -> anyhow::Result<RunOutcome> {
        self.resolve::<TrainStage>(|| {
            let data = self.model_inputs(&params.features)?;
            let mut params = params.clone();
            // In memory or streamed: the artifacts' sizes against the budget.
            params.fit(&self.artifacts.store, &data)?;
            Ok(train::Input {
                data,
                encoder: params.features.encoder.files(&self.common.models),
                params,
            })
        })
    }
}

impl Upstream<'_> {
    /// The run of `predict` with the trained model `model` on `which` tweets; the text features are
    /// made as the model was trained (`params`).
    pub fn predict(
        &self,
        model: ModelFiles,
        params: &TextFeatureParams,
        which: Which,
    ) -> anyhow::Result<RunOutcome> {
        self.resolve::<PredictStage>(|| {
            Ok(predict::Input {
                model,
                data: self.model_inputs(params)?,
                objects: self.objects_digest()?,
                dataset: self.dataset.label.clone(),
                encoder: params.encoder.files(&self.common.models),
                which,
            })
        })
    }
}

/// How [`PIPELINE`] resolves one stage: through the resolver's method for it, the settings of the
/// `train` run in question supplying the stages that take settings.
pub type ResolveStage = fn(&Upstream<'_>, &TrainParams) -> anyhow::Result<RunOutcome>;

/// Every stage through `train`, in upstream order, by name: `status` prints a row for each, the kill
/// harness kills each mid-run. A new stage adds its line here (and its method above).
pub const PIPELINE: [(&str, ResolveStage); 8] = [
    (IngestStage::NAME, |up, _| up.ingest()),
    (ChunkerStage::NAME, |up, _| up.chunker()),
    (ChunkStage::NAME, |up, _| up.noun_phrases()),
    (GroundStage::NAME, |up, _| up.objects()),
    (TextFeaturesStage::NAME, |up, train| {
        up.text_features(&train.features)
    }),
    (VisualFeaturesStage::NAME, |up, _| up.visual_features()),
    (GraphsStage::NAME, |up, _| up.graphs()),
    (TrainStage::NAME, |up, train| up.train(train)),
];

/// A stage's row in `status`.
enum Row {
    /// The run's short key and its headline numbers.
    UpToDate(String, String),
    WouldRun(String),
    Waits,
    CannotPlan(String),
}

impl Row {
    fn print(&self, stage: &str) {
        let (state, key, detail) = match self {
            Row::UpToDate(key, brief) => ("up to date", key.as_str(), brief.clone()),
            Row::WouldRun(key) => (
                "would run",
                key.as_str(),
                "inputs, parameters or code changed".to_owned(),
            ),
            Row::Waits => (
                "waits for upstream",
                "-",
                "runs after what it reads".to_owned(),
            ),
            Row::CannotPlan(why) => ("cannot plan", "-", why.clone()),
        };
        println!("{stage:<16} {state:<24} {key:<14} {detail}");
    }
}
