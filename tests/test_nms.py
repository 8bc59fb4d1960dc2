"""Tests of the NMS family (cnnops.nms, batched_nms, batched_nms_padded, soft_nms, matrix_nms,
fast_nms, cluster_nms, diou_nms) against the float64 references in tests/reference.py, against its
references in torchvision's arithmetic (tv_*: the IoU rounded to the boxes' dtype, then compared
as a double) at thresholds equal to exactly computed IoUs, and against torchvision (when
installed).

Keep sets are index lists and are compared exactly; decayed scores (soft, matrix) with a relative
tolerance of 1e-5 (float32) / 1e-12 (float64). Random scores are continuous, so ties appear only
where a test makes them on purpose."""
from __future__ import annotations

import resource

import numpy as np
import pytest

import cnnops
from reference import (fast_nms_ref, matrix_nms_ref, nms_diou_ref, nms_ref, nms_ref_vec, nms_tv_ref, soft_nms_ref,
                       tv_diou_ref, tv_iou_ref)
from testing import DTYPE_IDS, DTYPES, NmsTester, make_boxes, make_scores, poisoned_outputs

TOL = {np.float32: 1e-5, np.float64: 1e-12}


def as_list(a):
    return [int(v) for v in np.asarray(a)]


def check_int64(k):
    assert isinstance(k, np.ndarray) and k.dtype == np.int64 and k.ndim == 1


# ----------------------------------------------------------------------------- greedy nms


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("n", [1, 2, 7, 61, 251, 257, 613])
@pytest.mark.parametrize("kind", ["uniform", "clustered", "mixed"])
def test_nms_matches_reference(dtype, n, kind, device):
    NmsTester().boxes(n, kind, span=300.0).dtype(dtype).test(device)


@pytest.mark.parametrize("kind", ["uniform", "clustered", "mixed"])
def test_nms_grid_path_larger(rng, kind):
    # well above the linear-scan cutoff: the grid (and its list of big boxes for "mixed")
    b = make_boxes(rng, 3001, np.float32, kind)
    s = make_scores(rng, 3001)
    for t in (0.3, 0.6):
        assert as_list(cnnops.nms(b, s, t)) == as_list(nms_ref_vec(b, s, t))


def test_nms_small_reference_loops(rng):
    # the plain-loop reference (not the vectorised one) on a few inputs
    for n in (5, 23, 40):
        b = make_boxes(rng, n, np.float64, "clustered", span=100.0)
        s = make_scores(rng, n, np.float64)
        assert as_list(cnnops.nms(b, s, 0.45)) == as_list(nms_ref(b, s, 0.45))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", ["uniform", "clustered"])
@pytest.mark.parametrize("t", [0.5, 0.7])
def test_nms_matches_torchvision(rng, dtype, kind, t):
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision")
    for n in (997, 4001):
        b = make_boxes(rng, n, dtype, kind)
        s = make_scores(rng, n, dtype)
        want = tv.ops.nms(torch.from_numpy(b), torch.from_numpy(s), t).numpy()
        assert as_list(cnnops.nms(b, s, t)) == as_list(want)


def test_nms_ties_lower_index_first(rng):
    n = 600
    b = make_boxes(rng, n, np.float32, "clustered")
    s = rng.integers(0, 5, n).astype(np.float32)  # heavy ties
    s[::7] = -0.0  # -0 ties with +0
    s[1::7] = 0.0
    k = cnnops.nms(b, s, 0.5)
    assert as_list(k) == as_list(nms_ref_vec(b, s, 0.5))
    # identical boxes with identical scores: only the lowest index survives
    same = np.tile(np.array([[1, 2, 5, 7]], np.float64), (9, 1))
    assert as_list(cnnops.nms(same, np.ones(9), 0.5)) == [0]
    assert as_list(cnnops.nms(same, np.arange(9.0) % 3, 0.99)) == [2]


def test_nms_strict_threshold():
    # IoU exactly 0.5 (inter 1, union 2) is representable: kept at t = 0.5 (not > t), suppressed below
    b = np.array([[0, 0, 2, 1], [0, 0, 1, 1]], np.float32)
    s = np.array([0.9, 0.8], np.float32)
    assert as_list(cnnops.nms(b, s, 0.5)) == [0, 1]
    assert as_list(cnnops.nms(b, s, np.nextafter(0.5, 0))) == [0]


# ----------------------------------------------------------------------------- exact ties
#
# The IoU is rounded to the boxes' dtype before the comparison with the double threshold, as in
# torchvision: the references are tests/reference.py's tv_* functions, which repeat that arithmetic
# step by step in NumPy, and the thresholds are set to IoU values computed exactly that way.


def test_tie_at_three_tenths_follows_the_dtype():
    # inter 30, union 100: float64 gives the double 0.3 (not > 0.3: both kept), float32 gives
    # 0.3f = 0.30000001 (> 0.3: the second box goes), as torchvision.ops.nms does
    b64 = np.array([[0, 0, 10, 10], [0, 0, 10, 3]], np.float64)
    s64 = np.array([0.9, 0.8])
    b32, s32 = b64.astype(np.float32), s64.astype(np.float32)
    c = np.zeros(2, np.int64)
    for b, s, want in ((b64, s64, [0, 1]), (b32, s32, [0])):
        assert as_list(cnnops.nms(b, s, 0.3)) == want
        assert as_list(cnnops.batched_nms(b, s, c, 0.3)) == want
        idx, valid = cnnops.batched_nms_padded(b[None], s[None], 0.3, 3)
        assert as_list(idx[0]) == want + [-1] * (3 - len(want)) and int(valid[0]) == len(want)
        assert as_list(cnnops.fast_nms(b, s, 0.3)) == want
        assert as_list(cnnops.cluster_nms(b, s, 0.3)) == want
        assert as_list(cnnops.nms(b, s, 0.3)) == as_list(nms_tv_ref(b, s, 0.3))
    # soft-NMS's linear cut: only the float32 IoU passes it, and decays the score by 1 - 0.3f
    _, d64 = cnnops.soft_nms(b64, s64, 0.3, method="linear")
    _, d32 = cnnops.soft_nms(b32, s32, 0.3, method="linear")
    assert d64[1] == 0.8
    np.testing.assert_allclose(d32[1], 0.8 * (1 - np.float32(0.3)), rtol=1e-6)
    # at the float32 value itself (as a double) the float32 boxes are kept too
    assert as_list(cnnops.nms(b32, s32, float(np.float32(0.3)))) == [0, 1]
    # IoU exactly 1/3 (inter 1, union 3): the double quotient is the double nearest 1/3, equal to
    # the threshold 1/3; the float32 quotient 0.33333334 lies above it
    b = np.array([[0, 0, 2, 1], [1, 0, 3, 1]], np.float64)
    assert as_list(cnnops.nms(b, s64, 1 / 3)) == [0, 1]
    assert as_list(cnnops.nms(b, s64, np.nextafter(1 / 3, 0))) == [0]
    assert as_list(cnnops.nms(b.astype(np.float32), s32, 1 / 3)) == [0]
    assert as_list(cnnops.nms(b.astype(np.float32), s32, float(np.float32(1 / 3)))) == [0, 1]


def tie_boxes(rng, n, dtype, grid):
    """n boxes with many overlaps: small integer corners (grid: many IoUs are equal exact
    fractions) or continuous ones."""
    if grid:
        xy = rng.integers(0, 24, (n, 2))
        wh = rng.integers(1, 12, (n, 2))
    else:
        xy = rng.uniform(0, 40, (n, 2))
        wh = rng.uniform(2, 15, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)


def tie_thresholds(rng, b, s, count, ref, metric="iou", beta=1.0):
    """Thresholds equal (as doubles) to values of the criterion computed in the boxes' dtype
    between one of the three best-scored boxes (kept, so the walk meets those pairs) and another
    box: `count` random ones plus one at which the reference result changes when the threshold
    moves one double down (so a tie decides something), each with its neighbours: the next double
    down (the tie pair is then suppressed), the next double up, and for float32 the midpoint
    between the float below and the value (it rounds up to the value) and the double below it."""
    dtype = b.dtype.type
    vals = set()
    for i in np.argsort(-s, kind="stable")[:3]:
        v = tv_iou_ref(b, b[i], dtype) if metric == "iou" else tv_diou_ref(b, b[i], dtype, beta)
        vals.update(float(x) for x in v[(v > 0) & (v < 1)])
    vals = [float(v) for v in rng.permutation(sorted(vals))]
    picks = vals[:count]
    decisive = [t for t in vals if as_list(ref(t)) != as_list(ref(float(np.nextafter(t, 0))))][:1]
    assert decisive, "no threshold at which a tie decides"
    out = []
    for t in picks + decisive:
        out += [t, float(np.nextafter(t, 0)), float(np.nextafter(t, 1))]
        if dtype is np.float32:
            mid = (float(np.nextafter(np.float32(t), np.float32(0))) + t) / 2
            out += [mid, float(np.nextafter(mid, 0))]
    return out


@pytest.mark.parametrize("grid", [True, False], ids=["grid", "continuous"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("n", [40, 150])
def test_exact_ties_greedy_batched_padded(rng, dtype, grid, n):
    # n = 40 walks the kept list directly, n = 150 goes through the grid of kept boxes
    b = tie_boxes(rng, n, dtype, grid)
    s = make_scores(rng, n, dtype)
    c = rng.integers(0, 3, n)
    ts = tie_thresholds(rng, b, s, 3, lambda t: nms_tv_ref(b, s, t))
    for t in ts:
        want = nms_tv_ref(b, s, t)
        assert as_list(cnnops.nms(b, s, t)) == as_list(want), t
        assert as_list(cnnops.cluster_nms(b, s, t)) == as_list(want), t
        assert as_list(cnnops.batched_nms(b, s, c, t)) == as_list(nms_tv_ref(b, s, t, idxs=c)), t
        idx, valid = cnnops.batched_nms_padded(np.stack([b, b[::-1]]), np.stack([s, s[::-1]]), t, n,
                                               idxs=np.stack([c, c]))
        assert as_list(idx[0, : valid[0]]) == as_list(nms_tv_ref(b, s, t, idxs=c)), t
        assert as_list(idx[1, : valid[1]]) == as_list(nms_tv_ref(b[::-1], s[::-1], t, idxs=c)), t


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_exact_ties_fast_cluster_soft(rng, dtype):
    n = 60
    b = tie_boxes(rng, n, dtype, True)
    s = make_scores(rng, n, dtype)
    c = rng.integers(0, 2, n)
    ts = tie_thresholds(rng, b, s, 2, lambda t: nms_tv_ref(b, s, t))
    for t in ts:
        for idxs in (None, c):
            assert as_list(cnnops.fast_nms(b, s, t, idxs=idxs)) == as_list(fast_nms_ref(b, s, t, idxs, tv=True)), t
            assert as_list(cnnops.cluster_nms(b, s, t, idxs=idxs)) == as_list(
                fast_nms_ref(b, s, t, idxs, cluster=True, tv=True)), t
        k, d = cnnops.soft_nms(b, s, t, 0.5, 0.01, "linear")
        rk, rd = soft_nms_ref(b, s, t, 0.5, 0.01, "linear", tv=True)
        assert as_list(k) == as_list(rk), t
        np.testing.assert_allclose(d, rd, rtol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("beta", [1.0, 0.6])
@pytest.mark.parametrize("n", [40, 150])
def test_exact_ties_diou_nms(rng, dtype, beta, n):
    b = tie_boxes(rng, n, dtype, True)
    s = make_scores(rng, n, dtype)
    ts = tie_thresholds(rng, b, s, 3, lambda t: nms_tv_ref(b, s, t, criterion="diou", beta=beta), "diou", beta)
    for t in ts:
        want = nms_tv_ref(b, s, t, criterion="diou", beta=beta)
        assert as_list(cnnops.diou_nms(b, s, t, beta=beta)) == as_list(want), t


def test_nms_degenerate_boxes_never_suppress():
    b = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 5], [0, 0, 4, 4], [1, 1, 1, 5]], np.float32)
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32)
    assert as_list(cnnops.nms(b, s, 0.0)) == [0, 1, 2, 3, 4]
    b2 = make_boxes(np.random.default_rng(3), 400, np.float32)
    b2[::3, 2] = b2[::3, 0]  # a third of them zero-width, on the grid path
    s2 = make_scores(np.random.default_rng(4), 400)
    k = cnnops.nms(b2, s2, 0.0)
    assert set(range(0, 400, 3)) <= set(as_list(k))
    assert as_list(k) == as_list(nms_ref_vec(b2, s2, 0.0))


def test_nms_score_threshold_and_max_output(rng):
    n = 811
    b = make_boxes(rng, n, np.float64, "clustered")
    s = make_scores(rng, n, np.float64)
    full = nms_ref_vec(b, s, 0.5, score_threshold=0.25)
    assert as_list(cnnops.nms(b, s, 0.5, score_threshold=0.25)) == as_list(full)
    assert all(s[i] > 0.25 for i in full)
    for m in (0, 1, 5, len(full), len(full) + 10):
        assert as_list(cnnops.nms(b, s, 0.5, score_threshold=0.25, max_output_size=m)) == as_list(full[:m])
    assert cnnops.nms(b, s, 0.5, score_threshold=2.0).shape == (0,)
    # a score exactly at the threshold is not a candidate
    assert as_list(cnnops.nms(b[:2], np.array([0.5, 0.25]), 0.5, score_threshold=0.25)) == [0]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_empty_inputs(dtype):
    b = np.zeros((0, 4), dtype)
    s = np.zeros((0,), dtype)
    for k in (cnnops.nms(b, s, 0.5), cnnops.batched_nms(b, s, np.zeros(0, np.int64), 0.5), cnnops.diou_nms(b, s, 0.5),
              cnnops.fast_nms(b, s, 0.5), cnnops.cluster_nms(b, s, 0.5), cnnops.soft_nms(b, s)[0],
              cnnops.matrix_nms(b, s)[0]):
        check_int64(k)
        assert k.shape == (0,)
    assert cnnops.soft_nms(b, s)[1].dtype == dtype
    idx, valid = cnnops.batched_nms_padded(np.zeros((2, 0, 4), dtype), np.zeros((2, 0), dtype), 0.5, 3)
    assert idx.shape == (2, 3) and (idx == -1).all() and as_list(valid) == [0, 0]


def test_nms_torch_in_out_and_noncontiguous(rng):
    torch = pytest.importorskip("torch")
    n = 500
    b = make_boxes(rng, n, np.float32, "clustered")
    s = make_scores(rng, n)
    want = as_list(nms_ref_vec(b, s, 0.5))
    k = cnnops.nms(torch.from_numpy(b), torch.from_numpy(s), 0.5)
    assert isinstance(k, torch.Tensor) and k.dtype == torch.int64 and k.tolist() == want
    # non-contiguous: every other column of a wider array, scores with a stride
    wide = np.zeros((n, 8), np.float32)
    wide[:, ::2] = b
    s2 = np.zeros(2 * n, np.float32)
    s2[::2] = s
    before = wide.copy(), s2.copy()
    assert as_list(cnnops.nms(wide[:, ::2], s2[::2], 0.5)) == want
    np.testing.assert_array_equal(wide, before[0])
    np.testing.assert_array_equal(s2, before[1])
    tb = torch.from_numpy(np.ascontiguousarray(b.T)).T  # column-major torch view
    assert cnnops.nms(tb, torch.from_numpy(s), 0.5).tolist() == want
    # a tensor that requires grad is read, not refused
    assert cnnops.nms(torch.from_numpy(b).requires_grad_(), torch.from_numpy(s), 0.5).tolist() == want


def test_nms_200k_boxes_small_memory():
    # 200,000 boxes: an N x N float matrix would be 160 GB (a bitmask 5 GB); the fused kernel
    # needs a few MB. ru_maxrss is the peak resident size (KiB on Linux).
    rng = np.random.default_rng(7)
    n = 200_000
    b = make_boxes(rng, n, np.float32, "uniform", span=20000.0)
    s = make_scores(rng, n)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    k = cnnops.nms(b, s, 0.5)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert (after - before) * 1024 < 64 * 2**20, f"peak RSS grew by {(after - before) / 1024:.0f} MiB"
    assert 0 < len(k) <= n and len(np.unique(k)) == len(k)
    # greedy decisions for the best 2000 candidates depend on those alone: the prefix must match
    top = np.argsort(-s, kind="stable")[:2000]
    ref = top[nms_ref_vec(b[top], s[top], 0.5)]
    assert as_list(k[: len(ref)]) == as_list(ref)
    kb = cnnops.batched_nms(b, s, (np.arange(n) % 80).astype(np.int64), 0.5)
    assert len(kb) >= len(k)


# ----------------------------------------------------------------------------- class-aware


def batched_ref(b, s, c, t, **kw):
    return nms_ref(b, s, t, idxs=c, **kw)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_batched_nms_matches_per_class_reference(rng, dtype):
    n = 701
    b = make_boxes(rng, n, dtype, "clustered", span=400.0)
    s = make_scores(rng, n, dtype)
    c = rng.integers(0, 7, n)
    for t in (0.3, 0.6):
        want = []
        for cls in np.unique(c):
            sel = np.flatnonzero(c == cls)
            want += [int(sel[i]) for i in nms_ref_vec(b[sel], s[sel], t)]
        want.sort(key=lambda i: (-s[i], i))
        assert as_list(cnnops.batched_nms(b, s, c, t)) == want
        assert as_list(cnnops.batched_nms(b, s, c.astype(np.int32), t)) == want
        assert as_list(cnnops.batched_nms(b, s, c, t, max_output_size=17)) == want[:17]


def test_batched_nms_small_reference_and_odd_class_ids(rng):
    n = 60
    b = make_boxes(rng, n, np.float64, "clustered", span=80.0)
    s = make_scores(rng, n, np.float64)
    c = rng.choice(np.array([-(2**62), -3, 5, 2**62 + 11]), n)  # huge and negative ids, sparse
    assert as_list(cnnops.batched_nms(b, s, c, 0.4)) == as_list(batched_ref(b, s, c, 0.4))
    assert as_list(cnnops.batched_nms(b, s, c, 0.4, score_threshold=0.5)) == as_list(
        batched_ref(b, s, c, 0.4, score_threshold=0.5))


def test_batched_nms_no_offset_precision_loss(rng):
    # float32 boxes with coordinates near 1e4 and 3000 classes: the coordinate-offset trick would
    # move boxes to ~3e7 where float32 spacing is 2, changing IoUs; grouping by class does not.
    n = 3000
    b = make_boxes(rng, n, np.float32, "clustered", span=10000.0, size=(1, 4))
    s = make_scores(rng, n)
    c = rng.integers(0, 3000, n)
    want = []
    for cls in np.unique(c):
        sel = np.flatnonzero(c == cls)
        want += [int(sel[i]) for i in nms_ref_vec(b[sel], s[sel], 0.5)]
    want.sort(key=lambda i: (-s[i], i))
    assert as_list(cnnops.batched_nms(b, s, c, 0.5)) == want


def test_batched_nms_matches_torchvision(rng):
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision")
    n = 5003
    b = make_boxes(rng, n, np.float32, "clustered")
    s = make_scores(rng, n)
    c = rng.integers(0, 80, n)
    want = tv.ops.batched_nms(torch.from_numpy(b), torch.from_numpy(s), torch.from_numpy(c), 0.5).numpy()
    assert as_list(cnnops.batched_nms(b, s, c, 0.5)) == as_list(want)


def test_batched_nms_thread_count_independent(rng, threads):
    n = 70001  # above the size from which the classes run on the thread pool (65536)
    b = make_boxes(rng, n, np.float32, "clustered")
    s = make_scores(rng, n)
    c = rng.integers(0, 13, n)
    threads(1)
    one = cnnops.batched_nms(b, s, c, 0.5)
    m1 = cnnops.matrix_nms(b, s, c, top_k=700)
    threads(2)
    assert as_list(cnnops.batched_nms(b, s, c, 0.5)) == as_list(one)
    m2 = cnnops.matrix_nms(b, s, c, top_k=700)
    assert as_list(m1[0]) == as_list(m2[0]) and np.array_equal(m1[1], m2[1])
    # padded form: images on the thread pool (B * N above the same size)
    bp = np.stack([b[:35000], b[35000:70000]])
    sp = np.stack([s[:35000], s[35000:70000]])
    threads(1)
    p1 = cnnops.batched_nms_padded(bp, sp, 0.5, 20000)
    threads(2)
    p2 = cnnops.batched_nms_padded(bp, sp, 0.5, 20000)
    assert np.array_equal(p1[0], p2[0]) and np.array_equal(p1[1], p2[1])
    assert as_list(p2[0][1, : p2[1][1]]) == as_list(cnnops.nms(b[35000:70000], s[35000:70000], 0.5))


@pytest.mark.parametrize("with_classes", [False, True])
def test_batched_nms_padded(rng, with_classes):
    B, N, M = 5, 433, 50
    b = np.stack([make_boxes(rng, N, np.float32, "clustered", span=300.0) for _ in range(B)])
    s = make_scores(rng, B * N).reshape(B, N)
    c = rng.integers(0, 4, (B, N)) if with_classes else None
    idx, valid = cnnops.batched_nms_padded(b, s, 0.5, M, score_threshold=0.1, idxs=c)
    assert idx.shape == (B, M) and idx.dtype == np.int64 and valid.shape == (B,) and valid.dtype == np.int64
    for i in range(B):
        if with_classes:
            want = as_list(cnnops.batched_nms(b[i], s[i], c[i], 0.5, score_threshold=0.1))
        else:
            want = as_list(nms_ref_vec(b[i], s[i], 0.5, score_threshold=0.1))
        want = want[:M]
        assert int(valid[i]) == len(want)
        assert as_list(idx[i, : len(want)]) == want
        assert (idx[i, len(want):] == -1).all()
    # rows shorter than max_output_size are padded
    idx2, valid2 = cnnops.batched_nms_padded(b[:, :3], s[:, :3], 0.5, 6)
    assert (valid2 <= 3).all() and (idx2[:, 3:] == -1).all()


# ----------------------------------------------------------------------------- variants


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("method", ["linear", "gaussian"])
def test_soft_nms_matches_reference(rng, dtype, method):
    n = 97
    b = make_boxes(rng, n, dtype, "clustered", span=200.0)
    s = make_scores(rng, n, dtype)
    for t, sigma, st in ((0.3, 0.5, 0.001), (0.0, 0.1, 0.05), (0.7, 2.0, 0.3)):
        k, d = cnnops.soft_nms(b, s, t, sigma, st, method)
        rk, rd = soft_nms_ref(b, s, t, sigma, st, method)
        check_int64(k)
        assert d.dtype == dtype
        assert as_list(k) == as_list(rk)
        np.testing.assert_allclose(d, rd, rtol=TOL[dtype])
        assert (d > st).all()
    k, d = cnnops.soft_nms(b, s, 0.3, 0.5, 0.001, method, max_output_size=10)
    assert as_list(k) == as_list(soft_nms_ref(b, s, 0.3, 0.5, 0.001, method)[0][:10])


def test_soft_nms_tensorflow_sigma_conversion():
    # TensorFlow decays by exp(-0.5 * iou^2 / s): sigma = 2 * s here gives the same scores
    b = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [50, 50, 60, 60]], np.float64)
    s = np.array([0.9, 0.8, 0.7])
    iou = 80 / 120
    s_tf = 0.3
    k, d = cnnops.soft_nms(b, s, 0.0, 2 * s_tf, 0.0, "gaussian")
    assert as_list(k) == [0, 2, 1]
    np.testing.assert_allclose(d, [0.9, 0.7, 0.8 * np.exp(-0.5 * iou**2 / s_tf)], rtol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("method", ["linear", "gaussian"])
def test_matrix_nms_matches_reference(rng, dtype, method):
    n = 83
    b = make_boxes(rng, n, dtype, "clustered", span=150.0)
    s = make_scores(rng, n, dtype)
    c = rng.integers(0, 3, n)
    for idxs, sigma, st, top_k in ((None, 0.5, None, None), (c, 0.5, 0.1, None), (c, 2.0, None, 40),
                                   (None, 0.2, 0.05, 11)):
        k, d = cnnops.matrix_nms(b, s, idxs, method, sigma, st, top_k)
        rk, rd = matrix_nms_ref(b, s, idxs, method, sigma, st, top_k)
        check_int64(k)
        assert d.dtype == dtype
        assert as_list(k) == as_list(rk)
        np.testing.assert_allclose(d, rd, rtol=TOL[dtype])
    k, d = cnnops.matrix_nms(b, s, max_output_size=5)
    assert as_list(k) == as_list(matrix_nms_ref(b, s)[0][:5])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_fast_and_cluster_nms_match_reference(rng, dtype):
    n = 89
    b = make_boxes(rng, n, dtype, "clustered", span=150.0)
    s = make_scores(rng, n, dtype)
    c = rng.integers(0, 3, n)
    for t, idxs, top_k in ((0.5, None, None), (0.3, c, None), (0.6, None, 30), (0.0, c, 50)):
        f = cnnops.fast_nms(b, s, t, idxs=idxs, top_k=top_k)
        cl = cnnops.cluster_nms(b, s, t, idxs=idxs, top_k=top_k)
        check_int64(f)
        check_int64(cl)
        assert as_list(f) == as_list(fast_nms_ref(b, s, t, idxs, top_k))
        assert as_list(cl) == as_list(fast_nms_ref(b, s, t, idxs, top_k, cluster=True))
    sel = np.flatnonzero(s > 0.5)
    want = sel[fast_nms_ref(b[sel], s[sel], 0.5)][:4]
    assert as_list(cnnops.fast_nms(b, s, 0.5, score_threshold=0.5, max_output_size=4)) == as_list(want)


def test_cluster_nms_equals_greedy_and_fast_is_a_subset(rng):
    for kind in ("clustered", "uniform", "mixed"):
        n = 1500
        b = make_boxes(rng, n, np.float32, kind)
        s = make_scores(rng, n)
        g = as_list(cnnops.nms(b, s, 0.5))
        assert as_list(cnnops.cluster_nms(b, s, 0.5)) == g
        f = as_list(cnnops.fast_nms(b, s, 0.5))
        assert set(f) <= set(g)
        c = rng.integers(0, 5, n)
        assert as_list(cnnops.cluster_nms(b, s, 0.5, idxs=c)) == as_list(cnnops.batched_nms(b, s, c, 0.5))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("beta", [1.0, 0.6])
def test_diou_nms_matches_reference(rng, dtype, beta):
    for n in (71, 409):
        b = make_boxes(rng, n, dtype, "clustered", span=200.0)
        s = make_scores(rng, n, dtype)
        for t in (0.0, 0.4):
            want = nms_ref(b, s, t, metric=lambda x, y: nms_diou_ref(x, y, beta))
            assert as_list(cnnops.diou_nms(b, s, t, beta=beta)) == as_list(want)
    # same IoU, centres apart: DIoU keeps what IoU-NMS removes
    b = np.array([[0, 0, 10, 10], [0, 0, 10, 6]], np.float64)
    s = np.array([0.9, 0.8])
    assert as_list(cnnops.nms(b, s, 0.5)) == [0]
    assert as_list(cnnops.diou_nms(b, s, 0.59)) == [0, 1]


# ----------------------------------------------------------------------------- bad input


def _good():
    b = np.array([[0, 0, 1, 1], [0, 0, 2, 2]], np.float32)
    return b, np.array([0.5, 0.4], np.float32)


BAD = [
    ("boxes (N, 3)", lambda f, b, s: f(b[:, :3], s), ValueError, "expected boxes of shape (N, 4)"),
    ("boxes 1-D", lambda f, b, s: f(b.ravel(), s), ValueError, "expected boxes of shape (N, 4)"),
    ("boxes 3-D", lambda f, b, s: f(b[None], s), ValueError, "expected boxes of shape (N, 4)"),
    ("scores length", lambda f, b, s: f(b, s[:1]), ValueError, "expected scores of shape (2,)"),
    ("scores 2-D", lambda f, b, s: f(b, s[:, None]), ValueError, "expected scores of shape (2,)"),
    ("int boxes", lambda f, b, s: f(b.astype(np.int64), s), TypeError, "expected boxes with dtype float32"),
    ("dtype mismatch", lambda f, b, s: f(b, s.astype(np.float64)), TypeError, "expected scores with the boxes' dtype"),
    ("nan box", lambda f, b, s: f(np.where(np.eye(2, 4, dtype=bool), np.nan, b).astype(np.float32), s), ValueError,
     "expected finite box coordinates"),
    ("inf score", lambda f, b, s: f(b, np.array([0.5, np.inf], np.float32)), ValueError, "expected finite scores"),
    ("inverted", lambda f, b, s: f(b[:, [2, 1, 0, 3]], s), ValueError, "x1 <= x2"),
    ("not an array", lambda f, b, s: f([[0, 0, 1, 1]], [0.5]), TypeError, "supporting DLPack"),
]

FUNCS = {
    "nms": lambda b, s, **kw: cnnops.nms(b, s, 0.5, **kw),
    "batched_nms": lambda b, s, **kw: cnnops.batched_nms(b, s, np.zeros(2, np.int64), 0.5, **kw),
    "diou_nms": lambda b, s, **kw: cnnops.diou_nms(b, s, 0.5, **kw),
    "soft_nms": lambda b, s, **kw: cnnops.soft_nms(b, s, **kw),
    "matrix_nms": lambda b, s, **kw: cnnops.matrix_nms(b, s, **kw),
    "fast_nms": lambda b, s, **kw: cnnops.fast_nms(b, s, 0.5, **kw),
    "cluster_nms": lambda b, s, **kw: cnnops.cluster_nms(b, s, 0.5, **kw),
}


@pytest.mark.parametrize("name", list(FUNCS))
@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_boxes_and_scores(name, case):
    _, call, exc, msg = case
    b, s = _good()
    with pytest.raises(exc) as e:
        call(FUNCS[name], b, s)
    assert name + ":" in str(e.value) and msg in str(e.value), str(e.value)


@pytest.mark.parametrize("call, exc, msg", [
    (lambda b, s: cnnops.nms(b, s, 1.5), ValueError, "nms: expected iou_threshold in [0, 1], got 1.5"),
    (lambda b, s: cnnops.nms(b, s, -0.1), ValueError, "nms: expected iou_threshold in [0, 1], got -0.1"),
    (lambda b, s: cnnops.nms(b, s, float("nan")), ValueError, "nms: expected iou_threshold in [0, 1]"),
    (lambda b, s: cnnops.nms(b, s, "0.5"), TypeError, "nms: expected iou_threshold as a real number"),
    (lambda b, s: cnnops.nms(b, s, 0.5, score_threshold=float("nan")), ValueError, "nms: expected score_threshold"),
    (lambda b, s: cnnops.nms(b, s, 0.5, max_output_size=-1), ValueError, "nms: expected max_output_size >= 0"),
    (lambda b, s: cnnops.nms(b, s, 0.5, max_output_size=2.0), TypeError, "nms: expected max_output_size as a"),
    (lambda b, s: cnnops.batched_nms(b, s, np.zeros(2, np.float32), 0.5), TypeError,
     "batched_nms: expected idxs (class ids) with dtype int64 or int32, got float32"),
    (lambda b, s: cnnops.batched_nms(b, s, np.zeros(3, np.int64), 0.5), ValueError,
     "batched_nms: expected idxs of shape (2,) (one per box), got (3,)"),
    (lambda b, s: cnnops.batched_nms(b, s, None, 0.5), TypeError, "batched_nms: expected idxs"),
    (lambda b, s: cnnops.batched_nms_padded(b, s, 0.5, 3), ValueError,
     "batched_nms_padded: expected boxes of shape (B, N, 4), got (2, 4)"),
    (lambda b, s: cnnops.batched_nms_padded(b[None], s, 0.5, 3), ValueError,
     "batched_nms_padded: expected scores of shape (1, 2)"),
    (lambda b, s: cnnops.batched_nms_padded(b[None], s[None], 0.5, None), TypeError,
     "batched_nms_padded: expected max_output_size"),
    (lambda b, s: cnnops.batched_nms_padded(b[None], s[None], 0.5, 3, idxs=np.zeros((1, 3), np.int64)), ValueError,
     "batched_nms_padded: expected idxs of shape (1, 2)"),
    (lambda b, s: cnnops.soft_nms(b, s, method="box"), ValueError,
     "soft_nms: expected method 'linear' or 'gaussian', got 'box'"),
    (lambda b, s: cnnops.soft_nms(b, s, sigma=0.0), ValueError, "soft_nms: expected sigma > 0, got 0"),
    (lambda b, s: cnnops.soft_nms(b, s, iou_threshold=2.0), ValueError, "soft_nms: expected iou_threshold in [0, 1]"),
    (lambda b, s: cnnops.matrix_nms(b, s, method="hard"), ValueError, "matrix_nms: expected method 'linear' or"),
    (lambda b, s: cnnops.matrix_nms(b, s, method=None), TypeError, "matrix_nms: expected method"),
    (lambda b, s: cnnops.matrix_nms(b, s, sigma=-1.0), ValueError, "matrix_nms: expected sigma > 0"),
    (lambda b, s: cnnops.matrix_nms(b, s, top_k=-2), ValueError, "matrix_nms: expected top_k >= 0"),
    (lambda b, s: cnnops.fast_nms(b, s, 1.01), ValueError, "fast_nms: expected iou_threshold in [0, 1]"),
    (lambda b, s: cnnops.cluster_nms(b, s, 0.5, idxs=np.zeros(2, np.float64)), TypeError,
     "cluster_nms: expected idxs (class ids) with dtype int64 or int32"),
    (lambda b, s: cnnops.diou_nms(b, s, 0.5, beta=0.0), ValueError, "diou_nms: expected beta > 0, got 0"),
])
def test_bad_options(call, exc, msg):
    b, s = _good()
    with pytest.raises(exc) as e:
        call(b, s)
    assert msg in str(e.value), str(e.value)


# ----------------------------------------------------------------------------- huge and overflowing counts

COUNTED = {  # name -> call with one count keyword; the result's first element is the kept list
    "nms": lambda b, s, **kw: cnnops.nms(b, s, 0.5, **kw),
    "batched_nms": lambda b, s, **kw: cnnops.batched_nms(b, s, np.zeros(len(s), np.int64), 0.5, **kw),
    "diou_nms": lambda b, s, **kw: cnnops.diou_nms(b, s, 0.5, **kw),
    "soft_nms": lambda b, s, **kw: cnnops.soft_nms(b, s, **kw)[0],
    "matrix_nms": lambda b, s, **kw: cnnops.matrix_nms(b, s, **kw)[0],
    "fast_nms": lambda b, s, **kw: cnnops.fast_nms(b, s, 0.5, **kw),
    "cluster_nms": lambda b, s, **kw: cnnops.cluster_nms(b, s, 0.5, **kw),
}


@pytest.mark.parametrize("name", list(COUNTED))
def test_counts_up_to_int64_max_mean_no_limit(rng, name):
    b = make_boxes(rng, 30, np.float32, "clustered", span=100.0)
    s = make_scores(rng, 30)
    f = COUNTED[name]
    keys = ["max_output_size"] + (["top_k"] if name in ("matrix_nms", "fast_nms", "cluster_nms") else [])
    for key in keys:
        full = as_list(f(b, s))
        for v in (2**63 - 1, np.int64(2**63 - 1), np.uint64(2**63 - 1), 31, 2**40):
            assert as_list(f(b, s, **{key: v})) == full
        assert as_list(f(b, s, **{key: 0})) == []
        for v in (2**63, 2**64, np.uint64(2**63), 10**30):
            with pytest.raises(ValueError, match=f"{name}: expected {key} <= 2\\*\\*63 - 1"):
                f(b, s, **{key: v})
        for v in (-1, np.int64(-5), -(2**70)):
            with pytest.raises(ValueError, match=f"{name}: expected {key} >= 0"):
                f(b, s, **{key: v})
        for v in (3.0, "3", np.float32(3)):
            with pytest.raises(TypeError, match=f"{name}: expected {key} as a non-negative int or None"):
                f(b, s, **{key: v})


def test_padded_row_length_overflow_is_a_value_error(rng):
    b = make_boxes(rng, 5, np.float32)[None].repeat(4, axis=0)
    s = make_scores(rng, 20).reshape(4, 5)
    # (B, max_output_size) int64 whose byte count overflows int64: refused before any allocation
    for m in (2**62, 2**61, 2**60, 2**63 - 1):
        with pytest.raises(ValueError, match=r"batched_nms_padded: an output of shape \(4, \d+\) = \(B, "
                                             r"max_output_size\) int64 is too large"):
            cnnops.batched_nms_padded(b, s, 0.5, m)
    for m in (2**63, 2**64):
        with pytest.raises(ValueError, match=r"batched_nms_padded: expected max_output_size <= 2\*\*63 - 1"):
            cnnops.batched_nms_padded(b, s, 0.5, m)
    with pytest.raises(ValueError, match="batched_nms_padded: expected max_output_size >= 0, got -1"):
        cnnops.batched_nms_padded(b, s, 0.5, -1)
    # the row length is kept as given (padding beyond N), and 0 gives empty rows
    idx, valid = cnnops.batched_nms_padded(b, s, 0.5, 9)
    assert idx.shape == (4, 9) and (idx[:, 5:] == -1).all() and (valid <= 5).all()
    idx, valid = cnnops.batched_nms_padded(b, s, 0.5, 0)
    assert idx.shape == (4, 0) and (valid == 0).all()
    # no images: the row length still has to give a representable (0, M) array, as in NumPy
    idx, valid = cnnops.batched_nms_padded(b[:0], s[:0], 0.5, 2**59)
    assert idx.shape == (0, 2**59) and valid.shape == (0,)
    with pytest.raises(ValueError, match=r"batched_nms_padded: an output of shape \(0, 2305843009213693952\)"):
        cnnops.batched_nms_padded(b[:0], s[:0], 0.5, 2**61)


def test_huge_real_options_are_value_errors():
    b, s = _good()
    for call, msg in ((lambda: cnnops.nms(b, s, 10**400), "nms: expected iou_threshold as a finite real number"),
                      (lambda: cnnops.soft_nms(b, s, sigma=10**400), "soft_nms: expected sigma as a finite real"),
                      (lambda: cnnops.nms(b, s, 0.5, score_threshold=-(10**400)),
                       "nms: expected score_threshold as a finite real number")):
        with pytest.raises(ValueError, match=msg):
            call()


# ---- CUDA against the CPU kernels --------------------------------------------------------------------
# Every entry point on CUDA arrays must give the CPU kernels' keep lists exactly, in the same order,
# for float32 and float64: random layouts with zero-area boxes, tied and signed-zero scores, class ids
# of both dtypes and any magnitude, thresholds at 0 and 1, score thresholds, counts and top_k. The
# decayed scores of soft and matrix NMS are equal up to the device's exp (bit for bit with linear
# decay, and everywhere in the emulation build, which calls the host's exp).

def _cuda(a):
    return None if a is None else cnnops.cuda.array(a)


def _host(a):
    return a.numpy() if isinstance(a, cnnops.Array) else a


def _same_keep(got, want, what):
    got = _host(got)
    assert got.dtype == np.int64 and got.shape == np.shape(want), f"{what}: {got.dtype} {got.shape}"
    assert as_list(got) == as_list(want), what


def _same_scores(got, want, dtype, what):
    got = _host(got)
    assert got.dtype == dtype and got.shape == want.shape, what
    np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps, atol=0, err_msg=what)


def _random_nms_case(rng, dtype):
    n = int(rng.choice([0, 1, 2, 7, 63, 64, 65, 130, 257, 400]))
    b = make_boxes(rng, n, dtype, str(rng.choice(["uniform", "clustered", "mixed"])), span=200.0)
    s = make_scores(rng, n, dtype)
    if rng.integers(2):
        s = (np.round(s * 6) / 6).astype(dtype)  # ties: the lower index goes first on both devices
    s[rng.random(n) < 0.05] = -0.0
    z = rng.random(n) < 0.05
    b[z, 2] = b[z, 0]  # zero-area boxes: never suppress, never suppressed
    cls = rng.integers(-2, 3, n) * 10 ** int(rng.integers(0, 16))
    cls = cls.astype(np.int32 if abs(cls).max(initial=0) < 2**31 and rng.integers(2) else np.int64)
    kw = {"t": float(rng.choice([0.0, 0.2, 0.5, 0.7, 1.0])),
          "st": None if rng.integers(2) else float(rng.choice([0.1, 0.5])),
          "mo": None if rng.integers(2) else int(rng.integers(0, 30)),
          "tk": None if rng.integers(2) else int(rng.integers(0, 60))}
    return b, s, cls, kw


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("seed", range(12))
def test_cuda_nms_family_matches_cpu_kernels(seed, dtype):
    rng = np.random.default_rng(3000 + seed)
    b, s, cls, kw = _random_nms_case(rng, dtype)
    t, st, mo, tk = kw["t"], kw["st"], kw["mo"], kw["tk"]
    bd, sd, cd = _cuda(b), _cuda(s), _cuda(cls)
    what = f"n={len(s)} {kw}"
    _same_keep(cnnops.nms(bd, sd, t, st, mo), cnnops.nms(b, s, t, st, mo), f"nms {what}")
    for beta in (1.0, 0.6):
        _same_keep(cnnops.diou_nms(bd, sd, t, beta, st, mo), cnnops.diou_nms(b, s, t, beta, st, mo), f"diou {what}")
    _same_keep(cnnops.batched_nms(bd, sd, cd, t, st, mo), cnnops.batched_nms(b, s, cls, t, st, mo), f"batched {what}")
    for c, c_d in ((None, None), (cls, cd)):
        _same_keep(cnnops.fast_nms(bd, sd, t, c_d, st, tk, mo), cnnops.fast_nms(b, s, t, c, st, tk, mo), f"fast {what}")
        _same_keep(cnnops.cluster_nms(bd, sd, t, c_d, st, tk, mo), cnnops.cluster_nms(b, s, t, c, st, tk, mo),
                   f"cluster {what}")
    for method in ("linear", "gaussian"):
        k, d = cnnops.soft_nms(b, s, t, 0.5, 0.001 if st is None else st, method, mo)
        kd, dd = cnnops.soft_nms(bd, sd, t, 0.5, 0.001 if st is None else st, method, mo)
        _same_keep(kd, k, f"soft {method} {what}")
        _same_scores(dd, d, dtype, f"soft {method} {what}")
        for c, c_d in ((None, None), (cls, cd)):
            k, d = cnnops.matrix_nms(b, s, c, method, 0.5, st, tk, mo)
            kd, dd = cnnops.matrix_nms(bd, sd, c_d, method, 0.5, st, tk, mo)
            _same_keep(kd, k, f"matrix {method} {what}")
            _same_scores(dd, d, dtype, f"matrix {method} {what}")


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("seed", range(3))
def test_cuda_batched_nms_padded_matches_cpu_kernels(seed, dtype):
    rng = np.random.default_rng(3100 + seed)
    B, n = int(rng.integers(1, 5)), int(rng.choice([1, 40, 150]))
    b = np.stack([make_boxes(rng, n, dtype, "clustered", span=120.0) for _ in range(B)])
    s = np.stack([(np.round(make_scores(rng, n, dtype) * 8) / 8).astype(dtype) for _ in range(B)])
    c = rng.integers(0, 4, (B, n)).astype(np.int32)
    for m in (0, 7, n + 3):
        for st in (None, 0.3):
            for idxs in (None, c):
                want = cnnops.batched_nms_padded(b, s, 0.5, m, st, idxs)
                with poisoned_outputs():
                    got = cnnops.batched_nms_padded(_cuda(b), _cuda(s), 0.5, m, st, _cuda(idxs))
                _same_keep(got[0].numpy().ravel(), want[0].ravel(), f"indices B={B} n={n} m={m} st={st}")
                _same_keep(got[1], want[1], f"valid B={B} n={n} m={m} st={st}")


@pytest.mark.cuda
@pytest.mark.parametrize("kind", ["uniform", "clustered"])
def test_cuda_nms_mask_in_row_blocks(rng, kind):
    # a budget of one 64-row block per call: the scan's state and the removed bits carry across
    # hundreds of blocks (the path 1M boxes take), with an early stop at max_output_size
    n = 1500
    b = make_boxes(rng, n, np.float32, kind, span=400.0)
    s = make_scores(rng, n)
    c = rng.integers(0, 5, n)
    want = {"nms": cnnops.nms(b, s, 0.5), "diou": cnnops.diou_nms(b, s, 0.4, 0.6),
            "mo": cnnops.nms(b, s, 0.5, None, 37), "batched": cnnops.batched_nms(b, s, c, 0.5),
            "cluster": cnnops.cluster_nms(b, s, 0.5, c, 0.2, 1100)}
    before = cnnops._C._cuda_nms_mask_budget(1)
    try:
        bd, sd, cd = _cuda(b), _cuda(s), _cuda(c)
        got = {"nms": cnnops.nms(bd, sd, 0.5), "diou": cnnops.diou_nms(bd, sd, 0.4, 0.6),
               "mo": cnnops.nms(bd, sd, 0.5, None, 37), "batched": cnnops.batched_nms(bd, sd, cd, 0.5),
               "cluster": cnnops.cluster_nms(bd, sd, 0.5, cd, 0.2, 1100)}
    finally:
        cnnops._C._cuda_nms_mask_budget(before)
    for k in want:
        _same_keep(got[k], want[k], k)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_cuda_exact_ties_follow_the_dtype(rng, dtype):
    # thresholds equal to IoUs computed in the boxes' dtype, and their neighbours: the device makes
    # the CPU's decision at every one of them (no fused multiply-add moves a tie)
    n = 120
    b = tie_boxes(rng, n, dtype, True)
    s = make_scores(rng, n, dtype)
    c = rng.integers(0, 3, n)
    bd, sd, cd = _cuda(b), _cuda(s), _cuda(c)
    for t in tie_thresholds(rng, b, s, 2, lambda t: nms_tv_ref(b, s, t)):
        _same_keep(cnnops.nms(bd, sd, t), cnnops.nms(b, s, t), f"nms t={t}")
        _same_keep(cnnops.batched_nms(bd, sd, cd, t), cnnops.batched_nms(b, s, c, t), f"batched t={t}")
        _same_keep(cnnops.fast_nms(bd, sd, t, cd), cnnops.fast_nms(b, s, t, c), f"fast t={t}")
        _same_keep(cnnops.cluster_nms(bd, sd, t), cnnops.cluster_nms(b, s, t), f"cluster t={t}")
        k, d = cnnops.soft_nms(b, s, t, 0.5, 0.01, "linear")
        kd, dd = cnnops.soft_nms(bd, sd, t, 0.5, 0.01, "linear")
        _same_keep(kd, k, f"soft t={t}")
        np.testing.assert_array_equal(dd.numpy(), d)
    for t in tie_thresholds(rng, b, s, 2, lambda t: nms_tv_ref(b, s, t, criterion="diou"), "diou"):
        _same_keep(cnnops.diou_nms(bd, sd, t), cnnops.diou_nms(b, s, t), f"diou t={t}")
    b2 = np.array([[0, 0, 10, 10], [0, 0, 10, 3]], dtype)  # IoU exactly 3/10
    s2 = np.array([0.9, 0.8], dtype)
    assert as_list(cnnops.nms(_cuda(b2), _cuda(s2), 0.3).numpy()) == ([0] if dtype == np.float32 else [0, 1])


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_cuda_empty_and_deterministic(rng, dtype):
    e4, e = np.zeros((0, 4), dtype), np.zeros(0, dtype)
    for k in (cnnops.nms(_cuda(e4), _cuda(e), 0.5), cnnops.fast_nms(_cuda(e4), _cuda(e), 0.5),
              cnnops.cluster_nms(_cuda(e4), _cuda(e), 0.5), cnnops.soft_nms(_cuda(e4), _cuda(e))[0],
              cnnops.matrix_nms(_cuda(e4), _cuda(e))[0],
              cnnops.batched_nms(_cuda(e4), _cuda(e), _cuda(np.zeros(0, np.int64)), 0.5)):
        assert isinstance(k, cnnops.Array) and k.shape == (0,) and k.dtype == "int64"
    idx, valid = cnnops.batched_nms_padded(_cuda(np.zeros((2, 0, 4), dtype)), _cuda(np.zeros((2, 0), dtype)), 0.5, 3)
    assert idx.numpy().tolist() == [[-1] * 3] * 2 and valid.numpy().tolist() == [0, 0]
    b = make_boxes(rng, 300, dtype, "clustered", span=150.0)
    s = (np.round(make_scores(rng, 300, dtype) * 4) / 4).astype(dtype)
    c = rng.integers(0, 3, 300)
    runs = [(cnnops.nms(_cuda(b), _cuda(s), 0.5).numpy(), cnnops.batched_nms(_cuda(b), _cuda(s), _cuda(c), 0.5).numpy(),
             cnnops.soft_nms(_cuda(b), _cuda(s), method="gaussian")[1].numpy(),
             cnnops.matrix_nms(_cuda(b), _cuda(s), _cuda(c))[1].numpy()) for _ in range(3)]
    for r in runs[1:]:
        for a, a0 in zip(r, runs[0]):
            np.testing.assert_array_equal(a, a0)


CUDA_FUNCS = {
    "nms": lambda b, s, **kw: cnnops.nms(b, s, 0.5, **kw),
    "batched_nms": lambda b, s, **kw: cnnops.batched_nms(b, s, _cuda(np.zeros(2, np.int64)), 0.5, **kw),
    "diou_nms": lambda b, s, **kw: cnnops.diou_nms(b, s, 0.5, **kw),
    "soft_nms": lambda b, s, **kw: cnnops.soft_nms(b, s, **kw),
    "matrix_nms": lambda b, s, **kw: cnnops.matrix_nms(b, s, **kw),
    "fast_nms": lambda b, s, **kw: cnnops.fast_nms(b, s, 0.5, **kw),
    "cluster_nms": lambda b, s, **kw: cnnops.cluster_nms(b, s, 0.5, **kw),
}


@pytest.mark.cuda
@pytest.mark.parametrize("name", list(FUNCS))
@pytest.mark.parametrize("case", [c for c in BAD if c[0] != "not an array"], ids=[c[0] for c in BAD][:-1])
def test_cuda_bad_boxes_and_scores_same_errors(name, case):
    # the values of CUDA arrays are checked by a kernel; the message names the same box and values
    _, call, exc, msg = case
    b, s = _good()
    with pytest.raises(exc) as want:
        call(FUNCS[name], b, s)
    with pytest.raises(exc) as got:
        call(lambda bb, ss, **kw: CUDA_FUNCS[name](_cuda(bb), _cuda(ss), **kw), b, s)
    assert str(got.value) == str(want.value)


@pytest.mark.cuda
def test_cuda_bad_values_name_the_first_bad_box(rng):
    b = make_boxes(rng, 1200, np.float32, "uniform")
    s = make_scores(rng, 1200)
    b[1000, 1] = np.nan
    b[700, [0, 2]] = b[700, [2, 0]]  # inverted: the first bad box
    s[1100] = np.inf
    for f in (lambda bb, ss: cnnops.nms(bb, ss, 0.5), lambda bb, ss: cnnops.soft_nms(bb, ss),
              lambda bb, ss: cnnops.batched_nms_padded(bb, ss, 0.5, 4)):
        batched = f.__code__.co_names[-1] == "batched_nms_padded"
        bb, ss = (b.reshape(3, 400, 4), s.reshape(3, 400)) if batched else (b, s)
        with pytest.raises(ValueError) as want:
            f(bb, ss)
        with pytest.raises(ValueError) as got:
            f(_cuda(bb), _cuda(ss))
        assert "box 700 = (" in str(want.value) and str(got.value) == str(want.value)
    b[700, [0, 2]] = b[700, [2, 0]]
    with pytest.raises(ValueError, match="nms: expected finite box coordinates, got a NaN or Inf in box 1000"):
        cnnops.nms(_cuda(b), _cuda(s), 0.5)
    b[1000, 1] = 1.0
    with pytest.raises(ValueError, match="nms: expected finite scores, got inf at index 1100"):
        cnnops.nms(_cuda(b), _cuda(s), 0.5)


@pytest.mark.cuda
def test_cuda_mixed_devices_and_streams(rng):
    b, s = _good()
    c = np.zeros(2, np.int64)
    with pytest.raises(TypeError, match="nms: expected scores on the boxes' device cuda:0, got cpu"):
        cnnops.nms(_cuda(b), s, 0.5)
    with pytest.raises(TypeError, match="soft_nms: expected scores on the boxes' device cpu, got cuda:0"):
        cnnops.soft_nms(b, _cuda(s))
    with pytest.raises(TypeError, match="batched_nms: expected idxs on the boxes' device cuda:0, got cpu"):
        cnnops.batched_nms(_cuda(b), _cuda(s), c, 0.5)
    with pytest.raises(TypeError, match="matrix_nms: expected idxs on the boxes' device cpu, got cuda:0"):
        cnnops.matrix_nms(b, s, _cuda(c))

    class S:
        cuda_stream = 0
    b = make_boxes(rng, 100, np.float32, "clustered")
    s = make_scores(rng, 100)
    want = cnnops.nms(b, s, 0.5)
    for f in (cnnops.nms, cnnops.fast_nms, cnnops.cluster_nms, cnnops.diou_nms):
        assert as_list(f(_cuda(b), _cuda(s), 0.5, stream=S()).numpy()) == as_list(f(b, s, 0.5)), f.__name__
    assert as_list(cnnops.nms(_cuda(b), _cuda(s), 0.5, stream=0).numpy()) == as_list(want)
    with pytest.raises(TypeError, match="stream"):
        cnnops.nms(_cuda(b), _cuda(s), 0.5, stream="fast")
    import inspect

    for name in [*FUNCS, "batched_nms_padded"]:
        assert "stream" in inspect.signature(getattr(cnnops, name)).parameters, name
    bd = _cuda(b)
    cnnops.soft_nms(bd, _cuda(s))
    np.testing.assert_array_equal(bd.numpy(), b)  # inputs untouched


@pytest.mark.cuda
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["uniform", "clustered"])
def test_cuda_nms_large(rng, kind):
    # 60,000 boxes: mask rows of 938 words in row blocks of at most 4096 rows, 80 classes
    n = 60000
    b = make_boxes(rng, n, np.float32, kind, span=1000.0)
    s = make_scores(rng, n)
    c = rng.integers(0, 80, n)
    bd, sd, cd = _cuda(b), _cuda(s), _cuda(c)
    _same_keep(cnnops.nms(bd, sd, 0.5), cnnops.nms(b, s, 0.5), "nms")
    _same_keep(cnnops.batched_nms(bd, sd, cd, 0.5), cnnops.batched_nms(b, s, c, 0.5), "batched")
    _same_keep(cnnops.nms(bd, sd, 0.7, 0.2, 500), cnnops.nms(b, s, 0.7, 0.2, 500), "nms with a cap")


@pytest.mark.cuda
@pytest.mark.slow
def test_cuda_nms_one_million_boxes_in_bounded_memory(rng):
    # torchvision's int mask index overflows near 370k boxes; here the mask of 1M boxes is built in
    # row blocks within the budget (256 MiB), and the keep list is the CPU kernel's
    if cnnops.cuda.is_emulated():
        pytest.skip("1M boxes take too long on the emulator (N^2 / 2 pair tests on 2 cores); a GPU runs this")
    n = 1_000_000
    b = make_boxes(rng, n, np.float32, "clustered", span=4000.0)
    s = make_scores(rng, n)
    bd, sd = _cuda(b), _cuda(s)
    before = cnnops.cuda.memory_reserved()
    keep = cnnops.nms(bd, sd, 0.5)
    grew = cnnops.cuda.memory_reserved() - before
    _same_keep(keep, cnnops.nms(b, s, 0.5), "1M boxes")
    assert grew < 600 * 2**20, f"{grew} bytes reserved for 1M boxes"


@pytest.mark.cuda
def test_cuda_fast_and_matrix_nms_over_row_chunks(rng):
    # 2600 columns: the rows are split into 3 chunks whose results are folded per column
    n = 2600
    b = make_boxes(rng, n, np.float64, "clustered", span=300.0)
    s = make_scores(rng, n, np.float64)
    c = rng.integers(0, 3, n)
    bd, sd, cd = _cuda(b), _cuda(s), _cuda(c)
    _same_keep(cnnops.fast_nms(bd, sd, 0.5), cnnops.fast_nms(b, s, 0.5), "fast")
    _same_keep(cnnops.fast_nms(bd, sd, 0.5, cd, 0.3), cnnops.fast_nms(b, s, 0.5, c, 0.3), "fast by class")
    for method, idxs, idxs_d in (("gaussian", None, None), ("linear", c, cd)):
        k, d = cnnops.matrix_nms(b, s, idxs, method, score_threshold=0.05)
        kd, dd = cnnops.matrix_nms(bd, sd, idxs_d, method, score_threshold=0.05)
        _same_keep(kd, k, f"matrix {method}")
        _same_scores(dd, d, np.float64, f"matrix {method}")


@pytest.mark.cuda
@pytest.mark.parametrize("method", ["linear", "gaussian"])
def test_cuda_soft_nms_drops_boxes_from_its_live_list(rng, method):
    # thousands of boxes whose scores decay below score_threshold: the live list is compacted
    # (stably) several times, and the selections stay the CPU's
    n = 4000
    b = make_boxes(rng, n, np.float32, "clustered", span=300.0)
    s = make_scores(rng, n)
    k, d = cnnops.soft_nms(b, s, 0.3, 0.5, 0.2, method)
    kd, dd = cnnops.soft_nms(_cuda(b), _cuda(s), 0.3, 0.5, 0.2, method)
    assert len(k) < n // 4, len(k)  # most boxes were dropped, not selected
    _same_keep(kd, k, f"soft {method}")
    _same_scores(dd, d, np.float32, f"soft {method}")
