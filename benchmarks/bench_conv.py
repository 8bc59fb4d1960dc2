#!/usr/bin/env python
"""conv2d on the CPU: cnnops against PyTorch (oneDNN), forward and backward.

The same suite as ``python -m cnnops bench conv`` (the code is cnnops.bench.conv); this script
writes to benchmarks/results/ next to it unless --out says otherwise.

    python benchmarks/bench_conv.py [--repeats N] [--quick] [--out DIR] [--layers a,b]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _import_bench():
    """cnnops.bench from this checkout when it has one (so an installed cnnops whose wheel
    predates the suite still works), else from the installed package."""
    import cnnops

    src = HERE.parent / "python" / "cnnops"
    if (src / "bench" / "__init__.py").is_file() and str(src) not in cnnops.__path__:
        cnnops.__path__.insert(0, str(src))
    from cnnops import bench

    return bench


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per layer (median reported)")
    parser.add_argument("--quick", action="store_true", help="2 repeats; only the small layers unless --layers")
    parser.add_argument("--out", default=str(HERE / "results"), help="directory for conv_cpu.json and conv_cpu.md")
    parser.add_argument("--layers", default=None, help="comma-separated layer names (default: all)")
    args = parser.parse_args(argv)
    bench = _import_bench()
    return bench.run("conv", repeats=args.repeats, quick=args.quick, out=args.out, layers=args.layers)


if __name__ == "__main__":
    sys.exit(main())
