"""The benchmark suite: ``python -m cnnops bench <family>``, cnnops against its peer library.

Each family has a module here (``conv``; ``pool`` and ``boxes`` to come) with a
``run(repeats, quick, out, layers) -> int``; ``common`` holds the shared timing, machine
description and result writing. Results go to <out>/<family>_cpu.json and .md.

The conv family covers conv2d, conv1d, conv3d and conv_transpose2d (layers of the last three in
``convnd``); ``families`` picks among them, and a family name given among the layers selects all
of that family's layers (so ``python -m cnnops bench conv --layers conv1d`` runs the conv1d ones)."""
from __future__ import annotations

import sys

FAMILIES = ("conv", "nms")


def run(family: str, repeats=None, quick: bool = False, out=None, layers=None, families=None) -> int:
    """Run one family's benchmark; returns the process exit status (0 = ran and results correct).

    repeats: timed repeats per case (default: sized by a time budget per case); quick: a short
    smoke run; out: directory for the result files (default benchmarks/results under the cwd when
    it exists, else the cwd); layers: names to run, as 'a,b' or a list (default: all); families
    (conv only): 'conv2d', 'conv1d', 'conv3d', 'conv_transpose2d' or 'all', several as 'a,b' or a
    list (default: all)."""
    if family == "conv":
        from . import conv

        return conv.run(repeats=repeats, quick=quick, out=out, layers=layers, families=families)
    if family == "nms":
        from . import nms

        return nms.run(repeats=repeats, quick=quick, out=out, layers=layers)
    print(f"cnnops bench: expected a family among {', '.join(FAMILIES)}, got {family!r}", file=sys.stderr)
    return 2


__all__ = ["run", "FAMILIES"]
