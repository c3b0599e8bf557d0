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

/// Typed access to a batch's columns with errors that name the file and column.
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
