//! The catalogue of bad inputs: each fails with a message naming the file and line, leaves nothing in
//! the store, and with `--on-error skip` is left out and listed in the report instead.
use std::path::{Path, PathBuf};

use umgf::dataset::{CaptionsChoice, Dataset};
use umgf::io::Limits;
use umgf::stages::Artifacts;
use umgf::stages::ingest::{self, OnError};

use crate::common;

struct Case {
    name: &'static str,
    file: &'static str,
    content: &'static [u8],
    /// `path:line:` prefix and this text must be in the error.
    line: usize,
    message: &'static str,
}

const GOOD: &[u8] = b"IMGID:100\nObama\tB-PER\nvisits\tO\nParis\tB-LOC\n\n";

const CASES: &[Case] = &[
    Case {
        name: "missing tab",
        file: "t.txt",
        content: b"IMGID:1\nObama B-PER\nvisits\tO\n",
        line: 2,
        message: "missing tab: expected `token<TAB>label`, found \"Obama B-PER\"",
    },
    Case {
        name: "unknown label",
        file: "t.txt",
        content: b"IMGID:1\nObama\tB-PERSON\n",
        line: 2,
        message: "unknown label \"B-PERSON\"",
    },
    Case {
        name: "missing IMGID",
        file: "t.txt",
        content: b"Obama\tB-PER\nvisits\tO\n",
        line: 1,
        message: "missing IMGID",
    },
    Case {
        name: "empty tweet",
        file: "t.txt",
        content: b"IMGID:1\n\nIMGID:2\nx\tO\n",
        line: 1,
        message: "tweet 1: empty tweet",
    },
    Case {
        name: "invalid UTF-8",
        file: "t.txt",
        content: b"IMGID:1\nCaf\xe9\tO\n",
        line: 2,
        message: "invalid UTF-8 at byte 4 of the line",
    },
    Case {
        name: "truncated file",
        file: "t.txt",
        content: b"IMGID:1\nObama\tB-PER\nvisi",
        line: 3,
        message: "file is truncated: its last line is incomplete",
    },
    Case {
        name: "truncated inside a UTF-8 character",
        file: "t.txt",
        content: b"IMGID:1\nObama\tB-PER\ncaf\xc3",
        line: 3,
        message: "invalid UTF-8",
    },
    Case {
        name: "JSONL with a broken line",
        file: "t.jsonl",
        content: b"{\"id\": 1, \"text\": \"fine\", \"image\": null}\n{\"id\": 2, \"text\": \"bro\n",
        line: 2,
        message: "invalid JSON: EOF while parsing a string",
    },
    Case {
        name: "duplicate tweet id",
        file: "t.txt",
        content: b"IMGID:7\na\tO\n\nIMGID:8\nb\tO\n\nIMGID:7\nc\tO\n",
        line: 7,
        message: "tweet 7: duplicate tweet id (first seen at",
    },
    Case {
        name: "JSONL duplicate id",
        file: "t.jsonl",
        content: b"{\"id\": \"a\", \"tokens\": [\"x\"]}\n{\"id\": \"a\", \"tokens\": [\"y\"]}\n",
        line: 2,
        message: "duplicate tweet id",
    },
];

/// Writes the case's file with a good tweet beside it (one bad record must not hide good ones): after
/// it, or before it when the case is a cut-off end of file. Returns the path and the bad line's number.
fn write_case(dir: &Path, case: &Case) -> (PathBuf, usize) {
    let path = dir.join(case.file);
    let mut content = Vec::new();
    let mut line = case.line;
    if case.file.ends_with(".txt") {
        if case.name.starts_with("truncated") {
            content.extend_from_slice(GOOD);
            line += GOOD.iter().filter(|b| **b == b'\n').count();
            content.extend_from_slice(case.content);
        } else {
            content.extend_from_slice(case.content);
            content.extend_from_slice(b"\n");
            content.extend_from_slice(GOOD);
        }
    } else {
        content.extend_from_slice(case.content);
    }
    std::fs::write(&path, content).unwrap();
    (path, line)
}

#[test]
fn each_bad_input_fails_with_file_and_line() {
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        let (path, line) = write_case(dir.path(), case);
        let dataset = Dataset::resolve(path.to_str().unwrap(), None, None).unwrap();
        let err = match ingest::plan(&ingest::Input {
            dataset,
            on_error: OnError::Fail,
            limits: Default::default(),
        }) {
            Ok(_) => panic!("{}: accepted", case.name),
            Err(e) => e.to_string(),
        };
        let prefix = format!("{}:{line}: ", path.display());
        assert!(
            err.starts_with(&prefix),
            "{}: {err:?} should start with {prefix:?}",
            case.name
        );
        assert!(
            err.contains(case.message),
            "{}: {err:?} should say {:?}",
            case.name,
            case.message
        );
        assert!(
            err.contains("--on-error skip"),
            "{}: {err:?} should say how to go on",
            case.name
        );
    }
}

#[test]
fn skip_leaves_bad_records_out_and_reports_them() {
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        let (path, line) = write_case(dir.path(), case);
        let dataset = Dataset::resolve(path.to_str().unwrap(), None, None).unwrap();
        let store_dir = dir.path().join("artifacts");
        let (manifest, tweets) = common::ingest(&store_dir, &dataset, OnError::Skip).unwrap();
        assert_eq!(manifest.counts["rejected"], 1, "{}", case.name);
        assert!(
            !tweets.is_empty(),
            "{}: the good tweets are kept",
            case.name
        );

        let artifacts = Artifacts::open(&store_dir).unwrap();
        let report = artifacts
            .store
            .blob_path(&manifest.output(ingest::REPORT).unwrap().digest);
        let report = std::fs::read_to_string(report).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(report.lines().next().unwrap()).unwrap();
        assert_eq!(first["severity"], "rejected", "{}", case.name);
        assert_eq!(first["line"], line, "{}", case.name);
    }
}

#[test]
fn stray_inside_tag_is_a_warning_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.txt");
    std::fs::write(&path, b"IMGID:1\nthe\tO\nWhite\tI-LOC\nHouse\tI-LOC\n").unwrap();
    let dataset = Dataset::resolve(path.to_str().unwrap(), None, None).unwrap();
    let (manifest, tweets) =
        common::ingest(&dir.path().join("a"), &dataset, OnError::Fail).unwrap();
    assert_eq!(manifest.counts["warnings"], 1);
    assert_eq!(manifest.counts["splits"]["dump"]["entities"], 1);
    assert_eq!(tweets[0].labels.as_ref().unwrap()[1].to_string(), "I-LOC");
}

#[test]
fn missing_images_are_counted_not_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("there.jpg"),
        b"not really a jpeg, ingest only hashes it",
    )
    .unwrap();
    let path = dir.path().join("d.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"id": 1, "text": "a", "image": "there.jpg"}"#,
            "\n",
            r#"{"id": 2, "text": "b", "image": "gone.jpg"}"#,
            "\n",
            r#"{"id": 3, "text": "c", "image": null}"#,
            "\n"
        ),
    )
    .unwrap();
    let dataset = Dataset::resolve(path.to_str().unwrap(), None, None).unwrap();
    let (manifest, tweets) =
        common::ingest(&dir.path().join("a"), &dataset, OnError::Fail).unwrap();
    assert_eq!(
        manifest.counts["images"],
        serde_json::json!({"ok": 1, "missing": 1, "none": 1})
    );
    let expected = umgf::Digest::of_file(&dir.path().join("there.jpg")).unwrap();
    assert_eq!(tweets[0].image_digest, Some(expected));
}

#[test]
fn the_binary_reports_the_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_case(dir.path(), &CASES[1]);
    let artifacts = dir.path().join("artifacts");
    let out = common::run_bin("ingest", &artifacts, &["--dataset", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("{}:2: tweet 1: unknown label", path.display())),
        "{stderr}"
    );
    let runs = std::fs::read_dir(artifacts.join("store/runs"))
        .unwrap()
        .count();
    assert_eq!(runs, 0, "a failed ingest leaves no run behind");

    let out = common::run_bin(
        "ingest",
        &artifacts,
        &["--dataset", path.to_str().unwrap(), "--on-error", "skip"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read_to_string(artifacts.join("dump-t/report.jsonl")).unwrap();
    assert!(report.contains("unknown label"), "{report}");
}

/// Ingests `dataset` read with `choice`'s captions, failing at the first bad record or skipping.
fn ingest_with(
    dir: &Path,
    dataset: &Dataset,
    choice: &CaptionsChoice,
    on_error: OnError,
) -> umgf::Result<(umgf::store::Manifest, Vec<umgf::schema::Tweet>)> {
    let dataset = dataset.clone().with_captions(choice)?;
    common::ingest(dir, &dataset, on_error)
}

#[test]
fn a_record_over_the_size_limit_fails_with_file_and_line_without_being_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.jsonl");
    // 200 MB of one line took 4.5 GB of memory before the limit: 1 MB shows the message.
    let huge = format!(
        "{{\"id\": 1, \"text\": \"{}\"}}\n{{\"id\": 2, \"text\": \"fine\"}}\n",
        "word ".repeat(200_000)
    );
    std::fs::write(&path, huge).unwrap();
    let dataset = Dataset::resolve(path.to_str().unwrap(), None, None).unwrap();
    let err = ingest::plan(&ingest::Input {
        dataset: dataset.clone(),
        on_error: OnError::Fail,
        limits: Limits::default(),
    })
    .err()
    .expect("rejected")
    .to_string();
    assert!(
        err.starts_with(&format!(
            "{}:1: record too long: {} bytes or more, over the limit of 65536 (--max-record-bytes",
            path.display(),
            65536 + 3
        )),
        "{err}"
    );
    let (manifest, tweets) =
        common::ingest(&dir.path().join("a"), &dataset, OnError::Skip).unwrap();
    assert_eq!(manifest.counts["rejected"], 1);
    assert_eq!(tweets.len(), 1);
    assert_eq!(tweets[0].source_line, 2);
}

#[test]
fn a_byte_order_mark_at_the_start_of_a_dump_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    for (file, content) in [
        (
            "bom.jsonl",
            &b"\xEF\xBB\xBF{\"id\": 1, \"text\": \"Obama\"}\n"[..],
        ),
        ("bom.txt", &b"\xEF\xBB\xBFIMGID:1\nObama\tB-PER\n"[..]),
    ] {
        let path = dir.path().join(file);
        std::fs::write(&path, content).unwrap();
        let dataset = Dataset::resolve(path.to_str().unwrap(), None, None).unwrap();
        let (_, tweets) = common::ingest(
            &dir.path().join(format!("store-{file}")),
            &dataset,
            OnError::Fail,
        )
        .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(tweets[0].id, "1", "{file}");
    }
}

/// A JSONL dump of three tweets with images `a.jpg`, `b.jpg`, `c.jpg`; `b`'s record has a caption.
fn captioned_dump(dir: &Path) -> Dataset {
    let path = dir.join("d.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"id": "a", "text": "Obama", "image": "a.jpg"}"#,
            "\n",
            r#"{"id": "b", "text": "Paris", "image": "b.jpg", "caption": "the eiffel tower"}"#,
            "\n",
            r#"{"id": "c", "text": "Rome", "image": "c.jpg"}"#,
            "\n"
        ),
    )
    .unwrap();
    Dataset::resolve(path.to_str().unwrap(), None, None).unwrap()
}

#[test]
fn captions_come_from_the_records_and_the_captions_file_and_none_turns_them_off() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = captioned_dump(dir.path());
    let captions = dir.path().join("captions.txt");
    std::fs::write(
        &captions,
        "a.jpg :a man in a suit\nb.jpg :a tower\nzzz.jpg :nobody's image\n",
    )
    .unwrap();
    let caption_of = |tweets: &[umgf::schema::Tweet]| -> Vec<Option<String>> {
        tweets.iter().map(|t| t.caption.clone()).collect()
    };

    let (_, tweets) = ingest_with(
        &dir.path().join("own"),
        &dataset,
        &CaptionsChoice::Default,
        OnError::Fail,
    )
    .unwrap();
    assert_eq!(
        caption_of(&tweets),
        [None, Some("the eiffel tower".into()), None]
    );

    let file = CaptionsChoice::File(captions.clone());
    let (manifest, tweets) =
        ingest_with(&dir.path().join("file"), &dataset, &file, OnError::Fail).unwrap();
    // The record's own caption comes first; `c` has none; zzz.jpg's line is counted, not an error.
    assert_eq!(
        caption_of(&tweets),
        [
            Some("a man in a suit".into()),
            Some("the eiffel tower".into()),
            None
        ]
    );
    assert_eq!(
        manifest.counts["captions"],
        serde_json::json!({"captioned": 2, "uncaptioned": 1, "unused": 1, "placeholder": 0, "collapsed": 0})
    );
    assert_eq!(manifest.counts["warnings"], 1);

    let (_, tweets) = ingest_with(
        &dir.path().join("none"),
        &dataset,
        &CaptionsChoice::None,
        OnError::Fail,
    )
    .unwrap();
    assert_eq!(caption_of(&tweets), [None, None, None]);
    assert!(tweets.iter().all(|t| t.caption_digest.is_none()));

    let missing = CaptionsChoice::File(dir.path().join("nope.txt"));
    let err = dataset
        .clone()
        .with_captions(&missing)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope.txt not found"), "{err}");
}

#[test]
fn a_malformed_captions_file_fails_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = captioned_dump(dir.path());
    let captions = dir.path().join("captions.txt");
    std::fs::write(&captions, "a.jpg :a man in a suit\nc.jpg the colosseum\n").unwrap();
    let file = CaptionsChoice::File(captions.clone());
    let err = ingest_with(&dir.path().join("fail"), &dataset, &file, OnError::Fail)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "{}:2: expected `<image file> :<caption>`, found \"c.jpg the colosseum\"",
            captions.display()
        )),
        "{err}"
    );
    assert!(err.contains("--on-error skip"), "{err}");

    let (manifest, tweets) =
        ingest_with(&dir.path().join("skip"), &dataset, &file, OnError::Skip).unwrap();
    assert_eq!(manifest.counts["rejected"], 1);
    assert_eq!(tweets.len(), 3, "a bad caption line costs no tweet");
    assert_eq!(tweets[0].caption.as_deref(), Some("a man in a suit"));
    assert_eq!(tweets[2].caption, None);
}
