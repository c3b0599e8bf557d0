//! `ingest`: reads a dataset's files, validates every record, resolves images, and writes the `tweets`
//! artifact (as parts, see [`crate::store::parts`]) plus a report of rejected records and warnings.
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::dataset::{Captions, Dataset, Source};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::io::{self, Diagnostic, ImageRef, Limits, ParsedFile, RawTweet};
use crate::labels::{EntityType, spans};
use crate::schema::{Artifact, ImageStatus, Split, Tweet};
use crate::stages::Stage;
use crate::store::parts::PartCutter;
use crate::store::{RunOutcome, RunOutputs, RunSpec, Store};

pub const TWEETS: &str = "tweets.parquet";
pub const REPORT: &str = "report.jsonl";
/// A caption shared by more tweets than this says nothing about any one of them: it is dropped. In
/// Twitter-2017, 358 `O_*` tweets share one placeholder caption ("a man is standing on a skateboard in
/// the snow", of what looks like one stand-in image); the next most shared caption has 10 tweets, and
/// in Twitter-2015 21.
pub const MAX_TWEETS_PER_CAPTION: usize = 50;
/// Image file digests by (path, size, mtime, inode).
pub const IMAGE_DIGEST_MEMO: &str = "image-digest";

/// What a rejected record does to the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop at the first bad record; write nothing.
    Fail,
    /// Leave bad records out and list them in `report.jsonl`.
    Skip,
}

impl std::str::FromStr for OnError {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fail" => Ok(Self::Fail),
            "skip" => Ok(Self::Skip),
            _ => Err(Error::Config(format!(
                "--on-error takes fail or skip, not {s:?}"
            ))),
        }
    }
}

/// A read and validated dataset, and the key of the run that would ingest it.
pub struct Plan {
    pub spec: RunSpec,
    tweets: Vec<(Split, RawTweet, Option<PathBuf>)>,
    rejected: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// What happened to captions on the way in (its `captioned` and `uncaptioned` are counted later).
    captions: CaptionCounts,
}

/// Reads and validates every source of the input's dataset, and its captions. With `OnError::Fail` the
/// first bad record is the error.
pub fn plan(input: &Input) -> Result<Plan> {
    let Input {
        dataset,
        on_error,
        limits,
    } = input;
    let mut tweets = Vec::new();
    let mut rejected = Vec::new();
    let mut warnings = Vec::new();
    let mut inputs = BTreeMap::new();
    let mut first_seen: HashMap<String, (PathBuf, usize)> = HashMap::new();

    for source in &dataset.sources {
        let input = format!("{}:{}", source.split.name(), file_name(&source.path));
        inputs.insert(input, Digest::of_file(&source.path)?);
        let ParsedFile {
            tweets: read,
            rejected: mut bad,
            warnings: warn,
        } = io::read(&source.path, source.format, limits)?;
        warnings.extend(warn);
        for tweet in read {
            if let Some((path, line)) = first_seen.get(&tweet.id) {
                bad.push(Diagnostic {
                    path: source.path.clone(),
                    line: tweet.line,
                    record: Some(tweet.id.clone()),
                    message: format!(
                        "duplicate tweet id (first seen at {}:{line})",
                        path.display()
                    ),
                });
                continue;
            }
            first_seen.insert(tweet.id.clone(), (source.path.clone(), tweet.line));
            let image = image_path(dataset, source, &tweet);
            tweets.push((source.split, tweet, image));
        }
        bad.sort_by_key(|d| d.line);
        rejected.extend(bad);
    }
    let captions_file = match &dataset.captions {
        Captions::File(path) => {
            inputs.insert(
                format!("captions:{}", file_name(path)),
                Digest::of_file(path)?,
            );
            Some(path.as_path())
        }
        Captions::Off | Captions::InRecords => None,
    };
    let captions = attach_captions(
        &mut tweets,
        &dataset.captions,
        captions_file,
        limits,
        &mut rejected,
        &mut warnings,
    )?;
    if *on_error == OnError::Fail
        && let Some(first) = rejected.first()
    {
        let more = match rejected.len() - 1 {
            0 => String::new(),
            n => format!(" ({n} more bad records)"),
        };
        return Err(Error::input(
            &first.path,
            first.line,
            format!(
                "{}{more}; --on-error skip (ON_ERROR=skip) leaves bad records out and lists them in {REPORT}",
                first_message(first)
            ),
        ));
    }

    // Images enter the key by (path, size, mtime): cheap to check on every run; their content digests
    // are computed (and memoised) only when the run actually happens.
    let fingerprint = Digest::of_strings(tweets.iter().map(|(_, _, image)| match image {
        Some(path) => {
            stat_fingerprint(path).unwrap_or_else(|| format!("{}\tmissing", path.display()))
        }
        None => String::new(),
    }));
    inputs.insert("images".to_owned(), fingerprint);

    let params = json!({
        "sources": dataset.sources.iter().map(|s| json!({
            "split": s.split.name(),
            "file": file_name(&s.path),
            "format": s.format,
        })).collect::<Vec<_>>(),
        "image_dir": dataset.image_dir.as_ref().map(|d| d.display().to_string()),
        "captions": match &dataset.captions {
            Captions::Off => "none".to_owned(),
            Captions::InRecords => "records".to_owned(),
            Captions::File(path) => file_name(path),
        },
        "max_record_bytes": limits.max_record_bytes,
        "max_tweets_per_caption": MAX_TWEETS_PER_CAPTION,
    });
    Ok(Plan {
        spec: RunSpec {
            stage: IngestStage::NAME.to_owned(),
            version: IngestStage::VERSION,
            params,
            inputs,
        },
        tweets,
        rejected,
        warnings,
        captions,
    })
}

/// Gives each tweet its caption: its record's own, else the captions file's line for its image's file
/// name; `Captions::Off` takes them all away. Bad caption lines join `rejected`; lines for images no
/// tweet has are warnings (counted, not errors). Then the degenerate ones are treated as the data
/// says: a caption shared by over [`MAX_TWEETS_PER_CAPTION`] tweets is dropped, and one word repeated
/// as a list ("person, person, person", 31 captions of the benchmarks) becomes that word once.
fn attach_captions(
    tweets: &mut [(Split, RawTweet, Option<PathBuf>)],
    captions: &Captions,
    file: Option<&Path>,
    limits: &Limits,
    rejected: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) -> Result<CaptionCounts> {
    let mut counts = CaptionCounts::default();
    if *captions == Captions::Off {
        tweets
            .iter_mut()
            .for_each(|(_, tweet, _)| tweet.caption = None);
    }
    if let Some(path) = file {
        let parsed = io::captions::read(path, limits)?;
        rejected.extend(parsed.rejected.iter().cloned());
        warnings.extend(parsed.warnings.iter().cloned());
        let by_image = parsed.by_image();
        let mut used = std::collections::HashSet::new();
        for (_, tweet, image) in tweets.iter_mut() {
            let Some(name) = image
                .as_deref()
                .and_then(Path::file_name)
                .and_then(|n| n.to_str())
            else {
                continue;
            };
            if let Some(caption) = by_image.get(name) {
                used.insert(name.to_owned());
                if tweet.caption.is_none() {
                    tweet.caption = Some(caption.text.clone());
                }
            }
        }
        let unused: Vec<Diagnostic> = parsed
            .captions
            .iter()
            .filter(|c| !used.contains(&c.image))
            .map(|c| Diagnostic {
                path: path.to_owned(),
                line: c.line,
                record: None,
                message: format!("caption of {}, an image no tweet has: unused", c.image),
            })
            .collect();
        counts.unused = unused.len();
        warnings.extend(unused);
    }

    let mut sharing: HashMap<String, usize> = HashMap::new();
    for (_, tweet, _) in tweets.iter() {
        if let Some(caption) = &tweet.caption {
            *sharing.entry(caption.clone()).or_default() += 1;
        }
    }
    for (_, tweet, _) in tweets.iter_mut() {
        let Some(caption) = &tweet.caption else {
            continue;
        };
        if sharing[caption] > MAX_TWEETS_PER_CAPTION {
            tweet.caption = None;
            counts.placeholder += 1;
        } else if let Some(word) = one_word_repeated(caption) {
            tweet.caption = Some(word.to_owned());
            counts.collapsed += 1;
        }
    }
    Ok(counts)
}

/// `word` when `caption` is `word, word, ...` (at least twice).
fn one_word_repeated(caption: &str) -> Option<&str> {
    let mut items = caption.split(',').map(str::trim).filter(|w| !w.is_empty());
    let first = items.next()?;
    let mut repeats = 0;
    for item in items {
        if item != first {
            return None;
        }
        repeats += 1;
    }
    (repeats >= 1 && !first.contains(' ')).then_some(first)
}

fn first_message(d: &Diagnostic) -> String {
    match &d.record {
        Some(id) => format!("tweet {id}: {}", d.message),
        None => d.message.clone(),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn image_path(dataset: &Dataset, source: &Source, tweet: &RawTweet) -> Option<PathBuf> {
    match &tweet.image {
        ImageRef::None => None,
        ImageRef::ById => dataset
            .image_dir
            .as_ref()
            .map(|dir| dir.join(format!("{}.jpg", tweet.id))),
        ImageRef::Path(p) => {
            let p = Path::new(p);
            Some(if p.is_absolute() {
                p.to_owned()
            } else {
                source.path.parent().unwrap_or(Path::new(".")).join(p)
            })
        }
    }
}

/// Executes the plan through the store (a cache hit does no work).
pub fn run_plan(store: &Store, plan: Plan) -> Result<RunOutcome> {
    let spec = plan.spec.clone();
    store.run(&spec, |outputs| {
        let image_digests = ImageDigests::new(store)?;
        let mut rows = Vec::with_capacity(plan.tweets.len());
        let progress = crate::progress::bar(plan.tweets.len() as u64, "ingest");
        for (split, raw, image) in plan.tweets {
            progress.inc(1);
            let (status, digest) = match &image {
                None => (ImageStatus::None, None),
                Some(path) => match image_digests.get(path)? {
                    Some(digest) => (ImageStatus::Ok, Some(digest)),
                    None => (ImageStatus::Missing, None),
                },
            };
            rows.push(Tweet {
                text_digest: Tweet::text_digest_of(&raw.tokens),
                id: raw.id,
                split,
                tokens: raw.tokens,
                labels: raw.labels,
                image_path: image.map(|p| p.display().to_string()),
                image_status: status,
                image_digest: digest,
                caption_digest: raw.caption.as_deref().map(Tweet::caption_digest_of),
                caption: raw.caption,
                source_line: u32::try_from(raw.line).unwrap_or(u32::MAX),
            });
        }
        progress.finish_and_clear();

        const SHOWN: usize = 3;
        for warning in plan.warnings.iter().take(SHOWN) {
            tracing::warn!("{warning}");
        }
        if plan.warnings.len() > SHOWN {
            tracing::warn!(
                "... {} more warnings in {REPORT}",
                plan.warnings.len() - SHOWN
            );
        }
        let counts = serde_json::to_value(counts(
            &rows,
            &plan.rejected,
            &plan.warnings,
            &plan.captions,
        ))?;
        write_parts(outputs, &rows)?;
        let report_path = outputs.path(REPORT);
        write_report(&report_path, &plan.rejected, &plan.warnings)?;
        Ok(counts)
    })
}

/// Writes the tweets as parts cut at content-defined boundaries (see [`PartCutter`]), so that a dump
/// which grows keeps the parts of its unchanged tweets, and every per-record stage after it re-runs
/// only the parts that changed. A dump without tweets is one empty part.
fn write_parts(outputs: &mut RunOutputs<'_>, rows: &[Tweet]) -> Result<()> {
    let mut cutter = PartCutter::default();
    let mut start = 0;
    for (i, tweet) in rows.iter().enumerate() {
        let content = Digest::of_strings([tweet.id.as_str(), &tweet.text_digest.hex()]);
        if cutter.ends_after(&content) || i + 1 == rows.len() {
            Tweet::write(&outputs.part_path(TWEETS), &rows[start..=i])?;
            start = i + 1;
        }
    }
    if rows.is_empty() {
        Tweet::write(&outputs.part_path(TWEETS), &[])?;
    }
    Ok(())
}

fn write_report(path: &Path, rejected: &[Diagnostic], warnings: &[Diagnostic]) -> Result<()> {
    let mut file = std::io::BufWriter::new(fs::File::create(path).at(path)?);
    let tagged = rejected
        .iter()
        .map(|d| ("rejected", d))
        .chain(warnings.iter().map(|d| ("warning", d)));
    for (severity, d) in tagged {
        let line = json!({
            "severity": severity,
            "path": d.path,
            "line": d.line,
            "record": d.record,
            "message": d.message,
        });
        writeln!(file, "{line}").at(path)?;
    }
    file.into_inner()
        .map_err(|e| Error::Io {
            path: path.to_owned(),
            source: e.into_error(),
        })?
        .sync_all()
        .at(path)
}

/// What ingest counts: tweets, tokens and entities per split (conlleval-style chunks), image statuses,
/// rejected records and warnings.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub tweets: usize,
    pub splits: BTreeMap<String, SplitCounts>,
    pub images: ImageCounts,
    pub captions: CaptionCounts,
    pub rejected: usize,
    pub warnings: usize,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CaptionCounts {
    /// Tweets with a caption, and without one.
    pub captioned: usize,
    pub uncaptioned: usize,
    /// Lines of the captions file for images that no tweet has (warnings in the report).
    pub unused: usize,
    /// Tweets whose caption was dropped: shared by over `MAX_TWEETS_PER_CAPTION` tweets.
    pub placeholder: usize,
    /// Tweets whose caption was one word repeated as a list, kept as that word once.
    pub collapsed: usize,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SplitCounts {
    pub tweets: usize,
    pub labelled: usize,
    pub tokens: usize,
    pub entities: usize,
    pub entities_per_type: BTreeMap<String, usize>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageCounts {
    pub ok: usize,
    pub missing: usize,
    pub none: usize,
}

fn counts(
    rows: &[Tweet],
    rejected: &[Diagnostic],
    warnings: &[Diagnostic],
    captions: &CaptionCounts,
) -> Counts {
    let mut splits = BTreeMap::new();
    for split in Split::ALL {
        let in_split: Vec<&Tweet> = rows.iter().filter(|t| t.split == split).collect();
        if in_split.is_empty() {
            continue;
        }
        let mut per_type: BTreeMap<String, usize> = EntityType::ALL
            .iter()
            .map(|t| (t.name().to_owned(), 0))
            .collect();
        let mut labelled = 0;
        for tweet in &in_split {
            if let Some(labels) = &tweet.labels {
                labelled += 1;
                for span in spans(labels) {
                    *per_type.entry(span.ty.name().to_owned()).or_default() += 1;
                }
            }
        }
        let counts = SplitCounts {
            tweets: in_split.len(),
            labelled,
            tokens: in_split.iter().map(|t| t.tokens.len()).sum(),
            entities: per_type.values().sum(),
            entities_per_type: per_type,
        };
        splits.insert(split.name().to_owned(), counts);
    }
    let images = |status| rows.iter().filter(|t| t.image_status == status).count();
    let captioned = rows.iter().filter(|t| t.caption.is_some()).count();
    Counts {
        tweets: rows.len(),
        splits,
        images: ImageCounts {
            ok: images(ImageStatus::Ok),
            missing: images(ImageStatus::Missing),
            none: images(ImageStatus::None),
        },
        captions: CaptionCounts {
            captioned,
            uncaptioned: rows.len() - captioned,
            ..captions.clone()
        },
        rejected: rejected.len(),
        warnings: warnings.len(),
    }
}

/// Content digests of image files, memoised by (path, size, mtime, inode) so that a re-ingest of a
/// large image folder reads only new or changed files.
struct ImageDigests<'a> {
    memo: crate::store::Memo<'a>,
}

impl<'a> ImageDigests<'a> {
    fn new(store: &'a Store) -> Result<Self> {
        Ok(Self {
            memo: store.memo(IMAGE_DIGEST_MEMO)?,
        })
    }

    /// `None` when the file does not exist (or is not a file).
    fn get(&self, path: &Path) -> Result<Option<Digest>> {
        let Some(fingerprint) = stat_fingerprint(path) else {
            return Ok(None);
        };
        let stat_key = Digest::of_bytes(fingerprint.as_bytes());
        let memoised = self.memo.get(&stat_key)?;
        if let Some(digest) = memoised.and_then(|b| String::from_utf8(b).ok()?.parse().ok()) {
            return Ok(Some(digest));
        }
        let digest = Digest::of_file(path)?;
        self.memo.put(&stat_key, digest.hex().as_bytes())?;
        Ok(Some(digest))
    }
}

/// Path, size, modification time and inode of a regular file, or `None` if there is none: what decides,
/// without reading it, that a file is unchanged.
fn stat_fingerprint(path: &Path) -> Option<String> {
    let meta = fs::metadata(path).ok().filter(fs::Metadata::is_file)?;
    Some(format!(
        "{}\t{}\t{}.{:09}\t{}",
        path.display(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ino()
    ))
}

/// The `ingest` stage: what every later stage does first (a cache hit when nothing changed).
pub struct IngestStage;

/// What ingest reads: a dataset, what to do with its bad records, and how large a record may be.
pub struct Input {
    pub dataset: Dataset,
    pub on_error: OnError,
    pub limits: Limits,
}

impl Stage for IngestStage {
    const NAME: &'static str = "ingest";
    /// Bump when the same input files would give a different `tweets` artifact.
    /// 2: tweets carry captions (`tweets/2`).
    /// 3: the tweets are a list of parts (issue 27).
    const VERSION: u32 = 3;
    const MEMOS: &'static [&'static str] = &[IMAGE_DIGEST_MEMO];
    type Input = Input;
    type Counts = Counts;

    fn headline(c: &Counts) -> String {
        format!("{} tweets, {} rejected", c.tweets, c.rejected)
    }

    /// Reads and validates the whole dataset: its key is made of every file's digest.
    fn spec(input: &Input) -> Result<RunSpec> {
        Ok(plan(input)?.spec)
    }

    fn run(store: &Store, input: &Input) -> Result<RunOutcome> {
        run_plan(store, plan(input)?)
    }
}

/// A few readable lines from a run's counts.
pub fn summary(counts: &Counts) -> String {
    let mut lines = Vec::new();
    for split in Split::ALL.map(Split::name) {
        if let Some(c) = counts.splits.get(split) {
            let per_type = serde_json::to_string(&c.entities_per_type).unwrap_or_default();
            lines.push(format!(
                "  {split:>5}: {} tweets, {} tokens, {} entities {per_type}",
                c.tweets, c.tokens, c.entities
            ));
        }
    }
    let images = &counts.images;
    let captions = &counts.captions;
    lines.push(format!(
        "  images: {} found, {} missing, {} none; captions: {} tweets, {} without ({} placeholders \
         dropped), {} unused lines",
        images.ok,
        images.missing,
        images.none,
        captions.captioned,
        captions.uncaptioned,
        captions.placeholder,
        captions.unused
    ));
    lines.push(format!(
        "  {} records rejected, {} warnings (see {REPORT})",
        counts.rejected, counts.warnings
    ));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::one_word_repeated;

    #[test]
    fn a_list_of_one_word_is_that_word() {
        assert_eq!(one_word_repeated("person, person, person"), Some("person"));
        assert_eq!(one_word_repeated("person, person,"), Some("person"));
        assert_eq!(one_word_repeated("person"), None);
        assert_eq!(one_word_repeated("person, dog"), None);
        assert_eq!(one_word_repeated("a man, a man"), None);
    }
}
