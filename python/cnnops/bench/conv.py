"""Convolutions on the CPU: cnnops against PyTorch (oneDNN), forward and backward, on the layers
of classic networks, in four families: conv2d (its layers are below), conv1d, conv3d and
conv_transpose2d (their layers are in ``convnd``).

For every layer, both libraries get the same float32 torch tensors (cnnops reads them zero-copy
through DLPack) and the same number of threads. Forward is ``cnnops.<op>`` against
``torch.nn.functional.<op>`` (with bias); backward is ``cnnops.<op>_backward`` (input, weight
and bias gradients) against ``torch.ops.aten.convolution_backward`` with all three outputs
(``transposed=True`` and the output_padding for conv_transpose2d), so torch's timed region is its
backward compute alone (no autograd graph). Each pass is checked once (relative error against
torch), warmed up, then timed interleaved, cnnops then torch, repeat after repeat; the median per
side is reported and the ratio torch/cnnops is the speed-up.

FLOPs are those of the underlying convolution, 2 per multiply-add: forward
2*N*K*(C/groups)*R*S*P*Q for conv2d, likewise for conv1d and conv3d with their kernel and output
sizes, and 2*N*C_in*(C_out/groups)*R*S*H_in*W_in for conv_transpose2d (the convolution it is the
adjoint of; no multiplications by inserted zeros); backward twice that (input gradient + weight
gradient; the bias gradient is a reduction and not counted). Bytes: the smallest possible memory
traffic, each tensor read or written once in float32.

Results: one file pair, conv_cpu.json and conv_cpu.md, with a section per family. The JSON holds
conv2d's rows and summary at the top level ("layers", "summary"), the other families under
"families", and every family's geomeans in "summary_by_family"."""
from __future__ import annotations

import math
import sys
import traceback
import zlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

import cnnops

from . import common, convnd

REL_ERR_TOL = 1e-4


@dataclass(frozen=True)
class Layer:
    """One convolution: input (N, C, H, W), weight (K, C/groups, R, R), square stride and padding."""

    family: ClassVar[str] = "conv2d"

    name: str
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    stride: int
    pad: int
    groups: int
    small: bool = False  # part of the --quick set

    @property
    def S(self) -> int:
        return self.R

    @property
    def P(self) -> int:
        return (self.H + 2 * self.pad - self.R) // self.stride + 1

    @property
    def Q(self) -> int:
        return (self.W + 2 * self.pad - self.S) // self.stride + 1

    @property
    def flops_forward(self) -> int:
        return 2 * self.N * self.K * (self.C // self.groups) * self.R * self.S * self.P * self.Q

    @property
    def flops_backward(self) -> int:
        return 2 * self.flops_forward

    def _sizes(self):
        x = self.N * self.C * self.H * self.W
        w = self.K * (self.C // self.groups) * self.R * self.S
        y = self.N * self.K * self.P * self.Q
        return x, w, y

    @property
    def bytes_forward(self) -> int:
        x, w, y = self._sizes()
        return 4 * (x + w + self.K + y)  # read x, w, bias; write y

    @property
    def bytes_backward(self) -> int:
        x, w, y = self._sizes()
        return 4 * (y + x + w + x + w + self.K)  # read dy, x, w; write dx, dw, db

    def shape_str(self) -> str:
        s = f"{self.N}x{self.C}x{self.H}x{self.W} k{self.K} {self.R}x{self.S}"
        if self.stride != 1:
            s += f" s{self.stride}"
        if self.pad:
            s += f" p{self.pad}"
        if self.groups != 1:
            s += f" g{self.groups}"
        return s

    def as_dict(self) -> dict:
        return {"N": self.N, "C": self.C, "H": self.H, "W": self.W, "K": self.K, "R": self.R, "S": self.S,
                "stride": self.stride, "padding": self.pad, "dilation": 1, "groups": self.groups,
                "P": self.P, "Q": self.Q}

    def make_inputs(self, torch):
        """Fixed-seed float32 tensors: x, w (scaled by 1/sqrt(fan-in)), bias, grad_output."""
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        cg = self.C // self.groups
        x = rng.standard_normal((self.N, self.C, self.H, self.W), dtype=np.float32)
        w = rng.standard_normal((self.K, cg, self.R, self.S), dtype=np.float32)
        w *= np.float32(1.0 / math.sqrt(cg * self.R * self.S))
        b = rng.standard_normal((self.K,), dtype=np.float32)
        dy = rng.standard_normal((self.N, self.K, self.P, self.Q), dtype=np.float32)
        return tuple(torch.from_numpy(a) for a in (x, w, b, dy))

    def algo(self, x, w, dy) -> str:
        """The kernel cnnops' algo="auto" picks for the forward."""
        return cnnops.conv2d_algo(x, w, stride=self.stride, padding=self.pad, groups=self.groups)

    def calls(self, torch, x, w, b, dy) -> dict:
        """The four timed callables: fwd/bwd of cnnops and of torch on the same tensors."""
        F = torch.nn.functional
        s, p, g, K = self.stride, self.pad, self.groups, self.K
        return {
            "fwd_cnnops": lambda: cnnops.conv2d(x, w, b, stride=s, padding=p, dilation=1, groups=g),
            "fwd_torch": lambda: F.conv2d(x, w, b, stride=s, padding=p, dilation=1, groups=g),
            "bwd_cnnops": lambda: cnnops.conv2d_backward(dy, x, w, s, p, 1, g, "zeros", needs=(True, True, True)),
            "bwd_torch": lambda: torch.ops.aten.convolution_backward(dy, x, w, [K], [s, s], [p, p], [1, 1], False,
                                                                     [0, 0], g, [True, True, True]),
        }


# Layers of classic networks: (N, C, H, W, K, R, stride, pad, groups); `small` ones make up --quick.
LAYERS = [
    Layer("lenet5_c1", 64, 1, 32, 32, 6, 5, 1, 0, 1, small=True),
    Layer("lenet5_c3", 64, 6, 14, 14, 16, 5, 1, 0, 1, small=True),
    Layer("mnist_c1", 64, 1, 28, 28, 32, 5, 1, 2, 1, small=True),
    Layer("mnist_c2", 64, 32, 14, 14, 64, 5, 1, 2, 1, small=True),
    Layer("alexnet_c1", 8, 3, 227, 227, 96, 11, 4, 0, 1),
    Layer("vgg16_c1_2", 1, 64, 224, 224, 64, 3, 1, 1, 1),
    Layer("vgg16_c3", 8, 256, 56, 56, 256, 3, 1, 1, 1),
    Layer("vgg16_c5", 8, 512, 14, 14, 512, 3, 1, 1, 1),
    Layer("resnet50_1x1", 8, 256, 56, 56, 64, 1, 1, 0, 1),
    Layer("resnet50_3x3", 8, 64, 56, 56, 64, 3, 1, 1, 1),
    Layer("resnet50_3x3s2", 8, 128, 56, 56, 128, 3, 2, 1, 1),
    Layer("mobilenet_dw", 8, 256, 56, 56, 256, 3, 1, 1, 256, small=True),
]
BY_NAME = {layer.name: layer for layer in LAYERS}

@dataclass(frozen=True)
class Family:
    """A family of the suite: its layers and how its tables are titled."""

    name: str
    layers: tuple
    shape_header: str
    forward_title: str
    backward_title: str


def _family(name: str, layers, shape_header: str, peer_bwd: str = "aten.convolution_backward") -> Family:
    return Family(name, tuple(layers), shape_header,
                  f"Forward ({name} vs torch.nn.functional.{name}, with bias)",
                  f"Backward ({name}_backward vs {peer_bwd}: input, weight and bias gradients)")


FAMILIES = {
    "conv2d": _family("conv2d", LAYERS, "shape N×C×H×W, K, R×S"),
    "conv1d": _family("conv1d", convnd.CONV1D_LAYERS, "shape N×C×L, K, k"),
    "conv3d": _family("conv3d", convnd.CONV3D_LAYERS, "shape N×C×D×H×W, K, T×R×S"),
    "conv_transpose2d": _family("conv_transpose2d", convnd.CONV_TRANSPOSE2D_LAYERS,
                                "shape N×C_in×H×W -> C_out, R×S", "aten.convolution_backward(transposed=True)"),
}
FAMILY_ORDER = tuple(FAMILIES)
ALL_BY_NAME = {layer.name: layer for fam in FAMILIES.values() for layer in fam.layers}
if len(ALL_BY_NAME) != sum(len(f.layers) for f in FAMILIES.values()) or set(ALL_BY_NAME) & set(FAMILIES):
    raise RuntimeError("cnnops.bench.conv: layer names must be unique and differ from family names")


def _probe(fn) -> float:
    """Rough seconds per call (the function is already warm)."""
    t = common.time_once(fn, 1)
    if t < 1e-3:
        t = common.time_once(fn, max(1, math.ceil(2e-3 / max(t, 1e-7))))
    return t


def _time_pass(fns: dict, flops: int, nbytes: int, repeats, quick) -> dict:
    """Plan repeats, time cnnops and torch interleaved; medians, rates and the speed-up. The
    fractions of the machine's ceilings are added by _rate_vs_ceilings once the run is over."""
    est = max(_probe(fn) for fn in fns.values())
    reps, number = common.plan_repeats(est, repeats, quick)
    times = common.time_interleaved(fns, reps, number, warmup=0)
    res = {"repeats": reps, "number": number}
    for side, samples in times.items():
        st = common.summarize_times(samples)
        sec = st["median_ms"] / 1e3
        st["gflops"] = flops / sec / 1e9
        st["gbs"] = nbytes / sec / 1e9
        res[side] = st
    res["speedup"] = res["torch"]["median_ms"] / res["cnnops"]["median_ms"]
    return res


def bench_layer(torch, layer, repeats=None, quick=False, log=print) -> dict:
    """Check and time one layer (of any family), forward then backward; errors are recorded, not
    raised."""
    x, w, b, dy = layer.make_inputs(torch)
    fns = layer.calls(torch, x, w, b, dy)
    row = {
        "name": layer.name,
        "family": layer.family,
        "shape": layer.as_dict(),
        "algo": layer.algo(x, w, dy),
        "flops_forward": layer.flops_forward,
        "flops_backward": layer.flops_backward,
        "bytes_forward": layer.bytes_forward,
        "bytes_backward": layer.bytes_backward,
        "rel_error": {},
        "forward": None,
        "backward": None,
        "errors": {},
    }

    passes = (
        ("forward", fns["fwd_cnnops"], fns["fwd_torch"], layer.flops_forward, layer.bytes_forward, ("output",)),
        ("backward", fns["bwd_cnnops"], fns["bwd_torch"], layer.flops_backward, layer.bytes_backward,
         ("grad_input", "grad_weight", "grad_bias")),
    )
    with torch.no_grad():
        for name, fc, ft, flops, nbytes, outs in passes:
            try:
                # the check doubles as the first warm-up call of each side
                got, ref = fc(), ft()
                if name == "forward":
                    got, ref = (got,), (ref,)
                for o, a, r in zip(outs, got, ref):
                    row["rel_error"][o] = common.rel_error(a, r)
                del got, ref
                row[name] = _time_pass({"cnnops": fc, "torch": ft}, flops, nbytes, repeats, quick)
            except Exception as e:  # noqa: BLE001 - a failing layer must not stop the suite
                row["errors"][name] = f"{type(e).__name__}: {e}"
                log(f"  {layer.name} {name}: {type(e).__name__}: {e}")
                log("".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip())
    errs = list(row["rel_error"].values())
    row["max_rel_error"] = max(errs) if errs else None
    row["correct"] = bool(errs) and all(e < REL_ERR_TOL for e in errs) and not row["errors"]
    return row


# ----------------------------------------------------------------------------------------------
# summary


def summarize(rows: list, family: str = "conv2d") -> dict:
    """Speed-up statistics and correctness of one family's rows."""
    def speedups(pass_name):
        return {r["name"]: (r[pass_name]["speedup"] if r[pass_name] else None) for r in rows}

    fwd, bwd = speedups("forward"), speedups("backward")
    fwd_ok = [v for v in fwd.values() if v is not None]
    bwd_ok = [v for v in bwd.values() if v is not None]
    summ = {
        "family": family,
        "layers_run": len(rows),
        "layers_total": len(FAMILIES[family].layers),
        "forward_geomean_speedup": common.geomean(fwd_ok),
        "backward_geomean_speedup": common.geomean(bwd_ok),
        "forward_min_speedup": min(fwd_ok) if fwd_ok else None,
        "forward_min_layer": min((k for k, v in fwd.items() if v is not None), key=lambda k: fwd[k], default=None),
        "backward_min_speedup": min(bwd_ok) if bwd_ok else None,
        "backward_min_layer": min((k for k, v in bwd.items() if v is not None), key=lambda k: bwd[k], default=None),
        "all_correct": all(r["correct"] for r in rows),
        "incorrect_layers": [r["name"] for r in rows
                             if not all(e < REL_ERR_TOL for e in r["rel_error"].values())],
        "failed_layers": [r["name"] for r in rows if r["errors"]],
    }
    return summ


def _x(v) -> str:
    return "–" if v is None else f"{v:.2f}x"


def family_overview(summ: dict) -> dict:
    """The part of a family's summary that "summary_by_family" repeats."""
    keys = ("layers_run", "layers_total", "forward_geomean_speedup", "backward_geomean_speedup", "all_correct",
            "failed_layers")
    return {k: summ[k] for k in keys}


# ----------------------------------------------------------------------------------------------
# report


def _pass_rows(rows: list, pass_name: str) -> list:
    table = []
    for r in rows:
        layer = ALL_BY_NAME[r["name"]]
        algo = r["algo"]
        p = r[pass_name]
        if p is None:
            err = r["errors"].get(pass_name, "not timed")
            table.append([r["name"], layer.shape_str(), algo, "error", "–", "–", "–", "–", "–", "–", "–",
                          err[:60]])
            continue
        c, t = p["cnnops"], p["torch"]
        bound = f"{p['bound']} {100 * c['floor_fraction']:.0f}%"
        reps = f"{p['repeats']}" + (f"×{p['number']}" if p["number"] > 1 else "")
        errs = [r["rel_error"][k] for k in (("output",) if pass_name == "forward" else
                                            ("grad_input", "grad_weight", "grad_bias")) if k in r["rel_error"]]
        table.append([
            r["name"], layer.shape_str(), algo,
            f"{c['median_ms']:.3f}", f"{t['median_ms']:.3f}", f"{p['speedup']:.2f}x",
            f"{c['gflops']:.1f}", f"{100 * c['peak_fraction']:.1f}%", f"{t['gflops']:.1f}",
            bound, reps, common.fmt(max(errs) if errs else None, ".1e"),
        ])
    return table


def _headers(family: str) -> list:
    return ["layer", FAMILIES[family].shape_header, "algo", "cnnops ms", "torch ms", "speed-up", "cnnops GFLOP/s",
            "% FMA peak", "torch GFLOP/s", "bound, % of floor", "repeats", "rel err"]


_ALIGN = "lllrrrrrrrrr"


def tables_markdown(rows: list, family: str = "conv2d") -> str:
    """The forward and backward tables of one family."""
    fam = FAMILIES[family]
    parts = []
    for pass_name, title in (("forward", fam.forward_title), ("backward", fam.backward_title)):
        parts.append(f"### {title}\n")
        parts.append(common.markdown_table(_headers(family), _pass_rows(rows, pass_name), _ALIGN))
        parts.append("")
    return "\n".join(parts)


def summary_markdown(summ: dict) -> str:
    lines = [
        f"- Layers run: {summ['layers_run']} of {summ['layers_total']}",
        f"- Forward speed-up: geomean {_x(summ['forward_geomean_speedup'])}, "
        f"min {_x(summ['forward_min_speedup'])} ({summ['forward_min_layer'] or '–'})",
        f"- Backward speed-up: geomean {_x(summ['backward_geomean_speedup'])}, "
        f"min {_x(summ['backward_min_speedup'])} ({summ['backward_min_layer'] or '–'})",
        f"- Correctness (relative error vs torch < {REL_ERR_TOL:g}, every output checked): "
        + (f"FAIL on {', '.join(summ['incorrect_layers'])}" if summ["incorrect_layers"]
           else "all outputs checked pass"),
    ]
    if summ["failed_layers"]:
        lines.append(f"- Errors on: {', '.join(summ['failed_layers'])}")
    return "\n".join(lines)


def overview_markdown(summaries: dict) -> str:
    """One line per family: layers run, geomean speed-ups, correctness."""
    rows = []
    for fam, summ in summaries.items():
        rows.append([fam, f"{summ['layers_run']} of {summ['layers_total']}", _x(summ["forward_geomean_speedup"]),
                     _x(summ["backward_geomean_speedup"]),
                     "yes" if summ["all_correct"] and not summ["failed_layers"] else "NO"])
    return common.markdown_table(["family", "layers run", "forward geomean speed-up", "backward geomean speed-up",
                                  "correct"], rows, "lrrrl")


METHOD_MD = (
    "Both libraries get the same float32 torch tensors (cnnops reads them zero-copy through DLPack) and "
    "the same number of threads. Each pass is checked once against torch, warmed up, then timed "
    "interleaved (cnnops, torch, cnnops, torch, ...); times are medians per side, speed-up = torch ms / "
    "cnnops ms. Forward runs with bias; backward computes the input, weight and bias gradients "
    "(torch: `aten.convolution_backward`, with `transposed=True` for conv_transpose2d). "
    "Repeats: `R×n` means R timed repeats of n back-to-back calls each (n > 1 only for calls "
    "under 20 ms). GFLOP/s counts the multiply-adds of the underlying convolution, 2 FLOPs each: "
    "2·N·K·(C/groups)·R·S·P·Q for conv2d (likewise conv1d with k·L_out and conv3d with T·R·S·D_out·P·Q), "
    "and for conv_transpose2d the convolution it is the adjoint of, 2·N·C_in·(C_out/groups)·R·S·H_in·W_in "
    "(no multiplications by inserted zeros); backward counts twice the forward (input + weight gradient, "
    "the bias gradient not counted). "
    "`% FMA peak` is against the FMA peak measured in this run; for `winograd` rows both still count the "
    "direct convolution's multiply-adds (Winograd executes 16/36 of them for 3x3 kernels, 36/100 for 5x5), "
    "so they can exceed 100%. "
    "`bound, % of floor` names the larger of "
    "FLOPs/peak and bytes/bandwidth (each tensor read or written once) and how close cnnops gets to it. "
    "`algo` is the kernel cnnops' algo=\"auto\" picked for the forward (the rule in csrc/ops/cpu/conv_driver.cpp, "
    "choose_algo_2d); conv1d and conv3d run as 2-D problems (1-D with height 1, 3-D with the kernel's "
    "depth taps gathered into channels) and conv_transpose2d through the convolution it is the adjoint of "
    "(its forward is that convolution's input gradient), so their `algo` names the kernel picked for that "
    "2-D convolution."
)


def report_markdown(data: dict) -> str:
    c = data["ceilings"]
    fams = data["families_run"]
    parts = [
        f"# {', '.join(fams)} on the CPU: cnnops vs PyTorch (oneDNN)",
        "",
        common.machine_markdown(data["machine"], c),
        f"  (measured before the layers: {data['ceilings_start']['fma_peak_gflops']:.1f} GFLOP/s, "
        f"{data['ceilings_start']['copy_bandwidth_gbs']:.1f} GB/s; after: "
        f"{data['ceilings_end']['fma_peak_gflops']:.1f} GFLOP/s, "
        f"{data['ceilings_end']['copy_bandwidth_gbs']:.1f} GB/s; "
        "the larger of each is used)",
        *(f"\n> **Warning**: {w}" for w in data.get("warnings", [])),
        "",
        METHOD_MD,
        "",
    ]
    for fam in fams:
        rows, summ = _family_results(data, fam)
        if len(fams) > 1:
            parts += [f"## {fam}", ""]
        parts += [tables_markdown(rows, fam), "## Summary" if len(fams) == 1 else f"### {fam} summary", "",
                  summary_markdown(summ), ""]
    if len(fams) > 1:
        parts += ["## Summary by family", "", overview_markdown(data["summary_by_family"]), ""]
    return "\n".join(parts)


def _family_results(data: dict, family: str) -> tuple:
    """(rows, summary) of one family in a result dict (conv2d's live at the top level)."""
    if family == "conv2d":
        return data["layers"], data["summary"]
    f = data["families"][family]
    return f["layers"], f["summary"]


# ----------------------------------------------------------------------------------------------
# selection


def parse_families(spec) -> list:
    """Families from 'conv1d,conv3d', a list, 'all' or None (= all), in the suite's order."""
    if spec is None:
        return list(FAMILY_ORDER)
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s and s.strip()]
    if not names:
        raise ValueError(f"cnnops bench conv: expected at least one family, got {spec!r}")
    if "all" in names:
        return list(FAMILY_ORDER)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ValueError(f"cnnops bench conv: unknown family {', '.join(unknown)}; "
                         f"known: {', '.join(FAMILY_ORDER)}, all")
    return [f for f in FAMILY_ORDER if f in names]


def select_layers(layers, families: list, quick: bool = False) -> dict:
    """{family: [layer names]} to run, families in the suite's order, empty families left out.

    layers None: every layer of `families` (only the small ones when `quick`). Otherwise 'a,b' or
    a list of layer names and family names (a family name stands for all its layers), each in
    one of `families`; the order given is kept within a family."""
    if layers is None:
        chosen = [layer.name for f in families for layer in FAMILIES[f].layers if layer.small or not quick]
    else:
        tokens = [s.strip() for s in (layers.split(",") if isinstance(layers, str) else layers) if s and s.strip()]
        if not tokens:
            raise ValueError(f"cnnops bench conv: expected at least one layer name, got {layers!r}")
        unknown = [t for t in tokens if t not in ALL_BY_NAME and t not in FAMILIES]
        if unknown:
            known = "; ".join(f"{f}: {', '.join(layer.name for layer in FAMILIES[f].layers)}" for f in FAMILY_ORDER)
            raise ValueError(f"cnnops bench conv: unknown layer name(s) {', '.join(unknown)}; known (a family name "
                             f"selects all its layers): {known}")
        chosen = []
        for t in tokens:
            for name in ([layer.name for layer in FAMILIES[t].layers] if t in FAMILIES else [t]):
                if name not in chosen:
                    chosen.append(name)
        outside = [n for n in chosen if ALL_BY_NAME[n].family not in families]
        if outside:
            raise ValueError(f"cnnops bench conv: layer(s) {', '.join(outside)} not in the selected families "
                             f"({', '.join(families)})")
    out = {f: [n for n in chosen if ALL_BY_NAME[n].family == f] for f in families}
    return {f: names for f, names in out.items() if names}


# ----------------------------------------------------------------------------------------------
# entry point


def run(repeats=None, quick=False, out=None, layers=None, families=None, commit=None) -> int:
    """Run the convolution suite, print the tables, write <out>/conv_cpu.json and <out>/conv_cpu.md.

    repeats: timed repeats per layer and pass (default: about TARGET_SECONDS of timing per side,
    between MIN_REPEATS and MAX_REPEATS); quick: QUICK_REPEATS repeats and, unless `layers` is
    given, only the small layers; layers: layer names and/or family names as 'a,b' or a list
    (default: all layers of `families`); families: 'conv2d', 'conv1d', 'conv3d',
    'conv_transpose2d' or 'all', several as 'a,b' or a list (default: all); commit: the source
    revision recorded in the results (common.source_commit).
    Returns 0 when every layer ran and matched torch, 1 otherwise, 2 on bad arguments or
    missing PyTorch."""
    try:
        import torch
    except ImportError:
        print("cnnops bench conv: needs PyTorch as the reference (pip install 'cnnops[bench]')", file=sys.stderr)
        return 2
    try:
        selected = check_arguments(repeats, quick, layers, families)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    threads = cnnops.get_num_threads()
    torch.set_num_threads(threads)
    machine = common.machine_info(_peer(torch), commit)
    names = [n for f in selected for n in selected[f]]
    per_family = ", ".join(f"{f} {len(v)}" for f, v in selected.items())
    print(f"convolution CPU benchmark: {len(names)} layers ({per_family}), {threads} threads, "
          f"cnnops {cnnops.__version__} ({cnnops.simd_level()}), torch {torch.__version__}", flush=True)
    ceil_start = common.measure_ceilings(threads, quick=quick)
    print(f"measured ceilings: {ceil_start['fma_peak_gflops']:.1f} GFLOP/s FMA peak, "
          f"{ceil_start['copy_bandwidth_gbs']:.1f} GB/s copy", flush=True)
    rows_by_family = {fam: _run_family(torch, fam, fam_names, repeats, quick) for fam, fam_names in selected.items()}
    ceil_end = common.measure_ceilings(threads, quick=quick)
    machine["load_average_end"] = common.load_average()
    ceilings = common.finish_ceilings(ceil_start, ceil_end)
    for rows in rows_by_family.values():
        _add_ceiling_fractions(rows, ceilings)
    data = _results(machine, ceilings, ceil_start, ceil_end, rows_by_family, repeats, quick, threads)
    jpath, mpath = common.write_results(out, "conv_cpu", data, report_markdown(data))
    _print_report(data)
    print(f"\nwrote {jpath} and {mpath}")
    ok = all(s["all_correct"] and not s["failed_layers"] for s in data["summary_by_family"].values())
    return 0 if ok else 1


def check_arguments(repeats=None, quick=False, layers=None, families=None) -> dict:
    """{family: [layer names]} the arguments select; ValueError naming what is wrong."""
    if repeats is not None and int(repeats) < 1:
        raise ValueError(f"cnnops bench conv: expected --repeats >= 1, got {repeats}")
    return select_layers(layers, parse_families(families), quick)


def _peer(torch) -> dict:
    """PyTorch's version and threading, for the machine description."""
    mkldnn = torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
    return {"torch": torch.__version__,
            "torch_parallel": f"{torch.get_num_threads()} threads, oneDNN (mkldnn) "
                              f"{'enabled' if mkldnn else 'off'}{_onednn_version(torch)}"}


def _run_family(torch, family: str, names: list, repeats, quick) -> list:
    """Check and time the named layers of one family, printing a line per layer."""
    print(f"{family}:", flush=True)
    rows = []
    for name in names:
        row = bench_layer(torch, ALL_BY_NAME[name], repeats, quick)
        rows.append(row)
        msg = [f"{name:16s}"]
        for pn, label in (("forward", "fwd "), ("backward", "bwd ")):
            p = row[pn]
            msg.append(label + (f"{p['cnnops']['median_ms']:9.3f} vs {p['torch']['median_ms']:9.3f} ms "
                                f"({p['speedup']:.2f}x)" if p else "error"))
        flag = " ERROR" if row["errors"] else ("" if row["correct"] else " WRONG")
        msg.append(f"err {common.fmt(row['max_rel_error'], '.1e')}{flag}")
        print("  " + "  ".join(msg), flush=True)
    return rows


def _add_ceiling_fractions(rows: list, ceilings: dict) -> None:
    """Fractions of the FMA peak and of the roofline floor for every timed pass of `rows`."""
    for row in rows:
        layer = ALL_BY_NAME[row["name"]]
        for pn, flops, nbytes in (("forward", layer.flops_forward, layer.bytes_forward),
                                  ("backward", layer.flops_backward, layer.bytes_backward)):
            _rate_vs_ceilings(row[pn], flops, nbytes, ceilings)


def _results(machine, ceilings, ceil_start, ceil_end, rows_by_family, repeats, quick, threads) -> dict:
    """The result dict written to conv_cpu.json."""
    summaries = {fam: summarize(rows, fam) for fam, rows in rows_by_family.items()}
    warning = common.busy_warning(machine["load_average_start"], machine["cores"]["usable"])
    fams = list(rows_by_family)
    return {
        "suite": "conv",
        "device": "cpu",
        "machine": machine,
        "ceilings": ceilings,
        "ceilings_start": ceil_start,
        "ceilings_end": ceil_end,
        "settings": {
            "families": fams,
            "layers": [row["name"] for rows in rows_by_family.values() for row in rows],
            "quick": bool(quick),
            "repeats": repeats,
            "target_seconds_per_side": common.TARGET_SECONDS,
            "min_repeats": common.MIN_REPEATS,
            "max_repeats": common.MAX_REPEATS,
            "min_repeat_seconds": common.MIN_REPEAT_SECONDS,
            "order": "interleaved cnnops, torch per repeat; median per side",
            "rel_error_tolerance": REL_ERR_TOL,
            "dtype": "float32",
            "threads": threads,
        },
        "families_run": fams,
        "layers": rows_by_family.get("conv2d", []),
        "warnings": [warning] if warning else [],
        "summary": summaries.get("conv2d"),
        "families": {fam: {"layers": rows_by_family[fam], "summary": summaries[fam]}
                     for fam in fams if fam != "conv2d"},
        "summary_by_family": {fam: family_overview(summ) for fam, summ in summaries.items()},
    }


def _print_report(data: dict) -> None:
    """The tables and summaries of every family run, as the markdown file has them."""
    for fam in data["families_run"]:
        rows, summ = _family_results(data, fam)
        print(f"\n## {fam}\n")
        print(tables_markdown(rows, fam))
        print(summary_markdown(summ))
    if len(data["families_run"]) > 1:
        print("\n## Summary by family\n")
        print(overview_markdown(data["summary_by_family"]))
    for w in data["warnings"]:
        print(f"\nwarning: {w}")


def _rate_vs_ceilings(p, flops: int, nbytes: int, ceilings: dict) -> None:
    """Add the fractions of the FMA peak and of the roofline floor max(FLOPs/peak, bytes/bandwidth)."""
    if not p:
        return
    peak, bw = ceilings["fma_peak_gflops"], ceilings["copy_bandwidth_gbs"]
    floor_s = max(flops / (peak * 1e9), nbytes / (bw * 1e9))
    p["floor_ms"] = floor_s * 1e3
    p["bound"] = "compute" if flops / (peak * 1e9) >= nbytes / (bw * 1e9) else "memory"
    for side in ("cnnops", "torch"):
        st = p[side]
        sec = st["median_ms"] / 1e3
        st["peak_fraction"] = st["gflops"] / peak
        st["floor_fraction"] = floor_s / sec


def _onednn_version(torch) -> str:
    try:
        for line in torch.__config__.show().splitlines():
            if "MKL-DNN" in line or "oneDNN" in line:
                tail = line.split("(Git Hash")[0].strip(" -")
                for word in tail.split():
                    if word.startswith("v") and word[1:2].isdigit():
                        return f" {word}"
    except Exception:  # noqa: BLE001 - the version is a nicety
        pass
    return ""
