"""Element-wise activations, Softmax and Dropout.

None of them modifies ``grad_out``. ``inplace=True`` (ReLU, LeakyReLU) writes the result over the
input array: only safe when nothing else reads that array (e.g. the output of the layer before)."""
from __future__ import annotations

import numpy as np

from . import init
from .module import Module, check_dtype, saved


class ReLU(Module):
    """max(x, 0). Backward passes grad where the output is positive."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = bool(inplace)
        self._y = None

    def forward(self, x):
        check_dtype(x, "ReLU")
        y = np.maximum(x, 0, out=x if self.inplace else None)
        self._y = y
        return y

    def backward(self, grad_out):
        y = saved(self._y, "ReLU")
        return np.multiply(grad_out, y > 0)


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = float(negative_slope)
        self.inplace = bool(inplace)
        self._mask = None

    def forward(self, x):
        check_dtype(x, "LeakyReLU")
        mask = x > 0
        self._mask = mask
        scale = np.where(mask, x.dtype.type(1), x.dtype.type(self.negative_slope))
        return np.multiply(x, scale, out=x if self.inplace else None)

    def backward(self, grad_out):
        mask = saved(self._mask, "LeakyReLU")
        return np.where(mask, grad_out, grad_out * grad_out.dtype.type(self.negative_slope))


class Sigmoid(Module):
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""

    def __init__(self):
        super().__init__()
        self._y = None

    def forward(self, x):
        check_dtype(x, "Sigmoid")
        y = sigmoid(x)
        self._y = y
        return y

    def backward(self, grad_out):
        y = saved(self._y, "Sigmoid")
        return grad_out * y * (1 - y)


def sigmoid(x):
    """Numerically stable logistic function: exp is only taken of -|x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class Tanh(Module):
    def __init__(self):
        super().__init__()
        self._y = None

    def forward(self, x):
        check_dtype(x, "Tanh")
        y = np.tanh(x)
        self._y = y
        return y

    def backward(self, grad_out):
        y = saved(self._y, "Tanh")
        return grad_out * (1 - y * y)


def softmax(x, axis=1):
    """exp(x - max) / sum, along ``axis``."""
    m = x.max(axis=axis, keepdims=True)
    e = np.exp(x - m)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def log_softmax(x, axis=1):
    m = x.max(axis=axis, keepdims=True)
    s = x - m
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


class Softmax(Module):
    """Softmax along ``dim`` (default 1, the channel/class axis). Backward:
    grad_in = y * (grad_out - sum(grad_out * y, dim))."""

    def __init__(self, dim=1):
        super().__init__()
        self.dim = dim
        self._y = None

    def forward(self, x):
        check_dtype(x, "Softmax")
        y = softmax(x, self.dim)
        self._y = y
        return y

    def backward(self, grad_out):
        y = saved(self._y, "Softmax")
        return y * (grad_out - (grad_out * y).sum(axis=self.dim, keepdims=True))


class LogSoftmax(Module):
    def __init__(self, dim=1):
        super().__init__()
        self.dim = dim
        self._y = None

    def forward(self, x):
        check_dtype(x, "LogSoftmax")
        y = log_softmax(x, self.dim)
        self._y = y
        return y

    def backward(self, grad_out):
        y = saved(self._y, "LogSoftmax")
        return grad_out - np.exp(y) * grad_out.sum(axis=self.dim, keepdims=True)


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability p and scale the rest by
    1/(1-p); in eval mode the identity. The mask comes from cnnops.nn.init's generator (or ``rng``)."""

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: expected 0 <= p < 1, got {p}")
        self.p = float(p)
        self._rng = rng
        self._scale = None

    def extra_repr(self):
        return f"p={self.p}"

    def forward(self, x):
        check_dtype(x, "Dropout")
        if not self.training or self.p == 0.0:
            self._scale = None
            return x
        g = init.get_rng(self._rng) if not isinstance(self._rng, int) else self._rng_gen()
        keep = g.random(x.shape, dtype=x.dtype if x.dtype == np.float64 else np.float32) >= self.p
        scale = keep.astype(x.dtype)
        scale *= x.dtype.type(1.0 / (1.0 - self.p))
        self._scale = scale
        return x * scale

    def _rng_gen(self):
        self._rng = np.random.default_rng(self._rng)
        return self._rng

    def backward(self, grad_out):
        if self._scale is None:
            return grad_out
        return grad_out * self._scale
