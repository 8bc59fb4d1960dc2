"""Pooling family: max / avg / LP / adaptive / global pooling in 1-D, 2-D and 3-D, forward and
backward, NCHW and NHWC, against the float64 references in reference.py, finite differences,
PyTorch (when installed), and the bad-input rules of issue 4."""
from __future__ import annotations

import numpy as np
import pytest

import cnnops
import reference as ref

F64 = np.float64
DTYPES = [np.float32, np.float64]
TOL = {np.float32: 2e-6, np.float64: 1e-12}


def rel(a, b):
    a, b = np.asarray(a, F64), np.asarray(b, F64)
    n = np.linalg.norm(b)
    return np.linalg.norm(a - b) / (n if n > 0 else 1.0)


def to_last(a):
    """(N, C, *sp) -> (N, *sp, C)."""
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def to_first(a):
    return np.ascontiguousarray(np.moveaxis(np.asarray(a), -1, 1))


def fmt(nd, last):
    return {1: ("NCW", "NWC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}[nd][int(last)]


def fn(name, nd, backward=False):
    return getattr(cnnops, f"{name}{nd}d" + ("_backward" if backward else ""))


def expand(v, nd):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * nd


def pads_of(padding, nd):
    p = expand(padding, nd)
    return [e for v in p for e in (v, v)] if len(p) == nd else list(p)


# (input spatial, kernel, stride, padding, dilation, ceil_mode) per dimensionality; odd/prime sizes
MAX_CASES = {
    1: [((13,), 3, 2, 1, 1, False), ((11,), 2, None, 0, 1, True), ((17,), 3, 1, 1, 3, False),
        ((7,), 4, 3, 2, 1, True)],
    2: [((11, 13), 3, 2, 1, 1, False), ((11, 13), 2, 2, 0, 1, True), ((9, 7), (3, 2), (1, 2), (1, 0), 1, False),
        ((13, 11), 3, 2, 1, 2, True), ((7, 10), (2, 3), (3, 2), (1, 1), (1, 2), True), ((5, 5), 5, 1, 2, 1, False),
        ((9, 37), 3, 2, 1, 1, False), ((8, 41), 2, 2, 0, 1, True), ((6, 36), (2, 3), 2, (1, 1), 1, True)],
    3: [((5, 7, 6), 3, 2, 1, 1, False), ((5, 6, 7), 2, 2, 0, 1, True), ((7, 5, 5), (3, 1, 2), (2, 1, 1), (1, 0, 1),
                                                                              (2, 1, 1), False)],
}
MAX_IDS = {nd: [f"{nd}d-{i}" for i in range(len(c))] for nd, c in MAX_CASES.items()}
ALL_MAX = [(nd, c) for nd in (1, 2, 3) for c in MAX_CASES[nd]]
ALL_MAX_IDS = [i for nd in (1, 2, 3) for i in MAX_IDS[nd]]


def rand(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


# ---- max pooling -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("last", [False, True], ids=["first", "last"])
@pytest.mark.parametrize("nd,case", ALL_MAX, ids=ALL_MAX_IDS)
def test_max_pool_forward_and_backward(rng, nd, case, last, dtype):
    sp, k, s, p, d, cm = case
    x = rand(rng, (2, 3) + sp, dtype)
    kk, ss, dd = expand(k, nd), expand(k if s is None else s, nd), expand(d, nd)
    y_ref, i_ref = ref.max_pool_ref(x, kk, ss, pads_of(p, nd), dd, cm)
    xin = to_last(x) if last else x
    y, idx = fn("max_pool", nd)(xin, k, s, p, d, cm, True, data_format=fmt(nd, last))
    assert idx.dtype == np.int64
    if last:
        y, idx = to_first(y), to_first(idx)
    assert y.dtype == dtype and y.shape == y_ref.shape
    np.testing.assert_array_equal(y, y_ref.astype(dtype))  # max is exact
    np.testing.assert_array_equal(idx, i_ref)
    # without indices (the fast paths) the values are the same
    y2 = fn("max_pool", nd)(xin, k, s, p, d, cm, data_format=fmt(nd, last))
    np.testing.assert_array_equal(to_first(y2) if last else y2, y_ref.astype(dtype))
    # backward, with the forward's indices and with recomputed ones
    go = rand(rng, y_ref.shape, dtype)
    g_ref = ref.max_pool_backward_ref(go, i_ref, x.shape)
    goin = to_last(go) if last else go
    idx_in = to_last(idx) if last else idx
    for ind in (idx_in, None):
        g = fn("max_pool", nd, True)(goin, xin, ind, k, s, p, d, cm, data_format=fmt(nd, last))
        g = to_first(g) if last else g
        assert g.shape == x.shape and g.dtype == dtype
        assert rel(g, g_ref) < TOL[dtype]


@pytest.mark.parametrize("last", [False, True], ids=["first", "last"])
def test_max_pool2d_nan_propagates_like_torch(rng, last):
    torch = pytest.importorskip("torch")
    x = rand(rng, (2, 3, 9, 8), np.float32)
    x[0, 0, 2, 3] = np.nan
    x[1, 2, 4:6, 4:6] = np.nan
    x[0, 1, 0, 0] = -np.inf
    y_ref, i_ref = ref.max_pool_ref(x, (3, 3), (2, 2), [1, 1, 1, 1], (1, 1))
    xin = to_last(x) if last else x
    y, idx = cnnops.max_pool2d(xin, 3, 2, 1, return_indices=True, data_format=fmt(2, last))
    y2 = cnnops.max_pool2d(xin, 3, 2, 1, data_format=fmt(2, last))
    if last:
        y, idx, y2 = to_first(y), to_first(idx), to_first(y2)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(y_ref))
    np.testing.assert_array_equal(np.isnan(y2), np.isnan(y_ref))
    assert np.isnan(y).any()
    np.testing.assert_array_equal(idx, i_ref)
    t, ti = torch.nn.functional.max_pool2d(torch.from_numpy(x), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(y, t.numpy())
    np.testing.assert_array_equal(np.isnan(y), np.isnan(t.numpy()))


ROW_CASES = [((9, 37), 3, 2, 1, False), ((8, 41), 2, 2, 0, True), ((7, 36), 3, 2, 1, True), ((6, 19), 2, 2, 1, False),
             ((5, 23), (3, 2), (1, 2), (1, 0), False), ((7, 29), 3, 1, 1, False)]


@pytest.mark.parametrize("simd", ["avx2", "portable"])
@pytest.mark.parametrize("case", ROW_CASES, ids=[f"rows-{i}" for i in range(len(ROW_CASES))])
def test_max_pool2d_ties_nan_inf_both_simd_levels(rng, case, simd):
    """Row kernels (AVX2 and portable) against the reference on data full of ties, -inf and NaN:
    the first maximum in row-major window order wins, the last NaN, as PyTorch."""
    sp, k, s, p, cm = case
    x = rng.integers(0, 3, size=(2, 3) + sp).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = -np.inf
    x[0, 0] = -np.inf  # a whole plane of -inf: the first tap's index
    x[1, 1][rng.random(sp) < 0.05] = np.nan
    before = cnnops.simd_level()
    cnnops.set_simd_level(simd)
    try:
        y, i = cnnops.max_pool2d(x, k, s, p, 1, cm, True)
        y2 = cnnops.max_pool2d(x, k, s, p, 1, cm)
    finally:
        cnnops.set_simd_level("portable" if before == "portable" else "avx2")
    y_ref, i_ref = ref.max_pool_ref(x, expand(k, 2), expand(s, 2), pads_of(p, 2), (1, 1), cm)
    np.testing.assert_array_equal(y, y_ref.astype(np.float32))
    np.testing.assert_array_equal(y2, y_ref.astype(np.float32))
    np.testing.assert_array_equal(i, i_ref)


@pytest.mark.parametrize("nd,case", ALL_MAX, ids=ALL_MAX_IDS)
def test_max_pool_matches_torch(rng, nd, case):
    torch = pytest.importorskip("torch")
    sp, k, s, p, d, cm = case
    x = rand(rng, (2, 4) + sp)
    xt = torch.from_numpy(x).requires_grad_()
    f = getattr(torch.nn.functional, f"max_pool{nd}d")
    t, ti = f(xt, k, s, p, d, cm, True)
    go = rand(rng, tuple(t.shape))
    t.backward(torch.from_numpy(go))
    y, idx = fn("max_pool", nd)(x, k, s, p, d, cm, True)
    np.testing.assert_array_equal(y, t.detach().numpy())
    np.testing.assert_array_equal(idx, ti.numpy())
    g = fn("max_pool", nd, True)(go, x, idx, k, s, p, d, cm)
    assert rel(g, xt.grad.numpy()) < 1e-14


def test_max_pool2d_tf_indices(rng):
    x = rand(rng, (2, 5, 9, 11), np.float32)
    y, it = cnnops.max_pool2d(x, 3, 2, 1, return_indices=True)
    _, itf = cnnops.max_pool2d(x, 3, 2, 1, return_indices=True, indices_format="tf")
    c = np.arange(5).reshape(1, 5, 1, 1)
    np.testing.assert_array_equal(itf, it * 5 + c)
    # TensorFlow's meaning: position in the (H, W, C)-flattened NHWC image
    xl = to_last(x)
    yl, il = cnnops.max_pool2d(xl, 3, 2, 1, return_indices=True, data_format="NHWC", indices_format="tf")
    flat = xl.reshape(2, -1)
    np.testing.assert_array_equal(np.take_along_axis(flat, il.reshape(2, -1), 1).reshape(yl.shape), yl)
    np.testing.assert_array_equal(to_first(il), itf)


@pytest.mark.parametrize("size,k,s", [(11, 3, 2), (12, 3, 2), (13, 2, 2), (7, 1, 3), (10, 4, 3), (9, 3, 1)])
def test_same_valid_padding_tf_rule(rng, size, k, s):
    x = rand(rng, (1, 2, size, size + 2))
    y = cnnops.max_pool2d(x, k, s, "SAME")
    assert y.shape[2:] == (-(-size // s), -(-(size + 2) // s))
    pads = []
    for n in (size, size + 2):
        out = -(-n // s)
        tot = max((out - 1) * s + k - n, 0)
        pads += [tot // 2, tot - tot // 2]
    np.testing.assert_array_equal(y, ref.max_pool_ref(x, (k, k), (s, s), pads, (1, 1))[0])
    a = cnnops.avg_pool2d(x, k, s, "same", count_include_pad=False)
    assert rel(a, ref.avg_pool_ref(x, (k, k), (s, s), pads, count_include_pad=False)) < 1e-14
    if k > 1:  # "SAME" with dilation pads up to half the dilated kernel
        yd = cnnops.max_pool2d(x, k, s, "SAME", dilation=2)
        pd = []
        for n in (size, size + 2):
            out = -(-n // s)
            tot = max((out - 1) * s + 2 * (k - 1) + 1 - n, 0)
            pd += [tot // 2, tot - tot // 2]
        np.testing.assert_array_equal(yd, ref.max_pool_ref(x, (k, k), (s, s), pd, (2, 2))[0])
    v = cnnops.max_pool2d(x, k, s, "VALID")
    np.testing.assert_array_equal(v, ref.max_pool_ref(x, (k, k), (s, s), [0] * 4, (1, 1))[0])


# ---- average pooling -------------------------------------------------------------------------------

AVG_CASES = [
    (1, (13,), 3, 2, 1, False, True, None), (1, (11,), 4, 3, 2, True, False, None),
    (2, (11, 13), 3, 2, 1, False, True, None), (2, (11, 13), 3, 2, 1, True, False, None),
    (2, (9, 10), 2, 2, 0, True, True, None), (2, (7, 9), (3, 2), (2, 3), (1, 1), True, True, 5),
    (2, (12, 12), 2, 2, 0, False, True, None), (3, (5, 7, 6), 3, 2, 1, True, False, None),
    (3, (6, 5, 7), (2, 3, 2), (1, 2, 2), (1, 1, 0), False, True, 4),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("last", [False, True], ids=["first", "last"])
@pytest.mark.parametrize("case", AVG_CASES, ids=[f"{c[0]}d-{i}" for i, c in enumerate(AVG_CASES)])
def test_avg_pool_forward_and_backward(rng, case, last, dtype):
    nd, sp, k, s, p, cm, cip, dov = case
    x = rand(rng, (2, 3) + sp, dtype)
    kk, ss = expand(k, nd), expand(s, nd)
    y_ref = ref.avg_pool_ref(x, kk, ss, pads_of(p, nd), cm, cip, dov)
    kw = {} if nd == 1 else {"divisor_override": dov}
    xin = to_last(x) if last else x
    y = fn("avg_pool", nd)(xin, k, s, p, cm, cip, **kw, data_format=fmt(nd, last))
    y = to_first(y) if last else y
    assert y.dtype == dtype and y.shape == y_ref.shape
    assert rel(y, y_ref) < TOL[dtype]
    go = rand(rng, y_ref.shape, dtype)
    g_ref = ref.avg_pool_backward_ref(go, x.shape, kk, ss, pads_of(p, nd), cm, cip, dov)
    g = fn("avg_pool", nd, True)(to_last(go) if last else go, xin, k, s, p, cm, cip, **kw, data_format=fmt(nd, last))
    g = to_first(g) if last else g
    assert g.shape == x.shape and rel(g, g_ref) < TOL[dtype]


@pytest.mark.parametrize("case", AVG_CASES, ids=[f"{c[0]}d-{i}" for i, c in enumerate(AVG_CASES)])
def test_avg_pool_matches_torch(rng, case):
    torch = pytest.importorskip("torch")
    nd, sp, k, s, p, cm, cip, dov = case
    x = rand(rng, (2, 3) + sp)
    xt = torch.from_numpy(x).requires_grad_()
    kw = {} if nd == 1 else {"divisor_override": dov}
    t = getattr(torch.nn.functional, f"avg_pool{nd}d")(xt, k, s, p, cm, cip, **kw)
    go = rand(rng, tuple(t.shape))
    t.backward(torch.from_numpy(go))
    assert rel(fn("avg_pool", nd)(x, k, s, p, cm, cip, **kw), t.detach().numpy()) < 1e-14
    assert rel(fn("avg_pool", nd, True)(go, x, k, s, p, cm, cip, **kw), xt.grad.numpy()) < 1e-14


@pytest.mark.parametrize("case", [c for c in AVG_CASES if c[0] == 2], ids=lambda c: f"{c[1]}-k{c[2]}-s{c[3]}")
def test_sum_pools_portable_kernels(rng, portable_simd, case):
    """The portable build of the row kernels (avg forward/backward, LP, adaptive, global)."""
    nd, sp, k, s, p, cm, cip, dov = case
    x = rand(rng, (2, 3) + sp, np.float32)
    kk, ss = expand(k, 2), expand(s, 2)
    y = cnnops.avg_pool2d(x, k, s, p, cm, cip, dov)
    assert rel(y, ref.avg_pool_ref(x, kk, ss, pads_of(p, 2), cm, cip, dov)) < 2e-6
    go = rand(rng, y.shape, np.float32)
    g = cnnops.avg_pool2d_backward(go, x, k, s, p, cm, cip, dov)
    assert rel(g, ref.avg_pool_backward_ref(go, x.shape, kk, ss, pads_of(p, 2), cm, cip, dov)) < 2e-6
    xa = np.abs(x) + 0.1
    assert rel(cnnops.lp_pool2d(xa, 2.0, k, s, cm), ref.lp_pool_ref(xa, 2.0, kk, ss, cm)) < 2e-6
    assert rel(cnnops.adaptive_avg_pool2d(x, (3, 4)), ref.adaptive_pool_ref(x, (3, 4), "avg")) < 2e-6
    assert rel(cnnops.global_avg_pool2d(x), x.astype(F64).mean(axis=(2, 3), keepdims=True)) < 2e-6
    y3 = cnnops.max_pool2d(x, kk, ss, [min(v, kk[0] // 2, kk[1] // 2) for v in pads_of(p, 2)], 1, cm)
    np.testing.assert_array_equal(y3, ref.max_pool_ref(x, kk, ss, [min(v, kk[0] // 2, kk[1] // 2)
                                                                    for v in pads_of(p, 2)], (1, 1), cm)[0])


# ---- LP pooling ------------------------------------------------------------------------------------

LP_CASES = [(1, (13,), 2.0, 3, 2, False), (1, (12,), 1.0, 4, 3, True), (2, (11, 13), 2.0, 3, 2, True),
            (2, (10, 9), 3.5, (2, 3), (2, 1), False), (2, (8, 8), 1.0, 2, None, False),
            (3, (5, 6, 7), 2.0, 2, 2, True)]


@pytest.mark.parametrize("last", [False, True], ids=["first", "last"])
@pytest.mark.parametrize("case", LP_CASES, ids=[f"{c[0]}d-{i}" for i, c in enumerate(LP_CASES)])
def test_lp_pool_forward_and_backward(rng, case, last):
    nd, sp, pn, k, s, cm = case
    x = np.abs(rand(rng, (2, 3) + sp)) + 0.1
    kk = expand(k, nd)
    ss = kk if s is None else expand(s, nd)
    y_ref = ref.lp_pool_ref(x, pn, kk, ss, cm)
    xin = to_last(x) if last else x
    y = fn("lp_pool", nd)(xin, pn, k, s, cm, data_format=fmt(nd, last))
    y = to_first(y) if last else y
    assert rel(y, y_ref) < 1e-13
    go = rand(rng, y_ref.shape)
    g_ref = ref.lp_pool_backward_ref(go, x, pn, kk, ss, cm)
    g = fn("lp_pool", nd, True)(to_last(go) if last else go, xin, pn, k, s, cm, data_format=fmt(nd, last))
    assert rel(to_first(g) if last else g, g_ref) < 1e-12
    # float32 agrees with the float64 result
    y32 = fn("lp_pool", nd)(xin.astype(np.float32), pn, k, s, cm, data_format=fmt(nd, last))
    assert rel(to_first(y32) if last else y32, y_ref) < 5e-6


@pytest.mark.parametrize("case", LP_CASES, ids=[f"{c[0]}d-{i}" for i, c in enumerate(LP_CASES)])
def test_lp_pool_matches_torch(rng, case):
    torch = pytest.importorskip("torch")
    nd, sp, pn, k, s, cm = case
    f = getattr(torch.nn.functional, f"lp_pool{nd}d", None)
    if f is None:
        pytest.skip(f"torch has no lp_pool{nd}d")
    x = np.abs(rand(rng, (2, 3) + sp)) + 0.1
    xt = torch.from_numpy(x).requires_grad_()
    t = f(xt, pn, k, s, cm)
    go = rand(rng, tuple(t.shape))
    t.backward(torch.from_numpy(go))
    assert rel(fn("lp_pool", nd)(x, pn, k, s, cm), t.detach().numpy()) < 1e-13
    assert rel(fn("lp_pool", nd, True)(go, x, pn, k, s, cm), xt.grad.numpy()) < 1e-12


# ---- adaptive and global pooling -------------------------------------------------------------------

ADAPTIVE_CASES = [(1, (13,), 5), (1, (7,), 7), (1, (5,), 9), (2, (11, 13), (5, 4)), (2, (14, 14), 7),
                  (2, (7, 9), (None, 2)), (2, (5, 6), (8, 3)), (3, (5, 7, 6), (2, 3, 4)), (3, (4, 4, 4), 1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("last", [False, True], ids=["first", "last"])
@pytest.mark.parametrize("case", ADAPTIVE_CASES, ids=[f"{c[0]}d-{i}" for i, c in enumerate(ADAPTIVE_CASES)])
def test_adaptive_pool(rng, case, last, dtype):
    nd, sp, os_ = case
    x = rand(rng, (2, 3) + sp, dtype)
    out = tuple(sp[i] if v is None else v for i, v in enumerate(expand(os_, nd)))
    xin = to_last(x) if last else x
    f = fmt(nd, last)
    conv = to_first if last else (lambda a: a)
    # average
    a_ref = ref.adaptive_pool_ref(x, out, "avg")
    a = conv(fn("adaptive_avg_pool", nd)(xin, os_, data_format=f))
    assert a.shape == a_ref.shape and a.dtype == dtype and rel(a, a_ref) < TOL[dtype]
    go = rand(rng, a_ref.shape, dtype)
    ga = conv(fn("adaptive_avg_pool", nd, True)(to_last(go) if last else go, xin, data_format=f))
    assert rel(ga, ref.adaptive_avg_pool_backward_ref(go, x.shape)) < TOL[dtype]
    # max
    m_ref, i_ref = ref.adaptive_pool_ref(x, out, "max")
    m, i = fn("adaptive_max_pool", nd)(xin, os_, True, data_format=f)
    np.testing.assert_array_equal(conv(m), m_ref.astype(dtype))
    np.testing.assert_array_equal(conv(i), i_ref)
    for ind in (i, None):
        gm = conv(fn("adaptive_max_pool", nd, True)(to_last(go) if last else go, xin, ind, data_format=f))
        assert rel(gm, ref.max_pool_backward_ref(go, i_ref, x.shape)) < TOL[dtype]


@pytest.mark.parametrize("case", ADAPTIVE_CASES, ids=[f"{c[0]}d-{i}" for i, c in enumerate(ADAPTIVE_CASES)])
def test_adaptive_pool_matches_torch(rng, case):
    torch = pytest.importorskip("torch")
    nd, sp, os_ = case
    x = rand(rng, (2, 3) + sp)
    F = torch.nn.functional
    xt = torch.from_numpy(x).requires_grad_()
    t = getattr(F, f"adaptive_avg_pool{nd}d")(xt, os_)
    go = rand(rng, tuple(t.shape))
    t.backward(torch.from_numpy(go))
    assert rel(fn("adaptive_avg_pool", nd)(x, os_), t.detach().numpy()) < 1e-14
    assert rel(fn("adaptive_avg_pool", nd, True)(go, x), xt.grad.numpy()) < 1e-14
    xt.grad = None
    t, ti = getattr(F, f"adaptive_max_pool{nd}d")(xt, os_, True)
    t.backward(torch.from_numpy(go))
    m, i = fn("adaptive_max_pool", nd)(x, os_, True)
    np.testing.assert_array_equal(m, t.detach().numpy())
    np.testing.assert_array_equal(i, ti.numpy())
    assert rel(fn("adaptive_max_pool", nd, True)(go, x, i), xt.grad.numpy()) < 1e-14


@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (1, 8), (7, 7), (4, 4), (9, 11)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_avg_pool2d_plane_groups(rng, threads, hw, dtype):
    # the float kernel sums eight planes at a time: 8k planes, a ragged last group, and plane
    # sizes below, at and around the vector width; the same bits for any thread count
    for planes in [(1, 1), (2, 4), (3, 7), (5, 13)]:
        x = rand(rng, planes + hw, dtype)
        outs = []
        for n in (1, 2, 3):
            threads(n)
            outs.append(cnnops.global_avg_pool2d(x))
        # a sum of P values is off by at most (P - 1) * eps * sum|x| (any order)
        bound = hw[0] * hw[1] * np.finfo(dtype).eps * np.abs(x.astype(F64)).mean(axis=(2, 3), keepdims=True)
        assert np.all(np.abs(outs[0] - x.astype(F64).mean(axis=(2, 3), keepdims=True)) <= bound)
        for o in outs[1:]:
            assert o.tobytes() == outs[0].tobytes()


@pytest.mark.parametrize("last", [False, True], ids=["first", "last"])
def test_global_pool2d(rng, last):
    x = rand(rng, (3, 5, 7, 6), np.float32)
    xin = to_last(x) if last else x
    f = fmt(2, last)
    a = cnnops.global_avg_pool2d(xin, data_format=f)
    assert a.shape == ((3, 1, 1, 5) if last else (3, 5, 1, 1))
    a2 = cnnops.global_avg_pool2d(xin, keepdims=False, data_format=f)
    assert a2.shape == (3, 5)
    assert rel(a2, x.astype(F64).mean(axis=(2, 3))) < 1e-6
    m, i = cnnops.global_max_pool2d(xin, keepdims=False, return_indices=True, data_format=f)
    np.testing.assert_array_equal(m, x.max(axis=(2, 3)))
    np.testing.assert_array_equal(i, x.reshape(3, 5, -1).argmax(-1))
    go = rand(rng, (3, 5), np.float32)
    ga = cnnops.global_avg_pool2d_backward(go, xin, data_format=f)
    ga = to_first(ga) if last else ga
    assert rel(ga, np.broadcast_to(go[:, :, None, None] / 42.0, x.shape)) < 1e-6
    gm = cnnops.global_max_pool2d_backward(go, xin, data_format=f)
    gm = to_first(gm) if last else gm
    want = np.zeros(x.shape, np.float32).reshape(3, 5, -1)
    np.put_along_axis(want, i[:, :, None], go[:, :, None], -1)
    np.testing.assert_array_equal(gm, want.reshape(x.shape))
    keep = (3, 1, 1, 5) if last else (3, 5, 1, 1)
    gk = cnnops.global_max_pool2d_backward(go.reshape(keep), xin, i, data_format=f)
    np.testing.assert_array_equal(to_first(gk) if last else gk, want.reshape(x.shape))


# ---- finite differences (float64) ------------------------------------------------------------------


def fd_check(rng, f, x, eps=1e-6):
    """Central differences of sum(f(x) * r) against the analytic gradient at a few positions."""
    y = f(x)
    r = rand(rng, y.shape)
    flat = list(rng.choice(x.size, size=min(x.size, 12), replace=False))
    num = []
    for j in flat:
        xp, xm = x.copy().reshape(-1), x.copy().reshape(-1)
        xp[j] += eps
        xm[j] -= eps
        num.append(((f(xp.reshape(x.shape)) * r).sum() - (f(xm.reshape(x.shape)) * r).sum()) / (2 * eps))
    return r, flat, np.array(num)


@pytest.mark.parametrize("op", ["max", "avg", "lp", "adaptive_avg", "adaptive_max"])
def test_gradients_by_finite_differences(rng, op):
    # distinct, well-separated values keep the argmax stable under the perturbation
    x = rng.permutation(2 * 3 * 9 * 10).reshape(2, 3, 9, 10).astype(F64) * 0.01 + 1.0
    if op == "max":
        f = lambda a: cnnops.max_pool2d(a, 3, 2, 1, ceil_mode=True)
        b = lambda go: cnnops.max_pool2d_backward(go, x, None, 3, 2, 1, ceil_mode=True)
    elif op == "avg":
        f = lambda a: cnnops.avg_pool2d(a, 3, 2, 1, ceil_mode=True, count_include_pad=False)
        b = lambda go: cnnops.avg_pool2d_backward(go, x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    elif op == "lp":
        f = lambda a: cnnops.lp_pool2d(a, 3.0, 3, 2, ceil_mode=True)
        b = lambda go: cnnops.lp_pool2d_backward(go, x, 3.0, 3, 2, ceil_mode=True)
    elif op == "adaptive_avg":
        f = lambda a: cnnops.adaptive_avg_pool2d(a, (4, 7))
        b = lambda go: cnnops.adaptive_avg_pool2d_backward(go, x)
    else:
        f = lambda a: cnnops.adaptive_max_pool2d(a, (4, 7))
        b = lambda go: cnnops.adaptive_max_pool2d_backward(go, x, None)
    r, flat, num = fd_check(rng, f, x)
    g = b(r).reshape(-1)[flat]
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8)


# ---- determinism, layouts, array types -------------------------------------------------------------


@pytest.mark.parametrize("last", [False, True], ids=["first", "last"])
@pytest.mark.parametrize("op", ["max", "avg", "lp", "adaptive_avg"])
def test_backward_bitwise_identical_for_any_thread_count(rng, threads, op, last):
    x = rand(rng, (3, 70, 17, 15), np.float32)
    if op == "lp":
        x = np.abs(x) + 0.1
    f = fmt(2, last)
    xin = to_last(x) if last else x
    if op == "max":
        y, i = cnnops.max_pool2d(xin, 3, 1, 1, return_indices=True, data_format=f)
        run = lambda go: cnnops.max_pool2d_backward(go, xin, i, 3, 1, 1, data_format=f)
    elif op == "avg":
        y = cnnops.avg_pool2d(xin, 3, 1, 1, data_format=f)
        run = lambda go: cnnops.avg_pool2d_backward(go, xin, 3, 1, 1, data_format=f)
    elif op == "lp":
        y = cnnops.lp_pool2d(xin, 2.0, 3, 1, data_format=f)
        run = lambda go: cnnops.lp_pool2d_backward(go, xin, 2.0, 3, 1, data_format=f)
    else:
        y = cnnops.adaptive_avg_pool2d(xin, (5, 11), data_format=f)
        run = lambda go: cnnops.adaptive_avg_pool2d_backward(go, xin, data_format=f)
    go = rand(rng, y.shape, np.float32)
    outs = []
    for n in (1, 2, 4):
        threads(n)
        outs.append(run(go))
    for o in outs[1:]:
        assert o.tobytes() == outs[0].tobytes()


def test_non_contiguous_inputs_are_not_modified(rng):
    base = rand(rng, (2, 3, 14, 22))
    x = base[:, :, ::2, ::2]  # (2, 3, 7, 11), strided view
    keep = base.copy()
    y, i = cnnops.max_pool2d(x, 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(y, ref.max_pool_ref(x, (3, 3), (2, 2), [1] * 4, (1, 1))[0])
    go = rand(rng, y.shape)[:, :, :, :]
    g = cnnops.max_pool2d_backward(np.asfortranarray(go), x, i, 3, 2, 1)
    np.testing.assert_array_equal(g, ref.max_pool_backward_ref(go, i, x.shape))
    a = cnnops.avg_pool2d(x.transpose(0, 1, 3, 2), 2)
    assert rel(a, ref.avg_pool_ref(np.ascontiguousarray(x.transpose(0, 1, 3, 2)), (2, 2), (2, 2), [0] * 4)) < 1e-14
    np.testing.assert_array_equal(base, keep)


def test_torch_tensors_in_and_out(rng):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(rand(rng, (2, 3, 9, 9), np.float32)).requires_grad_()
    y, i = cnnops.max_pool2d(x, 3, 2, return_indices=True)
    assert isinstance(y, torch.Tensor) and isinstance(i, torch.Tensor) and i.dtype == torch.int64
    g = cnnops.max_pool2d_backward(torch.ones_like(y), x, i, 3, 2)
    assert isinstance(g, torch.Tensor) and g.shape == x.shape
    a = cnnops.adaptive_avg_pool2d(x, 4)
    assert isinstance(a, torch.Tensor) and a.dtype == torch.float32
    assert isinstance(cnnops.global_avg_pool2d(x, keepdims=False), torch.Tensor)


# ---- bad input -------------------------------------------------------------------------------------

BAD = [
    (lambda x: cnnops.max_pool2d(x[0], 2), ValueError, "max_pool2d: expected input with 4 dimensions"),
    (lambda x: cnnops.max_pool2d(x.astype(np.int32), 2), TypeError, "max_pool2d: expected input with dtype"),
    (lambda x: cnnops.max_pool2d(x, 9), ValueError, "to fit in the padded input"),
    (lambda x: cnnops.avg_pool2d(x, 3, 1, 2), ValueError, "padding at most half"),
    (lambda x: cnnops.max_pool2d(x, 3, 1, 2, dilation=2), ValueError, "padding at most half"),
    (lambda x: cnnops.max_pool2d(x, 3, 1, (0, 0, 0, 2)), ValueError, "padding at most half"),
    (lambda x: cnnops.max_pool2d(x, 3, 0), ValueError, "stride >= 1"),
    (lambda x: cnnops.max_pool2d(x, 0), ValueError, "kernel_size >= 1"),
    (lambda x: cnnops.max_pool2d(x, 2, dilation=0), ValueError, "dilation >= 1"),
    (lambda x: cnnops.max_pool2d(x, 2, padding=-1), ValueError, "non-negative padding"),
    (lambda x: cnnops.max_pool2d(x, (2, 2, 2)), TypeError, "kernel_size"),
    (lambda x: cnnops.max_pool2d(x, 2, padding="full"), ValueError, "'SAME' or 'VALID'"),
    (lambda x: cnnops.max_pool2d(x, 2, data_format="NCWH"), ValueError, "data_format"),
    (lambda x: cnnops.max_pool2d(x, 2, return_indices=True, indices_format="jax"), ValueError, "indices_format"),
    (lambda x: cnnops.adaptive_avg_pool2d(x, 0), ValueError, "output_size >= 1"),
    (lambda x: cnnops.adaptive_max_pool2d(x, (3, -1)), ValueError, "output_size >= 1"),
    (lambda x: cnnops.adaptive_avg_pool2d(x, (3, 2, 1)), TypeError, "output_size"),
    (lambda x: cnnops.avg_pool2d(x, 2, divisor_override=0), ValueError, "divisor_override"),
    (lambda x: cnnops.lp_pool2d(x, 0.0, 2), ValueError, "norm_type > 0"),
    (lambda x: cnnops.lp_pool2d(x, float("inf"), 2), ValueError, "norm_type"),
    (lambda x: cnnops.max_pool1d(x, 2), ValueError, "max_pool1d: expected input with 3 dimensions"),
    (lambda x: cnnops.max_pool3d(x, 2), ValueError, "max_pool3d: expected input with 5 dimensions"),
    (lambda x: cnnops.max_pool2d(x[:, :, :0], 2), ValueError, "non-zero"),
    (lambda x: cnnops.max_pool2d([[1.0]], 2), TypeError, "DLPack"),
]


@pytest.mark.parametrize("i", range(len(BAD)))
def test_bad_forward_input(rng, i):
    f, exc, msg = BAD[i]
    x = rand(rng, (2, 3, 6, 7), np.float32)
    with pytest.raises(exc, match=msg):
        f(x)


def test_bad_backward_input(rng):
    x = rand(rng, (2, 3, 8, 7), np.float32)
    y, i = cnnops.max_pool2d(x, 2, return_indices=True)
    go = np.ones_like(y)
    with pytest.raises(ValueError, match=r"max_pool2d_backward: expected indices of shape \(2, 3, 4, 3\)"):
        cnnops.max_pool2d_backward(go, x, i[:, :, :3], 2)
    with pytest.raises(TypeError, match="expected indices with dtype int64"):
        cnnops.max_pool2d_backward(go, x, i.astype(np.int32), 2)
    for bad in (56, -1):
        j = i.copy()
        j[1, 2, 3, 0] = bad
        with pytest.raises(ValueError, match=r"expected indices in \[0, 56\)"):
            cnnops.max_pool2d_backward(go, x, j, 2)
        jl = to_last(j)
        with pytest.raises(ValueError, match=r"expected indices in \[0, 56\)"):
            cnnops.max_pool2d_backward(to_last(go), to_last(x), jl, 2, data_format="NHWC")
    with pytest.raises(ValueError, match=r"expected grad_output of shape \(2, 3, 4, 3\)"):
        cnnops.max_pool2d_backward(go[:, :2], x, i, 2)
    with pytest.raises(TypeError, match="grad_output with the input's dtype"):
        cnnops.avg_pool2d_backward(go.astype(np.float64), x, 2)
    with pytest.raises(ValueError, match="adaptive_avg_pool2d_backward: expected grad_output with 4 dimensions"):
        cnnops.adaptive_avg_pool2d_backward(go[0], x)
    with pytest.raises(ValueError, match="global_avg_pool2d_backward: expected grad_output of shape"):
        cnnops.global_avg_pool2d_backward(go, x)


def test_large_planes_streamed_outputs_match_torch(rng):
    """Outputs of 8 MB or more are written through non-temporal stores from a scratch plane."""
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(rand(rng, (4, 64, 57, 113), np.float32))
    for k, s, p in ((3, 2, 1), (2, 2, 0)):
        t, ti = torch.nn.functional.max_pool2d(x, k, s, p, return_indices=True)
        y, i = cnnops.max_pool2d(x, k, s, p, return_indices=True)
        assert torch.equal(y, t) and torch.equal(i, ti)
        go = torch.randn(t.shape, generator=torch.Generator().manual_seed(1))
        g = cnnops.max_pool2d_backward(go, x, i, k, s, p)
        assert torch.equal(g, torch.ops.aten.max_pool2d_with_indices_backward(go, x, [k, k], [s, s], [p, p], [1, 1],
                                                                              False, ti))
        ga = cnnops.avg_pool2d_backward(go if k == 2 else torch.ones_like(t), x, k, s, p)
        xr = x.clone().requires_grad_()
        torch.nn.functional.avg_pool2d(xr, k, s, p).backward(go if k == 2 else torch.ones_like(t))
        assert rel(ga.numpy(), xr.grad.numpy()) < 1e-6


@pytest.mark.parametrize("fn", ["adaptive_max_pool3d", "adaptive_avg_pool3d"])
def test_adaptive_output_size_overflow_is_a_value_error(fn):
    with pytest.raises(ValueError, match=rf"^{fn}: .*overflows"):
        getattr(cnnops, fn)(np.ones((1, 1, 2, 2, 2)), (2**22,) * 3)


def test_adaptive_long_output_over_long_input():
    """Window bounds o * in / O computed without int64 overflow."""
    x = np.arange(7.0).reshape(1, 1, 7)
    y = cnnops.adaptive_max_pool1d(x, 3)
    np.testing.assert_array_equal(y, [[[2.0, 4.0, 6.0]]])


def test_huge_stride_and_dilation():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(cnnops.max_pool2d(x, 2, stride=2**62), [[[[5.0]]]])
    with pytest.raises(ValueError, match=r"^max_pool2d: "):
        cnnops.max_pool2d(x, 3, dilation=2**62)


def test_max_pool3d_window_of_only_depth_padding():
    """Input depth 1, a dilated depth window whose taps both fall in the padding: -inf, as in 1-D
    and 2-D (and PyTorch), not the plane's value."""
    x = np.full((1, 1, 1, 1, 1), 0.5)
    y = cnnops.max_pool3d(x, (2, 1, 1), stride=1, dilation=(2, 1, 1), padding=(1, 0, 0))
    assert y.shape == (1, 1, 1, 1, 1) and y[0, 0, 0, 0, 0] == -np.inf
    y2 = cnnops.max_pool3d(np.full((1, 1, 1, 3, 3), 0.5), (2, 2, 2), stride=1, dilation=(2, 1, 1),
                           padding=(1, 1, 1))
    assert (y2 == -np.inf).all()
