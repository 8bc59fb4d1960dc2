"""Convolution entry points (1-D, 2-D, 3-D) and their docstrings. Padding spellings become
explicit per-side pads in cnnops._args; the C++ core checks the arrays."""
from __future__ import annotations

from . import _C
from ._args import choice, integer, needs3, ntuple, resolve_padding, spatial_sizes
from ._arrays import prepare, wrap

# The C++ core parses padding_mode and algo as well; listing them here puts the valid spellings in
# one error raised before any array is read.
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
ALGOS = ("auto", "direct", "gemm", "depthwise", "smallc", "winograd")


def _conv_args(x, w, nd, stride, padding, dilation, groups, padding_mode, algo, op):
    """Explicit (stride, pads, dilation, groups) for the core. Arrays of the wrong rank get zero
    pads for "same"/"full"; the core then refuses them with the expected layout."""
    stride = ntuple(stride, nd, "stride", op, minimum=1)  # "same" divides by the stride
    dilation = ntuple(dilation, nd, "dilation", op, minimum=1)
    groups = integer(groups, "groups", op)
    choice(padding_mode, PADDING_MODES, "padding_mode", op)
    choice(algo, ALGOS, "algo", op)
    pads = resolve_padding(padding, spatial_sizes(x, nd), spatial_sizes(w, nd), stride, dilation, op)
    return list(stride), pads, list(dilation), groups


def _conv(nd, op, input, weight, bias, stride, padding, dilation, groups, padding_mode, algo):
    x, w, b = prepare(input, op, "input"), prepare(weight, op, "weight"), prepare(bias, op, "bias", optional=True)
    stride, pads, dilation, groups = _conv_args(x, w, nd, stride, padding, dilation, groups, padding_mode, algo, op)
    return wrap(_C.conv(op, x, w, b, nd, stride, pads, dilation, groups, padding_mode, algo), input)


def _conv_backward(nd, op, grad_output, input, weight, stride, padding, dilation, groups, padding_mode, needs, algo):
    needs = needs3(needs, op)
    dy, x, w = prepare(grad_output, op, "grad_output"), prepare(input, op, "input"), prepare(weight, op, "weight")
    stride, pads, dilation, groups = _conv_args(x, w, nd, stride, padding, dilation, groups, padding_mode, algo, op)
    gi, gw, gb = _C.conv_backward(op, dy, x, w, nd, stride, pads, dilation, groups, padding_mode, algo, needs)
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
