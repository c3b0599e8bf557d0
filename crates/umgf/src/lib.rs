//! umgf: multimodal named-entity recognition on tweets (UMGF, Zhang et al., AAAI 2021) as a staged,
//! content-addressed pipeline. This library holds everything; the stage binaries in `stages/` are thin.
//!
//! Modules follow DESIGN.md's stage table: [`schema`] (artifact schemas), [`store`] (the
//! content-addressed store), [`io`] (readers and writers), [`dataset`] (what `DATASET=` names),
//! [`labels`] (BIO tags and entity chunks), [`text`], [`vision`], [`grounding`], [`model`] (UMGF, the
//! CRF, batching and training), [`eval`] (entity-level scores), [`stages`] (one module per stage),
//! [`torch`].
pub mod dataset;
pub mod digest;
mod error;
pub mod eval;
pub mod grounding;
pub mod io;
pub mod labels;
pub mod model;
pub mod progress;
pub mod rng;
pub mod schema;
pub mod stages;
pub mod store;
pub mod text;
pub mod torch;
pub mod vision;

pub use digest::Digest;
pub use error::{Error, IoContext, Result};
