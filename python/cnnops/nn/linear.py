"""Linear (fully connected) layer and Flatten.

Small matrix products run on one BLAS thread. NumPy's OpenBLAS keeps its own thread pool next to
the OpenMP pool of the cnnops kernels; on a machine with few cores, waking OpenBLAS's threads while
OpenMP's still spin after a convolution made a 64x400x120 product 100-200x slower (measured: 0.3 ms
on one thread vs 55-77 ms with two, right after a conv2d, 2 cores). Products of at least
``BLAS_THREADED_MIN_FLOPS`` keep the BLAS default.
"""
from __future__ import annotations

import numpy as np

from . import init
from .module import Module, Parameter, check_dtype, saved

BLAS_THREADED_MIN_FLOPS = 64e6
_blas_libs = None


def _blas_controllers():
    global _blas_libs
    if _blas_libs is None:
        try:
            import threadpoolctl

            _blas_libs = threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers
        except Exception:  # threadpoolctl missing or unable to inspect: leave BLAS alone
            _blas_libs = []
    return _blas_libs


def matmul(a, b):
    """np.matmul(a, b), on one BLAS thread when the product is small (see the module docstring)."""
    flops = 2.0 * a.size * b.shape[-1]
    libs = _blas_controllers() if flops < BLAS_THREADED_MIN_FLOPS else ()
    if not libs:
        return np.matmul(a, b)
    before = [lib.num_threads for lib in libs]
    if all(n == 1 for n in before):
        return np.matmul(a, b)
    for lib in libs:
        lib.set_num_threads(1)
    try:
        return np.matmul(a, b)
    finally:
        for lib, n in zip(libs, before):
            lib.set_num_threads(n)


class Linear(Module):
    """y = x @ W.T + b with W (out_features, in_features) as in PyTorch, b (out_features,).

    input (N, in_features) (any leading dimensions are allowed: (..., in_features)) ->
    (..., out_features). One matmul each for forward, grad_input and grad_weight (BLAS reads W.T
    through strides, nothing is copied); the bias is added in place.

    ``drop_connect=p`` (DropConnect, Wan et al. 2013): in training, each weight is zeroed with
    probability p and the kept ones are scaled by 1/(1-p), so the expected weight is W; one mask
    is drawn per forward call (shared by the mini-batch: the per-example masks of the paper
    would need an (N, out, in) array) from cnnops.nn.init's generator. In eval mode the layer
    uses W itself (the mean of the masked weights). Backward masks the weight gradient the same
    way."""

    def __init__(self, in_features, out_features, bias=True, drop_connect=0.0, dtype=np.float32, rng=None):
        super().__init__()
        if not 0.0 <= drop_connect < 1.0:
            raise ValueError(f"Linear: expected 0 <= drop_connect < 1, got {drop_connect}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.drop_connect = float(drop_connect)
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        self.bias = Parameter(np.empty((out_features,), dtype=dtype)) if bias else None
        init.default_init_(self.weight, self.bias, rng)
        self._x = None
        self._mask = None

    def extra_repr(self):
        s = f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        return s + (f", drop_connect={self.drop_connect}" if self.drop_connect else "")

    def macs(self, input_shape, output_shape) -> int:
        """in_features * out_features multiply-adds per input row (the bias is not counted)."""
        return int(np.prod(input_shape[:-1], dtype=np.int64)) * self.in_features * self.out_features

    def forward(self, x):
        check_dtype(x, "Linear")
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: expected input (..., {self.in_features}), got shape {x.shape}")
        w = self.weight.data
        if x.dtype != w.dtype:
            raise TypeError(f"Linear: input dtype {x.dtype} differs from the weight dtype {w.dtype}")
        self._x = x
        self._mask = None
        if self.training and self.drop_connect > 0.0:
            keep = init.get_rng().random(w.shape, dtype=w.dtype) >= self.drop_connect
            self._mask = keep.astype(w.dtype)
            self._mask *= w.dtype.type(1.0 / (1.0 - self.drop_connect))
            w = w * self._mask
        y = matmul(x, w.T)
        if self.bias is not None:
            np.add(y, self.bias.data, out=y)
        return y

    def backward(self, grad_out):
        x = saved(self._x, "Linear")
        g2 = grad_out.reshape(-1, self.out_features)
        mask = self._mask
        if self.weight.requires_grad:
            gw = matmul(g2.T, x.reshape(-1, self.in_features))
            if mask is not None:
                gw *= mask
            self.weight.accumulate(gw)
        if self.bias is not None and self.bias.requires_grad:
            self.bias.accumulate(g2.sum(axis=0))
        if not self.needs_input_grad:
            return None
        w = self.weight.data if mask is None else self.weight.data * mask
        return matmul(grad_out, w)


class Flatten(Module):
    """Flattens dimensions start_dim..end_dim: (N, C, H, W) -> (N, C*H*W) by default (a view)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim
        self._shape = None

    def forward(self, x):
        self._shape = x.shape
        nd = x.ndim
        s = self.start_dim % nd
        e = self.end_dim % nd
        if s > e:
            raise ValueError(f"Flatten: start_dim {self.start_dim} comes after end_dim {self.end_dim} for {nd} dims")
        return x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1:])

    def backward(self, grad_out):
        return grad_out.reshape(saved(self._shape, "Flatten"))


class Identity(Module):
    """Returns its input unchanged."""

    def forward(self, x):
        return x

    def backward(self, grad_out):
        return grad_out
