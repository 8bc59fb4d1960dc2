"""JAX adapter: cnnops ops usable under ``jax.jit``, ``jax.grad`` and ``jax.vmap``.

Each op is a ``jax.custom_vjp`` whose forward and backward are calls of the core's entry points
(the pybind11 functions of ``cnnops._C``). A call is described once, as the core function's name,
its arrays and its other arguments, and run through one of two bridges:

- ``"xla_ffi"``: typed XLA custom calls (``jax.ffi.ffi_call``) whose handlers are compiled into the
  extension against the FFI headers jaxlib ships (csrc/bindings/xla_ffi.cpp). The kernels read
  XLA's buffers in place and write their results straight into XLA's result buffers, inside the
  compiled program: no Python, no GIL, no copies. Built when jaxlib is installed at build time.
- ``"pure_callback"``: ``jax.pure_callback`` calling the same entry points on NumPy views of the
  values; any build, and the bridge used when JAX's default backend is not the CPU (the handlers
  are registered for XLA's CPU platform).

``BRIDGE`` (also ``python -m cnnops info``'s ``jax_bridge``) says which one this build uses;
``set_bridge`` chooses for the calls traced afterwards. Argument parsing and output shapes are
cnnops' own (python/cnnops/conv.py, pool.py, ...), run at trace time, so errors in the arguments
and most shape errors are raised while tracing, naming the op. Layouts are cnnops' (channels
first; ``data_format=`` for pooling and upsampling), dtypes float32 and float64 (the latter needs
``jax.config.update("jax_enable_x64", True)``).

Functions: ``conv1d/2d/3d``, ``conv_transpose1d/2d/3d``, ``max_pool*``, ``avg_pool*``, ``lp_pool*``,
``adaptive_avg_pool*``, ``adaptive_max_pool*``, ``upsample_nearest1d/2d/3d`` and the IoU losses
``iou_loss``, ``giou_loss``, ``diou_loss``, ``ciou_loss``, with the arguments of the cnnops
functions of the same names (values only: no ``return_indices``). Under ``vmap``, pooling,
upsampling and element-wise losses run once over the whole mapped batch (its axes join the op's
batch axis); convolutions and reduced losses run once per mapped element."""
from __future__ import annotations

import functools
import os

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError as e:  # pragma: no cover - exercised only without jax
    raise ImportError("cnnops.jax needs JAX: pip install 'cnnops[jax]'") from e

from . import _C
from ._args import channels_last, shape_of, sizes
from .boxes import check_eps, check_offset, check_reduction
from .conv import _conv_args
from .conv_transpose import _parse as _conv_transpose_args
from .pool import _divisor, _norm, _output_size_arg, _window_args, pool_output_size
from .unpool import _upsample_plan

BRIDGES = ("xla_ffi", "pure_callback")


def _register_ffi_targets():
    """Registers the build's XLA FFI handlers for the CPU platform; the reason when there are none."""
    targets = getattr(_C, "xla_ffi_targets", None)
    if not targets:
        return "this build has no XLA FFI handlers (jaxlib was not installed when cnnops was built)"
    if not hasattr(jax, "ffi"):
        return "this JAX has no jax.ffi module"
    try:
        for name, capsule in targets.items():
            jax.ffi.register_ffi_target(f"cnnops_{name}", capsule, platform="cpu")
        # one tiny call: a jaxlib installed after the build may speak another FFI API version
        x = np.ones((1, 1, 1), np.float32)
        probe = jax.ffi.ffi_call("cnnops_pool", jax.ShapeDtypeStruct(x.shape, x.dtype))(
            x, op="cnnops.jax", kind="max", nd=np.int64(1), channels_last=np.int64(0), kernel=np.ones(1, np.int64),
            stride=np.ones(1, np.int64), pad=np.zeros(2, np.int64), dilation=np.ones(1, np.int64),
            ceil_mode=np.int64(0), count_include_pad=np.int64(1), divisor_override=np.int64(0),
            norm_type=np.float64(2.0), return_indices=np.int64(0), tf_indices=np.int64(0))
        if not np.array_equal(np.asarray(probe), x):
            return "the XLA FFI handlers' probe call returned a wrong value"
    except Exception as e:  # an XLA that cannot run the handlers (API version, platform)
        return f"the XLA FFI handlers cannot run here: {type(e).__name__}: {e}"
    return None


FFI_UNAVAILABLE = _register_ffi_targets()
BRIDGE = "pure_callback" if FFI_UNAVAILABLE else "xla_ffi"
if os.environ.get("CNNOPS_JAX_BRIDGE") in BRIDGES and not (os.environ["CNNOPS_JAX_BRIDGE"] == "xla_ffi"
                                                           and FFI_UNAVAILABLE):
    BRIDGE = os.environ["CNNOPS_JAX_BRIDGE"]


def set_bridge(name: str) -> None:
    """Chooses the bridge for the calls traced from now on ("xla_ffi" or "pure_callback"); functions
    already jitted keep the one they were traced with. The environment variable CNNOPS_JAX_BRIDGE
    sets the initial choice."""
    global BRIDGE
    if name not in BRIDGES:
        raise ValueError(f"cnnops.jax.set_bridge: expected one of {BRIDGES}, got {name!r}")
    if name == "xla_ffi" and FFI_UNAVAILABLE:
        raise RuntimeError(f"cnnops.jax.set_bridge: the XLA FFI bridge is not available: {FFI_UNAVAILABLE}")
    BRIDGE = name


# ---- one core call, through either bridge ------------------------------------------------------------

def _ffi_attr(v):
    """An argument as an XLA attribute: int64/float64 scalars and arrays, strings; flags as 0/1."""
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_, int, np.integer)):
        return np.int64(v)
    if isinstance(v, (float, np.floating)):
        return np.float64(v)
    floats = any(isinstance(e, (float, np.floating)) for e in v)
    return np.asarray([float(e) if floats else int(e) for e in v], np.float64 if floats else np.int64)


def _core(target, arrays, results, attrs, fold=None):
    """_C.<target>(**arrays, **attrs) as a JAX value shaped like `results` (one ShapeDtypeStruct or a
    tuple). `arrays`: (argument name, JAX array or None) in the core function's order, None only for
    trailing optional arrays; the core's None results (gradients nobody asked for) are skipped.

    `fold`: for ops whose batch axis can take jax.vmap's, the rank of each given array and then of
    each result for the op; vmapped calls then run once over the whole batch, the vmapped axes
    merged into the first (``vmap_method="broadcast_all"``). Without it, once per element."""
    given = [a for _, a in arrays if a is not None]
    vmap_method = "broadcast_all" if fold else "sequential"
    if BRIDGE == "xla_ffi" and jax.default_backend() == "cpu":
        ffi_attrs = {k: _ffi_attr(v) for k, v in attrs.items() if not (isinstance(v, tuple) and len(v) == 0)}
        if fold:
            ffi_attrs["fold_ranks"] = np.asarray(fold, np.int64)
        return jax.ffi.ffi_call(f"cnnops_{target}", results, vmap_method=vmap_method)(*given, **ffi_attrs)
    names = [n for n, a in arrays if a is not None]
    absent = {n: None for n, a in arrays if a is None}
    fn = getattr(_C, target)
    single = not isinstance(results, tuple)

    def host(*values):
        values = [np.asarray(v) for v in values]
        lead = values[0].shape[:values[0].ndim - fold[0]] if fold else ()
        if lead:
            values = [v.reshape((-1,) + v.shape[len(lead) + 1:]) for v in values]
        out = fn(**dict(zip(names, values)), **absent, **attrs)
        outs = [o for o in (out if isinstance(out, tuple) else (out,)) if o is not None]
        outs = [np.asarray(o, dtype=s.dtype) for o, s in zip(outs, [results] if single else results)]
        if lead:
            outs = [o.reshape(lead + (-1,) + o.shape[1:]) for o in outs]
        return outs[0] if single else tuple(outs)

    return jax.pure_callback(host, results, *given, vmap_method=vmap_method)


def _sds(shape, dtype):
    return jax.ShapeDtypeStruct(tuple(int(s) for s in shape), dtype)


def _static(d):
    """Arguments as a hashable tuple (a custom_vjp's non-differentiable argument)."""
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in d.items())


def _floats(op, *arrays):
    """JAX arrays of one float dtype (float32 or float64), or a TypeError naming the op."""
    out = [jnp.asarray(a) for a in arrays]
    dt = out[0].dtype
    if dt not in (jnp.float32, jnp.float64) or any(a.dtype != dt for a in out):
        got = ", ".join(str(a.dtype) for a in out)
        raise TypeError(f"{op}: expected float32 or float64 arrays of one dtype, got {got}")
    return out


def _dummy(shape, dtype):
    """A zero-stride NumPy array of `shape`: lets the core check shapes at trace time."""
    return np.broadcast_to(np.zeros((), dtype), tuple(shape))


def _layout(op, nd, x, data_format):
    """(x as a float JAX array, channels-last flag, spatial sizes) of an (nd + 2)-dimensional input."""
    (x,) = _floats(op, x)
    cl = channels_last(data_format, nd, op)
    if x.ndim != nd + 2:
        raise ValueError(f"{op}: expected an input with {nd + 2} dimensions, got shape {shape_of(x)}")
    return x, cl, shape_of(x)[1:1 + nd] if cl else shape_of(x)[2:]


# ---- convolution -----------------------------------------------------------------------------------

@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _conv(x, w, b, a, out_shape):
    return _conv_fwd(x, w, b, a, out_shape)[0]


def _conv_fwd(x, w, b, a, out_shape):
    y = _core("conv", [("input", x), ("weight", w), ("bias", b)], _sds(out_shape, x.dtype), dict(a))
    return y, (x, w)


def _conv_bwd(a, out_shape, res, g):
    x, w = res
    return _core("conv_backward", [("grad_output", g), ("input", x), ("weight", w)],
                 (_sds(x.shape, x.dtype), _sds(w.shape, w.dtype), _sds((w.shape[0],), w.dtype)),
                 {**dict(a), "needs": (True, True, True)})


_conv.defvjp(_conv_fwd, _conv_bwd)


def _conv_entry(nd, x, weight, bias, stride, padding, dilation, groups, padding_mode, algo):
    op = f"cnnops.jax.conv{nd}d"
    x, weight = _floats(op, x, weight)
    stride, pads, dilation, groups = _conv_args(x, weight, nd, stride, padding, dilation, groups, padding_mode, algo,
                                                op)
    # the core checks ranks, channels, groups and sizes exactly as cnnops.conv*d does, on shapes only
    _C.conv_algo(op, _dummy(x.shape, x.dtype), _dummy(weight.shape, weight.dtype), nd, stride, pads, dilation, groups,
                 padding_mode, algo, "fp32")
    sp = [(x.shape[2 + i] + pads[2 * i] + pads[2 * i + 1] - dilation[i] * (weight.shape[2 + i] - 1) - 1) // stride[i]
          + 1 for i in range(nd)]
    b = jnp.zeros((weight.shape[0],), x.dtype) if bias is None else _floats(op, bias, x)[0]
    if b.shape != (weight.shape[0],):
        raise ValueError(f"{op}: expected bias of shape ({weight.shape[0]},), got {tuple(b.shape)}")
    a = dict(op=op, nd=nd, stride=stride, pad=pads, dilation=dilation, groups=groups, padding_mode=padding_mode,
             algo=algo, precision="fp32")
    return _conv(x, weight, b, _static(a), (x.shape[0], weight.shape[0], *sp))


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", algo="auto"):
    """(N, C, L) -> (N, K, L_out); as :func:`cnnops.conv1d`, differentiable."""
    return _conv_entry(1, x, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", algo="auto"):
    """(N, C, H, W) -> (N, K, P, Q); as :func:`cnnops.conv2d`, differentiable."""
    return _conv_entry(2, x, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", algo="auto"):
    """(N, C, D, H, W) -> (N, K, D_out, P, Q); as :func:`cnnops.conv3d`, differentiable."""
    return _conv_entry(3, x, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _conv_transpose(x, w, b, a, out_shape):
    return _conv_transpose_fwd(x, w, b, a, out_shape)[0]


def _conv_transpose_fwd(x, w, b, a, out_shape):
    y = _core("conv_transpose", [("input", x), ("weight", w), ("bias", b)], _sds(out_shape, x.dtype), dict(a))
    return y, (x, w)


def _conv_transpose_bwd(a, out_shape, res, g):
    x, w = res
    bwd = {k: v for k, v in a if k != "out_spatial"}
    return _core("conv_transpose_backward", [("grad_output", g), ("input", x), ("weight", w)],
                 (_sds(x.shape, x.dtype), _sds(w.shape, w.dtype), _sds((out_shape[1],), w.dtype)),
                 {**bwd, "needs": (True, True, True)})


_conv_transpose.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


def _conv_transpose_entry(nd, x, weight, bias, stride, padding, output_padding, groups, dilation, output_size, algo):
    op = f"cnnops.jax.conv_transpose{nd}d"
    x, weight = _floats(op, x, weight)
    if x.ndim != nd + 2 or weight.ndim != nd + 2:
        raise ValueError(f"{op}: expected input and weight with {nd + 2} dimensions, got shapes {shape_of(x)} and "
                         f"{shape_of(weight)}")
    size = None if output_size is None else list(sizes(output_size, nd, "the output size", op))
    stride, pads, dilation, groups, out = _conv_transpose_args(op, nd, x, weight, stride, padding, output_padding,
                                                               groups, dilation, size, algo)
    if groups < 1 or x.shape[1] != weight.shape[0] or weight.shape[0] % groups:
        raise ValueError(f"{op}: expected weight.shape[0] == input channels {x.shape[1]}, divisible by groups "
                         f"{groups}, got weight shape {shape_of(weight)}")
    k = weight.shape[1] * groups
    b = jnp.zeros((k,), x.dtype) if bias is None else _floats(op, bias, x)[0]
    if b.shape != (k,):
        raise ValueError(f"{op}: expected bias of shape ({k},), got {tuple(b.shape)}")
    a = dict(op=op, nd=nd, stride=stride, pad=pads, dilation=dilation, groups=groups, out_spatial=out, algo=algo,
             precision="fp32")
    return _conv_transpose(x, weight, b, _static(a), (x.shape[0], k, *out))


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     output_size=None, algo="auto"):
    """(N, C, L) -> (N, K, L_out); as :func:`cnnops.conv_transpose1d`, differentiable."""
    return _conv_transpose_entry(1, x, weight, bias, stride, padding, output_padding, groups, dilation, output_size,
                                 algo)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     output_size=None, algo="auto"):
    """(N, C, H, W) -> (N, K, H_out, W_out); as :func:`cnnops.conv_transpose2d`, differentiable."""
    return _conv_transpose_entry(2, x, weight, bias, stride, padding, output_padding, groups, dilation, output_size,
                                 algo)


def conv_transpose3d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     output_size=None, algo="auto"):
    """(N, C, D, H, W) -> (N, K, D_out, H_out, W_out); as :func:`cnnops.conv_transpose3d`, differentiable."""
    return _conv_transpose_entry(3, x, weight, bias, stride, padding, output_padding, groups, dilation, output_size,
                                 algo)


# ---- pooling ---------------------------------------------------------------------------------------

@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _pool(x, a, out_shape):
    return _pool_fwd(x, a, out_shape)[0]


def _pool_fwd(x, a, out_shape):
    r = len(out_shape)
    y = _core("pool", [("input", x)], _sds(out_shape, x.dtype), {**dict(a), "return_indices": False,
                                                                  "tf_indices": False}, fold=(r, r))
    return y, x


def _pool_bwd(a, out_shape, x, g):
    # max kinds: the core recomputes the argmax from the input (the forward's, by the same rule)
    r = x.ndim
    return (_core("pool_backward", [("grad_output", g), ("input", x), ("indices", None)], _sds(x.shape, x.dtype),
                  dict(a), fold=(r, r, r)),)


_pool.defvjp(_pool_fwd, _pool_bwd)


def _pool_entry(nd, name, kind, x, data_format, kernel_size=None, stride=None, padding=0, dilation=1,
                ceil_mode=False, count_include_pad=True, divisor_override=None, norm_type=2.0, output_size=None):
    op = f"cnnops.jax.{name}"
    x, cl, sp = _layout(op, nd, x, data_format)
    if output_size is not None:
        osz = _output_size_arg(x, nd, output_size, cl, op)
        k, s, pads, d = [], [], [], []
        out = list(osz)
    else:
        osz = []
        k, s, pads, d = _window_args(x, nd, kernel_size, stride, padding, dilation, cl, op)
        out = [pool_output_size(sp[i], k[i], s[i], pads[2 * i], pads[2 * i + 1], d[i], bool(ceil_mode))
               for i in range(nd)]
    if min(out) < 1:
        raise ValueError(f"{op}: expected a window that fits the padded input, got output size {tuple(out)} for input "
                         f"{tuple(sp)}")
    a = dict(op=op, kind=kind, nd=nd, channels_last=cl, kernel=k, stride=s, pad=pads, dilation=d,
             ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad),
             divisor_override=_divisor(divisor_override, op), norm_type=_norm(norm_type, op) if kind == "lp" else 2.0,
             output_size=osz)
    shape = (x.shape[0], *out, x.shape[-1]) if cl else (x.shape[0], x.shape[1], *out)
    return _pool(x, _static(a), shape)


_FMT = {1: ("NCW", "NWC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}


def _make_pool_functions():
    for nd in (1, 2, 3):
        first = _FMT[nd][0]

        def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, data_format=first, _nd=nd):
            return _pool_entry(_nd, f"max_pool{_nd}d", "max", x, data_format, kernel_size, stride, padding, dilation,
                               ceil_mode)

        def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                     divisor_override=None, data_format=first, _nd=nd):
            return _pool_entry(_nd, f"avg_pool{_nd}d", "avg", x, data_format, kernel_size, stride, padding, 1,
                               ceil_mode, count_include_pad, divisor_override)

        def lp_pool(x, norm_type, kernel_size, stride=None, ceil_mode=False, data_format=first, _nd=nd):
            return _pool_entry(_nd, f"lp_pool{_nd}d", "lp", x, data_format, kernel_size, stride, 0, 1, ceil_mode,
                               norm_type=norm_type)

        def adaptive_avg_pool(x, output_size, data_format=first, _nd=nd):
            return _pool_entry(_nd, f"adaptive_avg_pool{_nd}d", "avg", x, data_format, output_size=output_size)

        def adaptive_max_pool(x, output_size, data_format=first, _nd=nd):
            return _pool_entry(_nd, f"adaptive_max_pool{_nd}d", "max", x, data_format, output_size=output_size)

        for fn, base, what in ((max_pool, "max_pool", "max pooling"), (avg_pool, "avg_pool", "average pooling"),
                               (lp_pool, "lp_pool", "power-average pooling"),
                               (adaptive_avg_pool, "adaptive_avg_pool", "adaptive average pooling"),
                               (adaptive_max_pool, "adaptive_max_pool", "adaptive max pooling")):
            fn.__name__ = fn.__qualname__ = f"{base}{nd}d"
            fn.__doc__ = f"{nd}-D {what} as :func:`cnnops.{base}{nd}d` (values), differentiable."
            globals()[fn.__name__] = fn


_make_pool_functions()


# ---- nearest upsampling ----------------------------------------------------------------------------

@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _upsample(x, a, out_shape):
    return _upsample_fwd(x, a, out_shape)[0]


def _upsample_fwd(x, a, out_shape):
    r = x.ndim
    return _core("upsample_nearest", [("input", x)], _sds(out_shape, x.dtype), dict(a), fold=(r, r)), x


def _upsample_bwd(a, out_shape, x, g):
    d = dict(a)
    nd, cl = d["nd"], d["channels_last"]
    d.pop("out_size")
    d["in_size"] = tuple(shape_of(x)[1:1 + nd] if cl else shape_of(x)[2:])
    return (_core("upsample_nearest_backward", [("grad_output", g)], _sds(x.shape, x.dtype), d,
                  fold=(x.ndim, x.ndim)),)


_upsample.defvjp(_upsample_fwd, _upsample_bwd)


def _upsample_entry(nd, x, scale_factor, size, mode, recompute_scale_factor, data_format):
    op = f"cnnops.jax.upsample_nearest{nd}d"
    x, cl, in_sp = _layout(op, nd, x, data_format)
    out, scales = _upsample_plan(in_sp, nd, scale_factor, size, mode, recompute_scale_factor, op, cl)
    a = dict(op=op, nd=nd, channels_last=cl, out_size=list(out), scales=[float(s) for s in scales],
             exact=mode == "nearest-exact")
    shape = (x.shape[0], *out, x.shape[-1]) if cl else (x.shape[0], x.shape[1], *out)
    return _upsample(x, _static(a), shape)


def upsample_nearest1d(x, scale_factor=None, size=None, mode="nearest", recompute_scale_factor=None,
                       data_format="NCW"):
    """As :func:`cnnops.upsample_nearest1d`, differentiable."""
    return _upsample_entry(1, x, scale_factor, size, mode, recompute_scale_factor, data_format)


def upsample_nearest2d(x, scale_factor=None, size=None, mode="nearest", recompute_scale_factor=None,
                       data_format="NCHW"):
    """(N, C, H, W) -> (N, C, H_out, W_out) as :func:`cnnops.upsample_nearest2d` (PyTorch's index
    rules), differentiable."""
    return _upsample_entry(2, x, scale_factor, size, mode, recompute_scale_factor, data_format)


def upsample_nearest3d(x, scale_factor=None, size=None, mode="nearest", recompute_scale_factor=None,
                       data_format="NCDHW"):
    """As :func:`cnnops.upsample_nearest3d`, differentiable."""
    return _upsample_entry(3, x, scale_factor, size, mode, recompute_scale_factor, data_format)


# ---- IoU-family losses -----------------------------------------------------------------------------

@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _box_loss(b1, b2, a):
    return _box_loss_fwd(b1, b2, a)[0]


def _box_loss_fwd(b1, b2, a):
    d = dict(a)
    none = d["reduction"] == "none"  # only element-wise losses can take vmap's axis into their batch
    shape = (b1.shape[0],) if none else ()
    return _core("box_loss", [("boxes1", b1), ("boxes2", b2)], _sds(shape, b1.dtype), d,
                 fold=(2, 2, 1) if none else None), (b1, b2)


def _box_loss_bwd(a, res, g):
    b1, b2 = res
    d = dict(a)
    return _core("box_loss_backward", [("grad_output", g), ("boxes1", b1), ("boxes2", b2)],
                 (_sds(b1.shape, b1.dtype), _sds(b2.shape, b2.dtype)), d,
                 fold=(1, 2, 2, 2, 2) if d["reduction"] == "none" else None)


_box_loss.defvjp(_box_loss_fwd, _box_loss_bwd)


def _loss_entry(kind, boxes1, boxes2, reduction, eps, offset, canonicalize):
    op = f"cnnops.jax.{kind}_loss"
    b1, b2 = _floats(op, boxes1, boxes2)
    if b1.shape != b2.shape or b1.ndim < 1 or b1.shape[-1] != 4:
        raise ValueError(f"{op}: expected boxes1 and boxes2 of one shape (..., 4), got {shape_of(b1)} and "
                         f"{shape_of(b2)}")
    a = dict(op=op, kind=kind, reduction=check_reduction(reduction, op), eps=check_eps(eps, op),
             offset=float(check_offset(offset, op)), canonicalize=bool(canonicalize))
    batch = b1.shape[:-1]
    out = _box_loss(b1.reshape(-1, 4), b2.reshape(-1, 4), _static(a))
    return out.reshape(batch) if reduction == "none" else out


def iou_loss(boxes1, boxes2, reduction="none", eps=1e-7, offset=0, canonicalize=False):
    """1 - IoU of (..., 4) xyxy box pairs, as :func:`cnnops.iou_loss`, differentiable."""
    return _loss_entry("iou", boxes1, boxes2, reduction, eps, offset, canonicalize)


def giou_loss(boxes1, boxes2, reduction="none", eps=1e-7, offset=0, canonicalize=False):
    """1 - GIoU of (..., 4) xyxy box pairs, as :func:`cnnops.giou_loss`, differentiable."""
    return _loss_entry("giou", boxes1, boxes2, reduction, eps, offset, canonicalize)


def diou_loss(boxes1, boxes2, reduction="none", eps=1e-7, offset=0, canonicalize=False):
    """1 - DIoU of (..., 4) xyxy box pairs, as :func:`cnnops.diou_loss`, differentiable."""
    return _loss_entry("diou", boxes1, boxes2, reduction, eps, offset, canonicalize)


def ciou_loss(boxes1, boxes2, reduction="none", eps=1e-7, offset=0, canonicalize=False):
    """1 - CIoU of (..., 4) xyxy box pairs, as :func:`cnnops.ciou_loss`, differentiable."""
    return _loss_entry("ciou", boxes1, boxes2, reduction, eps, offset, canonicalize)
