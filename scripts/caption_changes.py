#!/usr/bin/env python3
"""The test tweets whose predicted entities change when a model reads image captions: two train runs of
the same recipe and seed, one without captions and one with (`--text-context caption`, or caption
nodes), side by side with the gold entities and the caption.

  scripts/caption_changes.py --list [--dataset twitter2017]
      the train runs in the store: key, dataset, seed, what it reads of captions, dev/test F1
  scripts/caption_changes.py BASE_KEY CAPTION_KEY [--n 10] [--data-dir ../shared/data]
      BASE_KEY, CAPTION_KEY: run keys (a unique prefix is enough) from --list

Reads the store's manifests and outputs (test.predictions.conll, metrics.json), the dataset's
test.txt (tweet ids, in the order predictions are written) and the captions file. When the captioned
run reads caption nodes, each tweet shown also gets its caption's noun phrases and the caption nodes
with what found them, from `ground --show-tweet` (a cache hit after training). Standard library only.
"""
import argparse
import glob
import json
import os
import subprocess
import sys

CAPTIONS = {"twitter2015": "pgim_blip2_captions/BLIP2_15.txt",
            "twitter2017": "pgim_blip2_captions/BLIP2_17.txt"}


def runs(store):
    for path in glob.glob(os.path.join(store, "runs", "*.json")):
        with open(path) as f:
            run = json.load(f)
        if run["stage"] == "train":
            yield run


def blob(store, run, name):
    digest = run["outputs"][name]["digest"]
    return os.path.join(store, "blobs", digest[:2], digest)


def captions_read(run, store="artifacts/store"):
    """What the run's model reads of captions, in words: its text features' context, and caption nodes
    (which its config.json shows by a caption_dim)."""
    read = []
    if run["params"]["features"].get("context") == "caption":
        read.append("caption context")
    with open(blob(store, run, "config.json")) as f:
        if json.load(f)["model"].get("caption_dim", 0) > 0:
            read.append("caption nodes")
    return " + ".join(read) or "no captions"


def entities(tags):
    """(start, end, type) spans of BIO tags, conlleval-style (a stray I- starts an entity)."""
    spans, start, kind = [], None, None
    for i, tag in enumerate(tags + ["O"]):
        inside = tag.startswith("I-") and kind == tag[2:]
        if start is not None and not inside:
            spans.append((start, i, kind))
            start, kind = None, None
        if tag.startswith("B-") or (tag.startswith("I-") and not inside):
            start, kind = i, tag[2:]
    return spans


def read_predictions(path):
    """Sentences of (token, gold, predicted) lines."""
    sentences, current = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                if current:
                    sentences.append(current)
                current = []
                continue
            token, gold, pred = line.rsplit(" ", 2)
            current.append((token, gold, pred))
    if current:
        sentences.append(current)
    return sentences


def test_ids(data_dir, dataset):
    ids = []
    with open(os.path.join(data_dir, dataset, "test.txt"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("IMGID:"):
                ids.append(line[len("IMGID:"):].strip())
    return ids


# ingest drops a caption shared by more tweets than this (stages/ingest.rs, MAX_TWEETS_PER_CAPTION).
MAX_TWEETS_PER_CAPTION = 50


def read_captions(data_dir, dataset):
    """Captions by image file, as the model read them: a placeholder shared by over 50 images is
    dropped by ingest, so it shows as such."""
    out = {}
    with open(os.path.join(data_dir, CAPTIONS[dataset]), encoding="utf-8-sig") as f:
        for line in f:
            if " :" in line:
                image, caption = line.split(" :", 1)
                out[image.strip()] = caption.strip()
    shared = {}
    for caption in out.values():
        shared[caption] = shared.get(caption, 0) + 1
    return {image: caption if shared[caption] <= MAX_TWEETS_PER_CAPTION
            else f"(none: {caption!r} is shared by {shared[caption]} images, dropped)"
            for image, caption in out.items()}


def grounding(dataset, data_dir, tweet_ids):
    """`ground --show-tweet`'s lines per tweet id: the caption's phrases and the caption nodes (the
    default grounding settings, with targeted caption nodes: what the captioned run was trained on)."""
    binary = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "ground")
    out = subprocess.run([binary, "--dataset", dataset, "--data-dir", data_dir, "--caption-nodes", "targeted",
                          "--show-tweet", ",".join(tweet_ids)],
                         check=True, capture_output=True, text=True).stdout
    blocks, current = {}, None
    for line in out.splitlines():
        if not line.startswith(" "):
            current = line.split(":", 1)[0]
            blocks[current] = []
        elif current is not None and not line.lstrip().startswith("caption:"):
            blocks[current].append(line.strip())
    return blocks


def show(tokens, spans):
    return ", ".join(f"{' '.join(tokens[s:e])} [{t}]" for s, e, t in spans) or "-"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("keys", nargs="*")
    p.add_argument("--list", action="store_true")
    p.add_argument("--dataset")
    p.add_argument("--store", default="artifacts/store")
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--n", type=int, default=10)
    args = p.parse_args()

    all_runs = list(runs(args.store))
    if args.list:
        for run in sorted(all_runs, key=lambda r: (r["params"]["dataset"], r["params"]["training"]["seed"])):
            if args.dataset and run["params"]["dataset"] != args.dataset:
                continue
            with open(blob(args.store, run, "metrics.json")) as f:
                m = json.load(f)
            features = run["params"]["features"]
            print(f'{run["key"][:12]}  {run["params"]["dataset"]}  seed {run["params"]["training"]["seed"]}  '
                  f'{run["params"]["kind"]}/{run["params"]["mode"]}  {features["encoder"]} {features["precision"]} '
                  f'{features["layers"]} {features["pooling"]} ≤{run["params"]["training"]["max_epochs"]} epochs  '
                  f'{captions_read(run):16}  dev {m["dev"]["f1"]:.2f}  test {m["test"]["f1"]:.2f}')
        return
    if len(args.keys) != 2:
        p.error("give two run keys (see --list)")
    picked = []
    for key in args.keys:
        found = [r for r in all_runs if r["key"].startswith(key)]
        if len(found) != 1:
            sys.exit(f"{key}: {len(found)} train runs have this key prefix")
        picked.append(found[0])
    base, captioned = picked
    dataset = base["params"]["dataset"]
    if captioned["params"]["dataset"] != dataset:
        sys.exit("the two runs trained on different datasets")
    ids = test_ids(args.data_dir, dataset)
    captions = read_captions(args.data_dir, dataset)
    before = read_predictions(blob(args.store, base, "test.predictions.conll"))
    after = read_predictions(blob(args.store, captioned, "test.predictions.conll"))
    if not (len(ids) == len(before) == len(after)):
        sys.exit(f"{len(ids)} test tweets, {len(before)} and {len(after)} predicted sentences")

    changed, fixed, broke = [], 0, 0
    for tweet_id, b, a in zip(ids, before, after):
        tokens = [t for t, _, _ in b]
        gold = entities([g for _, g, _ in b])
        was, now = entities([p for _, _, p in b]), entities([p for _, _, p in a])
        if was == now:
            continue
        right_before, right_after = len(set(was) & set(gold)), len(set(now) & set(gold))
        fixed += right_after > right_before
        broke += right_after < right_before
        changed.append((tweet_id, tokens, gold, was, now, right_after - right_before))
    print(f"{dataset} test: {len(changed)} of {len(ids)} tweets change ({fixed} gain correct entities, "
          f"{broke} lose some); runs {base['key'][:12]} ({captions_read(base)}) -> "
          f"{captioned['key'][:12]} ({captions_read(captioned)})\n")
    # The most telling first: tweets whose caption the model read, gains and losses alternately,
    # then the rest.
    read = [c for c in changed if not captions.get(c[0] + ".jpg", "(none").startswith("(none")]
    print(f"{len(read)} of the changed tweets have a caption the model read.\n")
    changed = read + [c for c in changed if c not in read]
    gains = [c for c in changed if c[5] > 0]
    losses = [c for c in changed if c[5] < 0]
    rest = [c for c in changed if c[5] == 0]
    order = [c for pair in zip(gains, losses) for c in pair]
    order += gains[len(order) // 2:] + losses[len(order) // 2:] + rest
    shown = order[:args.n]
    nodes = {}
    if "caption nodes" in captions_read(captioned, args.store):
        nodes = grounding(dataset, args.data_dir, [c[0] for c in shown])
    for tweet_id, tokens, gold, was, now, delta in shown:
        verdict = "right" if delta > 0 else "wrong" if delta < 0 else "neither"
        print(f"- {tweet_id} ({verdict}): {' '.join(tokens)}")
        print(f"  caption: {captions.get(tweet_id + '.jpg', '(none)')}")
        print(f"  gold: {show(tokens, gold)}")
        print(f"  without: {show(tokens, was)}")
        print(f"  with:    {show(tokens, now)}")
        for line in nodes.get(tweet_id, []):
            print(f"  {line}")


if __name__ == "__main__":
    main()
