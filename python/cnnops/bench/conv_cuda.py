"""Convolutions on a CUDA GPU: cnnops against cuDNN through PyTorch on the same card
(``python -m cnnops bench conv --device cuda``).

Layers: the CPU suite's conv2d layers (bench/conv.py's LAYERS) at batch 32, the ResNet-50 stem
(3 -> 64 channels, 7x7 stride 2 pad 3 on 224x224), ResNet-50's res4 1x1 (1024 -> 256 channels on
14x14) and a stride-2 MobileNet depthwise layer beside the CPU suite's stride-1 one. Each layer runs
in four precisions:

  fp32        float32 NCHW; cnnops precision="fp32" against cuDNN with TF32 off
              (torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False)
  tf32        float32 NCHW; cnnops precision="tf32" against cuDNN with TF32 on
  fp16, bf16  channels-last activations (input, grad_output) on both sides, fp32 accumulation

Depthwise layers skip tf32: neither library runs them on tensor cores, so the rows would repeat
fp32. Weights are given to each library in the layout it reads: OIHW to cnnops, channels-last to
PyTorch in fp16/bf16 (which would otherwise convert them inside the timed call).

Two passes per layer and precision: forward with bias (cnnops.conv2d against F.conv2d) and backward,
grad_input and grad_weight (cnnops.conv2d_backward with needs=(True, True, False) against
aten.convolution_backward with the same output mask). algo="auto" on the cnnops side,
torch.backends.cudnn.benchmark = True on PyTorch's. Inputs are torch CUDA tensors that cnnops reads
zero-copy (DLPack) and answers with torch tensors. Each row is checked once (relative error of
cnnops against cuDNN under TOLERANCE for its precision), warmed up, then timed with CUDA events,
cnnops and cuDNN interleaved, median of repeats.

TFLOP/s count the direct convolution's multiply-adds (bench/conv.py: 2*N*K*(C/groups)*R*S*P*Q
forward, twice that for the two gradients). The ratio is cuDNN's time over cnnops': above 1, cnnops
is faster. TARGETS (set for an H100) are judged on geometric means of the ratio per precision over
the dense layers, on the depthwise rows of every precision, and on the fp32 rate of the large 3x3
layers against the card's fp32 SIMT peak (simt_peak: a table by GPU name, else SMs x FP32 lanes x 2
x the maximum SM clock).

Results are written after every layer (``"complete": false`` until the last), so a run stopped by a
time limit still leaves what it measured."""
from __future__ import annotations

import contextlib
import math
import re
import statistics
import subprocess
import time
import zlib
from dataclasses import replace

import numpy as np

import cnnops

from . import common
from .conv import LAYERS as CPU_LAYERS
from .conv import Layer
from .gpu import gpu_stem, start, time_sides

BATCH = 32
DEVICE = "cuda"  # where torch_inputs puts the tensors
LAYERS = [replace(layer, N=BATCH) for layer in CPU_LAYERS] + [
    Layer("resnet50_stem", BATCH, 3, 224, 224, 64, 7, 2, 3, 1),
    Layer("resnet50_res4_1x1", BATCH, 1024, 14, 14, 256, 1, 1, 0, 1),
    Layer("mobilenet_dw_s2", BATCH, 64, 112, 112, 64, 3, 2, 1, 64),
]
BY_NAME = {layer.name: layer for layer in LAYERS}

PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
DTYPES = {"fp32": "float32", "tf32": "float32", "fp16": "float16", "bf16": "bfloat16"}
# ‖cnnops − cuDNN‖ / ‖cuDNN‖ allowed per precision: both sides round, in different orders (and
# cuDNN may pick FFT or Winograd algorithms), so the bounds are a few times each side's own error.
TOLERANCE = {"fp32": 1e-4, "tf32": 5e-3, "fp16": 1e-2, "bf16": 3e-2}
# The targets on an H100: geometric mean of the ratio (cuDNN time / cnnops time) per group
# of rows, and the fraction of the fp32 SIMT peak on the large 3x3 layers.
TARGETS = {"fp32": 0.8, "tf32": 0.6, "fp16": 0.6, "bf16": 0.6, "depthwise": 1.0, "large_3x3_peak_fraction": 0.5}
# fp32 SIMT (CUDA-core FMA) peaks in TFLOP/s at the boost clock, matched against nvidia-smi's name
# in this order (the first match wins, so the PCIe and NVL parts come before the plain name).
SIMT_PEAKS = (
    (r"\bGH200\b", "GH200", 67.0),
    (r"\bH200 NVL\b", "H200 NVL", 60.0),
    (r"\bH200\b", "H200 SXM", 67.0),
    (r"\bH100 PCIe\b", "H100 PCIe", 51.2),
    (r"\bH100 NVL\b", "H100 NVL", 60.0),
    (r"\bH100\b", "H100 SXM", 67.0),
    (r"\bA100\b", "A100", 19.5),
    (r"\bL40S\b", "L40S", 91.6),
    (r"\bL4\b", "L4", 30.3),
)


def precisions(layer: Layer) -> tuple:
    """The precisions a layer runs in (depthwise layers skip tf32)."""
    return tuple(p for p in PRECISIONS if not (is_depthwise(layer) and p == "tf32"))


def is_depthwise(layer: Layer) -> bool:
    return layer.groups > 1 and layer.groups == layer.C


def is_large_3x3(layer: Layer) -> bool:
    """Dense 3x3 stride-1 layers with at least 20 GFLOP forward: long enough GEMMs to run near the
    machine's peak (at batch 32: vgg16_c1_2, vgg16_c3, vgg16_c5)."""
    return layer.groups == 1 and layer.R == 3 and layer.stride == 1 and layer.flops_forward >= 20e9


def flops(layer: Layer, pass_: str) -> int:
    """FLOPs of a pass counted as direct convolution ("fwd", or "bwd": grad_input + grad_weight)."""
    return layer.flops_forward if pass_ == "fwd" else layer.flops_backward


def fp32_lanes(major: int, minor: int) -> int:
    """FP32 FMA lanes per SM for a compute capability (Volta and A100: 64; later: 128)."""
    return 64 if (major, minor) < (8, 6) else 128


def simt_peak(name: str, sms: int | None = None, capability=None, clock_mhz: float | None = None) -> dict | None:
    """The card's fp32 SIMT peak: {"tflops", "source"} from SIMT_PEAKS by name, else computed as
    sms x fp32 lanes x 2 x clock when all three are known, else None."""
    for pattern, label, tflops in SIMT_PEAKS:
        if re.search(pattern, name):
            return {"tflops": tflops, "source": f"{label} data sheet"}
    if sms and capability and clock_mhz:
        lanes = fp32_lanes(*capability)
        tflops = sms * lanes * 2 * clock_mhz * 1e6 / 1e12
        return {"tflops": tflops, "source": f"{sms} SMs x {lanes} FP32 lanes x 2 x {clock_mhz:.0f} MHz"}
    return None


def _max_sm_clock_mhz(torch) -> float | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=clocks.max.sm", "--format=csv,noheader,nounits", "-i",
                              str(torch.cuda.current_device())], capture_output=True, text=True, timeout=30)
        return float(out.stdout.split()[0]) if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def card(torch, gpu: str) -> tuple:
    """(fp32 SIMT peak, cnnops' description of the device, cuDNN version) of the current GPU."""
    idx = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(idx)
    peak = simt_peak(gpu, props.multi_processor_count, (props.major, props.minor), _max_sm_clock_mhz(torch))
    return peak, cnnops.cuda.device_name(idx), torch.backends.cudnn.version()


def case_names(quick: bool = False) -> list:
    """Layer names in run order; --quick keeps the small ones and one large 3x3 layer."""
    return [layer.name for layer in LAYERS if not quick or layer.small or layer.name == "vgg16_c5"]


# ----------------------------------------------------------------------------------------------
# the cnnops side (any CUDA arrays) and its inputs


def _data(layer: Layer):
    """Fixed-seed float32 NumPy x, w (scaled by 1/sqrt(fan-in)), bias and grad_output."""
    rng = np.random.default_rng(zlib.crc32(layer.name.encode()))
    cg = layer.C // layer.groups
    x = rng.standard_normal((layer.N, layer.C, layer.H, layer.W), dtype=np.float32)
    w = rng.standard_normal((layer.K, cg, layer.R, layer.S), dtype=np.float32) / np.float32(
        math.sqrt(cg * layer.R * layer.S))
    b = rng.standard_normal((layer.K,), dtype=np.float32)
    dy = rng.standard_normal((layer.N, layer.K, layer.P, layer.Q), dtype=np.float32)
    return x, w, b, dy


def cnnops_call(layer: Layer, precision: str, pass_: str, x, w, b, dy):
    """The timed cnnops call of one row on CUDA arrays (torch tensors, cnnops arrays, ...)."""
    kw = {"precision": precision} if DTYPES[precision] == "float32" else {}
    s, p, g = layer.stride, layer.pad, layer.groups
    if pass_ == "fwd":
        return lambda: cnnops.conv2d(x, w, b, stride=s, padding=p, groups=g, **kw)
    return lambda: cnnops.conv2d_backward(dy, x, w, s, p, 1, g, needs=(True, True, False), **kw)


def cnnops_algo(layer: Layer, precision: str, x, w) -> str:
    kw = {"precision": precision} if DTYPES[precision] == "float32" else {}
    return cnnops.conv2d_algo(x, w, stride=layer.stride, padding=layer.pad, groups=layer.groups, **kw)


def cnnops_arrays(layer: Layer, precision: str) -> tuple:
    """x, w, b, dy as cnnops CUDA arrays in the row's dtype and layout (channels-last x and dy for
    fp16/bf16). bfloat16 values cross from NumPy through a torch CPU tensor."""
    dtype = DTYPES[precision]

    def dev(a, channels_last=False):
        if channels_last:
            a = np.ascontiguousarray(np.moveaxis(a, 1, -1))
        if dtype == "float16":
            a = a.astype(np.float16)
        elif dtype == "bfloat16":
            import torch

            a = torch.from_numpy(a).to(torch.bfloat16)
        out = cnnops.cuda.array(a)
        return out.permute((0, 3, 1, 2)) if channels_last else out

    half = dtype != "float32"
    x, w, b, dy = _data(layer)
    return dev(x, half), dev(w), dev(b), dev(dy, half)


def time_cnnops(layer: Layer, precision: str, pass_: str, repeats: int = 3) -> dict:
    """One row's cnnops call alone on cnnops CUDA arrays, timed on the host around
    cnnops.cuda.synchronize(): {"algo", "median_ms", "tflops"}. Runs on any cnnops CUDA build,
    the emulation build included (where it checks the calls, not the speed)."""
    x, w, b, dy = cnnops_arrays(layer, precision)
    fn = cnnops_call(layer, precision, pass_, x, w, b, dy)
    fn()
    cnnops.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        cnnops.cuda.synchronize()
        samples.append(time.perf_counter() - t0)
    ms = statistics.median(samples) * 1e3
    return {"algo": cnnops_algo(layer, precision, x, w), "median_ms": ms,
            "tflops": flops(layer, pass_) / (ms / 1e3) / 1e12}


# ----------------------------------------------------------------------------------------------
# the PyTorch side and one row


def set_tf32(torch, on: bool) -> None:
    torch.backends.cudnn.allow_tf32 = on
    torch.backends.cuda.matmul.allow_tf32 = on


@contextlib.contextmanager
def cudnn_settings(torch):
    """cudnn.benchmark on for the block; it and both TF32 switches as they were afterwards."""
    b = torch.backends
    saved = b.cudnn.benchmark, b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32
    b.cudnn.benchmark = True
    try:
        yield
    finally:
        b.cudnn.benchmark, b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32 = saved


def torch_inputs(torch, layer: Layer, precision: str) -> dict:
    """x, b, dy and the weight twice (cnnops': OIHW; torch's: channels-last for fp16/bf16) as torch
    CUDA tensors of the row's dtype, drawn on the device (seeded by the layer's name): the large
    layers' inputs would take seconds to draw on the host."""
    dtype = getattr(torch, DTYPES[precision])
    fmt = torch.channels_last if dtype != torch.float32 else torch.contiguous_format
    g = torch.Generator(DEVICE).manual_seed(zlib.crc32(layer.name.encode()))
    cg = layer.C // layer.groups

    def randn(*shape, scale=1.0):
        return (torch.randn(shape, generator=g, device=DEVICE) * scale).to(dtype)

    x = randn(layer.N, layer.C, layer.H, layer.W)
    w = randn(layer.K, cg, layer.R, layer.S, scale=1 / math.sqrt(cg * layer.R * layer.S))
    b, dy = randn(layer.K), randn(layer.N, layer.K, layer.P, layer.Q)
    return {"x": x.contiguous(memory_format=fmt), "w_cnnops": w, "w_torch": w.contiguous(memory_format=fmt),
            "b": b, "dy": dy.contiguous(memory_format=fmt)}


def torch_call(torch, layer: Layer, pass_: str, t: dict):
    s, p, g = layer.stride, layer.pad, layer.groups
    if pass_ == "fwd":
        return lambda: torch.nn.functional.conv2d(t["x"], t["w_torch"], t["b"], stride=s, padding=p, groups=g)
    return lambda: torch.ops.aten.convolution_backward(t["dy"], t["x"], t["w_torch"], None, [s, s], [p, p], [1, 1],
                                                       False, [0, 0], g, [True, True, False])[:2]


def _rel_error(torch, got, ref) -> float:
    """max over the outputs of ‖got − ref‖ / ‖ref‖, on the device in float64."""
    if not isinstance(got, (tuple, list)):
        got, ref = (got,), (ref,)
    err = 0.0
    for a, r in zip(got, ref):
        if a is None or tuple(a.shape) != tuple(r.shape):
            return float("inf")
        r64 = r.double()
        den = float(torch.linalg.vector_norm(r64))
        num = float(torch.linalg.vector_norm(a.double() - r64))
        err = max(err, num / den if den else num)
    return err


def row_head(layer: Layer, precision: str, pass_: str) -> dict:
    """What a row says before it is measured: the layer, precision, pass, FLOPs and target groups."""
    return {"layer": layer.name, "precision": precision, "pass": pass_, "dtype": DTYPES[precision],
            "layout": "NHWC" if DTYPES[precision] != "float32" else "NCHW", "shape": layer.shape_str(),
            "groups": layer.groups, "depthwise": is_depthwise(layer), "large_3x3": is_large_3x3(layer),
            "flops": flops(layer, pass_), "tolerance": TOLERANCE[precision]}


def bench_row(torch, layer: Layer, precision: str, pass_: str, t: dict, repeats=None, quick=False) -> dict:
    """Check and time one (layer, precision, pass) row on the tensors `t` (torch_inputs)."""
    row = row_head(layer, precision, pass_)
    try:
        set_tf32(torch, precision == "tf32")
        ours = cnnops_call(layer, precision, pass_, t["x"], t["w_cnnops"], t["b"], t["dy"])
        theirs = torch_call(torch, layer, pass_, t)
        # cnnops' kernels on PyTorch's stream, so the events recorded there bracket both libraries
        with torch.no_grad(), cnnops.cuda.use_stream(torch.cuda.current_stream()):
            row["algo"] = cnnops_algo(layer, precision, t["x"], t["w_cnnops"])
            row["rel_error"] = _rel_error(torch, ours(), theirs())  # cuDNN's autotuning runs here
            row["correct"] = row["rel_error"] <= row["tolerance"]
            stats, row["repeats"], row["number"] = time_sides(torch, {"cnnops": ours, "cudnn": theirs}, repeats,
                                                              quick, default_repeats=11, warmup=2, most=50)
        for side, st in stats.items():
            st["tflops"] = row["flops"] / (st["median_ms"] / 1e3) / 1e12
            row[side] = st
        row["ratio"] = row["cudnn"]["median_ms"] / row["cnnops"]["median_ms"]
    except Exception as e:  # noqa: BLE001 - reported per row, the run goes on
        row["error"] = f"{type(e).__name__}: {e}"
        row["correct"] = False
        row["ratio"] = None
    return row


# ----------------------------------------------------------------------------------------------
# summary and report


def _judge(value, want, missing: int) -> dict:
    met = value is not None and value >= want and not missing
    return {"value": value, "want": want, "missing": missing, "met": met}


def summarize(rows: list, peak: dict | None) -> dict:
    """Geometric means of the ratio per precision (dense layers) and over the depthwise rows, each
    with its target; the fp32 rate of the large 3x3 layers against `peak`."""
    groups = {p: [r for r in rows if r["precision"] == p and r["groups"] == 1] for p in PRECISIONS}
    groups["depthwise"] = [r for r in rows if r["depthwise"]]
    out = {"geomeans": {}, "targets": {}}
    for name, rs in groups.items():
        ratios = [r["ratio"] for r in rs if r.get("ratio")]
        gm = {k: common.geomean(r["ratio"] for r in rs if r["pass"] == k and r.get("ratio")) for k in ("fwd", "bwd")}
        out["geomeans"][name] = {"all": common.geomean(ratios), **gm, "rows": len(rs)}
        if rs:
            out["targets"][name] = _judge(out["geomeans"][name]["all"], TARGETS[name], len(rs) - len(ratios))
    big = [r for r in rows if r["precision"] == "fp32" and r["large_3x3"]]
    if big and peak:
        fr = {f"{r['layer']} {r['pass']}": (r["cnnops"]["tflops"] / peak["tflops"] if r.get("ratio") else None)
              for r in big}
        got = [v for v in fr.values() if v is not None]
        out["peak_fractions"] = fr
        out["targets"]["large_3x3_peak_fraction"] = _judge(min(got) if got else None,
                                                           TARGETS["large_3x3_peak_fraction"],
                                                           len(fr) - len(got))
    return out


def _target_text(name: str, peak: dict | None) -> str:
    if name == "large_3x3_peak_fraction":
        p = f"{peak['tflops']:.1f} TFLOP/s" if peak else "unknown"
        return f"fp32 on the large 3x3 layers >= {TARGETS[name]:.0%} of the fp32 SIMT peak ({p}), every row"
    if name == "depthwise":
        return f"depthwise geomean >= {TARGETS[name]:.1f}x cuDNN (fp32, fp16, bf16)"
    return f"{name} geomean >= {TARGETS[name]:.1f}x cuDNN {name}"


def _fmt_target(t: dict, percent: bool) -> str:
    v = "–" if t["value"] is None else (f"{t['value']:.0%}" if percent else f"{t['value']:.2f}x")
    miss = f", failed rows: {t['missing']}" if t["missing"] else ""
    return f"{v}{miss}", "met" if t["met"] else "NOT met"


def report_markdown(data: dict) -> str:
    m, peak, summ = data["machine"], data["peak"], data["summary"]
    trows = []
    for name, t in summ["targets"].items():
        value, word = _fmt_target(t, name == "large_3x3_peak_fraction")
        trows.append([_target_text(name, peak), value, word])
    gm_rows = [[name, g["rows"], common.fmt(g["all"], ".2f") + "x" if g["all"] else "–",
                common.fmt(g["fwd"], ".2f"), common.fmt(g["bwd"], ".2f")]
               for name, g in summ["geomeans"].items() if g["rows"]]
    out = [f"# Convolutions on {data['gpu']}: cnnops vs cuDNN (PyTorch)", "",
           f"- **Date**: {m.get('date')}", f"- **Command**: `{m.get('command')}`",
           *([f"- **Commit**: {m['commit']}"] if m.get("commit") else []),
           f"- **GPU**: {data['gpu']} ({data['gpu_detail']})",
           "- **fp32 SIMT peak used**: " + (f"{peak['tflops']:.1f} TFLOP/s ({peak['source']})" if peak else
                                             "unknown for this card (no % of peak)"),
           f"- **cnnops**: {m['cnnops'].get('version')}, build: {m['cnnops'].get('build')}",
           f"- **PyTorch**: {m.get('torch')}, cuDNN {data['cudnn']}",
           *([] if data["complete"] else [f"- **Partial**: stopped after {len(data['layers_done'])} of "
                                          f"{len(data['settings']['layers'])} layers"]),
           "", "CUDA events after warm-up, cnnops and cuDNN interleaved, median of repeats; batch 32; "
           "cudnn.benchmark on; fp32 rows with TF32 off on both sides, tf32 rows with it on; fp16/bf16 rows "
           "channels-last. Backward = grad_input + grad_weight; algo: what cnnops' algo='auto' picks for the "
           "forward. TFLOP/s count the direct convolution; ratio = cuDNN ms / cnnops ms (above 1: cnnops "
           "faster). Targets are set for an H100.", "",
           "## Targets", "", common.markdown_table(["target", "measured", ""], trows, "lrl"), "",
           "## Geometric means of the ratio", "",
           common.markdown_table(["rows", "n", "all", "fwd", "bwd"], gm_rows, "lrrrr")]
    for prec in PRECISIONS:
        rs = [r for r in data["rows"] if r["precision"] == prec]
        if not rs:
            continue
        table = []
        for r in rs:
            big = prec == "fp32" and r["large_3x3"]
            if "error" in r:
                table.append([r["layer"], r["shape"], r["pass"], r.get("algo", ""), "error", "", "", "", "", "",
                              r["error"]])
                continue
            c, t = r["cnnops"], r["cudnn"]
            frac = f"{c['tflops'] / peak['tflops']:.0%}" + (" *" if big else "") if peak and prec == "fp32" else ""
            table.append([r["layer"], r["shape"], r["pass"], r["algo"], f"{c['median_ms']:.3f}",
                          f"{t['median_ms']:.3f}", f"{r['ratio']:.2f}x", f"{c['tflops']:.1f}", f"{t['tflops']:.1f}",
                          frac, common.fmt(r["rel_error"], ".1e") + ("" if r["correct"] else " WRONG")])
        out += ["", f"## {prec} ({rs[0]['dtype']}, {rs[0]['layout']})", "",
                common.markdown_table(["layer", "shape", "pass", "algo", "cnnops ms", "cuDNN ms", "ratio",
                                       "cnnops TFLOP/s", "cuDNN TFLOP/s", "% SIMT peak", "rel err"], table,
                                      "llllrrrrrrr")]
    if peak:
        out += ["", "`*`: a large 3x3 layer, judged against the fp32 SIMT peak target."]
    return "\n".join(out)


def result_data(gpu: str, gpu_detail: str, cudnn, machine: dict, peak, settings: dict, rows: list,
                layers_done: list) -> dict:
    return {"suite": "conv", "device": "cuda", "gpu": gpu, "gpu_detail": gpu_detail, "cudnn": cudnn,
            "machine": machine, "peak": peak, "targets": TARGETS, "settings": settings,
            "complete": len(layers_done) == len(settings["layers"]), "layers_done": list(layers_done),
            "rows": rows, "summary": summarize(rows, peak)}


def write(out, data: dict) -> tuple:
    return common.write_results(out, f"conv_{gpu_stem(data['gpu'])}", data, report_markdown(data))


def bench_layer(torch, layer: Layer, repeats=None, quick=False) -> list:
    """Every row of one layer (its precisions, forward and backward), printed as they finish."""
    rows = []
    for prec in precisions(layer):
        try:
            t = torch_inputs(torch, layer, prec)
        except Exception as e:  # noqa: BLE001 - e.g. out of memory: the layer's rows say so
            t, why = None, f"{type(e).__name__}: {e}"
        for pass_ in ("fwd", "bwd"):
            r = (bench_row(torch, layer, prec, pass_, t, repeats, quick) if t is not None else
                 {**row_head(layer, prec, pass_), "error": why, "correct": False, "ratio": None})
            rows.append(r)
            if "error" in r:
                print(f"  {layer.name:18s} {prec} {pass_} ERROR {r['error']}", flush=True)
            else:
                print(f"  {layer.name:18s} {prec} {pass_} {r['algo']:10s} {r['cnnops']['median_ms']:8.3f} vs "
                      f"{r['cudnn']['median_ms']:8.3f} ms ({r['ratio']:.2f}x) {r['cnnops']['tflops']:6.1f} "
                      f"TFLOP/s err {r['rel_error']:.1e}{'' if r['correct'] else ' WRONG'}", flush=True)
        del t
    return rows


def run(repeats=None, quick=False, out=None, layers=None, commit=None) -> int:
    """Run the GPU convolution suite; write <out>/conv_<gpu>.json and .md (after every layer).
    Returns 0 when every row ran and matched cuDNN, 1 otherwise, 2 on bad arguments or no GPU."""
    st = start("conv", [x.name for x in LAYERS] if layers else case_names(quick), layers, commit)
    if isinstance(st, int):
        return st
    torch, names, gpu = st.torch, st.names, st.gpu
    peak, detail, cudnn = card(torch, gpu)
    settings = {"quick": bool(quick), "repeats": repeats, "batch": BATCH, "layers": names,
                "precisions": list(PRECISIONS)}
    n_rows = sum(2 * len(precisions(BY_NAME[n])) for n in names)
    print(f"conv CUDA benchmark on {gpu}: {len(names)} layers, {n_rows} rows, cnnops {cnnops.__version__}, "
          f"torch {torch.__version__}, cuDNN {cudnn}", flush=True)
    print("fp32 SIMT peak: " + (f"{peak['tflops']:.1f} TFLOP/s ({peak['source']})" if peak else "unknown"),
          flush=True)
    rows, done, t0 = [], [], time.perf_counter()
    with cudnn_settings(torch):
        for i, name in enumerate(names):
            rows += bench_layer(torch, BY_NAME[name], repeats, quick)
            done.append(name)
            torch.cuda.empty_cache()
            cnnops.cuda.empty_cache()
            data = result_data(gpu, detail, cudnn, st.machine, peak, settings, rows, done)
            jpath, mpath = write(out, data)
            print(f"[{time.perf_counter() - t0:.0f} s] layer {i + 1}/{len(names)} done", flush=True)
    print("\ntargets (set for an H100):")
    for key, tg in data["summary"]["targets"].items():
        value, word = _fmt_target(tg, key == "large_3x3_peak_fraction")
        print(f"  {_target_text(key, peak)}: {value} {word}")
    print(f"\nwrote {jpath} and {mpath}")
    return 0 if all(r["correct"] and "error" not in r for r in rows) else 1


__all__ = ["run", "LAYERS", "TARGETS", "simt_peak", "time_cnnops", "summarize", "report_markdown"]
