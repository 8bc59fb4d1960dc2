#!/usr/bin/env python
"""Boxes on the CPU: the IoU family (cnnops.bench.boxes) and the NMS family (cnnops.bench.nms),
each against torchvision.ops.

The same suites as ``python -m cnnops bench boxes`` and ``bench nms``, loaded from this checkout;
results go to benchmarks/results/ next to this script unless --out says otherwise, and the targets
of benchmarks/targets.py are printed after the run.

    python benchmarks/bench_boxes.py [--layers a,b] [--quick] [--repeats N] [--out DIR] [--no-nms]

--layers names cases of the IoU suite (box_iou_1k_x_1k, giou_loss_100k, ...); the NMS suite then
is skipped (``bench_nms.py --layers`` picks its cases).
"""
from __future__ import annotations

import argparse
import sys

from _checkout import HERE, run_families  # benchmarks/ is on sys.path when run as a script


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per case (median reported)")
    parser.add_argument("--quick", action="store_true", help="2 repeats, small cases only")
    parser.add_argument("--out", default=str(HERE / "results"), help="directory for the .json and .md results")
    parser.add_argument("--layers", default=None, help="comma-separated IoU-suite case names (default: all)")
    parser.add_argument("--no-nms", action="store_true", help="skip the NMS suite")
    args = parser.parse_args(argv)
    families = ["boxes"] if args.no_nms or args.layers else ["boxes", "nms"]
    return run_families(families, args.out, repeats=args.repeats, quick=args.quick, layers=args.layers)


if __name__ == "__main__":
    sys.exit(main())
