//! umgf-core: the half of umgf that needs no libtorch. Artifact schemas and their Parquet files, the
//! content-addressed store, the input readers, BIO labels and entity-level scores, words, word shapes
//! and noun-phrase tags, image decoding, and the stages that run no model (ingest, graphs).
//!
//! The model crate `umgf` builds on it and re-exports its modules, so most code names them through
//! `umgf::`. The fuzz targets and the store's tests link this crate alone.
pub mod analysis;
pub mod dataset;
pub mod digest;
mod error;
pub mod eval;
pub mod io;
pub mod labels;
pub mod memory;
pub mod progress;
pub mod report;
pub mod rng;
pub mod schema;
pub mod stages;
pub mod store;
pub mod text;
pub mod vision;

pub use digest::Digest;
pub use error::{Error, IoContext, Result};
