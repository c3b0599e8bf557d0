//! The streamed join of a dataset's artifacts: one [`Example`] per tweet, in the tweets' order, read
//! a batch of rows at a time, so that what stays in memory is a batch of each artifact and an index
//! per tweet (its id and position), never the dataset.
//!
//! How the artifacts are ordered (the join relies on it, and checks nothing it does not need):
//! - `tweets`: the dump's order (ingest). A tweet's position is its row number; ids are unique.
//! - `text_features`: a row per tweet, in the tweets' order (`features` encodes them in order).
//! - `visual_features`: the image nodes of every tweet in the tweets' order, then the caption nodes
//!   of every tweet in the objects' order (which is the tweets' order): two passes over the tweets.
//! - `graph_edges`, `objects`: each tweet's rows together, in the tweets' order.
//!
//! So rather than assume one order, a first pass reads the `tweet_id` column alone and cuts each
//! artifact into runs: stretches of rows whose tweets' positions never decrease (one run for most
//! artifacts, two for `visual_features`, a few per part when artifacts are split into parts). The
//! join then merges the runs that cover the current tweet, each read in order; a run is opened when
//! the join reaches its first tweet, so at most as many are open as overlap. Every run also records
//! where each block of [`BLOCK`] tweets starts in it, so a block can be read on its own (training
//! reads the blocks of an epoch in a shuffled order).
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::path::PathBuf;

use super::batch::{Example, example_of, is_link};
use crate::schema::{
    Artifact, ArtifactFiles, GraphEdge, GroundedObject, Split, TextFeatures, Tweet, VisualFeatures,
};
use crate::{Error, Result};

/// Tweets per block: the unit a run's index points into and training shuffles (small enough that a
/// block read at random costs little more than its rows, large enough that the index is small).
pub const BLOCK: u32 = 128;

/// Rows per read batch of each artifact: about a megabyte or two of decoded rows each.
const TWEET_ROWS: usize = 1024;
const TEXT_ROWS: usize = 64;
const VISUAL_ROWS: usize = 256;
const EDGE_ROWS: usize = 16 * 1024;

/// An artifact whose rows belong to tweets.
pub trait TweetRows: Artifact {
    /// Rows per read batch.
    const BATCH_ROWS: usize;
    fn tweet_id(&self) -> &str;
}

impl TweetRows for TextFeatures {
    const BATCH_ROWS: usize = TEXT_ROWS;
    fn tweet_id(&self) -> &str {
        &self.tweet_id
    }
}

impl TweetRows for VisualFeatures {
    const BATCH_ROWS: usize = VISUAL_ROWS;
    fn tweet_id(&self) -> &str {
        &self.tweet_id
    }
}

impl TweetRows for GraphEdge {
    const BATCH_ROWS: usize = EDGE_ROWS;
    fn tweet_id(&self) -> &str {
        &self.tweet_id
    }
}

impl TweetRows for GroundedObject {
    const BATCH_ROWS: usize = VISUAL_ROWS;
    fn tweet_id(&self) -> &str {
        &self.tweet_id
    }
}

/// What the join keeps of each tweet: its position by id, and its split and whether it is labelled.
#[derive(Default)]
pub struct TweetIndex {
    positions: HashMap<Box<str>, u32>,
    splits: Vec<Split>,
    labelled: Vec<bool>,
}

impl TweetIndex {
    /// The position of the tweet `id` (`None` for an id the tweets artifact lacks).
    pub fn position(&self, id: &str) -> Option<u32> {
        self.positions.get(id).copied()
    }

    pub fn len(&self) -> u32 {
        self.splits.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.splits.is_empty()
    }

    pub fn split(&self, position: u32) -> Split {
        self.splits[position as usize]
    }

    /// The tweet at `position` has gold tags.
    pub fn labelled(&self, position: u32) -> bool {
        self.labelled[position as usize]
    }
}

/// A stretch of an artifact's rows whose tweets' positions never decrease.
#[derive(Debug)]
struct Run {
    rows: Range<u64>,
    /// The positions of its first and last rows' tweets.
    first: u32,
    last: u32,
    /// `blocks[k]`: its first row of a tweet at or after block `first / BLOCK + k`.
    blocks: Vec<u64>,
}

impl Run {
    /// Its rows of the tweets at `positions`: exact where the bounds are multiples of [`BLOCK`] (or
    /// outside the run), else widened to whole blocks (the merge skips the extra rows).
    fn rows_of(&self, positions: &Range<u32>) -> Range<u64> {
        // The first row of a tweet at or after block `block`.
        let at_block = |block: u32| {
            let first = self.first / BLOCK;
            if block <= first {
                self.rows.start
            } else {
                self.blocks
                    .get((block - first) as usize)
                    .copied()
                    .unwrap_or(self.rows.end)
            }
        };
        let end = if positions.end > self.last {
            self.rows.end
        } else {
            at_block(positions.end.div_ceil(BLOCK))
        };
        at_block(positions.start / BLOCK)..end
    }
}

/// An artifact of tweets' rows and its runs (see the module's note).
pub struct RowIndex<A: Artifact> {
    files: ArtifactFiles<A>,
    runs: Vec<Run>,
}

impl<A: TweetRows> RowIndex<A> {
    /// Opens the artifact's files (in order) and reads its `tweet_id` column to find its runs. Rows
    /// of tweets that `tweets` lacks belong to none (the join never reads them).
    pub fn open(paths: &[PathBuf], tweets: &TweetIndex) -> Result<Self> {
        let files = ArtifactFiles::<A>::open(paths)?;
        let mut runs: Vec<Run> = Vec::new();
        files.for_each_str("tweet_id", |row, id| {
            let Some(p) = tweets.position(id) else {
                return Ok(());
            };
            match runs.last_mut() {
                Some(run) if p >= run.last => {
                    while run.first / BLOCK + (run.blocks.len() as u32) <= p / BLOCK {
                        run.blocks.push(row);
                    }
                    run.last = p;
                    run.rows.end = row + 1;
                }
                _ => runs.push(Run {
                    rows: row..row + 1,
                    first: p,
                    last: p,
                    blocks: vec![row],
                }),
            }
            Ok(())
        })?;
        Ok(Self { files, runs })
    }

    /// A merge of its runs over the tweets at `positions`, read in order.
    pub fn merge<'a>(&'a self, tweets: &'a TweetIndex, positions: Range<u32>) -> Merge<'a, A> {
        // Runs that hold none of the positions are never opened.
        let mut pending: Vec<usize> = (0..self.runs.len())
            .filter(|&r| {
                let run = &self.runs[r];
                run.last >= positions.start && run.first < positions.end
            })
            .collect();
        // Latest first tweet first: the next run to open is the last.
        pending.sort_by_key(|&r| std::cmp::Reverse((self.runs[r].first, r)));
        Merge {
            index: self,
            tweets,
            positions,
            pending,
            open: Vec::new(),
        }
    }
}

/// A run being read: its batches and the rows read but not taken yet, with their tweets' positions.
struct Cursor<'a, A> {
    run: usize,
    batches: Box<dyn Iterator<Item = Result<Vec<A>>> + 'a>,
    rows: VecDeque<(u32, A)>,
    done: bool,
}

/// The rows of an artifact tweet by tweet, in the tweets' order (see [`RowIndex::merge`]).
pub struct Merge<'a, A: Artifact> {
    index: &'a RowIndex<A>,
    tweets: &'a TweetIndex,
    positions: Range<u32>,
    /// Runs not opened yet, the next to open last.
    pending: Vec<usize>,
    /// Open runs, in the artifact's order (so a tweet's rows come in the artifact's order).
    open: Vec<Cursor<'a, A>>,
}

impl<A: TweetRows> Merge<'_, A> {
    /// The rows of the tweet at `position`, in the artifact's order. Positions must not decrease
    /// from call to call; the rows of positions skipped are dropped.
    pub fn take(&mut self, position: u32) -> Result<Vec<A>> {
        let index = self.index;
        while let Some(&r) = self.pending.last() {
            if index.runs[r].first > position {
                break;
            }
            self.pending.pop();
            let rows = index.runs[r].rows_of(&self.positions);
            let at = self.open.partition_point(|c| c.run < r);
            self.open.insert(
                at,
                Cursor {
                    run: r,
                    batches: Box::new(index.files.rows(rows, A::BATCH_ROWS)),
                    rows: VecDeque::new(),
                    done: false,
                },
            );
        }
        let mut out = Vec::new();
        for cursor in &mut self.open {
            loop {
                if cursor.rows.is_empty() && !cursor.done {
                    match cursor.batches.next() {
                        Some(batch) => {
                            for row in batch? {
                                if let Some(p) = self.tweets.position(row.tweet_id()) {
                                    cursor.rows.push_back((p, row));
                                }
                            }
                        }
                        None => cursor.done = true,
                    }
                    continue;
                }
                match cursor.rows.front() {
                    Some((p, _)) if *p < position => {
                        cursor.rows.pop_front();
                    }
                    Some((p, _)) if *p == position => {
                        out.extend(cursor.rows.pop_front().map(|(_, row)| row));
                    }
                    _ => break,
                }
            }
        }
        self.open.retain(|c| !(c.done && c.rows.is_empty()));
        Ok(out)
    }
}

/// The files of each artifact the model reads (each a list of parts, read in order as one table).
#[derive(Clone, Debug)]
pub struct ArtifactPaths {
    pub tweets: Vec<PathBuf>,
    pub text_features: Vec<PathBuf>,
    pub visual_features: Vec<PathBuf>,
    pub graph_edges: Vec<PathBuf>,
}

/// About what the examples of every tweet of the artifacts take in memory, from the files' footers:
/// the uncompressed sizes of what examples hold (the tweets, their text and visual features; of the
/// graph's edges an example keeps only the few word-node links).
pub fn in_memory_bytes(paths: &ArtifactPaths) -> Result<u64> {
    Ok(
        ArtifactFiles::<Tweet>::open(&paths.tweets)?.uncompressed_bytes()
            + ArtifactFiles::<TextFeatures>::open(&paths.text_features)?.uncompressed_bytes()
            + ArtifactFiles::<VisualFeatures>::open(&paths.visual_features)?.uncompressed_bytes(),
    )
}

/// A dataset's artifacts opened for the streamed join.
pub struct JoinedArtifacts {
    tweets: ArtifactFiles<Tweet>,
    index: TweetIndex,
    text: RowIndex<TextFeatures>,
    visual: RowIndex<VisualFeatures>,
    edges: RowIndex<GraphEdge>,
}

/// A tweet of the join: its position, its row of `tweets`, and its example.
pub struct Joined {
    pub position: u32,
    pub tweet: Tweet,
    pub example: Example,
}

impl JoinedArtifacts {
    /// Opens the artifacts and indexes them: one pass over the tweets, and over each other
    /// artifact's `tweet_id` column.
    pub fn open(paths: &ArtifactPaths) -> Result<Self> {
        let tweets = ArtifactFiles::<Tweet>::open(&paths.tweets)?;
        let mut index = TweetIndex::default();
        for batch in tweets.rows(0..tweets.num_rows(), TWEET_ROWS) {
            for tweet in batch? {
                let position = index.splits.len() as u32;
                if index
                    .positions
                    .insert(tweet.id.clone().into_boxed_str(), position)
                    .is_some()
                {
                    // Ingest refuses them; a join by id could not tell the two apart.
                    return Err(Error::Store(format!(
                        "{}: tweet id {} appears twice",
                        paths
                            .tweets
                            .first()
                            .map_or(String::new(), |p| p.display().to_string()),
                        tweet.id
                    )));
                }
                index.splits.push(tweet.split);
                index.labelled.push(tweet.labels.is_some());
            }
        }
        Ok(Self {
            text: RowIndex::open(&paths.text_features, &index)?,
            visual: RowIndex::open(&paths.visual_features, &index)?,
            edges: RowIndex::open(&paths.graph_edges, &index)?,
            tweets,
            index,
        })
    }

    /// The tweets' positions, splits and labels.
    pub fn tweets(&self) -> &TweetIndex {
        &self.index
    }

    /// Number of tweets.
    pub fn len(&self) -> u32 {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Calls `f` with each tweet's position and row, in order.
    pub fn for_each_tweet(&self, mut f: impl FnMut(u32, &Tweet) -> Result<()>) -> Result<()> {
        let mut position = 0;
        for batch in self.tweets.rows(0..self.tweets.num_rows(), TWEET_ROWS) {
            for tweet in batch? {
                f(position, &tweet)?;
                position += 1;
            }
        }
        Ok(())
    }

    /// Calls `f` with each row of `visual_features` whose tweet is in the tweets artifact, in the
    /// artifact's order.
    pub fn for_each_visual(&self, mut f: impl FnMut(&VisualFeatures) -> Result<()>) -> Result<()> {
        let files = &self.visual.files;
        for batch in files.rows(0..files.num_rows(), VISUAL_ROWS) {
            for row in batch? {
                if self.index.position(&row.tweet_id).is_some() {
                    f(&row)?;
                }
            }
        }
        Ok(())
    }

    /// The tweets at `positions` that `keep` keeps (by position), joined, in order.
    pub fn join<'a>(
        &'a self,
        positions: Range<u32>,
        keep: impl Fn(u32) -> bool + 'a,
    ) -> impl Iterator<Item = Result<Joined>> + 'a {
        let positions = positions.start..positions.end.min(self.len());
        Join {
            tweets: Box::new(self.tweets.rows(
                u64::from(positions.start)..u64::from(positions.end),
                TWEET_ROWS,
            )),
            buffer: VecDeque::new(),
            next: positions.start,
            end: positions.end,
            keep: Box::new(keep),
            text: self.text.merge(&self.index, positions.clone()),
            visual: self.visual.merge(&self.index, positions.clone()),
            edges: self.edges.merge(&self.index, positions),
            failed: false,
        }
    }

    /// The examples of the tweets at `positions` that `keep` keeps, in order.
    pub fn examples<'a>(
        &'a self,
        positions: Range<u32>,
        keep: impl Fn(u32) -> bool + 'a,
    ) -> impl Iterator<Item = Result<Example>> + 'a {
        self.join(positions, keep).map(|j| j.map(|j| j.example))
    }
}

struct Join<'a> {
    tweets: Box<dyn Iterator<Item = Result<Vec<Tweet>>> + 'a>,
    buffer: VecDeque<Tweet>,
    /// The position of the next tweet read.
    next: u32,
    end: u32,
    keep: Box<dyn Fn(u32) -> bool + 'a>,
    text: Merge<'a, TextFeatures>,
    visual: Merge<'a, VisualFeatures>,
    edges: Merge<'a, GraphEdge>,
    failed: bool,
}

impl Join<'_> {
    fn joined(&mut self, position: u32, tweet: Tweet) -> Result<Joined> {
        let text = self.text.take(position)?;
        let visual = self.visual.take(position)?;
        let edges = self.edges.take(position)?;
        let objects = visual
            .iter()
            .filter_map(|v| Some((v.object_id?, v)))
            .collect();
        let links = edges
            .iter()
            .filter(|e| is_link(e))
            .map(|e| (e.src, e.dst))
            .collect();
        // The last row of a tweet counts, as in a map by id.
        let example = example_of(&tweet, text.last(), objects, links)?;
        Ok(Joined {
            position,
            tweet,
            example,
        })
    }
}

impl Iterator for Join<'_> {
    type Item = Result<Joined>;

    fn next(&mut self) -> Option<Result<Joined>> {
        while !self.failed && self.next < self.end {
            let Some(tweet) = self.buffer.pop_front() else {
                match self.tweets.next() {
                    Some(Ok(batch)) => self.buffer.extend(batch),
                    Some(Err(e)) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                    None => {
                        self.failed = true;
                        return Some(Err(Error::Internal(format!(
                            "the tweets artifact ended before tweet {}",
                            self.next
                        ))));
                    }
                }
                continue;
            };
            let position = self.next;
            self.next += 1;
            if !(self.keep)(position) {
                continue;
            }
            let joined = self.joined(position, tweet);
            self.failed = joined.is_err();
            return Some(joined);
        }
        None
    }
}

/// Small artifacts written as the stages write theirs, for the tests of the join and of what reads
/// through it.
#[cfg(test)]
pub(crate) mod fixture {
    use std::path::{Path, PathBuf};

    use super::ArtifactPaths;
    use crate::io::parquet::Writer;
    use crate::labels::Tag;
    use crate::schema::{
        Artifact, EdgeKind, GraphEdge, ImageStatus, NodeKind, Split, StateStorage, StateValues,
        TextFeatures, Tweet, VisualFeatures,
    };

    /// The rows of `n` tweets: every third has an image (a whole-image row and one or two
    /// objects), every fifth caption nodes after them; the first tenth are dev, the last tenth
    /// test; each artifact's rows in the order its stage writes them.
    pub(crate) struct Rows {
        pub tweets: Vec<Tweet>,
        pub text: Vec<TextFeatures>,
        pub visual: Vec<VisualFeatures>,
        pub edges: Vec<GraphEdge>,
    }

    pub(crate) fn rows(n: usize) -> Rows {
        let mut rows = Rows {
            tweets: Vec::new(),
            text: Vec::new(),
            visual: Vec::new(),
            edges: Vec::new(),
        };
        let mut captions = Vec::new();
        for i in 0..n {
            let id = format!("t{i}");
            let words = 1 + i % 7;
            let tokens: Vec<String> = (0..words).map(|w| format!("w{i}-{w}")).collect();
            let split = if i < n / 10 {
                Split::Dev
            } else if i >= n - n / 10 {
                Split::Test
            } else {
                Split::Train
            };
            let mut labels = vec![Tag::O; words];
            labels[0] = ["B-PER", "B-LOC", "O"][i % 3].parse().unwrap();
            rows.tweets.push(Tweet {
                id: id.clone(),
                split,
                text_digest: Tweet::text_digest_of(&tokens),
                tokens,
                labels: Some(labels),
                image_path: None,
                image_status: ImageStatus::None,
                image_digest: None,
                caption: None,
                caption_digest: None,
                source_line: i as u32 + 1,
            });
            let states: Vec<f32> = (0..words * 3).map(|k| (i * 31 + k) as f32 / 7.0).collect();
            rows.text.push(TextFeatures {
                tweet_id: id.clone(),
                piece_ids: (0..words as u32 + 2).collect(),
                word_starts: (1..=words as u32).collect(),
                shapes: vec![(i % 5) as u8; words],
                states: StateValues::from_f32(&states, StateStorage::F16),
            });
            let images = if i % 3 == 0 { 1 + i % 2 } else { 0 };
            if images > 0 {
                rows.visual.push(VisualFeatures {
                    tweet_id: id.clone(),
                    object_id: None,
                    kind: NodeKind::Image,
                    features: vec![i as f32; 4],
                });
            }
            for k in 0..images {
                rows.visual.push(VisualFeatures {
                    tweet_id: id.clone(),
                    object_id: Some(k as u32),
                    kind: NodeKind::Image,
                    features: vec![(i * 10 + k) as f32; 4],
                });
            }
            let caption_nodes = if i % 5 == 0 { 1 } else { 0 };
            for k in images..images + caption_nodes {
                captions.push(VisualFeatures {
                    tweet_id: id.clone(),
                    object_id: Some(k as u32),
                    kind: NodeKind::Caption,
                    features: vec![-(i as f32); 4],
                });
            }
            let nodes = words + images + caption_nodes;
            for a in 0..words as u32 {
                for b in a + 1..words as u32 {
                    rows.edges.push(edge(&id, a, b, EdgeKind::WordWord));
                }
            }
            for k in 0..(images + caption_nodes) as u32 {
                let kind = [EdgeKind::PhraseObject, EdgeKind::GeneralObject][i % 2];
                rows.edges
                    .push(edge(&id, k % words as u32, words as u32 + k, kind));
            }
            debug_assert!(nodes >= words);
        }
        // The caption nodes after every image node, as `features` writes them.
        rows.visual.extend(captions);
        // A row of a tweet the tweets artifact lacks: both joins leave it out.
        rows.edges
            .push(edge("elsewhere", 0, 1, EdgeKind::PhraseObject));
        rows
    }

    fn edge(id: &str, src: u32, dst: u32, kind: EdgeKind) -> GraphEdge {
        GraphEdge {
            tweet_id: id.to_owned(),
            src,
            dst,
            kind,
        }
    }

    /// `rows` written in `parts` files, about the same number of rows each.
    fn write<A: Artifact>(dir: &Path, name: &str, rows: &[A], parts: usize) -> Vec<PathBuf> {
        let per_part = rows.len().div_ceil(parts).max(1);
        let mut paths = Vec::new();
        for (k, part) in rows.chunks(per_part).enumerate() {
            let path = dir.join(format!("{name}-{k}.parquet"));
            let mut writer = Writer::<A>::create(&path);
            // A few rows at a time, as the stages that stream write.
            for rows in part.chunks(37) {
                writer.write(rows).unwrap();
            }
            writer.finish().unwrap();
            paths.push(path);
        }
        paths
    }

    /// The artifacts of `rows` written into `dir`, each in `parts` files. Visual features are
    /// written as a stage that writes parts would: each part holds a share of the tweets, their
    /// image nodes then their caption nodes.
    pub(crate) fn write_all(dir: &Path, rows: &Rows, parts: usize) -> ArtifactPaths {
        let per_part = rows.tweets.len().div_ceil(parts).max(1);
        let part_of = |id: &str| {
            let position = rows.tweets.iter().position(|t| t.id == id);
            position.map_or(parts, |p| p / per_part)
        };
        let mut visual = Vec::new();
        for k in 0..parts {
            for kind in [NodeKind::Image, NodeKind::Caption] {
                visual.extend(
                    rows.visual
                        .iter()
                        .filter(|v| v.kind == kind && part_of(&v.tweet_id) == k)
                        .cloned(),
                );
            }
        }
        ArtifactPaths {
            tweets: write(dir, "tweets", &rows.tweets, parts),
            text_features: write(dir, "text", &rows.text, parts),
            visual_features: write(dir, "visual", &visual, parts),
            graph_edges: write(dir, "edges", &rows.edges, parts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::batch::assemble;

    fn debug(examples: &[Example]) -> Vec<String> {
        examples.iter().map(|e| format!("{e:?}")).collect()
    }

    #[test]
    fn the_streamed_join_yields_the_examples_of_the_whole_join() {
        let dir = tempfile::tempdir().unwrap();
        let rows = fixture::rows(700);
        let whole = debug(&assemble(&rows.tweets, &rows.text, &rows.visual, &rows.edges).unwrap());
        assert!(whole.iter().any(|e| e.contains("caption_nodes: [true")));
        for parts in [1, 3] {
            let sub = dir.path().join(parts.to_string());
            std::fs::create_dir_all(&sub).unwrap();
            let joined = JoinedArtifacts::open(&fixture::write_all(&sub, &rows, parts)).unwrap();
            assert_eq!(joined.len(), 700);
            // The image rows, then the caption rows, of each part: a part's caption rows continue
            // the run of the image rows of the part before.
            assert_eq!(joined.visual.runs.len(), parts + 1);
            let all: Vec<Example> = joined
                .examples(0..joined.len(), |_| true)
                .collect::<Result<_>>()
                .unwrap();
            assert_eq!(debug(&all), whole, "{parts} part(s)");

            // Block by block, in any order, and some tweets only.
            let blocks = joined.len().div_ceil(BLOCK);
            let mut by_block = vec![Vec::new(); blocks as usize];
            for b in (0..blocks).rev() {
                by_block[b as usize] = joined
                    .examples(b * BLOCK..(b + 1) * BLOCK, |p| p % 3 != 1)
                    .collect::<Result<Vec<_>>>()
                    .unwrap();
            }
            let kept: Vec<String> = whole
                .iter()
                .enumerate()
                .filter(|(p, _)| p % 3 != 1)
                .map(|(_, e)| e.clone())
                .collect();
            assert_eq!(debug(&by_block.concat()), kept);
            // A range that does not start at a block's first tweet.
            let middle: Vec<Example> = joined
                .examples(130..333, |_| true)
                .collect::<Result<_>>()
                .unwrap();
            assert_eq!(debug(&middle), whole[130..333]);
        }
    }

    #[test]
    fn an_error_of_the_whole_join_is_one_of_the_streamed_join() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows = fixture::rows(50);
        // Tweet t7 loses its text features.
        rows.text.retain(|t| t.tweet_id != "t7");
        let whole = assemble(&rows.tweets, &rows.text, &rows.visual, &rows.edges).unwrap_err();
        let joined = JoinedArtifacts::open(&fixture::write_all(dir.path(), &rows, 1)).unwrap();
        let streamed = joined
            .examples(0..joined.len(), |_| true)
            .collect::<Result<Vec<_>>>()
            .unwrap_err();
        assert_eq!(streamed.to_string(), whole.to_string());
        assert!(streamed.to_string().contains("tweet t7"), "{streamed}");
    }

    #[test]
    fn another_artifact_in_place_of_one_is_an_error_naming_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let rows = fixture::rows(10);
        let mut paths = fixture::write_all(dir.path(), &rows, 1);
        paths.text_features = paths.graph_edges.clone();
        let Err(err) = JoinedArtifacts::open(&paths) else {
            panic!("edges read as text features");
        };
        assert!(err.to_string().contains("edges-0.parquet"), "{err}");
    }
}
