//! `train`: trains the tagger on a dataset (runs every stage before it first, all cached), selects
//! the epoch on dev, and prints the dev and test table. A second run with the same settings is a
//! cache hit and only prints the table again.
use clap::Parser;
use umgf::model::tagger::{ModelKind, TextMode};
use umgf::model::text_head::LayerCombine;
use umgf::model::train::TrainConfig;
use umgf::model::umgf::{TextHeadConfig, UmgfConfig};
use umgf::stages::train::{self, TrainParams};

#[derive(Parser, Debug)]
#[command(
    about = "Train the UMGF tagger (or the text-only baseline) on cached artifacts (stage 6 of umgf)",
    // A later value of an option wins: `make train` puts the fine-tune recipe before TRAIN_ARGS.
    args_override_self = true
)]
struct Cli {
    #[command(flatten)]
    data: umgf_cli::DatasetArgs,
    /// umgf, or baseline (encoder states + word shapes + CRF, no fusion layers, no visual nodes).
    #[arg(long, default_value = "umgf")]
    model: ModelKind,
    /// frozen (cached encoder states; fast on a CPU) or fine-tune (the encoder is trained too).
    #[arg(long, default_value = "frozen")]
    mode: TextMode,
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
    #[arg(long, default_value_t = TrainConfig::default().max_epochs)]
    max_epochs: usize,
    /// Stop after this many epochs without a better dev F1.
    #[arg(long, default_value_t = TrainConfig::default().patience)]
    patience: usize,
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    batch_size: usize,
    #[arg(long, default_value_t = TrainConfig::default().lr)]
    lr: f64,
    #[arg(long, default_value_t = TrainConfig::default().encoder_lr)]
    encoder_lr: f64,
    /// Decay the learning rates linearly to 0 at --max-epochs after the warm-up (else hold them).
    #[arg(long)]
    linear_decay: bool,
    /// Fusion layers L.
    #[arg(long, default_value_t = UmgfConfig::default().layers)]
    layers: i64,
    /// Model width d.
    #[arg(long, default_value_t = UmgfConfig::default().d)]
    d: i64,
    /// Width of the fusion layers' FFN.
    #[arg(long, default_value_t = UmgfConfig::default().ffn)]
    ffn: i64,
    #[arg(long, default_value_t = UmgfConfig::default().dropout)]
    dropout: f64,
    /// Ablation "w/o VCorr.": objects do not attend to each other.
    #[arg(long)]
    no_object_edges: bool,
    /// Ablation: one set of attention and FFN parameters for words and objects.
    #[arg(long)]
    shared_parameters: bool,
    /// Score tags from the fused states concatenated with the text side's states (the public code's
    /// variant, the default); --no-concat-text: from the fused states alone, as the paper's CRF.
    #[arg(long, overrides_with = "no_concat_text")]
    concat_text: bool,
    #[arg(long)]
    no_concat_text: bool,
    /// How the layers of the cached states become one input: mix (learned scalar mix) or concat.
    #[arg(long, default_value = "mix")]
    layer_combine: LayerCombine,
    /// Character CNN filters (0: none) and character embedding width.
    #[arg(long, default_value_t = UmgfConfig::default().text.char_filters)]
    char_filters: i64,
    #[arg(long, default_value_t = UmgfConfig::default().text.char_dim)]
    char_dim: i64,
    /// BiLSTM width per direction before the fusion layers (0: none), and its depth.
    #[arg(long, default_value_t = UmgfConfig::default().text.lstm_hidden)]
    lstm_hidden: i64,
    #[arg(long, default_value_t = UmgfConfig::default().text.lstm_layers)]
    lstm_layers: i64,
    /// Dropout of the text side (its input, between and after the BiLSTM layers, the characters).
    #[arg(long, default_value_t = UmgfConfig::default().text.dropout)]
    text_dropout: f64,
    /// Probability that a word's encoder state is zeroed while training.
    #[arg(long, default_value_t = UmgfConfig::default().text.word_dropout)]
    word_dropout: f64,
    #[command(flatten)]
    text: umgf_cli::TextFeatureArgs,
    #[command(flatten)]
    ground: umgf_cli::GroundArgs,
    #[command(flatten)]
    common: umgf_cli::Common,
}

fn main() -> anyhow::Result<()> {
    umgf_cli::init();
    let cli = Cli::parse();
    let run = cli.data.start(&cli.common)?;
    let features = cli.text.params();
    let inputs = umgf_cli::model_inputs(&cli.common, &run, &cli.ground, &features)?;
    let params = TrainParams {
        dataset: run.dataset.label.clone(),
        kind: cli.model,
        mode: cli.mode,
        model: UmgfConfig {
            layers: cli.layers,
            d: cli.d,
            ffn: cli.ffn,
            dropout: cli.dropout,
            no_object_edges: cli.no_object_edges,
            shared_parameters: cli.shared_parameters,
            concat_text: cli.concat_text || !cli.no_concat_text,
            text: TextHeadConfig {
                combine: cli.layer_combine,
                char_dim: cli.char_dim,
                char_filters: cli.char_filters,
                lstm_hidden: cli.lstm_hidden,
                lstm_layers: cli.lstm_layers,
                dropout: cli.text_dropout,
                word_dropout: cli.word_dropout,
                ..TextHeadConfig::default()
            },
            ..UmgfConfig::default()
        },
        training: TrainConfig {
            seed: cli.seed,
            max_epochs: cli.max_epochs,
            patience: cli.patience,
            batch_size: cli.batch_size,
            lr: cli.lr,
            encoder_lr: cli.encoder_lr,
            linear_decay: cli.linear_decay,
            ..TrainConfig::default()
        },
        features: features.clone(),
    };
    let outcome = train::run(
        &run.artifacts.store,
        &inputs,
        &features.encoder.files(&cli.common.models),
        &params,
    )?;
    // The latest model of the dataset: artifacts/<dataset>/model/.
    let view = format!("{}/model", run.dataset.label);
    run.artifacts.link_run_folder(&view, &outcome.manifest)?;
    run.report("train", &outcome);
    let table = outcome.manifest.output(train::TABLE)?.digest;
    print!(
        "{}",
        std::fs::read_to_string(run.artifacts.store.blob_path(&table))?
    );
    let epochs = &outcome.manifest.counts["epoch_seconds"];
    if let Some(seconds) = epochs.as_array().filter(|s| !s.is_empty()) {
        let total: f64 = seconds.iter().filter_map(serde_json::Value::as_f64).sum();
        eprintln!(
            "  trained in {:.0} s ({:.1} s per epoch)",
            outcome.manifest.seconds,
            total / seconds.len() as f64
        );
    }
    eprintln!(
        "  model, metrics, curve and predictions -> {}",
        run.artifacts.root().join(view).display()
    );
    Ok(())
}
