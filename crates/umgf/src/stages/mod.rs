//! Stage logic, one module per stage binary. A stage plans its run (reads its inputs, computes the run
//! key), then executes it through the store, which skips work it has already done. The stages that
//! need no model (ingest, graphs) and [`Artifacts`] are in `umgf_core::stages`, re-exported here.
pub mod chunk;
pub mod chunker;
pub mod features;
pub mod ground;
pub mod predict;
pub mod train;
pub mod visual_features;

use std::collections::BTreeMap;

pub use umgf_core::stages::{Artifacts, graphs, ingest};

/// The memo namespaces each stage reads and writes, by stage name (for garbage collection of stores
/// whose manifests predate the list in them; see [`crate::store::gc::GcConfig::legacy_memo`]).
pub fn memo_namespaces() -> BTreeMap<String, Vec<String>> {
    let table: [(&str, &[&str]); 9] = [
        (ingest::STAGE, &[ingest::IMAGE_DIGEST_MEMO]),
        (chunker::STAGE, &[]),
        (chunk::STAGE, &[chunk::MEMO]),
        (
            ground::STAGE,
            &[ground::DETECTIONS_MEMO, ground::GROUNDINGS_MEMO],
        ),
        (features::STAGE, &[features::MEMO]),
        (visual_features::STAGE, &[visual_features::MEMO]),
        (graphs::STAGE, &[]),
        (train::STAGE, &[]),
        (predict::STAGE, &[]),
    ];
    table
        .iter()
        .map(|(stage, memos)| {
            let memos = memos.iter().map(|m| (*m).to_owned()).collect();
            ((*stage).to_owned(), memos)
        })
        .collect()
}
