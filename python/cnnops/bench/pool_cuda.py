"""Pooling on a CUDA GPU: cnnops against PyTorch CUDA on the same card
(``python -m cnnops bench pool --device cuda``).

Cases at two batch sizes: max 3x3/2 pad 1 and 2x2/2 on (N, 64, 112, 112) forward (with and without
indices) and backward, channels-last max, average 3x3/2 forward and backward, adaptive average and
max (N, 512, 14, 14) -> 7x7 forward and backward (PyTorch's backward adds with atomics; ours is a
deterministic gather), global average, fractional max (N, 64, 56, 56) -> 28x28 forward and backward,
max_unpool2d and nearest upsampling forward and backward, and float16/bfloat16 max and average.
Inputs are torch CUDA tensors (cnnops takes them zero-copy). Each case is timed with CUDA events
after a warm-up, the two sides interleaved, median of repeats; GB/s counts the bytes a pass must
move and is compared with the device-to-device copy bandwidth measured in the same run."""
from __future__ import annotations

import cnnops

from . import common
from .gpu import copy_bandwidth, gpu_stem, start, time_sides


def make_cases(torch, batches=(8, 32)) -> list:
    """(name, op, shape text, bytes, make) per case; make() returns (cnnops fn, torch fn)."""
    F = torch.nn.functional
    aten = torch.ops.aten
    dev = "cuda"
    cases = []

    def n(shape):
        out = 1
        for s in shape:
            out *= s
        return out

    for N in batches:
        big = (N, 64, 112, 112)
        ni = n(big)
        for k, s, p in ((3, 2, 1), (2, 2, 0)):
            Ho = (112 + 2 * p - k) // s + 1
            no = N * 64 * Ho * Ho
            tag, sh = f"max{k}x{k}s{s}_n{N}", f"{big} k{k} s{s} p{p}"

            def fwd(idx, k=k, s=s, p=p, big=big):
                x = torch.randn(big, device=dev)
                return (lambda: cnnops.max_pool2d(x, k, s, p, return_indices=idx),
                        lambda: F.max_pool2d(x, k, s, p, return_indices=idx))

            def bwd(k=k, s=s, p=p, big=big, Ho=Ho, N=N):
                x = torch.randn(big, device=dev)
                _, i = F.max_pool2d(x, k, s, p, return_indices=True)
                go = torch.randn(N, 64, Ho, Ho, device=dev)
                return (lambda: cnnops.max_pool2d_backward(go, x, i, k, s, p),
                        lambda: aten.max_pool2d_with_indices_backward(go, x, [k, k], [s, s], [p, p], [1, 1],
                                                                      False, i))

            def fwd_nhwc(k=k, s=s, p=p, big=big):
                x = torch.randn(big, device=dev).contiguous(memory_format=torch.channels_last)
                xl = x.permute(0, 2, 3, 1)
                return (lambda: cnnops.max_pool2d(xl, k, s, p, data_format="NHWC"),
                        lambda: F.max_pool2d(x, k, s, p))

            cases += [
                (f"{tag}_fwd", "max_pool2d", sh, (ni + no) * 4, lambda f=fwd: f(False)),
                (f"{tag}_fwd_idx", "max_pool2d(return_indices)", sh, (ni + no) * 4 + no * 8, lambda f=fwd: f(True)),
                (f"{tag}_bwd", "max_pool2d_backward", sh, (ni + no) * 4 + no * 8, bwd),
                (f"{tag}_fwd_nhwc", "max_pool2d NHWC", sh, (ni + no) * 4, fwd_nhwc),
            ]

        no3 = N * 64 * 56 * 56

        def avg_fwd(big=big):
            x = torch.randn(big, device=dev)
            return lambda: cnnops.avg_pool2d(x, 3, 2, 1), lambda: F.avg_pool2d(x, 3, 2, 1)

        def avg_bwd(big=big, N=N):
            x, go = torch.randn(big, device=dev), torch.randn(N, 64, 56, 56, device=dev)
            return (lambda: cnnops.avg_pool2d_backward(go, x, 3, 2, 1),
                    lambda: aten.avg_pool2d_backward(go, x, [3, 3], [2, 2], [1, 1], False, True, None))

        def half(dtype, kind, big=big):
            x = torch.randn(big, device=dev, dtype=dtype)
            if kind == "max":
                return lambda: cnnops.max_pool2d(x, 3, 2, 1), lambda: F.max_pool2d(x, 3, 2, 1)
            return lambda: cnnops.avg_pool2d(x, 3, 2, 1), lambda: F.avg_pool2d(x, 3, 2, 1)

        a_shape = (N, 512, 14, 14)
        na = n(a_shape)

        def ad_fwd(kind, a_shape=a_shape):
            x = torch.randn(a_shape, device=dev)
            if kind == "avg":
                return lambda: cnnops.adaptive_avg_pool2d(x, 7), lambda: F.adaptive_avg_pool2d(x, 7)
            return (lambda: cnnops.adaptive_max_pool2d(x, 7, return_indices=True),
                    lambda: F.adaptive_max_pool2d(x, 7, return_indices=True))

        def ad_bwd(kind, a_shape=a_shape, N=N):
            x = torch.randn(a_shape, device=dev)
            go = torch.randn(N, 512, 7, 7, device=dev)
            if kind == "avg":
                return (lambda: cnnops.adaptive_avg_pool2d_backward(go, x),
                        lambda: aten._adaptive_avg_pool2d_backward(go, x))
            _, i = F.adaptive_max_pool2d(x, 7, return_indices=True)
            return (lambda: cnnops.adaptive_max_pool2d_backward(go, x, i),
                    lambda: aten.adaptive_max_pool2d_backward(go, x, i))

        g_shape = (N, 2048, 7, 7)
        ng = n(g_shape)

        def glob(g_shape=g_shape):
            x = torch.randn(g_shape, device=dev)
            return lambda: cnnops.global_avg_pool2d(x), lambda: F.adaptive_avg_pool2d(x, 1)

        f_shape = (N, 64, 56, 56)
        nf, nfo = n(f_shape), N * 64 * 28 * 28

        def frac(backward, f_shape=f_shape, N=N):
            x = torch.randn(f_shape, device=dev)
            u = torch.rand(N, 64, 2, device=dev)
            if not backward:
                return (lambda: cnnops.fractional_max_pool2d(x, 2, (28, 28), _random_samples=u),
                        lambda: F.fractional_max_pool2d(x, 2, (28, 28), _random_samples=u))
            _, i = F.fractional_max_pool2d(x, 2, (28, 28), return_indices=True, _random_samples=u)
            go = torch.randn(N, 64, 28, 28, device=dev)
            return (lambda: cnnops.fractional_max_pool2d_backward(go, x, i),
                    lambda: aten.fractional_max_pool2d_backward(go, x, [2, 2], [28, 28], i))

        def unpool(backward, big=big):
            x = torch.randn(big, device=dev)
            y, i = F.max_pool2d(x, 2, 2, return_indices=True)
            if not backward:
                return (lambda: cnnops.max_unpool2d(y, i, 2, 2, output_size=(112, 112)),
                        lambda: F.max_unpool2d(y, i, 2, 2, output_size=(112, 112)))
            return (lambda: cnnops.max_unpool2d_backward(x, i, 2, 2, output_size=(112, 112)),
                    lambda: x.flatten(2).gather(2, i.flatten(2)).view_as(y))

        def upsample(backward, big=big, N=N):
            x = torch.randn(N, 64, 56, 56, device=dev)
            if not backward:
                return (lambda: cnnops.upsample_nearest2d(x, scale_factor=2),
                        lambda: F.interpolate(x, scale_factor=2, mode="nearest"))
            go = torch.randn(big, device=dev)
            return (lambda: cnnops.upsample_nearest2d_backward(go, x, scale_factor=2),
                    lambda: aten.upsample_nearest2d_backward(go, [112, 112], [N, 64, 56, 56], 2.0, 2.0))

        sh3 = f"{big} k3 s2 p1"
        cases += [
            (f"avg3x3s2_n{N}_fwd", "avg_pool2d", sh3, (ni + no3) * 4, avg_fwd),
            (f"avg3x3s2_n{N}_bwd", "avg_pool2d_backward", sh3, (ni + no3) * 4, avg_bwd),
            (f"max3x3s2_n{N}_fp16", "max_pool2d float16", sh3, (ni + no3) * 2, lambda: half(torch.float16, "max")),
            (f"avg3x3s2_n{N}_bf16", "avg_pool2d bfloat16", sh3, (ni + no3) * 2, lambda: half(torch.bfloat16, "avg")),
            (f"adaptive_avg_n{N}_fwd", "adaptive_avg_pool2d -> 7x7", str(a_shape), (na + na // 4) * 4,
             lambda: ad_fwd("avg")),
            (f"adaptive_avg_n{N}_bwd", "adaptive_avg_pool2d_backward", str(a_shape), (na + na // 4) * 4,
             lambda: ad_bwd("avg")),
            (f"adaptive_max_n{N}_fwd", "adaptive_max_pool2d -> 7x7", str(a_shape), (na + na // 4) * 4 + na // 4 * 8,
             lambda: ad_fwd("max")),
            (f"adaptive_max_n{N}_bwd", "adaptive_max_pool2d_backward", str(a_shape), (na + na // 4) * 4 + na // 4 * 8,
             lambda: ad_bwd("max")),
            (f"global_avg_n{N}_fwd", "global_avg_pool2d", str(g_shape), (ng + ng // 49) * 4, glob),
            (f"fractional_n{N}_fwd", "fractional_max_pool2d -> 28x28", str(f_shape), (nf + nfo) * 4,
             lambda: frac(False)),
            (f"fractional_n{N}_bwd", "fractional_max_pool2d_backward", str(f_shape), (nf + nfo) * 4 + nfo * 8,
             lambda: frac(True)),
            (f"max_unpool_n{N}_fwd", "max_unpool2d 2x2", str(big), (ni + ni // 4) * 4 + ni // 4 * 8,
             lambda: unpool(False)),
            (f"max_unpool_n{N}_bwd", "max_unpool2d_backward", str(big), (ni + ni // 4) * 4 + ni // 4 * 8,
             lambda: unpool(True)),
            (f"upsample2x_n{N}_fwd", "upsample_nearest2d x2", str(big), (ni + ni // 4) * 4, lambda: upsample(False)),
            (f"upsample2x_n{N}_bwd", "upsample_nearest2d_backward", str(big), (ni + ni // 4) * 4,
             lambda: upsample(True)),
        ]
    return cases


def _check(a, b) -> float:
    if isinstance(a, tuple):
        err = common.rel_error(a[0].float().cpu(), b[0].float().cpu())
        return err if bool((a[1] == b[1]).all()) else float("inf")
    return common.rel_error(a.float().cpu(), b.float().cpu())


def bench_case(torch, case, repeats, quick) -> dict:
    name, op, shape, nbytes, make = case
    row = {"name": name, "op": op, "shape": shape, "bytes": nbytes}
    try:
        fc, ft = make()
        with torch.no_grad():
            row["rel_error"] = _check(fc(), ft())
            # the warm-up fills the caching allocators and loads the modules lazily
            stats, row["repeats"], row["number"] = time_sides(torch, {"cnnops": fc, "torch": ft}, repeats, quick)
        for side, st in stats.items():
            st["gbs"] = nbytes / (st["median_ms"] / 1e3) / 1e9
            row[side] = st
        row["speedup"] = row["torch"]["median_ms"] / row["cnnops"]["median_ms"]
    except Exception as e:  # noqa: BLE001 - one failing case must not stop the suite
        row["error"] = f"{type(e).__name__}: {e}"
    return row


def report_markdown(data) -> str:
    bw = data["copy_bandwidth_gbs"]
    rows = []
    for r in data["cases"]:
        if "error" in r:
            rows.append([r["name"], r["op"], r["shape"], "error", "", "", "", "", r["error"]])
            continue
        c, t = r["cnnops"], r["torch"]
        rows.append([r["name"], r["op"], r["shape"], f"{c['median_ms']:.3f}", f"{t['median_ms']:.3f}",
                     f"{r['speedup']:.2f}x", f"{c['gbs']:.0f}", f"{c['gbs'] / bw:.0%}",
                     common.fmt(r["rel_error"], ".1e")])
    table = common.markdown_table(["case", "op", "shape", "cnnops ms", "torch ms", "speed-up", "cnnops GB/s",
                                   "of copy bw", "rel err"], rows, "lllrrrrrr")
    m = data["machine"]
    head = [f"# Pooling on {data['gpu']}: cnnops vs PyTorch CUDA", "",
            f"- **Date**: {m.get('date')}", f"- **Command**: `{m.get('command')}`",
            *([f"- **Commit**: {m['commit']}"] if m.get("commit") else []),
            f"- **GPU**: {data['gpu']} ({data['gpu_detail']})",
            f"- **cnnops**: {m['cnnops'].get('version')}, build: {m['cnnops'].get('build')}",
            f"- **PyTorch**: {m.get('torch')}",
            f"- **Device-to-device copy**: {bw:.0f} GB/s (read + write)", "",
            "CUDA events after warm-up, cnnops and PyTorch interleaved, median of repeats; float32 NCHW "
            "unless noted; inputs are torch CUDA tensors. GB/s counts the bytes a pass must move (inputs "
            "once, outputs once, indices as int64).", "", table]
    return "\n".join(head)


def run(repeats=None, quick=False, out=None, layers=None, commit=None) -> int:
    """Run the GPU pooling suite; write <out>/pool_<gpu>.json and .md. Returns 0 when every case
    ran and matched PyTorch, 1 otherwise, 2 on bad arguments."""
    batches = (8,) if quick else (8, 32)
    st = start("pool", lambda torch: [c[0] for c in make_cases(torch, batches)], layers, commit)
    if isinstance(st, int):
        return st
    torch, names, gpu, machine = st.torch, st.names, st.gpu, st.machine
    cases = make_cases(torch, batches)
    cases = [c for nm in names for c in cases if c[0] == nm]
    print(f"pooling CUDA benchmark on {gpu}: {len(cases)} cases, cnnops {cnnops.__version__}, "
          f"torch {torch.__version__}", flush=True)
    bw = copy_bandwidth(torch)
    print(f"device-to-device copy: {bw:.0f} GB/s", flush=True)
    rows = []
    for case in cases:
        r = bench_case(torch, case, repeats, quick)
        rows.append(r)
        if "error" in r:
            print(f"  {r['name']:24s} ERROR {r['error']}", flush=True)
        else:
            print(f"  {r['name']:24s} {r['cnnops']['median_ms']:8.3f} vs {r['torch']['median_ms']:8.3f} ms "
                  f"({r['speedup']:.2f}x)  {r['cnnops']['gbs']:6.0f} GB/s  err {r['rel_error']:.1e}", flush=True)
    detail = cnnops.cuda.device_name(torch.cuda.current_device())
    data = {"suite": "pool", "device": "cuda", "gpu": gpu, "gpu_detail": detail, "machine": machine,
            "copy_bandwidth_gbs": bw,
            "settings": {"quick": bool(quick), "repeats": repeats, "dtype": "float32", "cases": names},
            "cases": rows}
    jpath, mpath = common.write_results(out, f"pool_{gpu_stem(gpu)}", data, report_markdown(data))
    print(f"\nwrote {jpath} and {mpath}")
    ok = all("error" not in r and r["rel_error"] < 1e-3 for r in rows)
    return 0 if ok else 1
