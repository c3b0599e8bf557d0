//! Parquet writing and reading for artifacts. Writes are deterministic (same rows, same bytes): that is
//! what lets the store cut off downstream work when a re-run reproduces an artifact exactly.
use std::fs::File;
use std::path::Path;

use arrow_array::RecordBatch;
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
const ROWS_PER_WRITE: usize = 256;

/// Writes `batch` to `path` (which the caller makes atomic, see `store`), tagging it `name/version`.
pub fn write(path: &Path, batch: &RecordBatch, name: &str, version: u32) -> Result<()> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_SIZE))
        .set_key_value_metadata(Some(vec![KeyValue::new(
            SCHEMA_KEY.to_owned(),
            format!("{name}/{version}"),
        )]))
        .build();
    let file = File::create(path).at(path)?;
    let parquet_err = |source| Error::Parquet {
        path: path.to_owned(),
        source,
    };
    let mut writer =
        ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(parquet_err)?;
    for start in (0..batch.num_rows()).step_by(ROWS_PER_WRITE) {
        let rows = ROWS_PER_WRITE.min(batch.num_rows() - start);
        writer
            .write(&batch.slice(start, rows))
            .map_err(parquet_err)?;
    }
    let file = writer.into_inner().map_err(parquet_err)?;
    file.sync_all().at(path)
}

/// Reads a whole artifact, checking it is `name` at `version`.
pub fn read(path: &Path, name: &str, version: u32) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).at(path)?;
    let parquet_err = |source| Error::Parquet {
        path: path.to_owned(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
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
    let reader = builder.build().map_err(parquet_err)?;
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
