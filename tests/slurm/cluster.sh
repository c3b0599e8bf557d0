#!/usr/bin/env bash
# A one-node Slurm cluster on loopback (slurm.conf beside this file), for tests/shards.rs and for
# trying `make features SLURM=1` on one machine. Needs Debian's slurmctld, slurmd, slurm-client and
# munge (REFERENCE=1 setup/setup.sh installs them) and root (slurmd starts the jobs).
#
#   tests/slurm/cluster.sh start DIR   start munged, slurmctld and slurmd with their state in DIR;
#                                      prints the line to eval: export SLURM_CONF=DIR/slurm.conf
#   tests/slurm/cluster.sh stop DIR    stop the daemons started there (by the pids in DIR/run)
set -euo pipefail

die() { echo "cluster: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: tests/slurm/cluster.sh start|stop DIR"
here=$(dirname "$(realpath "$0")")
dir=$(realpath -m "$2")
export PATH=$PATH:/usr/sbin:/sbin

start() {
  mkdir -p "$dir"/{munge,spool/ctld,spool/d,run,log}
  chmod 711 "$dir/munge" # munged refuses a socket folder others can write to
  local cpus memory_mb
  cpus=$(nproc)
  memory_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 9 / 10))
  sed -e "s|\$SLURM_DIR|$dir|g" -e "s|\$CPUS|$cpus|g" -e "s|\$MEMORY_MB|$memory_mb|g" \
    "$here/slurm.conf" >"$dir/slurm.conf"
  [ -f "$dir/munge/munge.key" ] || mungekey --create --keyfile="$dir/munge/munge.key"
  munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket.2" \
    --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" ||
    die "munged did not start (log: $dir/log/munged.log)"
  export SLURM_CONF=$dir/slurm.conf
  slurmctld -f "$SLURM_CONF" -c || die "slurmctld did not start (log: $dir/log/slurmctld.log)"
  slurmd -f "$SLURM_CONF" -N localhost || die "slurmd did not start (log: $dir/log/slurmd.log)"
  local state=""
  for _ in $(seq 300); do
    state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.1
  done
  [ "$state" = idle ] || die "node state '${state:-unknown}' after 30 s (logs in $dir/log)"
  echo "export SLURM_CONF=$SLURM_CONF"
}

# TERM, then KILL after 10 s, each daemon whose pid file is there; only those pids.
stop() {
  local daemon pid
  for daemon in slurmd slurmctld munged; do
    [ -f "$dir/run/$daemon.pid" ] || continue
    pid=$(cat "$dir/run/$daemon.pid")
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}

case $1 in
  start) start ;;
  stop) stop ;;
  *) die "usage: tests/slurm/cluster.sh start|stop DIR" ;;
esac
