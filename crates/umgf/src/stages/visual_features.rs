//! `features`, visual part: the EfficientNet-Lite0 feature (pooled, 1280-d) of each tweet's whole
//! image and of every object `ground` kept, memoised per region by (image digest, box, model digest):
//! an image seen before, with the same boxes, is never decoded again.
//!
//! A region is cropped from the decoded image (`floor(x1)..ceil(x2)`, `floor(y1)..ceil(y2)`, clamped,
//! at least one pixel), its shorter side scaled to 256 and its centre 224x224 fed to the model.
//!
//! A caption node's feature is the text encoder's (MiniLM, the grounding encoder, a sentence-embedding
//! model) of its phrase read in its caption: the mean of the last hidden states of the phrase's
//! pieces, memoised per (caption, phrase, encoder).
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Result;
use crate::digest::Digest;
use crate::schema::{Artifact, GroundedObject, ImageStatus, NodeKind, Tweet, VisualFeatures};
use crate::stages::{ShardedStage, Stage};
use crate::store::{ByParts, MemoStats, RunOutcome, RunSpec, Shard, Store};
use crate::text::encoder::{EncoderFiles, TextEncoder};
use crate::text::words::tweet_tokens;
use crate::torch::TorchResult;
use crate::vision::detector::BBox;
use crate::vision::efficientnet::ImageEncoder;
use crate::vision::image::load_rgb;
use crate::vision::workers::{ModelPool, default_workers};
use tch::Kind;

const STAGE: &str = "visual-features";
/// 2: one forward pass per region, one thread per worker (features independent of the batch). 3:
/// caption nodes (`visual_features/2`, with `kind`).
const VERSION: u32 = 3;
/// The region memo's own version (cropping and the image model's code): stage version 3 left it.
const REGION_VERSION: u32 = 2;
/// The caption memo's version (how a phrase's feature is made).
const CAPTION_VERSION: u32 = 1;
pub const VISUAL_FEATURES: &str = "visual_features.parquet";
pub const MEMO: &str = "visual-features";
pub const CAPTION_MEMO: &str = "caption-node-features";
/// Caption sequences per encoder call.
const CAPTION_BATCH: usize = 32;
/// Regions per memo write.
const MEMO_CHUNK: usize = 64;

fn spec(tweets: Digest, objects: Digest, model: Digest, text_encoder: Digest) -> RunSpec {
    RunSpec {
        stage: STAGE.to_owned(),
        version: VERSION,
        params: json!({
            "model": "efficientnet-lite0",
            "regions": "whole image, then each object",
            "crop": "box to whole pixels, shorter side 256, centre 224",
        }),
        inputs: BTreeMap::from([
            ("tweets".to_owned(), tweets),
            ("objects".to_owned(), objects),
            ("model".to_owned(), model),
            ("caption_encoder".to_owned(), text_encoder),
        ]),
    }
}

/// One region to encode.
struct Region<'a> {
    tweet_id: &'a str,
    object_id: Option<u32>,
    image: &'a Path,
    bbox: Option<BBox>,
}

fn run(store: &Store, input: &Input) -> Result<RunOutcome> {
    let model_digest = Digest::of_file(&input.model)?;
    let encoder_digest = input.text_encoder.digest()?;
    let spec = spec(input.tweets, input.objects, model_digest, encoder_digest);
    let plan = ByParts {
        inputs: &["tweets", "objects"],
        ..ByParts::default()
    };
    store.run_by_parts(&spec, &plan, |part, outputs| {
        let tweets = Tweet::read(&store.blob_path(&part["tweets"]))?;
        let objects = GroundedObject::read(&store.blob_path(&part["objects"]))?;
        let (regions, payloads, stats) =
            encode_memoised(store, &tweets, &objects, &input.model, model_digest)?;
        let (nodes, node_payloads, caption_stats) = caption_features(
            store,
            &tweets,
            &objects,
            &input.text_encoder,
            encoder_digest,
        )?;

        // An empty payload marks a region of an unreadable image: it has no row.
        let floats = |p: &[u8]| -> Vec<f32> {
            p.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        let mut rows: Vec<VisualFeatures> = regions
            .iter()
            .zip(&payloads)
            .filter(|(_, p)| !p.is_empty())
            .map(|(r, p)| VisualFeatures {
                tweet_id: r.tweet_id.to_owned(),
                object_id: r.object_id,
                kind: NodeKind::Image,
                features: floats(p),
            })
            .collect();
        let image_rows = rows.len();
        rows.extend(
            nodes
                .iter()
                .zip(&node_payloads)
                .map(|(n, p)| VisualFeatures {
                    tweet_id: n.tweet_id.to_owned(),
                    object_id: Some(n.object_id),
                    kind: NodeKind::Caption,
                    features: floats(p),
                }),
        );
        VisualFeatures::write(&outputs.path(VISUAL_FEATURES), &rows)?;
        let image_rows = &rows[..image_rows];
        Ok(serde_json::to_value(Counts {
            regions: image_rows.len(),
            images: image_rows.iter().filter(|r| r.object_id.is_none()).count(),
            objects: image_rows.iter().filter(|r| r.object_id.is_some()).count(),
            unreadable_regions: regions.len() - image_rows.len(),
            caption_nodes: nodes.len(),
            memo_reused: stats.reused + caption_stats.reused,
            memo_computed: stats.computed + caption_stats.computed,
        })?)
    })
}

/// A caption node to encode: its tweet's caption in words and the phrase's word range in them.
struct CaptionNode<'a> {
    tweet_id: &'a str,
    object_id: u32,
    words: Vec<String>,
    span: (usize, usize),
}

/// The caption nodes of the objects and each one's feature (memo payload: f32 LE), encoding (and
/// storing) those not memoised yet; the encoder is loaded only if one is needed.
fn caption_features<'a>(
    store: &Store,
    tweets: &'a [Tweet],
    objects: &'a [GroundedObject],
    encoder: &EncoderFiles,
    encoder_digest: Digest,
) -> Result<(Vec<CaptionNode<'a>>, Vec<Vec<u8>>, MemoStats)> {
    let captions: HashMap<&str, &str> = tweets
        .iter()
        .filter_map(|t| Some((t.id.as_str(), t.caption.as_deref()?)))
        .collect();
    let mut nodes: Vec<CaptionNode<'a>> = Vec::new();
    for o in objects.iter().filter(|o| o.kind == NodeKind::Caption) {
        // One node per object, however many queries found it.
        if nodes
            .last()
            .is_some_and(|n| n.tweet_id == o.tweet_id && n.object_id == o.object_id)
        {
            continue;
        }
        let (Some(caption), Some(start), Some(end)) = (
            captions.get(o.tweet_id.as_str()),
            o.caption_start,
            o.caption_end,
        ) else {
            return Err(crate::Error::Graph(format!(
                "tweet {}: caption node {} without a caption or a word range",
                o.tweet_id, o.object_id
            )));
        };
        let words = tweet_tokens(caption);
        if start >= end || end as usize > words.len() {
            return Err(crate::Error::Graph(format!(
                "tweet {}: caption node {} has words {start}..{end} of a caption of {}",
                o.tweet_id,
                o.object_id,
                words.len()
            )));
        }
        nodes.push(CaptionNode {
            tweet_id: &o.tweet_id,
            object_id: o.object_id,
            words,
            span: (start as usize, end as usize),
        });
    }
    let keys: Vec<Digest> = nodes
        .iter()
        .map(|n| {
            Digest::of_strings([
                Tweet::text_digest_of(&n.words).hex(),
                format!("{}-{}", n.span.0, n.span.1),
                encoder_digest.hex(),
                CAPTION_VERSION.to_string(),
            ])
        })
        .collect();
    let mut model: Option<TextEncoder> = None;
    let (payloads, stats) =
        store
            .memo(CAPTION_MEMO)?
            .get_or_compute(&keys, MEMO_CHUNK, |missing| {
                let model = match &mut model {
                    Some(m) => m,
                    None => model.insert(TextEncoder::load_for_inference(
                        encoder,
                        crate::torch::default_device(),
                    )?),
                };
                let pieces = missing
                    .iter()
                    .map(|&i| model.pieces.tweet(&nodes[i].words))
                    .collect::<Result<Vec<_>>>()?;
                let sequences: Vec<Vec<u32>> = pieces.iter().map(|p| p.ids.clone()).collect();
                let states = model.piece_states(&sequences, CAPTION_BATCH);
                missing
                    .iter()
                    .zip(&pieces)
                    .zip(&states)
                    .map(|((&i, p), s)| {
                        let (start, end) = nodes[i].span;
                        let from = i64::from(p.word_starts[start]);
                        let to = p
                            .word_starts
                            .get(end)
                            .map_or(p.ids.len() as i64 - 1, |&e| i64::from(e));
                        let mean = s.narrow(0, from, to - from).mean_dim(0, false, Kind::Float);
                        let values = Vec::<f32>::try_from(mean).torch()?;
                        Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect())
                    })
                    .collect()
            })?;
    stats.log("encoded", "caption nodes");
    Ok((nodes, payloads, stats))
}

/// Shard `shard` of the run (see [`Shard`]): encodes the regions of the tweets whose image it owns,
/// by image digest, into the memo; the whole run then merges.
fn run_shard(store: &Store, input: &Input, shard: Shard) -> Result<RunOutcome> {
    let model_digest = Digest::of_file(&input.model)?;
    let encoder_digest = input.text_encoder.digest()?;
    let whole = spec(input.tweets, input.objects, model_digest, encoder_digest);
    store.run(&shard.spec(&whole), |_| {
        let mut tweets = Tweet::read(&store.blob_path(&input.tweets))?;
        tweets.retain(|t| t.image_digest.is_some_and(|d| shard.owns(&d)));
        let objects = GroundedObject::read(&store.blob_path(&input.objects))?;
        let (regions, _, stats) =
            encode_memoised(store, &tweets, &objects, &input.model, model_digest)?;
        Ok(stats.shard_counts(regions.len()))
    })
}

/// The regions of the tweets' images (whole image, then each object) and each one's memo payload,
/// encoding (and storing) those not memoised yet.
fn encode_memoised<'a>(
    store: &Store,
    tweets: &'a [Tweet],
    objects: &'a [GroundedObject],
    model_path: &Path,
    model_digest: Digest,
) -> Result<(Vec<Region<'a>>, Vec<Vec<u8>>, MemoStats)> {
    let mut by_tweet: HashMap<&str, Vec<&GroundedObject>> = HashMap::new();
    for o in objects {
        let mine = by_tweet.entry(o.tweet_id.as_str()).or_default();
        // One region per object, however many queries found it.
        if !mine.iter().any(|m| m.object_id == o.object_id) {
            mine.push(o);
        }
    }
    let mut regions = Vec::new();
    let mut keys = Vec::new();
    for tweet in tweets {
        let (ImageStatus::Ok, Some(digest), Some(path)) =
            (tweet.image_status, tweet.image_digest, &tweet.image_path)
        else {
            continue;
        };
        let whole = std::iter::once((None, None));
        let boxes = by_tweet
            .get(tweet.id.as_str())
            .into_iter()
            .flatten()
            // Image regions only: a caption node has no box (its features are not the image's).
            .filter_map(|o| {
                let ([x1, y1, x2, y2], _) = o.region()?;
                Some((Some(o.object_id), Some(BBox { x1, y1, x2, y2 })))
            });
        for (object_id, bbox) in whole.chain(boxes) {
            keys.push(region_key(digest, bbox, model_digest));
            regions.push(Region {
                tweet_id: &tweet.id,
                object_id,
                image: Path::new(path),
                bbox,
            });
        }
    }

    let model_path = model_path.to_owned();
    let device = crate::torch::default_device();
    let encoders = ModelPool::new(default_workers(device), move || {
        ImageEncoder::load(&model_path, device)
    });
    let bar = crate::progress::bar(regions.len() as u64, "visual features");
    let (payloads, stats) = store
        .memo(MEMO)?
        .get_or_compute(&keys, MEMO_CHUNK, |missing| {
            let out = encode_regions(&encoders, missing.iter().map(|&i| &regions[i]))?;
            bar.inc(missing.len() as u64);
            Ok(out)
        })?;
    bar.finish_and_clear();
    stats.log("encoded", "image regions");
    Ok((regions, payloads, stats))
}

/// The memo key of a region: image content, box (exact float bits), model and stage version.
fn region_key(image: Digest, bbox: Option<BBox>, model: Digest) -> Digest {
    let region = match bbox {
        None => "whole".to_owned(),
        Some(b) => format!(
            "{:08x},{:08x},{:08x},{:08x}",
            b.x1.to_bits(),
            b.y1.to_bits(),
            b.x2.to_bits(),
            b.y2.to_bits()
        ),
    };
    // The region version too: a change to cropping or the model code must not reuse old features.
    Digest::of_strings([image.hex(), region, model.hex(), REGION_VERSION.to_string()])
}

/// Features of regions (memo payloads: 1280 f32 LE, or empty for an unreadable image), each image
/// decoded once by the worker that encodes its regions.
fn encode_regions<'a>(
    encoders: &ModelPool<ImageEncoder>,
    regions: impl Iterator<Item = &'a Region<'a>>,
) -> Result<Vec<Vec<u8>>> {
    let regions: Vec<&Region<'_>> = regions.collect();
    // The regions of each image, in first-seen order.
    let mut images: Vec<(&Path, Vec<usize>)> = Vec::new();
    for (i, r) in regions.iter().enumerate() {
        match images.iter_mut().find(|(p, _)| *p == r.image) {
            Some((_, mine)) => mine.push(i),
            None => images.push((r.image, vec![i])),
        }
    }
    let encoded = encoders.map(&images, |encoder, (path, mine)| {
        let Ok(image) = load_rgb(path) else {
            return Ok(None);
        };
        let boxes: Vec<Option<BBox>> = mine.iter().map(|&i| regions[i].bbox).collect();
        encoder.features(&image, &boxes).map(Some)
    })?;
    let mut payloads = vec![Vec::new(); regions.len()];
    for ((_, mine), features) in images.iter().zip(encoded) {
        let Some(features) = features else { continue };
        for (row, &i) in mine.iter().enumerate() {
            let values = Vec::<f32>::try_from(features.get(row as i64)).torch()?;
            payloads[i] = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        }
    }
    Ok(payloads)
}

/// What `visual-features` counts: regions (whole images and objects) encoded.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub regions: usize,
    pub images: usize,
    pub objects: usize,
    /// Regions of images that could not be decoded, left out.
    pub unreadable_regions: usize,
    /// Caption nodes (their features are the text encoder's).
    pub caption_nodes: usize,
    /// Regions taken from the per-region memo, and computed.
    pub memo_reused: usize,
    pub memo_computed: usize,
}

/// The `visual-features` stage: the image encoder's features of every image and object.
pub struct VisualFeaturesStage;

/// What the visual features are made from: the tweets, their objects, the image encoder, and the
/// text encoder that reads caption nodes.
pub struct Input {
    pub tweets: Digest,
    pub objects: Digest,
    pub model: PathBuf,
    pub text_encoder: EncoderFiles,
}

impl Stage for VisualFeaturesStage {
    const NAME: &'static str = STAGE;
    const VERSION: u32 = VERSION;
    const MEMOS: &'static [&'static str] = &[MEMO, CAPTION_MEMO];
    type Input = Input;
    type Counts = Counts;

    fn headline(c: &Counts) -> String {
        format!(
            "{} objects, {} image regions, {} caption nodes",
            c.objects, c.regions, c.caption_nodes
        )
    }

    fn spec(input: &Input) -> Result<RunSpec> {
        Ok(spec(
            input.tweets,
            input.objects,
            Digest::of_file(&input.model)?,
            input.text_encoder.digest()?,
        ))
    }

    fn run(store: &Store, input: &Input) -> Result<RunOutcome> {
        run(store, input)
    }
}

impl ShardedStage for VisualFeaturesStage {
    fn run_shard(store: &Store, input: &Input, shard: Shard) -> Result<RunOutcome> {
        run_shard(store, input, shard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_keys_differ_by_box() {
        let (image, model) = (Digest::of_bytes(b"i"), Digest::of_bytes(b"m"));
        let a = BBox {
            x1: 0.0,
            y1: 0.0,
            x2: 1.0,
            y2: 1.0,
        };
        let b = BBox { x2: 1.5, ..a };
        assert_ne!(
            region_key(image, Some(a), model),
            region_key(image, Some(b), model)
        );
        assert_ne!(
            region_key(image, None, model),
            region_key(image, Some(a), model)
        );
    }
}
