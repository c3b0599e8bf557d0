"""Shared set-up for the reference scripts (run them with .venv-ref/bin/python; see README.md here).

Everything is loaded from a local directory: the HF hub is never contacted.
"""

import json
import os
import sys

# must be set before transformers / huggingface_hub are imported
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def model_dir(path: str) -> str:
    """An existing local model directory, as an absolute path (so it can never be read as a hub id)."""
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise SystemExit(f"{path}: not a model directory (no config.json); run setup/setup.sh first")
    return path


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir(path), local_files_only=True)
    if not tok.is_fast:
        raise SystemExit(f"{path}: expected a fast tokenizer (tokenizer.json)")
    return tok


def load_bert(path: str, attn: str | None = None):
    import torch
    from transformers import BertModel
    from transformers.utils import logging

    logging.disable_progress_bar()
    kw = {"attn_implementation": attn} if attn else {}
    model = BertModel.from_pretrained(model_dir(path), local_files_only=True, dtype=torch.float32, **kw)
    model.eval()
    return model


def write_json(path, obj):
    """Writes `obj` to `path` atomically (a temporary file, then a rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
        f.write("\n")
    os.replace(tmp, path)


def tokenize(model: str, words_path: str, output: str):
    """The tokenizer mode of bert_states.py and mpnet_states.py: per sequence of words, input_ids and
    word_ids with is_split_into_words=True and the special tokens, and word_pieces word by word with
    add_special_tokens=False (what the Rust WordPieces does). No truncation, no padding. With
    "contexts" (a string per sequence), also pair_ids and pair_types: each sequence of words paired
    with its context."""
    with open(words_path) as f:
        data = json.load(f)
    words, contexts = data["words"], data.get("contexts")
    tok = load_tokenizer(model)
    ids, wids, pieces = [], [], []
    for i, ws in enumerate(words):
        if not isinstance(ws, list) or not all(isinstance(w, str) for w in ws):
            raise SystemExit(f"words[{i}]: expected a list of strings")
        enc = tok(ws, is_split_into_words=True, truncation=False, padding=False, add_special_tokens=True)
        ids.append(list(enc["input_ids"]))
        wids.append(enc.word_ids())
        pieces.append([list(tok(w, add_special_tokens=False, truncation=False, padding=False)["input_ids"])
                       for w in ws])
    out = {"input_ids": ids, "word_ids": wids, "word_pieces": pieces}
    if contexts is not None:
        # Pairs: the words as the first text, the context (a string) as the second, as HF's own
        # pair encoding makes them (BERT: [CLS] A [SEP] B [SEP] with token types; MPNet: <s> A </s></s> B </s>).
        pair_ids, pair_types = [], []
        for ws, context in zip(words, contexts):
            enc = tok(ws, context.split(), is_split_into_words=True, truncation=False, padding=False)
            pair_ids.append(list(enc["input_ids"]))
            pair_types.append(list(enc.get("token_type_ids", [0] * len(enc["input_ids"]))))
        out["pair_ids"], out["pair_types"] = pair_ids, pair_types
    write_json(output, out)
    print(f"tokenized {len(words)} sequences -> {output}", file=sys.stderr)
