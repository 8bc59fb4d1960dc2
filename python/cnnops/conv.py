"""Convolution entry points (1-D, 2-D, 3-D) and their docstrings. Padding spellings become
explicit per-side pads in cnnops._args; the C++ core checks the arrays."""
from __future__ import annotations

from . import _C
from ._args import choice, integer, needs3, ntuple, resolve_padding, spatial_sizes
from ._arrays import prepare, wrap

# The C++ core parses padding_mode and algo as well; listing them here puts the valid spellings in
# one error raised before any array is read.
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
ALGOS = ("auto", "direct", "gemm", "depthwise", "smallc", "winograd", "tensorcore")
PRECISIONS = ("fp32", "tf32", "auto")


def _conv_args(x, w, nd, stride, padding, dilation, groups, padding_mode, algo, op, precision="fp32"):
    """Explicit (stride, pads, dilation, groups) for the core. Arrays of the wrong rank get zero
    pads for "same"/"full"; the core then refuses them with the expected layout."""
    stride = ntuple(stride, nd, "stride", op, minimum=1)  # "same" divides by the stride
    dilation = ntuple(dilation, nd, "dilation", op, minimum=1)
    groups = integer(groups, "groups", op)
    choice(padding_mode, PADDING_MODES, "padding_mode", op)
    choice(algo, ALGOS, "algo", op)
    choice(precision, PRECISIONS, "precision", op)
    pads = resolve_padding(padding, spatial_sizes(x, nd), spatial_sizes(w, nd), stride, dilation, op)
    return list(stride), pads, list(dilation), groups


def _conv(nd, op, input, weight, bias, stride, padding, dilation, groups, padding_mode, algo, precision):
    x, w, b = prepare(input, op, "input"), prepare(weight, op, "weight"), prepare(bias, op, "bias", optional=True)
    stride, pads, dilation, groups = _conv_args(x, w, nd, stride, padding, dilation, groups, padding_mode, algo, op,
                                                precision)
    return wrap(_C.conv(op, x, w, b, nd, stride, pads, dilation, groups, padding_mode, algo, precision), input)


def _conv_backward(nd, op, grad_output, input, weight, stride, padding, dilation, groups, padding_mode, needs, algo,
                   precision):
    needs = needs3(needs, op)
    dy, x, w = prepare(grad_output, op, "grad_output"), prepare(input, op, "input"), prepare(weight, op, "weight")
    stride, pads, dilation, groups = _conv_args(x, w, nd, stride, padding, dilation, groups, padding_mode, algo, op,
                                                precision)
    gi, gw, gb = _C.conv_backward(op, dy, x, w, nd, stride, pads, dilation, groups, padding_mode, algo, needs,
                                  precision)
    return wrap(gi, input), wrap(gw, input), wrap(gb, input)


_COMMON = """
    padding: int, one int per dimension, two per dimension (before, after), "valid", "same"
    (TensorFlow's rule, also for stride > 1: the extra pixel goes at the end) or "full".
    padding_mode: "zeros", "reflect", "replicate" or "circular" (no padded copy of the input).
    algo: "auto" (default), "gemm" (packed implicit GEMM), "depthwise" (groups == C),
    "smallc" (slab kernel without packing: few input or output channels, any stride),
    "winograd" (F(2x2, 3x3) or F(2x2, 5x5): 3x3 or 5x5 kernels in the last two dimensions,
    stride 1, dilation 1; 2.25x / 2.8x fewer multiplications, float32 error up to a few times a
    direct sum's), "direct" (the plain reference loops) or, on CUDA arrays, "tensorcore" (implicit
    GEMM on tensor cores). conv2d_algo() tells which one "auto" picks.
    precision: arithmetic of float32 on CUDA: "fp32" (default, CUDA cores, like PyTorch with
    allow_tf32=False), "tf32" (tensor cores, ~1e-3 relative error) or "auto" (tf32 for large
    problems). CPU kernels always compute in the input's dtype.
    stream: the CUDA stream of a CUDA call (an int handle or an object with .cuda_stream/.ptr).

    Accepts any DLPack array (NumPy, PyTorch, CuPy, JAX) in float32 or float64 (float16 and
    bfloat16 too on CUDA, accumulated in float32) and returns the same array type on the same
    device; CUDA arrays in channels-last layout are read in place and give channels-last outputs."""


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", algo="auto",
           precision="fp32"):
    """1-D convolution (cross-correlation, as in PyTorch) of time series.

    input (N, C, L), weight (K, C/groups, kL), bias (K,) or None -> output (N, K, L_out) with
    L_out = (L + pad_left + pad_right - dilation*(kL-1) - 1) // stride + 1.
    """
    return _conv(1, "conv1d", input, weight, bias, stride, padding, dilation, groups, padding_mode, algo,
                 precision)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", algo="auto",
           precision="fp32"):
    """2-D convolution (cross-correlation, as in PyTorch).

    input (N, C, H, W), weight (K, C/groups, R, S), bias (K,) or None -> output (N, K, P, Q) with
    P = (H + pad_top + pad_bottom - dilation*(R-1) - 1) // stride + 1 (likewise Q).
    """
    return _conv(2, "conv2d", input, weight, bias, stride, padding, dilation, groups, padding_mode, algo,
                 precision)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", algo="auto",
           precision="fp32"):
    """3-D convolution (cross-correlation, as in PyTorch) of volumes or clips.

    input (N, C, D, H, W), weight (K, C/groups, T, R, S), bias (K,) or None -> output
    (N, K, D_out, P, Q), each size as in conv2d. Runs the 2-D kernels over the depth slices
    (algo applies to that 2-D problem).
    """
    return _conv(3, "conv3d", input, weight, bias, stride, padding, dilation, groups, padding_mode, algo,
                 precision)


def conv1d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
                    needs=(True, True, True), algo="auto", precision="fp32"):
    """Gradients of :func:`conv1d`: (grad_input (N, C, L), grad_weight, grad_bias (K,))."""
    return _conv_backward(1, "conv1d_backward", grad_output, input, weight, stride, padding, dilation, groups,
                          padding_mode, needs, algo, precision)


def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
                    needs=(True, True, True), algo="auto", precision="fp32"):
    """Gradients of :func:`conv2d`: returns (grad_input, grad_weight, grad_bias).

    grad_output (N, K, P, Q), input (N, C, H, W), weight (K, C/groups, R, S); the options must be
    the ones the forward used. ``needs`` selects which of the three to compute; the others come
    back as None. grad_bias (K,) is the sum of grad_output over N, P, Q.
    Every gradient is deterministic (no atomics; fixed summation order for a given thread count)."""
    return _conv_backward(2, "conv2d_backward", grad_output, input, weight, stride, padding, dilation, groups,
                          padding_mode, needs, algo, precision)


def conv3d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
                    needs=(True, True, True), algo="auto", precision="fp32"):
    """Gradients of :func:`conv3d`: (grad_input (N, C, D, H, W), grad_weight, grad_bias (K,))."""
    return _conv_backward(3, "conv3d_backward", grad_output, input, weight, stride, padding, dilation, groups,
                          padding_mode, needs, algo, precision)


for _f in (conv1d, conv2d, conv3d):
    _f.__doc__ += _COMMON


def conv2d_algo(input, weight, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", algo="auto",
           precision="fp32"):
    """Name of the forward algorithm :func:`conv2d` runs for these arguments ("auto" resolved)."""
    op = "conv2d_algo"
    x, w = prepare(input, op, "input"), prepare(weight, op, "weight")
    stride, pads, dilation, groups = _conv_args(x, w, 2, stride, padding, dilation, groups, padding_mode, algo, op,
                                                precision)
    return _C.conv_algo(op, x, w, 2, stride, pads, dilation, groups, padding_mode, algo, precision)


CONV_FUNCTIONS = [f"conv{nd}d{b}" for nd in (1, 2, 3) for b in ("", "_backward")] + ["conv2d_algo"]


def _with_stream_argument():
    """Every entry point takes ``stream=`` for CUDA arrays (see cnnops.cuda.streamable)."""
    from .cuda import streamable

    g = globals()
    for name in CONV_FUNCTIONS:
        g[name] = streamable(g[name])


_with_stream_argument()
