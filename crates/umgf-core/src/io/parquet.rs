//! Parquet writing and reading for artifacts. Writes are deterministic (same rows, same bytes): that is
//! what lets the store cut off downstream work when a re-run reproduces an artifact exactly.
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{KeyValue, PageIndexPolicy, ParquetMetaData};
use parquet::file::properties::WriterProperties;

use crate::error::{Error, IoContext, Result};
use crate::schema::{Artifact, SCHEMA_KEY};

/// Rows per row group: small enough for readers to skip, large enough to compress well.
const ROW_GROUP_SIZE: usize = 64 * 1024;
/// Rows handed to the Parquet writer at a time. The writer turns each float16 value of a batch into
/// an object of its own (about 32 bytes) while encoding: the whole `text_features` of Twitter-2017
/// with MPNet's 13 states in one batch took over 24 GB and was killed; a few hundred rows at a time
/// keep that to a few hundred MB.
pub const ROWS_PER_WRITE: usize = 256;

/// An artifact written some rows at a time, for stages whose rows do not fit in memory at once
/// ([`Artifact::write`] writes all of them in one go). The bytes depend only on the rows, not on
/// how they were split into writes (see the test). The file's schema is that of the first rows
/// written: only the `text_features` states column has more than one possible type (float16 or
/// float32 storage), and a writer is never given rows of both.
pub struct Writer<'a, A: Artifact> {
    path: &'a Path,
    inner: Option<ArrowWriter<File>>,
    rows: std::marker::PhantomData<A>,
}

impl<'a, A: Artifact> Writer<'a, A> {
    /// A writer to `path`, which is created at the first write (or at `finish` if there is none).
    pub fn create(path: &'a Path) -> Self {
        Self {
            path,
            inner: None,
            rows: std::marker::PhantomData,
        }
    }

    /// Appends `rows`, [`ROWS_PER_WRITE`] at a time.
    pub fn write(&mut self, rows: &[A]) -> Result<()> {
        let batch = A::to_batch(rows)?;
        let writer = match &mut self.inner {
            Some(writer) => writer,
            None => self.inner.insert(self.open(batch.schema())?),
        };
        // Slices start at multiples of ROWS_PER_WRITE within each batch: callers that stream pass
        // batches whose sizes are multiples of it, so the writer sees the same slices as one batch.
        for start in (0..batch.num_rows()).step_by(ROWS_PER_WRITE) {
            let rows = ROWS_PER_WRITE.min(batch.num_rows() - start);
            writer
                .write(&batch.slice(start, rows))
                .map_err(parquet_err(self.path))?;
        }
        Ok(())
    }

    /// Writes the footer and syncs the file.
    pub fn finish(mut self) -> Result<()> {
        if self.inner.is_none() {
            self.write(&[])?;
        }
        let inner = self.inner.take().expect("opened by the write above");
        let file = inner.into_inner().map_err(parquet_err(self.path))?;
        file.sync_all().at(self.path)
    }

    fn open(&self, schema: SchemaRef) -> Result<ArrowWriter<File>> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(ROW_GROUP_SIZE))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                SCHEMA_KEY.to_owned(),
                format!("{}/{}", A::NAME, A::VERSION),
            )]))
            .build();
        let file = File::create(self.path).at(self.path)?;
        ArrowWriter::try_new(file, schema, Some(props)).map_err(parquet_err(self.path))
    }
}

fn parquet_err(path: &Path) -> impl Fn(parquet::errors::ParquetError) -> Error + '_ {
    move |source| Error::Parquet {
        path: path.to_owned(),
        source,
    }
}

/// Reads a whole artifact's batches, checking it is `name` at `version` (see [`Artifact::read`]).
/// `path` is a Parquet file or a part list (see [`crate::store::parts`]), whose parts are read in
/// order. Each batch comes with the file it was read from.
pub fn read(path: &Path, name: &str, version: u32) -> Result<Vec<(PathBuf, RecordBatch)>> {
    let mut batches = Vec::new();
    for path in crate::store::parts::files_of(path)? {
        let file = File::open(&path).at(&path)?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err(&path))?;
        check_schema(&path, builder.metadata(), name, version)?;
        let reader = builder.build().map_err(parquet_err(&path))?;
        for batch in reader {
            batches.push((path.clone(), batch?));
        }
    }
    Ok(batches)
}

/// The file's schema tag is `name` at `version`, else an error naming the file.
fn check_schema(path: &Path, metadata: &ParquetMetaData, name: &str, version: u32) -> Result<()> {
    let want = format!("{name}/{version}");
    let found = metadata
        .file_metadata()
        .key_value_metadata()
        .and_then(|kvs| kvs.iter().find(|kv| kv.key == SCHEMA_KEY))
        .and_then(|kv| kv.value.as_deref());
    if found == Some(want.as_str()) {
        return Ok(());
    }
    Err(Error::Schema {
        path: path.to_owned(),
        message: format!(
            "expected a {want} artifact, found {}",
            found.unwrap_or("no schema tag")
        ),
    })
}

/// One artifact read from its Parquet files in order, as one table whose rows are numbered across
/// the files (an artifact may be a list of part files). Each file's footer is read once, at
/// [`Parts::open`]; rows are then read a batch at a time, any range of them, so that a reader holds
/// one batch and one page per column, never the table.
pub struct Parts {
    files: Vec<Part>,
    rows: u64,
}

struct Part {
    path: PathBuf,
    metadata: ArrowReaderMetadata,
    /// The number of the part's first row in the whole table.
    first_row: u64,
    rows: u64,
}

impl Parts {
    /// Opens `paths` (in order; a part list stands for its parts, see [`crate::store::parts`]) and
    /// checks each is a `name` artifact at `version`.
    pub fn open(paths: &[PathBuf], name: &str, version: u32) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut first_row = 0;
        let mut expanded = Vec::with_capacity(paths.len());
        for path in paths {
            expanded.extend(crate::store::parts::files_of(path)?);
        }
        for path in &expanded {
            let file = File::open(path).at(path)?;
            // The offset index lets a read that starts inside a row group skip whole pages
            // without decompressing them (the writer stores it by default).
            let options =
                ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional);
            let metadata = ArrowReaderMetadata::load(&file, options).map_err(parquet_err(path))?;
            check_schema(path, metadata.metadata(), name, version)?;
            let rows = metadata.metadata().file_metadata().num_rows() as u64;
            files.push(Part {
                path: path.clone(),
                metadata,
                first_row,
                rows,
            });
            first_row += rows;
        }
        Ok(Self {
            files,
            rows: first_row,
        })
    }

    /// Rows in all the files.
    pub fn num_rows(&self) -> u64 {
        self.rows
    }

    /// The uncompressed size of all the files' data, from their footers (what the rows take
    /// decoded, about).
    pub fn uncompressed_bytes(&self) -> u64 {
        self.files
            .iter()
            .flat_map(|f| f.metadata.metadata().row_groups())
            .map(|g| g.total_byte_size().max(0) as u64)
            .sum()
    }

    /// The rows `rows` (numbered across the files), at most `batch_rows` per batch, of the columns
    /// `columns` (all of them for `None`), each batch with the file it is from.
    pub fn batches<'a>(
        &'a self,
        rows: Range<u64>,
        columns: Option<&'a [&'a str]>,
        batch_rows: usize,
    ) -> Batches<'a> {
        Batches {
            parts: self,
            rows,
            columns,
            batch_rows: batch_rows.max(1),
            next_file: 0,
            current: None,
        }
    }
}

/// Batches of a range of rows of [`Parts`], file after file.
pub struct Batches<'a> {
    parts: &'a Parts,
    rows: Range<u64>,
    columns: Option<&'a [&'a str]>,
    batch_rows: usize,
    next_file: usize,
    current: Option<(&'a Path, ParquetRecordBatchReader)>,
}

impl<'a> Batches<'a> {
    /// A reader of the rows of the range in file `index` (`None` when none of them are there).
    fn open(&self, index: usize) -> Result<Option<ParquetRecordBatchReader>> {
        let part = &self.parts.files[index];
        let start = self.rows.start.max(part.first_row) - part.first_row;
        let end = self.rows.end.min(part.first_row + part.rows);
        let Some(end) = end.checked_sub(part.first_row).filter(|&end| end > start) else {
            return Ok(None);
        };
        // The row groups that hold rows start..end, and where the first of them begins.
        let (mut groups, mut first_group_row, mut at) = (Vec::new(), None, 0);
        for (i, group) in part.metadata.metadata().row_groups().iter().enumerate() {
            let n = group.num_rows() as u64;
            if at < end && at + n > start {
                groups.push(i);
                first_group_row.get_or_insert(at);
            }
            at += n;
        }
        let first_group_row = first_group_row.unwrap_or(0);
        let file = File::open(&part.path).at(&part.path)?;
        let mut builder =
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, part.metadata.clone())
                .with_row_groups(groups)
                .with_offset((start - first_group_row) as usize)
                .with_limit((end - start) as usize)
                .with_batch_size(self.batch_rows);
        if let Some(columns) = self.columns {
            let mask =
                ProjectionMask::columns(part.metadata.parquet_schema(), columns.iter().copied());
            builder = builder.with_projection(mask);
        }
        builder.build().map(Some).map_err(parquet_err(&part.path))
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<(&'a Path, RecordBatch)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((path, reader)) = &mut self.current {
                match reader.next() {
                    Some(Ok(batch)) => return Some(Ok((path, batch))),
                    Some(Err(source)) => {
                        let path = path.to_owned();
                        self.current = None;
                        self.next_file = self.parts.files.len();
                        return Some(Err(Error::Parquet {
                            path,
                            source: parquet::errors::ParquetError::ArrowError(source.to_string()),
                        }));
                    }
                    None => self.current = None,
                }
            }
            let index = self.next_file;
            let part = self.parts.files.get(index)?;
            self.next_file += 1;
            match self.open(index) {
                Ok(Some(reader)) => self.current = Some((&part.path, reader)),
                Ok(None) => {}
                Err(e) => {
                    self.next_file = self.parts.files.len();
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{EdgeKind, GraphEdge};

    fn edges(range: std::ops::Range<u32>) -> Vec<GraphEdge> {
        range
            .map(|i| GraphEdge {
                tweet_id: format!("t{}", i / 7),
                src: i,
                dst: i * 3 + 1,
                kind: EdgeKind::ALL[i as usize % 4],
            })
            .collect()
    }

    #[test]
    fn a_streamed_artifact_has_the_bytes_of_a_single_write() {
        let dir = tempfile::tempdir().unwrap();
        let rows = (3 * ROWS_PER_WRITE + 17) as u32;
        let whole = dir.path().join("whole.parquet");
        GraphEdge::write(&whole, &edges(0..rows)).unwrap();

        let streamed = dir.path().join("streamed.parquet");
        let step = (2 * ROWS_PER_WRITE) as u32;
        let mut writer = Writer::<GraphEdge>::create(&streamed);
        for start in (0..rows).step_by(step as usize) {
            writer
                .write(&edges(start..(start + step).min(rows)))
                .unwrap();
        }
        writer.finish().unwrap();

        assert_eq!(
            std::fs::read(&whole).unwrap(),
            std::fs::read(&streamed).unwrap()
        );
        assert_eq!(GraphEdge::read(&streamed).unwrap(), edges(0..rows));
    }

    #[test]
    fn a_writer_given_no_rows_writes_an_empty_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.parquet");
        Writer::<GraphEdge>::create(&path).finish().unwrap();
        assert_eq!(GraphEdge::read(&path).unwrap(), Vec::new());
    }
}
