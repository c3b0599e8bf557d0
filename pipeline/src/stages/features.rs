//! `features`, text part: per tweet its word pieces, each word's first piece, word shapes, and (for the
//! frozen training mode) the encoder's last hidden state at each word's first piece. The encoder work is
//! memoised per tweet by (text digest, encoder digest): a dump that repeats old tweets computes only the
//! new ones. The visual part is `visual_features`.
use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::schema::{TextFeatures, Tweet, text_features};
use crate::store::{MemoStats, RunOutcome, RunSpec, Shard, Store};
use crate::text::encoder::{EncoderFiles, Precision, TextEncoder};
use crate::text::shape::word_shape;
use crate::text::tokenizer::Pieces;

pub const STAGE: &str = "features";
/// 2: a tweet's states no longer depend on its batch peers (padded lengths fixed per tweet); the memo key has the
/// version.
pub const VERSION: u32 = 2;
pub const TEXT_FEATURES: &str = "text_features.parquet";
const MEMO: &str = "text-features";
/// Tweets per encoder call and per memo write (a killed run keeps what it finished).
const MEMO_CHUNK: usize = 512;
/// Sequences per forward pass (sorted by length, so padding stays small).
const BATCH: usize = 32;

pub fn spec(tweets: Digest, encoder: Digest, precision: Precision) -> RunSpec {
    RunSpec {
        stage: STAGE.to_owned(),
        version: VERSION,
        params: json!({"text_states": "last layer, first piece of each word", "precision": precision}),
        inputs: BTreeMap::from([
            ("tweets".to_owned(), tweets),
            ("encoder".to_owned(), encoder),
        ]),
    }
}

pub fn run(
    store: &Store,
    tweets: Digest,
    encoder: &EncoderFiles,
    precision: Precision,
) -> Result<RunOutcome> {
    let encoder_digest = encoder.digest()?;
    store.run(&spec(tweets, encoder_digest, precision), |outputs| {
        let tweets = crate::stages::ingest::read_tweets(&store.blob_path(&tweets))?;
        let (payloads, stats) =
            encode_memoised(store, &tweets, encoder, encoder_digest, precision)?;
        let rows = tweets
            .iter()
            .zip(&payloads)
            .map(|(tweet, payload)| decode(tweet, payload))
            .collect::<Result<Vec<_>>>()?;
        crate::io::parquet::write(
            &outputs.path(TEXT_FEATURES),
            &text_features::to_batch(&rows)?,
            text_features::NAME,
            text_features::VERSION,
        )?;
        let long = rows
            .iter()
            .filter(|r| r.piece_ids.len() > crate::text::tokenizer::MAX_PIECES)
            .count();
        Ok(json!({
            "tweets": rows.len(),
            "pieces": rows.iter().map(|r| r.piece_ids.len()).sum::<usize>(),
            "longer_than_max_pieces": long,
            "memo_reused": stats.reused,
            "memo_computed": stats.computed,
        }))
    })
}

/// Shard `shard` of the run (see [`Shard`]): encodes the tweets it owns, by text digest, into the
/// memo; the whole run then merges.
pub fn run_shard(
    store: &Store,
    tweets: Digest,
    encoder: &EncoderFiles,
    precision: Precision,
    shard: Shard,
) -> Result<RunOutcome> {
    let encoder_digest = encoder.digest()?;
    store.run(
        &shard.spec(&spec(tweets, encoder_digest, precision)),
        |_| {
            let mut tweets = crate::stages::ingest::read_tweets(&store.blob_path(&tweets))?;
            tweets.retain(|t| shard.owns(&t.text_digest));
            let (_, stats) = encode_memoised(store, &tweets, encoder, encoder_digest, precision)?;
            Ok(stats.shard_counts(tweets.len()))
        },
    )
}

/// The shards of `count` that have not run (see [`Store::missing_shards`]).
pub fn missing_shards(
    store: &Store,
    tweets: Digest,
    encoder: &EncoderFiles,
    precision: Precision,
    count: u32,
) -> Result<Vec<Shard>> {
    store.missing_shards(&spec(tweets, encoder.digest()?, precision), count)
}

/// The memo payload of each tweet, encoding (and storing) those not memoised yet; the encoder is
/// loaded only if needed.
fn encode_memoised(
    store: &Store,
    tweets: &[Tweet],
    encoder: &EncoderFiles,
    encoder_digest: Digest,
    precision: Precision,
) -> Result<(Vec<Vec<u8>>, MemoStats)> {
    let precision_name = format!("{precision:?}");
    let keys: Vec<Digest> = tweets
        .iter()
        .map(|t| {
            Digest::of_strings([
                t.text_digest.hex(),
                encoder_digest.hex(),
                precision_name.clone(),
                VERSION.to_string(),
            ])
        })
        .collect();
    let mut model = None;
    let bar = crate::progress::bar(tweets.len() as u64, "features");
    let (payloads, stats) = store
        .memo(MEMO)?
        .get_or_compute(&keys, MEMO_CHUNK, |missing| {
            let model = match &mut model {
                Some(model) => model,
                None => model.insert(TextEncoder::load_for_inference(
                    encoder,
                    crate::torch::default_device(),
                )?),
            };
            let out = encode(model, missing.iter().map(|&i| &tweets[i]))?;
            bar.inc(missing.len() as u64);
            Ok(out)
        })?;
    bar.finish_and_clear();
    stats.log("encoded", "tweets");
    Ok((payloads, stats))
}

/// Memo payload of each tweet: piece count, pieces, word count, word starts (u32 LE), states (f32 LE).
fn encode<'a>(
    model: &TextEncoder,
    tweets: impl Iterator<Item = &'a Tweet>,
) -> Result<Vec<Vec<u8>>> {
    let pieces = tweets
        .map(|t| model.pieces.tweet(&t.tokens))
        .collect::<Result<Vec<Pieces>>>()?;
    let states = model.word_states(&pieces, BATCH);
    pieces
        .iter()
        .zip(states)
        .map(|(p, s)| {
            let values = Vec::<f32>::try_from(s.flatten(0, -1))?;
            let mut out =
                Vec::with_capacity(8 + 4 * (p.ids.len() + p.word_starts.len() + values.len()));
            for list in [&p.ids, &p.word_starts] {
                out.extend_from_slice(&(list.len() as u32).to_le_bytes());
                list.iter()
                    .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            }
            values
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            Ok(out)
        })
        .collect()
}

fn decode(tweet: &Tweet, payload: &[u8]) -> Result<TextFeatures> {
    let bad = || {
        Error::Store(format!(
            "memo {MEMO}: malformed entry for tweet {}",
            tweet.id
        ))
    };
    let mut words = payload.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]);
    let list = |words: &mut dyn Iterator<Item = [u8; 4]>| -> Result<Vec<u32>> {
        let n = u32::from_le_bytes(words.next().ok_or_else(bad)?) as usize;
        let items: Vec<u32> = words.take(n).map(u32::from_le_bytes).collect();
        if items.len() == n {
            Ok(items)
        } else {
            Err(bad())
        }
    };
    let piece_ids = list(&mut words)?;
    let word_starts = list(&mut words)?;
    if word_starts.len() != tweet.tokens.len() {
        return Err(bad());
    }
    Ok(TextFeatures {
        tweet_id: tweet.id.clone(),
        piece_ids,
        word_starts,
        shapes: tweet.tokens.iter().map(|w| word_shape(w)).collect(),
        states: words.map(f32::from_le_bytes).collect(),
    })
}

/// Reads a `text_features` artifact.
pub fn read_text_features(path: &Path) -> Result<Vec<TextFeatures>> {
    crate::io::parquet::read_rows(
        path,
        text_features::NAME,
        text_features::VERSION,
        text_features::from_batch,
    )
}
