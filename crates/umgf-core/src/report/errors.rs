//! What went wrong, entity by entity: each gold entity is found (same words, same type), found with
//! another type, found with other boundaries (a predicted entity overlaps it), or missed; a predicted
//! entity that overlaps no gold entity is spurious.
use std::collections::BTreeMap;

use serde::Serialize;

use crate::analysis::{Entity, TweetAnalysis};

/// Counts over a run's labelled tweets. `types[gold][predicted]`: gold entities whose words were
/// predicted as an entity of type `predicted` (the diagonal: found); `missed[gold]`, `boundary[gold]`
/// and `spurious[predicted]` as the module says.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Confusion {
    pub types: BTreeMap<String, BTreeMap<String, usize>>,
    pub boundary: BTreeMap<String, usize>,
    pub missed: BTreeMap<String, usize>,
    pub spurious: BTreeMap<String, usize>,
}

fn overlaps(a: &Entity, b: &Entity) -> bool {
    a.start < b.end && b.start < a.end
}

impl Confusion {
    /// Counts over the tweets that have gold entities (a predict run's tweets have none: empty).
    pub fn of(tweets: &[TweetAnalysis]) -> Self {
        let mut c = Confusion::default();
        let bump = |map: &mut BTreeMap<String, usize>, key: &str| {
            *map.entry(key.to_owned()).or_default() += 1;
        };
        for tweet in tweets {
            let Some(gold) = &tweet.gold else { continue };
            for g in gold {
                let same_words = tweet
                    .predicted
                    .iter()
                    .find(|p| (p.start, p.end) == (g.start, g.end));
                match same_words {
                    Some(p) => bump(c.types.entry(g.ty.clone()).or_default(), &p.ty),
                    None if tweet.predicted.iter().any(|p| overlaps(p, g)) => {
                        bump(&mut c.boundary, &g.ty)
                    }
                    None => bump(&mut c.missed, &g.ty),
                }
            }
            for p in &tweet.predicted {
                if !gold.iter().any(|g| overlaps(p, g)) {
                    bump(&mut c.spurious, &p.ty);
                }
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(ty: &str, start: usize, end: usize) -> Entity {
        Entity {
            text: String::new(),
            ty: ty.into(),
            start,
            end,
        }
    }

    fn tweet(gold: Option<Vec<Entity>>, predicted: Vec<Entity>) -> TweetAnalysis {
        TweetAnalysis {
            id: "t".into(),
            tokens: vec![String::new(); 10],
            gold,
            predicted,
            image: None,
            caption: None,
            nodes: vec![],
            links: vec![],
            gates: vec![],
        }
    }

    #[test]
    fn each_gold_entity_lands_in_one_cell_and_stray_predictions_are_spurious() {
        let tweets = [
            tweet(
                Some(vec![
                    entity("PER", 0, 1),  // found
                    entity("ORG", 2, 3),  // found as LOC
                    entity("LOC", 4, 6),  // boundary: 5..6 predicted
                    entity("MISC", 7, 8), // missed
                ]),
                vec![
                    entity("PER", 0, 1),
                    entity("LOC", 2, 3),
                    entity("LOC", 5, 6),
                    entity("ORG", 9, 10), // spurious
                ],
            ),
            // Unlabelled: counts nothing.
            tweet(None, vec![entity("PER", 0, 1)]),
        ];
        let c = Confusion::of(&tweets);
        let count = |map: &BTreeMap<String, usize>, k: &str| map.get(k).copied().unwrap_or(0);
        assert_eq!(count(&c.types["PER"], "PER"), 1);
        assert_eq!(count(&c.types["ORG"], "LOC"), 1);
        assert_eq!(count(&c.boundary, "LOC"), 1);
        assert_eq!(count(&c.missed, "MISC"), 1);
        assert_eq!(count(&c.spurious, "ORG"), 1);
        assert_eq!(c.spurious.values().sum::<usize>(), 1);
    }
}
