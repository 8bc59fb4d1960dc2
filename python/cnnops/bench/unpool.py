"""Unpooling, nearest upsampling and fractional max pooling on the CPU: cnnops against PyTorch,
forward and backward, float32.

Cases:
- ``frac_max_sqrt2``: fractional max pooling, kernel 2, output ratio 1/sqrt(2), on (32, 64, 112, 112)
  -> (32, 64, 79, 79) with indices; both sides get the same ``_random_samples``. Backward:
  ``cnnops.fractional_max_pool2d_backward`` against ``torch.ops.aten.fractional_max_pool2d_backward``.
- ``max_unpool_x2``: max_unpool2d with kernel 2 of (32, 64, 56, 56) (values and indices from a 2x2/2
  max pooling of (32, 64, 112, 112)) -> (32, 64, 112, 112). Backward: ``cnnops.max_unpool2d_backward``
  against the gather torch's autograd runs for max_unpool2d (``torch.gather`` over flattened planes).
- ``upsample_x2`` / ``upsample_x2_nhwc``: nearest upsampling x2 of (32, 64, 56, 56), channels first
  and channels last (torch gets a channels_last tensor, cnnops the same memory as an NHWC view).
  Backward: ``torch.ops.aten.upsample_nearest2d_backward``.

Each pass is checked once (relative error against torch; indices compared exactly), then timed
interleaved with torch (median of repeats, common.time_interleaved). Bytes are the minimum memory
traffic: every tensor read or written once (inputs, outputs, int64 indices); the backward of
max_unpool reads all of grad_output (a gather of one value in four still touches every cache
line). GB/s is bytes over the median time, and its fraction of the streaming copy bandwidth that
common.measure_ceilings measured in the same run."""
from __future__ import annotations

import math
import sys
import traceback
from dataclasses import dataclass

import cnnops

from . import common

REL_ERR_TOL = 1e-6


@dataclass(frozen=True)
class Case:
    name: str
    N: int
    C: int
    H: int  # input spatial (for upsample/unpool: the small side)
    W: int
    small: bool = False

    def scaled(self, quick: bool) -> "Case":
        return Case(self.name, 4, self.C, self.H, self.W, self.small) if quick else self


CASES = [
    Case("frac_max_sqrt2", 32, 64, 112, 112),
    Case("max_unpool_x2", 32, 64, 56, 56),
    Case("upsample_x2", 32, 64, 56, 56),
    Case("upsample_x2_nhwc", 32, 64, 56, 56),
]
BY_NAME = {c.name: c for c in CASES}


def _setup(torch, case: Case):
    """(fwd_cnnops, fwd_torch, bwd_cnnops, bwd_torch, bytes_fwd, bytes_bwd, shape string)."""
    F = torch.nn.functional
    g = torch.Generator().manual_seed(0)
    N, C, H, W = case.N, case.C, case.H, case.W
    if case.name == "frac_max_sqrt2":
        x = torch.randn(N, C, H, W, generator=g)
        u = torch.rand(N, C, 2, generator=g)
        ho, wo = int(H / math.sqrt(2)), int(W / math.sqrt(2))
        ty, ti = F.fractional_max_pool2d(x, 2, output_size=(ho, wo), return_indices=True, _random_samples=u)
        gy = torch.randn(ty.shape, generator=g)
        fc = lambda: cnnops.fractional_max_pool2d(x, 2, output_size=(ho, wo), return_indices=True,  # noqa: E731
                                                  _random_samples=u)
        ft = lambda: F.fractional_max_pool2d(x, 2, output_size=(ho, wo), return_indices=True,  # noqa: E731
                                             _random_samples=u)
        bc = lambda: cnnops.fractional_max_pool2d_backward(gy, x, ti)  # noqa: E731
        bt = lambda: torch.ops.aten.fractional_max_pool2d_backward(gy, x, [2, 2], [ho, wo], ti)  # noqa: E731
        nin, nout = N * C * H * W, N * C * ho * wo
        return fc, ft, bc, bt, 4 * nin + 12 * nout, 12 * nout + 4 * nin, f"({N}, {C}, {H}, {W}) -> {ho}x{wo}"
    if case.name == "max_unpool_x2":
        x = torch.randn(N, C, 2 * H, 2 * W, generator=g)
        v, i = F.max_pool2d(x, 2, 2, return_indices=True)
        gy = torch.randn(x.shape, generator=g)
        fc = lambda: cnnops.max_unpool2d(v, i, 2)  # noqa: E731
        ft = lambda: F.max_unpool2d(v, i, 2)  # noqa: E731
        bc = lambda: cnnops.max_unpool2d_backward(gy, i, 2)  # noqa: E731
        bt = lambda: torch.gather(gy.flatten(2), 2, i.flatten(2)).view(i.shape)  # noqa: E731
        nin, nout = v.numel(), x.numel()
        return fc, ft, bc, bt, 12 * nin + 4 * nout, 12 * nin + 4 * nout, f"({N}, {C}, {H}, {W}) -> {2 * H}x{2 * W}"
    if case.name in ("upsample_x2", "upsample_x2_nhwc"):
        x = torch.randn(N, C, H, W, generator=g)
        gy = torch.randn(N, C, 2 * H, 2 * W, generator=g)
        fmt = "NCHW"
        xc, gyc = x, gy
        if case.name.endswith("nhwc"):
            x = x.contiguous(memory_format=torch.channels_last)
            gy = gy.contiguous(memory_format=torch.channels_last)
            xc, gyc, fmt = x.permute(0, 2, 3, 1), gy.permute(0, 2, 3, 1), "NHWC"

        def fc():
            y = cnnops.upsample_nearest2d(xc, scale_factor=2, data_format=fmt)
            return y.permute(0, 3, 1, 2) if fmt == "NHWC" else y

        def bc():
            gx = cnnops.upsample_nearest2d_backward(gyc, tuple(xc.shape), scale_factor=2, data_format=fmt)
            return gx.permute(0, 3, 1, 2) if fmt == "NHWC" else gx

        ft = lambda: F.interpolate(x, scale_factor=2, mode="nearest")  # noqa: E731
        bt = lambda: torch.ops.aten.upsample_nearest2d_backward(gy, [2 * H, 2 * W], [N, C, H, W], 2.0,  # noqa: E731
                                                                2.0)
        nin, nout = N * C * H * W, 4 * N * C * H * W
        return fc, ft, bc, bt, 4 * (nin + nout), 4 * (nin + nout), f"({N}, {C}, {H}, {W}) {fmt} -> {2 * H}x{2 * W}"
    raise ValueError(case.name)


def _check(got, ref) -> float:
    """Relative error of the values; indices (second element of a pair) must match exactly."""
    if isinstance(ref, tuple):
        if not bool((got[1] == ref[1]).all()):
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
        fc, ft, bc, bt, bf, bb, shape = _setup(torch, case)
    except Exception as e:  # noqa: BLE001
        row["errors"]["setup"] = f"{type(e).__name__}: {e}"
        log("".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip())
        row["correct"] = False
        return row
    row["shape"] = shape
    row["bytes_forward"], row["bytes_backward"] = bf, bb
    with torch.no_grad():
        for pn, c, t, nbytes in (("forward", fc, ft, bf), ("backward", bc, bt, bb)):
            try:
                row["rel_error"][pn] = _check(c(), t())
                est = max(_probe(c), _probe(t))
                reps, number = common.plan_repeats(est, repeats, quick)
                times = common.time_interleaved({"cnnops": c, "torch": t}, reps, number, warmup=1)
                res = {"repeats": reps, "number": number}
                for side, samples in times.items():
                    st = common.summarize_times(samples)
                    st["gbs"] = nbytes / (st["median_ms"] / 1e3) / 1e9
                    res[side] = st
                res["speedup"] = res["torch"]["median_ms"] / res["cnnops"]["median_ms"]
                row[pn] = res
            except Exception as e:  # noqa: BLE001 - a failing case must not stop the suite
                row["errors"][pn] = f"{type(e).__name__}: {e}"
                log("".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip())
    errs = list(row["rel_error"].values())
    row["max_rel_error"] = max(errs) if errs else None
    row["correct"] = bool(errs) and all(e < REL_ERR_TOL for e in errs) and not row["errors"]
    return row


def report_markdown(data: dict) -> str:
    headers = ["case", "shape", "pass", "cnnops ms", "torch ms", "speed-up", "cnnops GB/s", "of copy BW",
               "torch GB/s", "rel err"]
    bw = data["ceilings"]["copy_bandwidth_gbs"]
    rows = []
    for r in data["cases"]:
        for pn in ("forward", "backward"):
            p = r.get(pn)
            if not p:
                rows.append([r["name"], r.get("shape", ""), pn, "error", "", "", "", "", "", ""])
                continue
            rows.append([r["name"], r["shape"], pn, common.fmt(p["cnnops"]["median_ms"], ".3f"),
                         common.fmt(p["torch"]["median_ms"], ".3f"), common.fmt(p["speedup"]) + "x",
                         common.fmt(p["cnnops"]["gbs"], ".1f"), common.fmt(p["cnnops"]["gbs"] / bw * 100, ".0f") + "%",
                         common.fmt(p["torch"]["gbs"], ".1f"), common.fmt(r["rel_error"].get(pn), ".1e")])
    parts = ["# Unpooling, upsampling and fractional max pooling: cnnops vs PyTorch (CPU, float32)", "",
             common.machine_markdown(data["machine"], data["ceilings"]), "",
             common.markdown_table(headers, rows, "lll" + "r" * 7), "",
             f"Speed-up geomean: {common.fmt(data['geomean_speedup'])}x"]
    parts += [f"\nwarning: {w}" for w in data["warnings"]]
    return "\n".join(parts)


def run(repeats=None, quick=False, out=None, layers=None, commit=None) -> int:
    """Run the suite, print a table, write <out>/unpool_cpu.json and .md. layers: case names as
    'a,b' or a list (default: all); quick: batch 4 and QUICK_REPEATS repeats; commit: the source
    revision recorded in the results. Returns 0 when every case ran and matched torch, 1
    otherwise, 2 on bad arguments or missing PyTorch."""
    try:
        import torch
    except ImportError:
        print("cnnops bench unpool: needs PyTorch as the reference", file=sys.stderr)
        return 2
    try:
        names = common.parse_names(layers, list(BY_NAME), "cnnops bench unpool")
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    if repeats is not None and int(repeats) < 1:
        print(f"cnnops bench unpool: expected --repeats >= 1, got {repeats}", file=sys.stderr)
        return 2
    threads = cnnops.get_num_threads()
    torch.set_num_threads(threads)
    machine = common.machine_info({"torch": torch.__version__, "torch_parallel": f"{torch.get_num_threads()} threads"},
                                  commit)
    print(f"unpool CPU benchmark: {len(names)} cases, {threads} threads, cnnops {cnnops.__version__}, "
          f"torch {torch.__version__}", flush=True)
    c0 = common.measure_ceilings(threads, quick=quick)
    rows = []
    for n in names:
        row = bench_case(torch, BY_NAME[n].scaled(quick), repeats, quick)
        rows.append(row)
        msg = [f"{n:18s}"]
        for pn in ("forward", "backward"):
            p = row[pn]
            msg.append(pn[:3] + (f" {p['cnnops']['median_ms']:8.3f} vs {p['torch']['median_ms']:8.3f} ms "
                                 f"({p['speedup']:.2f}x)" if p else " error"))
        print("  " + "  ".join(msg) + ("" if row["correct"] else "  WRONG"), flush=True)
    c1 = common.measure_ceilings(threads, quick=quick)
    machine["load_average_end"] = common.load_average()
    warning = common.busy_warning(machine["load_average_start"], machine["cores"]["usable"])
    ceilings = common.finish_ceilings(c0, c1)
    for r in rows:
        for pn in ("forward", "backward"):
            if r.get(pn):
                for side in ("cnnops", "torch"):
                    r[pn][side]["bandwidth_fraction"] = r[pn][side]["gbs"] / ceilings["copy_bandwidth_gbs"]
    data = {
        "suite": "unpool", "device": "cpu", "machine": machine, "ceilings": ceilings,
        "ceilings_start": c0, "ceilings_end": c1,
        "settings": {"cases": names, "quick": bool(quick), "repeats": repeats, "dtype": "float32",
                     "threads": threads, "order": "interleaved cnnops, torch per repeat; median per side",
                     "rel_error_tolerance": REL_ERR_TOL},
        "cases": rows,
        "geomean_speedup": common.geomean([r[pn]["speedup"] for r in rows for pn in ("forward", "backward")
                                           if r.get(pn)]),
        "warnings": [warning] if warning else [],
    }
    md = report_markdown(data)
    jpath, mpath = common.write_results(out, "unpool_cpu", data, md)
    print("\n" + md)
    print(f"\nwrote {jpath} and {mpath}")
    return 0 if all(r["correct"] for r in rows) else 1


__all__ = ["run", "CASES"]
