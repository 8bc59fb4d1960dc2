"""Command line: ``python -m cnnops info``, ``python -m cnnops bench conv``, ``python -m cnnops train``,
``python -m cnnops demo`` and ``python -m cnnops summary``.

Every option is checked before any work starts; a bad one prints argparse's usage line and an
error and exits with status 2. Optional dependencies are imported only by the subcommand that
needs them (PyTorch and torchvision for bench, scikit-learn, matplotlib and tqdm for train/demo)."""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from . import bench as _bench
    from . import train as _train

    parser = argparse.ArgumentParser(prog="python -m cnnops", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"cnnops {__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="version, build flags, SIMD level, threads, CUDA state")
    b = sub.add_parser("bench", help="benchmarks against PyTorch and torchvision",
                       description="Time cnnops against its peer library, interleaved, and write the results "
                                   "as .json and .md files (see docs/benchmarks.md).")
    _bench.add_arguments(b)
    b.set_defaults(subparser=b)  # its usage line goes with the errors found after parsing
    t = sub.add_parser("train", help="train a network of cnnops.nn on a dataset (digits by default)")
    _train.add_arguments(t)
    d = sub.add_parser("demo", help="LeNet-5 on the scikit-learn digits: about half a minute, >= 97%% test accuracy")
    _train.add_arguments(d, _train.DEMO)
    t.set_defaults(subparser=t)
    d.set_defaults(subparser=d)
    from .nn import model_summary as _summary

    s = sub.add_parser("summary", help="per-layer table of a cnnops.nn model: shapes, parameters, multiply-adds",
                       description="Build a model of cnnops.nn.models and print cnnops.nn.summary of it.")
    _summary.add_arguments(s)
    s.set_defaults(subparser=s)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.cmd == "info":
        import cnnops

        for k, v in cnnops.info().items():
            print(f"{k:>15}: {v}")
        # the FMA rate of each instruction set this CPU runs (on AMD Zen 4 a zmm FMA issues as two
        # 256-bit halves, so AVX-512 and AVX2 peak alike; Intel server cores double it)
        threads = cnnops.get_num_threads()
        for isa, ok in (("avx2", cnnops.info()["cpu_avx2_fma"]), ("avx512", cnnops.info()["cpu_avx512"])):
            if ok:
                peak = cnnops._C.measure_fma_peak_gflops(threads, 0.3, isa)
                print(f"{'fma_peak_' + isa:>15}: {peak:.1f} GFLOP/s fp32 ({threads} threads)")
        return 0
    if args.cmd == "bench":
        from . import bench

        return bench.main(args, args.subparser)
    if args.cmd in ("train", "demo"):
        from . import train

        return train.run(args, args.subparser)
    if args.cmd == "summary":
        from .nn import model_summary

        return model_summary.run(args, args.subparser)
    return 1


if __name__ == "__main__":
    sys.exit(main())
