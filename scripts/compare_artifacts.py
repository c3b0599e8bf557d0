#!/usr/bin/env python3
"""Whether two artifacts folders hold the same data for a dataset, table by table.

    .venv-ref/bin/python scripts/compare_artifacts.py ARTIFACTS_A ARTIFACTS_B --label twitter2017

Reads every friendly view of `<label>/` in both folders (a Parquet file, or a folder of parts: see
docs/store.md) as one table with pyarrow and compares the decoded rows; other files (model weights,
entities.jsonl, ...) are compared byte for byte, as are those of `<label>/model/` and
`<label>/predictions/`. The check that a change of how artifacts are stored changed no data: blob
digests cannot tell, since a table stored as parts has another digest than the same table as one file.
Exits 1 if anything differs or is missing on one side.
"""
import argparse
import filecmp
import os
import sys

import pyarrow.parquet as pq


def views(folder):
    if not os.path.isdir(folder):
        return {}
    return {name: os.path.join(folder, name) for name in sorted(os.listdir(folder)) if not name.startswith(".")}


def table(path):
    # A folder of parts is read as one table; its files' order is their names' (part-00000, ...).
    t = pq.read_table(path)
    return t.replace_schema_metadata(None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--label", default="twitter2017")
    args = ap.parse_args()
    same = True
    for sub in ["", "model", "predictions"]:
        left = views(os.path.join(args.a, args.label, sub))
        right = views(os.path.join(args.b, args.label, sub))
        for name in sorted(set(left) | set(right)):
            shown = os.path.join(sub, name) if sub else name
            if name in ("model", "predictions", "eval"):
                continue
            if name not in left or name not in right:
                print(f"{shown}: only in {'b' if name not in left else 'a'}")
                same = False
                continue
            if name.endswith(".parquet"):
                ta, tb = table(left[name]), table(right[name])
                equal = ta.equals(tb)
                print(f"{shown}: {ta.num_rows} rows, {'same rows' if equal else 'ROWS DIFFER'}")
            else:
                equal = filecmp.cmp(left[name], right[name], shallow=False)
                print(f"{shown}: {'same bytes' if equal else 'BYTES DIFFER'}")
            same &= equal
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
