//! Word pieces for tweets: HF `tokenizers` from the model's tokenizer.json, applied word by word so that
//! every word of the dataset maps to at least one piece (its first piece carries the word's label).
//!
//! Tweets need care: a URL becomes the word `url` (its pieces are noise and eat the length budget), and
//! a word the normaliser erases (a lone no-break space, control characters) becomes the unknown piece
//! instead of vanishing, which would shift every later word's alignment.
//!
//! The special pieces depend on the architecture and are named explicitly for each ([`Architecture`]):
//! BERT's `[CLS] pieces [SEP]`, padded with `[PAD]`; MPNet's `<s> pieces </s>`, padded with `<pad>` (id 1).
//! A name lookup of `[CLS]` is not enough: MPNet's BERT-derived vocabulary still holds `[CLS]`, `[SEP]`
//! and `[PAD]` entries, which that model never saw in those roles.
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use tokenizers::Tokenizer;
use tokenizers::models::ModelWrapper;
use tokenizers::processors::PostProcessorWrapper;

use super::words::is_url;
use crate::{Error, IoContext, Result};

/// The maximum sequence length, in pieces including the first and last special piece (the paper's and
/// the model's).
pub const MAX_PIECES: usize = 128;

/// The model family a tokenizer belongs to: it decides the special pieces around a tweet and the padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// BERT (MiniLM-L6 here): `[CLS]`, `[SEP]`, `[PAD]`.
    Bert,
    /// MPNet (all-mpnet-base-v2): `<s>` as CLS, `</s>` as SEP, `<pad>`.
    Mpnet,
}

impl Architecture {
    /// From the `model_type` of a Hugging Face `config.json` ("bert" or "mpnet").
    pub fn of_config(config_json: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(config_json).at(config_json)?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::model_file(config_json, format!("not a JSON config: {e}")))?;
        match value.get("model_type").and_then(serde_json::Value::as_str) {
            Some("bert") => Ok(Self::Bert),
            Some("mpnet") => Ok(Self::Mpnet),
            Some(other) => Err(Error::model_file(
                config_json,
                format!("model_type {other:?} is not supported (bert or mpnet)"),
            )),
            None => Err(Error::model_file(
                config_json,
                "no \"model_type\" (expected \"bert\" or \"mpnet\")",
            )),
        }
    }

    /// Names of the (CLS, SEP, PAD) pieces.
    fn special_tokens(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Bert => ("[CLS]", "[SEP]", "[PAD]"),
            Self::Mpnet => ("<s>", "</s>", "<pad>"),
        }
    }
}

/// A tweet in word pieces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pieces {
    /// CLS, the pieces of every word, SEP (BERT: `[CLS]` ... `[SEP]`; MPNet: `<s>` ... `</s>`).
    pub ids: Vec<u32>,
    /// For each word, the index in `ids` of its first piece.
    pub word_starts: Vec<u32>,
}

pub struct WordPieces {
    tokenizer: Tokenizer,
    architecture: Architecture,
    cls: u32,
    sep: u32,
    pad: u32,
    unk: u32,
    /// Tweets repeat words a lot; the per-word pieces are cached.
    cache: Mutex<HashMap<String, Vec<u32>>>,
}

impl WordPieces {
    /// A BERT tokenizer.json: `from_files(path, Architecture::Bert)`.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_files(path, Architecture::Bert)
    }

    /// A WordPiece tokenizer.json of `architecture` (see [`Architecture::of_config`]).
    pub fn from_files(tokenizer_json: &Path, architecture: Architecture) -> Result<Self> {
        let path = tokenizer_json;
        let mut tokenizer = Tokenizer::from_file(path)
            .map_err(|e| Error::model_file(path, format!("cannot load tokenizer: {e}")))?;
        // The shipped file pads every input to 128 and truncates: we pad per batch ourselves, and a long
        // tweet is never cut silently (the encoder slides a window over it).
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| Error::model_file(path, format!("{e}")))?;
        let id = |token: &str| {
            tokenizer.token_to_id(token).ok_or_else(|| {
                Error::model_file(
                    path,
                    format!("no {token} token ({architecture:?} tokenizer expected)"),
                )
            })
        };
        let (cls, sep, pad) = architecture.special_tokens();
        let (cls, sep, pad) = (id(cls)?, id(sep)?, id(pad)?);
        // The unknown piece is the one the model itself emits for what it cannot split (MPNet's
        // tokenizer.json says `[UNK]`, id 104, although its vocabulary also has `<unk>`, id 3).
        let ModelWrapper::WordPiece(model) = tokenizer.get_model() else {
            return Err(Error::model_file(path, "not a WordPiece tokenizer"));
        };
        let unk = id(&model.unk_token)?;
        // The file's own post-processor (what `add_special_tokens` would add) must agree with ours.
        let shipped = match tokenizer.get_post_processor() {
            Some(PostProcessorWrapper::Bert(p)) => Some((p.get_cls_copy(), p.get_sep_copy())),
            Some(PostProcessorWrapper::Roberta(p)) => Some((p.get_cls_copy(), p.get_sep_copy())),
            _ => None,
        };
        if let Some(((cls_name, cls_id), (sep_name, sep_id))) = shipped
            && (cls_id, sep_id) != (cls, sep)
        {
            crate::bail!(
                Config,
                "{}: its post-processor adds {cls_name} ({cls_id}) and {sep_name} ({sep_id}), but a \
                 {architecture:?} tokenizer uses ids {cls} and {sep}",
                path.display()
            );
        }
        Ok(Self {
            tokenizer,
            architecture,
            cls,
            sep,
            pad,
            unk,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn architecture(&self) -> Architecture {
        self.architecture
    }

    /// The piece that pads a batch (BERT `[PAD]`, MPNet `<pad>`).
    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    /// The piece that opens a sequence (BERT `[CLS]`, MPNet `<s>`).
    pub fn cls_id(&self) -> u32 {
        self.cls
    }

    /// The piece that closes a sequence (BERT `[SEP]`, MPNet `</s>`).
    pub fn sep_id(&self) -> u32 {
        self.sep
    }

    /// The piece of a word the tokenizer cannot split (and of one its normaliser erases).
    pub fn unk_id(&self) -> u32 {
        self.unk
    }

    /// The pieces of one word (never empty).
    pub fn word(&self, word: &str) -> Result<Vec<u32>> {
        let word = if is_url(word) { "url" } else { word };
        if let Some(ids) = self.cache.lock().ok().and_then(|c| c.get(word).cloned()) {
            return Ok(ids);
        }
        let encoding = self
            .tokenizer
            .encode(word, false)
            .map_err(|e| Error::Internal(format!("tokenizer failed on {word:?}: {e}")))?;
        let mut ids = encoding.get_ids().to_vec();
        if ids.is_empty() {
            ids.push(self.unk);
        }
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(word.to_owned(), ids.clone());
        }
        Ok(ids)
    }

    /// The pieces of a free text (a caption), without special pieces; a URL-free text is assumed.
    pub fn text(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| Error::Internal(format!("tokenizer failed on {text:?}: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// A tweet with a context after it as the second segment of a pair (ITA's way of giving a text
    /// encoder what the image shows): BERT's `[CLS] tweet [SEP] context [SEP]`, MPNet's `<s> tweet
    /// </s></s> context </s>`. The context is cut to fit [`MAX_PIECES`], and left out when the tweet
    /// alone fills them. `word_starts` covers the tweet's words only; the returned length is where
    /// the tweet's pieces end (its closing piece), which is all a pair adds to [`Pieces`].
    pub fn tweet_with_context<S: AsRef<str>>(
        &self,
        words: &[S],
        context: &str,
    ) -> Result<(Pieces, usize)> {
        let mut pieces = self.tweet(words)?;
        let tweet_end = pieces.ids.len() - 1;
        let opening: &[u32] = match self.architecture {
            Architecture::Bert => &[],
            Architecture::Mpnet => &[self.sep],
        };
        let room = MAX_PIECES.saturating_sub(pieces.ids.len() + opening.len() + 1);
        let context = self.text(context)?;
        if room > 0 && !context.is_empty() {
            pieces.ids.extend_from_slice(opening);
            pieces
                .ids
                .extend_from_slice(&context[..context.len().min(room)]);
            pieces.ids.push(self.sep);
        }
        Ok((pieces, tweet_end))
    }

    /// A whole tweet: CLS pieces SEP (one sequence), with each word's first piece. Not truncated.
    pub fn tweet<S: AsRef<str>>(&self, words: &[S]) -> Result<Pieces> {
        let mut ids = vec![self.cls];
        let mut word_starts = Vec::with_capacity(words.len());
        for word in words {
            word_starts.push(ids.len() as u32);
            ids.extend(self.word(word.as_ref())?);
        }
        ids.push(self.sep);
        Ok(Pieces { ids, word_starts })
    }
}
