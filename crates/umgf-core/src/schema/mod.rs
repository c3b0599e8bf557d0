//! Artifact schemas, defined once and versioned. Each Parquet artifact carries its schema name and
//! version in the file's key-value metadata (`umgf.schema`, e.g. `tweets/1`); readers refuse other
//! versions instead of misreading them. Bump a version whenever a column's meaning changes.
//!
//! An artifact is its row type: a struct whose fields are its columns, declared with `artifact!`
//! (name, version, fields). How each field's type is stored is defined once, in [`column`].
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_schema::{Field, Schema};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::labels::Tag;

mod column;

use column::Column;

/// Metadata key holding `<schema name>/<version>` in every Parquet artifact.
pub const SCHEMA_KEY: &str = "umgf.schema";

/// A Parquet artifact, implemented by its row type: the schema's name and version (tagged in the
/// file and checked on read) and how rows become Arrow batches and back. Every stage reads its
/// inputs through [`Artifact::read`], so no stage imports the stage that produced a file.
pub trait Artifact: Sized {
    const NAME: &'static str;
    const VERSION: u32;

    /// The rows as one Arrow batch, a column per field.
    fn to_batch(rows: &[Self]) -> Result<RecordBatch>;

    /// The rows of one batch read from `path` (named in errors).
    fn from_batch(path: &Path, batch: &RecordBatch) -> Result<Vec<Self>>;

    /// Every row of the artifact at `path`; another schema or version is an error naming the file.
    fn read(path: &Path) -> Result<Vec<Self>> {
        let mut rows = Vec::new();
        for (file, batch) in crate::io::parquet::read(path, Self::NAME, Self::VERSION)? {
            rows.extend(Self::from_batch(&file, &batch)?);
        }
        Ok(rows)
    }

    /// Writes `rows` to `path` (which the caller makes atomic, see `store`).
    fn write(path: &Path, rows: &[Self]) -> Result<()> {
        let mut writer = crate::io::parquet::Writer::<Self>::create(path);
        writer.write(rows)?;
        writer.finish()
    }
}

/// An artifact opened for reading a batch of rows at a time, never the whole table: its files (one,
/// or a list of parts read in order as one table) and their footers. What [`Artifact::read`] is for
/// a table that may not fit in memory.
pub struct ArtifactFiles<A: Artifact> {
    parts: crate::io::parquet::Parts,
    rows: std::marker::PhantomData<fn() -> A>,
}

impl<A: Artifact> ArtifactFiles<A> {
    /// Opens the artifact's files, in order; another schema or version is an error naming the file.
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        Ok(Self {
            parts: crate::io::parquet::Parts::open(paths, A::NAME, A::VERSION)?,
            rows: std::marker::PhantomData,
        })
    }

    /// Rows in all its files.
    pub fn num_rows(&self) -> u64 {
        self.parts.num_rows()
    }

    /// The size of its data uncompressed, from the files' footers: about what its rows take in
    /// memory.
    pub fn uncompressed_bytes(&self) -> u64 {
        self.parts.uncompressed_bytes()
    }

    /// The rows `range` (numbered across the files), in order, at most `batch_rows` at a time.
    pub fn rows(
        &self,
        range: Range<u64>,
        batch_rows: usize,
    ) -> impl Iterator<Item = Result<Vec<A>>> + '_ {
        self.parts
            .batches(range, None, batch_rows)
            .map(|batch| batch.and_then(|(path, batch)| A::from_batch(path, &batch)))
    }

    /// Calls `f` with the number and the value of each row's string column `column` (a key such
    /// as `tweet_id`), reading that column alone.
    pub fn for_each_str(
        &self,
        column: &str,
        mut f: impl FnMut(u64, &str) -> Result<()>,
    ) -> Result<()> {
        let columns = [column];
        let mut row = 0;
        for batch in self
            .parts
            .batches(0..self.num_rows(), Some(&columns), KEY_BATCH_ROWS)
        {
            let (path, batch) = batch?;
            let error = |message: String| Error::Schema {
                path: path.to_owned(),
                message,
            };
            let values = batch
                .column_by_name(column)
                .ok_or_else(|| error(format!("missing column {column:?}")))?;
            let Some(values) = values.as_string_opt::<i32>() else {
                return Err(error(format!(
                    "column {column:?}: has type {}",
                    values.data_type()
                )));
            };
            for (i, value) in values.iter().enumerate() {
                let value =
                    value.ok_or_else(|| error(format!("column {column:?}: row {i}: null")))?;
                f(row, value)?;
                row += 1;
            }
        }
        Ok(())
    }
}

/// Rows per batch when a key column is read alone (a few bytes a row).
const KEY_BATCH_ROWS: usize = 64 * 1024;

/// Implements [`Artifact`] for a row type from its name, version and fields, in column order.
macro_rules! artifact {
    ($row:ty, $name:literal, $version:literal, [$($field:ident),+ $(,)?]) => {
        impl Artifact for $row {
            const NAME: &'static str = $name;
            const VERSION: u32 = $version;

            fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
                let (mut fields, mut columns) = (Vec::new(), Vec::new());
                $(
                    let column = column_of(rows, |row| &row.$field);
                    fields.push(Field::new(
                        stringify!($field),
                        column.0.data_type().clone(),
                        column.1,
                    ));
                    columns.push(column.0);
                )+
                Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
            }

            fn from_batch(path: &Path, batch: &RecordBatch) -> Result<Vec<Self>> {
                $(
                    let mut $field = read_column(path, batch, stringify!($field))?.into_iter();
                )+
                // Every column of a batch has its number of rows.
                Ok((0..batch.num_rows())
                    .map(|_| Self {
                        $($field: $field.next().expect("a value per row"),)+
                    })
                    .collect())
            }
        }
    };
}

/// One field of every row as an Arrow column, and whether it may hold nulls.
fn column_of<R, T: Column>(rows: &[R], field: impl Fn(&R) -> &T) -> (arrow_array::ArrayRef, bool) {
    (T::write(rows.iter().map(field)), T::NULLABLE)
}

/// The column `name` of `batch` read from `path`, a value per row.
fn read_column<T: Column>(path: &Path, batch: &RecordBatch, name: &str) -> Result<Vec<T>> {
    let error = |message| Error::Schema {
        path: path.to_owned(),
        message,
    };
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| error(format!("missing column {name:?}")))?;
    T::read(array.as_ref()).map_err(|e| error(format!("column {name:?}: {e}")))
}

/// Which part of a dataset a tweet belongs to. Dumps given by path (new tweets, predictions) are `Dump`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Dev,
    Test,
    Dump,
}

impl Split {
    pub const ALL: [Split; 4] = [Split::Train, Split::Dev, Split::Test, Split::Dump];

    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
            Split::Dump => "dump",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// What ingest found of a tweet's image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageStatus {
    /// The file exists; `image_digest` holds its content digest.
    Ok,
    /// The tweet names an image but the file is not there. Counted, not an error.
    Missing,
    /// The tweet has no image (JSONL `"image": null`).
    None,
}

impl ImageStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Missing => "missing",
            Self::None => "none",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Self::Ok, Self::Missing, Self::None]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// One ingested tweet: a row of the `tweets` artifact.
#[derive(Clone, Debug, PartialEq)]
pub struct Tweet {
    pub id: String,
    pub split: Split,
    pub tokens: Vec<String>,
    /// BIO tags, one per token; `None` for unlabelled dumps.
    pub labels: Option<Vec<Tag>>,
    pub image_path: Option<String>,
    pub image_status: ImageStatus,
    pub image_digest: Option<Digest>,
    /// Digest of the tokens alone: the key of per-tweet memoised text work.
    pub text_digest: Digest,
    /// What the tweet's image shows, in words (a BLIP-2 caption for the benchmarks), if known.
    pub caption: Option<String>,
    /// Digest of the caption alone: the key of per-caption memoised work.
    pub caption_digest: Option<Digest>,
    /// Line of the tweet's first line in its source file (1-based), for messages that point back.
    pub source_line: u32,
}

// Version 2: `caption` and `caption_digest`.
artifact!(
    Tweet,
    "tweets",
    2,
    [
        id,
        split,
        tokens,
        labels,
        image_path,
        image_status,
        image_digest,
        text_digest,
        caption,
        caption_digest,
        source_line,
    ]
);

impl Tweet {
    pub fn text_digest_of(tokens: &[String]) -> Digest {
        Digest::of_strings(tokens)
    }

    pub fn caption_digest_of(caption: &str) -> Digest {
        Digest::of_bytes(caption.as_bytes())
    }
}

/// Which text of a tweet a noun phrase is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhraseSource {
    /// The tweet's words.
    Tweet,
    /// Its image's caption, split into words as a tweet is (`text::words::tweet_tokens`).
    Caption,
}

impl PhraseSource {
    pub fn name(self) -> &'static str {
        match self {
            Self::Tweet => "tweet",
            Self::Caption => "caption",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::Tweet, Self::Caption]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// One noun phrase of a tweet or of its caption: a row of the `noun_phrases` artifact written by
/// `chunk`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NounPhrase {
    pub tweet_id: String,
    /// The text the word indices below count in.
    pub source: PhraseSource,
    /// Word indices, end exclusive.
    pub start: u32,
    pub end: u32,
    pub text: String,
    /// The head word (what grounding matches against object classes) and its word index.
    pub head: String,
    pub head_index: u32,
}

// Version 2: `source` (phrases of captions too).
artifact!(
    NounPhrase,
    "noun_phrases",
    2,
    [tweet_id, source, start, end, text, head, head_index]
);

/// Number format of cached encoder states in the `text_features` artifact (and in the per-tweet memo
/// behind it). Independent of the precision the encoder computes in.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum StateStorage {
    /// IEEE half precision (Parquet FLOAT16): half the bytes of f32, about 3 significant digits;
    /// pandas (pyarrow), polars and duckdb read it.
    #[default]
    F16,
    F32,
}

impl std::str::FromStr for StateStorage {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f16" => Ok(Self::F16),
            "f32" => Ok(Self::F32),
            _ => Err(Error::Config(format!(
                "state storage is f16 or f32, not {s:?}"
            ))),
        }
    }
}

/// Cached encoder states in their storage format.
#[derive(Clone, Debug, PartialEq)]
pub enum StateValues {
    F16(Vec<half::f16>),
    F32(Vec<f32>),
}

impl StateValues {
    pub fn len(&self) -> usize {
        match self {
            Self::F16(v) => v.len(),
            Self::F32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn storage(&self) -> StateStorage {
        match self {
            Self::F16(_) => StateStorage::F16,
            Self::F32(_) => StateStorage::F32,
        }
    }

    /// Values `range` as float32, into `out` (of the same length).
    pub fn copy_to_f32(&self, range: std::ops::Range<usize>, out: &mut [f32]) {
        match self {
            Self::F16(v) => out
                .iter_mut()
                .zip(&v[range])
                .for_each(|(o, x)| *o = x.to_f32()),
            Self::F32(v) => out.copy_from_slice(&v[range]),
        }
    }

    /// `values` in `storage` format (rounded to nearest for f16).
    pub fn from_f32(values: &[f32], storage: StateStorage) -> Self {
        match storage {
            StateStorage::F16 => {
                Self::F16(values.iter().map(|&x| half::f16::from_f32(x)).collect())
            }
            StateStorage::F32 => Self::F32(values.to_vec()),
        }
    }
}

/// Per-tweet text features: a row of the `text_features` artifact written by `features`.
#[derive(Clone, Debug, PartialEq)]
pub struct TextFeatures {
    pub tweet_id: String,
    /// Word pieces: [CLS], the pieces of each word, [SEP] (or the encoder's own start and end tokens).
    pub piece_ids: Vec<u32>,
    /// Index in `piece_ids` of each word's first piece.
    pub word_starts: Vec<u32>,
    /// Word shape class of each word (`text::shape`), the case and form the uncased encoder cannot see.
    pub shapes: Vec<u8>,
    /// The encoder's hidden states of each word (frozen mode): the layers and pooling of the
    /// `features` run that wrote them (its manifest's params), row-major [words, layers, hidden].
    pub states: StateValues,
}

// Version 2: `states` holds several hidden states per word (row-major [words, layers, hidden]) and
// may be float16.
artifact!(
    TextFeatures,
    "text_features",
    2,
    [tweet_id, piece_ids, word_starts, shapes, states]
);

/// How a grounded object was found: by a noun phrase of the tweet, or by a general word ("person"),
/// which links it to every word of the tweet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryKind {
    Phrase,
    General,
}

impl QueryKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Phrase => "phrase",
            Self::General => "general",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::Phrase, Self::General]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// What a visual node of a tweet's graph is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A region of the tweet's image (a detected object, or a grid cell).
    Image,
    /// A noun phrase of the image's caption: what the image shows, in words.
    Caption,
}

impl NodeKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Caption => "caption",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::Image, Self::Caption]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// One grounding of a targeted visual node: a row of the `objects` artifact written by `ground`. A
/// node found by several queries has one row per query, all with its `object_id`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroundedObject {
    pub tweet_id: String,
    /// The node's number within its tweet (0, 1, ...), shared by its rows.
    pub object_id: u32,
    pub kind: NodeKind,
    /// Box corners in pixels of the decoded image (upright, at most `vision::image::MAX_SIDE` a side),
    /// whose size is `image_width` x `image_height`. `None` for a caption node.
    pub x1: Option<f32>,
    pub y1: Option<f32>,
    pub x2: Option<f32>,
    pub y2: Option<f32>,
    pub image_width: Option<u32>,
    pub image_height: Option<u32>,
    /// The detector's confidence; `None` for a caption node.
    pub score: Option<f32>,
    /// What the node is: the COCO class name of an image region, the text of a caption phrase.
    pub class: String,
    /// A caption node's word range in the caption (split as a tweet is; end exclusive).
    pub caption_start: Option<u32>,
    pub caption_end: Option<u32>,
    /// The phrase text or general word that found the node.
    pub query: String,
    pub query_kind: QueryKind,
    /// The phrase's word range (end exclusive); `None` for general words.
    pub phrase_start: Option<u32>,
    pub phrase_end: Option<u32>,
    /// How well the query matched the node (1 for a synonym-table or exact match).
    pub similarity: f32,
}

impl GroundedObject {
    /// The box of an image node: (x1, y1, x2, y2) in pixels, and the image's (width, height).
    pub fn region(&self) -> Option<([f32; 4], (u32, u32))> {
        Some((
            [self.x1?, self.y1?, self.x2?, self.y2?],
            (self.image_width?, self.image_height?),
        ))
    }
}

// Version 2: caption nodes (`kind`, `caption_start`, `caption_end`; the box and score may be null).
artifact!(
    GroundedObject,
    "objects",
    2,
    [
        tweet_id,
        object_id,
        kind,
        x1,
        y1,
        x2,
        y2,
        image_width,
        image_height,
        score,
        class,
        caption_start,
        caption_end,
        query,
        query_kind,
        phrase_start,
        phrase_end,
        similarity,
    ]
);

/// The feature of one visual node of a tweet: a row of the `visual_features` artifact. An image node's
/// is EfficientNet's of its region of the image; a caption node's, the text encoder's of its phrase.
#[derive(Clone, Debug, PartialEq)]
pub struct VisualFeatures {
    pub tweet_id: String,
    /// The node (`objects.object_id`); `None` for the whole image.
    pub object_id: Option<u32>,
    pub kind: NodeKind,
    /// Pooled features (1280 for EfficientNet-Lite0; the text encoder's width for a caption node).
    pub features: Vec<f32>,
}

// Version 2: `kind` (caption nodes).
artifact!(
    VisualFeatures,
    "visual_features",
    2,
    [tweet_id, object_id, kind, features]
);

/// The kinds of edges of a tweet's multimodal graph (DESIGN.md section 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EdgeKind {
    /// Two words (all words are connected).
    WordWord,
    /// Two objects (all objects are connected; the "w/o VCorr." ablation drops these).
    ObjectObject,
    /// A word of a noun phrase and an object that phrase was grounded to.
    PhraseObject,
    /// Any word and an object a general word ("person") was grounded to.
    GeneralObject,
}

impl EdgeKind {
    pub const ALL: [Self; 4] = [
        Self::WordWord,
        Self::ObjectObject,
        Self::PhraseObject,
        Self::GeneralObject,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::WordWord => "word-word",
            Self::ObjectObject => "object-object",
            Self::PhraseObject => "phrase-object",
            Self::GeneralObject => "general-object",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One undirected edge of a tweet's graph: a row of the `graph_edges` artifact written by `graphs`.
/// Nodes 0..n are the tweet's n words; node n + k is its object `k` (`objects.object_id`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GraphEdge {
    pub tweet_id: String,
    /// The smaller node number of the pair.
    pub src: u32,
    pub dst: u32,
    pub kind: EdgeKind,
}

artifact!(GraphEdge, "graph_edges", 1, [tweet_id, src, dst, kind]);

#[cfg(test)]
mod tests {
    use arrow_array::{ArrayRef, StringArray, UInt32Array};

    use super::*;

    fn round_trip<A: Artifact + PartialEq + std::fmt::Debug>(rows: Vec<A>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.parquet");
        A::write(&path, &rows).unwrap();
        assert_eq!(A::read(&path).unwrap(), rows);
    }

    #[test]
    fn every_artifact_reads_back_the_rows_it_wrote() {
        let digest = Digest::of_strings(&["a".to_owned()]);
        round_trip(vec![
            Tweet {
                id: "1".into(),
                split: Split::Dev,
                tokens: vec!["RT".into(), "Paris".into()],
                labels: Some(vec![Tag::O, "B-LOC".parse().unwrap()]),
                image_path: Some("1.jpg".into()),
                image_status: ImageStatus::Ok,
                image_digest: Some(digest),
                text_digest: digest,
                caption: None,
                caption_digest: None,
                source_line: 3,
            },
            Tweet {
                id: "2".into(),
                split: Split::Dump,
                tokens: vec![],
                labels: None,
                image_path: None,
                image_status: ImageStatus::None,
                image_digest: None,
                text_digest: digest,
                caption: None,
                caption_digest: None,
                source_line: 9,
            },
        ]);
        round_trip(vec![NounPhrase {
            tweet_id: "1".into(),
            source: PhraseSource::Caption,
            start: 0,
            end: 2,
            text: "the dog".into(),
            head: "dog".into(),
            head_index: 1,
        }]);
        for storage in [StateStorage::F16, StateStorage::F32] {
            round_trip(vec![TextFeatures {
                tweet_id: "1".into(),
                piece_ids: vec![101, 7, 102],
                word_starts: vec![1],
                shapes: vec![3],
                states: StateValues::from_f32(&[0.5, -1.25], storage),
            }]);
        }
        round_trip(vec![
            GroundedObject {
                tweet_id: "1".into(),
                object_id: 0,
                kind: NodeKind::Image,
                x1: Some(1.0),
                y1: Some(2.0),
                x2: Some(3.5),
                y2: Some(4.0),
                image_width: Some(640),
                image_height: Some(480),
                score: Some(0.9),
                class: "dog".into(),
                caption_start: None,
                caption_end: None,
                query: "person".into(),
                query_kind: QueryKind::General,
                phrase_start: None,
                phrase_end: None,
                similarity: 1.0,
            },
            GroundedObject {
                tweet_id: "1".into(),
                object_id: 1,
                kind: NodeKind::Caption,
                x1: None,
                y1: None,
                x2: None,
                y2: None,
                image_width: None,
                image_height: None,
                score: None,
                class: "a basketball".into(),
                caption_start: Some(3),
                caption_end: Some(5),
                query: "the ball".into(),
                query_kind: QueryKind::Phrase,
                phrase_start: Some(0),
                phrase_end: Some(2),
                similarity: 1.0,
            },
        ]);
        round_trip(vec![VisualFeatures {
            tweet_id: "1".into(),
            object_id: None,
            kind: NodeKind::Image,
            features: vec![0.0, 1.5],
        }]);
        round_trip(vec![GraphEdge {
            tweet_id: "1".into(),
            src: 0,
            dst: 2,
            kind: EdgeKind::PhraseObject,
        }]);
        round_trip(Vec::<GraphEdge>::new());
    }

    fn edges_batch(kind: &str, src: ArrayRef) -> RecordBatch {
        let strings = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
        RecordBatch::try_from_iter([
            ("tweet_id", strings("1")),
            ("src", src),
            ("dst", Arc::new(UInt32Array::from(vec![1])) as ArrayRef),
            ("kind", strings(kind)),
        ])
        .unwrap()
    }

    #[test]
    fn a_bad_batch_is_an_error_naming_the_file_and_column() {
        let path = Path::new("edges.parquet");
        let message = |batch: RecordBatch| match GraphEdge::from_batch(path, &batch) {
            Err(Error::Schema { path, message }) => format!("{}: {message}", path.display()),
            other => panic!("expected a schema error, got {other:?}"),
        };
        let src: ArrayRef = Arc::new(UInt32Array::from(vec![0]));
        assert_eq!(
            message(edges_batch("sideways", src.clone())),
            "edges.parquet: column \"kind\": row 0: unknown edge kind \"sideways\""
        );
        let text: ArrayRef = Arc::new(StringArray::from(vec!["0"]));
        assert_eq!(
            message(edges_batch("word-word", text)),
            "edges.parquet: column \"src\": has type Utf8"
        );
        let null: ArrayRef = Arc::new(UInt32Array::from(vec![None]));
        assert_eq!(
            message(edges_batch("word-word", null)),
            "edges.parquet: column \"src\": row 0: null"
        );
        let batch = edges_batch("word-word", src).project(&[0, 1, 3]).unwrap();
        assert_eq!(message(batch), "edges.parquet: missing column \"dst\"");
    }
}
