//! The settings of a training run (`train`, and `status`, which keys the run `train` would make).
use clap::Args;
use umgf::model::tagger::{ModelKind, TextMode};
use umgf::model::text_head::LayerCombine;
use umgf::model::train::TrainConfig;
use umgf::model::umgf::{TextHeadConfig, UmgfConfig};
use umgf::stages::text_features::TextFeatureParams;
use umgf::stages::train::TrainParams;

/// How the tagger is trained: the model, its sizes, the text head and the optimisation.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// umgf, or baseline (encoder states + word shapes + CRF, no fusion layers, no visual nodes).
    #[arg(long, default_value = "umgf")]
    pub model: ModelKind,
    /// frozen (cached encoder states; fast on a CPU) or fine-tune (the encoder is trained too).
    #[arg(long, default_value = "frozen")]
    pub mode: TextMode,
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    #[arg(long, default_value_t = TrainConfig::default().max_epochs)]
    pub max_epochs: usize,
    /// Stop after this many epochs without a better dev F1.
    #[arg(long, default_value_t = TrainConfig::default().patience)]
    pub patience: usize,
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    pub batch_size: usize,
    #[arg(long, default_value_t = TrainConfig::default().lr)]
    pub lr: f64,
    #[arg(long, default_value_t = TrainConfig::default().encoder_lr)]
    pub encoder_lr: f64,
    /// Decay the learning rates linearly to 0 at --max-epochs after the warm-up (else hold them).
    #[arg(long)]
    pub linear_decay: bool,
    /// Probability that a training tweet loses its caption nodes for a batch, so that a model trained
    /// with captions stays good on tweets without them (new dumps have none).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub caption_dropout: f64,
    /// Fusion layers L.
    #[arg(long, default_value_t = UmgfConfig::default().layers)]
    pub layers: i64,
    /// Model width d.
    #[arg(long, default_value_t = UmgfConfig::default().d)]
    pub d: i64,
    /// Width of the fusion layers' FFN.
    #[arg(long, default_value_t = UmgfConfig::default().ffn)]
    pub ffn: i64,
    #[arg(long, default_value_t = UmgfConfig::default().dropout)]
    pub dropout: f64,
    /// Ablation "w/o VCorr.": objects do not attend to each other.
    #[arg(long)]
    pub no_object_edges: bool,
    /// Ablation: one set of attention and FFN parameters for words and objects.
    #[arg(long)]
    pub shared_parameters: bool,
    /// Score tags from the fused states concatenated with the text side's states (the public code's
    /// variant, the default); --no-concat-text: from the fused states alone, as the paper's CRF.
    #[arg(long, overrides_with = "no_concat_text")]
    pub concat_text: bool,
    #[arg(long)]
    pub no_concat_text: bool,
    /// How the layers of the cached states become one input: mix (learned scalar mix) or concat.
    #[arg(long, default_value = "mix")]
    pub layer_combine: LayerCombine,
    /// Character CNN filters (0: none) and character embedding width.
    #[arg(long, default_value_t = UmgfConfig::default().text.char_filters)]
    pub char_filters: i64,
    #[arg(long, default_value_t = UmgfConfig::default().text.char_dim)]
    pub char_dim: i64,
    /// BiLSTM width per direction before the fusion layers (0: none), and its depth.
    #[arg(long, default_value_t = UmgfConfig::default().text.lstm_hidden)]
    pub lstm_hidden: i64,
    #[arg(long, default_value_t = UmgfConfig::default().text.lstm_layers)]
    pub lstm_layers: i64,
    /// Dropout of the text side (its input, between and after the BiLSTM layers, the characters).
    #[arg(long, default_value_t = UmgfConfig::default().text.dropout)]
    pub text_dropout: f64,
    /// Probability that a word's encoder state is zeroed while training.
    #[arg(long, default_value_t = UmgfConfig::default().text.word_dropout)]
    pub word_dropout: f64,
    /// Memory the dataset's examples may take (bytes; 512M, 4G): within it they are held in memory,
    /// else each epoch streams them from the artifacts (another batch order: a run of its own).
    /// Default: half of physical memory.
    #[arg(long, value_name = "BYTES", value_parser = parse_budget)]
    pub memory_budget: Option<u64>,
}

fn parse_budget(text: &str) -> Result<u64, String> {
    umgf::memory::parse_bytes(text).map_err(|e| e.to_string())
}

impl TrainArgs {
    /// The run's parameters on `dataset`, its text features made as `features` says.
    pub fn params(&self, dataset: &str, features: TextFeatureParams) -> TrainParams {
        TrainParams {
            dataset: dataset.to_owned(),
            kind: self.model,
            mode: self.mode,
            model: UmgfConfig {
                layers: self.layers,
                d: self.d,
                ffn: self.ffn,
                dropout: self.dropout,
                no_object_edges: self.no_object_edges,
                shared_parameters: self.shared_parameters,
                concat_text: self.concat_text || !self.no_concat_text,
                text: TextHeadConfig {
                    combine: self.layer_combine,
                    char_dim: self.char_dim,
                    char_filters: self.char_filters,
                    lstm_hidden: self.lstm_hidden,
                    lstm_layers: self.lstm_layers,
                    dropout: self.text_dropout,
                    word_dropout: self.word_dropout,
                    ..TextHeadConfig::default()
                },
                ..UmgfConfig::default()
            },
            training: TrainConfig {
                seed: self.seed,
                max_epochs: self.max_epochs,
                patience: self.patience,
                batch_size: self.batch_size,
                lr: self.lr,
                encoder_lr: self.encoder_lr,
                linear_decay: self.linear_decay,
                caption_dropout: self.caption_dropout,
                ..TrainConfig::default()
            },
            features,
            memory_budget: self
                .memory_budget
                .unwrap_or_else(umgf::memory::default_budget),
            // Decided from the artifacts' sizes when they are known (`Upstream::train`).
            streamed: false,
        }
    }
}
