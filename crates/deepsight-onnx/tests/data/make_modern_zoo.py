"""Small modern CNNs exported by PyTorch, with PyTorch's own logits, input gradients and
Grad-CAM inputs, for `tests/modern_zoo.rs`.

Each net is a scaled-down copy of a published block with *every* tensor random (BatchNorm
statistics, ConvNeXt's layer scale, GroupNorm affine), so that a broken block cannot hide behind
an identity initialisation. Each is exported twice: by the TorchScript exporter at opset 17
(which spells GELU as Div/Erf/Add/Mul/Mul and GroupNorm as Reshape/InstanceNormalization/Reshape)
and by the dynamo exporter at opset 18.

    python3 make_modern_zoo.py      # writes modern_*.onnx and modern_zoo.json beside itself

torch 2.15, onnx 1.23, onnxscript 0.7 (pip); about 20 s on 2 cores.
"""

import json
import os

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)


class LayerNorm2d(nn.LayerNorm):
    """torchvision's ConvNeXt LayerNorm over channels of an NCHW map."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class CNBlock(nn.Module):
    """torchvision's ConvNeXt block: depthwise 7x7, NHWC LayerNorm, Linear 4x, exact GELU,
    Linear, layer scale, residual."""

    def __init__(self, c):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.fc1 = nn.Linear(c, 4 * c)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(4 * c, c)
        self.layer_scale = nn.Parameter(torch.rand(c, 1, 1) + 0.5)

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.fc2(self.act(self.fc1(self.norm(y))))
        y = y.permute(0, 3, 1, 2)
        return x + self.layer_scale * y


class ConvNeXtNano(nn.Module):
    # The block output (NCHW) and its GELU inside (NHWC: compared in canonical NCHW).
    cams = [("blocks.1", False), ("blocks.1.act", True)]

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 4, stride=4), LayerNorm2d(16, eps=1e-6))
        self.blocks = nn.Sequential(CNBlock(16), CNBlock(16))
        self.down = nn.Sequential(LayerNorm2d(16, eps=1e-6), nn.Conv2d(16, 24, 2, stride=2))
        self.last = CNBlock(24)
        self.norm = nn.LayerNorm(24, eps=1e-6)
        self.head = nn.Linear(24, 10)

    def forward(self, x):
        x = self.last(self.down(self.blocks(self.stem(x))))
        return self.head(self.norm(x.mean((-2, -1))))


def channel_shuffle(x, groups):
    n, c, h, w = x.shape
    x = x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous()
    return x.view(n, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNet V2's stride-1 unit: chunk, branch, concat, shuffle."""

    def __init__(self, c):
        super().__init__()
        h = c // 2
        self.branch = nn.Sequential(
            nn.Conv2d(h, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU(),
            nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False), nn.BatchNorm2d(h),
            nn.Conv2d(h, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU(),
        )

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat((a, self.branch(b)), 1), 2)


class ShuffleNano(nn.Module):
    cams = [("units.1", False)]

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 24, 3, stride=2, padding=1), nn.BatchNorm2d(24), nn.ReLU())
        self.units = nn.Sequential(ShuffleUnit(24), ShuffleUnit(24))
        self.head = nn.Linear(24, 10)

    def forward(self, x):
        return self.head(self.units(self.stem(x)).mean((2, 3)))


class CspNano(nn.Module):
    """CSPDarknet-style: split channels, Mish convs on one half, concat; Softplus, ELU, SELU,
    PReLU activations; GroupNorm; a bilinear and a nearest upsample fused back; CBAM-style
    channel mean/max attention; view(N, C, -1) pooling."""

    cams = [("fuse", False)]

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.gn = nn.GroupNorm(4, 16)
        self.prelu = nn.PReLU(16)
        self.part = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.Mish(), nn.Conv2d(8, 8, 1), nn.Softplus())
        self.down = nn.Sequential(nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ELU(0.7))
        self.fuse = nn.Sequential(nn.Conv2d(48, 16, 1), nn.SELU())
        self.spatial = nn.Conv2d(2, 1, 3, padding=1)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.prelu(self.gn(self.stem(x)))
        a, b = torch.split(x, [8, 8], dim=1)
        x = torch.cat([a, self.part(b)], 1)
        d = self.down(x)
        up1 = F.interpolate(d, scale_factor=2, mode="bilinear", align_corners=False)
        up2 = F.interpolate(d, scale_factor=2, mode="nearest")
        x = self.fuse(torch.cat([x, up1, up2], 1))
        att = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        x = x * torch.sigmoid(self.spatial(att))
        n, c = x.shape[:2]
        return self.head(x.view(n, c, -1).mean(-1) + 0.1 * x.view(n, c, -1).sum(-1) / 64)


def randomise(model):
    """Every parameter and buffer random, BatchNorm statistics included."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_scale" in name:
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if "weight" in name else 0.0))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.2)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return model.eval()


def reference(model, x, target):
    """Logits, the input gradient of the target logit, and each CAM layer's activation and
    gradient in [N, C, H, W]."""
    store = {}
    modules = dict(model.named_modules())
    hooks = [
        modules[path].register_forward_hook(lambda m, i, o, path=path: store.__setitem__(path, o))
        for path, _ in model.cams
    ]
    xg = x.clone().requires_grad_(True)
    logits = model(xg)
    for a in store.values():
        a.retain_grad()
    logits[0, target].backward()
    for h in hooks:
        h.remove()
    cams = []
    for path, nhwc in model.cams:
        a, g = store[path].detach(), store[path].grad
        if nhwc:
            a, g = a.permute(0, 3, 1, 2), g.permute(0, 3, 1, 2)
        cams.append({"module": path, "activation": a.flatten().tolist(), "gradient": g.flatten().tolist(),
                     "shape": list(a.shape), "raw": store[path].detach().numpy()})
    return {"logits": logits[0].tolist(), "input_grad": xg.grad.flatten().tolist()}, cams


def value_named(path, x, raw, feed=None):
    """The ONNX value equal to a module's output: every intermediate is run by onnxruntime and
    the last one holding the same numbers is taken (a rank-4 value also as NHWC, for Keras).
    `feed` replaces the default `{"input": x}`."""
    import onnxruntime as ort

    m = onnx.load(path)
    names = [o for n in m.graph.node for o in n.output if o]
    known = {o.name for o in m.graph.output}
    for name in names:
        if name not in known:
            m.graph.output.append(onnx.helper.ValueInfoProto(name=name))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed or {"input": x.numpy()})))
    for name in reversed(names):
        v = outs.get(name)
        for cand in [] if v is None else [v] + ([v.transpose(0, 2, 3, 1)] if v.ndim == 4 else []):
            if cand.shape == raw.shape and np.abs(cand - raw).max() <= 1e-4 * (1 + np.abs(raw).max()):
                return name
    return None


def main():
    out = {}
    for name, cls, size in [("convnext", ConvNeXtNano, 32), ("shuffle", ShuffleNano, 32), ("csp", CspNano, 32)]:
        model = randomise(cls())
        x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(2))
        target = 3
        ref, cams = reference(model, x, target)
        for exporter in ["legacy", "dynamo"]:
            path = os.path.join(HERE, f"modern_{name}_{exporter}.onnx")
            if exporter == "legacy":
                torch.onnx.export(model, (x,), path, opset_version=17, dynamo=False,
                                  input_names=["input"], output_names=["logits"])
            else:
                torch.onnx.export(model, (x,), path, opset_version=18, dynamo=True,
                                  input_names=["input"], output_names=["logits"], external_data=False)
            ops = sorted({n.op_type for n in onnx.load(path).graph.node})
            layers = [
                {k: v for k, v in dict(c, layer=value_named(path, x, c["raw"])).items() if k != "raw"}
                for c in cams
            ]
            out[f"{name}_{exporter}"] = dict(ref, input=x.flatten().tolist(), shape=list(x.shape), target=target,
                                             cams=layers, ops=ops)
            print(name, exporter, os.path.getsize(path), "bytes", [c["layer"] for c in layers], ops)
    with open(os.path.join(HERE, "modern_zoo.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
