//! Word pieces for tweets: HF `tokenizers` from the model's tokenizer.json, applied word by word so that
//! every word of the dataset maps to at least one piece (its first piece carries the word's label).
//!
//! Tweets need care: a URL becomes the word `url` (its pieces are noise and eat the length budget), and
//! a word the normaliser erases (a lone no-break space, control characters) becomes `[UNK]` instead of
//! vanishing, which would shift every later word's alignment.
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use tokenizers::Tokenizer;

use super::tokenize::is_url;
use crate::error::{Error, Result};

/// The maximum sequence length, in pieces including [CLS] and [SEP] (the paper's and the model's).
pub const MAX_PIECES: usize = 128;

/// A tweet in word pieces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pieces {
    /// [CLS], the pieces of every word, [SEP].
    pub ids: Vec<u32>,
    /// For each word, the index in `ids` of its first piece.
    pub word_starts: Vec<u32>,
}

pub struct WordPieces {
    tokenizer: Tokenizer,
    cls: u32,
    sep: u32,
    unk: u32,
    /// Tweets repeat words a lot; the per-word pieces are cached.
    cache: Mutex<HashMap<String, Vec<u32>>>,
}

impl WordPieces {
    pub fn from_file(path: &Path) -> Result<Self> {
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| {
            Error::Config(format!("{}: cannot load tokenizer: {e}", path.display()))
        })?;
        // The shipped file pads every input to 128 and truncates: we pad per batch ourselves, and a long
        // tweet is never cut silently (the encoder slides a window over it).
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let id = |token: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| Error::Config(format!("{}: no {token} token", path.display())))
        };
        Ok(Self {
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            unk: id("[UNK]")?,
            tokenizer,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn pad_id(&self) -> u32 {
        self.tokenizer.get_padding().map_or(0, |p| p.pad_id)
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
            .map_err(|e| Error::Config(format!("tokenizer failed on {word:?}: {e}")))?;
        let mut ids = encoding.get_ids().to_vec();
        if ids.is_empty() {
            ids.push(self.unk);
        }
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(word.to_owned(), ids.clone());
        }
        Ok(ids)
    }

    /// A whole tweet: [CLS] pieces [SEP], with each word's first piece. Not truncated.
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
