"""A/B timing of the same calls between two or more builds of cnnops.

Each argument is a directory that holds an importable `cnnops` package (a build's python/cnnops
with its _C extension copied in). Every round runs one child process per build, in turn, so the
builds see the same machine state; each child times every case of the chosen set 15 times after a
warm-up and reports the median. The table gives, per case, the median over rounds of those
medians, and the ratio to the first build. Sets: `weight_grad` (conv2d_backward's weight
gradient on six layers), `kernels` (one call of each kernel family: Winograd and depthwise
convolution, stride-2 max pooling, average pooling, nearest upsampling x2 and max_unpool
gradients, pairwise IoU, GIoU loss and its backward), `winograd` (the Winograd forward on 3x3, 5x5 and
3-D layers), `smallc` (the slab forward in both orientations, float32 and float64).

    python benchmarks/ab_builds.py /tmp/pkg_before /tmp/pkg_after --set weight_grad --rounds 5 --threads 2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

WEIGHT_GRAD = {
    # name: (input shape, weight shape, options), float32
    "lenet_c2": ((32, 6, 14, 14), (16, 6, 5, 5), {}),
    "mnist_c2": ((64, 32, 14, 14), (64, 32, 5, 5), {"padding": 2}),
    "vgg_c1_2_b1": ((1, 64, 112, 112), (64, 64, 3, 3), {"padding": 1}),
    "r50_1x1": ((8, 256, 28, 28), (64, 256, 1, 1), {}),
    "r50_3x3s2": ((8, 128, 28, 28), (128, 128, 3, 3), {"stride": 2, "padding": 1}),
    "alex_c1": ((8, 3, 227, 227), (96, 3, 11, 11), {"stride": 4, "padding": 2}),
}

# name: a statement run with numpy as np, cnnops, and float32 arrays built by SETUP
KERNELS = {
    "winograd_3x3_fwd": "cnnops.conv2d(xw, ww, padding=1, algo='winograd')",
    "depthwise_fwd": "cnnops.conv2d(xd, wd, padding=1, groups=256)",
    "depthwise_bwd": "cnnops.conv2d_backward(gd, xd, wd, padding=1, groups=256)",
    "max_pool_3x3s2": "cnnops.max_pool2d(xp, 3, 2)",
    "avg_pool_2x2": "cnnops.avg_pool2d(xp, 2)",
    "upsample_x2_fwd": "cnnops.upsample_nearest2d(xu, scale_factor=2)",
    "upsample_x2_bwd": "cnnops.upsample_nearest2d_backward(gu, xu.shape, scale_factor=2)",
    "max_unpool_bwd": "cnnops.max_unpool2d_backward(gu, iu, 2)",
    "box_iou_2k": "cnnops.box_iou(b1, b2)",
    "giou_loss_fwd_bwd": "cnnops.giou_loss_backward(np.float32(1), b1, b2, reduction='sum')",
}
# name: a statement, as KERNELS; the Winograd forward on 3x3 and 5x5 layers and a 3-D layer
WINOGRAD = {
    "winograd_3x3_r50": "cnnops.conv2d(xw, ww, padding=1, algo='winograd')",
    "winograd_5x5_mnist_c2": "cnnops.conv2d(m2x, m2w, padding=2)",
    "winograd_vgg16_c5": "cnnops.conv2d(v5x, v5w, padding=1)",
    "winograd_conv3d_56": "cnnops.conv3d(x3, w3, padding=1)",
}
# name: a statement, as KERNELS; the slab (smallc) forward in both orientations, float and double
SMALLC = {
    "smallc_lenet5_c3": "cnnops.conv2d(l3x, l3w, algo='smallc')",
    "smallc_lenet5_c3_f64": "cnnops.conv2d(l3x.astype('f8'), l3w.astype('f8'), algo='smallc')",
    "smallc_mnist_c1": "cnnops.conv2d(m1x, m1w, padding=2, algo='smallc')",
    "smallc_alexnet_c1": "cnnops.conv2d(ax, aw, stride=4, padding=2, algo='smallc')",
    "smallc_r50_3x3s2": "cnnops.conv2d(rsx, rsw, stride=2, padding=1, algo='smallc')",
}
SETUP_SMALLC = """
l3x = rng.standard_normal((64, 6, 14, 14)).astype("f4"); l3w = rng.standard_normal((16, 6, 5, 5)).astype("f4")
m1x = rng.standard_normal((64, 1, 28, 28)).astype("f4"); m1w = rng.standard_normal((32, 1, 5, 5)).astype("f4")
ax = rng.standard_normal((8, 3, 227, 227)).astype("f4"); aw = rng.standard_normal((96, 3, 11, 11)).astype("f4")
rsx = rng.standard_normal((8, 64, 56, 56)).astype("f4"); rsw = rng.standard_normal((64, 64, 3, 3)).astype("f4")
"""
SETUP = """
xw = rng.standard_normal((8, 64, 56, 56)).astype("f4"); ww = rng.standard_normal((64, 64, 3, 3)).astype("f4")
xd = rng.standard_normal((8, 256, 56, 56)).astype("f4"); wd = rng.standard_normal((256, 1, 3, 3)).astype("f4")
gd = rng.standard_normal((8, 256, 56, 56)).astype("f4")
xp = rng.standard_normal((32, 64, 112, 112)).astype("f4")
xu = rng.standard_normal((32, 64, 56, 56)).astype("f4"); gu = rng.standard_normal((32, 64, 112, 112)).astype("f4")
iu = cnnops.max_pool2d(gu, 2, return_indices=True)[1]
lo = rng.random((2000, 2)).astype("f4") * 100
b1 = np.concatenate([lo, lo + 1 + rng.random((2000, 2)).astype("f4") * 50], 1)
b2 = b1[::-1].copy() + 3
"""
SETUP_WINOGRAD = """
xw = rng.standard_normal((8, 64, 56, 56)).astype("f4"); ww = rng.standard_normal((64, 64, 3, 3)).astype("f4")
m2x = rng.standard_normal((64, 32, 14, 14)).astype("f4"); m2w = rng.standard_normal((64, 32, 5, 5)).astype("f4")
v5x = rng.standard_normal((8, 512, 14, 14)).astype("f4"); v5w = rng.standard_normal((512, 512, 3, 3)).astype("f4")
x3 = rng.standard_normal((4, 32, 16, 56, 56)).astype("f4"); w3 = rng.standard_normal((32, 32, 3, 3, 3)).astype("f4")
"""

CHILD = r"""
import json, sys, time
# an editable install's import hook would win over PYTHONPATH: drop it so the build under test loads
sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__]
import numpy as np
import cnnops
which, spec, setup = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
calls = {}
if which == "weight_grad":
    for name, (xs, ws, kw) in spec.items():
        x = rng.standard_normal(xs).astype("f4")
        w = rng.standard_normal(ws).astype("f4")
        gy = rng.standard_normal(cnnops.conv2d(x, w, **kw).shape).astype("f4")
        calls[name] = (lambda gy=gy, x=x, w=w, kw=kw:
                       cnnops.conv2d_backward(gy, x, w, needs=(False, True, False), **kw))
else:
    env = {"np": np, "cnnops": cnnops, "rng": rng}
    exec(setup, env)
    for name, stmt in spec.items():
        calls[name] = (lambda stmt=stmt: eval(stmt, env))
out = {}
for name, run in calls.items():
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
    ap.add_argument("--set", choices=("weight_grad", "kernels", "winograd", "smallc"), default="weight_grad")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    if args.rounds < 1 or args.threads < 1:
        ap.error("--rounds and --threads must be >= 1")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    spec = {"weight_grad": WEIGHT_GRAD, "kernels": KERNELS, "winograd": WINOGRAD, "smallc": SMALLC}[args.set]
    setup = {"winograd": SETUP_WINOGRAD, "smallc": SETUP_SMALLC}.get(args.set, SETUP)
    times = {b: {name: [] for name in spec} for b in args.builds}
    for _ in range(args.rounds):
        for b in args.builds:
            res = subprocess.run([sys.executable, "-c", CHILD, args.set, json.dumps(spec), setup], check=True,
                                 capture_output=True, text=True, env=dict(env, PYTHONPATH=b))
            rep = json.loads(res.stdout)
            if not rep["file"].startswith(os.path.abspath(b)):
                sys.exit(f"{b}: imported {rep['file']} instead of the build in that directory")
            for name, t in rep["times"].items():
                times[b][name].append(t)
    first = args.builds[0]
    label = "layer" if args.set == "weight_grad" else "call"
    print(f"| {label} | " + " | ".join(f"{b} (ms)" for b in args.builds) + " | " +
          " | ".join(f"{b} / {first}" for b in args.builds[1:]) + " |")
    print("|---" * (2 * len(args.builds)) + "|")
    for name in spec:
        med = [statistics.median(times[b][name]) * 1e3 for b in args.builds]
        print(f"| {name} | " + " | ".join(f"{m:.2f}" for m in med) + " | " +
              " | ".join(f"{m / med[0]:.2f}" for m in med[1:]) + " |")


if __name__ == "__main__":
    main()
