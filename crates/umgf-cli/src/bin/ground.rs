//! `ground`: the targeted visual objects of every tweet (detector + grounding of its noun phrases and
//! the general words), memoised per image and per tweet. Runs ingest and chunk first (cached).
use clap::Parser;
use umgf::schema::{Artifact, GroundedObject, NounPhrase, PhraseSource, Tweet};
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
    /// Print these tweets' objects (and their captions' noun phrases), whether they have any or not
    /// (comma-separated tweet ids; repeatable).
    #[arg(long, value_name = "ID", value_delimiter = ',')]
    show_tweet: Vec<String>,
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
    let phrases = input.phrases;
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

    if cli.show > 0 || !cli.show_tweet.is_empty() {
        let all = Tweet::read(&artifacts.store.blob_path(&tweets))?;
        let rows = GroundedObject::read(&artifacts.store.blob_path(&objects))?;
        let phrases = NounPhrase::read(&artifacts.store.blob_path(&phrases))?;
        let shown: Vec<&Tweet> = if cli.show_tweet.is_empty() {
            all.iter()
                .filter(|t| rows.iter().any(|r| r.tweet_id == t.id))
                .take(cli.show)
                .collect()
        } else {
            cli.show_tweet
                .iter()
                .map(|id| {
                    all.iter()
                        .find(|t| &t.id == id)
                        .ok_or_else(|| anyhow::anyhow!("--show-tweet {id}: no such tweet"))
                })
                .collect::<anyhow::Result<_>>()?
        };
        for tweet in shown {
            show(tweet, &rows, &phrases);
        }
    }
    Ok(())
}

/// One tweet as `--show` prints it: its words, its caption and the caption's noun phrases, then each
/// visual node and the query (noun phrase or general word) that found it, with their similarity.
fn show(tweet: &Tweet, rows: &[GroundedObject], phrases: &[NounPhrase]) {
    println!("{}: {}", tweet.id, tweet.tokens.join(" "));
    if let Some(caption) = &tweet.caption {
        println!("  caption: {caption}");
        let caption_phrases: Vec<&str> = phrases
            .iter()
            .filter(|p| p.tweet_id == tweet.id && p.source == PhraseSource::Caption)
            .map(|p| p.text.as_str())
            .collect();
        println!("  caption phrases: {}", caption_phrases.join(" | "));
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
