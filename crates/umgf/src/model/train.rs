//! Training and prediction loops for the [`Tagger`]: AdamW, a one-epoch linear warm-up, gradient
//! clipping, model selection and early stopping on dev-set entity F1 only (the test set is never
//! looked at here), and the curve of train loss and dev F1 per epoch.
use std::time::Instant;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::batch::{Example, collate};
use super::optim::AdamW;
use super::tagger::{Tagger, TextMode};
use crate::eval::{EntityCounts, Evaluation, evaluate};
use crate::labels::Tag;
use crate::rng::Rng;
use crate::store::Checkpoints;
use crate::torch::TorchResult;
use crate::{IoContext, Result};

/// Training settings; all of them enter the train stage's key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub seed: u64,
    pub max_epochs: usize,
    /// Stop after this many epochs without a better dev F1.
    pub patience: usize,
    pub batch_size: usize,
    /// Learning rate of the tagger (fusion layers, projections, CRF).
    pub lr: f64,
    /// Learning rate of the encoder (fine-tune mode).
    pub encoder_lr: f64,
    pub clip_norm: f64,
    /// After the warm-up, decay the learning rates linearly to 0 at `max_epochs` (as BERT fine-tuning
    /// usually does) instead of holding them. Left out of the JSON when off, so the run keys of
    /// trainings from before the option existed stay valid.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub linear_decay: bool,
    /// Probability that a training tweet's caption nodes are left out of a batch (caption dropout),
    /// drawn per tweet and batch from the epoch's seed. Left out of the JSON when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub caption_dropout: f64,
}

fn is_zero(p: &f64) -> bool {
    *p == 0.0
}

impl Default for TrainConfig {
    /// At most 10 epochs: the default job's cold run stays under 10 minutes on 2 cores (the frozen
    /// head's dev F1 still rises to epoch 17 of 30: `--max-epochs 30` is the slower, better recipe;
    /// results/README.md, "Choices"). The paper's batch 16; lr 1e-3 for the frozen text head
    /// (results/README.md, "Choices"; before it, 3e-4 was chosen over the paper's 1e-4, which
    /// learns slower from scratch: dev F1 50.4 vs 53.6 after two epochs on Twitter-2017; the
    /// fine-tune recipe keeps 3e-4); encoder lr as usual for BERT fine-tuning.
    fn default() -> Self {
        Self {
            seed: 1,
            max_epochs: 10,
            patience: 4,
            batch_size: 16,
            lr: 1e-3,
            encoder_lr: 3e-5,
            clip_norm: 5.0,
            linear_decay: false,
            caption_dropout: 0.0,
        }
    }
}

/// One epoch of the training curve.
///
/// Wall-clock times are left out of the serialised form: they go into artifacts (metrics.json),
/// which must be byte-identical for the same seed and inputs. The run's manifest records them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub dev_f1: f64,
    #[serde(skip_serializing, default)]
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainReport {
    pub epochs: Vec<EpochLog>,
    /// The epoch whose weights were kept (1-based): the best dev F1.
    pub best_epoch: usize,
    pub best_dev_f1: f64,
    pub stopped_early: bool,
    pub train_tweets: usize,
    pub dev_tweets: usize,
    /// Wall-clock seconds in all (left out of artifacts, see [`EpochLog`]).
    #[serde(skip_serializing, default)]
    pub seconds: f64,
    /// The epoch whose checkpoint this run continued from (0: it started afresh). Left out of
    /// artifacts: a resumed run's must equal an uninterrupted one's.
    #[serde(skip_serializing, default)]
    pub resumed_after: usize,
}

/// Batches per pool sorted by length (see [`length_batches`]).
pub const BUCKET_POOL: usize = 50;

/// Tweets per batch at prediction time.
const PREDICT_BATCH: usize = 64;

/// Tweets predicted at a time when they are streamed: each chunk is sorted by length into batches,
/// so its size bounds memory (a few hundred MB of MPNet states at most) and sets which tweets share
/// a batch. 4096 holds every split of the benchmarks (the largest, Twitter-2015 train, has 4,000
/// tweets), whose batches are then exactly those of a prediction of the whole split at once.
pub const PREDICT_CHUNK: usize = 4096;

/// The tweets that training reads: all in memory (a `Vec`), or streamed from the artifacts.
pub trait Examples {
    /// Number of tweets.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batches of one epoch, each passed to `step` with `rng` (which caption dropout draws
    /// from): the tweets shuffled with `rng`, in batches of `batch_size` tweets of about the same
    /// length, the batches shuffled.
    fn epoch(
        &self,
        batch_size: usize,
        rng: &mut Rng,
        step: &mut dyn FnMut(&[&Example], &mut Rng) -> Result<()>,
    ) -> Result<()>;

    /// Every tweet in a fixed order, a chunk at a time (to predict them).
    fn chunks(&self, each: &mut dyn FnMut(&[Example]) -> Result<()>) -> Result<()>;
}

impl Examples for Vec<Example> {
    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn epoch(
        &self,
        batch_size: usize,
        rng: &mut Rng,
        step: &mut dyn FnMut(&[&Example], &mut Rng) -> Result<()>,
    ) -> Result<()> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        rng.shuffle(&mut order);
        for chunk in length_batches(&mut order, |i| self[i].len(), batch_size, rng) {
            let examples: Vec<&Example> = chunk.iter().map(|&i| &self[i]).collect();
            step(&examples, rng)?;
        }
        Ok(())
    }

    fn chunks(&self, each: &mut dyn FnMut(&[Example]) -> Result<()>) -> Result<()> {
        each(self)
    }
}

/// Length buckets of shuffled tweets `order`: sorted within pools of [`BUCKET_POOL`] batches, so a
/// batch holds tweets of about the same length (half the padded positions of random batches), then
/// cut into batches, the batches shuffled with `rng`.
pub fn length_batches<'a>(
    order: &'a mut [usize],
    len: impl Fn(usize) -> usize,
    batch_size: usize,
    rng: &mut Rng,
) -> Vec<&'a [usize]> {
    for pool in order.chunks_mut(batch_size * BUCKET_POOL) {
        pool.sort_by_key(|&i| len(i));
    }
    let mut chunks: Vec<&[usize]> = order.chunks(batch_size).collect();
    rng.shuffle(&mut chunks);
    chunks
}

/// Where training stands after an epoch: the JSON half of a checkpoint (the tensors are in the file
/// it names).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Progress {
    /// Epochs finished.
    epoch: usize,
    step: usize,
    optimizer_steps: i64,
    log: Vec<EpochLog>,
    /// Each finished epoch's wall-clock seconds (the log leaves them out of its JSON).
    seconds: Vec<f64>,
    best_f1: Option<f64>,
    best_epoch: usize,
    /// Early stopping (or the last epoch) ended training.
    finished: bool,
    /// The tensors: weights `w/<name>`, best weights `best/<name>`, moments `m/<name>`, `v/<name>`.
    tensors: String,
}

const PROGRESS: &str = "progress.json";

/// The random seeds of an epoch: each epoch reseeds, so a run resumed at an epoch boundary draws the
/// same batches and dropout masks as one that never stopped.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64)
}

/// Trains `tagger` on `train`, keeping the weights of the epoch with the best F1 on `dev`.
///
/// With `checkpoints`, the state after every epoch (weights, the best epoch's weights, the
/// optimiser's moments, the curve) is saved there, and a run that finds one continues after its
/// epoch: a training run killed or stopped at any moment resumes where its last epoch ended, with
/// the same result as an uninterrupted run (`tests/kill.rs` checks the bytes).
pub fn train(
    tagger: &mut Tagger,
    train: &dyn Examples,
    dev: &dyn Examples,
    config: &TrainConfig,
    checkpoints: Option<&Checkpoints<'_>>,
) -> Result<TrainReport> {
    if config.batch_size == 0 || config.max_epochs == 0 {
        crate::bail!(Config, "batch size and max epochs must be at least 1");
    }
    let started = Instant::now();
    let fine_tune = tagger.config.mode == TextMode::FineTune;
    let mut opt = AdamW::new(&tagger.vs);
    let steps_per_epoch = train.len().div_ceil(config.batch_size).max(1);
    let warmup = steps_per_epoch;
    let total = steps_per_epoch * config.max_epochs;
    let mut best: Option<(f64, usize, HashMap<String, Tensor>)> = None;
    let mut progress = Progress {
        epoch: 0,
        step: 0,
        optimizer_steps: 0,
        log: Vec::new(),
        seconds: Vec::new(),
        best_f1: None,
        best_epoch: 0,
        finished: false,
        tensors: String::new(),
    };
    let mut resumed_after = 0;
    if let Some(saved) = checkpoints
        .map(|c| resume(c, tagger, &mut opt))
        .transpose()?
        .flatten()
    {
        tracing::info!(
            "resuming from the checkpoint after epoch {} (best dev F1 {:.2} at epoch {})",
            saved.0.epoch,
            saved.0.best_f1.unwrap_or(0.0),
            saved.0.best_epoch
        );
        best = saved.0.best_f1.map(|f1| (f1, saved.0.best_epoch, saved.1));
        resumed_after = saved.0.epoch;
        progress = saved.0;
    }
    while !progress.finished && progress.epoch < config.max_epochs {
        let epoch = progress.epoch + 1;
        let epoch_started = Instant::now();
        tch::manual_seed(epoch_seed(config.seed, epoch) as i64);
        let mut rng = Rng::new(epoch_seed(config.seed, epoch));
        let bar = crate::progress::bar(steps_per_epoch as u64, &format!("epoch {epoch}"));
        let (mut loss_sum, mut batches) = (0.0, 0usize);
        train.epoch(config.batch_size, &mut rng, &mut |examples, rng| {
            let step = progress.step;
            let scale = if step < warmup {
                (step + 1) as f64 / warmup as f64
            } else if config.linear_decay {
                (total - step) as f64 / (total - warmup).max(1) as f64
            } else {
                1.0
            };
            if fine_tune {
                opt.set_lr_group(0, config.encoder_lr * scale);
            }
            opt.set_lr_group(1, config.lr * scale);
            let mut batch = batch_of(tagger, examples);
            if config.caption_dropout > 0.0 {
                drop_caption_nodes(&mut batch, config.caption_dropout, rng);
            }
            let loss = tagger.loss(&batch);
            opt.backward_step_clip_norm(&loss, config.clip_norm);
            let value = loss.double_value(&[]);
            loss_sum += value;
            batches += 1;
            progress.step += 1;
            bar.inc(1);
            let best_f1 = best.as_ref().map_or(0.0, |b| b.0);
            bar.set_message(format!(
                "epoch {epoch} loss {value:.3} best dev F1 {best_f1:.2}"
            ));
            Ok(())
        })?;
        bar.finish_and_clear();
        let dev_f1 = evaluate_set(tagger, dev, &mut |_, _| Ok(()))?.overall.f1;
        let entry = EpochLog {
            epoch,
            train_loss: loss_sum / batches.max(1) as f64,
            dev_f1,
            seconds: epoch_started.elapsed().as_secs_f64(),
        };
        let improved = best.as_ref().is_none_or(|(f1, _, _)| dev_f1 > *f1);
        tracing::info!(
            "epoch {epoch}: train loss {:.4}, dev F1 {dev_f1:.2}{} ({:.1} s)",
            entry.train_loss,
            if improved { " (best so far)" } else { "" },
            entry.seconds
        );
        progress.seconds.push(entry.seconds);
        progress.log.push(entry);
        if improved {
            best = Some((dev_f1, epoch, crate::torch::snapshot(&tagger.vs)));
        }
        progress.epoch = epoch;
        progress.optimizer_steps = opt.steps;
        progress.best_f1 = best.as_ref().map(|b| b.0);
        progress.best_epoch = best.as_ref().map_or(0, |b| b.1);
        progress.finished =
            epoch - progress.best_epoch >= config.patience || epoch == config.max_epochs;
        if let Some(checkpoints) = checkpoints {
            save(
                checkpoints,
                &mut progress,
                tagger,
                &opt,
                best.as_ref().map(|b| &b.2),
            )?;
        }
    }
    let (best_dev_f1, best_epoch, weights) = best.unwrap_or_default();
    crate::torch::restore(&tagger.vs, &weights);
    for (entry, seconds) in progress.log.iter_mut().zip(&progress.seconds) {
        entry.seconds = *seconds;
    }
    Ok(TrainReport {
        stopped_early: progress.log.len() < config.max_epochs,
        epochs: progress.log,
        best_epoch,
        best_dev_f1,
        train_tweets: train.len(),
        dev_tweets: dev.len(),
        seconds: started.elapsed().as_secs_f64(),
        resumed_after,
    })
}

/// Writes the state after `progress.epoch`: the tensors under a new name first, then the progress
/// JSON naming them (the commit point), then the previous tensors are removed.
fn save(
    checkpoints: &Checkpoints<'_>,
    progress: &mut Progress,
    tagger: &Tagger,
    opt: &AdamW,
    best: Option<&HashMap<String, Tensor>>,
) -> Result<()> {
    let previous = std::mem::take(&mut progress.tensors);
    progress.tensors = format!("epoch-{}.safetensors", progress.epoch);
    let mut tensors: Vec<(String, Tensor)> = tagger
        .vs
        .variables()
        .into_iter()
        .map(|(name, t)| (format!("w/{name}"), t))
        .collect();
    if let Some(best) = best {
        tensors.extend(
            best.iter()
                .map(|(n, t)| (format!("best/{n}"), t.shallow_clone())),
        );
    }
    tensors.extend(opt.state());
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    checkpoints.write(&progress.tensors, |path| {
        Tensor::write_safetensors(&tensors, path).torch()
    })?;
    let json = serde_json::to_vec(&*progress)?;
    checkpoints.write(PROGRESS, |path| std::fs::write(path, &json).at(path))?;
    if !previous.is_empty() && previous != progress.tensors {
        checkpoints.remove(&previous)?;
    }
    Ok(())
}

/// The saved progress and best weights, with the tagger's weights and the optimiser restored; `None`
/// without a usable checkpoint (a damaged one is reported and training starts over).
fn resume(
    checkpoints: &Checkpoints<'_>,
    tagger: &mut Tagger,
    opt: &mut AdamW,
) -> Result<Option<(Progress, HashMap<String, Tensor>)>> {
    let path = checkpoints.path(PROGRESS);
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(None);
    };
    let loaded = (|| -> Option<(Progress, BTreeMap<String, Tensor>)> {
        let progress: Progress = serde_json::from_slice(&bytes).ok()?;
        let tensors = Tensor::read_safetensors(checkpoints.path(&progress.tensors)).ok()?;
        Some((progress, tensors.into_iter().collect()))
    })();
    let Some((progress, tensors)) = loaded else {
        tracing::warn!(
            "{}: unreadable checkpoint; training from the start",
            path.display()
        );
        return Ok(None);
    };
    let part = |prefix: &str| -> HashMap<String, Tensor> {
        tensors
            .iter()
            .filter_map(|(n, t)| {
                n.strip_prefix(prefix)
                    .map(|n| (n.to_owned(), t.shallow_clone()))
            })
            .collect()
    };
    let weights = part("w/");
    let complete = tagger
        .vs
        .variables()
        .keys()
        .all(|n| weights.contains_key(n));
    if !complete || !opt.restore(&tensors, progress.optimizer_steps) {
        tracing::warn!(
            "{}: checkpoint of another model; training from the start",
            path.display()
        );
        return Ok(None);
    }
    crate::torch::restore(&tagger.vs, &weights);
    Ok(Some((progress, part("best/"))))
}

/// Caption dropout: each tweet of the batch loses its caption nodes with probability `p` (they are
/// masked out, and so are their links), as a tweet without a caption would have none.
fn drop_caption_nodes(batch: &mut super::batch::Batch, p: f64, rng: &mut Rng) {
    let graph = &mut batch.graph;
    let rows = graph.object_mask.size()[0];
    let dropped: Vec<bool> = (0..rows).map(|_| rng.chance(p)).collect();
    let dropped = Tensor::from_slice(&dropped)
        .to_device(graph.object_mask.device())
        .unsqueeze(1);
    let gone = graph.caption_nodes.logical_and(&dropped);
    graph.object_mask = graph.object_mask.logical_and(&gone.logical_not());
}

fn batch_of(tagger: &Tagger, examples: &[&Example]) -> super::batch::Batch {
    collate(
        examples,
        tagger.config.cached_width(),
        tagger.config.model.visual_dim,
        tagger.pad_id,
        tagger.device(),
    )
}

/// The tags `tagger` predicts for each example, in order (batched by length, so padding stays small).
pub fn predict(tagger: &Tagger, examples: &[Example]) -> Vec<Vec<Tag>> {
    in_batches(tagger, examples, |batch, _| tagger.decode(batch))
}

/// A tweet's predicted tags and, per fusion layer, the gate of each of its links (in the order of
/// [`Example::links`]): how strongly the word took in the linked visual node.
#[derive(Clone, Debug, Default)]
pub struct Prediction {
    pub tags: Vec<Tag>,
    pub gates: Vec<Vec<f32>>,
}

/// Predicts `examples`, keeping the fusion layers' gates on each tweet's links.
pub fn predict_with_gates(tagger: &Tagger, examples: &[Example]) -> Vec<Prediction> {
    in_batches(tagger, examples, |batch, chunk| {
        let (tags, gates) = tagger.decode_with_gates(batch);
        // Each layer's [tweets, words, objects] gates, flattened, with its word and object widths.
        let layers: Vec<(Vec<f32>, usize, usize)> = gates
            .iter()
            .map(|g| {
                let size = g.size();
                let (n, m) = (size[1] as usize, size[2] as usize);
                (
                    Vec::<f32>::try_from(g.flatten(0, -1)).unwrap_or_default(),
                    n,
                    m,
                )
            })
            .collect();
        tags.into_iter()
            .zip(chunk)
            .enumerate()
            .map(|(i, (tags, example))| Prediction {
                tags,
                gates: layers
                    .iter()
                    .map(|(values, n, m)| {
                        let at = |w: u32, o: u32| i * n * m + w as usize * m + o as usize;
                        let gate = |&(w, o): &(u32, u32)| values.get(at(w, o)).copied();
                        example.links.iter().filter_map(gate).collect()
                    })
                    .collect(),
            })
            .collect()
    })
}

/// `decode` over `examples` in batches of similar length; the outputs in the examples' order.
fn in_batches<T: Clone + Default>(
    tagger: &Tagger,
    examples: &[Example],
    mut decode: impl FnMut(&super::batch::Batch, &[&Example]) -> Vec<T>,
) -> Vec<T> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| examples[i].len());
    let mut out = vec![T::default(); examples.len()];
    for chunk in order.chunks(PREDICT_BATCH) {
        let batch: Vec<&Example> = chunk.iter().map(|&i| &examples[i]).collect();
        for (&i, decoded) in chunk.iter().zip(decode(&batch_of(tagger, &batch), &batch)) {
            out[i] = decoded;
        }
    }
    out
}

/// What is done with each chunk of predicted examples and their tags (written out, say).
pub type ChunkSink<'a> = dyn FnMut(&[Example], &[Vec<Tag>]) -> Result<()> + 'a;

/// Predicts `examples` chunk by chunk and scores them against their gold tags (unlabelled ones
/// count as all O), passing each chunk and its predicted tags to `each` (to write them).
pub fn evaluate_set(
    tagger: &Tagger,
    examples: &dyn Examples,
    each: &mut ChunkSink<'_>,
) -> Result<Evaluation> {
    let mut counts = EntityCounts::default();
    examples.chunks(&mut |chunk| {
        let predicted = predict(tagger, chunk);
        for (e, p) in chunk.iter().zip(&predicted) {
            match &e.tags {
                Some(gold) => counts.add(gold, p),
                None => counts.add(&vec![Tag::O; e.len()], p),
            }
        }
        each(chunk, &predicted)
    })?;
    Ok(counts.evaluation())
}

/// Scores `predicted` against the examples' gold tags (unlabelled ones count as all O).
pub fn evaluate_predicted(examples: &[Example], predicted: &[Vec<Tag>]) -> Evaluation {
    let gold: Vec<Vec<Tag>> = examples
        .iter()
        .map(|e| e.tags.clone().unwrap_or_else(|| vec![Tag::O; e.len()]))
        .collect();
    evaluate(&gold, predicted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Tag;
    use crate::schema::{Split, StateValues};
    use tch::Device;

    fn example(caption_nodes: Vec<bool>) -> Example {
        Example {
            tweet_id: "t".into(),
            split: Split::Train,
            words: vec!["w".into(); 2],
            tags: Some(vec![Tag::O; 2]),
            states: StateValues::F32(vec![0.0; 4]),
            shapes: vec![1; 2],
            piece_ids: vec![101, 1, 2, 102],
            word_starts: vec![1, 2],
            objects: vec![vec![0.5; 3]; caption_nodes.len()],
            caption_nodes,
            links: vec![(0, 0)],
        }
    }

    #[test]
    fn an_epoch_in_memory_draws_the_batches_of_before_the_streamed_path() {
        let examples: Vec<Example> = (0..2000)
            .map(|i| {
                let mut e = example(vec![]);
                e.tweet_id = i.to_string();
                e.words = vec!["w".into(); 1 + (i * 7919) % 23];
                e
            })
            .collect();
        let batch_size = 4;
        // The loop of train v5, caption dropout drawing from the same generator per batch.
        let mut rng = Rng::new(epoch_seed(3, 2));
        let mut before = Vec::new();
        let mut order: Vec<usize> = (0..examples.len()).collect();
        rng.shuffle(&mut order);
        for pool in order.chunks_mut(batch_size * BUCKET_POOL) {
            pool.sort_by_key(|&i| examples[i].len());
        }
        let mut chunks: Vec<&[usize]> = order.chunks(batch_size).collect();
        rng.shuffle(&mut chunks);
        for chunk in chunks {
            let drawn: Vec<bool> = chunk.iter().map(|_| rng.chance(0.5)).collect();
            before.push((chunk.to_vec(), drawn));
        }
        let mut rng = Rng::new(epoch_seed(3, 2));
        let mut now = Vec::new();
        examples
            .epoch(batch_size, &mut rng, &mut |batch, rng| {
                let ids = batch
                    .iter()
                    .map(|e| e.tweet_id.parse::<usize>().unwrap())
                    .collect();
                let drawn = batch.iter().map(|_| rng.chance(0.5)).collect();
                now.push((ids, drawn));
                Ok(())
            })
            .unwrap();
        assert_eq!(now, before);
    }

    #[test]
    fn caption_dropout_masks_caption_nodes_only() {
        let (a, b) = (example(vec![false, true]), example(vec![true]));
        let mut batch = super::super::batch::collate(&[&a, &b], 2, 3, 0, Device::Cpu);
        drop_caption_nodes(&mut batch, 1.0, &mut Rng::new(1));
        let mask = Vec::<bool>::try_from(batch.graph.object_mask.flatten(0, -1)).unwrap();
        // Tweet a keeps its image node and loses its caption node; b loses its only node.
        assert_eq!(mask, [true, false, false, false]);
        let mut batch = super::super::batch::collate(&[&a, &b], 2, 3, 0, Device::Cpu);
        drop_caption_nodes(&mut batch, 0.0, &mut Rng::new(1));
        let mask = Vec::<bool>::try_from(batch.graph.object_mask.flatten(0, -1)).unwrap();
        assert_eq!(mask, [true, true, true, false]);
    }
}
