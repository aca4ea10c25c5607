"""Time ONE training step of L-CAM-Img (Gkartzonika et al. 2022, code bmezaris/L-CAM) in PyTorch.

The peer figure for DeepSight's L-CAM-Img trainer: a frozen EfficientNet-Lite0 (real weights from
shared/models/efficientnet-lite0-57934424.pth, built exactly as shared/bench/peers.py builds it),
batch 32, 224x224, CPU, 2 threads. The trained attention module is Conv2d(1280, 1000, 1, bias=True)
on the 1280x7x7 map that feeds global average pooling (head conv + BN + ReLU6). One step, as the
authors train:

    x01 ~ U[0,1]^[B,3,224,224];  norm(x) = (x*255 - 127)/128               (Lite0 normalisation)
    no_grad:  F = features(norm(x01));  labels = argmax(fc(mean(F)))        ("clean" pass)
    a = sigmoid(conv1x1(F));  a_y = a[arange(B), labels] -> [B,1,7,7]
    mask = interpolate(a_y, 224x224, bilinear, align_corners=False)
    logits = classifier(norm(x01 * mask))            ("masked" forward; grads flow through the
                                                       frozen net into the mask)
    loss = 1.5*CE(logits, labels) + 2*mean((a_y+0.0005)**0.3) + 0.01*TV(a_y)
    TV(M) = [sum(dH^2) + sum(dW^2) + 0.3*sum(M[:,:,-1,:]^2 + M[:,:,0,:]^2 + M[:,:,:,-1]^2 + M[:,:,:,0]^2)] / (2B)
    loss.backward()                                   ("backward")
    SGD(lr 1e-4 weights / 2e-4 bias, momentum 0.9, nesterov, wd 5e-4).step(); zero_grad()   ("optim")

Prints (and with --json writes) one JSON object: median and min ms of the whole step and of each
phase over --repeats timed steps after --warmup untimed ones, images/s of the whole step, torch
version, threads, load average and the date/time.

One-time set-up (the peers' venv of shared/bench/peers.py; about 6 GB, a few minutes):
    python3 -m venv /work/peers-venv && /work/peers-venv/bin/pip install torch torchvision captum grad-cam efficientnet-lite-pytorch
Run (from the repository root, shared/ at ../shared):
    /work/peers-venv/bin/python scripts/lcam_train_step_torch.py --batch 32 --repeats 7 --warmup 2 --threads 2 --json lcam_torch.json
"""
import argparse, datetime, json, os, statistics, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as Fn

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("DEEPSIGHT_SHARED", os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared"))


def lite0():
    """EfficientNet-Lite0 with its real weights, the same construction as shared/bench/peers.py."""
    from efficientnet_lite_pytorch import EfficientNet
    base = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=os.path.join(
        SHARED, "models", "efficientnet-lite0-57934424.pth")).eval()

    class Lite0(nn.Module):
        def __init__(s, m):
            super().__init__(); s.m = m
        def features(s, x):          # head conv + BN + ReLU6: the 1280x7x7 map before pooling
            return s.m.extract_features(x)
        def head(s, f):
            return s.m._fc(f.mean((2, 3)))
        def forward(s, x):
            return s.head(s.features(x))
    return Lite0(base).eval()


def norm(x):
    return (x * 255.0 - 127.0) / 128.0


def tv(m):
    b = m.shape[0]
    s = ((m[:, :, 1:, :] - m[:, :, :-1, :]) ** 2).sum() + ((m[:, :, :, 1:] - m[:, :, :, :-1]) ** 2).sum()
    s = s + 0.3 * (m[:, :, -1, :] ** 2 + m[:, :, 0, :] ** 2).sum() + 0.3 * (m[:, :, :, -1] ** 2 + m[:, :, :, 0] ** 2).sum()
    return s / (2 * b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    model = lite0()
    for p in model.parameters():
        p.requires_grad_(False)
    att = nn.Conv2d(1280, 1000, kernel_size=1, bias=True)
    opt = torch.optim.SGD([{"params": [att.weight], "lr": 1e-4}, {"params": [att.bias], "lr": 2e-4}],
                          lr=1e-4, momentum=0.9, nesterov=True, weight_decay=5e-4)
    B = a.batch
    ar = torch.arange(B)

    def step(x01):
        t0 = time.perf_counter()
        with torch.no_grad():
            f = model.features(norm(x01))
            labels = model.head(f).argmax(1)
        t1 = time.perf_counter()
        a_y = torch.sigmoid(att(f))[ar, labels].unsqueeze(1)                    # [B,1,7,7]
        mask = Fn.interpolate(a_y, size=x01.shape[-2:], mode="bilinear", align_corners=False)
        logits = model(norm(x01 * mask))
        loss = 1.5 * Fn.cross_entropy(logits, labels) + 2.0 * ((a_y + 0.0005) ** 0.3).mean() + 0.01 * tv(a_y)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        opt.step(); opt.zero_grad()
        t4 = time.perf_counter()
        return [(t4 - t0) * 1e3, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3], loss.item()

    names = ["step", "clean_nograd", "masked_forward", "backward", "optim"]
    rows, losses = [], []
    for i in range(a.warmup + a.repeats):
        x01 = torch.rand(B, 3, 224, 224)
        t, l = step(x01)
        if i >= a.warmup:
            rows.append(t); losses.append(l)
        print(f"step {i}{' (warm-up)' if i < a.warmup else ''}: " + "  ".join(
            f"{n} {v:.1f}" for n, v in zip(names, t)) + f" ms  loss {l:.4f}", file=sys.stderr, flush=True)
    out = {"task": "lcam_img_train_step", "model": "lite0", "batch": B, "resolution": 224,
           "repeats": a.repeats, "warmup": a.warmup}
    for k, n in enumerate(names):
        col = [r[k] for r in rows]
        out[f"{n}_median_ms"] = round(statistics.median(col), 2)
        out[f"{n}_min_ms"] = round(min(col), 2)
    out["images_per_s"] = round(B / (out["step_median_ms"] / 1e3), 2)
    out["loss_first_last"] = [round(losses[0], 5), round(losses[-1], 5)]
    out.update(torch=torch.__version__, threads=torch.get_num_threads(), load=list(os.getloadavg()),
               datetime=datetime.datetime.now().astimezone().isoformat(timespec="seconds"))
    print(json.dumps(out, indent=1))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
