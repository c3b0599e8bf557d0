//! `ground`: the targeted visual objects of every tweet. The detector runs once per distinct image
//! (memoised by image digest + detector digest + detector settings); the grounder then decides which
//! detections the tweet's noun phrases and the general words point at (memoised per tweet), and the
//! best-scoring grounded objects are kept. A tweet whose image is missing or unreadable has no
//! objects; unreadable images are counted and listed in `bad_images.jsonl`.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::digest::{Digest, canonical_json};
use crate::grounding::{
    Candidates, CaptionGrounder, CaptionMatchConfig, CaptionPhrase, ClassMatchConfig,
    ClassMatchGrounder, Grounder, GroundingInput, Match, Query, caption_match_identity,
    class_match_identity,
};
use crate::schema::{
    Artifact, GroundedObject, ImageStatus, NodeKind, NounPhrase, PhraseSource, QueryKind, Tweet,
};
use crate::stages::{ShardedStage, Stage};
use crate::store::{ByParts, MemoStats, RunOutcome, RunSpec, Shard, Store};
use crate::text::encoder::{EncoderFiles, TextEncoder};
use crate::vision::detector::{CenterNet, Detection, DetectorConfig};
use crate::vision::image::load_rgb;
use crate::vision::workers::{ModelPool, default_workers};
use crate::{Error, IoContext, Result};

const STAGE: &str = "ground";
/// 2: query embeddings independent of their batch, detector threads fixed per worker. 3: the text
/// encoder's forward passes have the batch's full row count (filler rows; features version 4). 4: the
/// list of unreadable images is `bad_images.jsonl` (it was `report.jsonl`, the name of ingest's report).
/// 5: `objects/2` (node kinds; caption nodes).
const VERSION: u32 = 5;
/// The detections memo's own version: the detector's code and what an entry holds. Stage version 5
/// left both alone, so entries stay valid.
const DETECTIONS_VERSION: u32 = 4;
pub const OBJECTS: &str = "objects.parquet";
/// One JSON line per unreadable image: its tweet, path and why.
pub const BAD_IMAGES: &str = "bad_images.jsonl";
pub const DETECTIONS_MEMO: &str = "detections";
pub const GROUNDINGS_MEMO: &str = "groundings";
/// Images per memo write (a killed run keeps what it finished).
const IMAGE_CHUNK: usize = 32;
/// Tweets per grounder call.
const TWEET_CHUNK: usize = 256;

/// What `ground` is asked to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroundParams {
    pub detector: DetectorConfig,
    pub grounder: ClassMatchConfig,
    /// Objects kept per image, best detector score first.
    pub max_objects: usize,
    /// Words grounded for every tweet besides its phrases; their objects link to all its words.
    pub general_words: Vec<String>,
    /// The paper's "w/o targeted objects" ablation: when > 0, the objects are the cells of a
    /// `grid` x `grid` split of the image instead (class "grid", found by the general query "grid",
    /// so every word links to every cell); no grounding. Left out of the JSON when 0, so the run
    /// keys from before the option existed stay valid.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub grid: usize,
    /// Visual nodes from the image's caption (see [`CaptionNodes`]). Left out of the JSON when off,
    /// so the run keys from before the option existed stay valid.
    #[serde(default, skip_serializing_if = "CaptionNodes::is_off")]
    pub caption_nodes: CaptionNodes,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Which noun phrases of a tweet's image caption become visual nodes of its graph, beside (or, with
/// no image, instead of) the detected objects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptionNodes {
    /// None.
    #[default]
    Off,
    /// Those the tweet's phrases and general words point at ([`CaptionGrounder`]), at most
    /// `max_objects`: targeted, as UMGF targets objects.
    Targeted,
    /// Those the general words alone point at (person-like caption phrases, linked to every word):
    /// the "general words only" ablation, no tweet phrase queries the caption.
    General,
    /// Every caption phrase, each linked to every word (found by the general query "caption"): the
    /// "no targeting" ablation.
    All,
}

impl CaptionNodes {
    fn is_off(&self) -> bool {
        *self == Self::Off
    }

    /// Whether the caption grounder picks the nodes (and so is part of the run's key).
    fn uses_grounder(self) -> bool {
        matches!(self, Self::Targeted | Self::General)
    }

    const ALL: [Self; 4] = [Self::Off, Self::Targeted, Self::General, Self::All];

    /// The setting's name, as `CAPTION_NODES=` and the run keys write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Targeted => "targeted",
            Self::General => "general",
            Self::All => "all",
        }
    }
}

impl std::str::FromStr for CaptionNodes {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s == "none" {
            return Ok(Self::Off);
        }
        Self::ALL
            .into_iter()
            .find(|nodes| nodes.name() == s)
            .ok_or_else(|| {
                Error::Config(format!(
                    "caption nodes are off, targeted, general or all, not {s:?}"
                ))
            })
    }
}

impl Default for GroundParams {
    fn default() -> Self {
        Self {
            detector: DetectorConfig::default(),
            grounder: ClassMatchConfig::default(),
            max_objects: 4,
            // The paper grounds general words such as "person". With a COCO detector "man",
            // "woman" and "people" name the same class, so one word finds the same objects.
            general_words: vec!["person".to_owned()],
            grid: 0,
            caption_nodes: CaptionNodes::Off,
        }
    }
}

/// The models `ground` uses.
pub struct GroundModels {
    /// `centernet.json`.
    pub detector: PathBuf,
    pub encoder: EncoderFiles,
}

fn spec(
    tweets: Digest,
    phrases: Digest,
    detector: Digest,
    encoder: Digest,
    params: &GroundParams,
) -> RunSpec {
    RunSpec {
        stage: STAGE.to_owned(),
        version: VERSION,
        params: {
            let mut key = json!({
                "params": params,
                "grounder": class_match_identity(&encoder.hex(), &params.grounder),
            });
            if params.caption_nodes.uses_grounder() {
                key["caption_grounder"] =
                    caption_match_identity(&encoder.hex(), &CaptionMatchConfig::default());
            }
            key
        },
        inputs: BTreeMap::from([
            ("tweets".to_owned(), tweets),
            ("noun_phrases".to_owned(), phrases),
            ("detector".to_owned(), detector),
            ("encoder".to_owned(), encoder),
        ]),
    }
}

/// One image's detector result and its memo key (which the grounding key builds on).
struct DetectedImage {
    key: Digest,
    result: ImageResult,
}

/// A tweet with detections to ground its queries to.
struct WorkItem<'a> {
    tweet: &'a Tweet,
    /// The image's detections memo key.
    image_key: Digest,
    width: u32,
    height: u32,
    detections: &'a [Detection],
    queries: Vec<Query>,
}

/// What the detector made of one image (memo payload).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ImageResult {
    Ok {
        width: u32,
        height: u32,
        detections: Vec<Detection>,
    },
    Bad {
        reason: String,
    },
}

fn run(
    store: &Store,
    tweets: Digest,
    phrases: Digest,
    models: &GroundModels,
    params: &GroundParams,
) -> Result<RunOutcome> {
    let digests = ModelDigests::of(models)?;
    let spec = spec(tweets, phrases, digests.detector, digests.encoder, params);
    let plan = ByParts {
        inputs: &["tweets", "noun_phrases"],
        work_counts: &[
            "images_detected",
            "images_memoised",
            "tweets_grounded",
            "tweets_grounding_memoised",
        ],
        joined: &[BAD_IMAGES],
        ..ByParts::default()
    };
    store.run_by_parts(&spec, &plan, |part, outputs| {
        let tweets = Tweet::read(&store.blob_path(&part["tweets"]))?;
        let phrases = NounPhrase::read(&store.blob_path(&part["noun_phrases"]))?;
        let grounded = ground_all(store, &tweets, &phrases, models, digests, params)?;
        let rows = grounded.rows;
        GroundedObject::write(&outputs.path(OBJECTS), &rows)?;
        write_report(&outputs.path(BAD_IMAGES), &grounded.report)?;
        let with_image = tweets
            .iter()
            .filter(|t| t.image_status == ImageStatus::Ok)
            .count();
        let objects: std::collections::HashSet<(&str, u32)> = rows
            .iter()
            .map(|r| (r.tweet_id.as_str(), r.object_id))
            .collect();
        let tweets_with_objects: std::collections::HashSet<&str> =
            objects.iter().map(|(t, _)| *t).collect();
        let caption_nodes: std::collections::HashSet<(&str, u32)> = rows
            .iter()
            .filter(|r| r.kind == NodeKind::Caption)
            .map(|r| (r.tweet_id.as_str(), r.object_id))
            .collect();
        let tweets_with_caption_nodes: std::collections::HashSet<&str> =
            caption_nodes.iter().map(|(t, _)| *t).collect();
        Ok(serde_json::to_value(Counts {
            tweets: tweets.len(),
            tweets_with_image: with_image,
            bad_images: grounded.report.len(),
            tweets_with_objects: tweets_with_objects.len(),
            objects: objects.len(),
            groundings: rows.len(),
            images_detected: grounded.image_stats.computed,
            images_memoised: grounded.image_stats.reused,
            tweets_grounded: grounded.ground_stats.computed,
            tweets_grounding_memoised: grounded.ground_stats.reused,
            caption_nodes: caption_nodes.len(),
            tweets_with_caption_nodes: tweets_with_caption_nodes.len(),
        })?)
    })
}

/// Shard `shard` of the run (see [`Shard`]): detects and grounds the tweets whose image it owns, by
/// image digest (so an image shared by several tweets is detected in one shard only), into the
/// memos; the whole run then merges. Tweets without an image have no work here.
fn run_shard(
    store: &Store,
    tweets: Digest,
    phrases: Digest,
    models: &GroundModels,
    params: &GroundParams,
    shard: Shard,
) -> Result<RunOutcome> {
    let digests = ModelDigests::of(models)?;
    let whole = spec(tweets, phrases, digests.detector, digests.encoder, params);
    store.run(&shard.spec(&whole), |_| {
        let mut tweets = Tweet::read(&store.blob_path(&tweets))?;
        tweets.retain(|t| t.image_digest.is_some_and(|d| shard.owns(&d)));
        let phrases = NounPhrase::read(&store.blob_path(&phrases))?;
        let grounded = ground_all(store, &tweets, &phrases, models, digests, params)?;
        Ok(json!({
            "tweets": tweets.len(),
            "images_detected": grounded.image_stats.computed,
            "images_memoised": grounded.image_stats.reused,
            "tweets_grounded": grounded.ground_stats.computed,
            "tweets_grounding_memoised": grounded.ground_stats.reused,
        }))
    })
}

/// The digests of the models `ground` uses (hashing the weights once per run).
#[derive(Clone, Copy)]
struct ModelDigests {
    detector: Digest,
    encoder: Digest,
}

impl ModelDigests {
    fn of(models: &GroundModels) -> Result<Self> {
        Ok(Self {
            detector: CenterNet::digest(&models.detector)?,
            encoder: models.encoder.digest()?,
        })
    }
}

/// What grounding some tweets gives.
struct Grounded {
    /// The objects rows, tweet by tweet.
    rows: Vec<GroundedObject>,
    /// One line per tweet whose image could not be read.
    report: Vec<serde_json::Value>,
    image_stats: MemoStats,
    ground_stats: MemoStats,
}

/// Detects objects in the tweets' images and grounds their queries (both memoised).
fn ground_all(
    store: &Store,
    tweets: &[Tweet],
    phrases: &[NounPhrase],
    models: &GroundModels,
    digests: ModelDigests,
    params: &GroundParams,
) -> Result<Grounded> {
    let (images, image_stats) = detect_images(
        store,
        tweets,
        &models.detector,
        digests.detector,
        &params.detector,
    )?;
    // The tweets' own phrases are its queries (its caption's phrases are not).
    let mut by_tweet: HashMap<&str, Vec<&NounPhrase>> = HashMap::new();
    for p in phrases.iter().filter(|p| p.source == PhraseSource::Tweet) {
        by_tweet.entry(p.tweet_id.as_str()).or_default().push(p);
    }

    // Tweets with an image that has detections are the only grounding work.
    let mut work: Vec<WorkItem<'_>> = Vec::new();
    let mut grid_rows = Vec::new();
    let mut report = Vec::new();
    for tweet in tweets {
        let Some(image) = tweet.image_digest.and_then(|d| images.get(&d)) else {
            continue;
        };
        match &image.result {
            ImageResult::Bad { reason } => report.push(json!({
                "tweet_id": tweet.id,
                "image": tweet.image_path,
                "reason": reason,
            })),
            ImageResult::Ok { width, height, .. } if params.grid > 0 => {
                grid_rows.extend(grid_cells(&tweet.id, *width, *height, params.grid));
            }
            ImageResult::Ok {
                width,
                height,
                detections,
            } if !detections.is_empty() => work.push(WorkItem {
                tweet,
                image_key: image.key,
                width: *width,
                height: *height,
                detections,
                queries: queries_of(by_tweet.get(tweet.id.as_str()), &params.general_words),
            }),
            ImageResult::Ok { .. } => {}
        }
    }
    let (matches, ground_stats) =
        ground_tweets(store, &work, &models.encoder, digests.encoder, params)?;

    let mut rows = grid_rows;
    for (item, matches) in work.iter().zip(&matches) {
        rows.extend(select(item, matches, params.max_objects));
    }
    let caption_stats = if params.caption_nodes.is_off() {
        MemoStats::default()
    } else {
        let items = caption_items(tweets, phrases, &by_tweet, params);
        let (matches, stats) =
            ground_captions(store, &items, &models.encoder, digests.encoder, params)?;
        // A tweet's caption nodes are numbered after its image's objects.
        let mut next_id: HashMap<&str, u32> = HashMap::new();
        for r in &rows {
            let next = next_id.entry(r.tweet_id.as_str()).or_default();
            *next = (*next).max(r.object_id + 1);
        }
        let mut caption_rows = Vec::new();
        for (item, matches) in items.iter().zip(&matches) {
            let first = next_id.get(item.tweet.id.as_str()).copied().unwrap_or(0);
            caption_rows.extend(select_caption_nodes(
                item,
                matches,
                params.max_objects,
                first,
            ));
        }
        rows.extend(caption_rows);
        stats
    };
    let ground_stats = MemoStats {
        reused: ground_stats.reused + caption_stats.reused,
        computed: ground_stats.computed + caption_stats.computed,
    };
    Ok(Grounded {
        rows,
        report,
        image_stats,
        ground_stats,
    })
}

/// Detector results of every distinct image of the tweets, by image digest (with the memo key).
fn detect_images(
    store: &Store,
    tweets: &[Tweet],
    model: &Path,
    model_digest: Digest,
    config: &DetectorConfig,
) -> Result<(HashMap<Digest, DetectedImage>, MemoStats)> {
    let mut images: Vec<(Digest, PathBuf)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for tweet in tweets {
        if let (ImageStatus::Ok, Some(digest), Some(path)) =
            (tweet.image_status, tweet.image_digest, &tweet.image_path)
            && seen.insert(digest)
        {
            images.push((digest, PathBuf::from(path)));
        }
    }
    let settings = canonical_json(config);
    let keys: Vec<Digest> = images
        .iter()
        .map(|(d, _)| {
            // The stage version too: a change to the detector's code must not reuse old results.
            Digest::of_strings([
                d.hex(),
                model_digest.hex(),
                settings.clone(),
                DETECTIONS_VERSION.to_string(),
            ])
        })
        .collect();
    let model = model.to_owned();
    let device = crate::torch::default_device();
    let detectors = ModelPool::new(default_workers(device), move || {
        CenterNet::load(&model, device)
    });
    let bar = crate::progress::bar(images.len() as u64, "detect");
    let (payloads, stats) =
        store
            .memo(DETECTIONS_MEMO)?
            .get_or_compute(&keys, IMAGE_CHUNK, |missing| {
                detectors.map(missing, |detector, &i| {
                    let result = match load_rgb(&images[i].1) {
                        Ok(rgb) => ImageResult::Ok {
                            width: rgb.width(),
                            height: rgb.height(),
                            detections: tch::no_grad(|| detector.detect(&rgb, config))?,
                        },
                        Err(bad) => ImageResult::Bad { reason: bad.0 },
                    };
                    bar.inc(1);
                    serde_json::to_vec(&result).map_err(|e| Error::Store(e.to_string()))
                })
            })?;
    bar.finish_and_clear();
    stats.log("detected objects in", "images");
    let mut out = HashMap::new();
    for (((digest, _), key), payload) in images.iter().zip(&keys).zip(&payloads) {
        let result: ImageResult = serde_json::from_slice(payload)
            .map_err(|e| Error::Store(format!("memo {DETECTIONS_MEMO}: {e}")))?;
        out.insert(*digest, DetectedImage { key: *key, result });
    }
    Ok((out, stats))
}

/// A visual node of a tweet's graph, as its rows of `objects` describe it.
enum Node<'a> {
    /// A region of the tweet's image: its box, the image's size, the detector's score and class.
    Image {
        bbox: [f32; 4],
        size: (u32, u32),
        score: f32,
        class: &'a str,
    },
    /// A noun phrase of the tweet's caption, and its word range there.
    Caption { phrase: &'a str, span: (u32, u32) },
}

/// The row saying that `query` found node `object_id` of the tweet (with that similarity).
fn node_row(
    tweet_id: &str,
    object_id: u32,
    node: &Node<'_>,
    query: &Query,
    similarity: f32,
) -> GroundedObject {
    let (kind, bbox, size, score, class, caption_span) = match *node {
        Node::Image {
            bbox,
            size,
            score,
            class,
        } => (
            NodeKind::Image,
            Some(bbox),
            Some(size),
            Some(score),
            class,
            None,
        ),
        Node::Caption { phrase, span } => (NodeKind::Caption, None, None, None, phrase, Some(span)),
    };
    GroundedObject {
        tweet_id: tweet_id.to_owned(),
        object_id,
        kind,
        x1: bbox.map(|b| b[0]),
        y1: bbox.map(|b| b[1]),
        x2: bbox.map(|b| b[2]),
        y2: bbox.map(|b| b[3]),
        image_width: size.map(|s| s.0),
        image_height: size.map(|s| s.1),
        score,
        class: class.to_owned(),
        caption_start: caption_span.map(|s| s.0),
        caption_end: caption_span.map(|s| s.1),
        query: query.text.clone(),
        query_kind: query.kind,
        phrase_start: query.span.map(|s| s.0),
        phrase_end: query.span.map(|s| s.1),
        similarity,
    }
}

/// The cells of a `k` x `k` grid over a `width` x `height` image, as objects 0..k*k (row by row)
/// found by the general query "grid".
fn grid_cells(tweet_id: &str, width: u32, height: u32, k: usize) -> Vec<GroundedObject> {
    let k = k as u32;
    let edge = |i: u32, side: u32| (i * side / k) as f32;
    let grid = Query {
        text: "grid".to_owned(),
        head: "grid".to_owned(),
        kind: QueryKind::General,
        span: None,
    };
    (0..k * k)
        .map(|cell| {
            let (row, col) = (cell / k, cell % k);
            let node = Node::Image {
                bbox: [
                    edge(col, width),
                    edge(row, height),
                    edge(col + 1, width),
                    edge(row + 1, height),
                ],
                size: (width, height),
                score: 1.0,
                class: "grid",
            };
            node_row(tweet_id, cell, &node, &grid, 1.0)
        })
        .collect()
}

/// A tweet's queries: its noun phrases, then the general words.
fn queries_of(phrases: Option<&Vec<&NounPhrase>>, general_words: &[String]) -> Vec<Query> {
    let phrases = phrases.into_iter().flatten().map(|p| Query {
        text: p.text.clone(),
        head: p.head.clone(),
        kind: QueryKind::Phrase,
        span: Some((p.start, p.end)),
    });
    let general = general_words.iter().map(|w| Query {
        text: w.clone(),
        head: w.clone(),
        kind: QueryKind::General,
        span: None,
    });
    phrases.chain(general).collect()
}

/// The grounder's matches for each work item, memoised per tweet by its queries and image.
fn ground_tweets(
    store: &Store,
    work: &[WorkItem<'_>],
    encoder: &EncoderFiles,
    encoder_digest: Digest,
    params: &GroundParams,
) -> Result<(Vec<Vec<Match>>, MemoStats)> {
    let identity = canonical_json(&class_match_identity(
        &encoder_digest.hex(),
        &params.grounder,
    ));
    let keys: Vec<Digest> = work
        .iter()
        .map(|item| {
            Digest::of_strings([
                identity.clone(),
                item.image_key.hex(),
                canonical_json(&item.queries),
            ])
        })
        .collect();
    memoised_matches(
        store,
        &keys,
        || {
            let encoder = TextEncoder::load_for_inference(encoder, crate::torch::default_device())?;
            ClassMatchGrounder::new(encoder, encoder_digest.hex(), params.grounder)
        },
        |i| GroundingInput {
            candidates: Candidates::Detections {
                image: Path::new(work[i].tweet.image_path.as_deref().unwrap_or_default()),
                detections: work[i].detections,
            },
            queries: &work[i].queries,
        },
    )
}

/// The matches of grounding problem `i` for each of `keys`, from the groundings memo where they are;
/// the others are grounded by the grounder `make` builds (the first time one is needed) on `input(i)`.
fn memoised_matches<'a, G: Grounder>(
    store: &Store,
    keys: &[Digest],
    make: impl FnOnce() -> Result<G>,
    input: impl Fn(usize) -> GroundingInput<'a>,
) -> Result<(Vec<Vec<Match>>, MemoStats)> {
    let mut make = Some(make);
    let mut grounder: Option<G> = None;
    let (payloads, stats) =
        store
            .memo(GROUNDINGS_MEMO)?
            .get_or_compute(keys, TWEET_CHUNK, |missing| {
                let grounder = match (&mut grounder, make.take()) {
                    (Some(g), _) => g,
                    (None, Some(make)) => grounder.insert(make()?),
                    (None, None) => unreachable!("the grounder is made once, then kept"),
                };
                let inputs: Vec<GroundingInput<'a>> = missing.iter().map(|&i| input(i)).collect();
                tch::no_grad(|| grounder.ground(&inputs))?
                    .iter()
                    .map(|m| serde_json::to_vec(m).map_err(|e| Error::Store(e.to_string())))
                    .collect()
            })?;
    let matches = payloads
        .iter()
        .map(|p| {
            serde_json::from_slice(p)
                .map_err(|e| Error::Store(format!("memo {GROUNDINGS_MEMO}: {e}")))
        })
        .collect::<Result<Vec<Vec<Match>>>>()?;
    Ok((matches, stats))
}

/// The rows of one tweet: its `max_objects` best-scoring grounded detections, one row per query that
/// found each.
fn select(item: &WorkItem<'_>, matches: &[Match], max_objects: usize) -> Vec<GroundedObject> {
    let detections = item.detections;
    let mut grounded: Vec<usize> = matches.iter().map(|m| m.candidate).collect();
    grounded.sort_unstable();
    grounded.dedup();
    // Best score first; equal scores keep the detector's order.
    grounded.sort_by(|&a, &b| {
        detections[b]
            .score
            .total_cmp(&detections[a].score)
            .then(a.cmp(&b))
    });
    grounded.truncate(max_objects);
    let mut rows = Vec::new();
    for (object_id, &d) in grounded.iter().enumerate() {
        let detection = &detections[d];
        let b = &detection.bbox;
        let node = Node::Image {
            bbox: [b.x1, b.y1, b.x2, b.y2],
            size: (item.width, item.height),
            score: detection.score,
            class: detection.label(),
        };
        for m in matches.iter().filter(|m| m.candidate == d) {
            let query = &item.queries[m.query];
            rows.push(node_row(
                &item.tweet.id,
                object_id as u32,
                &node,
                query,
                m.similarity,
            ));
        }
    }
    rows
}

/// A tweet whose caption has noun phrases, to ground its queries to them.
struct CaptionItem<'a> {
    tweet: &'a Tweet,
    phrases: Vec<CaptionPhrase>,
    /// Each phrase's word range in the caption.
    spans: Vec<(u32, u32)>,
    queries: Vec<Query>,
}

/// The tweets with caption phrases, their phrases and their queries (with `CaptionNodes::General`,
/// the general words only; with `CaptionNodes::All`, the one general query "caption", which finds
/// every phrase).
fn caption_items<'a>(
    tweets: &'a [Tweet],
    phrases: &[NounPhrase],
    own_phrases: &HashMap<&str, Vec<&NounPhrase>>,
    params: &GroundParams,
) -> Vec<CaptionItem<'a>> {
    let mut by_tweet: HashMap<&str, Vec<&NounPhrase>> = HashMap::new();
    for p in phrases.iter().filter(|p| p.source == PhraseSource::Caption) {
        by_tweet.entry(p.tweet_id.as_str()).or_default().push(p);
    }
    tweets
        .iter()
        .filter_map(|tweet| {
            let mine = by_tweet.get(tweet.id.as_str())?;
            let queries = match params.caption_nodes {
                CaptionNodes::All => vec![Query {
                    text: "caption".to_owned(),
                    head: "caption".to_owned(),
                    kind: QueryKind::General,
                    span: None,
                }],
                CaptionNodes::General => queries_of(None, &params.general_words),
                _ => queries_of(own_phrases.get(tweet.id.as_str()), &params.general_words),
            };
            Some(CaptionItem {
                tweet,
                phrases: mine
                    .iter()
                    .map(|p| CaptionPhrase {
                        text: p.text.clone(),
                        head: p.head.clone(),
                    })
                    .collect(),
                spans: mine.iter().map(|p| (p.start, p.end)).collect(),
                queries,
            })
        })
        .collect()
}

/// The caption grounder's matches for each item, memoised per tweet by its queries and caption
/// phrases; with `CaptionNodes::All`, every phrase matched by the one general query, no grounder.
fn ground_captions(
    store: &Store,
    items: &[CaptionItem<'_>],
    encoder: &EncoderFiles,
    encoder_digest: Digest,
    params: &GroundParams,
) -> Result<(Vec<Vec<Match>>, MemoStats)> {
    if params.caption_nodes == CaptionNodes::All {
        let every = |item: &CaptionItem<'_>| {
            (0..item.phrases.len())
                .map(|candidate| Match {
                    candidate,
                    query: 0,
                    similarity: 1.0,
                })
                .collect()
        };
        return Ok((items.iter().map(every).collect(), MemoStats::default()));
    }
    let identity = canonical_json(&caption_match_identity(
        &encoder_digest.hex(),
        &CaptionMatchConfig::default(),
    ));
    let keys: Vec<Digest> = items
        .iter()
        .map(|item| {
            Digest::of_strings([
                identity.clone(),
                canonical_json(&item.phrases),
                canonical_json(&item.queries),
            ])
        })
        .collect();
    let (matches, stats) = memoised_matches(
        store,
        &keys,
        || {
            Ok(CaptionGrounder::new(
                TextEncoder::load_for_inference(encoder, crate::torch::default_device())?,
                encoder_digest.hex(),
                CaptionMatchConfig::default(),
            ))
        },
        |i| GroundingInput {
            candidates: Candidates::CaptionPhrases(&items[i].phrases),
            queries: &items[i].queries,
        },
    )?;
    stats.log("grounded to their captions", "tweets");
    Ok((matches, stats))
}

/// The caption nodes of one tweet: its `max_nodes` caption phrases that queries point at, best match
/// first (then in caption order), numbered from `first`, one row per query that found each.
fn select_caption_nodes(
    item: &CaptionItem<'_>,
    matches: &[Match],
    max_nodes: usize,
    first: u32,
) -> Vec<GroundedObject> {
    let best = |c: usize| {
        matches
            .iter()
            .filter(|m| m.candidate == c)
            .map(|m| m.similarity)
            .fold(f32::NEG_INFINITY, f32::max)
    };
    let mut nodes: Vec<usize> = matches.iter().map(|m| m.candidate).collect();
    nodes.sort_unstable();
    nodes.dedup();
    nodes.sort_by(|&a, &b| best(b).total_cmp(&best(a)).then(a.cmp(&b)));
    nodes.truncate(max_nodes);
    let mut rows = Vec::new();
    for (k, &c) in nodes.iter().enumerate() {
        let node = Node::Caption {
            phrase: &item.phrases[c].text,
            span: item.spans[c],
        };
        for m in matches.iter().filter(|m| m.candidate == c) {
            let query = &item.queries[m.query];
            rows.push(node_row(
                &item.tweet.id,
                first + k as u32,
                &node,
                query,
                m.similarity,
            ));
        }
    }
    rows
}

fn write_report(path: &Path, lines: &[serde_json::Value]) -> Result<()> {
    let mut text = String::new();
    for line in lines {
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).at(path)
}

/// What `ground` counts.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub tweets: usize,
    pub tweets_with_image: usize,
    /// Images that could not be decoded (listed in `bad_images.jsonl`).
    pub bad_images: usize,
    pub tweets_with_objects: usize,
    pub objects: usize,
    /// (object, phrase or general word) links: an object found by two phrases counts twice.
    pub groundings: usize,
    /// Images the detector ran on, and taken from the memo.
    pub images_detected: usize,
    pub images_memoised: usize,
    /// Tweets grounded, and taken from the memo (to their image and to their caption each count).
    pub tweets_grounded: usize,
    pub tweets_grounding_memoised: usize,
    /// Caption nodes, and the tweets that have some (a node found by two queries counts once).
    pub caption_nodes: usize,
    pub tweets_with_caption_nodes: usize,
}

/// The `ground` stage: each tweet's targeted objects.
pub struct GroundStage;

/// What grounding reads: the tweets, their noun phrases, the models and the settings.
pub struct Input {
    pub tweets: Digest,
    pub phrases: Digest,
    pub models: GroundModels,
    pub params: GroundParams,
}

impl Stage for GroundStage {
    const NAME: &'static str = STAGE;
    const VERSION: u32 = VERSION;
    const MEMOS: &'static [&'static str] = &[DETECTIONS_MEMO, GROUNDINGS_MEMO];
    type Input = Input;
    type Counts = Counts;

    fn headline(c: &Counts) -> String {
        format!(
            "{} tweets, {} with an image, {} objects",
            c.tweets, c.tweets_with_image, c.objects
        )
    }

    fn spec(input: &Input) -> Result<RunSpec> {
        let digests = ModelDigests::of(&input.models)?;
        Ok(spec(
            input.tweets,
            input.phrases,
            digests.detector,
            digests.encoder,
            &input.params,
        ))
    }

    fn run(store: &Store, input: &Input) -> Result<RunOutcome> {
        run(
            store,
            input.tweets,
            input.phrases,
            &input.models,
            &input.params,
        )
    }
}

impl ShardedStage for GroundStage {
    fn run_shard(store: &Store, input: &Input, shard: Shard) -> Result<RunOutcome> {
        run_shard(
            store,
            input.tweets,
            input.phrases,
            &input.models,
            &input.params,
            shard,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Split;
    use crate::vision::detector::BBox;

    #[test]
    fn select_keeps_the_best_grounded_objects_with_every_query() {
        let tweet = Tweet {
            id: "t".into(),
            split: Split::Dump,
            tokens: vec!["my".into(), "dog".into()],
            text_digest: Tweet::text_digest_of(&[]),
            caption: None,
            caption_digest: None,
            labels: None,
            image_path: None,
            image_status: ImageStatus::Ok,
            image_digest: None,
            source_line: 1,
        };
        let det = |class, score| Detection {
            class,
            score,
            bbox: BBox {
                x1: 0.0,
                y1: 0.0,
                x2: 1.0,
                y2: 1.0,
            },
        };
        // person 0.9 (general word), dog 0.5 (phrase), person 0.3 (general word), cat 0.8 (nothing)
        let detections = [det(0, 0.9), det(16, 0.5), det(0, 0.3), det(15, 0.8)];
        let queries = queries_of(None, &["person".into()]);
        let m = |candidate, query| Match {
            candidate,
            query,
            similarity: 1.0,
        };
        let matches = [m(0, 0), m(1, 0), m(2, 0)];
        let item = WorkItem {
            tweet: &tweet,
            image_key: Digest::of_bytes(b"image"),
            width: 10,
            height: 10,
            detections: &detections,
            queries,
        };
        let rows = select(&item, &matches, 2);
        let got: Vec<(u32, &str, Option<f32>)> = rows
            .iter()
            .map(|r| (r.object_id, r.class.as_str(), r.score))
            .collect();
        assert_eq!(got, vec![(0, "person", Some(0.9)), (1, "dog", Some(0.5))]);
    }
}
