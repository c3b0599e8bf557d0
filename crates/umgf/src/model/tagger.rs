//! The trainable tagger: UMGF (or the text-only baseline) over either cached encoder states (frozen
//! mode) or the encoder itself, run on cached word pieces and trained too (fine-tune mode). Saved as
//! `model.safetensors` plus `config.json`, which says how to rebuild it.
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Tensor};

use super::batch::Batch;
use super::umgf::{GraphBatch, Umgf, UmgfConfig};
use crate::labels::Tag;
use crate::schema::StateStorage;
use crate::stages::text_features::{LayerSelection, Pooling, TextFeatureParams};
use crate::text::encoder::{EncoderFiles, EncoderName, Network, Precision, TextEncoder};
use crate::torch::TorchResult;
use crate::{Error, IoContext, Result};

pub const WEIGHTS: &str = "model.safetensors";
pub const CONFIG: &str = "config.json";

/// Which model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// UMGF: fusion layers over words and visual objects, then a CRF.
    Umgf,
    /// Text-only baseline: encoder states + word-shape embedding, an MLP, a CRF (no fusion layers,
    /// no visual nodes).
    Baseline,
}

/// Where word states come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextMode {
    /// The encoder's states cached by `features`: the encoder is not trained (fast on a CPU).
    Frozen,
    /// The encoder runs on the cached word pieces and is trained with the rest.
    FineTune,
}

/// Everything needed to rebuild a tagger before loading its weights (`config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaggerConfig {
    pub kind: ModelKind,
    pub mode: TextMode,
    pub model: UmgfConfig,
    /// Tag names in the order of the model's outputs.
    pub tags: Vec<String>,
    /// Digest of the text encoder whose states or weights the tagger was trained on.
    pub encoder: String,
    /// How the text features it reads were made (encoder, layers, pooling, storage, precision):
    /// `eval` and `predict` make new tweets' features the same way. Absent in models from before
    /// the option existed: see [`Self::text_features`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<TextFeatureParams>,
    /// The dataset it was trained on (its label), for reports.
    pub trained_on: String,
}

/// Parses a kebab-case name (`umgf`, `fine-tune`, ...) the way the config JSON writes it.
fn parse_name<T: serde::de::DeserializeOwned>(what: &str, name: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| Error::Config(format!("unknown {what} {name:?}")))
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Umgf => "umgf",
            Self::Baseline => "baseline",
        }
    }
}

impl TextMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Frozen => "frozen",
            Self::FineTune => "fine-tune",
        }
    }
}

impl std::str::FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        parse_name("model (umgf or baseline)", s)
    }
}

impl std::str::FromStr for TextMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        parse_name("text mode (frozen or fine-tune)", s)
    }
}

impl TaggerConfig {
    pub fn new(
        kind: ModelKind,
        mode: TextMode,
        mut model: UmgfConfig,
        encoder: String,
        features: TextFeatureParams,
        trained_on: String,
    ) -> Self {
        if kind == ModelKind::Baseline {
            model.layers = 0;
        }
        if mode == TextMode::FineTune {
            // The fine-tuned encoder gives its last layer's states: one per word.
            model.text.layers = 1;
        }
        Self {
            kind,
            mode,
            model,
            tags: Tag::all().iter().map(ToString::to_string).collect(),
            encoder,
            features: Some(features),
            trained_on,
        }
    }

    /// A trained model's `config.json`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).at(path)?;
        serde_json::from_str(&text).map_err(|e| Error::model_file(path, format!("{e}")))
    }

    /// How the text features the model reads are made. Models from before the setting existed read
    /// MiniLM's last layer, first piece, computed and stored in float32.
    pub fn text_features(&self) -> TextFeatureParams {
        self.features.clone().unwrap_or(TextFeatureParams {
            encoder: EncoderName::Minilm,
            precision: Precision::F32,
            layers: LayerSelection::Last(1),
            pooling: Pooling::First,
            storage: StateStorage::F32,
            context: Default::default(),
        })
    }

    /// Values per word of the cached states the model reads (0 in fine-tune mode: it reads pieces).
    pub fn cached_width(&self) -> i64 {
        match self.mode {
            TextMode::Frozen => self.model.cached_width(),
            TextMode::FineTune => 0,
        }
    }
}

pub struct Tagger {
    pub config: TaggerConfig,
    /// Every trained weight: the encoder's (fine-tune mode, var-store group 0) and the tagger's
    /// (group 1, under `umgf`).
    pub vs: VarStore,
    umgf: Umgf,
    encoder: Option<Network>,
    /// The encoder's padding piece id.
    pub pad_id: u32,
}

impl Tagger {
    /// A new tagger: pretrained encoder (fine-tune mode), freshly initialised tagger weights.
    pub fn new(config: TaggerConfig, encoder: &EncoderFiles, device: Device) -> Result<Self> {
        // Frozen mode reads cached states: the encoder is not loaded (nor its pieces padded).
        let (vs, network, pad_id) = match config.mode {
            TextMode::FineTune => {
                let text = TextEncoder::load(encoder, device)?;
                let pad_id = text.pieces.pad_id();
                (text.vs, Some(text.network), pad_id)
            }
            TextMode::Frozen => (VarStore::new(device), None, 0),
        };
        let umgf = Umgf::new(&(vs.root().set_group(1) / "umgf"), config.model.clone());
        Ok(Self {
            config,
            vs,
            umgf,
            encoder: network,
            pad_id,
        })
    }

    /// A trained tagger from a folder holding `config.json` and `model.safetensors`.
    pub fn load(dir: &Path, encoder: &EncoderFiles, device: Device) -> Result<Self> {
        Self::load_files(&dir.join(CONFIG), &dir.join(WEIGHTS), encoder, device)
    }

    /// A trained tagger from its config JSON and weights.
    pub fn load_files(
        path: &Path,
        weights: &Path,
        encoder: &EncoderFiles,
        device: Device,
    ) -> Result<Self> {
        let config = TaggerConfig::read(path)?;
        if config.encoder != encoder.digest()?.hex() {
            crate::bail!(
                Config,
                "{}: the model was trained on encoder {}, the installed one differs ({}); re-run `make setup` \
                 or train again",
                path.display(),
                config.encoder,
                encoder.dir.display()
            );
        }
        let tagger = Self::new(config, encoder, device)?;
        crate::torch::load_safetensors(&tagger.vs, "", weights)?;
        Ok(tagger)
    }

    /// Writes the config (JSON) and the weights (`weights` must end in `.safetensors`: tch picks the
    /// format by the extension).
    pub fn save(&self, config: &Path, weights: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.config)?;
        std::fs::write(config, text).at(config)?;
        self.vs.save(weights).torch()
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The batch's graphs, with word states from the encoder in fine-tune mode.
    fn graph(&self, batch: &Batch, train: bool) -> GraphBatch {
        let g = &batch.graph;
        let words = match &self.encoder {
            None => g.words.shallow_clone(),
            Some(encoder) => {
                let states = encoder.forward_t(&batch.pieces.ids, &batch.pieces.mask, train);
                let hidden = states.size()[2];
                let index = batch
                    .pieces
                    .word_index
                    .unsqueeze(2)
                    .expand([g.words.size()[0], g.words.size()[1], hidden], false);
                states.gather(1, &index, false)
            }
        };
        GraphBatch {
            words,
            shapes: g.shapes.shallow_clone(),
            chars: g.chars.shallow_clone(),
            word_mask: g.word_mask.shallow_clone(),
            objects: g.objects.shallow_clone(),
            object_mask: g.object_mask.shallow_clone(),
            caption_nodes: g.caption_nodes.shallow_clone(),
            links: g.links.shallow_clone(),
        }
    }

    /// Mean CRF negative log-likelihood of the batch's gold tags (dropout on).
    pub fn loss(&self, batch: &Batch) -> Tensor {
        let graph = self.graph(batch, true);
        self.umgf.crf.neg_log_likelihood(
            &self.umgf.emissions(&graph, true),
            &batch.tags,
            &graph.word_mask,
        )
    }

    /// The learned weight of each cached hidden state (frozen mode with a scalar mix).
    pub fn layer_weights(&self) -> Option<Vec<f64>> {
        self.umgf.layer_weights()
    }

    /// Word states after the fusion layers (for checks that visual nodes matter).
    pub fn word_states(&self, batch: &Batch) -> Tensor {
        tch::no_grad(|| self.umgf.word_states(&self.graph(batch, false), false))
    }

    /// The best tag sequence of each tweet of the batch.
    pub fn decode(&self, batch: &Batch) -> Vec<Vec<Tag>> {
        self.decode_keeping_gates(batch, None)
    }

    /// The best tag sequence of each tweet of the batch, and each fusion layer's word-object gates,
    /// [tweets, words, objects] with the batch's padding ([`Umgf::emissions_and_gates`]).
    pub fn decode_with_gates(&self, batch: &Batch) -> (Vec<Vec<Tag>>, Vec<Tensor>) {
        let mut gates = Vec::new();
        let tags = self.decode_keeping_gates(batch, Some(&mut gates));
        (tags, gates)
    }

    fn decode_keeping_gates(
        &self,
        batch: &Batch,
        gates: Option<&mut Vec<Tensor>>,
    ) -> Vec<Vec<Tag>> {
        let all = Tag::all();
        tch::no_grad(|| {
            let graph = self.graph(batch, false);
            let emissions = self.umgf.emissions_and_gates(&graph, false, gates);
            self.umgf.crf.viterbi(&emissions, &graph.word_mask)
        })
        .into_iter()
        .map(|tags| {
            tags.into_iter()
                .map(|t| all.get(t as usize).copied().unwrap_or(Tag::O))
                .collect()
        })
        .collect()
    }
}
