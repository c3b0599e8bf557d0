//! The content-addressed store (DESIGN.md section 3).
//!
//! Layout under the store root:
//! - `blobs/ab/<digest>`: immutable artifact files, named by the BLAKE3 digest of their content.
//! - `runs/<key>.json`: the manifest of a finished stage run, named by the run's key (stage, code version,
//!   canonical parameters and input digests). A manifest exists only once all its blobs are published.
//! - `memo/<namespace>/<segment>.{pack,idx}`: per-record results (one tweet, one image), packed many
//!   to a file, see [`Memo`]; shards of a stage fill them from several processes at once, see
//!   [`Shard`]. (`memo/<namespace>/ab/<key>`: one file per entry, as stores before packs kept them.)
//! - `locks/<key>.lock`: advisory locks, so two processes never compute the same run at once;
//!   `locks/store.lock`, held shared by every run and exclusively by [`gc::collect`].
//! - `checkpoints/<key>/`: what an unfinished long run needs to continue, see [`Checkpoints`].
//! - `verified/ab/<digest>`: the file identity of a blob when its content was last hashed and found
//!   right, so an unchanged blob is not hashed again on every lookup.
//! - `tmp/`: files being written; a run killed mid-write leaves only these, removed at the next open.
//!
//! Every write is temp file + fsync + rename + fsync of the directory, so a run killed at any moment
//! leaves the store valid: either the old state or the new one, never a half-written object.
//! Early cutoff needs no extra machinery: downstream keys are computed from output *content* digests,
//! so a re-run that reproduces its outputs byte for byte leaves every downstream key unchanged.
mod fsutil;
pub mod gc;
mod memo;
pub mod parts;
mod shard;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};

pub use fsutil::{Durability, TempNamer, write_atomic};
pub use memo::loose::write_legacy_entry;
pub use memo::{Memo, MemoStats};
use memo::{MemoUse, Namespace};
use parts::PartList;
pub use shard::Shard;

/// The store-wide lock file under `locks/`: shared by runs, exclusive for garbage collection.
const STORE_LOCK: &str = "store.lock";

/// What determines a stage run's result. Its canonical JSON digest is the run's key.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunSpec {
    pub stage: String,
    /// The stage's code version: bumped by hand whenever the stage's output for the same input changes.
    pub version: u32,
    /// Canonical parameters (object keys are sorted when digested).
    pub params: serde_json::Value,
    /// Content digests of everything the run reads, by role.
    pub inputs: BTreeMap<String, Digest>,
}

impl RunSpec {
    pub fn key(&self) -> Digest {
        Digest::of_canonical_json(self)
    }
}

/// One published output of a run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OutputEntry {
    pub digest: Digest,
    pub bytes: u64,
}

/// The record of a finished run: `runs/<key>.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub key: Digest,
    #[serde(flatten)]
    pub spec: RunSpec,
    pub outputs: BTreeMap<String, OutputEntry>,
    /// Stage-specific counts (records, rejects, entities, ...), for reports and tests.
    pub counts: serde_json::Value,
    /// Unix seconds at the end of the run.
    pub finished_at: u64,
    pub seconds: f64,
    /// The memo namespaces the run read or wrote, for garbage collection (absent in manifests
    /// written before the store recorded them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<Vec<String>>,
    /// Per memo namespace, the blob listing the keys the run read or wrote (sorted, 32 bytes each):
    /// what garbage collection keeps. Absent in manifests written before the store recorded them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo_refs: Option<BTreeMap<String, Digest>>,
}

impl Manifest {
    pub fn output(&self, name: &str) -> Result<&OutputEntry> {
        self.outputs.get(name).ok_or_else(|| {
            Error::Store(format!(
                "run {} of {} has no output {name:?}",
                self.key.short(),
                self.spec.stage
            ))
        })
    }
}

/// How a call to [`Store::run`] was satisfied.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub manifest: Manifest,
    /// The manifest was already there and verified: no work was done.
    pub hit: bool,
    /// Work was done, but every output was byte-identical to an object already stored, so everything
    /// downstream keeps its key (early cutoff).
    pub outputs_unchanged: bool,
}

/// Handed to the work closure of [`Store::run`]: where to write outputs.
pub struct RunOutputs<'a> {
    store: &'a Store,
    pending: BTreeMap<String, PathBuf>,
    /// Outputs made of parts (see [`parts`]), each part a file to publish or a stored blob.
    pending_parts: BTreeMap<String, Vec<Part>>,
}

/// One part of an output made of parts.
enum Part {
    /// A file the run wrote, published with the run.
    Written(PathBuf),
    /// A blob already in the store (the output of a part's own run).
    Stored(OutputEntry),
}

impl RunOutputs<'_> {
    /// A fresh temporary path for the output `name`; write the file there, the store publishes it.
    pub fn path(&mut self, name: &str) -> PathBuf {
        let path = self.store.temp.path(&self.store.tmp_dir(), name);
        self.pending.insert(name.to_owned(), path.clone());
        path
    }

    /// A fresh temporary path for the next part of the output `name`, which the store publishes as
    /// a part list (see [`parts`]) naming its parts in the order they were asked for.
    pub fn part_path(&mut self, name: &str) -> PathBuf {
        let path = self.store.temp.path(&self.store.tmp_dir(), name);
        self.pending_parts
            .entry(name.to_owned())
            .or_default()
            .push(Part::Written(path.clone()));
        path
    }

    /// Drops the output `name` the run wrote, if any (it turned out not to apply).
    pub fn discard(&mut self, name: &str) {
        if let Some(path) = self.pending.remove(name) {
            let _ = fs::remove_file(path);
        }
    }

    /// Appends blobs already stored to the parts of the output `name`.
    pub fn stored_parts(&mut self, name: &str, parts: impl IntoIterator<Item = OutputEntry>) {
        self.pending_parts
            .entry(name.to_owned())
            .or_default()
            .extend(parts.into_iter().map(Part::Stored));
    }
}

impl Drop for RunOutputs<'_> {
    fn drop(&mut self) {
        // Outputs not published (the work failed) are removed; published ones were renamed away already.
        for path in self.pending.values() {
            let _ = fs::remove_file(path);
        }
        for part in self.pending_parts.values().flatten() {
            if let Part::Written(path) = part {
                let _ = fs::remove_file(path);
            }
        }
    }
}

/// Result of [`Store::verify`].
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub runs: usize,
    pub blobs: usize,
    pub memo_entries: usize,
    /// Packed memo segments (one or a few per run and namespace until `gc` compacts them).
    pub memo_segments: usize,
    pub problems: Vec<String>,
}

impl VerifyReport {
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

pub struct Store {
    root: PathBuf,
    temp: TempNamer,
    /// The per-user level that [`Store::run_shared`] also consults (`~/.cache/umgf/store`).
    user: Option<Box<Store>>,
    /// Memo namespaces opened since the current run started, and the keys used in each (see
    /// [`Manifest::memo`] and [`Manifest::memo_refs`]).
    memo_used: Mutex<MemoUse>,
    /// The memo namespaces this process has opened: loaded indexes, the segment it writes.
    memo_namespaces: Mutex<HashMap<String, Arc<Namespace>>>,
    /// Runs in progress in this process (a part's run is nested in its stage's run): the memo is
    /// sealed when the outermost one ends, so a stage of a thousand parts adds one segment, not a
    /// thousand.
    runs_in_progress: AtomicUsize,
}

/// Which store holds a run [`Store::lookup_shared`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// This store.
    Here,
    /// The per-user store below it (only [`Store::run_shared`] runs are kept there).
    User,
}

impl Store {
    /// Opens (creating if needed) the store at `root`, and removes temporary files that processes of
    /// this host left behind when they died.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for dir in ["blobs", "runs", "memo", "locks", "tmp"] {
            let dir = root.join(dir);
            fs::create_dir_all(&dir).at(&dir)?;
        }
        let store = Self {
            root,
            temp: TempNamer::new(),
            user: None,
            memo_used: Mutex::default(),
            memo_namespaces: Mutex::default(),
            runs_in_progress: AtomicUsize::new(0),
        };
        store.temp.remove_orphans(&store.tmp_dir())?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// This store with a per-user level below it: runs of [`Store::run_shared`] found there are
    /// copied in instead of computed, and the ones computed here are copied there.
    pub fn with_user_level(mut self, user: Store) -> Self {
        self.user = Some(Box::new(user));
        self
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn manifest_path(&self, key: &Digest) -> PathBuf {
        self.root.join("runs").join(format!("{key}.json"))
    }

    /// The checkpoint folder of the run with `key` (see [`Checkpoints`]).
    pub fn checkpoints(&self, key: &Digest) -> Checkpoints<'_> {
        Checkpoints {
            store: self,
            dir: self.root.join("checkpoints").join(key.hex()),
        }
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join("blobs").join(&hex[..2]).join(hex)
    }

    /// The verified manifest of a finished run of `spec`, if there is one. A manifest whose blobs are
    /// missing or corrupt counts as absent (the corrupt blobs are removed so the next run redoes them).
    pub fn lookup(&self, spec: &RunSpec) -> Result<Option<Manifest>> {
        let key = spec.key();
        let path = self.manifest_path(&key);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).at(&path),
        };
        let manifest: Manifest = match serde_json::from_str(&text) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(
                    "{}: unreadable manifest ({e}); the run will be redone",
                    path.display()
                );
                return Ok(None);
            }
        };
        if manifest.key != key || manifest.spec != *spec {
            tracing::warn!(
                "{}: manifest does not match its key; the run will be redone",
                path.display()
            );
            return Ok(None);
        }
        for (name, output) in &manifest.outputs {
            if let Some(problem) = self.check_output(&output.digest)? {
                tracing::warn!(
                    "run {} of {}: output {name} {problem}; the run will be redone",
                    key.short(),
                    spec.stage
                );
                return Ok(None);
            }
        }
        Ok(Some(manifest))
    }

    /// Where [`Store::run_shared`] would find a finished run of `spec`: here, or in the per-user level
    /// (from which a run copies it in instead of computing it). Reads only.
    pub fn lookup_shared(&self, spec: &RunSpec) -> Result<Option<(Manifest, Level)>> {
        if let Some(manifest) = self.lookup(spec)? {
            return Ok(Some((manifest, Level::Here)));
        }
        match &self.user {
            Some(user) => Ok(user.lookup(spec)?.map(|m| (m, Level::User))),
            None => Ok(None),
        }
    }

    /// `None` if the blob is present and its content matches its name; otherwise what is wrong (a
    /// corrupt blob is removed, so that republishing it is possible).
    ///
    /// A blob is hashed once, then again only if its file changed: its identity (size, inode and
    /// change time, which only the kernel sets, on any write or rename) is kept in
    /// `verified/ab/<digest>` when its content was last found right. A lookup of a run whose outputs
    /// are gigabytes (the text features of 100k tweets) would otherwise hash them all on every no-op.
    fn check_blob(&self, digest: &Digest) -> Result<Option<String>> {
        let path = self.blob_path(digest);
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Some(format!("is missing ({})", path.display())));
            }
            Err(e) => return Err(e).at(&path),
        };
        let stamp = self.verified_path(digest);
        let identity = fsutil::file_identity(&meta);
        if fs::read_to_string(&stamp).is_ok_and(|s| s == identity) {
            return Ok(None);
        }
        let actual = Digest::of_file(&path)?;
        if actual != *digest {
            fs::remove_file(&path).at(&path)?;
            let _ = fs::remove_file(&stamp);
            return Ok(Some(format!(
                "was corrupt (content digest {}), removed",
                actual.short()
            )));
        }
        // Best effort: a store that cannot take the stamp (read-only) hashes again next time.
        let tmp = self.tmp_dir();
        let _ = write_atomic(
            &self.temp,
            &tmp,
            &stamp,
            identity.as_bytes(),
            Durability::Checksummed,
        );
        Ok(None)
    }

    /// [`Store::check_blob`] for an output, and for each of its parts when it is a part list.
    fn check_output(&self, digest: &Digest) -> Result<Option<String>> {
        if let Some(problem) = self.check_blob(digest)? {
            return Ok(Some(problem));
        }
        for part in self.parts(digest)?.into_iter().flatten() {
            if let Some(problem) = self.check_blob(&part.digest)? {
                return Ok(Some(format!("has a part that {problem}")));
            }
        }
        Ok(None)
    }

    /// The parts of the stored artifact `digest` when it is a part list (see [`parts`]).
    pub fn parts(&self, digest: &Digest) -> Result<Option<Vec<OutputEntry>>> {
        Ok(PartList::read(&self.blob_path(digest))?.map(|list| list.parts))
    }

    /// Where [`Store::check_blob`] keeps the identity of a blob whose content it verified.
    fn verified_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join("verified").join(&hex[..2]).join(hex)
    }

    /// Runs `work` unless a verified result for `spec` exists. `work` writes each output to the path that
    /// [`RunOutputs::path`] gives it and returns the run's counts. Holding the key's lock means two
    /// processes asking for the same run do the work once; the second sees a hit.
    pub fn run<F>(&self, spec: &RunSpec, work: F) -> Result<RunOutcome>
    where
        F: FnOnce(&mut RunOutputs<'_>) -> Result<serde_json::Value>,
    {
        let key = spec.key();
        // Shared: runs go on side by side, and `gc` (which needs it exclusively) cannot start
        // while one is in progress.
        let _store_lock = fsutil::lock_shared(&self.root.join("locks").join(STORE_LOCK))?;
        let _lock = fsutil::lock(&self.root.join("locks").join(format!("{key}.lock")))?;
        if let Some(manifest) = self.lookup(spec)? {
            return Ok(RunOutcome {
                manifest,
                hit: true,
                outputs_unchanged: true,
            });
        }

        let started = Instant::now();
        let mut outputs = RunOutputs {
            store: self,
            pending: BTreeMap::new(),
            pending_parts: BTreeMap::new(),
        };
        // The namespaces this run opens (a run nested in another counts for both).
        let outer = std::mem::take(&mut *self.memo_used());
        self.runs_in_progress.fetch_add(1, Ordering::SeqCst);
        let counts = work(&mut outputs);
        let outermost = self.runs_in_progress.fetch_sub(1, Ordering::SeqCst) == 1;
        let mine: MemoUse = {
            let mut used = self.memo_used();
            let mine = std::mem::replace(&mut *used, outer);
            for (namespace, keys) in &mine {
                used.entry(namespace.clone())
                    .or_default()
                    .extend(keys.iter().copied());
            }
            mine
        };
        // What the run computed is kept even if it failed: the next run continues from it. A run
        // nested in another leaves it to the outer one (a kill in between loses nothing: the next
        // process indexes a dead writer's segment).
        let sealed = if outermost { self.seal_memo() } else { Ok(()) };
        let counts = counts?;
        sealed?;
        let memo_refs = self.publish_memo_refs(&mine)?;

        let mut published = BTreeMap::new();
        let mut all_existed = true;
        for (name, temp) in std::mem::take(&mut outputs.pending) {
            let (entry, existed) = match self.publish(&temp) {
                Ok(result) => result,
                Err(e) => {
                    let _ = fs::remove_file(&temp);
                    return Err(e);
                }
            };
            all_existed &= existed;
            published.insert(name, entry);
        }
        for (name, parts) in std::mem::take(&mut outputs.pending_parts) {
            let (entry, existed) = self.publish_parts(parts)?;
            all_existed &= existed;
            published.insert(name, entry);
        }

        let manifest = Manifest {
            key,
            spec: spec.clone(),
            outputs: published,
            counts,
            finished_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            seconds: started.elapsed().as_secs_f64(),
            memo: Some(mine.into_keys().collect()),
            memo_refs: Some(memo_refs),
        };
        self.write_manifest(&manifest)?;
        Ok(RunOutcome {
            manifest,
            hit: false,
            outputs_unchanged: all_existed,
        })
    }

    /// [`Store::run`] for runs whose inputs are the same files for every dataset and folder (the
    /// noun-phrase chunker): a run missing here but stored in the per-user level is copied from it
    /// (its blobs verified on both sides), and a run computed here is copied there, so a new clone
    /// or a new artifacts folder finds it again.
    pub fn run_shared<F>(&self, spec: &RunSpec, work: F) -> Result<RunOutcome>
    where
        F: FnOnce(&mut RunOutputs<'_>) -> Result<serde_json::Value>,
    {
        let Some(user) = &self.user else {
            return self.run(spec, work);
        };
        if self.lookup(spec)?.is_none()
            && let Some(manifest) = user.lookup(spec)?
        {
            tracing::info!(
                "{} run {}: copied from the per-user store {}",
                spec.stage,
                manifest.key.short(),
                user.root.display()
            );
            self.import(user, &manifest)?;
        }
        let outcome = self.run(spec, work)?;
        // Best effort: a per-user store that cannot take the copy (read-only, full) costs the next
        // clone a recomputation, not this run its result.
        let exported = match user.lookup(spec) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => user.import(self, &outcome.manifest),
            Err(e) => Err(e),
        };
        if let Err(e) = exported {
            tracing::warn!(
                "{} run {}: not copied to the per-user store {}: {e}",
                spec.stage,
                outcome.manifest.key.short(),
                user.root.display()
            );
        }
        Ok(outcome)
    }

    /// Copies a finished run (its blobs, then its manifest) from `other`, under the run's lock.
    fn import(&self, other: &Store, manifest: &Manifest) -> Result<()> {
        let _store_lock = fsutil::lock_shared(&self.root.join("locks").join(STORE_LOCK))?;
        let key = manifest.key;
        let _lock = fsutil::lock(&self.root.join("locks").join(format!("{key}.lock")))?;
        let refs = manifest.memo_refs.iter().flat_map(|r| r.values().copied());
        let mut blobs = Vec::new();
        for output in manifest.outputs.values() {
            // Parts before the list that names them.
            blobs.extend(
                other
                    .parts(&output.digest)?
                    .into_iter()
                    .flatten()
                    .map(|p| p.digest),
            );
            blobs.push(output.digest);
        }
        for digest in blobs.iter().copied().chain(refs) {
            let digest = &digest;
            let source = other.blob_path(digest);
            let temp = self.temp.path(&self.tmp_dir(), &digest.hex());
            let copied = fs::copy(&source, &temp).at(&source).and_then(|_| {
                let (entry, _) = self.publish(&temp)?;
                if entry.digest == *digest {
                    Ok(())
                } else {
                    Err(Error::Store(format!(
                        "{}: content changed while it was copied",
                        source.display()
                    )))
                }
            });
            if copied.is_err() {
                let _ = fs::remove_file(&temp);
            }
            copied?;
        }
        self.write_manifest(manifest)
    }

    /// Publishes `manifest` as `runs/<key>.json`: the commit point of a run (its blobs come first).
    fn write_manifest(&self, manifest: &Manifest) -> Result<()> {
        let json = serde_json::to_vec_pretty(manifest)
            .map_err(|e| Error::Store(format!("cannot serialise manifest: {e}")))?;
        write_atomic(
            &self.temp,
            &self.tmp_dir(),
            &self.manifest_path(&manifest.key),
            &json,
            Durability::Synced,
        )
    }

    /// Moves a finished temporary file into `blobs/` under its content digest. Returns whether an
    /// identical blob was already there.
    fn publish(&self, temp: &Path) -> Result<(OutputEntry, bool)> {
        fsutil::sync_file(temp)?;
        let digest = Digest::of_file(temp)?;
        let bytes = fs::metadata(temp).at(temp)?.len();
        let target = self.blob_path(&digest);
        let existed = self.check_blob(&digest)?.is_none();
        if existed {
            fs::remove_file(temp).at(temp)?;
        } else {
            let dir = target.parent().unwrap_or(&self.root);
            fs::create_dir_all(dir).at(dir)?;
            fs::rename(temp, &target).at(&target)?;
            fsutil::sync_dir(dir)?;
        }
        Ok((OutputEntry { digest, bytes }, existed))
    }

    /// Publishes the parts the run wrote, then the list naming them all (see [`parts`]). Returns the
    /// list's entry and whether every part and the list were stored already.
    fn publish_parts(&self, parts: Vec<Part>) -> Result<(OutputEntry, bool)> {
        let mut list = PartList { parts: Vec::new() };
        let mut all_existed = true;
        let mut parts = parts.into_iter();
        while let Some(part) = parts.next() {
            match part {
                Part::Stored(entry) => list.parts.push(entry),
                Part::Written(temp) => match self.publish(&temp) {
                    Ok((entry, existed)) => {
                        all_existed &= existed;
                        list.parts.push(entry);
                    }
                    Err(e) => {
                        let _ = fs::remove_file(&temp);
                        for part in parts {
                            if let Part::Written(temp) = part {
                                let _ = fs::remove_file(temp);
                            }
                        }
                        return Err(e);
                    }
                },
            }
        }
        let temp = self.temp.path(&self.tmp_dir(), "parts");
        fs::write(&temp, list.encode()).at(&temp)?;
        match self.publish(&temp) {
            Ok((entry, existed)) => Ok((entry, all_existed && existed)),
            Err(e) => {
                let _ = fs::remove_file(&temp);
                Err(e)
            }
        }
    }

    /// Runs a per-record stage part by part (see [`parts`]). The inputs named in `plan.inputs` are
    /// artifacts made of the same number of parts (they come from the same `ingest`, each stage
    /// mapping part `i` to part `i`); every other input is shared by all parts. Part `i` is a run of
    /// its own, keyed like `spec` with each of those inputs replaced by its part `i`: `work` gets
    /// the part's inputs and writes one part of each output, and a part whose run is stored is not
    /// redone. The stage's run publishes, per output, the list of its parts (or, for the outputs in
    /// `plan.joined`, the parts joined into one file). Counts: see [`ByParts`].
    pub fn run_by_parts<F>(&self, spec: &RunSpec, plan: &ByParts<'_>, work: F) -> Result<RunOutcome>
    where
        F: Fn(&BTreeMap<String, Digest>, &mut RunOutputs<'_>) -> Result<serde_json::Value>,
    {
        self.run_by_parts_then(spec, plan, work, |_, counts, _| Ok(counts))
    }

    /// [`Store::run_by_parts`], then `finish`, for what only the whole can give (a dataset's
    /// scores): it gets each part's counts, in order, the counts added up, and the stage's outputs
    /// (to write more, or discard a joined one), and returns the stage's counts.
    pub fn run_by_parts_then<F, G>(
        &self,
        spec: &RunSpec,
        plan: &ByParts<'_>,
        work: F,
        finish: G,
    ) -> Result<RunOutcome>
    where
        F: Fn(&BTreeMap<String, Digest>, &mut RunOutputs<'_>) -> Result<serde_json::Value>,
        G: FnOnce(
            &[serde_json::Value],
            serde_json::Value,
            &mut RunOutputs<'_>,
        ) -> Result<serde_json::Value>,
    {
        self.run(spec, |outputs| {
            let mut lists = Vec::new();
            for role in plan.inputs {
                let digest = spec.inputs.get(*role).ok_or_else(|| {
                    Error::Store(format!("{}: no input {role:?} to run by parts", spec.stage))
                })?;
                let parts = self.parts(digest)?.unwrap_or_else(|| {
                    let bytes = fs::metadata(self.blob_path(digest)).map_or(0, |m| m.len());
                    vec![OutputEntry {
                        digest: *digest,
                        bytes,
                    }]
                });
                lists.push((*role, parts));
            }
            let count = lists.first().map_or(0, |(_, parts)| parts.len());
            if let Some((role, parts)) = lists.iter().find(|(_, p)| p.len() != count) {
                return Err(Error::Store(format!(
                    "{}: input {role:?} has {} parts and {:?} has {count}: they do not come \
                     from the same ingest run",
                    spec.stage,
                    parts.len(),
                    lists[0].0
                )));
            }
            let mut counts = serde_json::Value::Null;
            let mut each = Vec::with_capacity(count);
            let mut reused = 0;
            let mut joined: BTreeMap<String, fs::File> = BTreeMap::new();
            for i in 0..count {
                let mut part = spec.clone();
                part.stage = format!("{}{}", spec.stage, parts::PART_STAGE_SUFFIX);
                for (role, parts) in &lists {
                    part.inputs.insert((*role).to_owned(), parts[i].digest);
                }
                let outcome = self.run(&part, |out| work(&part.inputs, out))?;
                reused += usize::from(outcome.hit);
                for (name, entry) in outcome.manifest.outputs {
                    if !plan.joined.contains(&name.as_str()) {
                        outputs.stored_parts(&name, [entry]);
                        continue;
                    }
                    let file = match joined.entry(name.clone()) {
                        std::collections::btree_map::Entry::Occupied(file) => file.into_mut(),
                        std::collections::btree_map::Entry::Vacant(slot) => {
                            let path = outputs.path(&name);
                            slot.insert(fs::File::create(&path).at(&path)?)
                        }
                    };
                    let blob = self.blob_path(&entry.digest);
                    let mut source = fs::File::open(&blob).at(&blob)?;
                    std::io::copy(&mut source, file).at(&blob)?;
                }
                plan.add_counts(&mut counts, &outcome.manifest.counts, outcome.hit);
                each.push(outcome.manifest.counts);
            }
            drop(joined);
            // The parts' runs list the memo entries they used; the stage's run need not again.
            self.memo_used().clear();
            let mut counts = finish(&each, counts, outputs)?;
            if let serde_json::Value::Object(map) = &mut counts {
                map.insert("parts".into(), count.into());
                map.insert("parts_reused".into(), reused.into());
            }
            Ok(counts)
        })
    }

    /// The shards of `count` whose run of the stage `whole` is not stored: none once the whole run is
    /// (the merge happened, so no shard is needed any more).
    pub fn missing_shards(&self, whole: &RunSpec, count: u32) -> Result<Vec<Shard>> {
        if self.lookup(whole)?.is_some() {
            return Ok(Vec::new());
        }
        let mut missing = Vec::new();
        for shard in Shard::all(count) {
            if self.lookup(&shard.spec(whole))?.is_none() {
                missing.push(shard);
            }
        }
        Ok(missing)
    }

    /// The per-record memo table `namespace` (e.g. "text-features"), see [`Memo`].
    pub fn memo(&self, namespace: &str) -> Result<Memo<'_>> {
        let shared = {
            let mut open = self.memo_namespaces();
            match open.get(namespace) {
                Some(shared) => Arc::clone(shared),
                None => {
                    let shared = Arc::new(Namespace::open(&self.root, namespace)?);
                    open.insert(namespace.to_owned(), Arc::clone(&shared));
                    shared
                }
            }
        };
        let memo = Memo::open(self, shared)?;
        self.memo_used().entry(namespace.to_owned()).or_default();
        Ok(memo)
    }

    /// Seals the memo segments this process is writing: their entries become visible to other
    /// processes. Every run does it when it ends; a process that fills the memo outside a run
    /// calls it before others need the entries (dropping the store does it too).
    pub fn seal_memo(&self) -> Result<()> {
        let open: Vec<Arc<Namespace>> = self.memo_namespaces().values().cloned().collect();
        let mut first_error = None;
        for namespace in open {
            if let Err(e) = namespace.seal(self) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn memo_namespaces(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Namespace>>> {
        self.memo_namespaces
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn memo_record_use(&self, namespace: &str, key: &Digest) {
        self.memo_used()
            .entry(namespace.to_owned())
            .or_default()
            .insert(*key);
    }

    /// Publishes, per namespace a run used, the blob of the keys it used (see
    /// [`Manifest::memo_refs`]).
    fn publish_memo_refs(&self, used: &MemoUse) -> Result<BTreeMap<String, Digest>> {
        let mut refs = BTreeMap::new();
        for (namespace, keys) in used {
            let temp = self.temp.path(&self.tmp_dir(), "memo-refs");
            fs::write(&temp, memo::encode_refs(keys)).at(&temp)?;
            match self.publish(&temp) {
                Ok((entry, _)) => refs.insert(namespace.clone(), entry.digest),
                Err(e) => {
                    let _ = fs::remove_file(&temp);
                    return Err(e);
                }
            };
        }
        Ok(refs)
    }

    /// The keys listed in a refs blob, `None` if it is missing or unreadable.
    pub(crate) fn memo_refs(&self, blob: &Digest) -> Option<Vec<Digest>> {
        let bytes = fs::read(self.blob_path(blob)).ok()?;
        if Digest::of_bytes(&bytes) != *blob {
            return None;
        }
        memo::decode_refs(&bytes)
    }

    fn memo_used(&self) -> std::sync::MutexGuard<'_, MemoUse> {
        // A panic elsewhere while the set was held leaves it usable: it is only a list of names.
        self.memo_used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every readable manifest of the store, with its file (an unreadable one is left out: `verify`
    /// reports it).
    pub fn manifests(&self) -> Result<Vec<(PathBuf, Manifest)>> {
        let dir = self.root.join("runs");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).at(&dir)? {
            let path = entry.at(&dir)?.path();
            let parsed = fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Manifest>(&bytes).ok());
            if let Some(manifest) = parsed {
                out.push((path, manifest));
            }
        }
        Ok(out)
    }

    /// The run of `stage` whose output `name` is the blob `digest`, if the store holds one.
    pub fn producer(&self, stage: &str, name: &str, digest: &Digest) -> Result<Option<Manifest>> {
        Ok(self.manifests()?.into_iter().map(|(_, m)| m).find(|m| {
            m.spec.stage == stage && m.outputs.get(name).is_some_and(|o| o.digest == *digest)
        }))
    }

    /// Checks the whole store: every manifest parses and names its own key, every blob and memo entry
    /// matches its digest, every blob a manifest names exists. Read-only.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let runs_dir = self.root.join("runs");
        for entry in fs::read_dir(&runs_dir).at(&runs_dir)? {
            let path = entry.at(&runs_dir)?.path();
            report.runs += 1;
            let manifest: Manifest = match fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            {
                Some(m) => m,
                None => {
                    report
                        .problems
                        .push(format!("{}: unreadable manifest", path.display()));
                    continue;
                }
            };
            if path.file_stem().and_then(|s| s.to_str()) != Some(&manifest.spec.key().hex()) {
                report
                    .problems
                    .push(format!("{}: manifest is not of its key", path.display()));
            }
            for (name, output) in &manifest.outputs {
                if !self.blob_path(&output.digest).exists() {
                    report
                        .problems
                        .push(format!("{}: output {name} is missing", path.display()));
                    continue;
                }
                let parts = match self.parts(&output.digest) {
                    Ok(parts) => parts.unwrap_or_default(),
                    Err(e) => {
                        report
                            .problems
                            .push(format!("{}: output {name}: {e}", path.display()));
                        continue;
                    }
                };
                for part in parts {
                    if !self.blob_path(&part.digest).exists() {
                        report.problems.push(format!(
                            "{}: output {name} is missing its part {}",
                            path.display(),
                            part.digest.short()
                        ));
                    }
                }
            }
            for (namespace, refs) in manifest.memo_refs.iter().flatten() {
                if !self.blob_path(refs).exists() {
                    report.problems.push(format!(
                        "{}: the list of its {namespace} memo entries is missing",
                        path.display()
                    ));
                }
            }
        }
        for path in fsutil::files_under(&self.root.join("blobs"))? {
            report.blobs += 1;
            let named = path
                .file_name()
                .and_then(|s| s.to_str())
                .map(str::parse::<Digest>);
            // A blob whose file is unchanged since it was last hashed right is not hashed again.
            let stamped = |digest: &Digest| {
                let identity = fs::metadata(&path).map(|m| fsutil::file_identity(&m));
                identity.is_ok_and(|id| {
                    fs::read_to_string(self.verified_path(digest)).is_ok_and(|s| s == id)
                })
            };
            match named {
                Some(Ok(digest)) if stamped(&digest) || Digest::of_file(&path)? == digest => {}
                _ => report.problems.push(format!(
                    "{}: content does not match its name",
                    path.display()
                )),
            }
        }
        let memo_root = self.root.join("memo");
        for entry in fs::read_dir(&memo_root).at(&memo_root)? {
            let dir = entry.at(&memo_root)?.path();
            if dir.is_dir() {
                let check = memo::check(&dir)?;
                report.memo_entries += check.entries;
                report.memo_segments += check.segments;
                report.problems.extend(check.problems);
            }
        }
        Ok(report)
    }
}

/// How [`Store::run_by_parts`] runs a stage by parts.
#[derive(Clone, Copy, Debug, Default)]
pub struct ByParts<'a> {
    /// The inputs made of parts, part `i` of each going to part `i` of the outputs.
    pub inputs: &'a [&'a str],
    /// Counts that are the same in every part (the encoder's width): the first part's. The others
    /// are summed over the parts.
    pub same_counts: &'a [&'a str],
    /// Counts of the work a run did (images detected), as the `memo_*` counts are: summed over the
    /// parts this run computed, not those it found stored.
    pub work_counts: &'a [&'a str],
    /// Outputs of lines of text (reports) whose parts are joined into one file, not listed.
    pub joined: &'a [&'a str],
}

impl ByParts<'_> {
    /// Adds a part's counts to the stage's (see the fields).
    fn add_counts(&self, total: &mut serde_json::Value, part: &serde_json::Value, reused: bool) {
        use serde_json::Value;
        if total.is_null() {
            *total = Value::Object(serde_json::Map::new());
        }
        let (Value::Object(total), Value::Object(part)) = (total, part) else {
            return;
        };
        for (key, value) in part {
            let work = key.starts_with("memo_") || self.work_counts.contains(&key.as_str());
            let value = match value {
                Value::Number(_) if work && reused => Value::from(0),
                other => other.clone(),
            };
            let summed = !self.same_counts.contains(&key.as_str());
            match (total.get_mut(key), &value) {
                (None, _) => {
                    total.insert(key.clone(), value);
                }
                (Some(Value::Number(sum)), Value::Number(add)) if summed => {
                    *sum = match (sum.as_u64(), add.as_u64()) {
                        (Some(a), Some(b)) => (a + b).into(),
                        _ => serde_json::Number::from_f64(
                            sum.as_f64().unwrap_or(0.0) + add.as_f64().unwrap_or(0.0),
                        )
                        .unwrap_or_else(|| 0.into()),
                    };
                }
                _ => {}
            }
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Entries written outside a run (none of the stages do) are sealed here.
        if let Err(e) = self.seal_memo() {
            tracing::warn!("{}: memo segment not sealed: {e}", self.root.display());
        }
    }
}

/// Where a long run keeps what it needs to continue after a stop (training: its state after the last
/// finished epoch), under `checkpoints/<run key>/`. Files are written whole (temp file, fsync,
/// rename), so a kill leaves the previous version or the new one; the run removes the folder when it
/// has published its outputs. Keyed by the run's key: only the same run, with the same inputs and
/// settings, continues from it.
pub struct Checkpoints<'a> {
    store: &'a Store,
    dir: PathBuf,
}

impl Checkpoints<'_> {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `name` atomically: `write` fills a temporary path, which then replaces the file.
    pub fn write(&self, name: &str, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        fs::create_dir_all(&self.dir).at(&self.dir)?;
        let tmp = self.store.temp.path(&self.store.tmp_dir(), name);
        let result = (|| {
            write(&tmp)?;
            fsutil::sync_file(&tmp)?;
            let target = self.dir.join(name);
            fs::rename(&tmp, &target).at(&target)?;
            fsutil::sync_dir(&self.dir)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Removes `name` if it is there.
    pub fn remove(&self, name: &str) -> Result<()> {
        let path = self.dir.join(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at(&path),
            _ => Ok(()),
        }
    }

    /// Removes the whole folder (the run is done).
    pub fn clear(&self) -> Result<()> {
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at(&self.dir),
            _ => Ok(()),
        }
    }
}
