"""Shared set-up for the reference scripts (run them with .venv-ref/bin/python; see README.md here).

Everything is loaded from a local directory: the HF hub is never contacted.
"""

import os

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
