"""Multiply-accumulates of exact incremental occlusion on EfficientNet-Lite0 at 224x224: the changed
region of every convolution for a 32x32 patch at every window position, against full re-inference.
    python3 scripts/lite0_occlusion_macs.py
Region rule (per axis): out_lo = ceil((lo + pad - (k-1)) / s), out_hi = floor((hi - 1 + pad) / s) + 1,
with TF-SAME padding as Lite0's; a region above `thr` of its layer is computed in full (DeepSight's
fall-back, 0.6) or never (thr > 1: the exact lower bound)."""
import math
H = 224
# (expand ratio, kernel, stride, in, out) of Lite0's 16 MBConv blocks
blocks = [(1, 3, 1, 32, 16), (6, 3, 2, 16, 24), (6, 3, 1, 24, 24), (6, 5, 2, 24, 40), (6, 5, 1, 40, 40),
          (6, 3, 2, 40, 80), (6, 3, 1, 80, 80), (6, 3, 1, 80, 80), (6, 5, 1, 80, 112), (6, 5, 1, 112, 112),
          (6, 5, 1, 112, 112), (6, 5, 2, 112, 192), (6, 5, 1, 192, 192), (6, 5, 1, 192, 192),
          (6, 5, 1, 192, 192), (6, 3, 1, 192, 320)]
convs = [(3, 2, 3, 32, 1)]  # (kernel, stride, in, out, groups)
for e, k, s, cin, cout in blocks:
    mid = cin * e
    if e != 1:
        convs.append((1, 1, cin, mid, 1))
    convs.append((k, s, mid, mid, mid))
    convs.append((1, 1, mid, cout, 1))
convs.append((1, 1, 320, 1280, 1))


def span(lo, hi, n, k, s):
    out = math.ceil(n / s)
    pad = max((out - 1) * s + k - n, 0) // 2
    return max(0, math.ceil((lo + pad - (k - 1)) / s)), min(out, (hi - 1 + pad) // s + 1), out


def macs(py, px, patch=32, thr=0.6):
    n, r, full, inc, fallen = H, [(py, py + patch), (px, px + patch)], 0, 0, False
    for k, s, cin, cout, g in convs:
        m = cin // g * k * k * cout
        sp = [span(a, b, n, k, s) for a, b in r]
        out = sp[0][2]
        full += out * out * m
        size = [o[1] - o[0] for o in sp]
        fallen = fallen or size[0] * size[1] > thr * out * out
        inc += out * out * m if fallen else size[0] * size[1] * m
        r, n = [(o[0], o[1]) for o in sp], out
    return full, inc


for stride, thr in [(16, 0.6), (8, 0.6), (8, 1.01)]:
    tot = [0, 0]
    for py in range(0, H - 32 + 1, stride):
        for px in range(0, H - 32 + 1, stride):
            f, i = macs(py, px, thr=thr)
            tot[0] += f
            tot[1] += i
    print(f"stride {stride}, fall-back above {thr}: full {tot[0] / 1e9:.1f} GMAC, incremental "
          f"{tot[1] / 1e9:.1f} GMAC, {tot[0] / tot[1]:.2f}x fewer")
