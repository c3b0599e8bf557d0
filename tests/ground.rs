//! `ground` and the visual part of `features` on a hand-made dump: skimage's photos with tweets
//! written for them, a tweet without an image and two unreadable images.
use std::collections::BTreeMap;
use std::path::Path;

use umgf::schema::{
    Artifact, EdgeKind, GraphEdge, GroundedObject, NounPhrase, PhraseSource, QueryKind,
    VisualFeatures,
};
use umgf::stages::graphs::{self, GraphsStage};
use umgf::stages::ground::{self, GroundParams};
use umgf::stages::{Stage, visual_features};
use umgf::store::{RunSpec, Store};
use umgf::vision::efficientnet;

use crate::common::{self, repo};

/// (id, text, image file under photos/ or a path, noun phrases as (start, end, head index)).
pub(crate) type Record<'a> = (&'a str, &'a str, Option<String>, &'a [(u32, u32, u32)]);

pub(crate) fn photo(name: &str) -> Option<String> {
    Some(repo().join("photos").join(name).display().to_string())
}

fn write_dump(path: &Path, records: &[Record<'_>]) {
    let lines: Vec<String> = records
        .iter()
        .map(|(id, text, image, _)| {
            serde_json::json!({"id": id, "text": text, "image": image}).to_string()
        })
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// The records' noun phrases, stored as a `noun_phrases` artifact (hand-made: no chunker needed).
pub(crate) fn store_phrases(store: &Store, records: &[Record<'_>]) -> umgf::Digest {
    let rows: Vec<NounPhrase> = records
        .iter()
        .flat_map(|(id, text, _, spans)| {
            let words: Vec<&str> = text.split_whitespace().collect();
            spans.iter().map(move |&(start, end, head)| NounPhrase {
                tweet_id: (*id).to_owned(),
                source: PhraseSource::Tweet,
                start,
                end,
                text: words[start as usize..end as usize].join(" "),
                head: words[head as usize].to_owned(),
                head_index: head,
            })
        })
        .collect();
    let spec = RunSpec {
        stage: "test-phrases".to_owned(),
        version: 1,
        params: serde_json::json!({"rows": rows.len(), "first": rows.first().map(|r| r.text.clone())}),
        inputs: BTreeMap::new(),
    };
    let outcome = store
        .run(&spec, |outputs| {
            NounPhrase::write(&outputs.path("noun_phrases.parquet"), &rows)?;
            Ok(serde_json::json!({}))
        })
        .unwrap();
    outcome
        .manifest
        .output("noun_phrases.parquet")
        .unwrap()
        .digest
}

#[test]
fn ground_finds_targeted_objects_and_features_encode_each_region_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let not_an_image = dir.path().join("page.jpg");
    std::fs::write(&not_an_image, "<html>not found</html>").unwrap();
    let empty = dir.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let path = |p: &Path| Some(p.display().to_string());
    let mut records: Vec<Record<'_>> = vec![
        (
            "astronaut",
            "An astronaut poses with the flag at NASA",
            photo("astronaut.png"),
            &[(0, 2, 1), (4, 6, 5), (7, 8, 7)],
        ),
        (
            "motorbike",
            "Just bought a new Ducati motorbike , ride with the guys",
            photo("motorcycle_left.png"),
            &[(2, 6, 5), (9, 11, 10)],
        ),
        (
            "horse",
            "Beautiful horse at the Kentucky Derby today",
            photo("horse.png"),
            &[(0, 2, 1), (3, 6, 5)],
        ),
        (
            "coffee",
            "Morning espresso at Blue Bottle in Oakland",
            photo("coffee.png"),
            &[(0, 2, 1), (3, 5, 4), (6, 7, 6)],
        ),
        (
            "no-image",
            "No picture with this one from London",
            None,
            &[(5, 6, 5)],
        ),
        (
            "bad-page",
            "This image is a web page",
            path(&not_an_image),
            &[],
        ),
        ("bad-empty", "This image is empty", path(&empty), &[]),
    ];
    let dump = dir.path().join("dump.jsonl");
    write_dump(&dump, &records);
    let tweets = common::ingest_dump(&store, &dump);
    let phrases = store_phrases(&store, &records);
    let params = GroundParams::default();

    let first = common::ground(&store, tweets, phrases, &params);
    let counts = &first.manifest.counts;
    eprintln!("ground: {counts}");
    assert_eq!(counts["tweets_with_image"], 6);
    assert_eq!(counts["bad_images"], 2);
    assert_eq!(counts["images_detected"], 6);
    let objects_digest = first.manifest.output(ground::OBJECTS).unwrap().digest;
    let objects = GroundedObject::read(&store.blob_path(&objects_digest)).unwrap();
    for o in &objects {
        eprintln!(
            "{}: object {} {} {:?} <- {} {:?} ({:.2})",
            o.tweet_id,
            o.object_id,
            o.class,
            o.score,
            o.query_kind.name(),
            o.query,
            o.similarity
        );
    }
    let found = |tweet: &str, class: &str, kind: QueryKind, query: &str| {
        objects.iter().any(|o| {
            o.tweet_id == tweet && o.class == class && o.query_kind == kind && o.query == query
        })
    };
    assert!(found("astronaut", "person", QueryKind::General, "person"));
    assert!(found(
        "motorbike",
        "motorcycle",
        QueryKind::Phrase,
        "a new Ducati motorbike"
    ));
    assert!(found(
        "horse",
        "horse",
        QueryKind::Phrase,
        "Beautiful horse"
    ));
    let phrase_rows = objects.iter().filter(|o| o.query_kind == QueryKind::Phrase);
    assert!(
        phrase_rows
            .clone()
            .all(|o| o.phrase_start.is_some() && o.phrase_end.is_some())
    );
    assert!(
        objects
            .iter()
            .all(|o| !o.tweet_id.starts_with("bad") && o.tweet_id != "no-image")
    );
    assert!(
        objects
            .iter()
            .all(|o| o.object_id < params.max_objects as u32)
    );
    let report = std::fs::read_to_string(
        store.blob_path(&first.manifest.output(ground::BAD_IMAGES).unwrap().digest),
    )
    .unwrap();
    assert_eq!(report.lines().count(), 2, "{report}");
    assert!(
        report.contains("not an image") && report.contains("empty file"),
        "{report}"
    );

    // A tweet about an image seen before: no detector work, one tweet grounded.
    records.push((
        "astronaut-again",
        "Look at this man in his space suit",
        photo("astronaut.png"),
        &[(2, 4, 3)],
    ));
    write_dump(&dump, &records);
    let tweets = common::ingest_dump(&store, &dump);
    let phrases = store_phrases(&store, &records);
    let second = common::ground(&store, tweets, phrases, &params);
    let counts = &second.manifest.counts;
    assert_eq!(
        (
            counts["images_detected"].as_u64(),
            counts["images_memoised"].as_u64()
        ),
        (Some(0), Some(6))
    );
    assert_eq!(counts["tweets_grounded"], 1);
    let objects_digest = second.manifest.output(ground::OBJECTS).unwrap().digest;
    let objects = GroundedObject::read(&store.blob_path(&objects_digest)).unwrap();
    assert!(
        objects.iter().any(|o| o.tweet_id == "astronaut-again"
            && o.class == "person"
            && o.query == "this man")
    );

    // The graphs: words, the objects, and the links between them.
    let input = graphs::Input {
        tweets,
        objects: objects_digest,
    };
    let graph = GraphsStage::run(&store, &input).unwrap();
    let edges = GraphEdge::read(
        &store.blob_path(
            &graph
                .manifest
                .output(umgf::stages::graphs::EDGES)
                .unwrap()
                .digest,
        ),
    )
    .unwrap();
    eprintln!("graphs: {}", graph.manifest.counts);
    let motorbike: Vec<_> = edges.iter().filter(|e| e.tweet_id == "motorbike").collect();
    let words = 11;
    // "a new Ducati motorbike" (words 2..6) links to the motorcycle (object 0, node 11).
    for w in 2..6 {
        assert!(
            motorbike
                .iter()
                .any(|e| (e.src, e.dst, e.kind) == (w, words, EdgeKind::PhraseObject))
        );
    }
    assert!(
        !motorbike
            .iter()
            .any(|e| (e.src, e.dst, e.kind) == (0, words, EdgeKind::PhraseObject))
    );
    assert!(motorbike.iter().any(|e| e.kind == EdgeKind::ObjectObject));
    assert_eq!(
        motorbike
            .iter()
            .filter(|e| e.kind == EdgeKind::WordWord)
            .count(),
        words as usize * (words as usize - 1) / 2
    );
    // No image, no objects: only word-word edges.
    assert!(
        edges
            .iter()
            .filter(|e| e.tweet_id == "no-image")
            .all(|e| e.kind == EdgeKind::WordWord)
    );

    // Visual features: the whole image and each object, every region once.
    let visual = common::visual_features(&store, tweets, objects_digest);
    let counts = &visual.manifest.counts;
    eprintln!("visual features: {counts}");
    let distinct: std::collections::HashSet<(&str, u32)> = objects
        .iter()
        .map(|o| (o.tweet_id.as_str(), o.object_id))
        .collect();
    assert_eq!(counts["images"], 5);
    assert_eq!(counts["objects"].as_u64(), Some(distinct.len() as u64));
    // Both astronaut tweets crop the same regions of the same image: computed once.
    let rows = VisualFeatures::read(
        &store.blob_path(
            &visual
                .manifest
                .output(visual_features::VISUAL_FEATURES)
                .unwrap()
                .digest,
        ),
    )
    .unwrap();
    let again = rows
        .iter()
        .filter(|r| r.tweet_id == "astronaut-again")
        .count() as u64;
    let unreadable = counts["unreadable_regions"].as_u64().unwrap();
    assert_eq!(unreadable, 2);
    assert_eq!(
        counts["memo_computed"].as_u64().unwrap(),
        rows.len() as u64 + unreadable - again
    );
    assert!(
        rows.iter()
            .all(|r| r.features.len() == efficientnet::FEATURES as usize)
    );
    assert!(
        rows.iter()
            .all(|r| r.features.iter().all(|v| v.is_finite()))
    );
    let whole = |id: &str| {
        rows.iter()
            .find(|r| r.tweet_id == id && r.object_id.is_none())
            .unwrap()
    };
    assert_eq!(
        whole("astronaut").features,
        whole("astronaut-again").features
    );
    assert_ne!(whole("astronaut").features, whole("horse").features);
}

/// Caption nodes: a tweet's phrases and general words grounded to its caption's noun phrases
/// (`--caption-nodes targeted`), by its general words only (`general`), or every caption phrase linked
/// to every word (`all`); their features are the text encoder's (384 wide), and the graph links them
/// as it links objects.
#[test]
fn caption_nodes_are_grounded_encoded_and_linked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let dump = dir.path().join("captioned.jsonl");
    let records = [
        (
            "kobe",
            "Kobe Bryant scores for the Lakers",
            "a basketball player dunking a ball",
        ),
        ("pizza", "I love pizza", "a cat on a sofa"),
    ];
    let lines: Vec<String> = records
        .iter()
        .map(|(id, text, caption)| {
            serde_json::json!({"id": id, "text": text, "caption": caption}).to_string()
        })
        .collect();
    std::fs::write(&dump, lines.join("\n")).unwrap();
    let tweets = common::ingest_dump(&store, &dump);
    // Hand-made phrases, as the chunker would find them: the tweets' and the captions'.
    let phrase =
        |id: &str, source, words: &[String], (start, end, head): (u32, u32, u32)| NounPhrase {
            tweet_id: id.to_owned(),
            source,
            start,
            end,
            text: words[start as usize..end as usize].join(" "),
            head: words[head as usize].to_owned(),
            head_index: head,
        };
    let words = |text: &str| -> Vec<String> { text.split_whitespace().map(String::from).collect() };
    let (kobe, kobe_caption) = (words(records[0].1), words(records[0].2));
    let (pizza, pizza_caption) = (words(records[1].1), words(records[1].2));
    let rows = vec![
        phrase("kobe", PhraseSource::Tweet, &kobe, (0, 2, 1)),
        phrase("kobe", PhraseSource::Tweet, &kobe, (4, 6, 5)),
        phrase("kobe", PhraseSource::Caption, &kobe_caption, (0, 3, 2)),
        phrase("kobe", PhraseSource::Caption, &kobe_caption, (4, 6, 5)),
        phrase("pizza", PhraseSource::Tweet, &pizza, (0, 1, 0)),
        phrase("pizza", PhraseSource::Tweet, &pizza, (2, 3, 2)),
        phrase("pizza", PhraseSource::Caption, &pizza_caption, (0, 2, 1)),
        phrase("pizza", PhraseSource::Caption, &pizza_caption, (3, 5, 4)),
    ];
    let spec = RunSpec {
        stage: "test-caption-phrases".to_owned(),
        version: 1,
        params: serde_json::json!({}),
        inputs: BTreeMap::new(),
    };
    let phrases = store
        .run(&spec, |outputs| {
            NounPhrase::write(&outputs.path("noun_phrases.parquet"), &rows)?;
            Ok(serde_json::json!({}))
        })
        .unwrap()
        .manifest
        .output("noun_phrases.parquet")
        .unwrap()
        .digest;

    let ground_with = |nodes: ground::CaptionNodes| {
        let params = GroundParams {
            caption_nodes: nodes,
            ..GroundParams::default()
        };
        let run = common::ground(&store, tweets, phrases, &params);
        let digest = run.manifest.output(ground::OBJECTS).unwrap().digest;
        (
            digest,
            GroundedObject::read(&store.blob_path(&digest)).unwrap(),
        )
    };

    // Targeted: "person" finds the basketball player (a person by the synonym table); nothing in
    // the pizza tweet points at a cat or a sofa.
    let (objects, rows) = ground_with(ground::CaptionNodes::Targeted);
    for r in &rows {
        eprintln!(
            "{}: node {} {:?} <- {} ({:.2})",
            r.tweet_id, r.object_id, r.class, r.query, r.similarity
        );
    }
    assert!(
        rows.iter()
            .all(|r| r.kind == umgf::schema::NodeKind::Caption
                && r.region().is_none()
                && r.score.is_none())
    );
    assert!(rows.iter().any(|r| r.tweet_id == "kobe"
        && r.class == "a basketball player"
        && r.query_kind == QueryKind::General
        && (r.caption_start, r.caption_end) == (Some(0), Some(3))));
    assert!(rows.iter().all(|r| r.tweet_id == "kobe"), "{rows:?}");

    let features = common::visual_features(&store, tweets, objects);
    let digest = features
        .manifest
        .output(visual_features::VISUAL_FEATURES)
        .unwrap()
        .digest;
    let features = VisualFeatures::read(&store.blob_path(&digest)).unwrap();
    let nodes: std::collections::HashSet<u32> = rows.iter().map(|r| r.object_id).collect();
    assert_eq!(features.len(), nodes.len());
    assert!(
        features
            .iter()
            .all(|f| f.kind == umgf::schema::NodeKind::Caption
                && f.features.len() == 384
                && f.features.iter().all(|v| v.is_finite()))
    );

    let edges = GraphsStage::run(&store, &graphs::Input { tweets, objects }).unwrap();
    let digest = edges.manifest.output(graphs::EDGES).unwrap().digest;
    let edges = GraphEdge::read(&store.blob_path(&digest)).unwrap();
    let general = edges
        .iter()
        .filter(|e| e.tweet_id == "kobe" && e.kind == EdgeKind::GeneralObject)
        .count();
    assert!(
        general >= kobe.len(),
        "every word of the tweet links to the player: {general}"
    );

    // General words only: what "person" finds, as when targeted, and nothing a tweet phrase finds.
    let (_, general) = ground_with(ground::CaptionNodes::General);
    let found_by_general = |rows: &[GroundedObject]| -> Vec<(String, String)> {
        rows.iter()
            .filter(|r| r.query_kind == QueryKind::General)
            .map(|r| (r.tweet_id.clone(), r.class.clone()))
            .collect()
    };
    assert!(!general.is_empty());
    assert!(general.iter().all(|r| r.query == "person"), "{general:?}");
    assert_eq!(found_by_general(&general), found_by_general(&rows));

    // All: every caption phrase is a node of its tweet, found by the general query "caption".
    let (_, all) = ground_with(ground::CaptionNodes::All);
    let nodes_of = |id: &str| all.iter().filter(|r| r.tweet_id == id).count();
    assert_eq!((nodes_of("kobe"), nodes_of("pizza")), (2, 2));
    assert!(
        all.iter()
            .all(|r| r.query == "caption" && r.query_kind == QueryKind::General)
    );
}
