//! The text side of the tagger, before the fusion layers: what turns cached (frozen) encoder states
//! into word states worth fusing. Following what makes frozen BERT features nearly as good as
//! fine-tuning (Devlin et al. 2019, Table 7; Peters et al. 2018):
//! - a learned scalar mix of several hidden states per word (or their concatenation),
//! - word dropout (a word's encoder state zeroed at random while training),
//! - the word's shape class and a character CNN (the encoders are uncased: case and form come from
//!   here),
//! - a BiLSTM over the words (context trained for the task, which the frozen encoder cannot be).
use tch::nn::{self, Module, RNN};
use tch::{Kind, Tensor};

/// Characters per word the character CNN reads (longer words keep their first ones).
pub const MAX_CHARS: usize = 20;
/// Character ids: 0 padding, 1..=127 ASCII by code point, then 32 hashed buckets for the rest.
pub const CHAR_VOCAB: i64 = 160;

/// The character id of `c` (see [`CHAR_VOCAB`]).
pub fn char_id(c: char) -> i64 {
    let code = u32::from(c);
    if (1..128).contains(&code) {
        i64::from(code)
    } else {
        128 + i64::from(code % 32)
    }
}

/// How several cached hidden states of a word become one input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerCombine {
    /// gamma * sum_k softmax(s)_k h_k (ELMo's scalar mix): the input is one state wide.
    #[default]
    Mix,
    /// The states side by side: the input is K states wide.
    Concat,
}

impl std::str::FromStr for LayerCombine {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "mix" => Ok(Self::Mix),
            "concat" => Ok(Self::Concat),
            _ => Err(crate::Error::Config(format!(
                "layer combine is mix or concat, not {s:?}"
            ))),
        }
    }
}

/// ELMo's scalar mix of K states: softmax-normalised weights and a scale, both learned.
#[derive(Debug)]
pub struct ScalarMix {
    weights: Tensor,
    gamma: Tensor,
}

impl ScalarMix {
    pub fn new(p: nn::Path, layers: i64) -> Self {
        Self {
            weights: p.var("weights", &[layers], nn::Init::Const(0.0)),
            gamma: p.var("gamma", &[1], nn::Init::Const(1.0)),
        }
    }

    /// `states` [b, n, K, H] -> [b, n, H].
    pub fn forward(&self, states: &Tensor) -> Tensor {
        let w = self.weights.softmax(0, Kind::Float).view([1, 1, -1, 1]);
        (states * w).sum_dim_intlist(2, false, Kind::Float) * &self.gamma
    }

    /// The normalised layer weights (for reports).
    pub fn layer_weights(&self) -> Vec<f64> {
        let w = self.weights.softmax(0, Kind::Float).to_kind(Kind::Double);
        Vec::<f64>::try_from(w.detach()).unwrap_or_default()
    }
}

/// A character CNN over each word (Ma and Hovy 2016): embeddings, one convolution of width 3, ReLU,
/// max over the characters.
#[derive(Debug)]
pub struct CharCnn {
    embedding: nn::Embedding,
    conv: nn::Conv1D,
    filters: i64,
}

impl CharCnn {
    pub fn new(p: nn::Path, dim: i64, filters: i64) -> Self {
        let conv = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        Self {
            embedding: nn::embedding(&p / "embedding", CHAR_VOCAB, dim, Default::default()),
            conv: nn::conv1d(&p / "conv", dim, filters, 3, conv),
            filters,
        }
    }

    /// `chars` [b, n, c] int64 (0 = padding) -> [b, n, filters].
    pub fn forward(&self, chars: &Tensor, dropout: f64, train: bool) -> Tensor {
        let (b, n, c) = chars.size3().unwrap_or((0, 0, 0));
        if c == 0 {
            return Tensor::zeros([b, n, self.filters], (Kind::Float, chars.device()));
        }
        let flat = chars.view([b * n, c]);
        let embedded = self
            .embedding
            .forward(&flat)
            .dropout(dropout, train)
            .transpose(1, 2);
        let present = flat.ne(0).unsqueeze(1);
        // After the ReLU every value is >= 0, so zeroing the padding leaves each real maximum alone.
        let features = self.conv.forward(&embedded).relu() * present;
        features
            .amax([2i64].as_slice(), false)
            .view([b, n, self.filters])
    }
}

/// A bidirectional LSTM over padded word sequences: each direction a unidirectional LSTM, the
/// backward one run on every sequence reversed within its own length, so that padding never flows
/// into a real word's state.
#[derive(Debug)]
pub struct BiLstm {
    layers: Vec<(nn::LSTM, nn::LSTM)>,
}

impl BiLstm {
    pub fn new(p: nn::Path, input: i64, hidden: i64, layers: i64) -> Self {
        let config = nn::RNNConfig {
            batch_first: true,
            ..Default::default()
        };
        Self {
            layers: (0..layers)
                .map(|l| {
                    let width = if l == 0 { input } else { 2 * hidden };
                    (
                        nn::lstm(&p / l / "forward", width, hidden, config),
                        nn::lstm(&p / l / "backward", width, hidden, config),
                    )
                })
                .collect(),
        }
    }

    /// `x` [b, n, input], `mask` [b, n] bool -> [b, n, 2 * hidden]; `dropout` between layers.
    pub fn forward(&self, x: &Tensor, mask: &Tensor, dropout: f64, train: bool) -> Tensor {
        let reverse = reversal(mask);
        let mut x = x.shallow_clone();
        for (l, (forward, backward)) in self.layers.iter().enumerate() {
            if l > 0 {
                x = x.dropout(dropout, train);
            }
            let ahead = forward.seq(&x).0;
            let back = gather_words(&backward.seq(&gather_words(&x, &reverse)).0, &reverse);
            x = Tensor::cat(&[ahead, back], 2);
        }
        x
    }
}

/// Per row, the index that reverses the real words and leaves padding in place: [b, n] int64.
fn reversal(mask: &Tensor) -> Tensor {
    let n = mask.size()[1];
    let lengths = mask.sum_dim_intlist(1, true, Kind::Int64);
    let position = Tensor::arange(n, (Kind::Int64, mask.device())).unsqueeze(0);
    let reversed = &lengths - 1 - &position;
    reversed.where_self(&position.lt_tensor(&lengths), &position)
}

/// `x` [b, n, d] with its words reordered by `index` [b, n].
fn gather_words(x: &Tensor, index: &Tensor) -> Tensor {
    let d = x.size()[2];
    let index = index
        .unsqueeze(2)
        .expand([index.size()[0], index.size()[1], d], false);
    x.gather(1, &index, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn the_backward_direction_never_sees_padding() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let lstm = BiLstm::new(vs.root(), 4, 5, 2);
        let x = Tensor::randn([1, 3, 4], (Kind::Float, Device::Cpu));
        let mask = Tensor::from_slice(&[true, true, true]).view([1, 3]);
        let alone = tch::no_grad(|| lstm.forward(&x, &mask, 0.0, false));
        // The same words with two padded positions after them, filled with noise.
        let padded = Tensor::cat(
            &[&x, &Tensor::randn([1, 2, 4], (Kind::Float, Device::Cpu))],
            1,
        );
        let mask = Tensor::from_slice(&[true, true, true, false, false]).view([1, 5]);
        let with_padding = tch::no_grad(|| lstm.forward(&padded, &mask, 0.0, false));
        let diff = (with_padding.narrow(1, 0, 3) - alone)
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-6, "padding changed real words' states by {diff}");
        assert_eq!(with_padding.size(), vec![1, 5, 10]);
    }

    #[test]
    fn char_cnn_and_mix_shapes() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cnn = CharCnn::new(vs.root() / "cnn", 8, 6);
        let chars = Tensor::from_slice(&[72i64, 105, 0, 33, 0, 0]).view([1, 2, 3]);
        assert_eq!(cnn.forward(&chars, 0.0, false).size(), vec![1, 2, 6]);
        let mix = ScalarMix::new(vs.root() / "mix", 3);
        let states = Tensor::ones([1, 2, 3, 4], (Kind::Float, Device::Cpu));
        let mixed = mix.forward(&states);
        assert_eq!(mixed.size(), vec![1, 2, 4]);
        // Equal weights at the start, gamma 1: the mix of equal states is the state.
        assert!((mixed.mean(Kind::Float).double_value(&[]) - 1.0).abs() < 1e-6);
        assert_eq!(char_id('H'), 72);
        assert!(char_id('é') >= 128 && char_id('é') < CHAR_VOCAB);
    }
}
