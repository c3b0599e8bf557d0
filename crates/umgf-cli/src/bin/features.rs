//! `features`: text features of every tweet (word pieces, shapes, frozen encoder states), memoised per
//! tweet, and visual features of each tweet's image and grounded objects (runs `ground` first, cached),
//! memoised per region.
use clap::Parser;
use umgf::stages::text_features::{self, TextFeaturesStage};
use umgf::stages::visual_features::{self, VisualFeaturesStage};
use umgf::stages::{ShardedStage, Stage};
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
    let params = cli.text.params();
    let store = &run.artifacts.store;
    let upstream = run.upstream(&cli.common, cli.ground.params());
    let text = upstream.text_features_input(&params)?;
    // A shard does its part of both halves; the visual half needs `ground` merged (a cache hit).
    match cli.shards.mode() {
        ShardMode::Missing(count) => {
            let text = TextFeaturesStage::missing_shards(store, &text, count)?;
            let visual = upstream.visual_features_input()?;
            let visual = VisualFeaturesStage::missing_shards(store, &visual, count)?;
            print_missing_shards(text.into_iter().chain(visual));
            return Ok(());
        }
        ShardMode::Shard(shard) => {
            let outcome = TextFeaturesStage::run_shard(store, &text, shard)?;
            run.report_shard("features", shard, &outcome);
            let visual = upstream.visual_features_input()?;
            let outcome = VisualFeaturesStage::run_shard(store, &visual, shard)?;
            run.report_shard("visual features", shard, &outcome);
            return Ok(());
        }
        ShardMode::Whole => {}
    }
    let outcome = upstream.text_features(&params)?;
    let link = run.publish("features", &outcome, text_features::TEXT_FEATURES)?;
    let c = TextFeaturesStage::counts(&outcome.manifest)?;
    eprintln!(
        "  {} tweets, {} words, {} word pieces, {} longer than 128 pieces (encoded with a sliding window)",
        c.tweets, c.words, c.pieces, c.longer_than_max_pieces,
    );
    eprintln!(
        "  {} states per word ({}), {} wide, {:?}: {:.1} MB -> {}",
        c.layers.len(),
        params.layers,
        c.hidden,
        params.storage,
        c.bytes as f64 / 1e6,
        link.display()
    );
    if !outcome.hit {
        eprintln!(
            "  encoded {} tweets, reused {} from the memo",
            c.memo_computed, c.memo_reused
        );
    }

    let outcome = upstream.visual_features()?;
    let link = run.publish(
        "visual features",
        &outcome,
        visual_features::VISUAL_FEATURES,
    )?;
    let c = VisualFeaturesStage::counts(&outcome.manifest)?;
    eprintln!(
        "  {} regions: {} whole images, {} objects ({} regions of unreadable images left out) -> {}",
        c.regions,
        c.images,
        c.objects,
        c.unreadable_regions,
        link.display()
    );
    if !outcome.hit {
        eprintln!(
            "  encoded {} regions, reused {} from the memo",
            c.memo_computed, c.memo_reused
        );
    }
    Ok(())
}
