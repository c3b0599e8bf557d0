//! `bench-vision`: images per second through decoding, the detector and EfficientNet features of the
//! whole image and each detected box, printed as one JSON line shaped like
//! `scripts/reference/bench_vision.py`'s, for `make bench-vision`. Decoding runs on rayon's threads
//! while the models work (as in the `ground` and `features` stages).
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use pipeline::vision::detector::{CenterNet, DetectorConfig, default_model};
use pipeline::vision::efficientnet::{self, ImageEncoder};
use pipeline::vision::image::decode_parallel;
use serde_json::json;

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
    /// Intra-op threads of libtorch.
    #[arg(long, default_value_t = 2)]
    threads: i32,
}

fn main() -> anyhow::Result<()> {
    stages::init_logging();
    let cli = Cli::parse();
    tch::set_num_threads(cli.threads);
    let device = tch::Device::Cpu;

    let loading = Instant::now();
    let detector = CenterNet::load(&default_model(&cli.models), device)?;
    let encoder = ImageEncoder::load(&efficientnet::default_model(&cli.models), device)?;
    let load_seconds = loading.elapsed().as_secs_f64();
    let config = DetectorConfig::default();

    let paths: Vec<&PathBuf> = (0..cli.repeat).flat_map(|_| cli.images.iter()).collect();
    let started = Instant::now();
    let mut regions = 0;
    let mut bad = 0;
    let (mut detector_seconds, mut crop_seconds, mut features_seconds) = (0.0, 0.0, 0.0);
    decode_parallel(&paths, |_, decoded| -> anyhow::Result<()> {
        let Ok(image) = decoded else {
            bad += 1;
            return Ok(());
        };
        let t = Instant::now();
        let found = tch::no_grad(|| detector.detect(&image, &config))?;
        detector_seconds += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let boxes: Vec<_> = std::iter::once(None)
            .chain(found.iter().map(|d| Some(d.bbox)))
            .collect();
        let crops = efficientnet::crops(&image, &boxes)?;
        crop_seconds += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let features = encoder.encode(&crops)?;
        regions += features.size()[0];
        features_seconds += t.elapsed().as_secs_f64();
        Ok(())
    })?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(bad == 0, "{bad} images could not be decoded");

    let line = json!({
        "images": paths.len(),
        "regions": regions,
        "seconds": seconds,
        "images_per_s": paths.len() as f64 / seconds,
        "load_seconds": load_seconds,
        "detector_seconds": detector_seconds,
        "crop_seconds": crop_seconds,
        "features_seconds": features_seconds,
        "peak_rss_mb": stages::peak_rss_mb(),
        "threads": cli.threads,
    });
    println!("{line}");
    Ok(())
}
