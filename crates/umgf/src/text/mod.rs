//! The text side: tokenisation of raw tweets, word pieces, the BERT and MPNet encoders, and the
//! noun-phrase chunker.
pub mod bert;
pub mod chunker;
pub mod encoder;
pub mod mpnet;
pub mod np;
pub mod shape;
pub mod tokenize;
pub mod tokenizer;
pub mod transformer;
