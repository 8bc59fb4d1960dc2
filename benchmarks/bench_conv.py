#!/usr/bin/env python
"""Convolutions on the CPU: cnnops against PyTorch (oneDNN), forward and backward.

The same suite as ``python -m cnnops bench conv`` (the code is cnnops.bench.conv, loaded from this
checkout); this script writes to benchmarks/results/ next to it unless --out says otherwise.

    python benchmarks/bench_conv.py [--family F[,F...]] [--layers a,b] [--quick] [--repeats N] [--out DIR]

Families: conv2d, conv1d, conv3d, conv_transpose2d, or all (the default).
--layers takes layer names and family names (a family name stands for all its layers), e.g.
``--quick --layers conv1d_k3,fcn_up`` or ``--family conv3d``. The targets of benchmarks/targets.py
are printed after the run.
"""
from __future__ import annotations

import argparse
import sys

from _checkout import HERE, run_families  # benchmarks/ is on sys.path when run as a script


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--family", default=None, metavar="F[,F...]",
                        help="convolution families to run, comma-separated: conv2d, conv1d, conv3d, "
                             "conv_transpose2d, or all (default: all)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per layer (median reported)")
    parser.add_argument("--quick", action="store_true",
                        help="2 repeats; only the small layers of the selected families unless --layers")
    parser.add_argument("--out", default=str(HERE / "results"), help="directory for conv_cpu.json and conv_cpu.md")
    parser.add_argument("--layers", default=None,
                        help="comma-separated layer names and/or family names (default: all layers of the "
                             "selected families)")
    args = parser.parse_args(argv)
    return run_families(["conv"], args.out, repeats=args.repeats, quick=args.quick, layers=args.layers,
                        families=args.family)


if __name__ == "__main__":
    sys.exit(main())
