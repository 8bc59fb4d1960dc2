"""Pooling on the CPU: cnnops against PyTorch, forward and backward (``python -m cnnops bench pool``).

Cases: max 3x3/2 pad 1 and 2x2/2 on (32, 64, 112, 112) with and without indices, forward and
backward; average 2x2/2; global average (32, 2048, 7, 7); adaptive
average (32, 512, 14, 14) -> 7x7; plus LP 2x2 and a channels-last max pooling. float32, the
thread count cnnops uses (torch set to the same). Each case is timed interleaved with its PyTorch
peer (median of repeats); GB/s counts the bytes each pass must move (inputs read once, outputs
written once) and is compared with the streaming copy bandwidth measured in the same run."""
from __future__ import annotations

import sys

import cnnops

from . import common

F32 = 4


class Case:
    """One timed comparison: name, what it computes, bytes it must move, and its kind ("max_nchw"
    for the NCHW max pooling passes, "other" for the rest)."""

    def __init__(self, name, op, shape, nbytes, kind, make):
        self.name, self.op, self.shape, self.nbytes, self.kind, self.make = name, op, shape, nbytes, kind, make


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _max_cases(torch, name, k, s, p, shape):
    F = torch.nn.functional
    N, C, H, W = shape
    Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    ni, no = _numel(shape), N * C * Ho * Wo
    aten = torch.ops.aten

    def fwd(torch_, idx):
        x = torch_.randn(shape)
        if idx:
            return (lambda: cnnops.max_pool2d(x, k, s, p, return_indices=True),
                    lambda: F.max_pool2d(x, k, s, p, return_indices=True))
        return lambda: cnnops.max_pool2d(x, k, s, p), lambda: F.max_pool2d(x, k, s, p)

    def bwd(torch_):
        x = torch_.randn(shape)
        _, i = F.max_pool2d(x, k, s, p, return_indices=True)
        go = torch_.randn(N, C, Ho, Wo)
        return (lambda: cnnops.max_pool2d_backward(go, x, i, k, s, p),
                lambda: aten.max_pool2d_with_indices_backward(go, x, [k, k], [s, s], [p, p], [1, 1], False, i))

    def fwd_nhwc(torch_):
        x = torch_.randn(shape).contiguous(memory_format=torch_.channels_last)
        xl = x.permute(0, 2, 3, 1)  # the same memory seen as a contiguous (N, H, W, C) array
        # the result viewed back as (N, C, H, W) (a permuted view, no copy) to compare with torch's
        return (lambda: cnnops.max_pool2d(xl, k, s, p, data_format="NHWC").permute(0, 3, 1, 2),
                lambda: F.max_pool2d(x, k, s, p))

    sh = f"{shape} k{k} s{s} p{p}"
    return [
        Case(f"{name}_fwd", "max_pool2d", sh, (ni + no) * F32, "max_nchw", lambda t: fwd(t, False)),
        Case(f"{name}_fwd_idx", "max_pool2d(return_indices)", sh, (ni + no) * F32 + no * 8, "max_nchw",
             lambda t: fwd(t, True)),
        Case(f"{name}_bwd", "max_pool2d_backward", sh, (ni + no) * F32 + no * 8, "max_nchw", bwd),
        Case(f"{name}_fwd_nhwc", "max_pool2d NHWC", sh, (ni + no) * F32, "other", fwd_nhwc),
    ]


def make_cases(torch) -> list:
    F = torch.nn.functional
    aten = torch.ops.aten
    big = (32, 64, 112, 112)
    cases = _max_cases(torch, "max3x3s2", 3, 2, 1, big) + _max_cases(torch, "max2x2s2", 2, 2, 0, big)
    ni, no = _numel(big), _numel(big) // 4

    def avg_fwd(t):
        x = t.randn(big)
        return lambda: cnnops.avg_pool2d(x, 2), lambda: F.avg_pool2d(x, 2)

    def avg_bwd(t):
        x, go = t.randn(big), t.randn(32, 64, 56, 56)
        return (lambda: cnnops.avg_pool2d_backward(go, x, 2),
                lambda: aten.avg_pool2d_backward(go, x, [2, 2], [2, 2], [0, 0], False, True, None))

    def lp_fwd(t):
        x = t.randn(big)
        return lambda: cnnops.lp_pool2d(x, 2.0, 2), lambda: F.lp_pool2d(x, 2.0, 2)

    def adaptive(shape, out):
        def fwd(t):
            x = t.randn(shape)
            return lambda: cnnops.adaptive_avg_pool2d(x, out), lambda: F.adaptive_avg_pool2d(x, out)

        def bwd(t):
            x = t.randn(shape)
            go = t.randn(shape[0], shape[1], out, out)
            return (lambda: cnnops.adaptive_avg_pool2d_backward(go, x),
                    lambda: aten._adaptive_avg_pool2d_backward(go, x))
        return fwd, bwd

    g_shape, a_shape = (32, 2048, 7, 7), (32, 512, 14, 14)
    _, gb = adaptive(g_shape, 1)
    af, ab = adaptive(a_shape, 7)
    ng, na = _numel(g_shape), _numel(a_shape)

    def global_fwd(t):
        x = t.randn(g_shape)
        return lambda: cnnops.global_avg_pool2d(x), lambda: F.adaptive_avg_pool2d(x, 1)

    cases += [
        Case("avg2x2s2_fwd", "avg_pool2d", f"{big} k2 s2", (ni + no) * F32, "other", avg_fwd),
        Case("avg2x2s2_bwd", "avg_pool2d_backward", f"{big} k2 s2", (ni + no) * F32, "other", avg_bwd),
        Case("lp2x2s2_fwd", "lp_pool2d(p=2)", f"{big} k2 s2", (ni + no) * F32, "other", lp_fwd),
        Case("global_avg_fwd", "global_avg_pool2d", str(g_shape), (ng + ng // 49) * F32, "other", global_fwd),
        Case("global_avg_bwd", "global_avg_pool2d_backward", str(g_shape), (ng + ng // 49) * F32, "other", gb),
        Case("adaptive_avg_fwd", "adaptive_avg_pool2d -> 7x7", str(a_shape), (na + na // 4) * F32, "other", af),
        Case("adaptive_avg_bwd", "adaptive_avg_pool2d_backward", str(a_shape), (na + na // 4) * F32, "other", ab),
    ]
    return cases


def _check(a, b) -> float:
    """Relative error of the outputs (values, and indices must be equal)."""
    if isinstance(a, tuple):
        err = common.rel_error(a[0], b[0])
        ia, ib = common._to_numpy(a[1]), common._to_numpy(b[1])
        return err if (ia == ib).all() else float("inf")
    return common.rel_error(a, b)


def bench_case(torch, case, repeats=None, quick=False) -> dict:
    row = {"name": case.name, "op": case.op, "shape": case.shape, "bytes": case.nbytes, "kind": case.kind}
    try:
        fc, ft = case.make(torch)
        with torch.no_grad():
            row["rel_error"] = _check(fc(), ft())
            t = common.time_once(fc)
            reps, number = common.plan_repeats(t, repeats, quick)
            times = common.time_interleaved({"cnnops": fc, "torch": ft}, reps, number, warmup=0)
        row["repeats"], row["number"] = reps, number
        for side, samples in times.items():
            st = common.summarize_times(samples)
            st["gbs"] = case.nbytes / (st["median_ms"] / 1e3) / 1e9
            row[side] = st
        row["speedup"] = row["torch"]["median_ms"] / row["cnnops"]["median_ms"]
    except Exception as e:  # noqa: BLE001 - one failing case must not stop the suite
        row["error"] = f"{type(e).__name__}: {e}"
    return row


def report_markdown(data) -> str:
    bw = data["ceilings"]["copy_bandwidth_gbs"]
    rows = []
    for r in data["cases"]:
        if "error" in r:
            rows.append([r["name"], r["op"], r["shape"], "error", "", "", "", "", "", r["error"]])
            continue
        c, t = r["cnnops"], r["torch"]
        rows.append([r["name"], r["op"], r["shape"], f"{c['median_ms']:.2f}", f"{t['median_ms']:.2f}",
                     f"{r['speedup']:.2f}x", f"{c['gbs']:.1f}", f"{c['gbs'] / bw:.0%}", f"{t['gbs']:.1f}",
                     common.fmt(r["rel_error"], ".1e")])
    table = common.markdown_table(["case", "op", "shape", "cnnops ms", "torch ms", "speed-up", "cnnops GB/s",
                                   "of copy bw", "torch GB/s", "rel err"], rows, "lllrrrrrrr")
    parts = ["# Pooling on the CPU: cnnops vs PyTorch", "", common.machine_markdown(data["machine"], data["ceilings"]),
             "", "Median of interleaved repeats, float32, NCHW unless noted. GB/s counts the bytes a pass "
             "must move (inputs once, outputs once; indices as int64). The copy bandwidth is measured on "
             "arrays larger than the last-level cache; the global-pooling input (12.8 MB) stays in a 32 MB L3 "
             "between repeats, so its fractions can exceed 100%.", "", table]
    for w in data["warnings"]:
        parts += ["", f"**Warning**: {w}"]
    return "\n".join(parts)


def case_names(torch) -> list:
    return [c.name for c in make_cases(torch)]


def run(repeats=None, quick=False, out=None, layers=None, commit=None) -> int:
    """Run the pooling suite, print the table, write <out>/pool_cpu.json and <out>/pool_cpu.md.

    layers: case names as 'a,b' or a list (default: all; --quick runs them all with fewer
    repeats); commit: the source revision recorded in the results. Returns 0 when every case ran
    and matched PyTorch, 1 otherwise, 2 on bad arguments or missing PyTorch."""
    try:
        import torch
    except ImportError:
        print("cnnops bench pool: needs PyTorch as the reference (pip install 'cnnops[bench]')", file=sys.stderr)
        return 2
    cases = make_cases(torch)
    try:
        names = common.parse_names(layers, [c.name for c in cases], "cnnops bench pool")
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    cases = [c for n in names for c in cases if c.name == n]
    threads = cnnops.get_num_threads()
    torch.set_num_threads(threads)
    machine = common.machine_info({"torch": torch.__version__, "torch_parallel": f"{torch.get_num_threads()} threads"},
                                  commit)
    print(f"pooling CPU benchmark: {len(cases)} cases, {threads} threads, cnnops {cnnops.__version__} "
          f"({cnnops.simd_level()}), torch {torch.__version__}", flush=True)
    c0 = common.measure_ceilings(threads, quick=quick)
    print(f"measured streaming copy: {c0['copy_bandwidth_gbs']:.1f} GB/s", flush=True)
    rows = []
    for case in cases:
        r = bench_case(torch, case, repeats, quick)
        rows.append(r)
        if "error" in r:
            print(f"  {case.name:20s} ERROR {r['error']}", flush=True)
        else:
            print(f"  {case.name:20s} {r['cnnops']['median_ms']:8.2f} vs {r['torch']['median_ms']:8.2f} ms "
                  f"({r['speedup']:.2f}x)  {r['cnnops']['gbs']:6.1f} GB/s  err {r['rel_error']:.1e}", flush=True)
    c1 = common.measure_ceilings(threads, quick=quick)
    machine["load_average_end"] = common.load_average()
    warning = common.busy_warning(machine["load_average_start"], machine["cores"]["usable"])
    data = {"suite": "pool", "device": "cpu", "machine": machine, "ceilings": common.finish_ceilings(c0, c1),
            "ceilings_start": c0, "ceilings_end": c1,
            "settings": {"quick": bool(quick), "repeats": repeats, "threads": threads, "dtype": "float32",
                         "cases": names},
            "cases": rows, "warnings": [warning] if warning else []}
    jpath, mpath = common.write_results(out, "pool_cpu", data, report_markdown(data))
    print()
    print(report_markdown(data).split("\n\n", 2)[2])
    print(f"\nwrote {jpath} and {mpath}")
    ok = all("error" not in r and r["rel_error"] < 1e-5 for r in rows)
    return 0 if ok else 1
