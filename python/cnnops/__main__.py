"""Command line: ``python -m cnnops info``, ``python -m cnnops bench conv``, ``python -m cnnops train``
and ``python -m cnnops demo``."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnops", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="version, build flags, SIMD level, threads, CUDA state")
    b = sub.add_parser("bench", help="benchmarks against PyTorch")
    from .bench import FAMILIES

    b.add_argument("family", choices=FAMILIES, help="op family to benchmark (all but train against PyTorch/torchvision)")
    b.add_argument("--repeats", type=int, default=None, help="timed repeats per layer (median reported)")
    b.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke run")
    b.add_argument("--out", default=None, help="directory for the .json and .md results")
    b.add_argument("--layers", default=None, help="comma-separated layer or family names to run (default: all)")
    b.add_argument("--family", dest="families", default=None,
                   help="conv families: conv2d, conv1d, conv3d, conv_transpose2d or all (default), comma-separated")
    from . import train as _train

    t = sub.add_parser("train", help="train a network of cnnops.nn on a dataset (digits by default)")
    _train.add_arguments(t)
    d = sub.add_parser("demo", help="LeNet-5 on the scikit-learn digits: about half a minute, >= 97%% test accuracy")
    _train.add_arguments(d, _train.DEMO)
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
    if args.cmd in ("train", "demo"):
        return _train.run(args)
    return 1


if __name__ == "__main__":
    sys.exit(main())
