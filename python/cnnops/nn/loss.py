"""Losses with backward. ``loss(pred, target)`` returns the loss (a NumPy scalar for reduction
"mean"/"sum", an array for "none") and keeps what ``backward(grad_output=1.0)`` needs;
``backward`` returns the gradient with respect to ``pred`` (triplet: a tuple of three)."""
from __future__ import annotations

import numpy as np

from .activation import log_softmax, sigmoid
from .module import Module, check_dtype, saved

_REDUCTIONS = ("mean", "sum", "none")


class _Loss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: expected reduction one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self._cache = None

    def _reduce(self, v):
        if self.reduction == "mean":
            return v.mean()
        if self.reduction == "sum":
            return v.sum()
        return v

    def _scale(self, grad_output, n, dtype):
        """Gradient of the reduction: grad_output / n for mean, grad_output for sum, the array
        itself for none."""
        g = np.asarray(grad_output, dtype=dtype)
        if self.reduction == "mean":
            return g / dtype.type(n)
        return g

    def _same_shape(self, pred, target):
        name = type(self).__name__
        check_dtype(pred, name)
        target = np.asarray(target)
        if target.shape != pred.shape:
            raise ValueError(f"{name}: expected target with the input's shape {pred.shape}, got {target.shape}")
        return target.astype(pred.dtype, copy=False)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy with integer class labels.

    logits (N, C) or (N, C, d1, ...) and target (N,) or (N, d1, ...) integers in [0, C) (or
    ``ignore_index``): loss_i = logsumexp(logits_i) - logits_i[target_i]; "mean" averages over the
    non-ignored entries. ``label_smoothing`` eps mixes the one-hot target with the uniform one.
    backward: (softmax(logits) - target distribution) * grad_output / count."""

    def __init__(self, reduction="mean", ignore_index=-100, label_smoothing=0.0):
        super().__init__(reduction)
        self.ignore_index = int(ignore_index)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: expected 0 <= label_smoothing <= 1, got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits, target):
        check_dtype(logits, "CrossEntropyLoss")
        target = np.asarray(target)
        if logits.ndim < 2:
            raise ValueError(f"CrossEntropyLoss: expected logits (N, C, ...), got shape {logits.shape}")
        if target.dtype.kind not in "iu":
            raise TypeError(f"CrossEntropyLoss: expected integer class labels, got {target.dtype}")
        want = (logits.shape[0],) + logits.shape[2:]
        if target.shape != want:
            raise ValueError(f"CrossEntropyLoss: expected target of shape {want}, got {target.shape}")
        c = logits.shape[1]
        valid = target != self.ignore_index
        t = np.where(valid, target, 0)
        if ((t < 0) | (t >= c)).any():
            raise ValueError(f"CrossEntropyLoss: labels must lie in [0, {c}), got min {target.min()} "
                             f"max {target.max()}")
        lsm = log_softmax(logits, 1)
        picked = np.take_along_axis(lsm, np.expand_dims(t, 1), axis=1)[:, 0]
        per = -picked
        if self.label_smoothing > 0:
            eps = self.label_smoothing
            per = (1 - eps) * per - eps * lsm.mean(axis=1)
        per = np.where(valid, per, 0).astype(logits.dtype, copy=False)
        count = int(valid.sum())
        self._cache = (lsm, t, valid, count)
        if self.reduction == "mean":
            return per.sum() / logits.dtype.type(max(count, 1)) if count else logits.dtype.type(np.nan)
        return self._reduce(per)

    def backward(self, grad_output=1.0):
        lsm, t, valid, count = saved(self._cache, "CrossEntropyLoss")
        g = np.exp(lsm)  # softmax, a fresh array we may write into
        c = lsm.shape[1]
        eps = self.label_smoothing
        if eps > 0:
            g -= lsm.dtype.type(eps / c)
        idx = np.expand_dims(t, 1)
        np.put_along_axis(g, idx, np.take_along_axis(g, idx, axis=1) - lsm.dtype.type(1 - eps), axis=1)
        if not valid.all():
            g *= np.expand_dims(valid, 1)
        if self.reduction == "none":
            g *= np.expand_dims(np.asarray(grad_output, dtype=g.dtype), 1)
        else:
            scale = float(grad_output) / (max(count, 1) if self.reduction == "mean" else 1)
            g *= g.dtype.type(scale)
        return g


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (N, C) with integer labels (N,)."""

    def forward(self, logp, target):
        check_dtype(logp, "NLLLoss")
        target = np.asarray(target)
        if logp.ndim != 2 or target.shape != (logp.shape[0],) or target.dtype.kind not in "iu":
            raise ValueError(f"NLLLoss: expected log-probabilities (N, C) and integer labels (N,), got "
                             f"{logp.shape} and {target.shape} {target.dtype}")
        self._cache = (logp.shape, target, logp.dtype)
        return self._reduce(-logp[np.arange(logp.shape[0]), target])

    def backward(self, grad_output=1.0):
        shape, target, dtype = saved(self._cache, "NLLLoss")
        g = np.zeros(shape, dtype=dtype)
        g[np.arange(shape[0]), target] = -self._scale(grad_output, shape[0], dtype)
        return g


class MSELoss(_Loss):
    """Mean squared error (pred - target)^2; backward 2 (pred - target) * grad_output / n."""

    def forward(self, pred, target):
        target = self._same_shape(pred, target)
        d = pred - target
        self._cache = d
        return self._reduce(d * d)

    def backward(self, grad_output=1.0):
        d = saved(self._cache, "MSELoss")
        return (2 * d) * self._scale(grad_output, d.size, d.dtype)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities p in [0, 1]: -(t log p + (1-t) log(1-p)), each log
    clamped at -100 as in PyTorch."""

    def forward(self, p, target):
        target = self._same_shape(p, target)
        if (p < 0).any() or (p > 1).any():
            raise ValueError("BCELoss: expected input probabilities in [0, 1]")
        with np.errstate(divide="ignore"):
            lp = np.maximum(np.log(p), -100)
            l1p = np.maximum(np.log(1 - p), -100)
        self._cache = (p, target)
        return self._reduce(-(target * lp + (1 - target) * l1p))

    def backward(self, grad_output=1.0):
        p, t = saved(self._cache, "BCELoss")
        eps = 1e-12
        g = (p - t) / np.maximum(p * (1 - p), eps)
        return (g * self._scale(grad_output, p.size, p.dtype)).astype(p.dtype, copy=False)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits x (stable): max(x, 0) - x t + log(1 + exp(-|x|));
    ``pos_weight`` scales the positive term. backward: (sigmoid(x) (1 + (pw-1) t) - pw t) / n."""

    def __init__(self, reduction="mean", pos_weight=None):
        super().__init__(reduction)
        self.pos_weight = pos_weight

    def forward(self, x, target):
        target = self._same_shape(x, target)
        sp = np.logaddexp(0, -x)  # softplus(-x) = -log sigmoid(x)
        if self.pos_weight is None:
            v = (1 - target) * x + sp
        else:
            pw = np.asarray(self.pos_weight, dtype=x.dtype)
            v = (1 - target) * x + (1 + (pw - 1) * target) * sp
        self._cache = (x, target)
        return self._reduce(v.astype(x.dtype, copy=False))

    def backward(self, grad_output=1.0):
        x, t = saved(self._cache, "BCEWithLogitsLoss")
        s = sigmoid(x)
        if self.pos_weight is None:
            g = s - t
        else:
            pw = np.asarray(self.pos_weight, dtype=x.dtype)
            g = s * (1 + (pw - 1) * t) - pw * t
        return (g * self._scale(grad_output, x.size, x.dtype)).astype(x.dtype, copy=False)


class FocalLoss(_Loss):
    """Sigmoid focal loss (RetinaNet, as torchvision.ops.sigmoid_focal_loss) on logits x with
    binary targets t: p = sigmoid(x), p_t = p t + (1-p)(1-t), loss = -alpha_t (1 - p_t)^gamma
    log(p_t), alpha_t = alpha t + (1 - alpha)(1 - t) (alpha < 0 disables the weighting)."""

    def __init__(self, alpha=0.25, gamma=2.0, reduction="mean"):
        super().__init__(reduction)
        self.alpha, self.gamma = float(alpha), float(gamma)

    def forward(self, x, target):
        t = self._same_shape(x, target)
        p = sigmoid(x)
        ce = np.logaddexp(0, -x) + (1 - t) * x  # -log p_t for binary t (and its soft extension)
        pt = p * t + (1 - p) * (1 - t)
        mod = (1 - pt) ** self.gamma
        a = self.alpha * t + (1 - self.alpha) * (1 - t) if self.alpha >= 0 else 1.0
        self._cache = (x, t, p, ce, pt, a)
        return self._reduce((a * mod * ce).astype(x.dtype, copy=False))

    def backward(self, grad_output=1.0):
        x, t, p, ce, pt, a = saved(self._cache, "FocalLoss")
        g_ = self.gamma
        dp = p * (1 - p)                      # d p / d x
        dpt = dp * (2 * t - 1)                # d p_t / d x
        dce = p - t                           # d ce / d x
        one_m = 1 - pt
        dmod = -g_ * one_m ** (g_ - 1) * dpt if g_ != 0 else 0.0
        g = a * (dmod * ce + one_m ** g_ * dce)
        return (g * self._scale(grad_output, x.size, x.dtype)).astype(x.dtype, copy=False)


class TripletMarginLoss(_Loss):
    """max(d(a, p) - d(a, n) + margin, 0) with d(u, v) = ||u - v + eps||_p (PyTorch's
    pairwise_distance); anchors, positives, negatives (N, D). backward returns (ga, gp, gn)."""

    def __init__(self, margin=1.0, p=2.0, eps=1e-6, swap=False, reduction="mean"):
        super().__init__(reduction)
        self.margin, self.p, self.eps, self.swap = float(margin), float(p), float(eps), bool(swap)

    def _dist(self, u, v):
        d = u - v + u.dtype.type(self.eps)
        n = (np.abs(d) ** self.p).sum(axis=-1) ** (1.0 / self.p)
        return d, n

    def _ddist(self, d, n):
        # gradient of ||d||_p w.r.t. d
        nn = np.maximum(n, 1e-30)[..., None]
        return np.sign(d) * (np.abs(d) / nn) ** (self.p - 1)

    def forward(self, a, pos, neg):
        check_dtype(a, "TripletMarginLoss")
        if not (a.shape == pos.shape == neg.shape) or a.ndim not in (1, 2):
            raise ValueError(f"TripletMarginLoss: expected anchor, positive, negative of one shape (N, D), got "
                             f"{a.shape}, {pos.shape}, {neg.shape}")
        dap, nap = self._dist(a, pos)
        dan, nan_ = self._dist(a, neg)
        use_swap = None
        if self.swap:
            dpn, npn = self._dist(pos, neg)
            use_swap = npn < nan_
            nneg = np.where(use_swap, npn, nan_)
        else:
            dpn = npn = None
            nneg = nan_
        v = nap - nneg + self.margin
        active = v > 0
        self._cache = (a, dap, nap, dan, nan_, dpn, npn, use_swap, active)
        return self._reduce(np.maximum(v, 0).astype(a.dtype, copy=False))

    def backward(self, grad_output=1.0):
        a, dap, nap, dan, nan_, dpn, npn, use_swap, active = saved(self._cache, "TripletMarginLoss")
        n = active.size
        s = np.asarray(self._scale(grad_output, n, a.dtype), dtype=a.dtype) * active
        s = s[..., None]
        gap = self._ddist(dap, nap) * s
        ga, gp, gn = gap.copy(), -gap, np.zeros_like(a)
        gan = self._ddist(dan, nan_) * s
        if use_swap is None:
            ga -= gan
            gn += gan
        else:
            m = use_swap[..., None]
            gpn = self._ddist(dpn, npn) * s
            ga -= np.where(m, 0, gan)
            gn += np.where(m, 0, gan)
            gp -= np.where(m, gpn, 0)
            gn += np.where(m, gpn, 0)
        return ga.astype(a.dtype, copy=False), gp.astype(a.dtype, copy=False), gn.astype(a.dtype, copy=False)


class BoxIoULoss(_Loss):
    """IoU-family box regression loss over the cnnops box kernels: ``kind`` "iou", "giou", "diou"
    or "ciou". forward(pred (N, 4), target (N, 4)), both xyxy, float32/float64; backward returns
    the gradient with respect to ``pred`` (N, 4) (``grad_target`` holds the one for target).
    Reduction as the kernels: "mean" (0 for N = 0), "sum" or "none" ((N,) losses)."""

    _KINDS = ("iou", "giou", "diou", "ciou")

    def __init__(self, kind="giou", reduction="mean", eps=1e-7):
        super().__init__(reduction)
        if kind not in self._KINDS:
            raise ValueError(f"BoxIoULoss: expected kind one of {self._KINDS}, got {kind!r}")
        self.kind, self.eps = kind, float(eps)
        self.grad_target = None

    def _fn(self, suffix=""):
        import cnnops

        return getattr(cnnops, f"{self.kind}_loss{suffix}")

    def forward(self, pred, target):
        check_dtype(pred, "BoxIoULoss")
        self._cache = (pred, target)
        return self._fn()(pred, target, reduction=self.reduction, eps=self.eps)

    def backward(self, grad_output=1.0):
        pred, target = saved(self._cache, "BoxIoULoss")
        if self.reduction != "none":
            grad_output = np.asarray(grad_output, dtype=pred.dtype)
        g1, g2 = self._fn("_backward")(grad_output, pred, target, reduction=self.reduction, eps=self.eps)
        self.grad_target = g2
        return g1
