//! Readers of tweet dumps (CoNLL with `IMGID:` lines, JSONL) and the Parquet artifact format.
//!
//! Readers never stop at a bad record: they return every good tweet plus a diagnostic per bad record
//! (file, line, what was expected). The caller decides whether a rejected record fails the run.
pub mod captions;
pub mod conll;
pub mod conll2000;
pub mod conllu;
pub mod jsonl;
pub mod parquet;

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{IoContext, Result};
use crate::labels::{Tag, stray_inside_tags};

/// Input formats of `ingest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Twitter-2015/2017: `IMGID:<id>`, then `token<TAB>label` lines, a blank line between tweets.
    Conll,
    /// One JSON object per line: `{"id", "text" or "tokens", "image", optional "labels"}`.
    Jsonl,
}

impl Format {
    /// `.jsonl`/`.json`/`.ndjson` files are JSONL; anything else is read as CoNLL.
    pub fn of_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "json" | "ndjson") => Format::Jsonl,
            _ => Format::Conll,
        }
    }
}

/// Where a tweet's image is, as the dump says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    /// CoNLL dumps name no file: the image is `<id>.jpg` in the dataset's image directory.
    ById,
    /// A path from a JSONL dump, relative to the dump's directory unless absolute.
    Path(String),
    /// The tweet has no image.
    None,
}

/// A tweet as read, before ingest resolves its image and digests.
#[derive(Clone, Debug, PartialEq)]
pub struct RawTweet {
    pub id: String,
    pub tokens: Vec<String>,
    pub labels: Option<Vec<Tag>>,
    pub image: ImageRef,
    /// What the image shows, in words, when the dump carries it (JSONL `"caption"`).
    pub caption: Option<String>,
    /// 1-based line where the record starts.
    pub line: usize,
}

/// Bounds on what one record may hold, so that a stray huge line is rejected (a `file:line` error, or
/// skipped under `--on-error skip`) instead of read whole and carried by every later stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// The most bytes of one record: a JSONL line, a CoNLL tweet (all its lines), a caption line.
    pub max_record_bytes: usize,
}

impl Limits {
    /// 64 KiB: about 190 times the longest record of the benchmarks (a 336-byte CoNLL tweet).
    pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024;

    /// What to say of a record of `bytes` bytes (or more) past the limit.
    fn too_long(&self, bytes: usize) -> String {
        format!(
            "record too long: {bytes} bytes or more, over the limit of {} (--max-record-bytes, MAX_RECORD_BYTES=)",
            self.max_record_bytes
        )
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_record_bytes: Self::DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

/// A problem with one record, located in its file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub path: PathBuf,
    pub line: usize,
    /// The record's id when it could be read.
    pub record: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.path.display(), self.line)?;
        if let Some(record) = &self.record {
            write!(f, "tweet {record}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Everything read from one file.
#[derive(Debug, Default)]
pub struct ParsedFile {
    pub tweets: Vec<RawTweet>,
    /// Records left out: each would fail the run unless `--on-error skip`.
    pub rejected: Vec<Diagnostic>,
    /// Records kept but worth a look (an I- tag that starts an entity).
    pub warnings: Vec<Diagnostic>,
}

/// Reads `path` in `format`. Only I/O failures are errors; bad records become diagnostics.
pub fn read(path: &Path, format: Format, limits: &Limits) -> Result<ParsedFile> {
    match format {
        Format::Conll => conll::read(path, limits),
        Format::Jsonl => jsonl::read(path, limits),
    }
}

/// One line of a file: its 1-based number, its bytes without the line ending, and whether a line ending
/// followed it (a final line without one may be a truncated file).
struct Line {
    number: usize,
    /// Empty when the line is `too_long`.
    bytes: Vec<u8>,
    terminated: bool,
    /// Set when the line had more bytes than the limit: how many were read before giving up on it
    /// (the rest of the line is skipped, never held in memory).
    too_long: Option<usize>,
}

/// A UTF-8 byte-order mark, which some editors put at the start of a text file.
const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// Streams a file's lines as raw bytes, so that invalid UTF-8 becomes a per-line diagnostic. A line of
/// more than `max_bytes` bytes comes back empty, marked `too_long`; a byte-order mark at the start of
/// the file is dropped.
fn lines(path: &Path, max_bytes: usize) -> Result<impl Iterator<Item = Result<Line>>> {
    let mut reader = BufReader::new(File::open(path).at(path)?);
    let path = path.to_owned();
    let mut number = 0;
    Ok(std::iter::from_fn(move || {
        let mut bytes = Vec::new();
        // One byte past the limit (and its line ending) tells a line at the limit from one over it.
        let cap = (max_bytes + 3) as u64;
        match (&mut reader)
            .take(cap)
            .read_until(b'\n', &mut bytes)
            .at(&path)
        {
            Ok(0) => None,
            Ok(_) => {
                number += 1;
                if number == 1 && bytes.starts_with(BYTE_ORDER_MARK) {
                    bytes.drain(..BYTE_ORDER_MARK.len());
                }
                let mut terminated = bytes.last() == Some(&b'\n');
                if terminated {
                    bytes.pop();
                }
                if bytes.last() == Some(&b'\r') {
                    bytes.pop();
                }
                let mut too_long = None;
                if bytes.len() > max_bytes {
                    too_long = Some(bytes.len());
                    bytes = Vec::new();
                    if !terminated {
                        // The rest of the line, up to and including its end.
                        match reader.skip_until(b'\n').at(&path) {
                            Ok(skipped) => terminated = skipped > 0,
                            Err(e) => return Some(Err(e)),
                        }
                    }
                }
                Some(Ok(Line {
                    number,
                    bytes,
                    terminated,
                    too_long,
                }))
            }
            Err(e) => Some(Err(e)),
        }
    }))
}

fn utf8_message(e: &std::str::Utf8Error) -> String {
    format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1)
}

/// Warnings for I- tags that start an entity instead of continuing one: kept (conlleval reads them as
/// the start of an entity) and counted. `line_of(i)` locates token `i`.
fn stray_inside_warnings(
    path: &Path,
    id: &str,
    labels: &[Tag],
    line_of: impl Fn(usize) -> usize,
) -> Vec<Diagnostic> {
    stray_inside_tags(labels)
        .into_iter()
        .map(|i| Diagnostic {
            path: path.to_owned(),
            line: line_of(i),
            record: Some(id.to_owned()),
            message: format!(
                "{} does not continue an entity: read as the start of one",
                labels[i]
            ),
        })
        .collect()
}
