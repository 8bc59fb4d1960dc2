#!/usr/bin/env python
"""Pooling (and, when present, unpooling) on the CPU: cnnops against PyTorch, forward and backward.

The same suite as ``python -m cnnops bench pool`` (cnnops.bench.pool, loaded from this checkout);
when ``cnnops.bench.unpool`` exists it runs too. Results go to benchmarks/results/ next to this
script unless --out says otherwise.

    python benchmarks/bench_pool.py [--layers a,b] [--quick] [--repeats N] [--out DIR]
"""
from __future__ import annotations

import argparse
import importlib
import sys

from _checkout import HERE, import_bench  # benchmarks/ is on sys.path when run as a script


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per case (median reported)")
    parser.add_argument("--quick", action="store_true", help="2 repeats per case, for a smoke run")
    parser.add_argument("--out", default=str(HERE / "results"), help="directory for pool_cpu.json and pool_cpu.md")
    parser.add_argument("--layers", default=None, help="comma-separated pooling case names (default: all)")
    args = parser.parse_args(argv)
    import_bench()
    from cnnops.bench import pool

    rc = pool.run(repeats=args.repeats, quick=args.quick, out=args.out, layers=args.layers)
    try:
        unpool = importlib.import_module("cnnops.bench.unpool")
    except ImportError:
        return rc
    rc2 = unpool.run(repeats=args.repeats, quick=args.quick, out=args.out)
    return max(rc, rc2)


if __name__ == "__main__":
    sys.exit(main())
