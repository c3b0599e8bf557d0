#!/usr/bin/env python3
"""The run keys and output digests behind a trained model, and their comparison with a reference.

    scripts/job_outputs.py [ARTIFACTS] [--dataset twitter2017]            # print them as JSON
    scripts/job_outputs.py [ARTIFACTS] --compare results/default_job_outputs.json

Starts from the train run whose outputs `ARTIFACTS/<dataset>/model/` links (default `artifacts`) and
follows every input back to the run that wrote it (graphs, features, ground, chunk, chunker, ingest).
`--compare` prints, per stage, whether the run key and each output digest equal the reference's, and
exits 1 if any differs: the check that a restructuring changed no behaviour
(`results/default_job_outputs.json` holds the default job of a fresh clone).
"""
import argparse
import glob
import json
import os
import sys


def runs_behind(artifacts, dataset):
    manifests = [json.load(open(p)) for p in glob.glob(os.path.join(artifacts, "store/runs/*.json"))]
    by_output = {}
    for m in manifests:
        for entry in m["outputs"].values():
            by_output.setdefault(entry["digest"], []).append(m)
    model = os.path.join(artifacts, dataset, "model", "metrics.json")
    if not os.path.islink(model):
        sys.exit(f"{model}: no trained model linked there (run `make train` first)")
    train = by_output[os.path.basename(os.readlink(model))][0]
    tweets = train["inputs"]["tweets"]

    def writer(digest):
        # Identical outputs may come from several runs (the empty objects of two text-only
        # datasets): take a run on the model's own tweets, the latest one.
        runs = [m for m in by_output.get(digest, []) if m["inputs"].get("tweets", tweets) == tweets]
        return max(runs, key=lambda m: m["finished_at"], default=None)

    todo, found = [train], {}
    while todo:
        run = todo.pop()
        if run is None or run["stage"] in found:
            continue
        found[run["stage"]] = {
            "key": run["key"],
            "version": run["version"],
            "params": run["params"],
            "outputs": {name: e["digest"] for name, e in sorted(run["outputs"].items())},
        }
        todo.extend(writer(d) for d in run["inputs"].values())
    return dict(sorted(found.items()))


def compare(found, reference):
    same = True
    for stage in sorted(set(found) | set(reference)):
        mine, theirs = found.get(stage), reference.get(stage)
        if mine is None or theirs is None:
            print(f"{stage}: only in {'the reference' if mine is None else 'this run'}")
            same = False
            continue
        key = "same key" if mine["key"] == theirs["key"] else "KEY DIFFERS"
        outputs = []
        for name in sorted(set(mine["outputs"]) | set(theirs["outputs"])):
            equal = mine["outputs"].get(name) == theirs["outputs"].get(name)
            outputs.append(f"{name} {'same' if equal else 'DIFFERS'}")
            same &= equal
        same &= mine["key"] == theirs["key"]
        print(f"{stage}: {key}; {', '.join(outputs)}")
    return same


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("artifacts", nargs="?", default="artifacts")
    parser.add_argument("--dataset", default="twitter2017")
    parser.add_argument("--compare", metavar="REFERENCE")
    args = parser.parse_args()
    found = runs_behind(args.artifacts, args.dataset)
    if args.compare:
        sys.exit(0 if compare(found, json.load(open(args.compare))["runs"]) else 1)
    print(json.dumps({"runs": found}, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
