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
use crate::schema::SCHEMA_KEY;

/// Rows per row group: small enough for readers to skip, large enough to compress well.
const ROW_GROUP_SIZE: usize = 64 * 1024;
/// Rows handed to the Parquet writer at a time. The writer turns each float16 value of a batch into
/// an object of its own (about 32 bytes) while encoding: the whole `text_features` of Twitter-2017
/// with MPNet's 13 states in one batch took over 24 GB and was killed; a few hundred rows at a time
/// keep that to a few hundred MB.
pub const ROWS_PER_WRITE: usize = 256;

/// Writes `batch` to `path` (which the caller makes atomic, see `store`), tagging it `name/version`.
pub fn write(path: &Path, batch: &RecordBatch, name: &str, version: u32) -> Result<()> {
    let mut writer = Writer::create(path, batch.schema(), name, version)?;
    writer.write(batch)?;
    writer.finish()
}

/// An artifact written a batch at a time, for stages whose rows do not fit in memory at once. The
/// bytes depend only on the rows, not on how they were split into batches (see the test), so a
/// streamed artifact is the one [`write`] would make.
pub struct Writer<'a> {
    path: &'a Path,
    inner: ArrowWriter<File>,
}

impl<'a> Writer<'a> {
    /// Creates `path` for rows of `schema`, tagged `name/version`.
    pub fn create(path: &'a Path, schema: SchemaRef, name: &str, version: u32) -> Result<Self> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(ROW_GROUP_SIZE))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                SCHEMA_KEY.to_owned(),
                format!("{name}/{version}"),
            )]))
            .build();
        let file = File::create(path).at(path)?;
        let inner = ArrowWriter::try_new(file, schema, Some(props)).map_err(parquet_err(path))?;
        Ok(Self { path, inner })
    }

    /// Appends the rows of `batch`, [`ROWS_PER_WRITE`] at a time.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        // Slices start at multiples of ROWS_PER_WRITE within each batch: callers that stream pass
        // batches whose sizes are multiples of it, so the writer sees the same slices as one batch.
        for start in (0..batch.num_rows()).step_by(ROWS_PER_WRITE) {
            let rows = ROWS_PER_WRITE.min(batch.num_rows() - start);
            self.inner
                .write(&batch.slice(start, rows))
                .map_err(parquet_err(self.path))?;
        }
        Ok(())
    }

    /// Writes the footer and syncs the file.
    pub fn finish(self) -> Result<()> {
        let file = self.inner.into_inner().map_err(parquet_err(self.path))?;
        file.sync_all().at(self.path)
    }
}

fn parquet_err(path: &Path) -> impl Fn(parquet::errors::ParquetError) -> Error + '_ {
    move |source| Error::Parquet {
        path: path.to_owned(),
        source,
    }
}

/// Reads a whole artifact, checking it is `name` at `version`.
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

/// Reads every row of an artifact with its schema's `from_batch`.
pub fn read_rows<T>(
    path: &Path,
    name: &str,
    version: u32,
    from_batch: fn(&Path, &RecordBatch) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let mut rows = Vec::new();
    for batch in read(path, name, version)? {
        rows.extend(from_batch(path, &batch)?);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Float32Array, Int64Array};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn batch(range: std::ops::Range<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("value", DataType::Float32, false),
        ]));
        let ids = Int64Array::from_iter_values(range.clone());
        let values = Float32Array::from_iter_values(range.map(|i| (i as f32).sin()));
        RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(values)]).unwrap()
    }

    #[test]
    fn a_streamed_artifact_has_the_bytes_of_a_single_write() {
        let dir = tempfile::tempdir().unwrap();
        let rows = (3 * ROWS_PER_WRITE + 17) as i64;
        let whole = dir.path().join("whole.parquet");
        write(&whole, &batch(0..rows), "test", 1).unwrap();

        let streamed = dir.path().join("streamed.parquet");
        let step = (2 * ROWS_PER_WRITE) as i64;
        let mut writer = Writer::create(&streamed, batch(0..0).schema(), "test", 1).unwrap();
        for start in (0..rows).step_by(step as usize) {
            writer
                .write(&batch(start..(start + step).min(rows)))
                .unwrap();
        }
        writer.finish().unwrap();

        assert_eq!(
            std::fs::read(&whole).unwrap(),
            std::fs::read(&streamed).unwrap()
        );
        assert_eq!(
            read(&streamed, "test", 1)
                .unwrap()
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>(),
            rows as usize
        );
    }
}
