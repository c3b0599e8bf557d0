//! Text without a model: tweets split into words, word shapes, noun-phrase tags.
pub mod np;
pub mod shape;
pub mod words;
