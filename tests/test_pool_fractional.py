"""Tests of fractional max pooling (cnnops.pool_fractional), 2-D and 3-D, both conventions:
PyTorch's (kernel_size, output_size/output_ratio, _random_samples: output and indices equal to
torch's for the same samples) and TensorFlow's (pooling_ratio, pseudo_random, overlapping, seed:
sequences follow TF's documented rules and reproduce the output). Backward against the scatter-add
reference, finite differences and torch; determinism across thread counts; bad input."""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest

import cnnops
from cnnops.pool_fractional import pooling_sequence
from reference import (
    fractional_max_pool_tf_ref,
    fractional_max_pool_torch_ref,
    index_scatter_add_ref,
    numerical_grad,
    rel_err,
)
from testing import (DTYPE_IDS, DTYPES, HALF, HALF_EPS, from_cl, half_array, half_to_float, poisoned_outputs, randn,
                     to_cl, to_device, to_host, zeros)

FMP = {2: cnnops.fractional_max_pool2d, 3: cnnops.fractional_max_pool3d}
FMP_BWD = {2: cnnops.fractional_max_pool2d_backward, 3: cnnops.fractional_max_pool3d_backward}
CL = {2: "NHWC", 3: "NDHWC"}


TORCH_CASES = [
    # (spatial, kernel, output_size)
    ((11, 13), (2, 2), (7, 9)),
    ((11, 13), (3, 2), (5, 12)),
    ((12, 7), (2, 3), (11, 5)),
    ((9, 9), (1, 1), (9, 9)),
    ((10, 17), (4, 5), (1, 1)),
    ((23, 5), (2, 2), (16, 3)),
    ((7, 8, 9), (2, 2, 2), (5, 6, 7)),
    ((6, 9, 6), (3, 2, 2), (3, 5, 4)),
    # output depth 1 with input depth > 1: the window sits at depth in - k, not at 0
    ((2, 3, 3), (1, 2, 2), (1, 1, 1)),
    ((5, 9, 11), (2, 2, 2), (1, 6, 8)),
    ((4, 10, 9), (3, 3, 3), (1, 5, 4)),
    ((2, 9, 11), (1, 2, 2), (1, 6, 8)),
]
TORCH_IDS = ["x".join(map(str, c[0])) + "-k" + "x".join(map(str, c[1])) + "-o" + "x".join(map(str, c[2]))
             for c in TORCH_CASES]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("sp,k,out", TORCH_CASES, ids=TORCH_IDS)
def test_torch_convention_matches_reference(sp, k, out, dtype, rng, device):
    nd = len(sp)
    x = randn(rng, (2, 3) + sp, dtype)
    u = rng.random((2, 3, nd)).astype(dtype)
    dev = functools.partial(to_device, device=device)
    with poisoned_outputs():  # samples on the input's device here, on the host channels-last
        y, idx = FMP[nd](dev(x), k, output_size=out, return_indices=True, _random_samples=dev(u))
        ycl, icl = FMP[nd](dev(to_cl(x)), k, output_size=out, return_indices=True, _random_samples=u,
                           data_format=CL[nd])
    y, idx = to_host(y, device), to_host(idx, device)
    ry, ridx = fractional_max_pool_torch_ref(x, k, out, u)
    assert y.shape == (2, 3) + out and y.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(y, ry.astype(dtype))
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_array_equal(from_cl(to_host(ycl, device)), y)
    np.testing.assert_array_equal(from_cl(to_host(icl, device)), idx)
    gy = randn(rng, y.shape, dtype)
    with poisoned_outputs():
        gx = to_host(FMP_BWD[nd](dev(gy), dev(x), dev(idx)), device)
        gcl = FMP_BWD[nd](dev(to_cl(gy)), dev(to_cl(x)), dev(to_cl(idx)), data_format=CL[nd])
    assert gx.shape == x.shape and gx.dtype == dtype
    assert rel_err(gx, index_scatter_add_ref(gy.astype(np.float64), idx, sp)) < (1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_array_equal(from_cl(to_host(gcl, device)), gx)
    if device == "cuda":  # sums in the CPU's order: its bits
        assert gx.tobytes() == FMP_BWD[nd](gy, x, idx).tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sp,k,out", TORCH_CASES, ids=TORCH_IDS)
def test_torch_convention_matches_torch(sp, k, out, dtype, rng):
    torch = pytest.importorskip("torch")
    nd = len(sp)
    tdt = getattr(torch, dtype)
    x = torch.from_numpy(randn(rng, (2, 3) + sp, np.float64)).to(tdt).requires_grad_()
    # samples near 0 and 1 as well as in between: the float rounding of alpha * (i + u) matters
    u = torch.from_numpy(np.concatenate([rng.random((2, 3, nd)).ravel()[:-4], [0.0, 0.999999, 0.5, 0.25]])
                         .reshape(2, 3, nd)).to(tdt)
    fn = {2: torch.nn.functional.fractional_max_pool2d, 3: torch.nn.functional.fractional_max_pool3d}[nd]
    ry, ri = fn(x, k, output_size=out, return_indices=True, _random_samples=u)
    y, i = FMP[nd](x, k, output_size=out, return_indices=True, _random_samples=u)
    assert isinstance(y, torch.Tensor) and torch.equal(y, ry.detach()) and torch.equal(i, ri)
    gy = torch.randn(ry.shape, dtype=tdt)
    ry.backward(gy)
    gx = FMP_BWD[nd](gy, x, i)
    assert torch.allclose(gx, x.grad, rtol=1e-6, atol=1e-6)


def test_output_ratio_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(randn(rng, (2, 4, 31, 29), np.float32))
    u = torch.rand(2, 4, 2, generator=torch.Generator().manual_seed(5))
    for ratio in (0.5, 1 / math.sqrt(2), (0.6, 0.8)):
        tr = ratio if isinstance(ratio, tuple) else (ratio, ratio)  # torch takes a pair here
        ry, ri = torch.nn.functional.fractional_max_pool2d(x, 2, output_ratio=tr, return_indices=True,
                                                           _random_samples=u)
        y, i = cnnops.fractional_max_pool2d(x, 2, output_ratio=ratio, return_indices=True, _random_samples=u)
        assert torch.equal(y, ry) and torch.equal(i, ri)


def test_nan_rule_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = randn(rng, (1, 2, 9, 10), np.float64)
    x[0, 0, 2, 3] = np.nan
    x[0, 1, 4:6, 4:6] = np.nan
    x[0, 1, 0, 0] = np.inf
    u = torch.rand(1, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    xt = torch.from_numpy(x)
    ry, ri = torch.nn.functional.fractional_max_pool2d(xt, 3, output_size=(4, 5), return_indices=True,
                                                       _random_samples=u)
    y, i = cnnops.fractional_max_pool2d(xt, 3, output_size=(4, 5), return_indices=True, _random_samples=u)
    assert torch.equal(i, ri)
    assert torch.equal(torch.isnan(y), torch.isnan(ry)) and torch.isnan(y).any()
    assert torch.equal(torch.nan_to_num(y), torch.nan_to_num(ry))


def test_random_samples_drawn_when_not_given(rng):
    x = randn(rng, (2, 3, 15, 15), np.float32)
    y = cnnops.fractional_max_pool2d(x, 2, output_size=(10, 10))
    assert y.shape == (2, 3, 10, 10) and np.isfinite(y).all()
    # each output is the maximum of some 2x2 window of its plane
    win_max = np.maximum(np.maximum(x[:, :, :-1, :-1], x[:, :, 1:, :-1]), np.maximum(x[:, :, :-1, 1:], x[:, :, 1:, 1:]))
    for n in range(2):
        for c in range(3):
            assert np.isin(y[n, c], win_max[n, c]).all()


# ----------------------------------------------------------------------------- TensorFlow convention


class _FixedRng:
    """Stands in for numpy's Generator: random() returns a fixed value, permutation() reverses."""

    def __init__(self, u):
        self.u = u

    def random(self):
        return self.u

    def permutation(self, a):
        return np.asarray(a)[::-1]


@pytest.mark.parametrize("n_in,n_out", [(10, 7), (25, 17), (112, 79), (7, 4), (9, 5), (30, 29), (12, 6), (5, 1)])
def test_pooling_sequence_rules(n_in, n_out, rng):
    k = n_in // n_out
    for pseudo in (False, True):
        for seed in range(5):
            seq = pooling_sequence(n_in, n_out, pseudo, np.random.default_rng(seed))
            d = np.diff(seq)
            assert seq[0] == 0 and seq[-1] == n_in and len(seq) == n_out + 1
            assert set(d.tolist()) <= {k, k + 1}
            assert int(np.sum(d == k + 1)) == (n_in % n_out if n_in % n_out else 0)
    if n_in % n_out == 0:
        assert pooling_sequence(n_in, n_out, True, _FixedRng(0.3)).tolist() == list(range(0, n_in + 1, k))
        return
    # pseudo-random: a_i = ceil(alpha * (i + u)), u = random() * min(u_max1, u_max2), sequence a_i - 1
    alpha = n_in / n_out
    u_max = min((k + 2) / alpha - 1, (n_in + 1 - k) / alpha - (n_out - 1))
    for r in (0.0, 0.37, 0.999):
        u = r * u_max
        want = [0] + [math.ceil(alpha * (i + u)) - 1 for i in range(1, n_out)] + [n_in]
        assert pooling_sequence(n_in, n_out, True, _FixedRng(r)).tolist() == want
    # random: k + 1 for the first in % out steps, then shuffled (the stub reverses)
    d = np.diff(pooling_sequence(n_in, n_out, False, _FixedRng(0.0)))
    assert d.tolist() == ([k] * (n_out - n_in % n_out) + [k + 1] * (n_in % n_out))


@pytest.mark.parametrize("overlapping", [False, True])
@pytest.mark.parametrize("pseudo_random", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_tf_convention_2d(pseudo_random, overlapping, dtype, rng, device):
    x = randn(rng, (2, 3, 17, 14), dtype)
    xd = to_device(x, device)
    with poisoned_outputs():
        y, idx, rows, cols = cnnops.fractional_max_pool2d(xd, pooling_ratio=(1.44, 1.73), pseudo_random=pseudo_random,
                                                          overlapping=overlapping, seed=7, return_indices=True)
    y, idx = to_host(y, device), to_host(idx, device)
    assert y.shape == (2, 3, 11, 8) and rows.shape == (12,) and cols.shape == (9,)
    ry, ridx = fractional_max_pool_tf_ref(x, (rows, cols), overlapping)
    np.testing.assert_array_equal(y, ry.astype(dtype))
    np.testing.assert_array_equal(idx, ridx)
    # same seed -> same sequences; the sequences reproduce the output
    y2, rows2, cols2 = cnnops.fractional_max_pool2d(xd, pooling_ratio=(1.44, 1.73), pseudo_random=pseudo_random,
                                                    overlapping=overlapping, seed=7)
    assert np.array_equal(rows2, rows) and np.array_equal(cols2, cols)
    y3, _, _ = cnnops.fractional_max_pool2d(xd, pooling_sequences=(rows, cols), overlapping=overlapping)
    np.testing.assert_array_equal(to_host(y3, device), y)
    # TF's spelling of the ratio, channels last (TF's layout)
    ycl, icl, rcl, ccl = cnnops.fractional_max_pool2d(to_device(to_cl(x), device), pooling_ratio=[1.0, 1.44, 1.73, 1.0],
                                                      pseudo_random=pseudo_random, overlapping=overlapping, seed=7,
                                                      return_indices=True, data_format="NHWC")
    assert np.array_equal(rcl, rows) and np.array_equal(ccl, cols)
    np.testing.assert_array_equal(from_cl(to_host(ycl, device)), y)
    np.testing.assert_array_equal(from_cl(to_host(icl, device)), idx)
    gy = randn(rng, y.shape, dtype)
    gx = to_host(cnnops.fractional_max_pool2d_backward(to_device(gy, device), xd, to_device(idx, device)), device)
    assert rel_err(gx, index_scatter_add_ref(gy.astype(np.float64), idx, (17, 14))) < 1e-6
    if device == "cuda":
        assert gx.tobytes() == cnnops.fractional_max_pool2d_backward(gy, x, idx).tobytes()


def test_tf_convention_3d(rng, device):
    x = randn(rng, (1, 2, 9, 10, 11), np.float64)
    y, idx, ds, rs, cs = cnnops.fractional_max_pool3d(to_device(x, device), pooling_ratio=1.5, overlapping=True, seed=3,
                                                      return_indices=True)
    y, idx = to_host(y, device), to_host(idx, device)
    assert y.shape == (1, 2, 6, 6, 7)
    ry, ridx = fractional_max_pool_tf_ref(x, (ds, rs, cs), True)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)


@pytest.mark.parametrize("convention", ["torch", "tf"])
def test_backward_finite_differences(convention, rng):
    x = rng.permutation(np.arange(2 * 9 * 10, dtype=np.float64)).reshape(1, 2, 9, 10) / 10  # no ties
    if convention == "torch":
        kw = dict(kernel_size=3, output_size=(5, 6), _random_samples=rng.random((1, 2, 2)))
    else:
        kw = dict(pooling_sequences=(pooling_sequence(9, 6, True, rng), pooling_sequence(10, 7, False, rng)),
                  overlapping=True)
    out = cnnops.fractional_max_pool2d(x, return_indices=True, **kw)
    y, idx = out[0], out[1]
    gy = randn(rng, y.shape, np.float64)

    def loss():
        r = cnnops.fractional_max_pool2d(x, **kw)  # the TF convention also returns the sequences
        return float(np.sum((r[0] if isinstance(r, tuple) else r) * gy))

    num = numerical_grad(loss, x, eps=1e-4)
    assert rel_err(cnnops.fractional_max_pool2d_backward(gy, x, idx), num) < 1e-8


@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
def test_backward_deterministic_across_threads(fmt, rng, threads):
    x = randn(rng, (3, 5, 40, 37), np.float32)
    u = rng.random((3, 5, 2)).astype(np.float32)
    if fmt == "NHWC":
        x = to_cl(x)
    y, idx = cnnops.fractional_max_pool2d(x, 4, output_size=(30, 25), return_indices=True, _random_samples=u,
                                          data_format=fmt)  # overlapping windows: sums of several
    gy = randn(rng, y.shape, np.float32)
    outs = []
    for n in (1, 2, 4):
        threads(n)
        outs.append(cnnops.fractional_max_pool2d_backward(gy, x, idx, data_format=fmt).tobytes())
    assert outs[0] == outs[1] == outs[2]


def test_poisoned_outputs(rng):
    x = randn(rng, (2, 16, 60, 60), np.float64)
    u = rng.random((2, 16, 2))
    nbytes = 2 * 16 * 42 * 42 * 8
    cnnops.empty_cache()
    blocks = [cnnops.upsample_nearest1d(np.full((1, 1, 1), np.nan), size=nbytes // 8) for _ in range(2)]
    del blocks
    y, idx = cnnops.fractional_max_pool2d(x, 2, output_size=(42, 42), return_indices=True, _random_samples=u)
    ry, ridx = fractional_max_pool_torch_ref(x[:, :2], (2, 2), (42, 42), u[:, :2])
    np.testing.assert_array_equal(y[:, :2], ry)
    np.testing.assert_array_equal(idx[:, :2], ridx)
    assert np.isfinite(y).all() and (idx >= 0).all() and (idx < 3600).all()


def test_noncontiguous_and_torch_io(rng):
    torch = pytest.importorskip("torch")
    base = randn(rng, (2, 3, 20, 22), np.float64)
    x = base[:, :, ::2, ::2]
    keep = base.copy()
    u = rng.random((2, 3, 2))
    y = cnnops.fractional_max_pool2d(x, 2, output_size=(7, 8), _random_samples=u)
    np.testing.assert_array_equal(y, fractional_max_pool_torch_ref(np.ascontiguousarray(x), (2, 2), (7, 8), u)[0])
    np.testing.assert_array_equal(base, keep)
    xt = torch.from_numpy(base).permute(0, 1, 3, 2)
    yt, it = cnnops.fractional_max_pool2d(xt, 2, output_size=(15, 14), return_indices=True,
                                          _random_samples=torch.from_numpy(u))
    ry, ri = torch.nn.functional.fractional_max_pool2d(xt, 2, output_size=(15, 14), return_indices=True,
                                                       _random_samples=torch.from_numpy(u))
    assert torch.equal(yt, ry) and torch.equal(it, ri)


# ----------------------------------------------------------------------------- CUDA against the CPU kernels



def _made_up_indices(rng, idx, sp, how):
    """Indices a caller made up from forward indices `idx` (N, C, *out) over planes of size `sp`:
    "shifted" moves each one column right where it can (outside its window, duplicates appear, the
    candidate boxes stay a few outputs wide), "random" draws them over the whole plane (wide boxes)."""
    if how == "shifted":
        return np.where(idx % sp[-1] < sp[-1] - 1, idx + 1, idx)
    return rng.integers(0, int(np.prod(sp)), size=idx.shape).astype(np.int64)


@pytest.mark.cuda
@pytest.mark.parametrize("how", ["forward", "shifted", "random"])
@pytest.mark.parametrize("nd", [2, 3])
def test_cuda_backward_equals_cpu_bitwise(nd, how, rng):
    """The backward with the forward's indices and with made-up ones (the gather over candidate
    boxes, and the per-plane kernel for the wide boxes of random indices): the CPU's bits, both
    layouts; duplicates add up in output order."""
    sp, out = ((12, 13), (9, 10)) if nd == 2 else ((6, 7, 8), (4, 5, 6))
    for dtype in DTYPES:
        x = randn(rng, (2, 3) + sp, dtype)
        u = rng.random((2, 3, nd)).astype(dtype)
        _, idx = FMP[nd](x, 2, output_size=out, return_indices=True, _random_samples=u)
        if how != "forward":
            idx = _made_up_indices(rng, idx, sp, how)
        gy = randn(rng, idx.shape, dtype)
        for fmt in ("NC", CL[nd]):
            a = (lambda v: to_cl(v)) if fmt != "NC" else (lambda v: v)
            kw = {"data_format": fmt} if fmt != "NC" else {}
            want = FMP_BWD[nd](a(gy), a(x), a(idx), **kw)
            with poisoned_outputs():
                got = FMP_BWD[nd](to_device(a(gy), "cuda"), to_device(a(x), "cuda"), to_device(a(idx), "cuda"), **kw)
            got = to_host(got, "cuda")
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), (np.dtype(dtype), fmt)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
def test_cuda_half_precision(fmt, dtype, rng):
    """float16/bfloat16 on CUDA against the float32 CPU kernels fed the same rounded values: maxima
    and indices exact in both conventions (windows from float32 samples, from samples of the
    input's dtype, from TF sequences), gradients within the 16-bit storage precision (the gather
    and the per-plane kernel)."""
    lay = to_cl if fmt == "NHWC" else np.ascontiguousarray
    xd, x = half_array(lay(randn(rng, (2, 3, 14, 15), np.float32)), dtype)
    u = rng.random((2, 3, 2)).astype(np.float32)
    ud, uh = half_array(u, dtype)
    calls = [dict(kernel_size=2, output_size=(10, 11), _random_samples=(u, u)),
             dict(kernel_size=3, output_size=(7, 9), _random_samples=(ud, uh)),
             dict(pooling_sequences=([0, 2, 3, 5, 7, 9, 11, 14], [0, 1, 3, 4, 6, 8, 10, 12, 15]), overlapping=True)]
    for kw in calls:
        sd, sh = kw.pop("_random_samples", (None, None))
        more = {"_random_samples": sd} if sd is not None else {}
        rd = cnnops.fractional_max_pool2d(xd, return_indices=True, data_format=fmt, **kw, **more)
        more = {"_random_samples": sh} if sh is not None else {}
        r = cnnops.fractional_max_pool2d(x, return_indices=True, data_format=fmt, **kw, **more)
        np.testing.assert_array_equal(half_to_float(rd[0], dtype), r[0], err_msg=str(kw))
        np.testing.assert_array_equal(rd[1].numpy(), r[1], err_msg=str(kw))
        gyd, gy = half_array(randn(rng, r[0].shape, np.float32), dtype)
        for idx in (r[1], rng.integers(0, 14 * 15, size=r[1].shape).astype(np.int64)):
            gd = cnnops.fractional_max_pool2d_backward(gyd, xd, cnnops.cuda.array(idx), data_format=fmt)
            g = cnnops.fractional_max_pool2d_backward(gy, x, idx, data_format=fmt)
            assert rel_err(half_to_float(gd, dtype), g) <= HALF_EPS[dtype], str(kw)
    # samples drawn when not given: float32 ones for a 16-bit input
    y = cnnops.fractional_max_pool2d(xd, 2, output_size=(10, 11), data_format=fmt)
    assert str(y.dtype) == dtype and np.isfinite(half_to_float(y, dtype)).all()


@pytest.mark.cuda
@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
def test_cuda_deterministic(fmt, rng):
    """Two runs give the same bits: the forward, the gather backward (overlapping windows: sums of
    several outputs) and the per-plane backward (made-up indices)."""
    x = randn(rng, (2, 3, 14, 15), np.float32)
    u = rng.random((2, 3, 2)).astype(np.float32)
    gy = randn(rng, (2, 3, 10, 11), np.float32)
    wild = rng.integers(0, 14 * 15, size=gy.shape).astype(np.int64)
    if fmt == "NHWC":
        x, gy, wild = to_cl(x), to_cl(gy), to_cl(wild)
    xd, gyd, wildd = (to_device(a, "cuda") for a in (x, gy, wild))

    def run():
        y, idx = cnnops.fractional_max_pool2d(xd, 4, output_size=(10, 11), return_indices=True, _random_samples=u,
                                              data_format=fmt)
        return [to_host(a, "cuda").tobytes() for a in (
            y, idx, cnnops.fractional_max_pool2d_backward(gyd, xd, idx, data_format=fmt),
            cnnops.fractional_max_pool2d_backward(gyd, xd, wildd, data_format=fmt))]

    assert run() == run()


@pytest.mark.cuda
@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
def test_cuda_backward_bad_index_is_the_first_in_memory_order(fmt, rng):
    x = randn(rng, (2, 3, 9, 10), np.float32)
    _, idx = cnnops.fractional_max_pool2d(x, 2, output_size=(6, 7), return_indices=True,
                                          _random_samples=rng.random((2, 3, 2)).astype(np.float32))
    idx[1, 2, 3, 4] = 90
    idx[1, 1, 5, 6] = -3
    first = -3 if fmt == "NCHW" else 90  # (n, c, h, w) order, or (n, h, w, c)
    gy = randn(rng, idx.shape, np.float32)
    if fmt == "NHWC":
        x, idx, gy = to_cl(x), to_cl(idx), to_cl(gy)
    for dev in ("cpu", "cuda"):
        with pytest.raises(ValueError, match=rf"^fractional_max_pool2d_backward: expected indices in \[0, 90\) "
                                             rf"\(the input's spatial size\), got {first}$"):
            cnnops.fractional_max_pool2d_backward(to_device(gy, dev), to_device(x, dev), to_device(idx, dev),
                                                  data_format=fmt)


@pytest.mark.cuda
def test_cuda_mixed_devices_are_type_errors(rng):
    x = randn(rng, (1, 2, 6, 6), np.float32)
    u = rng.random((1, 2, 2)).astype(np.float32)
    y, idx = cnnops.fractional_max_pool2d(x, 2, output_size=(4, 4), return_indices=True, _random_samples=u)
    xd, yd, idd, ud = (to_device(a, "cuda") for a in (x, y, idx, u))
    with pytest.raises(TypeError, match=r"fractional_max_pool2d_backward: expected grad_output on the input's device "
                                        r"cuda:0, got cpu"):
        cnnops.fractional_max_pool2d_backward(y, xd, idd)
    with pytest.raises(TypeError, match=r"fractional_max_pool2d_backward: expected indices on the input's device "
                                        r"cuda:0, got cpu"):
        cnnops.fractional_max_pool2d_backward(yd, xd, idx)
    with pytest.raises(TypeError, match=r"fractional_max_pool2d_backward: expected grad_output on the input's device "
                                        r"cpu, got cuda:0"):
        cnnops.fractional_max_pool2d_backward(yd, x, idx)
    with pytest.raises(TypeError, match=r"fractional_max_pool2d: expected _random_samples on the CPU or on the "
                                        r"input's device cpu, got cuda:0"):
        cnnops.fractional_max_pool2d(x, 2, output_size=(4, 4), _random_samples=ud)
    with pytest.raises(TypeError, match=r"_random_samples with the input's dtype float16 \(or float32\), got float64"):
        cnnops.fractional_max_pool2d(cnnops.cuda.array(x.astype(np.float16)), 2, output_size=(4, 4),
                                     _random_samples=u.astype(np.float64))


@pytest.mark.cuda
@pytest.mark.parametrize("nd", [2, 3])
def test_cuda_empty_batch(nd):
    x = to_device(np.zeros((0, 2) + (5,) * nd), "cuda")
    y, idx = FMP[nd](x, 2, output_size=(3,) * nd, return_indices=True)
    assert to_host(y, "cuda").shape == (0, 2) + (3,) * nd and to_host(idx, "cuda").shape == (0, 2) + (3,) * nd
    assert to_host(FMP_BWD[nd](y, x, idx), "cuda").shape == (0, 2) + (5,) * nd


# ----------------------------------------------------------------------------- bad input


# bad-argument placeholders are float32 unless a case says otherwise
_z = functools.partial(zeros, dtype=np.float32)


def _u(shape, dtype=np.float32):
    return np.full(shape, 0.5, dtype)


F2 = cnnops.fractional_max_pool2d
BAD = [
    ("ndim", lambda: F2(_z((2, 3, 4)), 2, output_size=2), ValueError,
     r"fractional_max_pool2d: expected input with 4 dimensions \(N, C, H, W\), got 3 with shape \(2, 3, 4\)"),
    ("too_large", lambda: F2(_z((1, 1, 8, 8)), 3, output_size=(7, 6)), ValueError,
     r"output_size \+ kernel_size - 1 <= input size, got height output 7 \+ kernel 3 - 1 > input 8"),
    ("zero_out", lambda: F2(_z((1, 1, 8, 8)), 2, output_size=(0, 3)), ValueError, r"output_size >= 1, got \(0, 3\)"),
    ("ratio_range", lambda: F2(_z((1, 1, 8, 8)), 2, output_ratio=1.2), ValueError,
     r"output_ratio in \(0, 1\), got \(1.2, 1.2\)"),
    ("ratio_zero_out", lambda: F2(_z((1, 1, 8, 8)), 2, output_ratio=0.1), ValueError,
     r"positive output size, got \(0, 0\)"),
    ("size_and_ratio", lambda: F2(_z((1, 1, 8, 8)), 2, output_size=4, output_ratio=0.5), ValueError,
     r"exactly one of output_size and output_ratio, got both"),
    ("no_kernel", lambda: F2(_z((1, 1, 8, 8)), output_size=4), ValueError, r"expected kernel_size"),
    ("both_conventions", lambda: F2(_z((1, 1, 8, 8)), 2, pooling_ratio=1.5), ValueError, r"got both"),
    ("samples_shape", lambda: F2(_z((2, 3, 8, 8)), 2, output_size=4, _random_samples=_u((2, 3, 3))), ValueError,
     r"_random_samples of shape \(2, 3, 2\), got \(2, 3, 3\)"),
    ("samples_dtype", lambda: F2(_z((2, 3, 8, 8)), 2, output_size=4, _random_samples=_u((2, 3, 2), np.float64)),
     TypeError, r"_random_samples with the input's dtype float32, got float64"),
    ("samples_range", lambda: F2(_z((1, 1, 8, 8)), 2, output_size=4, _random_samples=_u((1, 1, 2)) * 2), ValueError,
     r"_random_samples in \[0, 1\), got 1"),
    ("dtype", lambda: F2(np.zeros((1, 1, 8, 8), np.int64), 2, output_size=4), TypeError,
     r"input with dtype float32 or float64 \(float16 and bfloat16 on CUDA arrays\), got int64"),
    ("dtype_half", lambda: F2(np.zeros((1, 1, 8, 8), np.float16), 2, output_size=4), TypeError,
     r"input with dtype float32 or float64 \(float16 and bfloat16 on CUDA arrays\), got float16"),
    ("pooling_ratio_small", lambda: F2(_z((1, 1, 8, 8)), pooling_ratio=0.9), ValueError,
     r"pooling_ratio >= 1, got \(0.9, 0.9\)"),
    ("pooling_ratio_zero_out", lambda: F2(_z((1, 1, 8, 8)), pooling_ratio=9), ValueError,
     r"positive output size, got \(0, 0\)"),
    ("pooling_ratio_tf_form", lambda: F2(_z((1, 8, 8, 1)), pooling_ratio=[2, 1.5, 1.5, 1], data_format="NHWC"),
     ValueError, r"pooling_ratio 1.0 for the batch and channel dimensions"),
    ("seq_start", lambda: F2(_z((1, 1, 8, 8)), pooling_sequences=([1, 4, 8], [0, 4, 8])), ValueError,
     r"height pooling sequence to start at 0, got \(1, 4, 8\)"),
    ("seq_order", lambda: F2(_z((1, 1, 8, 8)), pooling_sequences=([0, 4, 8], [0, 4, 4, 8])), ValueError,
     r"strictly increasing width pooling sequence, got \(0, 4, 4, 8\)"),
    ("seq_end", lambda: F2(_z((1, 1, 8, 8)), pooling_sequences=([0, 4, 9], [0, 4, 8])), ValueError,
     r"height pooling sequence to end at most at the input size 8, got \(0, 4, 9\)"),
    ("format", lambda: F2(_z((1, 1, 8, 8)), 2, output_size=4, data_format="NDHWC"), ValueError,
     r"data_format 'NCHW' or 'NHWC', got 'NDHWC'"),
    ("bwd_indices_shape", lambda: cnnops.fractional_max_pool2d_backward(_z((1, 1, 4, 4)), _z((1, 1, 8, 8)),
                                                                       np.zeros((1, 1, 4, 5), np.int64)),
     ValueError, r"indices with the shape of grad_output \(1, 1, 4, 4\), got \(1, 1, 4, 5\)"),
    ("bwd_indices_range", lambda: cnnops.fractional_max_pool2d_backward(_z((1, 1, 2, 2)), _z((1, 1, 3, 3)),
                                                                       np.array([[[[0, 1], [9, 2]]]], np.int64)),
     ValueError, r"indices in \[0, 9\) \(the input's spatial size\), got 9"),
    ("bwd_negative_index", lambda: cnnops.fractional_max_pool2d_backward(_z((1, 1, 1, 1)), _z((1, 1, 3, 3)),
                                                                        np.full((1, 1, 1, 1), -3, np.int64)),
     ValueError, r"got -3"),
    ("bwd_indices_dtype", lambda: cnnops.fractional_max_pool2d_backward(_z((1, 1, 2, 2)), _z((1, 1, 3, 3)),
                                                                       np.zeros((1, 1, 2, 2), np.int32)),
     TypeError, r"indices with dtype int64, got int32"),
    ("bwd_channels", lambda: cnnops.fractional_max_pool2d_backward(_z((1, 2, 2, 2)), _z((1, 1, 3, 3)),
                                                                  np.zeros((1, 2, 2, 2), np.int64)),
     ValueError, r"grad_output with the batch and channels of the input \(1, 1, 3, 3\), got \(1, 2, 2, 2\)"),
    ("3d_ndim", lambda: cnnops.fractional_max_pool3d(_z((1, 1, 8, 8)), 2, output_size=3), ValueError,
     r"fractional_max_pool3d: expected input with 5 dimensions \(N, C, D, H, W\), got 4"),
]


@pytest.mark.parametrize("call,exc,pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arguments_raise(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


@pytest.mark.parametrize("k", [2, 3, (2, 3)])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_ties_nan_and_inf_match_reference_and_torch(k, dtype, rng, device):
    """Many ties (values 0..2), -inf, +inf and NaN: the first maximum in window order and the last
    NaN, in every kernel path (the two-pass 2x2 rows, fixed 3x3, generic windows)."""
    x = rng.integers(0, 3, size=(2, 3, 19, 23)).astype(dtype)
    x[rng.random(x.shape) < 0.05] = np.nan
    x[rng.random(x.shape) < 0.05] = -np.inf
    x[rng.random(x.shape) < 0.02] = np.inf
    x[0, 0] = -np.inf  # a whole plane of -inf: the index of each window's first element
    u = rng.random((2, 3, 2)).astype(dtype)
    kk = (k, k) if isinstance(k, int) else k
    out = (19 - kk[0] - 2, 23 - kk[1] - 3)
    y, idx = cnnops.fractional_max_pool2d(to_device(x, device), k, output_size=out, return_indices=True,
                                          _random_samples=u)
    y, idx = to_host(y, device), to_host(idx, device)
    ry, ridx = fractional_max_pool_torch_ref(x, kk, out, u)
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_array_equal(y, ry.astype(dtype))
    ycl, icl = cnnops.fractional_max_pool2d(to_device(to_cl(x), device), k, output_size=out, return_indices=True,
                                            _random_samples=u, data_format="NHWC")
    np.testing.assert_array_equal(from_cl(to_host(icl, device)), idx)
    if device == "cuda":  # the maxima are the CPU's bits (NaN payloads included)
        assert y.tobytes() == cnnops.fractional_max_pool2d(x, k, output_size=out, _random_samples=u).tobytes()
    torch = pytest.importorskip("torch")
    ty, ti = torch.nn.functional.fractional_max_pool2d(torch.from_numpy(x), k, output_size=out, return_indices=True,
                                                       _random_samples=torch.from_numpy(u))
    np.testing.assert_array_equal(idx, ti.numpy())
    np.testing.assert_array_equal(y, ty.numpy())


def test_large_output_streaming_path_matches_torch(rng):
    """Outputs + indices above the streaming threshold (24 MB): the streamed planes equal torch's."""
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(randn(rng, (4, 64, 150, 150), np.float32))
    u = torch.from_numpy(rng.random((4, 64, 2)).astype(np.float32))
    y, i = cnnops.fractional_max_pool2d(x, 2, output_size=(106, 106), return_indices=True, _random_samples=u)
    ry, ri = torch.nn.functional.fractional_max_pool2d(x, 2, output_size=(106, 106), return_indices=True,
                                                       _random_samples=u)
    assert torch.equal(y, ry) and torch.equal(i, ri)
    gy = torch.from_numpy(randn(rng, (4, 64, 150, 150), np.float32))[:, :, :106, :106].contiguous()
    ry2 = torch.ops.aten.fractional_max_pool2d_backward(gy, x, [2, 2], [106, 106], i)
    assert torch.allclose(cnnops.fractional_max_pool2d_backward(gy, x, i), ry2)


@pytest.mark.parametrize("nd", [2, 3])
def test_empty_batch(nd):
    """N = 0: empty outputs and indices (no window is read), forward and backward, both conventions."""
    x = np.zeros((0, 2) + (5,) * nd)
    y, idx = FMP[nd](x, 2, output_size=(3,) * nd, return_indices=True)
    assert y.shape == (0, 2) + (3,) * nd and idx.shape == y.shape
    assert FMP_BWD[nd](y, x, idx).shape == x.shape
    y, *seqs = FMP[nd](x, pooling_ratio=1.5)
    assert y.shape[:2] == (0, 2)
