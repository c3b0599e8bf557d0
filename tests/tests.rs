//! umgf's integration tests, one binary (every test binary links libtorch: tens of megabytes each).
//! Per-topic modules; shared helpers in `common`. The store's tests
//! are in `crates/umgf-core/tests/` (they need no libtorch).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

mod bad_inputs;
mod eval;
mod ground;
mod ingest_real_data;
mod kill;
mod mpnet;
mod report;
mod shards;
mod text;
mod train;
mod vision;
