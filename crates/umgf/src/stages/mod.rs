//! Stage logic, one module per stage binary. A stage plans its run (reads its inputs, computes the run
//! key), then executes it through the store, which skips work it has already done. The stages that
//! need no model (ingest, graphs) and [`Artifacts`] are in `umgf_core::stages`, re-exported here.
pub mod chunk;
pub mod chunker;
pub mod ground;
pub mod predict;
pub mod text_features;
pub mod train;
pub mod visual_features;

use std::collections::BTreeMap;

pub use umgf_core::stages::{Artifacts, ShardedStage, Stage, graphs, ingest};

/// The memo namespaces each stage reads and writes, by stage name (for garbage collection of stores
/// whose manifests predate the list in them; see [`crate::store::gc::GcConfig::legacy_memo`]).
pub fn memo_namespaces() -> BTreeMap<String, Vec<String>> {
    fn entry<S: Stage>() -> (String, Vec<String>) {
        let memos = S::MEMOS.iter().map(|m| (*m).to_owned()).collect();
        (S::NAME.to_owned(), memos)
    }
    BTreeMap::from([
        entry::<ingest::IngestStage>(),
        entry::<chunker::ChunkerStage>(),
        entry::<chunk::ChunkStage>(),
        entry::<ground::GroundStage>(),
        entry::<text_features::TextFeaturesStage>(),
        entry::<visual_features::VisualFeaturesStage>(),
        entry::<graphs::GraphsStage>(),
        entry::<train::TrainStage>(),
        entry::<predict::PredictStage>(),
    ])
}
