//! An MPNet encoder in tch (all-mpnet-base-v2 here), configured from a Hugging Face `config.json`,
//! loading `model.safetensors` with HF's tensor names (no `mpnet.` prefix; the stored `pooler.*` is
//! not used and not created).
//!
//! How it differs from [`super::bert::Bert`]: no token-type embeddings; positions count the real pieces
//! from `pad_token_id + 1` (RoBERTa style, computed from the ids; HF fixes the padding index at 1,
//! which is all-mpnet-base-v2's `pad_token_id`); attention modules
//! `attention.attn.{q,k,v,o}` and `attention.LayerNorm`; and one relative position bias
//! (`encoder.relative_attention_bias`, [buckets, heads]) over T5-style bidirectional log buckets,
//! computed once per forward and added to every layer's attention scores after the 1/sqrt(d) scaling.
use std::path::Path;

use serde::Deserialize;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::transformer::{AttentionNames, Init, Layer, LayerShape};
use crate::{Error, IoContext, Result};

/// The relative position buckets, as HF computes them: 32 whatever `relative_attention_num_buckets`
/// says (that only sizes the bias table), telling distances apart up to `MAX_DISTANCE`.
const NUM_BUCKETS: i64 = 32;
const MAX_DISTANCE: i64 = 128;

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct MpnetConfig {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    pub max_position_embeddings: i64,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: i64,
    #[serde(default = "default_pad_token_id")]
    pub pad_token_id: i64,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
}

fn default_layer_norm_eps() -> f64 {
    1e-5
}
fn default_hidden_act() -> String {
    "gelu".to_owned()
}
fn default_buckets() -> i64 {
    32
}
fn default_pad_token_id() -> i64 {
    1
}
fn default_dropout() -> f64 {
    0.1
}

impl MpnetConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).at(path)?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::model_file(path, format!("not an MPNet config: {e}")))?;
        if let Some(kind) = value.get("model_type").and_then(serde_json::Value::as_str)
            && kind != "mpnet"
        {
            crate::bail!(
                Config,
                "{}: model_type is {kind:?}, not \"mpnet\"",
                path.display()
            );
        }
        let config: Self = serde_json::from_value(value)
            .map_err(|e| Error::model_file(path, format!("not an MPNet config: {e}")))?;
        config.layer_shape().check(path)?;
        if config.relative_attention_num_buckets < NUM_BUCKETS {
            crate::bail!(
                Config,
                "{}: relative_attention_num_buckets {} (the bias table needs {NUM_BUCKETS})",
                path.display(),
                config.relative_attention_num_buckets
            );
        }
        if !(0..config.max_position_embeddings).contains(&config.pad_token_id) {
            crate::bail!(
                Config,
                "{}: pad_token_id {} outside the position table",
                path.display(),
                config.pad_token_id
            );
        }
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

/// MPNet's names of a layer's attention weights.
const ATTENTION: AttentionNames = AttentionNames {
    query: &["attention", "attn", "q"],
    key: &["attention", "attn", "k"],
    value: &["attention", "attn", "v"],
    output: &["attention", "attn", "o"],
    norm: &["attention", "LayerNorm"],
};

#[derive(Debug)]
struct Embeddings {
    word: nn::Embedding,
    position: nn::Embedding,
    norm: nn::LayerNorm,
    pad: i64,
    dropout: f64,
}

impl Embeddings {
    fn new(p: nn::Path, c: &MpnetConfig, init: Init) -> Self {
        let config = init.embedding();
        let emb = |name: &str, n| nn::embedding(&p / name, n, c.hidden_size, config);
        Self {
            word: emb("word_embeddings", c.vocab_size),
            position: emb("position_embeddings", c.max_position_embeddings),
            norm: c.layer_shape().layer_norm(&p / "LayerNorm"),
            pad: c.pad_token_id,
            dropout: c.hidden_dropout_prob,
        }
    }

    fn forward_t(&self, ids: &Tensor, train: bool) -> Tensor {
        // As HF: the real pieces count 1, 2, ... and sit at pad + that; every pad piece sits at pad.
        let real = ids.ne(self.pad).to_kind(Kind::Int64);
        let positions = real.cumsum(1, Kind::Int64) * &real + self.pad;
        let sum = self.word.forward(ids) + self.position.forward(&positions);
        self.norm.forward(&sum).dropout(self.dropout, train)
    }
}

/// The T5 bucket of each relative position `memory - context`, bidirectional: half the buckets for
/// keys before the query, half after; in each half, exact distances below a quarter of the buckets, then
/// log-spaced up to `max_distance`. The same tensor operations as HF's `relative_position_bucket`, so
/// that the float32 logarithm rounds the same way at bucket edges.
fn relative_position_bucket(relative: &Tensor, num_buckets: i64, max_distance: i64) -> Tensor {
    let half = num_buckets / 2;
    let n = relative.neg();
    let ret = n.lt(0).to_kind(Kind::Int64) * half;
    let n = n.abs();
    let max_exact = half / 2;
    let is_small = n.lt(max_exact);
    let large = (n.to_kind(Kind::Float) / max_exact as f64).log()
        / (max_distance as f64 / max_exact as f64).ln()
        * (half - max_exact) as f64;
    let large = (large.to_kind(Kind::Int64) + max_exact).clamp_max(half - 1);
    ret + n.where_self(&is_small, &large)
}

/// MPNet without the pooler: token ids in, hidden states out.
#[derive(Debug)]
pub struct Mpnet {
    pub config: MpnetConfig,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    relative_attention_bias: nn::Embedding,
}

impl Mpnet {
    /// Creates the modules under `p` with HF's names: `embeddings.*`, `encoder.layer.<i>.*`,
    /// `encoder.relative_attention_bias`.
    pub fn new(p: &nn::Path, config: MpnetConfig, init: Init) -> Self {
        let embeddings = Embeddings::new(p / "embeddings", &config, init);
        let shape = config.layer_shape();
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::new(p / "encoder" / "layer" / i, &shape, &ATTENTION, init))
            .collect();
        let relative_attention_bias = nn::embedding(
            p / "encoder" / "relative_attention_bias",
            config.relative_attention_num_buckets,
            config.num_attention_heads,
            init.embedding(),
        );
        Self {
            config,
            embeddings,
            layers,
            relative_attention_bias,
        }
    }

    /// The relative position bias of a sequence of `len` pieces: [1, heads, len, len], in the bias
    /// table's kind.
    fn position_bias(&self, len: i64, device: tch::Device) -> Tensor {
        let positions = Tensor::arange(len, (Kind::Int64, device));
        let relative = positions.unsqueeze(0) - positions.unsqueeze(1); // [query, key]: key - query
        let buckets = relative_position_bucket(&relative, NUM_BUCKETS, MAX_DISTANCE);
        self.relative_attention_bias
            .forward(&buckets) // [query, key, heads]
            .permute([2, 0, 1])
            .unsqueeze(0)
    }

    /// `ids`, `mask`: [batch, len] int64 (mask 1 for real pieces, 0 for padding, which must be
    /// `pad_token_id` pieces after the real ones; at most `max_position_embeddings - pad_token_id - 1`
    /// real pieces, 512 here). Returns `num_hidden_layers + 1` tensors
    /// [batch, len, hidden]: the embeddings' output, then each layer's (HF's `hidden_states`).
    pub fn forward_layers_t(&self, ids: &Tensor, mask: &Tensor, train: bool) -> Vec<Tensor> {
        let mut x = self.embeddings.forward_t(ids, train);
        let (_, len) = ids.size2().unwrap_or((0, 0));
        // HF's additive mask, (1 - mask) * the most negative float, plus the position bias, in the
        // activations' kind (bfloat16 when the var store is).
        let padding = mask.to_kind(x.kind()).neg() + 1.0;
        let mask_bias = padding.unsqueeze(1).unsqueeze(2) * f64::from(f32::MIN);
        let bias = self.position_bias(len, x.device()).to_kind(x.kind()) + mask_bias;
        let mut states = Vec::with_capacity(self.layers.len() + 1);
        for layer in &self.layers {
            let next = layer.forward_t(&x, &bias, train);
            states.push(std::mem::replace(&mut x, next));
        }
        states.push(x);
        states
    }

    /// The last hidden states, [batch, len, hidden].
    pub fn forward_t(&self, ids: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        self.forward_layers_t(ids, mask, train)
            .pop()
            .unwrap_or_else(|| Tensor::zeros([0], (Kind::Float, ids.device())))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tch::Device;
    use tch::nn::VarStore;

    fn small_config() -> MpnetConfig {
        MpnetConfig {
            vocab_size: 50,
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 32,
            max_position_embeddings: 40,
            layer_norm_eps: 1e-5,
            hidden_act: "gelu".to_owned(),
            relative_attention_num_buckets: 32,
            pad_token_id: 1,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
        }
    }

    #[test]
    fn buckets_are_t5_bidirectional() {
        // relative = key - query; keys after the query take the upper half of the buckets.
        let relative =
            Tensor::from_slice(&[0i64, -1, 1, -7, 7, -8, -20, 20, -127, -128, -500, 500]);
        let buckets: Vec<i64> = relative_position_bucket(&relative, 32, 128)
            .try_into()
            .unwrap();
        assert_eq!(buckets, [0, 1, 17, 7, 23, 8, 10, 26, 15, 15, 15, 31]);
    }

    #[test]
    fn shapes_layers_and_padding() {
        tch::manual_seed(7);
        let vs = VarStore::new(Device::Cpu);
        let model = Mpnet::new(&(vs.root() / "encoder"), small_config(), Init::Random);
        let names: Vec<String> = vs.variables().into_keys().collect();
        for name in [
            "encoder.embeddings.word_embeddings.weight",
            "encoder.embeddings.position_embeddings.weight",
            "encoder.embeddings.LayerNorm.weight",
            "encoder.encoder.layer.1.attention.attn.q.weight",
            "encoder.encoder.layer.1.attention.attn.o.bias",
            "encoder.encoder.layer.1.attention.LayerNorm.bias",
            "encoder.encoder.layer.0.intermediate.dense.weight",
            "encoder.encoder.layer.0.output.dense.weight",
            "encoder.encoder.layer.0.output.LayerNorm.weight",
            "encoder.encoder.relative_attention_bias.weight",
        ] {
            assert!(
                names.contains(&name.to_owned()),
                "{name} missing: {names:?}"
            );
        }
        assert!(
            !names
                .iter()
                .any(|n| n.contains("token_type") || n.contains("pooler"))
        );

        // Two sequences, the second padded with <pad> (1) after 3 real pieces.
        let ids = Tensor::from_slice2(&[[0i64, 5, 9, 7, 12, 2], [0, 8, 2, 1, 1, 1]]);
        let mask = Tensor::from_slice2(&[[1i64; 6], [1, 1, 1, 0, 0, 0]]);
        let states = tch::no_grad(|| model.forward_layers_t(&ids, &mask, false));
        assert_eq!(states.len(), 3);
        for s in &states {
            assert_eq!(s.size(), [2, 6, 16]);
            assert!(s.isfinite().all().int64_value(&[]) == 1);
        }
        let last = tch::no_grad(|| model.forward_t(&ids, &mask, false));
        assert!(last.equal(&states[2]));

        // The padded sequence alone and unpadded: the same states at its real pieces.
        let alone = tch::no_grad(|| {
            model.forward_layers_t(
                &Tensor::from_slice2(&[[0i64, 8, 2]]),
                &Tensor::from_slice2(&[[1i64, 1, 1]]),
                false,
            )
        });
        for (padded, alone) in states.iter().zip(&alone) {
            let diff = (padded.get(1).narrow(0, 0, 3) - alone.get(0))
                .abs()
                .max()
                .double_value(&[]);
            assert!(diff < 1e-5, "padding changed real states by {diff}");
        }
        // The first sequence is unaffected by its batch peer.
        let first =
            tch::no_grad(|| model.forward_t(&ids.narrow(0, 0, 1), &mask.narrow(0, 0, 1), false));
        let diff = (first.get(0) - states[2].get(0))
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn runs_in_bfloat16() {
        tch::manual_seed(3);
        let mut vs = VarStore::new(Device::Cpu);
        let model = Mpnet::new(&vs.root(), small_config(), Init::Random);
        let ids = Tensor::from_slice2(&[[0i64, 5, 9, 2], [0, 8, 2, 1]]);
        let mask = Tensor::from_slice2(&[[1i64, 1, 1, 1], [1, 1, 1, 0]]);
        let f32_states = tch::no_grad(|| model.forward_t(&ids, &mask, false));
        vs.bfloat16();
        let bf16_states = tch::no_grad(|| model.forward_t(&ids, &mask, false));
        assert_eq!(bf16_states.kind(), Kind::BFloat16);
        let real = Tensor::cat(&[f32_states.get(0), f32_states.get(1).narrow(0, 0, 3)], 0);
        let low = Tensor::cat(&[bf16_states.get(0), bf16_states.get(1).narrow(0, 0, 3)], 0)
            .to_kind(Kind::Float);
        let cosine = Tensor::cosine_similarity(&real, &low, 1, 1e-8)
            .min()
            .double_value(&[]);
        assert!(cosine > 0.99, "min cosine {cosine}");
    }

    #[test]
    fn config_rejects_another_model_type() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"model_type": "bert", "vocab_size": 5, "hidden_size": 4, "num_hidden_layers": 1,
                "num_attention_heads": 2, "intermediate_size": 8, "max_position_embeddings": 8}"#,
        )
        .unwrap();
        let err = MpnetConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("config.json") && err.contains("bert"), "{err}");
    }
}
