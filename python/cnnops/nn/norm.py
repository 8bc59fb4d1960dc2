"""Normalisation layers: BatchNorm1d/2d (on the batch_norm kernels) and LocalResponseNorm (as in
AlexNet, NumPy)."""
from __future__ import annotations

import numpy as np

from ..norm import batch_norm, batch_norm_backward
from .module import Module, Parameter, check_dtype, check_ndim, saved


class _BatchNorm(Module):
    _ndims = (2,)
    _layout = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 dtype=np.float32):
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        else:
            self.weight = self.bias = None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))
        else:
            self.running_mean = self.running_var = None
        self._cache = None

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"

    def forward(self, x):
        name = type(self).__name__
        check_dtype(x, name)
        check_ndim(x, self._ndims, self._layout, name)
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}: expected {self.num_features} channels, got input shape {x.shape}")
        use_batch = self.training or not self.track_running_stats
        w = self.weight.data if self.affine else None
        b = self.bias.data if self.affine else None
        if use_batch:
            m = x.size // x.shape[1]
            if m < 2 and self.training:
                raise ValueError(f"{name}: expected more than 1 value per channel when training, got input shape "
                                 f"{x.shape}")
            y, mean, var = batch_norm(x, w, b, eps=self.eps)
            if self.training and self.track_running_stats:
                self.num_batches_tracked += 1
                mom = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                rm, rv = self.running_mean, self.running_var
                rm *= 1 - mom
                rm += mom * mean
                rv *= 1 - mom
                rv += mom * var * (m / max(m - 1, 1))
        else:
            y, mean, var = batch_norm(x, w, b, self.running_mean, self.running_var, eps=self.eps)
        # the input is kept by reference, as every cnnops.nn layer keeps what its backward reads
        self._cache = (x, mean, var, use_batch)
        return y

    def backward(self, grad_out):
        x, mean, var, use_batch = saved(self._cache, type(self).__name__)
        needs = (bool(self.needs_input_grad), bool(self.affine and self.weight.requires_grad),
                 bool(self.affine and self.bias.requires_grad))
        w = self.weight.data if self.affine else None
        gi, gw, gb = batch_norm_backward(grad_out, x, w, mean, var, eps=self.eps, batch_stats=use_batch, needs=needs)
        if gw is not None:
            self.weight.accumulate(gw)
        if gb is not None:
            self.bias.accumulate(gb)
        return gi


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L) inputs, per channel C."""
    _ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs per channel: statistics over N, H, W in training
    (running averages with ``momentum``, unbiased variance), the running ones in eval mode."""
    _ndims = (4,)
    _layout = "(N, C, H, W)"


class LocalResponseNorm(Module):
    """Local response normalisation across channels (AlexNet), as in PyTorch:
    b_c = a_c / (k + alpha/size * sum_{c' = c - size//2}^{c + (size-1)//2} a_{c'}^2) ** beta
    (channels outside [0, C) count as zero). Input (N, C, *)."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        if size < 1:
            raise ValueError(f"LocalResponseNorm: expected size >= 1, got {size}")
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)
        self._cache = None

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"

    def _window_sum(self, v, lo, hi):
        # s_c = sum_{j = c - lo}^{c + hi} v_j along axis 1, zero outside
        c = v.shape[1]
        cs = np.zeros((v.shape[0], c + 1) + v.shape[2:], dtype=v.dtype)
        np.cumsum(v, axis=1, out=cs[:, 1:])
        idx = np.arange(c)
        top = np.minimum(idx + hi + 1, c)
        bot = np.maximum(idx - lo, 0)
        return cs[:, top] - cs[:, bot]

    def forward(self, x):
        check_dtype(x, "LocalResponseNorm")
        if x.ndim < 3:
            raise ValueError(f"LocalResponseNorm: expected input with at least 3 dimensions (N, C, *), got shape "
                             f"{x.shape}")
        n = self.size
        s = self._window_sum(x * x, n // 2, (n - 1) // 2)
        d = self.k + (self.alpha / n) * s
        y = x * d ** (-self.beta)
        self._cache = (x, d, y)
        return y.astype(x.dtype, copy=False)

    def backward(self, grad_out):
        x, d, y = saved(self._cache, "LocalResponseNorm")
        n = self.size
        # channel j's window contains c iff c - (n-1)//2 <= j <= c + n//2
        t = grad_out * y / d
        s = self._window_sum(t, (n - 1) // 2, n // 2)
        return grad_out * d ** (-self.beta) - (2.0 * self.alpha * self.beta / n) * x * s
