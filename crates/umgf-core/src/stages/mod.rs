//! The stages that need no model: ingest (raw files into the tweets artifact) and graphs (tweets
//! and grounded objects into edge lists), and [`Artifacts`], the store with its per-dataset views. A
//! stage plans its run (reads its inputs, computes the run key), then executes it through the store,
//! which skips work it has already done. The model stages are in `umgf::stages`.
pub mod graphs;
pub mod ingest;

use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{IoContext, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::{Manifest, RunOutcome, RunSpec, Shard, Store};

/// A stage, declared once: its name and version (part of every run key), the memo namespaces it keeps
/// per record, and its typed input: the upstream outputs, model files and settings its run key is made
/// of. `status` asks only for [`Stage::spec`] (the key, without running anything); the binaries
/// [`Stage::run`]; `umgf-cli`'s upstream resolver chains the stages in order.
pub trait Stage {
    /// The stage's name in run keys, `status` and the store (`ingest`, `visual-features`).
    const NAME: &'static str;
    /// Bumped when the stage's outputs change for the same inputs: every run is then redone.
    const VERSION: u32;
    /// The per-record memo namespaces the stage reads and writes (`make gc` keeps them with its runs).
    const MEMOS: &'static [&'static str] = &[];
    type Input;
    /// What a run counts (tweets, objects, memo hits, scores), kept in its manifest.
    type Counts: Serialize + DeserializeOwned;

    /// A run's counts, read back from its manifest.
    fn counts(manifest: &Manifest) -> Result<Self::Counts> {
        Ok(serde_json::from_value(manifest.counts.clone())?)
    }

    /// The headline numbers of a run, for `status`.
    fn headline(counts: &Self::Counts) -> String;

    /// The run's key material, computed without running the stage.
    fn spec(input: &Self::Input) -> Result<RunSpec>;

    /// Runs the stage through the store: a cache hit when a run with the same key is stored.
    fn run(store: &Store, input: &Self::Input) -> Result<RunOutcome>;
}

/// A stage that works record by record, and so also runs in shards (docs/cluster.md): each shard
/// fills the memo with the records it owns, and the whole run then merges.
pub trait ShardedStage: Stage {
    fn run_shard(store: &Store, input: &Self::Input, shard: Shard) -> Result<RunOutcome>;

    /// The shards of `count` that have not run (see [`Store::missing_shards`]).
    fn missing_shards(store: &Store, input: &Self::Input, count: u32) -> Result<Vec<Shard>> {
        store.missing_shards(&Self::spec(input)?, count)
    }
}

/// The `artifacts/` directory: the store, plus one folder per dataset of friendly names
/// (`artifacts/twitter2017/tweets.parquet`) linking to the latest objects, for polars, pandas, duckdb.
pub struct Artifacts {
    root: PathBuf,
    pub store: Store,
}

impl Artifacts {
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let store = Store::open(root.join("store"))?;
        Ok(Self { root, store })
    }

    /// The artifacts folder around an open store (its parent folder), without opening it again.
    pub fn around(store: Store) -> Self {
        let root = store.root().parent().unwrap_or(Path::new(".")).to_owned();
        Self { root, store }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Points `artifacts/<label>/<name>` at the stored object `digest` (a relative symlink, replaced
    /// atomically). `label` may hold folders (`twitter2017/model`). An artifact made of parts (see
    /// [`crate::store::parts`]) shows as a folder of its part files, `part-00000.parquet` on, which
    /// pyarrow, polars and duckdb read as one table: the link then leads to a folder
    /// `.<name>.<digest>` beside it, which also holds `.parts`, a link to the list itself (so `gc`
    /// keeps the run the view shows). The folder the link led to before is removed.
    pub fn link_view(&self, label: &str, name: &str, digest: &Digest) -> Result<PathBuf> {
        let dir = self.root.join(label);
        std::fs::create_dir_all(&dir).at(&dir)?;
        let link = dir.join(name);
        let previous = std::fs::read_link(&link).ok();
        let blob = self.store.blob_path(digest);
        let parts = if blob.exists() {
            self.store.parts(digest)?
        } else {
            None
        };
        let target = match parts {
            None => self.relative_blob(label, 0, digest),
            Some(parts) => {
                let folder_name = format!(".{name}.{}", digest.hex());
                let folder = dir.join(&folder_name);
                if !folder.is_dir() {
                    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
                    let _ = std::fs::remove_dir_all(&temp);
                    std::fs::create_dir_all(&temp).at(&temp)?;
                    let blob = self.relative_blob(label, 1, digest);
                    symlink_atomic(&blob, &temp.join(".parts"))?;
                    let extension = Path::new(name).extension().and_then(|e| e.to_str());
                    for (i, part) in parts.iter().enumerate() {
                        let blob = self.relative_blob(label, 1, &part.digest);
                        let file = format!("part-{i:05}.{}", extension.unwrap_or("parquet"));
                        symlink_atomic(&blob, &temp.join(file))?;
                    }
                    std::fs::rename(&temp, &folder).at(&folder)?;
                }
                PathBuf::from(folder_name)
            }
        };
        symlink_atomic(&target, &link)?;
        // The view folder of the previous version, if it was one (`.<name>.<digest>`).
        if let Some(old) = previous
            && old != target
            && old.components().count() == 1
            && old
                .to_str()
                .is_some_and(|o| o.starts_with(&format!(".{name}.")))
        {
            let _ = std::fs::remove_dir_all(dir.join(old));
        }
        Ok(link)
    }

    /// The path of the blob `digest` relative to a folder `depth` levels below `artifacts/<label>/`.
    fn relative_blob(&self, label: &str, depth: usize, digest: &Digest) -> PathBuf {
        let blob = self.store.blob_path(digest);
        // One `..` per folder of the label (`twitter2017`, `twitter2017/model`), and per level below.
        let levels = Path::new(label).components().count() + depth;
        let up: PathBuf = (0..levels).map(|_| "..").collect();
        blob.strip_prefix(&self.root)
            .map_or_else(|_| blob.clone(), |rel| up.join(rel))
    }

    /// Makes `artifacts/<label>/` show exactly one run's outputs (a trained model, a prediction run):
    /// links each output, then removes the links a previous run left there whose names this run
    /// does not have (a fine-tuned model's files next to a frozen one's would mislead). Only
    /// symbolic links are removed; a file the user put in the folder stays.
    pub fn link_run_folder(&self, label: &str, manifest: &Manifest) -> Result<PathBuf> {
        for (name, entry) in &manifest.outputs {
            self.link_view(label, name, &entry.digest)?;
        }
        let dir = self.root.join(label);
        for entry in std::fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let name = entry.file_name();
            let stale = name
                .to_str()
                .is_none_or(|name| !manifest.outputs.contains_key(name));
            if stale && entry.file_type().at(&dir)?.is_symlink() {
                std::fs::remove_file(entry.path()).at(entry.path())?;
            }
        }
        Ok(dir)
    }
}

/// Points `link` at `target` (a relative symlink), replacing what was there atomically.
fn symlink_atomic(target: &Path, link: &Path) -> Result<()> {
    let name = link.file_name().and_then(|n| n.to_str()).unwrap_or("link");
    let temp = link.with_file_name(format!(".{name}.{}.link", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(target, &temp).at(&temp)?;
    std::fs::rename(&temp, link).at(link)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::{OutputEntry, RunSpec};

    fn manifest(names: &[&str]) -> Manifest {
        let outputs = names
            .iter()
            .map(|name| {
                let entry = OutputEntry {
                    digest: Digest::of_bytes(name.as_bytes()),
                    bytes: name.len() as u64,
                };
                (name.to_string(), entry)
            })
            .collect();
        let spec = RunSpec {
            stage: "train".into(),
            version: 1,
            params: serde_json::Value::Null,
            inputs: BTreeMap::new(),
        };
        Manifest {
            key: spec.key(),
            spec,
            outputs,
            counts: serde_json::Value::Null,
            finished_at: 0,
            seconds: 0.0,
            memo: None,
            memo_refs: None,
        }
    }

    #[test]
    fn run_folder_shows_only_the_latest_runs_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let artifacts = Artifacts::open(dir.path()).unwrap();
        let folder = artifacts
            .link_run_folder("twitter2017/model", &manifest(&["a.json", "curve.png"]))
            .unwrap();
        std::fs::write(folder.join("notes.txt"), "mine").unwrap();
        artifacts
            .link_run_folder("twitter2017/model", &manifest(&["a.json", "b.json"]))
            .unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a.json", "b.json", "notes.txt"]);
        let target = std::fs::read_link(folder.join("b.json")).unwrap();
        let blob = artifacts.store.blob_path(&Digest::of_bytes(b"b.json"));
        assert_eq!(
            folder.join(target),
            folder
                .join("../..")
                .join(blob.strip_prefix(dir.path()).unwrap())
        );
    }
}
