"""Batch normalisation of (N, C, *) arrays per channel, forward and backward. The op is pure:
it returns the statistics it used and changes nothing it is given (running averages are the
caller's, as in :class:`cnnops.nn.BatchNorm2d`)."""
from __future__ import annotations

import math

from . import _C
from ._args import flag, is_real, needs3, to_float
from ._arrays import prepare, wrap


def _eps(eps, op):
    if not is_real(eps) or not math.isfinite(to_float(eps, "eps", op)) or eps < 0:
        raise ValueError(f"{op}: expected eps as a finite number >= 0, got {eps!r}")
    return float(eps)


def batch_norm(input, weight=None, bias=None, mean=None, var=None, eps=1e-5):
    """y = (x - mean) / sqrt(var + eps) * weight + bias per channel of an (N, C, *) array.

    mean and var None: the batch's statistics over N and every spatial position (var biased, the
    one the normalisation divides by; PyTorch's training mode); both given, (C,) each: those (its
    eval mode with running averages). weight/bias (C,) or None (1 and 0). Returns
    ``(output, mean, var)``, the statistics as used. float32 or float64; per channel the sums run
    in double, parallel over channels."""
    op = "batch_norm"
    x = prepare(input, op, "input")
    args = [prepare(a, op, n, optional=True) for a, n in ((weight, "weight"), (bias, "bias"), (mean, "mean"),
                                                           (var, "var"))]
    y, m, v = _C.batch_norm(op, x, *args, _eps(eps, op))
    return wrap(y, input), wrap(m, input), wrap(v, input)


def batch_norm_backward(grad_output, input, weight, mean, var, eps=1e-5, batch_stats=True, needs=(True, True, True)):
    """Gradients (grad_input, grad_weight, grad_bias) of :func:`batch_norm` at (input, weight)
    with the statistics it returned. batch_stats: they were the batch's own (training mode), so
    grad_input carries the terms through the mean and variance; False: they were given constants.
    weight None: a unit weight. ``needs`` picks the gradients computed (None for the others)."""
    op = "batch_norm_backward"
    needs = needs3(needs, op)
    dy, x = prepare(grad_output, op, "grad_output"), prepare(input, op, "input")
    w = prepare(weight, op, "weight", optional=True)
    m, v = prepare(mean, op, "mean"), prepare(var, op, "var")
    gi, gw, gb = _C.batch_norm_backward(op, dy, x, w, m, v, _eps(eps, op), flag(batch_stats, "batch_stats", op), needs)
    return wrap(gi, input), wrap(gw, input), wrap(gb, input)
