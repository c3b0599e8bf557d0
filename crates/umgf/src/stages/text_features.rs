//! `features`, text part: per tweet its word pieces, each word's first piece, word shapes, and (for the
//! frozen training mode) the encoder's hidden states of each word: the layers and the pooling of a
//! word's pieces that the run asks for ([`TextFeatureParams`]).
//!
//! The encoder runs once per tweet: the per-tweet memo, keyed by (text digest, encoder digest, compute
//! precision, storage format, layers, pooling), holds the tweet's row of the artifact, so a dump that
//! repeats old tweets encodes only the new ones. The visual part is `visual_features`.
//!
//! The memo holds the selected states, pooled, not every state of every piece (as it did up to
//! [`MEMO_FORMAT`] 2): for MPNet that was 430 KB a tweet, 4.5 times the artifact's row, which does
//! not scale to corpora of a million tweets (issue 27). Another layer set or pooling runs the encoder
//! again (MPNet: about 70 tweets a second here); a new dump, the common case, does not.
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::digest::Digest;
use crate::schema::{Artifact, StateStorage, StateValues, TextFeatures, Tweet};
use crate::stages::{ShardedStage, Stage};
use crate::store::{ByParts, MemoStats, RunOutcome, RunSpec, Shard, Store};
use crate::text::encoder::{EncoderFiles, EncoderName, Precision, TextEncoder};
use crate::text::shape::word_shape;
use crate::text::wordpiece::Pieces;
use crate::torch::TorchResult;
use crate::{Error, Result};

const STAGE: &str = "features";
/// 2: a tweet's states no longer depend on its batch peers (padded lengths fixed per tweet); the memo key has the
/// version. 3: several hidden states per word, pooling and storage format as parameters; the memo holds
/// every hidden state of every piece. 4: every forward pass has the batch's full row count (filler rows):
/// on some CPUs the row count changes the bits.
const VERSION: u32 = 4;
pub const TEXT_FEATURES: &str = "text_features.parquet";
pub const MEMO: &str = "text-states";
/// The memo payload's format, in its key. 2 (unnamed before): every state of every piece. 3: the
/// artifact's row (the selected states, pooled), see [`row_payload`].
const MEMO_FORMAT: &str = "rows-3";
/// Tweets per encoder call and per memo write (a killed run keeps what it finished).
const MEMO_CHUNK: usize = 256;
/// Tweets decoded and written per step: the artifact streams out, so memory holds one step's states,
/// not the dataset's (MPNet's 13 states of Twitter-2015 are about 2.5 GB in f16). A multiple of the
/// Parquet writer's slice, so a streamed artifact has the bytes of a single write.
const WRITE_CHUNK: usize = 4 * crate::io::parquet::ROWS_PER_WRITE;
/// Sequences per forward pass (sorted by length, so padding stays small).
const BATCH: usize = 32;

/// Which of the encoder's hidden states (0 = the embeddings' output, then one per layer) are cached
/// for each word. Written `all`, `last`, `lastN` (the last N) or a comma-separated list of indices and
/// inclusive ranges (`4-8` is `4,5,6,7,8`, and is written so in keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerSelection {
    All,
    Last(usize),
    List(Vec<usize>),
}

impl LayerSelection {
    /// The hidden-state indices this selects, for an encoder with `hidden_states` of them.
    pub fn resolve(&self, hidden_states: usize) -> Result<Vec<usize>> {
        let indices: Vec<usize> = match self {
            Self::All => (0..hidden_states).collect(),
            Self::Last(n) if *n >= 1 && *n <= hidden_states => {
                (hidden_states - n..hidden_states).collect()
            }
            Self::Last(n) => crate::bail!(
                Config,
                "text layers last{n}: the encoder has {hidden_states} hidden states"
            ),
            Self::List(list) => list.clone(),
        };
        if let Some(bad) = indices.iter().find(|&&i| i >= hidden_states) {
            crate::bail!(
                Config,
                "text layer {bad}: the encoder has hidden states 0..{} (0 = embeddings)",
                hidden_states - 1
            );
        }
        Ok(indices)
    }
}

impl std::fmt::Display for LayerSelection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => write!(f, "all"),
            Self::Last(1) => write!(f, "last"),
            Self::Last(n) => write!(f, "last{n}"),
            Self::List(list) => {
                let items: Vec<String> = list.iter().map(usize::to_string).collect();
                write!(f, "{}", items.join(","))
            }
        }
    }
}

impl std::str::FromStr for LayerSelection {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Config(format!(
                "text layers are all, last, lastN or a list of indices and ranges like 0,4-8, not {s:?}"
            ))
        };
        match s {
            "all" => Ok(Self::All),
            "last" => Ok(Self::Last(1)),
            _ => {
                if let Some(n) = s.strip_prefix("last") {
                    return n.parse().map(Self::Last).map_err(|_| bad());
                }
                let index = |i: &str| i.trim().parse::<usize>().map_err(|_| bad());
                let mut list = Vec::new();
                for item in s.split(',') {
                    match item.split_once('-') {
                        Some((from, to)) if index(from)? <= index(to)? => {
                            list.extend(index(from)?..=index(to)?)
                        }
                        Some(_) => return Err(bad()),
                        None => list.push(index(item)?),
                    }
                }
                if list.is_empty() {
                    return Err(bad());
                }
                Ok(Self::List(list))
            }
        }
    }
}

impl Serialize for LayerSelection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for LayerSelection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// How a word's state is made from its pieces' states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The state of the word's first piece (BERT's tagging convention).
    #[default]
    First,
    /// The mean of its pieces' states.
    Mean,
}

impl std::str::FromStr for Pooling {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "first" => Ok(Self::First),
            "mean" => Ok(Self::Mean),
            _ => Err(Error::Config(format!(
                "pooling is first or mean, not {s:?}"
            ))),
        }
    }
}

/// What the encoder reads after each tweet, as the second text of a pair: the tweet's words attend to
/// it, but only the words' states are kept (ITA, NAACL 2022, reads image captions this way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextContext {
    /// The tweet alone.
    #[default]
    None,
    /// The tweet's caption (`tweets.caption`), cut to fit the encoder's 128 pieces; a tweet without
    /// one is encoded alone.
    Caption,
}

impl TextContext {
    fn is_none(&self) -> bool {
        *self == Self::None
    }
}

impl std::str::FromStr for TextContext {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Self::None),
            "caption" => Ok(Self::Caption),
            _ => Err(Error::Config(format!(
                "text context is none or caption, not {s:?}"
            ))),
        }
    }
}

/// What the text features hold and how they are computed; all of it enters the run's key (the
/// encoder's content through its digest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextFeatureParams {
    pub encoder: EncoderName,
    /// The encoder's compute precision.
    pub precision: Precision,
    pub layers: LayerSelection,
    pub pooling: Pooling,
    /// The number format of the cached states (and of the memo).
    pub storage: StateStorage,
    /// What follows the tweet in the encoder's input. Left out of the key when `none`, so that runs
    /// from before it keep their keys.
    #[serde(default, skip_serializing_if = "TextContext::is_none")]
    pub context: TextContext,
}

impl Default for TextFeatureParams {
    /// MiniLM, every hidden state (7: the frozen head mixes them), first piece, float16: 0.7 GB for
    /// Twitter-2015's 133k words.
    fn default() -> Self {
        Self {
            encoder: EncoderName::Minilm,
            precision: Precision::F32,
            layers: LayerSelection::All,
            pooling: Pooling::First,
            storage: StateStorage::F16,
            context: TextContext::None,
        }
    }
}

/// The shape of the cached states of one word: the selected hidden-state indices and the encoder's
/// width (states are row-major [words, layers, hidden]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateShape {
    pub layers: Vec<usize>,
    pub hidden: usize,
}

impl StateShape {
    /// The shape `params` select from `encoder` (read from its config; the model is not loaded).
    pub fn of(params: &TextFeatureParams, encoder: &EncoderFiles) -> Result<Self> {
        let (hidden_states, hidden) = encoder.shape()?;
        Ok(Self {
            layers: params.layers.resolve(hidden_states)?,
            hidden,
        })
    }

    /// Values per word.
    pub fn width(&self) -> usize {
        self.layers.len() * self.hidden
    }
}

fn spec(tweets: Digest, encoder: Digest, params: &TextFeatureParams) -> RunSpec {
    RunSpec {
        stage: STAGE.to_owned(),
        version: VERSION,
        params: json!(params),
        inputs: BTreeMap::from([
            ("tweets".to_owned(), tweets),
            ("encoder".to_owned(), encoder),
        ]),
    }
}

fn run(
    store: &Store,
    tweets: Digest,
    encoder: &EncoderFiles,
    params: &TextFeatureParams,
) -> Result<RunOutcome> {
    let encoder_digest = encoder.digest()?;
    let shape = StateShape::of(params, encoder)?;
    let model = RefCell::new(None);
    let plan = ByParts {
        inputs: &["tweets"],
        same_counts: &["hidden"],
        ..ByParts::default()
    };
    store.run_by_parts(
        &spec(tweets, encoder_digest, params),
        &plan,
        |part, outputs| {
            let tweets = Tweet::read(&store.blob_path(&part["tweets"]))?;
            let path = outputs.path(TEXT_FEATURES);
            let mut writer = crate::io::parquet::Writer::<TextFeatures>::create(&path);
            let mut encoding = Encoding::new(
                store,
                encoder,
                encoder_digest,
                params,
                &shape,
                &model,
                tweets.len(),
            );
            let (mut words, mut pieces, mut long) = (0, 0, 0);
            for step in tweets.chunks(WRITE_CHUNK) {
                let payloads = encoding.payloads(step)?;
                let rows = step
                    .iter()
                    .zip(&payloads)
                    .map(|(tweet, payload)| row_from_payload(tweet, payload, params, &shape))
                    .collect::<Result<Vec<_>>>()?;
                words += rows.iter().map(|r| r.word_starts.len()).sum::<usize>();
                pieces += rows.iter().map(|r| r.piece_ids.len()).sum::<usize>();
                long += rows
                    .iter()
                    .filter(|r| r.piece_ids.len() > crate::text::wordpiece::MAX_PIECES)
                    .count();
                writer.write(&rows)?;
            }
            writer.finish()?;
            let stats = encoding.finish();
            Ok(serde_json::to_value(Counts {
                tweets: tweets.len(),
                words,
                pieces,
                longer_than_max_pieces: long,
                layers: shape.layers.clone(),
                hidden: shape.hidden,
                bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                memo_reused: stats.reused,
                memo_computed: stats.computed,
            })?)
        },
    )
}

/// Shard `shard` of the run (see [`Shard`]): encodes the tweets it owns, by text digest, into the
/// memo; the whole run then merges.
fn run_shard(
    store: &Store,
    tweets: Digest,
    encoder: &EncoderFiles,
    params: &TextFeatureParams,
    shard: Shard,
) -> Result<RunOutcome> {
    let encoder_digest = encoder.digest()?;
    let shape = StateShape::of(params, encoder)?;
    let model = RefCell::new(None);
    store.run(&shard.spec(&spec(tweets, encoder_digest, params)), |_| {
        let mut tweets = Tweet::read(&store.blob_path(&tweets))?;
        tweets.retain(|t| shard.owns(&t.text_digest));
        let mut encoding = Encoding::new(
            store,
            encoder,
            encoder_digest,
            params,
            &shape,
            &model,
            tweets.len(),
        );
        for step in tweets.chunks(WRITE_CHUNK) {
            encoding.payloads(step)?;
        }
        Ok(encoding.finish().shard_counts(tweets.len()))
    })
}

/// Memo payloads of a run's tweets, a step at a time: those not memoised yet are encoded (and
/// stored); the encoder is loaded the first time one is needed.
struct Encoding<'a> {
    store: &'a Store,
    encoder: &'a EncoderFiles,
    key_parts: [String; 7],
    params: &'a TextFeatureParams,
    shape: &'a StateShape,
    /// Shared by the parts of a run, so that the encoder is loaded once.
    model: &'a RefCell<Option<TextEncoder>>,
    bar: indicatif::ProgressBar,
    stats: MemoStats,
    /// Memo keys of the steps so far.
    seen: HashSet<Digest>,
}

impl<'a> Encoding<'a> {
    fn new(
        store: &'a Store,
        encoder: &'a EncoderFiles,
        encoder_digest: Digest,
        params: &'a TextFeatureParams,
        shape: &'a StateShape,
        model: &'a RefCell<Option<TextEncoder>>,
        tweets: usize,
    ) -> Self {
        Self {
            store,
            encoder,
            key_parts: [
                encoder_digest.hex(),
                format!("{:?}", params.precision),
                format!("{:?}", params.storage),
                VERSION.to_string(),
                MEMO_FORMAT.to_owned(),
                format!("{:?}", shape.layers),
                format!("{:?}", params.pooling),
            ],
            params,
            shape,
            model,
            bar: crate::progress::bar(tweets as u64, "features"),
            stats: MemoStats::default(),
            seen: HashSet::new(),
        }
    }

    /// The memo payload of each of `tweets`, in order.
    fn payloads(&mut self, tweets: &[Tweet]) -> Result<Vec<Vec<u8>>> {
        let context = self.params.context;
        let keys: Vec<Digest> = tweets
            .iter()
            .map(|t| {
                // A tweet encoded with its caption after it: the caption's digest joins the key. A
                // tweet encoded alone keeps the key it has without context.
                let caption = context_of(t, context)
                    .and(t.caption_digest)
                    .map(|d| ["caption".to_owned(), d.hex()]);
                Digest::of_strings(
                    std::iter::once(t.text_digest.hex())
                        .chain(caption.into_iter().flatten())
                        .chain(self.key_parts.iter().cloned()),
                )
            })
            .collect();
        let mut model = self.model.borrow_mut();
        let (model, encoder, params, shape) = (&mut *model, self.encoder, self.params, self.shape);
        let bar = &self.bar;
        let (payloads, stats) =
            self.store
                .memo(MEMO)?
                .get_or_compute(&keys, MEMO_CHUNK, |missing| {
                    let model = match model {
                        Some(model) => model,
                        None => {
                            let mut loaded = TextEncoder::load_for_inference(
                                encoder,
                                crate::torch::default_device(),
                            )?;
                            loaded.set_precision(params.precision);
                            model.insert(loaded)
                        }
                    };
                    let missing_tweets = missing.iter().map(|&i| &tweets[i]);
                    let states = encode(model, missing_tweets, context, params.storage)?;
                    let rows = missing
                        .iter()
                        .zip(&states)
                        .map(|(&i, states)| {
                            let row = pool(&tweets[i], states, params, shape)?;
                            Ok(row_payload(&row))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    bar.inc(missing.len() as u64);
                    Ok(rows)
                })?;
        // The run's counts are over distinct texts, as one call's: a text met in an earlier step is
        // found in the memo now, but was counted then.
        let distinct: HashSet<Digest> = keys.into_iter().collect();
        let earlier = distinct.intersection(&self.seen).count();
        self.seen.extend(distinct);
        self.bar.inc(stats.reused as u64);
        self.stats.reused += stats.reused.saturating_sub(earlier);
        self.stats.computed += stats.computed;
        Ok(payloads)
    }

    fn finish(self) -> MemoStats {
        self.bar.finish_and_clear();
        self.stats.log("encoded", "tweets");
        self.stats
    }
}

/// The text a tweet is encoded with after it, if any.
fn context_of(tweet: &Tweet, context: TextContext) -> Option<&str> {
    match context {
        TextContext::None => None,
        TextContext::Caption => tweet.caption.as_deref(),
    }
}

/// Every state of every piece of each tweet, little-endian: piece count P and the pieces, word count
/// W and the word starts (u32 each), hidden-state count L and width H (u32), then the states
/// [L, P, H] in `storage` format. A tweet encoded with a context after it (a pair) has one more word
/// start: where its own pieces end (its closing piece), the start of what follows the words.
/// [`pool`] makes the artifact's row of it.
fn encode<'a>(
    model: &TextEncoder,
    tweets: impl Iterator<Item = &'a Tweet>,
    context: TextContext,
    storage: StateStorage,
) -> Result<Vec<Vec<u8>>> {
    let pieces = tweets
        .map(|t| match context_of(t, context) {
            None => model.pieces.tweet(&t.tokens),
            Some(text) => {
                let (mut pieces, tweet_end) = model.pieces.tweet_with_context(&t.tokens, text)?;
                pieces.word_starts.push(tweet_end as u32);
                Ok(pieces)
            }
        })
        .collect::<Result<Vec<Pieces>>>()?;
    let sequences: Vec<Vec<u32>> = pieces.iter().map(|p| p.ids.clone()).collect();
    let states = model.piece_layer_states(&sequences, BATCH);
    pieces
        .iter()
        .zip(states)
        .map(|(p, s)| {
            let (layers, hidden) = (s.size()[0] as u32, s.size()[2] as u32);
            let mut out = Vec::new();
            for list in [&p.ids, &p.word_starts] {
                out.extend_from_slice(&(list.len() as u32).to_le_bytes());
                list.iter()
                    .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            }
            out.extend_from_slice(&layers.to_le_bytes());
            out.extend_from_slice(&hidden.to_le_bytes());
            let flat = s.contiguous().flatten(0, -1);
            match storage {
                StateStorage::F16 => Vec::<half::f16>::try_from(flat.to_kind(tch::Kind::Half))
                    .torch()?
                    .iter()
                    .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
                StateStorage::F32 => Vec::<f32>::try_from(flat)
                    .torch()?
                    .iter()
                    .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            }
            Ok(out)
        })
        .collect()
}

/// A tweet's row of the artifact from every state of its pieces (see [`encode`]): the selected hidden
/// states of each word, pooled over its pieces.
fn pool(
    tweet: &Tweet,
    payload: &[u8],
    params: &TextFeatureParams,
    shape: &StateShape,
) -> Result<TextFeatures> {
    let bad = |what: &str| {
        Error::Store(format!(
            "encoder states of tweet {} malformed: {what}",
            tweet.id
        ))
    };
    let mut at = 0usize;
    let mut u32_at = |payload: &[u8]| -> Result<u32> {
        let bytes = payload
            .get(at..at + 4)
            .ok_or_else(|| bad("truncated header"))?;
        at += 4;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    };
    let mut list = |payload: &[u8]| -> Result<Vec<u32>> {
        let n = u32_at(payload)? as usize;
        (0..n).map(|_| u32_at(payload)).collect()
    };
    let piece_ids = list(payload)?;
    let mut word_starts = list(payload)?;
    let layers = u32_at(payload)? as usize;
    let hidden = u32_at(payload)? as usize;
    let pieces = piece_ids.len();
    // Where the tweet's own pieces end: before its closing piece, which is the last piece unless a
    // context follows (then its start is stored after the words', see `encode`).
    let tweet_end = if word_starts.len() == tweet.tokens.len() + 1 {
        word_starts.pop().map_or(0, |end| end as usize)
    } else {
        pieces.saturating_sub(1)
    };
    if word_starts.len() != tweet.tokens.len() || tweet_end >= pieces.max(1) {
        return Err(bad("word count differs from the tweet's"));
    }
    if hidden != shape.hidden || shape.layers.iter().any(|&l| l >= layers) {
        return Err(bad("states do not have the encoder's shape"));
    }
    let values: Vec<f32> = match params.storage {
        StateStorage::F16 => payload[at..]
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        StateStorage::F32 => payload[at..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    };
    if values.len() != layers * pieces * hidden {
        return Err(bad("state count differs from the header's"));
    }
    // Each word's pieces: from its first piece to the next word's (the last word's end before the
    // tweet's closing token).
    let ends: Vec<usize> = word_starts
        .iter()
        .skip(1)
        .map(|&s| s as usize)
        .chain(std::iter::once(tweet_end))
        .collect();
    let mut out = Vec::with_capacity(word_starts.len() * shape.width());
    for (&start, &end) in word_starts.iter().zip(&ends) {
        let start = start as usize;
        let end = end.max(start + 1);
        for &layer in &shape.layers {
            let piece = |p: usize| &values[(layer * pieces + p) * hidden..][..hidden];
            match params.pooling {
                Pooling::First => out.extend_from_slice(piece(start)),
                Pooling::Mean => {
                    let mut sum = vec![0f32; hidden];
                    for p in start..end {
                        sum.iter_mut().zip(piece(p)).for_each(|(s, v)| *s += v);
                    }
                    let n = (end - start) as f32;
                    out.extend(sum.into_iter().map(|s| s / n));
                }
            }
        }
    }
    Ok(TextFeatures {
        tweet_id: tweet.id.clone(),
        shapes: tweet.tokens.iter().map(|w| word_shape(w)).collect(),
        states: StateValues::from_f32(&out, params.storage),
        piece_ids,
        word_starts,
    })
}

/// The memo payload of a row, little-endian: piece count and pieces, word count and word starts (u32
/// each), then the states as the artifact stores them ([words, layers, hidden] in the storage
/// format). The row's id and word shapes come from the tweet when it is read back.
fn row_payload(row: &TextFeatures) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 4 * (row.piece_ids.len() + row.word_starts.len()));
    for list in [&row.piece_ids, &row.word_starts] {
        out.extend_from_slice(&(list.len() as u32).to_le_bytes());
        list.iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    }
    match &row.states {
        StateValues::F16(values) => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        StateValues::F32(values) => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
    }
    out
}

/// A tweet's row of the artifact from its memo payload ([`row_payload`]).
fn row_from_payload(
    tweet: &Tweet,
    payload: &[u8],
    params: &TextFeatureParams,
    shape: &StateShape,
) -> Result<TextFeatures> {
    let bad = |what: &str| {
        Error::Store(format!(
            "memo {MEMO}: malformed entry for tweet {}: {what}",
            tweet.id
        ))
    };
    let mut at = 0usize;
    let mut list = || -> Result<Vec<u32>> {
        let word = |at: &mut usize| -> Result<u32> {
            let bytes = payload.get(*at..*at + 4).ok_or_else(|| bad("truncated"))?;
            *at += 4;
            Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        };
        let n = word(&mut at)? as usize;
        (0..n).map(|_| word(&mut at)).collect()
    };
    let piece_ids = list()?;
    let word_starts = list()?;
    if word_starts.len() != tweet.tokens.len() {
        return Err(bad("word count differs from the tweet's"));
    }
    let states = &payload[at..];
    let value_bytes = match params.storage {
        StateStorage::F16 => 2,
        StateStorage::F32 => 4,
    };
    if states.len() != word_starts.len() * shape.width() * value_bytes {
        return Err(bad("state count differs from the encoder's shape"));
    }
    let states = match params.storage {
        StateStorage::F16 => StateValues::F16(
            states
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        StateStorage::F32 => StateValues::F32(
            states
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
    };
    Ok(TextFeatures {
        tweet_id: tweet.id.clone(),
        shapes: tweet.tokens.iter().map(|w| word_shape(w)).collect(),
        states,
        piece_ids,
        word_starts,
    })
}

/// What `features` (text) counts.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub tweets: usize,
    pub words: usize,
    pub pieces: usize,
    /// Tweets encoded with a sliding window (over the encoder's longest input).
    pub longer_than_max_pieces: usize,
    /// The hidden states kept per word (0: the embeddings) and their width.
    pub layers: Vec<usize>,
    pub hidden: usize,
    /// The artifact's size on disk.
    pub bytes: u64,
    /// Tweets taken from the per-tweet memo, and computed.
    pub memo_reused: usize,
    pub memo_computed: usize,
}

/// The `features` stage: the text encoder's states of every word.
pub struct TextFeaturesStage;

/// What the text features are made from: the tweets, the encoder and how states are kept.
pub struct Input {
    pub tweets: Digest,
    pub encoder: EncoderFiles,
    pub params: TextFeatureParams,
}

impl Stage for TextFeaturesStage {
    const NAME: &'static str = STAGE;
    const VERSION: u32 = VERSION;
    const MEMOS: &'static [&'static str] = &[MEMO];
    type Input = Input;
    type Counts = Counts;

    fn headline(c: &Counts) -> String {
        format!("{} tweets, {} word pieces", c.tweets, c.pieces)
    }

    fn spec(input: &Input) -> Result<RunSpec> {
        Ok(spec(input.tweets, input.encoder.digest()?, &input.params))
    }

    fn run(store: &Store, input: &Input) -> Result<RunOutcome> {
        run(store, input.tweets, &input.encoder, &input.params)
    }
}

impl ShardedStage for TextFeaturesStage {
    fn run_shard(store: &Store, input: &Input, shard: Shard) -> Result<RunOutcome> {
        run_shard(store, input.tweets, &input.encoder, &input.params, shard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_selections_parse_and_resolve() {
        let all: LayerSelection = "all".parse().unwrap_or(LayerSelection::Last(1));
        assert_eq!(all.resolve(7).ok(), Some((0..7).collect()));
        let last4: LayerSelection = "last4".parse().unwrap_or(LayerSelection::All);
        assert_eq!(last4.resolve(7).ok(), Some(vec![3, 4, 5, 6]));
        assert_eq!(last4.to_string(), "last4");
        let list: LayerSelection = "0,6".parse().unwrap_or(LayerSelection::All);
        assert_eq!(list, LayerSelection::List(vec![0, 6]));
        assert!(list.resolve(6).is_err(), "index 6 of 6 hidden states");
        assert!(
            "last0"
                .parse::<LayerSelection>()
                .is_ok_and(|l| l.resolve(7).is_err())
        );
        assert!("top".parse::<LayerSelection>().is_err());
        let range: LayerSelection = "0,4-8".parse().unwrap_or(LayerSelection::All);
        assert_eq!(range, LayerSelection::List(vec![0, 4, 5, 6, 7, 8]));
        assert_eq!(range.to_string(), "0,4,5,6,7,8", "keys spell a range out");
        assert!("8-4".parse::<LayerSelection>().is_err());
        assert!("4-".parse::<LayerSelection>().is_err());
        let json = serde_json::to_string(&LayerSelection::Last(1)).unwrap_or_default();
        assert_eq!(json, "\"last\"");
    }
}
