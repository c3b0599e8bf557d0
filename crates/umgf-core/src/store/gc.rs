//! Garbage collection: the store only grows as parameters, inputs and code versions change; `gc`
//! removes what nothing current refers to.
//!
//! What is kept:
//! - the runs that the links in the artifacts folder point into (`artifacts/<dataset>/...`);
//! - the last `keep` runs of each stage (by finish time), shard runs counting as their own stage;
//! - every run whose outputs a kept run read, transitively (a kept model keeps its features);
//! - the runs of the parts that a kept run's outputs list (see [`super::parts`]): a part's run is
//!   kept for that alone, not among the last `keep` of its stage;
//! - every blob such a run published or read, and every linked blob;
//! - memo entries that a kept run read or wrote (its manifest's `memo_refs`). A kept run recorded
//!   before manifests listed its memo keys keeps, in each namespace it used, every packed entry and
//!   the loose entries modified since it started (stores before packs refreshed an entry's time on
//!   each hit). For runs recorded before manifests listed their memo namespaces,
//!   [`GcConfig::legacy_memo`] says which their stage uses; a stage it does not know counts as using
//!   every namespace;
//! - checkpoints of unfinished runs written in the last `checkpoint_days` days.
//!
//! Everything else is removed: manifests, blobs, memo entries, checkpoints, lock files. Each memo
//! namespace whose entries are not all kept in one segment is compacted: the kept entries (loose ones
//! of an old store included) are copied into one new segment, sealed before the old files are
//! removed, so a kill at any moment leaves every kept entry readable. The store's
//! lock makes it safe: every run holds it shared while it works, and `gc` takes it exclusively
//! without waiting, so it refuses to start while a run is in progress and no run starts while it
//! removes.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::memo::{loose, pack, segment_names};
use super::{Manifest, Store, fsutil};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};

/// Slack under a kept run's start time before a memo entry counts as unused: file times written by
/// another host of a shared file system may lag its clock.
const CLOCK_SLACK: Duration = Duration::from_secs(3600);

/// What to keep (see the module documentation).
#[derive(Clone, Debug)]
pub struct GcConfig {
    /// Runs kept per stage, besides linked ones and their inputs.
    pub keep: usize,
    /// Checkpoints of unfinished runs younger than this many days are kept.
    pub checkpoint_days: u64,
    /// Only report what would be removed.
    pub dry_run: bool,
    /// The memo namespaces of each stage, for manifests that do not list theirs (shard runs,
    /// `<stage>-shard`, are looked up under their stage).
    pub legacy_memo: BTreeMap<String, Vec<String>>,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            keep: 3,
            checkpoint_days: 7,
            dry_run: false,
            legacy_memo: BTreeMap::new(),
        }
    }
}

/// Counts and bytes of what was kept and removed (or would be, in a dry run).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GcReport {
    pub runs_kept: usize,
    pub runs_removed: usize,
    pub blobs_kept: usize,
    pub blobs_removed: usize,
    pub memo_entries_kept: usize,
    pub memo_entries_removed: usize,
    /// Loose entries (one file each, as stores before packs kept them) moved into packs.
    pub memo_entries_packed: usize,
    /// Memo segments before and after compaction.
    pub memo_segments_before: usize,
    pub memo_segments_after: usize,
    pub checkpoints_removed: usize,
    pub bytes_before: u64,
    pub bytes_removed: u64,
}

/// Removes what no link under `links_root` and no kept run refers to (see the module docs).
/// `links_root` is the artifacts folder; the store below it is skipped while looking for links.
pub fn collect(store: &Store, links_root: &Path, config: &GcConfig) -> Result<GcReport> {
    let _exclusive = store.try_lock_exclusive()?;
    // What this process wrote outside a run becomes a segment like any other.
    store.seal_memo()?;
    let mut report = GcReport::default();

    let manifests = read_manifests(store)?;
    let linked = linked_blobs(store, links_root)?;
    let part_lists = part_lists(store, &manifests)?;
    let kept = kept_runs(&manifests, &linked, &part_lists, config.keep);

    let mut live_blobs: HashSet<Digest> = linked;
    for manifest in manifests.values().filter(|m| kept.contains(&m.key)) {
        live_blobs.extend(manifest.outputs.values().map(|o| o.digest));
        let parts = manifest
            .outputs
            .values()
            .filter_map(|o| part_lists.get(&o.digest));
        live_blobs.extend(parts.flatten().copied());
        live_blobs.extend(manifest.spec.inputs.values().copied());
        live_blobs.extend(manifest.memo_refs.iter().flat_map(|r| r.values().copied()));
    }

    // Manifests first: a run whose manifest is gone is simply redone, whereas a manifest whose
    // blobs are gone would fail its verification.
    for (path, manifest) in &manifests {
        if kept.contains(&manifest.key) {
            report.runs_kept += 1;
        } else {
            report.runs_removed += 1;
            report.bytes_removed += remove(path, config.dry_run)?;
        }
    }
    for path in fsutil::files_under(&store.root.join("blobs"))? {
        let bytes = size(&path)?;
        report.bytes_before += bytes;
        let digest = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<Digest>().ok());
        if digest.is_some_and(|d| live_blobs.contains(&d)) {
            report.blobs_kept += 1;
        } else {
            report.blobs_removed += 1;
            report.bytes_removed += remove(&path, config.dry_run)?;
        }
    }

    // Identities of removed blobs (see `Store::check_blob`) go with them.
    let verified = store.root.join("verified");
    if verified.is_dir() && !config.dry_run {
        for stamp in fsutil::files_under(&verified)? {
            let digest = stamp.file_name().and_then(|n| n.to_str()).map(str::parse);
            if !matches!(digest, Some(Ok(d)) if store.blob_path(&d).exists()) {
                remove(&stamp, false)?;
            }
        }
    }

    let retention = memo_retention(
        store,
        manifests.values().filter(|m| kept.contains(&m.key)),
        &config.legacy_memo,
    );
    let memo_root = store.root.join("memo");
    for entry in fs::read_dir(&memo_root).at(&memo_root)? {
        let dir = entry.at(&memo_root)?.path();
        if !dir.is_dir() {
            continue;
        }
        let namespace = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let keep = retention.get(namespace).or(retention.get(ANY_NAMESPACE));
        compact_namespace(store, &dir, keep, config.dry_run, &mut report)?;
    }
    for namespace in store.memo_namespaces().values() {
        namespace.forget_segments();
    }

    let checkpoints = store.root.join("checkpoints");
    if checkpoints.is_dir() {
        let max_age = Duration::from_secs(config.checkpoint_days * 24 * 3600);
        let finished: HashSet<String> = manifests.values().map(|m| m.key.hex()).collect();
        for entry in fs::read_dir(&checkpoints).at(&checkpoints)? {
            let dir = entry.at(&checkpoints)?.path();
            let key = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let files = fsutil::files_under(&dir)?;
            let newest = files
                .iter()
                .filter_map(|f| fs::metadata(f).and_then(|m| m.modified()).ok())
                .max();
            let stale = newest.is_none_or(|t| t.elapsed().unwrap_or_default() > max_age);
            let bytes: u64 = files.iter().map(|f| size(f)).sum::<Result<u64>>()?;
            report.bytes_before += bytes;
            if finished.contains(key) || stale {
                report.checkpoints_removed += 1;
                report.bytes_removed += bytes;
                if !config.dry_run {
                    fs::remove_dir_all(&dir).at(&dir)?;
                }
            }
        }
    }

    // Per-key lock files: nobody holds one while the store is locked exclusively.
    if !config.dry_run {
        let locks = store.root.join("locks");
        for entry in fs::read_dir(&locks).at(&locks)? {
            let path = entry.at(&locks)?.path();
            if path.file_name().and_then(|n| n.to_str()) != Some(super::STORE_LOCK) {
                remove(&path, false)?;
            }
        }
    }
    Ok(report)
}

/// Every readable manifest, by its path. An unreadable one is left alone (`status --verify`
/// reports it).
fn read_manifests(store: &Store) -> Result<BTreeMap<PathBuf, Manifest>> {
    Ok(store.manifests()?.into_iter().collect())
}

/// The parts each part list among the runs' outputs names (see [`super::parts`]).
fn part_lists(
    store: &Store,
    manifests: &BTreeMap<PathBuf, Manifest>,
) -> Result<HashMap<Digest, Vec<Digest>>> {
    let mut lists = HashMap::new();
    for output in manifests.values().flat_map(|m| m.outputs.values()) {
        if lists.contains_key(&output.digest) {
            continue;
        }
        // A missing or unreadable blob is no list: its run fails verification and is redone.
        if let Ok(Some(parts)) = store.parts(&output.digest) {
            lists.insert(output.digest, parts.iter().map(|p| p.digest).collect());
        }
    }
    Ok(lists)
}

/// The blobs that symbolic links below `root` (the store's own folder excluded) point at.
fn linked_blobs(store: &Store, root: &Path) -> Result<HashSet<Digest>> {
    let blobs = store
        .root
        .join("blobs")
        .canonicalize()
        .at(store.root.join("blobs"))?;
    let store_dir = store.root.canonicalize().at(&store.root)?;
    let mut linked = HashSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.at(&dir)?.path();
            let kind = fs::symlink_metadata(&path).at(&path)?.file_type();
            if kind.is_dir() {
                if path.canonicalize().ok().as_deref() != Some(store_dir.as_path()) {
                    stack.push(path);
                }
            } else if kind.is_symlink() {
                let Ok(target) = path.canonicalize() else {
                    continue; // a dangling link refers to nothing
                };
                if target.starts_with(&blobs) {
                    let digest = target.file_name().and_then(|n| n.to_str());
                    if let Some(Ok(d)) = digest.map(str::parse::<Digest>) {
                        linked.insert(d);
                    }
                }
            }
        }
    }
    Ok(linked)
}

/// The keys of the runs to keep: the last `keep` of each stage, those with a linked output, and,
/// transitively, the runs that produced what a kept run read, and the runs of the parts its
/// outputs list (a part's run is kept only that way, never for its age).
fn kept_runs(
    manifests: &BTreeMap<PathBuf, Manifest>,
    linked: &HashSet<Digest>,
    part_lists: &HashMap<Digest, Vec<Digest>>,
    keep: usize,
) -> HashSet<Digest> {
    let mut by_stage: BTreeMap<&str, Vec<&Manifest>> = BTreeMap::new();
    for m in manifests.values() {
        if !m.spec.stage.ends_with(super::parts::PART_STAGE_SUFFIX) {
            by_stage.entry(m.spec.stage.as_str()).or_default().push(m);
        }
    }
    let mut kept = HashSet::new();
    for runs in by_stage.values_mut() {
        runs.sort_by_key(|m| std::cmp::Reverse(m.finished_at));
        kept.extend(runs.iter().take(keep).map(|m| m.key));
    }
    for m in manifests.values() {
        if m.outputs.values().any(|o| linked.contains(&o.digest)) {
            kept.insert(m.key);
        }
    }
    // Producers of each blob, then the closure over inputs.
    let mut producers: BTreeMap<Digest, Vec<Digest>> = BTreeMap::new();
    for m in manifests.values() {
        for o in m.outputs.values() {
            producers.entry(o.digest).or_default().push(m.key);
        }
    }
    let by_key: BTreeMap<Digest, &Manifest> = manifests.values().map(|m| (m.key, m)).collect();
    let mut todo: Vec<Digest> = kept.iter().copied().collect();
    while let Some(key) = todo.pop() {
        let Some(m) = by_key.get(&key) else { continue };
        let parts = m.outputs.values().filter_map(|o| part_lists.get(&o.digest));
        for input in m.spec.inputs.values().chain(parts.flatten()) {
            for producer in producers.get(input).into_iter().flatten() {
                if kept.insert(*producer) {
                    todo.push(*producer);
                }
            }
        }
    }
    kept
}

/// The namespace key standing for runs that did not record theirs.
const ANY_NAMESPACE: &str = "*";

/// What gc keeps of one memo namespace.
#[derive(Default)]
struct Retention {
    /// The keys kept runs read or wrote.
    keys: HashSet<Digest>,
    /// The earliest start (less [`CLOCK_SLACK`]) of a kept run that used the namespace without
    /// recording its keys: then every packed entry, and loose entries modified since, are kept.
    legacy_since: Option<SystemTime>,
}

impl Retention {
    fn keeps_packed(&self, key: &Digest) -> bool {
        self.legacy_since.is_some() || self.keys.contains(key)
    }

    fn keeps_loose(&self, key: &Digest, path: &Path) -> Result<bool> {
        if self.keys.contains(key) {
            return Ok(true);
        }
        let Some(since) = self.legacy_since else {
            return Ok(false);
        };
        Ok(fs::metadata(path).at(path)?.modified().at(path)? >= since)
    }
}

/// Per memo namespace, what the kept runs use of it.
fn memo_retention<'a>(
    store: &Store,
    kept: impl Iterator<Item = &'a Manifest>,
    legacy: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, Retention> {
    let mut retention: BTreeMap<String, Retention> = BTreeMap::new();
    for m in kept {
        let start = UNIX_EPOCH + Duration::from_secs(m.finished_at)
            - Duration::from_secs_f64(m.seconds.max(0.0))
            - CLOCK_SLACK;
        let stage = m.spec.stage.strip_suffix("-shard").unwrap_or(&m.spec.stage);
        let namespaces: Vec<&str> = match m.memo.as_ref().or(legacy.get(stage)) {
            Some(list) => list.iter().map(String::as_str).collect(),
            None => vec![ANY_NAMESPACE],
        };
        for ns in namespaces {
            let entry = retention.entry(ns.to_owned()).or_default();
            let listed = m.memo_refs.as_ref().and_then(|r| r.get(ns));
            match listed.and_then(|blob| store.memo_refs(blob)) {
                Some(keys) => entry.keys.extend(keys),
                None => {
                    let since = entry.legacy_since.get_or_insert(start);
                    *since = (*since).min(start);
                }
            }
        }
    }
    // A run that did not say which namespaces it used may have used any.
    if let Some(any) = retention.get(ANY_NAMESPACE).and_then(|r| r.legacy_since) {
        for r in retention.values_mut() {
            let since = r.legacy_since.get_or_insert(any);
            *since = (*since).min(any);
        }
    }
    retention
}

/// Removes the entries of the namespace folder `dir` that `keep` does not keep, and leaves the kept
/// ones in one segment (moving loose entries of an old store into it). Nothing changes in a dry run
/// or when there is nothing to remove, merge or move.
fn compact_namespace(
    store: &Store,
    dir: &Path,
    keep: Option<&Retention>,
    dry_run: bool,
    report: &mut GcReport,
) -> Result<()> {
    let no_retention = Retention::default();
    let keep = keep.unwrap_or(&no_retention);
    let (mut indexed, unindexed) = segment_names(dir)?;
    for name in unindexed {
        // Packs of stopped runs are indexed first (a pack still locked belongs to a live writer
        // outside any run, and is left alone).
        if !dry_run && pack::recover(dir, &name, &store.temp, &store.tmp_dir())? {
            indexed.push(name);
        }
    }
    let segments: Vec<pack::Segment> = indexed
        .iter()
        .filter_map(|name| pack::Segment::open(dir, name).transpose())
        .collect::<Result<_>>()?;
    let loose_entries = loose::entries(dir)?;
    report.memo_segments_before += segments.len();

    // Newest segment first: of a key stored twice, the newest copy is the one kept.
    let mut kept: Vec<(usize, Digest, pack::Location)> = Vec::new();
    let mut seen = HashSet::new();
    let mut removed = 0;
    for (i, segment) in segments.iter().enumerate().rev() {
        report.bytes_before += segment_bytes(dir, &segment.name)?;
        for &(key, at) in segment.entries() {
            if keep.keeps_packed(&key) && seen.insert(key) {
                kept.push((i, key, at));
            } else {
                removed += 1;
                report.bytes_removed += u64::from(at.len);
            }
        }
    }
    let mut packed = Vec::new();
    for (path, key) in &loose_entries {
        let bytes = size(path)?;
        report.bytes_before += bytes;
        if keep.keeps_loose(key, path)? && seen.insert(*key) {
            packed.push((path, *key));
        } else {
            removed += 1;
            report.bytes_removed += bytes;
        }
    }
    report.memo_entries_kept += kept.len() + packed.len();
    report.memo_entries_removed += removed;
    report.memo_entries_packed += packed.len();

    let rewrite = removed > 0 || segments.len() > 1 || !loose_entries.is_empty();
    if dry_run || !rewrite {
        report.memo_segments_after += segments.len();
        return Ok(());
    }
    if !kept.is_empty() || !packed.is_empty() {
        let mut writer = pack::SegmentWriter::create(dir, &store.temp, &store.tmp_dir())?;
        for (i, key, at) in kept {
            let record = segments[i].record(at)?;
            match record.filter(|r| pack::decode_record(r, &key).is_some()) {
                Some(record) => writer.append_record(&key, &record)?,
                None => {
                    report.memo_entries_kept -= 1;
                    report.memo_entries_removed += 1;
                }
            }
        }
        for (path, key) in packed {
            match loose::read_checked(path)? {
                Some(payload) => writer.append(&key, &payload)?,
                None => {
                    report.memo_entries_kept -= 1;
                    report.memo_entries_removed += 1;
                }
            }
        }
        writer.seal(&store.temp, &store.tmp_dir())?;
        report.memo_segments_after += 1;
    }
    // The new segment is sealed: the old files go, indexes before packs (an index without its pack
    // would be a problem; a pack without its index is indexed again, harmlessly, by the next run).
    for segment in &segments {
        let _ = fs::remove_file(pack::stamp_path(dir, &segment.name));
        remove(&pack::index_path(dir, &segment.name), false)?;
        remove(&pack::pack_path(dir, &segment.name), false)?;
    }
    for (path, _) in &loose_entries {
        remove(path, false)?;
        if let Some(fan_out) = path.parent() {
            let _ = fs::remove_dir(fan_out); // once empty
        }
    }
    Ok(())
}

/// The bytes of a segment's pack and index.
fn segment_bytes(dir: &Path, name: &str) -> Result<u64> {
    Ok(size(&pack::pack_path(dir, name))? + size(&pack::index_path(dir, name))?)
}

fn size(path: &Path) -> Result<u64> {
    Ok(fs::metadata(path).at(path)?.len())
}

/// Removes `path` unless `dry_run`; returns its size.
fn remove(path: &Path, dry_run: bool) -> Result<u64> {
    let bytes = size(path)?;
    if !dry_run {
        fs::remove_file(path).at(path)?;
    }
    Ok(bytes)
}

impl Store {
    /// The store's lock, exclusively, without waiting: an error if a run is in progress.
    fn try_lock_exclusive(&self) -> Result<fs::File> {
        let path = self.root.join("locks").join(super::STORE_LOCK);
        fsutil::try_lock(&path)?.ok_or_else(|| {
            Error::Store(format!(
                "{}: a stage run is in progress on this store; run gc again when it has ended",
                self.root.display()
            ))
        })
    }
}
