//! File-system primitives the store is built from: atomic writes, fsync, advisory locks, temp names.
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{IoContext, Result};

/// Names temporary files `<host>.<pid>.<n>.<name>` so that the files of a dead process can be told
/// apart from those of a live one, also when several hosts share the store (Slurm on a shared disk).
pub struct TempNamer {
    host: String,
    pid: u32,
}

/// One counter per process, so that two stores open in one process (on one root) never pick the same
/// name.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl TempNamer {
    pub fn new() -> Self {
        let host = fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().replace('.', "_"))
            .unwrap_or_else(|_| "localhost".to_owned());
        Self {
            host,
            pid: std::process::id(),
        }
    }

    pub fn path(&self, dir: &Path, name: &str) -> PathBuf {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        dir.join(format!("{}.{}.{n}.{name}", self.host, self.pid))
    }

    /// Removes temporary files left by dead processes of this host. Files of live processes, and of
    /// other hosts (whose liveness we cannot see), are left alone.
    pub fn remove_orphans(&self, dir: &Path) -> Result<()> {
        for entry in fs::read_dir(dir).at(dir)? {
            let path = entry.at(dir)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let mut parts = name.splitn(3, '.');
            let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(pid) = pid.parse::<u32>() else {
                continue;
            };
            let alive = pid == self.pid || Path::new(&format!("/proc/{pid}")).exists();
            if host == self.host && !alive {
                tracing::debug!("removing {} left by a dead process", path.display());
                let _ = fs::remove_file(&path);
            }
        }
        Ok(())
    }
}

impl Default for TempNamer {
    fn default() -> Self {
        Self::new()
    }
}

/// How hard [`write_atomic`] works to survive a machine crash (a killed process loses nothing either way:
/// its writes are in the page cache, and rename is atomic).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the file and its directory: for manifests and blobs, a handful per run.
    Synced,
    /// No fsync: for memo entries, thousands per run, whose checksums catch a torn write after a crash.
    Checksummed,
}

/// Writes `bytes` to `target` atomically: readers see the old file or the whole new one.
pub fn write_atomic(
    temp: &TempNamer,
    tmp_dir: &Path,
    target: &Path,
    bytes: &[u8],
    durability: Durability,
) -> Result<()> {
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file");
    let path = temp.path(tmp_dir, name);
    let result = (|| {
        let mut file = File::create(&path).at(&path)?;
        file.write_all(bytes).at(&path)?;
        if durability == Durability::Synced {
            file.sync_all().at(&path)?;
        }
        let dir = target.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).at(dir)?;
        fs::rename(&path, target).at(target)?;
        if durability == Durability::Synced {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&path);
    }
    result
}

pub(super) fn sync_file(path: &Path) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .at(path)?
        .sync_all()
        .at(path)
}

/// Makes a rename durable: the directory entry itself must reach the disk.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).at(dir)?.sync_all().at(dir)
}

/// An exclusive advisory lock (flock) held until the returned file is dropped. Blocks while another
/// process holds it; the kernel releases it when a holder dies, so a killed run never leaves it stuck.
pub(super) fn lock(path: &Path) -> Result<File> {
    let file = lock_file(path)?;
    file.lock().at(path)?;
    Ok(file)
}

/// [`lock`], shared: any number of holders, none while someone holds it exclusively.
pub(super) fn lock_shared(path: &Path) -> Result<File> {
    let file = lock_file(path)?;
    file.lock_shared().at(path)?;
    Ok(file)
}

/// [`lock`] without waiting: `None` if someone holds it.
pub(super) fn try_lock(path: &Path) -> Result<Option<File>> {
    let file = lock_file(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(e).at(path),
    }
}

fn lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .at(path)
}

/// What identifies a file's current content without reading it: size, inode, change time (which
/// only the kernel sets, on any write, truncation, rename or new link).
pub(super) fn file_identity(meta: &fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "{} {} {}.{:09}",
        meta.len(),
        meta.ino(),
        meta.ctime(),
        meta.ctime_nsec()
    )
}

/// Every regular file below `dir`, recursively, in sorted order.
pub(super) fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let kind = entry.file_type().at(entry.path())?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}
