"""The model-zoo check of the ONNX importer: torchvision classifiers with every tensor random
(BatchNorm statistics and ConvNeXt's layer scale included), exported by PyTorch, with PyTorch's
logits, input gradient and Grad-CAM inputs at the usual pytorch-grad-cam target layer.

    python3 scripts/make_torchvision_zoo.py DIR [MODEL ...]     # DIR/<model>.onnx, DIR/<model>.json
    DEEPSIGHT_ZOO_DIR=DIR cargo test --release -p deepsight-onnx --test torchvision_zoo -- --ignored --nocapture

The small nets of `crates/deepsight-onnx/tests/data/make_modern_zoo.py` (ConvNeXt, ShuffleNet,
CSP, GroupNorm, PReLU/Mish/ELU) run in every `cargo test`; this one needs torchvision and about
2 GB of disk, so its test is ignored by default.
"""

import json
import os
import sys
import time

import torch
import torch.nn as nn
import torchvision.models as tvm

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "deepsight-onnx", "tests", "data"))
from make_modern_zoo import randomise, value_named  # noqa: E402


def gn_resnet18():
    return tvm.resnet18(norm_layer=lambda c: nn.GroupNorm(8, c))


# name: (constructor, input size, Grad-CAM target module)
MODELS = {
    "alexnet": (lambda: tvm.alexnet(), 224, "features.11"),
    "vgg11_bn": (lambda: tvm.vgg11_bn(), 224, "features.27"),
    "resnet18": (lambda: tvm.resnet18(), 224, "layer4.1"),
    "resnet50": (lambda: tvm.resnet50(), 224, "layer4.2"),
    "resnext50_32x4d": (lambda: tvm.resnext50_32x4d(), 224, "layer4.2"),
    "wide_resnet50_2": (lambda: tvm.wide_resnet50_2(), 224, "layer4.2"),
    "densenet121": (lambda: tvm.densenet121(), 224, "features.norm5"),
    "googlenet": (lambda: tvm.googlenet(aux_logits=False, init_weights=False), 224, "inception5b"),
    "inception_v3": (lambda: tvm.inception_v3(aux_logits=False, init_weights=False), 299, "Mixed_7c"),
    "mobilenet_v2": (lambda: tvm.mobilenet_v2(), 224, "features.18"),
    "mobilenet_v3_large": (lambda: tvm.mobilenet_v3_large(), 224, "features.16"),
    "mobilenet_v3_small": (lambda: tvm.mobilenet_v3_small(), 224, "features.12"),
    "efficientnet_b0": (lambda: tvm.efficientnet_b0(), 224, "features.8"),
    "efficientnet_v2_s": (lambda: tvm.efficientnet_v2_s(), 224, "features.7"),
    "mnasnet1_0": (lambda: tvm.mnasnet1_0(), 224, "layers.16"),
    "squeezenet1_1": (lambda: tvm.squeezenet1_1(), 224, "features.12"),
    "regnet_y_400mf": (lambda: tvm.regnet_y_400mf(), 224, "trunk_output"),
    "convnext_tiny": (lambda: tvm.convnext_tiny(), 224, "features.7"),
    "shufflenet_v2_x1_0": (lambda: tvm.shufflenet_v2_x1_0(), 224, "conv5"),
    "resnet18_groupnorm": (gn_resnet18, 224, "layer4.1"),
}


def main():
    out_dir = sys.argv[1]
    names = sys.argv[2:] or list(MODELS)
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(2)
    for name in names:
        make, size, cam = MODELS[name]
        t0 = time.time()
        torch.manual_seed(0)
        model = randomise(make())
        x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(2))
        store = {}
        module = dict(model.named_modules())[cam]
        hook = module.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
        xg = x.clone().requires_grad_(True)
        logits = model(xg)
        target = int(logits[0].argmax())
        store["a"].retain_grad()
        logits[0, target].backward()
        hook.remove()
        a = store["a"]
        path = os.path.join(out_dir, f"{name}.onnx")
        torch.onnx.export(model, (x,), path, opset_version=17, dynamo=False,
                          input_names=["input"], output_names=["logits"])
        layer = value_named(path, x, a.detach().numpy())
        ref = {
            "input": x.flatten().tolist(), "shape": list(x.shape), "target": target,
            "logits": logits[0].tolist(), "input_grad": xg.grad.flatten().tolist(),
            "cams": [{"module": cam, "layer": layer, "shape": list(a.shape),
                      "activation": a.detach().flatten().tolist(), "gradient": a.grad.flatten().tolist()}],
        }
        with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
            json.dump(ref, f)
        print(f"{name}: {os.path.getsize(path) / 1e6:.1f} MB, cam {cam} -> {layer}, {time.time() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
