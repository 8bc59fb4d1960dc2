"""Transposed convolution ("deconvolution", fractionally strided convolution), 1-D to 3-D.

conv_transpose is exactly the adjoint of conv with the same stride, padding, dilation and groups:
its forward is conv's input gradient and its input gradient is conv's forward, computed by the same
kernels (implicit GEMM, or a forward convolution of flipped weights for stride 1), never by a
scatter loop. Output size per dimension:
    out = (in - 1)*stride - (pad_before + pad_after) + dilation*(k - 1) + output_padding + 1
"""
from __future__ import annotations

from . import _C
from ._args import (check_int64, choice, integer, is_int, needs3, ntuple, padding_string, resolve_padding,
                    same_pads, shape_of, sizes, spatial_sizes)
from ._arrays import prepare, wrap
from .conv import ALGOS, PRECISIONS


def _fmt(sizes):
    return "x".join(str(s) for s in sizes)


def _tf_spatial(op, nd, in_sp, k_sp, stride, dilation, p, padding, out):
    """TensorFlow's convention: pads for output sizes `out` with "same"/"valid" padding, after
    checking the input is what a convolution of that output would give."""
    pads = []
    for i in range(nd):
        if p == "same":
            pads += same_pads(out[i], k_sp[i], stride[i], dilation[i])
            got = -(-out[i] // stride[i])
        else:
            pads += [0, 0]
            reach = dilation[i] * (k_sp[i] - 1) + 1
            got = (out[i] - reach) // stride[i] + 1 if out[i] >= reach else 0
        if got != in_sp[i]:
            if p == "same":
                lo, hi = (in_sp[i] - 1) * stride[i] + 1, in_sp[i] * stride[i]
            else:
                lo = (in_sp[i] - 1) * stride[i] + dilation[i] * (k_sp[i] - 1) + 1
                hi = lo + stride[i] - 1
            raise ValueError(f"{op}: output_shape {_fmt(out)} does not fit the input {_fmt(in_sp)} with "
                             f"padding {padding!r}: dimension {i} must be in [{lo}, {hi}], got {out[i]}")
    return pads


def _out_spatial(op, nd, in_sp, k_sp, stride, dilation, padding, output_padding, output_size, backward):
    """(pads, output sizes) from PyTorch's or TensorFlow's conventions. in_sp/k_sp are None for
    arrays of the wrong rank: the sizes returned then only have to reach the core, which refuses
    the arrays. A forward given output_size ignores output_padding, as PyTorch does; a backward
    (output size from grad_output) still requires a valid one."""
    p = padding_string(padding, ("SAME", "VALID"), op)
    if p is not None:
        if output_size is None:
            raise ValueError(f"{op}: padding={padding!r} (TensorFlow's convention) needs output_size/output_shape")
        out = list(output_size)
        if in_sp is None or k_sp is None:
            return [0] * (2 * nd), out
        return _tf_spatial(op, nd, in_sp, k_sp, stride, dilation, p, padding, out), out
    pads = resolve_padding(padding, in_sp, k_sp, stride, dilation, op, allowed=("SAME", "VALID"))
    reach = [max(stride[i], dilation[i]) for i in range(nd)]  # output_padding < max(stride, dilation)
    if output_size is not None and in_sp is not None and k_sp is not None:
        _check_reachable(op, nd, in_sp, k_sp, stride, dilation, pads, reach, output_size)
    if output_size is not None and not backward:
        return pads, list(output_size)
    op_pad = ntuple(output_padding, nd, "output_padding", op)
    if any(not 0 <= op_pad[i] < reach[i] for i in range(nd)):
        raise ValueError(f"{op}: expected output_padding smaller than stride or dilation (and >= 0), got "
                         f"output_padding={op_pad} for stride={tuple(stride)}, dilation={tuple(dilation)}")
    if output_size is not None:
        return pads, list(output_size)
    if in_sp is None or k_sp is None:
        return pads, [1] * nd
    out = [(in_sp[i] - 1) * stride[i] - pads[2 * i] - pads[2 * i + 1] + dilation[i] * (k_sp[i] - 1) + 1 + op_pad[i]
           for i in range(nd)]
    check_int64(out, "the output size (input - 1) * stride - padding + dilation * (kernel - 1) + 1", op)
    if any(o < 1 for o in out):
        raise ValueError(f"{op}: the output would be empty ({_fmt(out)}): padding {tuple(pads)} is too large "
                         f"for input {_fmt(in_sp)} and kernel {_fmt(k_sp)}")
    return pads, out


def _check_reachable(op, nd, in_sp, k_sp, stride, dilation, pads, reach, out):
    """An explicit output size must lie in [base, base + max(stride, dilation)) per dimension, base
    the size without output_padding (and at least 1). The core checks this too; the message here
    lists the reachable range of every dimension."""
    base = [(in_sp[i] - 1) * stride[i] - pads[2 * i] - pads[2 * i + 1] + dilation[i] * (k_sp[i] - 1) + 1
            for i in range(nd)]
    lo = [max(base[i], 1) for i in range(nd)]
    if any(not lo[i] <= out[i] < base[i] + reach[i] for i in range(nd)):
        ranges = " x ".join(f"[{lo[i]}, {base[i] + reach[i] - 1}]" for i in range(nd))
        raise ValueError(f"{op}: output_size {_fmt(out)} is not reachable from input {_fmt(in_sp)}; "
                         f"reachable sizes are {ranges}")


def _parse(op, nd, x, w, stride, padding, output_padding, groups, dilation, output_size, algo, backward=False,
           precision="fp32"):
    stride = ntuple(stride, nd, "stride", op)
    dilation = ntuple(dilation, nd, "dilation", op)
    if min(stride) < 1 or min(dilation) < 1:  # the output size divides by the stride
        raise ValueError(f"{op}: expected stride and dilation >= 1, got stride={stride}, dilation={dilation}")
    groups = integer(groups, "groups", op)
    choice(algo, ALGOS, "algo", op)
    choice(precision, PRECISIONS, "precision", op)
    pads, out = _out_spatial(op, nd, spatial_sizes(x, nd), spatial_sizes(w, nd), stride, dilation, padding,
                             output_padding, output_size, backward)
    return list(stride), pads, list(dilation), groups, out


def _output_shape_batch(op, nd, x, w, groups, output_shape):
    """TensorFlow checks the batch and channel entries of a full output_shape too."""
    if output_shape is None or is_int(output_shape) or len(tuple(output_shape)) != nd + 2 or not is_int(groups):
        return
    xs, ws = shape_of(x), shape_of(w)
    if len(xs) != nd + 2 or len(ws) != nd + 2:
        return
    want = (xs[0], ws[1] * groups)
    got = tuple(int(e) for e in tuple(output_shape)[:2])
    if got != want:
        raise ValueError(f"{op}: output_shape {tuple(output_shape)} has batch/channels {got}, expected {want} "
                         f"(N from the input, C_out = weight.shape[1] * groups)")


def _conv_transpose(nd, op, input, weight, bias, stride, padding, output_padding, groups, dilation, output_size,
                    output_shape, algo, precision):
    x, w, b = prepare(input, op, "input"), prepare(weight, op, "weight"), prepare(bias, op, "bias", optional=True)
    if output_size is not None and output_shape is not None:
        raise ValueError(f"{op}: give output_size or output_shape, not both")
    given = output_size if output_size is not None else output_shape
    size = None if given is None else list(sizes(given, nd, "the output size", op))
    _output_shape_batch(op, nd, x, w, groups, output_shape)
    stride, pads, dilation, groups, out = _parse(op, nd, x, w, stride, padding, output_padding, groups, dilation,
                                                size, algo, precision=precision)
    return wrap(_C.conv_transpose(op, x, w, b, nd, stride, pads, dilation, groups, out, algo, precision), input)


def _conv_transpose_backward(nd, op, grad_output, input, weight, stride, padding, output_padding, groups, dilation,
                             needs, algo, precision):
    needs = needs3(needs, op)
    dy, x, w = prepare(grad_output, op, "grad_output"), prepare(input, op, "input"), prepare(weight, op, "weight")
    # The output size is grad_output's; output_padding only has to be a valid one. For a grad_output
    # of the wrong rank the default output size goes to the core, which then refuses grad_output.
    stride, pads, dilation, groups, _ = _parse(op, nd, x, w, stride, padding, output_padding, groups, dilation,
                                              spatial_sizes(dy, nd), algo, backward=True, precision=precision)
    gi, gw, gb = _C.conv_transpose_backward(op, dy, x, w, nd, stride, pads, dilation, groups, algo, needs,
                                            precision)
    return wrap(gi, input), wrap(gw, input), wrap(gb, input)


_DOC = """
    weight (C_in, C_out/groups, *kernel) as in PyTorch; bias (C_out,) or None.
    padding: int, one per dimension, or (before, after) per dimension, as the padding of the
    convolution this is the adjoint of; or TensorFlow's "SAME"/"VALID" together with
    output_shape (tf.nn.conv*_transpose semantics).
    output_padding: extra size at the end of each dimension, < max(stride, dilation).
    output_size (PyTorch) / output_shape (TensorFlow): the output's spatial sizes (or its whole
    shape); output_padding is then chosen for you, with an error listing the reachable sizes.
    algo and precision as in conv2d (on CUDA arrays also float16/bfloat16, channels-last kept).
    Returns the caller's array type."""


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     output_size=None, output_shape=None, algo="auto", precision="fp32"):
    """Transposed 1-D convolution: input (N, C_in, L) -> (N, C_out, L_out)."""
    return _conv_transpose(1, "conv_transpose1d", input, weight, bias, stride, padding, output_padding, groups,
                           dilation, output_size, output_shape, algo, precision)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     output_size=None, output_shape=None, algo="auto", precision="fp32"):
    """Transposed 2-D convolution: input (N, C_in, H, W) -> (N, C_out, H_out, W_out)."""
    return _conv_transpose(2, "conv_transpose2d", input, weight, bias, stride, padding, output_padding, groups,
                           dilation, output_size, output_shape, algo, precision)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     output_size=None, output_shape=None, algo="auto", precision="fp32"):
    """Transposed 3-D convolution: input (N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out)."""
    return _conv_transpose(3, "conv_transpose3d", input, weight, bias, stride, padding, output_padding, groups,
                           dilation, output_size, output_shape, algo, precision)


for _f in (conv_transpose1d, conv_transpose2d, conv_transpose3d):
    _f.__doc__ += _DOC


def conv_transpose1d_backward(grad_output, input, weight, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1, needs=(True, True, True), algo="auto", precision="fp32"):
    """Gradients of :func:`conv_transpose1d`: (grad_input, grad_weight, grad_bias (C_out,)).
    grad_input is the convolution of grad_output; the output size is read from grad_output."""
    return _conv_transpose_backward(1, "conv_transpose1d_backward", grad_output, input, weight, stride, padding,
                                    output_padding, groups, dilation, needs, algo, precision)


def conv_transpose2d_backward(grad_output, input, weight, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1, needs=(True, True, True), algo="auto", precision="fp32"):
    """Gradients of :func:`conv_transpose2d`: (grad_input, grad_weight, grad_bias (C_out,)).
    grad_input is the convolution of grad_output; the output size is read from grad_output."""
    return _conv_transpose_backward(2, "conv_transpose2d_backward", grad_output, input, weight, stride, padding,
                                    output_padding, groups, dilation, needs, algo, precision)


def conv_transpose3d_backward(grad_output, input, weight, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1, needs=(True, True, True), algo="auto", precision="fp32"):
    """Gradients of :func:`conv_transpose3d`: (grad_input, grad_weight, grad_bias (C_out,)).
    grad_input is the convolution of grad_output; the output size is read from grad_output."""
    return _conv_transpose_backward(3, "conv_transpose3d_backward", grad_output, input, weight, stride, padding,
                                    output_padding, groups, dilation, needs, algo, precision)


CONV_TRANSPOSE_FUNCTIONS = [f"conv_transpose{nd}d{b}" for nd in (1, 2, 3) for b in ("", "_backward")]


def _with_stream_argument():
    """Every entry point takes ``stream=`` for CUDA arrays (see cnnops.cuda.streamable)."""
    from .cuda import streamable

    g = globals()
    for name in CONV_TRANSPOSE_FUNCTIONS:
        g[name] = streamable(g[name])


_with_stream_argument()
