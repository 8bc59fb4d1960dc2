#!/usr/bin/env python
"""Training steps on the CPU: LeNet-5 through cnnops.nn against the same model in PyTorch eager.

The same suite as ``python -m cnnops bench train`` (the code is cnnops.bench.train, loaded from
this checkout); this script writes to benchmarks/results/ next to it unless --out says otherwise.

    python benchmarks/bench_train.py [--layers lenet5_step_b64,...] [--quick] [--repeats N] [--out DIR]
"""
from __future__ import annotations

import argparse
import sys

from _checkout import HERE, run_families  # benchmarks/ is on sys.path when run as a script


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per case (median reported)")
    parser.add_argument("--quick", action="store_true", help="2 repeats, the batch-64 cases only")
    parser.add_argument("--out", default=str(HERE / "results"), help="directory for train_cpu.json and train_cpu.md")
    parser.add_argument("--layers", default=None, help="comma-separated case names (default: all)")
    args = parser.parse_args(argv)
    return run_families(["train"], args.out, repeats=args.repeats, quick=args.quick, layers=args.layers)


if __name__ == "__main__":
    sys.exit(main())
