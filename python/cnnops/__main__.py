"""Command line: ``python -m cnnops info`` and ``python -m cnnops bench conv``."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnops", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="version, build flags, SIMD level, threads, CUDA state")
    b = sub.add_parser("bench", help="benchmarks against PyTorch")
    b.add_argument("family", choices=["conv", "nms"], help="op family to benchmark")
    b.add_argument("--repeats", type=int, default=None, help="timed repeats per layer (median reported)")
    b.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke run")
    b.add_argument("--out", default=None, help="directory for the .json and .md results")
    b.add_argument("--layers", default=None, help="comma-separated layer or family names to run (default: all)")
    b.add_argument("--family", dest="families", default=None,
                   help="conv families: conv2d, conv1d, conv3d, conv_transpose2d or all (default), comma-separated")
    args = parser.parse_args(argv)

    if args.cmd == "info":
        import cnnops

        for k, v in cnnops.info().items():
            print(f"{k:>15}: {v}")
        return 0
    if args.cmd == "bench":
        from .bench import run

        return run(args.family, repeats=args.repeats, quick=args.quick, out=args.out, layers=args.layers,
                   families=args.families)
    return 1


if __name__ == "__main__":
    sys.exit(main())
