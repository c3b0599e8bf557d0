//! `features`: text features of every tweet (word pieces, shapes, frozen encoder states), memoised per
//! tweet, and visual features of each tweet's image and grounded objects (runs `ground` first, cached),
//! memoised per region.
use clap::Parser;
use umgf::stages::{features, ground, visual_features};
use umgf::vision::efficientnet;
use umgf_cli::{ShardMode, print_missing_shards};

#[derive(Parser, Debug)]
#[command(about = "Cache text features of every tweet to Parquet (stage 4 of umgf)")]
struct Cli {
    #[command(flatten)]
    data: umgf_cli::DatasetArgs,
    #[command(flatten)]
    text: umgf_cli::TextFeatureArgs,
    #[command(flatten)]
    ground: umgf_cli::GroundArgs,
    #[command(flatten)]
    shards: umgf_cli::ShardArgs,
    #[command(flatten)]
    common: umgf_cli::Common,
}

fn main() -> anyhow::Result<()> {
    umgf_cli::init();
    let cli = Cli::parse();
    let run = cli.data.start(&cli.common)?;
    let (artifacts, tweets) = (&run.artifacts, run.tweets);
    let params = cli.text.params();
    let (store, encoder) = (&artifacts.store, params.encoder.files(&cli.common.models));
    let image_model = efficientnet::default_model(&cli.common.models);
    // A shard does its part of both halves; the visual half needs `ground` merged (a cache hit).
    let objects = || -> anyhow::Result<_> {
        let ground = umgf_cli::objects(&cli.common, artifacts, tweets, &cli.ground)?;
        Ok(ground.manifest.output(ground::OBJECTS)?.digest)
    };
    match cli.shards.mode() {
        ShardMode::Missing(count) => {
            let text = features::missing_shards(store, tweets, &encoder, &params, count)?;
            let visual =
                visual_features::missing_shards(store, tweets, objects()?, &image_model, count)?;
            print_missing_shards(text.into_iter().chain(visual));
            return Ok(());
        }
        ShardMode::Shard(shard) => {
            let outcome = features::run_shard(store, tweets, &encoder, &params, shard)?;
            run.report_shard("features", shard, &outcome);
            let outcome =
                visual_features::run_shard(store, tweets, objects()?, &image_model, shard)?;
            run.report_shard("visual features", shard, &outcome);
            return Ok(());
        }
        ShardMode::Whole => {}
    }
    let outcome = features::run(store, tweets, &encoder, &params)?;
    let link = run.publish("features", &outcome, features::TEXT_FEATURES)?;
    let c = &outcome.manifest.counts;
    eprintln!(
        "  {} tweets, {} words, {} word pieces, {} longer than 128 pieces (encoded with a sliding window)",
        c["tweets"], c["words"], c["pieces"], c["longer_than_max_pieces"],
    );
    eprintln!(
        "  {} states per word ({}), {} wide, {:?}: {:.1} MB -> {}",
        c["layers"].as_array().map_or(0, Vec::len),
        params.layers,
        c["hidden"],
        params.storage,
        c["bytes"].as_f64().unwrap_or(0.0) / 1e6,
        link.display()
    );
    if !outcome.hit {
        eprintln!(
            "  encoded {} tweets, reused {} from the memo",
            c["memo_computed"], c["memo_reused"]
        );
    }

    let outcome = visual_features::run(store, tweets, objects()?, &image_model)?;
    let link = run.publish(
        "visual features",
        &outcome,
        visual_features::VISUAL_FEATURES,
    )?;
    let c = &outcome.manifest.counts;
    eprintln!(
        "  {} regions: {} whole images, {} objects ({} regions of unreadable images left out) -> {}",
        c["regions"],
        c["images"],
        c["objects"],
        c["unreadable_regions"],
        link.display()
    );
    if !outcome.hit {
        eprintln!(
            "  encoded {} regions, reused {} from the memo",
            c["memo_computed"], c["memo_reused"]
        );
    }
    Ok(())
}
