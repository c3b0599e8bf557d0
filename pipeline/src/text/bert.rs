//! A BERT encoder in tch, configured from a Hugging Face `config.json`, loading `model.safetensors`.
//! Any BERT-architecture checkpoint loads the same way (MiniLM-L6 here; bert-base-cased if a user has
//! it): tensor names are HF's, with or without the `bert.` prefix.
use std::path::Path;

use serde::Deserialize;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::error::{Error, IoContext, Result};

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
            .map_err(|e| Error::Config(format!("{}: not a BERT config: {e}", path.display())))?;
        if config.hidden_size % config.num_attention_heads != 0 {
            crate::bail!(
                Config,
                "{}: hidden_size is not a multiple of the head count",
                path.display()
            );
        }
        if !matches!(config.hidden_act.as_str(), "gelu" | "relu" | "gelu_new") {
            crate::bail!(
                Config,
                "{}: unsupported hidden_act {:?}",
                path.display(),
                config.hidden_act
            );
        }
        Ok(config)
    }
}

fn layer_norm(p: nn::Path, config: &BertConfig) -> nn::LayerNorm {
    let ln = nn::LayerNormConfig {
        eps: config.layer_norm_eps,
        ..Default::default()
    };
    nn::layer_norm(p, vec![config.hidden_size], ln)
}

/// How a [`Bert`]'s weights start, before pretrained ones are copied over them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// tch's random initialisation. Paths that train keep it: their seeded results depend on the
    /// random numbers drawn here (the tagging head's come after).
    Random,
    /// Zeros: for inference, where nothing random follows and drawing 22M random numbers that the
    /// pretrained weights overwrite anyway costs a tenth of a second per load.
    Zeros,
}

impl Init {
    fn weights(self) -> Option<nn::Init> {
        (self == Self::Zeros).then_some(nn::Init::Const(0.0))
    }
}

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
        let config = nn::EmbeddingConfig {
            ws_init: init
                .weights()
                .unwrap_or(nn::EmbeddingConfig::default().ws_init),
            ..Default::default()
        };
        let emb = |name: &str, n| nn::embedding(&p / name, n, c.hidden_size, config);
        Self {
            word: emb("word_embeddings", c.vocab_size),
            position: emb("position_embeddings", c.max_position_embeddings),
            token_type: emb("token_type_embeddings", c.type_vocab_size),
            norm: layer_norm(&p / "LayerNorm", c),
            dropout: c.hidden_dropout_prob,
        }
    }

    fn forward_t(&self, ids: &Tensor, train: bool) -> Tensor {
        let len = ids.size()[1];
        let positions = Tensor::arange(len, (Kind::Int64, ids.device())).unsqueeze(0);
        let types = ids.zeros_like();
        let sum = self.word.forward(ids)
            + self.position.forward(&positions)
            + self.token_type.forward(&types);
        self.norm.forward(&sum).dropout(self.dropout, train)
    }
}

#[derive(Debug)]
struct Layer {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    attention_out: nn::Linear,
    attention_norm: nn::LayerNorm,
    intermediate: nn::Linear,
    output: nn::Linear,
    output_norm: nn::LayerNorm,
    heads: i64,
    act: String,
    dropout: f64,
    attention_dropout: f64,
}

impl Layer {
    fn new(p: nn::Path, c: &BertConfig, init: Init) -> Self {
        let config = match init.weights() {
            Some(zeros) => nn::LinearConfig {
                ws_init: zeros,
                bs_init: Some(zeros),
                bias: true,
            },
            None => nn::LinearConfig::default(),
        };
        let linear = |p: nn::Path, i, o| nn::linear(p, i, o, config);
        let h = c.hidden_size;
        let attn = &p / "attention";
        Self {
            query: linear(&attn / "self" / "query", h, h),
            key: linear(&attn / "self" / "key", h, h),
            value: linear(&attn / "self" / "value", h, h),
            attention_out: linear(&attn / "output" / "dense", h, h),
            attention_norm: layer_norm(&attn / "output" / "LayerNorm", c),
            intermediate: linear(&p / "intermediate" / "dense", h, c.intermediate_size),
            output: linear(&p / "output" / "dense", c.intermediate_size, h),
            output_norm: layer_norm(&p / "output" / "LayerNorm", c),
            heads: c.num_attention_heads,
            act: c.hidden_act.clone(),
            dropout: c.hidden_dropout_prob,
            attention_dropout: c.attention_probs_dropout_prob,
        }
    }

    /// `x`: [batch, len, hidden]; `mask_bias`: [batch, 1, 1, len], 0 for real pieces, very negative for padding.
    fn forward_t(&self, x: &Tensor, mask_bias: &Tensor, train: bool) -> Tensor {
        let (b, len, hidden) = x.size3().unwrap_or((0, 0, 0));
        let head_dim = hidden / self.heads;
        let split = |t: Tensor| t.view([b, len, self.heads, head_dim]).transpose(1, 2);
        let q = split(self.query.forward(x));
        let k = split(self.key.forward(x));
        let v = split(self.value.forward(x));
        // libtorch's fused attention (what HF's default "sdpa" calls) instead of matmul-softmax-matmul.
        let dropout = if train { self.attention_dropout } else { 0.0 };
        let context = Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            Some(mask_bias),
            dropout,
            false,
            None,
            false,
        )
        .transpose(1, 2)
        .contiguous()
        .view([b, len, hidden]);
        let attended = self.attention_norm.forward(
            &(self
                .attention_out
                .forward(&context)
                .dropout(self.dropout, train)
                + x),
        );
        let inner = self.intermediate.forward(&attended);
        let inner = match self.act.as_str() {
            "relu" => inner.relu(),
            "gelu_new" => inner.gelu("tanh"),
            _ => inner.gelu("none"),
        };
        let out = self.output.forward(&inner).dropout(self.dropout, train);
        self.output_norm.forward(&(out + attended))
    }
}

/// BERT without the pooler: token ids in, last hidden states out.
#[derive(Debug)]
pub struct Bert {
    pub config: BertConfig,
    embeddings: Embeddings,
    layers: Vec<Layer>,
}

impl Bert {
    /// Creates the modules under `p` (HF names: `embeddings.*`, `encoder.layer.<i>.*`).
    pub fn new(p: &nn::Path, config: BertConfig, init: Init) -> Self {
        let embeddings = Embeddings::new(p / "embeddings", &config, init);
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::new(p / "encoder" / "layer" / i, &config, init))
            .collect();
        Self {
            config,
            embeddings,
            layers,
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
        let x = self.embeddings.forward_t(ids, train);
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
