#!/usr/bin/env bash
# Trains every (model, mode, seed) on Twitter-2015 and Twitter-2017, scores each model on the other
# dataset's test set too (cross-domain), and prints the table of test F1 (mean and spread over seeds)
# that results/README.md shows. Every run is a cached stage: re-running this script only trains what is new.
#
#   scripts/results.sh                      # baseline and umgf, frozen, seeds 1 2 3
#   MODES="fine-tune" SEEDS="1" scripts/results.sh
#
#   SUMMARY_ONLY=1 scripts/results.sh       # only the table, from the runs recorded so far
#   NO_CAPTIONS=1 ...                       # also score each model on its own test set without captions
#
# Writes one JSON line per run to $OUT (default results/runs.jsonl; train metrics, the cross-domain test
# scores, TRAIN_ARGS, the train run's wall time and the size of the text features it read) and prints the
# table from all lines there: one row per model, mode, TRAIN_ARGS and dataset (means over its seeds).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CARGO_TARGET_DIR:-target}/release
MODELS=${MODELS:-"baseline umgf"}
MODES=${MODES:-"frozen"}
SEEDS=${SEEDS:-"1 2 3"}
DATASETS=${DATASETS:-"twitter2015 twitter2017"}
OUT=${OUT:-results/runs.jsonl}
mkdir -p "$(dirname "$OUT")"

other() { if [ "$1" = twitter2015 ]; then echo twitter2017; else echo twitter2015; fi; }

[ -n "${SUMMARY_ONLY:-}" ] && MODES=""
for mode in $MODES; do
  for model in $MODELS; do
    for dataset in $DATASETS; do
      for seed in $SEEDS; do
        "$BIN/train" --dataset "$dataset" --model "$model" --mode "$mode" --seed "$seed" ${TRAIN_ARGS:-} \
          >/dev/null 2>"/tmp/umgf-train-$dataset-$model-$mode-$seed.log" \
          || { tail -5 "/tmp/umgf-train-$dataset-$model-$mode-$seed.log"; exit 1; }
        cross=$(other "$dataset")
        # CROSS=0 skips the cross-domain score (it encodes the other dataset: minutes with MPNet).
        if [ "${CROSS:-1}" != 0 ]; then
          "$BIN/eval" --dataset "$cross" --model "artifacts/$dataset/model" >/dev/null 2>&1
        fi
        # NO_CAPTIONS=1: the model on its own test set with every caption taken away (CAPTIONS=none), as
        # it would meet a new dump; eval gives it the caption nodes it was trained with.
        if [ "${NO_CAPTIONS:-0}" != 0 ]; then
          "$BIN/eval" --dataset "$dataset" --captions none --model "artifacts/$dataset/model" >/dev/null 2>&1
          cp "artifacts/$dataset/eval/metrics.json" /tmp/umgf-no-captions-metrics.json
        fi
        python3 - "$dataset" "$cross" "${CROSS:-1}" "${NO_CAPTIONS:-0}" >>"$OUT" <<'PY'
import json, sys
dataset, cross, with_cross, no_captions = sys.argv[1], sys.argv[2], sys.argv[3] != "0", sys.argv[4] != "0"
import glob, os
metrics = f"artifacts/{dataset}/model/metrics.json"
m = json.load(open(metrics))
c = json.load(open(f"artifacts/{cross}/eval/metrics.json")) if with_cross else None
n = json.load(open("/tmp/umgf-no-captions-metrics.json")) if no_captions else None
t = m["training"]
# Timings are in the run's manifest (artifacts stay byte-reproducible): the train run whose
# metrics.json is the one linked.
digest = os.path.basename(os.readlink(metrics))
run = next(r for r in map(lambda p: json.load(open(p)), glob.glob("artifacts/store/runs/*.json"))
           if r["stage"] == "train" and r["outputs"]["metrics.json"]["digest"] == digest)
epoch_seconds = run["counts"]["epoch_seconds"]
print(json.dumps({
    "train_dataset": dataset, "model": m["model"], "mode": m["mode"], "seed": m["seed"],
    "dev_f1": m["dev"]["f1"], "test_f1": m["test"]["f1"], "cross_dataset": cross,
    "cross_test_f1": c["test"]["f1"] if c else None,
    "no_captions_test_f1": n["test"]["f1"] if n else None, "best_epoch": t["best_epoch"], "epochs": len(t["epochs"]),
    "seconds": run["seconds"], "seconds_per_epoch": sum(epoch_seconds) / len(epoch_seconds),
    # The size of the text features the run read (the artifact, not the per-tweet memo).
    "features_mb": os.path.getsize(
        f"artifacts/store/blobs/{run['inputs']['text_features'][:2]}/{run['inputs']['text_features']}") / 1e6,
    "args": os.environ.get("TRAIN_ARGS", "").strip(),
    # The train stage's code version: runs of different versions are different rows.
    "train_version": run["version"],
}))
PY
        tail -1 "$OUT"
      done
    done
  done
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    args = r.get("args", "")
    version = r.get("train_version", 3)  # lines before the field: version 3 or earlier
    runs[(r["train_dataset"], r["model"], r["mode"], version, args, r["seed"])] = r  # the latest line wins
groups = {}
for (dataset, model, mode, version, args, seed), r in sorted(runs.items()):
    groups.setdefault((model, mode, version, args, dataset), []).append(r)
def cross(rs):
    values = [r['cross_test_f1'] for r in rs if r.get('cross_test_f1') is not None]
    return f"{spread(values)} on {rs[0]['cross_dataset']}" if values else "-"
def spread(values):
    mean = statistics.mean(values)
    if len(values) == 1:
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {statistics.stdev(values):.2f}"
def mean_of(rs, field, fmt):
    values = [r[field] for r in rs if r.get(field) is not None]
    return format(statistics.mean(values), fmt) if values else "-"
print("| model | mode | train v | TRAIN_ARGS | trained on | seeds | dev F1 | test F1 | cross-domain test F1 "
      "| epochs (best) | s/epoch | train s | features MB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (model, mode, version, args, dataset), rs in sorted(groups.items()):
    # "*": a run from before the initial weights were seeded (its seed fixed batch order and dropout only).
    seeds = ','.join(str(r['seed']) + ('*' if r.get('init_seeded') is False else '') for r in rs)
    print(f"| {model} | {mode} | {version} | {'`' + args + '`' if args else ''} | {dataset} | {seeds} "
          f"| {spread([r['dev_f1'] for r in rs])} | {spread([r['test_f1'] for r in rs])} "
          f"| {cross(rs)} "
          f"| {'/'.join(str(r['epochs']) + '(' + str(r['best_epoch']) + ')' for r in rs)} "
          f"| {mean_of(rs, 'seconds_per_epoch', '.1f')} | {mean_of(rs, 'seconds', '.0f')} "
          f"| {mean_of(rs, 'features_mb', '.0f')} |")
PY
