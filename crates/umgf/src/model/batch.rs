//! From cached artifacts to model input: one [`Example`] per tweet (text features, visual features of
//! its objects, the word-object links of its graph, gold tags), and padded [`Batch`]es of them.
use std::collections::HashMap;

use tch::{Device, Tensor};

use super::text_head::{MAX_CHARS, char_id};
use super::umgf::GraphBatch;
use crate::labels::Tag;
use crate::schema::{
    EdgeKind, GraphEdge, NodeKind, Split, StateValues, TextFeatures, Tweet, VisualFeatures,
};
use crate::text::wordpiece::MAX_PIECES;
use crate::{Error, Result};

/// Everything the model sees of one tweet.
#[derive(Clone, Debug)]
pub struct Example {
    pub tweet_id: String,
    pub split: Split,
    pub words: Vec<String>,
    /// Gold BIO tags (labelled data only).
    pub tags: Option<Vec<Tag>>,
    /// Frozen encoder states of each word, row-major [words, cached width] (see
    /// [`crate::stages::text_features`]).
    pub states: StateValues,
    pub shapes: Vec<u8>,
    /// Word pieces and each word's first piece (fine-tune mode runs the encoder on these).
    pub piece_ids: Vec<u32>,
    pub word_starts: Vec<u32>,
    /// Visual features of objects 0..m, each [visual_dim] (a caption node's are its text encoder's).
    pub objects: Vec<Vec<f32>>,
    /// Which of the objects are caption nodes.
    pub caption_nodes: Vec<bool>,
    /// Inter-modal edges (word, object) of the graph: phrase-object and general-object.
    pub links: Vec<(u32, u32)>,
}

impl Example {
    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

/// Joins the artifacts of one dataset by tweet id, in the order of `tweets`, all of them in memory
/// (the streamed join, [`super::join`], reads them a batch of rows at a time; its tests compare the
/// two).
pub fn assemble(
    tweets: &[Tweet],
    text: &[TextFeatures],
    visual: &[VisualFeatures],
    edges: &[GraphEdge],
) -> Result<Vec<Example>> {
    let text: HashMap<&str, &TextFeatures> =
        text.iter().map(|t| (t.tweet_id.as_str(), t)).collect();
    let mut objects: HashMap<&str, Vec<(u32, &VisualFeatures)>> = HashMap::new();
    for v in visual {
        if let Some(id) = v.object_id {
            objects
                .entry(v.tweet_id.as_str())
                .or_default()
                .push((id, v));
        }
    }
    let mut links: HashMap<&str, Vec<(u32, u32)>> = HashMap::new();
    for e in edges {
        if is_link(e) {
            links
                .entry(e.tweet_id.as_str())
                .or_default()
                .push((e.src, e.dst));
        }
    }
    tweets
        .iter()
        .map(|tweet| {
            let mine = objects.remove(tweet.id.as_str()).unwrap_or_default();
            let links = links.remove(tweet.id.as_str()).unwrap_or_default();
            example_of(tweet, text.get(tweet.id.as_str()).copied(), mine, links)
        })
        .collect()
}

/// Whether a graph edge joins a word and a visual node (what an [`Example`] keeps of the graph).
pub(crate) fn is_link(edge: &GraphEdge) -> bool {
    matches!(edge.kind, EdgeKind::PhraseObject | EdgeKind::GeneralObject)
}

/// The example of `tweet` from its rows of the other artifacts: its text features, the visual
/// features of its nodes (with their node numbers) and its word-node edges (graph node numbers).
/// Both joins ([`assemble`] and [`super::join`]) build examples here, so they agree.
pub(crate) fn example_of(
    tweet: &Tweet,
    text: Option<&TextFeatures>,
    mut objects: Vec<(u32, &VisualFeatures)>,
    links: Vec<(u32, u32)>,
) -> Result<Example> {
    let bad = |what: String| Error::Store(format!("tweet {}: {what}", tweet.id));
    let t = text.ok_or_else(|| bad("no text features".into()))?;
    let n = tweet.tokens.len() as u32;
    objects.sort_by_key(|(id, _)| *id);
    if objects
        .iter()
        .enumerate()
        .any(|(i, (id, _))| *id != i as u32)
    {
        return Err(bad("object ids are not 0..m".into()));
    }
    let m = objects.len() as u32;
    let links = links
        .into_iter()
        .map(|(src, dst)| {
            // Words are nodes 0..n, objects n..n+m, and src < dst: the word is src.
            if src < n && dst >= n && dst - n < m {
                Ok((src, dst - n))
            } else {
                Err(bad(format!(
                    "edge {src}-{dst} is not a word-object pair ({n} words, {m} objects with features)"
                )))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    if t.word_starts.len() != tweet.tokens.len() {
        return Err(bad("text features do not match the tokens".into()));
    }
    Ok(Example {
        tweet_id: tweet.id.clone(),
        split: tweet.split,
        words: tweet.tokens.clone(),
        tags: tweet.labels.clone(),
        states: t.states.clone(),
        shapes: t.shapes.clone(),
        piece_ids: t.piece_ids.clone(),
        word_starts: t.word_starts.clone(),
        caption_nodes: objects
            .iter()
            .map(|(_, v)| v.kind == NodeKind::Caption)
            .collect(),
        objects: objects
            .into_iter()
            .map(|(_, v)| v.features.clone())
            .collect(),
        links,
    })
}

/// Word pieces of a batch for the fine-tune mode.
pub struct Pieces {
    /// [batch, pieces] int64, and its mask.
    pub ids: Tensor,
    pub mask: Tensor,
    /// [batch, words] int64: the piece of each word whose state it takes.
    pub word_index: Tensor,
}

/// A padded batch: the graphs, gold tag indices (0 = O where unlabelled or padded), and pieces.
pub struct Batch {
    pub graph: GraphBatch,
    pub tags: Tensor,
    pub pieces: Pieces,
}

/// The longest piece sequence the fine-tuned encoder is given: longer tweets (rare) keep their first
/// pieces, and words beyond take the state of the last piece kept. Frozen states have no limit (the
/// `features` stage encodes long tweets in overlapping windows).
const FINE_TUNE_PIECES: usize = MAX_PIECES;

/// Pads `examples` into one batch on `device`. `text_dim` is the cached states' width per word (0
/// leaves them out: the fine-tune mode does not read them); `visual_dim` sizes empty tensors.
pub fn collate(
    examples: &[&Example],
    text_dim: i64,
    visual_dim: i64,
    pad_id: u32,
    device: Device,
) -> Batch {
    let b = examples.len() as i64;
    let n = examples.iter().map(|e| e.len()).max().unwrap_or(0).max(1) as i64;
    let m = examples.iter().map(|e| e.objects.len()).max().unwrap_or(0) as i64;
    let p = examples
        .iter()
        .map(|e| e.piece_ids.len().min(FINE_TUNE_PIECES))
        .max()
        .unwrap_or(0)
        .max(1) as i64;
    let c = examples
        .iter()
        .flat_map(|e| e.words.iter().map(|w| w.chars().count().min(MAX_CHARS)))
        .max()
        .unwrap_or(0) as i64;
    let (bu, nu, mu, pu, cu) = (b as usize, n as usize, m as usize, p as usize, c as usize);
    let (td, vd) = (text_dim as usize, visual_dim as usize);
    let all_tags = Tag::all();
    let mut words = vec![0f32; bu * nu * td];
    let mut shapes = vec![0i64; bu * nu];
    let mut chars = vec![0i64; bu * nu * cu];
    let mut word_mask = vec![false; bu * nu];
    let mut tags = vec![0i64; bu * nu];
    let mut objects = vec![0f32; bu * mu * vd];
    let mut object_mask = vec![false; bu * mu];
    let mut caption_nodes = vec![false; bu * mu];
    let mut links = vec![0f32; bu * nu * mu];
    let mut ids = vec![i64::from(pad_id); bu * pu];
    let mut piece_mask = vec![0i64; bu * pu];
    let mut word_index = vec![0i64; bu * nu];
    for (row, e) in examples.iter().enumerate() {
        let len = e.len();
        let take = e.states.len().min(len * td);
        e.states
            .copy_to_f32(0..take, &mut words[row * nu * td..row * nu * td + take]);
        for i in 0..len {
            shapes[row * nu + i] = i64::from(e.shapes[i]);
            word_mask[row * nu + i] = true;
            for (k, ch) in e.words[i].chars().take(MAX_CHARS).enumerate() {
                chars[(row * nu + i) * cu + k] = char_id(ch);
            }
        }
        if let Some(gold) = &e.tags {
            for (i, tag) in gold.iter().enumerate() {
                tags[row * nu + i] = all_tags.iter().position(|t| t == tag).unwrap_or(0) as i64;
            }
        }
        for (k, f) in e.objects.iter().enumerate() {
            let at = (row * mu + k) * vd;
            objects[at..at + f.len().min(vd)].copy_from_slice(&f[..f.len().min(vd)]);
            object_mask[row * mu + k] = true;
            caption_nodes[row * mu + k] = e.caption_nodes.get(k).copied().unwrap_or(false);
        }
        for &(w, o) in &e.links {
            links[(row * nu + w as usize) * mu + o as usize] = 1.0;
        }
        let kept = e.piece_ids.len().min(FINE_TUNE_PIECES);
        for (j, &id) in e.piece_ids.iter().take(FINE_TUNE_PIECES).enumerate() {
            ids[row * pu + j] = i64::from(id);
            piece_mask[row * pu + j] = 1;
        }
        if e.piece_ids.len() > FINE_TUNE_PIECES {
            // Keep the closing [SEP] in the last place.
            ids[row * pu + kept - 1] = i64::from(e.piece_ids[e.piece_ids.len() - 1]);
        }
        for (i, &start) in e.word_starts.iter().enumerate() {
            word_index[row * nu + i] = (start as usize).min(kept.saturating_sub(1)) as i64;
        }
    }
    let float = |v: &[f32], shape: &[i64]| Tensor::from_slice(v).view(shape).to_device(device);
    let int = |v: &[i64], shape: &[i64]| Tensor::from_slice(v).view(shape).to_device(device);
    let boolean = |v: &[bool], shape: &[i64]| Tensor::from_slice(v).view(shape).to_device(device);
    Batch {
        graph: GraphBatch {
            words: float(&words, &[b, n, text_dim]),
            shapes: int(&shapes, &[b, n]),
            chars: int(&chars, &[b, n, c]),
            word_mask: boolean(&word_mask, &[b, n]),
            objects: float(&objects, &[b, m, visual_dim]),
            object_mask: boolean(&object_mask, &[b, m]),
            caption_nodes: boolean(&caption_nodes, &[b, m]),
            links: float(&links, &[b, n, m]),
        },
        tags: int(&tags, &[b, n]),
        pieces: Pieces {
            ids: int(&ids, &[b, p]),
            mask: int(&piece_mask, &[b, p]),
            word_index: int(&word_index, &[b, n]),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(words: usize, objects: usize, links: Vec<(u32, u32)>) -> Example {
        Example {
            tweet_id: "t".into(),
            split: Split::Train,
            words: vec!["w".into(); words],
            tags: Some(vec![Tag::O; words]),
            states: StateValues::F32((0..words * 2).map(|i| i as f32).collect()),
            shapes: vec![1; words],
            piece_ids: (0..words as u32 + 2).collect(),
            word_starts: (1..=words as u32).collect(),
            objects: vec![vec![0.5; 3]; objects],
            caption_nodes: vec![false; objects],
            links,
        }
    }

    #[test]
    fn pads_words_objects_and_links() {
        let a = example(3, 2, vec![(1, 0), (2, 1)]);
        let b = example(1, 0, vec![]);
        let batch = collate(&[&a, &b], 2, 3, 0, Device::Cpu);
        assert_eq!(batch.graph.words.size(), vec![2, 3, 2]);
        assert_eq!(batch.graph.objects.size(), vec![2, 2, 3]);
        assert_eq!(batch.graph.links.size(), vec![2, 3, 2]);
        assert_eq!(batch.pieces.ids.size(), vec![2, 5]);
        let links = Vec::<f32>::try_from(batch.graph.links.flatten(0, -1)).unwrap();
        assert_eq!(links[2], 1.0); // word 1, object 0
        assert_eq!(links[2 * 2 + 1], 1.0); // word 2, object 1
        assert_eq!(links.iter().sum::<f32>(), 2.0);
        let mask = Vec::<bool>::try_from(batch.graph.word_mask.flatten(0, -1)).unwrap();
        assert_eq!(mask, vec![true, true, true, true, false, false]);
        let words = Vec::<f32>::try_from(batch.graph.words.flatten(0, -1)).unwrap();
        assert_eq!(&words[..6], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(&words[6..8], &[0.0, 1.0]);
    }

    #[test]
    fn an_edge_to_an_object_without_features_is_an_error() {
        let tweet = Tweet {
            id: "7".into(),
            split: Split::Train,
            tokens: vec!["a".into(), "b".into()],
            labels: None,
            image_path: None,
            image_status: crate::schema::ImageStatus::None,
            image_digest: None,
            text_digest: Tweet::text_digest_of(&["a".into(), "b".into()]),
            caption: None,
            caption_digest: None,
            source_line: 1,
        };
        let text = TextFeatures {
            tweet_id: "7".into(),
            piece_ids: vec![101, 1, 2, 102],
            word_starts: vec![1, 2],
            shapes: vec![0, 0],
            states: StateValues::F16(vec![half::f16::ZERO; 2 * 4]),
        };
        let edge = GraphEdge {
            tweet_id: "7".into(),
            src: 0,
            dst: 2,
            kind: EdgeKind::PhraseObject,
        };
        let err = assemble(&[tweet], &[text], &[], &[edge]).unwrap_err();
        assert!(err.to_string().contains("tweet 7"), "{err}");
    }
}
