#!/usr/bin/env python3
"""HF transformers baseline for the text-encoder speed benchmark (run with .venv-ref/bin/python).

  bench_text.py --model models/minilm-l6 --conll data/twitter2017/train.txt [--batch 32] [--threads 2] [--limit N]

Reads a Twitter CoNLL file (IMGID:<id> line, token<TAB>label lines, blank line between tweets), and in file
order, per batch: tokenizes the tweets' words with the fast tokenizer (is_split_into_words=True, truncation
to 128, padding to the longest in the batch) and runs BertModel (float32, torch.inference_mode). Prints one
JSON line. "seconds" is tokenize + model over all tweets; loading is "load_seconds".
"""

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402  (sets the offline environment first)


def read_conll(path):
    tweets, cur = [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if line.startswith("IMGID:"):
                if cur:
                    tweets.append(cur)
                cur = []
            elif not line.strip():
                if cur:
                    tweets.append(cur)
                cur = None
            else:
                tok = line.split("\t")[0]
                if cur is None:
                    cur = []
                cur.append(tok)
    if cur:
        tweets.append(cur)
    return tweets


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--conll", required=True)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="only the first N tweets")
    p.add_argument("--max-length", type=int, default=128)
    args = p.parse_args()

    tweets = read_conll(args.conll)
    if args.limit is not None:
        tweets = tweets[: args.limit]

    t0 = time.perf_counter()
    import torch
    import transformers

    torch.set_num_threads(args.threads)
    tok = _common.load_tokenizer(args.model)
    model = _common.load_bert(args.model)
    load_seconds = time.perf_counter() - t0

    wordpieces = 0
    c0 = time.process_time()
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(tweets), args.batch):
            enc = tok(tweets[i : i + args.batch], is_split_into_words=True, truncation=True,
                      max_length=args.max_length, padding=True, return_tensors="pt")
            out = model(**enc).last_hidden_state
            wordpieces += int(enc["attention_mask"].sum())
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0  # user+sys of all threads: shows contention (cpu/wall < threads)
    assert out.dtype == torch.float32

    print(json.dumps({
        "tweets": len(tweets),
        "wordpieces": wordpieces,
        "seconds": round(seconds, 3),
        "tweets_per_s": round(len(tweets) / seconds, 1),
        "load_seconds": round(load_seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "attn_implementation": str(model.config._attn_implementation),
        "threads": args.threads,
        "batch": args.batch,
    }))


if __name__ == "__main__":
    main()
