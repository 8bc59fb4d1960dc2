"""Convolution entry points (1-D, 2-D, 3-D): argument parsing (padding forms, tuples) and
docstrings. The C++ core receives explicit per-side pads; every padding spelling is resolved here."""
from __future__ import annotations

import numbers

from . import _C
from ._arrays import check_int64, prepare, wrap

_MODES = ("zeros", "reflect", "replicate", "circular")
_ALGOS = ("auto", "direct", "gemm", "depthwise", "smallc", "winograd")
_LAYOUT = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}
_WLAYOUT = {1: "(K, C/groups, kL)", 2: "(K, C/groups, R, S)", 3: "(K, C/groups, T, R, S)"}


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def ntuple(v, n: int, name: str, op: str):
    """An int, or a tuple/list of n ints -> tuple of n ints (each within 64 bits)."""
    if _is_int(v):
        return check_int64((int(v),) * n, name, op)
    if isinstance(v, (tuple, list)) and len(v) == n and all(_is_int(e) for e in v):
        return check_int64(tuple(int(e) for e in v), name, op)
    what = {1: "a 1-tuple", 2: "a pair of ints", 3: "a triple of ints"}.get(n, f"{n} ints")
    raise TypeError(f"{op}: expected {name} as an int or {what}, got {v!r}")


def shape_of(x):
    return tuple(int(s) for s in x.shape)


def same_pads(size: int, k: int, stride: int, dil: int):
    """TensorFlow's SAME rule: output = ceil(size / stride); the odd pixel goes at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dil + 1 - size, 0)
    return total // 2, total - total // 2


def explicit_pads(padding, nd: int):
    """Per-side pads for the numeric spellings (an int, nd ints symmetric per dimension, or 2*nd
    ints before/after per dimension); None for anything else (strings, wrong lengths)."""
    if _is_int(padding):
        return [int(padding)] * (2 * nd)
    if isinstance(padding, (tuple, list)) and all(_is_int(e) for e in padding):
        if len(padding) == nd:
            return [int(e) for e in padding for _ in range(2)]
        if len(padding) == 2 * nd:
            return [int(e) for e in padding]
    return None


def resolve_padding(padding, in_sizes, k_sizes, strides, dilations, op: str):
    """Per-side pads [before_0, after_0, before_1, after_1, ...] for any accepted spelling.

    int; nd ints (symmetric per dimension); 2*nd ints (before, after per dimension, e.g.
    (top, bottom, left, right) in 2-D); "valid"; "same" (TensorFlow's rule, any stride: the extra
    pixel at the end); "full" (dilation * (k - 1) on every side)."""
    nd = len(in_sizes)
    if isinstance(padding, str):
        p = padding.lower()
        if p == "valid":
            return [0] * (2 * nd)
        if p == "same":
            pads = []
            for i in range(nd):
                pads += same_pads(in_sizes[i], k_sizes[i], strides[i], dilations[i])
            return pads
        if p == "full":
            pads = []
            for i in range(nd):
                pads += [dilations[i] * (k_sizes[i] - 1)] * 2
            return pads
        raise ValueError(f"{op}: expected padding 'valid', 'same' or 'full' as a string, got {padding!r}")
    pads = explicit_pads(padding, nd)
    if pads is not None:
        return check_int64(pads, "padding", op)
    forms = {1: "(p,) or (left, right)", 2: "(ph, pw) or (top, bottom, left, right)",
             3: "(pd, ph, pw) or (front, back, top, bottom, left, right)"}[nd]
    raise TypeError(f"{op}: expected padding as an int, {forms}, or one of 'valid', 'same', 'full', got {padding!r}")


def _check_options(groups, padding_mode, algo, op):
    if not _is_int(groups):
        raise TypeError(f"{op}: expected groups as an int, got {groups!r}")
    check_int64((groups,), "groups", op)
    if padding_mode not in _MODES:
        raise ValueError(f"{op}: expected padding_mode one of {_MODES}, got {padding_mode!r}")
    if algo not in _ALGOS:
        raise ValueError(f"{op}: expected algo one of {_ALGOS}, got {algo!r}")


def _conv_args(x, w, nd, stride, padding, dilation, groups, padding_mode, algo, op):
    stride = ntuple(stride, nd, "stride", op)
    dilation = ntuple(dilation, nd, "dilation", op)
    _check_options(groups, padding_mode, algo, op)
    xs, ws = shape_of(x), shape_of(w)
    if len(xs) != nd + 2:
        raise ValueError(f"{op}: expected input with {nd + 2} dimensions {_LAYOUT[nd]}, got {len(xs)} with shape {xs}")
    if len(ws) != nd + 2:
        raise ValueError(f"{op}: expected weight with {nd + 2} dimensions {_WLAYOUT[nd]}, got {len(ws)} with shape {ws}")
    pads = resolve_padding(padding, xs[2:], ws[2:], stride, dilation, op)
    return list(stride), pads, list(dilation), int(groups)


def _conv(nd, op, input, weight, bias, stride, padding, dilation, groups, padding_mode, algo):
    x, w, b = prepare(input, op, "input"), prepare(weight, op, "weight"), prepare(bias, op, "bias", optional=True)
    stride, pads, dilation, groups = _conv_args(x, w, nd, stride, padding, dilation, groups, padding_mode, algo, op)
    return wrap(_C.conv(op, x, w, b, nd, stride, pads, dilation, groups, padding_mode, algo), input)


def _conv_backward(nd, op, grad_output, input, weight, stride, padding, dilation, groups, padding_mode, needs, algo):
    if not (isinstance(needs, (tuple, list)) and len(needs) == 3):
        raise TypeError(f"{op}: expected needs as three booleans (input, weight, bias), got {needs!r}")
    dy, x, w = prepare(grad_output, op, "grad_output"), prepare(input, op, "input"), prepare(weight, op, "weight")
    stride, pads, dilation, groups = _conv_args(x, w, nd, stride, padding, dilation, groups, padding_mode, algo, op)
    gi, gw, gb = _C.conv_backward(op, dy, x, w, nd, stride, pads, dilation, groups, padding_mode, algo,
                                  tuple(bool(n) for n in needs))
    return wrap(gi, input), wrap(gw, input), wrap(gb, input)


_COMMON = """
    padding: int, one int per dimension, two per dimension (before, after), "valid", "same"
    (TensorFlow's rule, also for stride > 1: the extra pixel goes at the end) or "full".
    padding_mode: "zeros", "reflect", "replicate" or "circular" (no padded copy of the input).
    algo: "auto" (default), "gemm" (packed implicit GEMM), "depthwise" (groups == C),
    "smallc" (slab kernel without packing: few input or output channels, any stride),
    "winograd" (F(2x2, 3x3) or F(2x2, 5x5): 3x3 or 5x5 kernels in the last two dimensions,
    stride 1, dilation 1; 2.25x / 2.8x fewer multiplications, float32 error up to a few times a
    direct sum's) or "direct" (the plain reference loops). conv2d_algo() tells which one "auto" picks.

    Accepts any DLPack array (NumPy, PyTorch, CuPy, JAX) in float32 or float64 and returns the
    same array type on the same device."""


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", algo="auto"):
    """1-D convolution (cross-correlation, as in PyTorch) of time series.

    input (N, C, L), weight (K, C/groups, kL), bias (K,) or None -> output (N, K, L_out) with
    L_out = (L + pad_left + pad_right - dilation*(kL-1) - 1) // stride + 1.
    """
    return _conv(1, "conv1d", input, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", algo="auto"):
    """2-D convolution (cross-correlation, as in PyTorch).

    input (N, C, H, W), weight (K, C/groups, R, S), bias (K,) or None -> output (N, K, P, Q) with
    P = (H + pad_top + pad_bottom - dilation*(R-1) - 1) // stride + 1 (likewise Q).
    """
    return _conv(2, "conv2d", input, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", algo="auto"):
    """3-D convolution (cross-correlation, as in PyTorch) of volumes or clips.

    input (N, C, D, H, W), weight (K, C/groups, T, R, S), bias (K,) or None -> output
    (N, K, D_out, P, Q), each size as in conv2d. Runs the 2-D kernels over the depth slices
    (algo applies to that 2-D problem).
    """
    return _conv(3, "conv3d", input, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


def conv1d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
                    needs=(True, True, True), algo="auto"):
    """Gradients of :func:`conv1d`: (grad_input (N, C, L), grad_weight, grad_bias (K,))."""
    return _conv_backward(1, "conv1d_backward", grad_output, input, weight, stride, padding, dilation, groups,
                          padding_mode, needs, algo)


def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
                    needs=(True, True, True), algo="auto"):
    """Gradients of :func:`conv2d`: returns (grad_input, grad_weight, grad_bias).

    grad_output (N, K, P, Q), input (N, C, H, W), weight (K, C/groups, R, S); the options must be
    the ones the forward used. ``needs`` selects which of the three to compute; the others come
    back as None. grad_bias (K,) is the sum of grad_output over N, P, Q.
    Every gradient is deterministic (no atomics; fixed summation order for a given thread count)."""
    return _conv_backward(2, "conv2d_backward", grad_output, input, weight, stride, padding, dilation, groups,
                          padding_mode, needs, algo)


def conv3d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
                    needs=(True, True, True), algo="auto"):
    """Gradients of :func:`conv3d`: (grad_input (N, C, D, H, W), grad_weight, grad_bias (K,))."""
    return _conv_backward(3, "conv3d_backward", grad_output, input, weight, stride, padding, dilation, groups,
                          padding_mode, needs, algo)


for _f in (conv1d, conv2d, conv3d):
    _f.__doc__ += _COMMON


def conv2d_algo(input, weight, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", algo="auto"):
    """Name of the forward algorithm :func:`conv2d` runs for these arguments ("auto" resolved)."""
    op = "conv2d_algo"
    x, w = prepare(input, op, "input"), prepare(weight, op, "weight")
    stride, pads, dilation, groups = _conv_args(x, w, 2, stride, padding, dilation, groups, padding_mode, algo, op)
    return _C.conv_algo(op, x, w, 2, stride, pads, dilation, groups, padding_mode, algo)
