#!/usr/bin/env bash
# Vision throughput, Rust (this project) vs Python (PIL + PyTorch on the same weights and the same
# TF.js detector graph), on the same images and this machine, alternating in one run: decode, CenterNet
# detector + NMS, EfficientNet-Lite0 features of the whole image and each kept box. Prints every JSON
# line, then a table of medians and ratios.
# Usage: scripts/bench_vision.sh [images...]   (make bench-vision; default: skimage's photos)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CARGO_TARGET_DIR:-target}/release
threads=${THREADS:-2}
repeat=${REPEAT:-5}
rounds=${ROUNDS:-3}
if [[ $# -gt 0 ]]; then images=("$@"); else images=(photos/*.png photos/*.jpg); fi

runs=()
for round in $(seq "$rounds"); do
  python=$(.venv-ref/bin/python scripts/reference/bench_vision.py --models models --images "${images[@]}" \
    --repeat "$repeat" --threads "$threads")
  one=$("$bin/bench-vision" --images "${images[@]}" --repeat "$repeat" --workers 1 --threads "$threads")
  workers=$("$bin/bench-vision" --images "${images[@]}" --repeat "$repeat")
  echo "round $round python:          $python"
  echo "round $round umgf, 1 worker:  $one"
  echo "round $round umgf, workers:   $workers"
  runs+=("$python" "$one" "$workers")
done
python3 - "${runs[@]}" <<'PY'
import json, statistics, sys
runs = [json.loads(a) for a in sys.argv[1:]]
kinds = {"Python PIL + torch (2 threads)": runs[0::3], "umgf, 1 worker x 2 threads": runs[1::3],
         "umgf, workers (default)": runs[2::3]}
med = {k: (statistics.median(r["images_per_s"] for r in v), statistics.median(r["peak_rss_mb"] for r in v))
       for k, v in kinds.items()}
base = med["Python PIL + torch (2 threads)"]
r0 = runs[0]
print(f"{r0['images']} images per run ({r0['regions']} regions), median of {len(runs) // 3} alternating rounds; "
      "model loading excluded")
print("| run | images/s | peak RSS MiB | speed vs Python | memory vs Python |")
print("|---|---|---|---|---|")
for k, (ips, rss) in med.items():
    print(f"| {k} | {ips:.2f} | {rss:.0f} | {ips / base[0]:.2f}x | {rss / base[1]:.2f} |")
PY
