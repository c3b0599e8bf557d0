//! Per-record memoisation: the expensive stages (ground, features) keep one entry per tweet or image,
//! keyed by the record's own content digest plus the model's digest, so a new dump that shares most
//! tweets with an old one computes only the new ones.
//!
//! Entries live in packed segments, many entries to a file ([`pack`]): each process appends to a
//! segment of its own and seals it (writes its sorted index) when its run ends, so a namespace holds
//! a few files per run, not one per record, and concurrent writers never share a file. A hit reads
//! its record and writes nothing. Payloads are zstd-compressed where that makes them smaller.
//! Every record carries a checksum: a torn or corrupted entry is never returned, only recomputed.
//! Entries of stores written before packs (one file each, [`loose`]) are still read; `gc` packs them.
//!
//! Which entries a run read or wrote is recorded with the run (its manifest's `memo_refs`), so
//! garbage collection keeps exactly the entries that kept runs use ([`super::gc`]).
pub(crate) mod loose;
pub(crate) mod pack;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use self::pack::{Lookup, Segment, SegmentWriter};
use super::Store;
use crate::digest::Digest;
use crate::error::{IoContext, Result};

/// A handle on one namespace of the store's memo (`Store::memo`).
pub struct Memo<'a> {
    store: &'a Store,
    namespace: Arc<Namespace>,
}

/// One namespace, as this process sees it: the sealed segments it has loaded (oldest first), the
/// segment it is writing, and whether loose entries of an old store are there to fall back on.
pub(crate) struct Namespace {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    sealed: Vec<Segment>,
    writer: Option<SegmentWriter>,
    loose: bool,
}

impl Namespace {
    pub(crate) fn open(root: &Path, name: &str) -> Result<Self> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            crate::bail!(Store, "memo namespace {name:?} must be [A-Za-z0-9_-]+");
        }
        let dir = root.join("memo").join(name);
        fs::create_dir_all(&dir).at(&dir)?;
        Ok(Self {
            name: name.to_owned(),
            dir,
            state: Mutex::default(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere leaves the state usable: every change to it is a whole push or take.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Loads the segments sealed since the last look (by this process or others), indexing the packs
    /// of writers that died. One directory listing: cheap enough for every `Store::memo` call.
    fn refresh(&self, store: &Store) -> Result<()> {
        let mut state = self.state();
        let known: HashSet<String> = state.sealed.iter().map(|s| s.name.clone()).collect();
        let writing = state.writer.as_ref().map(|w| w.name.clone());
        let (indexed, unindexed) = segment_names(&self.dir)?;
        let mut fresh = Vec::new();
        for name in unindexed {
            if Some(&name) != writing.as_ref()
                && pack::recover(&self.dir, &name, &store.temp, &store.tmp_dir())?
            {
                fresh.push(name);
            }
        }
        fresh.extend(indexed.into_iter().filter(|n| !known.contains(n)));
        fresh.sort();
        for name in fresh {
            if let Some(segment) = Segment::open(&self.dir, &name)? {
                state.sealed.push(segment);
            }
        }
        state.sealed.sort_by(|a, b| a.name.cmp(&b.name));
        state.loose = loose::present(&self.dir)?;
        Ok(())
    }

    /// Seals the segment this process is writing, if any: its entries become visible to others.
    pub(crate) fn seal(&self, store: &Store) -> Result<()> {
        let mut state = self.state();
        let Some(writer) = state.writer.take() else {
            return Ok(());
        };
        let name = writer.name.clone();
        let had_entries = writer.len() > 0;
        writer.seal(&store.temp, &store.tmp_dir())?;
        if had_entries && let Some(segment) = Segment::open(&self.dir, &name)? {
            state.sealed.push(segment);
        }
        Ok(())
    }

    /// Drops what this process holds of the namespace (gc rewrote it).
    pub(crate) fn forget_segments(&self) {
        self.state().sealed.clear();
    }
}

/// The names of `dir`'s segments with an index, and of packs without one.
pub(crate) fn segment_names(dir: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let (mut indexed, mut packs) = (HashSet::new(), Vec::new());
    for entry in fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        let (Some(stem), Some(ext)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        match ext {
            pack::INDEX_EXT => {
                indexed.insert(stem.to_owned());
            }
            pack::PACK_EXT => packs.push(stem.to_owned()),
            _ => {}
        }
    }
    let unindexed = packs.into_iter().filter(|p| !indexed.contains(p)).collect();
    let mut indexed: Vec<String> = indexed.into_iter().collect();
    indexed.sort();
    Ok((indexed, unindexed))
}

impl<'a> Memo<'a> {
    pub(super) fn open(store: &'a Store, namespace: Arc<Namespace>) -> Result<Self> {
        namespace.refresh(store)?;
        Ok(Self { store, namespace })
    }

    /// The stored payload for `key`, or `None` if absent or corrupt (a corrupt entry is dropped from
    /// its index, so the recomputed one is what the next lookup finds).
    pub fn get(&self, key: &Digest) -> Result<Option<Vec<u8>>> {
        let found = self.lookup(key)?;
        if found.is_some() {
            self.store.memo_record_use(&self.namespace.name, key);
        }
        Ok(found)
    }

    fn lookup(&self, key: &Digest) -> Result<Option<Vec<u8>>> {
        let mut state = self.namespace.state();
        if let Some(writer) = &state.writer
            && let Some(payload) = writer.get(key)?
        {
            return Ok(Some(payload));
        }
        // Newest first: a key recomputed after its record was found corrupt is in a newer segment.
        for i in (0..state.sealed.len()).rev() {
            match state.sealed[i].get(key)? {
                Lookup::Found(payload) => return Ok(Some(payload)),
                Lookup::Absent => {}
                Lookup::Corrupt => {
                    let segment = &mut state.sealed[i];
                    tracing::warn!(
                        "memo {}: entry {} of segment {} is corrupt; it will be recomputed",
                        self.namespace.name,
                        key.short(),
                        segment.name
                    );
                    segment.forget(key, &self.store.temp, &self.store.tmp_dir())?;
                }
            }
        }
        if state.loose {
            return loose::get(&self.namespace.dir, key);
        }
        Ok(None)
    }

    /// Whether an entry for `key` is stored (its integrity is checked when it is read).
    pub fn contains(&self, key: &Digest) -> bool {
        let state = self.namespace.state();
        state.writer.as_ref().is_some_and(|w| w.contains(key))
            || state.sealed.iter().any(|s| s.find(key).is_some())
            || (state.loose && loose::entry_path(&self.namespace.dir, key).exists())
    }

    /// Stores `payload` under `key` in this process's segment. It is readable at once here, and by
    /// other processes once the segment is sealed (at the end of the run, or [`Store::seal_memo`]).
    pub fn put(&self, key: &Digest, payload: &[u8]) -> Result<()> {
        let mut state = self.namespace.state();
        let writer = match &mut state.writer {
            Some(writer) => writer,
            slot => slot.insert(SegmentWriter::create(
                &self.namespace.dir,
                &self.store.temp,
                &self.store.tmp_dir(),
            )?),
        };
        writer.append(key, payload)?;
        drop(state);
        self.store.memo_record_use(&self.namespace.name, key);
        Ok(())
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

/// What a namespace holds, checked: for [`Store::verify`].
#[derive(Debug, Default)]
pub(crate) struct NamespaceCheck {
    pub(crate) entries: usize,
    pub(crate) segments: usize,
    pub(crate) problems: Vec<String>,
}

/// Checks every entry of the namespace folder `dir` without changing anything: each index against its
/// checksum, each indexed record against its key and checksum (unless its segment is unchanged since
/// its writer sealed it: see [`pack::stamped`]), every loose entry against its own.
/// Packs still being written (or of dead writers, indexed by the next run) are scanned, not counted
/// as problems.
pub(crate) fn check(dir: &Path) -> Result<NamespaceCheck> {
    let mut report = NamespaceCheck::default();
    let (indexed, unindexed) = segment_names(dir)?;
    for name in &indexed {
        report.segments += 1;
        let Some(segment) = Segment::open(dir, name)? else {
            report.problems.push(format!(
                "{}: memo index unreadable or its pack missing",
                pack::index_path(dir, name).display()
            ));
            continue;
        };
        if pack::stamped(dir, name) {
            report.entries += segment.entries().len();
            continue;
        }
        for &(key, at) in segment.entries() {
            report.entries += 1;
            let intact = segment
                .record(at)?
                .is_some_and(|r| pack::decode_record(&r, &key).is_some());
            if !intact {
                report.problems.push(format!(
                    "{}: memo entry {} fails its checksum",
                    pack::pack_path(dir, name).display(),
                    key.short()
                ));
            }
        }
    }
    for name in &unindexed {
        let (entries, _) = pack::scan(&pack::pack_path(dir, name))?;
        report.entries += entries.len();
    }
    for (path, _) in loose::entries(dir)? {
        report.entries += 1;
        if loose::read_checked(&path)?.is_none() {
            report
                .problems
                .push(format!("{}: memo entry fails its checksum", path.display()));
        }
    }
    Ok(report)
}

/// The keys of a run's memo use, as stored in its refs blob: sorted, 32 bytes each.
pub(crate) fn encode_refs(keys: &HashSet<Digest>) -> Vec<u8> {
    let mut sorted: Vec<&Digest> = keys.iter().collect();
    sorted.sort();
    sorted
        .iter()
        .flat_map(|k| k.as_bytes().iter().copied())
        .collect()
}

pub(crate) fn decode_refs(bytes: &[u8]) -> Option<Vec<Digest>> {
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(32)
            .map(|c| {
                let mut key = [0u8; 32];
                key.copy_from_slice(c);
                Digest::from_bytes(key)
            })
            .collect(),
    )
}

/// Per namespace, the keys a run used (read or wrote).
pub(crate) type MemoUse = BTreeMap<String, HashSet<Digest>>;
