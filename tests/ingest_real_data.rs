//! ingest over the real benchmark files: the published tweet counts and conlleval-style entity counts.
use std::collections::BTreeMap;

use umgf::dataset::Dataset;
use umgf::labels::{spans, stray_inside_tags};
use umgf::schema::{Artifact, ImageStatus, Split, Tweet};
use umgf::stages::ingest::OnError;

use crate::common;

/// (tweets, entity chunks, stray I- tags) per split, from each dataset's PROVENANCE.md.
fn counts_by_split(tweets: &[Tweet]) -> BTreeMap<Split, (usize, usize, usize)> {
    let mut out = BTreeMap::new();
    for tweet in tweets {
        let labels = tweet
            .labels
            .as_ref()
            .expect("benchmark tweets are labelled");
        let entry = out.entry(tweet.split).or_insert((0, 0, 0));
        entry.0 += 1;
        entry.1 += spans(labels).len();
        entry.2 += stray_inside_tags(labels).len();
    }
    out
}

fn ingest_benchmark(name: &str) -> (umgf::store::Manifest, Vec<Tweet>) {
    let dir = tempfile::tempdir().unwrap();
    let dataset = Dataset::resolve(name, Some(&common::data_dir()), None).unwrap();
    common::ingest(dir.path(), &dataset, OnError::Fail).unwrap()
}

#[test]
fn twitter2015_counts() {
    let (manifest, tweets) = ingest_benchmark("twitter2015");
    let counts = counts_by_split(&tweets);
    assert_eq!(counts[&Split::Train], (4000, 6352, 186));
    assert_eq!(counts[&Split::Dev], (1000, 1594, 53));
    assert_eq!(counts[&Split::Test], (3257, 5207, 135));
    // The stray I- tags are warnings: kept, counted, nothing rejected; so are the 31 lines of
    // BLIP2_15.txt for images that no tweet has, and its two empty captions (tweets 71406 and
    // 770560, which then have none).
    assert_eq!(manifest.counts["warnings"], 186 + 53 + 135 + 31 + 2);
    assert_eq!(
        manifest.counts["captions"],
        serde_json::json!({
            "captioned": 8255, "uncaptioned": 2, "unused": 31, "placeholder": 0, "collapsed": 22
        })
    );
    assert_eq!(manifest.counts["rejected"], 0);
    assert_eq!(manifest.counts["splits"]["test"]["entities"], 5207);
    // No images on this machine: every tweet's image is recorded as missing.
    assert!(
        tweets
            .iter()
            .all(|t| t.image_status == ImageStatus::Missing)
    );
    assert_eq!(manifest.counts["images"]["missing"], 8257);
}

#[test]
fn twitter2017_counts() {
    let (manifest, tweets) = ingest_benchmark("twitter2017");
    // PROVENANCE.md: 358 images (all `O_*` ids) share one placeholder caption: dropped, as a caption
    // shared by over 50 tweets. Ten are "person, person, ...": kept as "person".
    assert_eq!(
        manifest.counts["captions"],
        serde_json::json!({
            "captioned": 4819 - 358, "uncaptioned": 358, "unused": 0, "placeholder": 358,
            "collapsed": 10
        })
    );
    let uncaptioned: Vec<&Tweet> = tweets.iter().filter(|t| t.caption.is_none()).collect();
    assert!(uncaptioned.iter().all(|t| t.id.starts_with("O_")));
    assert_eq!(
        tweets
            .iter()
            .filter(|t| t.caption.as_deref() == Some("person"))
            .count(),
        10
    );
    assert_eq!(
        tweets[0].caption_digest,
        tweets[0].caption.as_deref().map(Tweet::caption_digest_of)
    );
    let counts = counts_by_split(&tweets);
    let tweets_and_entities = |s: Split| (counts[&s].0, counts[&s].1);
    assert_eq!(tweets_and_entities(Split::Train), (3373, 6049));
    assert_eq!(tweets_and_entities(Split::Dev), (723, 1324));
    assert_eq!(tweets_and_entities(Split::Test), (723, 1351));
}

#[test]
fn other_reads_as_misc_and_odd_tokens_survive() {
    let (_, tweets) = ingest_benchmark("twitter2015");
    let labels: Vec<String> = tweets
        .iter()
        .flat_map(|t| t.labels.iter().flatten().map(ToString::to_string))
        .collect();
    assert!(labels.iter().any(|l| l == "B-MISC"));
    assert!(!labels.iter().any(|l| l.contains("OTHER")));
    // Twitter-2015 dev has one token that is a lone no-break space: it stays a token.
    let nbsp = tweets
        .iter()
        .filter(|t| t.tokens.iter().any(|tok| tok == "\u{a0}"))
        .count();
    assert_eq!(nbsp, 1);
    // Round trip: the text digest is the digest of the tokens read back.
    assert!(
        tweets
            .iter()
            .all(|t| t.text_digest == Tweet::text_digest_of(&t.tokens))
    );
}

/// Tweebank v2 read as trees, and its base noun phrases by `base_noun_phrases`' rule: every tweet of
/// each split (PROVENANCE.md's counts), tags that never open with I-NP, and about one phrase per four
/// words.
#[test]
fn tweebank_trees_give_base_noun_phrases() {
    use umgf::stages::chunker::tweebank_chunks;
    use umgf::text::np::{NpTag, np_spans};
    let dir = common::data_dir().join("tweebank");
    for (split, tweets) in [("train", 1639), ("dev", 710), ("test", 1201)] {
        let chunked = tweebank_chunks(&dir.join(format!("en-ud-tweet-{split}.conllu"))).unwrap();
        assert_eq!(chunked.len(), tweets, "{split}");
        let words: usize = chunked.iter().map(|s| s.words.len()).sum();
        let phrases: usize = chunked.iter().map(|s| np_spans(&s.tags).len()).sum();
        eprintln!("tweebank {split}: {tweets} tweets, {words} words, {phrases} base noun phrases");
        for s in &chunked {
            assert_eq!(s.words.len(), s.tags.len());
            let opens_with_inside = s
                .tags
                .iter()
                .enumerate()
                .any(|(i, t)| *t == NpTag::I && (i == 0 || s.tags[i - 1] == NpTag::O));
            assert!(!opens_with_inside, "{:?}", s.words);
        }
        let ratio = words as f64 / phrases as f64;
        assert!(
            (2.5..6.0).contains(&ratio),
            "{split}: a phrase per {ratio:.1} words"
        );
    }
}

/// The tweets of Twitter-2017 are stored as parts (issue 27); the friendly view is a folder of part
/// files that pyarrow (the reference venv's) reads as one table, in order, schema tag and all.
#[test]
fn pyarrow_reads_an_artifact_made_of_parts_as_one_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::run_bin("ingest", dir.path(), &["--dataset", "twitter2017"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let view = dir.path().join("twitter2017/tweets.parquet");
    let parts = std::fs::read_dir(&view)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_str().unwrap().starts_with("part-")
        })
        .count();
    assert!(parts >= 3, "{parts} parts for 4,819 tweets");
    let python = common::repo().join(".venv-ref/bin/python");
    assert!(
        python.is_file(),
        "run `make setup-reference` (make test does)"
    );
    // A dataset's schema drops the files' key-value metadata: each part's tag is read from it.
    let script = "import glob, sys, pyarrow.parquet as pq\n\
                  t = pq.read_table(sys.argv[1])\n\
                  parts = glob.glob(sys.argv[1] + '/part-*.parquet')\n\
                  tags = {pq.read_metadata(p).metadata[b'umgf.schema'].decode() for p in parts}\n\
                  print(t.num_rows, *tags, t.column('id')[0], t.column('id')[t.num_rows - 1])";
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(&view)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, tweets) = ingest_benchmark("twitter2017");
    let expected = format!(
        "{} tweets/{} {} {}",
        tweets.len(),
        Tweet::VERSION,
        tweets[0].id,
        tweets[tweets.len() - 1].id
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);
}
