"""Pooling family: max / avg / LP / adaptive / global pooling in 1-D, 2-D and 3-D, forward and
backward, NCHW and NHWC, against the float64 references in reference.py, finite differences,
PyTorch (when installed), and the bad-input rules: clear errors naming the op."""
from __future__ import annotations

import numpy as np
import pytest

import cnnops
import reference as ref
from reference import rel_err
from testing import (_FORMATS, POOL_TOL, PoolTester, data_format, from_cl, half_array, half_to_float, ntuple, pool_pads,
                     poisoned_outputs, randn, to_cl)

F64 = np.float64
DTYPES = [np.float32, np.float64]
TOL = POOL_TOL


def fn(name, nd, backward=False):
    return getattr(cnnops, f"{name}{nd}d" + ("_backward" if backward else ""))


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


# ---- max pooling -----------------------------------------------------------------------------------


def max_tester(case):
    sp, k, s, p, d, cm = case
    return PoolTester("max").input_size(*sp).kernel(k).stride(s).padding(p).dilation(d).ceil_mode(cm)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("last", [False, True], ids=["first", "last"])
@pytest.mark.parametrize("nd,case", ALL_MAX, ids=ALL_MAX_IDS)
def test_max_pool_forward_and_backward(nd, case, last, dtype, device):
    max_tester(case).channels_last(last).dtype(dtype).test(device)


@pytest.mark.parametrize("last", [False, True], ids=["first", "last"])
def test_max_pool2d_nan_propagates_like_torch(rng, last):
    torch = pytest.importorskip("torch")
    x = randn(rng, (2, 3, 9, 8), np.float32)
    x[0, 0, 2, 3] = np.nan
    x[1, 2, 4:6, 4:6] = np.nan
    x[0, 1, 0, 0] = -np.inf
    y_ref, i_ref = ref.max_pool_ref(x, (3, 3), (2, 2), [1, 1, 1, 1], (1, 1))
    xin = to_cl(x) if last else x
    y, idx = cnnops.max_pool2d(xin, 3, 2, 1, return_indices=True, data_format=data_format(2, last))
    y2 = cnnops.max_pool2d(xin, 3, 2, 1, data_format=data_format(2, last))
    if last:
        y, idx, y2 = from_cl(y), from_cl(idx), from_cl(y2)
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
        cnnops.set_simd_level(before)
    y_ref, i_ref = ref.max_pool_ref(x, ntuple(k, 2), ntuple(s, 2), pool_pads(p, 2), (1, 1), cm)
    np.testing.assert_array_equal(y, y_ref.astype(np.float32))
    np.testing.assert_array_equal(y2, y_ref.astype(np.float32))
    np.testing.assert_array_equal(i, i_ref)


@pytest.mark.parametrize("nd,case", ALL_MAX, ids=ALL_MAX_IDS)
def test_max_pool_matches_torch(nd, case, device):
    max_tester(case).channels(4).test_torch(device)


def test_max_pool2d_tf_indices(rng):
    x = randn(rng, (2, 5, 9, 11), np.float32)
    y, it = cnnops.max_pool2d(x, 3, 2, 1, return_indices=True)
    _, itf = cnnops.max_pool2d(x, 3, 2, 1, return_indices=True, indices_format="tf")
    c = np.arange(5).reshape(1, 5, 1, 1)
    np.testing.assert_array_equal(itf, it * 5 + c)
    # TensorFlow's meaning: position in the (H, W, C)-flattened NHWC image
    xl = to_cl(x)
    yl, il = cnnops.max_pool2d(xl, 3, 2, 1, return_indices=True, data_format="NHWC", indices_format="tf")
    flat = xl.reshape(2, -1)
    np.testing.assert_array_equal(np.take_along_axis(flat, il.reshape(2, -1), 1).reshape(yl.shape), yl)
    np.testing.assert_array_equal(from_cl(il), itf)


@pytest.mark.parametrize("size,k,s", [(11, 3, 2), (12, 3, 2), (13, 2, 2), (7, 1, 3), (10, 4, 3), (9, 3, 1)])
def test_same_valid_padding_tf_rule(rng, size, k, s):
    x = randn(rng, (1, 2, size, size + 2))
    y = cnnops.max_pool2d(x, k, s, "SAME")
    assert y.shape[2:] == (-(-size // s), -(-(size + 2) // s))
    pads = []
    for n in (size, size + 2):
        out = -(-n // s)
        tot = max((out - 1) * s + k - n, 0)
        pads += [tot // 2, tot - tot // 2]
    np.testing.assert_array_equal(y, ref.max_pool_ref(x, (k, k), (s, s), pads, (1, 1))[0])
    a = cnnops.avg_pool2d(x, k, s, "same", count_include_pad=False)
    assert rel_err(a, ref.avg_pool_ref(x, (k, k), (s, s), pads, count_include_pad=False)) < 1e-14
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


def avg_tester(case):
    nd, sp, k, s, p, cm, cip, dov = case
    return (PoolTester("avg").input_size(*sp).kernel(k).stride(s).padding(p).ceil_mode(cm).count_include_pad(cip)
            .divisor_override(dov))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("last", [False, True], ids=["first", "last"])
@pytest.mark.parametrize("case", AVG_CASES, ids=[f"{c[0]}d-{i}" for i, c in enumerate(AVG_CASES)])
def test_avg_pool_forward_and_backward(case, last, dtype, device):
    avg_tester(case).channels_last(last).dtype(dtype).test(device)


@pytest.mark.parametrize("case", AVG_CASES, ids=[f"{c[0]}d-{i}" for i, c in enumerate(AVG_CASES)])
def test_avg_pool_matches_torch(case, device):
    avg_tester(case).test_torch(device)


@pytest.mark.parametrize("case", [c for c in AVG_CASES if c[0] == 2], ids=lambda c: f"{c[1]}-k{c[2]}-s{c[3]}")
def test_sum_pools_portable_kernels(rng, portable_simd, case):
    """The portable build of the row kernels (avg forward/backward, LP, adaptive, global)."""
    nd, sp, k, s, p, cm, cip, dov = case
    x = randn(rng, (2, 3) + sp, np.float32)
    kk, ss = ntuple(k, 2), ntuple(s, 2)
    y = cnnops.avg_pool2d(x, k, s, p, cm, cip, dov)
    assert rel_err(y, ref.avg_pool_ref(x, kk, ss, pool_pads(p, 2), cm, cip, dov)) < 2e-6
    go = randn(rng, y.shape, np.float32)
    g = cnnops.avg_pool2d_backward(go, x, k, s, p, cm, cip, dov)
    assert rel_err(g, ref.avg_pool_backward_ref(go, x.shape, kk, ss, pool_pads(p, 2), cm, cip, dov)) < 2e-6
    xa = np.abs(x) + 0.1
    assert rel_err(cnnops.lp_pool2d(xa, 2.0, k, s, cm), ref.lp_pool_ref(xa, 2.0, kk, ss, cm)) < 2e-6
    assert rel_err(cnnops.adaptive_avg_pool2d(x, (3, 4)), ref.adaptive_pool_ref(x, (3, 4), "avg")) < 2e-6
    assert rel_err(cnnops.global_avg_pool2d(x), x.astype(F64).mean(axis=(2, 3), keepdims=True)) < 2e-6
    y3 = cnnops.max_pool2d(x, kk, ss, [min(v, kk[0] // 2, kk[1] // 2) for v in pool_pads(p, 2)], 1, cm)
    np.testing.assert_array_equal(y3, ref.max_pool_ref(x, kk, ss, [min(v, kk[0] // 2, kk[1] // 2)
                                                                    for v in pool_pads(p, 2)], (1, 1), cm)[0])


# ---- LP pooling ------------------------------------------------------------------------------------

LP_CASES = [(1, (13,), 2.0, 3, 2, False), (1, (12,), 1.0, 4, 3, True), (2, (11, 13), 2.0, 3, 2, True),
            (2, (10, 9), 3.5, (2, 3), (2, 1), False), (2, (8, 8), 1.0, 2, None, False),
            (3, (5, 6, 7), 2.0, 2, 2, True)]


def lp_tester(case):
    nd, sp, pn, k, s, cm = case
    return PoolTester("lp").input_size(*sp).norm(pn).kernel(k).stride(s).ceil_mode(cm)


@pytest.mark.parametrize("last", [False, True], ids=["first", "last"])
@pytest.mark.parametrize("case", LP_CASES, ids=[f"{c[0]}d-{i}" for i, c in enumerate(LP_CASES)])
def test_lp_pool_forward_and_backward(case, last, device):
    t = lp_tester(case).channels_last(last)
    t.dtype(np.float64).test(device)
    t.dtype(np.float32).test_forward(device)  # float32 within 5e-6 of the float64 result


@pytest.mark.parametrize("case", LP_CASES, ids=[f"{c[0]}d-{i}" for i, c in enumerate(LP_CASES)])
def test_lp_pool_matches_torch(case, device):
    lp_tester(case).test_torch(device)


# ---- adaptive and global pooling -------------------------------------------------------------------

ADAPTIVE_CASES = [(1, (13,), 5), (1, (7,), 7), (1, (5,), 9), (2, (11, 13), (5, 4)), (2, (14, 14), 7),
                  (2, (7, 9), (None, 2)), (2, (5, 6), (8, 3)), (3, (5, 7, 6), (2, 3, 4)), (3, (4, 4, 4), 1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("last", [False, True], ids=["first", "last"])
@pytest.mark.parametrize("case", ADAPTIVE_CASES, ids=[f"{c[0]}d-{i}" for i, c in enumerate(ADAPTIVE_CASES)])
def test_adaptive_pool(case, last, dtype, device):
    nd, sp, os_ = case
    for kind in ("adaptive_avg", "adaptive_max"):
        PoolTester(kind).input_size(*sp).output_size(os_).channels_last(last).dtype(dtype).test(device)


@pytest.mark.parametrize("case", ADAPTIVE_CASES, ids=[f"{c[0]}d-{i}" for i, c in enumerate(ADAPTIVE_CASES)])
def test_adaptive_pool_matches_torch(case, device):
    nd, sp, os_ = case
    for kind in ("adaptive_avg", "adaptive_max"):
        PoolTester(kind).input_size(*sp).output_size(os_).test_torch(device)


@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (1, 8), (7, 7), (4, 4), (9, 11)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_avg_pool2d_plane_groups(rng, threads, hw, dtype):
    # the float kernel sums eight planes at a time: 8k planes, a ragged last group, and plane
    # sizes below, at and around the vector width; the same bits for any thread count
    for planes in [(1, 1), (2, 4), (3, 7), (5, 13)]:
        x = randn(rng, planes + hw, dtype)
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
    x = randn(rng, (3, 5, 7, 6), np.float32)
    xin = to_cl(x) if last else x
    f = data_format(2, last)
    a = cnnops.global_avg_pool2d(xin, data_format=f)
    assert a.shape == ((3, 1, 1, 5) if last else (3, 5, 1, 1))
    a2 = cnnops.global_avg_pool2d(xin, keepdims=False, data_format=f)
    assert a2.shape == (3, 5)
    assert rel_err(a2, x.astype(F64).mean(axis=(2, 3))) < 1e-6
    m, i = cnnops.global_max_pool2d(xin, keepdims=False, return_indices=True, data_format=f)
    np.testing.assert_array_equal(m, x.max(axis=(2, 3)))
    np.testing.assert_array_equal(i, x.reshape(3, 5, -1).argmax(-1))
    go = randn(rng, (3, 5), np.float32)
    ga = cnnops.global_avg_pool2d_backward(go, xin, data_format=f)
    ga = from_cl(ga) if last else ga
    assert rel_err(ga, np.broadcast_to(go[:, :, None, None] / 42.0, x.shape)) < 1e-6
    gm = cnnops.global_max_pool2d_backward(go, xin, data_format=f)
    gm = from_cl(gm) if last else gm
    want = np.zeros(x.shape, np.float32).reshape(3, 5, -1)
    np.put_along_axis(want, i[:, :, None], go[:, :, None], -1)
    np.testing.assert_array_equal(gm, want.reshape(x.shape))
    keep = (3, 1, 1, 5) if last else (3, 5, 1, 1)
    gk = cnnops.global_max_pool2d_backward(go.reshape(keep), xin, i, data_format=f)
    np.testing.assert_array_equal(from_cl(gk) if last else gk, want.reshape(x.shape))


# ---- finite differences (float64) ------------------------------------------------------------------


def fd_check(rng, f, x, eps=1e-6):
    """Central differences of sum(f(x) * r) against the analytic gradient at a few positions."""
    y = f(x)
    r = randn(rng, y.shape)
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
    x = randn(rng, (3, 70, 17, 15), np.float32)
    if op == "lp":
        x = np.abs(x) + 0.1
    f = data_format(2, last)
    xin = to_cl(x) if last else x
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
    go = randn(rng, y.shape, np.float32)
    outs = []
    for n in (1, 2, 4):
        threads(n)
        outs.append(run(go))
    for o in outs[1:]:
        assert o.tobytes() == outs[0].tobytes()


def test_non_contiguous_inputs_are_not_modified(rng):
    base = randn(rng, (2, 3, 14, 22))
    x = base[:, :, ::2, ::2]  # (2, 3, 7, 11), strided view
    keep = base.copy()
    y, i = cnnops.max_pool2d(x, 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(y, ref.max_pool_ref(x, (3, 3), (2, 2), [1] * 4, (1, 1))[0])
    go = randn(rng, y.shape)[:, :, :, :]
    g = cnnops.max_pool2d_backward(np.asfortranarray(go), x, i, 3, 2, 1)
    np.testing.assert_array_equal(g, ref.max_pool_backward_ref(go, i, x.shape))
    a = cnnops.avg_pool2d(x.transpose(0, 1, 3, 2), 2)
    assert rel_err(a, ref.avg_pool_ref(np.ascontiguousarray(x.transpose(0, 1, 3, 2)), (2, 2), (2, 2), [0] * 4)) < 1e-14
    np.testing.assert_array_equal(base, keep)


def test_torch_tensors_in_and_out(rng):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(randn(rng, (2, 3, 9, 9), np.float32)).requires_grad_()
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
    x = randn(rng, (2, 3, 6, 7), np.float32)
    with pytest.raises(exc, match=msg):
        f(x)


def test_bad_backward_input(rng):
    x = randn(rng, (2, 3, 8, 7), np.float32)
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
        jl = to_cl(j)
        with pytest.raises(ValueError, match=r"expected indices in \[0, 56\)"):
            cnnops.max_pool2d_backward(to_cl(go), to_cl(x), jl, 2, data_format="NHWC")
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
    x = torch.from_numpy(randn(rng, (4, 64, 57, 113), np.float32))
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
        assert rel_err(ga.numpy(), xr.grad.numpy()) < 1e-6


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


# ---- CUDA against the CPU kernels --------------------------------------------------------------------
# Random configurations reaching the corners (sizes 1, kernels as large as the padded input, windows
# made only of padding, dilation, ceil_mode, adaptive outputs larger than the input, both layouts): the
# CUDA kernels must give the CPU's max values and indices bit for bit, the CPU's max gradient bit for
# bit (same summation order), and sums within rounding.

def random_pool_case(rng):
    nd = int(rng.integers(1, 4))
    kind = str(rng.choice(["max", "avg", "lp", "adaptive_max", "adaptive_avg"]))
    cl = bool(rng.integers(2))
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 5))
    sp = [int(v) for v in rng.integers(1, 8, nd)]
    fmt = _FORMATS[nd][cl]
    args, kw = [], {"data_format": fmt}
    if kind.startswith("adaptive"):
        args = [tuple(int(v) for v in rng.integers(1, 10, nd))]
    else:
        k = [int(v) for v in rng.integers(1, 5, nd)]
        s = [int(v) for v in rng.integers(1, 4, nd)]
        d = [int(v) for v in rng.integers(1, 3, nd)] if kind == "max" else [1] * nd
        p = [int(rng.integers(0, kk // 2 + 1)) for kk in k] if kind != "lp" else [0] * nd
        sp = [max(v, dd * (kk - 1) + 1 - 2 * pp) for v, kk, dd, pp in zip(sp, k, d, p)]
        cm = bool(rng.integers(2))
        if kind == "max":
            args = [tuple(k), tuple(s), tuple(p), tuple(d), cm]
        elif kind == "avg":
            args = [tuple(k), tuple(s), tuple(p), cm, bool(rng.integers(2))]
            if nd > 1:
                args.append(int(rng.integers(1, 7)) if rng.integers(3) == 0 else None)
        else:
            args = [float(rng.choice([1.0, 2.0, 3.5])), tuple(k), tuple(s), cm]
    shape = (n, *sp, c) if cl else (n, c, *sp)
    return nd, kind, shape, args, kw


def _pool_call(nd, kind, x, args, kw, backward=None, indices=None):
    name = f"{kind}_pool{nd}d"
    if backward is None:
        if "max" in kind:
            return getattr(cnnops, name)(x, *args, return_indices=True, **kw)
        return getattr(cnnops, name)(x, *args, **kw)
    f = getattr(cnnops, name + "_backward")
    if kind.startswith("adaptive"):
        args = []  # the sizes come from grad_output
    if "max" in kind:
        return f(backward, x, indices, *args, **kw)
    return f(backward, x, *args, **kw)


def _pool_case_data(rng, kind, shape, dtype):
    x = rng.standard_normal(shape)
    if kind == "lp":
        x = np.abs(x) + 0.1
    elif rng.integers(3) == 0:
        x = np.round(x)  # ties: the first maximum must win on both devices
    return x.astype(dtype)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("seed", range(40))
def test_cuda_pool_matches_cpu_kernels(seed, dtype):
    rng = np.random.default_rng(1000 + seed)
    nd, kind, shape, args, kw = random_pool_case(rng)
    x = _pool_case_data(rng, kind, shape, dtype)
    xd = cnnops.cuda.array(x)
    what = f"{kind}_pool{nd}d{shape} {args} {kw['data_format']}"
    with poisoned_outputs():
        cpu = _pool_call(nd, kind, x, args, kw)
        gpu = _pool_call(nd, kind, xd, args, kw)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    if "max" in kind:
        (y, i), (yd, id_) = cpu, gpu
        np.testing.assert_array_equal(yd.numpy(), y, err_msg=what)
        np.testing.assert_array_equal(id_.numpy(), i, err_msg=what)
    else:
        y, yd = cpu, gpu
        assert rel_err(yd.numpy(), y) <= tol, what
    go = rng.standard_normal(y.shape).astype(dtype)
    god = cnnops.cuda.array(go)
    with poisoned_outputs():
        if "max" in kind:
            for ind, indd in ((i, id_), (None, None)):
                g = _pool_call(nd, kind, x, args, kw, go, ind)
                gd = _pool_call(nd, kind, xd, args, kw, god, indd)
                np.testing.assert_array_equal(gd.numpy(), g, err_msg=f"{what} backward")
            # deterministic: the same bits on every run
            np.testing.assert_array_equal(_pool_call(nd, kind, xd, args, kw, god, id_).numpy(), g)
        else:
            g = _pool_call(nd, kind, x, args, kw, go)
            gd = _pool_call(nd, kind, xd, args, kw, god)
            assert rel_err(gd.numpy(), g) <= tol, f"{what} backward"


@pytest.mark.cuda
def test_cuda_max_pool_backward_with_indices_outside_their_window(rng):
    # indices a caller made up: inside the plane but not inside their window (the gather cannot
    # find them; the per-plane path must give the CPU's sums)
    x = randn(rng, (2, 3, 6, 7), np.float32)
    _, idx = cnnops.max_pool2d(x, 2, 2, return_indices=True)
    idx = rng.integers(0, 42, idx.shape).astype(np.int64)
    idx[0, 0, 0, 0] = idx[0, 0, 0, 1]  # duplicates add up
    go = randn(rng, idx.shape, np.float32)
    g = cnnops.max_pool2d_backward(go, x, idx, 2, 2)
    gd = cnnops.max_pool2d_backward(cnnops.cuda.array(go), cnnops.cuda.array(x), cnnops.cuda.array(idx), 2, 2)
    np.testing.assert_array_equal(gd.numpy(), g)
    idx[1, 2, 0, 0] = 42
    with pytest.raises(ValueError, match=r"indices in \[0, 42\)"):
        cnnops.max_pool2d_backward(cnnops.cuda.array(go), cnnops.cuda.array(x), cnnops.cuda.array(idx), 2, 2)




@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("seed", range(12))
def test_cuda_pool_half_precision(seed, dtype):
    # float16 / bfloat16 on CUDA, accumulated in float32: max pooling exact (a maximum of rounded
    # values is one of them) with the float32 CPU indices; sums within the storage precision
    rng = np.random.default_rng(2000 + seed)
    nd, kind, shape, args, kw = random_pool_case(rng)
    xd, x = half_array(_pool_case_data(rng, kind, shape, np.float64), dtype)
    eps = 2e-3 if dtype == "float16" else 1.6e-2
    out, outd = _pool_call(nd, kind, x, args, kw), _pool_call(nd, kind, xd, args, kw)
    if "max" in kind:
        assert outd[0].dtype == dtype
        np.testing.assert_array_equal(half_to_float(outd[0]), out[0])
        np.testing.assert_array_equal(outd[1].numpy(), out[1])
        y = out[0]
    else:
        assert outd.dtype == dtype
        assert rel_err(half_to_float(outd), out) <= eps
        y = out
    god, go = half_array(rng.standard_normal(y.shape), dtype)
    ind = (out[1], outd[1]) if "max" in kind else (None, None)
    g = _pool_call(nd, kind, x, args, kw, go, ind[0])
    gd = _pool_call(nd, kind, xd, args, kw, god, ind[1])
    assert gd.dtype == dtype
    assert rel_err(half_to_float(gd), g) <= eps


@pytest.mark.cuda
def test_cuda_pool_errors_and_streams(rng):
    x = randn(rng, (1, 2, 5, 5), np.float32)
    xd = cnnops.cuda.array(x)
    y, idx = cnnops.max_pool2d(xd, 2, return_indices=True)
    go = np.ones(y.shape, np.float32)
    with pytest.raises(TypeError, match="grad_output on the input's device cuda:0, got cpu"):
        cnnops.max_pool2d_backward(go, xd, idx, 2)
    with pytest.raises(TypeError, match="indices on the input's device cuda:0, got cpu"):
        cnnops.max_pool2d_backward(cnnops.cuda.array(go), xd, idx.numpy(), 2)
    with pytest.raises(TypeError, match="float16"):
        cnnops.max_pool2d(x.astype(np.float16), 2)  # half precision is CUDA-only
    # stream= accepts ints and objects with .cuda_stream / .ptr; the result is the same
    class S:
        cuda_stream = 0
    np.testing.assert_array_equal(cnnops.max_pool2d(xd, 2, stream=S()).numpy(), y.numpy())
    np.testing.assert_array_equal(cnnops.max_pool2d(xd, 2, stream=0).numpy(), y.numpy())
    with pytest.raises(TypeError, match="stream"):
        cnnops.max_pool2d(xd, 2, stream="fast")
    x_before = xd.numpy().copy()
    cnnops.avg_pool2d_backward(cnnops.cuda.array(go), xd, 2)
    np.testing.assert_array_equal(xd.numpy(), x_before)  # inputs untouched
