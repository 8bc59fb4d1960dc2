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
from testing import DTYPE_IDS, DTYPES, from_cl, randn, to_cl, zeros

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
def test_torch_convention_matches_reference(sp, k, out, dtype, rng):
    nd = len(sp)
    x = randn(rng, (2, 3) + sp, dtype)
    u = rng.random((2, 3, nd)).astype(dtype)
    y, idx = FMP[nd](x, k, output_size=out, return_indices=True, _random_samples=u)
    ry, ridx = fractional_max_pool_torch_ref(x, k, out, u)
    assert y.shape == (2, 3) + out and y.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(y, ry.astype(dtype))
    np.testing.assert_array_equal(idx, ridx)
    ycl, icl = FMP[nd](to_cl(x), k, output_size=out, return_indices=True, _random_samples=u, data_format=CL[nd])
    np.testing.assert_array_equal(from_cl(ycl), y)
    np.testing.assert_array_equal(from_cl(icl), idx)
    gy = randn(rng, y.shape, dtype)
    gx = FMP_BWD[nd](gy, x, idx)
    assert gx.shape == x.shape and gx.dtype == dtype
    assert rel_err(gx, index_scatter_add_ref(gy.astype(np.float64), idx, sp)) < (1e-6 if dtype == np.float32 else 1e-14)
    gcl = FMP_BWD[nd](to_cl(gy), to_cl(x), to_cl(idx), data_format=CL[nd])
    np.testing.assert_array_equal(from_cl(gcl), gx)


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
def test_tf_convention_2d(pseudo_random, overlapping, dtype, rng):
    x = randn(rng, (2, 3, 17, 14), dtype)
    y, idx, rows, cols = cnnops.fractional_max_pool2d(x, pooling_ratio=(1.44, 1.73), pseudo_random=pseudo_random,
                                                      overlapping=overlapping, seed=7, return_indices=True)
    assert y.shape == (2, 3, 11, 8) and rows.shape == (12,) and cols.shape == (9,)
    ry, ridx = fractional_max_pool_tf_ref(x, (rows, cols), overlapping)
    np.testing.assert_array_equal(y, ry.astype(dtype))
    np.testing.assert_array_equal(idx, ridx)
    # same seed -> same sequences; the sequences reproduce the output
    y2, rows2, cols2 = cnnops.fractional_max_pool2d(x, pooling_ratio=(1.44, 1.73), pseudo_random=pseudo_random,
                                                    overlapping=overlapping, seed=7)
    assert np.array_equal(rows2, rows) and np.array_equal(cols2, cols)
    y3, _, _ = cnnops.fractional_max_pool2d(x, pooling_sequences=(rows, cols), overlapping=overlapping)
    np.testing.assert_array_equal(y3, y)
    # TF's spelling of the ratio, channels last (TF's layout)
    ycl, icl, rcl, ccl = cnnops.fractional_max_pool2d(to_cl(x), pooling_ratio=[1.0, 1.44, 1.73, 1.0],
                                                      pseudo_random=pseudo_random, overlapping=overlapping, seed=7,
                                                      return_indices=True, data_format="NHWC")
    assert np.array_equal(rcl, rows) and np.array_equal(ccl, cols)
    np.testing.assert_array_equal(from_cl(ycl), y)
    np.testing.assert_array_equal(from_cl(icl), idx)
    gy = randn(rng, y.shape, dtype)
    gx = cnnops.fractional_max_pool2d_backward(gy, x, idx)
    assert rel_err(gx, index_scatter_add_ref(gy.astype(np.float64), idx, (17, 14))) < 1e-6


def test_tf_convention_3d(rng):
    x = randn(rng, (1, 2, 9, 10, 11), np.float64)
    y, idx, ds, rs, cs = cnnops.fractional_max_pool3d(x, pooling_ratio=1.5, overlapping=True, seed=3,
                                                      return_indices=True)
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
     r"input with dtype float32 or float64, got int64"),
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
def test_ties_nan_and_inf_match_reference_and_torch(k, dtype, rng):
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
    y, idx = cnnops.fractional_max_pool2d(x, k, output_size=out, return_indices=True, _random_samples=u)
    ry, ridx = fractional_max_pool_torch_ref(x, kk, out, u)
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_array_equal(y, ry.astype(dtype))
    ycl, icl = cnnops.fractional_max_pool2d(to_cl(x), k, output_size=out, return_indices=True, _random_samples=u,
                                            data_format="NHWC")
    np.testing.assert_array_equal(from_cl(icl), idx)
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
