#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora: hand-made records and images covering the formats the readers
accept and the ways they go wrong. Nothing here comes from the data directory.

Usage: make_seeds.py OUT_DIR   (make fuzz runs it with .venv-ref's Python, which has Pillow)
"""
import io
import json
import sys
from pathlib import Path

CONLL = {
    "two_tweets": "IMGID:1001\nRT\tO\n@user\tO\n:\tO\nBarack\tB-PER\nObama\tI-PER\nin\tO\nParis\tB-LOC\n\n"
                  "IMGID:1002\nApple\tB-ORG\nshares\tO\nup\tO\n\n",
    "crlf_and_other_type": "IMGID:7\r\nMessi\tB-PER\r\nat\tO\r\nCamp\tB-OTHER\r\nNou\tI-OTHER\r\n\r\n",
    "stray_inside": "IMGID:8\nthe\tO\nWhite\tI-LOC\nHouse\tI-LOC\n\n",
    "no_labels": "IMGID:9\njust\nwords\nhere\n\n",
    "bad_tag": "IMGID:10\nhello\tB-XYZ\nworld\tO\n\n",
    "missing_imgid": "hello\tO\nworld\tO\n\nIMGID:11\nok\tO\n\n",
    "empty_tweet": "IMGID:12\n\nIMGID:13\nfine\tO\n\n",
    "truncated": "IMGID:14\nthis\tO\nis\tO\ncut",
    "duplicate_id": "IMGID:15\na\tO\n\nIMGID:15\nb\tO\n\n",
    "spaces_not_tabs": "IMGID:16\nNew York\tB-LOC\nword O\n\n",
    "unicode": "IMGID:17\nMünchen\tB-LOC\n🙂\tO\n東京\tB-LOC\n\n",
    "invalid_utf8": b"IMGID:18\n\xff\xfe\tO\nok\tO\n\n",
    "byte_order_mark": b"\xef\xbb\xbfIMGID:19\nObama\tB-PER\n\n",
    "over_long_tweet": "IMGID:20\n" + "word\tO\n" * 100 + "\nIMGID:21\nok\tO\n\n",
}

JSONL = {
    "text_and_tokens": [
        {"id": "a", "text": "Barack Obama visits Paris #travel @user", "image": "a.jpg"},
        {"id": "b", "tokens": ["Apple", "shares", "up"], "image": None, "labels": ["B-ORG", "O", "O"]},
    ],
    "numeric_id": [{"id": 42, "text": "numbers as ids", "image": None}],
    "bad_records": [
        {"id": "c"},
        {"id": "d", "text": ""},
        {"id": "e", "tokens": ["x", ""], "image": None},
        {"id": "f", "tokens": ["x", "y"], "labels": ["O"]},
        {"id": "g", "tokens": ["x"], "labels": ["B-NOPE"]},
        {"text": "no id"},
        {"id": "h", "text": "image not a string", "image": 7},
        ["not", "an", "object"],
    ],
    "unicode": [{"id": "u", "text": "Café in Zürich ☕ #coffee", "image": None}],
    "captions": [
        {"id": "k", "text": "Obama in Paris", "image": "k.jpg", "caption": "a man at a podium"},
        {"id": "l", "text": "no caption", "image": None, "caption": None},
        {"id": "m", "text": "bad caption", "image": None, "caption": 3},
    ],
    "over_long_line": [{"id": "n", "text": "word " * 200, "image": None}, {"id": "o", "text": "ok"}],
}
JSONL_RAW = {
    "not_json": b"{this is not json}\n{\"id\": \"ok\", \"text\": \"fine\"}\n",
    "blank_lines_crlf": b"\r\n{\"id\": \"x\", \"text\": \"a b\"}\r\n\r\n",
    "truncated": b"{\"id\": \"t\", \"text\": \"cut",
    "invalid_utf8": b"{\"id\": \"v\", \"text\": \"\xc3\x28\"}\n",
    "byte_order_mark": b"\xef\xbb\xbf{\"id\": \"w\", \"text\": \"a b\"}\n",
}
CAPTIONS = {
    "pgim": b"16_05_01_367.jpg :nolan k bushnell on twitter\n17_06_9315.jpg :a man sitting at a table\n",
    "bad_lines": b"1.jpg a dog\n2.jpg :\n :a cat\n3.jpg :a cat\n3.jpg :a dog\n\xff.jpg :x\n",
    "byte_order_mark_crlf": b"\xef\xbb\xbf4.jpg :person, person, person\r\n\r\n5.jpg :a : b\r\n",
    "over_long_line": b"6.jpg :" + b"a " * 400 + b"\n7.jpg :ok",
}


def images(out):
    from PIL import Image  # .venv-ref

    def gradient(mode, size=(24, 16)):
        img = Image.new("RGB", size)
        img.putdata([(x * 10 % 256, y * 15 % 256, (x + y) * 7 % 256) for y in range(size[1]) for x in range(size[0])])
        return img.convert(mode)

    def save(name, img, fmt, **kw):
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        (out / name).write_bytes(buf.getvalue())
        return buf.getvalue()

    save("rgb.png", gradient("RGB"), "PNG")
    save("rgba.png", gradient("RGBA"), "PNG")
    save("gray.png", gradient("L"), "PNG")
    save("palette.png", gradient("P"), "PNG")
    save("gray16.png", gradient("L").convert("I;16"), "PNG")
    jpeg = save("baseline.jpg", gradient("RGB"), "JPEG", quality=80)
    save("progressive.jpg", gradient("RGB"), "JPEG", progressive=True)
    save("gray.jpg", gradient("L"), "JPEG")
    save("cmyk.jpg", gradient("CMYK"), "JPEG")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    save("exif_rotated.jpg", gradient("RGB"), "JPEG", exif=exif.tobytes())
    frames = [gradient("P"), gradient("RGB").rotate(90, expand=False).convert("P")]
    save("animated.gif", frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    save("lossy.webp", gradient("RGB"), "WEBP", quality=50)
    save("lossless.webp", gradient("RGBA"), "WEBP", lossless=True)
    save("one_pixel.png", Image.new("RGB", (1, 1), (255, 0, 0)), "PNG")
    (out / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (out / "html_as_jpg.jpg").write_bytes(b"<!DOCTYPE html><html><body>not an image</body></html>")
    (out / "empty.jpg").write_bytes(b"")
    # A PNG header that claims 100000 x 100000 pixels (the decoder limits must refuse it).
    png = bytearray((out / "one_pixel.png").read_bytes())
    png[16:24] = (100000).to_bytes(4, "big") * 2
    (out / "huge_header.png").write_bytes(bytes(png))


def main():
    root = Path(sys.argv[1])
    for target in ("conll_reader", "jsonl_reader", "captions_reader", "image_loader"):
        (root / target).mkdir(parents=True, exist_ok=True)
    for name, text in CONLL.items():
        data = text if isinstance(text, bytes) else text.encode()
        (root / "conll_reader" / name).write_bytes(data)
    for name, records in JSONL.items():
        (root / "jsonl_reader" / name).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    for name, data in JSONL_RAW.items():
        (root / "jsonl_reader" / name).write_bytes(data)
    for name, data in CAPTIONS.items():
        (root / "captions_reader" / name).write_bytes(data)
    images(root / "image_loader")
    print(f"seeds written under {root}")


if __name__ == "__main__":
    main()
