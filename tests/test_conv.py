"""Tests of cnnops.conv2d and cnnops.conv2d_backward against the float64 NumPy references in
tests/reference.py, central finite differences, and PyTorch (when installed).

Tolerances: relative error ||out - ref|| / ||ref|| below 1e-5 in float32 and 1e-12 in float64 for
every algorithm (all of them are exact-arithmetic methods: direct loops, implicit GEMM, depthwise
planes, the small-channel slab kernel)."""
from __future__ import annotations

import numpy as np
import pytest

import cnnops
from cache_poison import poison_cache
from reference import (
    conv2d_backward_ref,
    conv2d_ref,
    conv3d_ref,
    numerical_grad,
    pair,
    rel_err,
    same_pads,
)
from testing import DTYPE_IDS, DTYPES, MODES, TOL, ConvTester, case_algo_params, check_close, to_device, to_host
from testing import zeros as _z


# ----------------------------------------------------------------------------- test cases


def Case(id, x, K, R, S, stride=1, padding=0, dilation=1, groups=1, mode="zeros", bias=False):
    """A conv2d problem: input x = (N, C, H, W), K output channels, an R x S kernel; padding in any
    spelling the API accepts."""
    return (ConvTester(id).shape(x, K, (R, S)).stride(stride).padding(padding).dilation(dilation).groups(groups)
            .padding_mode(mode).bias(bias))


# Zero padding: every padding spelling, stride, dilation, groups, kernel shape; odd and prime sizes.
ZERO_CASES = [
    Case("basic_3x3_p1", (2, 3, 7, 9), 4, 3, 3, padding=1, bias=True),
    Case("prime_pair_pad", (3, 5, 11, 13), 7, 3, 5, padding=(1, 2)),
    Case("pad_list", (1, 3, 7, 5), 2, 3, 3, padding=[2, 1], bias=True),
    Case("asym_4tuple", (2, 4, 10, 7), 6, 3, 2, padding=(0, 2, 1, 0), bias=True),
    Case("asym_4tuple_s2", (2, 3, 11, 9), 5, 3, 3, stride=2, padding=(2, 0, 0, 1)),
    Case("valid", (1, 2, 9, 8), 3, 4, 3, padding="valid", bias=True),
    Case("same_s1_even_k", (2, 3, 8, 11), 5, 4, 2, padding="same"),
    Case("same_s2", (2, 3, 9, 10), 5, 3, 3, stride=2, padding="same", bias=True),
    Case("same_s3", (1, 4, 13, 17), 6, 5, 5, stride=3, padding="same"),
    Case("same_s21_d2", (2, 3, 12, 11), 4, 3, 3, stride=(2, 1), dilation=2, padding="same", bias=True),
    Case("same_s3_no_pad_needed", (1, 2, 7, 8), 3, 1, 2, stride=3, padding="same"),
    Case("full", (2, 2, 5, 6), 3, 3, 2, padding="full", bias=True),
    Case("full_dil", (1, 3, 6, 5), 4, 2, 3, dilation=(2, 1), padding="full"),
    Case("stride21_dil12", (2, 3, 11, 13), 5, 3, 3, stride=(2, 1), dilation=(1, 2), padding=1),
    Case("stride3_dil2", (1, 4, 17, 19), 6, 3, 3, stride=3, dilation=2, padding=2, bias=True),
    Case("stride_gt_kernel", (1, 3, 13, 11), 4, 2, 2, stride=3),
    Case("groups2", (2, 4, 9, 8), 6, 3, 3, padding=1, groups=2, bias=True),
    Case("groups3_5x5", (1, 6, 11, 10), 9, 5, 5, padding=2, groups=3),
    Case("groups4_s2", (2, 8, 10, 9), 12, 3, 3, stride=2, padding=1, groups=4, bias=True),
    Case("groups_kg1", (2, 6, 8, 7), 3, 3, 3, padding=1, groups=3),
    Case("depthwise_m1", (2, 8, 9, 10), 8, 3, 3, padding=1, groups=8, bias=True),
    Case("depthwise_m2_s2", (2, 5, 11, 12), 10, 3, 3, stride=2, padding=1, groups=5, bias=True),
    Case("depthwise_5x5_d2_wide", (1, 3, 9, 41), 3, 5, 5, dilation=2, padding=4, groups=3),
    Case("depthwise_m2_wide", (1, 2, 5, 77), 4, 3, 3, padding=(1, 1, 0, 2), groups=2, bias=True),
    Case("depthwise_7x1", (1, 4, 9, 9), 4, 7, 1, padding=(3, 3, 0, 0), groups=4),
    Case("depthwise_1x17", (1, 2, 3, 40), 2, 1, 17, padding="same", groups=2),
    Case("depthwise_tall_kernel", (1, 2, 70, 9), 2, 66, 3, padding=(1, 2, 1, 1), groups=2),
    Case("depthwise_s12", (1, 3, 10, 11), 6, 3, 3, stride=(1, 2), padding=1, groups=3),
    Case("conv1x1", (2, 16, 7, 7), 24, 1, 1, bias=True),
    Case("conv1x1_s2", (2, 8, 9, 9), 12, 1, 1, stride=2),
    Case("conv1x1_groups", (1, 8, 5, 6), 8, 1, 1, groups=2),
    Case("gemm_multi_kc", (1, 40, 12, 12), 20, 3, 3, padding=1, bias=True),
    Case("gemm_many_pixels", (1, 8, 23, 29), 13, 3, 3, padding=1),
    # stride 2 with several tap chunks (333 taps, chunk edges inside a channel) and two pixel
    # blocks whose edges fall inside output rows: the forward GEMM's phase-split slab
    Case("gemm_s2_multi_kc", (1, 37, 41, 43), 14, 3, 3, stride=2, padding=1, bias=True),
    Case("gemm_s32_d2_multi_kc", (2, 29, 38, 47), 9, 3, 4, stride=(3, 2), dilation=(1, 2), padding=(2, 1, 0, 3)),
    # slab kernels (smallc) with slabs above 256 KB: several row blocks and a shorter last one, in
    # the forward (3 rows per block) and the weight gradient (8 rows in float32, 4 in float64)
    Case("slab_row_blocks", (1, 64, 61, 67), 8, 3, 3, padding=1, bias=True),
    # Winograd F(2x2, 3x3): blocks of tiles that cross tile rows and images (odd P and Q: the last
    # tile row and column are half used), more than kGemmKC = 256 input channels (two reduction
    # chunks), more than 96 output channels (two passes over a strip), K not a multiple of MR,
    # rows of more tiles than a block, groups
    Case("wino_blocks_cross_images", (3, 20, 13, 9), 19, 3, 3, padding=1, bias=True),
    Case("wino_c300", (1, 300, 6, 7), 17, 3, 3, padding=(0, 2, 1, 1)),
    Case("wino_k100", (2, 8, 9, 10), 100, 3, 3, padding=1, bias=True),
    Case("wino_wide_rows", (1, 16, 5, 151), 16, 3, 3, padding=(1, 1, 0, 2)),
    Case("wino_groups", (2, 16, 10, 9), 32, 3, 3, padding="same", groups=2, bias=True),
    # F(2x2, 5x5): tiles across images, odd sizes, more than 256 channels, asymmetric pads
    Case("wino5_blocks_cross_images", (3, 16, 11, 9), 33, 5, 5, padding=2, bias=True),
    Case("wino5_c270_asym", (1, 270, 9, 8), 7, 5, 5, padding=(0, 3, 2, 1)),
    Case("kernel_eq_input", (2, 3, 5, 5), 4, 5, 5, bias=True),
    Case("pad_beyond_reach", (1, 2, 4, 5), 3, 3, 3, padding=3),
    Case("pad_beyond_reach_asym", (2, 3, 5, 4), 4, 2, 3, padding=(0, 3, 4, 0), bias=True),
    Case("kernel_1x7", (1, 3, 6, 15), 5, 1, 7, padding=(0, 3)),
    Case("many_k", (1, 5, 8, 9), 70, 3, 3, padding=1),
    # smallc: 21 output channels on 32-wide output rows take the pixel orientation, on 10-wide
    # rows the channel orientation (see conv_smallc.cpp); stride 2 splits the slab into phases
    Case("k21_s2_pixel_orient", (1, 21, 7, 64), 21, 4, 4, stride=2, padding=1, bias=True),
    Case("k21_s2_channel_orient", (2, 21, 9, 20), 21, 4, 4, stride=2, padding=(1, 2, 2, 1)),
    Case("batch5", (5, 2, 6, 7), 7, 3, 3, padding=1, bias=True),
    Case("one_pixel", (2, 3, 1, 1), 4, 1, 1, bias=True),
    Case("one_pixel_full", (1, 2, 1, 1), 3, 3, 3, padding="full"),
    Case("single_row", (2, 3, 1, 17), 4, 1, 3, padding=(0, 1)),
]

# Non-zero padding modes: each of these runs with reflect, replicate and circular.
_MODE_BASE = [
    Case("p1", (2, 3, 7, 9), 4, 3, 3, padding=1, bias=True),
    Case("asym", (2, 4, 8, 6), 5, 3, 2, padding=(2, 0, 1, 1)),
    Case("same_s2", (1, 3, 9, 10), 4, 3, 3, stride=2, padding="same", bias=True),
    Case("same_s3", (1, 2, 11, 13), 3, 5, 4, stride=3, padding="same"),
    Case("s2_d2", (2, 2, 11, 12), 3, 3, 3, stride=2, dilation=2, padding=3),
    Case("s21_d12", (1, 3, 9, 10), 4, 3, 3, stride=(2, 1), dilation=(1, 2), padding=(1, 2)),
    Case("full", (1, 2, 5, 6), 3, 3, 3, padding="full", bias=True),
    Case("groups2", (1, 4, 7, 8), 6, 3, 3, padding=(1, 2), groups=2),
    Case("depthwise_m1", (2, 6, 9, 11), 6, 3, 3, padding=1, groups=6, bias=True),
    Case("depthwise_m2_s2", (1, 3, 8, 9), 6, 5, 5, stride=2, padding=2, groups=3),
    Case("depthwise_wide", (1, 2, 6, 45), 2, 3, 5, padding=(1, 1, 2, 2), groups=2),
    Case("max_reflect_pad", (1, 2, 3, 4), 3, 3, 3, padding=(2, 2, 3, 3)),
    Case("conv1x1_pad", (1, 3, 4, 5), 2, 1, 1, padding=2, bias=True),
    Case("gemm_many_pixels", (1, 6, 17, 19), 8, 3, 3, padding=(2, 1, 1, 2)),
    Case("wino_odd", (2, 9, 7, 11), 18, 3, 3, padding=(2, 1, 0, 2), bias=True),
    Case("wino5_odd", (1, 17, 9, 8), 32, 5, 5, padding=(1, 3, 2, 2), bias=True),
    Case("gemm_s2_multi_kc", (1, 30, 35, 33), 7, 3, 3, stride=2, padding=(1, 2, 1, 0)),
]
MODE_CASES = [c.with_mode(m) for m in ("reflect", "replicate", "circular") for c in _MODE_BASE] + [
    # pads as large as each mode allows: circular up to the input size, replicate without limit
    Case("circular_pad_eq_size", (1, 2, 3, 4), 3, 3, 3, padding=(3, 3, 4, 4), mode="circular"),
    Case("replicate_huge_pad", (1, 2, 3, 4), 3, 3, 3, padding=(5, 6, 7, 8), mode="replicate", bias=True),
]

ALL_CASES = ZERO_CASES + MODE_CASES

# The benchmark's layer shapes, batch scaled down (name, case, marks).
LAYER_CASES = [
    pytest.param(Case("lenet_conv1", (2, 1, 32, 32), 6, 5, 5, bias=True), id="lenet_conv1"),
    pytest.param(Case("lenet_conv2", (2, 6, 14, 14), 16, 5, 5, bias=True), id="lenet_conv2"),
    pytest.param(Case("alexnet_conv1", (1, 3, 227, 227), 96, 11, 11, stride=4, bias=True), id="alexnet_conv1"),
    pytest.param(Case("alexnet_conv2_half", (1, 32, 27, 27), 96, 5, 5, padding=2, bias=True),
                 id="alexnet_conv2_half"),
    pytest.param(Case("vgg_conv3x3", (1, 32, 28, 28), 32, 3, 3, padding=1, bias=True), id="vgg_conv3x3"),
    pytest.param(Case("resnet_conv1", (1, 3, 112, 112), 64, 7, 7, stride=2, padding=3), id="resnet_conv1"),
    pytest.param(Case("resnet_1x1", (2, 256, 14, 14), 64, 1, 1), id="resnet_1x1"),
    pytest.param(Case("resnet_3x3_s2", (1, 64, 28, 28), 64, 3, 3, stride=2, padding=1), id="resnet_3x3_s2"),
    pytest.param(Case("mobilenet_dw", (1, 32, 56, 56), 32, 3, 3, padding=1, groups=32, bias=True),
                 id="mobilenet_dw"),
    pytest.param(Case("mobilenet_dw_s2", (1, 64, 56, 56), 64, 3, 3, stride=2, padding=1, groups=64),
                 id="mobilenet_dw_s2"),
    pytest.param(Case("vgg_conv3x3_56", (1, 64, 56, 56), 64, 3, 3, padding=1, bias=True), id="vgg_conv3x3_56"),
    pytest.param(Case("alexnet_conv2", (2, 64, 27, 27), 192, 5, 5, padding=2, bias=True), id="alexnet_conv2"),
    # full-size inputs with a real batch: a few seconds each (mostly the NumPy reference)
    pytest.param(Case("alexnet_conv1_b8", (8, 3, 227, 227), 96, 11, 11, stride=4, padding=2, bias=True),
                 id="alexnet_conv1_b8", marks=pytest.mark.slow),
    pytest.param(Case("resnet_conv1_224", (4, 3, 224, 224), 64, 7, 7, stride=2, padding=3), id="resnet_conv1_224",
                 marks=pytest.mark.slow),
    pytest.param(Case("vgg_conv3x3_128", (2, 128, 56, 56), 128, 3, 3, padding=1, bias=True), id="vgg_conv3x3_128",
                 marks=pytest.mark.slow),
]


# ----------------------------------------------------------------------------- vs the reference


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case,algo", case_algo_params(ALL_CASES))
def test_forward_matches_reference(case, algo, dtype, device):
    case.dtype(dtype).algo(algo).test_forward(device)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case,algo", case_algo_params(ALL_CASES))
def test_backward_matches_reference(case, algo, dtype, device):
    case.dtype(dtype).algo(algo).test_backward(device)


def _layer_params():
    out = []
    for p in LAYER_CASES:
        case = p.values[0]
        algos = ["auto", "depthwise" if case.p["groups"] == case.p["c_in"] else "gemm"]
        out += [pytest.param(case, a, id=f"{p.id}-{a}", marks=p.marks) for a in algos]
    return out


@pytest.mark.parametrize("case,algo", _layer_params())
def test_benchmark_layers(case, algo, device):
    case.dtype(np.float32).algo(algo).test(device)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    "case,algo",
    case_algo_params([c for c in ALL_CASES if c.id in (
        "basic_3x3_p1", "same_s2", "groups4_s2", "depthwise_m1", "depthwise_m2_s2", "gemm_multi_kc",
        "gemm_many_pixels", "pad_beyond_reach", "p1-reflect", "s2_d2-circular", "depthwise_wide-replicate",
        "depthwise_m2_s2-reflect")]),
)
def test_portable_kernels_match_reference(case, algo, dtype, portable_simd):
    assert cnnops.simd_level() == "portable"
    case.dtype(dtype).algo(algo).test()


def test_portable_and_avx2_agree_closely(rng, portable_simd):
    x = rng.standard_normal((2, 6, 13, 21)).astype(np.float32)
    w = rng.standard_normal((10, 6, 3, 3)).astype(np.float32)
    y_portable = cnnops.conv2d(x, w, padding=1, algo="gemm")
    cnnops.set_simd_level("avx2")  # restored to portable, then to the original, by the fixture
    y_best = cnnops.conv2d(x, w, padding=1, algo="gemm")
    assert rel_err(y_portable, y_best) < 1e-6


def test_depthwise_large_output_streaming_path(rng):
    """A float32 depthwise output above the streaming threshold (24 MB), written into a NaN-poisoned
    block: every element stored (rows of 224 = 7 blocks of 32; 111 at stride 2 = a masked tail, rows
    not all 32-byte aligned), against a float64 shift-and-add reference."""
    for shape, stride in (((2, 64, 224, 224), 1), ((8, 64, 221, 221), 2)):
        x = rng.standard_normal(shape).astype(np.float32)
        w = rng.standard_normal((64, 1, 3, 3)).astype(np.float32)
        b = rng.standard_normal(64).astype(np.float32)
        P = Q = (shape[2] - 1) // stride + 1
        assert shape[0] * 64 * P * Q * 4 >= 24 << 20
        poison_cache(shape[0] * 64 * P * Q * 4)
        y = cnnops.conv2d(x, w, b, stride=stride, padding=1, groups=64)
        xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
        want = np.broadcast_to(b.astype(np.float64)[:, None, None], y.shape).copy()
        for r in range(3):
            for s in range(3):
                want += w[:, 0, r, s, None, None].astype(np.float64) * \
                    xp[:, :, r:r + stride * (P - 1) + 1:stride, s:s + stride * (Q - 1) + 1:stride]
        assert not np.isnan(y).any()
        assert rel_err(y, want) < 1e-6


# ----------------------------------------------------------------------------- padding spellings


@pytest.mark.parametrize("algo", ["direct", "gemm", "auto"])
def test_padding_spellings_agree(rng, algo):
    x = rng.standard_normal((2, 3, 8, 9))
    w = rng.standard_normal((4, 3, 3, 3))
    outs = [cnnops.conv2d(x, w, padding=p, algo=algo) for p in (1, (1, 1), [1, 1], (1, 1, 1, 1))]
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])
    np.testing.assert_array_equal(cnnops.conv2d(x, w, padding="valid", algo=algo),
                                  cnnops.conv2d(x, w, padding=0, algo=algo))
    np.testing.assert_array_equal(cnnops.conv2d(x, w, padding="full", dilation=2, algo=algo),
                                  cnnops.conv2d(x, w, padding=4, dilation=2, algo=algo))


@pytest.mark.parametrize("stride", [1, 2, 3, (2, 3)])
@pytest.mark.parametrize("kernel,dilation", [((3, 3), 1), ((2, 4), 1), ((5, 1), 1), ((3, 2), 2), ((1, 1), 1)])
@pytest.mark.parametrize("hw", [(7, 10), (9, 8), (1, 5)])
def test_same_padding_rule(rng, hw, kernel, dilation, stride):
    """TensorFlow's SAME rule for any stride: output ceil(in / stride), extra pixel bottom/right."""
    x = rng.standard_normal((1, 2, *hw))
    w = rng.standard_normal((3, 2, *kernel))
    sh, sw = pair(stride)
    y = cnnops.conv2d(x, w, stride=stride, padding="same", dilation=dilation)
    assert y.shape == (1, 3, -(-hw[0] // sh), -(-hw[1] // sw))
    pads = same_pads(hw, kernel, stride, dilation)
    assert pads[1] - pads[0] in (0, 1) and pads[3] - pads[2] in (0, 1)
    np.testing.assert_array_equal(y, cnnops.conv2d(x, w, stride=stride, padding=pads, dilation=dilation))
    assert rel_err(y, conv2d_ref(x, w, None, stride, pads, dilation)) < 1e-12


def test_same_pads_helper_examples():
    # (in, k, stride, dil) -> (lo, hi), worked by hand from TensorFlow's rule
    assert same_pads((7, 7), (3, 3), 1, 1) == (1, 1, 1, 1)
    assert same_pads((8, 8), (4, 4), 1, 1) == (1, 2, 1, 2)
    assert same_pads((9, 10), (3, 3), 2, 1) == (1, 1, 0, 1)  # out 5: totals 8+3-9 = 2 and 8+3-10 = 1
    assert same_pads((13, 13), (5, 5), 3, 1) == (2, 2, 2, 2)  # out 5: total 12+5-13 = 4
    assert same_pads((11, 10), (4, 3), 2, 1) == (1, 2, 0, 1)  # out 6, 5: totals 10+4-11 = 3, 8+3-10 = 1
    assert same_pads((7, 8), (1, 2), 3, 1) == (0, 0, 0, 0)
    assert same_pads((7, 7), (3, 3), 1, 2) == (2, 2, 2, 2)


# ----------------------------------------------------------------------------- finite differences

FD_CASES = [
    Case("fd_p1", (1, 2, 5, 6), 3, 3, 3, padding=1, bias=True),
    Case("fd_s2_asym", (1, 2, 6, 5), 2, 3, 2, stride=2, padding=(1, 0, 2, 1), bias=True),
    Case("fd_d2_same", (1, 2, 6, 7), 2, 3, 3, dilation=2, padding="same"),
    Case("fd_groups", (1, 4, 5, 5), 4, 3, 3, padding=1, groups=2, bias=True),
    Case("fd_depthwise_m2", (1, 2, 5, 6), 4, 3, 3, stride=(1, 2), padding=1, groups=2),
]
FD_PARAMS = [pytest.param(c.with_mode(m), id=f"{c.id}-{m}") for c in FD_CASES for m in MODES]


@pytest.mark.parametrize("algo", ["auto", "direct"])
@pytest.mark.parametrize("case", FD_PARAMS)
def test_backward_matches_finite_differences(case, algo, rng, device):
    x = rng.standard_normal(case.x_shape)
    w = rng.standard_normal(case.w_shape)
    b = rng.standard_normal(case.p["c_out"]) if case.p["bias"] else None
    case = case.algo(algo)
    y = to_host(case.run_forward(*(to_device(a, device) for a in (x, w, b))), device)
    gy = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(to_host(case.run_forward(*(to_device(a, device) for a in (x, w, b))), device) * gy))

    gx, gw, gb = (to_host(g, device) for g in case.run_backward(*(to_device(a, device) for a in (gy, x, w))))
    assert rel_err(gx, numerical_grad(loss, x)) < 1e-8
    assert rel_err(gw, numerical_grad(loss, w)) < 1e-8
    if b is not None:
        assert rel_err(gb, numerical_grad(loss, b)) < 1e-8


@pytest.mark.parametrize("case", FD_PARAMS[::3])
def test_reference_backward_matches_finite_differences(case, rng):
    """The oracle itself: conv2d_backward_ref is the derivative of conv2d_ref."""
    x = rng.standard_normal(case.x_shape)
    w = rng.standard_normal(case.w_shape)
    b = rng.standard_normal(case.p["c_out"])
    kw = case.ref_kwargs()
    gy = rng.standard_normal(conv2d_ref(x, w, b, **kw).shape)

    def loss():
        return float(np.sum(conv2d_ref(x, w, b, **kw) * gy))

    gx, gw, gb = conv2d_backward_ref(gy, x, w, **kw)
    assert rel_err(gx, numerical_grad(loss, x)) < 1e-8
    assert rel_err(gw, numerical_grad(loss, w)) < 1e-8
    assert rel_err(gb, numerical_grad(loss, b)) < 1e-8


# ----------------------------------------------------------------------------- PyTorch as second oracle

TORCH_CASES = [c for c in ALL_CASES if c.id in (
    "basic_3x3_p1", "asym_4tuple_s2", "same_s3", "same_s21_d2", "full_dil", "stride3_dil2", "groups4_s2",
    "depthwise_m2_s2", "conv1x1_s2", "pad_beyond_reach_asym")] + [c for c in MODE_CASES if c.id.split("-")[0] in (
        "p1", "asym", "same_s3", "s2_d2", "s21_d12", "groups2", "depthwise_m2_s2", "max_reflect_pad")] + [
    c for c in MODE_CASES if c.id in ("circular_pad_eq_size", "replicate_huge_pad")]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in TORCH_CASES])
def test_against_torch(case, dtype, device):
    case.dtype(dtype).test_torch(device)


# ----------------------------------------------------------------------------- outputs and inputs


@pytest.mark.parametrize("algo", ["direct", "gemm", "auto", "smallc", "depthwise"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_outputs_are_fresh_arrays(rng, dtype, algo):
    x = rng.standard_normal((2, 4, 7, 9)).astype(dtype)
    w = rng.standard_normal((8, 1, 3, 3)).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    kw = dict(padding=(1, 0, 2, 1), groups=4, algo=algo)
    y1 = cnnops.conv2d(x, w, b, **kw)
    y2 = cnnops.conv2d(x, w, b, **kw)
    P, Q = 7 + 1 - 2, 9 + 3 - 2
    for y in (y1, y2):
        assert type(y) is np.ndarray and y.dtype == dtype and y.shape == (2, 8, P, Q)
        assert np.isfinite(y).all()
        assert y.flags.writeable and y.flags.c_contiguous
        for a in (x, w, b):
            assert not np.shares_memory(y, a)
    assert not np.shares_memory(y1, y2)
    np.testing.assert_array_equal(y1, y2)
    y1[...] = np.nan  # writing into one result must not show up anywhere else
    assert np.isfinite(y2).all()
    assert np.isfinite(cnnops.conv2d(x, w, b, **kw)).all()

    gy = rng.standard_normal(y2.shape).astype(dtype)
    g1 = cnnops.conv2d_backward(gy, x, w, **kw)
    g2 = cnnops.conv2d_backward(gy, x, w, **kw)
    for g, shape in zip(g1, (x.shape, w.shape, (8,))):
        assert type(g) is np.ndarray and g.dtype == dtype and g.shape == shape
        assert np.isfinite(g).all()
        for a in (x, w, gy, y2):
            assert not np.shares_memory(g, a)
    for a, c in zip(g1, g2):
        assert not np.shares_memory(a, c)
    assert not np.shares_memory(g1[0], g1[1]) and not np.shares_memory(g1[1], g1[2])


@pytest.mark.parametrize("case,algo", case_algo_params([c for c in ALL_CASES if c.id in (
    "basic_3x3_p1", "asym_4tuple_s2", "depthwise_m2_s2", "p1-reflect", "s2_d2-circular",
    "depthwise_m1-replicate")]))
def test_inputs_not_modified(case, algo):
    x, w, b, gy, _, _ = case.dtype(np.float32).data()
    copies = [None if a is None else a.copy() for a in (x, w, b, gy)]
    cnnops.conv2d(x, w, b, algo=algo, **case.kwargs())
    cnnops.conv2d_backward(gy, x, w, algo=algo, **case.kwargs())
    for a, c in zip((x, w, b, gy), copies):
        if a is not None:
            np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("needs", [(True, False, False), (False, True, False), (False, False, True),
                                   (False, True, True), (False, False, False)])
@pytest.mark.parametrize("algo", ["direct", "gemm", "depthwise"])
def test_backward_needs_subset(needs, algo, device):
    case = next(c for c in ALL_CASES if c.id == "depthwise_m2_s2")
    x, w, b, gy, _, refs = case.dtype(np.float64).data()
    out = cnnops.conv2d_backward(*(to_device(a, device) for a in (gy, x, w)), needs=needs, algo=algo,
                                 **case.kwargs())
    assert len(out) == 3
    for need, got, ref in zip(needs, out, refs):
        if need:
            assert rel_err(to_host(got, device), ref) < 1e-12
        else:
            assert got is None


# ----------------------------------------------------------------------------- determinism

DET_CASES = [c for c in ALL_CASES if c.id in (
    "basic_3x3_p1", "same_s2", "stride3_dil2", "groups4_s2", "gemm_multi_kc", "gemm_many_pixels", "batch5",
    "pad_beyond_reach", "depthwise_m1", "depthwise_m2_s2", "depthwise_m2_wide", "s2_d2-reflect",
    "asym-circular", "depthwise_m2_s2-replicate")]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case,algo", case_algo_params(DET_CASES))
def test_backward_repeatable(case, algo, dtype):
    x, w, b, gy, _, _ = case.dtype(dtype).data()
    first = cnnops.conv2d_backward(gy, x, w, algo=algo, **case.kwargs())
    second = cnnops.conv2d_backward(gy, x, w, algo=algo, **case.kwargs())
    for a, c in zip(first, second):
        np.testing.assert_array_equal(a, c)  # bitwise, NaN-free


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case,algo", case_algo_params(DET_CASES))
def test_grad_input_and_bias_independent_of_thread_count(case, algo, dtype, threads):
    x, w, b, gy, _, _ = case.dtype(dtype).data()
    results = []
    for n in (1, 2, 4):
        threads(n)
        assert cnnops.get_num_threads() == n
        results.append(cnnops.conv2d_backward(gy, x, w, algo=algo, **case.kwargs()))
    for r in results[1:]:
        np.testing.assert_array_equal(r[0], results[0][0])
        np.testing.assert_array_equal(r[2], results[0][2])  # grad_bias: one fixed order per channel
        if algo == "depthwise":  # depthwise weight gradients are per-plane: fixed order too
            np.testing.assert_array_equal(r[1], results[0][1])


@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("case,algo", case_algo_params([c for c in ALL_CASES if c.id in (
    "gemm_multi_kc", "groups4_s2", "depthwise_m2_s2-reflect")]))
def test_other_thread_counts_match_reference(case, algo, n_threads, threads):
    threads(n_threads)
    case.dtype(np.float32).algo(algo).test()


# ----------------------------------------------------------------------------- array layouts and types


def _noncontig_transposed(a):
    """Same values, H and W strides swapped (a Fortran-ish view)."""
    return a.transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2)


def _noncontig_sliced(a, rng):
    """Same values, living at every other element of a bigger array (a strided view)."""
    big = rng.standard_normal(tuple(2 * s for s in a.shape)).astype(a.dtype)
    view = big[tuple(slice(1, None, 2) for _ in a.shape)]
    view[...] = a
    assert not view.flags.c_contiguous
    return view


@pytest.mark.parametrize("layout", ["transposed", "sliced", "reversed_copy", "fortran"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case,algo", case_algo_params([c for c in ALL_CASES if c.id in (
    "asym_4tuple_s2", "depthwise_m2_s2", "groups2", "same_s2-reflect")]))
def test_noncontiguous_inputs(case, algo, dtype, layout, rng):
    x, w, b, gy, y_ref, (gx_ref, gw_ref, gb_ref) = case.dtype(dtype).data()

    def view(a):
        if a is None:
            return None
        if layout == "transposed":
            return _noncontig_transposed(a) if a.ndim == 4 else _noncontig_sliced(a, rng)
        if layout == "sliced":
            return _noncontig_sliced(a, rng)
        if layout == "reversed_copy":  # negative strides along W
            v = a[..., ::-1].copy()[..., ::-1]
            assert v.strides[-1] < 0
            return v
        return np.asfortranarray(a)

    xv, wv, bv, gyv = view(x), view(w), view(b), view(gy)
    y = cnnops.conv2d(xv, wv, bv, algo=algo, **case.kwargs())
    check_close(y, y_ref, dtype, "conv2d")
    gx, gw, gb = cnnops.conv2d_backward(gyv, xv, wv, algo=algo, **case.kwargs())
    check_close(gx, gx_ref, dtype, "grad_input")
    check_close(gw, gw_ref, dtype, "grad_weight")
    check_close(gb, gb_ref, dtype, "grad_bias")


def test_broadcast_and_readonly_inputs(rng):
    x1 = rng.standard_normal((1, 3, 6, 7))
    xb = np.broadcast_to(x1, (3, 3, 6, 7))  # zero stride along N, read-only
    w = rng.standard_normal((4, 3, 3, 3))
    w.setflags(write=False)
    y = cnnops.conv2d(xb, w, padding=1)
    ref = conv2d_ref(np.ascontiguousarray(xb), w, None, 1, (1, 1, 1, 1))
    assert rel_err(y, ref) < 1e-12
    assert y.flags.writeable


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_torch_in_torch_out(dtype_name):
    torch = pytest.importorskip("torch")
    dt = getattr(torch, dtype_name)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 6, 9, 8, generator=g, dtype=dt)
    w = torch.randn(4, 3, 3, 3, generator=g, dtype=dt)
    b = torch.randn(4, generator=g, dtype=dt)
    kw = dict(stride=(2, 1), padding=(1, 2, 0, 1), groups=2, padding_mode="reflect")
    ref = conv2d_ref(x.numpy(), w.numpy(), b.numpy(), (2, 1), (1, 2, 0, 1), 1, 2, "reflect")

    # a leaf that requires grad goes in as its values; the result is a plain tensor
    xg = x.clone().requires_grad_(True)
    y = cnnops.conv2d(xg, w, b, **kw)
    assert isinstance(y, torch.Tensor) and y.dtype == dt and y.device.type == "cpu"
    assert tuple(y.shape) == ref.shape and not y.requires_grad
    assert rel_err(y.numpy(), ref) < TOL[np.dtype(dtype_name).type]
    assert xg.grad is None

    # non-contiguous torch views: permuted storage (channels_last) and a strided slice
    x_cl = x.to(memory_format=torch.channels_last)
    assert not x_cl.is_contiguous()
    torch.testing.assert_close(cnnops.conv2d(x_cl, w, b, **kw), y, rtol=0, atol=0)
    big = torch.zeros(2, 12, 9, 16, dtype=dt)
    big[:, ::2, :, ::2] = x
    torch.testing.assert_close(cnnops.conv2d(big[:, ::2, :, ::2], w, b, **kw), y, rtol=0, atol=0)

    gy = torch.randn(y.shape, generator=g, dtype=dt)
    gx, gw, gb = cnnops.conv2d_backward(gy, xg, w.requires_grad_(True), needs=(True, True, True), **kw)
    for t, shape in ((gx, x.shape), (gw, w.shape), (gb, b.shape)):
        assert isinstance(t, torch.Tensor) and t.dtype == dt and t.shape == shape
    refs = conv2d_backward_ref(gy.numpy(), x.numpy(), w.detach().numpy(), (2, 1), (1, 2, 0, 1), 1, 2, "reflect")
    for t, r in zip((gx, gw, gb), refs):
        assert rel_err(t.numpy(), r) < TOL[np.dtype(dtype_name).type]


def test_torch_dtype_without_numpy_counterpart():
    """CPU tensors cross as NumPy views; bfloat16 (no NumPy dtype) takes the DLPack route and is
    refused by the core with the dtype named, not by NumPy with an unrelated message."""
    torch = pytest.importorskip("torch")
    x = torch.zeros(1, 1, 4, 4, dtype=torch.bfloat16)
    w = torch.zeros(1, 1, 3, 3, dtype=torch.bfloat16)
    msg = r"conv2d: expected input with dtype float32 or float64 \(float16 and bfloat16 on CUDA arrays\), got bfloat16"
    with pytest.raises(TypeError, match=msg):
        cnnops.conv2d(x, w)


@pytest.mark.parametrize("algo", ["direct", "gemm", "auto", "depthwise", "smallc"])
def test_empty_batch(algo):
    x = np.zeros((0, 4, 7, 6), np.float32)
    w = np.ones((8, 1, 3, 2), np.float32)
    b = np.ones(8, np.float32)
    kw = dict(stride=(1, 1), padding=(1, 0, 0, 2), groups=4, algo=algo)
    y = cnnops.conv2d(x, w, b, **kw)
    assert isinstance(y, np.ndarray) and y.shape == (0, 8, 6, 7) and y.dtype == np.float32
    gx, gw, gb = cnnops.conv2d_backward(np.zeros(y.shape, np.float32), x, w, **kw)
    assert gx.shape == x.shape and gx.dtype == np.float32
    np.testing.assert_array_equal(gw, np.zeros_like(w))
    np.testing.assert_array_equal(gb, np.zeros(8, np.float32))


def test_empty_batch_torch():
    torch = pytest.importorskip("torch")
    x = torch.zeros(0, 3, 5, 5, dtype=torch.float64)
    w = torch.ones(2, 3, 3, 3, dtype=torch.float64)
    y = cnnops.conv2d(x, w, padding="same")
    assert isinstance(y, torch.Tensor) and tuple(y.shape) == (0, 2, 5, 5)


# ----------------------------------------------------------------------------- bad arguments

X = (2, 4, 6, 6)
W = (6, 4, 3, 3)


BAD_CALLS = [
    # (id, call, exception, regex that must match the message: expected value and given value)
    ("input_ndim", lambda: cnnops.conv2d(_z(X[1:]), _z(W)), ValueError,
     r"input with 4 dimensions .*got 3 with shape \(4, 6, 6\)"),
    ("input_ndim5", lambda: cnnops.conv2d(_z((1,) + X), _z(W)), ValueError, r"4 dimensions .*got 5"),
    ("weight_ndim", lambda: cnnops.conv2d(_z(X), _z(W[1:])), ValueError,
     r"weight with 4 dimensions .*got 3 with shape \(4, 3, 3\)"),
    ("groups_not_dividing_C", lambda: cnnops.conv2d(_z((2, 5, 6, 6)), _z((6, 2, 3, 3)), groups=2), ValueError,
     r"divisible by groups, got C=5 and groups=2"),
    ("groups_not_dividing_K", lambda: cnnops.conv2d(_z(X), _z((5, 2, 3, 3)), groups=2), ValueError,
     r"divisible by groups, got K=5 and groups=2"),
    ("weight_channels", lambda: cnnops.conv2d(_z(X), _z((6, 3, 3, 3)), groups=2), ValueError,
     r"weight.shape\[1\] == C/groups = 2, got weight shape \(6, 3, 3, 3\)"),
    ("weight_channels_no_groups", lambda: cnnops.conv2d(_z(X), _z((6, 2, 3, 3))), ValueError,
     r"C/groups = 4, got weight shape \(6, 2, 3, 3\)"),
    ("groups_zero", lambda: cnnops.conv2d(_z(X), _z(W), groups=0), ValueError, r"groups >= 1, got 0"),
    ("bias_length", lambda: cnnops.conv2d(_z(X), _z(W), _z(5)), ValueError, r"bias of shape \(6,\), got \(5,\)"),
    ("bias_ndim", lambda: cnnops.conv2d(_z(X), _z(W), _z((6, 1))), ValueError, r"bias of shape \(6,\), got \(6, 1\)"),
    ("kernel_too_big", lambda: cnnops.conv2d(_z(X), _z((6, 4, 7, 7))), ValueError,
     r"kernel 7x7 to fit in the padded input 6x6"),
    ("kernel_too_big_after_pad", lambda: cnnops.conv2d(_z(X), _z((6, 4, 9, 3)), padding=1), ValueError,
     r"kernel 9x3 to fit in the padded input 8x8"),
    ("dilated_kernel_too_big", lambda: cnnops.conv2d(_z(X), _z(W), dilation=(1, 3)), ValueError,
     r"kernel 3x7 to fit in the padded input 6x6"),
    ("zero_size_input", lambda: cnnops.conv2d(_z((1, 4, 0, 6)), _z(W), padding=2), ValueError,
     r"non-zero C, H, W, got shape \(1, 4, 0, 6\)"),
    ("zero_size_weight", lambda: cnnops.conv2d(_z(X), _z((0, 4, 3, 3))), ValueError,
     r"non-zero K, R, S, got shape \(0, 4, 3, 3\)"),
    ("negative_padding", lambda: cnnops.conv2d(_z(X), _z(W), padding=-1), ValueError,
     r"non-negative padding, got \(top, bottom, left, right\) = \(-1, -1, -1, -1\)"),
    ("negative_padding_4tuple", lambda: cnnops.conv2d(_z(X), _z(W), padding=(0, 0, -2, 1)), ValueError,
     r"non-negative padding, .*= \(0, 0, -2, 1\)"),
    ("stride_zero", lambda: cnnops.conv2d(_z(X), _z(W), stride=0), ValueError, r"stride >= 1, got \(0, 0\)"),
    ("stride_zero_w", lambda: cnnops.conv2d(_z(X), _z(W), stride=(1, 0)), ValueError, r"stride >= 1, got \(1, 0\)"),
    ("dilation_zero", lambda: cnnops.conv2d(_z(X), _z(W), dilation=(0, 1)), ValueError,
     r"dilation >= 1, got \(0, 1\)"),
    ("unknown_padding_string", lambda: cnnops.conv2d(_z(X), _z(W), padding="bogus"), ValueError,
     r"'valid', 'same' or 'full' as a string, got 'bogus'"),
    ("padding_3tuple", lambda: cnnops.conv2d(_z(X), _z(W), padding=(1, 2, 3)), TypeError,
     r"\(top, bottom, left, right\).*got \(1, 2, 3\)"),
    ("unknown_padding_mode", lambda: cnnops.conv2d(_z(X), _z(W), padding_mode="mirror"), ValueError,
     r"padding_mode one of .*'circular'.*got 'mirror'"),
    ("unknown_algo", lambda: cnnops.conv2d(_z(X), _z(W), algo="fft"), ValueError,
     r"algo one of .*'winograd'.*got 'fft'"),
    ("winograd_needs_3x3_or_5x5", lambda: cnnops.conv2d(_z(X), _z((6, 4, 3, 2)), algo="winograd"), ValueError,
     r"algo='winograd' needs a 3x3 or 5x5 kernel .* got kernel \(3, 2\), stride \(1, 1\), dilation \(1, 1\)"),
    ("winograd_needs_stride1", lambda: cnnops.conv2d(_z(X), _z(W), stride=(1, 2), algo="winograd"), ValueError,
     r"algo='winograd' needs .*stride 1 and dilation 1, got kernel \(3, 3\), stride \(1, 2\)"),
    ("winograd_needs_dilation1", lambda: cnnops.conv2d(_z(X), _z(W), dilation=2, padding=2, algo="winograd"),
     ValueError, r"algo='winograd' needs .* dilation \(2, 2\)"),
    ("depthwise_needs_groups_eq_C", lambda: cnnops.conv2d(_z(X), _z((4, 2, 3, 3)), groups=2, algo="depthwise"),
     ValueError, r"algo='depthwise' needs groups == input channels, got C=4 and groups=2"),
    ("reflect_pad_eq_size", lambda: cnnops.conv2d(_z(X), _z(W), padding=6, padding_mode="reflect"), ValueError,
     r"reflect.* smaller than the input dimension, got pads \(6, 6, 6, 6\) for input 6x6"),
    ("reflect_pad_one_side", lambda: cnnops.conv2d(_z((1, 4, 6, 3)), _z(W), padding=(0, 0, 3, 0),
                                                   padding_mode="reflect"), ValueError,
     r"got pads \(0, 0, 3, 0\) for input 6x3"),
    ("circular_pad_gt_size", lambda: cnnops.conv2d(_z(X), _z(W), padding=7, padding_mode="circular"), ValueError,
     r"circular.*at most the input dimension, got pads \(7, 7, 7, 7\) for input 6x6"),
    ("dtype_mismatch_weight", lambda: cnnops.conv2d(_z(X, np.float32), _z(W)), TypeError,
     r"weight with the input's dtype float32, got float64"),
    ("dtype_mismatch_bias", lambda: cnnops.conv2d(_z(X), _z(W), _z(6, np.float32)), TypeError,
     r"bias with the input's dtype float64, got float32"),
    ("int_input", lambda: cnnops.conv2d(_z(X, np.int32), _z(W, np.int32)), TypeError,
     r"float32 or float64 \(float16 and bfloat16 on CUDA arrays\), got int32"),
    ("int_weight", lambda: cnnops.conv2d(_z(X), _z(W, np.int64)), TypeError, r"input.s dtype float64, got int64"),
    ("float16_input", lambda: cnnops.conv2d(_z(X, np.float16), _z(W, np.float16)), TypeError,
     r"float32 or float64 \(float16 and bfloat16 on CUDA arrays\), got float16"),
    ("list_bias", lambda: cnnops.conv2d(_z(X), _z(W), [0.0] * 6), TypeError, r"DLPack.*got list"),
    ("list_input", lambda: cnnops.conv2d(_z(X).tolist(), _z(W)), TypeError, r"DLPack.*got list"),
    ("list_weight", lambda: cnnops.conv2d(_z(X), _z(W).tolist()), TypeError, r"DLPack.*got list"),
    ("bool_stride", lambda: cnnops.conv2d(_z(X), _z(W), stride=True), TypeError, r"int or a pair of ints, got True"),
    ("float_groups", lambda: cnnops.conv2d(_z(X), _z(W), groups=2.0), TypeError, r"groups as an int, got 2.0"),
    ("backward_grad_output_shape", lambda: cnnops.conv2d_backward(_z((2, 6, 4, 5)), _z(X), _z(W)), ValueError,
     r"grad_output of shape \(2, 6, 4, 4\) \(the forward output's\), got \(2, 6, 4, 5\)"),
    ("backward_grad_output_shape_stride", lambda: cnnops.conv2d_backward(_z((2, 6, 4, 4)), _z(X), _z(W), stride=2,
                                                                        padding=1),
     ValueError, r"grad_output of shape \(2, 6, 3, 3\) .*got \(2, 6, 4, 4\)"),
    ("backward_grad_output_ndim", lambda: cnnops.conv2d_backward(_z((6, 4, 4)), _z(X), _z(W)), ValueError,
     r"grad_output with 4 dimensions .*got 3"),
    ("backward_grad_output_dtype", lambda: cnnops.conv2d_backward(_z((2, 6, 4, 4), np.float32), _z(X), _z(W)),
     TypeError, r"grad_output with the input's dtype float64, got float32"),
    ("backward_grad_output_list", lambda: cnnops.conv2d_backward(_z((2, 6, 4, 4)).tolist(), _z(X), _z(W)),
     TypeError, r"DLPack.*got list"),
    ("backward_input_list", lambda: cnnops.conv2d_backward(_z((2, 6, 4, 4)), _z(X).tolist(), _z(W)),
     TypeError, r"DLPack.*got list"),
    ("backward_needs", lambda: cnnops.conv2d_backward(_z((2, 6, 4, 4)), _z(X), _z(W), needs=(True,)), TypeError,
     r"three booleans .*got \(True,\)"),
    ("backward_groups", lambda: cnnops.conv2d_backward(_z((2, 6, 4, 4)), _z(X), _z(W), groups=3), ValueError,
     r"got C=4 and groups=3"),
    ("backward_reflect", lambda: cnnops.conv2d_backward(_z((2, 6, 16, 16)), _z(X), _z(W), padding=6,
                                                        padding_mode="reflect"), ValueError,
     r"got pads \(6, 6, 6, 6\) for input 6x6"),
    ("backward_algo", lambda: cnnops.conv2d_backward(_z((2, 6, 4, 4)), _z(X), _z(W), algo="depthwise"), ValueError,
     r"algo='depthwise' needs groups == input channels, got C=4 and groups=1"),
]


@pytest.mark.parametrize("call,exc,pattern", [pytest.param(c, e, p, id=i) for i, c, e, p in BAD_CALLS])
def test_bad_arguments_raise(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_error_messages_name_the_op():
    with pytest.raises(ValueError, match=r"^conv2d: "):
        cnnops.conv2d(_z(X), _z(W), stride=0)
    with pytest.raises(ValueError, match=r"^conv2d_backward: "):
        cnnops.conv2d_backward(_z((2, 6, 4, 5)), _z(X), _z(W))


def test_concurrent_calls_from_python_threads(rng):
    """Kernels release the GIL; calls from several Python threads at once must not share scratch."""
    import threading

    w = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)
    xs = [rng.standard_normal((2, 16, 20, 21)).astype(np.float32) for _ in range(4)]
    ys = [cnnops.conv2d(x, w, padding=1) for x in xs]
    gs = [cnnops.conv2d_backward(y, x, w, padding=1) for x, y in zip(xs, ys)]
    failures = []

    def work(i):
        for _ in range(10):
            y = cnnops.conv2d(xs[i], w, padding=1)
            g = cnnops.conv2d_backward(ys[i], xs[i], w, padding=1)
            if not (np.array_equal(y, ys[i]) and all(np.array_equal(a, c) for a, c in zip(g, gs[i]))):
                failures.append(i)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not failures


@pytest.mark.parametrize("stride", [(2, 1), (1, 2), (3, 4)])
@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_smallc_any_stride(rng, stride, mode):
    """The slab kernel splits padded rows into stride phases: every stride reads unit-stride."""
    x = rng.standard_normal((1, 2, 13, 17))
    w = rng.standard_normal((7, 2, 3, 5))
    y = cnnops.conv2d(x, w, stride=stride, padding=2, padding_mode=mode, algo="smallc")
    assert rel_err(y, conv2d_ref(x, w, None, stride, (2, 2, 2, 2), mode=mode)) < 1e-12



# Stride-1 layers with rows short against the 16-wide strips take the slab kernel's flat-row path
# (float32 with AVX2, conv_smallc.cpp): a block's slab rows laid end to end, output channels in
# panels of 4 or 6, each vector's valid lanes compacted on store. These shapes take it under the
# cost rule there: 4- and 6-channel panels, partial last panels of both, blocks ending mid-strip
# and short last blocks (3 images, 28 rows: blocks of 5; two channels, 15 rows: blocks of 2),
# asymmetric and non-zero padding, groups, dilation, and a conv3d lowered onto it.
FLAT_CASES = [
    ((3, 1, 28, 28), (32, 1, 5, 5), dict(padding=2)),
    ((16, 1, 28, 28), (6, 1, 5, 5), dict(padding=2)),
    ((2, 1, 13, 17), (7, 1, 3, 3), dict(padding=(1, 2, 0, 3))),
    ((2, 1, 28, 28), (32, 1, 5, 5), dict(padding=2, padding_mode="reflect")),
    ((2, 4, 15, 30), (10, 2, 3, 3), dict(padding=(0, 0, 2, 4), groups=2, padding_mode="replicate")),
    ((2, 2, 17, 25), (8, 1, 3, 3), dict(padding=1, groups=2, padding_mode="circular")),
    ((2, 1, 12, 26), (8, 1, 3, 3), dict(padding=2, dilation=2)),
    ((5, 1, 7, 7), (3, 1, 3, 3), dict(padding=1)),
    ((3, 2, 15, 20), (5, 2, 3, 3), dict(padding=1)),
]


@pytest.mark.parametrize("xs,ws,kw", FLAT_CASES)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_smallc_flat_rows(rng, threads, xs, ws, kw, n_threads):
    threads(n_threads)
    x = rng.standard_normal(xs)
    w = rng.standard_normal(ws)
    b = rng.standard_normal(ws[0])
    y = cnnops.conv2d(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), algo="smallc", **kw)
    c = Case("flat", xs, ws[0], ws[2], ws[3], padding=kw["padding"], dilation=kw.get("dilation", 1),
             groups=kw.get("groups", 1), mode=kw.get("padding_mode", "zeros"))
    ref = conv2d_ref(x, w, b, **c.ref_kwargs())
    assert y.shape == ref.shape
    assert rel_err(y, ref) < TOL[np.float32]


def test_smallc_flat_rows_conv3d(rng):
    x = rng.standard_normal((2, 1, 5, 12, 26))
    w = rng.standard_normal((7, 1, 3, 3, 3))
    y = cnnops.conv3d(x.astype(np.float32), w.astype(np.float32), padding=1, algo="smallc")
    assert rel_err(y, conv3d_ref(x, w, None, 1, (1,) * 6)) < TOL[np.float32]


@pytest.mark.parametrize("K", [5, 16, 25, 37])  # below NR: pixel orientation; >= NR: channel orientation
@pytest.mark.parametrize("stride,mode", [(1, "zeros"), (2, "circular"), ((1, 3), "replicate")])
def test_smallc_both_orientations(rng, K, stride, mode):
    """The slab kernel vectorises over pixels or, with >= 16 output channels and >= 64 taps,
    over channels (6-pixel tiles across rows, with a tail tile); both must match the reference."""
    x = rng.standard_normal((2, 7, 11, 13))
    w = rng.standard_normal((K, 7, 3, 4))
    b = rng.standard_normal(K)
    for dtype in (np.float32, np.float64):
        y = cnnops.conv2d(x.astype(dtype), w.astype(dtype), b.astype(dtype), stride=stride, padding=(2, 1, 0, 3),
                          padding_mode=mode, algo="smallc")
        ref = conv2d_ref(x, w, b, stride, (2, 1, 0, 3), mode=mode)
        assert y.shape == ref.shape
        assert rel_err(y, ref) < TOL[dtype]


# ----------------------------------------------------------------------------- CUDA only
# The tests above run on CUDA through the `device` fixture; these cover what only the CUDA kernels
# have: tensor cores (tf32, float16, bfloat16), half precision on CUDA cores, channels-last arrays
# read in place, the precision argument, split-K determinism, and random shapes into the corners
# against the float64 references. Tolerances (relative error ||out - ref|| / ||ref||): tf32 1e-3
# (each operand rounded to 10 mantissa bits, 2^-11 relative, so one product is within 2^-10; long
# reductions average to ~3e-4, short ones do not), float16/bfloat16 1e-2 (fp32 accumulation),
# every CUDA-core kernel as on the CPU.

from reference import conv_transpose_backward_ref, conv_transpose_ref, convnd_backward_ref, convnd_ref  # noqa: E402
from testing import HALF, half_array, half_to_float  # noqa: E402

TF32_TOL = 1e-3
HALF_TOL = 1e-2
CUDA_ALGOS = ["gemm", "direct", "smallc", "depthwise", "tensorcore"]


def _random_conv(rng, transposed=False):
    """A random valid convolution reaching the corners: sizes 1, kernels larger than the input
    (with the padding that makes them fit), padding-only output rows, strides up to 9, dilation,
    groups, every padding mode; a random output_padding for a transposed one."""
    nd = int(rng.integers(1, 4))
    groups = int(rng.choice([1, 1, 2, 3]))
    cg, kg = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    if rng.random() < 0.2:
        cg = 1  # depthwise (multiplier kg)
        groups = int(rng.integers(2, 5))
    n = int(rng.integers(1, 3))
    ins, ks, st, dl, pads = [], [], [], [], []
    for _ in range(nd):
        size = int(rng.choice([1, 2, 3, 5, 7, 9]))
        k = int(rng.integers(1, 5))
        s = int(rng.choice([1, 1, 2, 3, 9]))
        d = int(rng.choice([1, 1, 2]))
        ext = d * (k - 1) + 1
        need = max(0, ext - size)  # padding the kernel needs to fit
        lo = int(rng.integers(0, ext))
        hi = max(need - lo, int(rng.integers(0, ext)))
        ins.append(size)
        ks.append(k)
        st.append(s)
        dl.append(d)
        pads += [lo, hi]
    mode = "zeros"
    if not transposed and rng.random() < 0.4:
        mode = str(rng.choice(["reflect", "replicate", "circular"]))
        lim = {"reflect": lambda s: s - 1, "replicate": lambda s: 10**6, "circular": lambda s: s}[mode]
        if any(pads[2 * i] > lim(ins[i]) or pads[2 * i + 1] > lim(ins[i]) for i in range(nd)):
            mode = "zeros"
    return dict(nd=nd, n=n, c=cg * groups, k=kg * groups, groups=groups, ins=ins, ks=ks, stride=st, dilation=dl,
                pads=pads, mode=mode)


def _cuda(a):
    return None if a is None else cnnops.cuda.array(a)


def _check_cuda_algos(p, name, xwb, gy, y_ref, g_ref, kw, bkw):
    """Forward and backward of `name` on CUDA with every algorithm that applies (float64 on CUDA
    cores, float32 in tf32 on tensor cores) against the float64 references."""
    fwd, bwd = getattr(cnnops, name), getattr(cnnops, name + "_backward")
    for algo in CUDA_ALGOS:
        if algo == "depthwise" and p["c"] != p["groups"]:
            continue
        dt, tol, extra = (np.float32, TF32_TOL, dict(precision="tf32")) if algo == "tensorcore" else (
            np.float64, 1e-12, {})
        args = [_cuda(None if a is None else a.astype(dt)) for a in xwb]
        y = fwd(*args, algo=algo, **kw, **extra)
        check_close(y.numpy(), y_ref, dt, f"{name}[{algo}] {p}", tol)
        grads = bwd(_cuda(gy.astype(dt)), args[0], args[1], algo=algo, **bkw, **extra)
        for what, got, ref in zip(("grad_input", "grad_weight", "grad_bias"), grads, g_ref):
            check_close(got.numpy(), ref, dt, f"{what} of {name}[{algo}] {p}", tol)


@pytest.mark.cuda
@pytest.mark.parametrize("seed", range(40))
def test_cuda_random_convolutions_match_reference(seed):
    rng = np.random.default_rng(1000 + seed)
    p = _random_conv(rng)
    nd = p["nd"]
    x = rng.standard_normal((p["n"], p["c"], *p["ins"]))
    w = rng.standard_normal((p["k"], p["c"] // p["groups"], *p["ks"]))
    b = rng.standard_normal(p["k"]) if rng.random() < 0.5 else None
    kw = dict(stride=p["stride"], padding=tuple(p["pads"]),
              dilation=p["dilation"], groups=p["groups"], padding_mode=p["mode"])
    ref_kw = dict(stride=p["stride"], pads=p["pads"], dilation=p["dilation"], groups=p["groups"], mode=p["mode"])
    y_ref = convnd_ref(x, w, b, **ref_kw)
    gy = rng.standard_normal(y_ref.shape)
    g_ref = convnd_backward_ref(gy, x, w, **ref_kw)
    _check_cuda_algos(p, f"conv{nd}d", (x, w, b), gy, y_ref, g_ref, kw, kw)


@pytest.mark.cuda
@pytest.mark.parametrize("seed", range(25))
def test_cuda_random_transposed_convolutions_match_reference(seed):
    rng = np.random.default_rng(2000 + seed)
    p = _random_conv(rng, transposed=True)
    nd = p["nd"]
    # the transposed op's input is the convolution's output
    outs = [(p["ins"][i] + p["pads"][2 * i] + p["pads"][2 * i + 1] - p["dilation"][i] * (p["ks"][i] - 1) - 1)
            // p["stride"][i] + 1 for i in range(nd)]
    x = rng.standard_normal((p["n"], p["k"], *outs))
    w = rng.standard_normal((p["k"], p["c"] // p["groups"], *p["ks"]))
    b = rng.standard_normal(p["c"]) if rng.random() < 0.5 else None
    kw = dict(stride=p["stride"], padding=tuple(p["pads"]),
              dilation=p["dilation"], groups=p["groups"], output_size=p["ins"])
    ref_kw = dict(stride=p["stride"], pads=p["pads"], dilation=p["dilation"], groups=p["groups"])
    y_ref = conv_transpose_ref(x, w, b, outs=tuple(p["ins"]), **ref_kw)
    gy = rng.standard_normal(y_ref.shape)
    g_ref = conv_transpose_backward_ref(gy, x, w, **ref_kw)
    bkw = {k: v for k, v in kw.items() if k != "output_size"}
    bkw["output_padding"] = [p["ins"][i] - ((outs[i] - 1) * p["stride"][i] - p["pads"][2 * i] - p["pads"][2 * i + 1]
                                            + p["dilation"][i] * (p["ks"][i] - 1) + 1) for i in range(nd)]
    _check_cuda_algos(p, f"conv_transpose{nd}d", (x, w, b), gy, y_ref, g_ref, kw, bkw)


# Shapes that fill more than one tile in every GEMM direction, split-K in the weight gradient and
# several stride phases in the input gradient.
TC_CASES = [
    Case("tc_3x3", (2, 24, 13, 12), 70, 3, 3, padding=1, bias=True),
    Case("tc_s2_groups", (2, 16, 15, 17), 24, 3, 3, stride=2, padding=1, groups=2, bias=True),
    Case("tc_5x5_d2", (1, 9, 16, 14), 33, 5, 5, dilation=2, padding=4),
    Case("tc_1x1_many_k", (3, 40, 9, 9), 130, 1, 1, bias=True),
    Case("tc_reflect", (2, 6, 11, 12), 20, 3, 3, padding=2, mode="reflect"),
]


@pytest.mark.cuda
@pytest.mark.parametrize("case", TC_CASES, ids=lambda c: c.id)
def test_cuda_tf32_tensor_cores(case):
    x, w, b, gy, y_ref, refs = case.dtype(np.float64).data()
    args = [_cuda(None if a is None else a.astype(np.float32)) for a in (x, w, b)]
    y = case.run_forward(*args, algo="tensorcore", precision="tf32")
    check_close(y.numpy(), y_ref, np.float32, "tf32 forward", TF32_TOL)
    grads = case.run_backward(_cuda(gy.astype(np.float32)), args[0], args[1], algo="tensorcore", precision="tf32")
    for name, got, ref in zip(("grad_input", "grad_weight", "grad_bias"), grads, refs):
        check_close(got.numpy(), ref, np.float32, f"tf32 {name}", TF32_TOL)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("algo", ["tensorcore", "gemm", "direct", "smallc"])
@pytest.mark.parametrize("case", TC_CASES[:3] + [Case("dw_half", (2, 8, 9, 10), 16, 3, 3, padding=1, groups=8)],
                         ids=lambda c: c.id)
def test_cuda_half_precision(case, algo, dtype, rng):
    """float16/bfloat16 in and out, float32 accumulation: within HALF_TOL of the float64 result of
    the rounded inputs."""
    x, w, b, gy, _, _ = case.dtype(np.float64).data()
    (xd, xr), (wd, wr), (gd, gr) = half_array(x, dtype), half_array(w, dtype), half_array(gy, dtype)
    bd, br = half_array(b, dtype) if b is not None else (None, None)
    y_ref = case.run_forward(*(a if a is None else a.astype(np.float64) for a in (xr, wr, br)), algo="direct")
    refs = case.run_backward(gr.astype(np.float64), xr.astype(np.float64), wr.astype(np.float64), algo="direct")
    y = case.run_forward(xd, wd, bd, algo=algo)
    check_close(half_to_float(y, dtype).astype(np.float64), y_ref, np.float64, f"{dtype} forward", HALF_TOL)
    grads = case.run_backward(gd, xd, wd, algo=algo)
    for name, got, ref in zip(("grad_input", "grad_weight", "grad_bias"), grads, refs):
        check_close(half_to_float(got, dtype).astype(np.float64), ref, np.float64, f"{dtype} {name}", HALF_TOL)
    assert cnnops.conv2d_algo(xd, wd, **case.kwargs()) == ("depthwise" if case.id == "dw_half" else "tensorcore")


@pytest.mark.cuda
@pytest.mark.parametrize("algo", ["gemm", "direct", "smallc", "tensorcore"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_cuda_channels_last_in_place(nd, algo, rng):
    """A channels-last array (C innermost in memory) is read through its strides and gives
    channels-last outputs and input gradients with the same values as contiguous arrays."""
    sp = (7, 6, 5)[:nd]
    x = rng.standard_normal((2, *sp, 12)).astype(np.float32)  # channels last in memory
    w = rng.standard_normal((10, 12, *(3,) * nd)).astype(np.float32)
    perm = (0, nd + 1, *range(1, nd + 1))
    xl = cnnops.cuda.array(x).permute(perm)
    assert xl.shape == (2, 12, *sp) and xl.strides[1] == 1
    extra = dict(precision="tf32") if algo == "tensorcore" else {}
    tol = TF32_TOL if algo == "tensorcore" else 1e-5
    fwd, bwd = getattr(cnnops, f"conv{nd}d"), getattr(cnnops, f"conv{nd}d_backward")
    y = fwd(xl, cnnops.cuda.array(w), stride=2, padding=1, algo=algo, **extra)
    assert y.strides[1] == 1 and y.strides[0] == np.prod(y.shape[1:])
    xc = np.ascontiguousarray(np.transpose(x, perm))
    y_ref = fwd(xc.astype(np.float64), w.astype(np.float64), stride=2, padding=1)
    check_close(y.numpy(), y_ref, np.float32, f"channels-last conv{nd}d[{algo}]", tol)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gyl = cnnops.cuda.array(np.ascontiguousarray(np.moveaxis(gy, 1, -1))).permute(perm)
    gx, gw, gb = bwd(gyl, xl, cnnops.cuda.array(w), stride=2, padding=1, algo=algo, **extra)
    assert gx.strides[1] == 1
    refs = bwd(gy.astype(np.float64), xc.astype(np.float64), w.astype(np.float64), stride=2, padding=1)
    for name, got, ref in zip(("grad_input", "grad_weight", "grad_bias"), (gx, gw, gb), refs):
        check_close(got.numpy(), ref, np.float32, f"channels-last {name}[{algo}]", tol)


@pytest.mark.cuda
def test_cuda_backward_is_deterministic_with_split_k(rng):
    """The weight gradient splits its long reduction (here 2 x 40 x 40 positions) into partials added
    in a fixed order: the same bits on every run, in every precision."""
    x = rng.standard_normal((2, 8, 40, 40)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((2, 16, 40, 40)).astype(np.float32)
    for algo, extra in (("gemm", {}), ("tensorcore", dict(precision="tf32")), ("direct", {})):
        runs = [[g.numpy() for g in cnnops.conv2d_backward(_cuda(gy), _cuda(x), _cuda(w), padding=1, algo=algo,
                                                           **extra)] for _ in range(2)]
        for a, b in zip(*runs):
            assert np.array_equal(a, b), algo
        ref = cnnops.conv2d_backward(gy.astype(np.float64), x.astype(np.float64), w.astype(np.float64), padding=1)
        check_close(runs[0][1], ref[1], np.float32, f"grad_weight[{algo}]", TF32_TOL if extra else 1e-5)


@pytest.mark.cuda
def test_cuda_precision_and_algo_arguments(rng):
    x = _cuda(rng.standard_normal((1, 8, 6, 6)).astype(np.float32))
    w = _cuda(rng.standard_normal((5, 8, 3, 3)).astype(np.float32))
    assert cnnops.conv2d_algo(x, w) == "gemm"  # fp32 by default: CUDA cores
    assert cnnops.conv2d_algo(x, w, precision="tf32") == "tensorcore"
    assert cnnops.conv2d_algo(x, w, precision="auto") == "gemm"  # too small to gain from tensor cores
    with pytest.raises(ValueError, match="conv2d: algo='tensorcore' computes float32 in tf32"):
        cnnops.conv2d(x, w, algo="tensorcore")
    with pytest.raises(NotImplementedError, match="conv2d: algo='winograd' has no CUDA kernel"):
        cnnops.conv2d(x, w, algo="winograd")
    with pytest.raises(ValueError, match="conv2d: expected precision one of 'fp32', 'tf32', 'auto', got 'fp16'"):
        cnnops.conv2d(x, w, precision="fp16")
    x64, w64 = _cuda(rng.standard_normal((1, 8, 6, 6))), _cuda(rng.standard_normal((5, 8, 3, 3)))
    with pytest.raises(ValueError, match="algo='tensorcore' takes float32 .* got float64"):
        cnnops.conv2d(x64, w64, algo="tensorcore", precision="tf32")
    with pytest.raises(ValueError, match="algo='tensorcore' runs on CUDA arrays only"):
        cnnops.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), algo="tensorcore")
    assert cnnops.conv2d_algo(_cuda(np.ones((1, 3, 9, 9), np.float32)), _cuda(np.ones((8, 3, 3, 3), np.float32))) \
        == "smallc"
    # precision does not change CPU results (CPU kernels compute in the input's dtype)
    xh, wh = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    assert np.array_equal(cnnops.conv2d(xh, wh, precision="tf32"), cnnops.conv2d(xh, wh))


@pytest.mark.cuda
def test_cuda_stream_and_empty_batch(rng):
    x = rng.standard_normal((0, 3, 5, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y = cnnops.conv2d(_cuda(x), _cuda(w), stream=0)
    assert y.shape == (0, 4, 3, 3)
    gx, gw, gb = cnnops.conv2d_backward(_cuda(np.zeros((0, 4, 3, 3), np.float32)), _cuda(x), _cuda(w), stream=0)
    assert gx.shape == x.shape and np.array_equal(gw.numpy(), np.zeros_like(w))
    assert np.array_equal(gb.numpy(), np.zeros(4, np.float32))
