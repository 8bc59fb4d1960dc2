"""Weight initialisers (in place on a Parameter or a NumPy array) and the layer API's random
generator.

fan_in / fan_out follow PyTorch: for a weight of shape (out, in, *kernel), fan_in = in * prod(kernel)
and fan_out = out * prod(kernel) (for transposed convolutions, whose weight is (in, out, *kernel),
PyTorch uses the same formula on the stored shape; so do we).
"""
from __future__ import annotations

import math

import numpy as np

_rng = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Reseed the generator used by every initialiser and by Dropout."""
    global _rng
    _rng = np.random.default_rng(seed)


def get_rng(rng=None) -> np.random.Generator:
    """``rng`` if given (a Generator or an int seed), else the layer API's generator."""
    if rng is None:
        return _rng
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _array(t):
    return t.data if hasattr(t, "data") and not isinstance(t, np.ndarray) else t


def fans(shape):
    """(fan_in, fan_out) of a weight shape (out, in, *kernel) or (out, in)."""
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"init: fan in/out needs a weight with at least 2 dimensions, got shape {shape}")
    rf = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * rf, shape[0] * rf


def calculate_gain(nonlinearity: str, param=None) -> float:
    """Gain of PyTorch's table: linear/conv/sigmoid 1, tanh 5/3, relu sqrt(2), leaky_relu
    sqrt(2 / (1 + slope^2)), selu 3/4."""
    if nonlinearity in ("linear", "identity", "sigmoid") or nonlinearity.startswith("conv"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + slope * slope))
    if nonlinearity == "selu":
        return 0.75
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")


def _fill(t, values):
    a = _array(t)
    a[...] = values
    return t


def _fan(shape, mode):
    fi, fo = fans(shape)
    if mode == "fan_in":
        return fi
    if mode == "fan_out":
        return fo
    raise ValueError(f"init: expected mode 'fan_in' or 'fan_out', got {mode!r}")


def _draw(arr, kind, rng):
    """Random numbers of arr's shape, drawn directly in float32 for float32 arrays (no float64
    temporary for large layers)."""
    g = get_rng(rng)
    dt = np.float32 if arr.dtype == np.float32 else np.float64
    return g.random(arr.shape, dtype=dt) if kind == "uniform" else g.standard_normal(arr.shape, dtype=dt)


def uniform_(t, a=0.0, b=1.0, rng=None):
    """Fill with U(a, b)."""
    arr = _array(t)
    v = _draw(arr, "uniform", rng)
    v *= v.dtype.type(b - a)
    v += v.dtype.type(a)
    return _fill(t, v)


def normal_(t, mean=0.0, std=1.0, rng=None):
    """Fill with N(mean, std^2)."""
    arr = _array(t)
    v = _draw(arr, "normal", rng)
    v *= v.dtype.type(std)
    v += v.dtype.type(mean)
    return _fill(t, v)


def zeros_(t):
    return _fill(t, 0)


def ones_(t):
    return _fill(t, 1)


def kaiming_uniform_(t, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng=None):
    """He uniform: U(-bound, bound), bound = gain * sqrt(3 / fan)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(_array(t).shape, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(t, -bound, bound, rng)


def kaiming_normal_(t, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng=None):
    """He normal: N(0, std^2), std = gain / sqrt(fan)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(_array(t).shape, mode))
    return normal_(t, 0.0, std, rng)


he_uniform_ = kaiming_uniform_
he_normal_ = kaiming_normal_


def xavier_uniform_(t, gain=1.0, rng=None):
    """Glorot uniform: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))."""
    fi, fo = fans(_array(t).shape)
    bound = gain * math.sqrt(6.0 / (fi + fo))
    return uniform_(t, -bound, bound, rng)


def xavier_normal_(t, gain=1.0, rng=None):
    """Glorot normal: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fi, fo = fans(_array(t).shape)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fi + fo)), rng)


glorot_uniform_ = xavier_uniform_
glorot_normal_ = xavier_normal_


def trunc_normal_(t, mean=0.0, std=1.0, a=-2.0, b=2.0, rng=None):
    """Normal N(mean, std^2) restricted to [a, b] (absolute bounds, as in PyTorch), drawn by
    rejection: out-of-range draws are redrawn until all lie inside."""
    if not a < b:
        raise ValueError(f"trunc_normal_: expected a < b, got a={a}, b={b}")
    g = get_rng(rng)
    arr = _array(t)
    v = g.normal(mean, std, size=arr.shape)
    bad = (v < a) | (v > b)
    tries = 0
    while bad.any():
        v[bad] = g.normal(mean, std, size=int(bad.sum()))
        bad = (v < a) | (v > b)
        tries += 1
        if tries > 1000:  # the interval holds almost no mass: fall back to clipping
            np.clip(v, a, b, out=v)
            break
    return _fill(t, v)


def default_init_(weight, bias=None, rng=None):
    """PyTorch's default for Linear/Conv: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    fi, _ = fans(_array(weight).shape)
    bound = 1.0 / math.sqrt(fi) if fi > 0 else 0.0
    uniform_(weight, -bound, bound, rng)
    if bias is not None:
        uniform_(bias, -bound, bound, rng)
