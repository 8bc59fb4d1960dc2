"""Non-max suppression family on the CPU and on CUDA arrays: greedy ``nms``, class-aware
``batched_nms``, the padded batched form ``batched_nms_padded``, ``soft_nms``, ``matrix_nms``,
``fast_nms``, ``cluster_nms`` and ``diou_nms``.

The contract every function keeps (kernels in csrc/ops/cpu/nms*.cpp and csrc/ops/cuda/nms*.cu):

* boxes ``(N, 4)`` as ``(x1, y1, x2, y2)`` with ``x1 <= x2`` and ``y1 <= y2`` (continuous
  coordinates, no +1 pixel convention), scores ``(N,)`` of the same dtype (float32 or float64);
  NumPy, PyTorch, CuPy or any DLPack array, all on one device; the caller's arrays are never
  modified. CUDA arrays give the CPU kernels' keep lists, with one synchronisation per call (the
  keep count comes back with the value checks) and ``stream=`` as every CUDA entry point.
* IoU = intersection / union; a zero-area box has IoU 0 with everything (never NaN), so it is
  never suppressed and never suppresses.
* Candidates are ranked by descending score, ties broken by the lower index (a stable order), and
  indices come back as int64 in that rank order (decayed-score order for ``matrix_nms``).
* A box is suppressed iff its IoU with a kept box is **strictly greater** than ``iou_threshold``,
  decided in torchvision's arithmetic: intersection, union and IoU = intersection / union are
  computed in the boxes' dtype (float32 boxes: a float32 division), and that rounded IoU is
  compared with ``iou_threshold`` as a double. Exact ties therefore go as in torchvision: two boxes
  with IoU exactly 3/10 are both kept at ``iou_threshold=0.3`` in float64 (the IoU rounds to the
  double 0.3) and one is suppressed in float32 (it rounds to 0.3f = 0.30000001 > 0.3). On inputs
  without score ties the keep set equals ``torchvision.ops.nms``'s. The same test serves
  ``batched_nms``, ``batched_nms_padded``, ``fast_nms``, ``cluster_nms`` and the linear cut of
  ``soft_nms``; ``diou_nms`` evaluates its DIoU in the boxes' dtype the same way. Most pairs are
  decided by an exact division-free bound, so the division runs about once per suppressed box.
* ``score_threshold``: only boxes with ``score > score_threshold`` are candidates (TensorFlow's
  rule). ``max_output_size`` (and ``top_k``): at most that many indices (the best ones); any int
  from 0 to 2**63 - 1, a value above N meaning no limit. Larger ints, negative ones and non-ints
  raise ValueError/TypeError naming the function. ``batched_nms_padded``'s ``max_output_size``
  is its row length and is never clamped: an output whose byte size overflows int64 raises
  ValueError, one the machine cannot allocate MemoryError.
* Greedy NMS (``nms``, ``batched_nms``, ``batched_nms_padded``, ``diou_nms``) on the CPU is fused:
  no N x N IoU matrix and no bitmask, O(N) extra memory (a sort, the boxes gathered in score order,
  the kept boxes in a uniform grid); 200,000 boxes take a few MB. On CUDA it builds the 64-bit
  suppression mask in row blocks of at most 256 MiB and scans it on the device (docs/boxes-nms.md).
* Empty inputs give empty int64 outputs. Bad input raises ValueError/TypeError naming the
  function, what was expected and what came: boxes not (N, 4), scores of another length or dtype,
  NaN/Inf coordinates or scores, inverted corners, thresholds outside [0, 1], unknown method.
"""
from __future__ import annotations

from . import _C
from ._args import optional_count as _opt_count
from ._args import real as _real
from ._arrays import prepare, wrap


def _opt_real(v, name, op):
    """(has, value) for an optional real number."""
    if v is None:
        return False, 0.0
    return True, _real(v, name, op)


def _greedy(op, boxes, scores, idxs, iou_threshold, score_threshold, max_output_size, criterion="iou", beta=1.0,
            padded=False):
    b, s = prepare(boxes, op, "boxes"), prepare(scores, op, "scores")
    c = prepare(idxs, op, "idxs", optional=True)
    t = _real(iou_threshold, "iou_threshold", op)
    has_st, st = _opt_real(score_threshold, "score_threshold", op)
    mo = _opt_count(max_output_size, "max_output_size", op)
    return _C.nms(op, b, s, c, t, has_st, st, mo, criterion, _real(beta, "beta", op), padded)


def nms(boxes, scores, iou_threshold, score_threshold=None, max_output_size=None):
    """Greedy non-max suppression.

    boxes (N, 4) as (x1, y1, x2, y2), scores (N,) -> kept indices (K,) int64, in descending score
    order (ties: lower index first). Walking the boxes from the best score down, a box is kept iff
    no box kept before it has IoU > iou_threshold (strictly) with it, the IoU computed in the
    boxes' dtype and compared as a double (torchvision's arithmetic, see the module docstring);
    this is torchvision's ``nms``, with the same keep set on every input without score ties,
    exact ties at the threshold included. score_threshold: only boxes with
    score > score_threshold take part; max_output_size: stop after that many kept boxes.
    iou_threshold in [0, 1]. Memory O(N): no IoU matrix is formed.
    """
    op = "nms"
    return wrap(_greedy(op, boxes, scores, None, iou_threshold, score_threshold, max_output_size), boxes)


def batched_nms(boxes, scores, idxs, iou_threshold, score_threshold=None, max_output_size=None):
    """Class-aware greedy NMS: boxes only suppress boxes with the same class id.

    boxes (N, 4), scores (N,), idxs (N,) int64 or int32 class ids (any values, negative or huge:
    the classes are grouped by sorting, not by torchvision's coordinate-offset trick, so no box
    size or class count limits apply) -> kept indices (K,) int64 over all classes, in descending
    score order (ties: lower index). Equal to running ``nms`` per class and merging, which is
    torchvision's per-class path (the one it takes above 1000 boxes on the CPU); its
    coordinate-offset path for smaller inputs shifts the coordinates before the IoU and can round
    an IoU near the threshold differently. Classes run in parallel. max_output_size limits the
    merged list.
    """
    op = "batched_nms"
    if idxs is None:
        raise TypeError(f"{op}: expected idxs as an array of class ids, got None")
    return wrap(_greedy(op, boxes, scores, idxs, iou_threshold, score_threshold, max_output_size), boxes)


def batched_nms_padded(boxes, scores, iou_threshold, max_output_size, score_threshold=None, idxs=None):
    """Greedy NMS for a batch of images with a fixed-size output (TensorFlow's
    ``combined_non_max_suppression`` use case: static shapes for export and batching).

    boxes (B, N, 4), scores (B, N), optional idxs (B, N) class ids (class-aware per image) ->
    (indices (B, max_output_size) int64, valid (B,) int64): row b holds the first valid[b] kept
    indices of image b (into its N boxes, descending score, same rule as ``nms``) followed by -1
    padding. Images run in parallel.
    """
    op = "batched_nms_padded"
    if max_output_size is None:
        raise TypeError(f"{op}: expected max_output_size as a non-negative int, got None")
    out, valid = _greedy(op, boxes, scores, idxs, iou_threshold, score_threshold, max_output_size, padded=True)
    return wrap(out, boxes), wrap(valid, boxes)


def diou_nms(boxes, scores, iou_threshold, beta=1.0, score_threshold=None, max_output_size=None):
    """DIoU-NMS (Zheng et al., "Distance-IoU Loss", AAAI 2020): greedy NMS whose suppression test
    also looks at the centre distance. A box B is suppressed by a kept box M iff
    IoU(M, B) - (rho^2(M, B) / c^2)^beta > iou_threshold, rho the distance of the box centres and
    c the diagonal of the smallest box enclosing both (penalty 0 when c = 0); beta = 1 is the
    paper's form, YOLOv4 uses beta = 0.6. Boxes that overlap a kept box but whose centres lie far
    from it survive (occlusion). Evaluated in the boxes' dtype as torchvision's distance_box_iou
    (eps = 0) evaluates IoU - rho^2 / c^2 (the power for beta != 1 taken in double and rounded to
    the dtype), and the result compared with iou_threshold as a double. Returns kept indices (K,)
    int64 in descending score order; O(N) memory like ``nms``.
    """
    op = "diou_nms"
    return wrap(_greedy(op, boxes, scores, None, iou_threshold, score_threshold, max_output_size, "diou", beta),
                boxes)


def soft_nms(boxes, scores, iou_threshold=0.3, sigma=0.5, score_threshold=0.001, method="linear",
             max_output_size=None):
    """Soft-NMS (Bodla et al., "Improving Object Detection With One Line of Code", ICCV 2017):
    instead of discarding the boxes that overlap a selected box, decay their scores.

    Repeatedly select the remaining box M with the highest current score (ties: lower index),
    output it with its current score, and for every other remaining box B with i = IoU(M, B):
    ``linear``: s_B *= 1 - i when i > iou_threshold (else unchanged; i computed in the boxes'
    dtype and compared as a double, as ``nms`` does); ``gaussian``:
    s_B *= exp(-i^2 / sigma) for every B (iou_threshold unused). Boxes whose score is no longer
    > score_threshold are dropped. Scores are carried in double.

    sigma convention: the weight is exp(-iou^2 / sigma) (the paper's and mmcv's). TensorFlow's
    ``non_max_suppression_with_scores(soft_nms_sigma=s)`` uses exp(-0.5 * iou^2 / s), so pass
    sigma = 2 * s here to reproduce it.

    boxes (N, 4), scores (N,) -> (kept indices (K,) int64 in selection order, their decayed scores
    (K,) in the input dtype). O(N^2) time (every selection updates all remaining boxes), O(N)
    memory.
    """
    op = "soft_nms"
    if not isinstance(method, str):
        raise TypeError(f"{op}: expected method 'linear' or 'gaussian', got {method!r}")
    b, s = prepare(boxes, op, "boxes"), prepare(scores, op, "scores")
    keep, dec = _C.soft_nms(op, b, s, _real(iou_threshold, "iou_threshold", op), _real(sigma, "sigma", op),
                            _real(score_threshold, "score_threshold", op), method,
                            _opt_count(max_output_size, "max_output_size", op))
    return wrap(keep, boxes), wrap(dec, boxes)


def matrix_nms(boxes, scores, idxs=None, method="gaussian", sigma=0.5, score_threshold=None, top_k=None,
               max_output_size=None):
    """Matrix NMS (Wang et al., "SOLOv2", NeurIPS 2020): every score is decayed in parallel from
    the IoU matrix of the top_k candidates instead of sequentially.

    With the candidates ranked by score (ties: lower index) and X[i][j] = IoU(i, j) for i < j
    (0 between different classes when idxs is given), compensate_i = max_{k<i} X[k][i] (how much
    box i was itself suppressed) and the decay of box j is
    min(1, min_{i<j} f(X[i][j]) / f(compensate_i)) with f(x) = exp(-x^2 / sigma) (``gaussian``;
    the SOLOv2 code's ``sigma=2`` multiplies, i.e. sigma = 0.5 here) or f(x) = 1 - x (``linear``;
    a box i with compensate_i = 1 does not decay anything). The decayed score is score_j * decay_j.

    Returns (indices (K,) int64, decayed scores (K,)) sorted by decayed score (ties: rank), keeping
    only decayed scores > score_threshold when given, at most max_output_size. top_k: only the
    top_k candidates by score take part (SOLOv2 uses 500). Memory: the matrix is not stored; two
    passes over the K(K-1)/2 pairs recompute it (O(K^2) time, O(K) memory).
    """
    op = "matrix_nms"
    if not isinstance(method, str):
        raise TypeError(f"{op}: expected method 'linear' or 'gaussian', got {method!r}")
    b, s, c = prepare(boxes, op, "boxes"), prepare(scores, op, "scores"), prepare(idxs, op, "idxs", optional=True)
    has_st, st = _opt_real(score_threshold, "score_threshold", op)
    keep, dec = _C.matrix_nms(op, b, s, c, method, _real(sigma, "sigma", op), has_st, st,
                              _opt_count(top_k, "top_k", op), _opt_count(max_output_size, "max_output_size", op))
    return wrap(keep, boxes), wrap(dec, boxes)


def _fast_cluster(op, boxes, scores, iou_threshold, idxs, score_threshold, top_k, max_output_size, cluster):
    b, s, c = prepare(boxes, op, "boxes"), prepare(scores, op, "scores"), prepare(idxs, op, "idxs", optional=True)
    has_st, st = _opt_real(score_threshold, "score_threshold", op)
    return wrap(_C.fast_cluster_nms(op, b, s, c, _real(iou_threshold, "iou_threshold", op), has_st, st,
                                    _opt_count(top_k, "top_k", op), _opt_count(max_output_size, "max_output_size", op),
                                    cluster), boxes)


def fast_nms(boxes, scores, iou_threshold, idxs=None, score_threshold=None, top_k=None, max_output_size=None):
    """Fast NMS (Bolya et al., "YOLACT", ICCV 2019): with the candidates ranked by score and
    X[i][j] = IoU(i, j) for i < j (0 across classes when idxs is given), keep box j iff
    max_{i<j} X[i][j] <= iou_threshold (the comparison made as ``nms`` makes it). Unlike greedy
    NMS, a box that is itself suppressed still suppresses the boxes below it, so Fast NMS keeps a
    subset of ``nms``'s boxes.

    boxes (N, 4), scores (N,) -> kept indices (K,) int64 in descending score order. top_k: only the
    top_k candidates take part (YOLACT uses 200 per class). The matrix is not stored: O(K^2) pair
    tests, O(K) memory.
    """
    return _fast_cluster("fast_nms", boxes, scores, iou_threshold, idxs, score_threshold, top_k, max_output_size,
                         False)


def cluster_nms(boxes, scores, iou_threshold, idxs=None, score_threshold=None, top_k=None, max_output_size=None):
    """Cluster-NMS (Zheng et al., "Enhancing Geometric Factors in Model Learning and Inference",
    IEEE T-Cybernetics 2021): Fast NMS iterated to a fixed point. With B = the upper-triangular
    matrix of [X[i][j] > iou_threshold] and keep = all ones, repeat
    keep_j <- not any_{i<j}(keep_i and B[i][j]) (the first round is Fast NMS) until keep stops
    changing; the result is exactly greedy NMS's keep set (the comparison made as ``nms`` makes
    it), reached with parallel matrix steps.

    boxes (N, 4), scores (N,) -> kept indices (K,) int64 in descending score order. Memory: the
    pairs with IoU > iou_threshold are stored sparsely, O(K + E) with E at most K(K-1)/2 when every
    box overlaps every other; cap K with top_k.
    """
    return _fast_cluster("cluster_nms", boxes, scores, iou_threshold, idxs, score_threshold, top_k, max_output_size,
                         True)


__all__ = ["nms", "batched_nms", "batched_nms_padded", "soft_nms", "matrix_nms", "fast_nms", "cluster_nms",
           "diou_nms"]


def _with_stream_argument():
    """Every entry point takes ``stream=`` for CUDA arrays (see cnnops.cuda.streamable)."""
    from .cuda import streamable

    g = globals()
    for name in __all__:
        g[name] = streamable(g[name])


_with_stream_argument()
