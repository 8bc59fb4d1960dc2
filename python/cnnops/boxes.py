"""Box utilities and the IoU family: box_convert, box_area, clip_boxes_to_image,
remove_small_boxes; pairwise box_iou / generalized_box_iou / distance_box_iou / complete_box_iou;
element-wise iou_loss / giou_loss / diou_loss / ciou_loss and their ``*_backward``.

Names and argument order follow ``torchvision.ops``; the extras are keyword-only.

The contract (every op here, and the NMS family, which imports the checks below):

* Boxes are an (N, 4) float32 or float64 array on the CPU or a CUDA device (NumPy, PyTorch, CuPy,
  any DLPack array; every array of a call on one device); results come back as the caller's array
  type on its device. Every op takes ``stream=`` for CUDA arrays. ``xyxy`` = (x1, y1, x2, y2)
  corners, ``xywh`` = (x1, y1, w, h), ``cxcywh`` = (cx, cy, w, h) (YOLO's (b_x, b_y, b_w, b_h) is
  cxcywh).
* ``offset=0`` (default): continuous coordinates, width = x2 - x1. ``offset=1``: the +1 pixel
  convention of inclusive integer corners, width = x2 - x1 + 1, used for every width and height
  (areas, intersections, enclosing boxes, CIoU aspect ratios).
* Degenerate (zero-area) boxes are valid: IoU with them is 0, never NaN; each penalty term whose
  denominator is 0 (enclosing area for GIoU, enclosing diagonal for DIoU, 1 - IoU + v for CIoU's
  alpha) counts as 0; CIoU's aspect angle is atan2(w, h), so a zero-height box has angle pi/2
  and a point box angle 0.
* Inverted corners (x2 < x1 or y2 < y1; w < 0 or h < 0 for xywh/cxcywh) raise ValueError, unless
  ``canonicalize=True``: then each box's corners are sorted first (the caller's array is never
  modified) and gradients are routed back to the coordinates as given.
* NaN or infinite coordinates raise ValueError naming the argument and the row.
* eps sits exactly where torchvision puts it, term by term:

  - ``distance_box_iou``: IoU - rho^2 / (c^2 + eps) (plain IoU, no eps in the union);
  - ``complete_box_iou``: that DIoU - alpha * v with alpha = v / (1 - IoU + v + eps);
  - ``box_iou``, ``generalized_box_iou``: no eps;
  - ``iou_loss``: 1 - inter / (union + eps); ``giou_loss``: eps in the union and in the enclosing
    area, 1 - IoU + (C - U) / (C + eps); ``diou_loss``: eps in the union and in c^2;
  - ``ciou_loss``: eps only in alpha's denominator. torchvision's complete_box_iou_loss computes
    its IoU and its rho^2 / c^2 term with the DIoU loss helper called without eps, so the union
    and c^2 always get 1e-7 there, whatever eps is; we do the same, so
    ``ciou_loss(..., eps=e)`` = 1 - inter / (union + 1e-7) + rho^2 / (c^2 + 1e-7) + alpha * v with
    alpha = v / (1 - inter / (union + 1e-7) + v + e). With the default eps = 1e-7 this is the
    usual formula.

  CIoU's alpha is held constant in the backward, as torchvision computes it under no_grad. The
  results equal torchvision's, up to rounding, wherever torchvision's are finite.
* Gradients at the kinks of min/max (touching edges) follow torch: half to each operand on a tie.
"""
from __future__ import annotations

import math

import numpy as np

from . import _C
from ._args import choice, is_int, is_real, to_float
from ._arrays import prepare, wrap

FORMATS = ("xyxy", "xywh", "cxcywh")
REDUCTIONS = ("none", "mean", "sum")


# ---- argument checks (also used by cnnops.nms) ----

def check_format(fmt, op: str, name: str = "format") -> str:
    """``fmt`` must be one of 'xyxy', 'xywh', 'cxcywh'; returns it."""
    return choice(fmt, FORMATS, name, op)


def check_boxes_shape(boxes, op: str, name: str = "boxes"):
    """The array prepared for the core, which checks its shape (N, 4), dtype and device."""
    return prepare(boxes, op, name)


def check_boxes(boxes, op: str, name: str = "boxes", fmt: str = "xyxy", canonicalize: bool = False):
    """Every rule of the contract on one boxes argument: (N, 4), float32/float64, finite
    coordinates, corners ordered unless ``canonicalize`` (a CUDA array's values checked on its
    device). Raises ValueError/TypeError naming ``op``
    and ``name``; returns the array prepared for the core (no copy of the caller's data)."""
    check_format(fmt, op)
    b = check_boxes_shape(boxes, op, name)
    _C.box_check(op, b, name, fmt, bool(canonicalize))
    return b


def check_offset(offset, op: str) -> int:
    """offset must be 0 or 1 (an int)."""
    if not is_int(offset) or offset not in (0, 1):
        raise ValueError(f"{op}: expected offset 0 or 1, got {offset!r}")
    return int(offset)


def check_eps(eps, op: str) -> float:
    """eps must be a real number, finite and >= 0."""
    if not is_real(eps):
        raise ValueError(f"{op}: expected eps a finite number >= 0, got {eps!r}")
    try:
        e = float(eps)
    except OverflowError:
        raise ValueError(f"{op}: expected eps a finite number >= 0, got an int too large for a float") from None
    if not (math.isfinite(e) and e >= 0):
        raise ValueError(f"{op}: expected eps a finite number >= 0, got {eps!r}")
    return e


def check_reduction(reduction, op: str) -> str:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"{op}: expected reduction 'none', 'mean' or 'sum', got {reduction!r}")
    return reduction


def _pair(boxes1, boxes2, op):
    return check_boxes_shape(boxes1, op, "boxes1"), check_boxes_shape(boxes2, op, "boxes2")


# ---- utilities ----

def box_convert(boxes, in_fmt: str, out_fmt: str, *, canonicalize: bool = False):
    """Convert boxes (N, 4) between 'xyxy', 'xywh' and 'cxcywh' -> (N, 4).

    cx = (x1 + x2) / 2, w = x2 - x1 (offset-free: the +1 convention does not apply to conversion).
    With canonicalize=True a box with inverted corners / negative size is sorted first, so the
    output is always ordered."""
    op = "box_convert"
    check_format(in_fmt, op, "in_fmt")
    check_format(out_fmt, op, "out_fmt")
    b = check_boxes_shape(boxes, op)
    return wrap(_C.box_convert(op, b, in_fmt, out_fmt, bool(canonicalize)), boxes)


def box_area(boxes, *, offset: int = 0, canonicalize: bool = False):
    """Areas (N,) of xyxy boxes (N, 4): (x2 - x1 + offset) * (y2 - y1 + offset)."""
    op = "box_area"
    off = check_offset(offset, op)
    b = check_boxes_shape(boxes, op)
    return wrap(_C.box_area(op, b, off, bool(canonicalize)), boxes)


def clip_boxes_to_image(boxes, size, *, canonicalize: bool = False):
    """Clip xyxy boxes (N, 4) to an image of size (height, width): x to [0, width], y to
    [0, height] (torchvision's rule) -> (N, 4)."""
    op = "clip_boxes_to_image"
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(is_real(s) for s in size)):
        raise TypeError(f"{op}: expected size as (height, width), got {size!r}")
    b = check_boxes_shape(boxes, op)
    h, w = to_float(size[0], "size", op), to_float(size[1], "size", op)
    return wrap(_C.clip_boxes_to_image(op, b, h, w, bool(canonicalize)), boxes)


def remove_small_boxes(boxes, min_size: float, *, offset: int = 0, canonicalize: bool = False):
    """int64 indices (K,), ascending, of the xyxy boxes (N, 4) whose width and height are both
    >= min_size (width = x2 - x1 + offset)."""
    op = "remove_small_boxes"
    off = check_offset(offset, op)
    if not is_real(min_size):
        raise TypeError(f"{op}: expected min_size as a number, got {min_size!r}")
    b = check_boxes_shape(boxes, op)
    return wrap(_C.remove_small_boxes(op, b, to_float(min_size, "min_size", op), off, bool(canonicalize)), boxes)


# ---- pairwise (N x M) ----

def _pairwise(kind, op, boxes1, boxes2, eps, offset, canonicalize):
    off = check_offset(offset, op)
    e = check_eps(eps, op)
    b1, b2 = _pair(boxes1, boxes2, op)
    return wrap(_C.box_pairwise(op, kind, b1, b2, off, e, bool(canonicalize)), boxes1)


def box_iou(boxes1, boxes2, *, offset: int = 0, canonicalize: bool = False):
    """IoU of every pair: boxes1 (N, 4), boxes2 (M, 4) xyxy -> (N, M), inter / union
    (0 where the union is 0)."""
    return _pairwise("iou", "box_iou", boxes1, boxes2, 0.0, offset, canonicalize)


def generalized_box_iou(boxes1, boxes2, *, offset: int = 0, canonicalize: bool = False):
    """GIoU of every pair: (N, 4) x (M, 4) -> (N, M), IoU - (C - U) / C with C the area of the
    smallest enclosing box and U the union (penalty 0 where C is 0). Values in [-1, 1]."""
    return _pairwise("giou", "generalized_box_iou", boxes1, boxes2, 0.0, offset, canonicalize)


def distance_box_iou(boxes1, boxes2, eps: float = 1e-7, *, offset: int = 0, canonicalize: bool = False):
    """DIoU of every pair: (N, 4) x (M, 4) -> (N, M), IoU - rho^2 / (c^2 + eps) with rho the
    distance between the centres, c the diagonal of the smallest enclosing box and IoU the plain
    inter / union (eps only in c^2, as torchvision's distance_box_iou)."""
    return _pairwise("diou", "distance_box_iou", boxes1, boxes2, eps, offset, canonicalize)


def complete_box_iou(boxes1, boxes2, eps: float = 1e-7, *, offset: int = 0, canonicalize: bool = False):
    """CIoU of every pair: (N, 4) x (M, 4) -> (N, M), DIoU - alpha * v with DIoU as in
    :func:`distance_box_iou` (eps in c^2 only), v = 4/pi^2 (atan(w2/h2) - atan(w1/h1))^2 and
    alpha = v / (1 - IoU + v + eps), IoU the plain inter / union (torchvision's complete_box_iou)."""
    return _pairwise("ciou", "complete_box_iou", boxes1, boxes2, eps, offset, canonicalize)


# ---- element-wise losses (N vs N) ----

def _flat_pairs(boxes1, boxes2, op):
    """Pairs of any batch shape (..., 4) as two (N, 4) arrays (views where possible), plus the
    batch shape; the two shapes must be equal."""
    b1, b2 = prepare(boxes1, op, "boxes1"), prepare(boxes2, op, "boxes2")
    s1, s2 = tuple(int(v) for v in b1.shape), tuple(int(v) for v in b2.shape)
    for name, s in (("boxes1", s1), ("boxes2", s2)):
        if len(s) < 1 or s[-1] != 4:
            raise ValueError(f"{op}: expected {name} with shape (..., 4), got {s}")
    if s1 != s2:
        raise ValueError(f"{op}: expected boxes1 and boxes2 with the same shape, got {s1} and {s2}")
    if len(s1) != 2:
        b1, b2 = b1.reshape(-1, 4), b2.reshape(-1, 4)
    return b1, b2, s1[:-1]


def _loss(kind, op, boxes1, boxes2, reduction, eps, offset, canonicalize):
    check_reduction(reduction, op)
    off = check_offset(offset, op)
    e = check_eps(eps, op)
    b1, b2, batch = _flat_pairs(boxes1, boxes2, op)
    out = wrap(_C.box_loss(op, kind, b1, b2, reduction, e, off, bool(canonicalize)), boxes1)
    return out.reshape(batch) if reduction == "none" and len(batch) != 1 else out


def _dtype_name(x) -> str:
    return str(getattr(x, "dtype", "")).rsplit(".", 1)[-1]


def _on_device_of(a, ref):
    """The host array `a` on the CUDA device of `ref` (a cnnops array there), else `a` itself."""
    dev = getattr(ref, "__dlpack_device__", None)
    if dev is not None:
        kind, index = dev()
        if int(kind) == 2:  # kDLCUDA
            from .cuda import array

            return array(a, device=int(index))
    return a


def _loss_backward(kind, op, grad_output, boxes1, boxes2, reduction, eps, offset, canonicalize):
    check_reduction(reduction, op)
    off = check_offset(offset, op)
    e = check_eps(eps, op)
    b1, b2, batch = _flat_pairs(boxes1, boxes2, op)
    if is_real(grad_output):
        if reduction == "none":
            raise ValueError(f"{op}: expected grad_output with shape {batch} for reduction 'none', got a scalar")
        grad_output = _on_device_of(np.asarray(to_float(grad_output, "grad_output", op),
                                               dtype=np.float32 if _dtype_name(b1) == "float32" else np.float64), b1)
    g = prepare(grad_output, op, "grad_output")
    if reduction == "none" and len(batch) != 1:
        gs = tuple(int(v) for v in g.shape)
        if gs != batch:
            raise ValueError(f"{op}: expected grad_output with shape {batch} for reduction 'none', got {gs}")
        g = g.reshape(-1)
    g1, g2 = _C.box_loss_backward(op, kind, g, b1, b2, reduction, e, off, bool(canonicalize))
    g1, g2 = wrap(g1, boxes1), wrap(g2, boxes1)
    if len(batch) != 1:
        g1, g2 = g1.reshape(*batch, 4), g2.reshape(*batch, 4)
    return g1, g2


_LOSS_DOC = """
    boxes1 (N, 4) (predictions), boxes2 (N, 4) (targets), xyxy; any batch shape (..., 4) works, as
    in torchvision (the pairs are flattened). Returns the per-pair loss (N,) (the batch shape) for
    reduction="none", else a 0-d array with the mean (0 for N = 0) or the sum.
    eps is added where torchvision adds it (the module docstring lists every term); offset and
    canonicalize as in the contract."""

_BACKWARD_DOC = """
    grad_output: (N,) (the batch shape) for reduction="none", one element (or a Python number) for
    "mean"/"sum"; the other arguments as given to the forward. Returns (grad_boxes1, grad_boxes2),
    each shaped like the boxes.
    Deterministic: the same result for any thread count."""


def iou_loss(boxes1, boxes2, reduction: str = "none", eps: float = 1e-7, *, offset: int = 0,
             canonicalize: bool = False):
    """IoU loss 1 - inter / (union + eps) of each pair."""
    return _loss("iou", "iou_loss", boxes1, boxes2, reduction, eps, offset, canonicalize)


def giou_loss(boxes1, boxes2, reduction: str = "none", eps: float = 1e-7, *, offset: int = 0,
              canonicalize: bool = False):
    """GIoU loss 1 - IoU + (C - U) / (C + eps) of each pair (torchvision's generalized_box_iou_loss)."""
    return _loss("giou", "giou_loss", boxes1, boxes2, reduction, eps, offset, canonicalize)


def diou_loss(boxes1, boxes2, reduction: str = "none", eps: float = 1e-7, *, offset: int = 0,
              canonicalize: bool = False):
    """DIoU loss 1 - IoU + rho^2 / (c^2 + eps) of each pair (torchvision's distance_box_iou_loss)."""
    return _loss("diou", "diou_loss", boxes1, boxes2, reduction, eps, offset, canonicalize)


def ciou_loss(boxes1, boxes2, reduction: str = "none", eps: float = 1e-7, *, offset: int = 0,
              canonicalize: bool = False):
    """CIoU loss 1 - IoU + rho^2 / (c^2 + 1e-7) + alpha * v of each pair, with
    IoU = inter / (union + 1e-7) and alpha = v / (1 - IoU + v + eps), a constant for the gradient:
    torchvision's complete_box_iou_loss term by term. eps only reaches alpha there (its IoU and
    distance term come from the DIoU helper called with its default 1e-7), and so it does here."""
    return _loss("ciou", "ciou_loss", boxes1, boxes2, reduction, eps, offset, canonicalize)


def iou_loss_backward(grad_output, boxes1, boxes2, reduction: str = "none", eps: float = 1e-7, *,
                      offset: int = 0, canonicalize: bool = False):
    """Gradients of :func:`iou_loss`."""
    return _loss_backward("iou", "iou_loss_backward", grad_output, boxes1, boxes2, reduction, eps, offset,
                          canonicalize)


def giou_loss_backward(grad_output, boxes1, boxes2, reduction: str = "none", eps: float = 1e-7, *,
                       offset: int = 0, canonicalize: bool = False):
    """Gradients of :func:`giou_loss`."""
    return _loss_backward("giou", "giou_loss_backward", grad_output, boxes1, boxes2, reduction, eps, offset,
                          canonicalize)


def diou_loss_backward(grad_output, boxes1, boxes2, reduction: str = "none", eps: float = 1e-7, *,
                       offset: int = 0, canonicalize: bool = False):
    """Gradients of :func:`diou_loss`."""
    return _loss_backward("diou", "diou_loss_backward", grad_output, boxes1, boxes2, reduction, eps, offset,
                          canonicalize)


def ciou_loss_backward(grad_output, boxes1, boxes2, reduction: str = "none", eps: float = 1e-7, *,
                       offset: int = 0, canonicalize: bool = False):
    """Gradients of :func:`ciou_loss` (alpha held constant, as torchvision's autograd does)."""
    return _loss_backward("ciou", "ciou_loss_backward", grad_output, boxes1, boxes2, reduction, eps, offset,
                          canonicalize)


for _f in (iou_loss, giou_loss, diou_loss, ciou_loss):
    _f.__doc__ += _LOSS_DOC
for _f in (iou_loss_backward, giou_loss_backward, diou_loss_backward, ciou_loss_backward):
    _f.__doc__ += _BACKWARD_DOC


def _with_stream_argument():
    """Every op takes ``stream=`` for CUDA arrays (see cnnops.cuda.streamable)."""
    from .cuda import streamable

    g = globals()
    for name in ("box_convert", "box_area", "clip_boxes_to_image", "remove_small_boxes", "box_iou",
                 "generalized_box_iou", "distance_box_iou", "complete_box_iou", "iou_loss", "giou_loss", "diou_loss",
                 "ciou_loss", "iou_loss_backward", "giou_loss_backward", "diou_loss_backward", "ciou_loss_backward"):
        g[name] = streamable(g[name])


_with_stream_argument()

# torchvision's names for the losses
generalized_box_iou_loss = giou_loss
distance_box_iou_loss = diou_loss
complete_box_iou_loss = ciou_loss

__all__ = [
    "box_convert", "box_area", "clip_boxes_to_image", "remove_small_boxes",
    "box_iou", "generalized_box_iou", "distance_box_iou", "complete_box_iou",
    "iou_loss", "giou_loss", "diou_loss", "ciou_loss",
    "iou_loss_backward", "giou_loss_backward", "diou_loss_backward", "ciou_loss_backward",
    "generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss",
    "check_boxes", "check_boxes_shape", "check_format", "check_offset", "check_eps", "check_reduction",
]
