#!/usr/bin/env python3
"""Reference BERT hidden states and tokenization from HF transformers, for parity tests of the Rust side.

Run with .venv-ref/bin/python (REFERENCE=1 setup/setup.sh builds it).

  bert_states.py --model models/minilm-l6 --input ids.json --output states.safetensors [--threads N]
      ids.json: {"input_ids": [[101, ..., 102], ...]}  (each sequence has its [CLS]/[SEP]; lengths differ)
                optionally "token_type_ids": the same shape (a pair's second text is type 1; default 0)
      output:   safetensors, one float32 tensor per sequence: "states.<i>" = last_hidden_state[0], [len, hidden]
      Each sequence runs on its own (batch of 1, no padding, no attention mask), eval mode, float32, no grad.

  bert_states.py --model models/minilm-l6 --tokenize words.json --output tok.json
      words.json: {"words": [["RT", "@user", "Obama", ...], ...]}
      tok.json:   {"input_ids": [[...], ...], "word_ids": [[null, 0, 0, 1, ..., null], ...],
                   "word_pieces": [[[ids of word 0], ...], ...]}
      HF fast tokenizer from the same directory (_common.tokenize), no truncation, no padding.
      With "contexts": [str, ...] beside "words", also "pair_ids" and "pair_types" (words, then context).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402  (sets the offline environment first)


def states(args):
    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(args.threads)
    with open(args.input) as f:
        data = json.load(f)
    seqs = data["input_ids"]
    types = data.get("token_type_ids") or [[0] * len(ids) for ids in seqs]
    model = _common.load_bert(args.model, args.attn)
    limit = model.config.max_position_embeddings
    out = {}
    with torch.no_grad():
        for i, ids in enumerate(seqs):
            if not ids or len(ids) > limit or not all(isinstance(t, int) for t in ids):
                raise SystemExit(f"input_ids[{i}]: expected 1..{limit} integers")
            if len(types[i]) != len(ids):
                raise SystemExit(f"token_type_ids[{i}]: expected {len(ids)} values")
            x = torch.tensor([ids], dtype=torch.long)
            t = torch.tensor([types[i]], dtype=torch.long)
            h = model(input_ids=x, token_type_ids=t).last_hidden_state[0]
            out[f"states.{i}"] = h.to(torch.float32).contiguous()
    tmp = args.output + ".tmp"
    save_file(out, tmp, metadata={
        "model": os.path.abspath(args.model),
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "attn_implementation": str(model.config._attn_implementation),
    })
    os.replace(tmp, args.output)
    print(f"{len(seqs)} sequences, hidden {model.config.hidden_size} -> {args.output}", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="local model directory (e.g. models/minilm-l6)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--input", help="ids.json: hidden states mode")
    g.add_argument("--tokenize", help="words.json: tokenizer mode")
    p.add_argument("--output", required=True)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--attn", default="eager", choices=["eager", "sdpa"],
                   help="attention implementation (default eager: the plain softmax(QK^T/sqrt(d))V)")
    args = p.parse_args()
    if args.tokenize:
        _common.tokenize(args.model, args.tokenize, args.output)
    else:
        states(args)


if __name__ == "__main__":
    main()
