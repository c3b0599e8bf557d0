"""Reference EfficientNet-Lite0 in PyTorch, for the parity test of the Rust/tch model.

    efficientnet_features.py --weights models/efficientnet-lite0/model.safetensors \
        --input images.safetensors --output features.safetensors

images.safetensors holds `images`: float32 [N, 3, 224, 224], already normalised ((x - 127) / 128).
features.safetensors gets `features` (pooled, [N, 1280]) and `logits` ([N, 1000]).

The network is written here from the architecture (EfficientNet-Lite0: ReLU6, no squeeze-excitation,
symmetric padding, batch-norm eps 1e-3), independently of the Rust code, and loads the weights with
strict=True so that every tensor of the file must find its place.
"""

import argparse

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

# (expand ratio, kernel, stride, in, out) of the 16 blocks
BLOCKS = [(1, 3, 1, 32, 16), (6, 3, 2, 16, 24), (6, 3, 1, 24, 24), (6, 5, 2, 24, 40), (6, 5, 1, 40, 40),
          (6, 3, 2, 40, 80), (6, 3, 1, 80, 80), (6, 3, 1, 80, 80), (6, 5, 1, 80, 112), (6, 5, 1, 112, 112),
          (6, 5, 1, 112, 112), (6, 5, 2, 112, 192), (6, 5, 1, 192, 192), (6, 5, 1, 192, 192),
          (6, 5, 1, 192, 192), (6, 3, 1, 192, 320)]


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-3)


class Block(nn.Module):
    def __init__(self, expand, k, stride, cin, cout):
        super().__init__()
        hidden = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, hidden, 1, bias=False)
            self._bn0 = bn(hidden)
        self.expand = expand != 1
        self._depthwise_conv = nn.Conv2d(hidden, hidden, k, stride, (k - 1) // 2, groups=hidden, bias=False)
        self._bn1 = bn(hidden)
        self._project_conv = nn.Conv2d(hidden, cout, 1, bias=False)
        self._bn2 = bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        h = x
        if self.expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class Lite0(nn.Module):
    def __init__(self):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = bn(32)
        self._blocks = nn.ModuleList(Block(*b) for b in BLOCKS)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = bn(1280)
        self._fc = nn.Linear(1280, 1000)

    def features(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x))).mean(dim=(2, 3))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = Lite0().eval()
    model.load_state_dict(load_file(args.weights), strict=True)
    images = load_file(args.input)["images"]
    with torch.inference_mode():
        features = model.features(images)
        logits = model._fc(features)
    save_file({"features": features.contiguous(), "logits": logits.contiguous()}, args.output)


if __name__ == "__main__":
    main()
