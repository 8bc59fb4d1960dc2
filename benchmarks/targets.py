#!/usr/bin/env python
"""Performance targets, checked against the result files the benchmark suite writes.

    python benchmarks/targets.py [RESULTS_DIR] [--family F[,F...]]

The suite (``python -m cnnops bench``) reports measurements only; what counts as fast enough for
this project lives here, next to the results it judges. Each target is a statement about one
family's result file (``nms_cpu.json``: "nms >= 5x torchvision at 5k boxes") and comes out as
pass, FAIL or n/a (no case of that kind in the file, e.g. after a --quick or --layers run).
Exit status 1 when a target fails, 2 when no result file is found."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAMILIES = ("conv", "pool", "unpool", "boxes", "nms", "roi", "train")


def line(target: str, values: dict, minimum: float, unit: str = "x") -> dict:
    """`target` holds when every value in `values` ({case: number or None}) is >= minimum; a None
    (the case errored) fails it; no values at all is n/a."""
    if not values:
        return {"target": target, "status": "n/a", "detail": "no case of this kind in the results"}
    bad = {k: v for k, v in values.items() if v is None or v < minimum}
    shown = bad or {min(values, key=lambda k: values[k]): min(values.values())}
    word = "below" if bad else ("lowest" if len(values) > 1 else "measured")
    detail = f"{word}: " + ", ".join(f"{k} {_fmt(v, unit)}" for k, v in shown.items())
    return {"target": target, "status": "FAIL" if bad else "pass", "detail": detail}


def _fmt(v, unit):
    if v is None:
        return "error"
    return f"{100 * v:.0f}%" if unit == "%" else f"{v:.2f}x"


def geomean(values):
    vals = [v for v in values if v is not None and v > 0]
    return math.exp(sum(map(math.log, vals)) / len(vals)) if vals else None


def _geomean_line(target, rows, pass_name, minimum):
    vals = {r["name"]: (r[pass_name]["speedup"] if r.get(pass_name) else None) for r in rows}
    if any(v is None for v in vals.values()):
        return line(target, {k: v for k, v in vals.items() if v is None}, minimum)
    gm = geomean(vals.values())
    return line(target, {"geomean": gm} if gm is not None else {}, minimum)


# ---- per family -------------------------------------------------------------------------------

def conv_targets(data: dict) -> list:
    out = []
    families = [("conv2d", data.get("layers", []))] + [(f, v["layers"]) for f, v in data.get("families", {}).items()]
    for fam, rows in families:
        if not rows:
            continue
        out += [dict(t, family=fam) for t in (
            _geomean_line("forward geomean speed-up >= 1.2x", rows, "forward", 1.2),
            _geomean_line("backward geomean speed-up >= 1.0x", rows, "backward", 1.0),
        )]
        if fam != "conv2d":
            continue
        by = {r["name"]: r for r in rows}

        def fwd(names, key=lambda p: p["speedup"]):
            return {n: (key(by[n]["forward"]) if by[n].get("forward") else None) for n in names if n in by}

        out += [dict(t, family=fam) for t in (
            line("no forward layer below 0.9x", fwd(by), 0.9),
            line("depthwise (mobilenet_dw) forward >= 5x", fwd(["mobilenet_dw"]), 5.0),
            line("C=1 layers (lenet5_c1, mnist_c1) forward >= 2x", fwd(["lenet5_c1", "mnist_c1"]), 2.0),
            line("large 3x3 layers (vgg16_c1_2, vgg16_c3, vgg16_c5, resnet50_3x3) forward >= 70% of the FMA peak "
                 "(Winograd layers counted as direct convolutions)",
                 fwd(["vgg16_c1_2", "vgg16_c3", "vgg16_c5", "resnet50_3x3"],
                     key=lambda p: p["cnnops"].get("peak_fraction")), 0.70, unit="%"),
        )]
    return out


def pool_targets(data: dict) -> list:
    rows = [r for r in data["cases"] if "speedup" in r]
    bw = data["ceilings"]["copy_bandwidth_gbs"]
    mx = {r["name"]: r["speedup"] for r in rows if r["kind"] == "max_nchw"}
    return [
        line("NCHW max pooling >= 5x PyTorch", mx, 5.0),
        line("NCHW max pooling >= 50% of the copy bandwidth",
             {r["name"]: r["cnnops"]["gbs"] / bw for r in rows if r["kind"] == "max_nchw"}, 0.5, unit="%"),
        line("every other pooling op >= 1.5x PyTorch", {r["name"]: r["speedup"] for r in rows
                                                        if r["kind"] != "max_nchw"}, 1.5),
        line("no op slower than PyTorch", {r["name"]: r["speedup"] for r in rows}, 1.0),
    ]


def unpool_targets(data: dict) -> list:
    passes = {f"{r['name']} {pn}": (r[pn]["speedup"] if r.get(pn) else None)
              for r in data["cases"] for pn in ("forward", "backward")}
    return [
        line("fractional max pooling >= 1.5x PyTorch", {k: v for k, v in passes.items()
                                                         if k.startswith("frac_max")}, 1.5),
        line("no pass slower than PyTorch", passes, 1.0),
        line("every pass (unpooling and upsampling too) >= 1.5x PyTorch", passes, 1.5),
    ]


def boxes_targets(data: dict) -> list:
    by = {r["name"]: r.get("speedup") for r in data["cases"]}
    return [line(f"{n} >= 1.5x torchvision", {n: by[n]} if n in by else {}, 1.5)
            for n in ("box_iou_1k_x_1k", "box_iou_10k_x_1k")]


def nms_targets(data: dict) -> list:
    rows = data["cases"]

    def sel(op, n=None):
        return {r["name"]: r.get("speedup") for r in rows if r["op"] == op and (n is None or r["n"] == n)}

    return [line("nms >= 5x torchvision at 5k boxes", sel("nms", 5000), 5.0),
            line("nms >= 20x torchvision at 20k boxes", sel("nms", 20000), 20.0),
            line("batched_nms >= 2x torchvision", sel("batched_nms"), 2.0)]


def roi_targets(data: dict) -> list:
    passes = {f"{r['name']} {pn}": (r[pn]["speedup"] if r.get(pn) else None)
              for r in data["cases"] for pn in ("forward", "backward")}
    return [
        line("roi_align (ResNet-50-FPN box head) forward and backward >= 2x torchvision",
             {k: v for k, v in passes.items() if k.split()[0] == "roi_align"}, 2.0),
        line("no pass slower than torchvision", passes, 1.0),
    ]


def train_targets(data: dict) -> list:
    by = {r["name"]: r.get("speedup") for r in data["cases"]}
    return [line("LeNet-5 training step at batch 64 no slower than PyTorch eager",
                 {"lenet5_step_b64": by["lenet5_step_b64"]} if "lenet5_step_b64" in by else {}, 1.0)]


CHECKS = {"conv": conv_targets, "pool": pool_targets, "unpool": unpool_targets, "boxes": boxes_targets,
          "nms": nms_targets, "roi": roi_targets, "train": train_targets}


def targets_for(family: str, data: dict) -> list:
    """The target lines of one family's result dict."""
    return CHECKS[family](data)


def load(results_dir, family: str):
    """The result dict <results_dir>/<family>_cpu.json, or None when there is none."""
    f = Path(results_dir) / f"{family}_cpu.json"
    if not f.is_file():
        return None
    with open(f, encoding="utf-8") as fh:
        return json.load(fh)


def report(results_dir, families=FAMILIES, file=sys.stdout) -> int:
    """Print the targets of every family with a result file; the exit status described above."""
    found, failed = 0, False
    for fam in families:
        data = load(results_dir, fam)
        if data is None:
            continue
        found += 1
        print(f"{fam} ({Path(results_dir) / f'{fam}_cpu.json'}):", file=file)
        for t in targets_for(fam, data):
            where = f"{t['family']}: " if "family" in t else ""
            print(f"  {t['status']:4s}  {where}{t['target']} ({t['detail']})", file=file)
            failed |= t["status"] == "FAIL"
    if not found:
        print(f"no result files for {', '.join(families)} in {results_dir}", file=sys.stderr)
        return 2
    return 1 if failed else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="?", default=str(HERE / "results"), help="folder of *_cpu.json files")
    p.add_argument("--family", default=",".join(FAMILIES), help="comma-separated families (default: all)")
    args = p.parse_args(argv)
    fams = [f.strip() for f in args.family.split(",") if f.strip()]
    unknown = [f for f in fams if f not in CHECKS]
    if unknown or not fams:
        p.error(f"argument --family: expected names among {', '.join(FAMILIES)}, got {args.family!r}")
    return report(args.results, fams)


if __name__ == "__main__":
    sys.exit(main())
