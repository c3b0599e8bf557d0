//! Packed memo segments: many entries in one append-only file, found through a sorted index (git's
//! packfiles, DESIGN.md section 8b). One process writes one segment per namespace at a time, so
//! concurrent writers (shards on Slurm, two processes on one machine) never touch the same file.
//!
//! A segment is two files in `memo/<namespace>/`:
//! - `<name>.pack`: a 12-byte header (`UMGFMEMO`, format u32), then records, each
//!   `key[32] codec u8 raw_len u32 stored_len u32 stored[stored_len] checksum[32]`, the checksum the
//!   BLAKE3 of everything before it in the record (a torn or flipped record never passes, and a
//!   record cannot be read under another key). `codec` 1 is zstd, 0 the payload as it is (kept when
//!   compression would not make it smaller).
//! - `<name>.idx`: `UMGFMIDX`, format u32, count u64, then `count` entries `key[32] offset u64
//!   len u32` sorted by key, then the BLAKE3 of all that. Written once, atomically, when the writer
//!   seals the segment (at the end of each run): the index is the segment's commit point.
//!
//! A pack without an index belongs to a writer still at work, or to one that died. The writer holds
//! an exclusive advisory lock on its pack while it writes; whoever finds a pack without an index and
//! can take that lock knows its writer is gone, scans it (records up to the first one that fails its
//! checksum: a kill can tear only the last) and writes the index. Names start with the creation time
//! in milliseconds, so the newest segment sorts last.
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::super::fsutil::{self, Durability, TempNamer};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};

pub(crate) const PACK_EXT: &str = "pack";
pub(crate) const INDEX_EXT: &str = "idx";
const PACK_MAGIC: &[u8; 8] = b"UMGFMEMO";
const INDEX_MAGIC: &[u8; 8] = b"UMGFMIDX";
const FORMAT: u32 = 1;
const PACK_HEADER_LEN: u64 = 12;
/// key, codec, raw length, stored length.
const RECORD_HEAD_LEN: usize = 32 + 1 + 4 + 4;
const CHECKSUM_LEN: usize = 32;
const INDEX_HEADER_LEN: usize = 8 + 4 + 8;
const INDEX_ENTRY_LEN: usize = 32 + 8 + 4;
/// zstd's fast levels: payloads are written once per record and read on every re-run.
const ZSTD_LEVEL: i32 = 3;
/// How old an empty pack without an index must be before it is removed as abandoned.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);
const CODEC_RAW: u8 = 0;
const CODEC_ZSTD: u8 = 1;

/// Where a record lies in its pack: offset of its first byte, and its whole length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

/// One record's bytes for `payload` under `key`.
pub(crate) fn encode_record(key: &Digest, payload: &[u8]) -> Result<Vec<u8>> {
    let compressed = zstd::bulk::compress(payload, ZSTD_LEVEL)
        .ok()
        .filter(|c| c.len() < payload.len());
    let (codec, stored) = match &compressed {
        Some(c) => (CODEC_ZSTD, c.as_slice()),
        None => (CODEC_RAW, payload),
    };
    let too_long = || Error::Store(format!("memo entry {}: payload over 4 GiB", key.short()));
    let raw_len = u32::try_from(payload.len()).map_err(|_| too_long())?;
    let stored_len = u32::try_from(stored.len()).map_err(|_| too_long())?;
    let mut out = Vec::with_capacity(RECORD_HEAD_LEN + stored.len() + CHECKSUM_LEN);
    out.extend_from_slice(key.as_bytes());
    out.push(codec);
    out.extend_from_slice(&raw_len.to_le_bytes());
    out.extend_from_slice(&stored_len.to_le_bytes());
    out.extend_from_slice(stored);
    let checksum = blake3::hash(&out);
    out.extend_from_slice(checksum.as_bytes());
    Ok(out)
}

/// The key and stored length a record's head announces.
fn parse_head(head: &[u8]) -> (Digest, usize) {
    let mut key = [0u8; 32];
    key.copy_from_slice(&head[..32]);
    let stored_len = u32_at(head, 37) as usize;
    (Digest::from_bytes(key), stored_len)
}

/// The payload of a whole record if it is intact and of `key`; `None` if it fails any check.
pub(crate) fn decode_record(record: &[u8], key: &Digest) -> Option<Vec<u8>> {
    if record.len() < RECORD_HEAD_LEN + CHECKSUM_LEN {
        return None;
    }
    let (found, stored_len) = parse_head(record);
    let body_end = RECORD_HEAD_LEN + stored_len;
    if found != *key || record.len() != body_end + CHECKSUM_LEN {
        return None;
    }
    if blake3::hash(&record[..body_end]).as_bytes() != &record[body_end..] {
        return None;
    }
    let raw_len = u32_at(record, 33) as usize;
    let stored = &record[RECORD_HEAD_LEN..body_end];
    let payload = match record[32] {
        CODEC_RAW => stored.to_vec(),
        CODEC_ZSTD => zstd::bulk::decompress(stored, raw_len).ok()?,
        _ => return None,
    };
    (payload.len() == raw_len).then_some(payload)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

pub(crate) fn pack_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.{PACK_EXT}"))
}

pub(crate) fn index_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.{INDEX_EXT}"))
}

/// Where the identity of a segment's two files is kept from when every record of it was known
/// intact (its writer sealed it): `verify` reads an unchanged segment's records no more.
pub(crate) fn stamp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.verified"))
}

/// The identity of a segment's pack and index files (`None` if either is gone).
pub(crate) fn identity(dir: &Path, name: &str) -> Option<String> {
    let pack = fs::metadata(pack_path(dir, name)).ok()?;
    let index = fs::metadata(index_path(dir, name)).ok()?;
    Some(format!(
        "{} / {}",
        fsutil::file_identity(&pack),
        fsutil::file_identity(&index)
    ))
}

/// Whether the segment is unchanged since it was stamped as intact.
pub(crate) fn stamped(dir: &Path, name: &str) -> bool {
    identity(dir, name)
        .is_some_and(|id| fs::read_to_string(stamp_path(dir, name)).is_ok_and(|s| s == id))
}

/// Reads the record at `at` from `file` (`None` if the file is shorter: truncated behind our back).
fn read_record(file: &File, path: &Path, at: Location) -> Result<Option<Vec<u8>>> {
    let mut record = vec![0u8; at.len as usize];
    match file.read_exact_at(&mut record, at.offset) {
        Ok(()) => Ok(Some(record)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e).at(path),
    }
}

/// A sealed segment: its index in memory (sorted by key), its pack open for reading.
pub(crate) struct Segment {
    pub(crate) name: String,
    pack: PathBuf,
    file: File,
    entries: Vec<(Digest, Location)>,
}

impl Segment {
    /// Opens the segment `name` of `dir` from its index; `Ok(None)` (with a warning) if the index
    /// fails its checksum or the pack is gone: its entries are then recomputed, never trusted.
    pub(crate) fn open(dir: &Path, name: &str) -> Result<Option<Self>> {
        let index = index_path(dir, name);
        let pack = pack_path(dir, name);
        let bytes = match fs::read(&index) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).at(&index),
        };
        let Some(entries) = parse_index(&bytes) else {
            tracing::warn!(
                "{}: memo index fails its checksum; its entries will be recomputed",
                index.display()
            );
            return Ok(None);
        };
        let file = match File::open(&pack) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(
                    "{}: memo pack missing; its index is ignored",
                    pack.display()
                );
                return Ok(None);
            }
            Err(e) => return Err(e).at(&pack),
        };
        Ok(Some(Self {
            name: name.to_owned(),
            pack,
            file,
            entries,
        }))
    }

    pub(crate) fn entries(&self) -> &[(Digest, Location)] {
        &self.entries
    }

    pub(crate) fn find(&self, key: &Digest) -> Option<Location> {
        self.entries
            .binary_search_by(|(k, _)| k.cmp(key))
            .ok()
            .map(|i| self.entries[i].1)
    }

    /// The whole record at `at`, unchecked (`None` if the pack is shorter than its index says).
    pub(crate) fn record(&self, at: Location) -> Result<Option<Vec<u8>>> {
        read_record(&self.file, &self.pack, at)
    }

    /// The payload of `key` if this segment holds it intact. `Err(Corrupt)` when it holds the key
    /// but the record fails its checks.
    pub(crate) fn get(&self, key: &Digest) -> Result<Lookup> {
        let Some(at) = self.find(key) else {
            return Ok(Lookup::Absent);
        };
        Ok(match self.record(at)? {
            Some(record) => match decode_record(&record, key) {
                Some(payload) => Lookup::Found(payload),
                None => Lookup::Corrupt,
            },
            None => Lookup::Corrupt,
        })
    }

    /// Rewrites the index without `key` (a record found corrupt), so that it is neither read nor
    /// reported again; the bytes stay in the pack until `gc` compacts it.
    pub(crate) fn forget(&mut self, key: &Digest, temp: &TempNamer, tmp_dir: &Path) -> Result<()> {
        self.entries.retain(|(k, _)| k != key);
        let dir = self.pack.parent().unwrap_or(Path::new("."));
        write_index(temp, tmp_dir, &index_path(dir, &self.name), &self.entries)
    }
}

/// What a segment holds for a key.
pub(crate) enum Lookup {
    Found(Vec<u8>),
    Absent,
    Corrupt,
}

fn parse_index(bytes: &[u8]) -> Option<Vec<(Digest, Location)>> {
    let body_len = bytes.len().checked_sub(CHECKSUM_LEN)?;
    let (body, checksum) = bytes.split_at(body_len);
    if blake3::hash(body).as_bytes() != checksum
        || body.len() < INDEX_HEADER_LEN
        || &body[..8] != INDEX_MAGIC
        || u32_at(body, 8) != FORMAT
    {
        return None;
    }
    let count = usize::try_from(u64_at(body, 12)).ok()?;
    if body.len() != INDEX_HEADER_LEN + count.checked_mul(INDEX_ENTRY_LEN)? {
        return None;
    }
    let entries = body[INDEX_HEADER_LEN..]
        .chunks_exact(INDEX_ENTRY_LEN)
        .map(|e| {
            let mut key = [0u8; 32];
            key.copy_from_slice(&e[..32]);
            let at = Location {
                offset: u64_at(e, 32),
                len: u32_at(e, 40),
            };
            (Digest::from_bytes(key), at)
        })
        .collect();
    Some(entries)
}

/// Writes the index of `entries` (sorted here) to `path`, atomically and durably.
pub(crate) fn write_index(
    temp: &TempNamer,
    tmp_dir: &Path,
    path: &Path,
    entries: &[(Digest, Location)],
) -> Result<()> {
    let mut sorted = entries.to_vec();
    sorted.sort_by_key(|e| e.0);
    sorted.dedup_by(|a, b| a.0 == b.0);
    let mut out = Vec::with_capacity(INDEX_HEADER_LEN + sorted.len() * INDEX_ENTRY_LEN + 32);
    out.extend_from_slice(INDEX_MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&(sorted.len() as u64).to_le_bytes());
    for (key, at) in &sorted {
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&at.offset.to_le_bytes());
        out.extend_from_slice(&at.len.to_le_bytes());
    }
    let checksum = blake3::hash(&out);
    out.extend_from_slice(checksum.as_bytes());
    fsutil::write_atomic(temp, tmp_dir, path, &out, Durability::Synced)
}

/// Reads a pack from the start: the location of every intact record, up to the first that is torn
/// or fails its checksum (a writer killed mid-record leaves only the last one so). Also the bytes
/// past the last intact record.
pub(crate) fn scan(path: &Path) -> Result<(Vec<(Digest, Location)>, u64)> {
    let file = File::open(path).at(path)?;
    let total = file.metadata().at(path)?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; PACK_HEADER_LEN as usize];
    if reader.read_exact(&mut header).is_err()
        || &header[..8] != PACK_MAGIC
        || u32_at(&header, 8) != FORMAT
    {
        return Ok((Vec::new(), total));
    }
    let mut entries = Vec::new();
    let mut offset = PACK_HEADER_LEN;
    let mut record = Vec::new();
    loop {
        record.resize(RECORD_HEAD_LEN, 0);
        if reader.read_exact(&mut record).is_err() {
            break;
        }
        let (key, stored_len) = parse_head(&record);
        let len = RECORD_HEAD_LEN + stored_len + CHECKSUM_LEN;
        if offset + len as u64 > total {
            break;
        }
        record.resize(len, 0);
        if reader.read_exact(&mut record[RECORD_HEAD_LEN..]).is_err() {
            break;
        }
        let body_end = len - CHECKSUM_LEN;
        if blake3::hash(&record[..body_end]).as_bytes() != &record[body_end..] {
            break;
        }
        let at = Location {
            offset,
            len: len as u32,
        };
        entries.push((key, at));
        offset += len as u64;
    }
    Ok((entries, total - offset))
}

/// Indexes the pack `name` of `dir` if its writer is gone (its lock is free): `Ok(true)` if it has an
/// index now. An empty pack of a dead writer is removed instead (once an hour old).
pub(crate) fn recover(dir: &Path, name: &str, temp: &TempNamer, tmp_dir: &Path) -> Result<bool> {
    let pack = pack_path(dir, name);
    let Ok(file) = OpenOptions::new().read(true).open(&pack) else {
        return Ok(false); // removed meanwhile (gc, or another recoverer found it empty)
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Ok(false),
        Err(fs::TryLockError::Error(e)) => return Err(e).at(&pack),
    }
    // Sealed meanwhile by its writer, which unlocks only after its index is in place.
    if index_path(dir, name).exists() {
        return Ok(true);
    }
    let (entries, torn) = scan(&pack)?;
    if entries.is_empty() {
        // Removed only when surely abandoned: where advisory locks do not reach across hosts (NFS
        // without a lock manager), a writer that has yet to write its first record may look dead.
        let age = fs::metadata(&pack)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        if age.is_some_and(|a| a > ABANDONED_AFTER) {
            fs::remove_file(&pack).at(&pack)?;
        }
        return Ok(false);
    }
    tracing::info!(
        "{}: indexed {} memo entries left by a stopped run{}",
        pack.display(),
        entries.len(),
        if torn > 0 {
            format!(" ({torn} bytes of a torn last entry ignored)")
        } else {
            String::new()
        }
    );
    write_index(temp, tmp_dir, &index_path(dir, name), &entries)?;
    Ok(true)
}

/// The segment this process appends to: its pack locked while it is being written, the entries
/// written so far in memory (readable at once by this process, by others once sealed).
pub(crate) struct SegmentWriter {
    pub(crate) name: String,
    path: PathBuf,
    file: File,
    end: u64,
    entries: HashMap<Digest, Location>,
}

impl SegmentWriter {
    /// A new, empty segment in `dir`. The pack is made and locked under a temporary name, then
    /// renamed into place, so no other process ever sees it unlocked before it is sealed.
    pub(crate) fn create(dir: &Path, temp: &TempNamer, tmp_dir: &Path) -> Result<Self> {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let tmp = temp.path(tmp_dir, "memo-pack");
        let unique = tmp
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("segment")
            .replace('.', "-");
        let name = format!("{millis:013}-{unique}");
        let mut file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&tmp)
            .at(&tmp)?;
        let made = (|| {
            file.lock().at(&tmp)?;
            file.write_all(PACK_MAGIC).at(&tmp)?;
            file.write_all(&FORMAT.to_le_bytes()).at(&tmp)?;
            let path = pack_path(dir, &name);
            fs::rename(&tmp, &path).at(&path)?;
            Ok(path)
        })();
        let path = match made {
            Ok(path) => path,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        Ok(Self {
            name,
            path,
            file,
            end: PACK_HEADER_LEN,
            entries: HashMap::new(),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn contains(&self, key: &Digest) -> bool {
        self.entries.contains_key(key)
    }

    /// Appends `payload` under `key` (a key already written is not written again).
    pub(crate) fn append(&mut self, key: &Digest, payload: &[u8]) -> Result<()> {
        if self.entries.contains_key(key) {
            return Ok(());
        }
        self.append_record(key, &encode_record(key, payload)?)
    }

    /// Appends a whole record read from another segment (checked by the caller), unchanged.
    pub(crate) fn append_record(&mut self, key: &Digest, record: &[u8]) -> Result<()> {
        if self.entries.contains_key(key) {
            return Ok(());
        }
        self.file.write_all_at(record, self.end).at(&self.path)?;
        let at = Location {
            offset: self.end,
            len: record.len() as u32,
        };
        self.end += record.len() as u64;
        self.entries.insert(*key, at);
        Ok(())
    }

    pub(crate) fn get(&self, key: &Digest) -> Result<Option<Vec<u8>>> {
        let Some(&at) = self.entries.get(key) else {
            return Ok(None);
        };
        Ok(read_record(&self.file, &self.path, at)?.and_then(|r| decode_record(&r, key)))
    }

    /// Makes the segment permanent: the pack reaches the disk, then its index is published (the
    /// commit point), then the lock is released. An empty segment is removed instead.
    pub(crate) fn seal(self, temp: &TempNamer, tmp_dir: &Path) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        if self.entries.is_empty() {
            return fs::remove_file(&self.path).at(&self.path);
        }
        self.file.sync_data().at(&self.path)?;
        let entries: Vec<(Digest, Location)> = self.entries.into_iter().collect();
        write_index(temp, tmp_dir, &index_path(dir, &self.name), &entries)?;
        // Every record was checked as it was written. Best effort: without a stamp, `verify` reads
        // the records.
        if let Some(id) = identity(dir, &self.name) {
            let stamp = stamp_path(dir, &self.name);
            let _ = fsutil::write_atomic(
                temp,
                tmp_dir,
                &stamp,
                id.as_bytes(),
                Durability::Checksummed,
            );
        }
        Ok(())
        // Dropping the file releases the lock.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_only_under_its_key_and_intact() {
        let key = Digest::of_bytes(b"k");
        let payload = vec![7u8; 1000];
        let record = encode_record(&key, &payload).unwrap();
        assert!(
            record.len() < payload.len(),
            "a repetitive payload is compressed"
        );
        assert_eq!(decode_record(&record, &key), Some(payload));
        assert_eq!(decode_record(&record, &Digest::of_bytes(b"other")), None);
        for at in [0, 33, 40, record.len() / 2, record.len() - 1] {
            let mut flipped = record.clone();
            flipped[at] ^= 1;
            assert_eq!(decode_record(&flipped, &key), None, "byte {at} flipped");
        }
        let tiny = encode_record(&key, b"ab").unwrap();
        assert_eq!(
            tiny[32], CODEC_RAW,
            "incompressible payloads are stored raw"
        );
        assert_eq!(decode_record(&tiny, &key).as_deref(), Some(&b"ab"[..]));
    }

    #[test]
    fn an_index_that_fails_its_checksum_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (temp, tmp) = (TempNamer::new(), dir.path().to_owned());
        let path = dir.path().join("x.idx");
        let at = Location {
            offset: 12,
            len: 99,
        };
        let entries = vec![(Digest::of_bytes(b"b"), at), (Digest::of_bytes(b"a"), at)];
        write_index(&temp, &tmp, &path, &entries).unwrap();
        let bytes = fs::read(&path).unwrap();
        let parsed = parse_index(&bytes).unwrap();
        assert!(parsed.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
        let mut flipped = bytes.clone();
        flipped[30] ^= 1;
        assert!(parse_index(&flipped).is_none());
        assert!(parse_index(&bytes[..bytes.len() - 1]).is_none());
    }
}
