//! Parquet writing and reading for artifacts. Writes are deterministic (same rows, same bytes): that is
//! what lets the store cut off downstream work when a re-run reproduces an artifact exactly.
use std::fs::File;
use std::path::Path;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
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
pub fn read(path: &Path, name: &str, version: u32) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).at(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err(path))?;
    let want = format!("{name}/{version}");
    let found = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kvs| kvs.iter().find(|kv| kv.key == SCHEMA_KEY))
        .and_then(|kv| kv.value.clone());
    if found.as_deref() != Some(want.as_str()) {
        return Err(Error::Schema {
            path: path.to_owned(),
            message: format!(
                "expected a {want} artifact, found {}",
                found.as_deref().unwrap_or("no schema tag")
            ),
        });
    }
    let reader = builder.build().map_err(parquet_err(path))?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
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
