//! The library's one error type. Every variant that concerns an input names where the problem is
//! (file and line, or record id) and what was expected, so a binary can print it as is.
//!
//! One type for both crates: this crate does not link libtorch, so a libtorch error arrives boxed in
//! [`Error::Torch`] (the model crate's `TorchResult::torch` does the boxing at each call into tch).
//! A second error type in the model crate would have made every caller convert between the two.
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A record of an input file is malformed. `line` is 1-based.
    #[error("{}:{line}: {message}", path.display())]
    Input {
        path: PathBuf,
        line: usize,
        message: String,
    },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: parquet: {source}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },

    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),

    #[error("{}: schema: {message}", path.display())]
    Schema { path: PathBuf, message: String },

    #[error("store: {0}")]
    Store(String),

    /// An error of libtorch (a shape mismatch, a missing weight, an unloadable file).
    #[error("torch: {0}")]
    Torch(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// A model, weights, tokenizer or model configuration file that cannot be used: what it should
    /// have been, and why it is not.
    #[error("{}: {message}", path.display())]
    ModelFile { path: PathBuf, message: String },

    /// A TF.js graph the interpreter cannot run (an unsupported op or attribute, a malformed graph).
    #[error("{0}")]
    Graph(String),

    /// JSON that could not be written or read: run parameters, metrics, reports.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),

    /// Something that cannot happen unless the code is wrong (a worker thread that died, a row
    /// that contradicts its artifact): a bug to report, not an input to fix.
    #[error("internal error: {0}")]
    Internal(String),

    /// A setting that cannot be used: a command-line value, a dataset name, a shard.
    #[error("{0}")]
    Config(String),
}

impl Error {
    pub fn model_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::ModelFile {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn input(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        Self::Input {
            path: path.into(),
            line,
            message: message.into(),
        }
    }
}

/// Attaches the path to an I/O error: `fs::read(p).at(p)?`.
pub trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}

/// `bail!(Config, "...")`-style early return, keeping error sites one line long.
#[macro_export]
macro_rules! bail {
    (Config, $($arg:tt)*) => { return Err($crate::Error::Config(format!($($arg)*))) };
    (Store, $($arg:tt)*) => { return Err($crate::Error::Store(format!($($arg)*))) };
    (Graph, $($arg:tt)*) => { return Err($crate::Error::Graph(format!($($arg)*))) };
    (Internal, $($arg:tt)*) => { return Err($crate::Error::Internal(format!($($arg)*))) };
}
