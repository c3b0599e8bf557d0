//! What `DATASET=` names: a benchmark in the data directory (`twitter2015`, `twitter2017`) or a path to
//! one CoNLL file or JSONL dump.
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::io::Format;
use crate::schema::Split;

/// The benchmarks found in the data directory, with their split files (UMT's layout).
pub const BENCHMARKS: [&str; 2] = ["twitter2015", "twitter2017"];
const BENCHMARK_SPLITS: [(Split, &str); 3] = [
    (Split::Train, "train.txt"),
    (Split::Dev, "valid.txt"),
    (Split::Test, "test.txt"),
];

/// Each benchmark's default captions file in the data directory: PGIM's BLIP-2 captions of its images
/// (`pgim_blip2_captions/PROVENANCE.md`).
const BENCHMARK_CAPTIONS: [(&str, &str); 2] = [
    ("twitter2015", "pgim_blip2_captions/BLIP2_15.txt"),
    ("twitter2017", "pgim_blip2_captions/BLIP2_17.txt"),
];

/// Environment variable overriding where the data directory is.
pub const DATA_DIR_ENV: &str = "UMGF_DATA_DIR";

/// One input file of a dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    pub split: Split,
    pub path: PathBuf,
    pub format: Format,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// A name for views and reports: the benchmark's name, or the dump's file stem.
    pub label: String,
    pub sources: Vec<Source>,
    /// Where CoNLL tweets' images (`<id>.jpg`) are; JSONL dumps name their images themselves.
    pub image_dir: Option<PathBuf>,
    /// Where the tweets' captions come from.
    pub captions: Captions,
}

/// Where a dataset's captions (what each image shows, in words) come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Captions {
    /// None at all (`CAPTIONS=none`).
    Off,
    /// Only those the records carry (a JSONL `"caption"`): a dump's default.
    InRecords,
    /// A captions file (`io::captions`), matched to tweets by image file name; a record's own caption
    /// comes first. A benchmark's default is its BLIP-2 captions in the data directory.
    File(PathBuf),
}

/// Which captions a dataset is read with (`--captions`, `CAPTIONS=`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CaptionsChoice {
    /// The benchmark's BLIP-2 captions; none for a dump.
    #[default]
    Default,
    /// No captions, not even a JSONL dump's own.
    None,
    File(PathBuf),
}

impl std::str::FromStr for CaptionsChoice {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s {
            "" | "default" => Self::Default,
            "none" => Self::None,
            path => Self::File(PathBuf::from(path)),
        })
    }
}

impl Dataset {
    /// Resolves `name` (a benchmark name or a path). `image_dir` overrides the default image directory:
    /// `<data dir>/<benchmark>_images` (UMT's layout) or `images/` beside a CoNLL dump.
    /// `data_dir` is needed for benchmarks only.
    pub fn resolve(name: &str, data_dir: Option<&Path>, image_dir: Option<&Path>) -> Result<Self> {
        if BENCHMARKS.contains(&name) {
            let data_dir = data_dir.ok_or_else(|| {
                Error::Config(format!(
                    "dataset {name}: no data directory; set {DATA_DIR_ENV} or pass --data-dir (DATA_DIR= for make); \
                     see README.md, section Data"
                ))
            })?;
            let dir = data_dir.join(name);
            if !dir.is_dir() {
                return Err(Error::Config(format!(
                    "dataset {name}: {} is not a directory. Point {DATA_DIR_ENV} (or DATA_DIR=) at the folder \
                     holding {name}/{{train,valid,test}}.txt; see README.md, section Data",
                    dir.display()
                )));
            }
            // Tweets record their image paths: spelled canonically, the same data directory always
            // gives the same `tweets` artifact (`../shared/data` and `/work/shared/data` alike).
            let data_dir = data_dir.canonicalize().at(data_dir)?;
            let dir = data_dir.join(name);
            let sources = BENCHMARK_SPLITS
                .iter()
                .map(|(split, file)| Source {
                    split: *split,
                    path: dir.join(file),
                    format: Format::Conll,
                })
                .collect();
            let image_dir =
                image_dir.map_or_else(|| data_dir.join(format!("{name}_images")), Path::to_owned);
            let captions = BENCHMARK_CAPTIONS
                .iter()
                .find(|(benchmark, _)| *benchmark == name)
                .map(|(_, file)| data_dir.join(file))
                .filter(|file| file.is_file())
                .map_or(Captions::InRecords, Captions::File);
            return Ok(Self {
                label: name.to_owned(),
                sources,
                image_dir: Some(image_dir),
                captions,
            });
        }

        let path = PathBuf::from(name);
        if !path.is_file() {
            return Err(Error::Config(format!(
                "dataset {name:?} is neither a benchmark ({}) nor a file",
                BENCHMARKS.join(", ")
            )));
        }
        let format = Format::of_path(&path);
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("dump");
        let image_dir = match (image_dir, format) {
            (Some(dir), _) => Some(dir.to_owned()),
            (None, Format::Conll) => path.parent().map(|p| p.join("images")),
            (None, Format::Jsonl) => None,
        };
        Ok(Self {
            label: format!("dump-{stem}"),
            sources: vec![Source {
                split: Split::Dump,
                path,
                format,
            }],
            image_dir,
            captions: Captions::InRecords,
        })
    }

    /// The dataset read with `choice`'s captions; a file that is not there is an error.
    pub fn with_captions(mut self, choice: &CaptionsChoice) -> Result<Self> {
        match choice {
            CaptionsChoice::Default => {}
            CaptionsChoice::None => self.captions = Captions::Off,
            CaptionsChoice::File(path) => {
                if !path.is_file() {
                    return Err(Error::Config(format!(
                        "captions file {} not found (CAPTIONS= takes a file, or none)",
                        path.display()
                    )));
                }
                self.captions = Captions::File(path.canonicalize().at(path)?);
            }
        }
        Ok(self)
    }
}

/// The data directory: `$UMGF_DATA_DIR`, else the first `shared/data` found walking up from `start`
/// (this checkout's layout keeps the data beside the repository, in `../shared/data`).
pub fn default_data_dir(start: &Path) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV) {
        return Some(PathBuf::from(dir));
    }
    let start = start.canonicalize().ok()?;
    start
        .ancestors()
        .map(|dir| dir.join("shared").join("data"))
        .find(|dir| dir.is_dir())
}
