"""Pooling, unpooling and upsampling layers over the cnnops pooling kernels.

Forward keeps its input (and the argmax indices where the op has them); backward calls the
matching ``*_backward`` kernel.
"""
from __future__ import annotations

import numpy as np

from .module import Module, check_dtype, check_ndim, saved

_NCHW = "(N, C, H, W)"


def _kernel(name):
    """The cnnops kernel ``name``, or a clear error if this build does not have it."""
    import cnnops

    f = getattr(cnnops, name, None)
    if f is None:
        raise NotImplementedError(f"cnnops.nn: this build of cnnops has no {name} kernel")
    return f


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class _Pool2d(Module):
    def _check(self, x):
        name = type(self).__name__
        check_dtype(x, name)
        check_ndim(x, (4,), _NCHW, name)


class MaxPool2d(_Pool2d):
    """Max pooling: input (N, C, H, W) -> (N, C, H_out, W_out), options as
    torch.nn.MaxPool2d (stride defaults to kernel_size). ``return_indices=True`` makes forward
    return (output, indices) (flat h*W+w positions per plane, for MaxUnpool2d). Backward routes
    each gradient to its window's first maximum."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = bool(return_indices), bool(ceil_mode)
        self._cache = None

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def forward(self, x):
        self._check(x)
        # the indices make the backward a gather (cheaper than recomputing each window's argmax)
        y, idx = _kernel("max_pool2d")(x, self.kernel_size, self.stride, self.padding, self.dilation,
                                       self.ceil_mode, return_indices=True)
        self._cache = (x, idx)
        return (y, idx) if self.return_indices else y

    def backward(self, grad_out):
        x, idx = saved(self._cache, "MaxPool2d")
        return _kernel("max_pool2d_backward")(grad_out, x, idx, self.kernel_size, self.stride, self.padding,
                                              self.dilation, self.ceil_mode)


class AvgPool2d(_Pool2d):
    """Average pooling: (N, C, H, W) -> (N, C, H_out, W_out); options as torch.nn.AvgPool2d
    (ceil_mode, count_include_pad, divisor_override)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, bool(ceil_mode)
        self.count_include_pad, self.divisor_override = bool(count_include_pad), divisor_override
        self._x = None

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def _opts(self):
        return dict(stride=self.stride, padding=self.padding, ceil_mode=self.ceil_mode,
                    count_include_pad=self.count_include_pad, divisor_override=self.divisor_override)

    def forward(self, x):
        self._check(x)
        self._x = x
        return _kernel("avg_pool2d")(x, self.kernel_size, **self._opts())

    def backward(self, grad_out):
        x = saved(self._x, "AvgPool2d")
        return _kernel("avg_pool2d_backward")(grad_out, x, self.kernel_size, **self._opts())


class LPPool2d(_Pool2d):
    """Power-average pooling: (sum over the window of x^p)^(1/p) (PyTorch's LPPool2d)."""

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        super().__init__()
        self.norm_type, self.kernel_size = float(norm_type), kernel_size
        self.stride, self.ceil_mode = stride, bool(ceil_mode)
        self._x = None

    def forward(self, x):
        self._check(x)
        self._x = x
        return _kernel("lp_pool2d")(x, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)

    def backward(self, grad_out):
        x = saved(self._x, "LPPool2d")
        return _kernel("lp_pool2d_backward")(grad_out, x, self.norm_type, self.kernel_size, self.stride,
                                             self.ceil_mode)


class AdaptiveAvgPool2d(_Pool2d):
    """Adaptive average pooling to ``output_size`` (int or (H_out, W_out)); window i spans
    [floor(i*H/H_out), ceil((i+1)*H/H_out))."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size
        self._x = None

    def forward(self, x):
        self._check(x)
        self._x = x
        oh, ow = _pair(self.output_size)
        if (oh, ow) == (1, 1):
            return x.mean(axis=(2, 3), keepdims=True, dtype=x.dtype)
        return _kernel("adaptive_avg_pool2d")(x, self.output_size)

    def backward(self, grad_out):
        x = saved(self._x, "AdaptiveAvgPool2d")
        if _pair(self.output_size) == (1, 1):
            h, w = x.shape[2:]
            return np.broadcast_to(grad_out * grad_out.dtype.type(1.0 / (h * w)), x.shape).copy()
        return _kernel("adaptive_avg_pool2d_backward")(grad_out, x)


class AdaptiveMaxPool2d(_Pool2d):
    """Adaptive max pooling to ``output_size``; ``return_indices`` as MaxPool2d."""

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size, self.return_indices = output_size, bool(return_indices)
        self._cache = None

    def forward(self, x):
        self._check(x)
        y, idx = _kernel("adaptive_max_pool2d")(x, self.output_size, return_indices=True)
        self._cache = (x, idx)
        return (y, idx) if self.return_indices else y

    def backward(self, grad_out):
        x, idx = saved(self._cache, "AdaptiveMaxPool2d")
        return _kernel("adaptive_max_pool2d_backward")(grad_out, x, idx)


class GlobalAvgPool2d(_Pool2d):
    """Mean over H and W: (N, C, H, W) -> (N, C, 1, 1) (``flatten=True``: (N, C))."""

    def __init__(self, flatten=False):
        super().__init__()
        self.flatten = bool(flatten)
        self._shape = None

    def forward(self, x):
        self._check(x)
        self._shape = x.shape
        return x.mean(axis=(2, 3), keepdims=not self.flatten, dtype=x.dtype)

    def backward(self, grad_out):
        shape = saved(self._shape, "GlobalAvgPool2d")
        g = grad_out.reshape(shape[0], shape[1], 1, 1) * grad_out.dtype.type(1.0 / (shape[2] * shape[3]))
        return np.broadcast_to(g, shape).copy()


class _FractionalMaxPoolNd(Module):
    _nd = 2
    _layout = _NCHW

    def __init__(self, kernel_size=None, output_size=None, output_ratio=None, return_indices=False,
                 _random_samples=None, *, pooling_ratio=None, pseudo_random=False, overlapping=False,
                 _pooling_sequences=None):
        super().__init__()
        name = type(self).__name__
        self.tf_mode = pooling_ratio is not None or _pooling_sequences is not None
        if self.tf_mode:
            if any(v is not None for v in (kernel_size, output_size, output_ratio, _random_samples)):
                raise ValueError(f"{name}: expected either kernel_size with output_size or output_ratio (PyTorch's "
                                 f"convention) or pooling_ratio (TensorFlow's), got both")
        elif kernel_size is None:
            raise ValueError(f"{name}: expected kernel_size (PyTorch's convention) or pooling_ratio (TensorFlow's), "
                             f"got neither")
        elif (output_size is None) == (output_ratio is None):
            raise ValueError(f"{name}: give exactly one of output_size and output_ratio")
        self.kernel_size, self.output_size, self.output_ratio = kernel_size, output_size, output_ratio
        self.pooling_ratio, self.pseudo_random, self.overlapping = pooling_ratio, bool(pseudo_random), bool(overlapping)
        self.return_indices = bool(return_indices)
        self._random_samples = _random_samples
        self._pooling_sequences = _pooling_sequences
        self.pooling_sequences = None
        self._cache = None

    def extra_repr(self):
        if self.tf_mode:
            return (f"pooling_ratio={self.pooling_ratio}, pseudo_random={self.pseudo_random}, "
                    f"overlapping={self.overlapping}")
        if self.output_size is not None:
            return f"kernel_size={self.kernel_size}, output_size={self.output_size}"
        return f"kernel_size={self.kernel_size}, output_ratio={self.output_ratio}"

    def forward(self, x):
        from . import init

        nd, name = self._nd, type(self).__name__
        check_dtype(x, name)
        check_ndim(x, (nd + 2,), self._layout, name)
        f = _kernel(f"fractional_max_pool{nd}d")
        if self.tf_mode:
            if self._pooling_sequences is not None:
                res = f(x, pooling_sequences=self._pooling_sequences, overlapping=self.overlapping,
                        return_indices=True)
            else:
                seed = int(init.get_rng().integers(2**63))
                res = f(x, pooling_ratio=self.pooling_ratio, pseudo_random=self.pseudo_random,
                        overlapping=self.overlapping, seed=seed, return_indices=True)
            y, idx = res[0], res[1]
            self.pooling_sequences = tuple(res[2:])
        else:
            samples = self._random_samples
            if samples is None:
                samples = init.get_rng().random((x.shape[0], x.shape[1], nd)).astype(x.dtype)
            y, idx = f(x, self.kernel_size, output_size=self.output_size, output_ratio=self.output_ratio,
                       return_indices=True, _random_samples=samples)
        self._cache = (x, idx)
        return (y, idx) if self.return_indices else y

    def backward(self, grad_out):
        x, idx = saved(self._cache, type(self).__name__)
        return _kernel(f"fractional_max_pool{self._nd}d_backward")(grad_out, x, idx)


class FractionalMaxPool2d(_FractionalMaxPoolNd):
    """Fractional max pooling (Graham 2014) of (N, C, H, W) inputs, in either convention of
    cnnops.fractional_max_pool2d:

    - PyTorch's: ``kernel_size`` windows at pseudo-random starts, output size ``output_size`` or
      ``output_ratio`` * input size; a fresh (N, C, 2) sample per forward from cnnops.nn.init's
      generator unless ``_random_samples`` is given.
    - TensorFlow's: ``pooling_ratio`` (>= 1; output = floor(input / ratio)), ``pseudo_random``
      (Graham's pseudo-random sequences instead of random ones), ``overlapping`` (windows share
      their boundary row and column); one pooling sequence per dimension, drawn per forward (seeded
      from cnnops.nn.init's generator) and kept in ``pooling_sequences``; ``_pooling_sequences``
      fixes them.

    Backward routes each gradient to its window's maximum (the indices of the forward)."""
    _nd = 2


class FractionalMaxPool3d(_FractionalMaxPoolNd):
    """Fractional max pooling of (N, C, D, H, W) inputs; options as :class:`FractionalMaxPool2d`
    with triples ((N, C, 3) samples ordered (d, h, w); three pooling sequences)."""
    _nd = 3
    _layout = "(N, C, D, H, W)"


class MaxUnpool2d(Module):
    """Inverse of MaxPool2d: ``forward(x, indices, output_size=None)`` scatters x into a zero map
    at the pooled positions; backward gathers the gradient at the same positions."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self._idx = None

    def forward(self, x, indices, output_size=None):
        check_dtype(x, "MaxUnpool2d")
        self._idx = (indices, output_size)
        return _kernel("max_unpool2d")(x, indices, self.kernel_size, self.stride, self.padding, output_size)

    def backward(self, grad_out):
        indices, output_size = saved(self._idx, "MaxUnpool2d")
        return _kernel("max_unpool2d_backward")(grad_out, indices, self.kernel_size, self.stride, self.padding,
                                                output_size)


class Upsample(Module):
    """Nearest-neighbour upsampling by ``scale_factor`` or to ``size``: (N, C, H, W) ->
    (N, C, H_out, W_out). Integer factors use NumPy repeat; other cases the cnnops kernel."""

    def __init__(self, size=None, scale_factor=None, mode="nearest"):
        super().__init__()
        if mode != "nearest":
            raise ValueError(f"Upsample: only mode='nearest' is supported, got {mode!r}")
        if (size is None) == (scale_factor is None):
            raise ValueError("Upsample: give exactly one of size and scale_factor")
        self.size, self.scale_factor, self.mode = size, scale_factor, mode
        self._x = None

    def _int_factors(self):
        if self.scale_factor is None:
            return None
        f = _pair(self.scale_factor)
        if all(float(v).is_integer() and v >= 1 for v in f):
            return int(f[0]), int(f[1])
        return None

    def forward(self, x):
        check_dtype(x, "Upsample")
        check_ndim(x, (4,), _NCHW, "Upsample")
        self._x = x
        f = self._int_factors()
        if f is not None:
            return np.repeat(np.repeat(x, f[0], axis=2), f[1], axis=3)
        return _kernel("upsample_nearest2d")(x, scale_factor=self.scale_factor, size=self.size, mode=self.mode)

    def backward(self, grad_out):
        x = saved(self._x, "Upsample")
        f = self._int_factors()
        if f is not None:
            n, c, h, w = x.shape
            return grad_out.reshape(n, c, h, f[0], w, f[1]).sum(axis=(3, 5))
        return _kernel("upsample_nearest2d_backward")(grad_out, x, scale_factor=self.scale_factor, size=self.size,
                                                      mode=self.mode)
