"""The cnnops kernels as PyTorch custom operators (``torch.ops.cnnops.*``).

Each differentiable op is a pair of operators, the forward and its backward, both defined with
``torch.library.custom_op`` with a fake implementation (shapes, dtypes and memory format only, so
``torch.compile`` and ``torch.export`` trace through them without running a kernel). The forward's
autograd formula calls the backward operator, which calls the cnnops backward entry point with
``needs=`` taken from ``ctx.needs_input_grad``; a second derivative is refused with a clear error.

Arguments arrive fully resolved (per-side pads, explicit strides, output sizes): the spellings
(``"same"``, tuples, ``None``) are turned into them by ``cnnops.torch.functional`` before the call,
so the schema stays small and the fake implementations are exact. Tensors go to the cnnops entry
points as they are (zero-copy through DLPack): CPU tensors run the CPU kernels, CUDA tensors the
CUDA kernels on torch's current stream. Convolutions of CUDA tensors keep channels-last memory and
use tensor cores for float32 exactly when torch.backends.cudnn.allow_tf32 says PyTorch would."""
from __future__ import annotations

import contextlib
import functools
from typing import List, Optional, Tuple

import torch
from torch import Tensor

import cnnops
from cnnops import _C
from cnnops._arrays import prepare, wrap
from cnnops.unpool import _upsample_plan

_NS = "cnnops"


def _stream(t: Tensor):
    """For a CUDA tensor, a context queueing the cnnops kernels on torch's current stream of its
    device; nothing to do for a CPU tensor."""
    if t.is_cuda:
        return cnnops.cuda.use_stream(torch.cuda.current_stream(t.device))
    return contextlib.nullcontext()


def _on_torch_stream(fn):
    """Runs an operator's implementation with its kernels queued on torch's current stream of the
    first tensor argument's device (CUDA tensors; nothing changes for CPU tensors)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        t = next(a for a in args if isinstance(a, Tensor))
        if not t.is_cuda:
            return fn(*args, **kwargs)
        with _stream(t):
            return fn(*args, **kwargs)

    return run


def _empty(t: Tensor) -> Tensor:
    """The placeholder for a gradient nobody asked for (operators return tensors, not None)."""
    return t.new_empty((0,))


def _no_double_backward(name):
    def backward(ctx, *grads):
        raise RuntimeError(f"cnnops.torch: {name} has no second derivative (double backward is not supported); "
                           "use the PyTorch op for higher-order gradients")
    return backward


def _memory_format(nd: int):
    return torch.channels_last if nd == 2 else torch.channels_last_3d


def _to_cl(x: Tensor) -> Tensor:
    """A channels-last (N, C, *sp) tensor seen as the contiguous (N, *sp, C) array it is in memory."""
    nd = x.dim() - 2
    return x.permute(0, *range(2, 2 + nd), 1)


def _from_cl(y: Tensor) -> Tensor:
    """The inverse view: (N, *sp, C) contiguous -> (N, C, *sp) in channels-last memory."""
    nd = y.dim() - 2
    return y.permute(0, nd + 1, *range(1, nd + 1))


def _new(x: Tensor, shape, channels_last: bool, dtype=None) -> Tensor:
    dtype = x.dtype if dtype is None else dtype
    if channels_last:
        return torch.empty(shape, dtype=dtype, device=x.device, memory_format=_memory_format(len(shape) - 2))
    return torch.empty(shape, dtype=dtype, device=x.device)


# ---------------------------------------------------------------------------------------------------
# convolution


def _conv_out(x_shape, w_shape, stride, padding, dilation):
    nd = len(x_shape) - 2
    return [(x_shape[2 + i] + padding[2 * i] + padding[2 * i + 1] - dilation[i] * (w_shape[2 + i] - 1) - 1)
            // stride[i] + 1 for i in range(nd)]


_CONV = {1: "conv1d", 2: "conv2d", 3: "conv3d"}


def _conv_channels_last(x: Tensor) -> bool:
    """A CUDA tensor in dense channels-last memory that is not also contiguous: the CUDA kernels
    read it in place and write channels-last results (the CPU kernels take NCHW copies)."""
    return (x.is_cuda and x.dim() in (4, 5) and not x.is_contiguous()
            and x.is_contiguous(memory_format=_memory_format(x.dim() - 2)))


def _conv_arg(t: Tensor, layout_of: Tensor) -> Tensor:
    """A data tensor as the kernels take it: as it is when `layout_of` is channels-last on CUDA
    (and it is too), else contiguous."""
    return t if _conv_channels_last(layout_of) and _conv_channels_last(t) else t.contiguous()


def _conv_new(x: Tensor, shape) -> Tensor:
    """A fake output shaped `shape` in the layout the kernels give for input x."""
    if _conv_channels_last(x) and shape[1] > 1:
        return x.new_empty(shape, memory_format=_memory_format(len(shape) - 2))
    return x.new_empty(shape)


def _precision(x: Tensor) -> str:
    """float32 CUDA convolutions on tensor cores exactly when PyTorch's own would be
    (torch.backends.cudnn.allow_tf32); "fp32" elsewhere."""
    return "tf32" if x.is_cuda and x.dtype == torch.float32 and torch.backends.cudnn.allow_tf32 else "fp32"


def _host(t: Tensor, op: str, name: str):
    """A contiguous CPU tensor as the core reads it (a NumPy view: no copy)."""
    return prepare(t.contiguous(), op, name)


# On CPU tensors the operators call the core directly: their arguments arrive fully resolved, and
# the core checks them, so the entry points' parsing of spellings (cnnops.conv) would only repeat
# the work functional.py did.
@torch.library.custom_op(f"{_NS}::conv", mutates_args=())
@_on_torch_stream
def conv(x: Tensor, weight: Tensor, bias: Optional[Tensor], stride: List[int], padding: List[int],
         dilation: List[int], groups: int, padding_mode: str, algo: str) -> Tensor:
    if not x.is_cuda:
        op = _CONV[x.dim() - 2]
        b = None if bias is None else _host(bias, op, "bias")
        return wrap(_C.conv(op, _host(x, op, "input"), _host(weight, op, "weight"), b, x.dim() - 2, stride, padding,
                            dilation, groups, padding_mode, algo, "fp32"), x)
    f = getattr(cnnops, _CONV[x.dim() - 2])
    return f(_conv_arg(x, x), weight.contiguous(), None if bias is None else bias.contiguous(), stride, padding,
             dilation, groups, padding_mode, algo, precision=_precision(x))


@conv.register_fake
def _(x, weight, bias, stride, padding, dilation, groups, padding_mode, algo):
    return _conv_new(x, (x.shape[0], weight.shape[0], *_conv_out(x.shape, weight.shape, stride, padding, dilation)))


@torch.library.custom_op(f"{_NS}::conv_backward", mutates_args=())
@_on_torch_stream
def conv_backward(grad_output: Tensor, x: Tensor, weight: Tensor, stride: List[int], padding: List[int],
                  dilation: List[int], groups: int, padding_mode: str, algo: str,
                  needs: List[bool]) -> Tuple[Tensor, Tensor, Tensor]:
    if not x.is_cuda:
        op = _CONV[x.dim() - 2] + "_backward"
        gi, gw, gb = (wrap(g, x) for g in _C.conv_backward(
            op, _host(grad_output, op, "grad_output"), _host(x, op, "input"), _host(weight, op, "weight"),
            x.dim() - 2, stride, padding, dilation, groups, padding_mode, algo, needs, "fp32"))
    else:
        f = getattr(cnnops, _CONV[x.dim() - 2] + "_backward")
        gi, gw, gb = f(_conv_arg(grad_output, x), _conv_arg(x, x), weight.contiguous(), stride, padding, dilation,
                       groups, padding_mode, needs=tuple(needs), algo=algo, precision=_precision(x))
    return (gi if gi is not None else _empty(x), gw if gw is not None else _empty(weight),
            gb if gb is not None else _empty(weight))


@conv_backward.register_fake
def _(grad_output, x, weight, stride, padding, dilation, groups, padding_mode, algo, needs):
    return (_conv_new(x, x.shape) if needs[0] else _empty(x),
            weight.new_empty(weight.shape) if needs[1] else _empty(weight),
            weight.new_empty((weight.shape[0],)) if needs[2] else _empty(weight))


def _conv_setup(ctx, inputs, output):
    x, weight, bias, *args = inputs
    ctx.save_for_backward(x, weight)
    ctx.args, ctx.has_bias = args, bias is not None


def _conv_grad(ctx, grad):
    x, weight = ctx.saved_tensors
    n = ctx.needs_input_grad
    needs = [bool(n[0]), bool(n[1]), bool(n[2]) and ctx.has_bias]
    gi, gw, gb = conv_backward(grad, x, weight, *ctx.args, needs)
    return (gi if needs[0] else None, gw if needs[1] else None, gb if needs[2] else None) + (None,) * 6


conv.register_autograd(_conv_grad, setup_context=_conv_setup)
conv_backward.register_autograd(_no_double_backward("conv"))

_CONVT = {1: "conv_transpose1d", 2: "conv_transpose2d", 3: "conv_transpose3d"}


def _convt_out(x_shape, w_shape, stride, padding, output_padding, groups, dilation):
    nd = len(x_shape) - 2
    sp = [(x_shape[2 + i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (w_shape[2 + i] - 1) + output_padding[i] + 1
          for i in range(nd)]
    return [x_shape[0], w_shape[1] * groups, *sp]


@torch.library.custom_op(f"{_NS}::conv_transpose", mutates_args=())
@_on_torch_stream
def conv_transpose(x: Tensor, weight: Tensor, bias: Optional[Tensor], stride: List[int], padding: List[int],
                   output_padding: List[int], groups: int, dilation: List[int], algo: str) -> Tensor:
    f = getattr(cnnops, _CONVT[x.dim() - 2])
    return f(_conv_arg(x, x), weight.contiguous(), None if bias is None else bias.contiguous(), stride, padding,
             output_padding, groups, dilation, algo=algo, precision=_precision(x))


@conv_transpose.register_fake
def _(x, weight, bias, stride, padding, output_padding, groups, dilation, algo):
    return _conv_new(x, _convt_out(x.shape, weight.shape, stride, padding, output_padding, groups, dilation))


@torch.library.custom_op(f"{_NS}::conv_transpose_backward", mutates_args=())
@_on_torch_stream
def conv_transpose_backward(grad_output: Tensor, x: Tensor, weight: Tensor, stride: List[int], padding: List[int],
                            output_padding: List[int], groups: int, dilation: List[int], algo: str,
                            needs: List[bool]) -> Tuple[Tensor, Tensor, Tensor]:
    f = getattr(cnnops, _CONVT[x.dim() - 2] + "_backward")
    gi, gw, gb = f(_conv_arg(grad_output, x), _conv_arg(x, x), weight.contiguous(), stride, padding,
                   output_padding, groups, dilation, needs=tuple(needs), algo=algo, precision=_precision(x))
    return (gi if gi is not None else _empty(x), gw if gw is not None else _empty(weight),
            gb if gb is not None else _empty(weight))


@conv_transpose_backward.register_fake
def _(grad_output, x, weight, stride, padding, output_padding, groups, dilation, algo, needs):
    k = weight.shape[1] * groups
    return (_conv_new(x, x.shape) if needs[0] else _empty(x),
            weight.new_empty(weight.shape) if needs[1] else _empty(weight),
            weight.new_empty((k,)) if needs[2] else _empty(weight))


def _convt_grad(ctx, grad):
    x, weight = ctx.saved_tensors
    n = ctx.needs_input_grad
    needs = [bool(n[0]), bool(n[1]), bool(n[2]) and ctx.has_bias]
    gi, gw, gb = conv_transpose_backward(grad, x, weight, *ctx.args, needs)
    return (gi if needs[0] else None, gw if needs[1] else None, gb if needs[2] else None) + (None,) * 6


conv_transpose.register_autograd(_convt_grad, setup_context=_conv_setup)
conv_transpose_backward.register_autograd(_no_double_backward("conv_transpose"))


# ---------------------------------------------------------------------------------------------------
# pooling: max / avg / lp with explicit windows


def _fmt(nd: int, channels_last: bool) -> str:
    return {1: ("NCW", "NWC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}[nd][int(channels_last)]


def _pool_out(sp, kernel, stride, padding, dilation, ceil_mode):
    out = []
    for i, n in enumerate(sp):
        numer = n + padding[2 * i] + padding[2 * i + 1] - dilation[i] * (kernel[i] - 1) - 1
        o = (-(-numer // stride[i]) if ceil_mode else numer // stride[i]) + 1
        if ceil_mode and (o - 1) * stride[i] >= n + padding[2 * i]:
            o -= 1
        out.append(o)
    return out


def _pool_call(kind, x, kernel, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override, norm_type,
               channels_last):
    nd = x.dim() - 2
    xin = _to_cl(x) if channels_last else x.contiguous()
    fmt = _fmt(nd, channels_last)
    if kind == "max":
        return getattr(cnnops, f"max_pool{nd}d")(xin, kernel, stride, padding, dilation, ceil_mode, True,
                                                 data_format=fmt)
    if kind == "avg":
        extra = {} if nd == 1 else {"divisor_override": divisor_override or None}
        y = getattr(cnnops, f"avg_pool{nd}d")(xin, kernel, stride, padding, ceil_mode, count_include_pad,
                                              data_format=fmt, **extra)
        return y, None
    y = getattr(cnnops, f"lp_pool{nd}d")(xin, norm_type, kernel, stride, ceil_mode, data_format=fmt)
    return y, None


@torch.library.custom_op(f"{_NS}::pool", mutates_args=())
@_on_torch_stream
def pool(x: Tensor, kind: str, kernel: List[int], stride: List[int], padding: List[int], dilation: List[int],
         ceil_mode: bool, count_include_pad: bool, divisor_override: int, norm_type: float,
         channels_last: bool) -> Tuple[Tensor, Tensor]:
    y, idx = _pool_call(kind, x, kernel, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override,
                        norm_type, channels_last)
    if channels_last:
        y = _from_cl(y)
        idx = _from_cl(idx) if idx is not None else None
    return y, idx if idx is not None else x.new_empty((0,), dtype=torch.int64)


@pool.register_fake
def _(x, kind, kernel, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override, norm_type,
      channels_last):
    shape = [x.shape[0], x.shape[1], *_pool_out(x.shape[2:], kernel, stride, padding, dilation, ceil_mode)]
    idx = _new(x, shape, channels_last, torch.int64) if kind == "max" else x.new_empty((0,), dtype=torch.int64)
    return _new(x, shape, channels_last), idx


@torch.library.custom_op(f"{_NS}::pool_backward", mutates_args=())
@_on_torch_stream
def pool_backward(grad_output: Tensor, x: Tensor, indices: Tensor, kind: str, kernel: List[int], stride: List[int],
                  padding: List[int], dilation: List[int], ceil_mode: bool, count_include_pad: bool,
                  divisor_override: int, norm_type: float, channels_last: bool) -> Tensor:
    nd = x.dim() - 2
    fmt = _fmt(nd, channels_last)
    cv = _to_cl if channels_last else (lambda t: t.contiguous())
    go, xin = cv(grad_output), cv(x)
    if kind == "max":
        g = getattr(cnnops, f"max_pool{nd}d_backward")(go, xin, cv(indices), kernel, stride, padding, dilation,
                                                       ceil_mode, data_format=fmt)
    elif kind == "avg":
        extra = {} if nd == 1 else {"divisor_override": divisor_override or None}
        g = getattr(cnnops, f"avg_pool{nd}d_backward")(go, xin, kernel, stride, padding, ceil_mode,
                                                       count_include_pad, data_format=fmt, **extra)
    else:
        g = getattr(cnnops, f"lp_pool{nd}d_backward")(go, xin, norm_type, kernel, stride, ceil_mode,
                                                      data_format=fmt)
    return _from_cl(g) if channels_last else g


@pool_backward.register_fake
def _(grad_output, x, indices, kind, kernel, stride, padding, dilation, ceil_mode, count_include_pad,
      divisor_override, norm_type, channels_last):
    return _new(x, x.shape, channels_last)


def _pool_setup(ctx, inputs, output):
    x, *args = inputs
    ctx.save_for_backward(x, output[1])
    ctx.args = args


def _pool_grad(ctx, grad, _grad_indices):
    x, idx = ctx.saved_tensors
    g = pool_backward(grad, x, idx, *ctx.args)
    return (g,) + (None,) * 10


pool.register_autograd(_pool_grad, setup_context=_pool_setup)
pool_backward.register_autograd(_no_double_backward("pool"))


# ---------------------------------------------------------------------------------------------------
# adaptive pooling


@torch.library.custom_op(f"{_NS}::adaptive_pool", mutates_args=())
@_on_torch_stream
def adaptive_pool(x: Tensor, kind: str, output_size: List[int], channels_last: bool) -> Tuple[Tensor, Tensor]:
    nd = x.dim() - 2
    xin = _to_cl(x) if channels_last else x.contiguous()
    fmt = _fmt(nd, channels_last)
    if kind == "max":
        y, idx = getattr(cnnops, f"adaptive_max_pool{nd}d")(xin, output_size, True, data_format=fmt)
    else:
        y, idx = getattr(cnnops, f"adaptive_avg_pool{nd}d")(xin, output_size, data_format=fmt), None
    if channels_last:
        y = _from_cl(y)
        idx = _from_cl(idx) if idx is not None else None
    return y, idx if idx is not None else x.new_empty((0,), dtype=torch.int64)


@adaptive_pool.register_fake
def _(x, kind, output_size, channels_last):
    shape = [x.shape[0], x.shape[1], *output_size]
    idx = _new(x, shape, channels_last, torch.int64) if kind == "max" else x.new_empty((0,), dtype=torch.int64)
    return _new(x, shape, channels_last), idx


@torch.library.custom_op(f"{_NS}::adaptive_pool_backward", mutates_args=())
@_on_torch_stream
def adaptive_pool_backward(grad_output: Tensor, x: Tensor, indices: Tensor, kind: str, channels_last: bool) -> Tensor:
    nd = x.dim() - 2
    fmt = _fmt(nd, channels_last)
    cv = _to_cl if channels_last else (lambda t: t.contiguous())
    if kind == "max":
        g = getattr(cnnops, f"adaptive_max_pool{nd}d_backward")(cv(grad_output), cv(x), cv(indices), data_format=fmt)
    else:
        g = getattr(cnnops, f"adaptive_avg_pool{nd}d_backward")(cv(grad_output), cv(x), data_format=fmt)
    return _from_cl(g) if channels_last else g


@adaptive_pool_backward.register_fake
def _(grad_output, x, indices, kind, channels_last):
    return _new(x, x.shape, channels_last)


def _adaptive_setup(ctx, inputs, output):
    x, kind, _, channels_last = inputs
    ctx.save_for_backward(x, output[1])
    ctx.kind, ctx.cl = kind, channels_last


def _adaptive_grad(ctx, grad, _grad_indices):
    x, idx = ctx.saved_tensors
    return adaptive_pool_backward(grad, x, idx, ctx.kind, ctx.cl), None, None, None


adaptive_pool.register_autograd(_adaptive_grad, setup_context=_adaptive_setup)
adaptive_pool_backward.register_autograd(_no_double_backward("adaptive pooling"))


# ---------------------------------------------------------------------------------------------------
# fractional max pooling (PyTorch's convention: kernel, output size, samples)


@torch.library.custom_op(f"{_NS}::fractional_max_pool", mutates_args=())
@_on_torch_stream
def fractional_max_pool(x: Tensor, kernel: List[int], output_size: List[int], samples: Tensor,
                        channels_last: bool) -> Tuple[Tensor, Tensor]:
    nd = x.dim() - 2
    xin = _to_cl(x) if channels_last else x.contiguous()
    y, idx = getattr(cnnops, f"fractional_max_pool{nd}d")(xin, kernel, output_size, None, True, samples.contiguous(),
                                                           data_format=_fmt(nd, channels_last))
    return (_from_cl(y), _from_cl(idx)) if channels_last else (y, idx)


@fractional_max_pool.register_fake
def _(x, kernel, output_size, samples, channels_last):
    shape = [x.shape[0], x.shape[1], *output_size]
    return _new(x, shape, channels_last), _new(x, shape, channels_last, torch.int64)


@torch.library.custom_op(f"{_NS}::fractional_max_pool_backward", mutates_args=())
@_on_torch_stream
def fractional_max_pool_backward(grad_output: Tensor, x: Tensor, indices: Tensor, channels_last: bool) -> Tensor:
    nd = x.dim() - 2
    cv = _to_cl if channels_last else (lambda t: t.contiguous())
    g = getattr(cnnops, f"fractional_max_pool{nd}d_backward")(cv(grad_output), cv(x), cv(indices),
                                                               data_format=_fmt(nd, channels_last))
    return _from_cl(g) if channels_last else g


@fractional_max_pool_backward.register_fake
def _(grad_output, x, indices, channels_last):
    return _new(x, x.shape, channels_last)


def _fractional_setup(ctx, inputs, output):
    x, _, _, _, channels_last = inputs
    ctx.save_for_backward(x, output[1])
    ctx.cl = channels_last


def _fractional_grad(ctx, grad, _grad_indices):
    x, idx = ctx.saved_tensors
    return fractional_max_pool_backward(grad, x, idx, ctx.cl), None, None, None, None


fractional_max_pool.register_autograd(_fractional_grad, setup_context=_fractional_setup)
fractional_max_pool_backward.register_autograd(_no_double_backward("fractional max pooling"))


# ---------------------------------------------------------------------------------------------------
# max_unpool and nearest upsampling


@torch.library.custom_op(f"{_NS}::max_unpool", mutates_args=())
@_on_torch_stream
def max_unpool(x: Tensor, indices: Tensor, kernel: List[int], stride: List[int], padding: List[int],
               output_size: List[int]) -> Tensor:
    nd = x.dim() - 2
    return getattr(cnnops, f"max_unpool{nd}d")(x.contiguous(), indices.contiguous(), kernel, stride, padding,
                                              output_size)


@max_unpool.register_fake
def _(x, indices, kernel, stride, padding, output_size):
    return x.new_empty((x.shape[0], x.shape[1], *output_size))


@torch.library.custom_op(f"{_NS}::max_unpool_backward", mutates_args=())
@_on_torch_stream
def max_unpool_backward(grad_output: Tensor, indices: Tensor, kernel: List[int], stride: List[int],
                        padding: List[int], output_size: List[int]) -> Tensor:
    nd = indices.dim() - 2
    return getattr(cnnops, f"max_unpool{nd}d_backward")(grad_output.contiguous(), indices.contiguous(), kernel,
                                                       stride, padding, output_size)


@max_unpool_backward.register_fake
def _(grad_output, indices, kernel, stride, padding, output_size):
    return grad_output.new_empty(indices.shape)


def _unpool_setup(ctx, inputs, output):
    _, indices, *args = inputs
    ctx.save_for_backward(indices)
    ctx.args = args


def _unpool_grad(ctx, grad):
    (indices,) = ctx.saved_tensors
    return (max_unpool_backward(grad, indices, *ctx.args),) + (None,) * 5


max_unpool.register_autograd(_unpool_grad, setup_context=_unpool_setup)
max_unpool_backward.register_autograd(_no_double_backward("max_unpool"))


@torch.library.custom_op(f"{_NS}::upsample_nearest", mutates_args=())
@_on_torch_stream
def upsample_nearest(x: Tensor, size: Optional[List[int]], scale_factor: Optional[List[float]], mode: str,
                     recompute_scale_factor: bool, channels_last: bool) -> Tensor:
    nd = x.dim() - 2
    xin = _to_cl(x) if channels_last else x.contiguous()
    y = getattr(cnnops, f"upsample_nearest{nd}d")(xin, scale_factor, size, mode, recompute_scale_factor or None,
                                                  data_format=_fmt(nd, channels_last))
    return _from_cl(y) if channels_last else y


@upsample_nearest.register_fake
def _(x, size, scale_factor, mode, recompute_scale_factor, channels_last):
    nd = x.dim() - 2
    out, _ = _upsample_plan(tuple(x.shape[2:]), nd, scale_factor, size, mode, recompute_scale_factor or None,
                            "upsample_nearest")
    return _new(x, [x.shape[0], x.shape[1], *out], channels_last)


@torch.library.custom_op(f"{_NS}::upsample_nearest_backward", mutates_args=())
@_on_torch_stream
def upsample_nearest_backward(grad_output: Tensor, x: Tensor, size: Optional[List[int]],
                              scale_factor: Optional[List[float]], mode: str, recompute_scale_factor: bool,
                              channels_last: bool) -> Tensor:
    nd = x.dim() - 2
    cv = _to_cl if channels_last else (lambda t: t.contiguous())
    g = getattr(cnnops, f"upsample_nearest{nd}d_backward")(cv(grad_output), cv(x), scale_factor, size, mode,
                                                           recompute_scale_factor or None,
                                                           data_format=_fmt(nd, channels_last))
    return _from_cl(g) if channels_last else g


@upsample_nearest_backward.register_fake
def _(grad_output, x, size, scale_factor, mode, recompute_scale_factor, channels_last):
    return _new(x, x.shape, channels_last)


def _upsample_setup(ctx, inputs, output):
    x, *args = inputs
    ctx.save_for_backward(x)
    ctx.args = args


def _upsample_grad(ctx, grad):
    (x,) = ctx.saved_tensors
    return (upsample_nearest_backward(grad, x, *ctx.args),) + (None,) * 5


upsample_nearest.register_autograd(_upsample_grad, setup_context=_upsample_setup)
upsample_nearest_backward.register_autograd(_no_double_backward("upsample_nearest"))


@torch.library.custom_op(f"{_NS}::bed_of_nails", mutates_args=())
@_on_torch_stream
def bed_of_nails(x: Tensor, scale: List[int], channels_last: bool) -> Tensor:
    xin = _to_cl(x) if channels_last else x.contiguous()
    y = cnnops.bed_of_nails_unpool2d(xin, scale, data_format=_fmt(2, channels_last))
    return _from_cl(y) if channels_last else y


@bed_of_nails.register_fake
def _(x, scale, channels_last):
    return _new(x, [x.shape[0], x.shape[1], x.shape[2] * scale[0], x.shape[3] * scale[1]], channels_last)


@torch.library.custom_op(f"{_NS}::bed_of_nails_backward", mutates_args=())
@_on_torch_stream
def bed_of_nails_backward(grad_output: Tensor, scale: List[int], channels_last: bool) -> Tensor:
    g = cnnops.bed_of_nails_unpool2d_backward(_to_cl(grad_output) if channels_last else grad_output.contiguous(),
                                              scale, data_format=_fmt(2, channels_last))
    return _from_cl(g) if channels_last else g


@bed_of_nails_backward.register_fake
def _(grad_output, scale, channels_last):
    s = grad_output.shape
    return _new(grad_output, [s[0], s[1], s[2] // scale[0], s[3] // scale[1]], channels_last)


def _nails_setup(ctx, inputs, output):
    ctx.scale, ctx.cl = inputs[1], inputs[2]


def _nails_grad(ctx, grad):
    return bed_of_nails_backward(grad, ctx.scale, ctx.cl), None, None


bed_of_nails.register_autograd(_nails_grad, setup_context=_nails_setup)
bed_of_nails_backward.register_autograd(_no_double_backward("bed_of_nails_unpool2d"))


# ---------------------------------------------------------------------------------------------------
# IoU-family losses


@torch.library.custom_op(f"{_NS}::box_loss", mutates_args=())
@_on_torch_stream
def box_loss(kind: str, boxes1: Tensor, boxes2: Tensor, reduction: str, eps: float) -> Tensor:
    return getattr(cnnops, f"{kind}_loss")(boxes1.contiguous(), boxes2.contiguous(), reduction, eps)


@box_loss.register_fake
def _(kind, boxes1, boxes2, reduction, eps):
    return boxes1.new_empty(boxes1.shape[:-1] if reduction == "none" else ())


@torch.library.custom_op(f"{_NS}::box_loss_backward", mutates_args=())
@_on_torch_stream
def box_loss_backward(grad_output: Tensor, kind: str, boxes1: Tensor, boxes2: Tensor, reduction: str,
                      eps: float) -> Tuple[Tensor, Tensor]:
    g1, g2 = getattr(cnnops, f"{kind}_loss_backward")(grad_output.contiguous(), boxes1.contiguous(),
                                                      boxes2.contiguous(), reduction, eps)
    return g1, g2


@box_loss_backward.register_fake
def _(grad_output, kind, boxes1, boxes2, reduction, eps):
    return boxes1.new_empty(boxes1.shape), boxes2.new_empty(boxes2.shape)


def _loss_setup(ctx, inputs, output):
    kind, b1, b2, reduction, eps = inputs
    ctx.save_for_backward(b1, b2)
    ctx.kind, ctx.reduction, ctx.eps = kind, reduction, eps


def _loss_grad(ctx, grad):
    b1, b2 = ctx.saved_tensors
    g1, g2 = box_loss_backward(grad, ctx.kind, b1, b2, ctx.reduction, ctx.eps)
    n = ctx.needs_input_grad
    return None, g1 if n[1] else None, g2 if n[2] else None, None, None


box_loss.register_autograd(_loss_grad, setup_context=_loss_setup)
box_loss_backward.register_autograd(_no_double_backward("the IoU losses"))


# ---------------------------------------------------------------------------------------------------
# box ops without gradients (torchvision's nms, batched_nms and pairwise IoUs)


@torch.library.custom_op(f"{_NS}::nms", mutates_args=())
@_on_torch_stream
def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    return cnnops.nms(boxes.contiguous(), scores.contiguous(), iou_threshold)


@nms.register_fake
def _(boxes, scores, iou_threshold):
    n = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((n,), dtype=torch.int64)


@torch.library.custom_op(f"{_NS}::batched_nms", mutates_args=())
@_on_torch_stream
def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    return cnnops.batched_nms(boxes.contiguous(), scores.contiguous(), idxs.contiguous(), iou_threshold)


@batched_nms.register_fake
def _(boxes, scores, idxs, iou_threshold):
    n = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((n,), dtype=torch.int64)


@torch.library.custom_op(f"{_NS}::pairwise_iou", mutates_args=())
@_on_torch_stream
def pairwise_iou(kind: str, boxes1: Tensor, boxes2: Tensor, eps: float) -> Tensor:
    f = getattr(cnnops, kind)
    if kind in ("box_iou", "generalized_box_iou"):
        return f(boxes1.contiguous(), boxes2.contiguous())
    return f(boxes1.contiguous(), boxes2.contiguous(), eps)


@pairwise_iou.register_fake
def _(kind, boxes1, boxes2, eps):
    return boxes1.new_empty((boxes1.shape[0], boxes2.shape[0]))


OPS = [conv, conv_transpose, pool, adaptive_pool, fractional_max_pool, max_unpool, upsample_nearest, bed_of_nails,
       box_loss, nms, batched_nms, pairwise_iou]
