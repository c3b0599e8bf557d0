//! Universal Dependencies CoNLL-U (Tweebank v2), read as dependency trees: per sentence its words'
//! form, UPOS, head and relation. Comment lines, multiword-token ranges (`3-4`) and empty nodes
//! (`5.1`) are skipped; a malformed word line is a `file:line` error (this is training data, not a dump).
use std::path::Path;

use super::{Limits, lines, utf8_message};
use crate::error::{Error, Result};

/// One word of a dependency tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdWord {
    pub form: String,
    pub upos: String,
    /// The head's 1-based index, 0 for a root.
    pub head: usize,
    /// The relation to the head, subtype included (`nmod:poss`).
    pub deprel: String,
}

/// A sentence's words, in order (word `i` has CoNLL-U id `i + 1`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UdSentence {
    pub words: Vec<UdWord>,
}

pub fn read(path: &Path) -> Result<Vec<UdSentence>> {
    let mut out = Vec::new();
    let mut current = UdSentence::default();
    for line in lines(path, Limits::DEFAULT_MAX_RECORD_BYTES)? {
        let line = line?;
        let bad = |message: String| Error::input(path, line.number, message);
        if line.too_long.is_some() {
            return Err(bad("line too long".to_owned()));
        }
        let text = std::str::from_utf8(&line.bytes).map_err(|e| bad(utf8_message(&e)))?;
        if text.trim().is_empty() {
            if !current.words.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if text.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = text.split('\t').collect();
        if fields.len() != 10 {
            return Err(bad(format!(
                "expected 10 tab-separated fields, found {}",
                fields.len()
            )));
        }
        if fields[0].contains(['-', '.']) {
            continue; // a multiword token's range or an empty node
        }
        let id: usize = fields[0]
            .parse()
            .map_err(|_| bad(format!("word id {:?} is not a number", fields[0])))?;
        if id != current.words.len() + 1 {
            return Err(bad(format!(
                "word id {id} out of order (expected {})",
                current.words.len() + 1
            )));
        }
        let head: usize = fields[6]
            .parse()
            .map_err(|_| bad(format!("head {:?} is not a number", fields[6])))?;
        current.words.push(UdWord {
            form: fields[1].to_owned(),
            upos: fields[3].to_owned(),
            head,
            deprel: fields[7].to_owned(),
        });
    }
    if !current.words.is_empty() {
        out.push(current);
    }
    for (s, sentence) in out.iter().enumerate() {
        if let Some(w) = sentence
            .words
            .iter()
            .find(|w| w.head > sentence.words.len())
        {
            return Err(Error::Config(format!(
                "{}: sentence {}: head {} past the sentence's {} words",
                path.display(),
                s + 1,
                w.head,
                sentence.words.len()
            )));
        }
    }
    Ok(out)
}
