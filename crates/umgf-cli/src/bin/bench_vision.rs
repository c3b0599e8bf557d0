//! `bench-vision`: images per second through decoding, the detector, and EfficientNet features of the
//! whole image and each detected box, printed as one JSON line shaped like
//! `scripts/reference/bench_vision.py`'s, for `make bench-vision`. Images are spread over model
//! workers as in the `ground` and `features` stages (`--workers 1` runs one image at a time on
//! `--threads` libtorch threads, the way the Python reference does).
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use serde_json::json;
use umgf::vision::detector::{CenterNet, DetectorConfig, default_model};
use umgf::vision::efficientnet::{self, ImageEncoder};
use umgf::vision::image::load_rgb;
use umgf::vision::workers::{ModelPool, default_workers};

#[derive(Parser, Debug)]
#[command(about = "Time decode + detector + visual features on image files")]
struct Cli {
    #[arg(long, num_args = 1.., required = true)]
    images: Vec<PathBuf>,
    /// Passes over the image list.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    #[arg(long, default_value = "models")]
    models: PathBuf,
    /// Model workers (default: one per core); each runs libtorch single-threaded when there are several.
    #[arg(long)]
    workers: Option<usize>,
    /// libtorch threads with one worker.
    #[arg(long, default_value_t = 2)]
    threads: i32,
}

fn main() -> anyhow::Result<()> {
    umgf_cli::init();
    let cli = Cli::parse();
    tch::set_num_threads(cli.threads);
    let device = tch::Device::Cpu;
    let workers = cli.workers.unwrap_or_else(|| default_workers(device));

    let (detector_path, encoder_path) = (
        default_model(&cli.models),
        efficientnet::default_model(&cli.models),
    );
    let pool = ModelPool::new(workers, move || {
        Ok((
            CenterNet::load(&detector_path, device)?,
            ImageEncoder::load(&encoder_path, device)?,
        ))
    });
    // Loading, excluded from the timing: one pass over the first image on every worker.
    let loading = Instant::now();
    let first = vec![cli.images[0].clone(); workers];
    pool.map(&first, |_, _| Ok(()))?;
    let load_seconds = loading.elapsed().as_secs_f64();

    let config = DetectorConfig::default();
    let paths: Vec<&PathBuf> = (0..cli.repeat).flat_map(|_| cli.images.iter()).collect();
    let started = Instant::now();
    let regions = pool.map(&paths, |(detector, encoder), path| {
        let image =
            load_rgb(path).map_err(|e| umgf::Error::Config(format!("{}: {e}", path.display())))?;
        let found = tch::no_grad(|| detector.detect(&image, &config))?;
        let boxes: Vec<_> = std::iter::once(None)
            .chain(found.iter().map(|d| Some(d.bbox)))
            .collect();
        Ok(encoder.features(&image, &boxes)?.size()[0])
    })?;
    let seconds = started.elapsed().as_secs_f64();

    let line = json!({
        "images": paths.len(),
        "regions": regions.iter().sum::<i64>(),
        "seconds": seconds,
        "images_per_s": paths.len() as f64 / seconds,
        "load_seconds": load_seconds,
        "peak_rss_mb": umgf_cli::peak_rss_mb(),
        "workers": workers,
        "threads": if workers > 1 { 1 } else { cli.threads },
    });
    println!("{line}");
    Ok(())
}
