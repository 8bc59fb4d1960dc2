"""The benchmark suite: ``python -m cnnops bench <family>``, cnnops against its peer library.

Each family has a module here with a ``run(repeats, quick, out, layers, commit) -> int``;
``common`` holds the shared timing, machine description and result writing, ``plot`` the charts.
Results go to <out>/<family>_cpu.json and .md (``--out``, default ./cnnops-bench-results).
``--device cuda`` runs a family's GPU suite (<family>_cuda.py, for conv, pool, nms and boxes; the
shared start of a run and the CUDA-event timing in ``gpu``) against cuDNN through PyTorch, PyTorch
CUDA or torchvision CUDA on the same card and writes <family>_<gpu>.json and .md.

  conv    conv2d, conv1d, conv3d, conv_transpose2d vs PyTorch (oneDNN)
  pool    max/avg/global/adaptive pooling vs PyTorch
  unpool  fractional max pooling, max_unpool, nearest upsampling vs PyTorch
  boxes   box_iou family and IoU losses vs torchvision
  nms     nms and batched_nms vs torchvision
  roi     roi_align, roi_pool, ps_roi_align, ps_roi_pool (forward and backward) vs torchvision
  train   one LeNet-5 training step through cnnops.nn vs PyTorch eager
  torch   PyTorch models patched with cnnops.torch vs unpatched
  jax     cnnops.jax through XLA FFI and pure_callback vs jax.lax
  all     every family above, one after the other

The conv family covers conv2d, conv1d, conv3d and conv_transpose2d (layers of the last three in
``convnd``); ``families`` picks among them, and a family name given among the layers selects all
of that family's layers (so ``python -m cnnops bench conv --layers conv1d`` runs the conv1d ones)."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path

from .._args import usage_error

FAMILIES = ("conv", "pool", "unpool", "boxes", "nms", "roi", "train", "torch", "jax")
# the module of a family whose name would shadow a library inside this package
MODULES = {"torch": "torch_adapter", "jax": "jax_bridge"}
DEVICES = ("cpu", "cuda")
# families with a GPU suite (<family>_cuda.py: cnnops CUDA against PyTorch / torchvision CUDA)
CUDA_FAMILIES = ("conv", "pool", "nms", "boxes")
# peer libraries each family imports (PyTorch for all, torchvision for the box families)
PEERS = {"boxes": ("torch", "torchvision"), "nms": ("torch", "torchvision"), "roi": ("torch", "torchvision"),
         "jax": ("jax",)}


def run(family: str, repeats=None, quick: bool = False, out=None, layers=None, families=None, commit=None,
        device: str = "cpu") -> int:
    """Run one family's benchmark; returns the process exit status (0 = ran and results correct).

    repeats: timed repeats per case (default: sized by a time budget per case); quick: a short
    smoke run; out: folder for the result files (default ./cnnops-bench-results); layers: names
    to run, as 'a,b' or a list (default: all); families (conv only): 'conv2d', 'conv1d',
    'conv3d', 'conv_transpose2d' or 'all', several as 'a,b' or a list (default: all); commit: the
    source revision to record (default: the CNNOPS_BENCH_COMMIT environment variable); device:
    "cpu", or "cuda" (the conv, pool, nms and boxes families, against cuDNN / PyTorch / torchvision
    CUDA on the same GPU; conv2d layers only for conv)."""
    if device == "cuda":
        if family not in CUDA_FAMILIES:
            print(f"cnnops bench: --device cuda has the {', '.join(CUDA_FAMILIES)} families only, not {family!r}",
                  file=sys.stderr)
            return 2
        mod = importlib.import_module(f"{__name__}.{family}_cuda")
        return mod.run(repeats=repeats, quick=quick, out=out, layers=layers, commit=commit)
    if family not in FAMILIES:
        print(f"cnnops bench: expected a family among {', '.join(FAMILIES)}, got {family!r}", file=sys.stderr)
        return 2
    mod = importlib.import_module(f"{__name__}.{MODULES.get(family, family)}")
    if family == "conv":
        return mod.run(repeats=repeats, quick=quick, out=out, layers=layers, families=families, commit=commit)
    if families is not None:
        print(f"cnnops bench: --family applies to the conv benchmark only, not {family!r}", file=sys.stderr)
        return 2
    return mod.run(repeats=repeats, quick=quick, out=out, layers=layers, commit=commit)


# ----------------------------------------------------------------------------------------------
# command line


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m cnnops bench``."""
    p.add_argument("family", choices=FAMILIES + ("all",),
                   help="op family to benchmark, or all of them one after the other")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats per case, >= 1 (default: sized by a time budget; median reported)")
    p.add_argument("--quick", action="store_true", help="fewer repeats and the small cases, for a smoke run")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder for the .json and .md results (created; default ./cnnops-bench-results)")
    p.add_argument("--layers", default=None,
                   help="comma-separated case names of one family (default: all); for conv, family names too")
    p.add_argument("--family", dest="families", default=None,
                   help="conv families: conv2d, conv1d, conv3d, conv_transpose2d or all (default), comma-separated")
    p.add_argument("--device", choices=DEVICES, default="cpu",
                   help="where cnnops runs: cpu (default), or cuda (conv, pool, nms and boxes families; cuDNN, "
                        "PyTorch or torchvision CUDA on the same GPU)")
    p.add_argument("--plot", action="store_true",
                   help="also write speed-up bar charts and a roofline chart (PNG, needs matplotlib) to --out")
    p.add_argument("--commit", default=None, metavar="ID",
                   help="source revision to record in the results (default: $CNNOPS_BENCH_COMMIT)")


def check_arguments(args) -> str | None:
    """What is wrong with the parsed bench options, as one message, or None. Every check that can
    be made before anything is timed is made here (peers installed, case names, output folder)."""
    fams = list(FAMILIES) if args.family == "all" else [args.family]
    if args.repeats is not None and args.repeats < 1:
        return f"argument --repeats: expected a count >= 1, got {args.repeats}"
    if args.device == "cuda":
        from .. import cuda

        if not cuda.is_available():
            why = "it was built without CUDA" if not cuda.is_compiled() else "no CUDA device is usable here"
            return f"argument --device: cuda is not available ({why}); use --device cpu"
        if cuda.is_emulated():
            return ("argument --device: this build runs CUDA kernels on the CPU emulator, which cannot "
                    "judge speed; benchmark on a GPU build")
        if args.family not in CUDA_FAMILIES:
            return (f"argument --device: cuda has the {', '.join(CUDA_FAMILIES[:-1])} and {CUDA_FAMILIES[-1]} "
                    f"families only so far, not {args.family}")
        if args.families is not None:
            return "argument --family: --device cuda runs the conv2d layers only; leave --family out"
        try:
            import torch
        except ImportError:
            return "argument --device: cuda needs PyTorch with CUDA as the reference (pip install torch)"
        if not torch.cuda.is_available():
            return "argument --device: cuda needs PyTorch with CUDA on the same GPU; this torch has no CUDA"
        if args.family in PEERS and "torchvision" in PEERS[args.family] and importlib.util.find_spec(
                "torchvision") is None:
            return (f"argument --device: cuda {args.family} needs torchvision (with CUDA) as the reference: "
                    f"pip install torchvision")
        return None
    if args.families is not None and "conv" not in fams:
        return f"argument --family: applies to the conv benchmark only, not {args.family}"
    if args.layers is not None and len(fams) > 1:
        return "argument --layers: names cases of one family; with all, every family runs all its cases"
    missing = sorted({m for f in fams for m in PEERS.get(f, ("torch",)) if importlib.util.find_spec(m) is None})
    if missing:
        return (f"missing peer libraries: {', '.join(missing)} (the reference every case is timed against); "
                f"install them with: pip install \"cnnops[bench]\"")
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        return "argument --plot: needs matplotlib, which is not installed: pip install matplotlib"
    problem = _check_names(fams[0], args) if len(fams) == 1 else None
    if problem:
        return problem
    out = Path(args.out) if args.out is not None else None
    if out is not None and out.exists() and not out.is_dir():
        return f"argument --out: {out} exists and is not a folder"
    return None


def _check_names(family: str, args) -> str | None:
    """Unknown --family / --layers names of one family, before anything runs."""
    from . import common, conv

    option = "--family"
    try:
        if family == "conv":
            fams = conv.parse_families(args.families)
            option = "--layers"
            conv.select_layers(args.layers, fams, args.quick)
        elif args.layers is not None:
            option = "--layers"
            common.parse_names(args.layers, case_names(family), f"cnnops bench {family}")
    except ValueError as e:
        return f"argument {option}: {e}"
    return None


def case_names(family: str) -> list:
    """Every case name of a family other than conv (whose layers conv.ALL_BY_NAME lists)."""
    mod = importlib.import_module(f"{__name__}.{MODULES.get(family, family)}")
    if family == "pool":
        import torch

        return mod.case_names(torch)
    return [c if isinstance(c, str) else c.name for c in mod.CASES]


def main(args, parser: argparse.ArgumentParser | None = None) -> int:
    """Run ``python -m cnnops bench`` with parsed `args`; returns the exit status (2 for bad
    arguments, printed with argparse's usage line when `parser` is given)."""
    problem = check_arguments(args)
    if problem is not None:
        return usage_error(parser, "cnnops bench", problem)
    from . import common

    out = Path(args.out) if args.out is not None else common.default_out_dir()
    out.mkdir(parents=True, exist_ok=True)
    print(f"results go to {out.resolve()}", flush=True)
    fams = list(FAMILIES) if args.family == "all" else [args.family]
    rc = 0
    for fam in fams:
        if len(fams) > 1:
            print(f"\n===== {fam} =====", flush=True)
        rc = max(rc, run(fam, repeats=args.repeats, quick=args.quick, out=out, layers=args.layers,
                         families=args.families if fam == "conv" else None, commit=args.commit,
                         device=args.device))
    if args.plot:
        from . import plot

        for path in plot.plot_results(out, fams):
            print(f"wrote {path}")
    print(f"\nresults in {out.resolve()}")
    return rc


__all__ = ["run", "main", "add_arguments", "check_arguments", "FAMILIES"]
