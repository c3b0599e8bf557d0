//! The text encoder as the pipeline uses it: word pieces plus BERT, batched by length, with a sliding
//! window for tweets longer than the model's 128 pieces (they are never cut).
use std::path::{Path, PathBuf};

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::bert::{Bert, BertConfig};
use super::mpnet::{Mpnet, MpnetConfig};
use super::transformer::Init;
use super::wordpiece::{Architecture, MAX_PIECES, Pieces, WordPieces};
use crate::digest::Digest;
use crate::{IoContext, Result};

/// Pieces per window beyond the limit; consecutive windows overlap by half, and each piece takes its
/// state from the window where it is furthest from an edge.
const WINDOW_STRIDE: usize = (MAX_PIECES - 2) / 2;

/// Where a text encoder's files are: `config.json`, `model.safetensors`, `tokenizer.json`.
#[derive(Clone, Debug)]
pub struct EncoderFiles {
    pub dir: PathBuf,
}

impl EncoderFiles {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    pub fn weights(&self) -> PathBuf {
        self.dir.join("model.safetensors")
    }
    pub fn tokenizer(&self) -> PathBuf {
        self.dir.join("tokenizer.json")
    }

    /// (hidden states, width): the embeddings' output plus one state per layer, and the hidden size,
    /// read from `config.json` (BERT and MPNet name them alike) without loading the model.
    pub fn shape(&self) -> Result<(usize, usize)> {
        let path = self.config();
        let text = std::fs::read_to_string(&path).at(&path)?;
        let config: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| crate::Error::model_file(&path, e.to_string()))?;
        let field = |name: &str| {
            config[name]
                .as_u64()
                .map(|v| v as usize)
                .ok_or_else(|| crate::Error::model_file(&path, format!("no {name}")))
        };
        Ok((field("num_hidden_layers")? + 1, field("hidden_size")?))
    }

    /// Identity of the encoder: digest of its three files. Part of every memo key of text work.
    pub fn digest(&self) -> Result<Digest> {
        let parts = [self.config(), self.weights(), self.tokenizer()]
            .iter()
            .map(|p| Digest::of_file(p).map(|d| d.hex()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Digest::of_strings(parts))
    }
}

/// Number format of the encoder's weights and activations at inference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// float32: the reference (parity with PyTorch under 1e-4).
    F32,
    /// bfloat16: about 1.75x faster on CPUs with AVX-512 BF16; states differ from float32 by about 1e-2.
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            _ => Err(crate::Error::Config(format!(
                "precision is f32 or bf16, not {s:?}"
            ))),
        }
    }
}

/// The transformer behind a text encoder, by the checkpoint's `model_type`.
#[derive(Debug)]
pub enum Network {
    Bert(Bert),
    Mpnet(Mpnet),
}

impl Network {
    /// The modules of the architecture `config` describes, under `p`, with `init` weights.
    fn new(
        p: &tch::nn::Path,
        config: &Path,
        architecture: Architecture,
        init: Init,
    ) -> Result<Self> {
        Ok(match architecture {
            Architecture::Bert => Self::Bert(Bert::new(p, BertConfig::from_file(config)?, init)),
            Architecture::Mpnet => {
                Self::Mpnet(Mpnet::new(p, MpnetConfig::from_file(config)?, init))
            }
        })
    }

    /// `ids`, `mask`: [batch, len] int64 (mask 1 for real pieces). The last hidden states, [batch,
    /// len, hidden].
    pub fn forward_t(&self, ids: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        match self {
            Self::Bert(m) => m.forward_t(ids, mask, train),
            Self::Mpnet(m) => m.forward_t(ids, mask, train),
        }
    }

    /// Every hidden state: the embeddings' output, then each layer's.
    pub fn forward_layers_t(&self, ids: &Tensor, mask: &Tensor, train: bool) -> Vec<Tensor> {
        match self {
            Self::Bert(m) => m.forward_layers_t(ids, mask, train),
            Self::Mpnet(m) => m.forward_layers_t(ids, mask, train),
        }
    }

    pub fn hidden_size(&self) -> i64 {
        match self {
            Self::Bert(m) => m.config.hidden_size,
            Self::Mpnet(m) => m.config.hidden_size,
        }
    }

    pub fn num_layers(&self) -> i64 {
        match self {
            Self::Bert(m) => m.config.num_hidden_layers,
            Self::Mpnet(m) => m.config.num_hidden_layers,
        }
    }
}

pub struct TextEncoder {
    pub pieces: WordPieces,
    pub network: Network,
    pub vs: VarStore,
    pub device: Device,
}

impl TextEncoder {
    /// Loads the pretrained encoder's modules under the var-store path `encoder` (a tagging head can
    /// sit beside), for training: see [`Init::Random`].
    pub fn load(files: &EncoderFiles, device: Device) -> Result<Self> {
        Self::load_with(files, device, Init::Random)
    }

    /// [`Self::load`] for inference: the same weights, without drawing random ones first.
    pub fn load_for_inference(files: &EncoderFiles, device: Device) -> Result<Self> {
        Self::load_with(files, device, Init::Zeros)
    }

    fn load_with(files: &EncoderFiles, device: Device, init: Init) -> Result<Self> {
        let encoder = Self::structure(files, device, init)?;
        crate::torch::load_safetensors(&encoder.vs, "encoder.", &files.weights())?;
        Ok(encoder)
    }

    /// The encoder's modules with `init` weights, for a caller that loads its own weights.
    pub fn structure(files: &EncoderFiles, device: Device, init: Init) -> Result<Self> {
        let architecture = Architecture::of_config(&files.config())?;
        let vs = VarStore::new(device);
        let pieces = WordPieces::from_files(&files.tokenizer(), architecture)?;
        let mut network = Network::new(
            &(vs.root() / "encoder"),
            &files.config(),
            architecture,
            init,
        )?;
        if let Network::Bert(bert) = &mut network {
            bert.set_separator(pieces.sep_id());
        }
        Ok(Self {
            pieces,
            network,
            vs,
            device,
        })
    }

    /// Switches weights (and so activations) to `precision`; states always come out as float32.
    pub fn set_precision(&mut self, precision: Precision) {
        match precision {
            Precision::F32 => self.vs.float(),
            Precision::Bf16 => self.vs.bfloat16(),
        }
    }

    pub fn hidden_size(&self) -> i64 {
        self.network.hidden_size()
    }

    /// Number of hidden states the encoder yields: the embeddings' output plus one per layer.
    pub fn hidden_states(&self) -> usize {
        self.network.num_layers() as usize + 1
    }

    /// Last hidden states of every piece, [len, hidden] per sequence (on the CPU), for inference.
    pub fn piece_states(&self, sequences: &[Vec<u32>], batch_size: usize) -> Vec<Tensor> {
        self.states(sequences, batch_size, Layers::Last)
    }

    /// Every hidden state of every piece, [hidden states, len, hidden] per sequence (on the CPU):
    /// the embeddings' output first, the last layer's last (see [`Self::hidden_states`]).
    pub fn piece_layer_states(&self, sequences: &[Vec<u32>], batch_size: usize) -> Vec<Tensor> {
        self.states(sequences, batch_size, Layers::All)
    }

    fn states(&self, sequences: &[Vec<u32>], batch_size: usize, layers: Layers) -> Vec<Tensor> {
        // Long sequences become overlapping windows; all windows go through the model together.
        let plans: Vec<Windows> = sequences.iter().map(|s| Windows::of(s)).collect();
        let windows: Vec<&[u32]> = plans
            .iter()
            .flat_map(|p| p.windows.iter().map(Vec::as_slice))
            .collect();
        let window_states = tch::no_grad(|| self.run_batched(&windows, batch_size, layers));
        let mut states = window_states.into_iter();
        plans
            .iter()
            .map(|plan| {
                let mine: Vec<Tensor> = states.by_ref().take(plan.windows.len()).collect();
                plan.stitch(&mine, layers)
            })
            .collect()
    }

    /// States of each word's first piece, [words, hidden] per tweet.
    pub fn word_states(&self, tweets: &[Pieces], batch_size: usize) -> Vec<Tensor> {
        let sequences: Vec<Vec<u32>> = tweets.iter().map(|t| t.ids.clone()).collect();
        self.piece_states(&sequences, batch_size)
            .into_iter()
            .zip(tweets)
            .map(|(states, tweet)| {
                let index: Vec<i64> = tweet.word_starts.iter().map(|&i| i64::from(i)).collect();
                states.index_select(0, &Tensor::from_slice(&index))
            })
            .collect()
    }

    /// Embeddings of short texts (given as words) the way sentence-transformers pools this model: the
    /// mean of all piece states, [CLS] and [SEP] included, L2-normalised. [texts, hidden].
    pub fn sentence_embeddings<S: AsRef<str>>(
        &self,
        texts: &[Vec<S>],
        batch_size: usize,
    ) -> Result<Tensor> {
        let sequences = texts
            .iter()
            .map(|words| self.pieces.tweet(words).map(|p| p.ids))
            .collect::<Result<Vec<_>>>()?;
        if sequences.is_empty() {
            return Ok(Tensor::zeros(
                [0, self.hidden_size()],
                (Kind::Float, Device::Cpu),
            ));
        }
        let pooled: Vec<Tensor> = self
            .piece_states(&sequences, batch_size)
            .iter()
            .map(|states| states.mean_dim(0, false, Kind::Float))
            .collect();
        let pooled = Tensor::stack(&pooled, 0);
        let norm = pooled
            .norm_scalaropt_dim(2.0, [1i64].as_slice(), true)
            .clamp_min(1e-12);
        Ok(pooled / norm)
    }

    /// Runs sequences through BERT in batches of similar length (little padding), returning each
    /// sequence's states in the original order.
    ///
    /// A sequence's states must not depend on which others share its batch: shards of a stage, a
    /// dump that adds tweets to one already encoded, and a single process must all store the same
    /// bytes for it. The shape of a forward pass changes the bits (matrix kernels choose their
    /// blocking by it), so every pass has the same shape for a sequence: its own length rounded up to
    /// a multiple of [`LENGTH_STEP`], and always `batch_size` rows, a partial batch filled with rows of
    /// padding. (On the AMD EPYC of earlier measurements the row count did not change the bits; on an
    /// Intel Xeon with AVX-512, MKL's matrix products do: a row's result then depends on how many
    /// rows share the product. Where in the batch a row sits does not.) `tests/text.rs` checks it,
    /// down to a batch of one.
    fn run_batched(&self, sequences: &[&[u32]], batch_size: usize, layers: Layers) -> Vec<Tensor> {
        let batch_size = batch_size.max(1);
        let padded_len = |len: usize| len.div_ceil(LENGTH_STEP) * LENGTH_STEP;
        let mut order: Vec<usize> = (0..sequences.len()).collect();
        order.sort_by_key(|&i| padded_len(sequences[i].len()));
        let mut out: Vec<Option<Tensor>> = (0..sequences.len()).map(|_| None).collect();
        for bucket in order
            .chunk_by(|&a, &b| padded_len(sequences[a].len()) == padded_len(sequences[b].len()))
        {
            let len = padded_len(sequences[bucket[0]].len());
            for chunk in bucket.chunks(batch_size) {
                let rows = chunk.iter().map(|&i| sequences[i]);
                let (ids, mask) =
                    pad_batch_to(rows, len, batch_size, self.pieces.pad_id(), self.device);
                // [batch, len, hidden], or [batch, hidden states, len, hidden] for all layers.
                let states = match layers {
                    Layers::Last => self.network.forward_t(&ids, &mask, false),
                    Layers::All => {
                        Tensor::stack(&self.network.forward_layers_t(&ids, &mask, false), 1)
                    }
                }
                .to_device(Device::Cpu)
                .to_kind(Kind::Float);
                for (row, &i) in chunk.iter().enumerate() {
                    let len = sequences[i].len() as i64;
                    out[i] = Some(states.get(row as i64).narrow(-2, 0, len));
                }
            }
        }
        out.into_iter()
            .map(|s| s.unwrap_or_else(|| Tensor::zeros([0], (Kind::Float, Device::Cpu))))
            .collect()
    }
}

/// Which hidden states inference returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layers {
    /// The last layer's: [len, hidden] per sequence.
    Last,
    /// Every one: [hidden states, len, hidden] per sequence.
    All,
}

impl Layers {
    /// The dimension of the pieces in a sequence's states.
    fn piece_dim(self) -> i64 {
        match self {
            Self::Last => 0,
            Self::All => 1,
        }
    }
}

/// Inference pads each sequence to its length rounded up to a multiple of this (see `run_batched`):
/// small enough that little is wasted on padding, large enough that buckets fill their batches.
const LENGTH_STEP: usize = 8;

/// Pads sequences to the longest: (ids, mask), both [batch, len] int64 on `device`.
pub fn pad_batch<'a>(
    sequences: impl Iterator<Item = &'a [u32]>,
    pad: u32,
    device: Device,
) -> (Tensor, Tensor) {
    let sequences: Vec<&[u32]> = sequences.collect();
    let len = sequences.iter().map(|s| s.len()).max().unwrap_or(0);
    let rows = sequences.len();
    pad_batch_to(sequences.into_iter(), len, rows, pad, device)
}

/// Pads sequences (none longer than `len`) to `len`, and the batch to at least `min_rows` rows with
/// filler rows (the first sequence's first piece, then padding): (ids, mask), both [rows, len] int64.
fn pad_batch_to<'a>(
    sequences: impl Iterator<Item = &'a [u32]>,
    len: usize,
    min_rows: usize,
    pad: u32,
    device: Device,
) -> (Tensor, Tensor) {
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    let mut rows = 0;
    let mut filler = vec![pad];
    for seq in sequences {
        if rows == 0 {
            filler = seq.first().map_or(vec![pad], |&first| vec![first]);
        }
        ids.extend(seq.iter().map(|&i| i64::from(i)));
        ids.extend(std::iter::repeat_n(i64::from(pad), len - seq.len()));
        mask.extend(std::iter::repeat_n(1i64, seq.len()));
        mask.extend(std::iter::repeat_n(0i64, len - seq.len()));
        rows += 1;
    }
    // A filler row attends to one real piece, so that no softmax runs over padding alone.
    while rows < min_rows && len > 0 {
        ids.extend(filler.iter().map(|&i| i64::from(i)));
        ids.extend(std::iter::repeat_n(i64::from(pad), len - filler.len()));
        mask.push(1);
        mask.extend(std::iter::repeat_n(0i64, len - 1));
        rows += 1;
    }
    let shape = [rows as i64, len as i64];
    (
        Tensor::from_slice(&ids).view(shape).to_device(device),
        Tensor::from_slice(&mask).view(shape).to_device(device),
    )
}

/// How a sequence is split into model-sized windows and put back together.
struct Windows {
    /// Each window: [CLS] + a slice of the content + [SEP].
    windows: Vec<Vec<u32>>,
    /// For each position of the original sequence: (window, position in that window).
    source: Vec<(usize, usize)>,
}

impl Windows {
    fn of(seq: &[u32]) -> Self {
        if seq.len() <= MAX_PIECES {
            return Self {
                windows: vec![seq.to_vec()],
                source: (0..seq.len()).map(|i| (0, i)).collect(),
            };
        }
        let (cls, content, sep) = (seq[0], &seq[1..seq.len() - 1], seq[seq.len() - 1]);
        let width = MAX_PIECES - 2;
        let mut starts: Vec<usize> = (0..)
            .map(|k| k * WINDOW_STRIDE)
            .take_while(|&s| s + width < content.len())
            .collect();
        starts.push(content.len() - width);
        let windows = starts
            .iter()
            .map(|&s| {
                let mut w = vec![cls];
                w.extend_from_slice(&content[s..s + width]);
                w.push(sep);
                w
            })
            .collect();
        let mut source = vec![(0, 0)];
        for pos in 0..content.len() {
            // The window in which `pos` is furthest from both edges.
            let best = starts
                .iter()
                .enumerate()
                .filter(|&(_, &s)| s <= pos && pos < s + width)
                .max_by_key(|&(_, &s)| (pos - s).min(s + width - 1 - pos))
                .map_or(0, |(w, _)| w);
            source.push((best, pos - starts[best] + 1));
        }
        source.push((starts.len() - 1, width + 1));
        Self { windows, source }
    }

    fn stitch(&self, states: &[Tensor], layers: Layers) -> Tensor {
        if states.len() == 1 {
            return states[0].shallow_clone();
        }
        let dim = layers.piece_dim();
        let rows: Vec<Tensor> = self
            .source
            .iter()
            .map(|&(w, i)| states[w].select(dim, i as i64))
            .collect();
        Tensor::stack(&rows, dim)
    }
}

/// The text encoders `make setup` installs (DESIGN.md section 4), by the name `ENCODER=` takes.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum EncoderName {
    /// all-MiniLM-L6-v2: BERT, 6 layers, 384 wide, uncased (22M parameters).
    #[default]
    Minilm,
    /// all-mpnet-base-v2: MPNet, 12 layers, 768 wide, lowercasing (110M parameters).
    Mpnet,
}

impl EncoderName {
    pub fn name(self) -> &'static str {
        match self {
            Self::Minilm => "minilm",
            Self::Mpnet => "mpnet",
        }
    }

    /// Its files under the models folder.
    pub fn files(self, models: &Path) -> EncoderFiles {
        EncoderFiles::new(models.join(match self {
            Self::Minilm => "minilm-l6",
            Self::Mpnet => "mpnet-base",
        }))
    }
}

impl std::str::FromStr for EncoderName {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "minilm" => Ok(Self::Minilm),
            "mpnet" => Ok(Self::Mpnet),
            _ => Err(crate::Error::Config(format!(
                "encoder is minilm or mpnet, not {s:?}"
            ))),
        }
    }
}

/// The encoder the chunker and the grounder run on (MiniLM), and the default of the text features.
pub fn default_files(models: &Path) -> EncoderFiles {
    EncoderName::Minilm.files(models)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_sequences_are_one_window() {
        let w = Windows::of(&[101, 5, 6, 102]);
        assert_eq!(w.windows.len(), 1);
    }

    #[test]
    fn long_sequences_slide_and_every_piece_comes_from_a_window() {
        let seq: Vec<u32> = std::iter::once(101)
            .chain(1000..1300)
            .chain(std::iter::once(102))
            .collect();
        let w = Windows::of(&seq);
        assert!(
            w.windows
                .iter()
                .all(|win| win.len() == MAX_PIECES && win[0] == 101 && win[MAX_PIECES - 1] == 102)
        );
        assert_eq!(w.source.len(), seq.len());
        for (pos, &(win, i)) in w.source.iter().enumerate() {
            assert_eq!(w.windows[win][i], seq[pos], "position {pos}");
        }
        // Interior pieces are never taken from a window edge when a better window exists.
        let (win, i) = w.source[64 + 1];
        assert!(
            i > 10 && i < MAX_PIECES - 10,
            "piece 64 came from window {win} position {i}"
        );
    }
}
