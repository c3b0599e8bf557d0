//! The text side: tokenisation of raw tweets (and, later, the encoder and the noun-phrase chunker).
pub mod tokenize;
