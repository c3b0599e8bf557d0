#!/usr/bin/env python3
"""The captions table of results/README.md: each caption variant of a recipe against the same recipe
without captions, per dataset, from the runs recorded in results/runs.jsonl.

  scripts/caption_table.py [--runs results/runs.jsonl] [--recipe "--encoder mpnet ..."] [--mode frozen]
                           [--min-seeds 3] [--seed 1 --against "--caption-nodes targeted"]

A variant is the recipe's TRAIN_ARGS plus arguments about captions (`--text-context caption`,
`--caption-nodes targeted`, ...). Test and dev F1 are means and sample standard deviations over the seeds run; the gain is paired:
the variant's test F1 minus the text-only run's of the same seed, mean and spread over the seeds both
have. `--against` pairs with another variant instead (the ablations, against the full caption nodes);
`--seed` keeps one seed's runs, `--min-seeds` the variants run on that many seeds. Standard library
only.
"""
import argparse
import json
import statistics

RECIPE = "--encoder mpnet --precision bf16 --text-layers 4,5,6,7,8 --max-epochs 5"


def spread(values, sign=""):
    """'mean ± sd' (sample sd), or the value alone for one seed; sign="+" writes gains with theirs."""
    mean = f"{statistics.mean(values):{sign}.2f}"
    return mean if len(values) == 1 else f"{mean} ± {statistics.stdev(values):.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="results/runs.jsonl")
    parser.add_argument("--recipe", default=RECIPE)
    parser.add_argument("--mode", default="frozen")
    parser.add_argument("--min-seeds", type=int, default=1, help="variants run on fewer are left out")
    parser.add_argument("--seed", type=int, help="only this seed's runs")
    parser.add_argument("--against", default="", help="the variant gains are paired with (its TRAIN_ARGS added)")
    args = parser.parse_args()

    runs = {}  # (dataset, added args, seed) -> run; the latest line wins
    with open(args.runs) as f:
        for line in f:
            r = json.loads(line)
            given = r.get("args", "")
            if r["model"] != "umgf" or r["mode"] != args.mode or not given.startswith(args.recipe):
                continue
            added = given[len(args.recipe):].strip()
            if added and "caption" not in added:
                continue  # another variant of the recipe (the sweeps), or another recipe
            if args.seed is not None and r["seed"] != args.seed:
                continue
            runs[(r["train_dataset"], added, r["seed"])] = r

    reference = f"`{args.against}`" if args.against else "text only"
    print(f"| dataset | TRAIN_ARGS added | seeds | test F1 | gain over {reference} (paired) | dev F1 |")
    print("|---|---|---|---|---|---|")
    for dataset in sorted({k[0] for k in runs}):
        variants = sorted({k[1] for k in runs if k[0] == dataset}, key=lambda a: (a != "", a))
        for added in variants:
            seeds = sorted(k[2] for k in runs if k[0] == dataset and k[1] == added)
            if len(seeds) < args.min_seeds and added not in ("", args.against):
                continue
            mine = [runs[(dataset, added, s)] for s in seeds]
            gains = [
                runs[(dataset, added, s)]["test_f1"] - runs[(dataset, args.against, s)]["test_f1"]
                for s in seeds
                if added != args.against and (dataset, args.against, s) in runs
            ]
            gain = spread(gains, "+") if gains else "-"
            print(
                f"| {dataset} | {('`' + added + '`') if added else 'text only'} | "
                f"{','.join(map(str, seeds))} | {spread([r['test_f1'] for r in mine])} | {gain} | "
                f"{spread([r['dev_f1'] for r in mine])} |"
            )


if __name__ == "__main__":
    main()
