"""Convolution entry points: argument parsing (padding forms, tuples) and docstrings.

The C++ core receives explicit per-side pads; every padding spelling is resolved here."""
from __future__ import annotations

import numbers

from . import _C
from ._arrays import prepare, wrap

_MODES = ("zeros", "reflect", "replicate", "circular")
_ALGOS = ("auto", "direct", "gemm", "depthwise", "smallc")


def _pair(v, name: str, op: str):
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return (int(v), int(v))
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(
        isinstance(e, numbers.Integral) and not isinstance(e, bool) for e in v
    ):
        return (int(v[0]), int(v[1]))
    raise TypeError(f"{op}: expected {name} as an int or a pair of ints, got {v!r}")


def _shape(x):
    return tuple(int(s) for s in x.shape)


def _same_pads(size: int, k: int, stride: int, dil: int):
    """TensorFlow's SAME rule: output = ceil(size / stride); the odd pixel goes at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dil + 1 - size, 0)
    return total // 2, total - total // 2


def resolve_padding2d(padding, in_hw, kernel_rs, stride, dilation, op: str = "conv2d"):
    """Return (top, bottom, left, right) for any accepted padding spelling.

    int, (ph, pw), (top, bottom, left, right), "valid", "same" (TensorFlow's rule, any stride:
    extra pixel at the bottom/right) or "full" (dilation * (k - 1) on every side)."""
    if isinstance(padding, str):
        p = padding.lower()
        if p == "valid":
            return (0, 0, 0, 0)
        if p == "same":
            t, b = _same_pads(in_hw[0], kernel_rs[0], stride[0], dilation[0])
            l, r = _same_pads(in_hw[1], kernel_rs[1], stride[1], dilation[1])
            return (t, b, l, r)
        if p == "full":
            ph, pw = dilation[0] * (kernel_rs[0] - 1), dilation[1] * (kernel_rs[1] - 1)
            return (ph, ph, pw, pw)
        raise ValueError(f"{op}: expected padding 'valid', 'same' or 'full' as a string, got {padding!r}")
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        p = int(padding)
        return (p, p, p, p)
    if isinstance(padding, (tuple, list)) and all(
        isinstance(e, numbers.Integral) and not isinstance(e, bool) for e in padding
    ):
        if len(padding) == 2:
            return (int(padding[0]), int(padding[0]), int(padding[1]), int(padding[1]))
        if len(padding) == 4:
            return tuple(int(e) for e in padding)
    raise TypeError(
        f"{op}: expected padding as an int, (ph, pw), (top, bottom, left, right) or one of "
        f"'valid', 'same', 'full', got {padding!r}"
    )


def _conv2d_args(input, weight, stride, padding, dilation, groups, padding_mode, algo, op):
    stride = _pair(stride, "stride", op)
    dilation = _pair(dilation, "dilation", op)
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool):
        raise TypeError(f"{op}: expected groups as an int, got {groups!r}")
    if padding_mode not in _MODES:
        raise ValueError(f"{op}: expected padding_mode one of {_MODES}, got {padding_mode!r}")
    if algo not in _ALGOS:
        raise ValueError(f"{op}: expected algo one of {_ALGOS}, got {algo!r}")
    xs, ws = _shape(input), _shape(weight)
    if len(xs) != 4:
        raise ValueError(f"{op}: expected input with 4 dimensions (N, C, H, W), got {len(xs)} with shape {xs}")
    if len(ws) != 4:
        raise ValueError(
            f"{op}: expected weight with 4 dimensions (K, C/groups, R, S), got {len(ws)} with shape {ws}"
        )
    pads = resolve_padding2d(padding, xs[2:], ws[2:], stride, dilation, op)
    return stride, pads, dilation, int(groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
           algo="auto"):
    """2-D convolution (cross-correlation, as in PyTorch).

    input (N, C, H, W), weight (K, C/groups, R, S), bias (K,) or None -> output (N, K, P, Q) with
    P = (H + pad_top + pad_bottom - dilation*(R-1) - 1) // stride + 1 (likewise Q).

    padding: int, (ph, pw), (top, bottom, left, right), "valid", "same" (TensorFlow's rule, also
    for stride > 1: the extra pixel goes at the bottom/right) or "full".
    padding_mode: "zeros", "reflect", "replicate" or "circular" (no padded copy is made).
    algo: "auto" (default), "gemm" (packed implicit GEMM), "depthwise" (groups == C),
    "smallc" (slab kernel without packing: few input or output channels, any stride) or
    "direct" (the plain reference loops). conv2d_algo() tells which one "auto" picks.

    Accepts any DLPack array (NumPy, PyTorch, CuPy, JAX) in float32 or float64 and returns the
    same array type on the same device."""
    op = "conv2d"
    x, w, b = prepare(input, op, "input"), prepare(weight, op, "weight"), prepare(bias, op, "bias")
    stride, pads, dilation, groups = _conv2d_args(x, w, stride, padding, dilation, groups, padding_mode, algo, op)
    out = _C.conv2d(x, w, b, stride, pads, dilation, groups, padding_mode, algo)
    return wrap(out, input)


def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros", needs=(True, True, True), algo="auto"):
    """Gradients of :func:`conv2d`: returns (grad_input, grad_weight, grad_bias).

    grad_output (N, K, P, Q), input (N, C, H, W), weight (K, C/groups, R, S); the options must be
    the ones the forward used. ``needs`` selects which of the three to compute; the others come
    back as None. grad_bias (K,) is the sum of grad_output over N, P, Q.
    Every gradient is deterministic (no atomics; fixed summation order for a given thread count)."""
    op = "conv2d_backward"
    if not (isinstance(needs, (tuple, list)) and len(needs) == 3):
        raise TypeError(f"{op}: expected needs as three booleans (input, weight, bias), got {needs!r}")
    dy, x, w = prepare(grad_output, op, "grad_output"), prepare(input, op, "input"), prepare(weight, op, "weight")
    stride, pads, dilation, groups = _conv2d_args(x, w, stride, padding, dilation, groups, padding_mode, algo, op)
    gi, gw, gb = _C.conv2d_backward(dy, x, w, stride, pads, dilation, groups, padding_mode, algo,
                                    tuple(bool(n) for n in needs))
    return wrap(gi, input), wrap(gw, input), wrap(gb, input)


def conv2d_algo(input, weight, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", algo="auto"):
    """Name of the forward algorithm :func:`conv2d` runs for these arguments ("auto" resolved)."""
    op = "conv2d"
    x, w = prepare(input, op, "input"), prepare(weight, op, "weight")
    stride, pads, dilation, groups = _conv2d_args(x, w, stride, padding, dilation, groups, padding_mode, algo, op)
    return _C.conv2d_algo(x, w, stride, pads, dilation, groups, padding_mode, algo)
