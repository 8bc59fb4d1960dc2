"""The SIMD levels (portable, AVX2, AVX-512): detection, forcing, and the packed GEMM kernels of
every level against float64 references, tile edge by tile edge.

The packed GEMM's register tile depends on the level (gemm.h: 6 x 16 float / 6 x 8 double for
portable and AVX2, 14 x 32 / 14 x 16 for AVX-512), so the shapes below put every possible number
of valid rows (1 .. 14) and columns (1 .. 32) into an edge tile on each level, with one and
several reduction chunks (the accumulating path), through the forward, the strided input
gradient (packed A) and the weight gradient."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import cnnops

import reference

LEVELS = ["portable", "avx2", "avx512"]
SUPPORTED = {"portable": True, "avx2": cnnops.info()["cpu_avx2_fma"], "avx512": cnnops.info()["cpu_avx512"]}
NAMES = {"portable": "portable", "avx2": "avx2+fma", "avx512": "avx512"}


@pytest.fixture(params=LEVELS)
def level(request):
    """Run the test at one SIMD level (skipped where the CPU lacks it), then restore the previous one."""
    if not SUPPORTED[request.param]:
        pytest.skip(f"this CPU (or build) has no {request.param}")
    before = cnnops.simd_level()
    assert cnnops.set_simd_level(request.param) == NAMES[request.param]
    yield request.param
    cnnops.set_simd_level(before)
    assert cnnops.simd_level() == before


def rel(a, ref):
    return float(np.linalg.norm(np.asarray(a, np.float64) - ref) / max(np.linalg.norm(ref), 1e-300))


TOL = {np.float32: 1e-5, np.float64: 1e-12}


def test_levels_are_ordered_and_clamped():
    before = cnnops.simd_level()
    try:
        best = max((lv for lv in LEVELS if SUPPORTED[lv]), key=LEVELS.index)
        for lv in LEVELS:
            got = cnnops.set_simd_level(lv)
            want = lv if SUPPORTED[lv] else best
            assert got == NAMES[want] == cnnops.simd_level()
        assert cnnops.set_simd_level("avx2+fma") == NAMES["avx2" if SUPPORTED["avx2"] else "portable"]
        with pytest.raises(ValueError, match=r"'portable', 'avx2' or 'avx512', got 'avx1024'"):
            cnnops.set_simd_level("avx1024")
    finally:
        cnnops.set_simd_level(before)
    assert cnnops.simd_level() == before


@pytest.mark.parametrize("env", ["portable", "avx2", "avx512", "bogus"])
def test_environment_forces_a_level(env):
    best = max((lv for lv in LEVELS if SUPPORTED[lv]), key=LEVELS.index)
    # supported levels are a prefix of LEVELS: an unsupported one is above the best, clamped to it
    want = env if env != "bogus" and SUPPORTED[env] else best
    code = "import cnnops; print(cnnops.simd_level())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "CNNOPS_SIMD": env})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == NAMES[want]


def test_fma_peaks_per_isa():
    for lv in LEVELS:
        g = cnnops._C.measure_fma_peak_gflops(1, 0.05, lv)
        assert g > 0.1
    with pytest.raises(ValueError, match="isa"):
        cnnops._C.measure_fma_peak_gflops(1, 0.05, "sse")


# ----------------------------------------------------------------------------- packed GEMM edges

SENTINEL = 12345.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("K", [1, 7, 256, 300, 513])
def test_packed_gemm_every_tile_edge(rng, level, dtype, K):
    """The serial packed GEMM alone: every row count 1 .. 29 (each edge of a 6- and a 14-row tile)
    and every column count 1 .. 70 (each edge of a 16- and a 32-wide panel, one or two vectors),
    one or several reduction chunks (K > 256), storing and accumulating; C is wider than N and
    the columns past N hold a sentinel that must survive (masked stores)."""
    ms = range(1, 30) if K in (7, 300) else [1, 6, 13, 14, 15, 28]
    for M in ms:
        for N in range(1, 71) if K in (7, 300) else [1, 15, 16, 17, 31, 32, 33, 64, 65]:
            a = rng.standard_normal((M, K)).astype(dtype)
            b = rng.standard_normal((K, N)).astype(dtype)
            ref = a.astype(np.float64) @ b.astype(np.float64)
            for accumulate in (False, True):
                c = np.full((M, N + 5), SENTINEL, dtype)
                c0 = rng.standard_normal((M, N)).astype(dtype)
                c[:, :N] = c0
                cnnops._C._gemm(a, b, c, accumulate)
                want = ref + c0 if accumulate else ref
                # error against the sum of magnitudes (short products of random values may cancel)
                scale = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64)) + np.abs(c0) * accumulate
                err = np.linalg.norm(c[:, :N] - want) / np.linalg.norm(scale)
                assert err < TOL[dtype], (level, M, N, K, accumulate)
                assert (c[:, N:] == SENTINEL).all(), (level, M, N, K, accumulate)


def test_packed_gemm_rejects_bad_arguments():
    a = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="shapes do not fit"):
        cnnops._C._gemm(a, np.ones((5, 2), np.float32), np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="one dtype"):
        cnnops._C._gemm(a, np.ones((4, 2), np.float64), np.zeros((3, 2), np.float32))


# (output channels K, input channels C, pixels W): K = 1 .. 29 gives every edge row count of a
# 14-row tile (K < 14, and 15 .. 27 after a full panel) and of a 6-row one; W runs through every
# column count of a 32-wide (and 16-wide) panel's last tile, below and above one 16-wide vector.
EDGE_CASES = [(k, c, w) for k, c, w in zip(range(1, 30), [3, 5, 2, 7, 1, 4, 6] * 5, [1, 2, 3, 5, 8, 13, 15, 16, 17, 20,
                                                                                  24, 29, 31, 32, 33, 40, 47, 48, 50,
                                                                                  63, 64, 65, 70, 77, 90, 95, 96, 97,
                                                                                  100])]


def gemm_fixture(rng, K, C, H, W, dtype):
    x = rng.standard_normal((2, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C, 1, 1)).astype(dtype)
    return x, w


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_gemm_forward_every_edge(rng, level, dtype):
    for K, C, W in EDGE_CASES:
        x, w = gemm_fixture(rng, K, C, 1, W, dtype)
        b = rng.standard_normal(K).astype(dtype)
        y = cnnops.conv2d(x, w, b, algo="gemm")
        ref = np.einsum("kc,nchw->nkhw", w[:, :, 0, 0].astype(np.float64), x.astype(np.float64))
        ref += b.astype(np.float64)[None, :, None, None]
        assert rel(y, ref) < TOL[dtype], (level, K, C, W)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("C", [300, 530])
def test_gemm_forward_several_reduction_chunks(rng, level, dtype, C):
    # C > 256: the reduction runs in chunks of 256 and later chunks accumulate into C
    for K, W in [(13, 45), (14, 32), (29, 17), (30, 64), (5, 7)]:
        x, w = gemm_fixture(rng, K, C, 3, W, dtype)
        y = cnnops.conv2d(x, w, algo="gemm")
        ref = np.einsum("kc,nchw->nkhw", w[:, :, 0, 0].astype(np.float64), x.astype(np.float64))
        assert rel(y, ref) < TOL[dtype], (level, K, C, W)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_gemm_backward_every_edge(rng, level, dtype):
    # stride 2: the input gradient goes through the packed-A GEMM and col2im (at stride 1 it is a
    # forward convolution); the weight gradient through the packed GEMM with padded tiles
    for (K, C, W), Kg in zip(EDGE_CASES[::2], range(1, 40, 3)):
        C = C + Kg  # C is the GEMM's row count for the input gradient
        x = rng.standard_normal((2, C, 3, 2 * W)).astype(dtype)
        w = rng.standard_normal((K, C, 1, 1)).astype(dtype)
        gy = rng.standard_normal((2, K, 2, W)).astype(dtype)
        dx, dw, db = cnnops.conv2d_backward(gy, x, w, stride=2, algo="gemm")
        xs = x[:, :, ::2, ::2].astype(np.float64)
        w64, g64 = w[:, :, 0, 0].astype(np.float64), gy.astype(np.float64)
        dx_ref = np.zeros(x.shape)
        dx_ref[:, :, ::2, ::2] = np.einsum("kc,nkhw->nchw", w64, g64)
        dw_ref = np.einsum("nkhw,nchw->kc", g64, xs)[:, :, None, None]
        assert rel(dx, dx_ref) < TOL[dtype], (level, K, C, W)
        assert rel(dw, dw_ref) < TOL[dtype], (level, K, C, W)
        assert rel(db, g64.sum(axis=(0, 2, 3))) < TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_gemm_3x3_layers_agree_across_levels(rng, dtype):
    """A strided 3x3 layer (phase-split packing) and a padded one (im2col rows), forward and both
    gradients: every level within the float tolerance of the float64 result of every other."""
    before = cnnops.simd_level()
    cases = [((2, 19, 17, 15), 29, dict(stride=2, padding=1)), ((1, 40, 9, 23), 17, dict(padding=1))]
    try:
        for xs, K, kw in cases:
            x = rng.standard_normal(xs).astype(dtype)
            w = rng.standard_normal((K, xs[1], 3, 3)).astype(dtype)
            outs = {}
            for lv in LEVELS:
                if not SUPPORTED[lv]:
                    continue
                cnnops.set_simd_level(lv)
                y = cnnops.conv2d(x, w, algo="gemm", **kw)
                gy = np.ones_like(y)
                outs[lv] = (y, *cnnops.conv2d_backward(gy, x, w, algo="gemm", **kw)[:2])
            ref = outs["portable"]
            for lv, got in outs.items():
                for a, r in zip(got, ref):
                    assert rel(a, np.asarray(r, np.float64)) < 10 * TOL[dtype], lv
    finally:
        cnnops.set_simd_level(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("k", [3, 5])
def test_winograd_every_level(rng, level, dtype, k):
    """The Winograd tile transforms of each level (vectors of 8 or 16 tiles, the output pair
    interleave): tile rows of 1 to 40 tiles (partial vectors, several vectors, odd sizes with a
    half tile), forward and input gradient (a stride-1 input gradient runs the forward), against
    the float64 reference."""
    p = k // 2
    for (N, C, K, H, W) in [(1, 16, 64, 1, 1), (2, 16, 64, 5, 31), (1, 32, 64, 9, 64), (3, 16, 80, 7, 79)]:
        x = rng.standard_normal((N, C, H, W)).astype(dtype)
        w = rng.standard_normal((K, C, k, k)).astype(dtype)
        b = rng.standard_normal(K).astype(dtype)
        y = cnnops.conv2d(x, w, b, padding=p, algo="winograd")
        ref = reference.conv2d_ref(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                                   pads4=(p, p, p, p))
        assert rel(y, ref) < 10 * TOL[dtype], (level, k, N, C, K, H, W)
        gy = rng.standard_normal(y.shape).astype(dtype)
        dx = cnnops.conv2d_backward(gy, x, w, padding=p, needs=(True, False, False), algo="winograd")[0]
        dx_ref = reference.conv2d_backward_ref(gy.astype(np.float64), x.astype(np.float64), w.astype(np.float64),
                                               pads4=(p, p, p, p))[0]
        assert rel(dx, dx_ref) < 10 * TOL[dtype], (level, k, N, C, K, H, W)


# (N, C, K, H, W, kernel, stride, padding, dilation, groups, mode): channels per group that fill
# AVX-512 vectors (the channels-last weight gradient's condition), the rest into the corners
NHWC_WGRAD_CASES = [
    (2, 32, 13, 9, 9, 3, 1, 1, 1, 1, "zeros"),
    (1, 64, 14, 4, 4, 3, 1, 1, 1, 1, "zeros"),        # one 14-row panel exactly
    (3, 30, 29, 7, 11, 3, 2, 1, 1, 1, "reflect"),     # 30 channels padded to 32, 3 panels
    (1, 256, 1, 1, 1, 3, 1, 1, 1, 1, "zeros"),       # 1x1 image: all but the centre tap read padding
    (2, 64, 15, 3, 5, 5, 1, 3, 1, 1, "zeros"),       # kernel larger than the input
    (1, 32, 16, 10, 9, 3, 5, 0, 2, 1, "circular"),   # huge stride and dilation
    (4, 128, 40, 12, 12, 3, 1, 1, 1, 2, "replicate"),  # groups, 576 pixels: three reduction chunks
    (17, 64, 20, 4, 4, 1, 1, 0, 1, 1, "zeros"),      # 1x1 kernel, 272 pixels across images
    (2, 250, 17, 6, 5, 3, 2, 1, 1, 1, "zeros"),      # 250 channels padded to 256
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", NHWC_WGRAD_CASES, ids=lambda c: "x".join(map(str, c[:6])) + f"-s{c[6]}-{c[10]}")
def test_gemm_weight_gradient_every_level(rng, level, dtype, case):
    """The gemm weight gradient at every level: at AVX-512 these shapes go through the
    channels-last copy of the input (conv_nhwc.cpp), elsewhere through im2col; both against the
    float64 reference, with a padding row of NaN-free values only (the contract for non-finite
    values is the same and tested in test_conv.py)."""
    N, C, K, H, W, k, s, p, d, G, mode = case
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // G, k, k)).astype(dtype)
    kw = dict(stride=s, padding=p, dilation=d, groups=G, padding_mode=mode)
    y = cnnops.conv2d(x, w, algo="gemm", **kw)
    gy = rng.standard_normal(y.shape).astype(dtype)
    dw = cnnops.conv2d_backward(gy, x, w, needs=(False, True, False), algo="gemm", **kw)[1]
    ref = reference.conv2d_backward_ref(gy.astype(np.float64), x.astype(np.float64), w.astype(np.float64),
                                        stride=s, pads4=(p, p, p, p), dilation=d, groups=G, mode=mode)[1]
    assert rel(dw, ref) < TOL[dtype], (level, case)


def test_channels_last_weight_gradient_is_deterministic(rng, threads):
    """Every element of dW is summed by one task in a fixed order: the same bits for 1 and 2 threads,
    and for repeated calls."""
    x = rng.standard_normal((16, 128, 7, 7)).astype(np.float32)
    w = rng.standard_normal((96, 128, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((16, 96, 7, 7)).astype(np.float32)
    outs = []
    for n in (1, 2, 2):
        threads(n)
        outs.append(cnnops.conv2d_backward(gy, x, w, padding=1, needs=(False, True, False), algo="gemm")[1])
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


# conv2d forwards through the channels-last copy at AVX-512 (images under 256 output pixels, at
# least 512 pixels in all, a kernel larger than 1x1, channels filling the vectors), into the corners
NHWC_FORWARD_CASES = [
    (8, 32, 13, 9, 9, 3, 1, 1, 1, 1, "zeros"),         # 13 filters: one panel, mostly zero
    (11, 64, 40, 14, 14, 3, 2, 1, 1, 1, "zeros"),      # a stride-2 layer, 7x7 outputs
    (60, 30, 33, 3, 3, 3, 1, 1, 1, 1, "reflect"),      # 3x3 images, 30 channels padded to 32
    (600, 32, 5, 1, 1, 3, 1, 1, 1, 1, "zeros"),        # 1x1 images: all but the centre tap padding
    (30, 64, 40, 3, 5, 5, 1, 3, 1, 1, "zeros"),        # kernel larger than the input
    (100, 32, 16, 15, 14, 3, 5, 0, 2, 1, "circular"),  # huge stride and dilation
    (9, 128, 40, 10, 10, 3, 1, 1, 1, 2, "replicate"),  # groups
    (30, 250, 40, 9, 8, 3, 2, 1, 1, 1, "zeros"),       # 250 channels padded to 256
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", NHWC_FORWARD_CASES, ids=lambda c: "x".join(map(str, c[:6])) + f"-s{c[6]}-{c[10]}")
def test_gemm_forward_small_images_every_level(rng, level, dtype, case):
    """The gemm forward at every level on small images with many in a batch: at AVX-512 through
    the channels-last copy (conv_nhwc.cpp), elsewhere through im2col; with bias, against the
    float64 reference; the 3-D lowering (kernel depth 2) through the same path."""
    N, C, K, H, W, k, s, p, d, G, mode = case
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // G, k, k)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    kw = dict(stride=s, padding=p, dilation=d, groups=G, padding_mode=mode)
    y = cnnops.conv2d(x, w, b, algo="gemm", **kw)
    ref = reference.conv2d_ref(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                               stride=s, pads4=(p, p, p, p), dilation=d, groups=G, mode=mode)
    assert rel(y, ref) < TOL[dtype], (level, case)
    if G == 1 and mode == "zeros" and d == 1:
        x3 = rng.standard_normal((N // 2 + 1, C, 3, H, W)).astype(dtype)
        w3 = rng.standard_normal((K, C, 2, k, k)).astype(dtype)
        y3 = cnnops.conv3d(x3, w3, b, stride=(1, s, s), padding=(1, p, p), algo="gemm")
        ref3 = reference.conv3d_ref(x3.astype(np.float64), w3.astype(np.float64), b.astype(np.float64),
                                    stride=(1, s, s), pads=(1, 1, p, p, p, p))
        assert rel(y3, ref3) < TOL[dtype], (level, case)
