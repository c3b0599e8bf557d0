//! The packed memo: entries of a run share a few files, a hit writes nothing, concurrent writers
//! never corrupt one another, a killed writer's pack is indexed by the next run, corruption is never
//! returned, and an old store's one-file-per-entry memo is read and packed by `gc`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use umgf_core::Digest;
use umgf_core::store::gc::{GcConfig, collect};
use umgf_core::store::{RunSpec, Store, write_legacy_entry};

fn spec(stage: &str, k: u32) -> RunSpec {
    RunSpec {
        stage: stage.to_owned(),
        version: 1,
        params: json!({ "k": k }),
        inputs: BTreeMap::new(),
    }
}

fn key(i: u32) -> Digest {
    Digest::of_bytes(&i.to_le_bytes())
}

fn payload(i: u32) -> Vec<u8> {
    format!("payload of record {i} ")
        .repeat(1 + i as usize % 7)
        .into_bytes()
}

/// A run of `spec` whose work stores (or finds) `keys` in the memo namespace "m".
fn run_storing(store: &Store, spec: &RunSpec, keys: impl IntoIterator<Item = u32>) {
    let keys: Vec<u32> = keys.into_iter().collect();
    store
        .run(spec, |outputs| {
            let memo = store.memo("m")?;
            let digests: Vec<Digest> = keys.iter().map(|&i| key(i)).collect();
            let (payloads, _) = memo.get_or_compute(&digests, 64, |missing| {
                Ok(missing.iter().map(|&j| payload(keys[j])).collect())
            })?;
            for (&i, got) in keys.iter().zip(&payloads) {
                assert_eq!(got, &payload(i));
            }
            std::fs::write(outputs.path("out"), format!("{keys:?}")).unwrap();
            Ok(json!({}))
        })
        .unwrap();
}

/// Every file below `dir`, with its size and modification time.
fn listing(dir: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                out.insert(path, (meta.len(), meta.modified().unwrap()));
            }
        }
    }
    out
}

fn memo_dir(root: &Path) -> PathBuf {
    root.join("memo/m")
}

#[test]
fn a_run_packs_its_entries_into_one_segment_and_a_hit_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    run_storing(&store, &spec("a", 1), 0..1000);
    let files = listing(&memo_dir(dir.path()));
    assert_eq!(
        files.len(),
        3,
        "one pack, its index and its stamp: {files:?}"
    );

    // Another process (another store handle) finds every entry; its run writes nothing in the memo.
    std::thread::sleep(Duration::from_millis(20));
    let again = Store::open(dir.path()).unwrap();
    run_storing(&again, &spec("a", 2), 0..1000);
    assert_eq!(listing(&memo_dir(dir.path())), files, "hits touch nothing");
    let manifest = again.lookup(&spec("a", 2)).unwrap().unwrap();
    let refs = manifest.memo_refs.unwrap()["m"];
    assert_eq!(
        std::fs::metadata(again.blob_path(&refs)).unwrap().len(),
        1000 * 32,
        "the run lists the 1000 keys it used"
    );
    assert!(again.verify().unwrap().is_valid());
}

#[test]
fn payloads_are_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let memo = store.memo("m").unwrap();
    let zeros = vec![0u8; 1 << 20];
    memo.put(&key(1), &zeros).unwrap();
    store.seal_memo().unwrap();
    let bytes: u64 = listing(&memo_dir(dir.path())).values().map(|v| v.0).sum();
    assert!(bytes < 10_000, "a megabyte of zeros takes {bytes} bytes");
    assert_eq!(memo.get(&key(1)).unwrap(), Some(zeros));
}

#[test]
fn concurrent_writers_never_corrupt_one_another() {
    let dir = tempfile::tempdir().unwrap();
    std::thread::scope(|scope| {
        for w in 0..4u32 {
            let root = dir.path().to_owned();
            scope.spawn(move || {
                // A store per thread: as separate processes, each with its own segment and lock.
                let store = Store::open(root).unwrap();
                let own = (w * 1000)..(w * 1000 + 250);
                run_storing(&store, &spec("w", w), own.chain(10_000..10_050));
            });
        }
    });
    let store = Store::open(dir.path()).unwrap();
    let memo = store.memo("m").unwrap();
    for w in 0..4u32 {
        for i in (w * 1000..w * 1000 + 250).chain(10_000..10_050) {
            assert_eq!(memo.get(&key(i)).unwrap(), Some(payload(i)), "record {i}");
        }
    }
    let report = store.verify().unwrap();
    assert!(report.is_valid(), "{:?}", report.problems);
    assert_eq!(report.memo_segments, 4);
}

#[test]
fn a_killed_writers_pack_is_indexed_by_the_next_run_up_to_its_torn_entry() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        run_storing(&store, &spec("a", 1), 0..10);
    }
    // As a kill leaves it: no index, the last record cut short.
    let files: Vec<PathBuf> = listing(&memo_dir(dir.path())).into_keys().collect();
    let index = files
        .iter()
        .find(|p| p.extension().unwrap() == "idx")
        .unwrap();
    let pack = files
        .iter()
        .find(|p| p.extension().unwrap() == "pack")
        .unwrap();
    std::fs::remove_file(index).unwrap();
    let length = std::fs::metadata(pack).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(pack).unwrap();
    file.set_len(length - 7).unwrap();
    drop(file);

    let store = Store::open(dir.path()).unwrap();
    let memo = store.memo("m").unwrap();
    assert!(index.exists(), "the pack is indexed again");
    let found = (0..10u32)
        .filter(|&i| memo.get(&key(i)).unwrap() == Some(payload(i)))
        .count();
    assert_eq!(found, 9, "every entry but the torn one");
    assert!(store.verify().unwrap().is_valid());
    // The next run computes the torn one again.
    run_storing(&store, &spec("a", 2), 0..10);
    assert!(memo.contains(&key(9)));
}

#[test]
fn a_live_writers_pack_is_left_alone_until_it_is_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Store::open(dir.path()).unwrap();
    writer.memo("m").unwrap().put(&key(1), b"one").unwrap();
    let reader = Store::open(dir.path()).unwrap();
    assert_eq!(reader.memo("m").unwrap().get(&key(1)).unwrap(), None);
    assert_eq!(
        listing(&memo_dir(dir.path())).len(),
        1,
        "no index written for it"
    );
    writer.seal_memo().unwrap();
    assert_eq!(
        reader.memo("m").unwrap().get(&key(1)).unwrap().as_deref(),
        Some(&b"one"[..])
    );
}

#[test]
fn a_corrupt_entry_is_never_returned_and_is_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        run_storing(&store, &spec("a", 1), 0..3);
    }
    let pack = listing(&memo_dir(dir.path()))
        .into_keys()
        .find(|p| p.extension().unwrap() == "pack")
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    let at = bytes.len() - 40; // inside the last record's payload
    bytes[at] ^= 1;
    std::fs::write(&pack, &bytes).unwrap();

    let store = Store::open(dir.path()).unwrap();
    assert!(!store.verify().unwrap().is_valid());
    let memo = store.memo("m").unwrap();
    let corrupt: Vec<u32> = (0..3)
        .filter(|&i| memo.get(&key(i)).unwrap().is_none())
        .collect();
    assert_eq!(corrupt.len(), 1, "exactly the flipped entry is refused");
    assert!(
        store.verify().unwrap().is_valid(),
        "and dropped from its index"
    );
    run_storing(&store, &spec("a", 2), 0..3);
    assert_eq!(
        memo.get(&key(corrupt[0])).unwrap(),
        Some(payload(corrupt[0]))
    );
    assert!(store.memo("../escape").is_err());
}

#[test]
fn gc_compacts_segments_into_one_keeping_what_kept_runs_used() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = Store::open(&root).unwrap();
    for k in 0..5u32 {
        run_storing(&store, &spec("a", k), (k * 10)..(k * 10 + 20));
        std::thread::sleep(Duration::from_millis(1050)); // manifests record whole seconds
    }
    assert_eq!(store.verify().unwrap().memo_segments, 5);
    let report = collect(
        &store,
        dir.path(),
        &GcConfig {
            keep: 2,
            ..GcConfig::default()
        },
    )
    .unwrap();
    // Kept: runs 3 and 4, keys 30..60. Removed: 0..30.
    assert_eq!(
        (report.memo_entries_kept, report.memo_entries_removed),
        (30, 30)
    );
    assert_eq!(
        (report.memo_segments_before, report.memo_segments_after),
        (5, 1)
    );
    let store = Store::open(&root).unwrap();
    let memo = store.memo("m").unwrap();
    for i in 0..60u32 {
        assert_eq!(memo.get(&key(i)).unwrap().is_some(), i >= 30, "record {i}");
    }
    let verified = store.verify().unwrap();
    assert!(verified.is_valid(), "{:?}", verified.problems);
    assert_eq!(listing(&memo_dir(&root)).len(), 3, "one segment");
    let again = collect(
        &store,
        dir.path(),
        &GcConfig {
            keep: 2,
            ..GcConfig::default()
        },
    )
    .unwrap();
    assert_eq!(
        (again.memo_entries_removed, again.memo_segments_after),
        (0, 1)
    );
}

fn set_age(path: &Path, age: Duration) {
    let file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.set_modified(std::time::SystemTime::now() - age)
        .unwrap();
}

#[test]
fn an_old_stores_loose_entries_are_read_and_gc_packs_the_ones_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    {
        let store = Store::open(&root).unwrap();
        run_storing(&store, &spec("a", 1), 0..5);
    }
    // The store as an old clone left it: loose entries, and a manifest without its memo keys.
    let recent = write_legacy_entry(&memo_dir(&root), &key(100), b"recent").unwrap();
    let old = write_legacy_entry(&memo_dir(&root), &key(101), b"old").unwrap();
    set_age(&old, Duration::from_secs(2 * 86400));
    let manifest_path = root.join(format!("runs/{}.json", spec("a", 1).key()));
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest.as_object_mut().unwrap().remove("memo_refs");
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();

    let store = Store::open(&root).unwrap();
    let memo = store.memo("m").unwrap();
    assert_eq!(
        memo.get(&key(100)).unwrap().as_deref(),
        Some(&b"recent"[..])
    );
    assert!(store.verify().unwrap().is_valid());
    drop(memo);

    let report = collect(&store, dir.path(), &GcConfig::default()).unwrap();
    // The legacy run keeps every packed entry and the loose ones used since it started.
    assert_eq!(report.memo_entries_packed, 1);
    assert_eq!(
        (report.memo_entries_kept, report.memo_entries_removed),
        (6, 1)
    );
    assert!(!recent.exists() && !old.exists() && !recent.parent().unwrap().exists());
    let store = Store::open(&root).unwrap();
    let memo = store.memo("m").unwrap();
    assert_eq!(
        memo.get(&key(100)).unwrap().as_deref(),
        Some(&b"recent"[..])
    );
    assert_eq!(memo.get(&key(101)).unwrap(), None);
    assert_eq!(memo.get(&key(4)).unwrap(), Some(payload(4)));
    assert_eq!(listing(&memo_dir(&root)).len(), 3, "one segment");
}
