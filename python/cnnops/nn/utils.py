"""Gradient clipping, as torch.nn.utils: ``clip_grad_norm_`` and ``clip_grad_value_``.

Both act in place on ``Parameter.grad`` and skip parameters whose gradient is None (frozen ones
never get one)."""
from __future__ import annotations

import math

import numpy as np

from .module import Parameter


def _grads(parameters, op):
    if isinstance(parameters, Parameter):
        parameters = [parameters]
    elif hasattr(parameters, "parameters") and callable(parameters.parameters):
        parameters = parameters.parameters()
    out = []
    for p in parameters:
        if not isinstance(p, Parameter):
            raise TypeError(f"{op}: expected Parameters (or a Module), got {type(p).__name__}")
        if p.grad is not None:
            out.append(p)
    return out


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False) -> float:
    """Scale the gradients of ``parameters`` (Parameters or a Module) in place so that their
    total norm, the ``norm_type`` norm of all gradients taken as one vector (``float("inf")``:
    the largest magnitude), is at most ``max_norm``: each gradient is multiplied by
    min(1, max_norm / (total_norm + 1e-6)), as torch.nn.utils.clip_grad_norm_. Returns the total
    norm before clipping. A non-finite total norm raises RuntimeError when
    ``error_if_nonfinite``; otherwise the gradients are scaled by the resulting NaN factor (as
    PyTorch does)."""
    op = "clip_grad_norm_"
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not max_norm >= 0:
        raise ValueError(f"{op}: expected max_norm >= 0, got {max_norm}")
    if not (norm_type > 0 or math.isinf(norm_type)):
        raise ValueError(f"{op}: expected norm_type > 0 or inf, got {norm_type}")
    params = _grads(parameters, op)
    if not params:
        return 0.0
    if math.isinf(norm_type):
        total = max(float(np.max(np.abs(p.grad))) if p.grad.size else 0.0 for p in params)
    else:
        acc = 0.0
        for p in params:
            g = np.abs(p.grad.astype(np.float64, copy=False))
            acc += float(np.sum(g * g)) if norm_type == 2.0 else float(np.sum(g ** norm_type))
        total = acc ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"{op}: the total norm of order {norm_type} of the gradients is {total}; expected a "
                           f"finite value (error_if_nonfinite=True)")
    coef = max_norm / (total + 1e-6)
    if coef < 1.0 or math.isnan(coef):
        for p in params:
            p.grad *= p.grad.dtype.type(coef)
    return total


def clip_grad_value_(parameters, clip_value) -> None:
    """Clip every gradient element of ``parameters`` into [-clip_value, clip_value], in place."""
    op = "clip_grad_value_"
    clip_value = float(clip_value)
    if not clip_value >= 0:
        raise ValueError(f"{op}: expected clip_value >= 0, got {clip_value}")
    for p in _grads(parameters, op):
        np.clip(p.grad, -clip_value, clip_value, out=p.grad)
