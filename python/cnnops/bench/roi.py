"""Region ops on the CPU: cnnops against torchvision, forward and backward, float32.

Cases (boxes drawn in a 800 x 1088 image batch of 2, sides 16 to 512 pixels, on the features of
one pyramid level; both libraries get the same (K, 5) boxes):
- ``roi_align``: ResNet-50-FPN's box head: 1000 regions, 256 channels, 7x7 output, sampling_ratio 2,
  on the stride-8 level (2, 256, 100, 136), spatial_scale 1/8, aligned=False (torchvision's default).
- ``roi_align_nhwc``: the same with channels-last features (torchvision gets a channels_last tensor).
- ``roi_align_adaptive``: 512 regions, aligned=True, adaptive sampling (sampling_ratio=-1).
- ``roi_pool``: 1000 regions, 7x7 max pooling (Fast R-CNN), argmax compared exactly.
- ``ps_roi_align`` / ``ps_roi_pool``: R-FCN's heads: 300 regions, 7x7 bins x 10 channels (490 input
  channels) on the stride-16 level (2, 490, 50, 68), spatial_scale 1/16.

Backward: cnnops' ``*_backward`` against torchvision's registered backward kernels
(``torch.ops.torchvision._roi_align_backward`` and siblings), which both get the forward's
argmax or channel mapping where they need one. torchvision's CPU kernels run on one thread (its
backward adds into the gradient sequentially); cnnops uses cnnops.get_num_threads(). Each pass is
checked once (relative error; roi_pool's argmax exactly), then timed interleaved (median of
repeats, common.time_interleaved)."""
from __future__ import annotations

import math
import sys
import traceback
from dataclasses import dataclass

import numpy as np

import cnnops

from . import common

REL_ERR_TOL = 1e-6


@dataclass(frozen=True)
class Case:
    name: str
    op: str
    K: int
    C: int
    H: int
    W: int
    scale: float
    out: int = 7
    sampling_ratio: int = 2
    aligned: bool = False
    nhwc: bool = False

    def scaled(self, quick: bool) -> "Case":
        return Case(self.name, self.op, max(self.K // 10, 8), self.C, self.H, self.W, self.scale, self.out,
                    self.sampling_ratio, self.aligned, self.nhwc) if quick else self


CASES = [
    Case("roi_align", "roi_align", 1000, 256, 100, 136, 1 / 8),
    Case("roi_align_nhwc", "roi_align", 1000, 256, 100, 136, 1 / 8, nhwc=True),
    Case("roi_align_adaptive", "roi_align", 512, 256, 100, 136, 1 / 8, sampling_ratio=-1, aligned=True),
    Case("roi_pool", "roi_pool", 1000, 256, 100, 136, 1 / 8),
    Case("ps_roi_align", "ps_roi_align", 300, 490, 50, 68, 1 / 16),
    Case("ps_roi_pool", "ps_roi_pool", 300, 490, 50, 68, 1 / 16),
]
BY_NAME = {c.name: c for c in CASES}


def make_rois(K: int, N: int, img_h: float, img_w: float, seed: int = 0, margin: float = 0.0) -> np.ndarray:
    """(K, 5) float32 boxes (batch index, x1, y1, x2, y2): sides log-uniform in [16, 512] pixels,
    corners uniform in the image (clipped to it, less `margin` pixels at the far edges)."""
    rng = np.random.default_rng(seed)
    w = np.exp(rng.uniform(math.log(16), math.log(512), K))
    h = np.exp(rng.uniform(math.log(16), math.log(512), K))
    x1 = rng.uniform(0, img_w, K)
    y1 = rng.uniform(0, img_h, K)
    x2 = np.minimum(x1 + w, img_w - margin)
    y2 = np.minimum(y1 + h, img_h - margin)
    x1, y1 = np.minimum(x1, x2), np.minimum(y1, y2)
    b = np.stack([rng.integers(0, N, K).astype(np.float64), x1, y1, x2, y2], 1)
    return b[np.argsort(b[:, 0], kind="stable")].astype(np.float32)


def _setup(torch, case: Case):
    """(fwd_cnnops, fwd_torchvision, bwd_cnnops, bwd_torchvision, shape string)."""
    tv = torch.ops.torchvision
    g = torch.Generator().manual_seed(0)
    N, C, H, W, P = 2, case.C, case.H, case.W, case.out
    img_h, img_w = H / case.scale, W / case.scale
    # ps_roi_pool: torchvision's backward clips windows to H and W where its forward clips to
    # H - 1 and W - 1; boxes off the last row and column make both backwards the same sum
    margin = 2 / case.scale if case.op == "ps_roi_pool" else 0.0
    rois = torch.from_numpy(make_rois(case.K, N, img_h, img_w, margin=margin))
    x = torch.randn(N, C, H, W, generator=g)
    fmt = "NCHW"
    xc = x
    if case.nhwc:
        x = x.contiguous(memory_format=torch.channels_last)
        xc, fmt = x.permute(0, 2, 3, 1), "NHWC"
    sr, al, s = case.sampling_ratio, case.aligned, case.scale
    co = C // (P * P) if case.op.startswith("ps_") else C
    gy = torch.randn(case.K, co, P, P, generator=g)
    gyc = gy.permute(0, 2, 3, 1).contiguous() if case.nhwc else gy
    shape = f"{case.K} x ({N}, {C}, {H}, {W}) {fmt} -> {P}x{P}"

    def back_nchw(t):
        return t.permute(0, 3, 1, 2) if case.nhwc else t

    if case.op == "roi_align":
        fc = lambda: back_nchw(cnnops.roi_align(xc, rois, P, s, sr, al, data_format=fmt))  # noqa: E731
        ft = lambda: tv.roi_align(x, rois, s, P, P, sr, al)  # noqa: E731
        bc = lambda: back_nchw(cnnops.roi_align_backward(gyc, tuple(xc.shape), rois, P, s, sr, al,  # noqa: E731
                                                         data_format=fmt))
        bt = lambda: tv._roi_align_backward(gy, rois, s, P, P, N, C, H, W, sr, al)  # noqa: E731
    elif case.op == "roi_pool":
        _, argmax = tv.roi_pool(x, rois, s, P, P)
        _, idx = cnnops.roi_pool(xc, rois, P, s, return_indices=True, data_format=fmt)
        fc = lambda: cnnops.roi_pool(xc, rois, P, s, return_indices=True, data_format=fmt)  # noqa: E731
        ft = lambda: tv.roi_pool(x, rois, s, P, P)  # noqa: E731
        bc = lambda: cnnops.roi_pool_backward(gy, tuple(xc.shape), rois, P, s, indices=idx)  # noqa: E731
        bt = lambda: tv._roi_pool_backward(gy, rois, argmax, s, P, P, N, C, H, W)  # noqa: E731
    elif case.op == "ps_roi_align":
        _, mapping = tv.ps_roi_align(x, rois, s, P, P, sr)
        fc = lambda: cnnops.ps_roi_align(xc, rois, P, s, sr)  # noqa: E731
        ft = lambda: tv.ps_roi_align(x, rois, s, P, P, sr)[0]  # noqa: E731
        bc = lambda: cnnops.ps_roi_align_backward(gy, tuple(xc.shape), rois, P, s, sr)  # noqa: E731
        bt = lambda: tv._ps_roi_align_backward(gy, rois, mapping, s, P, P, sr, N, C, H, W)  # noqa: E731
    elif case.op == "ps_roi_pool":
        _, mapping = tv.ps_roi_pool(x, rois, s, P, P)
        fc = lambda: cnnops.ps_roi_pool(xc, rois, P, s)  # noqa: E731
        ft = lambda: tv.ps_roi_pool(x, rois, s, P, P)[0]  # noqa: E731
        bc = lambda: cnnops.ps_roi_pool_backward(gy, tuple(xc.shape), rois, P, s)  # noqa: E731
        bt = lambda: tv._ps_roi_pool_backward(gy, rois, mapping, s, P, P, N, C, H, W)  # noqa: E731
    else:
        raise ValueError(case.op)
    return fc, ft, bc, bt, shape


def _check(got, ref) -> float:
    """Relative error of the values; roi_pool's argmax (second element of a pair) must match."""
    if isinstance(ref, tuple):
        if not bool((got[1] == ref[1].to(got[1].dtype)).all()):
            return float("inf")
        got, ref = got[0], ref[0]
    return common.rel_error(got, ref)


def _probe(fn) -> float:
    t = common.time_once(fn, 1)
    if t < 1e-3:
        t = common.time_once(fn, max(1, math.ceil(2e-3 / max(t, 1e-7))))
    return t


def bench_case(torch, case: Case, repeats=None, quick=False, log=print) -> dict:
    row = {"name": case.name, "errors": {}, "rel_error": {}, "forward": None, "backward": None}
    try:
        fc, ft, bc, bt, shape = _setup(torch, case)
    except Exception as e:  # noqa: BLE001
        row["errors"]["setup"] = f"{type(e).__name__}: {e}"
        log("".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip())
        row["correct"] = False
        return row
    row["shape"] = shape
    with torch.no_grad():
        for pn, c, t in (("forward", fc, ft), ("backward", bc, bt)):
            try:
                row["rel_error"][pn] = _check(c(), t())
                est = max(_probe(c), _probe(t))
                reps, number = common.plan_repeats(est, repeats, quick)
                times = common.time_interleaved({"cnnops": c, "torchvision": t}, reps, number, warmup=1)
                res = {"repeats": reps, "number": number}
                for side, samples in times.items():
                    res[side] = common.summarize_times(samples)
                res["speedup"] = res["torchvision"]["median_ms"] / res["cnnops"]["median_ms"]
                row[pn] = res
            except Exception as e:  # noqa: BLE001 - a failing case must not stop the suite
                row["errors"][pn] = f"{type(e).__name__}: {e}"
                log("".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip())
    errs = list(row["rel_error"].values())
    row["max_rel_error"] = max(errs) if errs else None
    row["correct"] = bool(errs) and all(e < REL_ERR_TOL for e in errs) and not row["errors"]
    return row


def report_markdown(data: dict) -> str:
    headers = ["case", "shape", "pass", "cnnops ms", "torchvision ms", "speed-up", "rel err"]
    rows = []
    for r in data["cases"]:
        for pn in ("forward", "backward"):
            p = r.get(pn)
            if not p:
                rows.append([r["name"], r.get("shape", ""), pn, "error", "", "", ""])
                continue
            rows.append([r["name"], r["shape"], pn, common.fmt(p["cnnops"]["median_ms"], ".3f"),
                         common.fmt(p["torchvision"]["median_ms"], ".3f"), common.fmt(p["speedup"]) + "x",
                         common.fmt(r["rel_error"].get(pn), ".1e")])
    parts = ["# Region ops: cnnops vs torchvision (CPU, float32)", "",
             common.machine_markdown(data["machine"], data["ceilings"]), "",
             common.markdown_table(headers, rows, "lll" + "r" * 4), "",
             f"Speed-up geomean: {common.fmt(data['geomean_speedup'])}x", "",
             "torchvision's CPU region kernels run on one thread; cnnops on the thread count above."]
    parts += [f"\nwarning: {w}" for w in data["warnings"]]
    return "\n".join(parts)


def run(repeats=None, quick=False, out=None, layers=None, commit=None) -> int:
    """Run the suite, print a table, write <out>/roi_cpu.json and .md. layers: case names as 'a,b'
    or a list (default: all); quick: a tenth of the regions and few repeats; commit: the source
    revision recorded in the results. Returns 0 when every case ran and matched torchvision, 1
    otherwise, 2 on bad arguments or missing torchvision."""
    try:
        import torch
        import torchvision
    except ImportError:
        print("cnnops bench roi: needs PyTorch and torchvision as the reference (pip install \"cnnops[bench]\")",
              file=sys.stderr)
        return 2
    try:
        torch.ops.torchvision.roi_align
    except (AttributeError, RuntimeError) as e:
        print(f"cnnops bench roi: torchvision's ops do not load with this torch ({e})", file=sys.stderr)
        return 2
    try:
        names = common.parse_names(layers, list(BY_NAME), "cnnops bench roi")
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    if repeats is not None and int(repeats) < 1:
        print(f"cnnops bench roi: expected --repeats >= 1, got {repeats}", file=sys.stderr)
        return 2
    threads = cnnops.get_num_threads()
    torch.set_num_threads(threads)
    machine = common.machine_info({"torch": torch.__version__, "torchvision": torchvision.__version__,
                                   "torch_parallel": f"{torch.get_num_threads()} threads"}, commit)
    print(f"roi CPU benchmark: {len(names)} cases, {threads} threads, cnnops {cnnops.__version__}, "
          f"torchvision {torchvision.__version__}", flush=True)
    c0 = common.measure_ceilings(threads, quick=quick)
    rows = []
    for n in names:
        row = bench_case(torch, BY_NAME[n].scaled(quick), repeats, quick)
        rows.append(row)
        msg = [f"{n:20s}"]
        for pn in ("forward", "backward"):
            p = row[pn]
            msg.append(pn[:3] + (f" {p['cnnops']['median_ms']:8.3f} vs {p['torchvision']['median_ms']:8.3f} ms "
                                 f"({p['speedup']:.2f}x)" if p else " error"))
        print("  " + "  ".join(msg) + ("" if row["correct"] else "  WRONG"), flush=True)
    c1 = common.measure_ceilings(threads, quick=quick)
    machine["load_average_end"] = common.load_average()
    warning = common.busy_warning(machine["load_average_start"], machine["cores"]["usable"])
    data = {
        "suite": "roi", "device": "cpu", "machine": machine, "ceilings": common.finish_ceilings(c0, c1),
        "ceilings_start": c0, "ceilings_end": c1,
        "settings": {"cases": names, "quick": bool(quick), "repeats": repeats, "dtype": "float32",
                     "threads": threads, "order": "interleaved cnnops, torchvision per repeat; median per side",
                     "rel_error_tolerance": REL_ERR_TOL},
        "cases": rows,
        "geomean_speedup": common.geomean([r[pn]["speedup"] for r in rows for pn in ("forward", "backward")
                                           if r.get(pn)]),
        "warnings": [warning] if warning else [],
    }
    md = report_markdown(data)
    jpath, mpath = common.write_results(out, "roi_cpu", data, md)
    print("\n" + md)
    print(f"\nwrote {jpath} and {mpath}")
    return 0 if all(r["correct"] for r in rows) else 1


__all__ = ["run", "CASES", "make_rois"]
