#!/usr/bin/env bash
# Text feature extraction, Rust (this project) vs Python HF transformers, on the same weights, the same
# tweets and this machine, one after the other in one run. Prints both JSON lines and the ratios.
# Usage: scripts/bench_text.sh <Twitter CoNLL file>   (make bench-text)
set -euo pipefail
cd "$(dirname "$0")/.."
conll=${1:?usage: scripts/bench_text.sh <conll file>}
bin=${CARGO_TARGET_DIR:-target}/release
threads=${THREADS:-2}
batch=${BATCH:-32}

rust=$("$bin/bench-text" --conll "$conll" --models models --threads "$threads" --batch "$batch" --precision f32)
rust_bf16=$("$bin/bench-text" --conll "$conll" --models models --threads "$threads" --batch "$batch" --precision bf16)
python=$(HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv-ref/bin/python scripts/reference/bench_text.py \
  --model models/minilm-l6 --conll "$conll" --threads "$threads" --batch "$batch")
echo "rust f32:  $rust"
echo "rust bf16: $rust_bf16"
echo "python:    $python"
python3 - "$rust" "$rust_bf16" "$python" <<'PY'
import json, sys
r32, r16, p = (json.loads(a) for a in sys.argv[1:4])
print(f"{p['tweets']} tweets, batch {p['batch']}, {p['threads']} threads; model loading excluded")
print(f"| run | tweets/s | seconds | peak RSS MiB | speed vs Python | memory vs Python |")
print(f"|---|---|---|---|---|---|")
for name, r in [("Python transformers f32", p), ("umgf f32", r32), ("umgf bf16", r16)]:
    print(f"| {name} | {r['tweets_per_s']:.1f} | {r['seconds']:.2f} | {r['peak_rss_mb']:.0f} | "
          f"{r['tweets_per_s'] / p['tweets_per_s']:.2f}x | {r['peak_rss_mb'] / p['peak_rss_mb']:.2f} |")
PY
