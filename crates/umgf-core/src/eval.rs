//! Entity-level evaluation (DESIGN.md section 6): exact span and type, conlleval-style chunking per
//! sentence ([`crate::labels::spans`]: a stray I- tag starts an entity), micro precision, recall and F1
//! over all entities, plus the same per type. Equal to `seqeval`'s default mode on the same files (a
//! test checks it on the real test sets).
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::labels::{EntityType, Span, Tag, spans};

/// Precision, recall and F1 in percent, with the counts they come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Entities in the gold tags, in the predictions, and in both (same span and type).
    pub gold: usize,
    pub predicted: usize,
    pub correct: usize,
}

impl Scores {
    fn from_counts(gold: usize, predicted: usize, correct: usize) -> Self {
        let ratio = |a: usize, b: usize| {
            if b == 0 {
                0.0
            } else {
                100.0 * a as f64 / b as f64
            }
        };
        let (precision, recall) = (ratio(correct, predicted), ratio(correct, gold));
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Self {
            precision,
            recall,
            f1,
            gold,
            predicted,
            correct,
        }
    }
}

/// Micro scores over all entities and per entity type (the metrics JSON's `dev` and `test`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    #[serde(flatten)]
    pub overall: Scores,
    /// Keyed by type name (PER, LOC, ORG, MISC); every type appears, found or not.
    pub per_type: BTreeMap<String, Scores>,
    pub sentences: usize,
}

/// Scores `predicted` against `gold`, sentence by sentence (each pair must have the same length).
pub fn evaluate(gold: &[Vec<Tag>], predicted: &[Vec<Tag>]) -> Evaluation {
    let mut counts = EntityCounts::default();
    for (g, p) in gold.iter().zip(predicted) {
        counts.add(g, p);
    }
    counts.evaluation()
}

/// Entity counts per type, added up a sentence at a time: a stream of predictions is scored as it
/// goes, with the result [`evaluate`] gives on all of them at once.
#[derive(Clone, Debug)]
pub struct EntityCounts {
    /// Per type: gold, predicted and correct entities.
    by_type: BTreeMap<EntityType, [usize; 3]>,
    sentences: usize,
}

impl Default for EntityCounts {
    fn default() -> Self {
        Self {
            by_type: EntityType::ALL.iter().map(|&t| (t, [0; 3])).collect(),
            sentences: 0,
        }
    }
}

impl EntityCounts {
    /// Counts one sentence's entities.
    pub fn add(&mut self, gold: &[Tag], predicted: &[Tag]) {
        let g: HashSet<Span> = spans(gold).into_iter().collect();
        let p: HashSet<Span> = spans(predicted).into_iter().collect();
        for span in &g {
            self.by_type.entry(span.ty).or_default()[0] += 1;
        }
        for span in &p {
            let c = self.by_type.entry(span.ty).or_default();
            c[1] += 1;
            if g.contains(span) {
                c[2] += 1;
            }
        }
        self.sentences += 1;
    }

    /// Adds the counts of other sentences (a part of the same dataset, scored elsewhere).
    pub fn merge(&mut self, other: &Self) {
        for (ty, c) in &other.by_type {
            let mine = self.by_type.entry(*ty).or_default();
            for (m, o) in mine.iter_mut().zip(c) {
                *m += o;
            }
        }
        self.sentences += other.sentences;
    }

    /// The counts as JSON, `{"sentences": n, "by_type": {"PER": [gold, predicted, correct], ...}}`
    /// (a run's counts keep them so that parts scored apart add up, see [`EntityCounts::merge`]).
    pub fn to_json(&self) -> serde_json::Value {
        let by_type: serde_json::Map<String, serde_json::Value> = self
            .by_type
            .iter()
            .map(|(ty, c)| (ty.name().to_owned(), serde_json::json!(c)))
            .collect();
        serde_json::json!({ "sentences": self.sentences, "by_type": by_type })
    }

    /// The counts [`EntityCounts::to_json`] wrote; `None` if `value` is not such counts.
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        let mut counts = Self {
            sentences: usize::try_from(value.get("sentences")?.as_u64()?).ok()?,
            ..Self::default()
        };
        for (name, c) in value.get("by_type")?.as_object()? {
            let ty = EntityType::ALL.into_iter().find(|t| t.name() == name)?;
            let c: [usize; 3] = serde_json::from_value(c.clone()).ok()?;
            counts.by_type.insert(ty, c);
        }
        Some(counts)
    }

    /// The scores of the sentences counted so far.
    pub fn evaluation(&self) -> Evaluation {
        let total = self.by_type.values().fold([0; 3], |acc, c| {
            [acc[0] + c[0], acc[1] + c[1], acc[2] + c[2]]
        });
        Evaluation {
            overall: Scores::from_counts(total[0], total[1], total[2]),
            per_type: self
                .by_type
                .iter()
                .map(|(ty, c)| (ty.name().to_owned(), Scores::from_counts(c[0], c[1], c[2])))
                .collect(),
            sentences: self.sentences,
        }
    }
}

/// A readable table of evaluations, one column group per named evaluation (e.g. dev and test).
pub fn table(evaluations: &[(&str, &Evaluation)]) -> String {
    let mut out = format!("{:<8}", "");
    for (name, _) in evaluations {
        let _ = write!(out, " | {:^23}", name);
    }
    out.push('\n');
    let _ = write!(out, "{:<8}", "type");
    for _ in evaluations {
        out.push_str(" |   P       R       F1  ");
    }
    out.push('\n');
    let mut row = |label: &str, pick: &dyn Fn(&Evaluation) -> Scores| {
        let _ = write!(out, "{label:<8}");
        for (_, e) in evaluations {
            let s = pick(e);
            let _ = write!(
                out,
                " | {:6.2}  {:6.2}  {:6.2} ",
                s.precision, s.recall, s.f1
            );
        }
        out.push('\n');
    };
    for ty in EntityType::ALL {
        row(ty.name(), &|e| {
            e.per_type.get(ty.name()).copied().unwrap_or_default()
        });
    }
    row("overall", &|e| e.overall);
    out
}

/// Predictions in conlleval's input format: `word gold predicted` per line, a blank line after each
/// sentence (what `seqeval` and conlleval.pl read). Unlabelled sentences get `O` as gold.
pub fn conll_predictions(
    words: &[Vec<String>],
    gold: &[Option<Vec<Tag>>],
    predicted: &[Vec<Tag>],
) -> String {
    let mut out = String::new();
    for ((w, g), p) in words.iter().zip(gold).zip(predicted) {
        for (i, (word, tag)) in w.iter().zip(p).enumerate() {
            let gold = g.as_ref().and_then(|g| g.get(i)).unwrap_or(&Tag::O);
            let _ = writeln!(out, "{word} {gold} {tag}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(labels: &str) -> Vec<Tag> {
        labels
            .split_whitespace()
            .map(|l| l.parse().expect("label"))
            .collect()
    }

    #[test]
    fn exact_span_and_type_with_stray_inside_tags() {
        let gold = vec![
            tags("B-PER I-PER O B-LOC"),
            tags("O B-ORG I-ORG O"),
            tags("I-MISC O O"),
        ];
        let predicted = vec![
            // PER exact, LOC typed as ORG.
            tags("B-PER I-PER O B-ORG"),
            // A stray I-ORG starts an entity: [1, 3) ORG, exact.
            tags("O I-ORG I-ORG O"),
            // Entity never across sentences: the stray I-MISC is an entity of its own.
            tags("I-MISC O O"),
        ];
        let e = evaluate(&gold, &predicted);
        assert_eq!(
            (e.overall.gold, e.overall.predicted, e.overall.correct),
            (4, 4, 3)
        );
        assert!((e.overall.f1 - 75.0).abs() < 1e-9);
        let loc = e.per_type["LOC"];
        assert_eq!((loc.gold, loc.predicted, loc.correct), (1, 0, 0));
        assert_eq!(loc.precision, 0.0);
        let org = e.per_type["ORG"];
        assert_eq!((org.gold, org.predicted, org.correct), (1, 2, 1));
        assert!((org.precision - 50.0).abs() < 1e-9);
        assert!(table(&[("test", &e)]).contains("overall"));
    }

    #[test]
    fn counts_added_sentence_by_sentence_score_as_all_at_once() {
        let gold = vec![
            tags("B-PER I-PER O B-LOC"),
            tags("O B-ORG I-ORG O"),
            tags("O"),
        ];
        let predicted = vec![
            tags("B-PER I-PER O B-ORG"),
            tags("O I-ORG I-ORG O"),
            tags("B-MISC"),
        ];
        let mut counts = EntityCounts::default();
        for (g, p) in gold.iter().zip(&predicted) {
            counts.add(g, p);
        }
        assert_eq!(counts.evaluation(), evaluate(&gold, &predicted));
        assert_eq!(counts.evaluation().sentences, 3);
    }

    #[test]
    fn nothing_predicted_scores_zero_not_nan() {
        let e = evaluate(&[tags("B-PER")], &[tags("O")]);
        assert_eq!(e.overall.f1, 0.0);
        assert_eq!(e.overall.recall, 0.0);
    }
}
