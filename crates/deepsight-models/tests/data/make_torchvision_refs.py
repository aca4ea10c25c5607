"""Reference logits for `tests/torchvision_reference.rs`: DeepSight's built-in torchvision
architectures (and the ZF-Net variant, written below as a PyTorch module) with the seeded random
weights of `deepsight_models::RandomWeights`, run by PyTorch.

Re-run from the repository root (any Python with torch, torchvision and numpy):

    /work/peers/venv/bin/python crates/deepsight-models/tests/data/make_torchvision_refs.py

It rewrites `torchvision_refs.json` next to this file. The Rust test regenerates the same weights
and inputs from (seed, tensor name) alone, so only the logits need to be stored.

The weights are `RandomWeights` (crates/deepsight-models/src/source.rs) reimplemented in numpy:
a splitmix64 stream per tensor, started from the FNV-1a hash of the tensor name xor-ed into the
seed, u = (next >> 11) / 2^53 in [0, 1), computed in float64 and rounded once to float32:
- rank >= 2 (conv / linear weights): Kaiming-uniform, (2u - 1) * sqrt(6 / fan_in);
- rank-1 names ending in `running_var` (BatchNorm variance): 1 + 2u;
- other rank-1 names ending in `.weight` (BatchNorm gamma): 0.5 + u;
- other rank-1 tensors (biases, BatchNorm beta and running mean): 0.2 * (2u - 1).
The input is the stream named `input`: 2u - 1, in NCHW order.
"""
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
CHUNK = 1 << 22


def stream_start(seed, name):
    """FNV-1a of the name's UTF-8 bytes, starting from the seed xor FNV's offset basis."""
    h = (seed ^ 0xCBF29CE484222325) & MASK
    for b in name.encode():
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def seeded_uniform(seed, name, n):
    """The first n values of the splitmix64 stream of (seed, name), as float64 in [0, 1)."""
    start = np.uint64(stream_start(seed, name))
    out = np.empty(n, dtype=np.float64)
    with np.errstate(over="ignore"):
        for lo in range(0, n, CHUNK):
            k = np.arange(lo + 1, min(n, lo + CHUNK) + 1, dtype=np.uint64)
            z = start + k * np.uint64(GOLDEN)  # the state after k steps, wrapping
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
            out[lo : lo + len(k)] = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return out


def random_tensor(seed, name, shape):
    n = int(np.prod(shape))
    u = seeded_uniform(seed, name, n)
    if len(shape) == 1:
        if name.endswith("running_var"):
            v = 1.0 + 2.0 * u
        elif name.endswith(".weight"):
            v = 0.5 + u
        else:
            v = 0.2 * (2.0 * u - 1.0)
    else:
        fan_in = int(np.prod(shape[1:]))
        v = (2.0 * u - 1.0) * np.sqrt(6.0 / fan_in)
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


class ZFNet(nn.Module):
    """DeepSight's `zfnet`: AlexNet's layout with Zeiler & Fergus's first layers (7x7/2 conv,
    5x5/2 conv, ceil-mode pools), no local response normalisation."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 7, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.Conv2d(96, 256, 5, stride=2, padding=0),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.Conv2d(256, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def build(arch):
    if arch == "zfnet":
        return ZFNet()
    return getattr(torchvision.models, arch)(weights=None)


# (arch, weight/input seed, [batch, height, width]); the non-224 sizes make the adaptive
# average pools non-trivial (uneven, overlapping windows).
CASES = [
    ("alexnet", 1, [1, 224, 224]),
    ("zfnet", 2, [1, 224, 224]),
    ("vgg11", 3, [1, 224, 224]),
    ("vgg11_bn", 4, [1, 224, 224]),
    ("vgg16", 5, [1, 224, 224]),
    ("vgg16_bn", 6, [1, 224, 224]),
    ("resnet18", 7, [1, 224, 224]),
    ("resnet50", 8, [1, 224, 224]),
    ("vgg11", 9, [1, 160, 160]),
    ("alexnet", 10, [1, 256, 200]),
]


def short(v):
    """The float32 as the shortest decimal that rounds back to it (json writes its repr)."""
    return float(str(np.float32(v)))


def main():
    torch.manual_seed(0)  # only the modules' own (overwritten) initialisation uses it
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    cases = []
    for arch, seed, (n, h, w) in CASES:
        model = build(arch).eval()
        # Every tensor but BatchNorm's step counter (unused at inference, kept as it is).
        state = {
            k: v if k.endswith("num_batches_tracked") else random_tensor(seed, k, tuple(v.shape))
            for k, v in model.state_dict().items()
        }
        model.load_state_dict(state, strict=True)
        x = (2.0 * seeded_uniform(seed, "input", n * 3 * h * w) - 1.0).astype(np.float32)
        x = torch.from_numpy(x.reshape(n, 3, h, w))
        with torch.no_grad():
            logits = model(x).numpy().astype(np.float32)
        print(f"{arch:9} seed {seed:2} {n}x3x{h}x{w}: max |logit| {np.abs(logits).max():.4g}")
        cases.append(
            {
                "arch": arch,
                "seed": seed,
                "input": [n, 3, h, w],
                "logits": [short(v) for v in logits.reshape(-1)],
            }
        )
    meta = {
        "generator": "tests/data/make_torchvision_refs.py",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cases": cases,
    }
    with open(os.path.join(HERE, "torchvision_refs.json"), "w") as f:
        json.dump(meta, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
