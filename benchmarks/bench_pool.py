#!/usr/bin/env python
"""Pooling and unpooling on the CPU: cnnops against PyTorch, forward and backward.

The same suites as ``python -m cnnops bench pool`` and ``bench unpool`` (cnnops.bench.pool and
cnnops.bench.unpool, loaded from this checkout). Results go to benchmarks/results/ next to this
script unless --out says otherwise; the targets of benchmarks/targets.py are printed after the run.

    python benchmarks/bench_pool.py [--layers a,b] [--quick] [--repeats N] [--out DIR]

--layers names cases of the pooling suite; the unpooling suite then is skipped.
"""
from __future__ import annotations

import argparse
import sys

from _checkout import HERE, run_families  # benchmarks/ is on sys.path when run as a script


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per case (median reported)")
    parser.add_argument("--quick", action="store_true", help="2 repeats per case, for a smoke run")
    parser.add_argument("--out", default=str(HERE / "results"),
                        help="directory for pool_cpu.json, unpool_cpu.json and their .md pages")
    parser.add_argument("--layers", default=None, help="comma-separated pooling case names (default: all)")
    args = parser.parse_args(argv)
    families = ["pool"] if args.layers else ["pool", "unpool"]
    return run_families(families, args.out, repeats=args.repeats, quick=args.quick, layers=args.layers)


if __name__ == "__main__":
    sys.exit(main())
