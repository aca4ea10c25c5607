"""Exports `torch_lrn_*.onnx`, a small ZF-Net/AlexNet-like classifier with three
`nn.LocalResponseNorm` layers, and `torch_lrn.json` with PyTorch's logits for a fixed input.

PyTorch has no LRN operator of its own: `F.local_response_norm` is Python that squares the input,
views it as [N, 1, C, H, W], zero-pads the channel axis by size//2 before and (size-1)//2 after,
average-pools with a (size, 1, 1) window, views it back, then computes x / (k + alpha * avg)^beta.
The exporters write that chain node by node; DeepSight recognises it as one LRN.

The three layers cover an odd window with AlexNet's constants (size 5, alpha 1e-4, beta 0.75,
k 2), an even window (size 4), whose channels differ from ONNX's own LRN (PyTorch puts size/2
channels before c, ONNX (size-1)/2), and a size-3 window. AlexNet's constants barely change the
logits (alpha/size * sum is ~1e-4 of k), so the even and the size-3 layers use a large alpha: a
wrong window or divisor shows in the logits (checked below).

Files (all for one model and one input):
  torch_lrn_opset13.onnx      legacy TorchScript exporter, opset 13, dynamic batch
  torch_lrn_opset17.onnx      legacy TorchScript exporter, opset 17, fixed batch 1
  torch_lrn_opset18.onnx      legacy TorchScript exporter, opset 18, dynamic batch
  torch_lrn_dynamo.onnx       torch.export-based (dynamo) exporter, when it runs here

Re-run with torch and onnx (and onnxscript for the dynamo file):  python make_torch_lrn.py
(writes beside itself)."""
import json, os, sys
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(11)
LRNS = [dict(size=5, alpha=1e-4, beta=0.75, k=2.0), dict(size=4, alpha=2.0, beta=0.75, k=1.0),
        dict(size=3, alpha=1.5, beta=0.6, k=1.5)]


class ZfLike(nn.Module):
    def __init__(self, lrn=nn.LocalResponseNorm):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 5, stride=2, padding=2)
        self.n1 = lrn(**LRNS[0])
        self.c2 = nn.Conv2d(16, 24, 3, padding=1)
        self.n2 = lrn(**LRNS[1])
        self.c3 = nn.Conv2d(24, 32, 3, padding=1)
        self.n3 = lrn(**LRNS[2])
        self.pool = nn.MaxPool2d(3, 2)
        self.fc1 = nn.Linear(32 * 3 * 3, 32)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(self.n1(F.relu(self.c1(x))))  # 16x16x16 -> 7x7
        x = self.pool(self.n2(F.relu(self.c2(x))))  # 24x7x7 -> 3x3
        x = self.n3(F.relu(self.c3(x)))  # 32x3x3
        x = torch.flatten(x, 1)
        return self.fc2(self.drop(F.relu(self.fc1(x))))


class OnnxWindowLrn(nn.Module):
    """ONNX's LRN window, c - (size-1)//2 ..= c + size//2: what a wrong import would compute."""

    def __init__(self, size, alpha, beta, k):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        sq = F.pad((x * x).unsqueeze(1), (0, 0, 0, 0, (self.size - 1) // 2, self.size // 2)).squeeze(1)
        s = sum(sq[:, i:i + x.shape[1]] for i in range(self.size))
        return x / (self.k + self.alpha / self.size * s) ** self.beta


m = ZfLike().eval()
with torch.no_grad():  # livelier activations than the default init, so that LRN acts
    for c in (m.c1, m.c2, m.c3):
        c.weight.mul_(2.0)
x = torch.rand(2, 3, 32, 32)
with torch.no_grad():
    logits = m(x)
    wrong = ZfLike(OnnxWindowLrn).eval()
    wrong.load_state_dict(m.state_dict())
    gap = (wrong(x) - logits).abs().max().item()
    scale = logits.abs().max().item()
print("logits", logits[0, :5].tolist(), "max |logit|", scale)
print(f"ONNX-window LRN instead of PyTorch's: max logit difference {gap:.3e}")
assert gap > 1e-3 * scale, "the even-size layer does not show in the logits"

dynamic = {"input": {0: "batch"}, "logits": {0: "batch"}}
for opset, dyn in [(13, True), (17, False), (18, True)]:
    path = os.path.join(here, f"torch_lrn_opset{opset}.onnx")
    torch.onnx.export(m, (x[:1],), path, input_names=["input"], output_names=["logits"], dynamo=False,
                      opset_version=opset, dynamic_axes=dynamic if dyn else None)
    onnx.checker.check_model(onnx.load(path))
    print(path, os.path.getsize(path), "bytes")

try:
    path = os.path.join(here, "torch_lrn_dynamo.onnx")
    prog = torch.onnx.export(m, (x[:1],), dynamo=True, input_names=["input"], output_names=["logits"],
                             dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    prog.optimize()
    prog.save(path)
    onnx.checker.check_model(onnx.load(path))
    print(path, os.path.getsize(path), "bytes")
except Exception as e:  # the dynamo exporter needs onnxscript; the legacy files suffice
    print("dynamo export skipped:", type(e).__name__, str(e)[:300], file=sys.stderr)

out = {"input": x.flatten().tolist(), "shape": list(x.shape), "logits": logits.flatten().tolist(),
       "lrn": LRNS, "torch": torch.__version__, "onnx_window_logit_gap": gap}
with open(os.path.join(here, "torch_lrn.json"), "w") as f:
    json.dump(out, f)
