"""Tests of the region ops (cnnops.roi): roi_pool, roi_align, ps_roi_pool, ps_roi_align, forward
and backward, channels first and last, boxes as (K, 5) or per-image lists, against the float64
references in tests/reference.py (geometry in the features' dtype, sums in float64), central
finite differences, torchvision when installed (values and gradients bit for bit, argmax
identical), bad arguments, determinism across thread counts; and the proposal helpers
(roi_levels, anchors, box_encode, box_decode) against their definitions and torchvision."""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import cnnops
from reference import numerical_grad, rel_err, roi_align_ref, roi_pool_backward_ref, roi_pool_ref, roi_rows
from testing import DTYPE_IDS, DTYPES, check_close, half_array, half_to_float, poisoned_outputs, to_device, to_host

OPS = ["roi_pool", "roi_align", "ps_roi_pool", "ps_roi_align"]
TOL = {np.float32: 1e-6, np.float64: 1e-12}


def make_boxes(rng, K, N, H, W, scale, corners=True, dtype=np.float32):
    """(K, 5) boxes in image coordinates: most inside the features, with corners (regions partly or
    wholly outside, zero width or height, inverted, sub-pixel) when `corners`."""
    img_h, img_w = H / scale, W / scale
    x1 = rng.uniform(-0.2 * img_w, img_w, K)
    y1 = rng.uniform(-0.2 * img_h, img_h, K)
    x2 = x1 + rng.uniform(0, 0.8 * img_w, K)
    y2 = y1 + rng.uniform(0, 0.8 * img_h, K)
    b = np.stack([rng.integers(0, N, K).astype(np.float64), x1, y1, x2, y2], 1)
    if corners and K >= 6:
        b[0, 1:] = [-3 * img_w, -3 * img_h, -2 * img_w, -2 * img_h]          # wholly outside
        b[1, 3] = b[1, 1]                                                     # zero width
        b[2, 1:] = [b[2, 3], b[2, 4], b[2, 1], b[2, 2]]                       # inverted corners
        b[3, 3:] = b[3, 1:3] + 0.3 / scale                                    # sub-pixel
        b[4, 1:] = [-0.5 * img_w, -0.5 * img_h, 1.5 * img_w, 1.5 * img_h]     # larger than the image
        b[5, 1:] = [img_w - 1 / scale, img_h - 1 / scale, img_w, img_h]       # the last pixel
    return b.astype(dtype)


# (id, N, C (per bin for ps), H, W, K, output_size, spatial_scale, sampling_ratio)
CASES = [
    ("basic", 2, 3, 9, 11, 8, (3, 4), 0.5, 2),
    ("adaptive", 2, 2, 13, 7, 8, (2, 3), 0.25, -1),
    ("one-roi", 1, 2, 5, 6, 1, 2, 1.0, 1),
    ("1x1-out", 3, 2, 6, 8, 7, 1, 0.5, -1),
    ("big-scale", 1, 2, 8, 9, 6, (3, 2), 16.0, -1),
    ("tiny-image", 2, 2, 1, 1, 6, (2, 2), 1.0, 2),
]
CASE_IDS = [c[0] for c in CASES]


def _setup(case, op, dtype, rng, corners=True):
    _, N, C, H, W, K, out, scale, sr = case
    oh, ow = (out, out) if isinstance(out, int) else out
    c = C * oh * ow if op.startswith("ps_") else C
    x = rng.standard_normal((N, c, H, W)).astype(dtype)
    boxes = make_boxes(rng, K, N, H, W, scale, corners, dtype)
    return x, boxes, (oh, ow), scale, sr


def _call(op, x, boxes, out, scale, sr, aligned, cl):
    fmt = "NHWC" if cl else "NCHW"
    f = getattr(cnnops, op)
    if op == "roi_align":
        return f(x, boxes, out, scale, sr, aligned, data_format=fmt)
    if op == "ps_roi_align":
        return f(x, boxes, out, scale, sr, data_format=fmt)
    if op == "roi_pool":
        return f(x, boxes, out, scale, return_indices=True, data_format=fmt)
    return f(x, boxes, out, scale, data_format=fmt)


def _call_backward(op, g, x, boxes, out, scale, sr, aligned, cl, idx=None):
    fmt = "NHWC" if cl else "NCHW"
    f = getattr(cnnops, op + "_backward")
    if op == "roi_align":
        return f(g, x, boxes, out, scale, sr, aligned, data_format=fmt)
    if op == "ps_roi_align":
        return f(g, x, boxes, out, scale, sr, data_format=fmt)
    if op == "roi_pool":
        return f(g, x, boxes, out, scale, indices=idx, data_format=fmt)
    return f(g, x, boxes, out, scale, data_format=fmt)


def _ref(op, x, boxes, out, scale, sr, aligned):
    if op in ("roi_align", "ps_roi_align"):
        return roi_align_ref(x, boxes, out, scale, sr, aligned, ps=op == "ps_roi_align"), None
    return roi_pool_ref(x, boxes, out, scale, ps=op == "ps_roi_pool")


def _ref_backward(op, g, x, boxes, out, scale, sr, aligned, idx):
    if op in ("roi_align", "ps_roi_align"):
        return roi_align_ref(x, boxes, out, scale, sr, aligned, ps=op == "ps_roi_align", grad=g)
    return roi_pool_backward_ref(g, x.shape, boxes, out, scale, idx=idx, ps=op == "ps_roi_pool",
                                 geom=x.dtype.type)


def _nhwc(a):
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def _nchw(a):
    return np.moveaxis(np.asarray(a), -1, 1)


@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_forward_and_backward_match_reference(case, op, dtype, cl, device, rng):
    x, boxes, out, scale, sr = _setup(case, op, dtype, rng)
    for aligned in ((False, True) if op == "roi_align" else (False,)):
        ref, ref_idx = _ref(op, x, boxes, out, scale, sr, aligned)
        xin = _nhwc(x) if cl else x
        with poisoned_outputs():
            r = _call(op, to_device(xin, device), to_device(boxes, device), out, scale, sr, aligned, cl)
        y, idx = (r if op == "roi_pool" else (r, None))
        y = to_host(y, device)
        y = _nchw(y) if cl else y
        what = f"{op}(aligned={aligned})"
        check_close(np.ascontiguousarray(y), ref, dtype, what, TOL)
        if idx is not None:
            idx = to_host(idx, device)
            idx = _nchw(idx) if cl else idx
            assert np.array_equal(idx, ref_idx), f"{what}: argmax differs from the reference"
        g = rng.standard_normal(ref.shape).astype(dtype)
        with poisoned_outputs():
            dx = _call_backward(op, to_device(_nhwc(g) if cl else g, device), to_device(xin, device),
                                to_device(boxes, device), out, scale, sr, aligned, cl,
                                idx=None if idx is None else to_device(_nhwc(idx) if cl else idx, device))
        dx = to_host(dx, device)
        dx = _nchw(dx) if cl else dx
        ref_dx = _ref_backward(op, g, x, boxes, out, scale, sr, aligned, ref_idx)
        check_close(np.ascontiguousarray(dx), ref_dx, dtype, what + " backward", TOL)


@pytest.mark.parametrize("op", OPS)
def test_backward_finite_differences(op, rng, one_thread):
    """The analytic gradient is the derivative of the forward (float64, central differences)."""
    case = ("fd", 2, 2, 6, 7, 5, (2, 3), 0.5, 2)
    x, boxes, out, scale, sr = _setup(case, op, np.float64, rng)
    aligned = op == "roi_align"
    y = _call(op, x, boxes, out, scale, sr, aligned, False)
    y, idx = y if op == "roi_pool" else (y, None)
    g = rng.standard_normal(y.shape)

    def f():
        r = _call(op, x, boxes, out, scale, sr, aligned, False)
        return float(np.sum((r[0] if op == "roi_pool" else r) * g))

    num = numerical_grad(f, x)
    ana = _call_backward(op, g, x, boxes, out, scale, sr, aligned, False, idx=idx)
    assert rel_err(ana, num) < 1e-7


@pytest.mark.parametrize("op", OPS)
def test_boxes_as_per_image_list(op, rng):
    """A list of per-image (Ki, 4) arrays is the (K, 5) array with batch index i for list entry i."""
    x = rng.standard_normal((3, 8, 10, 9)).astype(np.float32)
    parts = [make_boxes(rng, k, 1, 10, 9, 0.5, corners=False)[:, 1:] for k in (4, 0, 3)]
    k5 = np.concatenate([np.concatenate([np.full((len(p), 1), i, np.float32), p], 1) for i, p in enumerate(parts)])
    a = _call(op, x, parts, 2, 0.5, 2, True, False)
    b = _call(op, x, k5, 2, 0.5, 2, True, False)
    a, b = (a[0], b[0]) if op == "roi_pool" else (a, b)
    assert np.array_equal(a, b)
    g = rng.standard_normal(a.shape).astype(np.float32)
    assert np.array_equal(_call_backward(op, g, x, parts, 2, 0.5, 2, True, False),
                          _call_backward(op, g, x, k5, 2, 0.5, 2, True, False))


@pytest.mark.parametrize("op", OPS)
def test_empty_boxes_and_inputs_untouched(op, rng):
    x = rng.standard_normal((2, 4, 5, 5))
    boxes = np.zeros((0, 5))
    y = _call(op, x, boxes, 2, 1.0, 2, False, False)
    y = y[0] if op == "roi_pool" else y
    assert y.shape == (0, 1 if op.startswith("ps_") else 4, 2, 2)
    dx = _call_backward(op, y, x, boxes, 2, 1.0, 2, False, False, idx=np.zeros(y.shape, np.int64))
    assert dx.shape == x.shape and not dx.any()
    # the caller's arrays are never modified
    b = make_boxes(rng, 6, 2, 5, 5, 1.0, dtype=np.float64)
    x0, b0 = x.copy(), b.copy()
    y = _call(op, x, b, 2, 1.0, 2, False, False)
    y = y[0] if op == "roi_pool" else y
    g = np.ones_like(y)
    g0 = g.copy()
    _call_backward(op, g, x, b, 2, 1.0, 2, False, False)
    assert np.array_equal(x, x0) and np.array_equal(b, b0) and np.array_equal(g, g0)


@pytest.mark.parametrize("op", OPS)
def test_backward_deterministic_for_any_thread_count(op, rng, threads):
    x = rng.standard_normal((2, 36 if op.startswith("ps_") else 32, 24, 20)).astype(np.float32)
    boxes = make_boxes(rng, 60, 2, 24, 20, 0.5)
    y = _call(op, x, boxes, 3, 0.5, -1, True, False)
    y, idx = y if op == "roi_pool" else (y, None)
    g = rng.standard_normal(y.shape).astype(np.float32)
    results = []
    for n in (1, 2, 3, 4):
        threads(n)
        results.append(_call_backward(op, g, x, boxes, 3, 0.5, -1, True, False, idx=idx))
    assert all(np.array_equal(r, results[0]) for r in results)


def test_huge_adaptive_grid_visits_only_samples_inside(rng):
    """A region thousands of times larger than the features: its adaptive grid has millions of
    samples per bin, of which only those inside the features are visited."""
    x = rng.standard_normal((1, 3, 6, 5))
    boxes = np.array([[0, -1e4, -1e4, 1e4, 1e4], [0, 0, 0, 2.5, 2.5]])
    y = cnnops.roi_align(x, boxes, 2, 100.0, -1, True)
    assert np.isfinite(y).all()
    # only the in-range samples count: every bin's sum is over at most the features' pixels, and
    # the divisor is grid_h * grid_w (~ 2.5e11 here), so the values vanish
    assert np.abs(y[0]).max() < 1e-6
    ref = roi_align_ref(x, boxes[1:], (2, 2), 100.0, -1, True)
    assert rel_err(y[1:], ref) < 1e-12


@pytest.mark.skipif(cnnops.cuda.is_available() and not cnnops.cuda.is_emulated(), reason="slow on a GPU machine")
def test_roi_pool_nan_and_extremes(rng):
    """torchvision's roi_pool rule: the first value strictly above -FLT_MAX wins, NaN never does; a
    bin of only NaN gives -FLT_MAX and index -1; an empty bin gives 0 and -1."""
    x = np.full((1, 1, 4, 4), np.nan, np.float32)
    x[0, 0, 3, 3] = 2.0
    y, idx = cnnops.roi_pool(x, np.array([[0, 0, 0, 3, 3]], np.float32), 2, return_indices=True)
    assert y[0, 0, 1, 1] == 2.0 and idx[0, 0, 1, 1] == 15
    assert y[0, 0, 0, 0] == -np.finfo(np.float32).max and idx[0, 0, 0, 0] == -1
    y, idx = cnnops.roi_pool(x, np.array([[0, 10, 10, 12, 12]], np.float32), 2, return_indices=True)
    assert (y == 0).all() and (idx == -1).all()


BAD = [
    ("empty-list", lambda x, b: cnnops.roi_align(x, [], 2), ValueError, "non-empty list"),
    ("batch-out-of-range", lambda x, b: cnnops.roi_align(x, np.array([[2, 0, 0, 1, 1]], np.float32), 2),
     ValueError, "integer in [0, 2), got 2"),
    ("negative-batch", lambda x, b: cnnops.roi_pool(x, np.array([[-1, 0, 0, 1, 1]], np.float32), 2),
     ValueError, "integer in [0, 2), got -1"),
    ("fractional-batch", lambda x, b: cnnops.roi_align(x, np.array([[0.5, 0, 0, 1, 1]], np.float32), 2),
     ValueError, "got 0.5"),
    ("nan-coordinate", lambda x, b: cnnops.ps_roi_align(x, np.array([[0, 0, np.nan, 1, 1]], np.float32), 2),
     ValueError, "finite box coordinates, got y1 = nan in boxes row 0"),
    ("inf-coordinate", lambda x, b: cnnops.roi_pool(x, [np.array([[0, 0, np.inf, 1]], np.float32)], 2),
     ValueError, "x2 = inf in boxes[0] row 0"),
    ("overflow-after-scale", lambda x, b: cnnops.roi_align(x, np.array([[0, 0, 0, 3e38, 1]], np.float32), 2, 10.0),
     ValueError, "times spatial_scale to be finite in float32"),
    ("boxes-k4", lambda x, b: cnnops.roi_align(x, b[:, 1:], 2), ValueError, "of shape (K, 5)"),
    ("list-k5", lambda x, b: cnnops.roi_align(x, [b], 2), ValueError, "boxes[0] of shape (Ki, 4)"),
    ("too-many-lists", lambda x, b: cnnops.roi_align(x, [b[:, 1:]] * 3, 2), ValueError, "at most one"),
    ("dtype-mismatch", lambda x, b: cnnops.roi_align(x, b.astype(np.float64), 2), TypeError,
     "input's dtype float32, got float64"),
    ("int-features", lambda x, b: cnnops.roi_align(x.astype(np.int64), b, 2), TypeError, "dtype"),
    ("3d-input", lambda x, b: cnnops.roi_align(x[0], b, 2), ValueError, "4 dimensions (N, C, H, W)"),
    ("zero-height", lambda x, b: cnnops.roi_align(x[:, :, :0], b, 2), ValueError, "non-zero height"),
    ("ps-channels", lambda x, b: cnnops.ps_roi_pool(x, b, 3), ValueError, "divisible by output height x width = 9"),
    ("output-size-0", lambda x, b: cnnops.roi_align(x, b, 0), ValueError, "output_size >= 1"),
    ("scale-0", lambda x, b: cnnops.roi_align(x, b, 2, 0.0), ValueError, "positive finite spatial_scale"),
    ("scale-nan", lambda x, b: cnnops.roi_pool(x, b, 2, float("nan")), ValueError, "spatial_scale"),
    ("scale-str", lambda x, b: cnnops.roi_pool(x, b, 2, "1"), TypeError, "spatial_scale"),
    ("ratio-float", lambda x, b: cnnops.roi_align(x, b, 2, 1.0, 2.0), TypeError, "sampling_ratio"),
    ("format", lambda x, b: cnnops.roi_align(x, b, 2, data_format="NCW"), ValueError, "data_format"),
    ("grad-shape", lambda x, b: cnnops.roi_align_backward(np.zeros((1, 4, 3, 3), np.float32), x, b, 2),
     ValueError, "grad_output of shape (1, 4, 2, 2)"),
    ("backward-bad-input", lambda x, b: cnnops.roi_align_backward(np.zeros((1, 4, 2, 2), np.float32), "x", b, 2),
     TypeError, "expected `input` to be an array"),
    ("pool-backward-shape-only", lambda x, b: cnnops.roi_pool_backward(np.zeros((1, 4, 2, 2), np.float32),
                                                                        (2, 4, 6, 7), b, 2), TypeError,
     "when indices is None"),
    ("pool-bad-indices", lambda x, b: cnnops.roi_pool_backward(np.zeros((1, 4, 2, 2), np.float32), x, b, 2,
                                                               indices=np.full((1, 4, 2, 2), 41, np.int64)),
     ValueError, "got 41 at flat position 0"),
    ("pool-index-dtype", lambda x, b: cnnops.roi_pool_backward(np.zeros((1, 4, 2, 2), np.float32), x, b, 2,
                                                               indices=np.zeros((1, 4, 2, 2), np.int32)),
     TypeError, "int64"),
]


@pytest.mark.parametrize("call,exc,msg", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_arguments(call, exc, msg):
    x = np.zeros((2, 4, 6, 7), np.float32)
    b = np.array([[1, 0, 0, 3, 3]], np.float32)
    with pytest.raises(exc) as e:
        call(x, b)
    text = str(e.value)
    assert msg in text, text
    name = text.split(":")[0]
    assert name.startswith(("roi_", "ps_roi_")), text


# ----------------------------------------------------------------------------- torchvision

def _torchvision():
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision")
    try:
        tv.ops.roi_align(torch.zeros(1, 1, 2, 2), torch.zeros(1, 5), 1)
    except (RuntimeError, AttributeError) as e:  # a torchvision built for another torch
        pytest.skip(f"torchvision's ops do not run with this torch: {e}")
    return torch, tv


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op", OPS)
def test_matches_torchvision(op, dtype, rng):
    """Values, gradients and roi_pool's argmax equal torchvision's CPU kernels bit for bit (ps_roi_pool's
    gradient away from the last row and column, where torchvision's backward clips differently)."""
    torch, tv = _torchvision()
    N, H, W, scale = 2, 17, 23, 0.5
    c = 12 if op.startswith("ps_") else 5
    x = rng.standard_normal((N, c, H, W)).astype(dtype)
    boxes = make_boxes(rng, 40, N, H, W, scale, dtype=dtype)
    if op == "ps_roi_pool":  # keep every window off the last row and column (see above)
        boxes[:, 1:] = np.clip(boxes[:, 1:], 0, (min(H, W) - 4) / scale)
    xt = torch.from_numpy(x).requires_grad_(True)
    bt = torch.from_numpy(boxes)
    f = getattr(tv.ops, op)
    for sr in (-1, 2):
        for aligned in ((False, True) if op == "roi_align" else (False,)):
            kw = {"sampling_ratio": sr} if op.endswith("align") else {}
            if op == "roi_align":
                kw["aligned"] = aligned
            yt = f(xt, bt, (3, 2), scale, **kw)
            g = rng.standard_normal(yt.shape).astype(dtype)
            (gx,) = torch.autograd.grad(yt, xt, torch.from_numpy(g))
            r = _call(op, x, boxes, (3, 2), scale, sr, aligned, False)
            y = r[0] if op == "roi_pool" else r
            assert np.array_equal(y, yt.detach().numpy(), equal_nan=True)
            dx = _call_backward(op, g, x, boxes, (3, 2), scale, sr, aligned, False,
                                idx=r[1] if op == "roi_pool" else None)
            assert np.array_equal(dx, gx.numpy())
            if op == "roi_pool":  # the argmax: its gradient lands where torchvision's does
                one = np.zeros_like(g)
                one[np.unravel_index(np.arange(0, one.size, 7), one.shape)] = 1
                (gx1,) = torch.autograd.grad(f(xt, bt, (3, 2), scale), xt, torch.from_numpy(one))
                assert np.array_equal(_call_backward(op, one, x, boxes, (3, 2), scale, sr, False, False, idx=r[1]),
                                      gx1.numpy())


def test_levels_anchors_and_coding_match_torchvision(rng):
    torch, tv = _torchvision()
    from torchvision.models.detection import _utils as det_utils
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.image_list import ImageList
    from torchvision.ops.poolers import LevelMapper

    b = make_boxes(rng, 50, 1, 200, 300, 1.0, corners=False)[:, 1:]
    lv = LevelMapper(2, 5)([torch.from_numpy(b)]).numpy()
    assert np.array_equal(cnnops.roi_levels(b, 2, 5), lv)

    sizes, ratios = ((32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 3
    gen = AnchorGenerator(sizes, ratios)
    feats = [torch.zeros(1, 1, 25, 38), torch.zeros(1, 1, 13, 19), torch.zeros(1, 1, 7, 10)]
    img = ImageList(torch.zeros(1, 3, 200, 304), [(200, 304)])
    ref = gen(img, feats)[0].numpy()
    strides = [(200 // f.shape[-2], 304 // f.shape[-1]) for f in feats]
    got = cnnops.anchors([f.shape[-2:] for f in feats], strides, sizes, ratios)
    assert np.array_equal(got, ref)

    coder = det_utils.BoxCoder((10.0, 10.0, 5.0, 5.0))
    props = make_boxes(rng, 30, 1, 100, 100, 1.0, corners=False)[:, 1:] + np.float32([0, 0, 1, 1])
    gts = make_boxes(rng, 30, 1, 100, 100, 1.0, corners=False)[:, 1:] + np.float32([0, 0, 1, 1])
    enc = coder.encode_single(torch.from_numpy(gts), torch.from_numpy(props)).numpy()
    np.testing.assert_allclose(cnnops.box_encode(gts, props, (10.0, 10.0, 5.0, 5.0)), enc, rtol=1e-6, atol=1e-6)
    codes = rng.standard_normal((30, 8)).astype(np.float32) * 20
    dec = coder.decode_single(torch.from_numpy(codes), torch.from_numpy(props)).numpy()
    np.testing.assert_allclose(cnnops.box_decode(codes, props, (10.0, 10.0, 5.0, 5.0)), dec, rtol=1e-6, atol=1e-3)


# ----------------------------------------------------------------------------- proposal helpers

def test_roi_levels_rule(rng):
    b = np.array([[0, 0, 224, 224], [0, 0, 112, 112], [0, 0, 448, 448], [0, 0, 10, 10], [5, 5, 5, 9],
                  [0, 0, 10000, 10000]], np.float64)
    assert cnnops.roi_levels(b, 2, 5).tolist() == [2, 1, 3, 0, 0, 3]
    parts = [b[:2], b[2:]]
    assert cnnops.roi_levels(parts, 2, 5).tolist() == cnnops.roi_levels(b, 2, 5).tolist()
    for bad, exc in ((np.array([[0, 0, np.nan, 1.0]]), ValueError), (np.array([[2, 0, 1, 1.0]]), ValueError),
                     (np.zeros((2, 3)), ValueError), ([], ValueError), (np.zeros((2, 4), np.int64), TypeError)):
        with pytest.raises(exc, match="roi_levels"):
            cnnops.roi_levels(bad, 2, 5)


def test_anchors_grid():
    a = cnnops.anchors([(2, 3)], [(16, 8)], sizes=((32, 64),), aspect_ratios=((1.0, 4.0),))
    assert a.shape == (2 * 3 * 4, 4) and a.dtype == np.float32
    # location (y=0, x=0): ratio 1 -> squares of side 32, 64; ratio 4 (h = 2s, w = s/2)
    assert a[:4].tolist() == [[-16, -16, 16, 16], [-32, -32, 32, 32], [-8, -32, 8, 32], [-16, -64, 16, 64]]
    # location (y=1, x=2): shifted by (2 * 8, 1 * 16)
    assert a[5 * 4].tolist() == [-16 + 16, -16 + 16, 16 + 16, 16 + 16]
    # half-pixel ties round to even, as torch.round
    b = cnnops.anchors([(1, 1)], [16], sizes=((3,),), aspect_ratios=((1.0,),), dtype="float64")
    assert b.tolist() == [[-2, -2, 2, 2]] and b.dtype == np.float64
    assert cnnops.anchors([(1, 1), (1, 1)], [8, 16], sizes=(8, 16)).shape == (6, 4)
    with pytest.raises(ValueError, match="anchors: expected sizes for each of the 2"):
        cnnops.anchors([(1, 1), (1, 1)], [8, 16], sizes=((8,),))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_box_coding_round_trip_and_clamp(dtype, rng):
    p = make_boxes(rng, 40, 1, 50, 50, 1.0, corners=False, dtype=dtype)[:, 1:] + dtype(1)
    g = make_boxes(rng, 40, 1, 50, 50, 1.0, corners=False, dtype=dtype)[:, 1:] + dtype(1)
    w = (10.0, 10.0, 5.0, 5.0)
    d = cnnops.box_encode(g, p, w)
    assert d.dtype == dtype and d.shape == (40, 4)
    back = cnnops.box_decode(d, p, w)
    assert rel_err(back, g) < (1e-5 if dtype == np.float32 else 1e-12)
    # the definition, in float64
    pw, ph = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
    gw, gh = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
    dx = 10 * ((g[:, 0] + gw / 2) - (p[:, 0] + pw / 2)) / pw
    dy = 10 * ((g[:, 1] + gh / 2) - (p[:, 1] + ph / 2)) / ph
    ref = np.stack([dx, dy, 5 * np.log(gw / pw), 5 * np.log(gh / ph)], 1)
    assert rel_err(d, ref) < (1e-5 if dtype == np.float32 else 1e-12)
    # dw, dh are clamped at log(1000 / 16) before exp: a wild code cannot overflow
    wild = np.array([[0, 0, 1e4, 1e4]], dtype)
    box = np.array([[0, 0, 10, 20]], dtype)
    out = cnnops.box_decode(wild, box)
    s = math.exp(math.log(1000.0 / 16))
    np.testing.assert_allclose(out, [[5 - 5 * s, 10 - 10 * s, 5 + 5 * s, 10 + 10 * s]], rtol=1e-5)
    with pytest.raises(ValueError, match="box_decode: expected rel_codes of shape"):
        cnnops.box_decode(np.zeros((2, 5), dtype), np.zeros((2, 4), dtype))
    with pytest.raises(ValueError, match="box_encode: expected finite"):
        cnnops.box_encode(np.full((1, 4), np.nan, dtype), np.zeros((1, 4), dtype))


# ----------------------------------------------------------------------------- CUDA

@pytest.mark.cuda
@pytest.mark.parametrize("op", OPS)
def test_cuda_matches_cpu_bitwise(op, rng):
    """float32 results and gradients on CUDA equal the CPU's bit for bit (same arithmetic, no FMA,
    the same summation order)."""
    x, boxes, out, scale, sr = _setup(("c", 2, 3, 9, 11, 10, (2, 3), 0.5, -1), op, np.float32, rng)
    r_cpu = _call(op, x, boxes, out, scale, sr, True, False)
    r_gpu = _call(op, to_device(x, "cuda"), to_device(boxes, "cuda"), out, scale, sr, True, False)
    y_cpu, y_gpu = (r_cpu[0], r_gpu[0]) if op == "roi_pool" else (r_cpu, r_gpu)
    assert np.array_equal(to_host(y_gpu, "cuda"), y_cpu, equal_nan=True)
    g = rng.standard_normal(y_cpu.shape).astype(np.float32)
    i_cpu = r_cpu[1] if op == "roi_pool" else None
    dx_cpu = _call_backward(op, g, x, boxes, out, scale, sr, True, False, idx=i_cpu)
    dx_gpu = _call_backward(op, to_device(g, "cuda"), to_device(x, "cuda"), to_device(boxes, "cuda"), out, scale,
                            sr, True, False, idx=None if i_cpu is None else to_device(i_cpu, "cuda"))
    assert np.array_equal(to_host(dx_gpu, "cuda"), dx_cpu)




@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("op", OPS)
def test_cuda_half_precision(op, dtype, rng):
    """float16/bfloat16 features with float32 boxes: the regions are computed in float32 and the
    sums accumulate in float32, so results are the float32 CPU results on the rounded values,
    rounded once more to the storage type."""
    x, boxes, out, scale, sr = _setup(("h", 2, 2, 8, 9, 8, (2, 3), 0.5, 2), op, np.float32, rng)
    xd, xr = half_array(x, dtype)
    eps = 2e-3 if dtype == "float16" else 1.6e-2
    r = _call(op, xr, boxes, out, scale, sr, True, False)
    rd = _call(op, xd, cnnops.cuda.array(boxes), out, scale, sr, True, False)
    y, yd = (r[0], rd[0]) if op == "roi_pool" else (r, rd)
    assert yd.dtype == dtype
    assert rel_err(half_to_float(yd), y) <= eps
    if op == "roi_pool":
        assert np.array_equal(rd[1].numpy(), r[1])
    gd, g = half_array(rng.standard_normal(y.shape), dtype)
    dx = _call_backward(op, g, xr, boxes, out, scale, sr, True, False, idx=r[1] if op == "roi_pool" else None)
    dxd = _call_backward(op, gd, xd, cnnops.cuda.array(boxes), out, scale, sr, True, False,
                         idx=rd[1] if op == "roi_pool" else None)
    assert dxd.dtype == dtype
    assert rel_err(half_to_float(dxd), dx) <= eps


@pytest.mark.cuda
def test_cuda_mixed_devices_refused(rng):
    x = to_device(rng.standard_normal((1, 2, 4, 4)).astype(np.float32), "cuda")
    with pytest.raises(TypeError, match="roi_align: expected boxes on the input's device"):
        cnnops.roi_align(x, np.array([[0, 0, 0, 2, 2]], np.float32), 2)


def test_rows_helper():
    assert roi_rows([np.zeros((1, 4)), np.ones((2, 4))])[2][0] == 1


# ----------------------------------------------------------------------------- layers

@pytest.mark.parametrize("layer", ["RoIAlign", "RoIPool"])
def test_layers_forward_backward(layer, rng, one_thread):
    import cnnops.nn

    x = rng.standard_normal((2, 3, 7, 6))
    boxes = [make_boxes(rng, 3, 1, 7, 6, 0.5, corners=False, dtype=np.float64)[:, 1:] for _ in range(2)]
    m = cnnops.nn.RoIAlign((2, 3), 0.5, 2, True) if layer == "RoIAlign" else cnnops.nn.RoIPool((2, 3), 0.5)
    y = m(x, boxes)
    assert y.shape == (6, 3, 2, 3)
    ref = (cnnops.roi_align(x, boxes, (2, 3), 0.5, 2, True) if layer == "RoIAlign"
           else cnnops.roi_pool(x, boxes, (2, 3), 0.5))
    assert np.array_equal(y, ref)
    g = rng.standard_normal(y.shape)
    num = numerical_grad(lambda: float(np.sum(m(x, boxes) * g)), x)
    m(x, boxes)
    assert rel_err(m.backward(g), num) < 1e-7
    assert repr(m).startswith(layer)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        type(m)(2).backward(g)


# ----------------------------------------------------------------------------- benchmark

def test_bench_refuses_cleanly_without_torchvision(monkeypatch, capsys):
    import builtins

    from cnnops import bench
    from cnnops.__main__ import main
    from cnnops.bench import roi as bench_roi

    real_import = builtins.__import__

    def no_torchvision(name, *args, **kwargs):
        if name == "torchvision":
            raise ImportError("No module named 'torchvision'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchvision)
    assert bench_roi.run(quick=True) == 2
    assert "cnnops bench roi: needs PyTorch and torchvision" in capsys.readouterr().err
    real_spec = bench.importlib.util.find_spec
    monkeypatch.setattr(bench.importlib.util, "find_spec", lambda m: None if m == "torchvision" else real_spec(m))
    assert main(["bench", "roi"]) == 2
    assert "missing peer libraries: torchvision" in capsys.readouterr().err


def test_bench_tiny_run(tmp_path, capsys):
    _torchvision()
    from cnnops.bench import roi as bench_roi

    assert bench_roi.run(quick=True, repeats=1, layers="ps_roi_pool,roi_pool", out=tmp_path) == 0
    assert (tmp_path / "roi_cpu.json").exists() and "speed-up" in (tmp_path / "roi_cpu.md").read_text()


# ----------------------------------------------------------------------------- the two-stage example

def test_two_stage_example_losses_gradients(rng):
    """The example's RPN and head losses: their hand-written gradients against central differences;
    its target layout round-trips."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "two_stage_detector.py"
    spec = importlib.util.spec_from_file_location("cnnops_example_two_stage", path)
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    _, gts = ex.load_yolo().make_scenes(2, seed=3)
    labels, dt = ex.rpn_targets(gts)
    assert (labels == 1).sum() >= sum(len(g) for g in gts)
    out = rng.standard_normal((2, ex.A * 5, ex.FEAT, ex.FEAT))
    obj, delta = ex.rpn_split(out)
    assert np.array_equal(ex.rpn_merge(obj, delta), out)
    _, g_obj, g_delta = ex.rpn_loss(obj, delta, labels, dt)
    num = numerical_grad(lambda: ex.rpn_loss(*ex.rpn_split(out), labels, dt)[0], out)
    assert rel_err(ex.rpn_merge(g_obj, g_delta), num) < 1e-6
    props = ex.proposals(obj, delta, gts)
    cls, ht = ex.head_targets(props, gts)
    assert cls.sum() >= sum(len(g) for g in gts)  # the true boxes are among the proposals
    h = rng.standard_normal((len(cls), 6))
    _, g = ex.head_loss(h, cls, ht)
    assert rel_err(g, numerical_grad(lambda: ex.head_loss(h, cls, ht)[0], h)) < 1e-6


def test_concurrent_calls_equal_serial(rng):
    """Calls from 8 Python threads at once (the kernels release the GIL) give the serial results."""
    from concurrent.futures import ThreadPoolExecutor

    x = rng.standard_normal((2, 16, 20, 18)).astype(np.float32)
    boxes = make_boxes(rng, 24, 2, 20, 18, 0.5)
    g = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)

    def work(i):
        ys = [cnnops.roi_align(x, boxes, 3, 0.5, 2, bool(i % 2)), cnnops.roi_pool(x, boxes, 3, 0.5)]
        return ys + [cnnops.roi_align_backward(g, x.shape, boxes, 3, 0.5, 2, bool(i % 2))]

    serial = [work(i) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(work, range(8)))
    for a, b in zip(serial, parallel):
        assert all(np.array_equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("op", OPS)
def test_avx2_and_portable_kernels_agree_bitwise(op, cl, rng):
    """The AVX2 build of the kernels (channels-last loops 8 floats wide) and the portable build give
    the same bits, on shapes that take the channels-last paths (many regions) and those that do not."""
    if not cnnops._C.cpu_has_avx2_fma():
        pytest.skip("this CPU has no AVX2/FMA")
    c = 18 if op.startswith("ps_") else 40
    x = rng.standard_normal((2, c, 12, 14)).astype(np.float32)
    g = None
    results = []
    for level in ("avx2", "portable"):
        before = cnnops.simd_level()
        cnnops.set_simd_level(level)
        try:
            out = []
            for k in (2, 40):
                boxes = make_boxes(np.random.default_rng(k), k, 2, 12, 14, 0.5)
                xin = _nhwc(x) if cl else x
                r = _call(op, xin, boxes, (3, 3), 0.5, -1, True, cl)
                y, idx = r if op == "roi_pool" else (r, None)
                if g is None or g.shape != y.shape:
                    g = np.random.default_rng(7).standard_normal(y.shape).astype(np.float32)
                out += [y, _call_backward(op, g, xin, boxes, (3, 3), 0.5, -1, True, cl, idx=idx)]
            results.append(out)
        finally:
            cnnops.set_simd_level(before)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(*results))


@pytest.mark.cuda
def test_cuda_stream_argument(rng):
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    boxes = np.array([[0, 0, 0, 4, 4]], np.float32)
    ref = cnnops.roi_align(x, boxes, 2, 1.0, 2, True)
    s = cnnops.cuda.current_stream()
    y = cnnops.roi_align(cnnops.cuda.array(x), cnnops.cuda.array(boxes), 2, 1.0, 2, True, stream=s)
    cnnops.cuda.synchronize()
    assert np.array_equal(y.numpy(), ref)
    assert "stream" in inspect.signature(cnnops.roi_pool_backward).parameters
