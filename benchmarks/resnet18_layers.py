#!/usr/bin/env python
"""Every distinct convolution of ResNet-18 (batch 16, 112x112 input, float32) through cnnops'
"auto" algorithm against PyTorch: forward, input gradient and weight gradient, each the best of
interleaved repeats (the minimum, as the steadiest statistic on a shared machine), and the totals
weighted by how often the layer occurs in the network. The layers of `python -m cnnops bench
torch`'s ResNet-18 case, one by one.

    python benchmarks/resnet18_layers.py [--threads 2] [--repeats 9] [--layers l4,l4a]
"""
from __future__ import annotations

import argparse
import sys
import time

# name: (C, K, input size, kernel, stride, padding, occurrences in the network)
LAYERS = {
    "stem": (3, 64, 112, 7, 2, 3, 1),
    "l1": (64, 64, 28, 3, 1, 1, 4),
    "l2a": (64, 128, 28, 3, 2, 1, 1),
    "l2": (128, 128, 14, 3, 1, 1, 3),
    "l2d": (64, 128, 28, 1, 2, 0, 1),
    "l3a": (128, 256, 14, 3, 2, 1, 1),
    "l3": (256, 256, 7, 3, 1, 1, 3),
    "l3d": (128, 256, 14, 1, 2, 0, 1),
    "l4a": (256, 512, 7, 3, 2, 1, 1),
    "l4": (512, 512, 4, 3, 1, 1, 3),
    "l4d": (256, 512, 7, 1, 2, 0, 1),
}


def best_of(fns: dict, repeats: int) -> dict:
    for f in fns.values():
        f()
    out = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            out[k] = min(out[k], (time.perf_counter() - t0) * 1e3)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="threads of both libraries (default 2)")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved repeats per case (default 9)")
    parser.add_argument("--layers", default=None, help="comma-separated layer names (default: all)")
    parser.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    args = parser.parse_args(argv)
    import torch

    import cnnops

    torch.set_num_threads(args.threads)
    cnnops.set_num_threads(args.threads)
    F = torch.nn.functional
    names = args.layers.split(",") if args.layers else list(LAYERS)
    totals = {}
    print(f"ResNet-18 layers, batch {args.batch}, {args.threads} threads, SIMD {cnnops.simd_level()}: "
          "torch ms / cnnops ms (speed-up)")
    for name in names:
        C, K, H, k, s, p, count = LAYERS[name]
        torch.manual_seed(0)
        x, w = torch.randn(args.batch, C, H, H), torch.randn(K, C, k, k) * 0.1
        dy = torch.randn_like(F.conv2d(x, w, None, s, p))

        def aten(mask):
            return lambda: torch.ops.aten.convolution_backward(dy, x, w, None, [s, s], [p, p], [1, 1], False, [0, 0],
                                                               1, mask)

        cases = {"fwd": (lambda: F.conv2d(x, w, None, s, p), lambda: cnnops.conv2d(x, w, None, s, p)),
                 "dx": (aten([True, False, False]),
                        lambda: cnnops.conv2d_backward(dy, x, w, s, p, needs=(True, False, False))),
                 "dw": (aten([False, True, False]),
                        lambda: cnnops.conv2d_backward(dy, x, w, s, p, needs=(False, True, False)))}
        cells = []
        for what, (peer, ours) in cases.items():
            if C == 3 and what == "dx":  # the network's input needs no gradient
                continue
            r = best_of({"torch": peer, "cnnops": ours}, args.repeats)
            tot = totals.setdefault(what, [0.0, 0.0])
            tot[0] += r["torch"] * count
            tot[1] += r["cnnops"] * count
            cells.append(f"{what} {r['torch']:6.2f}/{r['cnnops']:6.2f} ({r['torch'] / r['cnnops']:.2f}x)")
        algo = cnnops.conv2d_algo(x, w, s, p)
        print(f"{name:5s} x{count} {algo:9s} " + "  ".join(cells), flush=True)
    print("weighted totals: " + "  ".join(f"{k} {a:.1f}/{b:.1f} ({a / b:.2f}x)" for k, (a, b) in totals.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
