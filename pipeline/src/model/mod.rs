//! The NER model (issue 5). Built so far: the CRF (`crf`). Not built yet: the UMGF fusion layers,
//! the text-only baseline, training.
pub mod crf;
pub mod umgf;
