//! `graphs`: each tweet's multimodal graph as an edge list (DESIGN.md section 1). Nodes are the
//! tweet's words (0..n) and its grounded objects (n + object_id). Edges, each stored once with
//! src < dst: every pair of words, every pair of objects, each word of a noun phrase with the objects
//! that phrase found, and every word with the objects a general word found. A tweet without objects
//! has only word-word edges. Cheap enough to need no per-tweet memo: the store's run key (tweets +
//! objects) is the cache.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::digest::Digest;
use crate::error::Result;
use crate::schema::{Artifact, EdgeKind, GraphEdge, GroundedObject, QueryKind, Tweet};
use crate::stages::Stage;
use crate::store::{ByParts, RunOutcome, RunSpec, Store};

pub const EDGES: &str = "graph_edges.parquet";

/// What `graphs` counts: the tweets and their edges, in all and by kind.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub tweets: usize,
    pub edges: usize,
    #[serde(rename = "word-word_edges")]
    pub word_word: usize,
    #[serde(rename = "object-object_edges")]
    pub object_object: usize,
    #[serde(rename = "phrase-object_edges")]
    pub phrase_object: usize,
    #[serde(rename = "general-object_edges")]
    pub general_object: usize,
}

/// The `graphs` stage.
pub struct GraphsStage;

/// What a graph is made of: the `tweets` and `objects` artifacts.
pub struct Input {
    pub tweets: Digest,
    pub objects: Digest,
}

impl Stage for GraphsStage {
    const NAME: &'static str = "graphs";
    const VERSION: u32 = 1;
    type Input = Input;
    type Counts = Counts;

    fn headline(c: &Counts) -> String {
        format!("{} tweets, {} edges", c.tweets, c.edges)
    }

    fn spec(input: &Input) -> Result<RunSpec> {
        Ok(RunSpec {
            stage: Self::NAME.to_owned(),
            version: Self::VERSION,
            params: json!({"nodes": "words 0..n, then objects n + object_id", "edges": "undirected, src < dst"}),
            inputs: BTreeMap::from([
                ("tweets".to_owned(), input.tweets),
                ("objects".to_owned(), input.objects),
            ]),
        })
    }

    fn run(store: &Store, input: &Input) -> Result<RunOutcome> {
        run(store, input)
    }
}

/// Part by part (see [`crate::store::parts`]): a tweet's graph needs only its own rows.
fn run(store: &Store, input: &Input) -> Result<RunOutcome> {
    let plan = ByParts {
        inputs: &["tweets", "objects"],
        ..ByParts::default()
    };
    store.run_by_parts(&GraphsStage::spec(input)?, &plan, |part, outputs| {
        let tweets = Tweet::read(&store.blob_path(&part["tweets"]))?;
        let objects = GroundedObject::read(&store.blob_path(&part["objects"]))?;
        let mut by_tweet: HashMap<&str, Vec<&GroundedObject>> = HashMap::new();
        for o in &objects {
            by_tweet.entry(o.tweet_id.as_str()).or_default().push(o);
        }
        let mut edges = Vec::new();
        for tweet in &tweets {
            let mine = by_tweet
                .get(tweet.id.as_str())
                .map_or(&[][..], Vec::as_slice);
            edges.extend(edges_of(tweet, mine));
        }
        GraphEdge::write(&outputs.path(EDGES), &edges)?;
        let kind = |kind: EdgeKind| edges.iter().filter(|e| e.kind == kind).count();
        Ok(serde_json::to_value(Counts {
            tweets: tweets.len(),
            edges: edges.len(),
            word_word: kind(EdgeKind::WordWord),
            object_object: kind(EdgeKind::ObjectObject),
            phrase_object: kind(EdgeKind::PhraseObject),
            general_object: kind(EdgeKind::GeneralObject),
        })?)
    })
}

/// The edges of one tweet's graph, given its rows of the `objects` artifact.
pub fn edges_of(tweet: &Tweet, objects: &[&GroundedObject]) -> Vec<GraphEdge> {
    let words = tweet.tokens.len() as u32;
    let object_ids: BTreeSet<u32> = objects.iter().map(|o| o.object_id).collect();
    let mut edges = BTreeSet::new();
    let mut add = |a: u32, b: u32, kind: EdgeKind| {
        if a != b {
            edges.insert((a.min(b), a.max(b), kind));
        }
    };
    for a in 0..words {
        for b in a + 1..words {
            add(a, b, EdgeKind::WordWord);
        }
    }
    for &a in &object_ids {
        for &b in object_ids.range(a + 1..) {
            add(words + a, words + b, EdgeKind::ObjectObject);
        }
    }
    for o in objects {
        let node = words + o.object_id;
        match (o.query_kind, o.phrase_start, o.phrase_end) {
            (QueryKind::Phrase, Some(start), Some(end)) => {
                for w in start..end.min(words) {
                    add(w, node, EdgeKind::PhraseObject);
                }
            }
            _ => {
                for w in 0..words {
                    add(w, node, EdgeKind::GeneralObject);
                }
            }
        }
    }
    edges
        .into_iter()
        .map(|(src, dst, kind)| GraphEdge {
            tweet_id: tweet.id.clone(),
            src,
            dst,
            kind,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ImageStatus, NodeKind, Split};

    fn object(id: u32, kind: QueryKind, span: Option<(u32, u32)>) -> GroundedObject {
        GroundedObject {
            tweet_id: "t".into(),
            object_id: id,
            kind: NodeKind::Image,
            x1: Some(0.0),
            y1: Some(0.0),
            x2: Some(1.0),
            y2: Some(1.0),
            image_width: Some(2),
            image_height: Some(2),
            score: Some(0.5),
            class: "person".into(),
            caption_start: None,
            caption_end: None,
            query: "q".into(),
            query_kind: kind,
            phrase_start: span.map(|s| s.0),
            phrase_end: span.map(|s| s.1),
            similarity: 1.0,
        }
    }

    #[test]
    fn edges_follow_the_paper() {
        let tokens: Vec<String> = ["the", "guys", "ride", "motorbikes"]
            .map(String::from)
            .to_vec();
        let tweet = Tweet {
            id: "t".into(),
            split: Split::Dump,
            text_digest: Tweet::text_digest_of(&tokens),
            caption: None,
            caption_digest: None,
            tokens,
            labels: None,
            image_path: None,
            image_status: ImageStatus::Ok,
            image_digest: None,
            source_line: 1,
        };
        // Object 0 (node 4): found by "the guys" (words 0-1) and by the general word; object 1
        // (node 5): found by "motorbikes" (word 3).
        let rows = [
            object(0, QueryKind::Phrase, Some((0, 2))),
            object(0, QueryKind::General, None),
            object(1, QueryKind::Phrase, Some((3, 4))),
        ];
        let edges = edges_of(&tweet, &rows.iter().collect::<Vec<_>>());
        let of = |kind| {
            edges
                .iter()
                .filter(|e| e.kind == kind)
                .map(|e| (e.src, e.dst))
                .collect::<Vec<_>>()
        };
        assert_eq!(of(EdgeKind::WordWord).len(), 6);
        assert_eq!(of(EdgeKind::ObjectObject), vec![(4, 5)]);
        assert_eq!(of(EdgeKind::PhraseObject), vec![(0, 4), (1, 4), (3, 5)]);
        assert_eq!(
            of(EdgeKind::GeneralObject),
            vec![(0, 4), (1, 4), (2, 4), (3, 4)]
        );
        assert!(edges.iter().all(|e| e.src < e.dst));

        // No objects: only the words' clique.
        assert!(
            edges_of(&tweet, &[])
                .iter()
                .all(|e| e.kind == EdgeKind::WordWord)
        );
    }
}
