"""seqeval's entity-level scores of a conlleval-format prediction file (`word gold predicted` per line, a
blank line between sentences), for the parity test of umgf's evaluation (tests/eval.rs).

    .venv-ref/bin/python scripts/reference/seqeval_scores.py predictions.conll scores.json

Output: {"precision", "recall", "f1" (micro, percent), "per_type": {TYPE: {"precision", "recall", "f1",
"support"}}}. seqeval's default mode (not strict) chunks the way conlleval does.
"""

import json
import sys

from seqeval.metrics import classification_report, f1_score, precision_score, recall_score


def read(path):
    gold, predicted, g, p = [], [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                if g:
                    gold.append(g)
                    predicted.append(p)
                g, p = [], []
                continue
            _, gold_tag, predicted_tag = line.rsplit(" ", 2)
            g.append(gold_tag)
            p.append(predicted_tag)
    if g:
        gold.append(g)
        predicted.append(p)
    return gold, predicted


def main():
    source, target = sys.argv[1], sys.argv[2]
    gold, predicted = read(source)
    report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    per_type = {
        name: {
            "precision": 100 * r["precision"],
            "recall": 100 * r["recall"],
            "f1": 100 * r["f1-score"],
            "support": int(r["support"]),
        }
        for name, r in report.items()
        if not name.endswith(" avg")
    }
    out = {
        "sentences": len(gold),
        "precision": 100 * precision_score(gold, predicted, zero_division=0),
        "recall": 100 * recall_score(gold, predicted, zero_division=0),
        "f1": 100 * f1_score(gold, predicted, zero_division=0),
        "per_type": per_type,
    }
    with open(target, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
