"""cnnops.nn losses (forward vs definitions/PyTorch, backward vs finite differences and PyTorch),
optimizers and LR schedules (step by step against torch.optim) and initialisers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cnnops import nn
from reference import numerical_grad, rel_err


def loss_fd(loss, pred, target, rng, tol=1e-6):
    """backward(grad_output) of loss(pred, target) vs central differences of grad_output * loss."""
    v = loss(pred, target)
    go = rng.standard_normal(np.shape(v)) if np.ndim(v) else 0.7
    g = loss.backward(go)
    ng = numerical_grad(lambda: float(np.sum(loss(pred, target) * go)), pred)
    assert g.shape == pred.shape and g.dtype == pred.dtype
    assert rel_err(g, ng) < tol
    return v, g


def torch_loss(tloss, pred, target, go):
    torch = pytest.importorskip("torch")
    p = torch.from_numpy(pred.copy()).requires_grad_()
    v = tloss(p, torch.from_numpy(np.asarray(target)))
    v.backward(torch.as_tensor(go, dtype=v.dtype) if np.ndim(go) else torch.tensor(float(go), dtype=v.dtype))
    return v.detach().numpy(), p.grad.numpy()


# ----------------------------------------------------------------------------- cross-entropy
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
def test_cross_entropy(reduction, smoothing, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((7, 5)) * 3
    y = rng.integers(0, 5, 7)
    y[2] = -100  # ignored
    loss = nn.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing)
    v, g = loss_fd(loss, x, y, rng)
    go = rng.standard_normal(7) if reduction == "none" else 1.3
    loss(x, y)
    g = loss.backward(go)
    tv, tg = torch_loss(torch.nn.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing), x, y, go)
    assert rel_err(v, tv) < 1e-12
    assert rel_err(g, tg) < 1e-12


def test_cross_entropy_spatial_and_definition(rng):
    x = rng.standard_normal((2, 4, 3, 5))
    y = rng.integers(0, 4, (2, 3, 5))
    loss = nn.CrossEntropyLoss()
    v, _ = loss_fd(loss, x, y, rng)
    # definition: mean over pixels of logsumexp - picked logit
    ref = np.mean([np.log(np.exp(x[n, :, i, j]).sum()) - x[n, y[n, i, j], i, j]
                   for n in range(2) for i in range(3) for j in range(5)])
    assert abs(v - ref) < 1e-12


def test_cross_entropy_float32_large_logits_and_errors(rng):
    x = np.array([[1000.0, 0.0, -1000.0]], np.float32)
    loss = nn.CrossEntropyLoss()
    v = loss(x, np.array([1]))
    assert v.dtype == np.float32 and abs(v - 1000.0) < 1e-3
    g = loss.backward()
    np.testing.assert_allclose(g, [[1, -1, 0]], atol=1e-6)
    with pytest.raises(TypeError, match="CrossEntropyLoss: expected integer class labels, got float64"):
        loss(x, np.array([1.0]))
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: expected target of shape \(1,\), got \(2,\)"):
        loss(x, np.array([1, 2]))
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: labels must lie in \[0, 3\)"):
        loss(x, np.array([3]))
    with pytest.raises(ValueError, match="expected reduction one of"):
        nn.CrossEntropyLoss(reduction="avg")
    with pytest.raises(RuntimeError, match="CrossEntropyLoss: backward called before forward"):
        nn.CrossEntropyLoss().backward()


def test_nll_loss(rng):
    torch = pytest.importorskip("torch")
    lp = nn.log_softmax(rng.standard_normal((6, 4)))
    y = rng.integers(0, 4, 6)
    v, g = loss_fd(nn.NLLLoss(), lp, y, rng)
    tv, tg = torch_loss(torch.nn.NLLLoss(), lp, y, 0.7)
    assert rel_err(v, tv) < 1e-12 and rel_err(g, tg) < 1e-12


# ----------------------------------------------------------------------------- regression / binary
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse(reduction, rng):
    torch = pytest.importorskip("torch")
    p, t = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4, 2))
    loss = nn.MSELoss(reduction)
    v, g = loss_fd(loss, p, t, rng)
    go = np.ones(p.shape) if reduction == "none" else 1.0
    loss(p, t)
    g = loss.backward(go)
    tv, tg = torch_loss(torch.nn.MSELoss(reduction=reduction), p, t, go)
    assert rel_err(v, tv) < 1e-12 and rel_err(g, tg) < 1e-12
    with pytest.raises(ValueError, match=r"MSELoss: expected target with the input's shape \(3, 4, 2\)"):
        loss(p, t[0])


def test_bce_and_bce_with_logits(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((5, 3)) * 2
    t = (rng.random((5, 3)) > 0.5).astype(float)
    p = 1 / (1 + np.exp(-x))
    v, g = loss_fd(nn.BCELoss(), p, t, rng)
    tv, tg = torch_loss(torch.nn.BCELoss(), p, t, 0.7)
    assert rel_err(v, tv) < 1e-12 and rel_err(g, tg) < 1e-10
    for pw in (None, np.array([0.5, 2.0, 3.0])):
        loss = nn.BCEWithLogitsLoss(pos_weight=pw)
        v, g = loss_fd(loss, x, t, rng)
        tl = torch.nn.BCEWithLogitsLoss(pos_weight=None if pw is None else torch.from_numpy(pw))
        tv, tg = torch_loss(tl, x, t, 0.7)
        assert rel_err(v, tv) < 1e-12 and rel_err(g, tg) < 1e-12
    with pytest.raises(ValueError, match="BCELoss: expected input probabilities in"):
        nn.BCELoss()(np.array([1.5]), np.array([1.0]))
    # saturated probabilities: logs clamp at -100 as in PyTorch
    assert nn.BCELoss()(np.array([0.0]), np.array([1.0])) == 100.0


def focal_ref(x, t, alpha, gamma):
    p = 1 / (1 + np.exp(-x))
    ce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    pt = p * t + (1 - p) * (1 - t)
    a = alpha * t + (1 - alpha) * (1 - t) if alpha >= 0 else 1.0
    return a * (1 - pt) ** gamma * ce


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 0.0), (0.6, 1.5)])
def test_focal_loss(alpha, gamma, rng):
    x = rng.standard_normal((4, 6)) * 2
    t = (rng.random((4, 6)) > 0.7).astype(float)
    loss = nn.FocalLoss(alpha, gamma, reduction="sum")
    v, _ = loss_fd(loss, x, t, rng)
    assert abs(v - focal_ref(x, t, alpha, gamma).sum()) < 1e-12
    loss_fd(nn.FocalLoss(alpha, gamma, reduction="none"), x, t, rng)


@pytest.mark.parametrize("p,swap", [(2.0, False), (1.0, False), (3.0, True), (2.0, True)])
def test_triplet_margin_loss(p, swap, rng):
    torch = pytest.importorskip("torch")
    a, pos, neg = (rng.standard_normal((6, 5)) for _ in range(3))
    loss = nn.TripletMarginLoss(margin=1.5, p=p, swap=swap)
    v = loss(a, pos, neg)
    ga, gp, gn = loss.backward(0.7)
    for arr, g in ((a, ga), (pos, gp), (neg, gn)):
        ng = numerical_grad(lambda: 0.7 * float(loss(a, pos, neg)), arr)
        assert rel_err(g, ng) < 1e-6
    ts = [torch.from_numpy(v_.copy()).requires_grad_() for v_ in (a, pos, neg)]
    tv = torch.nn.TripletMarginLoss(margin=1.5, p=p, swap=swap)(*ts)
    (0.7 * tv).backward()
    assert abs(v - tv.item()) < 1e-12
    for g, t_ in zip((ga, gp, gn), ts):
        assert rel_err(g, t_.grad.numpy()) < 1e-10
    with pytest.raises(ValueError, match="TripletMarginLoss: expected anchor, positive, negative of one shape"):
        loss(a, pos, neg[:3])


# ----------------------------------------------------------------------------- optimizers
def _params_and_grads(rng, steps):
    shapes = [(3, 4), (5,), (2, 1, 3, 3)]
    init = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(steps)]
    return init, grads


OPTS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, weight_decay=0.3, amsgrad=True)),
]


@pytest.mark.parametrize("name,kw", OPTS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_optimizers_match_torch(name, kw, dtype, rng):
    torch = pytest.importorskip("torch")
    init, grads = _params_and_grads(rng, 6)
    ps = [nn.Parameter(v.astype(dtype)) for v in init]
    frozen = nn.Parameter(np.ones(3, dtype))
    frozen.requires_grad = False
    opt = getattr(nn, name)(ps + [frozen], **kw)
    tps = [torch.tensor(v.astype(dtype), requires_grad=True) for v in init]
    topt = getattr(torch.optim, name)(tps, **kw)
    for step in grads:
        for p, tp, g in zip(ps, tps, step):
            p.grad = g.astype(dtype)
            tp.grad = torch.from_numpy(g.astype(dtype))
        frozen.grad = np.ones(3, dtype)
        opt.step()
        topt.step()
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for p, tp in zip(ps, tps):
        assert p.data.dtype == dtype
        assert rel_err(p.data, tp.detach().numpy()) < tol
    np.testing.assert_array_equal(frozen.data, 1)


def test_optimizer_skips_missing_grads_and_state_dict(rng):
    p = nn.Parameter(np.ones(4))
    q = nn.Parameter(np.ones(4))
    opt = nn.Adam([p, q], lr=0.1)
    p.grad = np.ones(4)
    opt.step()
    assert (p.data < 1).all() and (q.data == 1).all()
    sd = opt.state_dict()
    opt2 = nn.Adam([nn.Parameter(p.data.copy()), nn.Parameter(q.data.copy())], lr=0.5)
    opt2.load_state_dict(sd)
    assert opt2.lr == 0.1
    opt2.params[0].grad = np.ones(4)
    p.grad = np.ones(4)
    opt.step()
    opt2.step()
    np.testing.assert_array_equal(opt2.params[0].data, p.data)
    opt.zero_grad()
    assert p.grad is None
    with pytest.raises(TypeError, match="SGD: expected Parameters, got ndarray"):
        nn.SGD([np.ones(3)])
    with pytest.raises(ValueError, match="SGD: Nesterov momentum needs momentum > 0"):
        nn.SGD([p], nesterov=True)
    with pytest.raises(ValueError, match=r"Adam: expected betas in \[0, 1\)"):
        nn.Adam([p], betas=(1.0, 0.9))


def test_optimizer_accepts_a_module(rng):
    m = nn.Linear(3, 2, dtype=np.float64, rng=rng)
    opt = nn.SGD(m, lr=0.1)
    assert len(opt.params) == 2


def test_lr_schedules_match_torch():
    torch = pytest.importorskip("torch")
    for make, tmake in (
        (lambda o: nn.StepLR(o, 3, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
        (lambda o: nn.CosineAnnealingLR(o, 7, 0.01), lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 7, 0.01)),
    ):
        opt = nn.SGD([nn.Parameter(np.zeros(1))], lr=0.3)
        sched = make(opt)
        tp = torch.zeros(1, requires_grad=True)
        topt = torch.optim.SGD([tp], lr=0.3)
        tsched = tmake(topt)
        for _ in range(10):
            assert math.isclose(opt.lr, topt.param_groups[0]["lr"], rel_tol=1e-12, abs_tol=1e-15)
            opt.step()
            topt.step()
            sched.step()
            tsched.step()
    with pytest.raises(ValueError, match="StepLR: expected step_size >= 1"):
        nn.StepLR(opt, 0)


# ----------------------------------------------------------------------------- initialisers
def test_initialisers_statistics():
    nn.init.manual_seed(3)
    w = np.empty((256, 128, 3, 3))
    fan_in, fan_out = 128 * 9, 256 * 9
    assert nn.init.fans(w.shape) == (fan_in, fan_out)
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert abs(w.std() / math.sqrt(2 / fan_in) - 1) < 0.01 and abs(w.mean()) < 1e-3
    nn.init.kaiming_uniform_(w, nonlinearity="relu", mode="fan_out")
    bound = math.sqrt(6 / fan_out)
    assert w.max() <= bound and w.max() > 0.99 * bound
    nn.init.xavier_uniform_(w)
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert w.max() <= bound and w.max() > 0.99 * bound
    nn.init.xavier_normal_(w, gain=2.0)
    assert abs(w.std() / (2 * math.sqrt(2 / (fan_in + fan_out))) - 1) < 0.01
    p = nn.Parameter(np.empty((100, 1000), np.float32))
    nn.init.trunc_normal_(p, mean=0.5, std=1.0, a=-0.5, b=1.0)
    assert p.data.dtype == np.float32 and p.data.min() >= -0.5 and p.data.max() <= 1.0
    # truncated N(0.5, 1) on [-0.5, 1]: mean from the closed form
    from math import erf, exp, pi, sqrt

    phi = lambda z: exp(-z * z / 2) / sqrt(2 * pi)  # noqa: E731
    cdf = lambda z: 0.5 * (1 + erf(z / sqrt(2)))  # noqa: E731
    al, be = -1.0, 0.5
    mean = 0.5 + (phi(al) - phi(be)) / (cdf(be) - cdf(al))
    assert abs(p.data.mean() - mean) < 0.005
    with pytest.raises(ValueError, match="init: expected mode 'fan_in' or 'fan_out'"):
        nn.init.kaiming_normal_(w, mode="fan")
    with pytest.raises(ValueError, match="fan in/out needs a weight with at least 2 dimensions"):
        nn.init.xavier_uniform_(np.empty(3))
    assert nn.init.calculate_gain("tanh") == 5 / 3
    assert math.isclose(nn.init.calculate_gain("leaky_relu", 0.2), math.sqrt(2 / 1.04))


def test_manual_seed_reproducible():
    nn.init.manual_seed(11)
    a = nn.Conv2d(3, 4, 3).weight.data.copy()
    nn.init.manual_seed(11)
    b = nn.Conv2d(3, 4, 3).weight.data
    np.testing.assert_array_equal(a, b)
