"""cnnops.nn layers: every backward against central finite differences (float64, small odd
shapes), forward and backward against PyTorch with the same weights, Module bookkeeping
(parameters, state_dict, save/load, freezing, train/eval) and bad-input errors."""
from __future__ import annotations

import numpy as np
import pytest

from cnnops import nn
from reference import locally_connected2d_ref, numerical_grad, rel_err


pytestmark = pytest.mark.usefixtures("one_thread")


def close(a, ref, tol):
    """Relative error under tol, or an absolute one under 1e-8 for gradients that are ~0."""
    return rel_err(a, ref) < tol or float(np.abs(np.asarray(a) - ref).max()) < 1e-8


def fd_check(m, x, rng, tol=1e-6, params=True):
    """Analytic input and parameter gradients of sum(m(x) * G) vs central differences."""
    y = m(x)
    G = rng.standard_normal(y.shape)
    G_keep = G.copy()
    m.zero_grad()
    gx = m.backward(G)
    np.testing.assert_array_equal(G, G_keep)  # backward never writes into grad_out

    def f():
        return float((m(x) * G).sum())

    assert gx.shape == x.shape
    assert close(gx, numerical_grad(f, x), tol)
    if params:
        for name, p in m.named_parameters():
            assert p.grad is not None, name
            assert p.grad.shape == p.data.shape
            assert close(p.grad, numerical_grad(f, p.data), tol), name
    return y, gx


def torch_check(m, tm, x, rng, tol=1e-10):
    """Same weights -> same forward, input gradient and parameter gradients as PyTorch."""
    torch = pytest.importorskip("torch")
    tm = tm.double()
    sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in m.state_dict().items()}
    tm.load_state_dict(sd, strict=False)  # torch may hold extra buffers (e.g. _random_samples)
    y = m(x)
    G = rng.standard_normal(y.shape)
    m.zero_grad()
    gx = m.backward(G)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = tm(xt)
    yt.backward(torch.from_numpy(G))
    assert rel_err(y, yt.detach().numpy()) < tol
    assert rel_err(gx, xt.grad.numpy()) < tol
    tparams = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        assert rel_err(p.grad, tparams[name].grad.numpy()) < tol, name
    return y, yt


def x64(rng, *shape):
    return rng.standard_normal(shape)


# ----------------------------------------------------------------------------- convolution
CONV_CASES = [
    (nn.Conv1d, "Conv1d", (2, 3, 11), dict(in_channels=3, out_channels=5, kernel_size=3, stride=2, padding=1)),
    (nn.Conv1d, "Conv1d", (1, 4, 9), dict(in_channels=4, out_channels=2, kernel_size=3, dilation=2, groups=2,
                                          bias=False)),
    (nn.Conv2d, "Conv2d", (2, 3, 7, 5), dict(in_channels=3, out_channels=4, kernel_size=3, padding=1)),
    (nn.Conv2d, "Conv2d", (1, 4, 9, 7), dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=(2, 1),
                                             padding=(1, 0), dilation=(1, 2), groups=2)),
    (nn.Conv2d, "Conv2d", (2, 2, 5, 6), dict(in_channels=2, out_channels=3, kernel_size=3, padding=1,
                                             padding_mode="reflect")),
    (nn.Conv3d, "Conv3d", (1, 2, 4, 5, 3), dict(in_channels=2, out_channels=3, kernel_size=(2, 3, 2),
                                                padding=(1, 1, 0))),
]


@pytest.mark.parametrize("cls,tname,shape,kw", CONV_CASES)
def test_conv_layers_fd_and_torch(cls, tname, shape, kw, rng):
    m = cls(dtype=np.float64, rng=rng, **kw)
    x = x64(rng, *shape)
    fd_check(m, x, rng)
    torch = pytest.importorskip("torch")
    torch_check(m, getattr(torch.nn, tname)(**kw), x, rng)


CONVT_CASES = [
    (nn.ConvTranspose1d, "ConvTranspose1d", (2, 3, 5), dict(in_channels=3, out_channels=2, kernel_size=3, stride=2,
                                                            padding=1, output_padding=1)),
    (nn.ConvTranspose2d, "ConvTranspose2d", (1, 4, 3, 4), dict(in_channels=4, out_channels=6, kernel_size=(3, 2),
                                                               stride=(2, 3), padding=(1, 0), groups=2)),
    (nn.ConvTranspose2d, "ConvTranspose2d", (2, 2, 3, 3), dict(in_channels=2, out_channels=3, kernel_size=4,
                                                               stride=2, padding=1, bias=False)),
    (nn.ConvTranspose3d, "ConvTranspose3d", (1, 2, 2, 3, 2), dict(in_channels=2, out_channels=2, kernel_size=2,
                                                                  stride=2)),
]


@pytest.mark.parametrize("cls,tname,shape,kw", CONVT_CASES)
def test_conv_transpose_layers_fd_and_torch(cls, tname, shape, kw, rng):
    m = cls(dtype=np.float64, rng=rng, **kw)
    x = x64(rng, *shape)
    fd_check(m, x, rng)
    torch = pytest.importorskip("torch")
    torch_check(m, getattr(torch.nn, tname)(**kw), x, rng)


def test_conv_default_init_matches_torch_bounds(rng):
    # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias
    m = nn.Conv2d(6, 16, 5, rng=rng)
    bound = 1 / np.sqrt(6 * 25)
    assert m.weight.data.dtype == np.float32 and m.weight.shape == (16, 6, 5, 5)
    assert np.abs(m.weight.data).max() <= bound and np.abs(m.weight.data).max() > 0.9 * bound
    assert np.abs(m.bias.data).max() <= bound
    t = nn.ConvTranspose2d(4, 6, 3, groups=2, rng=rng)
    assert t.weight.shape == (4, 3, 3, 3)
    assert np.abs(t.weight.data).max() <= 1 / np.sqrt(3 * 9)


def test_conv_layer_errors(rng):
    m = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"Conv2d: expected input with 4 dimensions"):
        m(np.zeros((3, 5, 5), np.float32))
    with pytest.raises(TypeError, match=r"Conv2d: input dtype float64 differs from the weight dtype float32"):
        m(np.zeros((1, 3, 5, 5)))
    with pytest.raises(TypeError, match=r"Conv2d: expected float32 or float64, got int64"):
        m(np.zeros((1, 3, 5, 5), np.int64))
    with pytest.raises(TypeError, match=r"Conv2d: expected a NumPy array"):
        m([[1.0]])
    with pytest.raises(ValueError, match=r"divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(RuntimeError, match=r"Conv2d: backward called before forward"):
        nn.Conv2d(3, 4, 3).backward(np.zeros((1, 4, 3, 3), np.float32))


def test_conv_needs_and_frozen(rng):
    m = nn.Conv2d(2, 3, 3, dtype=np.float64, rng=rng)
    x = x64(rng, 2, 2, 6, 5)
    y = m(x)
    m.weight.requires_grad = False
    m.needs_input_grad = False
    assert m.backward(np.ones_like(y)) is None
    assert m.weight.grad is None and m.bias.grad is not None
    np.testing.assert_allclose(m.bias.grad, np.full(3, 2 * 4 * 3.0))


# ----------------------------------------------------------------------------- linear
@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 7)])
def test_linear_fd_and_torch(shape, rng):
    m = nn.Linear(7, 4, dtype=np.float64, rng=rng)
    x = x64(rng, *shape)
    fd_check(m, x, rng)
    torch = pytest.importorskip("torch")
    torch_check(m, torch.nn.Linear(7, 4), x, rng)


def test_linear_without_bias_and_errors(rng):
    m = nn.Linear(3, 2, bias=False, dtype=np.float64, rng=rng)
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    fd_check(m, x64(rng, 4, 3), rng)
    with pytest.raises(ValueError, match=r"Linear: expected input \(\.\.\., 3\), got shape \(4, 5\)"):
        m(np.zeros((4, 5)))


def test_linear_gradients_accumulate(rng):
    m = nn.Linear(3, 2, dtype=np.float64, rng=rng)
    x = x64(rng, 4, 3)
    g = rng.standard_normal((4, 2))
    m(x)
    m.backward(g)
    first = m.weight.grad.copy()
    m(x)
    m.backward(g)
    np.testing.assert_allclose(m.weight.grad, 2 * first)
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None


def test_flatten_identity(rng):
    x = x64(rng, 2, 3, 4, 5)
    f = nn.Flatten()
    assert f(x).shape == (2, 60)
    assert nn.Flatten(1, 2)(x).shape == (2, 12, 5)
    assert f.backward(np.ones((2, 60))).shape == x.shape
    with pytest.raises(ValueError, match="Flatten: start_dim"):
        nn.Flatten(2, 1)(x)
    i = nn.Identity()
    assert i(x) is x and i.backward(x) is x


# ----------------------------------------------------------------------------- activations
ACTS = [
    (lambda: nn.ReLU(), "ReLU", {}),
    (lambda: nn.LeakyReLU(0.2), "LeakyReLU", {"negative_slope": 0.2}),
    (lambda: nn.Sigmoid(), "Sigmoid", {}),
    (lambda: nn.Tanh(), "Tanh", {}),
    (lambda: nn.Softmax(1), "Softmax", {"dim": 1}),
    (lambda: nn.Softmax(-1), "Softmax", {"dim": -1}),
    (lambda: nn.LogSoftmax(1), "LogSoftmax", {"dim": 1}),
    (lambda: nn.Softplus(), "Softplus", {}),
    (lambda: nn.Softplus(beta=2.0, threshold=1.0), "Softplus", {"beta": 2.0, "threshold": 1.0}),
    (lambda: nn.ELU(), "ELU", {}),
    (lambda: nn.ELU(0.3), "ELU", {"alpha": 0.3}),
    (lambda: nn.GELU(), "GELU", {}),
    (lambda: nn.GELU("tanh"), "GELU", {"approximate": "tanh"}),
]


@pytest.mark.parametrize("make,tname,kw", ACTS)
def test_activations_fd_and_torch(make, tname, kw, rng):
    x = x64(rng, 3, 5, 2, 3)
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences away from the kinks
    m = make()
    fd_check(m, x, rng)
    torch = pytest.importorskip("torch")
    torch_check(make(), getattr(torch.nn, tname)(**kw), x, rng)


def test_sigmoid_is_stable_at_extremes():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = nn.Sigmoid()(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [0, 1 / (1 + np.exp(50.0)), 0.5, 1 / (1 + np.exp(-50.0)), 1], rtol=1e-6)


def test_relu_inplace_overwrites_input_only_when_asked(rng):
    x = x64(rng, 4, 6)
    keep = x.copy()
    y = nn.ReLU()(x)
    np.testing.assert_array_equal(x, keep)
    r = nn.ReLU(inplace=True)
    y2 = r(x)
    assert y2 is x
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(r.backward(np.ones_like(x)), (keep > 0).astype(float))


def test_dropout(rng):
    x = np.ones((200, 50))
    d = nn.Dropout(0.3, rng=np.random.default_rng(1))
    y = d(x)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7)
    g = rng.standard_normal(x.shape)
    np.testing.assert_allclose(d.backward(g), g * y)  # d y / d x is the same mask * scale
    d.eval()
    assert d(x) is x and d.backward(g) is g
    with pytest.raises(ValueError, match=r"Dropout: expected 0 <= p < 1, got 1.0"):
        nn.Dropout(1.0)
    # one seed gives one sequence of masks
    a = nn.Dropout(0.5, rng=7)
    b = nn.Dropout(0.5, rng=7)
    for _ in range(2):
        np.testing.assert_array_equal(a(x), b(x))


# ----------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("cls,tname,shape", [(nn.BatchNorm1d, "BatchNorm1d", (6, 3)),
                                             (nn.BatchNorm1d, "BatchNorm1d", (4, 3, 5)),
                                             (nn.BatchNorm2d, "BatchNorm2d", (3, 4, 5, 3))])
def test_batchnorm_train_fd_and_torch(cls, tname, shape, rng):
    m = cls(shape[1], dtype=np.float64)
    m.weight.data[:] = rng.uniform(0.5, 1.5, shape[1])
    m.bias.data[:] = rng.standard_normal(shape[1])
    x = x64(rng, *shape) * 2 + 1
    fd_check(m, x, rng)
    torch = pytest.importorskip("torch")
    m2 = cls(shape[1], dtype=np.float64)
    m2.load_state_dict(m.state_dict())
    m2.running_mean[:] = 0
    m2.running_var[:] = 1
    tm = getattr(torch.nn, tname)(shape[1]).double()
    torch_check(m2, tm, x, rng)
    # running statistics follow PyTorch's (unbiased variance, momentum 0.1)
    np.testing.assert_allclose(m2.running_mean, tm.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(m2.running_var, tm.running_var.numpy(), rtol=1e-12)
    assert int(m2.num_batches_tracked) == int(tm.num_batches_tracked)


def test_batchnorm_eval_fd_and_torch(rng):
    torch = pytest.importorskip("torch")
    m = nn.BatchNorm2d(3, dtype=np.float64)
    m.running_mean[:] = rng.standard_normal(3)
    m.running_var[:] = rng.uniform(0.5, 2, 3)
    m.weight.data[:] = rng.uniform(0.5, 1.5, 3)
    m.eval()
    x = x64(rng, 2, 3, 4, 3)
    fd_check(m, x, rng)
    tm = torch.nn.BatchNorm2d(3).double().eval()
    torch_check(m, tm, x, rng)


def test_batchnorm_errors():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected input with 4 dimensions \(N, C, H, W\), got 2"):
        nn.BatchNorm2d(3)(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 3 channels"):
        nn.BatchNorm2d(3)(np.zeros((2, 4, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected more than 1 value per channel"):
        nn.BatchNorm1d(3)(np.zeros((1, 3), np.float32))


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_local_response_norm_fd_and_torch(size, rng):
    x = x64(rng, 2, 7, 3, 2)
    m = nn.LocalResponseNorm(size, alpha=0.3, beta=0.75, k=1.5)
    fd_check(m, x, rng)
    torch = pytest.importorskip("torch")
    torch_check(nn.LocalResponseNorm(size, alpha=0.3, beta=0.75, k=1.5),
                torch.nn.LocalResponseNorm(size, alpha=0.3, beta=0.75, k=1.5), x, rng)


def test_local_response_norm_definition(rng):
    # direct loops over the window definition
    x = x64(rng, 1, 6, 2, 2)
    n, alpha, beta, k = 3, 0.2, 0.6, 2.0
    y = nn.LocalResponseNorm(n, alpha, beta, k)(x)
    ref = np.empty_like(x)
    for c in range(6):
        lo, hi = max(c - n // 2, 0), min(c + (n - 1) // 2, 5)
        s = (x[:, lo:hi + 1] ** 2).sum(axis=1)
        ref[:, c] = x[:, c] / (k + alpha / n * s) ** beta
    assert rel_err(y, ref) < 1e-14


# ----------------------------------------------------------------------------- containers
def test_sequential_fd_names_and_indexing(rng):
    s = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, dtype=np.float64, rng=rng), nn.Tanh(), nn.Flatten(),
                      nn.Linear(3 * 4 * 5, 2, dtype=np.float64, rng=rng))
    assert [n for n, _ in s.named_parameters()] == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert len(s) == 4 and isinstance(s[1], nn.Tanh) and isinstance(s[1:], nn.Sequential)
    fd_check(s, x64(rng, 2, 2, 4, 5), rng)
    with pytest.raises(TypeError, match="Sequential: expected Modules, got int at position 1"):
        nn.Sequential(nn.ReLU(), 3)


def test_sequential_first_layer_skips_input_grad(rng):
    s = nn.Sequential(nn.Conv2d(1, 2, 3, dtype=np.float64, rng=rng), nn.ReLU())
    s.needs_input_grad = False
    y = s(x64(rng, 1, 1, 5, 5))
    assert s.backward(np.ones_like(y)) is None
    assert s[0].weight.grad is not None


@pytest.mark.parametrize("proj", [False, True])
def test_residual_fd(proj, rng):
    body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, stride=2 if proj else 1, dtype=np.float64, rng=rng),
                         nn.BatchNorm2d(4, dtype=np.float64), nn.ReLU(),
                         nn.Conv2d(4, 4 if proj else 3, 3, padding=1, dtype=np.float64, rng=rng))
    p = nn.Conv2d(3, 4, 1, stride=2, dtype=np.float64, rng=rng) if proj else None
    r = nn.Residual(body, p)
    x = x64(rng, 2, 3, 5, 5)
    y, _ = fd_check(r, x, rng)
    expected = body(x) + (x if p is None else p(x))
    assert rel_err(r(x), expected) < 1e-14
    with pytest.raises(ValueError, match="Residual: body output shape"):
        nn.Residual(nn.Conv2d(3, 2, 1, dtype=np.float64))(x)


def test_residual_keeps_the_body_output_intact(rng):
    # Tanh keeps its output for backward; the sum must not be written into it
    r = nn.Residual(nn.Sequential(nn.Linear(4, 4, dtype=np.float64, rng=rng), nn.Tanh()))
    fd_check(r, x64(rng, 3, 4), rng)


def test_residual_identity_body_does_not_alias(rng):
    r = nn.Residual(nn.Identity())
    x = x64(rng, 2, 3)
    keep = x.copy()
    np.testing.assert_array_equal(r(x), 2 * keep)
    np.testing.assert_array_equal(x, keep)
    g = rng.standard_normal((2, 3))
    np.testing.assert_array_equal(r.backward(g), 2 * g)


def test_concat_fd(rng):
    c = nn.Concat(nn.Conv2d(2, 3, 1, dtype=np.float64, rng=rng),
                  nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, dtype=np.float64, rng=rng), nn.ReLU()),
                  nn.Identity())
    x = x64(rng, 2, 2, 4, 3)
    y, _ = fd_check(c, x, rng)
    assert y.shape == (2, 7, 4, 3)


# ----------------------------------------------------------------------------- pooling: windows tiling the input
@pytest.mark.parametrize("cls,tname,kw,shape", [
    (nn.MaxPool2d, "MaxPool2d", dict(kernel_size=2), (2, 3, 6, 4)),
    (nn.MaxPool2d, "MaxPool2d", dict(kernel_size=(3, 2)), (1, 2, 9, 6)),
    (nn.AvgPool2d, "AvgPool2d", dict(kernel_size=2), (2, 3, 6, 4)),
    (nn.AvgPool2d, "AvgPool2d", dict(kernel_size=(1, 3)), (1, 2, 5, 6)),
])
def test_blocked_pooling_fd_and_torch(cls, tname, kw, shape, rng):
    x = x64(rng, *shape)
    fd_check(cls(**kw), x, rng, params=False)
    torch = pytest.importorskip("torch")
    torch_check(cls(**kw), getattr(torch.nn, tname)(**kw), x, rng)


def test_blocked_maxpool_output_changed_in_place_afterwards(rng):
    seq = nn.Sequential(nn.MaxPool2d(2), nn.ReLU(inplace=True))
    fd_check(seq, x64(rng, 2, 2, 4, 6), rng, params=False)


def test_blocked_maxpool_ties_go_to_first(rng):
    x = np.zeros((1, 1, 2, 4))
    x[0, 0, 1, 1] = 1.0
    m = nn.MaxPool2d(2)
    m(x)
    g = m.backward(np.array([[[[5.0, 7.0]]]]))
    expected = np.zeros_like(x)
    expected[0, 0, 1, 1] = 5.0
    expected[0, 0, 0, 2] = 7.0  # all-zero window: the first element wins, as in PyTorch
    np.testing.assert_array_equal(g, expected)


def test_global_and_adaptive_avg_and_upsample_fd_and_torch(rng):
    torch = pytest.importorskip("torch")
    x = x64(rng, 2, 3, 5, 4)
    fd_check(nn.GlobalAvgPool2d(), x, rng, params=False)
    fd_check(nn.AdaptiveAvgPool2d(1), x, rng, params=False)
    torch_check(nn.AdaptiveAvgPool2d(1), torch.nn.AdaptiveAvgPool2d(1), x, rng)
    g = nn.GlobalAvgPool2d(flatten=True)
    assert g(x).shape == (2, 3)
    fd_check(g, x, rng, params=False)
    u = nn.Upsample(scale_factor=(2, 3))
    fd_check(u, x, rng, params=False)
    torch_check(nn.Upsample(scale_factor=(2, 3)), torch.nn.Upsample(scale_factor=(2, 3)), x, rng)


# ----------------------------------------------------------------------------- Module bookkeeping
def _small_net(rng, dtype=np.float64):
    return nn.Sequential(nn.Conv2d(1, 2, 3, dtype=dtype, rng=rng), nn.BatchNorm2d(2, dtype=dtype), nn.ReLU(),
                         nn.Flatten(), nn.Linear(2 * 3 * 3, 3, dtype=dtype, rng=rng))


def test_state_dict_save_load_roundtrip(rng, tmp_path):
    a = _small_net(rng)
    a(x64(rng, 4, 1, 5, 5))  # moves the running statistics
    sd = a.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                        "1.num_batches_tracked", "4.weight", "4.bias"]
    sd["0.weight"][...] = 99  # copies, not views
    assert not (a[0].weight.data == 99).any()
    path = tmp_path / "m.npz"
    a.save(path)
    b = _small_net(np.random.default_rng(123)).load(path)
    for (k, v), (k2, v2) in zip(a.state_dict().items(), b.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(v, v2)
    x = x64(rng, 2, 1, 5, 5)
    a.eval()
    b.eval()
    np.testing.assert_array_equal(a(x), b(x))


def test_load_state_dict_errors_and_dtype(rng):
    a = _small_net(rng, np.float32)
    sd = a.state_dict()
    sd64 = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in sd.items()}
    a.load_state_dict(sd64)
    assert a[0].weight.data.dtype == np.float32  # each parameter keeps its dtype
    bad = dict(sd)
    bad["0.weight"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"load_state_dict: 0.weight expected shape \(2, 1, 3, 3\), got \(3, 3\)"):
        a.load_state_dict(bad)
    missing = dict(sd)
    del missing["4.bias"]
    missing["extra"] = np.zeros(1)
    with pytest.raises(KeyError, match=r"missing keys \['4.bias'\], unexpected keys \['extra'\]"):
        a.load_state_dict(missing)
    a.load_state_dict({k: v for k, v in missing.items() if k != "extra"}, strict=False)


def test_torch_state_dict_loads(rng):
    torch = pytest.importorskip("torch")
    tm = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU(), torch.nn.Flatten(),
                             torch.nn.Linear(18, 3))
    a = _small_net(rng, np.float32)
    a.load_state_dict(tm.state_dict())
    np.testing.assert_array_equal(a[4].weight.data, tm[4].weight.detach().numpy())


def test_train_eval_freeze_and_counts(rng):
    net = _small_net(rng)
    assert all(m.training for m in net.modules())
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert net.num_parameters() == 2 * 9 + 2 + 2 + 2 + 18 * 3 + 3
    net[0].freeze()
    assert len(net.parameters(trainable_only=True)) == 4
    y = net(x64(rng, 2, 1, 5, 5))
    net.backward(np.ones_like(y))
    assert net[0].weight.grad is None and net[4].weight.grad is not None
    net[0].unfreeze()
    assert len(net.parameters(trainable_only=True)) == 6
    net.astype(np.float32)
    assert net[1].running_mean.dtype == np.float32 and net[4].weight.data.dtype == np.float32
    assert "Conv2d(1, 2, kernel_size=(3, 3)" in repr(net)


def test_shared_parameters_listed_once(rng):
    # one Parameter in two modules (a module instance itself is used once per forward: it keeps
    # what its backward needs)
    lin = nn.Linear(3, 3, dtype=np.float64, rng=rng)
    lin2 = nn.Linear(3, 3, dtype=np.float64, rng=rng)
    lin2.weight = lin.weight
    s = nn.Sequential(lin, nn.Tanh(), lin2)
    assert len(s.parameters()) == 3
    x = x64(rng, 2, 3)
    fd_check(s, x, rng)  # gradients of both uses add up


def test_module_needs_init_call():
    class Bad(nn.Module):
        def __init__(self):
            self.w = 1

    with pytest.raises(AttributeError, match="call Module.__init__"):
        Bad()


def test_non_contiguous_inputs_are_not_modified(rng):
    base = rng.standard_normal((2, 3, 10, 7)).astype(np.float32)
    x = base[:, :, ::2]  # a strided view
    keep = base.copy()
    xc = np.ascontiguousarray(x)
    for make in (lambda: nn.Conv2d(3, 4, 3, padding=1, rng=np.random.default_rng(1)),
                 lambda: nn.BatchNorm2d(3), lambda: nn.MaxPool2d(2, 1), lambda: nn.LocalResponseNorm(3),
                 lambda: nn.Sequential(nn.Flatten(), nn.Linear(105, 5, rng=np.random.default_rng(2)))):
        a, b = make(), make()
        ya, yb = a(x), b(xc)
        np.testing.assert_allclose(ya, yb, rtol=1e-6, atol=1e-6)
        g = rng.standard_normal(ya.shape).astype(np.float32)
        np.testing.assert_allclose(a.backward(g), b.backward(g), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(base, keep)


def test_transfer_learning_freeze_updates_only_the_head(rng):
    body = nn.Sequential(nn.Conv2d(1, 3, 3, rng=rng), nn.ReLU(), nn.Flatten())
    head = nn.Linear(3 * 4 * 4, 2, rng=rng)
    net = nn.Sequential(body, head)
    body.freeze()
    before = {k: v.copy() for k, v in net.state_dict().items()}
    opt = nn.SGD(net.parameters(), lr=0.5, momentum=0.9)
    lf = nn.CrossEntropyLoss()
    x = rng.standard_normal((4, 1, 6, 6)).astype(np.float32)
    for _ in range(2):
        lf(net(x), np.array([0, 1, 1, 0]))
        opt.zero_grad()
        net.backward(lf.backward())
        opt.step()
    after = net.state_dict()
    for k in ("0.0.weight", "0.0.bias"):
        np.testing.assert_array_equal(after[k], before[k])
    assert not np.array_equal(after["1.weight"], before["1.weight"])


# ----------------------------------------------------------------------------- more activations
def test_gelu_erf_without_scipy_and_float32(rng, monkeypatch):
    import math
    import sys

    from cnnops.nn import activation

    x = np.concatenate([x64(rng, 50) * 3, [0.0, -8.0, 8.0, 1e-8]])
    exact = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(activation._erf(x), exact, rtol=1e-15, atol=1e-16)
    monkeypatch.setitem(sys.modules, "scipy.special", None)  # the import fails: math.erf per element
    np.testing.assert_array_equal(activation._erf(x), exact)
    g = nn.GELU()
    y32 = g(x.astype(np.float32))
    assert y32.dtype == np.float32 and g.backward(np.ones_like(y32)).dtype == np.float32
    cdf = 0.5 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x]))
    np.testing.assert_allclose(y32, x * cdf, rtol=2e-6, atol=1e-7)
    with pytest.raises(ValueError, match="GELU: expected approximate 'none' or 'tanh', got 'erf'"):
        nn.GELU("erf")
    with pytest.raises(ValueError, match="Softplus: expected beta > 0, got 0"):
        nn.Softplus(beta=0)


def test_softplus_and_elu_extremes():
    x = np.array([-1000.0, -30.0, 0.0, 19.0, 21.0, 1000.0], np.float32)
    with np.errstate(over="raise", invalid="raise"):
        y = nn.Softplus()(x)
        e = nn.ELU()(x)
    np.testing.assert_allclose(y, [0, np.exp(-30.0), np.log(2), 19 + np.log1p(np.exp(-19.0)), 21, 1000],
                               rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(e, [-1, np.expm1(-30.0), 0, 19, 21, 1000], rtol=1e-6)


@pytest.mark.parametrize("shape,k,dim", [((3, 6, 2, 3), 2, 1), ((4, 9), 3, -1), ((2, 3, 8), 4, 2)])
def test_maxout_fd_and_torch(shape, k, dim, rng):
    x = x64(rng, *shape)
    m = nn.Maxout(k, dim=dim)
    y, gx = fd_check(m, x, rng, params=False)
    d = dim % x.ndim
    want = x.reshape(x.shape[:d] + (x.shape[d] // k, k) + x.shape[d + 1:]).max(axis=d + 1)
    np.testing.assert_array_equal(y, want)
    torch = pytest.importorskip("torch")
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = xt.unflatten(d, (x.shape[d] // k, k)).amax(d + 1)
    G = rng.standard_normal(y.shape)
    yt.backward(torch.from_numpy(G))
    m(x)
    np.testing.assert_array_equal(m.backward(G), xt.grad.numpy())


def test_maxout_ties_and_errors():
    m = nn.Maxout(2)
    x = np.array([[1.0, 1.0, 3.0, 2.0]])
    np.testing.assert_array_equal(m(x), [[1.0, 3.0]])
    np.testing.assert_array_equal(m.backward(np.array([[5.0, 7.0]])), [[5.0, 0.0, 7.0, 0.0]])  # first maximum
    with pytest.raises(ValueError, match=r"Maxout: expected the size of dim 1 divisible by pool_size 3, got shape "
                                         r"\(1, 4\)"):
        nn.Maxout(3)(x)
    with pytest.raises(ValueError, match="Maxout: expected dim in"):
        nn.Maxout(2, dim=2)(x)
    with pytest.raises(ValueError, match="Maxout: expected pool_size as an integer >= 1, got 0"):
        nn.Maxout(0)


# ----------------------------------------------------------------------------- locally connected
@pytest.mark.parametrize("kw,shape", [
    (dict(in_channels=2, out_channels=3, kernel_size=3), (2, 2, 6, 5)),
    (dict(in_channels=3, out_channels=2, kernel_size=(2, 3), stride=(2, 1), padding=(1, 2), bias=False), (1, 3, 5, 4)),
])
def test_locally_connected2d_fd_and_reference(kw, shape, rng):
    m = nn.LocallyConnected2d(input_size=shape[2:], dtype=np.float64, rng=rng, **kw)
    x = x64(rng, *shape)
    y, _ = fd_check(m, x, rng)
    b = None if m.bias is None else m.bias.data
    assert rel_err(y, locally_connected2d_ref(x, m.weight.data, b, m.stride, m.padding)) < 1e-13
    torch = pytest.importorskip("torch")  # second oracle: unfold + per-position einsum, through autograd
    F = torch.nn.functional
    xt = torch.from_numpy(x.copy()).requires_grad_()
    wt = torch.from_numpy(m.weight.data.copy()).requires_grad_()
    oh, ow = m.output_size
    cols = F.unfold(xt, m.kernel_size, padding=m.padding, stride=m.stride)       # (N, C*kh*kw, L)
    yt = torch.einsum("nkl,lok->nol", cols, wt.reshape(oh * ow, m.out_channels, -1)).reshape(y.shape)
    if b is not None:
        yt = yt + torch.from_numpy(b)
    G = rng.standard_normal(y.shape)
    yt.backward(torch.from_numpy(G))
    m.zero_grad()
    m(x)
    assert rel_err(m.backward(G), xt.grad.numpy()) < 1e-12
    assert rel_err(m.weight.grad, wt.grad.numpy()) < 1e-12


def test_locally_connected2d_counts_and_errors(rng):
    # the notes' example: 55x55x96 neurons, each with its own 11x11x3 weights and a bias
    lc = nn.LocallyConnected2d(3, 96, 227, 11, stride=4, rng=rng)
    assert lc.output_size == (55, 55) and lc.num_parameters() == 55 * 55 * 96 * (11 * 11 * 3 + 1) == 105_705_600
    assert nn.Conv2d(3, 96, 11, stride=4).num_parameters() == 34_944  # with sharing
    small = nn.LocallyConnected2d(2, 3, (5, 5), 3, rng=rng)
    with pytest.raises(ValueError, match=r"LocallyConnected2d: expected input \(N, 2, 5, 5\), got shape "
                                         r"\(1, 2, 5, 6\)"):
        small(np.zeros((1, 2, 5, 6), np.float32))
    with pytest.raises(TypeError, match="LocallyConnected2d: input dtype float64 differs from the weight dtype "
                                        "float32"):
        small(np.zeros((1, 2, 5, 5)))
    with pytest.raises(ValueError, match="LocallyConnected2d: the kernel"):
        nn.LocallyConnected2d(1, 1, (2, 2), 3)
    frozen = nn.LocallyConnected2d(2, 3, (5, 5), 3, dtype=np.float64, rng=rng).freeze()
    frozen.needs_input_grad = False
    frozen(x64(rng, 1, 2, 5, 5))
    assert frozen.backward(np.ones((1, 3, 3, 3))) is None and frozen.weight.grad is None


# ----------------------------------------------------------------------------- DropConnect
def test_linear_drop_connect_masks_weights(rng):
    p = 0.3
    m = nn.Linear(150, 120, drop_connect=p, dtype=np.float64, rng=rng)
    eye = np.eye(150)
    w_eff = (m(eye) - m.bias.data).T                   # row i of the identity picks column i of W_eff
    dropped = w_eff == 0
    assert abs(dropped.mean() - p) < 0.02
    np.testing.assert_allclose(w_eff[~dropped], m.weight.data[~dropped] / (1 - p), rtol=1e-12)
    assert not np.array_equal(m(eye), m(eye))            # a fresh mask per forward
    m.eval()
    np.testing.assert_allclose(m(eye), m.weight.data.T + m.bias.data, rtol=1e-12)  # eval: W itself
    with pytest.raises(ValueError, match="Linear: expected 0 <= drop_connect < 1, got 1.0"):
        nn.Linear(2, 2, drop_connect=1.0)


def test_linear_drop_connect_gradients(rng):
    m = nn.Linear(5, 4, drop_connect=0.5, dtype=np.float64, rng=rng)
    x = x64(rng, 3, 5)
    G = rng.standard_normal((3, 4))

    def f():
        nn.init.manual_seed(11)  # the same mask on every call
        return float((m(x) * G).sum())

    f()
    m.zero_grad()
    gx = m.backward(G)
    assert 0 < np.count_nonzero(m.weight.grad) < m.weight.grad.size  # dropped weights get no gradient
    assert rel_err(gx, numerical_grad(f, x)) < 1e-7
    assert rel_err(m.weight.grad, numerical_grad(f, m.weight.data)) < 1e-7
    assert rel_err(m.bias.grad, numerical_grad(f, m.bias.data)) < 1e-7


# ----------------------------------------------------------------------------- gradient clipping
@pytest.mark.parametrize("max_norm,norm_type", [(0.5, 2.0), (100.0, 2.0), (0.3, 1.0), (0.2, float("inf")),
                                                (1.0, 3.0)])
def test_clip_grad_norm_matches_torch(max_norm, norm_type, rng):
    torch = pytest.importorskip("torch")
    net = nn.Sequential(nn.Linear(4, 3, dtype=np.float64, rng=rng), nn.Linear(3, 2, dtype=np.float64, rng=rng))
    net[0].bias.requires_grad = False  # frozen: no gradient, skipped
    for p in net.parameters(trainable_only=True):
        p.grad = rng.standard_normal(p.shape)
    tparams = [torch.nn.Parameter(torch.zeros(p.shape, dtype=torch.float64)) for p in net.parameters(True)]
    for tp, p in zip(tparams, net.parameters(True)):
        tp.grad = torch.from_numpy(p.grad.copy())
    total = nn.clip_grad_norm_(net, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type)
    assert total == pytest.approx(float(ttotal), rel=1e-14)
    for tp, p in zip(tparams, net.parameters(True)):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-14)
    after = nn.clip_grad_norm_(net.parameters(), max_norm, norm_type)
    assert after <= max_norm * (1 + 1e-9) and net[0].bias.grad is None


def test_clip_grad_value_and_errors(rng):
    p = nn.Parameter(np.zeros(5))
    p.grad = np.array([-3.0, -0.5, 0.0, 0.7, 9.0])
    nn.clip_grad_value_([p], 1.0)
    np.testing.assert_array_equal(p.grad, [-1.0, -0.5, 0.0, 0.7, 1.0])
    p.grad = np.array([1.0, np.inf])
    with pytest.raises(RuntimeError, match="clip_grad_norm_: the total norm of order 2.0 of the gradients is inf"):
        nn.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
    assert nn.clip_grad_norm_([nn.Parameter(np.zeros(2))], 1.0) == 0.0  # no gradients at all
    with pytest.raises(ValueError, match="clip_grad_norm_: expected max_norm >= 0, got -1.0"):
        nn.clip_grad_norm_(p, -1)
    with pytest.raises(ValueError, match="clip_grad_norm_: expected norm_type > 0 or inf, got 0.0"):
        nn.clip_grad_norm_(p, 1, 0)
    with pytest.raises(TypeError, match="clip_grad_value_: expected Parameters \\(or a Module\\), got ndarray"):
        nn.clip_grad_value_([np.zeros(2)], 1.0)
