"""Transposed convolution ("deconvolution", fractionally strided convolution), 1-D to 3-D.

conv_transpose is exactly the adjoint of conv with the same stride, padding, dilation and groups:
its forward is conv's input gradient and its input gradient is conv's forward, computed by the same
kernels (implicit GEMM, or a forward convolution of flipped weights for stride 1), never by a
scatter loop. Output size per dimension:
    out = (in - 1)*stride - (pad_before + pad_after) + dilation*(k - 1) + output_padding + 1
"""
from __future__ import annotations

from . import _C
from ._arrays import check_int64, prepare, wrap
from .conv import _is_int, ntuple, resolve_padding, same_pads, shape_of

_LAYOUT = {1: "(N, C_in, L)", 2: "(N, C_in, H, W)", 3: "(N, C_in, D, H, W)"}
_WLAYOUT = {1: "(C_in, C_out/groups, kL)", 2: "(C_in, C_out/groups, R, S)", 3: "(C_in, C_out/groups, T, R, S)"}
_ALGOS = ("auto", "direct", "gemm", "depthwise", "smallc")


def _fmt(sizes):
    return "x".join(str(s) for s in sizes)


def _out_spatial(op, nd, in_sp, k_sp, stride, dilation, padding, output_padding, output_size):
    """Resolve (pads, output sizes) from PyTorch's or TensorFlow's conventions."""
    if isinstance(padding, str):
        p = padding.lower()
        if p not in ("same", "valid"):
            raise ValueError(f"{op}: expected padding 'SAME' or 'VALID' as a string, got {padding!r}")
        if output_size is None:
            raise ValueError(f"{op}: padding={padding!r} (TensorFlow's convention) needs output_size/output_shape")
        out = list(output_size)
        pads = []
        for i in range(nd):
            if p == "same":
                pads += same_pads(out[i], k_sp[i], stride[i], dilation[i])
                got = -(-out[i] // stride[i])
            else:
                pads += [0, 0]
                got = (out[i] - dilation[i] * (k_sp[i] - 1) - 1) // stride[i] + 1 if out[i] >= dilation[i] * (
                    k_sp[i] - 1) + 1 else 0
            if got != in_sp[i]:
                if p == "same":
                    lo, hi = (in_sp[i] - 1) * stride[i] + 1, in_sp[i] * stride[i]
                else:
                    lo = (in_sp[i] - 1) * stride[i] + dilation[i] * (k_sp[i] - 1) + 1
                    hi = lo + stride[i] - 1
                raise ValueError(f"{op}: output_shape {_fmt(out)} does not fit the input {_fmt(in_sp)} with "
                                 f"padding {padding!r}: dimension {i} must be in [{lo}, {hi}], got {out[i]}")
        return pads, out
    pads = resolve_padding(padding, in_sp, k_sp, stride, dilation, op)
    base = [(in_sp[i] - 1) * stride[i] - pads[2 * i] - pads[2 * i + 1] + dilation[i] * (k_sp[i] - 1) + 1
            for i in range(nd)]
    reach = [max(stride[i], dilation[i]) for i in range(nd)]  # output_padding < max(stride, dilation)
    if output_size is not None:
        out = list(output_size)
        lo = [max(base[i], 1) for i in range(nd)]  # padding may remove more than base: sizes start at 1
        bad = [i for i in range(nd) if not (lo[i] <= out[i] < base[i] + reach[i])]
        if bad:
            ranges = " x ".join(f"[{lo[i]}, {base[i] + reach[i] - 1}]" for i in range(nd))
            raise ValueError(f"{op}: output_size {_fmt(out)} is not reachable from input {_fmt(in_sp)}; "
                             f"reachable sizes are {ranges}")
        return pads, out
    op_pad = ntuple(output_padding, nd, "output_padding", op)
    for i in range(nd):
        if op_pad[i] < 0 or op_pad[i] >= reach[i]:
            raise ValueError(f"{op}: expected output_padding smaller than stride or dilation (and >= 0), got "
                             f"output_padding={op_pad} for stride={tuple(stride)}, dilation={tuple(dilation)}")
    out = [base[i] + op_pad[i] for i in range(nd)]
    if any(o < 1 for o in out):
        raise ValueError(f"{op}: the output would be empty ({_fmt(out)}): padding {tuple(pads)} is too large "
                         f"for input {_fmt(in_sp)} and kernel {_fmt(k_sp)}")
    return pads, out


def _sizes_arg(output_size, output_shape, nd, op):
    """PyTorch's output_size (spatial sizes, or a full shape) or TensorFlow's output_shape."""
    if output_size is not None and output_shape is not None:
        raise ValueError(f"{op}: give output_size or output_shape, not both")
    s = output_size if output_size is not None else output_shape
    if s is None:
        return None
    s = tuple(s) if isinstance(s, (tuple, list)) else s
    if _is_int(s):
        s = (s,) * nd
    if not (isinstance(s, tuple) and all(_is_int(e) for e in s) and len(s) in (nd, nd + 2)):
        raise TypeError(f"{op}: expected output size as {nd} ints (or the full {nd + 2}-dimensional shape), got {s!r}")
    return check_int64(tuple(int(e) for e in s[-nd:]), "the output size", op)


def _args(op, nd, x, w, stride, padding, output_padding, groups, dilation, output_size, algo):
    stride = ntuple(stride, nd, "stride", op)
    dilation = ntuple(dilation, nd, "dilation", op)
    if not _is_int(groups):
        raise TypeError(f"{op}: expected groups as an int, got {groups!r}")
    check_int64((groups,), "groups", op)
    if algo not in _ALGOS:
        raise ValueError(f"{op}: expected algo one of {_ALGOS}, got {algo!r}")
    xs, ws = shape_of(x), shape_of(w)
    if len(xs) != nd + 2:
        raise ValueError(f"{op}: expected input with {nd + 2} dimensions {_LAYOUT[nd]}, got {len(xs)} with shape {xs}")
    if len(ws) != nd + 2:
        raise ValueError(f"{op}: expected weight with {nd + 2} dimensions {_WLAYOUT[nd]}, got {len(ws)} with shape {ws}")
    for i in range(nd):
        if stride[i] < 1 or dilation[i] < 1:
            raise ValueError(f"{op}: expected stride and dilation >= 1, got stride={stride}, dilation={dilation}")
    pads, out = _out_spatial(op, nd, xs[2:], ws[2:], stride, dilation, padding, output_padding, output_size)
    check_int64(out, "the output size (input - 1) * stride - padding + dilation * (kernel - 1) + 1", op)
    return list(stride), pads, list(dilation), int(groups), out


def _conv_transpose(nd, op, input, weight, bias, stride, padding, output_padding, groups, dilation, output_size,
                    output_shape, algo):
    x, w, b = prepare(input, op, "input"), prepare(weight, op, "weight"), prepare(bias, op, "bias", optional=True)
    size = _sizes_arg(output_size, output_shape, nd, op)
    if output_shape is not None and not _is_int(output_shape) and len(tuple(output_shape)) == nd + 2:
        # TensorFlow checks the batch and channel entries of output_shape too
        xs, ws = shape_of(x), shape_of(w)
        want = (xs[0], ws[1] * groups) if len(xs) == nd + 2 and len(ws) == nd + 2 and _is_int(groups) else None
        got = tuple(int(e) for e in tuple(output_shape)[:2])
        if want is not None and got != want:
            raise ValueError(f"{op}: output_shape {tuple(output_shape)} has batch/channels {got}, expected {want} "
                             f"(N from the input, C_out = weight.shape[1] * groups)")
    stride, pads, dilation, groups, out = _args(op, nd, x, w, stride, padding, output_padding, groups, dilation,
                                                size, algo)
    return wrap(_C.conv_transpose(op, x, w, b, nd, stride, pads, dilation, groups, out, algo), input)


def _conv_transpose_backward(nd, op, grad_output, input, weight, stride, padding, output_padding, groups, dilation,
                             needs, algo):
    if not (isinstance(needs, (tuple, list)) and len(needs) == 3):
        raise TypeError(f"{op}: expected needs as three booleans (input, weight, bias), got {needs!r}")
    dy, x, w = prepare(grad_output, op, "grad_output"), prepare(input, op, "input"), prepare(weight, op, "weight")
    dys = shape_of(dy)
    if len(dys) != nd + 2:
        raise ValueError(f"{op}: expected grad_output with {nd + 2} dimensions, got shape {dys}")
    # The output size is grad_output's; output_padding only has to be consistent with it.
    stride, pads, dilation, groups, _ = _args(op, nd, x, w, stride, padding, output_padding, groups, dilation,
                                              dys[2:], algo)
    op_pad = ntuple(output_padding, nd, "output_padding", op)  # unused, yet it must be a valid one
    if any(not 0 <= p < max(s, d) for p, s, d in zip(op_pad, stride, dilation)):
        raise ValueError(f"{op}: expected output_padding smaller than stride or dilation (and >= 0), got "
                         f"output_padding={op_pad} for stride={tuple(stride)}, dilation={tuple(dilation)}")
    gi, gw, gb = _C.conv_transpose_backward(op, dy, x, w, nd, stride, pads, dilation, groups, algo,
                                            tuple(bool(n) for n in needs))
    return wrap(gi, input), wrap(gw, input), wrap(gb, input)


_DOC = """
    weight (C_in, C_out/groups, *kernel) as in PyTorch; bias (C_out,) or None.
    padding: int, one per dimension, or (before, after) per dimension, as the padding of the
    convolution this is the adjoint of; or TensorFlow's "SAME"/"VALID" together with
    output_shape (tf.nn.conv*_transpose semantics).
    output_padding: extra size at the end of each dimension, < max(stride, dilation).
    output_size (PyTorch) / output_shape (TensorFlow): the output's spatial sizes (or its whole
    shape); output_padding is then chosen for you, with an error listing the reachable sizes.
    Returns the caller's array type."""


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     output_size=None, output_shape=None, algo="auto"):
    """Transposed 1-D convolution: input (N, C_in, L) -> (N, C_out, L_out)."""
    return _conv_transpose(1, "conv_transpose1d", input, weight, bias, stride, padding, output_padding, groups,
                           dilation, output_size, output_shape, algo)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     output_size=None, output_shape=None, algo="auto"):
    """Transposed 2-D convolution: input (N, C_in, H, W) -> (N, C_out, H_out, W_out)."""
    return _conv_transpose(2, "conv_transpose2d", input, weight, bias, stride, padding, output_padding, groups,
                           dilation, output_size, output_shape, algo)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     output_size=None, output_shape=None, algo="auto"):
    """Transposed 3-D convolution: input (N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out)."""
    return _conv_transpose(3, "conv_transpose3d", input, weight, bias, stride, padding, output_padding, groups,
                           dilation, output_size, output_shape, algo)


for _f in (conv_transpose1d, conv_transpose2d, conv_transpose3d):
    _f.__doc__ += _DOC


def conv_transpose1d_backward(grad_output, input, weight, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1, needs=(True, True, True), algo="auto"):
    """Gradients of :func:`conv_transpose1d`: (grad_input, grad_weight, grad_bias (C_out,)).
    grad_input is the convolution of grad_output; the output size is read from grad_output."""
    return _conv_transpose_backward(1, "conv_transpose1d_backward", grad_output, input, weight, stride, padding,
                                    output_padding, groups, dilation, needs, algo)


def conv_transpose2d_backward(grad_output, input, weight, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1, needs=(True, True, True), algo="auto"):
    """Gradients of :func:`conv_transpose2d`: (grad_input, grad_weight, grad_bias (C_out,)).
    grad_input is the convolution of grad_output; the output size is read from grad_output."""
    return _conv_transpose_backward(2, "conv_transpose2d_backward", grad_output, input, weight, stride, padding,
                                    output_padding, groups, dilation, needs, algo)


def conv_transpose3d_backward(grad_output, input, weight, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1, needs=(True, True, True), algo="auto"):
    """Gradients of :func:`conv_transpose3d`: (grad_input, grad_weight, grad_bias (C_out,)).
    grad_input is the convolution of grad_output; the output size is read from grad_output."""
    return _conv_transpose_backward(3, "conv_transpose3d_backward", grad_output, input, weight, stride, padding,
                                    output_padding, groups, dilation, needs, algo)
