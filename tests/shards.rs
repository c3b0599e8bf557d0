//! Sharded runs of the per-record stages through `scripts/shards.sh` (docs/cluster.md):
//! chunk, ground and features as 4 shards, once as local processes and once as Slurm
//! array tasks on a one-node cluster this test starts on loopback (tests/slurm/). Each time:
//! - one shard of `chunk` is killed mid-run: the driver must report it and fail, and running it
//!   again must run that shard only;
//! - the merged artifacts must be byte-identical (same digests) to a single process's.
//!
//! The slice: the photo tweets (images, so `ground` and the visual features have work) plus real
//! Twitter-2017 dev tweets; the chunker is the small one (`--chunker-limit`), as in the other tests.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{self, repo};

const SHARDS: u32 = 4;
const SLICE_TWEETS: usize = 120;
/// Each stage and the artifacts it links.
const STAGES: [(&str, &[&str]); 3] = [
    ("chunk", &["noun_phrases.parquet"]),
    ("ground", &["objects.parquet"]),
    (
        "features",
        &["text_features.parquet", "visual_features.parquet"],
    ),
];
/// The shard the test kills.
const VICTIM: u32 = 2;

/// A stage's arguments (besides the stage name) on `dump` in the artifacts folder `artifacts`.
fn stage_args(dump: &Path, artifacts: &Path) -> Vec<String> {
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    [
        "--dataset".into(),
        path(dump),
        "--artifacts".into(),
        path(artifacts),
        "--data-dir".into(),
        path(&common::data_dir()),
        "--models".into(),
        path(&repo().join("models")),
        "--chunker-epochs".into(),
        "1".into(),
        "--chunker-limit".into(),
        "200".into(),
    ]
    .into()
}

fn check(what: &str, out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stderr}",
        out.status
    );
    stderr
}

/// Every stage in one process each, as `make features` runs them; the seconds each took (the first
/// includes training the small chunker).
fn single_process(dump: &Path, artifacts: &Path) -> BTreeMap<&'static str, f64> {
    let mut seconds = BTreeMap::new();
    for (stage, _) in STAGES {
        let started = Instant::now();
        let out = Command::new(common::bin(stage))
            .env(common::NO_USER_STORE.0, common::NO_USER_STORE.1)
            .args(stage_args(dump, artifacts))
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        check(stage, &out);
        seconds.insert(stage, started.elapsed().as_secs_f64());
    }
    seconds
}

/// The driver, as `make <stage> SHARDS=4 [SLURM=1]` runs it.
fn driver(stage: &str, dump: &Path, artifacts: &Path, env: &[(&str, String)]) -> Command {
    let mut command = Command::new(repo().join("scripts/shards.sh"));
    command
        .arg(stage)
        .args(stage_args(dump, artifacts))
        .env("SHARDS", SHARDS.to_string())
        .env("BIN", common::bin(stage).parent().unwrap())
        .env("SHARD_LOGS", artifacts.join("logs"))
        .env("RUST_LOG", "warn")
        .env(common::NO_USER_STORE.0, common::NO_USER_STORE.1)
        .envs(env.iter().map(|(k, v)| (*k, v)));
    command
}

/// The digests of the linked artifacts of every stage.
fn views(artifacts: &Path, dump: &Path) -> BTreeMap<String, String> {
    let label = umgf::dataset::Dataset::resolve(dump.to_str().unwrap(), None, None)
        .unwrap()
        .label;
    let mut digests = BTreeMap::new();
    for (_, names) in STAGES {
        for name in names {
            let link = artifacts.join(&label).join(name);
            let target = std::fs::read_link(&link).unwrap_or_else(|e| panic!("{link:?}: {e}"));
            let digest = target.file_name().unwrap().to_str().unwrap().to_owned();
            digests.insert((*name).to_owned(), digest);
        }
    }
    digests
}

/// How many runs of `stage` the store holds.
fn runs_of(artifacts: &Path, stage: &str) -> usize {
    let runs = artifacts.join("store/runs");
    std::fs::read_dir(&runs)
        .unwrap()
        .filter(|entry| {
            let text = std::fs::read_to_string(entry.as_ref().unwrap().path()).unwrap();
            let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
            manifest["stage"] == stage
        })
        .count()
}

/// Pids of the processes running shard `shard` of a stage in `artifacts`.
fn shard_processes(artifacts: &Path, shard: &str) -> Vec<u32> {
    let artifacts = artifacts.to_str().unwrap();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let has = |s: &str| args.contains(&s.as_bytes());
        if has("--shard") && has(shard) && has(artifacts) {
            pids.push(pid);
        }
    }
    pids
}

/// Waits (up to 5 minutes) for `find` to return something, and returns it.
fn wait_for<T>(what: &str, mut find: impl FnMut() -> Option<T>) -> T {
    // Long enough for the driver to train the small chunker first.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(found) = find() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Seconds per stage: single process, and sharded (shards and merge; `chunk` only re-runs the
/// killed shard, and the chunker was trained before).
type Timings = (BTreeMap<&'static str, f64>, BTreeMap<&'static str, f64>);

/// The whole check, with `env` for the driver and `kill_victim` to kill shard VICTIM of `chunk`
/// once it runs.
fn sharded_equals_single_process(
    env: &[(&str, String)],
    kill_victim: impl FnOnce(&Path),
) -> Timings {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("slice.jsonl");
    common::write_labelled_slice(&dump, SLICE_TWEETS);
    let single = dir.path().join("single");
    let single_seconds = single_process(&dump, &single);
    let expected = views(&single, &dump);

    let sharded = dir.path().join("sharded");
    // The chunker is trained once, where the driver runs (it asks the stage which shards are
    // missing, and that needs the chunker's digest); kill shard VICTIM of `chunk` while it runs.
    let child = driver("chunk", &dump, &sharded, env).output_started();
    kill_victim(&sharded);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a killed shard must fail the run:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("shard {VICTIM}/{SHARDS} did not finish")),
        "the driver names the killed shard:\n{stderr}"
    );
    assert_eq!(runs_of(&sharded, "chunk-shard"), SHARDS as usize - 1);
    assert_eq!(
        runs_of(&sharded, "chunk"),
        0,
        "no merge with a shard missing"
    );

    // Running it again runs the killed shard only, then merges.
    let mut seconds = BTreeMap::new();
    for (stage, _) in STAGES {
        let started = Instant::now();
        let stderr = check(
            stage,
            &driver(stage, &dump, &sharded, env).output().unwrap(),
        );
        seconds.insert(stage, started.elapsed().as_secs_f64());
        let all: Vec<String> = (0..SHARDS).map(|k| k.to_string()).collect();
        let want = if stage == "chunk" {
            format!("shards {VICTIM} of {SHARDS}")
        } else {
            format!("shards {} of {SHARDS}", all.join(","))
        };
        assert!(
            stderr.contains(&want),
            "{stage}: expected {want:?}:\n{stderr}"
        );
        assert_eq!(
            runs_of(&sharded, &format!("{stage}-shard")),
            SHARDS as usize
        );
    }
    assert_eq!(
        views(&sharded, &dump),
        expected,
        "sharded != single process"
    );

    // Once merged, the target is a cache hit: no shard runs again.
    let stderr = check(
        "re-run",
        &driver("features", &dump, &sharded, env).output().unwrap(),
    );
    assert!(!stderr.contains("shards:"), "nothing to shard:\n{stderr}");
    (single_seconds, seconds)
}

trait OutputStarted {
    /// Spawns with stdout and stderr captured, for `wait_with_output`.
    fn output_started(&mut self) -> std::process::Child;
}

impl OutputStarted for Command {
    fn output_started(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}

#[test]
fn local_shards_merge_to_the_single_process_outputs() {
    let env = [("SLURM", "0".to_owned())];
    let seconds = sharded_equals_single_process(&env, |artifacts| {
        let shard = format!("{VICTIM}/{SHARDS}");
        let pid = wait_for("the shard process", || {
            shard_processes(artifacts, &shard).first().copied()
        });
        let killed = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        assert!(killed.unwrap().success());
    });
    eprintln!("local shards, seconds per stage (single process, sharded): {seconds:?}");
}

/// A one-node Slurm cluster on loopback, stopped (its daemons, by pid) when dropped.
struct LoopbackSlurm {
    dir: tempfile::TempDir,
}

impl LoopbackSlurm {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(Self::script())
            .arg("start")
            .arg(dir.path())
            .output()
            .unwrap();
        let cluster = Self { dir };
        check("tests/slurm/cluster.sh start", &out);
        cluster
    }

    fn script() -> PathBuf {
        repo().join("tests/slurm/cluster.sh")
    }

    fn conf(&self) -> String {
        self.dir
            .path()
            .join("slurm.conf")
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// Runs a Slurm client command against this cluster.
    fn client(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .env("SLURM_CONF", self.conf())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for LoopbackSlurm {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn slurm_array_shards_merge_to_the_single_process_outputs() {
    let cluster = LoopbackSlurm::start();
    let env = [
        ("SLURM", "1".to_owned()),
        ("SLURM_CONF", cluster.conf()),
        // One CPU per task, so that two of the four tasks run at once on two cores.
        ("SLURM_CPUS", "1".to_owned()),
        ("SLURM_MEM", "2G".to_owned()),
        ("POLL_SECONDS", "0.2".to_owned()),
    ];
    let seconds = sharded_equals_single_process(&env, |_| {
        // Cancel the array task of shard VICTIM once it is running.
        let task = wait_for("the shard's array task to run", || {
            let queue = cluster.client("squeue", &["-h", "-r", "-n", "umgf-chunk", "-o", "%i %t"]);
            queue.lines().find_map(|line| {
                let (id, state) = line.split_once(' ')?;
                (id.ends_with(&format!("_{VICTIM}")) && state == "R").then(|| id.to_owned())
            })
        });
        cluster.client("scancel", &[&task]);
    });
    eprintln!("slurm shards, seconds per stage (single process, sharded): {seconds:?}");
}
