//! `chunk`: the noun phrases of every tweet and of its image's caption, by the trained chunker,
//! memoised per text (text digest + chunker digest): a dump that repeats old tweets chunks only the
//! new ones, and a caption shared by several tweets is chunked once.
use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::digest::Digest;
use crate::schema::{Artifact, NounPhrase, PhraseSource, Tweet};
use crate::stages::{ShardedStage, Stage};
use crate::store::{ByParts, MemoStats, RunOutcome, RunSpec, Shard, Store};
use crate::text::chunker::NpChunker;
use crate::text::encoder::EncoderFiles;
use crate::text::np::np_spans;
use crate::text::words::tweet_tokens;
use crate::{Error, Result};

const STAGE: &str = "chunk";
/// 2: the encoder's batches no longer change a tweet's logits (padded lengths fixed per tweet); the memo key has
/// the version. 3: every forward pass has the batch's full row count (filler rows; features version 4):
/// on some CPUs the row count changes the bits, and entries memoised before may differ from a fresh run.
/// 4: the phrases of captions too (`noun_phrases/2`, with `source`).
const VERSION: u32 = 4;
/// The memo's own version: what a memo entry holds (the phrase spans of one text) and how it is
/// keyed. Version 4 of the stage did not change it, so its entries stay valid.
const MEMO_VERSION: u32 = 3;
pub const NOUN_PHRASES: &str = "noun_phrases.parquet";
pub const MEMO: &str = "noun-phrases";
/// Tweets per model call and per memo write.
const MEMO_CHUNK: usize = 256;

fn spec(tweets: Digest, chunker: Digest) -> RunSpec {
    RunSpec {
        stage: STAGE.to_owned(),
        version: VERSION,
        params: json!({}),
        inputs: BTreeMap::from([
            ("tweets".to_owned(), tweets),
            ("chunker".to_owned(), chunker),
        ]),
    }
}

/// Chunks the tweets of the `tweets` blob, and their captions, with the chunker stored as `chunker`
/// (its blob digest).
fn run(
    store: &Store,
    tweets: Digest,
    chunker: Digest,
    encoder: &EncoderFiles,
) -> Result<RunOutcome> {
    let model = RefCell::new(None);
    let plan = ByParts {
        inputs: &["tweets"],
        ..ByParts::default()
    };
    store.run_by_parts(&spec(tweets, chunker), &plan, |part, outputs| {
        let tweets = Tweet::read(&store.blob_path(&part["tweets"]))?;
        let texts = texts_of(&tweets);
        let (spans, stats) = phrases_of(store, &texts, chunker, encoder, &model)?;
        let rows: Vec<NounPhrase> = texts
            .iter()
            .zip(&spans)
            .flat_map(|(text, spans)| spans.iter().map(|&(s, e)| phrase(text, s, e)))
            .collect();
        NounPhrase::write(&outputs.path(NOUN_PHRASES), &rows)?;
        let in_captions = rows
            .iter()
            .filter(|r| r.source == PhraseSource::Caption)
            .count();
        Ok(serde_json::to_value(Counts {
            tweets: tweets.len(),
            phrases: rows.len() - in_captions,
            captions: texts.len() - tweets.len(),
            caption_phrases: in_captions,
            memo_reused: stats.reused,
            memo_computed: stats.computed,
        })?)
    })
}

/// Shard `shard` of the run (see [`Shard`]): chunks the texts it owns, by text digest, into the memo;
/// the whole run then merges.
fn run_shard(
    store: &Store,
    tweets: Digest,
    chunker: Digest,
    encoder: &EncoderFiles,
    shard: Shard,
) -> Result<RunOutcome> {
    store.run(&shard.spec(&spec(tweets, chunker)), |_| {
        let tweets = Tweet::read(&store.blob_path(&tweets))?;
        let mut texts = texts_of(&tweets);
        texts.retain(|t| shard.owns(&t.digest));
        let (_, stats) = phrases_of(store, &texts, chunker, encoder, &RefCell::new(None))?;
        Ok(stats.shard_counts(texts.len()))
    })
}

/// A text to chunk: a tweet's words, or its caption's.
struct Text<'a> {
    tweet_id: &'a str,
    source: PhraseSource,
    words: std::borrow::Cow<'a, [String]>,
    /// The digest of the words (`Tweet::text_digest_of`): the memo key's part.
    digest: Digest,
}

/// Every tweet's words, then the captions' (split into words as a tweet is).
fn texts_of(tweets: &[Tweet]) -> Vec<Text<'_>> {
    let own = tweets.iter().map(|t| Text {
        tweet_id: &t.id,
        source: PhraseSource::Tweet,
        words: std::borrow::Cow::Borrowed(&t.tokens),
        digest: t.text_digest,
    });
    let captions = tweets.iter().filter_map(|t| {
        let words = tweet_tokens(t.caption.as_deref()?);
        Some(Text {
            tweet_id: &t.id,
            source: PhraseSource::Caption,
            digest: Tweet::text_digest_of(&words),
            words: std::borrow::Cow::Owned(words),
        })
    });
    own.chain(captions).collect()
}

/// Word ranges `start..end` of each noun phrase of one tweet.
type Spans = Vec<(usize, usize)>;

/// Phrase spans of each text, from the memo where possible; the chunker is loaded only if needed.
fn phrases_of(
    store: &Store,
    texts: &[Text<'_>],
    chunker: Digest,
    encoder: &EncoderFiles,
    model: &RefCell<Option<NpChunker>>,
) -> Result<(Vec<Spans>, MemoStats)> {
    let memo = store.memo(MEMO)?;
    let keys: Vec<Digest> = texts
        .iter()
        .map(|t| Digest::of_strings([t.digest.hex(), chunker.hex(), MEMO_VERSION.to_string()]))
        .collect();
    let mut model = model.borrow_mut();
    let bar = crate::progress::bar(texts.len() as u64, "chunk");
    let (payloads, stats) = memo.get_or_compute(&keys, MEMO_CHUNK, |missing| {
        let model = match &mut *model {
            Some(model) => model,
            None => model.insert(NpChunker::load(
                encoder,
                &store.blob_path(&chunker),
                crate::torch::default_device(),
            )?),
        };
        let words: Vec<Vec<&str>> = missing
            .iter()
            .map(|&i| texts[i].words.iter().map(String::as_str).collect())
            .collect();
        let payloads = model
            .predict(&words)?
            .iter()
            .map(|tags| {
                serde_json::to_vec(&np_spans(tags)).map_err(|e| Error::Store(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        bar.inc(missing.len() as u64);
        Ok(payloads)
    })?;
    bar.finish_and_clear();
    stats.log("chunked", "texts");
    let spans = payloads
        .iter()
        .map(|p| serde_json::from_slice(p).map_err(|e| Error::Store(format!("memo {MEMO}: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    Ok((spans, stats))
}

/// A phrase row, with its head: the last word that is not punctuation, a possessive or an emoji,
/// looking only before an "of" (the head of "the mayor of London" is "mayor").
fn phrase(text: &Text<'_>, start: usize, end: usize) -> NounPhrase {
    let words = &text.words[start..end];
    let before_of = words
        .iter()
        .skip(1)
        .position(|w| w.eq_ignore_ascii_case("of"))
        .map_or(words.len(), |k| k + 1);
    let head = (0..before_of)
        .rev()
        .find(|&i| {
            words[i].chars().any(char::is_alphanumeric)
                && !matches!(words[i].as_str(), "'s" | "'" | "’s")
        })
        .unwrap_or(before_of - 1);
    NounPhrase {
        tweet_id: text.tweet_id.to_owned(),
        source: text.source,
        start: start as u32,
        end: end as u32,
        text: words.join(" "),
        head: words[head].clone(),
        head_index: (start + head) as u32,
    }
}

/// What `chunk` counts.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub tweets: usize,
    /// Noun phrases of the tweets.
    pub phrases: usize,
    /// Tweets with a caption, and the noun phrases of their captions.
    pub captions: usize,
    pub caption_phrases: usize,
    /// Texts (tweets and captions) taken from the per-text memo, and computed.
    pub memo_reused: usize,
    pub memo_computed: usize,
}

/// The `chunk` stage.
pub struct ChunkStage;

/// What `chunk` reads: the tweets, the trained chunker (its blob) and the encoder it runs on.
pub struct Input {
    pub tweets: Digest,
    pub chunker: Digest,
    pub encoder: EncoderFiles,
}

impl Stage for ChunkStage {
    const NAME: &'static str = STAGE;
    const VERSION: u32 = VERSION;
    const MEMOS: &'static [&'static str] = &[MEMO];
    type Input = Input;
    type Counts = Counts;

    fn headline(c: &Counts) -> String {
        format!(
            "{} tweets, {} noun phrases; {} in {} captions",
            c.tweets, c.phrases, c.caption_phrases, c.captions
        )
    }

    fn spec(input: &Input) -> Result<RunSpec> {
        Ok(spec(input.tweets, input.chunker))
    }

    fn run(store: &Store, input: &Input) -> Result<RunOutcome> {
        run(store, input.tweets, input.chunker, &input.encoder)
    }
}

impl ShardedStage for ChunkStage {
    fn run_shard(store: &Store, input: &Input, shard: Shard) -> Result<RunOutcome> {
        run_shard(store, input.tweets, input.chunker, &input.encoder, shard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ImageStatus, Split};

    fn tweet(words: &str, caption: Option<&str>) -> Tweet {
        let tokens: Vec<String> = words.split_whitespace().map(String::from).collect();
        Tweet {
            id: "1".into(),
            split: Split::Dump,
            text_digest: Tweet::text_digest_of(&tokens),
            caption: caption.map(str::to_owned),
            caption_digest: caption.map(Tweet::caption_digest_of),
            tokens,
            labels: None,
            image_path: None,
            image_status: ImageStatus::None,
            image_digest: None,
            source_line: 1,
        }
    }

    #[test]
    fn a_caption_is_a_text_of_its_own() {
        let tweets = [
            tweet("Kobe scores", Some("a man holding a ball")),
            tweet("hi", None),
        ];
        let texts = texts_of(&tweets);
        let sources: Vec<_> = texts.iter().map(|t| (t.source, t.words.len())).collect();
        assert_eq!(
            sources,
            [
                (PhraseSource::Tweet, 2),
                (PhraseSource::Tweet, 1),
                (PhraseSource::Caption, 5)
            ]
        );
        let p = phrase(&texts[2], 3, 5);
        assert_eq!(
            (p.source, p.text.as_str(), p.head.as_str()),
            (PhraseSource::Caption, "a ball", "ball")
        );
    }

    #[test]
    fn heads() {
        let tweets = [tweet("the mayor of London 's new dog !", None)];
        let texts = texts_of(&tweets);
        let t = &texts[0];
        assert_eq!(phrase(t, 0, 4).head, "mayor");
        assert_eq!(phrase(t, 3, 7).head, "dog");
        let p = phrase(t, 3, 5);
        assert_eq!(
            (p.head.as_str(), p.head_index, p.text.as_str()),
            ("London", 3, "London 's")
        );
        let handle = [tweet("@nytimes", None)];
        assert_eq!(phrase(&texts_of(&handle)[0], 0, 1).head, "@nytimes");
    }
}
