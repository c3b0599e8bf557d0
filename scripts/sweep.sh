#!/usr/bin/env bash
# A dev-set sweep: trains one model per line of train options and records its dev F1 only (the test
# score is never read here: recipes are chosen on dev, then run on test by scripts/results.sh).
#
#   DATASET=twitter2017 SEED=1 scripts/sweep.sh "--lr 1e-3" "--lr 3e-4 --lstm-hidden 0"
#
# Appends one JSON line per run to $OUT (default results/dev_sweep.jsonl): dataset, seed, options,
# dev F1, epochs (best), seconds in all and per epoch (from the run's manifest). Cached like every
# stage: a line already trained is a cache hit and is recorded again at no cost.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CARGO_TARGET_DIR:-target}/release
DATASET=${DATASET:-twitter2017}
SEED=${SEED:-1}
OUT=${OUT:-results/dev_sweep.jsonl}
mkdir -p "$(dirname "$OUT")"

for args in "$@"; do
  log="/tmp/umgf-sweep-$DATASET-$SEED-$(echo "$args" | tr -c 'a-zA-Z0-9.-' _).log"
  # shellcheck disable=SC2086 # the options are words
  "$BIN/train" --dataset "$DATASET" --seed "$SEED" $args >/dev/null 2>"$log" \
    || { tail -5 "$log"; exit 1; }
  python3 - "$DATASET" "$SEED" "$args" >>"$OUT" <<'PY'
import glob, json, os, sys
dataset, seed, args = sys.argv[1], int(sys.argv[2]), sys.argv[3]
metrics = f"artifacts/{dataset}/model/metrics.json"
m = json.load(open(metrics))
digest = os.path.basename(os.readlink(metrics))
run = next(r for r in map(lambda p: json.load(open(p)), glob.glob("artifacts/store/runs/*.json"))
           if r["stage"] == "train" and r["outputs"]["metrics.json"]["digest"] == digest)
epochs = run["counts"]["epoch_seconds"]
t = m["training"]
print(json.dumps({
    "dataset": dataset, "seed": seed, "args": args, "dev_f1": round(m["dev"]["f1"], 2),
    "best_epoch": t["best_epoch"], "epochs": len(t["epochs"]),
    "dev_curve": [round(e["dev_f1"], 2) for e in t["epochs"]],
    "seconds": round(run["seconds"], 1), "seconds_per_epoch": round(sum(epochs) / len(epochs), 1),
}))
PY
  tail -1 "$OUT"
done
