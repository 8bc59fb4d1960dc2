#!/usr/bin/env python
"""Unpooling, nearest upsampling and fractional max pooling on the CPU: cnnops against PyTorch.

The same suite as ``python -m cnnops bench unpool`` (cnnops.bench.unpool, loaded from this checkout);
writes benchmarks/results/unpool_cpu.json and .md next to this script unless --out says otherwise.

    python benchmarks/bench_unpool.py [--layers frac_max_sqrt2,upsample_x2] [--quick] [--repeats N] [--out DIR]
"""
from __future__ import annotations

import argparse
import sys

from _checkout import HERE, run_families  # benchmarks/ is on sys.path when run as a script


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per case (median reported)")
    parser.add_argument("--quick", action="store_true", help="batch 4 and 2 repeats, for a smoke run")
    parser.add_argument("--out", default=str(HERE / "results"), help="directory for unpool_cpu.json and .md")
    parser.add_argument("--layers", default=None, help="comma-separated case names (default: all)")
    args = parser.parse_args(argv)
    return run_families(["unpool"], args.out, repeats=args.repeats, quick=args.quick, layers=args.layers)


if __name__ == "__main__":
    sys.exit(main())
