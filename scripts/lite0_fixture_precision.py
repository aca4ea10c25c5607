"""How reproducible is the Lite0 saliency fixture itself? Recomputes Captum's saliency with PyTorch
in float32 again, in float64, and in float32 with oneDNN switched off, and prints each one's
difference from the fixture (ReLU6 kink flips: see crates/deepsight-explain/tests/fixtures.rs).
    PEERS_VENV/bin/python scripts/lite0_fixture_precision.py [--save-f64 FILE.safetensors]
Run from the repository root with ../shared beside it."""
import os, sys, torch, torch.nn as nn
from safetensors.torch import load_file
from captum.attr import Saliency
from efficientnet_lite_pytorch import EfficientNet
SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")
fx = load_file(f"{SHARED}/fixtures/lite0.safetensors")
import json; man = json.load(open(f"{SHARED}/fixtures/manifest.json"))
cls = torch.as_tensor(man["lite0"]["target_classes"])
base = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=f"{SHARED}/models/efficientnet-lite0-57934424.pth").eval()
class Lite0(nn.Module):
    def __init__(s, m):
        super().__init__(); s.m = m
    def forward(s, x):
        return s.m._fc(s.m.extract_features(x).mean((2, 3)))
x = fx["input"]
ref = fx["saliency_max"]
def sal(model, x):
    return Saliency(model).attribute(x.clone(), target=cls, abs=True).detach().max(1).values.float()
def report(what, s):
    d = (s - ref).abs()
    for i in range(len(s)):
        print(f"{what} image {i}: max abs diff {d[i].max():.3e} mean {d[i].mean():.3e} (max |ref| {ref[i].abs().max():.3e}) pixels>1e-4: {(d[i] > 1e-4).sum().item()}")
m32 = Lite0(base).eval()
report("pytorch f32 again", sal(m32, x))
import copy
m64 = copy.deepcopy(m32).double()
report("pytorch f64", sal(m64, x.double()))
torch.backends.mkldnn.enabled = False
report("pytorch f32 no-mkldnn", sal(m32, x))
torch.backends.mkldnn.enabled = True
if "--save-f64" in sys.argv:
    from safetensors.torch import save_file
    out = sys.argv[sys.argv.index("--save-f64") + 1]
    save_file({"saliency_max": sal(m64, x.double()).contiguous()}, out)
