#!/usr/bin/env python3
"""The captions table of results/README.md: each caption variant of a recipe against the same recipe
without captions, per dataset, from the runs recorded in results/runs.jsonl.

  scripts/caption_table.py [--runs results/runs.jsonl] [--recipe "--encoder mpnet ..."] [--mode frozen]
                           [--min-seeds 3] [--seed 1 --against "--caption-nodes targeted"]
                           [--first] [--since LINE] [--extra] [--versions 4 5]

A variant is the recipe's TRAIN_ARGS plus arguments about captions (`--text-context caption`,
`--caption-nodes targeted`, ...). Test and dev F1 are means and sample standard deviations over the seeds run; the gain is paired:
the variant's test F1 minus the text-only run's of the same seed, mean and spread over the seeds both
have. `--against` pairs with another variant instead (the ablations, against the full caption nodes);
`--seed` keeps one seed's runs, `--min-seeds` the variants run on that many seeds. A run recorded
twice (the same dataset, arguments and seed) counts once: its latest line, or with `--first` its
earliest; `--since LINE` reads only lines from that line number of the file on (one session's
re-runs); `--versions` keeps the runs of those train stage versions (5 changed only the curve's
picture, so 4 and 5 train the same models). `--extra` adds the cross-domain test F1 and the test F1 without captions where recorded.
Standard library only.
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
    parser.add_argument("--first", action="store_true", help="a run recorded twice counts by its earliest line")
    parser.add_argument("--since", type=int, default=1, help="read lines from this line number on")
    parser.add_argument("--extra", action="store_true", help="cross-domain and no-caption test F1 columns")
    parser.add_argument("--versions", type=int, nargs="+", help="only runs of these train stage versions")
    args = parser.parse_args()

    runs = {}  # (dataset, added args, seed) -> run; the latest line wins (--first: the earliest)
    with open(args.runs) as f:
        for number, line in enumerate(f, 1):
            if number < args.since:
                continue
            r = json.loads(line)
            given = r.get("args", "")
            if r["model"] != "umgf" or r["mode"] != args.mode or not given.startswith(args.recipe):
                continue
            added = given[len(args.recipe):].strip()
            if added and "caption" not in added:
                continue  # another variant of the recipe (the sweeps), or another recipe
            if args.seed is not None and r["seed"] != args.seed:
                continue
            # Lines before the field were version 3 or earlier (as results.sh reads them).
            if args.versions and r.get("train_version", 3) not in args.versions:
                continue
            if args.first and (r["train_dataset"], added, r["seed"]) in runs:
                continue
            runs[(r["train_dataset"], added, r["seed"])] = r

    reference = f"`{args.against}`" if args.against else "text only"
    extra_heads = " cross-domain test F1 | test F1 without captions |" if args.extra else ""
    print(f"| dataset | TRAIN_ARGS added | seeds | test F1 | gain over {reference} (paired) | dev F1 |{extra_heads}")
    print("|---|---|---|---|---|---|" + ("---|---|" if args.extra else ""))
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
            extra = ""
            if args.extra:
                def column(field, suffix=""):
                    values = [r[field] for r in mine if r.get(field) is not None]
                    return spread(values) + suffix if values else "-"
                extra = (f" {column('cross_test_f1', ' on ' + mine[0]['cross_dataset'])} |"
                         f" {column('no_captions_test_f1')} |")
            print(
                f"| {dataset} | {('`' + added + '`') if added else 'text only'} | "
                f"{','.join(map(str, seeds))} | {spread([r['test_f1'] for r in mine])} | {gain} | "
                f"{spread([r['dev_f1'] for r in mine])} |{extra}"
            )


if __name__ == "__main__":
    main()
