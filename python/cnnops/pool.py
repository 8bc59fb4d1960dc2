"""Pooling entry points: max, average, LP, adaptive and global pooling in 1-D, 2-D and 3-D, each
with its own backward. Spellings (tuples, "SAME"/"VALID" padding, data_format) become explicit
values in cnnops._args; the C++ core receives per-side pads and checks everything against the
tensors.

Layouts: ``data_format`` "NCW"/"NWC" (1-D), "NCHW"/"NHWC" (2-D), "NCDHW"/"NDHWC" (3-D), or the
aliases "channels_first"/"channels_last", in any case. Default channels first, as PyTorch. Outputs
(and gradients) come back in the input's layout and array type (NumPy in -> NumPy out, torch in ->
torch out). float32 and float64; indices are int64."""
from __future__ import annotations

import math

from . import _C
from ._args import (DATA_FORMATS, channels_last, check_int64, flag, is_int, is_real, layout, ntuple,
                    resolve_padding, shape_of, spatial_sizes, to_float)
from ._arrays import prepare, wrap

_FORMATS = DATA_FORMATS
_LAYOUT = {(nd, cl): layout(nd, cl) for nd in (1, 2, 3) for cl in (False, True)}

# data_format -> channels-last flag
parse_data_format = channels_last


def pool_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int, dilation: int = 1,
                     ceil_mode: bool = False) -> int:
    """Output length of one dimension (PyTorch's rule; with ceil_mode the last window must start
    inside the input or the leading padding)."""
    numer = size + pad_before + pad_after - dilation * (kernel - 1) - 1
    out = (-(-numer // stride) if ceil_mode else numer // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_before:
        out -= 1
    return out


def _window_args(x, nd, kernel_size, stride, padding, dilation, channels_last, op):
    k = ntuple(kernel_size, nd, "kernel_size", op)
    if min(k) < 1:  # before the padding rule below, which is stated in terms of the kernel
        raise ValueError(f"{op}: expected kernel_size >= 1, got {k if nd > 1 else k[0]}")
    s = k if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) else \
        ntuple(stride, nd, "stride", op)
    d = ntuple(dilation, nd, "dilation", op)
    pads = resolve_padding(padding, spatial_sizes(x, nd, channels_last), k, s, d, op, allowed=("SAME", "VALID"))
    if not isinstance(padding, str):
        # PyTorch's rule for explicit padding: at most half the kernel (dilation not counted);
        # "SAME" pads may reach half the dilated kernel, which the core allows.
        for i in range(nd):
            if max(pads[2 * i], pads[2 * i + 1]) > k[i] // 2:
                raise ValueError(f"{op}: expected padding at most half the kernel size, got padding {padding!r} "
                                 f"for kernel_size {tuple(k)}")
    return list(k), list(s), pads, list(d)


def _output_size_arg(x, nd, output_size, channels_last, op):
    """Adaptive output sizes; None entries keep the input's size (1 for an input of the wrong rank,
    which the core refuses)."""
    sp = spatial_sizes(x, nd, channels_last) or (1,) * nd
    if output_size is None or is_int(output_size):
        output_size = (output_size,) * nd
    if not (isinstance(output_size, (tuple, list)) and len(output_size) == nd and
            all(v is None or is_int(v) for v in output_size)):
        raise TypeError(f"{op}: expected output_size as an int or {nd} ints (None keeps that input size), "
                        f"got {output_size!r}")
    return check_int64([sp[i] if v is None else int(v) for i, v in enumerate(output_size)], "output_size", op)


def _divisor(divisor_override, op):
    if divisor_override is None:
        return 0
    if not is_int(divisor_override) or divisor_override <= 0:
        raise ValueError(f"{op}: expected divisor_override as a positive int or None, got {divisor_override!r}")
    return check_int64((int(divisor_override),), "divisor_override", op)[0]


def _norm(norm_type, op):
    if not is_real(norm_type):
        raise TypeError(f"{op}: expected norm_type as a number, got {norm_type!r}")
    p = to_float(norm_type, "norm_type", op)
    if not (math.isfinite(p) and p > 0):
        raise ValueError(f"{op}: expected a finite norm_type > 0, got {norm_type!r}")
    return p


def _indices_format(v, op):
    if v not in ("torch", "tf"):
        raise ValueError(f"{op}: expected indices_format 'torch' or 'tf', got {v!r}")
    return v == "tf"


# ---- generic drivers ------------------------------------------------------------------------------

def _run(op, nd, kind, input, data_format, *, kernel_size=None, stride=None, padding=0, dilation=1,
         ceil_mode=False, count_include_pad=True, divisor_override=None, norm_type=2.0, output_size=None,
         return_indices=False, indices_format="torch"):
    x = prepare(input, op, "input")
    cl = parse_data_format(data_format, nd, op)
    if output_size is not None:
        osz = _output_size_arg(x, nd, output_size, cl, op)
        k, s, pads, d = [], [], [], []
    else:
        osz = []
        k, s, pads, d = _window_args(x, nd, kernel_size, stride, padding, dilation, cl, op)
    tf = _indices_format(indices_format, op)
    out, idx = _C.pool(op, x, kind, nd, cl, k, s, pads, d, flag(ceil_mode, "ceil_mode", op),
                       flag(count_include_pad, "count_include_pad", op), _divisor(divisor_override, op),
                       _norm(norm_type, op) if kind == "lp" else 2.0, osz, flag(return_indices, "return_indices", op),
                       tf)
    if return_indices:
        return wrap(out, input), wrap(idx, input)
    return wrap(out, input)


def _run_backward(op, nd, kind, grad_output, input, indices, data_format, *, kernel_size=None, stride=None,
                  padding=0, dilation=1, ceil_mode=False, count_include_pad=True, divisor_override=None,
                  norm_type=2.0, output_size=None):
    x = prepare(input, op, "input")
    dy = prepare(grad_output, op, "grad_output")
    ix = prepare(indices, op, "indices", optional=True)
    cl = parse_data_format(data_format, nd, op)
    if output_size is not None:
        osz = _output_size_arg(x, nd, output_size, cl, op)
        k, s, pads, d = [], [], [], []
    else:
        osz = []
        k, s, pads, d = _window_args(x, nd, kernel_size, stride, padding, dilation, cl, op)
    gi = _C.pool_backward(op, dy, x, ix, kind, nd, cl, k, s, pads, d, flag(ceil_mode, "ceil_mode", op),
                          flag(count_include_pad, "count_include_pad", op), _divisor(divisor_override, op),
                          _norm(norm_type, op) if kind == "lp" else 2.0, osz)
    return wrap(gi, input)


def _grad_output_shape(x, nd, channels_last):
    """(N, C, 1, ..., 1) for the global pools in the input's layout; None for an input of the wrong
    rank (the core refuses it)."""
    xs = shape_of(x)
    if len(xs) != nd + 2:
        return None
    return (xs[0],) + (1,) * nd + (xs[-1],) if channels_last else (xs[0], xs[1]) + (1,) * nd


# ---- max pooling ----------------------------------------------------------------------------------

_MAX_DOC = """
    Max pooling over {nd}-D windows, as torch.nn.functional.max_pool{nd}d.

    input {layout} (or channels last with data_format={last!r}) -> output with spatial sizes
    out = (size + pad_before + pad_after - dilation*(k-1) - 1) // stride + 1 (rounded up with
    ceil_mode, the last window starting inside the input or the leading padding).
    kernel_size, stride (default: kernel_size), dilation: int or {nd} ints; padding: int, {nd} ints,
    {nd2} ints (before, after per dimension) or "SAME"/"VALID" (TensorFlow's rule); padding at
    most half the dilated kernel. Padded positions never win. NaN propagates as in PyTorch (a NaN
    in the window gives NaN; its index is the last NaN in scan order); ties keep the first maximum.
    return_indices: also return int64 indices of the output's shape: with indices_format="torch",
    the flat position inside the input's (n, c) spatial plane (PyTorch); with "tf", TensorFlow's
    max_pool_with_argmax flattening (spatial_position * C + c, batch not included). The backward
    functions take the "torch" format."""


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *,
               data_format="NCW", indices_format="torch"):
    return _run("max_pool1d", 1, "max", input, data_format, kernel_size=kernel_size, stride=stride, padding=padding,
                dilation=dilation, ceil_mode=ceil_mode, return_indices=return_indices, indices_format=indices_format)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *,
               data_format="NCHW", indices_format="torch"):
    return _run("max_pool2d", 2, "max", input, data_format, kernel_size=kernel_size, stride=stride, padding=padding,
                dilation=dilation, ceil_mode=ceil_mode, return_indices=return_indices, indices_format=indices_format)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *,
               data_format="NCDHW", indices_format="torch"):
    return _run("max_pool3d", 3, "max", input, data_format, kernel_size=kernel_size, stride=stride, padding=padding,
                dilation=dilation, ceil_mode=ceil_mode, return_indices=return_indices, indices_format=indices_format)


_MAX_BWD_DOC = """
    Gradient of :func:`max_pool{nd}d` with respect to its input (same shape and layout as input).

    indices: the "torch"-format indices the forward returned (int64, the output's shape), or None
    to recompute the argmax from the input. Each output's gradient goes to its argmax; values are
    added in output order inside a task that owns the whole plane, so the result is bitwise
    identical for any thread count. Indices outside the plane raise ValueError."""


def max_pool1d_backward(grad_output, input, indices, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, *, data_format="NCW"):
    return _run_backward("max_pool1d_backward", 1, "max", grad_output, input, indices, data_format,
                         kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                         ceil_mode=ceil_mode)


def max_pool2d_backward(grad_output, input, indices, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, *, data_format="NCHW"):
    return _run_backward("max_pool2d_backward", 2, "max", grad_output, input, indices, data_format,
                         kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                         ceil_mode=ceil_mode)


def max_pool3d_backward(grad_output, input, indices, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, *, data_format="NCDHW"):
    return _run_backward("max_pool3d_backward", 3, "max", grad_output, input, indices, data_format,
                         kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                         ceil_mode=ceil_mode)


# ---- average pooling ------------------------------------------------------------------------------

_AVG_DOC = """
    Average pooling over {nd}-D windows, as torch.nn.functional.avg_pool{nd}d.

    input {layout} (or channels last with data_format={last!r}); output sizes as max_pool{nd}d
    with dilation 1. Each output is the window sum divided by divisor_override when given, else
    by the window size clipped to the padded input (count_include_pad=True, PyTorch's default) or
    by the number of input elements in the window (count_include_pad=False; TensorFlow's "SAME"
    average pooling). padding: int, {nd} ints, {nd2} ints (before, after per dimension) or
    "SAME"/"VALID"."""


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *,
               data_format="NCW"):
    return _run("avg_pool1d", 1, "avg", input, data_format, kernel_size=kernel_size, stride=stride, padding=padding,
                ceil_mode=ceil_mode, count_include_pad=count_include_pad)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, data_format="NCHW"):
    return _run("avg_pool2d", 2, "avg", input, data_format, kernel_size=kernel_size, stride=stride, padding=padding,
                ceil_mode=ceil_mode, count_include_pad=count_include_pad, divisor_override=divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, data_format="NCDHW"):
    return _run("avg_pool3d", 3, "avg", input, data_format, kernel_size=kernel_size, stride=stride, padding=padding,
                ceil_mode=ceil_mode, count_include_pad=count_include_pad, divisor_override=divisor_override)


_AVG_BWD_DOC = """
    Gradient of :func:`avg_pool{nd}d` with respect to its input (same shape and layout); every
    element of a window receives grad_output / divisor. Deterministic (ordered per-plane sums)."""


def avg_pool1d_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, *, data_format="NCW"):
    return _run_backward("avg_pool1d_backward", 1, "avg", grad_output, input, None, data_format,
                         kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                         count_include_pad=count_include_pad)


def avg_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None, *, data_format="NCHW"):
    return _run_backward("avg_pool2d_backward", 2, "avg", grad_output, input, None, data_format,
                         kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                         count_include_pad=count_include_pad, divisor_override=divisor_override)


def avg_pool3d_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None, *, data_format="NCDHW"):
    return _run_backward("avg_pool3d_backward", 3, "avg", grad_output, input, None, data_format,
                         kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                         count_include_pad=count_include_pad, divisor_override=divisor_override)


# ---- LP pooling -----------------------------------------------------------------------------------

_LP_DOC = """
    Power-average pooling, as torch.nn.functional.lp_pool{nd}d: for each window,
    out = (sum x^p * prod(kernel_size) / n)^(1/p), with n the number of input elements in the
    window (n = prod(kernel_size) except for the partial windows ceil_mode adds), p = norm_type
    (finite, > 0). No padding. input {layout} (or channels last with data_format={last!r}).
    Negative inputs with a non-integer p give NaN, as in PyTorch."""


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False, *, data_format="NCW"):
    return _run("lp_pool1d", 1, "lp", input, data_format, kernel_size=kernel_size, stride=stride,
                ceil_mode=ceil_mode, norm_type=norm_type)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False, *, data_format="NCHW"):
    return _run("lp_pool2d", 2, "lp", input, data_format, kernel_size=kernel_size, stride=stride,
                ceil_mode=ceil_mode, norm_type=norm_type)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False, *, data_format="NCDHW"):
    return _run("lp_pool3d", 3, "lp", input, data_format, kernel_size=kernel_size, stride=stride,
                ceil_mode=ceil_mode, norm_type=norm_type)


_LP_BWD_DOC = """
    Gradient of :func:`lp_pool{nd}d`: d out / d x_i = c * x_i^(p-1) * out^(1-p) with
    c = prod(kernel_size) / n; taken as 0 for windows whose power sum is 0 (where PyTorch's
    gradient is inf or NaN). Deterministic."""


def lp_pool1d_backward(grad_output, input, norm_type, kernel_size, stride=None, ceil_mode=False, *,
                       data_format="NCW"):
    return _run_backward("lp_pool1d_backward", 1, "lp", grad_output, input, None, data_format,
                         kernel_size=kernel_size, stride=stride, ceil_mode=ceil_mode, norm_type=norm_type)


def lp_pool2d_backward(grad_output, input, norm_type, kernel_size, stride=None, ceil_mode=False, *,
                       data_format="NCHW"):
    return _run_backward("lp_pool2d_backward", 2, "lp", grad_output, input, None, data_format,
                         kernel_size=kernel_size, stride=stride, ceil_mode=ceil_mode, norm_type=norm_type)


def lp_pool3d_backward(grad_output, input, norm_type, kernel_size, stride=None, ceil_mode=False, *,
                       data_format="NCDHW"):
    return _run_backward("lp_pool3d_backward", 3, "lp", grad_output, input, None, data_format,
                         kernel_size=kernel_size, stride=stride, ceil_mode=ceil_mode, norm_type=norm_type)


# ---- adaptive pooling -----------------------------------------------------------------------------

_ADAPTIVE_DOC = """
    Adaptive {what} pooling to a fixed output size, as torch.nn.functional.adaptive_{kind}_pool{nd}d.

    input {layout} (or channels last with data_format={last!r}); output_size: int or {nd} ints
    (>= 1; None keeps that input size). Output i along a dimension of input size In and output
    size Out pools input [floor(i*In/Out), ceil((i+1)*In/Out))."""


def adaptive_avg_pool1d(input, output_size, *, data_format="NCW"):
    return _run("adaptive_avg_pool1d", 1, "avg", input, data_format, output_size=output_size,
                count_include_pad=False)


def adaptive_avg_pool2d(input, output_size, *, data_format="NCHW"):
    return _run("adaptive_avg_pool2d", 2, "avg", input, data_format, output_size=output_size,
                count_include_pad=False)


def adaptive_avg_pool3d(input, output_size, *, data_format="NCDHW"):
    return _run("adaptive_avg_pool3d", 3, "avg", input, data_format, output_size=output_size,
                count_include_pad=False)


def adaptive_max_pool1d(input, output_size, return_indices=False, *, data_format="NCW"):
    return _run("adaptive_max_pool1d", 1, "max", input, data_format, output_size=output_size,
                return_indices=return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False, *, data_format="NCHW"):
    return _run("adaptive_max_pool2d", 2, "max", input, data_format, output_size=output_size,
                return_indices=return_indices)


def adaptive_max_pool3d(input, output_size, return_indices=False, *, data_format="NCDHW"):
    return _run("adaptive_max_pool3d", 3, "max", input, data_format, output_size=output_size,
                return_indices=return_indices)


_ADAPTIVE_BWD_DOC = """
    Gradient of :func:`adaptive_{kind}_pool{nd}d` with respect to its input (same shape and layout).
    {extra}Deterministic for any thread count."""


def adaptive_avg_pool1d_backward(grad_output, input, *, data_format="NCW"):
    return _run_backward("adaptive_avg_pool1d_backward", 1, "avg", grad_output, input, None, data_format,
                         output_size=_out_of(grad_output, 1, data_format, "adaptive_avg_pool1d_backward"),
                         count_include_pad=False)


def adaptive_avg_pool2d_backward(grad_output, input, *, data_format="NCHW"):
    return _run_backward("adaptive_avg_pool2d_backward", 2, "avg", grad_output, input, None, data_format,
                         output_size=_out_of(grad_output, 2, data_format, "adaptive_avg_pool2d_backward"),
                         count_include_pad=False)


def adaptive_avg_pool3d_backward(grad_output, input, *, data_format="NCDHW"):
    return _run_backward("adaptive_avg_pool3d_backward", 3, "avg", grad_output, input, None, data_format,
                         output_size=_out_of(grad_output, 3, data_format, "adaptive_avg_pool3d_backward"),
                         count_include_pad=False)


def adaptive_max_pool1d_backward(grad_output, input, indices, *, data_format="NCW"):
    return _run_backward("adaptive_max_pool1d_backward", 1, "max", grad_output, input, indices, data_format,
                         output_size=_out_of(grad_output, 1, data_format, "adaptive_max_pool1d_backward"))


def adaptive_max_pool2d_backward(grad_output, input, indices, *, data_format="NCHW"):
    return _run_backward("adaptive_max_pool2d_backward", 2, "max", grad_output, input, indices, data_format,
                         output_size=_out_of(grad_output, 2, data_format, "adaptive_max_pool2d_backward"))


def adaptive_max_pool3d_backward(grad_output, input, indices, *, data_format="NCDHW"):
    return _run_backward("adaptive_max_pool3d_backward", 3, "max", grad_output, input, indices, data_format,
                         output_size=_out_of(grad_output, 3, data_format, "adaptive_max_pool3d_backward"))


def _out_of(grad_output, nd, data_format, op):
    """The adaptive output size, read from grad_output's shape (the one array whose rank Python
    checks: the sizes passed to the core come from it)."""
    cl = parse_data_format(data_format, nd, op)
    g = prepare(grad_output, op, "grad_output")
    sp = spatial_sizes(g, nd, cl)
    if sp is None:
        raise ValueError(f"{op}: expected grad_output with {nd + 2} dimensions {_LAYOUT[(nd, cl)]}, got "
                         f"{len(shape_of(g))} with shape {shape_of(g)}")
    return list(sp)


# ---- global pooling -------------------------------------------------------------------------------

def global_avg_pool2d(input, keepdims=True, *, data_format="NCHW"):
    """Mean over H and W of input (N, C, H, W) (or (N, H, W, C) with data_format="NHWC").

    keepdims=True (default) -> (N, C, 1, 1) (or (N, 1, 1, C)), as adaptive_avg_pool2d(x, 1);
    keepdims=False -> (N, C)."""
    keepdims = flag(keepdims, "keepdims", "global_avg_pool2d")
    y = _run("global_avg_pool2d", 2, "avg", input, data_format, output_size=1, count_include_pad=False)
    return y if keepdims else _drop_spatial(y, data_format)


def global_max_pool2d(input, keepdims=True, return_indices=False, *, data_format="NCHW"):
    """Maximum over H and W of input (N, C, H, W) (or (N, H, W, C) with data_format="NHWC").

    keepdims=True (default) -> (N, C, 1, 1) (or (N, 1, 1, C)); keepdims=False -> (N, C).
    NaN propagates; return_indices adds the PyTorch-format argmax (h * W + w), same shape."""
    keepdims = flag(keepdims, "keepdims", "global_max_pool2d")
    r = _run("global_max_pool2d", 2, "max", input, data_format, output_size=1, return_indices=return_indices)
    if keepdims:
        return r
    if return_indices:
        return _drop_spatial(r[0], data_format), _drop_spatial(r[1], data_format)
    return _drop_spatial(r, data_format)


def _drop_spatial(y, data_format):
    """(N, C, 1, 1) or (N, 1, 1, C) -> (N, C); explicit sizes, so N == 0 works too."""
    c = y.shape[-1] if parse_data_format(data_format, 2, "global_pool2d") else y.shape[1]
    return y.reshape(y.shape[0], c)


def _global_backward(op, kind, grad_output, input, indices, data_format):
    x = prepare(input, op, "input")
    cl = parse_data_format(data_format, 2, op)
    want = _grad_output_shape(x, 2, cl)
    gs = shape_of(prepare(grad_output, op, "grad_output"))
    if want is None:
        return _run_backward(op, 2, kind, grad_output, input, indices, data_format, output_size=1,
                             count_include_pad=False)
    flat = (want[0], want[-1] if cl else want[1])
    if gs == flat:
        grad_output = grad_output.reshape(want)
    elif gs != want:
        raise ValueError(f"{op}: expected grad_output of shape {want} or {flat}, got {gs}")
    if indices is not None and shape_of(prepare(indices, op, "indices")) == flat:
        indices = indices.reshape(want)
    return _run_backward(op, 2, kind, grad_output, input, indices, data_format, output_size=1,
                         count_include_pad=False)


def global_avg_pool2d_backward(grad_output, input, *, data_format="NCHW"):
    """Gradient of :func:`global_avg_pool2d`: grad_output (N, C, 1, 1) or (N, C) -> (N, C, H, W),
    each element grad / (H * W)."""
    return _global_backward("global_avg_pool2d_backward", "avg", grad_output, input, None, data_format)


def global_max_pool2d_backward(grad_output, input, indices=None, *, data_format="NCHW"):
    """Gradient of :func:`global_max_pool2d`: grad_output (N, C, 1, 1) or (N, C) -> (N, C, H, W),
    the gradient placed at the argmax (indices from the forward, or None to recompute)."""
    return _global_backward("global_max_pool2d_backward", "max", grad_output, input, indices, data_format)


def _fill_docs():
    for nd in (1, 2, 3):
        fmt = dict(nd=nd, nd2=2 * nd, layout=_LAYOUT[(nd, False)], last=_FORMATS[nd][1])
        g = globals()
        g[f"max_pool{nd}d"].__doc__ = _MAX_DOC.format(**fmt)
        g[f"max_pool{nd}d_backward"].__doc__ = _MAX_BWD_DOC.format(**fmt)
        g[f"avg_pool{nd}d"].__doc__ = _AVG_DOC.format(**fmt)
        g[f"avg_pool{nd}d_backward"].__doc__ = _AVG_BWD_DOC.format(**fmt)
        g[f"lp_pool{nd}d"].__doc__ = _LP_DOC.format(**fmt)
        g[f"lp_pool{nd}d_backward"].__doc__ = _LP_BWD_DOC.format(**fmt)
        for kind, what in (("avg", "average"), ("max", "max")):
            g[f"adaptive_{kind}_pool{nd}d"].__doc__ = _ADAPTIVE_DOC.format(kind=kind, what=what, **fmt) + (
                "\n    return_indices: also return the PyTorch-format argmax (flat position in the plane)."
                if kind == "max" else "")
            extra = ("indices: from the forward (int64, output's shape) or None to recompute. "
                     if kind == "max" else "")
            g[f"adaptive_{kind}_pool{nd}d_backward"].__doc__ = _ADAPTIVE_BWD_DOC.format(kind=kind, extra=extra,
                                                                                       **fmt)


_fill_docs()

POOL_FUNCTIONS = [f"{k}_pool{nd}d{b}" for k in ("max", "avg", "lp", "adaptive_avg", "adaptive_max")
                  for nd in (1, 2, 3) for b in ("", "_backward")] + [
    "global_avg_pool2d", "global_avg_pool2d_backward", "global_max_pool2d", "global_max_pool2d_backward"]


def _with_stream_argument():
    """Every entry point takes ``stream=`` for CUDA arrays (see cnnops.cuda.streamable)."""
    from .cuda import streamable

    g = globals()
    for name in POOL_FUNCTIONS:
        g[name] = streamable(g[name])


_with_stream_argument()
