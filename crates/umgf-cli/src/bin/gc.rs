//! `gc`: removes from the store what no link and no recent run refers to (see
//! `umgf::store::gc` for what is kept), compacts each memo namespace into one packed segment, and
//! moves the memo entries of an older store (one file each) into packs. Refuses to start while a
//! stage run is in progress.
use std::path::PathBuf;

use clap::Parser;
use umgf::stages::Artifacts;
use umgf::store::gc::{self, GcConfig};

#[derive(Parser, Debug)]
#[command(about = "Remove store objects and memo entries that no link and no recent run refers to")]
struct Cli {
    /// Where artifacts live: the store, plus one folder of friendly links per dataset.
    #[arg(long, env = "UMGF_ARTIFACTS", default_value = "artifacts")]
    artifacts: PathBuf,
    /// Runs kept per stage (the latest), besides the linked ones and what they read.
    #[arg(long, default_value_t = GcConfig::default().keep)]
    keep: usize,
    /// Checkpoints of unfinished training runs younger than this are kept.
    #[arg(long, default_value_t = GcConfig::default().checkpoint_days)]
    checkpoint_days: u64,
    /// Only report what would be removed.
    #[arg(long)]
    dry_run: bool,
}

fn main() -> anyhow::Result<()> {
    umgf_cli::init();
    let cli = Cli::parse();
    let artifacts = Artifacts::open(&cli.artifacts)?;
    let config = GcConfig {
        keep: cli.keep,
        checkpoint_days: cli.checkpoint_days,
        dry_run: cli.dry_run,
        legacy_memo: umgf::stages::memo_namespaces(),
    };
    let r = gc::collect(&artifacts.store, artifacts.root(), &config)?;
    let mb = |bytes: u64| bytes as f64 / 1e6;
    let verb = if cli.dry_run {
        "would remove"
    } else {
        "removed"
    };
    println!(
        "gc {}: kept {} runs, {} blobs, {} memo entries; {verb} {} runs, {} blobs, {} memo entries, \
         {} checkpoints: {:.1} of {:.1} MB",
        artifacts.store.root().display(),
        r.runs_kept,
        r.blobs_kept,
        r.memo_entries_kept,
        r.runs_removed,
        r.blobs_removed,
        r.memo_entries_removed,
        r.checkpoints_removed,
        mb(r.bytes_removed),
        mb(r.bytes_before),
    );
    if r.memo_entries_packed > 0 {
        println!(
            "gc: {} memo entries of the one-file-per-entry format {} into packs",
            r.memo_entries_packed,
            if cli.dry_run { "would move" } else { "moved" },
        );
    }
    if r.memo_segments_before != r.memo_segments_after {
        println!(
            "gc: memo segments {} -> {} (each namespace compacted into one)",
            r.memo_segments_before, r.memo_segments_after
        );
    }
    Ok(())
}
