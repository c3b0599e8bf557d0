//! `ground`: the targeted visual objects of every tweet (detector + grounding of its noun phrases and
//! the general words), memoised per image and per tweet. Runs ingest and chunk first (cached).
use clap::Parser;
use umgf::schema::{Artifact, GroundedObject, Tweet};
use umgf::stages::Stage;
use umgf::stages::ground::{self, GroundStage};

#[derive(Parser, Debug)]
#[command(
    about = "Ground noun phrases to detected objects in each tweet's image (stage 3 of umgf)"
)]
struct Cli {
    #[command(flatten)]
    data: umgf_cli::DatasetArgs,
    #[command(flatten)]
    ground: umgf_cli::GroundArgs,
    /// Print the objects of the first N tweets that have any.
    #[arg(long, default_value_t = 0)]
    show: usize,
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
    let upstream = run.upstream(&cli.common, cli.ground.params());
    let input = upstream.ground_input()?;
    let Some(outcome) = umgf_cli::run_sharded::<GroundStage>(&run, cli.shards.mode(), &input)?
    else {
        return Ok(());
    };
    let objects = outcome.manifest.output(ground::OBJECTS)?.digest;
    let link = run.publish("ground", &outcome, ground::OBJECTS)?;
    let bad_images = run.link(&outcome, ground::BAD_IMAGES)?;
    let c = GroundStage::counts(&outcome.manifest)?;
    eprintln!(
        "  {} tweets, {} with an image ({} unreadable, see {}), {} with objects: {} objects, {} groundings -> {}",
        c.tweets,
        c.tweets_with_image,
        c.bad_images,
        bad_images.display(),
        c.tweets_with_objects,
        c.objects,
        c.groundings,
        link.display()
    );
    if !outcome.hit {
        eprintln!(
            "  detector ran on {} images ({} memoised); grounded {} tweets ({} memoised)",
            c.images_detected, c.images_memoised, c.tweets_grounded, c.tweets_grounding_memoised
        );
    }

    if cli.show > 0 {
        let all = Tweet::read(&artifacts.store.blob_path(&tweets))?;
        let rows = GroundedObject::read(&artifacts.store.blob_path(&objects))?;
        for tweet in all
            .iter()
            .filter(|t| rows.iter().any(|r| r.tweet_id == t.id))
            .take(cli.show)
        {
            println!("{}: {}", tweet.id, tweet.tokens.join(" "));
            if let Some(caption) = &tweet.caption {
                println!("  caption: {caption}");
            }
            for r in rows.iter().filter(|r| r.tweet_id == tweet.id) {
                let found_by = format!(
                    "<- {} \"{}\" ({:.2})",
                    r.query_kind.name(),
                    r.query,
                    r.similarity
                );
                match (r.region(), r.score) {
                    (Some(([x1, y1, x2, y2], _)), Some(score)) => println!(
                        "    object {} {} {score:.2} [{x1:.0}, {y1:.0}, {x2:.0}, {y2:.0}] {found_by}",
                        r.object_id, r.class
                    ),
                    _ => println!(
                        "    caption node {} \"{}\" {found_by}",
                        r.object_id, r.class
                    ),
                }
            }
        }
    }
    Ok(())
}
