//! The NER model: the UMGF fusion layers (`umgf`) and CRF (`crf`), the trainable tagger that puts
//! them on cached or fine-tuned encoder states (`tagger`, with the text-only baseline), batching from
//! the cached artifacts (`batch`, and `join`, which reads them a batch of rows at a time), and the training and prediction loops (`train`).
pub mod batch;
mod crf;
pub mod join;
mod optim;
pub mod tagger;
pub mod text_head;
pub mod train;
pub mod umgf;
