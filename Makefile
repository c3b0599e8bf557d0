# umgf: the front door. `make` sets up (once) and runs the default job: every stage on DATASET, then
# trains UMGF and prints the test table (the first run also trains the noun-phrase chunker: about 10
# minutes on 2 cores, then cached).
# Every stage target re-runs only what changed: the store (artifacts/store) skips work already done.
#
#   make                      setup + the default job (Twitter-2017)
#   make ingest DATASET=twitter2015
#   make chunk DATASET=path/to/dump.jsonl ON_ERROR=skip
#   make ingest CAPTIONS=none  without image captions (default: the benchmark's BLIP-2 captions)
#   make train CAPTION_NODES=targeted   caption phrases the tweet points at become visual nodes
#                                       (general, all: the ablations, see docs/design.md)
#   make ground DATASET=dump.jsonl   objects in each tweet's image that its noun phrases point at
#   make graphs               each tweet's multimodal graph as edge lists
#   make features             text and visual features (MPNet's hidden states 4-8, computed in bf16)
#   make features ENCODER=minilm TEXT_LAYERS=last4 POOLING=mean STORAGE=f32 PRECISION=f32   what they hold
#   make features SLURM=1     the same as Slurm array jobs (chunk, ground, features; SHARDS=8 tasks each)
#   make train                train UMGF (frozen encoder states) on DATASET, print the dev/test table
#   make train ENCODER=minilm  the same on MiniLM's states (faster to encode, 2-4 points lower)
#   make train MODEL=baseline MODE=fine-tune SEED=2
#   make train                (again, after a stop or a kill: continues from the last finished epoch)
#   make eval DATASET=twitter2015   score the latest twitter2017 model on another test set (cross-domain)
#   make predict DATASET=new.jsonl  entities of new tweets (JSONL and CoNLL) with that model
#   make report                     an HTML page of the latest eval: tables, curve, errors, tweets
#   make report REPORT_RUN=predictions   the same for the latest predict run (COMPARE=<run folder>)
#   make chunker              train the noun-phrase chunker on CoNLL-2000 (once; then cached)
#   make chunker CHUNKER_TWEEBANK=1   ... and on Tweebank v2's tweets (CC BY-NC-SA 4.0: research use)
#   make status               which stages are up to date, which would re-run
#   make gc                   remove store objects no link and none of the last GC_KEEP runs per stage use;
#                             compact the memo (an older store's one-file-per-entry memo into packs)
#   make test                 the test suite
#   make test-fast            the suite without the reference parity tests and the long runs (< 2 min)
#   make lint                 cargo fmt --check and clippy, as CI runs them
#   make bench-text           text features: Rust vs Python transformers, same weights and tweets
#   make bench-vision         decode + detector + visual features: Rust vs PIL + PyTorch, same weights
#   make bench                the whole-pipeline benchmark (cold, incremental, no-op, epochs, both above)
#   make bench-scale N=10000  an N-tweet dump cold, +1% new, no-op through predict (BEFORE_BIN= beside)
#   make kill-test            every stage SIGKILLed 50 times at random moments; store and outputs checked
#   make fuzz                 fuzz the CoNLL, JSONL and captions readers and the image loader (FUZZ_SECONDS each)

DATASET   ?= twitter2017
DATA_DIR  ?=
IMAGE_DIR ?=
ON_ERROR  ?= fail
# Image captions: a file of `<image file> :<caption>` lines, or none. Empty: a benchmark's BLIP-2
# captions from the data directory, a JSONL dump's own "caption" fields.
CAPTIONS  ?=
# The most bytes one record may hold (empty: 64 KiB); a longer record is a bad record (ON_ERROR).
MAX_RECORD_BYTES ?=
# Non-empty: the chunker also learns from Tweebank v2 (<data dir>/tweebank, CC BY-NC-SA 4.0), on every
# target (it is part of the noun phrases' key).
CHUNKER_TWEEBANK ?=
# The default recipe (results/README.md, "Choices"; chosen on dev): the frozen head on MPNet's
# hidden states 4-8, encoded in bfloat16, at most 5 epochs: the most accurate on dev whose cold run
# (chunker excluded) takes under 10 minutes here. MODE=fine-tune keeps MiniLM (its recipe was chosen on MiniLM; fine-tuning MPNet
# takes about 2 hours on 2 cores: ENCODER=mpnet MODE=fine-tune).
ENCODER   ?= $(if $(filter fine-tune,$(MODE)),minilm,mpnet)
# bf16 for MPNet (seed 1: within 0.7 dev F1 of f32 at every epoch; results/README.md, "Choices");
# f32 for MiniLM, whose results were measured so.
PRECISION ?= $(if $(filter mpnet,$(ENCODER)),bf16,f32)
# Per encoder: the hidden states cached (0 = the embeddings' output), how a word's pieces are pooled
# and the frozen head's epoch cap. MPNet's 4-8 carry most of the learnt mix over all 13 and keep
# Twitter-2015's features under 1 GB. Pooling on Twitter-2017 dev: MiniLM's mean of pieces 84.44 ±
# 0.21 against 82.96 ± 0.69 for the first piece (seeds 1-3); MPNet's the same, 85.47 both (seed 1).
# Fine-tuning reads each word's first piece whatever the pooling: it keeps `first` (and its keys).
LAYERS_mpnet   := 4-8
LAYERS_minilm  := all
POOLING_mpnet  := first
POOLING_minilm := mean
EPOCHS_mpnet   := 5
EPOCHS_minilm  := 10
TEXT_LAYERS ?= $(LAYERS_$(ENCODER))
POOLING     ?= $(if $(filter fine-tune,$(MODE)),first,$(POOLING_$(ENCODER)))
FROZEN_ARGS ?= --max-epochs $(EPOCHS_$(ENCODER))
STORAGE   ?= f16
# What the text encoder reads after each tweet: none, or caption (its image caption, ITA's way).
TEXT_CONTEXT ?= none
# Visual nodes from the image caption: off, targeted (the caption phrases the tweet's phrases and
# general words point at), general or all (ablations). Every target that grounds (ground, features,
# graphs, train, eval, predict, status) reads it. Unset: off, except for eval and predict, which then
# follow the model (targeted if it was trained with caption nodes).
CAPTION_NODES ?=
ifneq ($(CAPTION_NODES),)
export UMGF_CAPTION_NODES := $(CAPTION_NODES)
endif
ARTIFACTS ?= artifacts
GPU       ?= 0
MODEL     ?= umgf
MODE      ?= frozen
SEED      ?= 1
MODEL_DIR ?=
TRAIN_ARGS ?=
export CARGO_TARGET_DIR ?= $(CURDIR)/target

BIN        := $(CARGO_TARGET_DIR)/release
SETUP_STAMP := .venv/umgf-setup.stamp
SOURCES    := $(shell find crates build -name '*.rs') Cargo.toml $(wildcard Cargo.lock) \
              $(wildcard crates/*/Cargo.toml) .cargo/config.toml

COMMON := --artifacts $(ARTIFACTS) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(CHUNKER_TWEEBANK),--chunker-tweebank)
# How text features are made (features, train, status; eval and predict read them from the model).
TEXT   := --encoder $(ENCODER) --precision $(PRECISION) --text-layers $(TEXT_LAYERS) --pooling $(POOLING) \
          --storage $(STORAGE) --text-context $(TEXT_CONTEXT)
DATA   := --dataset $(DATASET) $(if $(IMAGE_DIR),--image-dir $(IMAGE_DIR)) \
          $(if $(CAPTIONS),--captions $(CAPTIONS)) $(if $(MAX_RECORD_BYTES),--max-record-bytes $(MAX_RECORD_BYTES))
# What `make train` trains (and `make status` keys): the model, the mode's recipe, then TRAIN_ARGS.
TRAIN  = --model $(MODEL) --mode $(MODE) --seed $(SEED) \
         $(if $(filter fine-tune,$(MODE)),$(FINE_TUNE_ARGS),$(FROZEN_ARGS)) $(TRAIN_ARGS)

.PHONY: all setup setup-reference setup-photos build ingest chunker chunk ground graphs features train eval predict report status test \
	test-fast lint gc bench bench-text bench-vision kill-test fuzz clean distclean data help

all: setup train

help:
	@awk '/^#/ {print; next} {exit}' Makefile

# --- set-up: Python venv with PyPI's torch (libtorch), the weights, the binaries ----------------------
$(SETUP_STAMP): setup/setup.sh setup/weights.lock $(wildcard setup/*.py setup/*.lock setup/requirements-*.txt)
	GPU=$(GPU) setup/setup.sh

setup: $(SETUP_STAMP) build
	$(BIN)/doctor --models models

# Python references (HF transformers, seqeval on torch with its CUDA libraries) for parity tests and
# benchmarks, in their own venv so the pipeline's stays small.
setup-reference:
	REFERENCE=1 setup/setup.sh

# skimage's photos alone (photos/), for the vision tests of `make test-fast`.
setup-photos:
	TEST_PHOTOS=1 setup/setup.sh

# --all-targets: the test binaries too, so that `make test` reuses this build (bins alone resolve
# dependency features without the dev-dependencies, and the tests would rebuild half of them).
$(BIN)/.built: $(SOURCES) $(wildcard tests/*.rs tests/*/*.rs) tests/Cargo.toml | $(SETUP_STAMP)
	cargo build --release --workspace --all-targets
	@touch $@

build: $(BIN)/.built

# --- stages ---------------------------------------------------------------------------------------------
ingest: build
	$(BIN)/ingest $(DATA) --on-error $(ON_ERROR) $(COMMON)

chunker: build
	$(BIN)/chunker $(COMMON)

# Per-record stages (chunk, ground, features) in shards: SLURM=1 submits each as one Slurm array job
# (SHARDS tasks, default 8), SHARDS=N alone runs N local processes; either way the plain run then
# merges, and a re-run redoes only shards that did not finish. Upstream per-record stages are sharded
# first. scripts/shards.sh documents the Slurm settings (docs/cluster.md).
SLURM     ?= 0
SHARDS    ?= $(if $(filter 1,$(SLURM)),8,1)
SLURM_PARTITION ?=
SLURM_TIME ?= 02:00:00
SLURM_MEM  ?= 8G
SLURM_CPUS ?= 2
SLURM_ARGS ?=
SHARDED   := $(filter 1,$(SLURM))$(filter-out 0 1,$(SHARDS))
SHARD_RUN := SHARDS=$(SHARDS) SLURM=$(SLURM) BIN=$(BIN) SHARD_LOGS=$(ARTIFACTS)/logs \
	SLURM_PARTITION="$(SLURM_PARTITION)" SLURM_TIME=$(SLURM_TIME) SLURM_MEM=$(SLURM_MEM) \
	SLURM_CPUS=$(SLURM_CPUS) SLURM_ARGS="$(SLURM_ARGS)" scripts/shards.sh
# How a per-record stage runs: `$(RUN)chunk ARGS` is the binary, or the shard driver.
RUN       := $(if $(SHARDED),$(SHARD_RUN) ,$(BIN)/)
CHUNK     := chunk $(DATA) --on-error $(ON_ERROR) $(COMMON)
GROUND    := ground $(DATA) --on-error $(ON_ERROR) $(COMMON)
FEATURES  := features $(DATA) --on-error $(ON_ERROR) $(TEXT) $(COMMON)

chunk: build
	$(RUN)$(CHUNK)

ground: build
	$(if $(SHARDED),$(RUN)$(CHUNK))
	$(RUN)$(GROUND)

graphs: build
	$(BIN)/graphs $(DATA) --on-error $(ON_ERROR) $(COMMON)

features: build
	$(if $(SHARDED),$(RUN)$(CHUNK))
	$(if $(SHARDED),$(RUN)$(GROUND))
	$(RUN)$(FEATURES)

# Training: MODEL=umgf|baseline, MODE=frozen|fine-tune, SEED=; TRAIN_ARGS= passes any other option of
# `target/release/train --help` (e.g. TRAIN_ARGS="--layers 1 --no-object-edges"); a value given there
# wins over the same option earlier on the line. MODE=fine-tune adds the fine-tune recipe chosen on dev
# (results/README.md, "Choices"); FINE_TUNE_ARGS= drops it.
# The frozen text head (character CNN, BiLSTM, their dropouts) is off in the fine-tune recipe: it was
# chosen without them.
FINE_TUNE_ARGS ?= --max-epochs 8 --patience 3 --linear-decay --concat-text --encoder-lr 5e-5 --lr 3e-4 \
	--char-filters 0 --lstm-hidden 0 --text-dropout 0 --word-dropout 0
train: build
	$(BIN)/train $(DATA) --on-error $(ON_ERROR) $(TEXT) $(TRAIN) $(COMMON)

# MODEL_DIR: a trained model's folder (default: artifacts/twitter2017/model, the latest `make train`).
eval: build
	$(BIN)/eval $(DATA) --on-error $(ON_ERROR) $(if $(MODEL_DIR),--model $(MODEL_DIR)) $(COMMON)

predict: build
	$(BIN)/predict $(DATA) --on-error $(ON_ERROR) $(if $(MODEL_DIR),--model $(MODEL_DIR)) $(COMMON)

# An HTML report (artifacts/<dataset>/report/index.html) of the latest eval, or with
# REPORT_RUN=predictions of the latest predict run; COMPARE=<run folder> lists where another run's
# predictions differ. Runs eval (or predict) first: a cache hit after make train.
REPORT_RUN ?= eval
report: $(if $(filter predictions,$(REPORT_RUN)),predict,eval)
	$(BIN)/report $(DATA) --run $(REPORT_RUN) $(if $(MODEL_DIR),--model $(MODEL_DIR)) \
		$(if $(COMPARE),--compare $(COMPARE)) $(COMMON)

# Garbage collection: keeps the linked runs, the last GC_KEEP runs per stage and what they read.
GC_KEEP ?= 3
gc: build
	$(BIN)/gc --artifacts $(ARTIFACTS) --keep $(GC_KEEP) $(GC_ARGS)

status: build
	$(BIN)/status $(DATA) --on-error $(ON_ERROR) $(TEXT) $(TRAIN) --verify $(COMMON)

data:
	@dir=$${UMGF_DATA_DIR:-$(DATA_DIR)}; \
	echo "umgf reads Twitter-2015/2017 (UMT release: github.com/jefferyYu/UMT, data/twitter2015 and data/twitter2017)"; \
	echo "from a data directory holding twitter2015/{train,valid,test}.txt and twitter2017/{train,valid,test}.txt."; \
	echo "Default: the first shared/data above this folder; override with DATA_DIR=... or UMGF_DATA_DIR."; \
	echo "Tweet images (optional) go in <data dir>/twitter2015_images/<IMGID>.jpg (or IMAGE_DIR=...)."

# --- tests ----------------------------------------------------------------------------------------------
# Release profile: the tests share one build of libtorch-linked code with the stage binaries they run.
test: build setup-reference
	@if command -v cargo-nextest >/dev/null; then \
		cargo nextest run --release --workspace --no-fail-fast; \
	else \
		cargo test --release --workspace --no-fail-fast; \
	fi

# The edit-test loop, under two minutes: the suite without the parity tests against the Python and
# Node references (no .venv-ref needed), the kill-anywhere and sharding harnesses, the browser test
# (chromium) and the long end-to-end runs. Test names containing any of FAST_SKIP are skipped.
FAST_SKIP ?= kill:: shards:: matches_pytorch match_hf matches_tfjs seqeval chunk_stage_ grown_dump \
	train_on_photos report::the_report_runs_in_a_browser pyarrow_reads
test-fast: build setup-photos
	@if command -v cargo-nextest >/dev/null; then \
		cargo nextest run --release --workspace -- $(addprefix --skip ,$(FAST_SKIP)); \
	else \
		cargo test --release --workspace -- $(addprefix --skip ,$(FAST_SKIP)); \
	fi

# Formatting and lints, as CI checks them (.ci/run).
lint: | $(SETUP_STAMP)
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

# --- benchmarks (not tests) -----------------------------------------------------------------------------
BENCH_CONLL ?= $(or $(DATA_DIR),$(UMGF_DATA_DIR),../shared/data)/twitter2017/train.txt
bench-text: build setup-reference
	scripts/bench_text.sh $(BENCH_CONLL)

bench-vision: build setup-reference
	scripts/bench_vision.sh

# The whole-pipeline benchmark: cold, incremental and no-op runs, seconds per epoch, and the text and
# vision comparisons, as one report (results/benchmarks.md). BENCH_REPEATS runs per figure (medians).
BENCH_REPEATS ?= 3
bench: build setup-reference
	python3 scripts/bench.py --repeats $(BENCH_REPEATS) --data-dir $(or $(DATA_DIR),$(UMGF_DATA_DIR),../shared/data) \
		--artifacts $(ARTIFACTS) --out results/bench.md

# The scale benchmark (issue 27): an N-tweet dump (scripts/make_dump.py), then cold, +1% new tweets
# and no-op runs of every stage through predict and status, MiniLM, in a fresh store: seconds, peak RSS,
# files and bytes per stage (results/scale/n$(N).md and .jsonl). BEFORE_BIN=<dir of other binaries>
# runs the same for them first, side by side. SCALE_MODEL: predict's model (`make train ENCODER=minilm`).
N           ?= 10000
BEFORE_BIN  ?=
SCALE_MODEL ?= $(ARTIFACTS)/twitter2017/model
SCALE_ARGS  ?=
.PHONY: bench-scale
bench-scale: build
	python3 scripts/bench_scale.py --n $(N) --bin $(BIN) --model $(SCALE_MODEL) --artifacts $(ARTIFACTS) \
		$(if $(BEFORE_BIN),--before-bin $(BEFORE_BIN)) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) \
		--out results/scale/n$(N) $(SCALE_ARGS)

# --- reliability ----------------------------------------------------------------------------------------
# Kill-anywhere, full size: every stage SIGKILLed KILLS times at random moments in its work, on
# KILL_TWEETS labelled dev tweets plus the photo tweets (the test suite runs 2 kills on 40 tweets).
KILLS ?= 50
KILL_TWEETS ?= 200
kill-test: build
	UMGF_KILLS=$(KILLS) UMGF_KILL_TWEETS=$(KILL_TWEETS) cargo test --release -p umgf-tests --test tests kill::stages -- --nocapture

# Fuzzing (cargo-fuzz, libFuzzer) of the CoNLL reader, the JSONL reader and the image loader, each for
# FUZZ_SECONDS, from the seeds fuzz/make_seeds.py writes. RUSTC_BOOTSTRAP: cargo-fuzz passes unstable
# flags, and the machine has only the stable toolchain. Sanitizer none: the readers are safe Rust.
# Instrumented builds go to fuzz/target, apart from the pipeline's.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS := conll_reader jsonl_reader captions_reader image_loader
CARGO_FUZZ   := $(CARGO_TARGET_DIR)/tools/bin/cargo-fuzz
$(CARGO_FUZZ):
	cargo install cargo-fuzz --locked --root $(CARGO_TARGET_DIR)/tools
fuzz: $(CARGO_FUZZ) setup-reference
	.venv-ref/bin/python fuzz/make_seeds.py fuzz/seeds
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$t && \
		CARGO_TARGET_DIR=$(CURDIR)/fuzz/target RUSTC_BOOTSTRAP=1 $(CARGO_FUZZ) run --release -s none $$t corpus/$$t seeds/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -rss_limit_mb=2048 || exit 1; \
	done

clean:
	rm -rf $(ARTIFACTS)

distclean: clean
	rm -rf .venv models $(CARGO_TARGET_DIR)
