//! umgf: multimodal named-entity recognition on tweets (UMGF, Zhang et al., AAAI 2021) as a staged,
//! content-addressed pipeline. This crate holds what runs on libtorch: the text encoders and the
//! noun-phrase chunker ([`text`]), the detector and image encoder ([`vision`]), [`grounding`], the NER
//! models and their training ([`model`]), the model stages ([`stages`]) and [`torch`] (devices and
//! precision). What needs no libtorch (schemas, the store, readers, labels, scores, ingest, graphs) is
//! the `umgf-core` crate, re-exported here so the whole library reads as one: `umgf::schema`,
//! `umgf::store`. The stage binaries in `crates/umgf-cli` are thin.
pub use umgf_core::{Digest, Error, IoContext, Result, bail};
pub use umgf_core::{
    analysis, dataset, digest, eval, io, labels, memory, progress, report, rng, schema, store,
};

pub mod grounding;
pub mod model;
pub mod stages;
pub mod text;
pub mod torch;
pub mod vision;
