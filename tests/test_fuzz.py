"""Property-based fuzz tests (hypothesis) over every public function of cnnops.

Each test draws a whole call (shapes, options, dtype, memory layout of the inputs) from one
strategy per op family and checks:

* a valid call matches the float64 NumPy references in tests/reference.py (and PyTorch, where the
  test says so and torch is installed), in float32 and float64, for every ``algo=``;
* the caller's arrays are byte-for-byte unchanged afterwards (including the buffers that strided
  views are cut from);
* an invalid call raises ValueError or TypeError whose message starts with the function's name
  (``"conv2d: ..."``) and names no internals (no pybind overload list, no C++ names).

Shapes are small and reach the corners on purpose: sizes of 1, kernels larger than the input with
padding, output rows made only of padding, strides far beyond the input, dilation, groups up to
depthwise, every padding spelling and padding_mode, channels-last layouts, non-contiguous and
negatively strided views.

Tolerances: relative error ||out - ref|| / ||ref|| below 1e-5 in float32 and 1e-12 in float64.
Winograd (algo="winograd") rounds more: its input and output tile transforms add and subtract
values before and after the products, so its float32 error is a few times a direct sum's (on
shapes like these F(2x2, 5x5) reaches about 1.4e-6 where the direct loops reach 4e-7). It gets
5e-5 in float32 and 1e-11 in float64.

Profiles: the default ("ci") runs a fixed, derandomised set of examples without a database (the
same examples on every run, about 38,000 examples in 2.5 minutes on two cores). CNNOPS_FUZZ=slow
selects the "slow" profile: 100x the examples of every test, freshly randomised each run
(failures print the reproduction blob).

Calls with int arguments of 2**62 or 2**31 + 1 (sizes, strides, paddings that overflow 64-bit
shape arithmetic or wrap a 32-bit int) run in a child process with a 4 GB address-space limit, so
a crash or a hang in the core shows up as a failing test instead of ending the test session.

New outputs are filled with NaN bytes while this module runs (cnnops._C._set_poison_outputs), so
an output element a kernel does not write fails the comparison.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("hypothesis", reason="the fuzz tests need hypothesis (pip install '.[test]')")
from hypothesis import HealthCheck, Phase, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import cnnops  # noqa: E402
import reference as R  # noqa: E402
from testing import check_close, randn  # noqa: E402
from testing import from_cl as to_first  # noqa: E402

# ---------------------------------------------------------------------------------------------
# profiles

_PROFILE = os.environ.get("CNNOPS_FUZZ", "ci") or "ci"
if _PROFILE not in ("ci", "slow"):
    raise ValueError(f"CNNOPS_FUZZ must be 'ci' or 'slow', got {_PROFILE!r}")

# no "explain" phase: it re-runs a failing example hundreds of times to annotate it
settings.register_profile(
    "cnnops-ci", derandomize=True, database=None, deadline=None, print_blob=True,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
settings.register_profile("cnnops-slow", parent=settings.get_profile("cnnops-ci"), derandomize=False)
_BASE = settings.get_profile(f"cnnops-{_PROFILE}")
_SCALE = 300 if _PROFILE == "slow" else 3


def examples(n):
    """Settings for a test that runs 3 n examples in CI (300 n in the slow profile)."""
    return settings(_BASE, max_examples=n * _SCALE)


@pytest.fixture(autouse=True, scope="module")
def poisoned_outputs():
    """New outputs start with every byte 0xFF (NaN for floats, -1 for indices) while this module
    runs, so an element a kernel forgets to write fails the comparison with the reference."""
    poison = getattr(cnnops._C, "_set_poison_outputs", None)
    if poison is not None:
        poison(True)
    yield
    if poison is not None:
        poison(False)


# ---------------------------------------------------------------------------------------------
# shared helpers

F32, F64 = np.float32, np.float64
TOL = {F32: 1e-5, F64: 1e-12}
WINOGRAD_TOL = {F32: 5e-5, F64: 1e-11}
DTYPES = st.sampled_from([F32, F64])
SEEDS = st.integers(0, 2**32 - 1)
LAYOUTS = st.sampled_from(["contiguous", "fortran", "strided", "reversed", "permuted"])
HUGE = 2**40  # a stride or size far beyond any input here, yet safe in 64-bit shape arithmetic

# words that betray an internal error message instead of one written for the caller
_INTERNAL = ("incompatible function arguments", "cnnops::", "std::", "_C.", "pybind", "Tensor&", "int64_t",
             "bad_alloc", "NoneType' object has no attribute")


def _arrays_in(obj):
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for e in obj:
            yield from _arrays_in(e)
    elif isinstance(obj, dict):
        for e in obj.values():
            yield from _arrays_in(e)


def fingerprint(obj):
    """Digest of the bytes of every NumPy array in obj, and of the buffer each view was cut from."""
    h = hashlib.sha1()
    for a in _arrays_in(obj):
        root = a
        while isinstance(root.base, np.ndarray):
            root = root.base
        for arr in (a, root):
            if arr.dtype == object:
                h.update(repr(arr.tolist()).encode())
            else:
                h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def run(fn, *args, **kwargs):
    """fn(*args, **kwargs), asserting that no input array was modified."""
    before = fingerprint((args, kwargs))
    out = fn(*args, **kwargs)
    assert fingerprint((args, kwargs)) == before, f"{fn.__name__} modified one of its inputs"
    return out


def raises_named(op, fn, *args, **kwargs):
    """Assert fn(*args, **kwargs) raises ValueError or TypeError with a message that starts with
    `op:` and names no internals; inputs stay unmodified."""
    before = fingerprint((args, kwargs))
    try:
        fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 -- the type is what is checked
        err = e
    else:
        pytest.fail(f"{op}: expected ValueError/TypeError, the call succeeded")
    assert fingerprint((args, kwargs)) == before, f"{op} modified one of its inputs before raising"
    assert isinstance(err, (ValueError, TypeError)), f"{op}: raised {type(err).__name__}: {err}"
    msg = str(err)
    assert msg.startswith(f"{op}:"), f"{op}: message does not name the function: {type(err).__name__}: {msg}"
    for word in _INTERNAL:
        assert word not in msg, f"{op}: message names internals ({word!r}): {msg}"
    return err


def empty_or_refused(op, fn, *args, **kwargs):
    """An input with no elements: either an empty result or ValueError/TypeError naming `op`."""
    try:
        out = run(fn, *args, **kwargs)
    except (ValueError, TypeError) as e:
        assert str(e).startswith(f"{op}:"), f"{op}: message does not name the function: {e}"
        return
    for o in out if isinstance(out, tuple) else (out,):
        assert o.size == 0, f"{op}: empty input, non-empty result of shape {o.shape}"


def arrange(a, how, rng):
    """The values of `a` in another memory layout: C order, Fortran order, every other element of a
    larger buffer (NaN/garbage in between), negative strides, or permuted axes."""
    if how == "fortran":
        return np.asfortranarray(a)
    if how == "strided" and a.ndim >= 1:
        fill = np.nan if a.dtype.kind == "f" else 7
        buf = np.full(a.shape[:-1] + (2 * a.shape[-1] + 1,), fill, dtype=a.dtype)
        view = buf[..., 1::2]
        view[...] = a
        return view
    if how == "reversed" and a.ndim >= 1:
        flip = (slice(None, None, -1),) * a.ndim
        return np.ascontiguousarray(a[flip])[flip]
    if how == "permuted" and a.ndim >= 2:
        p = rng.permutation(a.ndim)
        return np.ascontiguousarray(a.transpose(p)).transpose(np.argsort(p))
    return np.ascontiguousarray(a)


def spell(draw, values):
    """An int when every value is equal (sometimes), else a tuple or a list of them."""
    values = [int(v) for v in values]
    if len(set(values)) == 1 and draw(st.booleans()):
        return values[0]
    return draw(st.sampled_from([tuple, list]))(values)


def layout_names(nd):
    return {1: ("NCW", "NWC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}[nd]


def to_last(a):
    """(N, C, *spatial) -> (N, *spatial, C)."""
    return np.moveaxis(np.asarray(a), 1, -1)


# ---------------------------------------------------------------------------------------------
# convolution: conv1d/2d/3d and their backward, every algo

CONV_ALGOS = ("auto", "direct", "gemm", "smallc", "winograd", "depthwise")
PAD_MODES = ("zeros", "reflect", "replicate", "circular")


@st.composite
def conv_cases(draw, nd=None, big=False):
    """One convolution call: shapes, groups (depthwise included), kernel possibly larger than the
    input, strides up to HUGE, dilation, any padding spelling and mode, algo, dtype, layouts. Most
    draws fit the algo's requirements; the rest check that the algo refuses them. `big`: more
    channels and pixels (work that the kernels split across threads), for tests without a reference."""
    nd = draw(st.sampled_from((1, 2, 3))) if nd is None else nd
    algo = draw(st.sampled_from(CONV_ALGOS))
    fit = draw(st.integers(0, 4)) > 0  # shape the call for the algo
    groups = draw(st.sampled_from((1, 1, 2, 3)))
    cg = 1 if (algo == "depthwise" and fit) or draw(st.booleans()) else draw(st.integers(1, 16 if big else 3))
    kg = draw(st.integers(1, 16 if big else 3))
    max_size = {1: 300, 2: 30, 3: 9}[nd] if big else {1: 9, 2: 7, 3: 4}[nd]
    sizes = draw(st.lists(st.integers(1, max_size), min_size=nd, max_size=nd))
    # mostly kernels that fit the input with a little padding, sometimes any size up to the maximum
    kmax = {1: 6, 2: 5, 3: 3}[nd]
    kernel = [draw(st.integers(1, min(kmax, n + 2) if draw(st.integers(0, 3)) else kmax)) for n in sizes]
    stride = [draw(st.sampled_from((1, 1, 1, 2, 3, HUGE))) for _ in range(nd)]
    dilation = [draw(st.sampled_from((1, 1, 2, 3))) for _ in range(nd)]
    if algo == "winograd" and fit and nd >= 2:
        kernel[-2:] = [draw(st.sampled_from((3, 5)))] * 2
        stride[-2:], dilation[-2:] = [1, 1], [1, 1]
    if algo == "depthwise" and fit and nd == 3:
        kernel[0] = 1
    pad = st.integers(0, 2) if draw(st.integers(0, 3)) else st.integers(0, 6)
    padding = draw(st.one_of(
        pad, st.tuples(*[pad] * nd), st.lists(pad, min_size=2 * nd, max_size=2 * nd),
        st.sampled_from(["same", "valid", "full", "SAME", "Valid"])))
    return dict(nd=nd, N=draw(st.sampled_from((1, 2, 1, 0) if not big else (1, 4, 8))), C=groups * cg,
                K=groups * kg, groups=groups,
                sizes=sizes, kernel=kernel, stride=spell(draw, stride), dilation=spell(draw, dilation),
                padding=padding, mode=draw(st.sampled_from(PAD_MODES)), algo=algo,
                bias=draw(st.booleans()), dtype=draw(DTYPES), ties=draw(st.booleans()),
                layouts=[draw(LAYOUTS) for _ in range(4)], needs=draw(st.tuples(*[st.booleans()] * 3)),
                seed=draw(SEEDS))


def conv_geometry(c):
    """(pads, output sizes, None) for a valid case, or (pads, None, reason) when cnnops must refuse
    it (the rules of the convolution contract, written out independently of the code)."""
    nd, sizes, kernel = c["nd"], c["sizes"], c["kernel"]
    stride, dilation = R.ntuple(c["stride"], nd), R.ntuple(c["dilation"], nd)
    padding = c["padding"].lower() if isinstance(c["padding"], str) else c["padding"]
    pads = R.resolve_pads_nd(padding, sizes, kernel, stride, dilation)
    outs = []
    for i in range(nd):
        lo, hi = pads[2 * i], pads[2 * i + 1]
        if dilation[i] * (kernel[i] - 1) + 1 > sizes[i] + lo + hi:
            return pads, None, "kernel larger than the padded input"
        if c["mode"] == "reflect" and max(lo, hi) >= sizes[i]:
            return pads, None, "reflect padding not smaller than the input"
        if c["mode"] == "circular" and max(lo, hi) > sizes[i]:
            return pads, None, "circular padding larger than the input"
        outs.append(R.out_size(sizes[i], kernel[i], stride[i], lo, hi, dilation[i]))
    cg = c["C"] // c["groups"]
    if c["algo"] == "depthwise" and not (cg == 1 and (nd < 3 or kernel[0] == 1)):
        return pads, None, "depthwise needs groups == C (and kernel depth 1 in 3-D)"
    if c["algo"] == "winograd":
        hw = [i for i in range(nd) if i >= nd - 2]
        square = nd >= 2 and kernel[-1] == kernel[-2] and kernel[-1] in (3, 5)
        # a dimension with a single output reads the input as with stride 1
        unit = all(dilation[i] == 1 and (stride[i] == 1 or outs[i] == 1) for i in hw)
        if not (square and unit):
            return pads, None, "winograd needs a 3x3 or 5x5 kernel, stride 1, dilation 1"
    return pads, outs, None


def conv_inputs(c, rng):
    dtype = c["dtype"]
    x = randn(rng, (c["N"], c["C"]) + tuple(c["sizes"]), dtype, c["ties"])
    w = randn(rng, (c["K"], c["C"] // c["groups"]) + tuple(c["kernel"]), dtype, c["ties"])
    b = randn(rng, (c["K"],), dtype) if c["bias"] else None
    return x, w, b


def conv_kwargs(c):
    return dict(stride=c["stride"], padding=c["padding"], dilation=c["dilation"], groups=c["groups"],
                padding_mode=c["mode"], algo=c["algo"])


@examples(1200)
@given(c=conv_cases())
def test_conv_matches_reference(c):
    nd, dtype = c["nd"], c["dtype"]
    fwd, bwd = getattr(cnnops, f"conv{nd}d"), getattr(cnnops, f"conv{nd}d_backward")
    rng = np.random.default_rng(c["seed"])
    x, w, b = conv_inputs(c, rng)
    xv, wv = arrange(x, c["layouts"][0], rng), arrange(w, c["layouts"][1], rng)
    bv = None if b is None else arrange(b, c["layouts"][2], rng)
    pads, outs, reason = conv_geometry(c)
    kw = conv_kwargs(c)
    event(reason or f"valid {c['algo']}")
    if reason is not None:
        raises_named(f"conv{nd}d", fwd, xv, wv, bv, **kw)
        return
    y = run(fwd, xv, wv, bv, **kw)
    ref_kw = dict(stride=c["stride"], pads=pads, dilation=c["dilation"], groups=c["groups"], mode=c["mode"])
    tol = (WINOGRAD_TOL if c["algo"] == "winograd" else TOL)[dtype]
    # the references over absolute values: the size of the terms each result sums (see check_close_to_scale)
    ax, aw, ab = np.abs(x), np.abs(w), None if b is None else np.abs(b)
    check_close_to_scale(y, R.convnd_ref(x, w, b, **ref_kw), R.convnd_ref(ax, aw, ab, **ref_kw), f"conv{nd}d", tol,
                         dtype)

    gy = randn(rng, y.shape, dtype)
    gyv = arrange(gy, c["layouts"][3], rng)
    grads = run(bwd, gyv, xv, wv, needs=c["needs"], **kw)
    refs = R.convnd_backward_ref(gy, x, w, **ref_kw)
    scales = R.convnd_backward_ref(np.abs(gy), ax, aw, **ref_kw)
    for name, need, g, r, sc in zip(("grad_input", "grad_weight", "grad_bias"), c["needs"], grads, refs, scales):
        if need:
            check_close_to_scale(g, r, sc, f"conv{nd}d_backward {name}", tol, dtype)
        else:
            assert g is None, f"conv{nd}d_backward: {name} not asked for, got {type(g).__name__}"


def torch_conv(torch, nd, x, w, b, stride, pads, dilation, groups, mode):
    """PyTorch's convolution with explicit per-side pads (F.pad, then an unpadded convolution)."""
    F = torch.nn.functional
    order = [p for i in reversed(range(nd)) for p in (pads[2 * i], pads[2 * i + 1])]  # last dimension first
    xp = F.pad(x, order, mode=R.TORCH_PAD_MODE[mode]) if any(order) else x
    conv = getattr(F, f"conv{nd}d")
    return conv(xp, w, b, stride=stride, dilation=dilation, groups=groups)


@examples(480)
@given(c=conv_cases())
def test_conv_gradients_match_torch_autograd(c):
    """float64 forward and all three gradients against torch autograd (second oracle)."""
    torch = pytest.importorskip("torch")
    c = dict(c, dtype=F64)
    nd = c["nd"]
    pads, outs, reason = conv_geometry(c)
    if reason is not None or c["N"] == 0:
        return
    rng = np.random.default_rng(c["seed"])
    x, w, b = conv_inputs(c, rng)
    b = randn(rng, (c["K"],), F64)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    stride, dilation = R.ntuple(c["stride"], nd), R.ntuple(c["dilation"], nd)
    yt = torch_conv(torch, nd, xt, wt, bt, stride, pads, dilation, c["groups"], c["mode"])
    gy = randn(rng, tuple(yt.shape), F64)
    yt.backward(torch.tensor(gy))
    # The same sums over |x|, |w|, |b| and |gy|: the size of the terms each result adds up. Where
    # they cancel, both libraries keep only rounding noise, and errors are measured against this.
    at = [torch.tensor(np.abs(a), requires_grad=True) for a in (x, w, b)]
    ya = torch_conv(torch, nd, *at, stride, pads, dilation, c["groups"], c["mode"])
    ya.backward(torch.tensor(np.abs(gy)))
    kw = conv_kwargs(c)
    y = run(getattr(cnnops, f"conv{nd}d"), x, w, b, **kw)
    tol = (WINOGRAD_TOL if c["algo"] == "winograd" else TOL)[F64]
    check_close_to_scale(y, yt.detach().numpy(), ya.detach().numpy(), f"conv{nd}d vs torch", tol)
    got = run(getattr(cnnops, f"conv{nd}d_backward"), gy, x, w, **kw)
    for name, g, t, ta in zip(("grad_input", "grad_weight", "grad_bias"), got, (xt, wt, bt), at):
        check_close_to_scale(g, t.grad.numpy(), ta.grad.numpy(), f"conv{nd}d_backward {name} vs torch", tol)


def check_close_to_scale(out, ref, scale, what, tol, dtype=F64):
    """check_close's dtype, shape and NaN/Inf checks, then ||out - ref|| within tol of ||scale||, the
    same sums taken over absolute values: where terms cancel exactly, the two results hold only
    rounding noise of different orders of summation, which is judged against the size of the terms
    instead of against a reference of 0 or 1e-16."""
    check_close(out, ref, dtype, what, np.inf)
    ref, scale = np.asarray(ref, np.float64), np.asarray(scale, np.float64)
    finite = np.isfinite(ref) & np.isfinite(scale)
    diff = (np.asarray(out, np.float64) - ref)[finite]
    err = np.linalg.norm(diff) / max(np.linalg.norm(scale[finite]), 1e-300) if diff.size else 0.0
    assert err < tol, f"{what}: error {err:.3g} of the size of the terms >= {tol:.0e}"


@examples(60)
@given(c=conv_cases(big=True))
def test_conv_backward_independent_of_thread_count(c):
    """Every gradient is bitwise the same with one, two and three threads."""
    nd = c["nd"]
    pads, outs, reason = conv_geometry(c)
    if reason is not None:
        return
    rng = np.random.default_rng(c["seed"])
    x, w, _ = conv_inputs(c, rng)
    gy = randn(rng, (c["N"], c["K"]) + tuple(outs), c["dtype"])
    bwd = getattr(cnnops, f"conv{nd}d_backward")
    before = cnnops.get_num_threads()
    results = {}
    try:
        for threads in (1, 2, 3):
            cnnops.set_num_threads(threads)
            results[threads] = bwd(gy, x, w, **conv_kwargs(c))
    finally:
        cnnops.set_num_threads(before)
    for threads in (2, 3):
        for name, a, b in zip(("grad_input", "grad_weight", "grad_bias"), results[1], results[threads]):
            assert np.array_equal(a, b), f"conv{nd}d_backward {name} differs between 1 and {threads} threads"


@examples(100)
@given(c=conv_cases(nd=2))
def test_conv2d_algo_names_a_valid_algorithm(c):
    """conv2d_algo resolves "auto" to an algorithm that accepts the call, or refuses as conv2d does."""
    rng = np.random.default_rng(c["seed"])
    x, w, _ = conv_inputs(c, rng)
    kw = conv_kwargs(c)
    pads, outs, reason = conv_geometry(c)
    if reason is not None:
        raises_named("conv2d_algo", cnnops.conv2d_algo, x, w, **kw)
        return
    name = run(cnnops.conv2d_algo, x, w, **kw)
    assert name in CONV_ALGOS[1:], name
    if c["algo"] != "auto":
        assert name == c["algo"]


# ---------------------------------------------------------------------------------------------
# transposed convolution: conv_transpose1d/2d/3d and their backward

TRANSPOSE_ALGOS = ("auto", "direct", "gemm", "smallc", "depthwise")


@st.composite
def conv_transpose_cases(draw):
    """One transposed convolution: PyTorch's padding + output_padding, PyTorch's output_size, or
    TensorFlow's "SAME"/"VALID" + output_shape; sizes that are sometimes unreachable."""
    nd = draw(st.sampled_from((1, 2, 3)))
    groups = draw(st.sampled_from((1, 1, 2, 3)))
    cig, cog = draw(st.integers(1, 3)), (1 if draw(st.booleans()) else draw(st.integers(1, 3)))
    sizes = draw(st.lists(st.integers(1, {1: 7, 2: 5, 3: 3}[nd]), min_size=nd, max_size=nd))
    kernel = draw(st.lists(st.integers(1, {1: 5, 2: 4, 3: 3}[nd]), min_size=nd, max_size=nd))
    stride = [draw(st.sampled_from((1, 1, 2, 3))) for _ in range(nd)]
    dilation = [draw(st.sampled_from((1, 1, 2, 3))) for _ in range(nd)]
    if draw(st.integers(0, 4)) == 0:  # a huge stride where the input has one element: still one window
        d = draw(st.integers(0, nd - 1))
        sizes[d], stride[d] = 1, HUGE
    style = draw(st.sampled_from(("explicit", "explicit", "output_size", "tf")))
    case = dict(nd=nd, N=draw(st.sampled_from((1, 2, 0))), groups=groups, Cin=groups * cig, Cout=groups * cog,
                cog=cog, sizes=sizes, kernel=kernel, stride=stride, dilation=dilation, style=style,
                algo=draw(st.sampled_from(TRANSPOSE_ALGOS)), bias=draw(st.booleans()), dtype=draw(DTYPES),
                layouts=[draw(LAYOUTS) for _ in range(4)], needs=draw(st.tuples(*[st.booleans()] * 3)),
                seed=draw(SEEDS), output_padding=[0] * nd, out=None)
    reach = [max(s, d) for s, d in zip(stride, dilation)]
    if style == "tf":
        case["padding"] = draw(st.sampled_from(("same", "valid", "SAME", "VALID")))
        out = []
        for i in range(nd):
            if case["padding"].lower() == "same":
                lo = (sizes[i] - 1) * stride[i] + 1
            else:
                lo = (sizes[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1
            out.append(lo + draw(st.integers(-1 if draw(st.integers(0, 5)) == 0 else 0, min(stride[i], 4) - 1)))
        case["out"] = out
        return case
    small = st.integers(0, 2) if draw(st.integers(0, 3)) else st.integers(0, 5)
    case["padding"] = draw(st.one_of(small, st.tuples(*[small] * nd), st.lists(small, min_size=2 * nd,
                                                                                  max_size=2 * nd)))
    case["output_padding"] = [draw(st.integers(0, min(r, 4) - 1)) for r in reach]
    if style == "output_size":
        pads = R.resolve_pads_nd(case["padding"], sizes, kernel)
        base = R.conv_transpose_out_sizes(sizes, kernel, stride, pads, dilation)
        miss = draw(st.integers(0, 5)) == 0  # sometimes one past the reachable range
        case["out"] = [b + p + (reach[i] - p if miss and i == 0 else 0)
                       for i, (b, p) in enumerate(zip(base, case["output_padding"]))]
    return case


def conv_transpose_geometry(c):
    """(pads, output sizes, None) for a valid case, or (pads, None, reason)."""
    nd, sizes, kernel, stride, dilation = c["nd"], c["sizes"], c["kernel"], c["stride"], c["dilation"]
    if c["style"] == "tf":
        out = c["out"]
        pads = R.tf_transpose_pads(out, kernel, stride, dilation, c["padding"])
        for i in range(nd):
            if c["padding"].lower() == "same":
                ok = -(-out[i] // stride[i]) == sizes[i]
            else:
                ok = R.out_size(out[i], kernel[i], stride[i], 0, 0, dilation[i]) == sizes[i] and \
                    out[i] >= dilation[i] * (kernel[i] - 1) + 1
            if not ok:
                return pads, None, "output_shape does not give the input back"
    else:
        pads = R.resolve_pads_nd(c["padding"], sizes, kernel)
        base = R.conv_transpose_out_sizes(sizes, kernel, stride, pads, dilation)
        out = c["out"] if c["style"] == "output_size" else [b + p for b, p in zip(base, c["output_padding"])]
        for i in range(nd):
            if out[i] < max(base[i], 1) or out[i] >= base[i] + max(stride[i], dilation[i]):
                return pads, None, "output size not reachable"
    if c["algo"] == "depthwise" and not (c["cog"] == 1 and (nd < 3 or kernel[0] == 1)):
        return pads, None, "depthwise needs one output channel per group (and kernel depth 1 in 3-D)"
    return pads, list(out), None


def conv_transpose_kwargs(c):
    kw = dict(stride=spell_fixed(c["stride"]), padding=c["padding"], groups=c["groups"],
              dilation=spell_fixed(c["dilation"]), algo=c["algo"])
    if c["style"] == "tf":
        kw["output_shape"] = tuple(c["out"]) if c["seed"] % 2 else (c["N"], c["Cout"]) + tuple(c["out"])
    elif c["style"] == "output_size":
        kw["output_size"] = tuple(c["out"]) if c["seed"] % 2 else [c["N"], c["Cout"]] + list(c["out"])
    else:
        kw["output_padding"] = spell_fixed(c["output_padding"])
    return kw


def spell_fixed(values):
    """An int when every value is equal, else a tuple (spelling without a draw)."""
    return values[0] if len(set(values)) == 1 else tuple(values)


@examples(1000)
@given(c=conv_transpose_cases())
def test_conv_transpose_matches_reference(c):
    nd, dtype = c["nd"], c["dtype"]
    op = f"conv_transpose{nd}d"
    fwd, bwd = getattr(cnnops, op), getattr(cnnops, f"{op}_backward")
    rng = np.random.default_rng(c["seed"])
    x = randn(rng, (c["N"], c["Cin"]) + tuple(c["sizes"]), dtype)
    w = randn(rng, (c["Cin"], c["cog"]) + tuple(c["kernel"]), dtype)
    b = randn(rng, (c["Cout"],), dtype) if c["bias"] else None
    xv, wv = arrange(x, c["layouts"][0], rng), arrange(w, c["layouts"][1], rng)
    kw = conv_transpose_kwargs(c)
    pads, outs, reason = conv_transpose_geometry(c)
    event(reason or f"valid {c['style']}")
    if reason is not None:
        raises_named(op, fwd, xv, wv, b, **kw)
        return
    y = run(fwd, xv, wv, b, **kw)
    ref_kw = dict(stride=c["stride"], pads=pads, dilation=c["dilation"], groups=c["groups"])
    ax, aw, ab = np.abs(x), np.abs(w), None if b is None else np.abs(b)  # the size of the terms
    check_close_to_scale(y, R.conv_transpose_ref(x, w, b, outs=outs, **ref_kw),
                         R.conv_transpose_ref(ax, aw, ab, outs=outs, **ref_kw), op, TOL[dtype], dtype)

    gy = randn(rng, y.shape, dtype)
    bkw = {k: v for k, v in kw.items() if k not in ("output_size", "output_shape")}
    if c["style"] == "output_size":  # the backward reads the output size from grad_output
        base = R.conv_transpose_out_sizes(c["sizes"], c["kernel"], c["stride"], pads, c["dilation"])
        bkw["output_padding"] = spell_fixed([o - s for o, s in zip(outs, base)])
    grads = run(bwd, arrange(gy, c["layouts"][3], rng), xv, wv, needs=c["needs"], **bkw)
    refs = R.conv_transpose_backward_ref(gy, x, w, **ref_kw)
    scales = R.conv_transpose_backward_ref(np.abs(gy), ax, aw, **ref_kw)
    for name, need, g, r, sc in zip(("grad_input", "grad_weight", "grad_bias"), c["needs"], grads, refs, scales):
        if need:
            check_close_to_scale(g, r, sc, f"{op}_backward {name}", TOL[dtype], dtype)
        else:
            assert g is None, f"{op}_backward: {name} not asked for, got {type(g).__name__}"


@examples(400)
@given(c=conv_transpose_cases())
def test_conv_transpose_gradients_match_torch_autograd(c):
    """float64, symmetric padding (PyTorch's form): forward and gradients against torch autograd."""
    torch = pytest.importorskip("torch")
    nd = c["nd"]
    pads, outs, reason = conv_transpose_geometry(c)
    sym = all(pads[2 * i] == pads[2 * i + 1] for i in range(nd))
    if reason is not None or c["style"] != "explicit" or not sym or c["N"] == 0 or HUGE in c["stride"]:
        return
    rng = np.random.default_rng(c["seed"])
    x = randn(rng, (c["N"], c["Cin"]) + tuple(c["sizes"]), F64)
    w = randn(rng, (c["Cin"], c["cog"]) + tuple(c["kernel"]), F64)
    b = randn(rng, (c["Cout"],), F64)
    def torch_transpose(a, v, bias):
        return getattr(torch.nn.functional, f"conv_transpose{nd}d")(
            a, v, bias, stride=c["stride"], padding=pads[::2], output_padding=c["output_padding"],
            groups=c["groups"], dilation=c["dilation"])

    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch_transpose(xt, wt, bt)
    gy = randn(rng, tuple(yt.shape), F64)
    yt.backward(torch.tensor(gy))
    at = [torch.tensor(np.abs(a), requires_grad=True) for a in (x, w, b)]  # the size of the terms
    ya = torch_transpose(*at)
    ya.backward(torch.tensor(np.abs(gy)))
    kw = conv_transpose_kwargs(dict(c, dtype=F64))
    tol = TOL[F64]
    check_close_to_scale(run(getattr(cnnops, f"conv_transpose{nd}d"), x, w, b, **kw), yt.detach().numpy(),
                         ya.detach().numpy(), f"conv_transpose{nd}d vs torch", tol)
    got = run(getattr(cnnops, f"conv_transpose{nd}d_backward"), gy, x, w, **kw)
    for name, g, t, ta in zip(("grad_input", "grad_weight", "grad_bias"), got, (xt, wt, bt), at):
        check_close_to_scale(g, t.grad.numpy(), ta.grad.numpy(), f"conv_transpose{nd}d_backward {name} vs torch", tol)


# ---------------------------------------------------------------------------------------------
# pooling: max / avg / LP pooling 1-D to 3-D and their backward

def data_format_spelling(draw, nd, channels_last):
    name = layout_names(nd)[int(channels_last)]
    alias = "channels_last" if channels_last else "channels_first"
    return draw(st.sampled_from((name, name, name.lower(), alias)))


@st.composite
def pool_cases(draw):
    """One max/avg/LP pooling call with every option that applies to its kind."""
    kind = draw(st.sampled_from(("max", "max", "avg", "lp")))
    nd = draw(st.sampled_from((1, 2, 3)))
    sizes = draw(st.lists(st.integers(1, {1: 9, 2: 7, 3: 4}[nd]), min_size=nd, max_size=nd))
    kernel = [draw(st.integers(1, min(4, n + 1) if draw(st.integers(0, 3)) else 4)) for n in sizes]
    stride = None if draw(st.booleans()) else [draw(st.sampled_from((1, 2, 3, HUGE))) for _ in range(nd)]
    dilation = [draw(st.sampled_from((1, 1, 2, 3))) for _ in range(nd)] if kind == "max" else [1] * nd
    if kind == "lp":
        padding = 0
    elif draw(st.integers(0, 3)) == 0:
        padding = draw(st.sampled_from(("SAME", "VALID", "same", "valid")))
    else:
        # at most half the kernel, sometimes one more (refused)
        pads = [draw(st.integers(0, k // 2 + (draw(st.integers(0, 7)) == 0))) for k in kernel for _ in range(2)]
        sym = all(pads[2 * i] == pads[2 * i + 1] for i in range(nd))
        padding = spell(draw, pads[::2]) if sym and draw(st.booleans()) else draw(st.sampled_from([tuple, list]))(pads)
    last = draw(st.booleans())
    return dict(kind=kind, nd=nd, N=draw(st.sampled_from((1, 2, 1, 0))), C=draw(st.integers(1, 3)), sizes=sizes,
                kernel=kernel, stride=stride, dilation=dilation, padding=padding, ceil_mode=draw(st.booleans()),
                return_indices=draw(st.booleans()), indices_format=draw(st.sampled_from(("torch", "tf"))),
                count_include_pad=draw(st.booleans()),
                divisor_override=None if nd == 1 or draw(st.booleans()) else draw(st.integers(1, 5)),
                norm_type=draw(st.sampled_from((1, 2, 3, 0.5, 1.5, 4.0))), channels_last=last,
                data_format=data_format_spelling(draw, nd, last), dtype=draw(DTYPES), ties=draw(st.booleans()),
                layout=draw(LAYOUTS), use_indices=draw(st.booleans()), seed=draw(SEEDS))


def pool_geometry(c):
    """(kernel, stride, pads, dilation, outs, None) for a valid call, or (..., None, reason)."""
    nd, sizes, k, d = c["nd"], c["sizes"], c["kernel"], c["dilation"]
    s = k if c["stride"] is None else c["stride"]
    p = c["padding"]
    if isinstance(p, str):
        pads = [0] * (2 * nd) if p.upper() == "VALID" else \
            [q for i in range(nd) for q in R.same_pads_1d(sizes[i], k[i], s[i], d[i])]
    else:
        pads = list(R.resolve_pads_nd(p, sizes, k))
        if max(pads[2 * i + j] - k[i] // 2 for i in range(nd) for j in (0, 1)) > 0:
            return k, s, pads, d, None, "padding more than half the kernel"
    outs = []
    for i in range(nd):
        if d[i] * (k[i] - 1) + 1 > sizes[i] + pads[2 * i] + pads[2 * i + 1]:
            return k, s, pads, d, None, "kernel larger than the padded input"
        outs.append(R.pool_out_size(sizes[i], k[i], s[i], pads[2 * i], pads[2 * i + 1], d[i], c["ceil_mode"]))
    return k, s, pads, d, outs, None


def pool_call(c):
    """(forward function, backward function, forward kwargs, backward kwargs) of a pool case."""
    nd, kind = c["nd"], c["kind"]
    common = dict(kernel_size=spell_fixed(c["kernel"]), ceil_mode=c["ceil_mode"], data_format=c["data_format"])
    if c["stride"] is not None:
        common["stride"] = spell_fixed(c["stride"])
    if kind == "max":
        common.update(padding=c["padding"], dilation=spell_fixed(c["dilation"]))
        fkw = dict(common, return_indices=c["return_indices"], indices_format=c["indices_format"])
    elif kind == "avg":
        common.update(padding=c["padding"], count_include_pad=c["count_include_pad"])
        if c["divisor_override"] is not None:
            common["divisor_override"] = c["divisor_override"]
        fkw = dict(common)
    else:
        common["norm_type"] = c["norm_type"]
        fkw = dict(common)
    return getattr(cnnops, f"{kind}_pool{nd}d"), getattr(cnnops, f"{kind}_pool{nd}d_backward"), fkw, common


@examples(1600)
@given(c=pool_cases())
def test_pool_matches_reference(c):
    nd, kind, dtype, last = c["nd"], c["kind"], c["dtype"], c["channels_last"]
    op = f"{kind}_pool{nd}d"
    rng = np.random.default_rng(c["seed"])
    x = randn(rng, (c["N"], c["C"]) + tuple(c["sizes"]), dtype, c["ties"])
    if kind == "lp":
        x = np.abs(x) + dtype(0.25)  # positive: x^p is real for every p
    xv = arrange(to_last(x) if last else x, c["layout"], rng)
    fwd, bwd, fkw, bkw = pool_call(c)
    k, s, pads, d, outs, reason = pool_geometry(c)
    event(reason or f"valid {kind}")
    if reason is not None:
        raises_named(op, fwd, xv, **fkw)
        return
    res = run(fwd, xv, **fkw)
    y, idx = res if fkw.get("return_indices") else (res, None)
    first = to_first if last else np.asarray
    if kind == "max":
        ry, ridx = R.max_pool_ref(x, k, s, pads, d, c["ceil_mode"])
    elif kind == "avg":
        ry = R.avg_pool_ref(x, k, s, pads, c["ceil_mode"], c["count_include_pad"], c["divisor_override"])
    else:
        ry = R.lp_pool_ref(x, c["norm_type"], k, s, c["ceil_mode"])
    check_close(first(y), ry, dtype, op)
    plane = int(np.prod(c["sizes"]))
    if idx is not None:
        idx = first(idx)
        assert idx.dtype == np.int64 and idx.shape == ry.shape
        if c["indices_format"] == "tf":  # spatial position * C + c
            cc = np.arange(c["C"]).reshape((1, -1) + (1,) * nd)
            assert (idx % c["C"] == cc).all(), f"{op}: tf indices do not carry the channel"
            idx = idx // c["C"]
        empty = ridx < 0
        assert np.array_equal(idx[~empty], ridx[~empty]), f"{op}: indices differ from the reference"
        assert ((idx >= 0) & (idx < plane)).all(), f"{op}: index outside the input plane"

    gy = randn(rng, ry.shape, dtype)
    gyv = arrange(to_last(gy) if last else gy, c["layout"], rng)
    if kind == "max":
        given_idx = None
        if c["use_indices"]:
            _, given_idx = fwd(xv, **dict(fkw, return_indices=True, indices_format="torch"))
        gx = run(bwd, gyv, xv, given_idx, **bkw)
        _, tidx = fwd(x, **dict(fkw, data_format=layout_names(nd)[0], return_indices=True, indices_format="torch"))
        rgx = R.max_pool_backward_ref(gy, tidx, x.shape)
    elif kind == "avg":
        gx = run(bwd, gyv, xv, **bkw)
        rgx = R.avg_pool_backward_ref(gy, x.shape, k, s, pads, c["ceil_mode"], c["count_include_pad"],
                                      c["divisor_override"])
    else:
        gx = run(bwd, gyv, xv, **bkw)
        rgx = R.lp_pool_backward_ref(gy, x, c["norm_type"], k, s, c["ceil_mode"])
    check_close(first(gx), rgx, dtype, f"{op}_backward")


@examples(600)
@given(c=pool_cases())
def test_pool_gradients_match_torch_autograd(c):
    """float64, channels first, symmetric padding (PyTorch's form): forward and input gradient
    against torch autograd."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    nd, kind = c["nd"], c["kind"]
    k, s, pads, d, outs, reason = pool_geometry(c)
    sym = all(pads[2 * i] == pads[2 * i + 1] for i in range(nd))
    if reason is not None or not sym or c["N"] == 0 or (kind == "avg" and nd == 1 and c["divisor_override"]):
        return
    if any(pads[2 * i] > k[i] // 2 for i in range(nd)):
        return  # "SAME" pads of a dilated kernel: torch takes at most half the undilated kernel
    if kind == "max" and any(not taps for _, taps, _, _ in R._windows(c["sizes"], k, s, pads, d, c["ceil_mode"])):
        return  # a window entirely in the padding: torch's index then points outside the input
    rng = np.random.default_rng(c["seed"])
    x = randn(rng, (c["N"], c["C"]) + tuple(c["sizes"]), F64)
    if kind == "lp":
        x = np.abs(x) + 0.25
    xt = torch.tensor(x, requires_grad=True)
    s_ = [min(v, 2**31 - 1) for v in s]  # torch takes int32-sized strides; HUGE means "one window" anyway
    try:
        if kind == "max":
            yt = getattr(F, f"max_pool{nd}d")(xt, k, s_, pads[::2], d, ceil_mode=c["ceil_mode"])
        elif kind == "avg":
            extra = {} if nd == 1 else dict(divisor_override=c["divisor_override"])
            yt = getattr(F, f"avg_pool{nd}d")(xt, k, s_, pads[::2], c["ceil_mode"], c["count_include_pad"], **extra)
        else:
            one = (lambda v: v[0]) if nd == 1 else (lambda v: v)  # torch's lp_pool1d takes plain ints
            yt = getattr(F, f"lp_pool{nd}d")(xt, c["norm_type"], one(k), one(s_), c["ceil_mode"])
    except RuntimeError:  # shapes torch refuses (its 3-D check ignores the padding): no oracle here
        return
    gy = randn(rng, tuple(yt.shape), F64)
    yt.backward(torch.tensor(gy))
    c = dict(c, channels_last=False, data_format=layout_names(nd)[0], return_indices=False)
    fwd, bwd, fkw, bkw = pool_call(c)
    check_close(run(fwd, x, **fkw), yt.detach().numpy(), F64, f"{kind}_pool{nd}d vs torch")
    args = (gy, x, None) if kind == "max" else (gy, x)
    check_close(run(bwd, *args, **bkw), xt.grad.numpy(), F64, f"{kind}_pool{nd}d_backward vs torch")


# ---------------------------------------------------------------------------------------------
# adaptive and global pooling

@st.composite
def adaptive_cases(draw):
    kind = draw(st.sampled_from(("avg", "max")))
    nd = draw(st.sampled_from((1, 2, 3)))
    sizes = draw(st.lists(st.integers(1, {1: 9, 2: 6, 3: 4}[nd]), min_size=nd, max_size=nd))
    out = [None if draw(st.integers(0, 4)) == 0 else draw(st.integers(1, 2 * n + 1)) for n in sizes]
    if draw(st.integers(0, 9)) == 0:  # a non-positive size: refused
        out[draw(st.integers(0, nd - 1))] = draw(st.sampled_from((0, -1)))
    spelled = out[0] if len(set(out)) == 1 and out[0] is not None and draw(st.booleans()) else \
        draw(st.sampled_from([tuple, list]))(out)
    last = draw(st.booleans())
    return dict(kind=kind, nd=nd, N=draw(st.sampled_from((1, 2, 0))), C=draw(st.integers(1, 3)), sizes=sizes,
                out=[n if o is None else o for o, n in zip(out, sizes)], output_size=spelled,
                return_indices=draw(st.booleans()), use_indices=draw(st.booleans()), channels_last=last,
                data_format=data_format_spelling(draw, nd, last), dtype=draw(DTYPES), ties=draw(st.booleans()),
                layout=draw(LAYOUTS), seed=draw(SEEDS))


@examples(800)
@given(c=adaptive_cases())
def test_adaptive_pool_matches_reference(c):
    nd, kind, dtype, last = c["nd"], c["kind"], c["dtype"], c["channels_last"]
    op = f"adaptive_{kind}_pool{nd}d"
    fwd, bwd = getattr(cnnops, op), getattr(cnnops, f"{op}_backward")
    rng = np.random.default_rng(c["seed"])
    x = randn(rng, (c["N"], c["C"]) + tuple(c["sizes"]), dtype, c["ties"])
    xv = arrange(to_last(x) if last else x, c["layout"], rng)
    kw = dict(data_format=c["data_format"])
    if kind == "max":
        kw["return_indices"] = c["return_indices"]
    if min(c["out"]) < 1:
        raises_named(op, fwd, xv, c["output_size"], **kw)
        return
    first = to_first if last else np.asarray
    res = run(fwd, xv, c["output_size"], **kw)
    if kind == "avg":
        y, ry = res, R.adaptive_pool_ref(x, c["out"], "avg")
    else:
        y, idx = res if c["return_indices"] else (res, None)
        ry, ridx = R.adaptive_pool_ref(x, c["out"], "max")
        if idx is not None:
            assert np.array_equal(first(idx), ridx), f"{op}: indices differ from the reference"
    check_close(first(y), ry, dtype, op)
    gy = randn(rng, ry.shape, dtype)
    gyv = arrange(to_last(gy) if last else gy, c["layout"], rng)
    if kind == "avg":
        gx = run(bwd, gyv, xv, data_format=c["data_format"])
        rgx = R.adaptive_avg_pool_backward_ref(gy, x.shape)
    else:
        given_idx = fwd(xv, c["output_size"], return_indices=True, data_format=c["data_format"])[1] \
            if c["use_indices"] else None
        gx = run(bwd, gyv, xv, given_idx, data_format=c["data_format"])
        rgx = R.max_pool_backward_ref(gy, ridx, x.shape)
    check_close(first(gx), rgx, dtype, f"{op}_backward")


@examples(400)
@given(kind=st.sampled_from(("avg", "max")), n=st.integers(0, 2), ch=st.integers(1, 4),
       hw=st.tuples(st.integers(1, 7), st.integers(1, 7)), keepdims=st.booleans(), last=st.booleans(),
       return_indices=st.booleans(), flat_grad=st.booleans(), dtype=DTYPES, ties=st.booleans(), layout=LAYOUTS,
       seed=SEEDS)
def test_global_pool_matches_reference(kind, n, ch, hw, keepdims, last, return_indices, flat_grad, dtype, ties,
                                       layout, seed):
    op = f"global_{kind}_pool2d"
    fwd, bwd = getattr(cnnops, op), getattr(cnnops, f"{op}_backward")
    rng = np.random.default_rng(seed)
    x = randn(rng, (n, ch) + hw, dtype, ties)
    fmt = "NHWC" if last else "NCHW"
    xv = arrange(to_last(x) if last else x, layout, rng)
    kw = dict(keepdims=keepdims, data_format=fmt)
    if kind == "max":
        kw["return_indices"] = return_indices
    res = run(fwd, xv, **kw)
    y, idx = res if kind == "max" and return_indices else (res, None)
    if kind == "avg":
        ry = R.adaptive_pool_ref(x, (1, 1), "avg")
    else:
        ry, ridx = R.adaptive_pool_ref(x, (1, 1), "max")
    keep_shape = (n, 1, 1, ch) if last else (n, ch, 1, 1)
    want = keep_shape if keepdims else (n, ch)
    assert y.shape == want, f"{op}: shape {y.shape}, expected {want}"
    check_close(y.reshape(n, ch), ry.reshape(n, ch), dtype, op)
    if idx is not None:
        assert idx.shape == want and np.array_equal(idx.reshape(n, ch), ridx.reshape(n, ch))
    gy = randn(rng, (n, ch), dtype)
    g = gy if flat_grad else gy.reshape(keep_shape)
    if kind == "avg":
        gx = run(bwd, g, xv, data_format=fmt)
        rgx = R.adaptive_avg_pool_backward_ref(gy.reshape(n, ch, 1, 1), x.shape)
    else:
        gidx = None if idx is None else (idx.reshape(n, ch) if flat_grad else idx.reshape(keep_shape))
        gx = run(bwd, g, xv, gidx, data_format=fmt)
        rgx = R.max_pool_backward_ref(gy.reshape(n, ch, 1, 1), ridx, x.shape)
    check_close(to_first(gx) if last else gx, rgx, dtype, f"{op}_backward")


# ---------------------------------------------------------------------------------------------
# fractional max pooling (PyTorch and TensorFlow conventions)

@st.composite
def fractional_cases(draw):
    nd = draw(st.sampled_from((2, 3)))
    sizes = draw(st.lists(st.integers(1, {2: 8, 3: 5}[nd]), min_size=nd, max_size=nd))
    last = draw(st.booleans())
    c = dict(nd=nd, N=draw(st.integers(1, 2)), C=draw(st.integers(1, 3)), sizes=sizes, channels_last=last,
             data_format=layout_names(nd)[int(last)], return_indices=draw(st.booleans()), dtype=draw(DTYPES),
             ties=draw(st.booleans()), layout=draw(LAYOUTS), seed=draw(SEEDS),
             convention=draw(st.sampled_from(("torch", "torch", "tf"))))
    if c["convention"] == "tf":
        ratio = [draw(st.sampled_from((1.0, 1.25, 1.5, 2.0, 2.5, 3.0))) for _ in range(nd)]
        if draw(st.integers(0, 9)) == 0:
            ratio[0] = draw(st.sampled_from((0.5, 0.99, 9.0)))  # below 1, or an empty output: refused
        c.update(pooling_ratio=ratio[0] if len(set(ratio)) == 1 else tuple(ratio),
                 ratios=ratio, pseudo_random=draw(st.booleans()), overlapping=draw(st.booleans()))
        return c
    kernel = [draw(st.integers(1, min(3, n))) for n in sizes]
    out = [draw(st.integers(1, n - k + 1)) for n, k in zip(sizes, kernel)]
    if draw(st.integers(0, 9)) == 0:
        out[0] = sizes[0] - kernel[0] + 2  # one window too many: refused
    # samples in [0, 1): the ends of the interval are the interesting ones
    u = st.one_of(st.sampled_from((0.0, 0.5, 0.999999)), st.floats(0, 1, exclude_max=True))
    c.update(kernel=kernel, out=out, by_ratio=draw(st.booleans()),
             samples=draw(st.lists(u, min_size=c["N"] * c["C"] * nd, max_size=c["N"] * c["C"] * nd)))
    return c


@examples(600)
@given(c=fractional_cases())
def test_fractional_max_pool_matches_reference(c):
    nd, dtype, last = c["nd"], c["dtype"], c["channels_last"]
    op = f"fractional_max_pool{nd}d"
    fwd, bwd = getattr(cnnops, op), getattr(cnnops, f"{op}_backward")
    rng = np.random.default_rng(c["seed"])
    x = randn(rng, (c["N"], c["C"]) + tuple(c["sizes"]), dtype, c["ties"])
    xv = arrange(to_last(x) if last else x, c["layout"], rng)
    first = to_first if last else np.asarray
    if c["convention"] == "tf":
        outs = [int(math.floor(n / r)) for n, r in zip(c["sizes"], c["ratios"])]
        kw = dict(pooling_ratio=c["pooling_ratio"], pseudo_random=c["pseudo_random"], overlapping=c["overlapping"],
                  seed=c["seed"], return_indices=c["return_indices"], data_format=c["data_format"])
        if min(c["ratios"]) < 1 or min(outs) < 1:
            raises_named(op, fwd, xv, **kw)
            return
        res = run(fwd, xv, **kw)
        seqs = res[-nd:]
        for q, n, o in zip(seqs, c["sizes"], outs):
            assert q.dtype == np.int64 and len(q) == o + 1 and q[0] == 0 and q[-1] == n and (np.diff(q) > 0).all(), \
                f"{op}: pooling sequence {q} is not a partition of {n} into {o} windows"
        ry, ridx = R.fractional_max_pool_tf_ref(x, seqs, c["overlapping"])
        again = run(fwd, xv, pooling_sequences=seqs, overlapping=c["overlapping"], data_format=c["data_format"])
        assert np.array_equal(again[0], res[0]), f"{op}: pooling_sequences do not reproduce the call"
    else:
        # in [0, 1) after rounding to the dtype too (0.9999999999999999 rounds to 1 in float32)
        samples = np.minimum(np.asarray(c["samples"], dtype), np.nextafter(dtype(1), dtype(0)))
        samples = samples.reshape(c["N"], c["C"], nd)
        kw = dict(kernel_size=spell_fixed(c["kernel"]), return_indices=c["return_indices"],
                  _random_samples=samples, data_format=c["data_format"])
        if c["by_ratio"]:  # the ratio that gives these output sizes: int(size * ratio) == out
            kw["output_ratio"] = tuple((o + 0.5) / n for o, n in zip(c["out"], c["sizes"]))
        else:
            kw["output_size"] = spell_fixed(c["out"])
        ratio_ok = all(0 < (o + 0.5) / n < 1 for o, n in zip(c["out"], c["sizes"])) or not c["by_ratio"]
        if not ratio_ok or any(o + k - 1 > n for o, k, n in zip(c["out"], c["kernel"], c["sizes"])):
            raises_named(op, fwd, xv, **kw)
            return
        res = run(fwd, xv, **kw)
        ry, ridx = R.fractional_max_pool_torch_ref(x, c["kernel"], c["out"], samples)
    y = res[0] if c["return_indices"] or c["convention"] == "tf" else res
    check_close(first(y), ry, dtype, op)
    if c["return_indices"]:
        assert np.array_equal(first(res[1]), ridx), f"{op}: indices differ from the reference"
    _, idx = fwd(x, **dict(kw, return_indices=True, data_format=layout_names(nd)[0]))[:2]
    gy = randn(rng, ry.shape, dtype)
    gx = run(bwd, arrange(to_last(gy) if last else gy, c["layout"], rng), xv,
             to_last(idx) if last else idx, data_format=c["data_format"])
    check_close(first(gx), R.index_scatter_add_ref(gy, ridx, c["sizes"]), dtype, f"{op}_backward")


@examples(160)
@given(c=fractional_cases())
def test_fractional_max_pool_matches_torch(c):
    """The PyTorch convention against torch itself, float64, same samples."""
    torch = pytest.importorskip("torch")
    if c["convention"] != "torch" or any(o + k - 1 > n for o, k, n in zip(c["out"], c["kernel"], c["sizes"])):
        return
    nd = c["nd"]
    rng = np.random.default_rng(c["seed"])
    x = randn(rng, (c["N"], c["C"]) + tuple(c["sizes"]), F64, c["ties"])
    samples = np.asarray(c["samples"], F64).reshape(c["N"], c["C"], nd)
    fn = getattr(torch.nn.functional, f"fractional_max_pool{nd}d")
    try:
        ty, ti = fn(torch.tensor(x), c["kernel"], output_size=c["out"], return_indices=True,
                    _random_samples=torch.tensor(samples))
    except RuntimeError:  # torch's 3-D check is stricter (output + kernel - 1 < input): no oracle here
        return
    y, i = run(getattr(cnnops, f"fractional_max_pool{nd}d"), x, c["kernel"], output_size=c["out"],
               return_indices=True, _random_samples=samples)
    check_close(y, ty.numpy(), F64, f"fractional_max_pool{nd}d vs torch")
    assert np.array_equal(i, ti.numpy()), f"fractional_max_pool{nd}d: indices differ from torch"


# ---------------------------------------------------------------------------------------------
# unpooling and upsampling

@st.composite
def unpool_cases(draw):
    nd = draw(st.sampled_from((1, 2, 3)))
    sizes = draw(st.lists(st.integers(1, {1: 6, 2: 4, 3: 3}[nd]), min_size=nd, max_size=nd))
    kernel = draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd))
    stride = None if draw(st.booleans()) else draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd))
    padding = [draw(st.integers(0, k // 2 + (draw(st.integers(0, 9)) == 0))) for k in kernel]
    s = kernel if stride is None else stride
    default = [(n - 1) * st_ - 2 * p + k for n, st_, p, k in zip(sizes, s, padding, kernel)]
    out = None
    if draw(st.booleans()):
        out = [d + draw(st.integers(-(st_ - 1), st_ - 1)) for d, st_ in zip(default, s)]
        if draw(st.integers(0, 9)) == 0:
            out[0] = default[0] + s[0]  # one stride away: refused
    last = draw(st.booleans())
    return dict(nd=nd, N=draw(st.integers(0, 2)), C=draw(st.integers(1, 3)), sizes=sizes, kernel=kernel,
                stride=stride, padding=padding, default=default, out=out, full_shape=draw(st.booleans()),
                indices=draw(st.sampled_from(("unique", "duplicates", "out_of_range"))), channels_last=last,
                data_format=layout_names(nd)[int(last)], dtype=draw(DTYPES), layout=draw(LAYOUTS), seed=draw(SEEDS))


@examples(600)
@given(c=unpool_cases())
def test_max_unpool_matches_reference(c):
    nd, dtype, last = c["nd"], c["dtype"], c["channels_last"]
    op = f"max_unpool{nd}d"
    fwd, bwd = getattr(cnnops, op), getattr(cnnops, f"{op}_backward")
    rng = np.random.default_rng(c["seed"])
    s = c["kernel"] if c["stride"] is None else c["stride"]
    outs = c["default"] if c["out"] is None else c["out"]
    valid = all(2 * p <= k for p, k in zip(c["padding"], c["kernel"])) and min(outs) >= 1 and \
        all(d - st_ < o < d + st_ for d, st_, o in zip(c["default"], s, outs))
    shape = (c["N"], c["C"]) + tuple(c["sizes"])
    plane, n_in = max(int(np.prod(outs)), 1), int(np.prod(c["sizes"]))
    if c["indices"] == "unique" and n_in <= plane:
        idx = np.array([rng.permutation(plane)[:n_in] for _ in range(c["N"] * c["C"])], np.int64).reshape(shape)
    else:
        idx = rng.integers(0, plane, size=shape)
    if c["indices"] == "out_of_range" and idx.size:
        idx.flat[rng.integers(idx.size)] = rng.choice([-1, plane])
        valid = False
    x = randn(rng, shape, dtype)
    first, lastf = (to_first, to_last) if last else (np.asarray, np.asarray)
    xv, iv = arrange(lastf(x), c["layout"], rng), arrange(lastf(idx), c["layout"], rng)
    kw = dict(kernel_size=spell_fixed(c["kernel"]), padding=spell_fixed(c["padding"]), data_format=c["data_format"])
    if c["stride"] is not None:
        kw["stride"] = spell_fixed(c["stride"])
    if c["out"] is not None:
        size = (c["N"], c["C"]) + tuple(c["out"]) if c["full_shape"] else tuple(c["out"])
        kw["output_size"] = (size[0],) + size[2:] + (size[1],) if last and c["full_shape"] else size
    gy = randn(rng, (c["N"], c["C"]) + tuple(outs), dtype) if min(outs) >= 1 else None
    if not valid:
        raises_named(op, fwd, xv, iv, **kw)
        if gy is not None:
            raises_named(f"{op}_backward", bwd, lastf(gy), iv, **kw)
        return
    if c["indices"] == "duplicates" and c["layout"] != "contiguous":
        iv = np.ascontiguousarray(lastf(idx))  # "the later one in memory order wins": keep memory order logical
        xv = np.ascontiguousarray(lastf(x))
    y = run(fwd, xv, iv, **kw)
    check_close(first(y), R.max_unpool_ref(x, idx, outs), dtype, op)
    gx = run(bwd, arrange(lastf(gy), c["layout"], rng), iv, **kw)
    check_close(first(gx), R.max_unpool_backward_ref(gy, idx), dtype, f"{op}_backward")


@examples(240)
@given(n=st.integers(0, 2), ch=st.integers(1, 3), hw=st.tuples(st.integers(1, 5), st.integers(1, 5)),
       scale=st.one_of(st.integers(0, 3), st.tuples(st.integers(0, 3), st.integers(1, 3))), last=st.booleans(),
       dtype=DTYPES, layout=LAYOUTS, seed=SEEDS)
def test_bed_of_nails_matches_reference(n, ch, hw, scale, last, dtype, layout, seed):
    op = "bed_of_nails_unpool2d"
    rng = np.random.default_rng(seed)
    x = randn(rng, (n, ch) + hw, dtype)
    fmt = "NHWC" if last else "NCHW"
    xv = arrange(to_last(x) if last else x, layout, rng)
    sc = R.pair(scale)
    if min(sc) < 1:
        raises_named(op, cnnops.bed_of_nails_unpool2d, xv, scale, data_format=fmt)
        return
    y = run(cnnops.bed_of_nails_unpool2d, xv, scale, data_format=fmt)
    check_close(to_first(y) if last else y, R.bed_of_nails_ref(x, sc), dtype, op)
    gy = randn(rng, (n, ch, hw[0] * sc[0], hw[1] * sc[1]), dtype)
    gx = run(cnnops.bed_of_nails_unpool2d_backward, arrange(to_last(gy) if last else gy, layout, rng), scale,
             data_format=fmt)
    check_close(to_first(gx) if last else gx, gy[:, :, ::sc[0], ::sc[1]].astype(F64), dtype, f"{op}_backward")


@st.composite
def upsample_cases(draw):
    nd = draw(st.sampled_from((1, 2, 3)))
    sizes = draw(st.lists(st.integers(1, {1: 8, 2: 5, 3: 3}[nd]), min_size=nd, max_size=nd))
    by_scale = draw(st.booleans())
    c = dict(nd=nd, N=draw(st.integers(0, 2)), C=draw(st.integers(1, 3)), sizes=sizes,
             mode=draw(st.sampled_from(("nearest", "nearest-exact"))), by_scale=by_scale,
             recompute=draw(st.sampled_from((None, False, True))), channels_last=draw(st.booleans()),
             source=draw(st.sampled_from(("array", "shape", "spatial"))), dtype=draw(DTYPES), layout=draw(LAYOUTS),
             seed=draw(SEEDS))
    if by_scale:
        sf = [draw(st.sampled_from((1.0, 2.0, 3.0, 0.5, 1.5, 2.5, 1 / 3, 0.75, 1.7, 0.3))) for _ in range(nd)]
        c["scale"] = sf
        c["arg"] = sf[0] if len(set(sf)) == 1 and draw(st.booleans()) else tuple(sf)
        c["outs"] = [math.floor(float(n * f)) for n, f in zip(sizes, sf)]
    else:
        outs = [draw(st.integers(1, 2 * n + 2)) for n in sizes]
        c["outs"] = outs
        c["arg"] = spell(draw, outs)
    return c


@examples(800)
@given(c=upsample_cases())
def test_upsample_nearest_matches_reference(c):
    nd, dtype, last = c["nd"], c["dtype"], c["channels_last"]
    op = f"upsample_nearest{nd}d"
    fwd, bwd = getattr(cnnops, op), getattr(cnnops, f"{op}_backward")
    rng = np.random.default_rng(c["seed"])
    x = randn(rng, (c["N"], c["C"]) + tuple(c["sizes"]), dtype)
    fmt = layout_names(nd)[int(last)]
    xv = arrange(to_last(x) if last else x, c["layout"], rng)
    kw = dict(mode=c["mode"], recompute_scale_factor=c["recompute"], data_format=fmt)
    kw["scale_factor" if c["by_scale"] else "size"] = c["arg"]
    if min(c["outs"]) < 1:
        raises_named(op, fwd, xv, **kw)
        return
    if c["N"] == 0:  # an empty batch: an empty result, or a refusal that names the function
        empty_or_refused(op, fwd, xv, **kw)
        return
    exact = c["mode"] == "nearest-exact"
    scales = c["scale"] if c["by_scale"] and not c["recompute"] else None
    y = run(fwd, xv, **kw)
    check_close(to_first(y) if last else y, R.upsample_nearest_ref(x, c["outs"], scales, exact), dtype, op)
    gy = randn(rng, (c["N"], c["C"]) + tuple(c["outs"]), dtype)
    src = {"array": xv, "shape": tuple(xv.shape), "spatial": tuple(c["sizes"])}[c["source"]]
    gx = run(bwd, arrange(to_last(gy) if last else gy, c["layout"], rng), src, **kw)
    check_close(to_first(gx) if last else gx, R.upsample_nearest_backward_ref(gy, c["sizes"], scales, exact), dtype,
                f"{op}_backward")


# ---------------------------------------------------------------------------------------------
# boxes: utilities, pairwise IoU family, element-wise losses and their backward

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def make_boxes(rng, n, grid, dtype):
    """n ordered xyxy boxes. grid: corners on multiples of 0.5 in [0, 6] (ties, touching edges,
    zero widths, exact IoUs); else continuous coordinates (no kinks for gradients)."""
    if grid:
        lo = rng.integers(0, 9, size=(n, 2)) * 0.5
        wh = rng.integers(0, 7, size=(n, 2)) * 0.5
    else:
        lo = rng.uniform(-2, 4, size=(n, 2))
        wh = rng.uniform(0.05, 3, size=(n, 2))
    return np.concatenate([lo, lo + wh], axis=1).astype(dtype)


def invert_some(rng, b):
    """Swap the corners of about half the boxes (x, y or both)."""
    b = b.copy()
    for i in range(len(b)):
        if rng.random() < 0.5:
            b[i, [0, 2]] = b[i, [2, 0]]
        if rng.random() < 0.5:
            b[i, [1, 3]] = b[i, [3, 1]]
    return b


def from_xyxy(b, fmt):
    """Ordered xyxy boxes in another format (float64 arithmetic, then the boxes' dtype)."""
    x1, y1, x2, y2 = np.asarray(b, F64).T
    if fmt == "xywh":
        out = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
    elif fmt == "cxcywh":
        out = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=1)
    else:
        out = np.stack([x1, y1, x2, y2], axis=1)
    return out.astype(b.dtype)


def sorted_corners(b):
    b = np.asarray(b, F64)
    return np.stack([np.minimum(b[:, 0], b[:, 2]), np.minimum(b[:, 1], b[:, 3]),
                     np.maximum(b[:, 0], b[:, 2]), np.maximum(b[:, 1], b[:, 3])], axis=1)


@st.composite
def box_cases(draw):
    return dict(n=draw(st.integers(0, 6)), m=draw(st.integers(0, 5)), grid=draw(st.booleans()), dtype=draw(DTYPES),
                in_fmt=draw(st.sampled_from(BOX_FORMATS)), out_fmt=draw(st.sampled_from(BOX_FORMATS)),
                canonicalize=draw(st.booleans()), inverted=draw(st.integers(0, 3)) == 0,
                nonfinite=draw(st.integers(0, 9)) == 0, offset=draw(st.sampled_from((0, 1))),
                eps=draw(st.sampled_from((1e-7, 0.0, 0.5))), size=(draw(st.integers(0, 6)), draw(st.integers(0, 6))),
                min_size=draw(st.sampled_from((0.0, 0.5, 1.0, 2.5, -1.0))), layout=draw(LAYOUTS), seed=draw(SEEDS))


def box_input(c, rng, n):
    """Boxes for a case, with inverted corners or a non-finite coordinate when the case asks."""
    b = make_boxes(rng, n, c["grid"], c["dtype"])
    if c["inverted"] and n:
        b = invert_some(rng, b)
        lo, hi = min(b[0, 0], b[0, 2]), max(b[0, 0], b[0, 2])
        b[0, 0], b[0, 2] = hi + 0.5, lo  # at least one box inverted
    if c["nonfinite"] and n:
        b[rng.integers(n), rng.integers(4)] = rng.choice([np.nan, np.inf, -np.inf])
    return b


def box_refusal(c, b):
    """The contract's reason to refuse these boxes, or None."""
    if len(b) and not np.isfinite(b).all():
        return "non-finite coordinate"
    if c["inverted"] and len(b) and not c["canonicalize"]:
        return "inverted corners"
    return None


@examples(600)
@given(c=box_cases())
def test_box_utilities_match_reference(c):
    rng = np.random.default_rng(c["seed"])
    dtype = c["dtype"]
    b = box_input(c, rng, c["n"])
    reason = box_refusal(c, b)
    canon = dict(canonicalize=c["canonicalize"])
    # the same boxes in in_fmt (an inverted box has a negative width or height there)
    src = from_xyxy(b, c["in_fmt"])
    conv_in, bv = arrange(src, c["layout"], rng), arrange(b, c["layout"], rng)
    event(reason or "valid")
    if reason is not None:
        raises_named("box_convert", cnnops.box_convert, conv_in, c["in_fmt"], c["out_fmt"], **canon)
        raises_named("box_area", cnnops.box_area, bv, offset=c["offset"], **canon)
        raises_named("clip_boxes_to_image", cnnops.clip_boxes_to_image, bv, c["size"], **canon)
        raises_named("remove_small_boxes", cnnops.remove_small_boxes, bv, c["min_size"], offset=c["offset"], **canon)
        return
    # box_convert: whatever the input format, the reference sorts the corners (canonicalize)
    want = R.box_convert_ref(np.asarray(src, F64), c["in_fmt"], c["out_fmt"]) if len(b) else np.zeros((0, 4))
    check_close(run(cnnops.box_convert, conv_in, c["in_fmt"], c["out_fmt"], **canon), want, dtype, "box_convert")
    s = sorted_corners(b)
    check_close(run(cnnops.box_area, bv, offset=c["offset"], **canon), R.box_area_ref(b, c["offset"]), dtype,
                "box_area")
    h, w = c["size"]
    clipped = np.stack([np.clip(s[:, 0], 0, w), np.clip(s[:, 1], 0, h), np.clip(s[:, 2], 0, w),
                        np.clip(s[:, 3], 0, h)], axis=1)
    check_close(run(cnnops.clip_boxes_to_image, bv, c["size"], **canon), clipped, dtype, "clip_boxes_to_image")
    keep = run(cnnops.remove_small_boxes, bv, c["min_size"], offset=c["offset"], **canon)
    wide = (s[:, 2] - s[:, 0] + c["offset"] >= c["min_size"]) & (s[:, 3] - s[:, 1] + c["offset"] >= c["min_size"])
    assert keep.dtype == np.int64 and np.array_equal(keep, np.flatnonzero(wide)), \
        f"remove_small_boxes: {keep} != {np.flatnonzero(wide)}"


PAIRWISE = {"iou": "box_iou", "giou": "generalized_box_iou", "diou": "distance_box_iou",
            "ciou": "complete_box_iou"}


@examples(600)
@given(c=box_cases(), kind=st.sampled_from(sorted(PAIRWISE)))
def test_pairwise_box_iou_matches_reference(c, kind):
    op = PAIRWISE[kind]
    fn = getattr(cnnops, op)
    rng = np.random.default_rng(c["seed"])
    b1 = box_input(c, rng, c["n"])
    b2 = box_input(dict(c, inverted=False, nonfinite=False), rng, c["m"])
    kw = dict(offset=c["offset"], canonicalize=c["canonicalize"])
    if kind in ("diou", "ciou"):
        kw["eps"] = c["eps"]
    v1, v2 = arrange(b1, c["layout"], rng), arrange(b2, c["layout"], rng)
    if box_refusal(c, b1) is not None:
        raises_named(op, fn, v1, v2, **kw)
        return
    out = run(fn, v1, v2, **kw)
    want = R.box_pairwise_ref(b1, b2, kind, c["offset"], kw.get("eps", 0.0)) if len(b1) and len(b2) else \
        np.zeros((len(b1), len(b2)))
    # IoU-family values are differences of terms of size at most 1 (IoU, the GIoU/DIoU/CIoU
    # penalties): errors are judged against that size, not against a value that cancels to ~0
    tol = {F32: 2e-5, F64: 1e-12}[c["dtype"]]
    check_close_to_scale(out, want, np.ones(np.shape(want)), op, tol, c["dtype"])


LOSSES = {"iou": ("iou_loss",), "giou": ("giou_loss", "generalized_box_iou_loss"),
          "diou": ("diou_loss", "distance_box_iou_loss"), "ciou": ("ciou_loss", "complete_box_iou_loss")}


@examples(800)
@given(c=box_cases(), kind=st.sampled_from(sorted(LOSSES)), reduction=st.sampled_from(("none", "mean", "sum")),
       batch=st.sampled_from(("flat", "nested", "scalar_grad")), alias=st.booleans())
def test_box_losses_and_gradients_match_reference(c, kind, reduction, batch, alias):
    name = LOSSES[kind][-1 if alias else 0]
    op = LOSSES[kind][0]  # the aliases report under the loss's own name
    fn, bwd = getattr(cnnops, name), getattr(cnnops, f"{op}_backward")
    rng = np.random.default_rng(c["seed"])
    dtype = c["dtype"]
    c = dict(c, grid=c["grid"] and dtype == F32)  # continuous boxes for float64 gradients: no kinks
    n = c["n"] - c["n"] % 2 if batch == "nested" else c["n"]
    b1 = box_input(c, rng, n)
    b2 = box_input(dict(c, inverted=False, nonfinite=False), rng, n)
    shape = (2, n // 2, 4) if batch == "nested" else (n, 4)
    v1, v2 = arrange(b1.reshape(shape), c["layout"], rng), arrange(b2.reshape(shape), c["layout"], rng)
    kw = dict(reduction=reduction, eps=c["eps"], offset=c["offset"], canonicalize=c["canonicalize"])
    if box_refusal(c, b1) is not None:
        raises_named(op, fn, v1, v2, **kw)
        return
    out = run(fn, v1, v2, **kw)
    want = R.box_loss_ref(b1, b2, kind, reduction, c["eps"], c["offset"])
    if reduction == "none":
        want = np.asarray(want).reshape(shape[:-1])
    # per pair a loss of terms of size at most 1 (see the pairwise test); summed: n of them
    unit = np.ones(np.shape(want)) * (n if reduction == "sum" else 1)
    check_close_to_scale(np.asarray(out), np.asarray(want, F64), unit, name, {F32: 2e-5, F64: 1e-12}[dtype], dtype)

    if reduction == "none":
        go = randn(rng, shape[:-1], dtype)
    elif batch == "scalar_grad":
        go = float(rng.standard_normal())
    else:
        go = randn(rng, (), dtype)
    g1, g2 = run(bwd, go, v1, v2, **kw)
    assert g1.shape == shape and g2.shape == shape, f"{op}_backward: shapes {g1.shape}, {g2.shape}, expected {shape}"
    if dtype == F64 and n:
        flat_go = np.asarray(go, F64).reshape(-1) if reduction == "none" else np.full(n, float(go))
        if reduction == "mean" and n:
            flat_go = flat_go / n
        r1, r2 = R.box_loss_grad_ref(b1, b2, kind, "none", c["eps"], c["offset"], flat_go)
        check_close(g1.reshape(n, 4), r1, F64, f"{op}_backward grad_boxes1", tol={F64: 1e-6})
        check_close(g2.reshape(n, 4), r2, F64, f"{op}_backward grad_boxes2", tol={F64: 1e-6})
    elif n:  # float32 against cnnops' own float64 gradient of the same values
        w1, w2 = bwd(np.asarray(go, F64) if not isinstance(go, float) else go, b1.reshape(shape).astype(F64),
                     b2.reshape(shape).astype(F64), **kw)
        check_close(g1, w1, F32, f"{op}_backward grad_boxes1 (float32)", tol={F32: 1e-4})
        check_close(g2, w2, F32, f"{op}_backward grad_boxes2 (float32)", tol={F32: 1e-4})


# ---------------------------------------------------------------------------------------------
# non-max suppression family

@st.composite
def nms_cases(draw):
    n = draw(st.integers(0, 12))
    ties = draw(st.booleans())
    return dict(n=n, grid=draw(st.booleans()), ties=ties, dtype=draw(DTYPES),
                iou_threshold=draw(st.one_of(st.sampled_from((0.0, 0.25, 0.5, 0.75, 1.0)), st.floats(0, 1))),
                score_threshold=draw(st.one_of(st.none(), st.sampled_from((0.0, 0.25, 0.5)), st.floats(-1, 1))),
                max_output_size=draw(st.one_of(st.none(), st.integers(0, n + 1))),
                top_k=draw(st.one_of(st.none(), st.integers(0, n + 1))),
                classes=draw(st.sampled_from((None, np.int64, np.int32))), beta=draw(st.sampled_from((0.6, 1.0, 2.0))),
                sigma=draw(st.sampled_from((0.1, 0.5, 2.0))), method=draw(st.sampled_from(("linear", "gaussian"))),
                batch=draw(st.integers(0, 3)), layout=draw(LAYOUTS), seed=draw(SEEDS))


def nms_inputs(c, rng, n):
    boxes = make_boxes(rng, n, c["grid"], c["dtype"])
    scores = (rng.integers(0, 4, size=n) / 4 if c["ties"] else rng.random(n)).astype(c["dtype"])
    idxs = None if c["classes"] is None else rng.integers(-1, 2, size=n).astype(c["classes"])
    return boxes, scores, idxs


def above(scores, threshold):
    """Indices with score > threshold (every index when threshold is None)."""
    return np.arange(len(scores)) if threshold is None else np.flatnonzero(np.asarray(scores, F64) > threshold)


@examples(800)
@given(c=nms_cases())
def test_greedy_nms_family_matches_reference(c):
    """nms, batched_nms, batched_nms_padded and diou_nms."""
    rng = np.random.default_rng(c["seed"])
    b, s, idxs = nms_inputs(c, rng, c["n"])
    bv, sv = arrange(b, c["layout"], rng), arrange(s, c["layout"], rng)
    t, st_, mo = c["iou_threshold"], c["score_threshold"], c["max_output_size"]
    common = dict(score_threshold=st_, max_output_size=mo)

    # IoU in the boxes' dtype, as torchvision computes it (the NMS contract)
    keep = run(cnnops.nms, bv, sv, t, **common)
    want = R.nms_tv_ref(b, s, t, st_, mo)
    assert keep.dtype == np.int64 and np.array_equal(keep, want), f"nms: {keep} != {want}"

    classes = idxs if idxs is not None else rng.integers(0, 3, size=c["n"])
    keep = run(cnnops.batched_nms, bv, sv, classes, t, **common)
    want = R.nms_tv_ref(b, s, t, st_, mo, idxs=classes)
    assert np.array_equal(keep, want), f"batched_nms: {keep} != {want}"

    keep = run(cnnops.diou_nms, bv, sv, t, beta=c["beta"], **common)
    want = R.nms_tv_ref(b, s, t, st_, mo, criterion="diou", beta=c["beta"])
    assert np.array_equal(keep, want), f"diou_nms: {keep} != {want}"

    # a batch of images, each with its own boxes; max_output_size is the padded width
    B, width = c["batch"], (c["n"] if mo is None else mo)
    bb = make_boxes(rng, B * c["n"], c["grid"], c["dtype"]).reshape(B, c["n"], 4)
    ss = rng.random((B, c["n"])).astype(c["dtype"])
    cc = None if idxs is None else rng.integers(0, 2, size=(B, c["n"])).astype(c["classes"])
    out, valid = run(cnnops.batched_nms_padded, bb, ss, t, width, score_threshold=st_, idxs=cc)
    assert out.shape == (B, width) and valid.shape == (B,) and out.dtype == np.int64
    for i in range(B):
        want = R.nms_tv_ref(bb[i], ss[i], t, st_, width, idxs=None if cc is None else cc[i])
        assert valid[i] == len(want) and np.array_equal(out[i, :valid[i]], want), \
            f"batched_nms_padded image {i}: {out[i]} (valid {valid[i]}) != {want}"
        assert (out[i, valid[i]:] == -1).all(), "batched_nms_padded: padding is not -1"


def ref_on_candidates(ref, scores, threshold, *args, **kwargs):
    """Run an index-returning reference on the boxes with score > threshold, mapped back."""
    sel = above(scores, threshold)
    return sel[ref(sel, *args, **kwargs)] if len(sel) else np.zeros(0, np.int64)


@examples(800)
@given(c=nms_cases())
def test_soft_matrix_fast_cluster_nms_match_reference(c):
    rng = np.random.default_rng(c["seed"])
    dtype = c["dtype"]
    c = dict(c, ties=False) if c["method"] == "gaussian" else c  # decayed scores must not tie to the last bit
    b, s, idxs = nms_inputs(c, rng, c["n"])
    bv, sv = arrange(b, c["layout"], rng), arrange(s, c["layout"], rng)
    t, st_, mo, top_k = c["iou_threshold"], c["score_threshold"], c["max_output_size"], c["top_k"]

    soft_st = 0.001 if st_ is None else st_
    keep, dec = run(cnnops.soft_nms, bv, sv, t, c["sigma"], soft_st, c["method"], mo)
    wk, wd = R.soft_nms_ref(b, s, t, c["sigma"], soft_st, c["method"], mo, tv=True)
    assert np.array_equal(keep, wk), f"soft_nms: {keep} != {wk}"
    check_close(dec, wd.reshape(-1), dtype, "soft_nms scores", tol={F32: 1e-6, F64: 1e-12})

    keep, dec = run(cnnops.matrix_nms, bv, sv, idxs, c["method"], c["sigma"], st_, top_k, mo)
    wk, wd = R.matrix_nms_ref(b, s, idxs, c["method"], c["sigma"], st_, top_k)
    wk, wd = wk[:mo], wd[:mo]
    assert sorted(keep.tolist()) == sorted(wk.tolist()), f"matrix_nms: {keep} != {wk}"
    assert dec.dtype == dtype, f"matrix_nms: scores of dtype {dec.dtype}, expected {np.dtype(dtype)}"
    got = dict(zip(keep.tolist(), dec))
    check_close(np.array([got[i] for i in wk.tolist()], dtype), wd.reshape(-1), dtype, "matrix_nms scores",
                tol={F32: 1e-5, F64: 1e-12})
    assert (np.diff(np.asarray(dec, F64)) <= 1e-12).all(), "matrix_nms: not sorted by decayed score"

    for op, cluster in (("fast_nms", False), ("cluster_nms", True)):
        keep = run(getattr(cnnops, op), bv, sv, t, idxs, st_, top_k, mo)

        def ref(sel, cluster=cluster):
            return R.fast_nms_ref(b[sel], s[sel], t, None if idxs is None else idxs[sel], top_k, cluster, tv=True)

        want = ref_on_candidates(ref, s, st_)[:mo]
        assert np.array_equal(keep, want), f"{op}: {keep} != {want}"


# ---------------------------------------------------------------------------------------------
# wrong arguments: every public function, every argument, a table of bad values
#
# SPECS maps each public function to a valid call (keyword arguments) and the kind of each
# argument; BAD lists, per kind, values that make the call invalid. Every (argument, bad value)
# must raise ValueError or TypeError naming the function. The same table, with values near 2**62,
# drives the child-process test below.

BIG = (2**63, 2**64, -(2**63) - 1)  # do not fit a 64-bit integer: refused in the Python layer

BAD = {
    # arrays: variants built from the valid array by bad_array()
    "float_array": ("None", "list", "scalar", "string", "object", "complex", "int32", "float16", "bool", "ndim+1",
                    "ndim-1", "zero_spatial"),
    "float_array_opt": ("list", "string", "object", "complex", "int32", "ndim+1"),  # None is valid
    "other_float": ("None", "list", "object", "complex", "int32", "ndim+1", "ndim-1", "other_dtype", "dim1+1"),
    "other_float_opt": ("list", "object", "complex", "int32", "ndim+1", "other_dtype", "dim1+1"),
    "index_array": ("None", "list", "object", "complex", "float", "int32", "ndim+1", "dim1+1"),
    "index_array_opt": ("list", "object", "complex", "float", "int32", "ndim+1", "dim1+1", "out_of_range"),
    "class_ids": ("list", "object", "complex", "float", "ndim+1", "length+1"),
    "boxes": ("None", "list", "object", "complex", "int64", "ndim-1", "last_dim_3", "nan", "inverted"),
    "boxes_other": ("None", "list", "object", "complex", "int64", "other_dtype", "last_dim_3", "nan", "inverted"),
    "scores": ("None", "list", "object", "int64", "other_dtype", "length+1", "ndim+1", "nan"),
    # numbers
    "positive": (0, -1, *BIG, 1.5, "2", True, None, "wrong_length"),
    "positive_opt": (0, -1, *BIG, 1.5, "2", True, "wrong_length"),  # None is valid
    "padding": (-1, *BIG, 1.5, "bogus", None, "wrong_length_pad"),
    "nonneg": (-1, *BIG, 1.5, "0", None, "wrong_length"),
    "sizes": (0, -1, *BIG, 1.5, "3", "wrong_length"),
    "count_opt": (-1, *BIG, 1.5, "3", True),
    "unit": (float("nan"), float("inf"), -0.5, 1.5, "0.5", None, 10**400),
    "real_opt": (float("nan"), "0.5", True, 10**400),
    "positive_real": (float("nan"), float("inf"), 0.0, -1.0, "1", None, 10**400),
    "scale": (float("nan"), float("inf"), -float("inf"), 0.0, -2.0, 1e300, "2", True, 10**400),
    "ratio": (0.5, float("nan"), float("inf"), -1.0, "2", True, 10**400),
    "offset": (2, -1, 0.5, True, "0", None),
    "eps": (float("nan"), float("inf"), -1.0, "x", None, 10**400),
    "seed": (-1, "x", 1.5),
    # everything else
    "string": ("bogus", "", None, 3),
    "data_format": ("bogus", None, 3, "NCHWX"),
    "bool": ("yes", None, 1.5),
    "needs": (None, (True,), "abc", (True, True, True, True)),
    "image_size": (None, (1,), (1, 2, 3), ("a", 1), (float("nan"), 2), (-1, 2), 5),
    "input_source": (None, "x", "wrong_length", (0, 0), (-1, 5)),
}


ARRAY_KINDS = ("float_array", "float_array_opt", "other_float", "other_float_opt", "index_array", "index_array_opt",
               "class_ids", "boxes", "boxes_other", "scores")


def bad_array(variant, a):
    """The valid array `a` turned into the bad argument `variant`."""
    if variant in ("None", "list", "scalar", "string"):
        return {"None": None, "list": a.tolist(), "scalar": 1.5, "string": "abc"}[variant]
    if variant in ("object", "complex", "int32", "int64", "float16", "bool", "float"):
        return a.astype({"float": np.float64, "complex": np.complex64}.get(variant, variant))
    if variant == "other_dtype":
        return a.astype(F32 if a.dtype == F64 else F64)
    if variant == "ndim+1":
        return a[None]
    if variant == "ndim-1":
        return a[0]
    if variant == "zero_spatial":
        return a[..., :0]
    if variant == "dim1+1":  # one more channel (one more element for a 1-D array)
        axis = 1 if a.ndim > 1 else 0
        return np.concatenate([a, a[:, :1] if axis else a[:1]], axis=axis)
    if variant == "length+1":
        return np.concatenate([a, a[:1]])
    if variant == "last_dim_3":
        return a[..., :3]
    if variant == "out_of_range":
        b = a.copy()
        b.flat[0] = 10**6
        return b
    if variant == "nan":
        b = a.copy()
        b.flat[-1] = np.nan
        return b
    if variant == "inverted":
        b = a.copy()
        b[..., 0], b[..., 2] = a[..., 2] + 1, a[..., 0]
        return b
    raise AssertionError(variant)


def bad_value(variant, nd):
    """A bad non-array argument: the variant itself, or a wrong-length tuple."""
    if variant == "wrong_length":
        return (1,) * (nd + 1)
    if variant == "wrong_length_pad":
        return (1,) * (2 * nd + 1)
    return variant


def _f(rng, *shape, dtype=F64):
    return rng.standard_normal(shape).astype(dtype)


def _boxes(rng, n, dtype=F64):
    return make_boxes(rng, n, False, dtype)


def conv_specs(nd):
    sp = (5,) * nd

    def fwd(rng):
        return dict(input=_f(rng, 2, 3, *sp), weight=_f(rng, 4, 3, *(3,) * nd), bias=_f(rng, 4), stride=1,
                    padding=1, dilation=1, groups=1, padding_mode="zeros", algo="auto"), \
            dict(input="float_array", weight="other_float", bias="other_float_opt", stride="positive",
                 padding="padding", dilation="positive", groups="positive", padding_mode="string", algo="string")

    def bwd(rng):
        kw, kinds = fwd(rng)
        del kw["bias"], kinds["bias"]
        return dict(kw, grad_output=_f(rng, 2, 4, *sp), needs=(True, True, True)), \
            dict(kinds, grad_output="other_float", needs="needs")

    return {f"conv{nd}d": fwd, f"conv{nd}d_backward": bwd}


def conv_transpose_specs(nd):
    def fwd(rng):
        return dict(input=_f(rng, 2, 3, *(4,) * nd), weight=_f(rng, 3, 2, *(3,) * nd), bias=_f(rng, 2), stride=2,
                    padding=1, output_padding=1, groups=1, dilation=1, algo="auto"), \
            dict(input="float_array", weight="other_float", bias="other_float_opt", stride="positive",
                 padding="padding", output_padding="nonneg", groups="positive", dilation="positive", algo="string")

    def with_size(rng):
        kw, kinds = fwd(rng)
        del kw["output_padding"], kinds["output_padding"]
        return dict(kw, output_size=(8,) * nd), dict(kinds, output_size="sizes")

    def bwd(rng):
        kw, kinds = fwd(rng)
        del kw["bias"], kinds["bias"]
        return dict(kw, grad_output=_f(rng, 2, 2, *(8,) * nd), needs=(True, True, True)), \
            dict(kinds, grad_output="other_float", needs="needs")

    return {f"conv_transpose{nd}d": fwd, f"conv_transpose{nd}d[output_size]": with_size,
            f"conv_transpose{nd}d_backward": bwd}


def pool_specs(nd):
    sp, osp = (6,) * nd, (2,) * nd
    fmt = layout_names(nd)[0]
    window = dict(kernel_size=3, stride=None, ceil_mode=False, data_format=fmt)
    window_kinds = dict(kernel_size="positive", stride="positive_opt", ceil_mode="bool", data_format="data_format")
    specs = {}

    def max_fwd(rng):
        return dict(window, input=_f(rng, 2, 3, *sp), padding=1, dilation=1, return_indices=True,
                    indices_format="torch"), \
            dict(window_kinds, input="float_array", padding="padding", dilation="positive", return_indices="bool",
                 indices_format="string")

    def max_bwd(rng):
        return dict(window, grad_output=_f(rng, 2, 3, *osp), input=_f(rng, 2, 3, *sp),
                    indices=rng.integers(0, 6**nd, (2, 3) + osp), padding=1, dilation=1), \
            dict(window_kinds, grad_output="other_float", input="float_array", indices="index_array_opt",
                 padding="padding", dilation="positive")

    def avg_fwd(rng):
        kw = dict(window, input=_f(rng, 2, 3, *sp), padding=1, count_include_pad=True)
        kinds = dict(window_kinds, input="float_array", padding="padding", count_include_pad="bool")
        if nd > 1:
            kw["divisor_override"], kinds["divisor_override"] = 2, "positive_opt"
        return kw, kinds

    def avg_bwd(rng):
        kw, kinds = avg_fwd(rng)
        return dict(kw, grad_output=_f(rng, 2, 3, *osp)), dict(kinds, grad_output="other_float")

    def lp_fwd(rng):
        return dict(window, input=np.abs(_f(rng, 2, 3, *sp)), norm_type=2.0), \
            dict(window_kinds, input="float_array", norm_type="positive_real")

    def lp_bwd(rng):
        kw, kinds = lp_fwd(rng)
        return dict(kw, grad_output=_f(rng, 2, 3, *osp)), dict(kinds, grad_output="other_float")

    def adaptive(kind, backward):
        def make(rng):
            kw = dict(input=_f(rng, 2, 3, *sp), data_format=fmt)
            kinds = dict(input="float_array", data_format="data_format")
            if backward:
                kw["grad_output"], kinds["grad_output"] = _f(rng, 2, 3, *osp), "other_float"
                if kind == "max":
                    kw["indices"], kinds["indices"] = rng.integers(0, 6**nd, (2, 3) + osp), "index_array_opt"
            else:
                kw["output_size"], kinds["output_size"] = 2, "sizes"
                if kind == "max":
                    kw["return_indices"], kinds["return_indices"] = True, "bool"
            return kw, kinds
        return make

    specs.update({f"max_pool{nd}d": max_fwd, f"max_pool{nd}d_backward": max_bwd, f"avg_pool{nd}d": avg_fwd,
                  f"avg_pool{nd}d_backward": avg_bwd, f"lp_pool{nd}d": lp_fwd, f"lp_pool{nd}d_backward": lp_bwd})
    for kind in ("avg", "max"):
        specs[f"adaptive_{kind}_pool{nd}d"] = adaptive(kind, False)
        specs[f"adaptive_{kind}_pool{nd}d_backward"] = adaptive(kind, True)
    return specs


def global_specs():
    def fwd(kind):
        def make(rng):
            kw = dict(input=_f(rng, 2, 3, 5, 4), keepdims=True, data_format="NCHW")
            kinds = dict(input="float_array", keepdims="bool", data_format="data_format")
            if kind == "max":
                kw["return_indices"], kinds["return_indices"] = True, "bool"
            return kw, kinds
        return make

    def bwd(kind):
        def make(rng):
            kw = dict(grad_output=_f(rng, 2, 3, 1, 1), input=_f(rng, 2, 3, 5, 4), data_format="NCHW")
            kinds = dict(grad_output="other_float", input="float_array", data_format="data_format")
            if kind == "max":
                kw["indices"], kinds["indices"] = rng.integers(0, 20, (2, 3, 1, 1)), "index_array_opt"
            return kw, kinds
        return make

    return {f"global_{k}_pool2d{b}": (bwd(k) if b else fwd(k)) for k in ("avg", "max") for b in ("", "_backward")}


def norm_specs():
    def fwd(rng):  # batch statistics: an input without elements has none, and is refused
        return dict(input=_f(rng, 2, 3, 5, 4), weight=_f(rng, 3), bias=_f(rng, 3), eps=1e-5), \
            dict(input="float_array", weight="other_float_opt", bias="other_float_opt", eps="eps")

    def given(rng):  # given statistics (echoed back, so an empty input still returns them)
        return dict(input=_f(rng, 2, 3, 5, 4), mean=_f(rng, 3), var=np.abs(_f(rng, 3))), \
            dict(mean="other_float_opt", var="other_float_opt")

    def bwd(rng):
        return dict(grad_output=_f(rng, 2, 3, 5, 4), input=_f(rng, 2, 3, 5, 4), weight=_f(rng, 3), mean=_f(rng, 3),
                    var=np.abs(_f(rng, 3)), eps=1e-5, batch_stats=True, needs=(True, True, True)), \
            dict(grad_output="other_float", input="float_array", weight="other_float_opt", mean="other_float",
                 var="other_float", eps="eps", batch_stats="bool", needs="needs")

    return {"batch_norm": fwd, "batch_norm[given]": given, "batch_norm_backward": bwd}


def fractional_specs(nd):
    sp = (6,) * nd

    def torch_style(rng):
        return dict(input=_f(rng, 2, 3, *sp), kernel_size=2, output_size=3, return_indices=True,
                    _random_samples=rng.random((2, 3, nd)), data_format=layout_names(nd)[0]), \
            dict(input="float_array", kernel_size="positive", output_size="positive", return_indices="bool",
                 _random_samples="other_float_opt", data_format="data_format")

    def tf_style(rng):
        return dict(input=_f(rng, 2, 3, *sp), pooling_ratio=1.5, seed=3), \
            dict(input="float_array", pooling_ratio="ratio", seed="seed")

    def bwd(rng):
        return dict(grad_output=_f(rng, 2, 3, *(3,) * nd), input=_f(rng, 2, 3, *sp),
                    indices=rng.integers(0, 6**nd, (2, 3) + (3,) * nd), data_format=layout_names(nd)[0]), \
            dict(grad_output="other_float", input="float_array", indices="index_array", data_format="data_format")

    return {f"fractional_max_pool{nd}d": torch_style, f"fractional_max_pool{nd}d[tf]": tf_style,
            f"fractional_max_pool{nd}d_backward": bwd}


def unpool_specs(nd):
    fmt = layout_names(nd)[0]

    def max_fwd(rng):
        return dict(input=_f(rng, 2, 3, *(3,) * nd), indices=rng.integers(0, 6**nd, (2, 3) + (3,) * nd),
                    kernel_size=2, stride=2, padding=0, output_size=None, data_format=fmt), \
            dict(input="float_array", indices="index_array", kernel_size="positive", stride="positive_opt",
                 padding="nonneg", output_size="sizes", data_format="data_format")

    def max_bwd(rng):
        kw, kinds = max_fwd(rng)
        del kw["input"], kinds["input"]
        return dict(kw, grad_output=_f(rng, 2, 3, *(6,) * nd)), dict(kinds, grad_output="float_array")

    def up(by):
        def make(rng):
            kw = dict(input=_f(rng, 2, 3, *(5,) * nd), mode="nearest", data_format=fmt)
            kinds = dict(input="float_array", mode="string", data_format="data_format")
            if by == "scale":
                kw["scale_factor"], kinds["scale_factor"] = 2.0, "scale"
            else:
                kw["size"], kinds["size"] = 10, "sizes"
            return kw, kinds
        return make

    def up_bwd(rng):
        kw, kinds = up("scale")(rng)
        del kw["input"], kinds["input"]
        return dict(kw, grad_output=_f(rng, 2, 3, *(10,) * nd), input_size_or_input=(5,) * nd), \
            dict(kinds, grad_output="float_array", input_size_or_input="input_source")

    return {f"max_unpool{nd}d": max_fwd, f"max_unpool{nd}d_backward": max_bwd,
            f"upsample_nearest{nd}d": up("scale"), f"upsample_nearest{nd}d[size]": up("size"),
            f"upsample_nearest{nd}d_backward": up_bwd}


def bed_of_nails_specs():
    def fwd(rng):
        return dict(input=_f(rng, 2, 3, 4, 5), scale=2, data_format="NCHW"), \
            dict(input="float_array", scale="positive", data_format="data_format")

    def bwd(rng):
        return dict(grad_output=_f(rng, 2, 3, 8, 10), scale=2, data_format="NCHW"), \
            dict(grad_output="float_array", scale="positive", data_format="data_format")

    return {"bed_of_nails_unpool2d": fwd, "bed_of_nails_unpool2d_backward": bwd}


def box_specs():
    specs = {
        "box_convert": lambda rng: (dict(boxes=_boxes(rng, 4), in_fmt="xyxy", out_fmt="cxcywh", canonicalize=False),
                                    dict(boxes="boxes", in_fmt="string", out_fmt="string")),
        "box_area": lambda rng: (dict(boxes=_boxes(rng, 4), offset=0), dict(boxes="boxes", offset="offset")),
        "clip_boxes_to_image": lambda rng: (dict(boxes=_boxes(rng, 4), size=(5, 6)),
                                            dict(boxes="boxes", size="image_size")),
        "remove_small_boxes": lambda rng: (dict(boxes=_boxes(rng, 4), min_size=0.5, offset=0),
                                           dict(boxes="boxes", min_size="real_opt", offset="offset")),
    }
    for name in PAIRWISE.values():
        def pairwise(rng, name=name):
            kw = dict(boxes1=_boxes(rng, 3), boxes2=_boxes(rng, 4), offset=0)
            kinds = dict(boxes1="boxes", boxes2="boxes_other", offset="offset")
            if name in ("distance_box_iou", "complete_box_iou"):
                kw["eps"], kinds["eps"] = 1e-7, "eps"
            return kw, kinds
        specs[name] = pairwise
    for names in LOSSES.values():
        for name in names:
            specs[name] = lambda rng: (dict(boxes1=_boxes(rng, 3), boxes2=_boxes(rng, 3), reduction="mean",
                                            eps=1e-7, offset=0),
                                       dict(boxes1="boxes", boxes2="boxes_other", reduction="string", eps="eps",
                                            offset="offset"))
        specs[f"{names[0]}_backward"] = lambda rng: (
            dict(grad_output=_f(rng, 3), boxes1=_boxes(rng, 3), boxes2=_boxes(rng, 3), reduction="none", eps=1e-7,
                 offset=0),
            dict(grad_output="other_float", boxes1="boxes", boxes2="boxes_other", reduction="string", eps="eps",
                 offset="offset"))
    return specs


def nms_specs():
    def base(rng, n=6):
        return dict(boxes=_boxes(rng, n), scores=rng.random(n)), dict(boxes="boxes", scores="scores")

    def greedy(extra, extra_kinds):
        def make(rng):
            kw, kinds = base(rng)
            kw.update(iou_threshold=0.5, score_threshold=None, max_output_size=None, **extra(rng))
            kinds.update(iou_threshold="unit", score_threshold="real_opt", max_output_size="count_opt", **extra_kinds)
            return kw, kinds
        return make

    def padded(rng):
        return dict(boxes=_boxes(rng, 6).reshape(2, 3, 4), scores=rng.random((2, 3)), iou_threshold=0.5,
                    max_output_size=3, score_threshold=None, idxs=rng.integers(0, 2, (2, 3))), \
            dict(boxes="boxes_other", scores="scores", iou_threshold="unit", max_output_size="nonneg",
                 score_threshold="real_opt", idxs="class_ids")

    def soft(rng):
        kw, kinds = base(rng)
        return dict(kw, iou_threshold=0.3, sigma=0.5, score_threshold=0.001, method="linear", max_output_size=None), \
            dict(kinds, iou_threshold="unit", sigma="positive_real", score_threshold="real_opt", method="string",
                 max_output_size="count_opt")

    def matrix(rng):
        kw, kinds = base(rng)
        return dict(kw, idxs=rng.integers(0, 2, 6), method="gaussian", sigma=0.5, score_threshold=None, top_k=None,
                    max_output_size=None), \
            dict(kinds, idxs="class_ids", method="string", sigma="positive_real", score_threshold="real_opt",
                 top_k="count_opt", max_output_size="count_opt")

    def fast(rng):
        kw, kinds = base(rng)
        return dict(kw, iou_threshold=0.5, idxs=rng.integers(0, 2, 6), score_threshold=None, top_k=None,
                    max_output_size=None), \
            dict(kinds, iou_threshold="unit", idxs="class_ids", score_threshold="real_opt", top_k="count_opt",
                 max_output_size="count_opt")

    return {"nms": greedy(lambda rng: {}, {}),
            "batched_nms": greedy(lambda rng: dict(idxs=rng.integers(0, 2, 6)), dict(idxs="class_ids")),
            "diou_nms": greedy(lambda rng: dict(beta=1.0), dict(beta="positive_real")),
            "batched_nms_padded": padded, "soft_nms": soft, "matrix_nms": matrix, "fast_nms": fast,
            "cluster_nms": fast}


def runtime_specs():
    return {"set_num_threads": lambda rng: (dict(n=cnnops.get_num_threads()), dict(n="positive")),
            "set_simd_level": lambda rng: (dict(level=cnnops.simd_level().split("+")[0]), dict(level="string")),
            "conv2d_algo": lambda rng: (dict(input=_f(rng, 2, 3, 5, 5), weight=_f(rng, 4, 3, 3, 3), stride=1,
                                             padding=1, dilation=1, groups=1, padding_mode="zeros", algo="auto"),
                                        dict(input="float_array", weight="other_float", stride="positive",
                                             padding="padding", dilation="positive", groups="positive",
                                             padding_mode="string", algo="string"))}


SPECS = {}
for _nd in (1, 2, 3):
    SPECS.update(conv_specs(_nd), **conv_transpose_specs(_nd), **pool_specs(_nd), **unpool_specs(_nd))
for _nd in (2, 3):
    SPECS.update(fractional_specs(_nd))
SPECS.update(global_specs(), **bed_of_nails_specs(), **box_specs(), **nms_specs(), **runtime_specs(),
             **norm_specs())

# Functions whose bad-argument checks live in their family's own test file instead of a spec here
# (tests/test_roi.py: wrong shapes, dtypes, devices, NaN coordinates, out-of-range batch indices,
# empty lists, bad scales and output sizes for every region op and the anchor/box-coding helpers).
FUZZED_ELSEWHERE = {"roi_align", "roi_align_backward", "roi_pool", "roi_pool_backward", "ps_roi_align",
                    "ps_roi_align_backward", "ps_roi_pool", "ps_roi_pool_backward", "roi_levels", "anchors",
                    "box_encode", "box_decode"}

# functions of cnnops.__all__ that take no argument (checked for their return type instead)
NO_ARGUMENTS = {"get_num_threads": int, "simd_level": str, "info": dict, "empty_cache": type(None)}


def spec_function(name):
    """(function, the name its messages start with) of a SPECS entry ("conv2d[variant]" -> conv2d)."""
    fn = getattr(cnnops, name.split("[")[0])
    return fn, fn.__name__


def spec_nd(kwargs):
    """The number of spatial dimensions of a spec's call (for wrong-length tuples)."""
    for key in ("input", "grad_output"):
        if isinstance(kwargs.get(key), np.ndarray):
            return max(kwargs[key].ndim - 2, 1)
    return 2


def test_every_public_function_is_fuzzed():
    names = {n.split("[")[0] for n in SPECS} | set(NO_ARGUMENTS) | FUZZED_ELSEWHERE | {"cuda", "__version__", "Array"}
    public = set(cnnops.__all__)
    assert public - names == set(), f"public functions without a spec: {sorted(public - names)}"


@pytest.mark.parametrize("name", sorted(NO_ARGUMENTS))
def test_functions_without_arguments(name):
    assert isinstance(getattr(cnnops, name)(), NO_ARGUMENTS[name])


@pytest.mark.parametrize("name", sorted(SPECS))
def test_bad_arguments_raise_named_errors(name):
    """The spec's call succeeds; each argument replaced by each bad value of its kind raises
    ValueError/TypeError naming the function. All failures of one function are reported together."""
    fn, op = spec_function(name)
    rng = np.random.default_rng(0)
    kwargs, kinds = SPECS[name](rng)
    before = cnnops.get_num_threads()
    try:
        run(fn, **kwargs)
        failures = []
        for param, kind in kinds.items():
            for variant in BAD[kind]:
                value = bad_array(variant, kwargs[param]) if kind in ARRAY_KINDS else \
                    bad_value(variant, spec_nd(kwargs))
                try:
                    if variant == "zero_spatial":  # no elements: an empty result is as good as a refusal
                        empty_or_refused(op, fn, **dict(kwargs, **{param: value}))
                    else:
                        raises_named(op, fn, **dict(kwargs, **{param: value}))
                except (AssertionError, pytest.fail.Exception) as e:  # collected, reported together below
                    failures.append(f"{param}={variant!r}: {str(e).splitlines()[0]}")
    finally:
        cnnops.set_num_threads(before)
    assert not failures, f"{name}: {len(failures)} bad calls not refused properly:\n  " + "\n  ".join(failures)


# ---------------------------------------------------------------------------------------------
# integers near 2**62 and 2**31, in a child process
#
# Every int argument of every spec gets 2**62 (products of such sizes overflow 64-bit shape
# arithmetic) and 2**31 + 1 (wraps a 32-bit int), the upsampling scale 1e12. A call may succeed
# (a huge stride over a small input is valid) or raise ValueError/TypeError/MemoryError naming the
# function; it must not crash, hang or modify its inputs. The child runs under a 4 GB address-space
# limit, so an allocation the machine could not hold fails fast instead of swapping.

HUGE_INTS = (2**62, 2**31 + 1)
HUGE_KINDS = ("positive", "positive_opt", "padding", "nonneg", "sizes", "count_opt")
HUGE_SKIP = ("set_num_threads",)  # a thread count, not a size (at most 2**31 - 1, checked in Python)
CHILD_MEMORY = 4 << 30
CASE_TIMEOUT = 30.0  # seconds a single call may take in the child before it counts as a hang


def huge_cases():
    """[(spec name, argument, value)] in a fixed order."""
    cases = []
    for name in sorted(SPECS):
        if name in HUGE_SKIP:
            continue
        _, kinds = SPECS[name](np.random.default_rng(0))
        for param, kind in kinds.items():
            values = HUGE_INTS if kind in HUGE_KINDS else (1e12,) if kind == "scale" else ()
            cases += [(name, param, v) for v in values]
    return cases


def huge_outcome(name, param, value):
    """Run one huge-argument call (in the child) and describe what happened, as a dict."""
    fn, op = spec_function(name)
    kwargs, _ = SPECS[name](np.random.default_rng(0))
    kwargs[param] = value
    before = fingerprint(kwargs)
    try:
        fn(**kwargs)
        out = dict(raised=None, message="")
    except Exception as e:  # noqa: BLE001 -- the type is reported to the parent
        out = dict(raised=type(e).__name__, message=str(e).splitlines()[0] if str(e) else "")
    out["modified"] = fingerprint(kwargs) != before
    return out


_CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
sys.path.insert(0, {tests!r})
import test_fuzz as T
cases = T.huge_cases()
for line in sys.stdin:
    i = int(line)
    print(json.dumps(dict(start=i)), flush=True)
    print(json.dumps(dict(T.huge_outcome(*cases[i]), case=i)), flush=True)
"""


def _run_children(indices):
    """{case index: outcome} for the given cases, restarting the child after a crash or a hang."""
    import queue
    import tempfile
    import threading

    results, todo = {}, list(indices)
    code = _CHILD.format(limit=CHILD_MEMORY, tests=os.path.dirname(os.path.abspath(__file__)))
    while todo:
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=err, text=True, env=dict(os.environ, OMP_NUM_THREADS="2"))
            lines = queue.Queue()
            threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)],
                             daemon=True).start()
            proc.stdin.write("".join(f"{i}\n" for i in todo))
            proc.stdin.close()
            current, deadline = None, time.monotonic() + 120  # the first line waits for the imports
            while True:
                try:
                    line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
                except queue.Empty:
                    proc.kill()
                    proc.wait()
                    if current is None:
                        raise RuntimeError("the huge-argument child process did not start")
                    results[current] = dict(raised="hang", message=f"no answer within {CASE_TIMEOUT:.0f} s",
                                            modified=False)
                    break
                if line is None:  # the child ended: finished, or crashed inside `current`
                    proc.wait()
                    if current is not None and current not in results:
                        err.seek(0)
                        tail = err.read().decode(errors="replace").strip().splitlines()[-1:]
                        results[current] = dict(raised=f"crash (exit status {proc.returncode})",
                                                message=" ".join(tail), modified=False)
                    break
                msg = json.loads(line)
                if "start" in msg:
                    current, deadline = msg["start"], time.monotonic() + CASE_TIMEOUT
                else:
                    results[msg.pop("case")] = msg
        todo = [i for i in todo if i not in results]
    return results


_HUGE_RESULTS = {}


def huge_results():
    """Outcomes of every huge-argument case, computed once per session (one child process)."""
    if not _HUGE_RESULTS:
        cases = huge_cases()
        _HUGE_RESULTS.update(_run_children(range(len(cases))))
    return _HUGE_RESULTS


@pytest.mark.parametrize("name", sorted(n for n in SPECS if n not in HUGE_SKIP))
def test_huge_integer_arguments_are_refused_or_computed(name):
    cases = huge_cases()
    results = huge_results()
    _, op = spec_function(name)
    problems = []
    for i, (spec, param, value) in enumerate(cases):
        if spec != name:
            continue
        r = results[i]
        what = f"{param}={value}: {r['raised']}: {r['message']}"
        if r["modified"]:
            problems.append(f"{what} (modified its inputs)")
        elif r["raised"] is None:
            continue
        elif r["raised"] not in ("ValueError", "TypeError", "MemoryError"):
            problems.append(what)
        elif not r["message"].startswith(f"{op}:") or any(w in r["message"] for w in _INTERNAL):
            problems.append(f"{what} (message does not name the function, or names internals)")
    reproducer = f"cnnops.{op}(**SPECS[{name!r}](np.random.default_rng(0))[0] with the argument replaced)"
    assert not problems, f"{name}: {len(problems)} huge arguments mishandled ({reproducer}):\n  " + \
        "\n  ".join(problems)


# ---------------------------------------------------------------------------------------------
# PyTorch tensors in, PyTorch tensors out

def _to_numpy(out):
    """Results with every torch tensor as a NumPy array (tuples kept)."""
    if isinstance(out, tuple):
        return tuple(_to_numpy(o) for o in out)
    return out.numpy() if type(out).__module__.startswith("torch") else out


@pytest.mark.parametrize("name", sorted(n for n in SPECS if n not in ("set_num_threads", "set_simd_level")))
def test_torch_tensors_in_give_torch_tensors_out(name):
    """Every spec's call with torch tensors instead of NumPy arrays: the same values, returned as
    torch tensors (arrays that are not results of the kernels, such as pooling sequences, aside)."""
    torch = pytest.importorskip("torch")
    fn, op = spec_function(name)
    kwargs, _ = SPECS[name](np.random.default_rng(0))
    want = run(fn, **kwargs)
    tkw = {k: torch.from_numpy(v.copy()) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    got = fn(**tkw)
    flat_want = want if isinstance(want, tuple) else (want,)
    flat_got = got if isinstance(got, tuple) else (got,)
    assert len(flat_got) == len(flat_want), f"{op}: {len(flat_got)} results with torch, {len(flat_want)} with NumPy"
    # fractional pooling's TensorFlow convention also returns its nd pooling sequences, as NumPy
    kernel_results = len(flat_want) - (int(op[-2]) if name.endswith("[tf]") else 0)
    for i, (g, w) in enumerate(zip(flat_got, flat_want)):
        if isinstance(w, np.ndarray) and i < kernel_results:
            assert isinstance(g, torch.Tensor), f"{op}: result {i} is {type(g).__name__} for torch inputs"
        assert np.array_equal(_to_numpy(g), w, equal_nan=w.dtype.kind == "f") if isinstance(w, np.ndarray) \
            else g == w, f"{op}: result {i} differs between torch and NumPy inputs"
