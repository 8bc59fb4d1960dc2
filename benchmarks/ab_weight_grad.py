"""A/B timing of conv2d's weight gradient between two or more builds of cnnops.

Each argument is a directory that holds an importable `cnnops` package (a build's python/cnnops
with its _C extension copied in). Every round runs one child process per build, in turn, so the
builds see the same machine state; each child times `conv2d_backward(..., needs=(False, True,
False))` 15 times per layer after a warm-up and reports the median. The table gives, per layer,
the median over rounds of those medians, and the ratio to the first build.

    python benchmarks/ab_weight_grad.py /tmp/pkg_before /tmp/pkg_after --rounds 5 --threads 2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

LAYERS = {
    # name: (input shape, weight shape, options), float32
    "lenet_c2": ((32, 6, 14, 14), (16, 6, 5, 5), {}),
    "mnist_c2": ((64, 32, 14, 14), (64, 32, 5, 5), {"padding": 2}),
    "vgg_c1_2_b1": ((1, 64, 112, 112), (64, 64, 3, 3), {"padding": 1}),
    "r50_1x1": ((8, 256, 28, 28), (64, 256, 1, 1), {}),
    "r50_3x3s2": ((8, 128, 28, 28), (128, 128, 3, 3), {"stride": 2, "padding": 1}),
    "alex_c1": ((8, 3, 227, 227), (96, 3, 11, 11), {"stride": 4, "padding": 2}),
}

CHILD = r"""
import json, sys, time
# an editable install's import hook would win over PYTHONPATH: drop it so the build under test loads
sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__]
import numpy as np
import cnnops
layers = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
out = {}
for name, (xs, ws, kw) in layers.items():
    x = rng.standard_normal(xs).astype("f4")
    w = rng.standard_normal(ws).astype("f4")
    gy = rng.standard_normal(cnnops.conv2d(x, w, **kw).shape).astype("f4")
    run = lambda: cnnops.conv2d_backward(gy, x, w, needs=(False, True, False), **kw)
    run()
    ts = []
    for _ in range(15):
        t = time.perf_counter(); run(); ts.append(time.perf_counter() - t)
    out[name] = sorted(ts)[len(ts) // 2]
print(json.dumps({"file": cnnops.__file__, "times": out}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("builds", nargs="+", help="directories holding a cnnops package")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    if args.rounds < 1 or args.threads < 1:
        ap.error("--rounds and --threads must be >= 1")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    times = {b: {name: [] for name in LAYERS} for b in args.builds}
    for _ in range(args.rounds):
        for b in args.builds:
            res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(LAYERS)], check=True, capture_output=True,
                                 text=True, env=dict(env, PYTHONPATH=b))
            rep = json.loads(res.stdout)
            if not rep["file"].startswith(os.path.abspath(b)):
                sys.exit(f"{b}: imported {rep['file']} instead of the build in that directory")
            for name, t in rep["times"].items():
                times[b][name].append(t)
    first = args.builds[0]
    print(f"| layer | " + " | ".join(f"{b} (ms)" for b in args.builds) + " | " +
          " | ".join(f"{b} / {first}" for b in args.builds[1:]) + " |")
    print("|---" * (2 * len(args.builds)) + "|")
    for name in LAYERS:
        med = [statistics.median(times[b][name]) * 1e3 for b in args.builds]
        print(f"| {name} | " + " | ".join(f"{m:.2f}" for m in med) + " | " +
              " | ".join(f"{m / med[0]:.2f}" for m in med[1:]) + " |")


if __name__ == "__main__":
    main()
