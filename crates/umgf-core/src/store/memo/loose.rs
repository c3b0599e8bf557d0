//! The memo of stores written before packs: one file per entry, `memo/<namespace>/ab/<key>`, holding
//! the payload and then the BLAKE3 of the payload. Such entries are still read (an old clone's store
//! keeps working), never written; `gc` moves the ones in use into a pack and removes the rest.
use std::fs;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{IoContext, Result};

const CHECKSUM_LEN: usize = 32;

pub(crate) fn entry_path(dir: &Path, key: &Digest) -> PathBuf {
    let hex = key.hex();
    dir.join(&hex[..2]).join(hex)
}

/// Whether `dir` holds loose entries (a two-hex-digit folder).
pub(crate) fn present(dir: &Path) -> Result<bool> {
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if entry.file_type().at(entry.path())?.is_dir() && is_fan_out(&entry.path()) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn is_fan_out(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The payload stored for `key`, `None` if absent; a corrupt entry is removed and reported absent.
pub(crate) fn get(dir: &Path, key: &Digest) -> Result<Option<Vec<u8>>> {
    let path = entry_path(dir, key);
    let mut bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(&path),
    };
    match split_checked(&bytes) {
        Some(len) => {
            bytes.truncate(len);
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

/// Every loose entry of `dir`: its file and key (files not named by a digest are left out).
pub(crate) fn entries(dir: &Path) -> Result<Vec<(PathBuf, Digest)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let fan_out = entry.at(dir)?.path();
        if !fan_out.is_dir() || !is_fan_out(&fan_out) {
            continue;
        }
        for file in fs::read_dir(&fan_out).at(&fan_out)? {
            let path = file.at(&fan_out)?.path();
            let key = path.file_name().and_then(|n| n.to_str()).map(str::parse);
            if let Some(Ok(key)) = key {
                out.push((path, key));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The payload of a loose entry file if its checksum holds.
pub(crate) fn read_checked(path: &Path) -> Result<Option<Vec<u8>>> {
    let mut bytes = fs::read(path).at(path)?;
    Ok(split_checked(&bytes).map(|len| {
        bytes.truncate(len);
        bytes
    }))
}

/// Length of the payload if the trailing checksum matches it.
fn split_checked(bytes: &[u8]) -> Option<usize> {
    let len = bytes.len().checked_sub(CHECKSUM_LEN)?;
    let (payload, checksum) = bytes.split_at(len);
    (blake3::hash(payload).as_bytes() == checksum).then_some(len)
}

/// Writes an entry in the old format (tests of migration only: nothing else writes loose entries).
pub fn write_legacy_entry(memo_dir: &Path, key: &Digest, payload: &[u8]) -> Result<PathBuf> {
    let path = entry_path(memo_dir, key);
    let dir = path.parent().unwrap_or(memo_dir);
    fs::create_dir_all(dir).at(dir)?;
    let mut bytes = payload.to_vec();
    bytes.extend_from_slice(blake3::hash(payload).as_bytes());
    fs::write(&path, bytes).at(&path)?;
    Ok(path)
}
