#!/usr/bin/env python
"""Region ops (roi_align, roi_pool, ps_roi_align, ps_roi_pool) on the CPU: cnnops against torchvision.

The same suite as ``python -m cnnops bench roi`` (cnnops.bench.roi, loaded from this checkout);
writes benchmarks/results/roi_cpu.json and .md next to this script unless --out says otherwise.

    python benchmarks/bench_roi.py [--layers roi_align,roi_pool] [--quick] [--repeats N] [--out DIR]
"""
from __future__ import annotations

import argparse
import sys

from _checkout import HERE, run_families  # benchmarks/ is on sys.path when run as a script


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per case (median reported)")
    parser.add_argument("--quick", action="store_true", help="a tenth of the regions and few repeats, for a smoke run")
    parser.add_argument("--out", default=str(HERE / "results"), help="directory for roi_cpu.json and .md")
    parser.add_argument("--layers", default=None, help="comma-separated case names (default: all)")
    args = parser.parse_args(argv)
    return run_families(["roi"], args.out, repeats=args.repeats, quick=args.quick, layers=args.layers)


if __name__ == "__main__":
    sys.exit(main())
