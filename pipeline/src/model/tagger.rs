//! The trainable tagger: UMGF (or the text-only baseline) over either cached encoder states (frozen
//! mode) or the encoder itself, run on cached word pieces and trained too (fine-tune mode). Saved as
//! `model.safetensors` plus `config.json`, which says how to rebuild it.
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Tensor};

use super::batch::Batch;
use super::umgf::{GraphBatch, Umgf, UmgfConfig};
use crate::error::{Error, IoContext, Result};
use crate::labels::Tag;
use crate::text::bert::Bert;
use crate::text::encoder::{EncoderFiles, TextEncoder};

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
        trained_on: String,
    ) -> Self {
        if kind == ModelKind::Baseline {
            model.layers = 0;
        }
        Self {
            kind,
            mode,
            model,
            tags: Tag::all().iter().map(ToString::to_string).collect(),
            encoder,
            trained_on,
        }
    }
}

pub struct Tagger {
    pub config: TaggerConfig,
    /// Every trained weight: the encoder's (fine-tune mode, var-store group 0) and the tagger's
    /// (group 1, under `umgf`).
    pub vs: VarStore,
    umgf: Umgf,
    encoder: Option<Bert>,
    /// The encoder's padding piece id.
    pub pad_id: u32,
}

impl Tagger {
    /// A new tagger: pretrained encoder (fine-tune mode), freshly initialised tagger weights.
    pub fn new(config: TaggerConfig, encoder: &EncoderFiles, device: Device) -> Result<Self> {
        let text = TextEncoder::load(encoder, device)?;
        let pad_id = text.pieces.pad_id();
        let (vs, bert) = match config.mode {
            TextMode::FineTune => (text.vs, Some(text.bert)),
            TextMode::Frozen => (VarStore::new(device), None),
        };
        let umgf = Umgf::new(&(vs.root().set_group(1) / "umgf"), config.model.clone());
        Ok(Self {
            config,
            vs,
            umgf,
            encoder: bert,
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
        let text = std::fs::read_to_string(path).at(path)?;
        let config: TaggerConfig = serde_json::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
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
        let text =
            serde_json::to_string_pretty(&self.config).map_err(|e| Error::Config(e.to_string()))?;
        std::fs::write(config, text).at(config)?;
        Ok(self.vs.save(weights)?)
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The batch's graphs, with word states from the encoder in fine-tune mode.
    fn graph(&self, batch: &Batch, train: bool) -> GraphBatch {
        let g = &batch.graph;
        let words = match &self.encoder {
            None => g.words.shallow_clone(),
            Some(bert) => {
                let states = bert.forward_t(&batch.pieces.ids, &batch.pieces.mask, train);
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
            word_mask: g.word_mask.shallow_clone(),
            objects: g.objects.shallow_clone(),
            object_mask: g.object_mask.shallow_clone(),
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

    /// Word states after the fusion layers (for checks that visual nodes matter).
    pub fn word_states(&self, batch: &Batch) -> Tensor {
        tch::no_grad(|| self.umgf.word_states(&self.graph(batch, false), false))
    }

    /// The best tag sequence of each tweet of the batch.
    pub fn decode(&self, batch: &Batch) -> Vec<Vec<Tag>> {
        let all = Tag::all();
        tch::no_grad(|| {
            let graph = self.graph(batch, false);
            self.umgf
                .crf
                .viterbi(&self.umgf.emissions(&graph, false), &graph.word_mask)
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
