//! `chunk`: noun phrases of every tweet of a dataset (ingest and the chunker first, both cached).
use clap::Parser;
use umgf::schema::{Artifact, NounPhrase, PhraseSource, Split, Tweet};
use umgf::stages::Stage;
use umgf::stages::chunk::{self, ChunkStage};
use umgf::stages::ground::GroundParams;

#[derive(Parser, Debug)]
#[command(about = "Noun phrases of every tweet (stage 2 of umgf)")]
struct Cli {
    #[command(flatten)]
    data: umgf_cli::DatasetArgs,
    /// Print the phrases of the first N tweets (of --show-split).
    #[arg(long, default_value_t = 0)]
    show: usize,
    #[arg(long, default_value = "test")]
    show_split: String,
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
    let upstream = run.upstream(&cli.common, GroundParams::default());
    let input = upstream.chunk_input()?;
    let Some(outcome) = umgf_cli::run_sharded::<ChunkStage>(&run, cli.shards.mode(), &input)?
    else {
        return Ok(());
    };
    let phrases = outcome.manifest.output(chunk::NOUN_PHRASES)?.digest;
    let link = run.publish("chunk", &outcome, chunk::NOUN_PHRASES)?;
    let c = ChunkStage::counts(&outcome.manifest)?;
    eprintln!(
        "  {} tweets, {} noun phrases -> {}",
        c.tweets,
        c.phrases,
        link.display()
    );

    if cli.show > 0 {
        let split = Split::parse(&cli.show_split)
            .ok_or_else(|| anyhow::anyhow!("unknown split {}", cli.show_split))?;
        let all = Tweet::read(&artifacts.store.blob_path(&tweets))?;
        let nps = NounPhrase::read(&artifacts.store.blob_path(&phrases))?;
        for tweet in all.iter().filter(|t| t.split == split).take(cli.show) {
            let of = |source: PhraseSource| -> String {
                let mine: Vec<String> = nps
                    .iter()
                    .filter(|p| p.tweet_id == tweet.id && p.source == source)
                    .map(|p| format!("[{}] (head {})", p.text, p.head))
                    .collect();
                mine.join("  ")
            };
            println!(
                "{}: {}\n    {}",
                tweet.id,
                tweet.tokens.join(" "),
                of(PhraseSource::Tweet)
            );
            if let Some(caption) = &tweet.caption {
                println!("  caption: {caption}\n    {}", of(PhraseSource::Caption));
            }
        }
    }
    Ok(())
}
