"""Reliability of the kernels as a program sees them, across every op family (conv,
conv_transpose, pool, unpool, boxes, nms):

- calls from 8 Python threads at once give the serial results, bit for bit (the kernels release
  the GIL, so the calls really overlap and must not share scratch or state);
- repeated calls, including calls that fail their argument checks, do not grow the process's
  resident memory (no leaked outputs, scratch or exception state);
- every output and every gradient is bitwise identical for 1, 2, 3, 4 and 7 OpenMP threads, on
  shapes large enough that the work is split between threads (the reductions of a weight
  gradient, a pooling gradient or a loss must not follow the thread count)."""
from __future__ import annotations

import ctypes
import gc
import os
import threading

import numpy as np
import pytest

import cnnops
from testing import randn

F32, F64 = np.float32, np.float64


def rand_boxes(rng, n, dtype=F32, field=100.0):
    """n xyxy boxes with corners in a field x field square and sides in [1, 30]: many overlap."""
    xy = rng.uniform(0, field, (n, 2))
    wh = rng.uniform(1, 30, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)


def as_tuple(result):
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def assert_bitwise(got, want, what):
    """Every array of `got` has the dtype, shape and bytes of the one at the same place in `want`."""
    got, want = as_tuple(got), as_tuple(want)
    assert len(got) == len(want), f"{what}: {len(got)} outputs, expected {len(want)}"
    for i, (a, b) in enumerate(zip(got, want)):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, \
            f"{what}: output {i} is {a.dtype}{a.shape}, expected {b.dtype}{b.shape}"
        if a.tobytes() != b.tobytes():
            # elements whose bit patterns differ (which also tells -0.0 from 0.0)
            bits = f"u{a.itemsize}"
            differ = np.frombuffer(a.tobytes(), bits) != np.frombuffer(b.tobytes(), bits)
            detail = ""
            if np.issubdtype(a.dtype, np.floating):
                d = np.abs(a.ravel()[differ].astype(F64) - b.ravel()[differ])
                d = d[np.isfinite(d)]
                if d.size:
                    detail = f", largest difference {d.max():.3g}"
            raise AssertionError(f"{what}: output {i} differs in {int(differ.sum())} of {a.size} elements{detail}")


def raising(fn):
    """A call that must fail with ValueError (an argument the C++ checks reject)."""
    def call():
        try:
            fn()
        except ValueError:
            return None
        raise AssertionError("expected ValueError")
    return call


# ----------------------------------------------------------------------------- calls per family

CONV = {1: (cnnops.conv1d, cnnops.conv1d_backward), 2: (cnnops.conv2d, cnnops.conv2d_backward),
        3: (cnnops.conv3d, cnnops.conv3d_backward)}
CONV_T = {1: (cnnops.conv_transpose1d, cnnops.conv_transpose1d_backward),
          2: (cnnops.conv_transpose2d, cnnops.conv_transpose2d_backward),
          3: (cnnops.conv_transpose3d, cnnops.conv_transpose3d_backward)}


def conv_call(rng, xs, ws, algo="auto", dtype=F32, transpose=False, **kw):
    """forward, then (grad_input, grad_weight, grad_bias), of a (transposed) convolution."""
    fwd, bwd = (CONV_T if transpose else CONV)[len(xs) - 2]
    x, w = randn(rng, xs, dtype), randn(rng, ws, dtype)
    b = randn(rng, ws[1] * kw.get("groups", 1) if transpose else ws[0], dtype)
    gy = randn(rng, fwd(x, w, b, algo=algo, **kw).shape, dtype)
    return lambda: (fwd(x, w, b, algo=algo, **kw),) + tuple(bwd(gy, x, w, algo=algo, **kw))


def pool_calls(rng, xs, dtype=F32):
    """forward and backward of every pooling kind on input `xs` (N, C, H, W)."""
    x = randn(rng, xs, dtype)
    y, idx = cnnops.max_pool2d(x, 3, 2, 1, return_indices=True)
    gy = randn(rng, y.shape, dtype)
    ya = cnnops.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    ga = randn(rng, ya.shape, dtype)
    yl = cnnops.lp_pool2d(x, 2.0, 3, 2)
    gl = randn(rng, yl.shape, dtype)
    out = (xs[2] // 3, xs[3] // 3 + 1)
    ym, im = cnnops.adaptive_max_pool2d(x, out, return_indices=True)
    gm = randn(rng, ym.shape, dtype)
    gg = randn(rng, xs[:2] + (1, 1), dtype)
    _, ig = cnnops.global_max_pool2d(x, return_indices=True)
    samples = rng.random((xs[0], xs[1], 2)).astype(dtype)
    yf, jf = cnnops.fractional_max_pool2d(x, 2, output_ratio=0.7, return_indices=True, _random_samples=samples)
    gf = randn(rng, yf.shape, dtype)
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # the same values channels last
    ycl, icl = cnnops.max_pool2d(xl, 2, 2, return_indices=True, data_format="NHWC")
    gcl = randn(rng, ycl.shape, dtype)
    return [
        ("max_pool2d", lambda: cnnops.max_pool2d(x, 3, 2, 1, return_indices=True)),
        ("max_pool2d_backward", lambda: cnnops.max_pool2d_backward(gy, x, idx, 3, 2, 1)),
        ("avg_pool2d", lambda: cnnops.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)),
        ("avg_pool2d_backward",
         lambda: cnnops.avg_pool2d_backward(ga, x, 3, 2, 1, ceil_mode=True, count_include_pad=False)),
        ("lp_pool2d", lambda: cnnops.lp_pool2d(x, 2.0, 3, 2)),
        ("lp_pool2d_backward", lambda: cnnops.lp_pool2d_backward(gl, x, 2.0, 3, 2)),
        ("adaptive_avg_pool2d", lambda: cnnops.adaptive_avg_pool2d(x, out)),
        ("adaptive_avg_pool2d_backward", lambda: cnnops.adaptive_avg_pool2d_backward(gm, x)),
        ("adaptive_max_pool2d", lambda: cnnops.adaptive_max_pool2d(x, out, return_indices=True)),
        ("adaptive_max_pool2d_backward", lambda: cnnops.adaptive_max_pool2d_backward(gm, x, im)),
        ("global_avg_pool2d", lambda: cnnops.global_avg_pool2d(x)),
        ("global_avg_pool2d_backward", lambda: cnnops.global_avg_pool2d_backward(gg, x)),
        ("global_max_pool2d", lambda: cnnops.global_max_pool2d(x, return_indices=True)),
        ("global_max_pool2d_backward", lambda: cnnops.global_max_pool2d_backward(gg, x, ig)),
        ("fractional_max_pool2d",
         lambda: cnnops.fractional_max_pool2d(x, 2, output_ratio=0.7, return_indices=True, _random_samples=samples)),
        ("fractional_max_pool2d_backward", lambda: cnnops.fractional_max_pool2d_backward(gf, x, jf)),
        ("max_pool2d_nhwc", lambda: cnnops.max_pool2d(xl, 2, 2, return_indices=True, data_format="NHWC")),
        ("max_pool2d_nhwc_backward",
         lambda: cnnops.max_pool2d_backward(gcl, xl, icl, 2, 2, data_format="NHWC")),
    ]


def unpool_calls(rng, xs, dtype=F32):
    """forward and backward of max-unpooling, nearest upsampling and bed-of-nails on `xs`."""
    x = randn(rng, xs, dtype)
    y, idx = cnnops.max_pool2d(x, 2, return_indices=True)
    up = cnnops.max_unpool2d(y, idx, 2)
    gu = randn(rng, up.shape, dtype)
    size = (xs[2] * 5 // 3, xs[3] * 7 // 4)
    gn = randn(rng, cnnops.upsample_nearest2d(x, size=size).shape, dtype)
    g2 = randn(rng, cnnops.upsample_nearest2d(x, scale_factor=2).shape, dtype)
    gb = randn(rng, cnnops.bed_of_nails_unpool2d(x, (2, 3)).shape, dtype)
    return [
        ("max_unpool2d", lambda: cnnops.max_unpool2d(y, idx, 2)),
        ("max_unpool2d_backward", lambda: cnnops.max_unpool2d_backward(gu, idx, 2)),
        ("upsample_nearest2d_size", lambda: cnnops.upsample_nearest2d(x, size=size)),
        ("upsample_nearest2d_size_backward", lambda: cnnops.upsample_nearest2d_backward(gn, x, size=size)),
        ("upsample_nearest2d_x2", lambda: cnnops.upsample_nearest2d(x, scale_factor=2)),
        ("upsample_nearest2d_x2_backward", lambda: cnnops.upsample_nearest2d_backward(g2, x, scale_factor=2)),
        ("bed_of_nails_unpool2d", lambda: cnnops.bed_of_nails_unpool2d(x, (2, 3))),
        ("bed_of_nails_unpool2d_backward", lambda: cnnops.bed_of_nails_unpool2d_backward(gb, (2, 3))),
    ]


PAIRWISE = {"iou": cnnops.box_iou, "giou": cnnops.generalized_box_iou, "diou": cnnops.distance_box_iou,
            "ciou": cnnops.complete_box_iou}
LOSSES = {"iou": (cnnops.iou_loss, cnnops.iou_loss_backward), "giou": (cnnops.giou_loss, cnnops.giou_loss_backward),
          "diou": (cnnops.diou_loss, cnnops.diou_loss_backward), "ciou": (cnnops.ciou_loss, cnnops.ciou_loss_backward)}


def boxes_calls(rng, n, m, dtype=F32):
    """The pairwise IoU family on n x m boxes; the box utilities; every loss with every reduction,
    forward and backward, on n pairs."""
    b1, b2, b3 = rand_boxes(rng, n, dtype), rand_boxes(rng, m, dtype), rand_boxes(rng, n, dtype)
    g = randn(rng, n, dtype)
    calls = [(f"box_{kind}", lambda f=f: f(b1, b2)) for kind, f in PAIRWISE.items()]
    calls += [
        ("box_area", lambda: cnnops.box_area(b1)),
        ("box_convert", lambda: cnnops.box_convert(b1, "xyxy", "cxcywh")),
        ("clip_boxes_to_image", lambda: cnnops.clip_boxes_to_image(b1, (80, 90))),
        ("remove_small_boxes", lambda: cnnops.remove_small_boxes(b1, 10.0)),
    ]
    for kind, (loss, loss_backward) in LOSSES.items():
        for red in ("none", "mean", "sum"):
            go = g if red == "none" else 0.75
            calls.append((f"{kind}_loss_{red}", lambda loss=loss, red=red: loss(b1, b3, reduction=red)))
            calls.append((f"{kind}_loss_{red}_backward",
                          lambda lb=loss_backward, red=red, go=go: lb(go, b1, b3, reduction=red)))
    return calls


def nms_calls(rng, n, dtype=F32):
    """Every NMS variant on n boxes (crowded, so that suppression happens) in 5 classes."""
    b = rand_boxes(rng, n, dtype, field=10.0 * np.sqrt(n))
    s = rng.random(n).astype(dtype)
    c = rng.integers(0, 5, n)
    bb, sb = b.reshape(4, n // 4, 4), s.reshape(4, n // 4)
    return [
        ("nms", lambda: cnnops.nms(b, s, 0.5)),
        ("nms_score_threshold", lambda: cnnops.nms(b, s, 0.3, score_threshold=0.2, max_output_size=n // 5)),
        ("batched_nms", lambda: cnnops.batched_nms(b, s, c, 0.5)),
        ("batched_nms_padded", lambda: cnnops.batched_nms_padded(bb, sb, 0.5, n // 8)),
        ("diou_nms", lambda: cnnops.diou_nms(b, s, 0.4, beta=0.6)),
        ("soft_nms_linear", lambda: cnnops.soft_nms(b, s, 0.3, method="linear")),
        ("soft_nms_gaussian", lambda: cnnops.soft_nms(b, s, sigma=0.5, method="gaussian")),
        ("matrix_nms", lambda: cnnops.matrix_nms(b, s, c, score_threshold=0.05)),
        ("fast_nms", lambda: cnnops.fast_nms(b, s, 0.5, idxs=c)),
        ("cluster_nms", lambda: cnnops.cluster_nms(b, s, 0.5, top_k=n // 2)),
    ]


# ----------------------------------------------------------------------------- 8 Python threads


def mixed_calls(rng):
    """A mix of every family on moderate shapes (a few milliseconds per call)."""
    calls = [
        ("conv2d_gemm", conv_call(rng, (2, 16, 20, 20), (24, 16, 3, 3), "gemm", padding=1)),
        ("conv2d_smallc", conv_call(rng, (2, 3, 24, 24), (16, 3, 5, 5), "smallc", stride=2, padding=2)),
        ("conv2d_winograd", conv_call(rng, (2, 16, 16, 16), (32, 16, 3, 3), "winograd", padding=1)),
        ("conv2d_depthwise", conv_call(rng, (2, 16, 20, 20), (16, 1, 3, 3), "depthwise", padding=1, groups=16)),
        ("conv2d_1x1", conv_call(rng, (2, 32, 12, 12), (48, 32, 1, 1), "gemm")),
        ("conv3d", conv_call(rng, (1, 4, 6, 10, 10), (8, 4, 3, 3, 3), padding=1)),
        ("conv_transpose2d", conv_call(rng, (2, 16, 10, 10), (16, 8, 4, 4), transpose=True, stride=2, padding=1)),
        ("conv_transpose1d", conv_call(rng, (2, 8, 30), (8, 6, 5), transpose=True, stride=3)),
    ]
    calls += pool_calls(rng, (2, 8, 23, 21))
    calls += unpool_calls(rng, (2, 8, 22, 20))
    calls += boxes_calls(rng, 200, 150)
    calls += nms_calls(rng, 400)
    return calls


def test_concurrent_calls_from_8_threads_match_serial(rng, threads):
    threads(2)  # every call forks its own OpenMP team: 8 teams at once
    calls = mixed_calls(rng)
    expected = {name: fn() for name, fn in calls}
    workers, rounds = 8, 3
    start = threading.Barrier(workers)
    errors = []

    def work(k):
        # each thread walks the list from a different place, so different ops overlap
        shift = k * len(calls) // workers
        order = calls[shift:] + calls[:shift]
        try:
            start.wait()
            for _ in range(rounds):
                for name, fn in order:
                    assert_bitwise(fn(), expected[name], name)
        except Exception as e:  # reported by the main thread
            errors.append(f"thread {k}: {e!r}")

    pool = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, "\n".join(errors)


# ----------------------------------------------------------------------------- memory under repetition

SOAK_CALLS = 10_000  # per family
SOAK_WARMUP = 500
RSS_BOUND = 20 << 20  # bytes


def soak_calls(family, rng):
    """Small calls of one family (outputs of up to a few KB), plus calls that raise ValueError
    from the C++ checks, some of them after the output is allocated (index checks run with the
    kernel). RSS_BOUND over SOAK_CALLS calls is 2 KB per call: holding on to every result of
    these calls grows the process by 35-60 MB."""
    if family == "conv":
        x, w = randn(rng, (1, 4, 16, 16), F32), randn(rng, (8, 4, 3, 3), F32)
        gy = randn(rng, (1, 8, 16, 16), F32)
        return [
            lambda: cnnops.conv2d(x, w, padding=1, algo="gemm"),
            lambda: cnnops.conv2d(x, w, padding=1, algo="smallc"),
            lambda: cnnops.conv2d_backward(gy, x, w, padding=1),
            lambda: cnnops.conv1d(x[:, :, 0], w[:, :, 0], padding=1),
            raising(lambda: cnnops.conv2d(x, w[:, :3], padding=1)),  # channels do not match
            raising(lambda: cnnops.conv2d_backward(gy[:, :5], x, w, padding=1)),  # wrong grad_output
        ]
    if family == "conv_transpose":
        x, w = randn(rng, (1, 8, 8, 8), F32), randn(rng, (8, 4, 4, 4), F32)
        gy = randn(rng, (1, 4, 16, 16), F32)
        return [
            lambda: cnnops.conv_transpose2d(x, w, stride=2, padding=1),
            lambda: cnnops.conv_transpose2d_backward(gy, x, w, stride=2, padding=1),
            raising(lambda: cnnops.conv_transpose2d(x, w[:5], stride=2)),  # weight.shape[0] != C_in
            raising(lambda: cnnops.conv_transpose2d_backward(gy[:, :3], x, w, stride=2, padding=1)),
        ]
    if family == "pool":
        x = randn(rng, (1, 8, 16, 16), F32)
        y, idx = cnnops.max_pool2d(x, 2, return_indices=True)
        bad = idx.copy()
        bad[0, 0, 0, 0] = 10**6
        samples = rng.random((1, 8, 2)).astype(F32)
        return [
            lambda: cnnops.max_pool2d(x, 2, return_indices=True),
            lambda: cnnops.max_pool2d_backward(y, x, idx, 2),
            lambda: cnnops.avg_pool2d_backward(y, x, 2),
            lambda: cnnops.adaptive_avg_pool2d(x, (5, 7)),
            lambda: cnnops.fractional_max_pool2d(x, 2, output_size=(10, 10), _random_samples=samples),
            raising(lambda: cnnops.max_pool2d(x, 40)),  # kernel larger than the input
            raising(lambda: cnnops.max_pool2d_backward(y, x, bad, 2)),  # index outside the plane
        ]
    if family == "unpool":
        x = randn(rng, (1, 8, 16, 16), F32)
        y, idx = cnnops.max_pool2d(x, 2, return_indices=True)
        bad = idx.copy()
        bad[0, 3, 2, 1] = -5
        return [
            lambda: cnnops.max_unpool2d(y, idx, 2),
            lambda: cnnops.max_unpool2d_backward(x, idx, 2),
            lambda: cnnops.upsample_nearest2d(y, scale_factor=2),
            lambda: cnnops.upsample_nearest2d_backward(x, y, scale_factor=2),
            lambda: cnnops.bed_of_nails_unpool2d(y, 2),
            raising(lambda: cnnops.max_unpool2d(y, bad, 2)),  # index outside the output plane
            raising(lambda: cnnops.max_unpool2d_backward(x, bad, 2)),
        ]
    if family == "boxes":
        b1, b2 = rand_boxes(rng, 40), rand_boxes(rng, 30)
        b3 = rand_boxes(rng, 40)
        return [
            lambda: cnnops.box_iou(b1, b2),
            lambda: cnnops.complete_box_iou(b1, b2),
            lambda: cnnops.giou_loss(b1, b3, reduction="mean"),
            lambda: cnnops.ciou_loss_backward(np.ones(40, F32), b1, b3),
            raising(lambda: cnnops.box_iou(b1[:, [2, 3, 0, 1]], b2)),  # x1 > x2 without canonicalize
            raising(lambda: cnnops.giou_loss_backward(np.ones(3, F32), b1, b3)),  # grad_output too short
        ]
    if family == "nms":
        b = rand_boxes(rng, 200, field=150.0)
        s = rng.random(200).astype(F32)
        c = rng.integers(0, 3, 200)
        return [
            lambda: cnnops.nms(b, s, 0.5),
            lambda: cnnops.batched_nms(b, s, c, 0.5),
            lambda: cnnops.soft_nms(b, s),
            lambda: cnnops.matrix_nms(b, s),
            lambda: cnnops.fast_nms(b, s, 0.5),
            raising(lambda: cnnops.nms(b, s, 1.5)),  # threshold outside [0, 1]
            raising(lambda: cnnops.nms(b, s[:10], 0.5)),  # one score per box
        ]
    raise AssertionError(family)


def rss_bytes():
    """Resident memory after giving free heap pages back to the system (glibc's malloc_trim):
    otherwise leaked blocks could hide in pages that earlier tests freed but the process holds."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: resident memory as it is
        pass
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc/self/statm (Linux)")
@pytest.mark.parametrize("family", ["conv", "conv_transpose", "pool", "unpool", "boxes", "nms"])
def test_repeated_calls_keep_memory_flat(family, rng, threads):
    # One OpenMP thread: the soak is about memory, and on a loaded machine a team per tiny call
    # would cost more than the call; the concurrent test above runs the threaded paths.
    threads(1)
    calls = soak_calls(family, rng)

    def run(n):
        for i in range(n):
            calls[i % len(calls)]()

    run(SOAK_WARMUP)  # first-call allocations: scratch, OpenMP state, malloc arenas
    before = rss_bytes()
    run(SOAK_CALLS)
    grown = rss_bytes() - before
    assert grown < RSS_BOUND, f"{family}: resident memory grew by {grown / 2**20:.1f} MB over {SOAK_CALLS} calls"


# ----------------------------------------------------------------------------- thread-count determinism

THREAD_COUNTS = (1, 2, 3, 4, 7)

# (id, builder(rng) -> call). Convolution shapes put N*P*Q in the thousands to tens of thousands,
# so weight gradients are split into many (image, pixel block) chunks and forward passes into
# many pixel blocks; every algorithm is named explicitly.
DETERMINISM_CASES = [
    ("conv2d-direct", lambda r: conv_call(r, (4, 8, 18, 18), (16, 8, 3, 3), "direct", padding=1)),
    ("conv2d-gemm-3x3", lambda r: conv_call(r, (16, 16, 24, 24), (32, 16, 3, 3), "gemm", padding=1)),
    ("conv2d-gemm-3x3-f64", lambda r: conv_call(r, (8, 8, 20, 20), (16, 8, 3, 3), "gemm", F64, padding=1)),
    ("conv2d-gemm-s2-reflect", lambda r: conv_call(r, (8, 16, 27, 25), (24, 16, 3, 3), "gemm", stride=2, padding=1,
                                                   padding_mode="reflect")),
    ("conv2d-gemm-groups", lambda r: conv_call(r, (8, 16, 20, 20), (32, 8, 3, 3), "gemm", padding=1, groups=2)),
    ("conv2d-gemm-1x1", lambda r: conv_call(r, (16, 32, 14, 14), (64, 32, 1, 1), "gemm")),
    ("conv2d-auto-1x1-s2", lambda r: conv_call(r, (16, 32, 15, 15), (48, 32, 1, 1), stride=2)),
    ("conv2d-smallc", lambda r: conv_call(r, (16, 3, 32, 32), (16, 3, 5, 5), "smallc", padding=2)),
    ("conv2d-smallc-s2", lambda r: conv_call(r, (8, 3, 33, 31), (24, 3, 3, 3), "smallc", stride=2, padding=1)),
    ("conv2d-smallc-f64", lambda r: conv_call(r, (8, 3, 24, 24), (16, 3, 5, 5), "smallc", F64, padding=2)),
    ("conv2d-smallc-flat-rows", lambda r: conv_call(r, (16, 1, 28, 28), (6, 1, 5, 5), "smallc", padding=2)),
    ("conv2d-smallc-wide", lambda r: conv_call(r, (8, 16, 20, 20), (40, 16, 3, 3), "smallc", padding=1)),
    ("conv2d-winograd-3x3", lambda r: conv_call(r, (8, 16, 20, 20), (32, 16, 3, 3), "winograd", padding=1)),
    ("conv2d-winograd-5x5", lambda r: conv_call(r, (4, 16, 14, 14), (64, 16, 5, 5), "winograd", padding=2)),
    ("conv2d-depthwise", lambda r: conv_call(r, (8, 32, 28, 28), (32, 1, 3, 3), "depthwise", padding=1, groups=32)),
    ("conv2d-depthwise-m2-s2", lambda r: conv_call(r, (8, 16, 29, 29), (32, 1, 3, 3), "depthwise", stride=2,
                                                   padding=1, groups=16)),
    ("conv1d", lambda r: conv_call(r, (16, 16, 200), (32, 16, 5), padding=2)),
    ("conv3d", lambda r: conv_call(r, (4, 8, 8, 12, 12), (16, 8, 3, 3, 3), padding=1)),
    ("conv_transpose2d-auto", lambda r: conv_call(r, (8, 32, 14, 14), (32, 16, 4, 4), transpose=True, stride=2,
                                                  padding=1)),
    ("conv_transpose2d-gemm", lambda r: conv_call(r, (8, 32, 14, 14), (32, 16, 4, 4), "gemm", transpose=True,
                                                  stride=2, padding=1)),
    ("conv_transpose2d-smallc", lambda r: conv_call(r, (8, 32, 14, 14), (32, 16, 4, 4), "smallc", transpose=True,
                                                    stride=2, padding=1)),
    ("conv_transpose2d-direct", lambda r: conv_call(r, (4, 8, 10, 10), (8, 8, 3, 3), "direct", transpose=True,
                                                    stride=2)),
    ("conv_transpose2d-depthwise", lambda r: conv_call(r, (8, 16, 20, 20), (16, 1, 3, 3), "depthwise",
                                                       transpose=True, padding=1, groups=16)),
    ("conv_transpose2d-1x1", lambda r: conv_call(r, (16, 32, 14, 14), (32, 48, 1, 1), "gemm", transpose=True)),
    ("conv_transpose1d", lambda r: conv_call(r, (16, 16, 64), (16, 8, 5), transpose=True, stride=3)),
    ("conv_transpose3d", lambda r: conv_call(r, (4, 8, 5, 8, 8), (8, 8, 3, 3, 3), transpose=True, stride=2)),
]
DETERMINISM_CASES += [(f"pool-{name}", lambda r, i=i: pool_calls(r, (8, 16, 45, 43))[i][1])
                      for i, (name, _) in enumerate(pool_calls(np.random.default_rng(0), (1, 1, 9, 9)))]
DETERMINISM_CASES += [(f"unpool-{name}", lambda r, i=i: unpool_calls(r, (8, 16, 44, 40))[i][1])
                      for i, (name, _) in enumerate(unpool_calls(np.random.default_rng(0), (1, 1, 8, 8)))]
DETERMINISM_CASES += [(f"boxes-{name}", lambda r, i=i: boxes_calls(r, 3000, 500)[i][1])
                      for i, (name, _) in enumerate(boxes_calls(np.random.default_rng(0), 4, 4))]
DETERMINISM_CASES += [(f"nms-{name}", lambda r, i=i: nms_calls(r, 2000)[i][1])
                      for i, (name, _) in enumerate(nms_calls(np.random.default_rng(0), 8))]


@pytest.mark.parametrize("build", [pytest.param(b, id=i) for i, b in DETERMINISM_CASES])
def test_outputs_and_gradients_independent_of_thread_count(build, rng, threads):
    call = build(rng)
    threads(1)
    want = call()
    failed = []
    for n in THREAD_COUNTS[1:]:
        threads(n)
        try:
            assert_bitwise(call(), want, f"{n} threads vs 1")
        except AssertionError as e:
            failed.append(str(e))
    assert not failed, "\n".join(failed)
