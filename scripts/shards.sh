#!/usr/bin/env bash
# Runs a per-record stage (chunk, ground or features) as SHARDS shards, then merges: the shards run
# as one Slurm array job (SLURM=1) or as local processes (SLURM=0), each doing the records whose
# digest falls in its shard (`--shard K/N`); the plain run of the stage then merges them (every record
# is a memo hit) and links the artifact. `make chunk|ground|features SLURM=1` (or SHARDS=N) calls this.
#
#   scripts/shards.sh STAGE [STAGE ARGUMENTS...]
#
# Only the shards that have not run are started: after a failed or killed task, running it again
# re-does just the missing shards (the finished ones are cache hits in the store).
#
# Environment (the Makefile sets these from variables of the same name):
#   SHARDS           number of shards (default 4)
#   SLURM            1: submit to Slurm with sbatch; 0: local processes (default 0)
#   SHARD_LOGS       folder for each task's log (default artifacts/logs); on a shared file system
#   BIN              folder of the stage binaries (default target/release)
#   SLURM_PARTITION  sbatch --partition (default: the cluster's default partition)
#   SLURM_TIME       sbatch --time per task (default 02:00:00)
#   SLURM_MEM        sbatch --mem per task (default 8G: the text encoder, the detector and a shard's
#                    records fit in well under that)
#   SLURM_CPUS       sbatch --cpus-per-task (default 2)
#   SLURM_ARGS       anything else for sbatch (e.g. "--account=nlp --qos=short")
#   POLL_SECONDS     how often to ask squeue whether the array is done (default 2)
set -euo pipefail

die() { echo "shards: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: scripts/shards.sh STAGE [STAGE ARGUMENTS...]"
stage=$1
shift
case $stage in chunk | ground | features) ;; *) die "$stage is not a per-record stage (chunk, ground, features)" ;; esac

shards=${SHARDS:-4}
[[ $shards =~ ^[1-9][0-9]*$ ]] || die "SHARDS=$shards: want a positive number"
slurm=${SLURM:-0}
bin=${BIN:-target/release}
logs=${SHARD_LOGS:-artifacts/logs}
exe=$bin/$stage
[ -x "$exe" ] || die "$exe not found (make build)"
mkdir -p "$logs"

# The shards of N that have not run, comma-separated (nothing once the stage has merged).
missing() { "$exe" "$@" --missing-shards "$shards"; }

todo=$(missing "$@") || die "$stage --missing-shards failed"
started=$(date +%s%N)
if [ -n "$todo" ]; then
  count=$(tr ',' '\n' <<<"$todo" | wc -l)
  if [ "$slurm" = 1 ]; then
    command -v sbatch >/dev/null || die "SLURM=1 but sbatch is not on PATH"
    # The task's command, each argument quoted for the shell that --wrap starts.
    printf -v command '%q ' "$(realpath "$exe")" "$@"
    sbatch_args=(--parsable --job-name "umgf-$stage" --array "$todo"
      --output "$logs/$stage-%A_%a.out" --time "${SLURM_TIME:-02:00:00}"
      --mem "${SLURM_MEM:-8G}" --cpus-per-task "${SLURM_CPUS:-2}")
    [ -n "${SLURM_PARTITION:-}" ] && sbatch_args+=(--partition "$SLURM_PARTITION")
    # shellcheck disable=SC2206  # SLURM_ARGS is a list of options, split on purpose
    [ -n "${SLURM_ARGS:-}" ] && sbatch_args+=($SLURM_ARGS)
    job=$(sbatch "${sbatch_args[@]}" --wrap "exec $command --shard \$SLURM_ARRAY_TASK_ID/$shards")
    job=${job%%;*} # --parsable prints "id" or "id;cluster"
    echo "shards: $stage: submitted shards $todo of $shards as Slurm array job $job (logs: $logs/$stage-${job}_K.out)" >&2
    # sbatch --wait polls coarsely; squeue lists the job until every task has ended, then nothing,
    # then (once the controller forgets it) "Invalid job id". Any other error: ask again.
    while :; do
      if queue=$(squeue -h -j "$job" -o %i 2>&1); then
        [ -z "$queue" ] && break
      elif [[ $queue == *"Invalid job id"* ]]; then
        break
      fi
      sleep "${POLL_SECONDS:-2}"
    done
    log_of() { echo "$logs/$stage-${job}_$1.out"; }
  else
    echo "shards: $stage: running shards $todo of $shards as local processes (logs: $logs/$stage-local_K.out)" >&2
    pids=()
    for k in ${todo//,/ }; do
      "$exe" "$@" --shard "$k/$shards" >"$logs/$stage-local_$k.out" 2>&1 &
      pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || true; done # failures show as missing shards below
    log_of() { echo "$logs/$stage-local_$1.out"; }
  fi
  ms=$((($(date +%s%N) - started) / 1000000))
  printf 'shards: %s: %d shard(s) ended after %d.%03d s\n' "$stage" "$count" $((ms / 1000)) $((ms % 1000)) >&2

  # A shard is done when its run is in the store, whatever the scheduler says.
  failed=$(missing "$@") || die "$stage --missing-shards failed"
  if [ -n "$failed" ]; then
    for k in ${failed//,/ }; do
      log=$(log_of "$k")
      echo "shards: $stage: shard $k/$shards did not finish; the end of $log:" >&2
      tail -n 20 "$log" 2>/dev/null | sed 's/^/    /' >&2 || echo "    (no log)" >&2
    done
    die "$stage: shards $failed of $shards failed; run the same command again to redo only those"
  fi
fi

# The merge: every record is in the memo now, so this writes exactly what one process would have.
exec "$exe" "$@"
