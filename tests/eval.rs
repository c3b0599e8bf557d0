//! Evaluation: entity-level scores equal `seqeval` 1.2.2 (default mode) on the same prediction files,
//! built from the real Twitter-2015 and Twitter-2017 test sets (with their stray I- tags) and
//! predictions corrupted at random (wrong types, shifted boundaries, new stray I- tags).
use umgf::dataset::Dataset;
use umgf::eval::{conll_predictions, evaluate};
use umgf::labels::{EntityType, Tag};
use umgf::rng::Rng;
use umgf::schema::Split;
use umgf::stages::ingest::OnError;

use crate::common;

/// Each tag replaced by a random one with probability `p`.
fn corrupt(gold: &[Vec<Tag>], p: f64, seed: u64) -> Vec<Vec<Tag>> {
    let all = Tag::all();
    let mut rng = Rng::new(seed);
    gold.iter()
        .map(|tags| {
            tags.iter()
                .map(|&t| if rng.chance(p) { *rng.pick(&all) } else { t })
                .collect()
        })
        .collect()
}

fn check_against_seqeval(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dataset = Dataset::resolve(name, Some(&common::data_dir()), None).unwrap();
    let (_, tweets) = common::ingest(dir.path(), &dataset, OnError::Fail).unwrap();
    let test: Vec<_> = tweets.iter().filter(|t| t.split == Split::Test).collect();
    let words: Vec<Vec<String>> = test.iter().map(|t| t.tokens.clone()).collect();
    let gold: Vec<Vec<Tag>> = test.iter().map(|t| t.labels.clone().unwrap()).collect();
    for (p, seed) in [(0.0, 1), (0.05, 2), (0.3, 3)] {
        let predicted = corrupt(&gold, p, seed);
        let ours = evaluate(&gold, &predicted);
        let file = dir.path().join(format!("predictions-{seed}.conll"));
        let labelled: Vec<Option<Vec<Tag>>> = gold.iter().cloned().map(Some).collect();
        std::fs::write(&file, conll_predictions(&words, &labelled, &predicted)).unwrap();
        let out = dir.path().join(format!("seqeval-{seed}.json"));
        common::reference(
            "seqeval_scores.py",
            &[file.to_str().unwrap(), out.to_str().unwrap()],
        );
        let theirs: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let close = |a: f64, b: &serde_json::Value, what: &str| {
            let b = b.as_f64().unwrap();
            assert!(
                (a - b).abs() < 1e-9,
                "{name}, corruption {p}: {what} ours {a}, seqeval {b}"
            );
        };
        assert_eq!(theirs["sentences"], test.len());
        close(ours.overall.precision, &theirs["precision"], "precision");
        close(ours.overall.recall, &theirs["recall"], "recall");
        close(ours.overall.f1, &theirs["f1"], "F1");
        for ty in EntityType::ALL {
            let mine = ours.per_type[ty.name()];
            let Some(other) = theirs["per_type"].get(ty.name()) else {
                // seqeval lists only types that occur in gold or predictions.
                assert_eq!((mine.gold, mine.predicted), (0, 0), "{name} {ty}");
                continue;
            };
            assert_eq!(other["support"], mine.gold, "{name} {ty} support");
            close(
                mine.precision,
                &other["precision"],
                &format!("{ty} precision"),
            );
            close(mine.recall, &other["recall"], &format!("{ty} recall"));
            close(mine.f1, &other["f1"], &format!("{ty} F1"));
        }
        if p == 0.0 {
            assert_eq!(ours.overall.f1, 100.0);
        } else {
            assert!(ours.overall.f1 < 100.0);
        }
    }
}

#[test]
fn entity_scores_equal_seqeval_on_twitter2015_test() {
    check_against_seqeval("twitter2015");
}

#[test]
fn entity_scores_equal_seqeval_on_twitter2017_test() {
    check_against_seqeval("twitter2017");
}
