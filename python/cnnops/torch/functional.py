"""``torch.nn.functional``-compatible functions running the cnnops kernels with autograd.

Same names, arguments and defaults as ``torch.nn.functional`` (plus cnnops' extras as keyword
arguments: ``algo=`` for convolutions, TensorFlow's ``"SAME"``/``"VALID"`` padding for any stride,
per-side padding). The results carry ``grad_fn``: ``.backward()`` runs the cnnops backward kernels.
Each call resolves its spellings into explicit values and calls one ``torch.ops.cnnops`` operator
(see ``cnnops.torch._ops``), so the functions trace under ``torch.compile(fullgraph=True)``.

Channels-last tensors: the pooling, unpooling and upsampling kernels read NHWC directly, so a
``torch.channels_last`` input gives a channels-last output without a layout copy; convolutions
take a contiguous copy and return NCHW."""
from __future__ import annotations

import math

import torch

from cnnops._args import resolve_padding
from cnnops.unpool import unpool_output_size

from . import _ops


def _tuple(v, nd, name, fn):
    if isinstance(v, int) and not isinstance(v, bool):
        return [v] * nd
    if isinstance(v, (tuple, list)) and len(v) == nd and all(isinstance(e, int) and not isinstance(e, bool) for e in v):
        return [int(e) for e in v]
    if isinstance(v, (tuple, list)) and len(v) == 1 and isinstance(v[0], int):
        return [int(v[0])] * nd
    raise TypeError(f"cnnops.torch.{fn}: expected {name} as an int or {nd} ints, got {v!r}")


def _check_tensor(x, nd, fn, name="input"):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"cnnops.torch.{fn}: expected {name} as a torch.Tensor, got {type(x).__name__}")
    if x.dim() != nd + 2:
        raise ValueError(f"cnnops.torch.{fn}: expected {name} with {nd + 2} dimensions (N, C, *spatial), "
                         f"got shape {tuple(x.shape)}")


def _channels_last(x) -> bool:
    """Whether the pooling kernels should read x as NHWC / NDHWC (its memory is channels-last and it
    is not also plain contiguous, as tensors with one channel or unit sizes are)."""
    if x.dim() == 4:
        return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    if x.dim() == 5:
        return x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous()
    return False


# ---- convolution -----------------------------------------------------------------------------------

def _conv(nd, fn, input, weight, bias, stride, padding, dilation, groups, padding_mode, algo):
    _check_tensor(input, nd, fn)
    s, d = _tuple(stride, nd, "stride", fn), _tuple(dilation, nd, "dilation", fn)
    pads = resolve_padding(padding, tuple(input.shape[2:]), tuple(weight.shape[2:]), s, d, f"cnnops.torch.{fn}")
    return _ops.conv(input, weight, bias, s, pads, d, int(groups), padding_mode, algo)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, padding_mode="zeros",
           algo="auto"):
    return _conv(1, "conv1d", input, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, padding_mode="zeros",
           algo="auto"):
    """As ``torch.nn.functional.conv2d``; padding may also be 2 ints per dimension (before, after),
    "valid", "same" (TensorFlow's rule for any stride) or "full"; padding_mode "zeros", "reflect",
    "replicate" or "circular" without a padded copy; algo as :func:`cnnops.conv2d`."""
    return _conv(2, "conv2d", input, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, padding_mode="zeros",
           algo="auto"):
    return _conv(3, "conv3d", input, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


def _conv_transpose(nd, fn, input, weight, bias, stride, padding, output_padding, groups, dilation, algo):
    _check_tensor(input, nd, fn)
    return _ops.conv_transpose(input, weight, bias, _tuple(stride, nd, "stride", fn),
                               _tuple(padding, nd, "padding", fn), _tuple(output_padding, nd, "output_padding", fn),
                               int(groups), _tuple(dilation, nd, "dilation", fn), algo)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     algo="auto"):
    return _conv_transpose(1, "conv_transpose1d", input, weight, bias, stride, padding, output_padding, groups,
                           dilation, algo)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     algo="auto"):
    return _conv_transpose(2, "conv_transpose2d", input, weight, bias, stride, padding, output_padding, groups,
                           dilation, algo)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     algo="auto"):
    return _conv_transpose(3, "conv_transpose3d", input, weight, bias, stride, padding, output_padding, groups,
                           dilation, algo)


# ---- pooling ---------------------------------------------------------------------------------------

def _window(nd, fn, input, kernel_size, stride, padding, dilation, allowed=("SAME", "VALID")):
    _check_tensor(input, nd, fn)
    k = _tuple(kernel_size, nd, "kernel_size", fn)
    s = k if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) else \
        _tuple(stride, nd, "stride", fn)
    d = _tuple(dilation, nd, "dilation", fn)
    pads = resolve_padding(padding, tuple(input.shape[2:]), k, s, d, f"cnnops.torch.{fn}", allowed=allowed)
    return k, s, pads, d


def _max_pool(nd, fn, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    k, s, pads, d = _window(nd, fn, input, kernel_size, stride, padding, dilation)
    y, idx = _ops.pool(input, "max", k, s, pads, d, bool(ceil_mode), True, 0, 2.0, _channels_last(input))
    return (y, idx) if return_indices else y


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_pool(1, "max_pool1d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_pool(2, "max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_pool(3, "max_pool3d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _avg_pool(nd, fn, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    k, s, pads, d = _window(nd, fn, input, kernel_size, stride, padding, 1)
    if divisor_override is not None and (not isinstance(divisor_override, int) or divisor_override <= 0):
        raise ValueError(f"cnnops.torch.{fn}: expected divisor_override as a positive int or None, "
                         f"got {divisor_override!r}")
    y, _ = _ops.pool(input, "avg", k, s, pads, d, bool(ceil_mode), bool(count_include_pad), divisor_override or 0,
                     2.0, _channels_last(input))
    return y


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return _avg_pool(1, "avg_pool1d", input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return _avg_pool(2, "avg_pool2d", input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return _avg_pool(3, "avg_pool3d", input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def _lp_pool(nd, fn, input, norm_type, kernel_size, stride, ceil_mode):
    k, s, pads, d = _window(nd, fn, input, kernel_size, stride, 0, 1)
    y, _ = _ops.pool(input, "lp", k, s, pads, d, bool(ceil_mode), True, 0, float(norm_type), _channels_last(input))
    return y


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool(1, "lp_pool1d", input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool(2, "lp_pool2d", input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool(3, "lp_pool3d", input, norm_type, kernel_size, stride, ceil_mode)


def _adaptive(nd, fn, kind, input, output_size, return_indices=False):
    _check_tensor(input, nd, fn)
    if isinstance(output_size, int) or output_size is None:
        output_size = (output_size,) * nd
    if not (isinstance(output_size, (tuple, list)) and len(output_size) == nd):
        raise TypeError(f"cnnops.torch.{fn}: expected output_size as an int or {nd} ints (None keeps that size), "
                        f"got {output_size!r}")
    out = [int(input.shape[2 + i]) if v is None else int(v) for i, v in enumerate(output_size)]
    y, idx = _ops.adaptive_pool(input, kind, out, _channels_last(input))
    return (y, idx) if return_indices else y


def adaptive_avg_pool1d(input, output_size):
    return _adaptive(1, "adaptive_avg_pool1d", "avg", input, output_size)


def adaptive_avg_pool2d(input, output_size):
    return _adaptive(2, "adaptive_avg_pool2d", "avg", input, output_size)


def adaptive_avg_pool3d(input, output_size):
    return _adaptive(3, "adaptive_avg_pool3d", "avg", input, output_size)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    return _adaptive(1, "adaptive_max_pool1d", "max", input, output_size, return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    return _adaptive(2, "adaptive_max_pool2d", "max", input, output_size, return_indices)


def adaptive_max_pool3d(input, output_size, return_indices=False):
    return _adaptive(3, "adaptive_max_pool3d", "max", input, output_size, return_indices)


def _fractional(nd, fn, input, kernel_size, output_size, output_ratio, return_indices, _random_samples):
    _check_tensor(input, nd, fn)
    k = _tuple(kernel_size, nd, "kernel_size", fn)
    if output_size is None:
        if output_ratio is None:
            raise ValueError(f"cnnops.torch.{fn}: expected output_size or output_ratio, got neither")
        r = [float(output_ratio)] * nd if isinstance(output_ratio, (int, float)) else [float(v) for v in output_ratio]
        out = [int(input.shape[2 + i] * r[i]) for i in range(nd)]
    else:
        out = _tuple(output_size, nd, "output_size", fn)
    if _random_samples is None:
        sdt = input.dtype if input.dtype in (torch.float32, torch.float64) else torch.float32
        _random_samples = torch.rand(input.shape[0], input.shape[1], nd, dtype=sdt, device=input.device)
    y, idx = _ops.fractional_max_pool(input, k, out, _random_samples, _channels_last(input))
    return (y, idx) if return_indices else y


def fractional_max_pool2d(input, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                          _random_samples=None):
    return _fractional(2, "fractional_max_pool2d", input, kernel_size, output_size, output_ratio, return_indices,
                       _random_samples)


def fractional_max_pool3d(input, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                          _random_samples=None):
    return _fractional(3, "fractional_max_pool3d", input, kernel_size, output_size, output_ratio, return_indices,
                       _random_samples)


# ---- unpooling and upsampling --------------------------------------------------------------------

def _max_unpool(nd, fn, input, indices, kernel_size, stride, padding, output_size):
    _check_tensor(input, nd, fn)
    k = _tuple(kernel_size, nd, "kernel_size", fn)
    s = k if stride is None else _tuple(stride, nd, "stride", fn)
    p = _tuple(padding, nd, "padding", fn)
    out = unpool_output_size(tuple(input.shape[2:]), nd, k, s, p, output_size, f"cnnops.torch.{fn}")
    return _ops.max_unpool(input, indices, k, s, p, list(out))


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool(1, "max_unpool1d", input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool(2, "max_unpool2d", input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool(3, "max_unpool3d", input, indices, kernel_size, stride, padding, output_size)


def upsample_nearest(input, size=None, scale_factor=None, mode="nearest", recompute_scale_factor=None):
    """``torch.nn.functional.interpolate`` for mode "nearest" and "nearest-exact" on (N, C, *sp)."""
    if not isinstance(input, torch.Tensor) or input.dim() not in (3, 4, 5):
        raise ValueError("cnnops.torch.upsample_nearest: expected input as a torch.Tensor with 3, 4 or 5 dimensions, "
                         f"got {getattr(input, 'shape', type(input).__name__)}")
    nd = input.dim() - 2
    if size is not None:
        size = [int(size)] * nd if isinstance(size, int) else [int(v) for v in size]
    if scale_factor is not None:
        scale_factor = [float(scale_factor)] * nd if isinstance(scale_factor, (int, float)) else \
            [float(v) for v in scale_factor]
        if not all(math.isfinite(v) for v in scale_factor):
            raise ValueError(f"cnnops.torch.upsample_nearest: expected finite scale factors, got {scale_factor}")
    return _ops.upsample_nearest(input, size, scale_factor, mode, bool(recompute_scale_factor),
                                 _channels_last(input))


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False):
    """``torch.nn.functional.interpolate`` for the nearest modes (the ones cnnops has kernels for)."""
    if mode not in ("nearest", "nearest-exact") or align_corners is not None or antialias:
        raise NotImplementedError(f"cnnops.torch.interpolate: only mode 'nearest' and 'nearest-exact' run on cnnops "
                                  f"kernels, got mode {mode!r}")
    return upsample_nearest(input, size, scale_factor, mode, recompute_scale_factor)


def bed_of_nails_unpool2d(input, scale):
    """(N, C, H, W) -> (N, C, H * sh, W * sw): each value at the top-left corner of its cell, zeros
    elsewhere (see :func:`cnnops.bed_of_nails_unpool2d`)."""
    _check_tensor(input, 2, "bed_of_nails_unpool2d")
    return _ops.bed_of_nails(input, _tuple(scale, 2, "scale", "bed_of_nails_unpool2d"), _channels_last(input))


def global_avg_pool2d(input):
    """(N, C, H, W) -> (N, C, 1, 1), the mean of each plane."""
    return _adaptive(2, "global_avg_pool2d", "avg", input, 1)


def global_max_pool2d(input, return_indices=False):
    """(N, C, H, W) -> (N, C, 1, 1), the maximum of each plane."""
    return _adaptive(2, "global_max_pool2d", "max", input, 1, return_indices)


# ---- IoU-family losses -----------------------------------------------------------------------------

def _loss(kind, boxes1, boxes2, reduction, eps):
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"cnnops.torch.{kind}_loss: expected reduction 'none', 'mean' or 'sum', got {reduction!r}")
    return _ops.box_loss(kind, boxes1, boxes2, reduction, float(eps))


def iou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    return _loss("iou", boxes1, boxes2, reduction, eps)


def giou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    return _loss("giou", boxes1, boxes2, reduction, eps)


def diou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    return _loss("diou", boxes1, boxes2, reduction, eps)


def ciou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    return _loss("ciou", boxes1, boxes2, reduction, eps)
