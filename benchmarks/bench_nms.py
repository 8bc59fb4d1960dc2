#!/usr/bin/env python
"""Non-max suppression on the CPU: cnnops against torchvision (nms, batched_nms).

The same suite as ``python -m cnnops bench nms`` (the code is cnnops.bench.nms, loaded from this
checkout); this script writes to benchmarks/results/ next to it unless --out says otherwise.

    python benchmarks/bench_nms.py [--layers a,b] [--quick] [--repeats N] [--out DIR]

Case names look like nms_5k_uniform_0.5 or batched_20k_clustered_80c; --quick runs N <= 5k only.
"""
from __future__ import annotations

import argparse
import sys

from _checkout import HERE, run_families  # benchmarks/ is on sys.path when run as a script


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per case (median reported)")
    parser.add_argument("--quick", action="store_true", help="2 repeats, N <= 5k only unless --layers")
    parser.add_argument("--out", default=str(HERE / "results"), help="directory for nms_cpu.json and nms_cpu.md")
    parser.add_argument("--layers", default=None, help="comma-separated case names (default: all)")
    args = parser.parse_args(argv)
    return run_families(["nms"], args.out, repeats=args.repeats, quick=args.quick, layers=args.layers)


if __name__ == "__main__":
    sys.exit(main())
