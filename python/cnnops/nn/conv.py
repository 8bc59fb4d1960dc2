"""Convolution layers over the cnnops kernels: Conv1d/2d/3d and ConvTranspose1d/2d/3d.

Weights use PyTorch's layouts (conv: (out, in/groups, *k); transposed: (in, out/groups, *k)), so
PyTorch state_dicts load unchanged. Forward keeps a reference to its input (no copy); backward
asks the kernel only for the gradients that are needed (frozen weights, no bias, first layer).
"""
from __future__ import annotations

import numpy as np

from .. import conv as _conv
from .. import conv_transpose as _convt
from . import init
from .module import Module, Parameter, check_dtype, check_ndim, saved

_LAYOUT = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _tuple(v, nd):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * nd


class _ConvNd(Module):
    _nd = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", output_padding=0, algo="auto", dtype=np.float32, rng=None):
        super().__init__()
        nd = self._nd
        name = type(self).__name__
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                             f"divisible by groups ({groups})")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _tuple(kernel_size, nd)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.output_padding = output_padding
        self.groups, self.padding_mode, self.algo = int(groups), padding_mode, algo
        if self._transposed:
            wshape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            wshape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(np.empty(wshape, dtype=dtype))
        self.bias = Parameter(np.empty((out_channels,), dtype=dtype)) if bias else None
        if self._transposed:
            # PyTorch computes fan_in of a transposed weight from dim 1 (out/groups * k)
            init.default_init_(self.weight, None, rng)
            fi = wshape[1] * int(np.prod(self.kernel_size))
            if self.bias is not None:
                b = 1.0 / np.sqrt(fi)
                init.uniform_(self.bias, -b, b, rng)
        else:
            init.default_init_(self.weight, self.bias, rng)
        self._x = None

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != 0:
            s += f", padding={self.padding}"
        if self.dilation != 1:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s

    def forward(self, x):
        name = type(self).__name__
        check_dtype(x, name)
        check_ndim(x, (self._nd + 2,), _LAYOUT[self._nd], name)
        w = self.weight.data
        if x.dtype != w.dtype:
            raise TypeError(f"{name}: input dtype {x.dtype} differs from the weight dtype {w.dtype}")
        b = None if self.bias is None else self.bias.data
        self._x = x
        if self._transposed:
            f = getattr(_convt, f"conv_transpose{self._nd}d")
            return f(x, w, b, stride=self.stride, padding=self.padding, output_padding=self.output_padding,
                     groups=self.groups, dilation=self.dilation, algo=self.algo)
        f = getattr(_conv, f"conv{self._nd}d")
        return f(x, w, b, stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups,
                 padding_mode=self.padding_mode, algo=self.algo)

    def backward(self, grad_out):
        name = type(self).__name__
        x = saved(self._x, name)
        wp, bp = self.weight, self.bias
        needs = (bool(self.needs_input_grad), wp.requires_grad, bp is not None and bp.requires_grad)
        if not any(needs):
            return None
        if grad_out.dtype != x.dtype:
            grad_out = grad_out.astype(x.dtype)
        if self._transposed:
            f = getattr(_convt, f"conv_transpose{self._nd}d_backward")
            gi, gw, gb = f(grad_out, x, wp.data, stride=self.stride, padding=self.padding,
                           output_padding=self.output_padding, groups=self.groups, dilation=self.dilation,
                           needs=needs, algo=self.algo)
        else:
            f = getattr(_conv, f"conv{self._nd}d_backward")
            gi, gw, gb = f(grad_out, x, wp.data, stride=self.stride, padding=self.padding, dilation=self.dilation,
                           groups=self.groups, padding_mode=self.padding_mode, needs=needs, algo=self.algo)
        if gw is not None:
            wp.accumulate(gw)
        if gb is not None:
            bp.accumulate(gb)
        return gi


class Conv1d(_ConvNd):
    """1-D convolution layer: input (N, C_in, L) -> (N, C_out, L_out). Options as cnnops.conv1d
    (padding may be an int, per-side pads, "same", "valid" or "full"; padding_mode zeros/reflect/
    replicate/circular)."""
    _nd = 1


class Conv2d(_ConvNd):
    """2-D convolution layer: input (N, C_in, H, W) -> (N, C_out, H_out, W_out); weight
    (C_out, C_in/groups, kH, kW), bias (C_out,). Options as cnnops.conv2d."""
    _nd = 2


class Conv3d(_ConvNd):
    """3-D convolution layer: input (N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out)."""
    _nd = 3


class _ConvTransposeNd(_ConvNd):
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, algo="auto", dtype=np.float32, rng=None):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, bias=bias, output_padding=output_padding, algo=algo, dtype=dtype, rng=rng)


class ConvTranspose1d(_ConvTransposeNd):
    """Transposed 1-D convolution layer: (N, C_in, L) -> (N, C_out, L_out); weight
    (C_in, C_out/groups, kL) as in PyTorch."""
    _nd = 1


class ConvTranspose2d(_ConvTransposeNd):
    """Transposed 2-D convolution layer (learned upsampling): (N, C_in, H, W) -> (N, C_out, H_out,
    W_out), H_out = (H-1)*stride - 2*padding + dilation*(kH-1) + output_padding + 1."""
    _nd = 2


class ConvTranspose3d(_ConvTransposeNd):
    """Transposed 3-D convolution layer: (N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out)."""
    _nd = 3
