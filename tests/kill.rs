//! Kill-anywhere: every stage is SIGKILLed at random moments; after each kill the store must verify,
//! and every run that then goes to completion must publish outputs byte-identical to an uninterrupted
//! run's (same digests). `UMGF_KILLS` kills per stage (default 2 in the test suite; `make kill-test`
//! runs 50), `UMGF_KILL_SEED` picks the moments.
//!
//! The slice: skimage's photos with hand-labelled tweets plus real labelled Twitter-2017 dev tweets,
//! through ingest, a small chunker (so that the suite does not train the full one), chunk, ground,
//! text and visual features, graphs, train (2 epochs, frozen) and predict. The child process is this
//! test binary (the ignored test `kill::child_runs_stage`) calling the same library entry points the
//! stage binaries call: the store publication under test is the library's.
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use umgf::Digest;
use umgf::model::tagger::{ModelKind, TextMode};
use umgf::model::train::TrainConfig;
use umgf::rng::Rng;
use umgf::stages::chunk::{self, ChunkStage};
use umgf::stages::chunker::{self, ChunkerStage};
use umgf::stages::graphs::{self, GraphsStage};
use umgf::stages::ingest::{self, IngestStage};
use umgf::stages::predict::{self, PredictStage};
use umgf::stages::text_features::{self, TextFeaturesStage};
use umgf::stages::train::{self, TrainStage};
use umgf::stages::train::{DatasetArtifacts, TrainParams};
use umgf::stages::{Stage, ground, visual_features};
use umgf::store::{RunOutcome, Store};
use umgf::text::chunker::ChunkerTraining;
use umgf::text::encoder::default_files;

use crate::common::{self, repo};

const STAGES: [&str; 9] = [
    "ingest",
    "chunker",
    "chunk",
    "ground",
    "features",
    "visual_features",
    "graphs",
    "train",
    "predict",
];
/// The signal `Child::kill` sends (POSIX fixes its number).
const SIGKILL: i32 = 9;
const CHILD_TEST: &str = "kill::child_runs_stage";
const ENV_STAGE: &str = "UMGF_KILL_CHILD_STAGE";
const ENV_STORE: &str = "UMGF_KILL_CHILD_STORE";
const ENV_DUMP: &str = "UMGF_KILL_CHILD_DUMP";

/// Each stage's published outputs: output name -> content digest.
type Outputs = BTreeMap<String, Digest>;

fn outputs(outcome: &RunOutcome) -> Outputs {
    outcome
        .manifest
        .outputs
        .iter()
        .map(|(name, entry)| (name.clone(), entry.digest))
        .collect()
}

/// Runs the pipeline on `dump` through `last` (earlier stages are cache hits once done) and returns
/// the outputs of `last`.
fn run_through(store: &Store, dump: &Path, last: &str) -> Outputs {
    let encoder = default_files(&repo().join("models"));
    let mut done = BTreeMap::new();
    let mut step = |name: &str, outcome: RunOutcome| -> bool {
        done.insert(name.to_owned(), outputs(&outcome));
        if name == last {
            announce(DONE_MARK);
        }
        name == last
    };
    let begin = |name: &str| {
        if name == last {
            announce(START_MARK);
        }
    };
    begin("ingest");
    let input = ingest::Input {
        dataset: umgf::dataset::Dataset::resolve(dump.to_str().unwrap(), None, None).unwrap(),
        on_error: ingest::OnError::Fail,
    };
    let ingested = IngestStage::run(store, &input).unwrap();
    let tweets = ingested.manifest.output(ingest::TWEETS).unwrap().digest;
    if step("ingest", ingested) {
        return done.remove(last).unwrap();
    }
    let small_chunker = ChunkerTraining {
        epochs: 1,
        limit: 200,
        ..ChunkerTraining::default()
    };
    begin("chunker");
    let input = chunker::Input {
        files: chunker::ChunkerInputs::new(&common::data_dir(), encoder.clone()),
        training: small_chunker,
    };
    let trained = ChunkerStage::run(store, &input).unwrap();
    let model = trained.manifest.output(chunker::MODEL).unwrap().digest;
    if step("chunker", trained) {
        return done.remove(last).unwrap();
    }
    begin("chunk");
    let input = chunk::Input {
        tweets,
        chunker: model,
        encoder: encoder.clone(),
    };
    let chunked = ChunkStage::run(store, &input).unwrap();
    let phrases = chunked.manifest.output(chunk::NOUN_PHRASES).unwrap().digest;
    if step("chunk", chunked) {
        return done.remove(last).unwrap();
    }
    begin("ground");
    let grounded = common::ground(store, tweets, phrases, &ground::GroundParams::default());
    let objects = grounded.manifest.output(ground::OBJECTS).unwrap().digest;
    if step("ground", grounded) {
        return done.remove(last).unwrap();
    }
    begin("features");
    let input = text_features::Input {
        tweets,
        encoder: encoder.clone(),
        params: text_features::TextFeatureParams::default(),
    };
    let text = TextFeaturesStage::run(store, &input).unwrap();
    let text_features = text
        .manifest
        .output(text_features::TEXT_FEATURES)
        .unwrap()
        .digest;
    if step("features", text) {
        return done.remove(last).unwrap();
    }
    begin("visual_features");
    let visual = common::visual_features(store, tweets, objects);
    let visual_features = visual
        .manifest
        .output(visual_features::VISUAL_FEATURES)
        .unwrap()
        .digest;
    if step("visual_features", visual) {
        return done.remove(last).unwrap();
    }
    begin("graphs");
    let edges = GraphsStage::run(store, &graphs::Input { tweets, objects }).unwrap();
    let graph_edges = edges.manifest.output(graphs::EDGES).unwrap().digest;
    if step("graphs", edges) {
        return done.remove(last).unwrap();
    }
    let inputs = DatasetArtifacts {
        tweets,
        text_features,
        visual_features,
        graph_edges,
    };
    let params = TrainParams {
        dataset: "kill".into(),
        kind: ModelKind::Umgf,
        mode: TextMode::Frozen,
        model: Default::default(),
        training: TrainConfig {
            max_epochs: 2,
            batch_size: 8,
            ..TrainConfig::default()
        },
        features: text_features::TextFeatureParams::default(),
    };
    begin("train");
    let input = train::Input {
        data: inputs,
        encoder: encoder.clone(),
        params,
    };
    let trained = TrainStage::run(store, &input).unwrap();
    let model = predict::ModelFiles {
        config: store.blob_path(&trained.manifest.output(train::CONFIG).unwrap().digest),
        weights: store.blob_path(&trained.manifest.output(train::MODEL).unwrap().digest),
    };
    if step("train", trained) {
        return done.remove(last).unwrap();
    }
    begin("predict");
    let input = predict::Input {
        model,
        data: inputs,
        dataset: "kill".into(),
        encoder,
        which: predict::Which::All,
    };
    let predicted = PredictStage::run(store, &input).unwrap();
    step("predict", predicted);
    done.remove(last).expect("a known stage")
}

/// Written by the child to its stdout when the stage under test starts its own work (every earlier
/// stage is a cache hit by then) and when that work returns, so that kill moments fall in the stage's
/// work, not in process start, model loading or exit.
const START_MARK: &str = "umgf-kill: stage starts";
const DONE_MARK: &str = "umgf-kill: stage done";

/// Writes `mark` to stdout in a child (past libtest's output capture, which only takes `print!`).
/// After the start mark the child waits for the harness's go (a line on stdin): the harness's clock
/// then starts no later than the work does, whatever the pipe's latency, so that a moment within the
/// work's duration is never past its end.
fn announce(mark: &str) {
    use std::io::{BufRead, Write};
    if std::env::var_os(ENV_STAGE).is_some() {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{mark}").unwrap();
        out.flush().unwrap();
        if mark == START_MARK {
            std::io::stdin()
                .lock()
                .read_line(&mut String::new())
                .unwrap();
        }
    }
}

/// Not a test: the child process the harness kills. Runs the pipeline through one stage.
#[test]
#[ignore = "child process of kill::stages_survive_being_killed_anywhere"]
fn child_runs_stage() {
    let var = |name: &str| std::env::var(name).expect("run by the kill harness");
    let store = Store::open(var(ENV_STORE)).unwrap();
    run_through(&store, Path::new(&var(ENV_DUMP)), &var(ENV_STAGE));
}

/// A child running one stage: the moment its stage started work (None: it exited first), and the
/// moment that work returns, once it has.
struct Running {
    child: Child,
    started: Option<Instant>,
    done: std::sync::mpsc::Receiver<Instant>,
}

fn spawn(stage: &str, store: &Path, dump: &Path) -> Running {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([CHILD_TEST, "--exact", "--ignored", "--quiet"])
        .env(ENV_STAGE, stage)
        .env(ENV_STORE, store)
        .env(ENV_DUMP, dump)
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Reads the child's stdout to its end (so that it never blocks on a full pipe) and reports each
    // mark as soon as it arrives.
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (done_tx, done) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let tx = if line.contains(START_MARK) {
                &started_tx
            } else if line.contains(DONE_MARK) {
                &done_tx
            } else {
                continue;
            };
            let _ = tx.send(Instant::now());
        }
    });
    let mut go = child.stdin.take().unwrap();
    let started = started_rx.recv().ok().map(|_| {
        use std::io::Write;
        let started = Instant::now();
        go.write_all(b"go\n").unwrap();
        started
    });
    Running {
        child,
        started,
        done,
    }
}

/// Runs `stage` in a child process to completion; returns how long its own work took (between the
/// marks).
fn complete(stage: &str, store: &Path, dump: &Path) -> Duration {
    let mut running = spawn(stage, store, dump);
    let status = running.child.wait().unwrap();
    assert!(status.success(), "{stage}: child failed ({status})");
    let started = running.started.expect("the child announces its stage");
    let done = running.done.recv().expect("the child announces its end");
    done - started
}

/// A copy of a store in which every file is a hard link: blobs, manifests and memo entries are
/// immutable once published, so the copy costs no data.
fn link_copy(from: &Path, to: &Path) {
    for entry in walk(from) {
        let rel = entry.strip_prefix(from).unwrap();
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::hard_link(&entry, &dest).unwrap();
    }
    for dir in ["tmp", "locks", "runs", "blobs", "memo"] {
        std::fs::create_dir_all(to.join(dir)).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if !path.starts_with(dir.join("tmp")) && !path.starts_with(dir.join("locks")) {
                files.push(path);
            }
        }
    }
    files
}

fn verify(store: &Path, what: &str) {
    let report = Store::open(store).unwrap().verify().unwrap();
    assert!(report.is_valid(), "{what}: {:?}", report.problems);
}

#[test]
fn stages_survive_being_killed_anywhere() {
    let kills: usize = std::env::var("UMGF_KILLS").map_or(2, |v| v.parse().unwrap());
    let seed: u64 = std::env::var("UMGF_KILL_SEED").map_or(1, |v| v.parse().unwrap());
    let tweets: usize = std::env::var("UMGF_KILL_TWEETS").map_or(40, |v| v.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("slice.jsonl");
    common::write_labelled_slice(&dump, tweets);

    // The uninterrupted run: each stage's outputs and how long its own work takes.
    let reference = dir.path().join("reference");
    let mut expected = BTreeMap::new();
    let mut took = BTreeMap::new();
    for stage in STAGES {
        took.insert(stage, complete(stage, &reference, &dump));
        let store = Store::open(&reference).unwrap();
        expected.insert(stage, run_through(&store, &dump, stage));
    }

    // Killed runs: each stage starts from a store where every earlier stage is done (a hard-link
    // copy of `before`); kills accumulate in it until a run finishes on its own, then a fresh copy
    // is taken. After the kills, one run to completion.
    let mut rng = Rng::new(seed);
    let before = dir.path().join("before");
    Store::open(&before).unwrap();
    let (mut total_kills, mut total_finished_alone, mut completions) = (0, 0, 0);
    for stage in STAGES {
        let mut attempt = 0;
        let mut store = None::<PathBuf>;
        // Runs that finish before their moment do not count: tries go on until `kills` SIGKILLs
        // (bounded, in case a stage is too quick to catch).
        let (mut stage_kills, mut finished_alone) = (0, 0);
        // The work's duration varies with the load beside the test (the suite runs tests in
        // parallel): a run that finishes before its moment shows the work can be quicker than the
        // uninterrupted run measured, and later moments are drawn over its duration instead.
        let mut shortest = took[stage];
        for kill in 0..kills * 4 {
            if stage_kills == kills {
                break;
            }
            let current = store.get_or_insert_with(|| {
                attempt += 1;
                let path = dir.path().join(format!("{stage}-{attempt}"));
                link_copy(&before, &path);
                path
            });
            // A moment uniform over the stage's own work, as long as the quickest run of it seen.
            let after = shortest.mul_f64(rng.unit());
            let mut running = spawn(stage, current, &dump);
            if let Some(started) = running.started {
                std::thread::sleep((started + after).saturating_duration_since(Instant::now()));
            }
            // A kill after the work returned lands in process exit: it counts as a finished run.
            let mut work_done_at = running.done.try_recv().ok();
            running.child.kill().unwrap(); // SIGKILL; harmless if it has already exited
            let status = running.child.wait().unwrap();
            let killed = work_done_at.is_none() && status.signal() == Some(SIGKILL);
            if killed {
                stage_kills += 1;
            }
            verify(current, &format!("{stage} after try {}", kill + 1));
            if !killed {
                // The child has exited, so its done mark (if any) has arrived or never will.
                let work_done = work_done_at.is_some();
                work_done_at = work_done_at.or_else(|| running.done.recv().ok());
                if let (Some(started), Some(done_at)) = (running.started, work_done_at) {
                    shortest = shortest.min(done_at - started);
                }
                assert!(
                    work_done || status.success(),
                    "{stage}: child failed ({status})"
                );
                finished_alone += 1;
                let done = run_through(&Store::open(&*current).unwrap(), &dump, stage);
                assert_eq!(done, expected[stage], "{stage}: outputs differ");
                completions += 1;
                store = None;
            }
        }
        if let Some(current) = store {
            complete(stage, &current, &dump);
            verify(&current, &format!("{stage} completed"));
            let done = run_through(&Store::open(&current).unwrap(), &dump, stage);
            assert_eq!(done, expected[stage], "{stage}: outputs differ");
            completions += 1;
        }
        // The next stage starts where this one is done. `before` is a second uninterrupted run, in
        // its own store and processes: determinism means its outputs equal the reference's too.
        complete(stage, &before, &dump);
        let again = run_through(&Store::open(&before).unwrap(), &dump, stage);
        assert_eq!(again, expected[stage], "{stage}: a second run differs");
        eprintln!(
            "{stage}: work {:.3} s uninterrupted, {:.3} s at its quickest; {stage_kills} kills, \
             {finished_alone} runs finished first; {attempt} fresh copies",
            took[stage].as_secs_f64(),
            shortest.as_secs_f64()
        );
        assert_eq!(stage_kills, kills, "{stage}: too quick to kill");
        total_kills += stage_kills;
        total_finished_alone += finished_alone;
    }
    eprintln!(
        "kill-anywhere (seed {seed}, {tweets} dev tweets + the photo tweets): {total_kills} kills, \
         {total_finished_alone} runs finished before their kill, {completions} completions, all \
         byte-identical to the uninterrupted run; store valid after every kill"
    );
}

/// A training run killed after its first epoch's checkpoint continues from it, and ends with the
/// outputs of a run that was never stopped (model weights, metrics and predictions, by digest).
#[test]
fn training_killed_mid_epoch_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("slice.jsonl");
    common::write_labelled_slice(&dump, 40);
    let base = dir.path().join("base");
    run_through(&Store::open(&base).unwrap(), &dump, "graphs");
    let reference = dir.path().join("reference");
    link_copy(&base, &reference);
    let expected = run_through(&Store::open(&reference).unwrap(), &dump, "train");

    for attempt in 1..=5 {
        let store = dir.path().join(format!("killed-{attempt}"));
        link_copy(&base, &store);
        let mut running = spawn("train", &store, &dump);
        // Kill as soon as the first epoch's checkpoint is in: the second epoch is under way.
        let progress = loop {
            let found = std::fs::read_dir(store.join("checkpoints"))
                .into_iter()
                .flatten()
                .map(|e| e.unwrap().path().join("progress.json"))
                .find(|p| p.exists());
            if found.is_some() || running.child.try_wait().unwrap().is_some() {
                break found;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        running.child.kill().unwrap();
        let status = running.child.wait().unwrap();
        if running.done.try_recv().is_ok() || status.signal() != Some(SIGKILL) {
            continue; // it finished first: try again
        }
        let progress = progress.expect("a checkpoint before the kill");
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&progress).unwrap()).unwrap();
        assert_eq!(saved["epoch"], 1, "{saved}");
        verify(&store, "train killed after its first checkpoint");

        let resumed = Store::open(&store).unwrap();
        let done = run_through(&resumed, &dump, "train");
        let manifests: Vec<serde_json::Value> = walk(&store.join("runs"))
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect();
        let manifest = manifests.iter().find(|m| m["stage"] == TrainStage::NAME);
        let manifest = manifest.expect("the train run's manifest");
        assert_eq!(manifest["counts"]["resumed_after_epoch"], 1, "{manifest}");
        assert_eq!(
            done, expected,
            "a resumed run differs from an uninterrupted one"
        );
        assert!(
            !progress.parent().unwrap().exists(),
            "the checkpoint is removed once published"
        );
        return;
    }
    panic!("the training run finished before it could be killed, 5 times");
}
