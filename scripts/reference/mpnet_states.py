#!/usr/bin/env python3
"""Reference MPNet hidden states (every layer) and tokenization from HF transformers, for the parity tests
of the Rust MPNet (tests/mpnet.rs).

Run with .venv-ref/bin/python (REFERENCE=1 setup/setup.sh builds it).

  mpnet_states.py --model models/mpnet-base --input ids.json --output states.safetensors [--threads N]
      ids.json: {"input_ids": [[0, ..., 2], ...]}  (each sequence with its <s>/</s>; lengths may differ)
                optionally "attention_mask": same shape, rectangular (1 real, 0 padding)
      output:   safetensors, one float32 tensor per sequence: "states.<i>" = [layers + 1, len, hidden], HF's
                hidden_states (the embeddings' output, then each layer's) of its real pieces.
      Without "attention_mask" each sequence runs on its own (batch of 1, no padding, no mask); with it,
      the padded rows run together in batches of --batch-size with that mask. Eval mode, float32, no grad,
      eager attention (softmax(QK^T/sqrt(d) + position bias + mask)V).

  mpnet_states.py --model models/mpnet-base --tokenize words.json --output tok.json
      words.json: {"words": [["RT", "@user", "Obama", ...], ...]}
      tok.json:   {"input_ids": [[...], ...], "word_ids": [[null, 0, 0, 1, ..., null], ...],
                   "word_pieces": [[[ids of word 0], [ids of word 1], ...], ...]}
      HF fast tokenizer from the same directory: input_ids/word_ids with is_split_into_words=True and the
      special tokens; word_pieces word by word with add_special_tokens=False (what our WordPieces does).
      No truncation, no padding. With "contexts": [str, ...] beside "words", also "pair_ids" and
      "pair_types" (<s> words </s></s> context </s>).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402  (sets the offline environment first)


def load_mpnet(path):
    import torch
    from transformers import MPNetModel
    from transformers.utils import logging

    logging.disable_progress_bar()
    model = MPNetModel.from_pretrained(_common.model_dir(path), local_files_only=True, dtype=torch.float32,
                                       attn_implementation="eager", add_pooling_layer=False)
    model.eval()
    return model


def states(args):
    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(args.threads)
    with open(args.input) as f:
        data = json.load(f)
    seqs, masks = data["input_ids"], data.get("attention_mask")
    model = load_mpnet(args.model)
    limit = model.config.max_position_embeddings - model.config.pad_token_id - 1
    for i, ids in enumerate(seqs):
        if not ids or len(ids) > limit or not all(isinstance(t, int) for t in ids):
            raise SystemExit(f"input_ids[{i}]: expected 1..{limit} integers")
    out = {}
    with torch.no_grad():
        if masks is None:
            for i, ids in enumerate(seqs):
                h = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
                out[f"states.{i}"] = torch.stack([s[0] for s in h]).to(torch.float32).contiguous()
        else:
            if len(masks) != len(seqs) or len({len(s) for s in seqs} | {len(m) for m in masks}) != 1:
                raise SystemExit("attention_mask: expected the shape of input_ids, rectangular")
            for start in range(0, len(seqs), args.batch_size):
                ids = torch.tensor(seqs[start:start + args.batch_size])
                mask = torch.tensor(masks[start:start + args.batch_size])
                h = torch.stack(model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
                                .hidden_states, 1)  # [batch, layers + 1, len, hidden]
                for row in range(ids.shape[0]):
                    n = int(mask[row].sum())
                    out[f"states.{start + row}"] = h[row, :, :n].to(torch.float32).contiguous()
    tmp = args.output + ".tmp"
    save_file(out, tmp, metadata={
        "model": os.path.abspath(args.model),
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "attn_implementation": str(model.config._attn_implementation),
        "padded": str(masks is not None),
    })
    os.replace(tmp, args.output)
    print(f"{len(seqs)} sequences, {model.config.num_hidden_layers + 1} hidden states of "
          f"{model.config.hidden_size} -> {args.output}", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="local model directory (e.g. models/mpnet-base)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--input", help="ids.json: hidden states mode")
    g.add_argument("--tokenize", help="words.json: tokenizer mode")
    p.add_argument("--output", required=True)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--batch-size", type=int, default=16, help="rows per forward with attention_mask (16)")
    args = p.parse_args()
    if args.tokenize:
        _common.tokenize(args.model, args.tokenize, args.output)
    else:
        states(args)


if __name__ == "__main__":
    main()
