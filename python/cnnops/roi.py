"""Region ops for two-stage detectors (Fast/Faster/Mask R-CNN, R-FCN), forward and backward, and
the region-proposal helpers around them.

- ``roi_pool``, ``roi_align``, ``ps_roi_pool``, ``ps_roi_align``: torchvision.ops' names,
  arguments, defaults and results, each with its own ``*_backward``.
- ``roi_levels``: the FPN rule that assigns each box to a pyramid level (torchvision's
  ``MultiScaleRoIAlign`` / ``LevelMapper``).
- ``anchors``: torchvision's ``AnchorGenerator`` grid; ``box_encode`` / ``box_decode``: Faster
  R-CNN's (dx, dy, dw, dh) box coding with weights and the dw/dh clamp (torchvision's ``BoxCoder``).

Boxes come as torchvision takes them: one (K, 5) array of (batch index, x1, y1, x2, y2), or a list
with one (Ki, 4) array of (x1, y1, x2, y2) per image (image i's regions then come i-th in the
output). Features are (N, C, H, W), or (N, H, W, C) with ``data_format="NHWC"``; outputs and
gradients come back in the features' layout and array type. float32/float64 (float16/bfloat16
too on CUDA arrays, computed in float32); boxes have the features' dtype (float32 also accepted for
float16/bfloat16 features).

The region ops compute torchvision's arithmetic step by step (sample positions, rounding, windows)
in the features' precision, so values equal ``torchvision.ops`` on the CPU; backward passes are
deterministic (the same bits for any thread count, no atomics on the GPU). The anchor and box-coding
helpers are vectorised NumPy in the boxes' dtype (they are element-wise and memory-bound) and take
CPU arrays."""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import _C
from ._args import channels_last, flag, integer, is_int, ntuple, real, shape_of
from ._arrays import prepare, wrap

_KIND = {"roi_pool": 0, "roi_align": 1, "ps_roi_pool": 2, "ps_roi_align": 3}


# ------------------------------------------------------------------------------------------------
# arguments


def _boxes_arg(boxes, op):
    """(the boxes for the core, per_image): a (K, 5) array, or a list/tuple of (Ki, 4) arrays."""
    if isinstance(boxes, (list, tuple)):
        if len(boxes) == 0:
            raise ValueError(f"{op}: expected boxes as a (K, 5) array or a non-empty list of per-image (Ki, 4) "
                             f"arrays, got an empty list")
        return [prepare(b, op, f"boxes[{i}]") for i, b in enumerate(boxes)], True
    return prepare(boxes, op, "boxes"), False


def _common(op, output_size, spatial_scale, data_format):
    oh, ow = ntuple(output_size, 2, "output_size", op, minimum=1)
    scale = real(spatial_scale, "spatial_scale", op)
    return oh, ow, scale, channels_last(data_format, 2, op)


def _in_shape(input, op, cl):
    """The features' shape from the input array or its 4-int shape (in the data_format's layout)."""
    if isinstance(input, (tuple, list)):
        if len(input) == 4 and all(is_int(v) for v in input):
            return [int(v) for v in input]
    elif input is not None:
        return list(shape_of(prepare(input, op, "input")))
    layout = "(N, H, W, C)" if cl else "(N, C, H, W)"
    raise TypeError(f"{op}: expected input as the forward's input array or its shape {layout}, got {input!r}")


def _forward(op, input, boxes, output_size, spatial_scale, sampling_ratio, aligned, data_format,
             return_indices=False):
    oh, ow, scale, cl = _common(op, output_size, spatial_scale, data_format)
    sr = integer(sampling_ratio, "sampling_ratio", op)
    x = prepare(input, op, "input")
    b, per_image = _boxes_arg(boxes, op)
    y, idx = _C.roi(op, x, b, per_image, _KIND[op], oh, ow, scale, sr, flag(aligned, "aligned", op), cl,
                    return_indices)
    if return_indices:
        return wrap(y, input), wrap(idx, input)
    return wrap(y, input)


def _backward(op, grad_output, input, boxes, output_size, spatial_scale, sampling_ratio, aligned, data_format,
              indices=None):
    fwd = op[:-len("_backward")]
    oh, ow, scale, cl = _common(op, output_size, spatial_scale, data_format)
    sr = integer(sampling_ratio, "sampling_ratio", op)
    dy = prepare(grad_output, op, "grad_output")
    shape = _in_shape(input, op, cl)
    b, per_image = _boxes_arg(boxes, op)
    ix = prepare(indices, op, "indices", optional=True)
    dx = _C.roi_backward(op, dy, b, per_image, ix, shape, _KIND[fwd], oh, ow, scale, sr,
                         flag(aligned, "aligned", op), cl)
    return wrap(dx, grad_output)


# ------------------------------------------------------------------------------------------------
# the region ops


def roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False, *,
              data_format="NCHW"):
    """RoI Align (Mask R-CNN): input (N, C, H, W), boxes (K, 5) or a list of (Ki, 4) ->
    (K, C, PH, PW) (or (K, PH, PW, C) with data_format="NHWC").

    Each output bin averages sampling_ratio x sampling_ratio bilinear samples (sampling_ratio <= 0:
    ceil(bin size) per side, adaptive). Box coordinates are multiplied by spatial_scale (the
    feature map's scale relative to the image, e.g. 1/16); aligned=True shifts them by -0.5 pixel
    (pixel centres at half-integers, the Detectron2 convention); aligned=False keeps torchvision's
    legacy rule, which also enlarges regions smaller than one pixel to one pixel. Samples outside
    [-1, H] x [-1, W] read zero."""
    return _forward("roi_align", input, boxes, output_size, spatial_scale, sampling_ratio, aligned, data_format)


def roi_align_backward(grad_output, input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1,
                       aligned=False, *, data_format="NCHW"):
    """Gradient of :func:`roi_align`: grad_output (K, C, PH, PW) -> grad_input (N, C, H, W).

    input: the forward's input array or its shape (only the shape is read)."""
    return _backward("roi_align_backward", grad_output, input, boxes, output_size, spatial_scale, sampling_ratio,
                     aligned, data_format)


def roi_pool(input, boxes, output_size, spatial_scale=1.0, return_indices=False, *, data_format="NCHW"):
    """RoI max pooling (Fast R-CNN): input (N, C, H, W), boxes (K, 5) or a list of (Ki, 4) ->
    (K, C, PH, PW) (or (K, PH, PW, C)).

    Box corners are rounded after scaling (half away from zero) and the region split into
    floor/ceil bins, as torchvision. An empty bin gives 0; NaN never wins the maximum.
    return_indices: also return the argmax (int64, h * W + w within the image's plane, -1 for an
    empty bin), which :func:`roi_pool_backward` takes."""
    return _forward("roi_pool", input, boxes, output_size, spatial_scale, -1, False, data_format,
                    return_indices=flag(return_indices, "return_indices", "roi_pool"))


def roi_pool_backward(grad_output, input, boxes, output_size, spatial_scale=1.0, indices=None, *,
                      data_format="NCHW"):
    """Gradient of :func:`roi_pool`: grad_output (K, C, PH, PW) -> grad_input (N, C, H, W), each
    bin's gradient added at its argmax.

    indices: the argmax from ``roi_pool(..., return_indices=True)``, or None to recompute it from
    ``input`` (then the forward's input array; with indices, its shape is enough)."""
    op = "roi_pool_backward"
    if indices is None:
        if isinstance(input, (tuple, list)) or input is None:
            raise TypeError(f"{op}: expected input as the forward's input array when indices is None (the argmax "
                            f"is recomputed from it), got {input!r}")
        _, indices = _forward("roi_pool", input, boxes, output_size, spatial_scale, -1, False, data_format,
                              return_indices=True)
    return _backward(op, grad_output, input, boxes, output_size, spatial_scale, -1, False, data_format,
                     indices=indices)


def ps_roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, *, data_format="NCHW"):
    """Position-sensitive RoI Align (R-FCN): input (N, C, H, W) with C = C' * PH * PW, boxes (K, 5)
    or a list of (Ki, 4) -> (K, C', PH, PW) (or (K, PH, PW, C')).

    Output channel c at bin (ph, pw) averages the samples of input channel (c * PH + ph) * PW + pw.
    Coordinates are shifted by -0.5 (always aligned) and never enlarged, as torchvision; with
    sampling_ratio <= 0 an empty region has zero samples and, as in torchvision, gives NaN (0/0)."""
    return _forward("ps_roi_align", input, boxes, output_size, spatial_scale, sampling_ratio, True, data_format)


def ps_roi_align_backward(grad_output, input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, *,
                          data_format="NCHW"):
    """Gradient of :func:`ps_roi_align`: grad_output (K, C', PH, PW) -> grad_input (N, C, H, W)."""
    return _backward("ps_roi_align_backward", grad_output, input, boxes, output_size, spatial_scale,
                     sampling_ratio, True, data_format)


def ps_roi_pool(input, boxes, output_size, spatial_scale=1.0, *, data_format="NCHW"):
    """Position-sensitive RoI average pooling (R-FCN): input (N, C, H, W) with C = C' * PH * PW ->
    (K, C', PH, PW) (or (K, PH, PW, C')).

    Output channel c at bin (ph, pw) averages input channel (c * PH + ph) * PW + pw over the bin's
    window. As torchvision's forward, windows are clipped to H - 1 and W - 1 (the last row and
    column are never pooled) and regions have at least one pixel."""
    return _forward("ps_roi_pool", input, boxes, output_size, spatial_scale, -1, False, data_format)


def ps_roi_pool_backward(grad_output, input, boxes, output_size, spatial_scale=1.0, *, data_format="NCHW"):
    """Gradient of :func:`ps_roi_pool`: grad_output (K, C', PH, PW) -> grad_input (N, C, H, W).

    The exact gradient of the forward above. torchvision's backward clips windows to H and W where
    its forward clips to H - 1 and W - 1, so its gradient differs from this one (and from its own
    forward's) in bins that reach the last row or column."""
    return _backward("ps_roi_pool_backward", grad_output, input, boxes, output_size, spatial_scale, -1, False,
                     data_format)


# ------------------------------------------------------------------------------------------------
# host helpers: levels, anchors, box coding


def _host(x, op, name):
    """A CPU array as NumPy (no copy where possible); arrays on another device are refused."""
    a = prepare(x, op, name)
    if isinstance(a, np.ndarray):
        return a
    dev_type, dev_id = a.__dlpack_device__()
    if int(dev_type) != 1:
        raise NotImplementedError(f"{op}: no kernel for arrays on cuda:{dev_id} in this build (the op runs on CPU "
                                  f"arrays: move the inputs to the CPU)")
    return np.from_dlpack(a)


def _float_boxes(x, op, name, cols=4):
    a = _host(x, op, name)
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: expected {name} with dtype float32 or float64, got {a.dtype}")
    if a.ndim != 2 or a.shape[1] != cols:
        raise ValueError(f"{op}: expected {name} of shape (N, {cols}), got {a.shape}")
    bad = ~np.isfinite(a).all(axis=1)
    if bad.any():
        raise ValueError(f"{op}: expected finite values in {name}, got {a[bad][0].tolist()} in row "
                         f"{int(np.flatnonzero(bad)[0])}")
    return a


def roi_levels(boxes, k_min, k_max, canonical_scale=224, canonical_level=4, eps=1e-6):
    """The FPN level index of each box (torchvision's LevelMapper, FPN paper eq. 1):
    floor(canonical_level + log2(sqrt(area) / canonical_scale) + eps), clamped to [k_min, k_max],
    minus k_min, as int64 (K,).

    boxes: (K, 4) (x1, y1, x2, y2) or a list of per-image (Ki, 4) arrays (concatenated in order);
    computed in the boxes' dtype. A zero-area box goes to k_min. Boxes with x2 < x1 or y2 < y1 and
    non-finite coordinates raise ValueError."""
    op = "roi_levels"
    k_min = integer(k_min, "k_min", op)
    k_max = integer(k_max, "k_max", op)
    if k_max < k_min:
        raise ValueError(f"{op}: expected k_min <= k_max, got k_min={k_min}, k_max={k_max}")
    s0 = real(canonical_scale, "canonical_scale", op)
    lvl0 = real(canonical_level, "canonical_level", op)
    eps = real(eps, "eps", op)
    if not (math.isfinite(s0) and s0 > 0):
        raise ValueError(f"{op}: expected a positive canonical_scale, got {canonical_scale}")
    like = boxes[0] if isinstance(boxes, (list, tuple)) and boxes else boxes
    if isinstance(boxes, (list, tuple)):
        if not boxes:
            raise ValueError(f"{op}: expected boxes as a (K, 4) array or a non-empty list of (Ki, 4) arrays, got an "
                             f"empty list")
        parts = [_float_boxes(b, op, f"boxes[{i}]") for i, b in enumerate(boxes)]
        if len({p.dtype for p in parts}) > 1:
            got = sorted({str(p.dtype) for p in parts})
            raise TypeError(f"{op}: expected every boxes[i] with one dtype, got {got}")
        b = np.concatenate(parts) if len(parts) > 1 else parts[0]
    else:
        b = _float_boxes(boxes, op, "boxes")
    bad = (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{op}: expected boxes with x1 <= x2 and y1 <= y2, got {b[i].tolist()} in row {i}")
    dt = b.dtype.type
    with np.errstate(divide="ignore"):
        s = np.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))
        lv = np.floor(dt(lvl0) + np.log2(s / dt(s0)) + dt(eps))
    lv = np.clip(lv, k_min, k_max)
    return wrap(lv.astype(np.int64) - k_min, like)


def _per_level(v, n, what, op):
    """torchvision's AnchorGenerator spellings: a tuple per level, or a flat tuple (one size per
    level for sizes; the same ratios for every level for aspect_ratios)."""
    if not isinstance(v, (tuple, list)) or not v:
        raise TypeError(f"{op}: expected {what} as a tuple per feature map (or one flat tuple), got {v!r}")
    if not isinstance(v[0], (tuple, list)):
        v = tuple((e,) for e in v) if what == "sizes" else (tuple(v),) * n
    elif what == "aspect_ratios" and len(v) == 1:
        v = tuple(v) * n  # one set of ratios for every level
    if len(v) != n:
        raise ValueError(f"{op}: expected {what} for each of the {n} feature maps, got {len(v)}")
    out = []
    for level in v:
        if not isinstance(level, (tuple, list)) or not level or not all(isinstance(e, numbers.Real)
                                                                        and not isinstance(e, bool) for e in level):
            raise TypeError(f"{op}: expected {what} as non-empty tuples of numbers, got {level!r}")
        if not all(math.isfinite(e) and e > 0 for e in level):
            raise ValueError(f"{op}: expected positive finite {what}, got {tuple(level)}")
        out.append(tuple(level))
    return out


def anchors(feature_sizes, strides, sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),), dtype="float32"):
    """The anchors of every feature-map location, torchvision's AnchorGenerator grid:
    ((sum over levels of H * W * A), 4) boxes (x1, y1, x2, y2) in image pixels, level by level,
    location by location (row-major), then aspect ratio by size within a location.

    feature_sizes: (H, W) per level; strides: (stride_h, stride_w) or one int per level
    (torchvision uses image_size // feature_size); sizes and aspect_ratios: a tuple per level
    (A = len(sizes[l]) * len(aspect_ratios[l])). An anchor of size s and ratio r = h / w is
    (-w/2, -h/2, w/2, h/2) with h = sqrt(r) * s, w = s / sqrt(r), rounded half to even, shifted to
    (x * stride_w, y * stride_h); computed in `dtype` as torchvision does."""
    op = "anchors"
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"{op}: expected dtype float32 or float64, got {dtype!r}")
    if not isinstance(feature_sizes, (tuple, list)) or not feature_sizes:
        raise TypeError(f"{op}: expected feature_sizes as a non-empty list of (H, W), got {feature_sizes!r}")
    fs = [ntuple(f, 2, "feature_sizes", op, minimum=0) for f in feature_sizes]
    if not isinstance(strides, (tuple, list)) or len(strides) != len(fs):
        raise ValueError(f"{op}: expected one stride per feature map ({len(fs)}), got {strides!r}")
    st = [ntuple(s, 2, "strides", op, minimum=1) for s in strides]
    szs = _per_level(sizes, len(fs), "sizes", op)
    ars = _per_level(aspect_ratios, len(fs), "aspect_ratios", op)
    t = dt.type
    out = []
    for (gh, gw), (sh, sw), sz, ar in zip(fs, st, szs, ars):
        scales = np.asarray(sz, dt)
        h_ratios = np.sqrt(np.asarray(ar, dt))
        w_ratios = t(1) / h_ratios
        ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
        hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
        base = np.round(np.stack([-ws, -hs, ws, hs], axis=1) / t(2))
        sx = (np.arange(gw, dtype=np.int64) * sw).astype(dt)
        sy = (np.arange(gh, dtype=np.int64) * sh).astype(dt)
        yy, xx = np.meshgrid(sy, sx, indexing="ij")
        xx, yy = xx.reshape(-1), yy.reshape(-1)
        shifts = np.stack([xx, yy, xx, yy], axis=1)
        out.append((shifts[:, None, :] + base[None, :, :]).reshape(-1, 4))
    return np.concatenate(out) if len(out) > 1 else out[0]


def _weights(weights, dt, op):
    if not (isinstance(weights, (tuple, list)) and len(weights) == 4 and all(
            isinstance(w, numbers.Real) and not isinstance(w, bool) for w in weights)):
        raise TypeError(f"{op}: expected weights as 4 numbers (wx, wy, ww, wh), got {weights!r}")
    if not all(math.isfinite(w) and w != 0 for w in weights):
        raise ValueError(f"{op}: expected finite non-zero weights, got {tuple(weights)}")
    return [dt.type(w) for w in weights]


def box_encode(reference_boxes, proposals, weights=(1.0, 1.0, 1.0, 1.0)):
    """Faster R-CNN box coding (torchvision's BoxCoder.encode): the (dx, dy, dw, dh) (N, 4) that
    turn proposals (N, 4) into reference_boxes (N, 4), both (x1, y1, x2, y2):
    dx = wx * (gx - px) / pw, dy = wy * (gy - py) / ph, dw = ww * log(gw / pw), dh = wh * log(gh / ph)
    with centres (gx, gy), (px, py) and sizes gw, gh, pw, ph. Computed in the boxes' dtype in
    torchvision's order; a zero-size proposal gives inf/NaN as in torchvision."""
    op = "box_encode"
    g = _float_boxes(reference_boxes, op, "reference_boxes")
    p = _float_boxes(proposals, op, "proposals")
    if g.dtype != p.dtype:
        raise TypeError(f"{op}: expected reference_boxes and proposals of one dtype, got {g.dtype} and {p.dtype}")
    if g.shape != p.shape:
        raise ValueError(f"{op}: expected reference_boxes and proposals of one shape, got {g.shape} and {p.shape}")
    wx, wy, ww, wh = _weights(weights, g.dtype, op)
    half = g.dtype.type(0.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        ex_w, ex_h = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
        ex_x, ex_y = p[:, 0] + half * ex_w, p[:, 1] + half * ex_h
        gt_w, gt_h = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
        gt_x, gt_y = g[:, 0] + half * gt_w, g[:, 1] + half * gt_h
        out = np.stack([wx * (gt_x - ex_x) / ex_w, wy * (gt_y - ex_y) / ex_h,
                        ww * np.log(gt_w / ex_w), wh * np.log(gt_h / ex_h)], axis=1)
    return wrap(out, reference_boxes)


def box_decode(rel_codes, boxes, weights=(1.0, 1.0, 1.0, 1.0), bbox_xform_clip=math.log(1000.0 / 16)):
    """Inverse of :func:`box_encode` (torchvision's BoxCoder.decode_single): rel_codes (N, 4 * J)
    (J sets of (dx, dy, dw, dh), e.g. one per class) applied to boxes (N, 4) -> (N, 4 * J) boxes.

    dw and dh are divided by their weights and clamped from above at bbox_xform_clip
    (log(1000 / 16) by default) before exp, so a wild prediction cannot overflow. Computed in
    rel_codes' dtype; boxes are converted to it."""
    op = "box_decode"
    r = _host(rel_codes, op, "rel_codes")
    if r.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: expected rel_codes with dtype float32 or float64, got {r.dtype}")
    if r.ndim != 2 or r.shape[1] % 4 != 0 or r.shape[1] == 0:
        raise ValueError(f"{op}: expected rel_codes of shape (N, 4 * J), got {r.shape}")
    bad = ~np.isfinite(r).all(axis=1)
    if bad.any():
        raise ValueError(f"{op}: expected finite values in rel_codes, got a non-finite one in row "
                         f"{int(np.flatnonzero(bad)[0])}")
    b = _float_boxes(boxes, op, "boxes").astype(r.dtype, copy=False)
    if b.shape[0] != r.shape[0]:
        raise ValueError(f"{op}: expected one box per row of rel_codes ({r.shape[0]}), got {b.shape[0]}")
    clip = real(bbox_xform_clip, "bbox_xform_clip", op)
    dt = r.dtype.type
    wx, wy, ww, wh = _weights(weights, r.dtype, op)
    widths, heights = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    half = dt(0.5)
    ctr_x, ctr_y = b[:, 0] + half * widths, b[:, 1] + half * heights
    dx, dy = r[:, 0::4] / wx, r[:, 1::4] / wy
    dw = np.minimum(r[:, 2::4] / ww, dt(clip))
    dh = np.minimum(r[:, 3::4] / wh, dt(clip))
    with np.errstate(over="ignore"):
        px = dx * widths[:, None] + ctr_x[:, None]
        py = dy * heights[:, None] + ctr_y[:, None]
        pw = np.exp(dw) * widths[:, None]
        ph = np.exp(dh) * heights[:, None]
    cw, ch = half * pw, half * ph
    out = np.stack([px - cw, py - ch, px + cw, py + ch], axis=2).reshape(r.shape[0], -1)
    return wrap(out, rel_codes)


ROI_FUNCTIONS = ["roi_align", "roi_align_backward", "roi_pool", "roi_pool_backward", "ps_roi_align",
                 "ps_roi_align_backward", "ps_roi_pool", "ps_roi_pool_backward"]
HELPER_FUNCTIONS = ["roi_levels", "anchors", "box_encode", "box_decode"]


def _with_stream_argument():
    """Every region op takes ``stream=`` for CUDA arrays (see cnnops.cuda.streamable)."""
    from .cuda import streamable

    g = globals()
    for name in ROI_FUNCTIONS:
        g[name] = streamable(g[name])


_with_stream_argument()
