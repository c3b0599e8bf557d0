//! Artifacts that grow by parts (issue 27).
//!
//! A per-record stage's output is a *part list*: a small blob naming, in order, the Parquet files
//! (blobs of the same store) that make up the table. `ingest` cuts the tweets into parts at
//! content-defined boundaries ([`PartCutter`]), and each per-record stage maps part `i` of its inputs
//! to part `i` of its outputs in a run of its own ([`Store::run_by_parts`](super::Store::run_by_parts)),
//! keyed by that part's input digests. A dump that grows by 1% changes the parts its new tweets
//! fall in; every other part is a stored run, found by key without reading a record or the memo.
//!
//! Readers need not know: [`files_of`] turns an artifact's blob into its files (the blob itself
//! when it is Parquet, its parts when it is a list), and `io::parquet` reads every artifact through
//! it. The list's digest is an ordinary output digest, so downstream keys and early cutoff work on
//! it as before; a part list with every part unchanged has the same digest.
//!
//! Format: the line `UMGF-PARTS 1`, then one line per part, `<digest hex> <bytes>`.
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::OutputEntry;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};

/// The first line of a part list (a Parquet file starts with `PAR1`).
const MAGIC: &str = "UMGF-PARTS 1\n";

/// Suffix of a part's stage name in its run key and manifest (`chunk.part`): gc keeps part runs by
/// the lists that name their outputs, not by age.
pub const PART_STAGE_SUFFIX: &str = ".part";

/// The parts of an artifact, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct PartList {
    pub parts: Vec<OutputEntry>,
}

impl PartList {
    pub fn encode(&self) -> Vec<u8> {
        let mut text = String::from(MAGIC);
        for part in &self.parts {
            text.push_str(&format!("{} {}\n", part.digest, part.bytes));
        }
        text.into_bytes()
    }

    /// The list in `bytes`; `None` if they are not a part list, an error if they start as one and
    /// then break the format.
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Option<Self>> {
        let Some(body) = bytes.strip_prefix(MAGIC.as_bytes()) else {
            return Ok(None);
        };
        let bad = |line: usize, what: &str| {
            Error::Store(format!(
                "{}: line {}: {what} (a part list: `<digest> <bytes>` per line)",
                path.display(),
                line + 2
            ))
        };
        let body = std::str::from_utf8(body).map_err(|_| bad(0, "not UTF-8"))?;
        let mut parts = Vec::new();
        for (n, line) in body.lines().enumerate() {
            let (digest, bytes) = line.split_once(' ').ok_or_else(|| bad(n, "no size"))?;
            parts.push(OutputEntry {
                digest: digest.parse().map_err(|_| bad(n, "not a digest"))?,
                bytes: bytes.parse().map_err(|_| bad(n, "not a size"))?,
            });
        }
        Ok(Some(Self { parts }))
    }

    /// The list stored at `path`, `None` if the file is not a part list (only its first bytes are
    /// read then).
    pub fn read(path: &Path) -> Result<Option<Self>> {
        let mut file = fs::File::open(path).at(path)?;
        let mut head = [0u8; MAGIC.len()];
        let mut filled = 0;
        while filled < head.len() {
            match file.read(&mut head[filled..]).at(path)? {
                0 => break,
                n => filled += n,
            }
        }
        if head[..filled] != *MAGIC.as_bytes() {
            return Ok(None);
        }
        let bytes = fs::read(path).at(path)?;
        Self::decode(path, &bytes)
    }
}

/// The blob `digest` beside `blob`, in the same store (`blobs/ab/<digest>`).
pub fn sibling_blob(blob: &Path, digest: &Digest) -> PathBuf {
    let hex = digest.hex();
    let blobs = blob
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    blobs.join(&hex[..2]).join(hex)
}

/// The files of the artifact stored at `path`: its parts, in order, when it is a part list, else
/// the file itself.
pub fn files_of(path: &Path) -> Result<Vec<PathBuf>> {
    Ok(match PartList::read(path)? {
        Some(list) => list
            .parts
            .iter()
            .map(|p| sibling_blob(path, &p.digest))
            .collect(),
        None => vec![path.to_owned()],
    })
}

/// Cuts a sequence of records into parts at content-defined boundaries: a part ends after a record
/// whose digest falls on a boundary (about one in [`PartCutter::AVERAGE`]), once it holds at least
/// [`PartCutter::MIN`] records, and always at [`PartCutter::MAX`]. The same records give the same
/// parts wherever they sit in the dump, so tweets appended to a dump (or inserted in it) change the
/// parts they fall in and at most the one after, not the others.
#[derive(Debug, Default)]
pub struct PartCutter {
    len: usize,
}

impl PartCutter {
    /// Records a part holds before a boundary may end it.
    pub const MIN: usize = 128;
    /// One record in this many (past the minimum) ends a part: about a thousand tweets a part, so a
    /// part's work (a few seconds of encoding) is small next to a run, and a million tweets make
    /// about a thousand parts.
    pub const AVERAGE: u64 = 1024;
    /// The most records in one part: bounds the memory a stage needs for a part.
    pub const MAX: usize = 4096;

    /// Counts one more record (`digest`: its content's); true if the part ends after it.
    pub fn ends_after(&mut self, digest: &Digest) -> bool {
        self.len += 1;
        let bytes = digest.as_bytes();
        let value = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
        let end = self.len >= Self::MAX || (self.len >= Self::MIN && value % Self::AVERAGE == 0);
        if end {
            self.len = 0;
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_reads_back_and_parquet_is_not_one() {
        let list = PartList {
            parts: vec![
                OutputEntry {
                    digest: Digest::of_bytes(b"a"),
                    bytes: 10,
                },
                OutputEntry {
                    digest: Digest::of_bytes(b"b"),
                    bytes: 20,
                },
            ],
        };
        let path = Path::new("x");
        assert_eq!(PartList::decode(path, &list.encode()).unwrap(), Some(list));
        assert_eq!(PartList::decode(path, b"PAR1....").unwrap(), None);
        assert!(PartList::decode(path, b"UMGF-PARTS 1\nzz 1\n").is_err());
    }

    #[test]
    fn cuts_depend_on_content_not_position() {
        let digests: Vec<Digest> = (0..20_000u32)
            .map(|i| Digest::of_bytes(&i.to_le_bytes()))
            .collect();
        let cuts = |records: &[Digest]| {
            let mut cutter = PartCutter::default();
            let mut ends = Vec::new();
            for (i, d) in records.iter().enumerate() {
                if cutter.ends_after(d) {
                    ends.push(records[i]);
                }
            }
            ends
        };
        let whole = cuts(&digests);
        assert!(whole.len() > 20_000 / PartCutter::MAX, "{}", whole.len());
        assert!(whole.len() < 20_000 / PartCutter::MIN, "{}", whole.len());
        // Records inserted near the start move only the boundaries up to the next one or two.
        let mut grown = digests[..100].to_vec();
        grown.extend((0..50u32).map(|i| Digest::of_bytes(&(1_000_000 + i).to_le_bytes())));
        grown.extend_from_slice(&digests[100..]);
        let after = cuts(&grown);
        let shared = whole.iter().filter(|d| after.contains(d)).count();
        assert!(shared + 2 >= whole.len(), "{shared} of {}", whole.len());
    }
}
