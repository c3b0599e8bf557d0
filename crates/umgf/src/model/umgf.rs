//! The UMGF model (DESIGN.md section 5): words and objects projected to width d, L fusion layers
//! (intra-modal multi-head self-attention per modality, gated cross-modal aggregation over the
//! graph's word-object links, a position-wise FFN; residuals and layer norm), a CRF on the words.
//!
//! The paper's ablations are flags here (no object-object edges, shared parameters) and in `ground`
//! (`grid`: a grid of image regions instead of targeted objects).
use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

use super::crf::Crf;
use super::text_head::{BiLstm, CharCnn, LayerCombine, ScalarMix};

fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UmgfConfig {
    /// Width of the cached text states (384 for MiniLM-L6).
    pub text_dim: i64,
    /// Width of the visual features (1280 for EfficientNet-Lite0).
    pub visual_dim: i64,
    /// Width of the caption nodes' features (the text encoder's, 384 for MiniLM), projected by a
    /// linear map of their own; 0 (and left out of the config) when the data has no caption nodes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub caption_dim: i64,
    /// Word-shape classes and the width of their embedding (case and form the uncased encoder lacks).
    pub shape_classes: i64,
    pub shape_dim: i64,
    /// Model width d, attention heads, fusion layers L, FFN width.
    pub d: i64,
    pub heads: i64,
    pub layers: i64,
    pub ffn: i64,
    pub dropout: f64,
    /// BIO tags.
    pub tags: i64,
    /// Ablation "w/o VCorr.": objects do not attend to each other.
    pub no_object_edges: bool,
    /// Ablation: one set of attention and FFN parameters for both modalities.
    pub shared_parameters: bool,
    /// Score tags from the fused word states concatenated with the encoder states and word shapes
    /// they started from, as the public UMGF code does. Off (and then left out of the config, so
    /// earlier models keep their cache keys) unless asked for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub concat_text: bool,
    /// The text side before the fusion layers ([`super::text_head`]); the defaults of an absent field
    /// are the model before it existed (one cached state, no character CNN, no BiLSTM).
    #[serde(default)]
    pub text: TextHeadConfig,
}

/// The text side of the tagger: how cached states, word shapes and characters become word states.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TextHeadConfig {
    /// Hidden states cached per word (K); each `text_dim` wide.
    pub layers: i64,
    /// How the K states become one input (with K = 1 neither adds anything).
    pub combine: LayerCombine,
    /// Character embedding width and character-CNN filters (0 filters: no character CNN).
    pub char_dim: i64,
    pub char_filters: i64,
    /// BiLSTM width per direction and depth (0: no BiLSTM).
    pub lstm_hidden: i64,
    pub lstm_layers: i64,
    /// Dropout on the text side's input and output (the fusion layers use `dropout`).
    pub dropout: f64,
    /// Probability that a word's encoder state is zeroed while training.
    pub word_dropout: f64,
}

impl TextHeadConfig {
    /// The frozen-mode head `make train` uses: a scalar mix of the cached states, a character CNN
    /// (30-wide embeddings, 50 filters), a 2-layer BiLSTM of 256 per direction, dropout 0.5 and word
    /// dropout 0.05 (results/README.md, "Choices": dev evidence).
    pub fn recommended() -> Self {
        Self {
            layers: 1,
            combine: LayerCombine::Mix,
            char_dim: 30,
            char_filters: 50,
            lstm_hidden: 256,
            lstm_layers: 2,
            dropout: 0.5,
            word_dropout: 0.05,
        }
    }
}

impl Default for TextHeadConfig {
    /// Nothing on the text side: encoder states and word shapes straight into the fusion layers (the
    /// model before the text head existed; what a config without the field means).
    fn default() -> Self {
        Self {
            layers: 1,
            combine: LayerCombine::Mix,
            char_dim: 0,
            char_filters: 0,
            lstm_hidden: 0,
            lstm_layers: 0,
            dropout: 0.0,
            word_dropout: 0.0,
        }
    }
}

impl UmgfConfig {
    /// Width of the encoder input per word after the layers are combined.
    fn encoder_width(&self) -> i64 {
        match self.text.combine {
            LayerCombine::Mix => self.text_dim,
            LayerCombine::Concat => self.text_dim * self.text.layers,
        }
    }

    /// Width of the text side's word states (what the fusion layers and `concat_text` read).
    fn text_width(&self) -> i64 {
        if self.text.lstm_hidden > 0 && self.text.lstm_layers > 0 {
            2 * self.text.lstm_hidden
        } else {
            self.encoder_width() + self.shape_dim + self.text.char_filters
        }
    }

    /// Width the tag scorer reads beside the fused states.
    fn emit_extra(&self) -> i64 {
        if self.concat_text {
            self.text_width()
        } else {
            0
        }
    }

    /// Values per word of the cached states (K states of `text_dim`).
    pub fn cached_width(&self) -> i64 {
        self.text_dim * self.text.layers
    }
}

impl Default for UmgfConfig {
    /// The paper's d 512, 8 heads and 2 layers. FFN width and dropout were chosen on Twitter-2017 dev
    /// (results/README.md, "Choices"): the paper's dropout 0.5 left dev F1 at 0 after two epochs
    /// where 0.1 reached 51; an FFN of 512 learns as fast as 2048 at 0.7x the time per epoch.
    fn default() -> Self {
        Self {
            text_dim: 384,
            visual_dim: 1280,
            caption_dim: 0,
            shape_classes: i64::from(crate::text::shape::COUNT),
            shape_dim: 32,
            d: 512,
            heads: 8,
            layers: 2,
            ffn: 512,
            dropout: 0.1,
            tags: 9,
            no_object_edges: false,
            shared_parameters: false,
            concat_text: true,
            text: TextHeadConfig::recommended(),
        }
    }
}

/// One padded batch of graphs.
pub struct GraphBatch {
    /// [batch, words, text_dim]
    pub words: Tensor,
    /// [batch, words] int64 word-shape classes
    pub shapes: Tensor,
    /// [batch, words, chars] int64 character ids ([`super::text_head::char_id`], 0 = padding)
    pub chars: Tensor,
    /// [batch, words] bool
    pub word_mask: Tensor,
    /// [batch, objects, visual_dim] (objects may be 0); a caption node's features fill the first
    /// `caption_dim` of its row
    pub objects: Tensor,
    /// [batch, objects] bool
    pub object_mask: Tensor,
    /// [batch, objects] bool: true for a caption node
    pub caption_nodes: Tensor,
    /// [batch, words, objects] float: 1 where an inter-modal edge links word i and object j
    pub links: Tensor,
}

#[derive(Debug)]
struct MultiHead {
    qkv: nn::Linear,
    out: nn::Linear,
    heads: i64,
}

impl MultiHead {
    fn new(p: nn::Path, d: i64, heads: i64) -> Self {
        Self {
            qkv: nn::linear(&p / "qkv", d, 3 * d, Default::default()),
            out: nn::linear(&p / "out", d, d, Default::default()),
            heads,
        }
    }

    /// Self-attention over `x` [b, n, d]; `allowed` [b, n, n] bool says who may attend to whom.
    fn forward(&self, x: &Tensor, allowed: &Tensor, dropout: f64, train: bool) -> Tensor {
        let (b, n, d) = x.size3().unwrap_or((0, 0, 0));
        let split = |t: Tensor| t.view([b, n, self.heads, d / self.heads]).transpose(1, 2);
        let qkv = self.qkv.forward(x).chunk(3, -1);
        let (q, k, v) = (
            split(qkv[0].shallow_clone()),
            split(qkv[1].shallow_clone()),
            split(qkv[2].shallow_clone()),
        );
        let y = Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            Some(allowed.unsqueeze(1)),
            if train { dropout } else { 0.0 },
            false,
            None,
            false,
        );
        self.out
            .forward(&y.transpose(1, 2).contiguous().view([b, n, d]))
    }
}

#[derive(Debug)]
struct Ffn {
    up: nn::Linear,
    down: nn::Linear,
}

impl Ffn {
    fn new(p: nn::Path, d: i64, hidden: i64) -> Self {
        Self {
            up: nn::linear(&p / "up", d, hidden, Default::default()),
            down: nn::linear(&p / "down", hidden, d, Default::default()),
        }
    }

    fn forward(&self, x: &Tensor, dropout: f64, train: bool) -> Tensor {
        self.down
            .forward(&self.up.forward(x).relu().dropout(dropout, train))
    }
}

/// Attention, FFN and norms of one modality.
#[derive(Debug)]
struct Modality {
    attention: MultiHead,
    attention_norm: nn::LayerNorm,
    ffn: Ffn,
    ffn_norm: nn::LayerNorm,
}

impl Modality {
    fn new(p: nn::Path, c: &UmgfConfig) -> Self {
        Self {
            attention: MultiHead::new(&p / "attention", c.d, c.heads),
            attention_norm: nn::layer_norm(&p / "attention_norm", vec![c.d], Default::default()),
            ffn: Ffn::new(&p / "ffn", c.d, c.ffn),
            ffn_norm: nn::layer_norm(&p / "ffn_norm", vec![c.d], Default::default()),
        }
    }

    /// C = LN(H + MultiHead(H, H, H)).
    fn intra(&self, h: &Tensor, allowed: &Tensor, c: &UmgfConfig, train: bool) -> Tensor {
        let a = self.attention.forward(h, allowed, c.dropout, train);
        self.attention_norm
            .forward(&(h + a.dropout(c.dropout, train)))
    }

    /// H = LN(R + FFN(R)).
    fn feed_forward(&self, r: &Tensor, c: &UmgfConfig, train: bool) -> Tensor {
        let f = self.ffn.forward(r, c.dropout, train);
        self.ffn_norm.forward(&(r + f.dropout(c.dropout, train)))
    }
}

#[derive(Debug)]
struct FusionLayer {
    words: Modality,
    /// `None` with shared parameters: objects use `words`.
    objects: Option<Modality>,
    /// Gates (paper eq. 5-6): a = sigmoid(W1 Cx + W2 Co), b = sigmoid(W3 Co + W4 Cx).
    w1: nn::Linear,
    w2: nn::Linear,
    w3: nn::Linear,
    w4: nn::Linear,
}

impl FusionLayer {
    fn new(p: nn::Path, c: &UmgfConfig) -> Self {
        let gate = |name: &str| nn::linear(&p / name, c.d, c.d, Default::default());
        Self {
            words: Modality::new(&p / "words", c),
            objects: (!c.shared_parameters).then(|| Modality::new(&p / "objects", c)),
            w1: gate("w1"),
            w2: gate("w2"),
            w3: gate("w3"),
            w4: gate("w4"),
        }
    }

    /// One layer over words `hx` and objects `ho`; pushes onto `gates`, when given, how strongly each
    /// word took in each linked object: gate a averaged over its dimensions, [b, n, m], 0 unlinked.
    fn forward(
        &self,
        hx: &Tensor,
        ho: &Tensor,
        masks: &Masks,
        c: &UmgfConfig,
        train: bool,
        gates: Option<&mut Vec<Tensor>>,
    ) -> (Tensor, Tensor) {
        let objects = self.objects.as_ref().unwrap_or(&self.words);
        let cx = self.words.intra(hx, &masks.words, c, train);
        let co = objects.intra(ho, &masks.objects, c, train);
        // Element-wise gates for every (word, object) pair: [b, n, m, d].
        let a = (self.w1.forward(&cx).unsqueeze(2) + self.w2.forward(&co).unsqueeze(1)).sigmoid();
        let bg = (self.w3.forward(&co).unsqueeze(1) + self.w4.forward(&cx).unsqueeze(2)).sigmoid();
        if let Some(gates) = gates {
            gates.push(a.mean_dim(-1, false, Kind::Float) * &masks.links);
        }
        let links = masks.links.unsqueeze(3);
        // R_xi = C_xi + sum_j link_ij a_ij * C_oj ; R_oj = C_oj + sum_i link_ij b_ji * C_xi
        let rx = &cx + (a * co.unsqueeze(1) * &links).sum_dim_intlist(2, false, Kind::Float);
        let ro = &co + (bg * cx.unsqueeze(2) * &links).sum_dim_intlist(1, false, Kind::Float);
        (
            self.words.feed_forward(&rx, c, train),
            objects.feed_forward(&ro, c, train),
        )
    }
}

/// Attention masks derived once per batch.
struct Masks {
    /// [b, n, n]: words attend to real words.
    words: Tensor,
    /// [b, m, m]: objects attend to real objects (only themselves without object-object edges);
    /// a padded object attends to itself so that its softmax is defined.
    objects: Tensor,
    /// [b, n, m] float, zero for padding.
    links: Tensor,
}

/// Sinusoidal position encoding [len, dim].
fn positions(len: i64, dim: i64, device: tch::Device) -> Tensor {
    let pos = Tensor::arange(len, (Kind::Float, device)).unsqueeze(1);
    let i = Tensor::arange(dim, (Kind::Float, device));
    let rates = ((&i / 2.0).floor() * 2.0 * (-(10000f64.ln()) / dim as f64)).exp();
    let angles = pos * rates.unsqueeze(0);
    let even = i.remainder(2.0).eq(0.0).unsqueeze(0);
    angles.sin().where_self(&even, &angles.cos())
}

/// The text side's modules (see [`super::text_head`]); each is absent when its config turns it off.
#[derive(Debug)]
struct TextSide {
    mix: Option<ScalarMix>,
    shape_embedding: nn::Embedding,
    chars: Option<CharCnn>,
    lstm: Option<BiLstm>,
}

impl TextSide {
    fn new(p: &nn::Path, c: &UmgfConfig) -> Self {
        let t = &c.text;
        let input = c.encoder_width() + c.shape_dim + t.char_filters;
        Self {
            mix: (t.layers > 1 && t.combine == LayerCombine::Mix)
                .then(|| ScalarMix::new(p / "layer_mix", t.layers)),
            shape_embedding: nn::embedding(
                p / "shape_embedding",
                c.shape_classes,
                c.shape_dim,
                Default::default(),
            ),
            chars: (t.char_filters > 0)
                .then(|| CharCnn::new(p / "chars", t.char_dim, t.char_filters)),
            lstm: (t.lstm_hidden > 0 && t.lstm_layers > 0)
                .then(|| BiLstm::new(p / "lstm", input, t.lstm_hidden, t.lstm_layers)),
        }
    }

    /// Word states of the text side, [batch, words, text_width].
    fn forward(&self, batch: &GraphBatch, c: &UmgfConfig, train: bool) -> Tensor {
        let t = &c.text;
        let (b, n, _) = batch.words.size3().unwrap_or((0, 0, 0));
        let mut encoder = match &self.mix {
            Some(mix) => mix.forward(&batch.words.view([b, n, t.layers, c.text_dim])),
            None => batch.words.shallow_clone(),
        };
        if train && t.word_dropout > 0.0 {
            let keep = Tensor::empty([b, n, 1], (Kind::Float, encoder.device()))
                .bernoulli_float_(1.0 - t.word_dropout);
            encoder *= keep;
        }
        let mut parts = vec![encoder, self.shape_embedding.forward(&batch.shapes)];
        if let Some(chars) = &self.chars {
            parts.push(chars.forward(&batch.chars, t.dropout, train));
        }
        let x = Tensor::cat(&parts, 2);
        match &self.lstm {
            Some(lstm) => lstm
                .forward(
                    &x.dropout(t.dropout, train),
                    &batch.word_mask,
                    t.dropout,
                    train,
                )
                .dropout(t.dropout, train),
            None => x,
        }
    }
}

#[derive(Debug)]
pub struct Umgf {
    pub config: UmgfConfig,
    text: TextSide,
    text_mlp: nn::Linear,
    visual_mlp: nn::Linear,
    /// Caption nodes' projection (when `caption_dim` > 0).
    caption_mlp: Option<nn::Linear>,
    layers: Vec<FusionLayer>,
    emit: nn::Linear,
    pub(crate) crf: Crf,
}

impl Umgf {
    pub fn new(p: &nn::Path, config: UmgfConfig) -> Self {
        let c = &config;
        Self {
            // The shape embedding keeps its name at the root (models saved before the text side
            // existed load as they are).
            text: TextSide::new(p, c),
            text_mlp: nn::linear(p / "text_mlp", c.text_width(), c.d, Default::default()),
            visual_mlp: nn::linear(p / "visual_mlp", c.visual_dim, c.d, Default::default()),
            caption_mlp: (c.caption_dim > 0)
                .then(|| nn::linear(p / "caption_mlp", c.caption_dim, c.d, Default::default())),
            layers: (0..c.layers)
                .map(|l| FusionLayer::new(p / "layers" / l, c))
                .collect(),
            emit: nn::linear(p / "emit", c.d + c.emit_extra(), c.tags, Default::default()),
            crf: Crf::new(&(p / "crf"), c.tags),
            config,
        }
    }

    fn masks(&self, batch: &GraphBatch) -> Masks {
        let (wm, om) = (&batch.word_mask, &batch.object_mask);
        let m = om.size()[1];
        let eye = Tensor::eye(m, (Kind::Bool, om.device())).unsqueeze(0);
        let objects = if self.config.no_object_edges {
            eye.expand([om.size()[0], m, m], false).shallow_clone()
        } else {
            om.unsqueeze(1).logical_or(&eye)
        };
        Masks {
            words: wm
                .unsqueeze(1)
                .expand([wm.size()[0], wm.size()[1], wm.size()[1]], false),
            objects,
            links: &batch.links
                * wm.unsqueeze(2).to_kind(Kind::Float)
                * om.unsqueeze(1).to_kind(Kind::Float),
        }
    }

    /// The scalar mix's normalised weight of each cached hidden state (`None` without a mix).
    pub fn layer_weights(&self) -> Option<Vec<f64>> {
        self.text.mix.as_ref().map(ScalarMix::layer_weights)
    }

    /// Word states after the fusion layers, [batch, words, d].
    pub fn word_states(&self, batch: &GraphBatch, train: bool) -> Tensor {
        let text = self.text.forward(batch, &self.config, train);
        self.fuse(batch, &text, train, None)
    }

    /// Word states after the fusion layers; each layer's word-object gates pushed onto `gates` if given.
    fn fuse(
        &self,
        batch: &GraphBatch,
        text: &Tensor,
        train: bool,
        mut gates: Option<&mut Vec<Tensor>>,
    ) -> Tensor {
        let c = &self.config;
        let n = batch.words.size()[1];
        let position = positions(n, c.text_width(), text.device()).unsqueeze(0);
        let mut hx = self
            .text_mlp
            .forward(&(text + position))
            .relu()
            .dropout(c.dropout, train);
        let mut ho = self.visual_mlp.forward(&batch.objects);
        if let Some(caption_mlp) = &self.caption_mlp {
            let captions = caption_mlp.forward(&batch.objects.narrow(2, 0, c.caption_dim));
            ho = captions.where_self(&batch.caption_nodes.unsqueeze(2), &ho);
        }
        let mut ho = ho.relu().dropout(c.dropout, train);
        let masks = self.masks(batch);
        for layer in &self.layers {
            (hx, ho) = layer.forward(&hx, &ho, &masks, c, train, gates.as_deref_mut());
        }
        hx
    }

    /// Per-word tag scores, [batch, words, tags].
    pub fn emissions(&self, batch: &GraphBatch, train: bool) -> Tensor {
        self.emissions_and_gates(batch, train, None)
    }

    /// Per-word tag scores, and each fusion layer's word-object gates pushed onto `gates` if given
    /// ([batch, words, objects] each: see [`FusionLayer::forward`]).
    pub fn emissions_and_gates(
        &self,
        batch: &GraphBatch,
        train: bool,
        gates: Option<&mut Vec<Tensor>>,
    ) -> Tensor {
        let text = self.text.forward(batch, &self.config, train);
        let fused = self.fuse(batch, &text, train, gates);
        let states = if self.config.concat_text {
            Tensor::cat(&[fused, text.dropout(self.config.dropout, train)], 2)
        } else {
            fused
        };
        self.emit.forward_t(&states, train)
    }

    /// Mean CRF negative log-likelihood of gold `tags` [batch, words].
    pub fn loss(&self, batch: &GraphBatch, tags: &Tensor) -> Tensor {
        self.crf
            .neg_log_likelihood(&self.emissions(batch, true), tags, &batch.word_mask)
    }

    /// The best tag sequence of each tweet.
    pub fn decode(&self, batch: &GraphBatch) -> Vec<Vec<i64>> {
        tch::no_grad(|| {
            self.crf
                .viterbi(&self.emissions(batch, false), &batch.word_mask)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn small() -> UmgfConfig {
        UmgfConfig {
            text_dim: 16,
            visual_dim: 12,
            shape_dim: 4,
            d: 32,
            heads: 4,
            layers: 2,
            ffn: 64,
            dropout: 0.1,
            concat_text: false,
            text: TextHeadConfig::default(),
            ..Default::default()
        }
    }

    /// Two tweets of 5 and 3 words; the first has 2 objects (object 0 linked to words 1-2), the
    /// second none.
    fn batch() -> GraphBatch {
        let opts = (Kind::Float, Device::Cpu);
        let mut links = vec![0f32; 2 * 5 * 2];
        links[2] = 1.0; // word 1, object 0
        links[4] = 1.0; // word 2, object 0
        GraphBatch {
            words: Tensor::randn([2, 5, 16], opts),
            shapes: Tensor::from_slice(&[1i64, 2, 3, 4, 5, 6, 7, 8, 0, 0]).view([2, 5]),
            chars: Tensor::from_slice(&[65i64, 98, 0, 99, 100, 0].repeat(5)).view([2, 5, 3]),
            word_mask: Tensor::from_slice(&[
                true, true, true, true, true, true, true, true, false, false,
            ])
            .view([2, 5]),
            objects: Tensor::randn([2, 2, 12], opts),
            object_mask: Tensor::from_slice(&[true, true, false, false]).view([2, 2]),
            caption_nodes: Tensor::zeros([2, 2], (Kind::Bool, Device::Cpu)),
            links: Tensor::from_slice(&links).view([2, 5, 2]),
        }
    }

    #[test]
    fn shapes_loss_and_decoding() {
        tch::manual_seed(1);
        for (no_object_edges, shared_parameters, concat_text) in [
            (false, false, false),
            (true, false, false),
            (false, true, false),
            (false, false, true),
        ] {
            for text in [
                TextHeadConfig::default(),
                TextHeadConfig {
                    layers: 2,
                    char_dim: 4,
                    char_filters: 6,
                    lstm_hidden: 5,
                    lstm_layers: 2,
                    dropout: 0.5,
                    word_dropout: 0.1,
                    ..TextHeadConfig::default()
                },
            ] {
                let vs = nn::VarStore::new(Device::Cpu);
                let config = UmgfConfig {
                    no_object_edges,
                    shared_parameters,
                    concat_text,
                    // Two cached states of 8 values: the batch's 16 values per word.
                    text_dim: if text.layers == 2 { 8 } else { 16 },
                    text: text.clone(),
                    ..small()
                };
                let model = Umgf::new(&vs.root(), config);
                let b = batch();
                assert_eq!(model.emissions(&b, false).size(), vec![2, 5, 9]);
                let tags = Tensor::from_slice(&[0i64, 1, 2, 0, 0, 3, 4, 0, 0, 0]).view([2, 5]);
                let loss = model.loss(&b, &tags);
                assert!(loss.double_value(&[]).is_finite());
                loss.backward();
                let decoded = model.decode(&b);
                assert_eq!((decoded[0].len(), decoded[1].len()), (5, 3));
            }
        }
    }

    #[test]
    fn a_batch_without_any_object_is_a_text_only_transformer() {
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Umgf::new(&vs.root(), small());
        let b = batch();
        let text_only = GraphBatch {
            objects: Tensor::zeros([2, 0, 12], (Kind::Float, Device::Cpu)),
            object_mask: Tensor::zeros([2, 0], (Kind::Bool, Device::Cpu)),
            links: Tensor::zeros([2, 5, 0], (Kind::Float, Device::Cpu)),
            ..batch_like(&b)
        };
        let emissions = tch::no_grad(|| model.emissions(&text_only, false));
        assert_eq!(emissions.size(), vec![2, 5, 9]);
        assert_eq!(emissions.isfinite().all().int64_value(&[]), 1);
    }

    #[test]
    fn visual_nodes_change_only_the_linked_words_first() {
        tch::manual_seed(2);
        let vs = nn::VarStore::new(Device::Cpu);
        // One layer: a word's state depends on the objects only through its own links (and then
        // through the words' self-attention in later layers).
        let model = Umgf::new(
            &vs.root(),
            UmgfConfig {
                layers: 1,
                ..small()
            },
        );
        let b = batch();
        let with = tch::no_grad(|| model.word_states(&b, false));
        let unlinked = GraphBatch {
            links: b.links.zeros_like(),
            ..batch_like(&b)
        };
        let without = tch::no_grad(|| model.word_states(&unlinked, false));
        let changed = (&with - &without).abs().amax(&[2i64][..], false).gt(1e-6);
        let changed = Vec::<bool>::try_from(changed.flatten(0, -1)).unwrap();
        // Tweet 0: words 1 and 2 change; tweet 1 (no objects) does not change at all.
        assert_eq!(&changed[..5], &[false, true, true, false, false]);
        assert!(changed[5..].iter().all(|c| !c));
    }

    #[test]
    fn gates_are_per_layer_word_and_object_and_zero_where_unlinked() {
        tch::manual_seed(4);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Umgf::new(&vs.root(), small());
        let b = batch();
        let mut gates = Vec::new();
        let emissions = tch::no_grad(|| model.emissions_and_gates(&b, false, Some(&mut gates)));
        // The gates leave the emissions as they are.
        let plain = tch::no_grad(|| model.emissions(&b, false));
        assert!(emissions.allclose(&plain, 0.0, 0.0, false));
        assert_eq!(gates.len(), 2, "one per fusion layer");
        for layer in &gates {
            assert_eq!(layer.size(), vec![2, 5, 2]);
            let values = Vec::<f32>::try_from(layer.flatten(0, -1)).unwrap();
            // Linked: word 1 and word 2 with object 0 of tweet 0 (a sigmoid's mean, in (0, 1)).
            for (i, v) in values.iter().enumerate() {
                let linked = i == 2 || i == 4;
                assert_eq!(linked, *v != 0.0, "entry {i}: {v}");
                assert!((0.0..1.0).contains(v));
            }
        }
    }

    fn batch_like(b: &GraphBatch) -> GraphBatch {
        GraphBatch {
            words: b.words.shallow_clone(),
            shapes: b.shapes.shallow_clone(),
            chars: b.chars.shallow_clone(),
            word_mask: b.word_mask.shallow_clone(),
            objects: b.objects.shallow_clone(),
            object_mask: b.object_mask.shallow_clone(),
            caption_nodes: b.caption_nodes.shallow_clone(),
            links: b.links.shallow_clone(),
        }
    }

    /// A caption node goes through a projection of its own, which reads only the first
    /// `caption_dim` values of its row; an image node's projection reads all of them.
    #[test]
    fn caption_nodes_have_a_projection_of_their_own() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let config = UmgfConfig {
            caption_dim: 4,
            ..small()
        };
        let model = Umgf::new(&vs.root(), config);
        let mut b = batch();
        // Object 1 of tweet 0 is a caption node, linked to word 3.
        b.caption_nodes = Tensor::from_slice(&[false, true, false, false]).view([2, 2]);
        let mut links = Vec::<f32>::try_from(b.links.flatten(0, -1)).unwrap();
        links[3 * 2 + 1] = 1.0;
        b.links = Tensor::from_slice(&links).view([2, 5, 2]);
        let before = model.word_states(&b, false);
        let nudged = |object: i64, from: i64| {
            let objects = b.objects.copy();
            let _ = objects
                .get(0)
                .get(object)
                .narrow(0, from, 12 - from)
                .fill_(7.0);
            GraphBatch {
                objects,
                ..batch_like(&b)
            }
        };
        // Past its first 4 values a caption node's row is not read.
        let after = model.word_states(&nudged(1, 4), false);
        assert!(before.allclose(&after, 1e-6, 1e-6, false));
        // Within them it is, and so is all of an image node's row.
        assert!(!before.allclose(&model.word_states(&nudged(1, 0), false), 1e-6, 1e-6, false));
        assert!(!before.allclose(&model.word_states(&nudged(0, 4), false), 1e-6, 1e-6, false));
    }
}
