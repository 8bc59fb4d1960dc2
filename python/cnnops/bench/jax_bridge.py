"""cnnops.jax's two bridges against each other and against XLA's own convolution and pooling
(``python -m cnnops bench jax``).

Each case is a jitted function run three ways on the same arrays, interleaved, median of repeats:
cnnops through the XLA FFI handlers (when the build has them), cnnops through jax.pure_callback,
and ``jax.lax`` (XLA's CPU kernels). Cases: conv2d forward and forward+gradient (value_and_grad
with respect to input and weight) on three CNN layers, and max pooling forward+gradient. The
per-call overhead of a bridge is the time of a jitted 1x1x1x1 max pooling. float32."""
from __future__ import annotations

import sys
import time

from . import common

STEM = "jax_cpu"
# name: (input shape, weight shape or pooling window, padding, stride)
LAYERS = {
    "mnist_c2_b64": ((64, 32, 14, 14), (64, 32, 5, 5), 2, 1),
    "resnet_3x3_b16": ((16, 64, 56, 56), (64, 64, 3, 3), 1, 1),
    "vgg_3x3_b8": ((8, 256, 28, 28), (256, 256, 3, 3), 1, 1),
    "maxpool_3x3s2_b16": ((16, 64, 112, 112), 3, 1, 2),
}
CASES = [f"{n}_{k}" for n in LAYERS for k in (("fwd", "grad") if not n.startswith("maxpool") else ("grad",))]


def _functions(jax, cj, name, kind, x, w):
    """{side: jitted function of (x, w)} for one case, each traced (its bridge fixed) here."""
    jnp, lax = jax.numpy, jax.lax
    xs, ws, pad, stride = LAYERS[name]
    if name.startswith("maxpool"):
        def ours(x, w):
            return cj.max_pool2d(x, ws, stride, pad)

        def ref(x, w):
            return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, ws, ws), (1, 1, stride, stride),
                                     [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    else:
        def ours(x, w):
            return cj.conv2d(x, w, None, stride, pad)

        def ref(x, w):
            return lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad), (pad, pad)])

    def wrap(f):
        if kind == "fwd":
            return jax.jit(f)
        return jax.jit(jax.value_and_grad(lambda x, w: jnp.sum(f(x, w) ** 2), argnums=(0, 1)))

    out = {}
    for bridge in cj.BRIDGES:
        if bridge == "xla_ffi" and cj.FFI_UNAVAILABLE:
            continue
        cj.set_bridge(bridge)
        out[bridge] = wrap(ours)
        jax.block_until_ready(out[bridge](x, w))  # traced now, with this bridge
    out["lax"] = wrap(ref)
    return out


def _arrays(jax, np, name):
    xs, ws, _, _ = LAYERS[name]
    rng = np.random.default_rng(0)
    x = jax.numpy.asarray(rng.standard_normal(xs), jax.numpy.float32)
    w = jax.numpy.asarray(rng.standard_normal(ws if isinstance(ws, tuple) else (1,)) * 0.1, jax.numpy.float32)
    return x, w


def overhead_us(jax, cj):
    """Microseconds per call of a jitted 1x1x1x1 max pooling, per side."""
    import numpy as np

    x = jax.numpy.ones((1, 1, 1, 1), jax.numpy.float32)
    fns = {}
    for bridge in cj.BRIDGES:
        if bridge == "xla_ffi" and cj.FFI_UNAVAILABLE:
            continue
        cj.set_bridge(bridge)
        fns[bridge] = jax.jit(lambda x: cj.max_pool2d(x, 1))
        fns[bridge](x).block_until_ready()
    fns["lax"] = jax.jit(lambda x: jax.lax.reduce_window(x, -np.inf, jax.lax.max, (1, 1, 1, 1), (1, 1, 1, 1), "VALID"))
    out = {}
    for k, f in fns.items():
        for _ in range(200):
            f(x).block_until_ready()
        t0 = time.perf_counter()
        for _ in range(2000):
            f(x).block_until_ready()
        out[k] = (time.perf_counter() - t0) / 2000 * 1e6
    return out


def report_markdown(data) -> str:
    sides = data["sides"]
    rows = []
    for r in data["cases"]:
        if "error" in r:
            rows.append([r["name"], "error", "", "", r["error"]])
            continue
        cells = [f"{r[s]['median_ms']:.2f}" for s in sides]
        ffi = r.get("xla_ffi")
        ratio = f"{r['lax']['median_ms'] / ffi['median_ms']:.2f}x" if ffi else "–"
        rows.append([r["name"], *cells, ratio])
    headers = ["case", *(f"{s} ms" for s in sides), "lax / xla_ffi"]
    table = common.markdown_table(headers, rows, "l" + "r" * (len(headers) - 1))
    o = data["overhead_us"]
    return "\n".join([
        "# cnnops.jax: XLA FFI and pure_callback bridges vs jax.lax", "",
        common.machine_markdown(data["machine"], data["ceilings"]), "",
        "Jitted functions on the same float32 arrays, interleaved, median of repeats: cnnops kernels through "
        "the XLA FFI handlers, the same kernels through jax.pure_callback, and XLA's own convolution / "
        "reduce_window (`jax.lax`). `grad` cases are value_and_grad of sum(out**2) with respect to input and "
        "weight.", "", table, "",
        "Per-call overhead (jitted 1x1x1x1 max pooling): " + ", ".join(f"{k} {v:.1f} µs" for k, v in o.items()) + "."])


def run(repeats=None, quick=False, out=None, layers=None, commit=None) -> int:
    try:
        import jax
        import numpy as np

        import cnnops.jax as cj
    except ImportError:
        print("cnnops bench jax: needs JAX (pip install 'cnnops[jax]')", file=sys.stderr)
        return 2
    import cnnops

    try:
        names = common.parse_names(layers, CASES, "cnnops bench jax")
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    threads = cnnops.get_num_threads()
    machine = common.machine_info({"jax": jax.__version__, "jax_backend": jax.default_backend()}, commit)
    sides = [b for b in cj.BRIDGES if not (b == "xla_ffi" and cj.FFI_UNAVAILABLE)] + ["lax"]
    print(f"JAX adapter benchmark: {len(names)} cases, sides {', '.join(sides)}, jax {jax.__version__}", flush=True)
    before = cj.BRIDGE
    c0 = common.measure_ceilings(threads, quick=quick)
    overhead = overhead_us(jax, cj)
    print("per-call overhead (us): " + ", ".join(f"{k} {v:.1f}" for k, v in overhead.items()), flush=True)
    rows = []
    for case in names:
        name, kind = case.rsplit("_", 1)
        row = {"name": case}
        try:
            x, w = _arrays(jax, np, name)
            traced = _functions(jax, cj, name, kind, x, w)
            fns = {k: (lambda f=f: jax.block_until_ready(f(x, w))) for k, f in traced.items()}
            results = {k: f() for k, f in fns.items()}
            ref = results["lax"][0] if kind == "grad" else results["lax"]
            row["max_rel_err"] = max(common.rel_error(np.asarray(v[0] if kind == "grad" else v), np.asarray(ref))
                                     for v in results.values())
            reps, number = common.plan_repeats(common.time_once(fns["lax"]), repeats, quick)
            for side, samples in common.time_interleaved(fns, reps, number, warmup=1).items():
                row[side] = common.summarize_times(samples)
            print(f"  {case:26s} " + ", ".join(f"{s} {row[s]['median_ms']:8.2f} ms" for s in sides), flush=True)
        except Exception as e:  # noqa: BLE001 - one failing case must not stop the suite
            row["error"] = f"{type(e).__name__}: {e}"
            print(f"  {case:26s} ERROR {row['error']}", flush=True)
        rows.append(row)
    cj.BRIDGE = before
    c1 = common.measure_ceilings(threads, quick=quick)
    data = {"suite": "jax", "device": "cpu", "machine": machine, "ceilings": common.finish_ceilings(c0, c1),
            "settings": {"quick": bool(quick), "repeats": repeats, "threads": threads, "cases": names},
            "sides": sides, "overhead_us": overhead, "cases": rows}
    jpath, mpath = common.write_results(out, STEM, data, report_markdown(data))
    print(f"\nwrote {jpath} and {mpath}")
    return 0 if all("error" not in r and r.get("max_rel_err", 1) < 1e-4 for r in rows) else 1
