//! Stage logic, one module per stage binary. A stage plans its run (reads its inputs, computes the run
//! key), then executes it through the store, which skips work it has already done.
pub mod chunk;
pub mod chunker;
pub mod features;
pub mod graphs;
pub mod ground;
pub mod ingest;
pub mod predict;
pub mod train;
pub mod visual_features;

use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::store::Store;

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

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Points `artifacts/<label>/<name>` at the stored object `digest` (a relative symlink, replaced
    /// atomically). `label` may hold folders (`twitter2017/model`).
    pub fn link_view(&self, label: &str, name: &str, digest: &Digest) -> Result<PathBuf> {
        let dir = self.root.join(label);
        std::fs::create_dir_all(&dir).at(&dir)?;
        let link = dir.join(name);
        let blob = self.store.blob_path(digest);
        // One `..` per folder of the label (`twitter2017`, `twitter2017/model`).
        let up: PathBuf = Path::new(label).components().map(|_| "..").collect();
        let relative = blob
            .strip_prefix(&self.root)
            .map_or_else(|_| blob.clone(), |rel| up.join(rel));
        let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&temp);
        std::os::unix::fs::symlink(&relative, &temp).at(&temp)?;
        std::fs::rename(&temp, &link).at(&link)?;
        Ok(link)
    }
}
