"""Forward-pass time of each exported zoo model (scripts/make_torchvision_zoo.py) under two
`deepsight` binaries: the sum of the per-step times `DEEPSIGHT_PROFILE=1` prints for one
`classify` (process start, file reading and import excluded), median of 5 runs in alternating
order.

    python3 scripts/zoo_forward_speed.py ZOO_DIR OLD_BIN NEW_BIN
"""
import glob
import json
import os
import re
import statistics
import subprocess
import sys

zoo, old, new = sys.argv[1:4]
here = os.path.dirname(os.path.abspath(__file__))
image = os.path.join(here, "..", "samples", "dog.jpg")


def forward_ms(binary, model, size):
    env = dict(os.environ, DEEPSIGHT_PROFILE="1")
    p = subprocess.run([binary, "classify", image, "--model", model, "--preprocess", "torchvision",
                        "--input-size", f"{size}x{size}"], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        return None
    return sum(float(m) for m in re.findall(r"^profile\s+([0-9.]+) ms", p.stderr, re.M))


print("| model | before ms | after ms | after / before |")
print("|---|---|---|---|")
for path in sorted(glob.glob(os.path.join(zoo, "*.onnx"))):
    name = os.path.basename(path)[:-5]
    size = json.load(open(os.path.join(zoo, name + ".json")))["shape"][2]
    times = {old: [], new: []}
    for k in range(5):
        for b in ([old, new] if k % 2 == 0 else [new, old]):
            times[b].append(forward_ms(b, path, size))
    a, b = times[old], times[new]
    if None in a:
        print(f"| {name} | refused | {statistics.median(b):.1f} | - |")
    else:
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"| {name} | {ma:.1f} | {mb:.1f} | {mb / ma:.2f} |")
