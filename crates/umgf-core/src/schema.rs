//! Artifact schemas, defined once and versioned. Each Parquet artifact carries its schema name and
//! version in the file's key-value metadata (`umgf.schema`, e.g. `tweets/1`); readers refuse other
//! versions instead of misreading them. Bump a version whenever a column's meaning changes.
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{Array, ArrayRef, ListArray, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::labels::Tag;

/// Metadata key holding `<schema name>/<version>` in every Parquet artifact.
pub const SCHEMA_KEY: &str = "umgf.schema";

/// A Parquet artifact, implemented by its row type: the schema's name and version (tagged in the
/// file and checked on read) and how Arrow batches become rows. Every stage reads its inputs through
/// [`Artifact::read`], so no stage imports the stage that produced a file.
pub trait Artifact: Sized {
    const NAME: &'static str;
    const VERSION: u32;

    /// The rows of one batch read from `path` (named in errors).
    fn from_batch(path: &Path, batch: &RecordBatch) -> Result<Vec<Self>>;

    /// Every row of the artifact at `path`; another schema or version is an error naming the file.
    fn read(path: &Path) -> Result<Vec<Self>> {
        crate::io::parquet::read_rows(path, Self::NAME, Self::VERSION, Self::from_batch)
    }
}

/// Implements [`Artifact`] for a row type from its schema module's `NAME`, `VERSION` and `from_batch`.
macro_rules! artifact {
    ($row:ty, $module:ident) => {
        impl Artifact for $row {
            const NAME: &'static str = $module::NAME;
            const VERSION: u32 = $module::VERSION;

            fn from_batch(path: &Path, batch: &RecordBatch) -> Result<Vec<Self>> {
                $module::from_batch(path, batch)
            }
        }
    };
}

artifact!(Tweet, tweets);
artifact!(NounPhrase, noun_phrases);
artifact!(TextFeatures, text_features);
artifact!(GroundedObject, objects);
artifact!(VisualFeatures, visual_features);
artifact!(GraphEdge, graph_edges);

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
    /// Line of the tweet's first line in its source file (1-based), for messages that point back.
    pub source_line: u32,
}

impl Tweet {
    pub fn text_digest_of(tokens: &[String]) -> Digest {
        Digest::of_strings(tokens)
    }
}

/// The `tweets` artifact written by ingest.
pub mod tweets {
    use super::*;

    pub const NAME: &str = "tweets";
    pub const VERSION: u32 = 1;

    pub fn schema() -> Arc<Schema> {
        let list = |name: &str, nullable| {
            Field::new(
                name,
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))),
                nullable,
            )
        };
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("split", DataType::Utf8, false),
            list("tokens", false),
            list("labels", true),
            Field::new("image_path", DataType::Utf8, true),
            Field::new("image_status", DataType::Utf8, false),
            Field::new("image_digest", DataType::Utf8, true),
            Field::new("text_digest", DataType::Utf8, false),
            Field::new("source_line", DataType::UInt32, false),
        ]))
    }

    pub fn to_batch(rows: &[Tweet]) -> Result<RecordBatch> {
        let strings = |f: &dyn Fn(&Tweet) -> Option<String>| -> ArrayRef {
            Arc::new(rows.iter().map(f).collect::<StringArray>())
        };
        let lists = |f: &dyn Fn(&Tweet) -> Option<Vec<String>>| -> ArrayRef {
            let mut builder = ListBuilder::new(StringBuilder::new())
                .with_field(Arc::new(Field::new("item", DataType::Utf8, false)));
            for row in rows {
                match f(row) {
                    Some(items) => {
                        for item in items {
                            builder.values().append_value(item);
                        }
                        builder.append(true);
                    }
                    None => builder.append(false),
                }
            }
            Arc::new(builder.finish())
        };
        let columns: Vec<ArrayRef> = vec![
            strings(&|t| Some(t.id.clone())),
            strings(&|t| Some(t.split.name().to_owned())),
            lists(&|t| Some(t.tokens.clone())),
            lists(&|t| {
                t.labels
                    .as_ref()
                    .map(|l| l.iter().map(Tag::to_string).collect())
            }),
            strings(&|t| t.image_path.clone()),
            strings(&|t| Some(t.image_status.name().to_owned())),
            strings(&|t| t.image_digest.map(|d| d.hex())),
            strings(&|t| Some(t.text_digest.hex())),
            Arc::new(rows.iter().map(|t| t.source_line).collect::<UInt32Array>()),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    }

    pub fn from_batch(path: &Path, batch: &RecordBatch) -> Result<Vec<Tweet>> {
        let cols = Columns { path, batch };
        let id = cols.strings("id")?;
        let split = cols.strings("split")?;
        let tokens = cols.lists("tokens")?;
        let labels = cols.lists("labels")?;
        let image_path = cols.strings("image_path")?;
        let image_status = cols.strings("image_status")?;
        let image_digest = cols.strings("image_digest")?;
        let text_digest = cols.strings("text_digest")?;
        let source_line = cols.typed::<UInt32Array>("source_line")?;

        let bad = |row: usize, what: &str| Error::Schema {
            path: path.to_owned(),
            message: format!("row {row}: {what}"),
        };
        let list_strings = |list: &ListArray, row: usize| -> Result<Vec<String>> {
            let values = list.value(row);
            let values = values
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| bad(row, "list items are not strings"))?;
            Ok(values
                .iter()
                .map(|v| v.unwrap_or_default().to_owned())
                .collect())
        };

        (0..batch.num_rows())
            .map(|row| {
                let labels = if labels.is_null(row) {
                    None
                } else {
                    let parsed = list_strings(labels, row)?
                        .iter()
                        .map(|l| l.parse::<Tag>())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| bad(row, &e.to_string()))?;
                    Some(parsed)
                };
                let digest = |s: &str| s.parse::<Digest>().map_err(|e| bad(row, &e.to_string()));
                Ok(Tweet {
                    id: id.value(row).to_owned(),
                    split: Split::parse(split.value(row))
                        .ok_or_else(|| bad(row, "unknown split"))?,
                    tokens: list_strings(tokens, row)?,
                    labels,
                    image_path: (!image_path.is_null(row))
                        .then(|| image_path.value(row).to_owned()),
                    image_status: ImageStatus::parse(image_status.value(row))
                        .ok_or_else(|| bad(row, "unknown image status"))?,
                    image_digest: if image_digest.is_null(row) {
                        None
                    } else {
                        Some(digest(image_digest.value(row))?)
                    },
                    text_digest: digest(text_digest.value(row))?,
                    source_line: source_line.value(row),
                })
            })
            .collect()
    }
}

/// One noun phrase of a tweet: a row of the `noun_phrases` artifact written by `chunk`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NounPhrase {
    pub tweet_id: String,
    /// Word indices, end exclusive.
    pub start: u32,
    pub end: u32,
    pub text: String,
    /// The head word (what grounding matches against object classes) and its word index.
    pub head: String,
    pub head_index: u32,
}

/// The `noun_phrases` artifact written by `chunk`.
pub mod noun_phrases {
    use super::*;

    pub const NAME: &str = "noun_phrases";
    pub const VERSION: u32 = 1;

    pub fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("tweet_id", DataType::Utf8, false),
            Field::new("start", DataType::UInt32, false),
            Field::new("end", DataType::UInt32, false),
            Field::new("text", DataType::Utf8, false),
            Field::new("head", DataType::Utf8, false),
            Field::new("head_index", DataType::UInt32, false),
        ]))
    }

    pub fn to_batch(rows: &[NounPhrase]) -> Result<RecordBatch> {
        let strings = |f: fn(&NounPhrase) -> &str| -> ArrayRef {
            Arc::new(rows.iter().map(|r| Some(f(r))).collect::<StringArray>())
        };
        let numbers = |f: fn(&NounPhrase) -> u32| -> ArrayRef {
            Arc::new(rows.iter().map(f).collect::<UInt32Array>())
        };
        let columns = vec![
            strings(|r| &r.tweet_id),
            numbers(|r| r.start),
            numbers(|r| r.end),
            strings(|r| &r.text),
            strings(|r| &r.head),
            numbers(|r| r.head_index),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    }

    pub fn from_batch(path: &Path, batch: &RecordBatch) -> Result<Vec<NounPhrase>> {
        let cols = Columns { path, batch };
        let (tweet_id, text, head) = (
            cols.strings("tweet_id")?,
            cols.strings("text")?,
            cols.strings("head")?,
        );
        let (start, end, head_index) = (
            cols.typed::<UInt32Array>("start")?,
            cols.typed::<UInt32Array>("end")?,
            cols.typed::<UInt32Array>("head_index")?,
        );
        Ok((0..batch.num_rows())
            .map(|i| NounPhrase {
                tweet_id: tweet_id.value(i).to_owned(),
                start: start.value(i),
                end: end.value(i),
                text: text.value(i).to_owned(),
                head: head.value(i).to_owned(),
                head_index: head_index.value(i),
            })
            .collect())
    }
}

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

/// The `text_features` artifact written by `features`.
pub mod text_features {
    use arrow_array::builder::{Float16Builder, Float32Builder, UInt8Builder, UInt32Builder};
    use arrow_array::{Float16Array, Float32Array, UInt8Array};

    use super::*;

    pub const NAME: &str = "text_features";
    /// 2: `states` holds several hidden states per word (row-major [words, layers, hidden]) and may be
    /// float16.
    pub const VERSION: u32 = 2;

    fn list(name: &str, item: DataType) -> Field {
        Field::new(
            name,
            DataType::List(Arc::new(Field::new("item", item, false))),
            false,
        )
    }

    fn state_type(storage: StateStorage) -> DataType {
        match storage {
            StateStorage::F16 => DataType::Float16,
            StateStorage::F32 => DataType::Float32,
        }
    }

    pub fn schema(storage: StateStorage) -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("tweet_id", DataType::Utf8, false),
            list("piece_ids", DataType::UInt32),
            list("word_starts", DataType::UInt32),
            list("shapes", DataType::UInt8),
            list("states", state_type(storage)),
        ]))
    }

    /// The rows as one batch; every row's states must be in `storage` format.
    pub fn to_batch(rows: &[TextFeatures], storage: StateStorage) -> Result<RecordBatch> {
        let field = |t: DataType| Arc::new(Field::new("item", t, false));
        let mut pieces = ListBuilder::new(UInt32Builder::new()).with_field(field(DataType::UInt32));
        let mut starts = ListBuilder::new(UInt32Builder::new()).with_field(field(DataType::UInt32));
        let mut shapes = ListBuilder::new(UInt8Builder::new()).with_field(field(DataType::UInt8));
        let mut f16s = ListBuilder::new(Float16Builder::new()).with_field(field(DataType::Float16));
        let mut f32s = ListBuilder::new(Float32Builder::new()).with_field(field(DataType::Float32));
        for row in rows {
            pieces.values().append_slice(&row.piece_ids);
            pieces.append(true);
            starts.values().append_slice(&row.word_starts);
            starts.append(true);
            shapes.values().append_slice(&row.shapes);
            shapes.append(true);
            match (&row.states, storage) {
                (StateValues::F16(v), StateStorage::F16) => {
                    f16s.values().append_slice(v);
                    f16s.append(true);
                }
                (StateValues::F32(v), StateStorage::F32) => {
                    f32s.values().append_slice(v);
                    f32s.append(true);
                }
                (other, _) => {
                    return Err(Error::Internal(format!(
                        "tweet {}: states stored as {:?}, the artifact holds {storage:?}",
                        row.tweet_id,
                        other.storage()
                    )));
                }
            }
        }
        let ids: ArrayRef = Arc::new(
            rows.iter()
                .map(|r| Some(r.tweet_id.as_str()))
                .collect::<StringArray>(),
        );
        let states: ArrayRef = match storage {
            StateStorage::F16 => Arc::new(f16s.finish()),
            StateStorage::F32 => Arc::new(f32s.finish()),
        };
        let columns: Vec<ArrayRef> = vec![
            ids,
            Arc::new(pieces.finish()),
            Arc::new(starts.finish()),
            Arc::new(shapes.finish()),
            states,
        ];
        Ok(RecordBatch::try_new(schema(storage), columns)?)
    }

    pub fn from_batch(path: &Path, batch: &RecordBatch) -> Result<Vec<TextFeatures>> {
        let cols = Columns { path, batch };
        let ids = cols.strings("tweet_id")?;
        let (pieces, starts, shapes, states) = (
            cols.lists("piece_ids")?,
            cols.lists("word_starts")?,
            cols.lists("shapes")?,
            cols.lists("states")?,
        );
        let bad = |what: &str| Error::Schema {
            path: path.to_owned(),
            message: format!("{what} has the wrong item type"),
        };
        (0..batch.num_rows())
            .map(|i| {
                let u32s = |list: &ListArray, what: &str| -> Result<Vec<u32>> {
                    let values = list.value(i);
                    let values = values
                        .as_any()
                        .downcast_ref::<UInt32Array>()
                        .ok_or_else(|| bad(what))?;
                    Ok(values.values().to_vec())
                };
                let shape_values = shapes.value(i);
                let state_values = states.value(i);
                let any = state_values.as_any();
                let states = if let Some(v) = any.downcast_ref::<Float16Array>() {
                    StateValues::F16(v.values().to_vec())
                } else if let Some(v) = any.downcast_ref::<Float32Array>() {
                    StateValues::F32(v.values().to_vec())
                } else {
                    return Err(bad("states"));
                };
                Ok(TextFeatures {
                    tweet_id: ids.value(i).to_owned(),
                    piece_ids: u32s(pieces, "piece_ids")?,
                    word_starts: u32s(starts, "word_starts")?,
                    shapes: shape_values
                        .as_any()
                        .downcast_ref::<UInt8Array>()
                        .ok_or_else(|| bad("shapes"))?
                        .values()
                        .to_vec(),
                    states,
                })
            })
            .collect()
    }
}

struct Columns<'a> {
    path: &'a Path,
    batch: &'a RecordBatch,
}

impl<'a> Columns<'a> {
    fn typed<A: Array + 'static>(&self, name: &str) -> Result<&'a A> {
        let column = self
            .batch
            .column_by_name(name)
            .ok_or_else(|| Error::Schema {
                path: self.path.to_owned(),
                message: format!("missing column {name:?}"),
            })?;
        column
            .as_any()
            .downcast_ref::<A>()
            .ok_or_else(|| Error::Schema {
                path: self.path.to_owned(),
                message: format!("column {name:?} has type {}", column.data_type()),
            })
    }

    fn strings(&self, name: &str) -> Result<&'a StringArray> {
        self.typed(name)
    }

    fn lists(&self, name: &str) -> Result<&'a ListArray> {
        self.typed(name)
    }
}

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

/// One grounding of a targeted object: a row of the `objects` artifact written by `ground`. An object
/// found by several queries has one row per query, all with its `object_id`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroundedObject {
    pub tweet_id: String,
    /// The object's number within its tweet (0, 1, ...), shared by its rows.
    pub object_id: u32,
    /// Box corners in pixels of the decoded image (upright, at most `vision::image::MAX_SIDE` a side),
    /// whose size is `image_width` x `image_height`.
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
    pub image_width: u32,
    pub image_height: u32,
    /// The detector's confidence.
    pub score: f32,
    /// COCO class name.
    pub class: String,
    /// The phrase text or general word that found the object.
    pub query: String,
    pub query_kind: QueryKind,
    /// The phrase's word range (end exclusive); `None` for general words.
    pub phrase_start: Option<u32>,
    pub phrase_end: Option<u32>,
    /// How well the query matched the class (1 for a synonym-table or exact match).
    pub similarity: f32,
}

/// The `objects` artifact written by `ground`.
pub mod objects {
    use arrow_array::{Float32Array, UInt32Array};

    use super::*;

    pub const NAME: &str = "objects";
    pub const VERSION: u32 = 1;

    pub fn schema() -> Arc<Schema> {
        let f32 = |name: &str| Field::new(name, DataType::Float32, false);
        let u32 = |name: &str| Field::new(name, DataType::UInt32, false);
        Arc::new(Schema::new(vec![
            Field::new("tweet_id", DataType::Utf8, false),
            u32("object_id"),
            f32("x1"),
            f32("y1"),
            f32("x2"),
            f32("y2"),
            u32("image_width"),
            u32("image_height"),
            f32("score"),
            Field::new("class", DataType::Utf8, false),
            Field::new("query", DataType::Utf8, false),
            Field::new("query_kind", DataType::Utf8, false),
            Field::new("phrase_start", DataType::UInt32, true),
            Field::new("phrase_end", DataType::UInt32, true),
            f32("similarity"),
        ]))
    }

    pub fn to_batch(rows: &[GroundedObject]) -> Result<RecordBatch> {
        let strings = |f: fn(&GroundedObject) -> &str| -> ArrayRef {
            Arc::new(rows.iter().map(|r| Some(f(r))).collect::<StringArray>())
        };
        let u32s = |f: fn(&GroundedObject) -> Option<u32>| -> ArrayRef {
            Arc::new(rows.iter().map(f).collect::<UInt32Array>())
        };
        let f32s = |f: fn(&GroundedObject) -> f32| -> ArrayRef {
            Arc::new(rows.iter().map(f).collect::<Float32Array>())
        };
        let columns = vec![
            strings(|r| &r.tweet_id),
            u32s(|r| Some(r.object_id)),
            f32s(|r| r.x1),
            f32s(|r| r.y1),
            f32s(|r| r.x2),
            f32s(|r| r.y2),
            u32s(|r| Some(r.image_width)),
            u32s(|r| Some(r.image_height)),
            f32s(|r| r.score),
            strings(|r| &r.class),
            strings(|r| &r.query),
            strings(|r| r.query_kind.name()),
            u32s(|r| r.phrase_start),
            u32s(|r| r.phrase_end),
            f32s(|r| r.similarity),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    }

    pub fn from_batch(path: &Path, batch: &RecordBatch) -> Result<Vec<GroundedObject>> {
        let cols = Columns { path, batch };
        let (tweet_id, class, query, kind) = (
            cols.strings("tweet_id")?,
            cols.strings("class")?,
            cols.strings("query")?,
            cols.strings("query_kind")?,
        );
        let u32s = |name| cols.typed::<UInt32Array>(name);
        let f32s = |name| cols.typed::<Float32Array>(name);
        let (object_id, width, height, start, end) = (
            u32s("object_id")?,
            u32s("image_width")?,
            u32s("image_height")?,
            u32s("phrase_start")?,
            u32s("phrase_end")?,
        );
        let (x1, y1, x2, y2, score, similarity) = (
            f32s("x1")?,
            f32s("y1")?,
            f32s("x2")?,
            f32s("y2")?,
            f32s("score")?,
            f32s("similarity")?,
        );
        let optional = |a: &UInt32Array, i: usize| a.is_valid(i).then(|| a.value(i));
        (0..batch.num_rows())
            .map(|i| {
                let query_kind = QueryKind::parse(kind.value(i)).ok_or_else(|| Error::Schema {
                    path: path.to_owned(),
                    message: format!("row {i}: unknown query kind {:?}", kind.value(i)),
                })?;
                Ok(GroundedObject {
                    tweet_id: tweet_id.value(i).to_owned(),
                    object_id: object_id.value(i),
                    x1: x1.value(i),
                    y1: y1.value(i),
                    x2: x2.value(i),
                    y2: y2.value(i),
                    image_width: width.value(i),
                    image_height: height.value(i),
                    score: score.value(i),
                    class: class.value(i).to_owned(),
                    query: query.value(i).to_owned(),
                    query_kind,
                    phrase_start: optional(start, i),
                    phrase_end: optional(end, i),
                    similarity: similarity.value(i),
                })
            })
            .collect()
    }
}

/// The EfficientNet feature of one region of a tweet's image: a row of the `visual_features` artifact.
#[derive(Clone, Debug, PartialEq)]
pub struct VisualFeatures {
    pub tweet_id: String,
    /// The object (`objects.object_id`) whose box was cropped; `None` for the whole image.
    pub object_id: Option<u32>,
    /// Pooled features (1280 for EfficientNet-Lite0).
    pub features: Vec<f32>,
}

/// The `visual_features` artifact written by `features`.
pub mod visual_features {
    use arrow_array::builder::Float32Builder;
    use arrow_array::{Float32Array, UInt32Array};

    use super::*;

    pub const NAME: &str = "visual_features";
    pub const VERSION: u32 = 1;

    pub fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("tweet_id", DataType::Utf8, false),
            Field::new("object_id", DataType::UInt32, true),
            Field::new(
                "features",
                DataType::List(Arc::new(Field::new("item", DataType::Float32, false))),
                false,
            ),
        ]))
    }

    pub fn to_batch(rows: &[VisualFeatures]) -> Result<RecordBatch> {
        let mut features = ListBuilder::new(Float32Builder::new())
            .with_field(Arc::new(Field::new("item", DataType::Float32, false)));
        for row in rows {
            features.values().append_slice(&row.features);
            features.append(true);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.tweet_id.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(rows.iter().map(|r| r.object_id).collect::<UInt32Array>()),
            Arc::new(features.finish()),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    }

    pub fn from_batch(path: &Path, batch: &RecordBatch) -> Result<Vec<VisualFeatures>> {
        let cols = Columns { path, batch };
        let (ids, objects, features) = (
            cols.strings("tweet_id")?,
            cols.typed::<UInt32Array>("object_id")?,
            cols.lists("features")?,
        );
        (0..batch.num_rows())
            .map(|i| {
                let values = features.value(i);
                let values = values
                    .as_any()
                    .downcast_ref::<Float32Array>()
                    .ok_or_else(|| Error::Schema {
                        path: path.to_owned(),
                        message: "features has the wrong item type".to_owned(),
                    })?;
                Ok(VisualFeatures {
                    tweet_id: ids.value(i).to_owned(),
                    object_id: objects.is_valid(i).then(|| objects.value(i)),
                    features: values.values().to_vec(),
                })
            })
            .collect()
    }
}

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

/// The `graph_edges` artifact written by `graphs`.
pub mod graph_edges {
    use super::*;

    pub const NAME: &str = "graph_edges";
    pub const VERSION: u32 = 1;

    pub fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("tweet_id", DataType::Utf8, false),
            Field::new("src", DataType::UInt32, false),
            Field::new("dst", DataType::UInt32, false),
            Field::new("kind", DataType::Utf8, false),
        ]))
    }

    pub fn to_batch(rows: &[GraphEdge]) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.tweet_id.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(rows.iter().map(|r| r.src).collect::<UInt32Array>()),
            Arc::new(rows.iter().map(|r| r.dst).collect::<UInt32Array>()),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.kind.name()))
                    .collect::<StringArray>(),
            ),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    }

    pub fn from_batch(path: &Path, batch: &RecordBatch) -> Result<Vec<GraphEdge>> {
        let cols = Columns { path, batch };
        let (ids, kinds) = (cols.strings("tweet_id")?, cols.strings("kind")?);
        let (src, dst) = (
            cols.typed::<UInt32Array>("src")?,
            cols.typed::<UInt32Array>("dst")?,
        );
        (0..batch.num_rows())
            .map(|i| {
                let kind = EdgeKind::parse(kinds.value(i)).ok_or_else(|| Error::Schema {
                    path: path.to_owned(),
                    message: format!("row {i}: unknown edge kind {:?}", kinds.value(i)),
                })?;
                Ok(GraphEdge {
                    tweet_id: ids.value(i).to_owned(),
                    src: src.value(i),
                    dst: dst.value(i),
                    kind,
                })
            })
            .collect()
    }
}
