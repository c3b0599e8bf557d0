//! What `predict` and `eval` saw and did, per tweet: the `analysis.jsonl` output of a prediction run,
//! from which a report shows a run without re-running its model. One JSON object per tweet: its
//! words, gold and predicted entities, its image and caption, its visual nodes with what found each,
//! the word-node links of its graph, and how strongly each linked word took in its node in each
//! fusion layer (the gate of the fusion equations, averaged over its dimensions).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::labels::{Tag, spans};
use crate::schema::{GroundedObject, ImageStatus, NodeKind, QueryKind, Tweet};

/// An entity: its words `start..end` (end exclusive) and type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    pub text: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub start: usize,
    pub end: usize,
}

impl Entity {
    /// The entities BIO `tags` mark in `words` (conlleval's reading, [`spans`]).
    pub fn all(words: &[String], tags: &[Tag]) -> Vec<Entity> {
        spans(tags)
            .into_iter()
            .map(|s| Entity {
                text: words[s.start..s.end].join(" "),
                ty: s.ty.name().to_owned(),
                start: s.start,
                end: s.end,
            })
            .collect()
    }
}

/// One tweet of a prediction run: a line of `analysis.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TweetAnalysis {
    pub id: String,
    pub tokens: Vec<String>,
    /// Gold entities; `None` for an unlabelled tweet.
    pub gold: Option<Vec<Entity>>,
    pub predicted: Vec<Entity>,
    /// The image file as ingest resolved it (`None` without a readable one), and its caption.
    pub image: Option<String>,
    pub caption: Option<String>,
    /// The visual nodes of the tweet's graph, by id (0..m).
    pub nodes: Vec<VisualNode>,
    /// The graph's word-node links, (word, node).
    pub links: Vec<(u32, u32)>,
    /// Per fusion layer, the gate of each link, in the order of `links` (0..1; 3 decimals).
    pub gates: Vec<Vec<f32>>,
}

/// A visual node: an image region or a caption phrase, and the queries that found it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VisualNode {
    pub id: u32,
    pub kind: NodeKind,
    /// The COCO class of an image region, the text of a caption phrase.
    pub label: String,
    /// An image region's box (x1, y1, x2, y2) in pixels of the image as decoded, whose size is
    /// `image_size`, and its detector score.
    pub bbox: Option<[f32; 4]>,
    pub image_size: Option<(u32, u32)>,
    pub score: Option<f32>,
    pub found_by: Vec<Query>,
}

/// A noun phrase or general word that found a node, and how well it matched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Query {
    pub text: String,
    pub kind: QueryKind,
    /// The phrase's words in the tweet (end exclusive); `None` for a general word.
    pub span: Option<(u32, u32)>,
    pub similarity: f32,
}

impl TweetAnalysis {
    /// A tweet's analysis from its row, its grounded objects' rows (any order, any tweet's: the
    /// tweet's are picked), its predicted tags, its graph's links and their gates per layer.
    pub fn new(
        tweet: &Tweet,
        objects: &[&GroundedObject],
        predicted: &[Tag],
        links: &[(u32, u32)],
        gates: &[Vec<f32>],
    ) -> Self {
        let mut nodes: BTreeMap<u32, VisualNode> = BTreeMap::new();
        for row in objects.iter().filter(|r| r.tweet_id == tweet.id) {
            let region = row.region();
            let node = nodes.entry(row.object_id).or_insert_with(|| VisualNode {
                id: row.object_id,
                kind: row.kind,
                label: row.class.clone(),
                bbox: region.map(|(b, _)| b),
                image_size: region.map(|(_, size)| size),
                score: row.score,
                found_by: Vec::new(),
            });
            node.found_by.push(Query {
                text: row.query.clone(),
                kind: row.query_kind,
                span: row.phrase_start.zip(row.phrase_end),
                similarity: row.similarity,
            });
        }
        let round = |g: &f32| (g * 1000.0).round() / 1000.0;
        Self {
            id: tweet.id.clone(),
            tokens: tweet.tokens.clone(),
            gold: tweet
                .labels
                .as_ref()
                .map(|tags| Entity::all(&tweet.tokens, tags)),
            predicted: Entity::all(&tweet.tokens, predicted),
            image: match tweet.image_status {
                ImageStatus::Ok => tweet.image_path.clone(),
                ImageStatus::Missing | ImageStatus::None => None,
            },
            caption: tweet.caption.clone(),
            nodes: nodes.into_values().collect(),
            links: links.to_vec(),
            gates: gates
                .iter()
                .map(|layer| layer.iter().map(round).collect())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::labels::EntityType;
    use crate::schema::Split;

    fn tweet() -> Tweet {
        let tokens: Vec<String> = ["Obama", "in", "Paris", "today"].map(String::from).to_vec();
        Tweet {
            id: "t1".into(),
            split: Split::Test,
            labels: Some(vec![
                Tag::B(EntityType::Per),
                Tag::O,
                Tag::B(EntityType::Loc),
                Tag::O,
            ]),
            image_path: None,
            image_status: ImageStatus::None,
            image_digest: None,
            text_digest: Tweet::text_digest_of(&tokens),
            caption: Some("a man on a stage".into()),
            caption_digest: Some(Digest::of_bytes(b"a man on a stage")),
            source_line: 1,
            tokens,
        }
    }

    fn caption_node(tweet_id: &str, query: &str, kind: QueryKind) -> GroundedObject {
        GroundedObject {
            tweet_id: tweet_id.into(),
            object_id: 0,
            kind: NodeKind::Caption,
            x1: None,
            y1: None,
            x2: None,
            y2: None,
            image_width: None,
            image_height: None,
            score: None,
            class: "a man".into(),
            caption_start: Some(0),
            caption_end: Some(2),
            query: query.into(),
            query_kind: kind,
            phrase_start: (kind == QueryKind::Phrase).then_some(0),
            phrase_end: (kind == QueryKind::Phrase).then_some(1),
            similarity: 0.5,
        }
    }

    #[test]
    fn a_tweet_gathers_its_nodes_entities_and_rounded_gates() {
        let rows = [
            caption_node("t1", "Obama", QueryKind::Phrase),
            caption_node("t1", "person", QueryKind::General),
            caption_node("t2", "Paris", QueryKind::Phrase),
        ];
        let rows: Vec<&GroundedObject> = rows.iter().collect();
        let predicted = [Tag::B(EntityType::Per), Tag::O, Tag::O, Tag::O];
        let a = TweetAnalysis::new(&tweet(), &rows, &predicted, &[(0, 0)], &[vec![0.123456]]);
        let entity = |text: &str, ty: &str, start| Entity {
            text: text.into(),
            ty: ty.into(),
            start,
            end: start + 1,
        };
        assert_eq!(
            a.gold,
            Some(vec![entity("Obama", "PER", 0), entity("Paris", "LOC", 2)])
        );
        assert_eq!(a.predicted, vec![entity("Obama", "PER", 0)]);
        // One node, found by two queries of its own tweet; t2's row is not its.
        assert_eq!(a.nodes.len(), 1);
        let found: Vec<_> = a.nodes[0]
            .found_by
            .iter()
            .map(|q| (&*q.text, q.span))
            .collect();
        assert_eq!(found, [("Obama", Some((0, 1))), ("person", None)]);
        assert_eq!(a.gates, [vec![0.123]]);
        // What the file holds reads back the same.
        let line = serde_json::to_string(&a).unwrap();
        assert!(line.contains(r#""type":"PER""#), "{line}");
        assert_eq!(serde_json::from_str::<TweetAnalysis>(&line).unwrap(), a);
    }
}
