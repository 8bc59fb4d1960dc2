"""Optimizers (SGD with momentum/Nesterov/weight decay, Adam, AdamW) and learning-rate schedules
(step, cosine). Updates follow torch.optim's formulas and run in place (``out=``) on each
parameter's array; state buffers are allocated once. Parameters whose ``grad`` is None or whose
``requires_grad`` is False are skipped."""
from __future__ import annotations

import math

import numpy as np

from .module import Parameter


class Optimizer:
    def __init__(self, params, lr):
        params = list(params.parameters() if hasattr(params, "parameters") else params)
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__}: expected Parameters, got {type(p).__name__}")
        if lr < 0:
            raise ValueError(f"{type(self).__name__}: expected lr >= 0, got {lr}")
        self.params = params
        self.lr = float(lr)
        self.initial_lr = float(lr)
        self.state = {}

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def _active(self):
        for p in self.params:
            if p.requires_grad and p.grad is not None:
                yield p

    def step(self):
        raise NotImplementedError

    def state_dict(self):
        """lr and the per-parameter state (momentum/moment buffers, step counts), by position."""
        return {"lr": self.lr, "state": {i: {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                             for k, v in self.state[id(p)].items() if k != "scratch"}
                                         for i, p in enumerate(self.params) if id(p) in self.state}}

    def load_state_dict(self, sd):
        self.lr = float(sd["lr"])
        self.state = {}
        for i, s in sd["state"].items():
            self.state[id(self.params[int(i)])] = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                                   for k, v in s.items()}


class SGD(Optimizer):
    """g = grad + weight_decay * p; buf = momentum * buf + (1 - dampening) * g (buf = g on the
    first step); d = g + momentum * buf (Nesterov) or buf (else g without momentum); p -= lr * d."""

    def __init__(self, params, lr=0.01, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: expected momentum >= 0 and weight_decay >= 0, got {momentum}, {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening 0")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), bool(nesterov)

    def step(self):
        lr, mom, wd = self.lr, self.momentum, self.weight_decay
        for p in self._active():
            x, g = p.data, p.grad
            t = x.dtype.type
            if wd:
                g = g + t(wd) * x
            if mom:
                st = self.state.get(id(p))
                if st is None or "momentum_buffer" not in st:
                    buf = np.array(g, dtype=x.dtype, copy=True)
                    self.state.setdefault(id(p), {})["momentum_buffer"] = buf
                else:
                    buf = st["momentum_buffer"]
                    np.multiply(buf, t(mom), out=buf)
                    if self.dampening:
                        buf += t(1 - self.dampening) * g
                    else:
                        buf += g
                if self.nesterov:
                    g = g + t(mom) * buf
                else:
                    g = buf
            st = self.state.setdefault(id(p), {})
            s = st.get("scratch")
            if s is None or s.shape != x.shape:
                s = st["scratch"] = np.empty_like(x)
            np.multiply(g, t(lr), out=s)
            x -= s


class Adam(Optimizer):
    """Adam (Kingma & Ba): m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
    p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps). weight_decay adds wd * p to g
    (L2, as torch.optim.Adam); AdamW decays the weights directly instead."""

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"{type(self).__name__}: expected betas in [0, 1), got {betas}")
        if eps < 0 or weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: expected eps >= 0 and weight_decay >= 0, got {eps}, "
                             f"{weight_decay}")
        self.betas, self.eps = (float(b1), float(b2)), float(eps)
        self.weight_decay, self.amsgrad = float(weight_decay), bool(amsgrad)

    def step(self):
        lr, (b1, b2), eps, wd = self.lr, self.betas, self.eps, self.weight_decay
        for p in self._active():
            x, g = p.data, p.grad
            t = x.dtype.type
            st = self.state.get(id(p))
            if st is None:
                st = {"step": 0, "exp_avg": np.zeros_like(x), "exp_avg_sq": np.zeros_like(x),
                      "scratch": np.empty_like(x)}
                if self.amsgrad:
                    st["max_exp_avg_sq"] = np.zeros_like(x)
                self.state[id(p)] = st
            st["step"] += 1
            k = st["step"]
            m, v, s = st["exp_avg"], st["exp_avg_sq"], st["scratch"]
            if wd:
                if self._decoupled:
                    x *= t(1 - lr * wd)
                else:
                    g = g + t(wd) * x
            # m = b1 m + (1 - b1) g
            np.multiply(m, t(b1), out=m)
            np.multiply(g, t(1 - b1), out=s)
            m += s
            # v = b2 v + (1 - b2) g^2
            np.multiply(v, t(b2), out=v)
            np.multiply(g, g, out=s)
            s *= t(1 - b2)
            v += s
            vv = v
            if self.amsgrad:
                np.maximum(st["max_exp_avg_sq"], v, out=st["max_exp_avg_sq"])
                vv = st["max_exp_avg_sq"]
            bc1 = 1 - b1 ** k
            bc2 = 1 - b2 ** k
            # denominator sqrt(v) / sqrt(bc2) + eps, step lr / bc1
            np.sqrt(vv, out=s)
            s *= t(1.0 / math.sqrt(bc2))
            s += t(eps)
            np.divide(m, s, out=s)
            s *= t(lr / bc1)
            x -= s

    def load_state_dict(self, sd):
        super().load_state_dict(sd)
        for st in self.state.values():
            st["scratch"] = np.empty_like(st["exp_avg"])


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr * weight_decay before
    the Adam step. Default weight_decay 0.01 as in PyTorch."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class LRScheduler:
    """Call ``step()`` once per epoch (after the optimizer steps); sets ``optimizer.lr``."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lr = optimizer.initial_lr
        self.last_epoch = 0
        optimizer.lr = self.get_lr(0)

    def get_lr(self, epoch: int) -> float:
        raise NotImplementedError

    def step(self):
        self.last_epoch += 1
        self.optimizer.lr = self.get_lr(self.last_epoch)
        return self.optimizer.lr


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        if step_size < 1:
            raise ValueError(f"StepLR: expected step_size >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer)

    def get_lr(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2 (closed form; the
    schedule keeps following the cosine past T_max, as PyTorch's)."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: expected T_max >= 1, got {T_max}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer)

    def get_lr(self, epoch):
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2
