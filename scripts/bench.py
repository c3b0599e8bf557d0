#!/usr/bin/env python3
"""End-to-end benchmark of the pipeline (`make bench`; a benchmark, not a test).

Prints one Markdown report, each figure a median over --repeats runs:
  1. cold pipeline (ingest, chunk, ground, features, graphs) on Twitter-2015 + Twitter-2017 in a fresh
     store: seconds and peak RSS per stage (each stage is its own process; RSS from wait4);
  2. incremental dump: a cold run on Twitter-2017 train, then the same tweets plus 10% new ones (the first
     tweets of Twitter-2017 dev); its cost as a fraction of the cold run;
  3. no-op re-runs of `make graphs` and `make train` on the user's artifacts (goal: under 1 s each);
  4. seconds per training epoch: baseline and UMGF frozen, UMGF fine-tune (Twitter-2017);
  5. the text and vision comparisons against Python (scripts/bench_text.sh, scripts/bench_vision.sh);
  6. with a Slurm cluster running (SLURM_CONF set), chunk, ground and features as 4 array tasks each
     against one process each.

Fresh stores live under target/umgf-bench/ (disposable). The noun-phrase chunker is trained once per
machine (about 10 minutes), not per dump, so each fresh store gets the trained chunker copied in from the
main store (training it there first if it never was): the cold figures are what a new dump costs.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
STAGES = ["ingest", "chunk", "ground", "features", "graphs"]
DATASETS = ["twitter2015", "twitter2017"]


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def measure(argv, cwd=ROOT):
    """Runs argv to completion; returns (wall seconds, peak RSS in MiB). Exits on failure."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"bench: {' '.join(map(str, argv))} failed ({code}):\n{stderr.decode(errors='replace')}")
    return seconds, usage.ru_maxrss / 1024


def stage(name, dataset, artifacts, *extra):
    return measure([BIN / name, "--dataset", dataset, "--artifacts", artifacts, *extra])


def fresh_store(path, main_store):
    """An empty artifacts folder whose store holds only the trained chunker's runs and blobs."""
    shutil.rmtree(path, ignore_errors=True)
    (path / "store" / "runs").mkdir(parents=True)
    copied = 0
    for manifest in (main_store / "runs").glob("*.json"):
        run = json.loads(manifest.read_text())
        if run.get("stage") != "chunker":
            continue
        shutil.copy2(manifest, path / "store" / "runs" / manifest.name)
        for out in run["outputs"].values():
            digest = out["digest"]
            blob = Path("blobs") / digest[:2] / digest
            (path / "store" / blob).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(main_store / blob, path / "store" / blob)
        copied += 1
    if copied == 0:
        sys.exit("bench: no trained chunker in the main store (make chunker trains it)")


def median(values):
    return statistics.median(values) if values else float("nan")


def cold(work, main_store, repeats):
    """{(dataset, stage): [(seconds, rss)]} over repeats."""
    results = {}
    for r in range(repeats):
        artifacts = work / "cold"
        fresh_store(artifacts, main_store)
        for dataset in DATASETS:
            for name in STAGES:
                s, rss = stage(name, dataset, artifacts)
                log(f"cold {r + 1}/{repeats} {dataset} {name}: {s:.1f} s, {rss:.0f} MiB")
                results.setdefault((dataset, name), []).append((s, rss))
    return results


def conll_records(path):
    """The tweets of a Twitter CoNLL file, each as its lines (IMGID line first)."""
    records, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.startswith("IMGID:") and current:
            records.append(current)
            current = []
        current.append(line)
    if current:
        records.append(current)
    return records


def new_runs(store, before):
    """{stage: work seconds} of the run manifests in `store` that are not in `before` (a set of names)."""
    out = {}
    for path in (store / "runs").glob("*.json"):
        if path.name not in before:
            run = json.loads(path.read_text())
            out[run["stage"]] = out.get(run["stage"], 0.0) + run["seconds"]
    return out


def incremental(work, main_store, data_dir, repeats):
    """A dump as a user runs it, `make features` then `make graphs` (two processes: every stage from
    ingest to graphs): cold on Twitter-2017 train in a fresh store, then on the same tweets plus 10%
    new ones. Returns ({"cold"|"grown": [wall seconds]}, {"cold"|"grown": {stage: [work seconds]}},
    new tweets); a stage's work seconds are its run manifest's (model loading included)."""
    train = conll_records(data_dir / "twitter2017" / "train.txt")
    dev = conll_records(data_dir / "twitter2017" / "valid.txt")
    new = dev[: len(train) // 10]
    dumps = work / "dumps"
    dumps.mkdir(parents=True, exist_ok=True)
    base, grown = dumps / "base.txt", dumps / "grown.txt"
    base.write_text("".join("".join(r) for r in train), encoding="utf-8")
    grown.write_text("".join("".join(r) for r in train + new), encoding="utf-8")
    images = ["--image-dir", str(data_dir / "twitter2017_images")]
    walls, stages = {}, {}
    for r in range(repeats):
        artifacts = work / "incremental"
        fresh_store(artifacts, main_store)
        store = artifacts / "store"
        for label, dump in (("cold", base), ("grown", grown)):
            before = {p.name for p in (store / "runs").glob("*.json")}
            wall = sum(stage(target, str(dump), artifacts, *images)[0] for target in ("features", "graphs"))
            walls.setdefault(label, []).append(wall)
            for name, seconds in new_runs(store, before).items():
                stages.setdefault(label, {}).setdefault(name, []).append(seconds)
        log(f"incremental {r + 1}/{repeats}: cold {walls['cold'][-1]:.1f} s, +{len(new)} tweets {walls['grown'][-1]:.1f} s")
    return walls, stages, len(new)


def shards(work, main_store):
    """Twitter-2017 (all splits) through chunk, ground and features in a fresh store: one process per
    stage, then 4 Slurm array tasks per stage (scripts/shards.sh, merge included) in another fresh
    store. Needs a running Slurm (SLURM_CONF); `tests/slurm/cluster.sh start DIR` starts one here.
    Returns ({stage: (single seconds, sharded seconds)}, whether the merged artifacts are identical)."""
    out = {}
    env = dict(os.environ, SHARDS="4", SLURM="1", SLURM_CPUS="1", SLURM_MEM="4G", POLL_SECONDS="0.5",
               BIN=str(BIN), RUST_LOG="warn")
    for mode in ("single", "sharded"):
        artifacts = work / f"shards-{mode}"
        fresh_store(artifacts, main_store)
        env["SHARD_LOGS"] = str(artifacts / "logs")
        for name in ("chunk", "ground", "features"):
            argv = [BIN / name] if mode == "single" else [ROOT / "scripts" / "shards.sh", name]
            start = time.perf_counter()
            subprocess.run([*argv, "--dataset", "twitter2017", "--artifacts", artifacts], cwd=ROOT, env=env,
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            out.setdefault(name, []).append(time.perf_counter() - start)
            log(f"shards {mode} {name}: {out[name][-1]:.1f} s")
    single, sharded = (work / f"shards-{mode}" / "twitter2017" for mode in ("single", "sharded"))
    same = all(os.path.basename(os.readlink(single / f)) == os.path.basename(os.readlink(sharded / f)) for f in
               ("noun_phrases.parquet", "objects.parquet", "text_features.parquet", "visual_features.parquet"))
    return {name: tuple(v) for name, v in out.items()}, same


def no_op(repeats):
    """{target: [seconds]} for no-op re-runs of make targets on the user's artifacts."""
    results = {}
    for target in ("graphs", "train"):
        measure(["make", "-s", target])  # once, so that the timed runs are re-runs
        for _ in range(repeats):
            s, _ = measure(["make", "-s", target])
            results.setdefault(target, []).append(s)
        log(f"no-op make {target}: {results[target]}")
    return results


def epochs(work):
    """{label: [seconds per epoch]} from short training runs in the cold store (Twitter-2017)."""
    artifacts = work / "cold"
    runs = {
        "baseline frozen": ["--model", "baseline", "--mode", "frozen", "--max-epochs", "3"],
        "umgf frozen": ["--model", "umgf", "--mode", "frozen", "--max-epochs", "3"],
        "umgf fine-tune": ["--model", "umgf", "--mode", "fine-tune", "--max-epochs", "2", "--concat-text",
                           "--encoder-lr", "5e-5", "--linear-decay"],
    }
    results = {}
    for label, args in runs.items():
        stage("train", "twitter2017", artifacts, *args)
        # Epoch timings are in the train run's manifest (artifacts hold no wall-clock times): the run
        # whose metrics.json the view links to.
        digest = os.path.basename(os.readlink(artifacts / "twitter2017" / "model" / "metrics.json"))
        runs = (json.loads(p.read_text()) for p in (artifacts / "store" / "runs").glob("*.json"))
        run = next(r for r in runs if r["stage"] == "train" and r["outputs"]["metrics.json"]["digest"] == digest)
        results[label] = run["counts"]["epoch_seconds"]
        log(f"epochs {label}: {results[label]}")
    return results


def script_table(argv):
    """The Markdown table a comparison script prints (its lines from the first '|' on)."""
    out = subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    lines = out.splitlines()
    first = next((i for i, l in enumerate(lines) if l.startswith("|")), len(lines))
    return "\n".join(lines[max(first - 1, 0):])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--artifacts", type=Path, default=ROOT / "artifacts", help="the main artifacts folder")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: cold,incremental,shards,noop,epochs,text,vision")
    ap.add_argument("--out", type=Path, help="also write the report here")
    args = ap.parse_args()
    # Absolute: the stages and the no-op `make` runs see it through UMGF_DATA_DIR.
    args.data_dir = args.data_dir.resolve()
    skip = set(filter(None, args.skip.split(",")))
    work = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "umgf-bench"
    main_store = args.artifacts / "store"
    os.environ.setdefault("UMGF_DATA_DIR", str(args.data_dir))
    stages = [json.loads(p.read_text()).get("stage") for p in (main_store / "runs").glob("*.json")]
    if "chunker" not in stages:
        measure([BIN / "chunker", "--artifacts", args.artifacts])

    report = [f"## make bench ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, medians of {args.repeats})", ""]
    if "cold" not in skip:
        results = cold(work, main_store, args.repeats)
        report += ["Cold pipeline, fresh store (chunker trained once per machine, copied in):", "",
                   "| dataset | stage | seconds | peak RSS MiB |", "|---|---|---|---|"]
        total = 0.0
        for (dataset, name), runs in results.items():
            s, rss = median([r[0] for r in runs]), median([r[1] for r in runs])
            total += s
            report.append(f"| {dataset} | {name} | {s:.1f} | {rss:.0f} |")
        report += [f"| both | all | {total:.1f} | |", ""]
    if "incremental" not in skip:
        walls, stages, added = incremental(work, main_store, args.data_dir, args.repeats)
        report += [f"Incremental dump: `features` then `graphs` (what `make features` and `make graphs` run: every "
                   f"stage, ingest to graphs, in two processes) on Twitter-2017 train in a fresh store, then on the "
                   f"same tweets plus {added} new ones (10%) in the same store. Per stage, the seconds its run "
                   "took inside the process (model loading included):", "",
                   "| stage | cold seconds | incremental seconds | fraction |", "|---|---|---|---|"]
        order = ["ingest", "chunk", "ground", "features", "visual-features", "graphs"]
        for name in sorted(stages["cold"], key=lambda n: order.index(n) if n in order else len(order)):
            c, i = median(stages["cold"][name]), median(stages["grown"].get(name, [0.0]))
            report.append(f"| {name} | {c:.2f} | {i:.2f} | {i / c:.2f} |")
        c, i = median(walls["cold"]), median(walls["grown"])
        overhead = [i - sum(median(v) for v in stages["grown"].values()),
                    c - sum(median(v) for v in stages["cold"].values())]
        report += [f"| process start, cache checks, exit | {overhead[1]:.2f} | {overhead[0]:.2f} | |",
                   f"| **all (wall, both processes)** | {c:.1f} | {i:.1f} | **{i / c:.2f}** (goal <= 0.15) |", ""]
    if "shards" not in skip and os.environ.get("SLURM_CONF"):
        results, same = shards(work, main_store)
        report += ["Sharded on Slurm: Twitter-2017 (all 4739 tweets) through chunk, ground and features, one "
                   "process per stage against 4 array tasks per stage on the one-node loopback cluster "
                   "(`tests/slurm/cluster.sh`; merge included), each in a fresh store; merged artifacts "
                   f"{'identical' if same else '**not identical**'} to the single process's:", "",
                   "| stage | one process s | 4 Slurm tasks s | ratio |", "|---|---|---|---|"]
        report += [f"| {n} | {a:.1f} | {b:.1f} | {b / a:.2f}x |" for n, (a, b) in results.items()] + [""]
    elif "shards" not in skip:
        report += ["Sharded on Slurm: skipped (no SLURM_CONF; `eval $(tests/slurm/cluster.sh start DIR)` first).", ""]
    if "noop" not in skip:
        results = no_op(args.repeats)
        report += ["No-op re-runs on the user's artifacts:", "", "| command | seconds (goal < 1) |", "|---|---|"]
        report += [f"| make {t} | {median(v):.2f} |" for t, v in results.items()] + [""]
    if "epochs" not in skip:
        results = epochs(work)
        report += ["Training, Twitter-2017 (3373 tweets), seconds per epoch (dev scoring included):", "",
                   "| model | s/epoch |", "|---|---|"]
        report += [f"| {label} | {median(v):.1f} |" for label, v in results.items()] + [""]
    conll = args.data_dir / "twitter2017" / "train.txt"
    if "text" not in skip:
        report += ["Text features vs Python transformers (scripts/bench_text.sh):", "",
                   script_table([ROOT / "scripts" / "bench_text.sh", conll]), ""]
    if "vision" not in skip:
        report += ["Vision vs PIL + PyTorch (scripts/bench_vision.sh):", "",
                   script_table([ROOT / "scripts" / "bench_vision.sh"]), ""]
    text = "\n".join(report)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
