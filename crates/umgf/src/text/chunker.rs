//! Our noun-phrase chunker (the paper used a parser; nothing comparable exists offline): the text
//! encoder plus a linear tagging head over each word's first piece, fine-tuned on CoNLL-2000 NP chunks,
//! decoded so that no I-NP starts a phrase. Training sentences are made to look like tweets now and
//! then (RT, @user, #hashtag, URL, emoji), so the chunker behaves on tweets.
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use super::encoder::{EncoderFiles, TextEncoder, pad_batch};
use super::np::{NpTag, decode, np_spans, span_f1};
use super::transformer::Init;
use super::wordpiece::{MAX_PIECES, Pieces};
use crate::Result;
use crate::io::conll2000::ChunkedSentence;
use crate::rng::Rng;
use crate::torch::TorchResult;

/// Training settings; all of them enter the chunker stage's key.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChunkerTraining {
    pub epochs: usize,
    pub batch_size: usize,
    pub encoder_lr: f64,
    pub head_lr: f64,
    /// Share of the training sentences held out for choosing the epoch (CoNLL-2000 has no dev split).
    pub dev_fraction: f64,
    /// Probability of each tweet-style edit of a training sentence.
    pub tweetify: f64,
    pub seed: u64,
    /// Use only the first N training sentences, and the first N test sentences (tests); 0 = all.
    pub limit: usize,
    /// Also train on Tweebank v2's tweets (NP chunks derived from their dependency trees by
    /// `text::np::base_noun_phrases`) and report NP F1 on its test split. Opt-in: Tweebank is CC
    /// BY-NC-SA 4.0 (research use; a chunker trained on it is shared on the same terms). Left out
    /// of the key when off, so the default chunker keeps its key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tweebank: bool,
}

impl Default for ChunkerTraining {
    fn default() -> Self {
        Self {
            epochs: 2,
            batch_size: 16,
            encoder_lr: 5e-5,
            head_lr: 1e-3,
            dev_fraction: 0.1,
            tweetify: 0.2,
            seed: 1,
            limit: 0,
            tweebank: false,
        }
    }
}

/// What training measured: dev F1 per epoch (selection) and test F1 of the selected epoch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChunkerReport {
    pub train_sentences: usize,
    pub dev_sentences: usize,
    pub test_sentences: usize,
    pub dev_f1_per_epoch: Vec<f64>,
    pub best_epoch: usize,
    pub test_precision: f64,
    pub test_recall: f64,
    pub test_f1: f64,
    /// NP scores on Tweebank v2's test split, when trained with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tweebank_test: Option<SpanScores>,
}

/// Span precision, recall and F1, in percent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpanScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

pub struct NpChunker {
    pub encoder: TextEncoder,
    head: nn::Linear,
}

/// Batch size for inference.
const PREDICT_BATCH: usize = 64;

impl NpChunker {
    /// The pretrained encoder with a fresh head (to be trained).
    pub fn new(files: &EncoderFiles, device: Device) -> Result<Self> {
        Ok(Self::with_head(TextEncoder::load(files, device)?))
    }

    fn with_head(encoder: TextEncoder) -> Self {
        let head = nn::linear(
            encoder.vs.root().set_group(1) / "head",
            encoder.hidden_size(),
            NpTag::COUNT as i64,
            Default::default(),
        );
        Self { encoder, head }
    }

    /// A trained chunker: the encoder's structure, then every weight from `weights` (our safetensors;
    /// the pretrained encoder's are not read, since these replace them).
    pub fn load(files: &EncoderFiles, weights: &Path, device: Device) -> Result<Self> {
        let chunker = Self::with_head(TextEncoder::structure(files, device, Init::Zeros)?);
        crate::torch::load_safetensors(&chunker.encoder.vs, "", weights)?;
        Ok(chunker)
    }

    /// Saves every weight as safetensors (`path` must end in `.safetensors`: tch picks the format by it).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.encoder.vs.save(path).torch()
    }

    /// Log-probabilities of the tags of each word, [words, 3] per sequence, from piece states [len, hidden].
    fn word_scores(&self, states: &Tensor, pieces: &Pieces) -> Tensor {
        let index: Vec<i64> = pieces.word_starts.iter().map(|&i| i64::from(i)).collect();
        let words = states.index_select(0, &Tensor::from_slice(&index).to_device(states.device()));
        self.head.forward(&words).log_softmax(-1, Kind::Float)
    }

    /// NP tags of each tweet (any length: long ones go through the encoder's sliding window).
    pub fn predict<S: AsRef<str>>(&self, tweets: &[Vec<S>]) -> Result<Vec<Vec<NpTag>>> {
        let pieces = tweets
            .iter()
            .map(|t| self.encoder.pieces.tweet(t))
            .collect::<Result<Vec<_>>>()?;
        let sequences: Vec<Vec<u32>> = pieces.iter().map(|p| p.ids.clone()).collect();
        let states = self.encoder.piece_states(&sequences, PREDICT_BATCH);
        tch::no_grad(|| {
            states
                .iter()
                .zip(&pieces)
                .map(|(s, p)| {
                    Ok(decode(&to_rows(
                        &self.word_scores(&s.to_device(self.encoder.device), p),
                    )?))
                })
                .collect()
        })
    }

    /// Span F1 (P, R, F1 in percent) on labelled sentences.
    pub fn evaluate(&self, sentences: &[ChunkedSentence]) -> Result<(f64, f64, f64)> {
        let words: Vec<Vec<String>> = sentences.iter().map(|s| s.words.clone()).collect();
        let predicted = self.predict(&words)?;
        let gold: Vec<_> = sentences.iter().map(|s| np_spans(&s.tags)).collect();
        let predicted: Vec<_> = predicted.iter().map(|t| np_spans(t)).collect();
        Ok(span_f1(&gold, &predicted))
    }

    /// Fine-tunes encoder and head on `train`, choosing the epoch by F1 on a held-out share of it, then
    /// measures `test` once with the chosen weights.
    pub fn train(
        &mut self,
        sentences: &[ChunkedSentence],
        test: &[ChunkedSentence],
        config: &ChunkerTraining,
    ) -> Result<ChunkerReport> {
        tch::manual_seed(config.seed as i64);
        let mut rng = Rng::new(config.seed);
        let mut sentences = sentences.to_vec();
        if config.limit > 0 {
            sentences.truncate(config.limit);
        }
        rng.shuffle(&mut sentences);
        let n_dev = ((sentences.len() as f64) * config.dev_fraction)
            .round()
            .max(1.0) as usize;
        let (dev, train) = sentences.split_at(n_dev.min(sentences.len() - 1));

        let steps_per_epoch = train.len().div_ceil(config.batch_size);
        let total = (steps_per_epoch * config.epochs).max(1);
        let warmup = (total / 10).max(1);
        let mut opt = nn::AdamW::default()
            .build(&self.encoder.vs, config.encoder_lr)
            .torch()?;
        let mut dev_f1 = Vec::new();
        let mut best: Option<(f64, std::collections::HashMap<String, Tensor>)> = None;
        let mut step = 0;
        for epoch in 0..config.epochs {
            let mut order: Vec<usize> = (0..train.len()).collect();
            rng.shuffle(&mut order);
            let bar = crate::progress::bar(steps_per_epoch as u64, &format!("epoch {}", epoch + 1));
            for batch in order.chunks(config.batch_size) {
                let scale = if step < warmup {
                    (step + 1) as f64 / warmup as f64
                } else {
                    (total - step) as f64 / (total - warmup).max(1) as f64
                };
                opt.set_lr_group(0, config.encoder_lr * scale);
                opt.set_lr_group(1, config.head_lr * scale);
                let examples: Vec<ChunkedSentence> = batch
                    .iter()
                    .map(|&i| tweetify(&train[i], config.tweetify, &mut rng))
                    .collect();
                let loss = self.loss(&examples)?;
                opt.backward_step_clip_norm(&loss, 1.0);
                step += 1;
                bar.inc(1);
                if bar.is_hidden() && step % 100 == 0 {
                    tracing::info!(
                        "chunker step {step}/{total}: loss {:.3}",
                        loss.double_value(&[])
                    );
                }
                bar.set_message(format!(
                    "epoch {} loss {:.3}",
                    epoch + 1,
                    loss.double_value(&[])
                ));
            }
            bar.finish_and_clear();
            let (_, _, f1) = self.evaluate(dev)?;
            tracing::info!("chunker epoch {}: dev NP F1 {f1:.2}", epoch + 1);
            dev_f1.push(f1);
            if best.as_ref().is_none_or(|(b, _)| f1 > *b) {
                best = Some((f1, crate::torch::snapshot(&self.encoder.vs)));
            }
        }
        if let Some((_, weights)) = &best {
            crate::torch::restore(&self.encoder.vs, weights);
        }
        let best_epoch = dev_f1
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i + 1);
        let test = match config.limit {
            0 => test,
            n => &test[..n.min(test.len())],
        };
        let (p, r, f1) = self.evaluate(test)?;
        Ok(ChunkerReport {
            train_sentences: train.len(),
            dev_sentences: dev.len(),
            test_sentences: test.len(),
            dev_f1_per_epoch: dev_f1,
            best_epoch,
            test_precision: p,
            test_recall: r,
            test_f1: f1,
            tweebank_test: None,
        })
    }

    /// Mean cross-entropy of the gold tags over the words of a batch (words beyond the model's length
    /// are left out of training).
    fn loss(&self, batch: &[ChunkedSentence]) -> Result<Tensor> {
        let device = self.encoder.device;
        let mut sequences = Vec::with_capacity(batch.len());
        let mut positions = Vec::new();
        let mut targets = Vec::new();
        let mut longest = 0;
        let encoded: Vec<Pieces> = batch
            .iter()
            .map(|s| self.encoder.pieces.tweet(&s.words))
            .collect::<Result<_>>()?;
        for p in &encoded {
            longest = longest.max(p.ids.len().min(MAX_PIECES));
        }
        for (row, (sentence, pieces)) in batch.iter().zip(&encoded).enumerate() {
            let mut ids = pieces.ids.clone();
            if ids.len() > MAX_PIECES {
                ids.truncate(MAX_PIECES - 1);
                ids.push(pieces.ids[pieces.ids.len() - 1]);
            }
            for (start, tag) in pieces.word_starts.iter().zip(&sentence.tags) {
                if (*start as usize) < ids.len() - 1 {
                    positions.push((row * longest + *start as usize) as i64);
                    targets.push(*tag as i64);
                }
            }
            sequences.push(ids);
        }
        let (ids, mask) = pad_batch(
            sequences.iter().map(Vec::as_slice),
            self.encoder.pieces.pad_id(),
            device,
        );
        let states = self.encoder.network.forward_t(&ids, &mask, true);
        let hidden = self.encoder.hidden_size();
        let words = states
            .view([-1, hidden])
            .index_select(0, &Tensor::from_slice(&positions).to_device(device));
        let logits = self.head.forward(&words);
        Ok(logits.cross_entropy_for_logits(&Tensor::from_slice(&targets).to_device(device)))
    }
}

fn to_rows(scores: &Tensor) -> Result<Vec<[f32; NpTag::COUNT]>> {
    let flat = Vec::<f32>::try_from(scores.to_device(Device::Cpu).flatten(0, -1)).torch()?;
    Ok(flat
        .chunks_exact(NpTag::COUNT)
        .map(|c| [c[0], c[1], c[2]])
        .collect())
}

const HANDLES: [&str; 6] = [
    "@nytimes",
    "@JohnDoe_22",
    "@espn",
    "@BBCBreaking",
    "@mike",
    "@The_Real_Ann",
];
const HASHTAGS: [&str; 5] = ["#NBA", "#news", "#London", "#tbt", "#Election2016"];
const URLS: [&str; 3] = [
    "http://t.co/Z3neVBQ7vF",
    "https://t.co/ab12CD",
    "http://bit.ly/1xYz",
];
const EMOJI: [&str; 4] = ["😂", "❤️", "🔥", ":)"];

/// A CoNLL-2000 sentence dressed as a tweet, each edit with probability `p`: "RT @user :" in front
/// (the handle is a phrase, RT and the colon are not), a #hashtag (a phrase), a URL and an emoji (not),
/// and possessives split as Twitter-2017 writes them ("' s"). Handles and hashtags come whole
/// ("@user") or split ("@ user", again Twitter-2017's way) with equal chance.
fn tweetify(sentence: &ChunkedSentence, p: f64, rng: &mut Rng) -> ChunkedSentence {
    fn push(out: &mut ChunkedSentence, word: &str, tag: NpTag) {
        out.words.push(word.to_owned());
        out.tags.push(tag);
    }
    fn push_sigil(out: &mut ChunkedSentence, word: &str, split: bool) {
        if split {
            let (sigil, name) = word.split_at(1);
            push(out, sigil, NpTag::B);
            push(out, name, NpTag::I);
        } else {
            push(out, word, NpTag::B);
        }
    }
    let mut out = ChunkedSentence {
        words: Vec::new(),
        tags: Vec::new(),
    };
    if rng.chance(p) {
        let handle = *rng.pick(&HANDLES);
        push(&mut out, "RT", NpTag::O);
        push_sigil(&mut out, handle, rng.chance(0.5));
        push(&mut out, ":", NpTag::O);
    }
    let split_possessives = rng.chance(p);
    for (w, t) in sentence.words.iter().zip(&sentence.tags) {
        if split_possessives && w == "'s" {
            push(&mut out, "'", *t);
            push(&mut out, "s", NpTag::I);
        } else {
            push(&mut out, w, *t);
        }
    }
    if rng.chance(p) {
        let hashtag = *rng.pick(&HASHTAGS);
        push_sigil(&mut out, hashtag, rng.chance(0.5));
    }
    if rng.chance(p) {
        push(&mut out, rng.pick::<&str>(&URLS), NpTag::O);
    }
    if rng.chance(p) {
        push(&mut out, rng.pick::<&str>(&EMOJI), NpTag::O);
    }
    out
}
