"""Batch normalisation (cnnops.batch_norm / batch_norm_backward) against the float64 references
in tests/reference.py and, when installed, PyTorch's batch_norm; argument errors."""
from __future__ import annotations

import numpy as np
import pytest

import cnnops
from reference import batch_norm_backward_ref, batch_norm_ref, rel_err


def _case(rng, shape, dtype, affine=True, offset=0.0):
    x = (rng.standard_normal(shape) * 3 + offset).astype(dtype)
    c = shape[1]
    w = (rng.standard_normal(c) + 1).astype(dtype) if affine else None
    b = rng.standard_normal(c).astype(dtype) if affine else None
    return x, w, b


SHAPES = [(2, 3), (1, 4, 7), (4, 3, 5, 6), (2, 2, 3, 4, 5), (1, 1, 1, 1), (3, 17, 1, 1), (2, 5, 33, 31),
          (16, 2, 40, 41)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_statistics_forward_and_backward(shape, dtype, affine, rng, threads):
    x, w, b = _case(rng, shape, dtype, affine)
    y, m, v = cnnops.batch_norm(x, w, b, eps=1e-5)
    ry, rm, rv = batch_norm_ref(x, w, b, eps=1e-5)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert y.dtype == dtype and m.shape == v.shape == (shape[1],)
    assert rel_err(m, rm) < tol and rel_err(v, rv) < tol and rel_err(y, ry) < tol
    dy = rng.standard_normal(shape).astype(dtype)
    dx, dw, db = cnnops.batch_norm_backward(dy, x, w, m, v, eps=1e-5)
    rdx, rdw, rdb = batch_norm_backward_ref(dy, x, w, m, v, eps=1e-5)
    assert rel_err(dw, rdw) < tol and rel_err(db, rdb) < tol
    # grad_input is a difference of near-equal terms (exactly zero with two values per channel):
    # measured against the size of those terms, dy * weight / sqrt(var + eps)
    scale = np.abs(dy).max() * (1 if w is None else np.abs(w).max()) / np.sqrt(np.asarray(v, np.float64).min() + 1e-5)
    assert np.abs(np.asarray(dx, np.float64) - rdx).max() <= 4 * tol * scale


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_given_statistics_are_constants(dtype, rng):
    x, w, b = _case(rng, (3, 4, 6, 5), dtype)
    mean, var = rng.standard_normal(4).astype(dtype), (rng.random(4) + 0.5).astype(dtype)
    y, m, v = cnnops.batch_norm(x, w, b, mean, var, eps=1e-3)
    np.testing.assert_array_equal(m, mean)
    np.testing.assert_array_equal(v, var)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert rel_err(y, batch_norm_ref(x, w, b, mean, var, eps=1e-3)[0]) < tol
    dy = rng.standard_normal(x.shape).astype(dtype)
    got = cnnops.batch_norm_backward(dy, x, w, mean, var, eps=1e-3, batch_stats=False)
    for g, r in zip(got, batch_norm_backward_ref(dy, x, w, mean, var, eps=1e-3, batch_stats=False)):
        assert rel_err(g, r) < tol


def test_large_mean_keeps_the_variance_accurate(rng):
    # float32 data far from zero: a one-pass E[x^2] - E[x]^2 would lose every digit of the variance
    x = (rng.standard_normal((8, 3, 20, 20)) + 1e4).astype(np.float32)
    _, _, v = cnnops.batch_norm(x)
    assert rel_err(v, batch_norm_ref(x)[2]) < 1e-4


def test_backward_matches_finite_differences(rng):
    x, w, b = _case(rng, (2, 3, 4, 3), np.float64)
    dy = rng.standard_normal(x.shape)

    def loss(x_, w_, b_):
        return float((cnnops.batch_norm(x_, w_, b_)[0] * dy).sum())

    _, m, v = cnnops.batch_norm(x, w, b)
    dx, dw, db = cnnops.batch_norm_backward(dy, x, w, m, v)
    h = 1e-6
    for arr, grad in ((x, dx), (w, dw), (b, db)):
        num = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            a, c = arr.copy(), arr.copy()
            a[i] += h
            c[i] -= h
            args_a = [a if arr is t else t for t in (x, w, b)]
            args_c = [c if arr is t else t for t in (x, w, b)]
            num[i] = (loss(*args_a) - loss(*args_c)) / (2 * h)
        assert rel_err(grad, num) < 1e-6


def test_needs_and_inputs_unchanged(rng):
    x, w, b = _case(rng, (2, 3, 4, 4), np.float32)
    keep = [a.copy() for a in (x, w, b)]
    y, m, v = cnnops.batch_norm(x, w, b)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    full = cnnops.batch_norm_backward(dy, x, w, m, v)
    for needs in [(True, False, False), (False, True, False), (False, False, True), (False, False, False)]:
        got = cnnops.batch_norm_backward(dy, x, w, m, v, needs=needs)
        for want, g, f in zip(needs, got, full):
            assert (g is None) == (not want)
            if want:
                np.testing.assert_array_equal(g, f)
    for a, k in zip((x, w, b), keep):
        np.testing.assert_array_equal(a, k)


def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    x, w, b = _case(rng, (4, 6, 9, 7), np.float64, offset=2.0)
    tx = torch.tensor(x, requires_grad=True)
    tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    ty = torch.nn.functional.batch_norm(tx, None, None, tw, tb, training=True, eps=1e-4)
    dy = rng.standard_normal(x.shape)
    ty.backward(torch.tensor(dy))
    y, m, v = cnnops.batch_norm(x, w, b, eps=1e-4)
    dx, dw, db = cnnops.batch_norm_backward(dy, x, w, m, v, eps=1e-4)
    for ours, theirs in ((y, ty.detach()), (dx, tx.grad), (dw, tw.grad), (db, tb.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=1e-12)


def test_results_do_not_depend_on_the_thread_count(rng, threads):
    x, w, b = _case(rng, (3, 5, 37, 29), np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    runs = []
    for n in (1, 2, 3):
        cnnops.set_num_threads(n)
        y, m, v = cnnops.batch_norm(x, w, b)
        runs.append((y, m, v, *cnnops.batch_norm_backward(dy, x, w, m, v)))
    for other in runs[1:]:
        for a, c in zip(runs[0], other):
            np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("call, err, message", [
    (lambda x, c: cnnops.batch_norm(x.astype(np.int32)), TypeError, "batch_norm: expected input with dtype float32"),
    (lambda x, c: cnnops.batch_norm(x[0, 0, 0]), ValueError, "at least 2 dimensions, got shape (5,)"),
    (lambda x, c: cnnops.batch_norm(x, np.ones(c + 1, np.float32)), ValueError,
     "expected weight of shape (3,) (one value per channel), got shape (4,)"),
    (lambda x, c: cnnops.batch_norm(x, None, np.ones(c)), TypeError, "expected bias with the input's dtype float32"),
    (lambda x, c: cnnops.batch_norm(x, mean=np.zeros(c, np.float32)), ValueError, "expected mean and var both or"),
    (lambda x, c: cnnops.batch_norm(x, eps=-1), ValueError, "expected eps as a finite number >= 0"),
    (lambda x, c: cnnops.batch_norm(x, eps=float("nan")), ValueError, "expected eps as a finite number >= 0"),
    (lambda x, c: cnnops.batch_norm(x[:0]), ValueError, "at least one value per channel"),
    (lambda x, c: cnnops.batch_norm_backward(x[:1], x, None, np.zeros(c, np.float32), np.ones(c, np.float32)),
     ValueError, "expected grad_output of the input's shape (2, 3, 4, 5), got (1, 3, 4, 5)"),
    (lambda x, c: cnnops.batch_norm_backward(x, x, None, np.zeros(c, np.float32), np.ones(c, np.float32),
                                             needs=(1, 2)), TypeError, "expected needs as three booleans"),
])
def test_argument_errors_name_the_op(call, err, message, rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    with pytest.raises(err, match="batch_norm") as e:
        call(x, 3)
    assert message in str(e.value)


def test_cuda_arrays_are_refused_naming_the_device(device, rng):
    # no CUDA kernels for batch normalisation: a CUDA array is a NotImplementedError, not a copy
    from testing import to_device

    x = to_device(rng.standard_normal((2, 3, 4, 4)).astype(np.float32), device)
    if device == "cpu":
        assert cnnops.batch_norm(x)[0].shape == (2, 3, 4, 4)
        return
    with pytest.raises(NotImplementedError, match=r"batch_norm: no kernel for arrays on cuda:0"):
        cnnops.batch_norm(x)
