//! The text side: the BERT and MPNet encoders over word pieces (`wordpiece`), and the noun-phrase
//! chunker. Words, word shapes and noun-phrase tags need no model: they are `umgf_core::text`,
//! re-exported here.
pub mod bert;
pub mod chunker;
pub mod encoder;
pub mod mpnet;
pub mod transformer;
pub mod wordpiece;

pub use umgf_core::text::{np, shape, words};
