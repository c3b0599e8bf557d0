//! CoNLL-2000 chunking data (`word POS chunk` per line, a blank line between sentences), read as
//! noun-phrase chunks only: B-NP/I-NP stay, every other chunk becomes O.
use std::path::Path;

use super::lines;
use crate::error::{Error, Result};
use crate::text::np::NpTag;

/// A sentence with its NP tags.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkedSentence {
    pub words: Vec<String>,
    pub tags: Vec<NpTag>,
}

pub fn read(path: &Path) -> Result<Vec<ChunkedSentence>> {
    let mut out = Vec::new();
    let mut current = ChunkedSentence {
        words: Vec::new(),
        tags: Vec::new(),
    };
    for line in lines(path, super::Limits::DEFAULT_MAX_RECORD_BYTES)? {
        let line = line?;
        let text = std::str::from_utf8(&line.bytes)
            .map_err(|e| Error::input(path, line.number, super::utf8_message(&e)))?;
        let fields: Vec<&str> = text.split_whitespace().collect();
        match fields.as_slice() {
            [] => {
                if !current.words.is_empty() {
                    out.push(std::mem::replace(
                        &mut current,
                        ChunkedSentence {
                            words: Vec::new(),
                            tags: Vec::new(),
                        },
                    ));
                }
            }
            [word, _pos, chunk] => {
                current.words.push((*word).to_owned());
                current.tags.push(NpTag::from_chunk_label(chunk));
            }
            _ => {
                return Err(Error::input(
                    path,
                    line.number,
                    format!("expected `word POS chunk`, found {text:?}"),
                ));
            }
        }
    }
    if !current.words.is_empty() {
        out.push(current);
    }
    Ok(out)
}
