//! What every stage binary shares: common arguments, logging, and how results are reported.
use std::path::PathBuf;

use clap::Args;
use pipeline::stages::Artifacts;
use pipeline::store::RunOutcome;

/// Arguments every stage takes.
#[derive(Args, Debug)]
pub struct Common {
    /// Where artifacts live: the store, plus one folder of friendly links per dataset.
    #[arg(long, env = "UMGF_ARTIFACTS", default_value = "artifacts")]
    pub artifacts: PathBuf,
    /// The data directory (default: $UMGF_DATA_DIR, else the first `shared/data` above the current folder).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl Common {
    pub fn open_artifacts(&self) -> anyhow::Result<Artifacts> {
        Ok(Artifacts::open(&self.artifacts)?)
    }

    /// The data directory, if one is given or found (only benchmark datasets need it).
    pub fn data_dir(&self) -> anyhow::Result<Option<PathBuf>> {
        if let Some(dir) = &self.data_dir {
            return Ok(Some(dir.clone()));
        }
        Ok(pipeline::dataset::default_data_dir(
            &std::env::current_dir()?
        ))
    }

    /// The data directory, for stages that always read from it.
    pub fn require_data_dir(&self) -> anyhow::Result<PathBuf> {
        self.data_dir()?.ok_or_else(|| {
            anyhow::anyhow!(
                "no data directory: set {} or pass --data-dir (DATA_DIR= for make); see README.md, section Data",
                pipeline::dataset::DATA_DIR_ENV
            )
        })
    }
}

/// Logs to stderr; `RUST_LOG` overrides the default level (info).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}

/// One line saying how the run went: a cache hit, or work done (and whether downstream stays cached).
pub fn describe(stage: &str, label: &str, outcome: &RunOutcome, seconds: f64) -> String {
    let key = outcome.manifest.key.short();
    let how = if outcome.hit {
        "cache hit, nothing to do".to_owned()
    } else if outcome.outputs_unchanged {
        format!(
            "ran in {:.2} s; outputs unchanged, downstream stays cached",
            outcome.manifest.seconds
        )
    } else {
        format!("ran in {:.2} s", outcome.manifest.seconds)
    };
    format!("{stage} {label}: {how} (run {key}, {seconds:.2} s in all)")
}

/// Peak resident memory of this process so far, in MiB (Linux `VmHWM`); 0 where unknown.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}
