//! Per-record memoisation: the expensive stages (ground, features) keep one entry per tweet or image,
//! keyed by the record's own content digest plus the model's digest, so a new dump that shares most
//! tweets with an old one computes only the new ones.
//!
//! An entry is a file `memo/<namespace>/ab/<key>` holding the payload followed by the 32-byte BLAKE3
//! digest of the payload: a torn or corrupted entry fails the check and is recomputed, never trusted.
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::Store;
use super::fsutil::{self, Durability};
use crate::digest::Digest;
use crate::error::{IoContext, Result};

const CHECKSUM_LEN: usize = 32;

pub struct Memo<'a> {
    store: &'a Store,
    dir: PathBuf,
}

impl<'a> Memo<'a> {
    pub(super) fn open(store: &'a Store, namespace: &str) -> Result<Self> {
        let valid = !namespace.is_empty()
            && namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            crate::bail!(Store, "memo namespace {namespace:?} must be [A-Za-z0-9_-]+");
        }
        let dir = store.root.join("memo").join(namespace);
        fs::create_dir_all(&dir).at(&dir)?;
        Ok(Self { store, dir })
    }

    fn entry_path(&self, key: &Digest) -> PathBuf {
        let hex = key.hex();
        self.dir.join(&hex[..2]).join(hex)
    }

    /// The stored payload for `key`, or `None` if absent or corrupt (a corrupt entry is removed).
    pub fn get(&self, key: &Digest) -> Result<Option<Vec<u8>>> {
        let path = self.entry_path(key);
        let mut bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).at(&path),
        };
        match split_checked(&bytes) {
            Some(len) => {
                bytes.truncate(len);
                // In use: garbage collection keeps entries used since its kept runs started.
                fsutil::touch(&path);
                Ok(Some(bytes))
            }
            None => {
                tracing::warn!(
                    "{}: corrupt memo entry removed; it will be recomputed",
                    path.display()
                );
                fs::remove_file(&path).at(&path)?;
                Ok(None)
            }
        }
    }

    pub fn contains(&self, key: &Digest) -> bool {
        self.entry_path(key).exists()
    }

    /// Stores `payload` under `key`, atomically.
    pub fn put(&self, key: &Digest, payload: &[u8]) -> Result<()> {
        let mut bytes = Vec::with_capacity(payload.len() + CHECKSUM_LEN);
        bytes.extend_from_slice(payload);
        bytes.extend_from_slice(blake3::hash(payload).as_bytes());
        let path = self.entry_path(key);
        let tmp = self.store.tmp_dir();
        fsutil::write_atomic(
            &self.store.temp,
            &tmp,
            &path,
            &bytes,
            Durability::Checksummed,
        )
    }
}

/// What [`Memo::get_or_compute`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoStats {
    /// Distinct keys found in the memo.
    pub reused: usize,
    /// Distinct keys computed (a key repeated within one call counts once).
    pub computed: usize,
}

impl MemoStats {
    /// What a shard run records: how many records it owns, and what it did with them.
    pub fn shard_counts(&self, records: usize) -> serde_json::Value {
        serde_json::json!({"records": records, "memo_reused": self.reused, "memo_computed": self.computed})
    }

    /// Logs "<done> <computed> <what> (<reused> were memoised)" when anything was computed.
    pub fn log(&self, done: &str, what: &str) {
        if self.computed > 0 {
            tracing::info!(
                "{done} {} {what} ({} were memoised)",
                self.computed,
                self.reused
            );
        }
    }
}

impl Memo<'_> {
    /// The payloads for `keys`, in order: stored ones are read, the others computed by `compute` (given
    /// indices of missing keys, at most `chunk` at a time, it returns their payloads in that order, so a
    /// model can batch them) and stored chunk by chunk, so a run killed midway keeps what it finished.
    /// A key that occurs several times is computed once. This is the whole of per-record memoisation
    /// for a stage.
    pub fn get_or_compute<F>(
        &self,
        keys: &[Digest],
        chunk: usize,
        mut compute: F,
    ) -> Result<(Vec<Vec<u8>>, MemoStats)>
    where
        F: FnMut(&[usize]) -> Result<Vec<Vec<u8>>>,
    {
        let mut found = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        // A key repeated within `keys` is looked up and computed once, at its first position.
        let mut first_at: HashMap<Digest, usize> = HashMap::new();
        let mut repeats = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            if let Some(&first) = first_at.get(key) {
                repeats.push((i, first));
                found.push(None);
                continue;
            }
            first_at.insert(*key, i);
            let payload = self.get(key)?;
            if payload.is_none() {
                missing.push(i);
            }
            found.push(payload);
        }
        for part in missing.chunks(chunk.max(1)) {
            let computed = compute(part)?;
            if computed.len() != part.len() {
                crate::bail!(
                    Store,
                    "memo: {} payloads computed for {} missing records",
                    computed.len(),
                    part.len()
                );
            }
            for (&i, payload) in part.iter().zip(computed) {
                self.put(&keys[i], &payload)?;
                found[i] = Some(payload);
            }
        }
        let repeats_len = repeats.len();
        for (i, first) in repeats {
            found[i] = found[first].clone();
        }
        let stats = MemoStats {
            reused: keys.len() - missing.len() - repeats_len,
            computed: missing.len(),
        };
        Ok((found.into_iter().flatten().collect(), stats))
    }
}

/// Length of the payload if the trailing checksum matches it.
fn split_checked(bytes: &[u8]) -> Option<usize> {
    let len = bytes.len().checked_sub(CHECKSUM_LEN)?;
    let (payload, checksum) = bytes.split_at(len);
    (blake3::hash(payload).as_bytes() == checksum).then_some(len)
}

pub(super) fn entry_is_valid(path: &Path) -> Result<bool> {
    Ok(split_checked(&fs::read(path).at(path)?).is_some())
}
