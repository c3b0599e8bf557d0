#!/usr/bin/env python3
"""A deterministic N-tweet JSONL dump for the scale benchmark (`make bench-scale`; scripts/bench_scale.py).

    scripts/make_dump.py --n 10000 --seed 1 --out dump.jsonl
    scripts/make_dump.py --n 10000 --seed 1 --out grown.jsonl --base dump.jsonl --new-share 0.01 [--insert]

Every tweet is made from a labelled tweet of the benchmark (Twitter-2015 and Twitter-2017, all splits,
from the data directory) and varied so that its text is new: entity spans are swapped for entities of
the same type seen elsewhere in the corpus (labels follow: B-/I- of that type), hashtag words, @-mentions
and numbers for others from the corpus; when that leaves a text already made (or one of the corpus's),
an O-labelled hashtag is appended until it is not. So no tweet's text digest repeats one of the corpus's
or another tweet's, and the store cannot reuse any of them.

A share of the tweets (--photo-share, default 2%) has a real photo as its image: skimage's photos
(photos/, `make setup-photos`), the ones the tests use. With --image-variants (the default), each such
tweet gets its own file: the photo with one comment chunk added (PNG tEXt, JPEG COM), the same pixels
but other bytes, so its image digest is new and the detector runs on it as on a new photo. The files go
to `<out>.images/` (shared with the base dump's). --no-image-variants references the six photos by path.

--base: the dump is the base dump's lines, verbatim, plus round(N x --new-share) new tweets made the
same way (ids and seeds continue after the base's, or --new-offset further on for another set of new
tweets); appended at the end, or with --insert each at a random position (deterministic). A no-op run
is the same file again.

Python 3.11 standard library only. Output is identical for identical arguments.
"""
import argparse
import hashlib
import json
import random
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPLITS = ["train.txt", "valid.txt", "test.txt"]
DATASETS = ["twitter2015", "twitter2017"]
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "horse.png", "motorcycle_left.png", "rocket.jpg"]


def default_data_dir():
    """The first shared/data above this folder (the project's own default)."""
    for parent in [ROOT, *ROOT.parents]:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return ROOT.parent / "shared" / "data"


def read_conll(path):
    """[(tokens, labels)] of a Twitter CoNLL file (IMGID lines start a tweet)."""
    tweets, tokens, labels = [], [], []

    def flush():
        if tokens:
            tweets.append((list(tokens), list(labels)))
        tokens.clear()
        labels.clear()

    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("IMGID:"):
            flush()
            continue
        if not line.strip():
            flush()
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip():
            continue
        label = parts[1].strip().replace("OTHER", "MISC")
        tokens.append(parts[0])
        labels.append(label)
    flush()
    return tweets


def spans(labels):
    """[(start, end, type)] of the BIO entity spans (end exclusive; a stray I- starts a span)."""
    out, start, kind = [], None, None
    for i, label in enumerate(labels + ["O"]):
        inside = label.startswith("I-") and start is not None and label[2:] == kind
        if inside:
            continue
        if start is not None:
            out.append((start, i, kind))
            start, kind = None, None
        if label != "O":
            start, kind = i, label[2:]
    return out


class Corpus:
    """The source tweets and the pools their parts are swapped from."""

    def __init__(self, data_dir):
        self.tweets = []
        for dataset in DATASETS:
            for split in SPLITS:
                path = data_dir / dataset / split
                if not path.is_file():
                    sys.exit(f"make_dump: {path} is missing (data directory: --data-dir)")
                self.tweets += read_conll(path)
        self.entities = {}
        hashtags, mentions = set(), set()
        for tokens, labels in self.tweets:
            for start, end, kind in spans(labels):
                self.entities.setdefault(kind, []).append(tuple(tokens[start:end]))
            for i in range(1, len(tokens)):
                if labels[i] == "O" and tokens[i - 1] == "#" and tokens[i].isalnum():
                    hashtags.add(tokens[i])
                if tokens[i - 1] == "@" and labels[i] == "O":
                    mentions.add(tokens[i])
        # Sorted: a set's order changes between interpreter runs; the dump must not.
        self.hashtags = sorted(hashtags)
        self.mentions = sorted(mentions)
        for kind in self.entities:
            self.entities[kind].sort()
        self.kinds = sorted(self.entities)


def text_key(tokens):
    return hashlib.blake2b("\x1f".join(tokens).encode(), digest_size=16).digest()


def vary(corpus, rng, seen):
    """One new tweet: (tokens, labels) whose text is in none of `seen` (then added to it)."""
    tokens, labels = corpus.tweets[rng.randrange(len(corpus.tweets))]
    out_t, out_l = [], []
    cursor = 0
    for start, end, kind in spans(labels):
        out_t += tokens[cursor:start]
        out_l += labels[cursor:start]
        entity = list(tokens[start:end])
        if rng.random() < 0.9:
            entity = list(rng.choice(corpus.entities[kind]))
        out_t += entity
        out_l += [f"B-{kind}"] + [f"I-{kind}"] * (len(entity) - 1)
        cursor = end
    out_t += tokens[cursor:]
    out_l += labels[cursor:]
    for i in range(len(out_t)):
        if out_l[i] != "O":
            continue
        previous = out_t[i - 1] if i else ""
        if previous == "#" and out_t[i].isalnum() and rng.random() < 0.5:
            out_t[i] = rng.choice(corpus.hashtags)
        elif previous == "@" and rng.random() < 0.5:
            out_t[i] = rng.choice(corpus.mentions)
        elif out_t[i].isdigit() and rng.random() < 0.7:
            out_t[i] = str(rng.randrange(1, 10 ** max(1, len(out_t[i]))))
    while text_key(out_t) in seen:
        out_t += ["#", rng.choice(corpus.hashtags)]
        out_l += ["O", "O"]
    seen.add(text_key(out_t))
    return out_t, out_l


def png_variant(data, note):
    """The PNG with a tEXt chunk after IHDR: the same pixels, other bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    ihdr_end = 8 + 8 + int.from_bytes(data[8:12], "big") + 4
    body = b"Comment\x00" + note.encode()
    chunk = len(body).to_bytes(4, "big") + b"tEXt" + body + zlib.crc32(b"tEXt" + body).to_bytes(4, "big")
    return data[:ihdr_end] + chunk + data[ihdr_end:]


def jpeg_variant(data, note):
    """The JPEG with a COM segment after SOI: the same pixels, other bytes."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    body = note.encode()
    return data[:2] + b"\xff\xfe" + (len(body) + 2).to_bytes(2, "big") + body + data[2:]


class Photos:
    """The image of each photo tweet: a photo's path, or a new variant file of it."""

    def __init__(self, photo_dir, variants_dir):
        self.paths = [photo_dir / name for name in PHOTOS]
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            sys.exit(f"make_dump: photos missing ({', '.join(missing)}): run `make setup-photos`")
        self.variants_dir = variants_dir
        self.cache = {}

    def image(self, rng, tweet_id):
        source = self.paths[rng.randrange(len(self.paths))]
        if self.variants_dir is None:
            return str(source.resolve())
        out = self.variants_dir / f"{tweet_id}{source.suffix}"
        if not out.is_file():
            data = self.cache.setdefault(source, source.read_bytes())
            note = f"umgf scale benchmark variant {tweet_id} of {source.name}"
            varied = png_variant(data, note) if source.suffix == ".png" else jpeg_variant(data, note)
            self.variants_dir.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(out.suffix + ".tmp")
            tmp.write_bytes(varied)
            tmp.rename(out)
        return str(out.resolve())


def make_tweet(corpus, photos, seed, index, photo_share, seen):
    rng = random.Random(f"umgf-dump:{seed}:{index}")
    tokens, labels = vary(corpus, rng, seen)
    tweet_id = f"s{seed}-{index:08d}"
    image = photos.image(rng, tweet_id) if rng.random() < photo_share else None
    return {"id": tweet_id, "tokens": tokens, "image": image, "labels": labels}


def line(record):
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, required=True, help="tweets in the dump (with --base: the base's count)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--base", type=Path, help="an earlier dump: its lines, then the new tweets")
    ap.add_argument("--new-share", type=float, default=0.01, help="new tweets with --base, as a share of --n")
    ap.add_argument("--insert", action="store_true", help="with --base: new tweets at random positions")
    ap.add_argument("--new-offset", type=int, default=0,
                    help="with --base: the new tweets' numbers start at N + this (another set of new tweets)")
    ap.add_argument("--photo-share", type=float, default=0.02, help="share of tweets with a photo")
    ap.add_argument("--image-variants", action=argparse.BooleanOptionalAction, default=True,
                    help="a new file per photo tweet (same pixels, new digest); default on")
    ap.add_argument("--photo-dir", type=Path, default=ROOT / "photos")
    ap.add_argument("--data-dir", type=Path, default=None)
    args = ap.parse_args()

    corpus = Corpus(args.data_dir or default_data_dir())
    seen = {text_key(tokens) for tokens, _ in corpus.tweets}
    out = args.out
    variants = None
    if args.image_variants:
        base_name = args.base if args.base else out
        variants = base_name.parent / f"{base_name.stem}.images"
    photos = Photos(args.photo_dir, variants) if args.photo_share > 0 else None

    if args.base:
        base_lines = args.base.read_text(encoding="utf-8").splitlines(keepends=True)
        if len(base_lines) != args.n:
            sys.exit(f"make_dump: {args.base} has {len(base_lines)} tweets, --n says {args.n}")
        for text in base_lines:
            seen.add(text_key(json.loads(text)["tokens"]))
        added = round(args.n * args.new_share)
        first = args.n + args.new_offset
        new_lines = [line(make_tweet(corpus, photos, args.seed, first + k, args.photo_share, seen))
                     for k in range(added)]
        lines = list(base_lines)
        if args.insert:
            rng = random.Random(f"umgf-dump-insert:{args.seed}:{args.n}:{added}:{args.new_offset}")
            positions = sorted(rng.randrange(args.n + 1) for _ in range(added))
            # From the back, so that earlier positions still index the base's lines.
            for position, new in reversed(list(zip(positions, new_lines))):
                lines.insert(position, new)
        else:
            lines += new_lines
    else:
        added = args.n
        lines = [line(make_tweet(corpus, photos, args.seed, i, args.photo_share, seen)) for i in range(args.n)]

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(lines)
    tmp.rename(out)
    with_images = sum(1 for text in lines if '"image":null' not in text)
    print(f"make_dump: {out}: {len(lines)} tweets ({added} made here), {with_images} with a photo",
          file=sys.stderr)


if __name__ == "__main__":
    main()
