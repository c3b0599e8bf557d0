//! What BERT and MPNet share: the post-norm transformer layer (self-attention, then a feed-forward
//! block, each followed by a residual connection and a layer norm), the initialisation choice and the
//! layer-norm and embedding set-up. The two architectures differ in their embeddings, in the bias
//! added to the attention scores (padding only, or relative positions too) and in the names of the
//! attention weights ([`AttentionNames`]).
use tch::Tensor;
use tch::nn::{self, Module};

/// How an encoder's weights start, before pretrained ones are copied over them.
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
    fn linear(self) -> nn::LinearConfig {
        match self {
            Self::Zeros => nn::LinearConfig {
                ws_init: nn::Init::Const(0.0),
                bs_init: Some(nn::Init::Const(0.0)),
                bias: true,
            },
            Self::Random => nn::LinearConfig::default(),
        }
    }

    pub(crate) fn embedding(self) -> nn::EmbeddingConfig {
        nn::EmbeddingConfig {
            ws_init: match self {
                Self::Zeros => nn::Init::Const(0.0),
                Self::Random => nn::EmbeddingConfig::default().ws_init,
            },
            ..Default::default()
        }
    }
}

/// The sizes and settings of one layer, from the model's `config.json`.
#[derive(Clone, Debug)]
pub(crate) struct LayerShape {
    pub hidden: i64,
    pub intermediate: i64,
    pub heads: i64,
    /// `gelu`, `gelu_new` (tanh approximation) or `relu`; the configs check this.
    pub act: String,
    pub dropout: f64,
    pub attention_dropout: f64,
    pub layer_norm_eps: f64,
}

impl LayerShape {
    /// Whether this layer can be built: whole heads and a known activation. `path` is the config's.
    pub(crate) fn check(&self, path: &std::path::Path) -> crate::Result<()> {
        if self.heads <= 0 || self.hidden % self.heads != 0 {
            crate::bail!(
                Config,
                "{}: hidden_size is not a multiple of the head count",
                path.display()
            );
        }
        if !matches!(self.act.as_str(), "gelu" | "relu" | "gelu_new") {
            crate::bail!(
                Config,
                "{}: unsupported hidden_act {:?}",
                path.display(),
                self.act
            );
        }
        Ok(())
    }

    pub(crate) fn layer_norm(&self, p: nn::Path) -> nn::LayerNorm {
        let config = nn::LayerNormConfig {
            eps: self.layer_norm_eps,
            ..Default::default()
        };
        nn::layer_norm(p, vec![self.hidden], config)
    }
}

/// Where a layer's attention weights live under its path, as HF names them.
pub(crate) struct AttentionNames {
    pub query: &'static [&'static str],
    pub key: &'static [&'static str],
    pub value: &'static [&'static str],
    pub output: &'static [&'static str],
    pub norm: &'static [&'static str],
}

fn at<'a>(p: &nn::Path<'a>, segments: &[&str]) -> nn::Path<'a> {
    let (first, rest) = segments
        .split_first()
        .expect("weight names are non-empty constants");
    rest.iter().fold(p.sub(*first), |path, s| path.sub(*s))
}

/// One post-norm transformer layer.
#[derive(Debug)]
pub(crate) struct Layer {
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
    /// The layer at `p`, its variables created in HF's order (random initialisation draws in it).
    pub(crate) fn new(p: nn::Path, shape: &LayerShape, names: &AttentionNames, init: Init) -> Self {
        let linear = |p: nn::Path, i, o| nn::linear(p, i, o, init.linear());
        let h = shape.hidden;
        Self {
            query: linear(at(&p, names.query), h, h),
            key: linear(at(&p, names.key), h, h),
            value: linear(at(&p, names.value), h, h),
            attention_out: linear(at(&p, names.output), h, h),
            attention_norm: shape.layer_norm(at(&p, names.norm)),
            intermediate: linear(&p / "intermediate" / "dense", h, shape.intermediate),
            output: linear(&p / "output" / "dense", shape.intermediate, h),
            output_norm: shape.layer_norm(&p / "output" / "LayerNorm"),
            heads: shape.heads,
            act: shape.act.clone(),
            dropout: shape.dropout,
            attention_dropout: shape.attention_dropout,
        }
    }

    /// `x`: [batch, len, hidden]; `bias`: added to the attention scores after the 1/sqrt(d) scaling,
    /// broadcast to [batch, heads, len, len] (very negative at padded keys), in `x`'s kind.
    pub(crate) fn forward_t(&self, x: &Tensor, bias: &Tensor, train: bool) -> Tensor {
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
            Some(bias),
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
