//! A BERT encoder in tch, configured from a Hugging Face `config.json`, loading `model.safetensors`.
//! Any BERT-architecture checkpoint loads the same way (MiniLM-L6 here; bert-base-cased if a user has
//! it): tensor names are HF's, with or without the `bert.` prefix.
use std::path::Path;

use serde::Deserialize;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::transformer::{AttentionNames, Init, Layer, LayerShape};
use crate::{Error, IoContext, Result};

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct BertConfig {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    pub max_position_embeddings: i64,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: i64,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
}

fn default_type_vocab_size() -> i64 {
    2
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_hidden_act() -> String {
    "gelu".to_owned()
}
fn default_dropout() -> f64 {
    0.1
}

impl BertConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).at(path)?;
        let config: Self = serde_json::from_str(&text)
            .map_err(|e| Error::model_file(path, format!("not a BERT config: {e}")))?;
        config.layer_shape().check(path)?;
        Ok(config)
    }

    fn layer_shape(&self) -> LayerShape {
        LayerShape {
            hidden: self.hidden_size,
            intermediate: self.intermediate_size,
            heads: self.num_attention_heads,
            act: self.hidden_act.clone(),
            dropout: self.hidden_dropout_prob,
            attention_dropout: self.attention_probs_dropout_prob,
            layer_norm_eps: self.layer_norm_eps,
        }
    }
}

/// BERT's names of a layer's attention weights.
const ATTENTION: AttentionNames = AttentionNames {
    query: &["attention", "self", "query"],
    key: &["attention", "self", "key"],
    value: &["attention", "self", "value"],
    output: &["attention", "output", "dense"],
    norm: &["attention", "output", "LayerNorm"],
};

#[derive(Debug)]
struct Embeddings {
    word: nn::Embedding,
    position: nn::Embedding,
    token_type: nn::Embedding,
    norm: nn::LayerNorm,
    dropout: f64,
}

impl Embeddings {
    fn new(p: nn::Path, c: &BertConfig, init: Init) -> Self {
        let config = init.embedding();
        let emb = |name: &str, n| nn::embedding(&p / name, n, c.hidden_size, config);
        Self {
            word: emb("word_embeddings", c.vocab_size),
            position: emb("position_embeddings", c.max_position_embeddings),
            token_type: emb("token_type_embeddings", c.type_vocab_size),
            norm: c.layer_shape().layer_norm(&p / "LayerNorm"),
            dropout: c.hidden_dropout_prob,
        }
    }

    /// `types`: each piece's segment (0 for the first text of a pair, 1 for the second).
    fn forward_t(&self, ids: &Tensor, types: &Tensor, train: bool) -> Tensor {
        let len = ids.size()[1];
        let positions = Tensor::arange(len, (Kind::Int64, ids.device())).unsqueeze(0);
        let sum = self.word.forward(ids)
            + self.position.forward(&positions)
            + self.token_type.forward(types);
        self.norm.forward(&sum).dropout(self.dropout, train)
    }
}

/// BERT without the pooler: token ids in, last hidden states out.
#[derive(Debug)]
pub struct Bert {
    pub config: BertConfig,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    /// The `[SEP]` piece, when known: a sequence with pieces after its first `[SEP]` is a pair
    /// (`[CLS] A [SEP] B [SEP]`), whose second segment gets token type 1 as BERT was trained.
    separator: Option<i64>,
}

impl Bert {
    /// Creates the modules under `p` (HF names: `embeddings.*`, `encoder.layer.<i>.*`).
    pub fn new(p: &nn::Path, config: BertConfig, init: Init) -> Self {
        let embeddings = Embeddings::new(p / "embeddings", &config, init);
        let shape = config.layer_shape();
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::new(p / "encoder" / "layer" / i, &shape, &ATTENTION, init))
            .collect();
        Self {
            config,
            embeddings,
            layers,
            separator: None,
        }
    }

    /// Makes pairs possible: pieces after the first `sep` (and before padding) are the second segment.
    pub fn set_separator(&mut self, sep: u32) {
        self.separator = Some(i64::from(sep));
    }

    /// Each piece's token type: 1 after the first separator for real pieces, else 0 (every piece of a
    /// single text: its only separator is its last piece).
    fn token_types(&self, ids: &Tensor, mask: &Tensor) -> Tensor {
        match self.separator {
            None => ids.zeros_like(),
            Some(sep) => {
                let is_sep = ids.eq(sep).to_kind(Kind::Int64);
                let before = is_sep.cumsum(1, Kind::Int64) - &is_sep;
                before.gt(0).to_kind(Kind::Int64) * mask.to_kind(Kind::Int64)
            }
        }
    }

    /// `ids`, `mask`: [batch, len] int64 (mask 1 for real pieces, 0 for padding). Returns [batch, len, hidden].
    pub fn forward_t(&self, ids: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        let (mut x, mask_bias) = self.embed(ids, mask, train);
        for layer in &self.layers {
            x = layer.forward_t(&x, &mask_bias, train);
        }
        x
    }

    /// The embeddings' output and the additive attention mask (HF's: (1 - mask) * the most
    /// negative float).
    fn embed(&self, ids: &Tensor, mask: &Tensor, train: bool) -> (Tensor, Tensor) {
        let x = self
            .embeddings
            .forward_t(ids, &self.token_types(ids, mask), train);
        let padding = mask.to_kind(x.kind()).neg() + 1.0;
        let mask_bias = padding.unsqueeze(1).unsqueeze(2) * f64::from(f32::MIN);
        (x, mask_bias)
    }

    /// Every hidden state, as HF's `output_hidden_states`: the embeddings' output, then each layer's
    /// output; `num_hidden_layers + 1` tensors of [batch, len, hidden].
    pub fn forward_layers_t(&self, ids: &Tensor, mask: &Tensor, train: bool) -> Vec<Tensor> {
        let (mut x, mask_bias) = self.embed(ids, mask, train);
        let mut states = Vec::with_capacity(self.layers.len() + 1);
        for layer in &self.layers {
            let next = layer.forward_t(&x, &mask_bias, train);
            states.push(std::mem::replace(&mut x, next));
        }
        states.push(x);
        states
    }
}
