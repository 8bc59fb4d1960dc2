"""Tests of the box utilities and the IoU family (cnnops.boxes) against the float64 references in
tests/reference.py, its transcriptions of torchvision's formulas (where eps enters each term),
central finite differences, and torchvision (when installed).

Tolerances: relative error below 1e-6 in float32 (boxes of size ~10 at coordinates ~30: a few
ulps of the coordinates) and 1e-12 in float64; gradients vs finite differences below 1e-6."""
from __future__ import annotations

import numpy as np
import pytest

import cnnops
from reference import (box_area_ref, box_convert_ref, box_loss_grad_ref, box_loss_ref, box_pairwise_ref, rel_err,
                       sort_corners_ref, tv_box_loss_ref, tv_box_pairwise_ref)
from testing import BOX_TOL, DTYPE_IDS, DTYPES, BoxTester, poisoned_outputs, rand_boxes

TOL = BOX_TOL
FORMATS = ["xyxy", "xywh", "cxcywh"]
KINDS = ["iou", "giou", "diou", "ciou"]
PAIRWISE = {"iou": cnnops.box_iou, "giou": cnnops.generalized_box_iou, "diou": cnnops.distance_box_iou,
            "ciou": cnnops.complete_box_iou}
LOSS = {"iou": cnnops.iou_loss, "giou": cnnops.giou_loss, "diou": cnnops.diou_loss, "ciou": cnnops.ciou_loss}
LOSS_BACKWARD = {"iou": cnnops.iou_loss_backward, "giou": cnnops.giou_loss_backward,
                 "diou": cnnops.diou_loss_backward, "ciou": cnnops.ciou_loss_backward}
REDUCTIONS = ["none", "mean", "sum"]


def tol(dtype):
    return TOL[np.dtype(dtype).type]


# ----------------------------------------------------------------------------- utilities


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("in_fmt", FORMATS)
@pytest.mark.parametrize("out_fmt", FORMATS)
def test_box_convert_matches_reference(rng, dtype, in_fmt, out_fmt):
    b = rand_boxes(rng, 23, np.float64)
    src = box_convert_ref(b, "xyxy", in_fmt).astype(dtype)
    out = cnnops.box_convert(src, in_fmt, out_fmt)
    assert out.dtype == dtype and out.shape == (23, 4)
    assert rel_err(out, box_convert_ref(src.astype(np.float64), in_fmt, out_fmt)) < tol(dtype)


@pytest.mark.parametrize("in_fmt", FORMATS)
@pytest.mark.parametrize("out_fmt", FORMATS)
def test_box_convert_round_trip(rng, in_fmt, out_fmt):
    b = rand_boxes(rng, 11)
    src = box_convert_ref(b, "xyxy", in_fmt)
    back = cnnops.box_convert(cnnops.box_convert(src, in_fmt, out_fmt), out_fmt, in_fmt)
    np.testing.assert_allclose(back, src, rtol=0, atol=1e-12)


@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_box_area(rng, dtype, offset):
    b = rand_boxes(rng, 31, dtype, degenerate=3)
    out = cnnops.box_area(b, offset=offset)
    assert out.shape == (31,) and out.dtype == dtype
    assert rel_err(out, box_area_ref(b.astype(np.float64), offset)) < tol(dtype)
    assert out[0] == offset * (b[0, 3] - b[0, 1] + offset)  # zero width


def test_clip_boxes_to_image(rng):
    b = rng.uniform(-10, 50, (29, 4))
    b[:, 2:] = b[:, :2] + rng.uniform(0, 20, (29, 2))
    out = cnnops.clip_boxes_to_image(b, (17, 23))
    ref = b.copy()
    ref[:, 0::2] = np.clip(ref[:, 0::2], 0, 23)
    ref[:, 1::2] = np.clip(ref[:, 1::2], 0, 17)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("offset", [0, 1])
def test_remove_small_boxes(rng, offset):
    b = rand_boxes(rng, 41, degenerate=4)
    keep = cnnops.remove_small_boxes(b, 4.0, offset=offset)
    w = b[:, 2] - b[:, 0] + offset
    h = b[:, 3] - b[:, 1] + offset
    ref = np.nonzero((w >= 4.0) & (h >= 4.0))[0]
    assert keep.dtype == np.int64
    np.testing.assert_array_equal(keep, ref)
    assert 0 < len(ref) < 41  # the case exercises both outcomes


# ----------------------------------------------------------------------------- pairwise


@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_pairwise_matches_reference(kind, dtype, offset, device):
    BoxTester(kind).pairwise(13, 17).degenerate(3, 2).offset(offset).dtype(dtype).test(device)


@pytest.mark.parametrize("kind", KINDS)
def test_pairwise_wide_rows_both_simd_levels(rng, kind, portable_simd):
    # rows longer than one SIMD block with a ragged tail; portable kernels here, auto level below
    b1 = rand_boxes(rng, 7, np.float32, degenerate=1)
    b2 = rand_boxes(rng, 149, np.float32, degenerate=5)
    port = PAIRWISE[kind](b1, b2)
    cnnops.set_simd_level("avx2")
    fast = PAIRWISE[kind](b1, b2)
    ref = box_pairwise_ref(b1.astype(np.float64), b2.astype(np.float64), kind)
    assert rel_err(port, ref) < 1e-5 and rel_err(fast, ref) < 1e-5


def test_degenerate_boxes_give_zero_not_nan():
    pt = np.array([[3.0, 3.0, 3.0, 3.0]])
    line = np.array([[1.0, 2.0, 5.0, 2.0]])
    normal = np.array([[0.0, 0.0, 4.0, 4.0]])
    for a, b in [(pt, pt), (pt, normal), (line, line), (line, normal)]:
        for kind in KINDS:
            assert PAIRWISE[kind](a, b)[0, 0] == PAIRWISE[kind](a, b)[0, 0]  # not NaN
        assert cnnops.box_iou(a, b)[0, 0] == 0.0
        for kind in KINDS:
            for eps in (0.0, 1e-7):
                loss = LOSS[kind](a, b, eps=eps)
                assert np.isfinite(loss).all()
                g1, g2 = LOSS_BACKWARD[kind](np.ones(1), a, b, eps=eps)
                assert np.isfinite(g1).all() and np.isfinite(g2).all()
    # two identical point boxes: every penalty's denominator is 0 -> every metric is 0
    for kind in KINDS:
        assert PAIRWISE[kind](pt, pt)[0, 0] == 0.0


@pytest.mark.parametrize("kind", KINDS)
def test_empty_inputs(kind):
    e = np.zeros((0, 4))
    b = np.array([[0.0, 0.0, 1.0, 1.0]])
    assert PAIRWISE[kind](e, b).shape == (0, 1)
    assert PAIRWISE[kind](b, e).shape == (1, 0)
    assert LOSS[kind](e, e).shape == (0,)
    assert LOSS[kind](e, e, reduction="mean") == 0.0
    assert LOSS[kind](e, e, reduction="sum") == 0.0
    g1, g2 = LOSS_BACKWARD[kind](np.zeros(0), e, e)
    assert g1.shape == (0, 4) and g2.shape == (0, 4)
    keep = cnnops.remove_small_boxes(e, 1.0)
    assert keep.shape == (0,) and keep.dtype == np.int64
    assert cnnops.box_area(e).shape == (0,)
    assert cnnops.box_convert(e, "xyxy", "cxcywh").shape == (0, 4)


# ----------------------------------------------------------------------------- losses


@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_loss_matches_reference(kind, dtype, reduction, offset, device):
    BoxTester(kind).loss(19, reduction).degenerate(2, 1).offset(offset).dtype(dtype).test(device)


@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_loss_backward_matches_reference(kind, reduction, offset, device):
    BoxTester(kind).loss(7, reduction).offset(offset).dtype(np.float64).test(device)


@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_loss_backward_vs_finite_differences(rng, kind, reduction, offset):
    b1 = rand_boxes(rng, 7)
    b2 = rand_boxes(rng, 7)
    b2[:3] = b1[:3] + rng.uniform(-2, 2, (3, 4))  # overlapping pairs
    b2[:3, 2:] = np.maximum(b2[:3, 2:], b2[:3, :2] + 0.5)
    go = rng.standard_normal(7) if reduction == "none" else np.array(1.7)
    g1, g2 = LOSS_BACKWARD[kind](go, b1, b2, reduction=reduction, offset=offset)
    r1, r2 = box_loss_grad_ref(b1, b2, kind, reduction, 1e-7, offset, go if reduction == "none" else 1.7)
    assert rel_err(g1, r1) < 1e-6 and rel_err(g2, r2) < 1e-6
    # and directly vs central differences of cnnops' own forward (IoU, GIoU, DIoU: no frozen term)
    if kind != "ciou":
        h = 1e-6
        k = (2, 1)
        bp, bm = b1.copy(), b1.copy()
        bp[k] += h
        bm[k] -= h
        w = go if reduction == "none" else 1.7
        fd = (np.sum(w * LOSS[kind](bp, b2, reduction=reduction, offset=offset))
              - np.sum(w * LOSS[kind](bm, b2, reduction=reduction, offset=offset))) / (2 * h)
        assert abs(fd - g1[k]) < 1e-6 * max(1.0, abs(fd))


# ----------------------------------------------------------------------------- eps placement
#
# Small boxes (areas ~1) and large eps make every eps term visible; the references are
# tests/reference.py's transcriptions of torchvision's formulas (tv_box_loss_ref,
# tv_box_pairwise_ref), computed in the boxes' dtype.

EPS_VALUES = [0.0, 1e-7, 0.01, 0.5, 3.0]


def small_boxes(rng, n, dtype=np.float64):
    xy = rng.uniform(0, 2, (n, 2))
    wh = rng.uniform(0.2, 1.5, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)


def assert_close_where_finite(out, ref, dtype):
    """out equals torchvision's ref wherever ref is finite (CIoU at eps = 0 gives 0 / 0 for
    identical boxes there; cnnops counts that ratio as 0) and is finite everywhere."""
    assert ref.dtype == dtype and out.dtype == dtype
    fin = np.isfinite(ref)
    assert fin.mean() > 0.5 and np.isfinite(out).all()
    np.testing.assert_allclose(out[fin], ref[fin], rtol=tol(dtype) * 4, atol=tol(dtype) * 4)


@pytest.mark.parametrize("eps", EPS_VALUES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_loss_eps_matches_torchvision_formulas(rng, kind, dtype, eps):
    b1, b2 = small_boxes(rng, 41, dtype), small_boxes(rng, 41, dtype)
    b2[:5] = b1[:5]  # identical pairs: v = 0, alpha's denominator is 1 - IoU + eps
    out = LOSS[kind](b1, b2, eps=eps)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = tv_box_loss_ref(b1, b2, kind, eps)
    assert_close_where_finite(out, ref, dtype)
    if np.isfinite(ref).all():
        np.testing.assert_allclose(LOSS[kind](b1, b2, reduction="sum", eps=eps), ref.astype(np.float64).sum(),
                                   rtol=tol(dtype) * 10)


def test_ciou_loss_eps_reaches_alpha_only(rng):
    # torchvision's complete_box_iou_loss: the union and c^2 carry 1e-7 whatever eps is, so eps
    # only changes alpha = v / (1 - IoU + v + eps): the loss moves by (alpha(eps) - alpha(1e-7)) v
    b1, b2 = small_boxes(rng, 23), small_boxes(rng, 23)
    diou = cnnops.diou_loss(b1, b2)  # default eps 1e-7 in the union and c^2
    iou = 1 - cnnops.iou_loss(b1, b2)
    w1, h1 = b1[:, 2] - b1[:, 0], b1[:, 3] - b1[:, 1]
    w2, h2 = b2[:, 2] - b2[:, 0], b2[:, 3] - b2[:, 1]
    v = 4 / np.pi**2 * (np.arctan(w2 / h2) - np.arctan(w1 / h1)) ** 2
    for eps in (0.5, 3.0):
        np.testing.assert_allclose(cnnops.ciou_loss(b1, b2, eps=eps), diou + v / (1 - iou + v + eps) * v, rtol=1e-12)
        # a placement with eps in the union or in c^2 as well would change the DIoU part too
        assert not np.allclose(cnnops.ciou_loss(b1, b2, eps=eps) - v / (1 - iou + v + eps) * v,
                               cnnops.diou_loss(b1, b2, eps=eps))


@pytest.mark.parametrize("eps", EPS_VALUES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_pairwise_eps_matches_torchvision_formulas(rng, kind, dtype, eps):
    b1, b2 = small_boxes(rng, 13, dtype), small_boxes(rng, 9, dtype)
    b2[:3] = b1[:3]
    out = PAIRWISE[kind](b1, b2, eps=eps) if kind in ("diou", "ciou") else PAIRWISE[kind](b1, b2)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = tv_box_pairwise_ref(b1, b2, kind, eps)
    assert_close_where_finite(out, ref, dtype)


@pytest.mark.parametrize("eps", [0.0, 0.5, 3.0])
@pytest.mark.parametrize("kind", KINDS)
def test_loss_backward_eps_vs_finite_differences(rng, kind, eps):
    b1, b2 = small_boxes(rng, 9), small_boxes(rng, 9)
    go = rng.standard_normal(9)
    # the loop reference places eps as the transcription of torchvision does
    np.testing.assert_allclose(box_loss_ref(b1, b2, kind, "none", eps), tv_box_loss_ref(b1, b2, kind, eps),
                               rtol=1e-13, atol=1e-13)
    g1, g2 = LOSS_BACKWARD[kind](go, b1, b2, eps=eps)
    r1, r2 = box_loss_grad_ref(b1, b2, kind, "none", eps, 0, go)
    assert rel_err(g1, r1) < 1e-6 and rel_err(g2, r2) < 1e-6
    g1s, g2s = LOSS_BACKWARD[kind](1.0, b1.astype(np.float32), b2.astype(np.float32), reduction="sum", eps=eps)
    r1s, r2s = box_loss_grad_ref(b1, b2, kind, "sum", eps, 0, 1.0)
    assert rel_err(g1s, r1s) < 1e-5 and rel_err(g2s, r2s) < 1e-5


@pytest.mark.parametrize("kind", KINDS)
def test_loss_backward_float32_close_to_float64(rng, kind):
    b1 = rand_boxes(rng, 53)
    b2 = rand_boxes(rng, 53)
    g64 = LOSS_BACKWARD[kind](np.ones(53), b1, b2)
    g32 = LOSS_BACKWARD[kind](np.ones(53, np.float32), b1.astype(np.float32), b2.astype(np.float32))
    for a, b in zip(g32, g64):
        assert a.dtype == np.float32
        assert rel_err(a, b) < 1e-5


def test_loss_scalar_grad_output_forms(rng):
    b1, b2 = rand_boxes(rng, 5), rand_boxes(rng, 5)
    a = cnnops.giou_loss_backward(2.0, b1, b2, reduction="sum")
    b = cnnops.giou_loss_backward(np.array([2.0]), b1, b2, reduction="sum")
    c = cnnops.giou_loss_backward(np.full(5, 2.0), b1, b2, reduction="none")
    m = cnnops.giou_loss_backward(np.array(10.0), b1, b2, reduction="mean")
    for x, y, z, w in zip(a, b, c, m):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_allclose(x, z, rtol=1e-15)
        np.testing.assert_allclose(x, w, rtol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_thread_count_determinism(rng, kind, threads):
    b1 = rand_boxes(rng, 9001, np.float32)
    b2 = rand_boxes(rng, 9001, np.float32)
    res = []
    for n in (1, 2, 3):
        threads(n)
        res.append((LOSS[kind](b1, b2, reduction="sum"), LOSS[kind](b1, b2, reduction="mean"),
                    *LOSS_BACKWARD[kind](np.float32(1.0), b1, b2, reduction="mean"),
                    PAIRWISE[kind](b1[:97], b2[:61])))
    for r in res[1:]:
        for x, y in zip(res[0], r):
            np.testing.assert_array_equal(x, y)


# ----------------------------------------------------------------------------- canonicalize


@pytest.mark.parametrize("kind", KINDS)
def test_inverted_corners(rng, kind):
    b1 = rand_boxes(rng, 6)
    b2 = rand_boxes(rng, 6)
    inv = b1.copy()
    inv[1, [0, 2]] = inv[1, [2, 0]]  # x swapped
    inv[4, [1, 3]] = inv[4, [3, 1]]  # y swapped
    inv[5] = inv[5, [2, 3, 0, 1]]  # both
    keep = inv.copy()
    with pytest.raises(ValueError, match=rf"{PAIRWISE[kind].__name__}: expected x1 <= x2 and y1 <= y2 in boxes1"):
        PAIRWISE[kind](inv, b2)
    with pytest.raises(ValueError, match="boxes2.*canonicalize=True.*row 1"):
        LOSS[kind](b2, inv)
    with pytest.raises(ValueError, match="canonicalize"):
        LOSS_BACKWARD[kind](np.ones(6), inv, b2)
    np.testing.assert_array_equal(PAIRWISE[kind](inv, b2, canonicalize=True), PAIRWISE[kind](b1, b2))
    np.testing.assert_array_equal(LOSS[kind](inv, b2, canonicalize=True), LOSS[kind](b1, b2))
    g_inv = LOSS_BACKWARD[kind](np.ones(6), inv, b2, canonicalize=True)[0]
    g = LOSS_BACKWARD[kind](np.ones(6), b1, b2)[0]
    # the gradient goes back to the coordinates as given: swapped columns swap back
    np.testing.assert_array_equal(g_inv[0], g[0])
    np.testing.assert_array_equal(g_inv[1], g[1, [2, 1, 0, 3]])
    np.testing.assert_array_equal(g_inv[4], g[4, [0, 3, 2, 1]])
    np.testing.assert_array_equal(g_inv[5], g[5, [2, 3, 0, 1]])
    r1, _ = box_loss_grad_ref(inv, b2, kind)
    assert rel_err(g_inv, r1) < 1e-6
    np.testing.assert_array_equal(inv, keep)  # caller's array untouched


def test_inverted_corners_utilities():
    inv = np.array([[4.0, 1.0, 2.0, 3.0]])
    for f in (lambda b, **k: cnnops.box_area(b, **k), lambda b, **k: cnnops.remove_small_boxes(b, 0.5, **k),
              lambda b, **k: cnnops.clip_boxes_to_image(b, (10, 10), **k),
              lambda b, **k: cnnops.box_convert(b, "xyxy", "xywh", **k)):
        with pytest.raises(ValueError, match="x1 <= x2"):
            f(inv)
    assert cnnops.box_area(inv, canonicalize=True)[0] == 4.0
    np.testing.assert_array_equal(cnnops.box_convert(inv, "xyxy", "xywh", canonicalize=True), [[2.0, 1.0, 2.0, 2.0]])
    np.testing.assert_array_equal(cnnops.clip_boxes_to_image(inv, (10, 10), canonicalize=True), [[2, 1, 4, 3]])
    with pytest.raises(ValueError, match=r"box_convert: expected w >= 0 and h >= 0"):
        cnnops.box_convert(np.array([[1.0, 1.0, -2.0, 3.0]]), "xywh", "xyxy")
    np.testing.assert_array_equal(
        cnnops.box_convert(np.array([[1.0, 1.0, -2.0, 3.0]]), "xywh", "xyxy", canonicalize=True), [[-1, 1, 1, 4]])
    assert sort_corners_ref(inv[0]) == (2.0, 1.0, 4.0, 3.0)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rejected_everywhere(bad):
    b = np.array([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]])
    nb = b.copy()
    nb[1, 2] = bad
    calls = [
        ("box_iou", lambda: cnnops.box_iou(nb, b)),
        ("generalized_box_iou", lambda: cnnops.generalized_box_iou(b, nb)),
        ("distance_box_iou", lambda: cnnops.distance_box_iou(nb, b)),
        ("complete_box_iou", lambda: cnnops.complete_box_iou(nb, b, canonicalize=True)),
        ("giou_loss", lambda: cnnops.giou_loss(nb, b)),
        ("ciou_loss_backward", lambda: cnnops.ciou_loss_backward(np.ones(2), b, nb)),
        ("box_area", lambda: cnnops.box_area(nb)),
        ("box_convert", lambda: cnnops.box_convert(nb, "cxcywh", "xyxy")),
        ("clip_boxes_to_image", lambda: cnnops.clip_boxes_to_image(nb, (5, 5))),
        ("remove_small_boxes", lambda: cnnops.remove_small_boxes(nb, 1.0)),
    ]
    for name, call in calls:
        with pytest.raises(ValueError, match=rf"^{name}: expected finite coordinates in boxes[12]?, got row 1"):
            call()


def test_bad_arguments():
    b = np.array([[0.0, 0.0, 2.0, 2.0]])
    with pytest.raises(ValueError, match=r"box_iou: expected boxes1 with shape \(N, 4\), got \(3,\)"):
        cnnops.box_iou(np.zeros(3), b)
    with pytest.raises(ValueError, match=r"giou_loss: expected boxes2 with shape \(\.\.\., 4\), got \(1, 5\)"):
        cnnops.giou_loss(b, np.zeros((1, 5)))
    with pytest.raises(ValueError, match=r"box_area: expected boxes with shape \(N, 4\), got \(2, 4, 1\)"):
        cnnops.box_area(np.zeros((2, 4, 1)))
    with pytest.raises(TypeError, match="box_iou: expected boxes1 with dtype float32 or float64, got int64"):
        cnnops.box_iou(np.zeros((1, 4), np.int64), b)
    with pytest.raises(TypeError, match="box_iou: expected boxes1 and boxes2 with the same dtype"):
        cnnops.box_iou(b.astype(np.float32), b)
    with pytest.raises(TypeError, match="box_iou: expected `boxes1` to be an array supporting DLPack"):
        cnnops.box_iou([[0, 0, 1, 1]], b)
    with pytest.raises(ValueError,
                       match=r"diou_loss: expected boxes1 and boxes2 with the same shape, got \(1, 4\) and \(2, 4\)"):
        cnnops.diou_loss(b, np.concatenate([b, b]))
    with pytest.raises(ValueError, match=r"diou_loss_backward: expected grad_output with shape \(2, 3\) for "
                                         r"reduction 'none', got \(6,\)"):
        cnnops.diou_loss_backward(np.ones(6), np.zeros((2, 3, 4)), np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="box_convert: expected in_fmt one of 'xyxy', 'xywh', 'cxcywh', got 'yxyx'"):
        cnnops.box_convert(b, "yxyx", "xyxy")
    with pytest.raises(ValueError, match="box_convert: expected out_fmt one of"):
        cnnops.box_convert(b, "xyxy", None)
    with pytest.raises(ValueError, match="iou_loss: expected reduction 'none', 'mean' or 'sum', got 'avg'"):
        cnnops.iou_loss(b, b, reduction="avg")
    with pytest.raises(ValueError, match="box_iou: expected offset 0 or 1, got 2"):
        cnnops.box_iou(b, b, offset=2)
    with pytest.raises(ValueError, match="box_area: expected offset 0 or 1, got 0.5"):
        cnnops.box_area(b, offset=0.5)
    with pytest.raises(ValueError, match="ciou_loss: expected eps a finite number >= 0, got -1"):
        cnnops.ciou_loss(b, b, eps=-1)
    with pytest.raises(ValueError, match="distance_box_iou: expected eps a finite number >= 0, got nan"):
        cnnops.distance_box_iou(b, b, eps=float("nan"))
    with pytest.raises(ValueError, match="complete_box_iou: expected eps a finite number >= 0, got an int too"):
        cnnops.complete_box_iou(b, b, eps=10**400)
    with pytest.raises(ValueError, match="remove_small_boxes: expected min_size as a finite number, got an int too"):
        cnnops.remove_small_boxes(b, 10**400)
    with pytest.raises(ValueError, match="clip_boxes_to_image: expected size as a finite number, got an int too"):
        cnnops.clip_boxes_to_image(b, (10**400, 5))
    with pytest.raises(ValueError, match="ciou_loss_backward: expected grad_output as a finite number, got an int"):
        cnnops.ciou_loss_backward(10**400, b, b, reduction="sum")
    with pytest.raises(TypeError, match=r"clip_boxes_to_image: expected size as \(height, width\)"):
        cnnops.clip_boxes_to_image(b, 5)
    with pytest.raises(ValueError, match="clip_boxes_to_image: expected size .* finite and >= 0"):
        cnnops.clip_boxes_to_image(b, (-1, 5))
    with pytest.raises(TypeError, match="remove_small_boxes: expected min_size as a number"):
        cnnops.remove_small_boxes(b, "1")
    with pytest.raises(ValueError, match=r"giou_loss_backward: expected grad_output with shape \(1,\) for reduction"):
        cnnops.giou_loss_backward(np.ones(2), b, b)
    with pytest.raises(ValueError, match="giou_loss_backward: expected grad_output with one element for reduction"):
        cnnops.giou_loss_backward(np.ones(2), b, b, reduction="sum")
    with pytest.raises(ValueError, match=r"giou_loss_backward: expected grad_output with shape \(1,\) for "
                                         r"reduction 'none', got a scalar"):
        cnnops.giou_loss_backward(1.0, b, b)
    with pytest.raises(TypeError, match="giou_loss_backward: expected grad_output with the boxes' dtype float64"):
        cnnops.giou_loss_backward(np.ones(1, np.float32), b, b)


def test_check_helpers_for_nms():
    from cnnops.boxes import check_boxes, check_format

    b = np.array([[0.0, 0.0, 2.0, 2.0]])
    assert check_boxes(b, "nms") is b
    with pytest.raises(ValueError, match=r"^nms: expected finite coordinates in boxes, got row 0"):
        check_boxes(np.array([[0.0, np.nan, 1.0, 1.0]]), "nms")
    with pytest.raises(ValueError, match=r"^nms: expected x1 <= x2"):
        check_boxes(np.array([[2.0, 0.0, 1.0, 1.0]]), "nms")
    check_boxes(np.array([[2.0, 0.0, 1.0, 1.0]]), "nms", canonicalize=True)
    with pytest.raises(ValueError, match=r"^batched_nms: expected boxes with shape \(N, 4\), got \(2, 2\)"):
        check_boxes(np.zeros((2, 2)), "batched_nms")
    with pytest.raises(ValueError, match=r"^nms: expected format one of"):
        check_format("xyzw", "nms")


# ----------------------------------------------------------------------------- layouts and array types


def test_non_contiguous_inputs(rng):
    big = rand_boxes(rng, 30)
    strided = big[::3]  # row stride 12
    fortran = np.asfortranarray(rand_boxes(rng, 10))
    keep_big, keep_f = big.copy(), fortran.copy()
    for kind in KINDS:
        np.testing.assert_array_equal(PAIRWISE[kind](strided, fortran),
                                      PAIRWISE[kind](np.ascontiguousarray(strided), np.ascontiguousarray(fortran)))
        np.testing.assert_array_equal(LOSS[kind](strided, fortran),
                                      LOSS[kind](np.ascontiguousarray(strided), np.ascontiguousarray(fortran)))
        go = np.ones(20)[::2]
        for x, y in zip(LOSS_BACKWARD[kind](go, strided, fortran),
                        LOSS_BACKWARD[kind](np.ones(10), np.ascontiguousarray(strided), np.ascontiguousarray(fortran))):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(cnnops.box_convert(strided, "xyxy", "cxcywh"),
                                  box_convert_ref(strided, "xyxy", "cxcywh"))
    np.testing.assert_array_equal(big, keep_big)
    np.testing.assert_array_equal(fortran, keep_f)


def test_torch_in_torch_out(rng):
    torch = pytest.importorskip("torch")
    b1 = torch.from_numpy(rand_boxes(rng, 8)).requires_grad_()
    b2 = torch.from_numpy(rand_boxes(rng, 8))
    out = cnnops.box_iou(b1, b2)
    assert isinstance(out, torch.Tensor) and out.shape == (8, 8) and out.dtype == torch.float64
    loss = cnnops.ciou_loss(b1, b2, reduction="mean")
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0
    g1, g2 = cnnops.ciou_loss_backward(torch.tensor(1.0, dtype=torch.float64), b1, b2, reduction="mean")
    assert isinstance(g1, torch.Tensor) and g1.shape == (8, 4)
    keep = cnnops.remove_small_boxes(b2, 3.0)
    assert isinstance(keep, torch.Tensor) and keep.dtype == torch.int64
    assert isinstance(cnnops.box_convert(b2.float(), "xyxy", "xywh"), torch.Tensor)


# ----------------------------------------------------------------------------- torchvision


def _tv():
    pytest.importorskip("torch")
    return pytest.importorskip("torchvision.ops")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_utilities_match_torchvision(rng, dtype):
    tv = _tv()
    import torch

    b = torch.from_numpy(rand_boxes(rng, 37, dtype))
    for i in FORMATS:
        for o in FORMATS:
            src = tv.box_convert(b, "xyxy", i)
            assert rel_err(cnnops.box_convert(src, i, o), tv.box_convert(src, i, o)) < tol(dtype)
    np.testing.assert_allclose(cnnops.box_area(b).numpy(), tv.box_area(b).numpy(), rtol=tol(dtype))
    np.testing.assert_array_equal(cnnops.clip_boxes_to_image(b, (20, 30)).numpy(),
                                  tv.clip_boxes_to_image(b, (20, 30)).numpy())
    np.testing.assert_array_equal(cnnops.remove_small_boxes(b, 7.5).numpy(), tv.remove_small_boxes(b, 7.5).numpy())


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_pairwise_matches_torchvision(rng, dtype):
    tv = _tv()
    import torch

    b1 = torch.from_numpy(rand_boxes(rng, 29, dtype))
    b2 = torch.from_numpy(rand_boxes(rng, 31, dtype))
    pairs = [(cnnops.box_iou, tv.box_iou), (cnnops.generalized_box_iou, tv.generalized_box_iou),
             (cnnops.distance_box_iou, tv.distance_box_iou), (cnnops.complete_box_iou, tv.complete_box_iou)]
    for ours, theirs in pairs:
        assert rel_err(ours(b1, b2), theirs(b1, b2)) < tol(dtype) * 10


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_losses_and_gradients_match_torchvision_autograd(rng, dtype, reduction):
    tv = _tv()
    import torch

    n = 43
    b1 = rand_boxes(rng, n, dtype)
    b2 = rand_boxes(rng, n, dtype)
    b2[: n // 2] = b1[: n // 2] + rng.uniform(-3, 3, (n // 2, 4)).astype(dtype)
    b2[:, 2:] = np.maximum(b2[:, 2:], b2[:, :2] + 0.5)
    pairs = [("giou", tv.generalized_box_iou_loss), ("diou", tv.distance_box_iou_loss),
             ("ciou", tv.complete_box_iou_loss)]
    for kind, theirs in pairs:
        t1 = torch.from_numpy(b1).requires_grad_()
        t2 = torch.from_numpy(b2).requires_grad_()
        ref = theirs(t1, t2, reduction=reduction, eps=1e-7)
        go = torch.from_numpy(rng.standard_normal(n).astype(dtype)) if reduction == "none" else torch.tensor(
            0.7, dtype=ref.dtype)
        ref.backward(go)
        out = LOSS[kind](b1, b2, reduction=reduction)
        g1, g2 = LOSS_BACKWARD[kind](go.numpy(), b1, b2, reduction=reduction)
        assert rel_err(out, ref.detach().numpy()) < tol(dtype) * 10
        assert rel_err(g1, t1.grad.numpy()) < tol(dtype) * 100
        assert rel_err(g2, t2.grad.numpy()) < tol(dtype) * 100


def test_tie_gradients_match_torchvision_autograd():
    # shared edges and equal corners: torch splits a min/max gradient half/half on a tie
    tv = _tv()
    import torch

    b1 = np.array([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 4.0, 3.0], [0.0, 0.0, 3.0, 3.0]])
    b2 = np.array([[0.0, 1.0, 2.0, 3.0], [1.0, 0.0, 4.0, 3.0], [0.0, 0.0, 3.0, 3.0]])
    for kind, theirs in [("giou", tv.generalized_box_iou_loss), ("diou", tv.distance_box_iou_loss),
                         ("ciou", tv.complete_box_iou_loss)]:
        t1 = torch.from_numpy(b1).requires_grad_()
        t2 = torch.from_numpy(b2).requires_grad_()
        theirs(t1, t2, reduction="sum").backward()
        g1, g2 = LOSS_BACKWARD[kind](1.0, b1, b2, reduction="sum")
        np.testing.assert_allclose(g1, t1.grad.numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(g2, t2.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_error_message_shows_the_row():
    b = np.array([[0.0, 0.0, 1.0, 1.0], [0.5, 0.25, np.inf, 3.0]])
    with pytest.raises(ValueError, match=r"got row 1 = \(0\.5, 0\.25, inf, 3\)$"):
        cnnops.box_area(b)


@pytest.mark.parametrize("kind", KINDS)
def test_losses_take_any_batch_shape(rng, kind):
    b1 = rand_boxes(rng, 15).reshape(3, 5, 4)
    b2 = rand_boxes(rng, 15).reshape(3, 5, 4)
    flat = LOSS[kind](b1.reshape(-1, 4), b2.reshape(-1, 4))
    out = LOSS[kind](b1, b2)
    assert out.shape == (3, 5)
    np.testing.assert_array_equal(out.reshape(-1), flat)
    go = rng.standard_normal((3, 5))
    g1, g2 = LOSS_BACKWARD[kind](go, b1, b2)
    f1, f2 = LOSS_BACKWARD[kind](go.reshape(-1), b1.reshape(-1, 4), b2.reshape(-1, 4))
    assert g1.shape == (3, 5, 4) and g2.shape == (3, 5, 4)
    np.testing.assert_array_equal(g1.reshape(-1, 4), f1)
    np.testing.assert_array_equal(g2.reshape(-1, 4), f2)
    one = LOSS[kind](b1[0, 0], b2[0, 0])  # a single pair (4,) -> 0-d, as torchvision
    assert one.shape == () and one == flat[0]
    assert LOSS[kind](b1, b2, reduction="sum") == pytest.approx(flat.sum(), rel=1e-14)


@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("kind", KINDS)
def test_random_inversions_offset_and_gradients(rng, kind, offset):
    # random corner swaps in both arguments, with the +1 convention: forward and gradient against
    # the reference (which sorts the corners itself) and its finite differences
    b1 = rand_boxes(rng, 9)
    b2 = b1 + rng.uniform(-4, 4, (9, 4))
    b2[:, 2:] = np.maximum(b2[:, 2:], b2[:, :2] + 0.5)
    for b in (b1, b2):
        sx = rng.random(9) < 0.5
        sy = rng.random(9) < 0.5
        b[sx] = b[sx][:, [2, 1, 0, 3]]
        b[sy] = b[sy][:, [0, 3, 2, 1]]
    out = LOSS[kind](b1, b2, offset=offset, canonicalize=True)
    assert rel_err(out, box_loss_ref(b1, b2, kind, "none", 1e-7, offset)) < 1e-12
    g1, g2 = LOSS_BACKWARD[kind](np.ones(9), b1, b2, offset=offset, canonicalize=True)
    r1, r2 = box_loss_grad_ref(b1, b2, kind, "none", 1e-7, offset)
    assert rel_err(g1, r1) < 1e-6 and rel_err(g2, r2) < 1e-6
    p = PAIRWISE[kind](b1, b2, offset=offset, canonicalize=True)
    assert rel_err(p, box_pairwise_ref(b1, b2, kind, offset)) < 1e-12


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_large_random_sweep_vs_torchvision(rng, dtype):
    tv = _tv()
    import torch

    for n, m in [(1, 1), (3, 257), (257, 3), (601, 499)]:
        b1 = torch.from_numpy(rand_boxes(rng, n, dtype, degenerate=0))
        b2 = torch.from_numpy(rand_boxes(rng, m, dtype, degenerate=0))
        for ours, theirs in [(cnnops.box_iou, tv.box_iou), (cnnops.generalized_box_iou, tv.generalized_box_iou),
                             (cnnops.distance_box_iou, tv.distance_box_iou),
                             (cnnops.complete_box_iou, tv.complete_box_iou)]:
            assert rel_err(ours(b1, b2), theirs(b1, b2)) < tol(dtype) * 10
    n = 50_000
    p = rand_boxes(rng, n, dtype)
    t = p + rng.uniform(-5, 5, (n, 4)).astype(dtype)
    t[:, 2:] = np.maximum(t[:, 2:], t[:, :2] + 0.5)
    for kind, theirs in [("giou", tv.generalized_box_iou_loss), ("diou", tv.distance_box_iou_loss),
                         ("ciou", tv.complete_box_iou_loss)]:
        t1 = torch.from_numpy(p).requires_grad_()
        t2 = torch.from_numpy(t).requires_grad_()
        ref = theirs(t1, t2, reduction="mean")
        ref.backward()
        g1, g2 = LOSS_BACKWARD[kind](1.0, p, t, reduction="mean")
        assert rel_err(LOSS[kind](p, t, reduction="mean"), ref.detach().numpy()) < tol(dtype) * 10
        assert rel_err(g1, t1.grad.numpy()) < tol(dtype) * 100
        assert rel_err(g2, t2.grad.numpy()) < tol(dtype) * 100


# ---- CUDA against the CPU kernels --------------------------------------------------------------------
# Random configurations (empty and single boxes, zero-area boxes, inverted corners with canonicalize,
# both offsets, several eps): the CUDA kernels run the same per-box and per-pair formulas as the CPU
# (ops/box_geom.h, no fused multiply-adds), so they agree within rounding with whatever CPU kernels
# run, and bit for bit with the portable ones wherever no library function (atan2) is involved; a
# reduced loss is summed in the CPU's order, and the backward is deterministic.

def _cuda(a):
    return None if a is None else cnnops.cuda.array(a)


def _host(a):
    return a.numpy() if isinstance(a, cnnops.Array) else a


def _close(got, want, dtype, what):
    got = _host(got)
    assert got.shape == np.shape(want) and got.dtype == np.asarray(want).dtype, f"{what}: {got.dtype} {got.shape}"
    assert rel_err(got, want) <= tol(dtype), what


def _cuda_box_case(rng, dtype):
    n, m = int(rng.choice([0, 1, 5, 33, 257])), int(rng.choice([0, 1, 7, 64, 300]))
    b1 = rand_boxes(rng, n, dtype, degenerate=min(n, 2))
    b2 = rand_boxes(rng, m, dtype, degenerate=min(m, 1))
    k = min(n, m)
    p2 = (b1[:k] + rng.uniform(-3, 3, (k, 4))).astype(dtype)  # loss pairs that overlap
    p2[:, 2:] = np.maximum(p2[:, 2:], p2[:, :2])
    canon = bool(rng.integers(2))
    if canon:  # some inverted corners
        for b in (b1, b2, p2):
            flip = rng.random(len(b)) < 0.3
            b[flip] = b[flip][:, [2, 1, 0, 3]]
    return b1, b2, p2, canon


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("seed", range(8))
def test_cuda_boxes_match_cpu_kernels(seed, dtype):
    rng = np.random.default_rng(4000 + seed)
    b1, b2, p2, canon = _cuda_box_case(rng, dtype)
    p1 = b1[: len(p2)]
    off, eps = int(rng.integers(2)), float(rng.choice([0.0, 1e-7, 0.5]))
    d1, d2, dp1, dp2 = _cuda(b1), _cuda(b2), _cuda(p1), _cuda(p2)
    what = f"n={len(b1)} m={len(b2)} offset={off} eps={eps} canonicalize={canon}"
    with poisoned_outputs():
        for fi in FORMATS:
            for fo in FORMATS:
                src = b1 if fi == "xyxy" else cnnops.box_convert(b1, "xyxy", fi, canonicalize=True)
                np.testing.assert_array_equal(_host(cnnops.box_convert(_cuda(src), fi, fo, canonicalize=canon)),
                                              cnnops.box_convert(src, fi, fo, canonicalize=canon))
        np.testing.assert_array_equal(_host(cnnops.box_area(d1, offset=off, canonicalize=canon)),
                                      cnnops.box_area(b1, offset=off, canonicalize=canon))
        np.testing.assert_array_equal(_host(cnnops.clip_boxes_to_image(d1, (12.5, 20), canonicalize=canon)),
                                      cnnops.clip_boxes_to_image(b1, (12.5, 20), canonicalize=canon))
        for ms in (0.0, 4.0, 9.5):
            np.testing.assert_array_equal(_host(cnnops.remove_small_boxes(d1, ms, offset=off, canonicalize=canon)),
                                          cnnops.remove_small_boxes(b1, ms, offset=off, canonicalize=canon))
        for kind in KINDS:
            kw = {"offset": off, "canonicalize": canon}
            if kind in ("diou", "ciou"):
                kw["eps"] = eps
            _close(PAIRWISE[kind](d1, d2, **kw), PAIRWISE[kind](b1, b2, **kw), dtype, f"{kind} pairwise {what}")
            for red in REDUCTIONS:
                kw = {"reduction": red, "eps": eps, "offset": off, "canonicalize": canon}
                _close(LOSS[kind](dp1, dp2, **kw), LOSS[kind](p1, p2, **kw), dtype, f"{kind} loss {red} {what}")
                go = rng.standard_normal(len(p1)).astype(dtype) if red == "none" else 0.7
                g = LOSS_BACKWARD[kind](go, p1, p2, **kw)
                gd = LOSS_BACKWARD[kind](_cuda(go) if red == "none" else go, dp1, dp2, **kw)
                _close(gd[0], g[0], dtype, f"{kind} grad1 {red} {what}")
                _close(gd[1], g[1], dtype, f"{kind} grad2 {red} {what}")


@pytest.mark.cuda
@pytest.mark.parametrize("kind", KINDS)
def test_cuda_reduced_losses_and_gradients_are_the_cpu_bits(rng, kind, portable_simd):
    # the per-pair values are the portable CPU kernels' (atan2 aside, which only the emulator shares
    # with the host), and the sum runs in the CPU's chunk order: the same bits, on every run
    n = 5000  # three chunks of kLossChunk pairs
    b1 = rand_boxes(rng, n)
    b2 = (b1 + rng.uniform(-4, 4, (n, 4))).astype(np.float64)
    b2[:, 2:] = np.maximum(b2[:, 2:], b2[:, :2] + 0.1)
    exact = kind != "ciou" or cnnops.cuda.is_emulated()
    for dtype in DTYPES:
        x1, x2 = b1.astype(dtype), b2.astype(dtype)
        d1, d2 = _cuda(x1), _cuda(x2)
        for red in REDUCTIONS:
            want = LOSS[kind](x1, x2, reduction=red)
            runs = [_host(LOSS[kind](d1, d2, reduction=red)) for _ in range(2)]
            np.testing.assert_array_equal(runs[1], runs[0])
            if exact:
                np.testing.assert_array_equal(runs[0], want, err_msg=f"{kind} {red} {dtype.__name__}")
            else:
                _close(runs[0], want, dtype, f"{kind} {red}")
            go = np.ones(n, dtype) if red == "none" else 1.5
            grads = [LOSS_BACKWARD[kind](_cuda(go) if red == "none" else go, d1, d2, reduction=red) for _ in range(2)]
            g = LOSS_BACKWARD[kind](go, x1, x2, reduction=red)
            for k in range(2):
                np.testing.assert_array_equal(_host(grads[1][k]), _host(grads[0][k]))
                if exact:
                    np.testing.assert_array_equal(_host(grads[0][k]), g[k])
                else:
                    _close(grads[0][k], g[k], dtype, f"{kind} grad {red}")


@pytest.mark.cuda
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, "inverted"])
def test_cuda_bad_values_give_the_cpu_errors(rng, bad):
    # the values of CUDA arrays are checked by a kernel: the same first bad row, the same message
    b = rand_boxes(rng, 700)
    nb = b.copy()
    if bad == "inverted":
        nb[[430, 600]] = nb[[430, 600]][:, [0, 3, 2, 1]]
    else:
        nb[430, 2] = bad
        nb[600, 0] = bad
    calls = [
        lambda x, y: cnnops.box_iou(x, y), lambda x, y: cnnops.generalized_box_iou(y, x),
        lambda x, y: cnnops.complete_box_iou(x, y, offset=1), lambda x, y: cnnops.giou_loss(x, y),
        lambda x, y: cnnops.ciou_loss_backward(_cuda(np.ones(700)) if isinstance(x, cnnops.Array) else np.ones(700),
                                               y, x),
        lambda x, y: cnnops.box_area(x), lambda x, y: cnnops.box_convert(x, "xyxy", "cxcywh"),
        lambda x, y: cnnops.box_convert(cnnops.box_convert(x, "xyxy", "xyxy", canonicalize=True), "xywh", "xyxy"),
        lambda x, y: cnnops.clip_boxes_to_image(x, (5, 5)), lambda x, y: cnnops.remove_small_boxes(x, 1.0),
    ]
    for i, call in enumerate(calls):
        if bad == "inverted" and i == 7:
            continue  # canonicalized first
        with pytest.raises(ValueError) as want:
            call(nb, b)
        with pytest.raises(ValueError) as got:
            call(_cuda(nb), _cuda(b))
        assert str(got.value) == str(want.value) and "row 430" in str(want.value)
    # canonicalize=True accepts the inverted rows on both devices
    if bad == "inverted":
        _close(cnnops.box_iou(_cuda(nb), _cuda(b), canonicalize=True), cnnops.box_iou(nb, b, canonicalize=True),
               np.float64, "canonicalized")
    # a bad first argument is named even when the second is malformed, as on the CPU
    for x, y in ((nb, b[:, :3]), (_cuda(nb), _cuda(b[:, :3].copy()))):
        with pytest.raises(ValueError, match="box_iou: expected .* in boxes1"):
            cnnops.box_iou(x, y)
    # the Python-side check helper too
    from cnnops.boxes import check_boxes

    with pytest.raises(ValueError, match=r"^nms: expected .* in boxes.*, got row 430"):
        check_boxes(_cuda(nb), "nms")


@pytest.mark.cuda
def test_cuda_boxes_mixed_devices_scalars_and_streams(rng):
    b1, b2 = rand_boxes(rng, 5, np.float32), rand_boxes(rng, 5, np.float32)
    with pytest.raises(TypeError, match="box_iou: expected boxes2 on the boxes1's device cuda:0, got cpu"):
        cnnops.box_iou(_cuda(b1), b2)
    with pytest.raises(TypeError, match="giou_loss: expected boxes2 on the boxes1's device cpu, got cuda:0"):
        cnnops.giou_loss(b1, _cuda(b2))
    with pytest.raises(TypeError, match="diou_loss_backward: expected grad_output on the boxes' device cuda:0, got"):
        cnnops.diou_loss_backward(np.ones(5, np.float32), _cuda(b1), _cuda(b2))
    # a Python number as the gradient of a reduced loss goes to the boxes' device
    g = cnnops.ciou_loss_backward(2.0, _cuda(b1), _cuda(b2), reduction="mean")
    want = cnnops.ciou_loss_backward(2.0, b1, b2, reduction="mean")
    assert isinstance(g[0], cnnops.Array) and g[0].device == "cuda:0"
    _close(g[0], want[0], np.float32, "scalar gradient")

    class S:
        cuda_stream = 0
    for f in (cnnops.box_iou, cnnops.complete_box_iou, cnnops.giou_loss):
        _close(f(_cuda(b1), _cuda(b2), stream=S()), f(b1, b2), np.float32, f.__name__)
    np.testing.assert_array_equal(_host(cnnops.box_area(_cuda(b1), stream=0)), cnnops.box_area(b1))
    import inspect

    for f in (*PAIRWISE.values(), *LOSS.values(), *LOSS_BACKWARD.values(), cnnops.box_convert, cnnops.box_area,
              cnnops.clip_boxes_to_image, cnnops.remove_small_boxes, cnnops.complete_box_iou_loss):
        assert "stream" in inspect.signature(f).parameters, f.__name__
    d1 = _cuda(b1)
    cnnops.giou_loss_backward(_cuda(np.ones(5, np.float32)), d1, _cuda(b2))
    np.testing.assert_array_equal(d1.numpy(), b1)  # inputs untouched
