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

    def macs(self, input_shape, output_shape) -> int:
        """A convolution: every output element sums (C_in/groups) * prod(kernel) products. A
        transposed convolution: every input element is multiplied by (C_out/groups) * prod(kernel)
        weights (the count of torch.utils.flop_counter; bias additions are not counted)."""
        k = int(np.prod(self.kernel_size))
        if self._transposed:
            n, c = input_shape[0], input_shape[1]
            return int(n * np.prod(input_shape[2:], dtype=np.int64) * c * (self.out_channels // self.groups) * k)
        n, c = output_shape[0], output_shape[1]
        return int(n * np.prod(output_shape[2:], dtype=np.int64) * c * (self.in_channels // self.groups) * k)

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


class LocallyConnected2d(Module):
    """A convolution without weight sharing (Taigman et al.'s DeepFace "locally connected"
    layer, Keras' LocallyConnected2D): every output position (i, j) has its own filter bank, so
    input (N, C_in, H, W) -> (N, C_out, H_out, W_out) with
    y[n, o, i, j] = b[o, i, j] + sum_{c, u, v} W[i, j, o, c, u, v] * x_pad[n, c, i*sh + u, j*sw + v].

    The input size is fixed when the layer is built (``input_size`` (H, W)); weight
    (H_out, W_out, C_out, C_in, kH, kW), bias (C_out, H_out, W_out) (one per output neuron, the
    "without parameter sharing" count: H_out * W_out * C_out * (C_in * kH * kW + 1)). Forward
    unfolds the zero-padded input into (H_out * W_out, N, C_in * kH * kW) windows and runs one
    batched matrix product per output position; backward multiplies by the same windows for the
    weight gradient and folds the window gradients back onto the input. Initial values as a
    convolution's (uniform in +-1/sqrt(C_in * kH * kW))."""

    def __init__(self, in_channels, out_channels, input_size, kernel_size, stride=1, padding=0, bias=True,
                 dtype=np.float32, rng=None):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.input_size = _tuple(input_size, 2)
        self.kernel_size = _tuple(kernel_size, 2)
        self.stride, self.padding = _tuple(stride, 2), _tuple(padding, 2)
        (h, w), (kh, kw), (sh, sw), (ph, pw) = self.input_size, self.kernel_size, self.stride, self.padding
        if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0:
            raise ValueError(f"LocallyConnected2d: expected kernel_size and stride >= 1 and padding >= 0, got "
                             f"{self.kernel_size}, {self.stride} and {self.padding}")
        self.output_size = ((h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
        oh, ow = self.output_size
        if oh < 1 or ow < 1:
            raise ValueError(f"LocallyConnected2d: the kernel {self.kernel_size} is larger than the padded input "
                             f"{(h + 2 * ph, w + 2 * pw)}")
        fan_in = self.in_channels * kh * kw
        bound = 1.0 / np.sqrt(fan_in)
        self.weight = Parameter(np.empty((oh, ow, self.out_channels, self.in_channels, kh, kw), dtype=dtype))
        init.uniform_(self.weight, -bound, bound, rng)
        self.bias = None
        if bias:
            self.bias = Parameter(np.empty((self.out_channels, oh, ow), dtype=dtype))
            init.uniform_(self.bias, -bound, bound, rng)
        self._cache = None

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, input_size={self.input_size}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}")

    def macs(self, input_shape, output_shape) -> int:
        """As a convolution of the same shapes: C_in * kH * kW products per output element."""
        return int(np.prod(output_shape, dtype=np.int64)) * self.in_channels * int(np.prod(self.kernel_size))

    def _windows(self, x):
        """(L, N, K) copies of the receptive fields, L = H_out * W_out, K = C_in * kH * kW."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        oh, ow = self.output_size
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
        win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
        win = win[:, :, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw]  # (N, C, oh, ow, kh, kw)
        n = x.shape[0]
        return np.ascontiguousarray(win.transpose(2, 3, 0, 1, 4, 5)).reshape(oh * ow, n, -1)

    def forward(self, x):
        check_dtype(x, "LocallyConnected2d")
        want = (self.in_channels,) + self.input_size
        if x.ndim != 4 or x.shape[1:] != want:
            raise ValueError(f"LocallyConnected2d: expected input (N, {want[0]}, {want[1]}, {want[2]}), got shape "
                             f"{x.shape}")
        w = self.weight.data
        if x.dtype != w.dtype:
            raise TypeError(f"LocallyConnected2d: input dtype {x.dtype} differs from the weight dtype {w.dtype}")
        oh, ow = self.output_size
        cols = self._windows(x)
        wl = w.reshape(oh * ow, self.out_channels, -1)                  # (L, O, K)
        y = np.matmul(cols, wl.transpose(0, 2, 1))                       # (L, N, O)
        y = np.ascontiguousarray(y.transpose(1, 2, 0)).reshape(x.shape[0], self.out_channels, oh, ow)
        if self.bias is not None:
            y += self.bias.data
        self._cache = (x.shape, cols)
        return y

    def backward(self, grad_out):
        shape, cols = saved(self._cache, "LocallyConnected2d")
        n = shape[0]
        oh, ow = self.output_size
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        gl = grad_out.reshape(n, self.out_channels, oh * ow).transpose(2, 0, 1)   # (L, N, O)
        if self.weight.requires_grad:
            gw = np.matmul(gl.transpose(0, 2, 1), cols)                          # (L, O, K)
            self.weight.accumulate(gw.reshape(self.weight.shape).astype(self.weight.dtype, copy=False))
        if self.bias is not None and self.bias.requires_grad:
            self.bias.accumulate(grad_out.sum(axis=0))
        if not self.needs_input_grad:
            return None
        wl = self.weight.data.reshape(oh * ow, self.out_channels, -1)
        gcols = np.matmul(gl, wl).reshape(oh, ow, n, self.in_channels, kh, kw)
        gxp = np.zeros((n, self.in_channels, shape[2] + 2 * ph, shape[3] + 2 * pw), dtype=grad_out.dtype)
        for u in range(kh):
            for v in range(kw):
                # window offset (u, v) of output (i, j) reads input row i*sh + u, column j*sw + v
                gxp[:, :, u:u + (oh - 1) * sh + 1:sh, v:v + (ow - 1) * sw + 1:sw] += \
                    gcols[:, :, :, :, u, v].transpose(2, 3, 0, 1)
        return np.ascontiguousarray(gxp[:, :, ph:ph + shape[2], pw:pw + shape[3]])
