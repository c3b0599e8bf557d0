//! Artifacts made of parts (issue 27): a stage run by parts redoes only the parts whose inputs
//! changed, readers see one table, gc keeps the parts of what it keeps, and the friendly view is a
//! folder of part files.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use umgf_core::Digest;
use umgf_core::schema::{Artifact, ImageStatus, Split, Tweet};
use umgf_core::stages::Artifacts;
use umgf_core::store::gc::{self, GcConfig};
use umgf_core::store::parts::PartCutter;
use umgf_core::store::{ByParts, RunOutcome, RunSpec, Store};

fn tweet(i: usize) -> Tweet {
    let tokens = vec![format!("word{i}"), "here".to_owned()];
    Tweet {
        id: format!("t{i}"),
        split: Split::Dump,
        text_digest: Tweet::text_digest_of(&tokens),
        caption: None,
        caption_digest: None,
        tokens,
        labels: None,
        image_path: None,
        image_status: ImageStatus::None,
        image_digest: None,
        source_line: i as u32 + 1,
    }
}

/// An "ingest" of tweets `0..n` written as parts cut as `ingest` cuts them.
fn ingest(store: &Store, n: usize) -> RunOutcome {
    let spec = RunSpec {
        stage: "ingest".into(),
        version: 1,
        params: json!({ "n": n }),
        inputs: BTreeMap::new(),
    };
    store
        .run(&spec, |outputs| {
            let rows: Vec<Tweet> = (0..n).map(tweet).collect();
            let mut cutter = PartCutter::default();
            let mut start = 0;
            for (i, t) in rows.iter().enumerate() {
                let content = Digest::of_strings([t.id.as_str(), &t.text_digest.hex()]);
                if cutter.ends_after(&content) || i + 1 == rows.len() {
                    Tweet::write(&outputs.part_path("tweets.parquet"), &rows[start..=i]).unwrap();
                    start = i + 1;
                }
            }
            Ok(json!({ "tweets": n }))
        })
        .unwrap()
}

/// A per-record stage: each tweet's tokens upper-cased, run by parts; counts the parts it computed.
fn shout(store: &Store, tweets: Digest, computed: &Cell<usize>) -> RunOutcome {
    let spec = RunSpec {
        stage: "shout".into(),
        version: 1,
        params: json!({}),
        inputs: BTreeMap::from([("tweets".to_owned(), tweets)]),
    };
    let plan = ByParts {
        inputs: &["tweets"],
        same_counts: &["width"],
        joined: &["report.txt"],
        ..ByParts::default()
    };
    store
        .run_by_parts(&spec, &plan, |part, outputs| {
            computed.set(computed.get() + 1);
            let mut rows = Tweet::read(&store.blob_path(&part["tweets"]))?;
            for row in &mut rows {
                row.tokens = row.tokens.iter().map(|t| t.to_uppercase()).collect();
            }
            Tweet::write(&outputs.path("shouted.parquet"), &rows)?;
            std::fs::write(outputs.path("report.txt"), format!("{} rows\n", rows.len())).unwrap();
            Ok(json!({ "tweets": rows.len(), "width": 7, "memo_computed": rows.len() }))
        })
        .unwrap()
}

fn digest(outcome: &RunOutcome, name: &str) -> Digest {
    outcome.manifest.output(name).unwrap().digest
}

#[test]
fn a_grown_dump_redoes_only_the_parts_that_changed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let computed = Cell::new(0);

    let old = ingest(&store, 5000);
    let parts = store
        .parts(&digest(&old, "tweets.parquet"))
        .unwrap()
        .unwrap();
    assert!(parts.len() >= 3, "{} parts for 5000 tweets", parts.len());
    let first = shout(&store, digest(&old, "tweets.parquet"), &computed);
    assert_eq!(computed.get(), parts.len());
    let counts = &first.manifest.counts;
    assert_eq!(counts["tweets"], 5000);
    assert_eq!(counts["width"], 7, "the same in every part: not summed");
    assert_eq!(counts["memo_computed"], 5000);
    assert_eq!(counts["parts"], parts.len());
    assert_eq!(counts["parts_reused"], 0);

    // Readers see one table, in order; a joined output is one file.
    let rows = Tweet::read(&store.blob_path(&digest(&first, "shouted.parquet"))).unwrap();
    assert_eq!(rows.len(), 5000);
    assert!(
        rows.iter()
            .enumerate()
            .all(|(i, r)| r.id == format!("t{i}"))
    );
    assert_eq!(rows[3].tokens[0], "WORD3");
    let report = std::fs::read_to_string(store.blob_path(&digest(&first, "report.txt"))).unwrap();
    assert_eq!(report.lines().count(), parts.len());

    // 1% more tweets, appended: the parts before the last old one are found by key.
    computed.set(0);
    let grown = ingest(&store, 5050);
    let grown_parts = store
        .parts(&digest(&grown, "tweets.parquet"))
        .unwrap()
        .unwrap();
    assert_eq!(grown_parts[..parts.len() - 1], parts[..parts.len() - 1]);
    let second = shout(&store, digest(&grown, "tweets.parquet"), &computed);
    let redone = grown_parts.len() - (parts.len() - 1);
    assert_eq!(computed.get(), redone);
    let counts = &second.manifest.counts;
    assert_eq!(counts["tweets"], 5050);
    assert_eq!(counts["parts_reused"], parts.len() - 1);
    let redone_rows = 5050 - rows_in(&store, &parts[..parts.len() - 1]);
    assert_eq!(
        counts["memo_computed"], redone_rows,
        "only the redone parts' work"
    );
    assert_eq!(
        Tweet::read(&store.blob_path(&digest(&second, "shouted.parquet")))
            .unwrap()
            .len(),
        5050
    );

    // The same dump again is a hit of the whole run.
    computed.set(0);
    assert!(shout(&store, digest(&grown, "tweets.parquet"), &computed).hit);
    assert_eq!(computed.get(), 0);
    assert!(store.verify().unwrap().is_valid());

    // A lost part makes the stage's run (and that part's run) be redone, not read half.
    let lost = store
        .parts(&digest(&second, "shouted.parquet"))
        .unwrap()
        .unwrap()[0]
        .digest;
    std::fs::remove_file(store.blob_path(&lost)).unwrap();
    assert!(!store.verify().unwrap().is_valid());
    let again = shout(&store, digest(&grown, "tweets.parquet"), &computed);
    assert!(!again.hit);
    assert_eq!(computed.get(), 1);
    assert_eq!(
        digest(&again, "shouted.parquet"),
        digest(&second, "shouted.parquet")
    );
    assert!(store.verify().unwrap().is_valid());
}

fn rows_in(store: &Store, parts: &[umgf_core::store::OutputEntry]) -> usize {
    parts
        .iter()
        .map(|p| Tweet::read(&store.blob_path(&p.digest)).unwrap().len())
        .sum()
}

#[test]
fn the_view_is_a_folder_of_parts_and_gc_keeps_what_it_shows() {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = Artifacts::open(dir.path()).unwrap();
    let store = &artifacts.store;
    let computed = Cell::new(0);
    let old = ingest(store, 3000);
    let first = shout(store, digest(&old, "tweets.parquet"), &computed);
    let list = digest(&first, "shouted.parquet");
    let link = artifacts
        .link_view("dump", "shouted.parquet", &list)
        .unwrap();
    let files = part_files(&link);
    let parts = store.parts(&list).unwrap().unwrap();
    assert_eq!(files.len(), parts.len());
    assert_eq!(files[0], "part-00000.parquet");
    let read: usize = files
        .iter()
        .map(|f| Tweet::read(&link.join(f)).unwrap().len())
        .sum();
    assert_eq!(read, 3000);

    // Another version replaces the view, and the old folder goes.
    let grown = ingest(store, 3100);
    let second = shout(store, digest(&grown, "tweets.parquet"), &computed);
    artifacts
        .link_view(
            "dump",
            "shouted.parquet",
            &digest(&second, "shouted.parquet"),
        )
        .unwrap();
    let folders = std::fs::read_dir(dir.path().join("dump")).unwrap().count();
    assert_eq!(folders, 2, "the link and its folder");

    // gc keeps only the last run of each stage, but every part of what it keeps.
    let config = GcConfig {
        keep: 1,
        ..GcConfig::default()
    };
    let report = gc::collect(store, dir.path(), &config).unwrap();
    assert!(report.runs_removed > 0, "{report:?}");
    assert!(store.verify().unwrap().is_valid());
    computed.set(0);
    let kept = shout(store, digest(&grown, "tweets.parquet"), &computed);
    assert!(kept.hit);
    let rows = Tweet::read(&link.join(&part_files(&link)[0])).unwrap();
    assert!(!rows.is_empty());
    // The kept parts' runs are still found: a new list over them redoes nothing.
    std::fs::remove_file(
        store
            .root()
            .join("runs")
            .join(format!("{}.json", kept.manifest.key)),
    )
    .unwrap();
    let redone = shout(store, digest(&grown, "tweets.parquet"), &computed);
    assert_eq!(computed.get(), 0);
    assert_eq!(
        redone.manifest.counts["parts_reused"],
        redone.manifest.counts["parts"]
    );
}

fn part_files(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}
