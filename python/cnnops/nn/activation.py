"""Element-wise activations, Softmax and Dropout.

None of them modifies ``grad_out``. ``inplace=True`` (ReLU, LeakyReLU) writes the result over the
input array: only safe when nothing else reads that array (e.g. the output of the layer before)."""
from __future__ import annotations

import math

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


class Softplus(Module):
    """log(1 + exp(beta * x)) / beta, computed without overflow; where beta * x > threshold the
    layer returns x (PyTorch's rule, which keeps the float32 result exact there). Backward:
    grad * sigmoid(beta * x), or grad where the linear branch was taken."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        if not beta > 0:
            raise ValueError(f"Softplus: expected beta > 0, got {beta}")
        self.beta, self.threshold = float(beta), float(threshold)
        self._x = None

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"

    def forward(self, x):
        check_dtype(x, "Softplus")
        self._x = x
        bx = x * x.dtype.type(self.beta)
        soft = (np.maximum(bx, 0) + np.log1p(np.exp(-np.abs(bx)))) / x.dtype.type(self.beta)
        return np.where(bx > self.threshold, x, soft).astype(x.dtype, copy=False)

    def backward(self, grad_out):
        x = saved(self._x, "Softplus")
        bx = x * x.dtype.type(self.beta)
        return np.where(bx > self.threshold, grad_out, grad_out * sigmoid(bx)).astype(grad_out.dtype, copy=False)


class ELU(Module):
    """x for x > 0, alpha * (exp(x) - 1) otherwise (Clevert et al. 2016). Backward: grad for
    x > 0, grad * (y + alpha) otherwise."""

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = float(alpha)
        self._cache = None

    def extra_repr(self):
        return f"alpha={self.alpha}"

    def forward(self, x):
        check_dtype(x, "ELU")
        pos = x > 0
        y = np.where(pos, x, x.dtype.type(self.alpha) * np.expm1(np.minimum(x, 0))).astype(x.dtype, copy=False)
        self._cache = (pos, y)
        return y

    def backward(self, grad_out):
        pos, y = saved(self._cache, "ELU")
        return np.where(pos, grad_out, grad_out * (y + y.dtype.type(self.alpha))).astype(grad_out.dtype, copy=False)


def _erf(x):
    """The error function, element-wise: scipy.special.erf when SciPy is installed, else
    Python's math.erf over the elements (both correctly rounded to a few ulp in float64)."""
    try:
        from scipy.special import erf
    except ImportError:
        return np.frompyfunc(math.erf, 1, 1)(x).astype(x.dtype)
    return erf(x)


class GELU(Module):
    """x * Phi(x), Phi the standard normal CDF (Hendrycks & Gimpel 2016):
    0.5 * x * (1 + erf(x / sqrt(2))). ``approximate="tanh"``: 0.5 * x * (1 + tanh(sqrt(2/pi) *
    (x + 0.044715 x^3))), as PyTorch's. Backward: Phi(x) + x * phi(x) (or the derivative of the
    tanh form)."""

    _C = math.sqrt(2.0 / math.pi)

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: expected approximate 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate
        self._x = None

    def extra_repr(self):
        return f"approximate={self.approximate!r}"

    def forward(self, x):
        check_dtype(x, "GELU")
        self._x = x
        if self.approximate == "tanh":
            t = np.tanh(self._C * (x + 0.044715 * x ** 3))
            return (0.5 * x * (1 + t)).astype(x.dtype, copy=False)
        return (0.5 * x * (1 + _erf(x * (1 / math.sqrt(2.0))))).astype(x.dtype, copy=False)

    def backward(self, grad_out):
        x = saved(self._x, "GELU")
        if self.approximate == "tanh":
            t = np.tanh(self._C * (x + 0.044715 * x ** 3))
            d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * self._C * (1 + 3 * 0.044715 * x * x)
        else:
            d = 0.5 * (1 + _erf(x * (1 / math.sqrt(2.0)))) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return (grad_out * d).astype(grad_out.dtype, copy=False)


class Maxout(Module):
    """Maxout (Goodfellow et al. 2013): the maximum over groups of ``pool_size`` consecutive
    features along ``dim`` (channels by default): (N, C, ...) -> (N, C / pool_size, ...). After a
    Linear or Conv layer with pool_size times as many outputs, each output is a maxout unit (the
    maximum of pool_size affine pieces). Backward routes each gradient to its group's first
    maximum."""

    def __init__(self, pool_size, dim=1):
        super().__init__()
        if int(pool_size) != pool_size or pool_size < 1:
            raise ValueError(f"Maxout: expected pool_size as an integer >= 1, got {pool_size}")
        self.pool_size, self.dim = int(pool_size), int(dim)
        self._cache = None

    def extra_repr(self):
        return f"pool_size={self.pool_size}, dim={self.dim}"

    def forward(self, x):
        check_dtype(x, "Maxout")
        d = self.dim % x.ndim if -x.ndim <= self.dim < x.ndim else None
        if d is None:
            raise ValueError(f"Maxout: expected dim in [-{x.ndim}, {x.ndim}) for input shape {x.shape}, got {self.dim}")
        k = self.pool_size
        if x.shape[d] % k:
            raise ValueError(f"Maxout: expected the size of dim {self.dim} divisible by pool_size {k}, got shape "
                             f"{x.shape}")
        xr = x.reshape(x.shape[:d] + (x.shape[d] // k, k) + x.shape[d + 1:])
        idx = np.expand_dims(xr.argmax(axis=d + 1), d + 1)
        self._cache = (x.shape, xr.shape, d, idx)
        return np.take_along_axis(xr, idx, axis=d + 1).squeeze(d + 1)

    def backward(self, grad_out):
        shape, rshape, d, idx = saved(self._cache, "Maxout")
        g = np.zeros(rshape, dtype=grad_out.dtype)
        np.put_along_axis(g, idx, np.expand_dims(grad_out, d + 1), axis=d + 1)
        return g.reshape(shape)


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
