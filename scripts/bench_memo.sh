#!/usr/bin/env bash
# The packed memo against the one-file-per-entry memo (issue 27), on one dump, MiniLM features:
#
#   scripts/bench_memo.sh <before bin dir> <after bin dir> <dump.jsonl> <work dir>
#
# For each set of binaries, in a fresh artifacts folder (the chunker comes from the per-user store):
# `features` cold on the dump, then on the same tweets in another order (every record a memo hit, a
# new run key), then `status --verify`. Prints seconds, peak RSS, files and bytes of the memo, and
# whether both wrote the same text-features artifact. Make the dumps with scripts/make_dump.py.
set -euo pipefail
before=$1 after=$2 dump=$3 work=$4
shuffled="$work/$(basename "$dump" .jsonl)-shuffled.jsonl"
mkdir -p "$work"
python3 -c "
import random, sys
lines = open(sys.argv[1]).readlines()
random.Random(1).shuffle(lines)
open(sys.argv[2], 'w').writelines(lines)" "$dump" "$shuffled"

text=(--encoder minilm --precision f32 --text-layers all --pooling mean --storage f16 --text-context none)

# Runs a command; prints "<seconds> <peak RSS MiB>".
measure() {
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > "$work/last.log" 2>&1 \
    || { cat "$work/last.log"; exit 1; }
  awk '{printf "%s s, %.0f MiB", $1, $2 / 1024}' "$work/time.txt"
}

for side in before after; do
  bin=$before; [[ $side == after ]] && bin=$after
  artifacts="$work/$side"
  rm -rf "$artifacts"
  echo "== $side ($bin)"
  echo "features cold:          $(measure "$bin/features" --dataset "$dump" --artifacts "$artifacts" "${text[@]}")"
  echo "features, reordered:    $(measure "$bin/features" --dataset "$shuffled" --artifacts "$artifacts" "${text[@]}")"
  echo "status --verify:        $(measure "$bin/status" --dataset "$dump" --artifacts "$artifacts" "${text[@]}" --verify)"
  memo="$artifacts/store/memo"
  echo "memo files:             $(find "$memo" -type f | wc -l) ($(find "$memo/text-states" -type f | wc -l) of text states)"
  echo "memo bytes:             $(du -sb "$memo" | cut -f1) ($(du -sb "$memo/text-states" | cut -f1) of text states)"
  features=$(readlink -f "$artifacts/dump-$(basename "$dump" .jsonl)/text_features.parquet")
  echo "text features artifact: $(stat -c %s "$features") bytes, $(basename "$features")"
  echo "$(basename "$features")" > "$work/$side.digest"
done
if cmp -s "$work/before.digest" "$work/after.digest"; then
  echo "text features: the same artifact before and after"
else
  echo "text features: DIFFERENT artifacts"
fi
