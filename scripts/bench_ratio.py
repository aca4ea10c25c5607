"""Side-by-side table of `deepsight bench --json` and `../shared/bench/peers.py --json` results.

    python3 scripts/bench_ratio.py ours.json peers.json [more-ours.json ...]
Prints a Markdown table: for each (model, task, batch) the medians of both sides and the ratio
DeepSight / PyTorch (below 1 means DeepSight is faster). With several `ours` files, the median of
their medians is used (runs taken before and after the peers, to bracket machine drift).
"""
import json
import statistics
import sys

PAIRS = [  # (our task, peer task)
    ("forward", "forward"),
    ("forward+backward to input", "forward_backward_input"),
    ("forward+backward to input, guided", "guided_backprop(captum)"),
    ("saliency", "saliency(captum)"),
    ("guided-backprop", "guided_backprop(captum)"),
    ("gradcam", "gradcam(pgc)"),
    ("gradcam++", "gradcam_pp(pgc)"),
    ("integrated-gradients (32 steps)", "integrated_gradients_32(captum)"),
    ("occlusion w32 s16", "occlusion_w32_s16(captum)"),
    ("occlusion w32 s16, full inference", "occlusion_w32_s16(captum)"),
    ("occlusion w32 s8", "occlusion_w32_s8(captum)"),
    ("occlusion w32 s8, full inference", "occlusion_w32_s8(captum)"),
    ("scorecam", "scorecam(pgc)"),
]


def main():
    ours_files, peers_file = [sys.argv[1]] + sys.argv[3:], sys.argv[2]
    peers = {(r["model"], r["task"], r["batch"]): r for r in json.load(open(peers_file))}
    ours = {}
    for f in ours_files:
        for r in json.load(open(f)):
            ours.setdefault((r["model"], r["task"], r["batch"]), []).append(r)
    print("| model | task | batch | DeepSight median ms | PyTorch median ms | ratio | DeepSight % of GEMM peak |")
    print("|---|---|---|---|---|---|---|")
    for (model, task, batch), rows in sorted(ours.items()):
        peer_task = dict(PAIRS).get(task)
        p = peers.get((model, peer_task, batch))
        if p is None:
            continue
        med = statistics.median(r["median_ms"] for r in rows)
        peak = rows[0]["gemm_peak_gflops"]
        frac = rows[0]["gflop"] / (med * 1e-3) / peak * 100 if rows[0]["gflop"] else float("nan")
        print(f"| {model} | {task} | {batch} | {med:.1f} | {p['median_ms']:.1f} | {med / p['median_ms']:.2f} | {frac:.0f}% |")
    loads = sorted({round(r["load"], 2) for r in peers.values()})
    print(f"\nPyTorch {next(iter(peers.values()))['torch']}, {next(iter(peers.values()))['threads']} threads; "
          f"load average during the peers' run: {loads[0]}-{loads[-1]}")


if __name__ == "__main__":
    main()
