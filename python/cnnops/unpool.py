"""Unpooling and nearest-neighbour upsampling (1-D, 2-D, 3-D), forward and backward.

- ``max_unpool1d/2d/3d``: the partial inverse of max pooling ("bed of nails" with remembered
  positions): each input value goes to the output position its index names, zeros elsewhere.
- ``bed_of_nails_unpool2d``: each value goes to the top-left corner of its ``scale`` cell.
- ``upsample_nearest1d/2d/3d``: PyTorch's ``interpolate(mode="nearest")`` and
  ``mode="nearest-exact"``, including non-integer scale factors (see :func:`upsample_nearest2d`).

Every op accepts ``data_format`` ("NCW"/"NWC", "NCHW"/"NHWC", "NCDHW"/"NDHWC", or
"channels_first"/"channels_last", any case; channels first by default), float32/float64 values
and int64 indices, any DLPack array (the result has the caller's array type). Backward passes are
gathers over outputs: bitwise identical for any thread count."""
from __future__ import annotations

import math

from . import _C
from ._args import (channels_last, check_int64, is_int, is_real, layout, ntuple, shape_of, sizes, spatial,
                    spatial_sizes, to_float)
from ._arrays import prepare, wrap

_MODES = ("nearest", "nearest-exact")


# ------------------------------------------------------------------------------------------------
# nearest upsampling


def _upsample_plan(in_sp, nd, scale_factor, size, mode, recompute_scale_factor, op, cl=False):
    """(output sizes, scales passed to the kernel) as torch.nn.functional.interpolate computes them."""
    if mode not in _MODES:
        raise ValueError(f"{op}: expected mode 'nearest' or 'nearest-exact', got {mode!r}")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: expected exactly one of size and scale_factor, got "
                         f"{'both' if size is not None else 'neither'}")
    if size is not None:
        out = sizes(size, nd, "size", op, cl)
        if any(o < 1 for o in out):
            raise ValueError(f"{op}: expected positive output sizes, got size={tuple(out)}")
        return list(out), [-1.0] * nd
    if is_real(scale_factor):
        sf = (to_float(scale_factor, "scale_factor", op),) * nd
    elif isinstance(scale_factor, (tuple, list)) and len(scale_factor) == nd and all(is_real(e) for e in scale_factor):
        sf = tuple(to_float(e, "scale_factor", op) for e in scale_factor)
    else:
        raise TypeError(f"{op}: expected scale_factor as a number or {nd} numbers, got {scale_factor!r}")
    if not all(math.isfinite(f) and f > 0 for f in sf):
        raise ValueError(f"{op}: expected positive finite scale factors, got {sf if nd > 1 else sf[0]}")
    prods = [i * f for i, f in zip(in_sp, sf)]
    if not all(math.isfinite(v) for v in prods):
        raise ValueError(f"{op}: expected the output size input * scale_factor to fit a 64-bit integer, got "
                         f"input size {tuple(in_sp)} and scale_factor {sf if nd > 1 else sf[0]}")
    out = check_int64([math.floor(v) for v in prods], "the output size input * scale_factor", op)
    if any(o < 1 for o in out):
        raise ValueError(f"{op}: expected a positive output size, got {tuple(out)} from input size {tuple(in_sp)} "
                         f"and scale_factor {sf if nd > 1 else sf[0]}")
    scales = [-1.0] * nd if recompute_scale_factor else list(sf)
    return out, scales


def _upsample(nd, op, input, scale_factor, size, mode, recompute_scale_factor, data_format):
    cl = channels_last(data_format, nd, op)
    x = prepare(input, op, "input")
    in_sp = spatial_sizes(x, nd, cl) or (1,) * nd  # the core refuses an input of the wrong rank
    out, scales = _upsample_plan(in_sp, nd, scale_factor, size, mode, recompute_scale_factor, op, cl)
    return wrap(_C.upsample_nearest(op, x, nd, cl, out, scales, mode == "nearest-exact"), input)


def _upsample_backward(nd, op, grad_output, input_size_or_input, scale_factor, size, mode, recompute_scale_factor,
                       data_format):
    cl = channels_last(data_format, nd, op)
    dy = prepare(grad_output, op, "grad_output")
    src = input_size_or_input
    if hasattr(src, "shape") and not isinstance(src, (tuple, list)):
        in_shape = shape_of(src)
        if len(in_shape) != nd + 2:
            raise ValueError(f"{op}: expected input with {nd + 2} dimensions {layout(nd, cl)}, got {len(in_shape)} "
                             f"with shape {in_shape}")
        in_sp = spatial(in_shape, nd, cl)
    elif isinstance(src, (tuple, list)) and all(is_int(e) for e in src) and len(src) in (nd, nd + 2):
        in_sp = tuple(int(e) for e in src) if len(src) == nd else spatial(tuple(int(e) for e in src), nd, cl)
    else:
        raise TypeError(f"{op}: expected input_size_or_input as the input array, its shape or its {nd} spatial "
                        f"sizes, got {src!r}")
    if any(i < 1 for i in in_sp):
        raise ValueError(f"{op}: expected positive input sizes, got {in_sp}")
    out, scales = _upsample_plan(in_sp, nd, scale_factor, size, mode, recompute_scale_factor, op, cl)
    got = spatial_sizes(dy, nd, cl)  # None: the core refuses grad_output's rank
    if got is not None and tuple(out) != got:
        raise ValueError(f"{op}: expected grad_output with spatial size {tuple(out)} (the forward's output for input "
                         f"size {in_sp}), got {got}")
    return wrap(_C.upsample_nearest_backward(op, dy, nd, cl, list(in_sp), scales, mode == "nearest-exact"),
                grad_output)


_UP_DOC = """
    scale_factor: a number or one per spatial dimension; the output size is
    floor(input_size * scale_factor) and, as in PyTorch, the source index uses 1/scale_factor
    (not the size ratio) unless recompute_scale_factor=True. size: the output sizes (an int or
    one per dimension); the source index then uses input_size/output_size. Exactly one of the two.
    mode "nearest": src = min(floor(dst * s), in - 1) (PyTorch's legacy rule; in 2-D, as torch's
    2-D kernel, out == in maps dst -> dst and out == 2*in maps dst -> dst // 2, which torch's 1-D
    and 3-D forward kernels do not do); "nearest-exact": src = min(floor((dst + 0.5) * s), in - 1).
    s is computed in float32 as PyTorch does, so the forward matches torch bit for bit. The
    backward is the exact adjoint of this forward (torch's own 1-D/3-D backward applies the
    shortcuts its forward skips, so they differ from it in those rare cases only).
    data_format: channels first (default) or channels last."""


def upsample_nearest1d(input, scale_factor=None, size=None, mode="nearest", recompute_scale_factor=None,
                       data_format="NCW"):
    """Nearest upsampling of (N, C, L) (or (N, L, C) with data_format="NWC") to (N, C, L_out)."""
    return _upsample(1, "upsample_nearest1d", input, scale_factor, size, mode, recompute_scale_factor, data_format)


def upsample_nearest2d(input, scale_factor=None, size=None, mode="nearest", recompute_scale_factor=None,
                       data_format="NCHW"):
    """Nearest upsampling of (N, C, H, W) (or (N, H, W, C)) to (N, C, H_out, W_out)."""
    return _upsample(2, "upsample_nearest2d", input, scale_factor, size, mode, recompute_scale_factor, data_format)


def upsample_nearest3d(input, scale_factor=None, size=None, mode="nearest", recompute_scale_factor=None,
                       data_format="NCDHW"):
    """Nearest upsampling of (N, C, D, H, W) (or (N, D, H, W, C)) to (N, C, D_out, H_out, W_out)."""
    return _upsample(3, "upsample_nearest3d", input, scale_factor, size, mode, recompute_scale_factor, data_format)


for _f in (upsample_nearest1d, upsample_nearest2d, upsample_nearest3d):
    _f.__doc__ += _UP_DOC


_UP_BWD_DOC = """

    input_size_or_input: the forward's input array, its shape, or its spatial sizes; the other
    arguments are the forward's. Returns grad_input of the input's shape: each input element is the
    sum of the grad_output elements that copied it (zero when none did, as when downsampling),
    summed in a fixed order, so the result is bitwise identical for any thread count."""


def upsample_nearest1d_backward(grad_output, input_size_or_input, scale_factor=None, size=None, mode="nearest",
                                recompute_scale_factor=None, data_format="NCW"):
    """Gradient of :func:`upsample_nearest1d`: grad_output (N, C, L_out) -> grad_input (N, C, L)."""
    return _upsample_backward(1, "upsample_nearest1d_backward", grad_output, input_size_or_input, scale_factor, size,
                              mode, recompute_scale_factor, data_format)


def upsample_nearest2d_backward(grad_output, input_size_or_input, scale_factor=None, size=None, mode="nearest",
                                recompute_scale_factor=None, data_format="NCHW"):
    """Gradient of :func:`upsample_nearest2d`: grad_output (N, C, H_out, W_out) -> grad_input (N, C, H, W)."""
    return _upsample_backward(2, "upsample_nearest2d_backward", grad_output, input_size_or_input, scale_factor, size,
                              mode, recompute_scale_factor, data_format)


def upsample_nearest3d_backward(grad_output, input_size_or_input, scale_factor=None, size=None, mode="nearest",
                                recompute_scale_factor=None, data_format="NCDHW"):
    """Gradient of :func:`upsample_nearest3d`: (N, C, D_out, H_out, W_out) -> grad_input (N, C, D, H, W)."""
    return _upsample_backward(3, "upsample_nearest3d_backward", grad_output, input_size_or_input, scale_factor, size,
                              mode, recompute_scale_factor, data_format)


for _f in (upsample_nearest1d_backward, upsample_nearest2d_backward, upsample_nearest3d_backward):
    _f.__doc__ += _UP_BWD_DOC


# ------------------------------------------------------------------------------------------------
# max unpooling


def unpool_output_size(in_sp, nd, kernel_size, stride, padding, output_size, op, cl=False):
    """PyTorch's rule: default (in - 1) * stride - 2 * padding + kernel; a given output_size must lie
    strictly between default - stride and default + stride."""
    k = ntuple(kernel_size, nd, "kernel_size", op, minimum=1)
    s = k if stride is None else ntuple(stride, nd, "stride", op, minimum=1)
    p = ntuple(padding, nd, "padding", op, minimum=0)
    for i in range(nd):
        if 2 * p[i] > k[i]:
            raise ValueError(f"{op}: expected padding at most half the kernel size, got padding {p} for kernel {k}")
    default = check_int64([(in_sp[i] - 1) * s[i] - 2 * p[i] + k[i] for i in range(nd)],
                          "the output size (input - 1) * stride - 2 * padding + kernel_size", op)
    if output_size is None:
        out = default
    else:
        got = sizes(output_size, nd, "output_size", op, cl)
        for i in range(nd):
            if not default[i] - s[i] < got[i] < default[i] + s[i]:
                raise ValueError(f"{op}: expected output_size between {tuple(d - st + 1 for d, st in zip(default, s))} "
                                 f"and {tuple(d + st - 1 for d, st in zip(default, s))}, got {tuple(got)}")
        out = list(got)
    if any(o < 1 for o in out):
        raise ValueError(f"{op}: expected a positive output size, got {tuple(out)} from input size {tuple(in_sp)}, "
                         f"kernel {k}, stride {s}, padding {p}")
    return list(out)


def _max_unpool(nd, op, input, indices, kernel_size, stride, padding, output_size, data_format):
    cl = channels_last(data_format, nd, op)
    x, ix = prepare(input, op, "input"), prepare(indices, op, "indices")
    in_sp = spatial_sizes(x, nd, cl) or (1,) * nd  # the core refuses an input of the wrong rank
    out = unpool_output_size(in_sp, nd, kernel_size, stride, padding, output_size, op, cl)
    return wrap(_C.max_unpool(op, x, ix, nd, cl, out), input)


def _max_unpool_backward(nd, op, grad_output, indices, kernel_size, stride, padding, output_size, data_format):
    cl = channels_last(data_format, nd, op)
    dy, ix = prepare(grad_output, op, "grad_output"), prepare(indices, op, "indices")
    # The output size the forward arguments describe must be grad_output's; the core checks the
    # ranks, so the comparison only runs on arrays of the right rank.
    in_sp, got = spatial_sizes(ix, nd, cl), spatial_sizes(dy, nd, cl)
    out = unpool_output_size(in_sp or (1,) * nd, nd, kernel_size, stride, padding, output_size, op, cl)
    if in_sp is not None and got is not None and tuple(out) != got:
        raise ValueError(f"{op}: expected grad_output with spatial size {tuple(out)}, got {got}")
    return wrap(_C.max_unpool_backward(op, dy, ix, nd, cl), grad_output)


_UNPOOL_DOC = """
    indices: int64, the shape of input, flat positions inside one (n, c) plane of the output
    (h * W_out + w in 2-D), as max_pool*d(return_indices=True) returns them. Output size: by default
    (in - 1) * stride - 2 * padding + kernel_size per dimension (stride defaults to kernel_size);
    output_size (nd ints, or a full shape) may pick any size strictly within stride of that.
    Positions no index names are zero; when two inputs name the same position, the later one in
    memory order wins. An index outside the output plane raises ValueError (nothing is written
    out of bounds). data_format: channels first (default) or channels last."""


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None, data_format="NCW"):
    """Max unpooling of (N, C, L) with indices (N, C, L) -> (N, C, L_out)."""
    return _max_unpool(1, "max_unpool1d", input, indices, kernel_size, stride, padding, output_size, data_format)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None, data_format="NCHW"):
    """Max unpooling of (N, C, H, W) with indices (N, C, H, W) -> (N, C, H_out, W_out)."""
    return _max_unpool(2, "max_unpool2d", input, indices, kernel_size, stride, padding, output_size, data_format)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None, data_format="NCDHW"):
    """Max unpooling of (N, C, D, H, W) with indices of that shape -> (N, C, D_out, H_out, W_out)."""
    return _max_unpool(3, "max_unpool3d", input, indices, kernel_size, stride, padding, output_size, data_format)


for _f in (max_unpool1d, max_unpool2d, max_unpool3d):
    _f.__doc__ += _UNPOOL_DOC


def max_unpool1d_backward(grad_output, indices, kernel_size, stride=None, padding=0, output_size=None,
                          data_format="NCW"):
    """Gradient of :func:`max_unpool1d`: grad_input (N, C, L) = grad_output at the indices (a gather)."""
    return _max_unpool_backward(1, "max_unpool1d_backward", grad_output, indices, kernel_size, stride, padding,
                                output_size, data_format)


def max_unpool2d_backward(grad_output, indices, kernel_size, stride=None, padding=0, output_size=None,
                          data_format="NCHW"):
    """Gradient of :func:`max_unpool2d`: grad_output (N, C, H_out, W_out), indices (N, C, H, W) ->
    grad_input (N, C, H, W) with grad_input[n, c, i] = grad_output[n, c].flat[indices[n, c, i]] (a gather;
    deterministic). The other arguments are the forward's; grad_output must have its output size.
    With duplicate indices this is the adjoint of a scatter-add, not of "last one wins"."""
    return _max_unpool_backward(2, "max_unpool2d_backward", grad_output, indices, kernel_size, stride, padding,
                                output_size, data_format)


def max_unpool3d_backward(grad_output, indices, kernel_size, stride=None, padding=0, output_size=None,
                          data_format="NCDHW"):
    """Gradient of :func:`max_unpool3d`: grad_input (N, C, D, H, W) = grad_output at the indices (a gather)."""
    return _max_unpool_backward(3, "max_unpool3d_backward", grad_output, indices, kernel_size, stride, padding,
                                output_size, data_format)


# ------------------------------------------------------------------------------------------------
# bed of nails


def bed_of_nails_unpool2d(input, scale, data_format="NCHW"):
    """Bed-of-nails unpooling: (N, C, H, W) -> (N, C, H * sh, W * sw) with
    output[n, c, h * sh, w * sw] = input[n, c, h, w] and zeros elsewhere (the value sits at the
    top-left corner of each sh x sw cell). scale: an int or (sh, sw), each >= 1."""
    op = "bed_of_nails_unpool2d"
    cl = channels_last(data_format, 2, op)
    x = prepare(input, op, "input")
    sc = ntuple(scale, 2, "scale", op, minimum=1)
    return wrap(_C.bed_of_nails(op, x, 2, cl, list(sc)), input)


def bed_of_nails_unpool2d_backward(grad_output, scale, data_format="NCHW"):
    """Gradient of :func:`bed_of_nails_unpool2d`: grad_output (N, C, H * sh, W * sw) ->
    grad_input (N, C, H, W) = grad_output[:, :, ::sh, ::sw]."""
    op = "bed_of_nails_unpool2d_backward"
    cl = channels_last(data_format, 2, op)
    dy = prepare(grad_output, op, "grad_output")
    sc = ntuple(scale, 2, "scale", op, minimum=1)
    return wrap(_C.bed_of_nails_backward(op, dy, 2, cl, list(sc)), grad_output)


UNPOOL_FUNCTIONS = [f"upsample_nearest{nd}d{b}" for nd in (1, 2, 3) for b in ("", "_backward")] + [
    f"max_unpool{nd}d{b}" for nd in (1, 2, 3) for b in ("", "_backward")] + [
    "bed_of_nails_unpool2d", "bed_of_nails_unpool2d_backward"]


def _with_stream_argument():
    """Every entry point takes ``stream=`` for CUDA arrays (see cnnops.cuda.streamable)."""
    from .cuda import streamable

    g = globals()
    for name in UNPOOL_FUNCTIONS:
        g[name] = streamable(g[name])


_with_stream_argument()
