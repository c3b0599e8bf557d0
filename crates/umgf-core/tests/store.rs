//! The content-addressed store: hits do no work, changes re-run, identical outputs cut off downstream,
//! corruption is detected and redone, a killed writer leaves the store valid, and locks serialise.
//! Its own test binary in the core crate: it links no libtorch, so it builds and starts in seconds.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use umgf_core::Digest;
use umgf_core::store::{Level, RunOutcome, RunSpec, Store};

fn spec(
    stage: &str,
    version: u32,
    params: serde_json::Value,
    inputs: &[(&str, Digest)],
) -> RunSpec {
    RunSpec {
        stage: stage.to_owned(),
        version,
        params,
        inputs: inputs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// Runs `spec`, writing `content` as output "out", and counts how often the work really ran.
fn run_writing(store: &Store, spec: &RunSpec, content: &[u8], work_done: &Cell<u32>) -> RunOutcome {
    store
        .run(spec, |outputs| {
            work_done.set(work_done.get() + 1);
            std::fs::write(outputs.path("out"), content).unwrap();
            Ok(json!({"bytes": content.len()}))
        })
        .unwrap()
}

fn output_digest(outcome: &RunOutcome) -> Digest {
    outcome.manifest.output("out").unwrap().digest
}

#[test]
fn cache_hit_does_no_work() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let work = Cell::new(0);
    let s = spec(
        "a",
        1,
        json!({"k": 1}),
        &[("in", Digest::of_bytes(b"input"))],
    );
    let first = run_writing(&store, &s, b"result", &work);
    assert!(!first.hit);
    let second = run_writing(&store, &s, b"result", &work);
    assert!(second.hit);
    assert_eq!(work.get(), 1);
    assert_eq!(first.manifest, second.manifest);
    // The manifest records what was run.
    assert_eq!(second.manifest.spec.params, json!({"k": 1}));
    assert_eq!(second.manifest.counts["bytes"], 6);
    // A reopened store (a new process) sees the same.
    let reopened = Store::open(dir.path()).unwrap();
    assert!(run_writing(&reopened, &s, b"result", &work).hit);
}

#[test]
fn changed_parameter_input_or_version_reruns() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let work = Cell::new(0);
    let input = Digest::of_bytes(b"input");
    run_writing(
        &store,
        &spec("a", 1, json!({"k": 1}), &[("in", input)]),
        b"r",
        &work,
    );
    run_writing(
        &store,
        &spec("a", 1, json!({"k": 2}), &[("in", input)]),
        b"r",
        &work,
    );
    run_writing(
        &store,
        &spec(
            "a",
            1,
            json!({"k": 1}),
            &[("in", Digest::of_bytes(b"other"))],
        ),
        b"r",
        &work,
    );
    run_writing(
        &store,
        &spec("a", 2, json!({"k": 1}), &[("in", input)]),
        b"r",
        &work,
    );
    assert_eq!(work.get(), 4);
    // Key order in parameters does not matter: canonical JSON.
    run_writing(
        &store,
        &spec("b", 1, json!({"x": 1, "y": 2}), &[]),
        b"r",
        &work,
    );
    let hit = run_writing(
        &store,
        &spec("b", 1, json!({"y": 2, "x": 1}), &[]),
        b"r",
        &work,
    );
    assert!(hit.hit);
}

#[test]
fn identical_output_cuts_off_downstream() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (up, down) = (Cell::new(0), Cell::new(0));
    let upstream_v1 = run_writing(&store, &spec("up", 1, json!({}), &[]), b"same bytes", &up);
    let downstream =
        |upstream: &RunOutcome| spec("down", 1, json!({}), &[("up", output_digest(upstream))]);
    run_writing(&store, &downstream(&upstream_v1), b"derived", &down);

    // The upstream stage changes (new code version) but reproduces its output byte for byte.
    let upstream_v2 = run_writing(&store, &spec("up", 2, json!({}), &[]), b"same bytes", &up);
    assert!(!upstream_v2.hit && upstream_v2.outputs_unchanged);
    let again = run_writing(&store, &downstream(&upstream_v2), b"derived", &down);
    assert!(again.hit, "downstream must not re-run");
    assert_eq!((up.get(), down.get()), (2, 1));

    // A real change upstream does reach downstream.
    let upstream_v3 = run_writing(&store, &spec("up", 3, json!({}), &[]), b"new bytes", &up);
    assert!(!upstream_v3.outputs_unchanged);
    assert!(!run_writing(&store, &downstream(&upstream_v3), b"derived", &down).hit);
}

#[test]
fn corrupted_object_is_detected_and_redone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let work = Cell::new(0);
    let s = spec("a", 1, json!({}), &[]);
    let first = run_writing(&store, &s, b"precious result", &work);
    let blob = store.blob_path(&output_digest(&first));
    std::fs::write(&blob, b"precious resulT").unwrap(); // one flipped byte, same length

    let report = store.verify().unwrap();
    assert!(!report.is_valid());
    assert!(
        report.problems[0].contains("content does not match its name"),
        "{:?}",
        report.problems
    );

    assert!(
        store.lookup(&s).unwrap().is_none(),
        "a corrupt output is not a hit"
    );
    let redone = run_writing(&store, &s, b"precious result", &work);
    assert!(!redone.hit);
    assert_eq!(work.get(), 2);
    assert_eq!(std::fs::read(&blob).unwrap(), b"precious result");
    assert!(store.verify().unwrap().is_valid());

    // A deleted object is redone the same way.
    std::fs::remove_file(&blob).unwrap();
    assert!(!run_writing(&store, &s, b"precious result", &work).hit);
}

#[test]
fn memo_computes_only_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let memo = store.memo("lengths").unwrap();
    let records = ["a", "bb", "ccc", "dddd"];
    let keys: Vec<Digest> = records
        .iter()
        .map(|r| Digest::of_bytes(r.as_bytes()))
        .collect();
    let length = |i: usize| records[i].len().to_string().into_bytes();

    let (first, stats) = memo
        .get_or_compute(&keys[..2], 10, |missing| {
            Ok(missing.iter().map(|&i| length(i)).collect())
        })
        .unwrap();
    assert_eq!(first, vec![b"1".to_vec(), b"2".to_vec()]);
    assert_eq!((stats.reused, stats.computed), (0, 2));

    // A new dump sharing two old records: only the two new ones are computed, in one batch.
    let asked = Cell::new(Vec::new());
    let (all, stats) = memo
        .get_or_compute(&keys, 10, |missing| {
            asked.set(missing.to_vec());
            Ok(missing.iter().map(|&i| length(i)).collect())
        })
        .unwrap();
    assert_eq!(asked.take(), vec![2, 3]);
    assert_eq!((stats.reused, stats.computed), (2, 2));
    assert_eq!(all[3], b"4");
    assert!(
        memo.get_or_compute(&[Digest::of_bytes(b"new")], 10, |_| Ok(vec![]))
            .is_err()
    );
    // Chunks of missing records are computed and stored one at a time.
    let calls = Cell::new(0);
    let fresh: Vec<Digest> = (0..5u8).map(|i| Digest::of_bytes(&[i, 42])).collect();
    memo.get_or_compute(&fresh, 2, |missing| {
        calls.set(calls.get() + 1);
        Ok(missing.iter().map(|_| b"x".to_vec()).collect())
    })
    .unwrap();
    assert_eq!(calls.get(), 3);
}

#[test]
fn concurrent_runs_of_one_key_work_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec("slow", 1, json!({}), &[]);
    let work = std::sync::atomic::AtomicU32::new(0);
    let outcomes: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let store = Store::open(dir.path()).unwrap();
                    let outcome = store
                        .run(&s, |outputs| {
                            work.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(200));
                            std::fs::write(outputs.path("out"), b"x").unwrap();
                            Ok(json!({}))
                        })
                        .unwrap();
                    outcome.hit
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(work.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(outcomes.iter().filter(|hit| !**hit).count(), 1);
}

const CHILD_ENV: &str = "UMGF_TEST_STORE_CHILD";
const CHILD_TEST: &str = "child_writes_slowly";

/// Not a test: the child process of `killed_writer_leaves_store_valid`, which kills it mid-write.
#[test]
#[ignore = "child process of store::killed_writer_leaves_store_valid"]
fn child_writes_slowly() {
    let dir = std::env::var(CHILD_ENV).expect("run by killed_writer_leaves_store_valid");
    let store = Store::open(&dir).unwrap();
    store
        .run(&spec("big", 1, json!({}), &[]), |outputs| {
            use std::io::Write;
            let mut file = std::fs::File::create(outputs.path("out")).unwrap();
            for _ in 0..1000 {
                file.write_all(&[7u8; 4096]).unwrap();
                file.flush().unwrap();
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(json!({}))
        })
        .unwrap();
}

#[test]
fn killed_writer_leaves_store_valid() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([CHILD_TEST, "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ENV, dir.path())
        .spawn()
        .unwrap();
    // Wait until the child is mid-write: its temporary output exists and has grown.
    let tmp = dir.path().join("tmp");
    let started = Instant::now();
    while largest_file(&tmp) < 64 * 1024 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "child never started writing"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "child ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let store = Store::open(dir.path()).unwrap();
    let report = store.verify().unwrap();
    assert!(report.is_valid(), "{:?}", report.problems);
    assert_eq!(
        (report.runs, report.blobs),
        (0, 0),
        "nothing half-written was published"
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "the dead writer's temp file is gone"
    );

    // The next run finishes the work.
    let work = Cell::new(0);
    let outcome = run_writing(
        &store,
        &spec("big", 1, json!({}), &[]),
        &[7u8; 4096 * 1000],
        &work,
    );
    assert!(!outcome.hit);
    assert!(store.verify().unwrap().is_valid());
}

fn largest_file(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Runs `spec` writing `content` as output "out"; the work also stores a memo entry in `namespace`.
fn run_with_memo(store: &Store, spec: &RunSpec, content: &[u8], namespace: Option<&str>) -> Digest {
    let outcome = store
        .run(spec, |outputs| {
            if let Some(ns) = namespace {
                store.memo(ns)?.put(&Digest::of_bytes(content), content)?;
            }
            std::fs::write(outputs.path("out"), content).unwrap();
            Ok(json!({}))
        })
        .unwrap();
    // Manifests record whole seconds: the next run must finish later to be "newer".
    std::thread::sleep(Duration::from_millis(1050));
    output_digest(&outcome)
}

#[test]
fn gc_keeps_linked_recent_and_upstream_runs_and_removes_the_rest() {
    use umgf_core::store::gc::{GcConfig, collect};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let a = |k: u32| spec("a", 1, json!({ "k": k }), &[]);
    let c = |k: u32| spec("c", 1, json!({ "k": k }), &[]);
    // Stage a three times; b reads the first a's output; c twice, its first run alone using "old".
    let a1 = run_with_memo(&store, &a(1), b"a1", Some("m"));
    let a2 = run_with_memo(&store, &a(2), b"a2", Some("m"));
    let b = spec("b", 1, json!({}), &[("in", a1)]);
    run_with_memo(&store, &b, b"b", None);
    run_with_memo(&store, &c(0), b"c0", Some("old"));
    run_with_memo(&store, &c(1), b"c1", None);
    let a3 = run_with_memo(&store, &a(3), b"a3", Some("m"));
    // A link to a2's output (as artifacts/<dataset>/ holds them), an old memo entry of "m", the
    // checkpoints of a finished run and of an unfinished one.
    std::fs::create_dir_all(dir.path().join("ds")).unwrap();
    std::os::unix::fs::symlink(store.blob_path(&a2), dir.path().join("ds/out")).unwrap();
    // (No run used the stale entry: written outside any run, it is in no run's list.)
    store
        .memo("m")
        .unwrap()
        .put(&Digest::of_bytes(b"stale"), b"stale")
        .unwrap();
    let done = store.checkpoints(&a(3).key());
    done.write("state", |p| {
        std::fs::write(p, b"x").unwrap();
        Ok(())
    })
    .unwrap();
    let unfinished = store.checkpoints(&a(9).key());
    unfinished
        .write("state", |p| {
            std::fs::write(p, b"x").unwrap();
            Ok(())
        })
        .unwrap();

    let config = GcConfig {
        keep: 1,
        ..GcConfig::default()
    };
    let dry = collect(
        &store,
        dir.path(),
        &GcConfig {
            dry_run: true,
            ..config.clone()
        },
    )
    .unwrap();
    let report = collect(&store, dir.path(), &config).unwrap();
    assert_eq!(
        dry.bytes_removed, report.bytes_removed,
        "a dry run reports what gc removes"
    );
    // Kept: a3 (the latest a), a2 (linked), a1 (read by b), b, c1 (the latest c). Removed: c0.
    assert_eq!((report.runs_kept, report.runs_removed), (5, 1));
    // Blobs: their outputs, and the lists of memo keys of the runs that used the memo (a1, a2, a3
    // kept; c0 removed).
    assert_eq!((report.blobs_kept, report.blobs_removed), (5 + 3, 1 + 1));
    // "m": the three runs' entries kept, the stale one removed; "old": only c0 used it.
    assert_eq!(
        (report.memo_entries_kept, report.memo_entries_removed),
        (3, 2)
    );
    assert_eq!(report.checkpoints_removed, 1);
    assert!(unfinished.path("state").is_file() && !done.path("state").exists());
    for (digest, kept) in [
        (a1, true),
        (a2, true),
        (a3, true),
        (Digest::of_bytes(b"c0"), false),
    ] {
        assert_eq!(store.blob_path(&digest).exists(), kept);
    }
    assert!(
        store.lookup(&c(0)).unwrap().is_none(),
        "a removed run is redone"
    );
    assert!(store.lookup(&a(1)).unwrap().is_some());
    let verified = store.verify().unwrap();
    assert!(verified.is_valid(), "{:?}", verified.problems);
    // Collecting again finds nothing more.
    let again = collect(&store, dir.path(), &config).unwrap();
    assert_eq!(
        (
            again.runs_removed,
            again.blobs_removed,
            again.memo_entries_removed
        ),
        (0, 0, 0)
    );
}

#[test]
fn gc_refuses_while_a_run_is_in_progress() {
    use umgf_core::store::gc::{GcConfig, collect};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let (started, start) = std::sync::mpsc::channel();
    let (finish, finished) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let store = &store;
        scope.spawn(move || {
            store
                .run(&spec("slow", 1, json!({}), &[]), |outputs| {
                    started.send(()).unwrap();
                    finished.recv().unwrap();
                    std::fs::write(outputs.path("out"), b"x").unwrap();
                    Ok(json!({}))
                })
                .unwrap();
        });
        start.recv().unwrap();
        let err = collect(store, dir.path(), &GcConfig::default()).unwrap_err();
        assert!(err.to_string().contains("in progress"), "{err}");
        finish.send(()).unwrap();
    });
    let report = collect(&store, dir.path(), &GcConfig::default()).unwrap();
    assert_eq!(report.runs_kept, 1);
}

#[test]
fn a_shared_run_is_found_again_by_another_store_through_the_user_level() {
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| {
        let user = Store::open(dir.path().join("user")).unwrap();
        Store::open(dir.path().join(name))
            .unwrap()
            .with_user_level(user)
    };
    let s = spec(
        "chunker",
        1,
        json!({"epochs": 2}),
        &[("train", Digest::of_bytes(b"conll"))],
    );
    let work = Cell::new(0);
    let shared = |store: &Store| {
        store
            .run_shared(&s, |outputs| {
                work.set(work.get() + 1);
                std::fs::write(outputs.path("model"), b"weights").unwrap();
                Ok(json!({}))
            })
            .unwrap()
    };
    let first = shared(&open("clone-a"));
    assert!(!first.hit);
    // A new artifacts folder (a new clone) sees the run in the user level (what `status` reports)
    // and copies it from there: no work.
    let second = open("clone-b");
    let (_, level) = second
        .lookup_shared(&s)
        .unwrap()
        .expect("found in the user level");
    assert_eq!(level, Level::User);
    assert!(shared(&second).hit);
    assert_eq!(second.lookup_shared(&s).unwrap().unwrap().1, Level::Here);
    assert_eq!(work.get(), 1);
    let model = first.manifest.output("model").unwrap().digest;
    assert_eq!(std::fs::read(second.blob_path(&model)).unwrap(), b"weights");
    assert!(second.verify().unwrap().is_valid());
    // A corrupt copy in the user level is not trusted: the run is redone and the level repaired.
    let user = Store::open(dir.path().join("user")).unwrap();
    std::fs::write(user.blob_path(&model), b"tampered").unwrap();
    assert!(!shared(&open("clone-c")).hit);
    assert_eq!(work.get(), 2);
    assert_eq!(std::fs::read(user.blob_path(&model)).unwrap(), b"weights");
    // Without a user level, run_shared is a plain run.
    let alone = Store::open(dir.path().join("alone")).unwrap();
    assert!(!shared(&alone).hit);
}
