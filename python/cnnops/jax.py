"""JAX adapter: cnnops ops usable under ``jax.jit``, ``jax.grad`` and ``jax.vmap``.

Each op is a ``jax.custom_vjp`` whose forward and backward call the cnnops kernels through
``jax.pure_callback`` (host callbacks on the arrays' values; this build's bridge, also reported by
``python -m cnnops info`` as ``jax_bridge``). Shapes are computed in Python, so the functions
trace; under ``vmap`` the callback runs once per mapped element. Layouts are cnnops' (channels
first, ``data_format=`` for pooling), dtypes float32 and float64 (the latter needs
``jax.config.update("jax_enable_x64", True)``).

Functions: ``conv1d/2d/3d``, ``conv_transpose1d/2d/3d``, ``max_pool1d/2d/3d``, ``avg_pool1d/2d/3d``,
``adaptive_avg_pool2d``, ``upsample_nearest2d`` and the IoU losses ``giou_loss``, ``diou_loss``,
``ciou_loss``, ``iou_loss``, with the arguments of the cnnops functions of the same names."""
from __future__ import annotations

import functools

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError as e:  # pragma: no cover - exercised only without jax
    raise ImportError("cnnops.jax needs JAX: pip install 'cnnops[jax]'") from e

import cnnops

from ._args import resolve_padding
from .pool import pool_output_size

BRIDGE = "pure_callback"


def _call(fn, shapes, *args):
    """fn(*numpy arrays) on the host, as a JAX value of `shapes` (a ShapeDtypeStruct or a tuple)."""
    single = not isinstance(shapes, tuple)

    def host(*a):
        out = fn(*(np.asarray(v) for v in a))
        if single:
            return np.asarray(out, dtype=shapes.dtype)
        return tuple(np.asarray(o, dtype=s.dtype) for o, s in zip(out, shapes))

    return jax.pure_callback(host, shapes, *args, vmap_method="sequential")


def _sds(shape, dtype):
    return jax.ShapeDtypeStruct(tuple(int(s) for s in shape), dtype)


def _tuple(v, nd):
    return (int(v),) * nd if isinstance(v, (int, np.integer)) else tuple(int(e) for e in v)


# ---- convolution -----------------------------------------------------------------------------------

@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6, 7, 8))
def _conv(x, w, b, nd, stride, pads, dilation, groups, algo):
    return _conv_fwd(x, w, b, nd, stride, pads, dilation, groups, algo)[0]


def _conv_fwd(x, w, b, nd, stride, pads, dilation, groups, algo):
    sp = [(x.shape[2 + i] + pads[2 * i] + pads[2 * i + 1] - dilation[i] * (w.shape[2 + i] - 1) - 1) // stride[i] + 1
          for i in range(nd)]
    f = getattr(cnnops, f"conv{nd}d")
    y = _call(lambda x, w, b: f(x, w, b, stride, list(pads), dilation, groups, algo=algo),
              _sds((x.shape[0], w.shape[0], *sp), x.dtype), x, w, b)
    return y, (x, w)


def _conv_bwd(nd, stride, pads, dilation, groups, algo, res, g):
    x, w = res
    f = getattr(cnnops, f"conv{nd}d_backward")
    gi, gw, gb = _call(lambda g, x, w: f(g, x, w, stride, list(pads), dilation, groups, algo=algo),
                       (_sds(x.shape, x.dtype), _sds(w.shape, w.dtype), _sds((w.shape[0],), w.dtype)), g, x, w)
    return gi, gw, gb


_conv.defvjp(_conv_fwd, _conv_bwd)


def _conv_entry(nd, x, weight, bias, stride, padding, dilation, groups, algo):
    x, weight = jnp.asarray(x), jnp.asarray(weight)
    s, d = _tuple(stride, nd), _tuple(dilation, nd)
    pads = tuple(resolve_padding(padding, x.shape[2:], weight.shape[2:], s, d, f"cnnops.jax.conv{nd}d"))
    b = jnp.zeros((weight.shape[0],), x.dtype) if bias is None else jnp.asarray(bias)
    return _conv(x, weight, b, nd, s, pads, d, int(groups), algo)


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    """(N, C, L) -> (N, K, L_out); as :func:`cnnops.conv1d`, differentiable."""
    return _conv_entry(1, x, weight, bias, stride, padding, dilation, groups, algo)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    """(N, C, H, W) -> (N, K, P, Q); as :func:`cnnops.conv2d`, differentiable."""
    return _conv_entry(2, x, weight, bias, stride, padding, dilation, groups, algo)


def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    return _conv_entry(3, x, weight, bias, stride, padding, dilation, groups, algo)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6, 7, 8, 9))
def _convt(x, w, b, nd, stride, padding, output_padding, groups, dilation, algo):
    return _convt_fwd(x, w, b, nd, stride, padding, output_padding, groups, dilation, algo)[0]


def _convt_fwd(x, w, b, nd, stride, padding, output_padding, groups, dilation, algo):
    sp = [(x.shape[2 + i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (w.shape[2 + i] - 1) + output_padding[i] + 1
          for i in range(nd)]
    f = getattr(cnnops, f"conv_transpose{nd}d")
    y = _call(lambda x, w, b: f(x, w, b, stride, padding, output_padding, groups, dilation, algo=algo),
              _sds((x.shape[0], w.shape[1] * groups, *sp), x.dtype), x, w, b)
    return y, (x, w)


def _convt_bwd(nd, stride, padding, output_padding, groups, dilation, algo, res, g):
    x, w = res
    f = getattr(cnnops, f"conv_transpose{nd}d_backward")
    return _call(lambda g, x, w: f(g, x, w, stride, padding, output_padding, groups, dilation, algo=algo),
                 (_sds(x.shape, x.dtype), _sds(w.shape, w.dtype), _sds((w.shape[1] * groups,), w.dtype)), g, x, w)


_convt.defvjp(_convt_fwd, _convt_bwd)


def _convt_entry(nd, x, weight, bias, stride, padding, output_padding, groups, dilation, algo):
    x, weight = jnp.asarray(x), jnp.asarray(weight)
    b = jnp.zeros((weight.shape[1] * groups,), x.dtype) if bias is None else jnp.asarray(bias)
    return _convt(x, weight, b, nd, _tuple(stride, nd), _tuple(padding, nd), _tuple(output_padding, nd), int(groups),
                  _tuple(dilation, nd), algo)


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, algo="auto"):
    return _convt_entry(1, x, weight, bias, stride, padding, output_padding, groups, dilation, algo)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, algo="auto"):
    """(N, C, H, W) -> (N, K, H_out, W_out); as :func:`cnnops.conv_transpose2d`, differentiable."""
    return _convt_entry(2, x, weight, bias, stride, padding, output_padding, groups, dilation, algo)


def conv_transpose3d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, algo="auto"):
    return _convt_entry(3, x, weight, bias, stride, padding, output_padding, groups, dilation, algo)


# ---- pooling ---------------------------------------------------------------------------------------

_FMT = {1: ("NCW", "NWC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}


def _cl(data_format, nd):
    fmt = data_format.upper() if isinstance(data_format, str) else data_format
    if fmt in ("CHANNELS_LAST", _FMT[nd][1]):
        return True
    if fmt in ("CHANNELS_FIRST", _FMT[nd][0]):
        return False
    raise ValueError(f"cnnops.jax: expected data_format {_FMT[nd][0]!r} or {_FMT[nd][1]!r}, got {data_format!r}")


def _pool_shape(x_shape, nd, cl, k, s, pads, d, ceil_mode):
    sp = x_shape[1:1 + nd] if cl else x_shape[2:]
    out = [pool_output_size(sp[i], k[i], s[i], pads[2 * i], pads[2 * i + 1], d[i], ceil_mode) for i in range(nd)]
    return (x_shape[0], *out, x_shape[-1]) if cl else (x_shape[0], x_shape[1], *out)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4, 5, 6, 7))
def _max_pool(x, nd, k, s, pads, d, ceil_mode, fmt):
    return _max_pool_fwd(x, nd, k, s, pads, d, ceil_mode, fmt)[0]


def _max_pool_fwd(x, nd, k, s, pads, d, ceil_mode, fmt):
    shape = _pool_shape(x.shape, nd, fmt == _FMT[nd][1], k, s, pads, d, ceil_mode)
    f = getattr(cnnops, f"max_pool{nd}d")
    y, idx = _call(lambda x: f(x, k, s, list(pads), d, ceil_mode, True, data_format=fmt),
                   (_sds(shape, x.dtype), _sds(shape, np.int64 if jax.config.jax_enable_x64 else np.int32)), x)
    return y, (x, idx)


def _max_pool_bwd(nd, k, s, pads, d, ceil_mode, fmt, res, g):
    x, idx = res
    f = getattr(cnnops, f"max_pool{nd}d_backward")
    return (_call(lambda g, x, i: f(g, x, i.astype(np.int64), k, s, list(pads), d, ceil_mode, data_format=fmt),
                  _sds(x.shape, x.dtype), g, x, idx),)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4, 5, 6, 7))
def _avg_pool(x, nd, k, s, pads, ceil_mode, count_include_pad, fmt):
    return _avg_pool_fwd(x, nd, k, s, pads, ceil_mode, count_include_pad, fmt)[0]


def _avg_pool_fwd(x, nd, k, s, pads, ceil_mode, count_include_pad, fmt):
    shape = _pool_shape(x.shape, nd, fmt == _FMT[nd][1], k, s, pads, (1,) * nd, ceil_mode)
    f = getattr(cnnops, f"avg_pool{nd}d")
    return _call(lambda x: f(x, k, s, list(pads), ceil_mode, count_include_pad, data_format=fmt),
                 _sds(shape, x.dtype), x), x


def _avg_pool_bwd(nd, k, s, pads, ceil_mode, count_include_pad, fmt, x, g):
    f = getattr(cnnops, f"avg_pool{nd}d_backward")
    return (_call(lambda g, x: f(g, x, k, s, list(pads), ceil_mode, count_include_pad, data_format=fmt),
                  _sds(x.shape, x.dtype), g, x),)


_avg_pool.defvjp(_avg_pool_fwd, _avg_pool_bwd)


def _window(nd, x, kernel_size, stride, padding, dilation, data_format, fn):
    cl = _cl(data_format, nd)
    k = _tuple(kernel_size, nd)
    s = k if stride is None else _tuple(stride, nd)
    d = _tuple(dilation, nd)
    sp = x.shape[1:1 + nd] if cl else x.shape[2:]
    pads = tuple(resolve_padding(padding, sp, k, s, d, f"cnnops.jax.{fn}", allowed=("SAME", "VALID")))
    return k, s, pads, d, _FMT[nd][int(cl)]


def _max_entry(nd, x, kernel_size, stride, padding, dilation, ceil_mode, data_format):
    x = jnp.asarray(x)
    k, s, pads, d, fmt = _window(nd, x, kernel_size, stride, padding, dilation, data_format, f"max_pool{nd}d")
    return _max_pool(x, nd, k, s, pads, d, bool(ceil_mode), fmt)


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, data_format="NCW"):
    return _max_entry(1, x, kernel_size, stride, padding, dilation, ceil_mode, data_format)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, data_format="NCHW"):
    """As :func:`cnnops.max_pool2d` (values only), differentiable."""
    return _max_entry(2, x, kernel_size, stride, padding, dilation, ceil_mode, data_format)


def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, data_format="NCDHW"):
    return _max_entry(3, x, kernel_size, stride, padding, dilation, ceil_mode, data_format)


def _avg_entry(nd, x, kernel_size, stride, padding, ceil_mode, count_include_pad, data_format):
    x = jnp.asarray(x)
    k, s, pads, _, fmt = _window(nd, x, kernel_size, stride, padding, 1, data_format, f"avg_pool{nd}d")
    return _avg_pool(x, nd, k, s, pads, bool(ceil_mode), bool(count_include_pad), fmt)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, data_format="NCW"):
    return _avg_entry(1, x, kernel_size, stride, padding, ceil_mode, count_include_pad, data_format)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, data_format="NCHW"):
    """As :func:`cnnops.avg_pool2d`, differentiable."""
    return _avg_entry(2, x, kernel_size, stride, padding, ceil_mode, count_include_pad, data_format)


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, data_format="NCDHW"):
    return _avg_entry(3, x, kernel_size, stride, padding, ceil_mode, count_include_pad, data_format)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _adaptive_avg2d(x, out):
    return _adaptive_avg2d_fwd(x, out)[0]


def _adaptive_avg2d_fwd(x, out):
    return _call(lambda x: cnnops.adaptive_avg_pool2d(x, out), _sds((*x.shape[:2], *out), x.dtype), x), x


def _adaptive_avg2d_bwd(out, x, g):
    return (_call(lambda g, x: cnnops.adaptive_avg_pool2d_backward(g, x), _sds(x.shape, x.dtype), g, x),)


_adaptive_avg2d.defvjp(_adaptive_avg2d_fwd, _adaptive_avg2d_bwd)


def adaptive_avg_pool2d(x, output_size):
    """(N, C, H, W) -> (N, C, *output_size), PyTorch's adaptive windows, differentiable."""
    return _adaptive_avg2d(jnp.asarray(x), _tuple(output_size, 2))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _upsample2d(x, out):
    return _upsample2d_fwd(x, out)[0]


def _upsample2d_fwd(x, out):
    return _call(lambda x: cnnops.upsample_nearest2d(x, size=out), _sds((*x.shape[:2], *out), x.dtype), x), x


def _upsample2d_bwd(out, x, g):
    return (_call(lambda g, x: cnnops.upsample_nearest2d_backward(g, x, size=out), _sds(x.shape, x.dtype), g, x),)


_upsample2d.defvjp(_upsample2d_fwd, _upsample2d_bwd)


def upsample_nearest2d(x, size):
    """(N, C, H, W) -> (N, C, *size), PyTorch's "nearest" index rule, differentiable."""
    return _upsample2d(jnp.asarray(x), _tuple(size, 2))


# ---- IoU-family losses -----------------------------------------------------------------------------

@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 3, 4))
def _box_loss(kind, b1, b2, reduction, eps):
    return _box_loss_fwd(kind, b1, b2, reduction, eps)[0]


def _box_loss_fwd(kind, b1, b2, reduction, eps):
    shape = b1.shape[:-1] if reduction == "none" else ()
    f = getattr(cnnops, f"{kind}_loss")
    return _call(lambda a, b: f(a, b, reduction, eps), _sds(shape, b1.dtype), b1, b2), (b1, b2)


def _box_loss_bwd(kind, reduction, eps, res, g):
    b1, b2 = res
    f = getattr(cnnops, f"{kind}_loss_backward")
    return _call(lambda g, a, b: f(g, a, b, reduction, eps), (_sds(b1.shape, b1.dtype), _sds(b2.shape, b2.dtype)),
                 g, b1, b2)


_box_loss.defvjp(_box_loss_fwd, _box_loss_bwd)


def iou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    return _box_loss("iou", jnp.asarray(boxes1), jnp.asarray(boxes2), reduction, float(eps))


def giou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    """1 - GIoU of (N, 4) xyxy box pairs, as :func:`cnnops.giou_loss`, differentiable."""
    return _box_loss("giou", jnp.asarray(boxes1), jnp.asarray(boxes2), reduction, float(eps))


def diou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    return _box_loss("diou", jnp.asarray(boxes1), jnp.asarray(boxes2), reduction, float(eps))


def ciou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    return _box_loss("ciou", jnp.asarray(boxes1), jnp.asarray(boxes2), reduction, float(eps))
