"""Tests of cnnops.conv1d / conv3d and their backward passes against the float64 N-d NumPy references
in tests/reference.py (convnd_ref, convnd_backward_ref), central finite differences, and PyTorch
(F.conv1d / F.conv3d on the F.pad-ed input) when installed.

Tolerances as in tests/test_conv.py: relative error ||out - ref|| / ||ref|| below 1e-5 in float32
and 1e-12 in float64 for every algorithm (all exact-arithmetic methods)."""
from __future__ import annotations

import numpy as np
import pytest

import cnnops
from reference import (
    conv1d_ref,
    conv2d_backward_ref,
    conv2d_ref,
    convnd_backward_ref,
    convnd_ref,
    numerical_grad,
    rel_err,
    resolve_pads_nd,
)
from testing import DTYPE_IDS, DTYPES, MODES, TOL, ConvTester, case_algo_params, check_close, to_device, to_host
from testing import zeros as _z

FORWARD = {1: cnnops.conv1d, 3: cnnops.conv3d}
BACKWARD = {1: cnnops.conv1d_backward, 3: cnnops.conv3d_backward}


# ----------------------------------------------------------------------------- test cases


def Case(id, x, K, k, stride=1, padding=0, dilation=1, groups=1, mode="zeros", bias=False):
    """A conv1d or conv3d problem: input x = (N, C, L) or (N, C, D, H, W), K output channels,
    kernel sizes k; padding in any spelling the API accepts."""
    return (ConvTester(id).shape(x, K, k).stride(stride).padding(padding).dilation(dilation).groups(groups)
            .padding_mode(mode).bias(bias))


# conv1d, zero padding: every padding spelling (int, (p,), (left, right), list, valid, same, full),
# stride, dilation, groups, depthwise; odd and prime lengths.
ZERO_1D = [
    Case("1d_basic_k3_p1", (2, 3, 11), 4, (3,), padding=1, bias=True),
    Case("1d_pad_1tuple", (3, 5, 13), 7, (5,), padding=(2,)),
    Case("1d_pad_list_asym", (1, 3, 10), 2, (3,), padding=[2, 0], bias=True),
    Case("1d_asym_s2", (2, 4, 17), 6, (4,), stride=2, padding=(3, 1)),
    Case("1d_stride_1tuple", (1, 3, 19), 4, (3,), stride=(3,), dilation=(2,), padding=(0, 2), bias=True),
    Case("1d_valid", (1, 2, 9), 3, (4,), padding="valid", bias=True),
    Case("1d_same_even_k", (2, 3, 8), 5, (4,), padding="same"),
    Case("1d_same_s2", (2, 3, 19), 5, (3,), stride=2, padding="same", bias=True),
    Case("1d_same_s3_d2", (1, 4, 23), 6, (5,), stride=3, dilation=2, padding="same"),
    Case("1d_same_no_pad_needed", (1, 2, 7), 3, (1,), stride=3, padding="same"),
    Case("1d_full", (2, 2, 5), 3, (3,), padding="full", bias=True),
    Case("1d_full_dil", (1, 3, 6), 4, (2,), dilation=3, padding="full"),
    Case("1d_s3_d2", (1, 4, 29), 6, (3,), stride=3, dilation=2, padding=2, bias=True),
    Case("1d_stride_gt_kernel", (1, 3, 13), 4, (2,), stride=3),
    Case("1d_groups2", (2, 4, 9), 6, (3,), padding=1, groups=2, bias=True),
    Case("1d_groups3_k5", (1, 6, 31), 9, (5,), padding=2, groups=3),
    Case("1d_groups_kg1", (2, 6, 8), 3, (3,), padding=1, groups=3),
    Case("1d_depthwise_m1", (2, 8, 37), 8, (3,), padding=1, groups=8, bias=True),
    Case("1d_depthwise_m2_s2", (2, 5, 41), 10, (3,), stride=2, padding=1, groups=5, bias=True),
    Case("1d_depthwise_k9_d2_same", (1, 3, 53), 3, (9,), dilation=2, padding="same", groups=3),
    Case("1d_conv1x1", (2, 16, 13), 24, (1,), bias=True),
    Case("1d_conv1x1_s2", (2, 8, 15), 12, (1,), stride=2),
    Case("1d_gemm_multi_kc", (1, 40, 47), 20, (3,), padding=1, bias=True),
    Case("1d_long_prime", (1, 3, 257), 5, (7,), padding=3),
    Case("1d_kernel_eq_input", (2, 3, 5), 4, (5,), bias=True),
    Case("1d_pad_beyond_reach", (1, 2, 4), 3, (3,), padding=3),
    Case("1d_one_sample_full", (1, 2, 1), 3, (3,), padding="full"),
    Case("1d_many_k", (1, 5, 17), 70, (3,), padding=1),
]

_MODE_BASE_1D = [
    Case("1d_p1", (2, 3, 11), 4, (3,), padding=1, bias=True),
    Case("1d_asym", (2, 4, 12), 5, (4,), padding=(3, 0)),
    Case("1d_same_s2", (1, 3, 18), 4, (3,), stride=2, padding="same", bias=True),
    Case("1d_same_s3", (1, 2, 13), 3, (5,), stride=3, padding="same"),
    Case("1d_s2_d2", (2, 2, 17), 3, (3,), stride=2, dilation=2, padding=3),
    Case("1d_full", (1, 2, 6), 3, (3,), padding="full", bias=True),
    Case("1d_groups2", (1, 4, 10), 6, (3,), padding=(1, 2), groups=2),
    Case("1d_depthwise_m1", (2, 6, 19), 6, (3,), padding=1, groups=6, bias=True),
    Case("1d_depthwise_m2_s2", (1, 3, 16), 6, (5,), stride=2, padding=2, groups=3),
    Case("1d_max_reflect_pad", (1, 2, 4), 3, (3,), padding=(3, 3)),
    Case("1d_conv1x1_pad", (1, 3, 5), 2, (1,), padding=2, bias=True),
]
MODE_1D = [c.with_mode(m) for m in ("reflect", "replicate", "circular") for c in _MODE_BASE_1D] + [
    Case("1d_circular_pad_eq_size", (1, 2, 4), 3, (3,), padding=(4, 4), mode="circular"),
    Case("1d_replicate_huge_pad", (1, 2, 3), 3, (3,), padding=(6, 7), mode="replicate", bias=True),
]

# conv3d, zero padding: int, (pd, ph, pw), 6-tuple, valid, same (mixed strides), full; dilation and
# stride in depth; groups; depthwise (T == 1 for the depthwise algorithm, T == 3 for the others).
ZERO_3D = [
    Case("3d_basic_p1", (2, 3, 5, 6, 7), 4, (3, 3, 3), padding=1, bias=True),
    Case("3d_pad_triple", (1, 2, 5, 7, 6), 3, (3, 3, 3), padding=(1, 0, 2)),
    Case("3d_pad_6tuple", (2, 3, 6, 5, 7), 5, (2, 3, 3), padding=(1, 0, 0, 2, 1, 1), bias=True),
    Case("3d_asym_s2", (1, 3, 7, 9, 8), 4, (3, 3, 3), stride=2, padding=(0, 2, 1, 0, 2, 1)),
    Case("3d_valid", (1, 2, 5, 6, 7), 3, (2, 3, 2), padding="valid", bias=True),
    Case("3d_same_even_k", (1, 3, 6, 5, 8), 4, (2, 3, 4), padding="same"),
    Case("3d_same_s213", (2, 2, 9, 7, 11), 3, (3, 3, 3), stride=(2, 1, 3), padding="same", bias=True),
    Case("3d_same_d2", (1, 2, 7, 6, 5), 3, (3, 2, 3), dilation=(2, 1, 2), padding="same"),
    Case("3d_full", (1, 2, 3, 4, 5), 3, (2, 3, 2), padding="full"),
    Case("3d_dil_depth", (1, 3, 9, 7, 8), 4, (3, 3, 3), dilation=(2, 1, 1), padding=(2, 1, 1), bias=True),
    Case("3d_s3_d2", (1, 2, 11, 10, 12), 3, (3, 2, 3), stride=(3, 2, 1), dilation=(2, 1, 2), padding=1),
    Case("3d_groups2", (2, 4, 5, 6, 5), 6, (3, 3, 3), padding=1, groups=2, bias=True),
    Case("3d_groups3_kg1", (1, 6, 4, 5, 6), 3, (3, 3, 3), padding=1, groups=3),
    Case("3d_depthwise", (1, 4, 5, 6, 7), 4, (3, 3, 3), padding=1, groups=4, bias=True),
    Case("3d_depthwise_m2_s2", (1, 3, 6, 7, 6), 6, (3, 3, 3), stride=2, padding=1, groups=3),
    Case("3d_depthwise_t1", (2, 4, 3, 7, 6), 4, (1, 3, 3), padding=(0, 1, 1), groups=4, bias=True),
    Case("3d_depthwise_t1_m2_s2", (1, 3, 4, 9, 8), 6, (1, 3, 3), stride=(1, 2, 2), padding=1, groups=3),
    Case("3d_conv1x1x1", (2, 8, 3, 5, 4), 12, (1, 1, 1), bias=True),
    Case("3d_conv1x1x1_s2", (1, 6, 5, 5, 5), 4, (1, 1, 1), stride=2),
    Case("3d_t1_kernel", (1, 3, 4, 7, 6), 5, (1, 3, 3), padding=(0, 1, 1)),
    Case("3d_kernel_depth_eq_input", (2, 2, 3, 6, 5), 3, (3, 3, 3), padding=(0, 1, 1)),
    Case("3d_pad_beyond_reach_depth", (1, 2, 2, 5, 4), 3, (3, 3, 3), padding=(3, 3, 1, 1, 0, 0)),
    Case("3d_depth1_input", (2, 3, 1, 7, 8), 4, (1, 3, 3), padding=(0, 1, 1), bias=True),
    Case("3d_gemm_multi_kc", (1, 24, 4, 6, 6), 16, (3, 3, 3), padding=1),
    # auto picks Winograd (24 lowered channels x 16): depth stride 2, odd height and width
    Case("3d_wino_depth_s2", (2, 8, 7, 9, 11), 16, (3, 3, 3), stride=(2, 1, 1), padding=(1, 1, 0), bias=True),
    Case("3d_wino5", (1, 16, 4, 7, 9), 32, (2, 5, 5), padding=(0, 2, 1), bias=True),
    # planes transformed once up front (kernel depth 3), rows of 70 tiles: more than one chunk of
    # the 6x6 input transform
    Case("3d_wino5_wide", (1, 2, 3, 5, 140), 4, (3, 5, 5), padding=(1, 2, 2)),
    Case("3d_kernel_5x1x2", (1, 3, 7, 4, 5), 4, (5, 1, 2), padding=(2, 0, 1)),
]

# Non-zero modes in 3-D: every case pads the depth dimension (the part conv3d adds to the 2-D kernels).
_MODE_BASE_3D = [
    Case("3d_p1", (1, 3, 4, 5, 6), 4, (3, 3, 3), padding=1, bias=True),
    Case("3d_asym", (1, 2, 5, 6, 4), 3, (3, 2, 3), padding=(2, 0, 1, 1, 0, 2)),
    Case("3d_depth_pad_only", (1, 2, 5, 4, 6), 3, (3, 1, 1), padding=(2, 1, 0, 0, 0, 0)),
    Case("3d_same_s2", (1, 3, 6, 7, 5), 4, (3, 3, 3), stride=2, padding="same", bias=True),
    Case("3d_s2_d2", (1, 2, 7, 8, 7), 3, (3, 3, 3), stride=2, dilation=2, padding=(3, 2, 1)),
    Case("3d_groups2", (1, 4, 4, 5, 5), 6, (3, 3, 3), padding=(1, 2, 1), groups=2),
    Case("3d_depthwise", (1, 3, 5, 5, 6), 3, (3, 3, 3), padding=1, groups=3, bias=True),
    Case("3d_max_reflect_pad", (1, 2, 3, 4, 5), 3, (3, 3, 3), padding=(2, 2, 3, 3, 4, 4)),
]
MODE_3D = [c.with_mode(m) for m in ("reflect", "replicate", "circular") for c in _MODE_BASE_3D] + [
    Case("3d_circular_pad_eq_size", (1, 2, 3, 4, 4), 3, (3, 3, 3), padding=(3, 3, 4, 4, 4, 4), mode="circular"),
    Case("3d_replicate_huge_pad", (1, 2, 2, 3, 3), 3, (3, 3, 3), padding=(4, 5, 3, 3, 2, 6), mode="replicate",
         bias=True),
]

ALL_CASES = ZERO_1D + MODE_1D + ZERO_3D + MODE_3D
_BY_ID = {c.id: c for c in ALL_CASES}
assert len(_BY_ID) == len(ALL_CASES), "case ids must be unique"


def cases(*ids):
    return [_BY_ID[i] for i in ids]


# ----------------------------------------------------------------------------- data and references

# ----------------------------------------------------------------------------- vs the reference


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case,algo", case_algo_params(ALL_CASES))
def test_forward_matches_reference(case, algo, dtype, device):
    case.dtype(dtype).algo(algo).test_forward(device)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case,algo", case_algo_params(ALL_CASES))
def test_backward_matches_reference(case, algo, dtype, device):
    case.dtype(dtype).algo(algo).test_backward(device)


# The benchmark's 1-D and 3-D layers, batch scaled down.
BENCH_CASES = [
    Case("bench_conv1d", (2, 8, 257), 8, (9,), padding=4, bias=True),
    Case("bench_conv3d", (1, 4, 6, 14, 14), 8, (3, 3, 3), padding=1, bias=True),
]


@pytest.mark.parametrize("case,algo", [pytest.param(c, a, id=f"{c.id}-{a}") for c in BENCH_CASES
                                       for a in ("auto", "gemm", "smallc")])
def test_benchmark_layers(case, algo, device):
    case.dtype(np.float32).algo(algo).test(device)


@pytest.mark.parametrize("case,algo", case_algo_params(cases(
    "1d_basic_k3_p1", "1d_depthwise_m2_s2", "1d_s2_d2-reflect", "3d_asym_s2", "3d_groups2", "3d_p1-circular",
    "3d_depthwise_t1")))
def test_portable_kernels_match_reference(case, algo, portable_simd):
    assert cnnops.simd_level() == "portable"
    for dtype in DTYPES:
        case.dtype(dtype).algo(algo).test()


# ----------------------------------------------------------------------------- the oracle itself


@pytest.mark.parametrize("mode", MODES)
def test_nd_reference_agrees_with_2d_reference(rng, mode):
    """convnd_ref with two spatial dims is the existing conv2d_ref (independently written loops)."""
    x = rng.standard_normal((2, 4, 7, 9))
    w = rng.standard_normal((6, 2, 3, 2))
    b = rng.standard_normal(6)
    kw = dict(stride=(2, 1), dilation=(1, 2), groups=2, mode=mode)
    pads = (2, 0, 1, 3)
    y = convnd_ref(x, w, b, pads=pads, **kw)
    assert rel_err(y, conv2d_ref(x, w, b, pads4=pads, **kw)) < 1e-15
    gy = rng.standard_normal(y.shape)
    for a, r in zip(convnd_backward_ref(gy, x, w, pads=pads, **kw), conv2d_backward_ref(gy, x, w, pads4=pads, **kw)):
        assert rel_err(a, r) < 1e-14


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("nd", [1, 3])
def test_reference_backward_matches_finite_differences(nd, mode, rng):
    """convnd_backward_ref is the derivative of convnd_ref (every mode, strided and dilated)."""
    if nd == 1:
        x, w, kw = rng.standard_normal((2, 4, 7)), rng.standard_normal((4, 2, 3)), dict(
            stride=2, pads=(2, 1), dilation=2, groups=2, mode=mode)
    else:
        x, w, kw = rng.standard_normal((1, 2, 4, 3, 4)), rng.standard_normal((2, 2, 2, 3, 2)), dict(
            stride=(1, 2, 1), pads=(1, 2, 1, 0, 0, 1), dilation=(2, 1, 1), groups=1, mode=mode)
    b = rng.standard_normal(w.shape[0])
    gy = rng.standard_normal(convnd_ref(x, w, b, **kw).shape)

    def loss():
        return float(np.sum(convnd_ref(x, w, b, **kw) * gy))

    gx, gw, gb = convnd_backward_ref(gy, x, w, **kw)
    assert rel_err(gx, numerical_grad(loss, x)) < 1e-8
    assert rel_err(gw, numerical_grad(loss, w)) < 1e-8
    assert rel_err(gb, numerical_grad(loss, b)) < 1e-8


# ----------------------------------------------------------------------------- finite differences

FD_CASES = [
    Case("fd_1d", (2, 4, 9), 4, (3,), stride=2, padding=(2, 1), dilation=2, groups=2, bias=True),
    Case("fd_1d_depthwise", (1, 3, 8), 6, (3,), padding="same", groups=3),
    Case("fd_3d", (1, 2, 4, 5, 4), 3, (3, 2, 3), stride=(2, 1, 1), padding=(1, 2, 0, 1, 1, 1), bias=True),
    Case("fd_3d_groups", (1, 4, 3, 4, 4), 2, (2, 3, 3), padding=1, dilation=(1, 1, 2), groups=2),
]


@pytest.mark.parametrize("case", [pytest.param(c.with_mode(m), id=f"{c.id}-{m}") for c in FD_CASES for m in MODES])
def test_backward_matches_finite_differences(case, rng, device):
    x = rng.standard_normal(case.x_shape)
    w = rng.standard_normal(case.w_shape)
    b = rng.standard_normal(case.p["c_out"]) if case.p["bias"] else None

    def forward():
        return to_host(case.run_forward(*(to_device(a, device) for a in (x, w, b))), device)

    gy = rng.standard_normal(forward().shape)

    def loss():
        return float(np.sum(forward() * gy))

    gx, gw, gb = (to_host(g, device) for g in case.run_backward(*(to_device(a, device) for a in (gy, x, w))))
    assert rel_err(gx, numerical_grad(loss, x)) < 1e-8
    assert rel_err(gw, numerical_grad(loss, w)) < 1e-8
    if b is not None:
        assert rel_err(gb, numerical_grad(loss, b)) < 1e-8


# ----------------------------------------------------------------------------- PyTorch as second oracle

TORCH_CASES = cases(
    "1d_basic_k3_p1", "1d_asym_s2", "1d_same_s3_d2", "1d_full_dil", "1d_groups3_k5", "1d_depthwise_m2_s2",
    "1d_pad_beyond_reach", "1d_p1-reflect", "1d_asym-replicate", "1d_s2_d2-circular", "1d_max_reflect_pad-reflect",
    "1d_depthwise_m2_s2-reflect", "1d_circular_pad_eq_size", "1d_replicate_huge_pad",
    "3d_basic_p1", "3d_pad_6tuple", "3d_same_s213", "3d_s3_d2", "3d_groups2", "3d_depthwise_m2_s2",
    "3d_pad_beyond_reach_depth", "3d_p1-reflect", "3d_asym-replicate", "3d_depth_pad_only-circular",
    "3d_s2_d2-reflect", "3d_groups2-circular", "3d_max_reflect_pad-reflect", "3d_circular_pad_eq_size",
    "3d_replicate_huge_pad")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in TORCH_CASES])
def test_against_torch(case, dtype, device):
    case.dtype(dtype).test_torch(device)


@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
@pytest.mark.parametrize("nd", [1, 3])
def test_torch_same_padding_stride1_matches(nd):
    """For stride 1, TensorFlow's SAME equals PyTorch's padding='same' (odd extra pixel at the end)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    g = torch.Generator().manual_seed(11)
    if nd == 1:
        x, w = torch.randn(2, 3, 14, generator=g, dtype=torch.float64), torch.randn(4, 3, 4, generator=g,
                                                                                     dtype=torch.float64)
        ref = F.conv1d(x, w, padding="same", dilation=3)
        y = cnnops.conv1d(x, w, padding="same", dilation=3)
    else:
        x = torch.randn(1, 2, 5, 6, 7, generator=g, dtype=torch.float64)
        w = torch.randn(3, 2, 2, 3, 4, generator=g, dtype=torch.float64)
        ref = F.conv3d(x, w, padding="same", dilation=(2, 1, 1))
        y = cnnops.conv3d(x, w, padding="same", dilation=(2, 1, 1))
    assert tuple(y.shape) == tuple(ref.shape) == tuple(x.shape[:1]) + tuple(ref.shape[1:2]) + tuple(x.shape[2:])
    assert rel_err(y.numpy(), ref.numpy()) < 1e-12


# ----------------------------------------------------------------------------- padding spellings, shapes


@pytest.mark.parametrize("algo", ["direct", "gemm", "auto"])
def test_padding_spellings_agree(rng, algo):
    x1, w1 = rng.standard_normal((2, 3, 11)), rng.standard_normal((4, 3, 3))
    outs = [cnnops.conv1d(x1, w1, padding=p, algo=algo) for p in (2, (2,), [2], (2, 2), [2, 2])]
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])
    np.testing.assert_array_equal(cnnops.conv1d(x1, w1, padding="valid", algo=algo), cnnops.conv1d(x1, w1, algo=algo))
    np.testing.assert_array_equal(cnnops.conv1d(x1, w1, padding="full", dilation=3, algo=algo),
                                  cnnops.conv1d(x1, w1, padding=6, dilation=3, algo=algo))

    x3, w3 = rng.standard_normal((1, 2, 5, 6, 7)), rng.standard_normal((3, 2, 3, 3, 3))
    outs = [cnnops.conv3d(x3, w3, padding=p, algo=algo) for p in (1, (1, 1, 1), [1, 1, 1], (1,) * 6)]
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])
    np.testing.assert_array_equal(cnnops.conv3d(x3, w3, padding=(1, 2, 0), algo=algo),
                                  cnnops.conv3d(x3, w3, padding=(1, 1, 2, 2, 0, 0), algo=algo))
    np.testing.assert_array_equal(cnnops.conv3d(x3, w3, padding="full", dilation=(1, 2, 1), algo=algo),
                                  cnnops.conv3d(x3, w3, padding=(2, 4, 2), dilation=(1, 2, 1), algo=algo))


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("k,d", [(3, 1), (4, 1), (2, 3), (1, 1)])
@pytest.mark.parametrize("n", [7, 10, 1])
def test_same_padding_rule_1d(rng, n, k, d, stride):
    """TensorFlow's SAME for any stride: output ceil(L / stride), the odd pad at the end."""
    x, w = rng.standard_normal((1, 2, n)), rng.standard_normal((3, 2, k))
    y = cnnops.conv1d(x, w, stride=stride, padding="same", dilation=d)
    assert y.shape == (1, 3, -(-n // stride))
    pads = resolve_pads_nd("same", (n,), (k,), stride, d)
    assert pads[1] - pads[0] in (0, 1)
    np.testing.assert_array_equal(y, cnnops.conv1d(x, w, stride=stride, padding=pads, dilation=d))
    assert rel_err(y, conv1d_ref(x, w, None, stride, pads, d)) < 1e-12


def test_same_padding_rule_3d(rng):
    x = rng.standard_normal((1, 2, 7, 10, 9))
    w = rng.standard_normal((3, 2, 3, 4, 2))
    y = cnnops.conv3d(x, w, stride=(2, 3, 1), padding="same", dilation=(1, 1, 2))
    assert y.shape == (1, 3, 4, 4, 9)
    pads = resolve_pads_nd("same", (7, 10, 9), (3, 4, 2), (2, 3, 1), (1, 1, 2))
    assert pads == (1, 1, 1, 2, 1, 1)  # totals 6+3-7 = 2, 9+4-10 = 3, 8+3-9 = 2
    np.testing.assert_array_equal(y, cnnops.conv3d(x, w, stride=(2, 3, 1), padding=pads, dilation=(1, 1, 2)))


@pytest.mark.parametrize("needs", [(True, False, False), (False, True, False), (False, False, True),
                                   (False, True, True), (False, False, False)])
@pytest.mark.parametrize("case_id", ["1d_depthwise_m2_s2-reflect", "3d_groups2-circular"])
def test_backward_needs_subset(needs, case_id):
    case = _BY_ID[case_id]
    x, w, b, gy, _, refs = case.dtype(np.float64).data()
    out = case.run_backward(gy, x, w, needs=needs, algo="auto")
    assert len(out) == 3
    for need, got, ref in zip(needs, out, refs):
        if need:
            assert rel_err(got, ref) < 1e-12
        else:
            assert got is None


@pytest.mark.parametrize("case,algo", case_algo_params(cases("1d_asym_s2", "1d_depthwise_m1-reflect",
                                                              "3d_asym_s2", "3d_groups2-replicate")))
def test_inputs_not_modified_and_outputs_fresh(case, algo):
    x, w, b, gy, y_ref, _ = case.dtype(np.float32).data()
    copies = [None if a is None else a.copy() for a in (x, w, b, gy)]
    y = FORWARD[case.nd](x, w, b, algo=algo, **case.kwargs())
    grads = BACKWARD[case.nd](gy, x, w, algo=algo, **case.kwargs())
    for a, c in zip((x, w, b, gy), copies):
        if a is not None:
            np.testing.assert_array_equal(a, c)
    for out in (y,) + tuple(grads):
        assert out.flags.writeable and out.flags.c_contiguous
        for a in (x, w, b, gy):
            assert a is None or not np.shares_memory(out, a)


@pytest.mark.parametrize("case_id", ["1d_asym_s2", "1d_groups2-reflect", "3d_pad_6tuple", "3d_same_s2-circular"])
def test_noncontiguous_inputs(case_id):
    """Every-other-element views (positive strides) and reversed copies (negative strides)."""
    case = _BY_ID[case_id]
    x, w, b, gy, y_ref, (gx_ref, gw_ref, gb_ref) = case.dtype(np.float64).data()

    def strided(a):
        big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
        big[tuple(slice(None, None, 2) for _ in a.shape)] = a
        v = big[tuple(slice(None, None, 2) for _ in a.shape)]
        assert not v.flags.c_contiguous
        return v

    xv, wv, gyv = strided(x), w[..., ::-1].copy()[..., ::-1], strided(gy)
    assert wv.strides[-1] < 0
    y = FORWARD[case.nd](xv, wv, b, **case.kwargs())
    check_close(y, y_ref, np.float64, "forward")
    gx, gw, gb = BACKWARD[case.nd](gyv, xv, wv, **case.kwargs())
    check_close(gx, gx_ref, np.float64, "grad_input")
    check_close(gw, gw_ref, np.float64, "grad_weight")
    check_close(gb, gb_ref, np.float64, "grad_bias")


@pytest.mark.parametrize("algo", ["direct", "gemm", "auto", "smallc"])
@pytest.mark.parametrize("nd", [1, 3])
def test_empty_batch(nd, algo):
    x = np.zeros((0, 4, 7, 6, 5) if nd == 3 else (0, 4, 7), np.float32)
    w = np.ones((8, 2, 3, 2, 3) if nd == 3 else (8, 2, 3), np.float32)
    b = np.ones(8, np.float32)
    kw = dict(padding=1, groups=2, padding_mode="reflect", algo=algo)
    y = FORWARD[nd](x, w, b, **kw)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    assert y.shape == ((0, 8, 7, 7, 5) if nd == 3 else (0, 8, 7))
    gx, gw, gb = BACKWARD[nd](np.zeros(y.shape, np.float32), x, w, **kw)
    assert gx.shape == x.shape
    np.testing.assert_array_equal(gw, np.zeros_like(w))
    np.testing.assert_array_equal(gb, np.zeros(8, np.float32))


# ----------------------------------------------------------------------------- bad arguments


X1, W1 = (2, 4, 6), (6, 4, 3)
X3, W3 = (2, 4, 4, 6, 6), (6, 4, 3, 3, 3)

BAD_CALLS = [
    # (id, call, exception, regex naming the expected and the given value)
    ("1d_input_4d", lambda: cnnops.conv1d(_z((2, 4, 6, 6)), _z(W1)), ValueError,
     r"^conv1d: expected input with 3 dimensions \(N, C, L\), got 4 with shape \(2, 4, 6, 6\)"),
    ("1d_input_2d", lambda: cnnops.conv1d(_z((4, 6)), _z(W1)), ValueError, r"input with 3 dimensions .*got 2"),
    ("1d_weight_4d", lambda: cnnops.conv1d(_z(X1), _z((6, 4, 3, 3))), ValueError,
     r"weight with 3 dimensions \(K, C/groups, kL\), got 4 with shape \(6, 4, 3, 3\)"),
    ("3d_input_4d", lambda: cnnops.conv3d(_z((2, 4, 6, 6)), _z(W3)), ValueError,
     r"^conv3d: expected input with 5 dimensions \(N, C, D, H, W\), got 4 with shape \(2, 4, 6, 6\)"),
    ("3d_input_6d", lambda: cnnops.conv3d(_z((1,) + X3), _z(W3)), ValueError, r"5 dimensions .*got 6"),
    ("3d_weight_4d", lambda: cnnops.conv3d(_z(X3), _z((6, 4, 3, 3))), ValueError,
     r"weight with 5 dimensions \(K, C/groups, T, R, S\), got 4 with shape \(6, 4, 3, 3\)"),
    ("1d_groups_not_dividing_C", lambda: cnnops.conv1d(_z((2, 5, 6)), _z((6, 2, 3)), groups=2), ValueError,
     r"divisible by groups, got C=5 and groups=2"),
    ("1d_groups_not_dividing_K", lambda: cnnops.conv1d(_z(X1), _z((5, 2, 3)), groups=2), ValueError,
     r"divisible by groups, got K=5 and groups=2"),
    ("3d_groups_not_dividing_C", lambda: cnnops.conv3d(_z((2, 5, 4, 6, 6)), _z((6, 2, 3, 3, 3)), groups=2),
     ValueError, r"divisible by groups, got C=5 and groups=2"),
    ("3d_groups_not_dividing_K", lambda: cnnops.conv3d(_z(X3), _z((3, 2, 3, 3, 3)), groups=2), ValueError,
     r"divisible by groups, got K=3 and groups=2"),
    ("1d_weight_channels", lambda: cnnops.conv1d(_z(X1), _z((6, 3, 3)), groups=2), ValueError,
     r"weight.shape\[1\] == C/groups = 2, got weight shape \(6, 3, 3\)"),
    ("3d_weight_channels", lambda: cnnops.conv3d(_z(X3), _z((6, 3, 3, 3, 3))), ValueError,
     r"weight.shape\[1\] == C/groups = 4, got weight shape \(6, 3, 3, 3, 3\)"),
    ("1d_kernel_too_big", lambda: cnnops.conv1d(_z(X1), _z((6, 4, 9)), padding=1), ValueError,
     r"kernel 9 to fit in the padded input 8"),
    ("1d_dilated_kernel_too_big", lambda: cnnops.conv1d(_z(X1), _z(W1), dilation=3), ValueError,
     r"kernel 7 to fit in the padded input 6"),
    ("3d_kernel_too_big_depth", lambda: cnnops.conv3d(_z(X3), _z((6, 4, 5, 3, 3))), ValueError,
     r"kernel 5x3x3 to fit in the padded input 4x6x6"),
    ("3d_kernel_too_big_after_pad", lambda: cnnops.conv3d(_z(X3), _z((6, 4, 3, 9, 3)), padding=(0, 1, 1)),
     ValueError, r"kernel 3x9x3 to fit in the padded input 4x8x8"),
    ("3d_dilated_depth_too_big", lambda: cnnops.conv3d(_z(X3), _z(W3), dilation=(2, 1, 1)), ValueError,
     r"kernel 5x3x3 to fit in the padded input 4x6x6"),
    ("1d_reflect_pad_too_large", lambda: cnnops.conv1d(_z(X1), _z(W1), padding=6, padding_mode="reflect"),
     ValueError, r"reflect.* smaller than the input dimension, got pads \(6, 6\) for input 6"),
    ("1d_reflect_pad_one_side", lambda: cnnops.conv1d(_z(X1), _z(W1), padding=(0, 6), padding_mode="reflect"),
     ValueError, r"got pads \(0, 6\) for input 6"),
    ("3d_reflect_depth_pad", lambda: cnnops.conv3d(_z((2, 4, 3, 6, 6)), _z(W3), padding=(3, 1, 1),
                                                   padding_mode="reflect"),
     ValueError, r"reflect.* smaller than the input dimension, got pads \(3, 3, 1, 1, 1, 1\) for input 3x6x6"),
    ("3d_circular_pad_gt_size", lambda: cnnops.conv3d(_z((2, 4, 3, 6, 6)), _z(W3), padding=(4, 1, 1),
                                                      padding_mode="circular"),
     ValueError, r"circular.*at most the input dimension, got pads \(4, 4, 1, 1, 1, 1\) for input 3x6x6"),
    ("1d_padding_3tuple", lambda: cnnops.conv1d(_z(X1), _z(W1), padding=(1, 2, 3)), TypeError,
     r"padding as an int, \(p,\) or \(left, right\).*got \(1, 2, 3\)"),
    ("3d_padding_pair", lambda: cnnops.conv3d(_z(X3), _z(W3), padding=(1, 2)), TypeError,
     r"\(pd, ph, pw\) or \(front, back, top, bottom, left, right\).*got \(1, 2\)"),
    ("3d_padding_4tuple", lambda: cnnops.conv3d(_z(X3), _z(W3), padding=(1, 2, 3, 4)), TypeError,
     r"got \(1, 2, 3, 4\)"),
    ("3d_padding_float", lambda: cnnops.conv3d(_z(X3), _z(W3), padding=(1, 1.0, 1)), TypeError, r"got \(1, 1.0, 1\)"),
    ("1d_unknown_padding_string", lambda: cnnops.conv1d(_z(X1), _z(W1), padding="causal"), ValueError,
     r"'valid', 'same' or 'full' as a string, got 'causal'"),
    ("3d_negative_padding", lambda: cnnops.conv3d(_z(X3), _z(W3), padding=(0, 0, 0, 0, -1, 0)), ValueError,
     r"non-negative padding, got \(front, back, top, bottom, left, right\) = \(0, 0, 0, 0, -1, 0\)"),
    ("1d_stride_pair", lambda: cnnops.conv1d(_z(X1), _z(W1), stride=(1, 2)), TypeError,
     r"stride as an int or a 1-tuple, got \(1, 2\)"),
    ("3d_stride_pair", lambda: cnnops.conv3d(_z(X3), _z(W3), stride=(1, 2)), TypeError,
     r"stride as an int or a triple of ints, got \(1, 2\)"),
    ("3d_stride_zero", lambda: cnnops.conv3d(_z(X3), _z(W3), stride=(1, 0, 1)), ValueError,
     r"stride >= 1, got \(1, 0, 1\)"),
    ("3d_dilation_zero", lambda: cnnops.conv3d(_z(X3), _z(W3), dilation=(0, 1, 1)), ValueError,
     r"dilation >= 1, got \(0, 1, 1\)"),
    ("1d_bias_length", lambda: cnnops.conv1d(_z(X1), _z(W1), _z(5)), ValueError, r"bias of shape \(6,\), got \(5,\)"),
    ("3d_dtype_mismatch", lambda: cnnops.conv3d(_z(X3, np.float32), _z(W3)), TypeError,
     r"weight with the input's dtype float32, got float64"),
    ("1d_padding_mode", lambda: cnnops.conv1d(_z(X1), _z(W1), padding_mode="symmetric"), ValueError,
     r"padding_mode one of .*got 'symmetric'"),
    ("1d_depthwise_needs_groups_eq_C", lambda: cnnops.conv1d(_z(X1), _z((4, 2, 3)), groups=2, algo="depthwise"),
     ValueError, r"algo='depthwise' needs groups == input channels, got C=4 and groups=2"),
    ("1d_backward_grad_output_shape", lambda: cnnops.conv1d_backward(_z((2, 6, 5)), _z(X1), _z(W1)), ValueError,
     r"^conv1d_backward: expected grad_output of shape \(2, 6, 4\) \(the forward output's\), got \(2, 6, 5\)"),
    ("3d_backward_grad_output_shape", lambda: cnnops.conv3d_backward(_z((2, 6, 2, 4, 5)), _z(X3), _z(W3)),
     ValueError, r"^conv3d_backward: expected grad_output of shape \(2, 6, 2, 4, 4\) .*got \(2, 6, 2, 4, 5\)"),
    ("3d_backward_input_4d", lambda: cnnops.conv3d_backward(_z((2, 6, 2, 4, 4)), _z((2, 4, 6, 6)), _z(W3)),
     ValueError, r"input with 5 dimensions .*got 4"),
    ("1d_backward_needs", lambda: cnnops.conv1d_backward(_z((2, 6, 4)), _z(X1), _z(W1), needs=(True, True)),
     TypeError, r"three booleans .*got \(True, True\)"),
    ("3d_backward_reflect", lambda: cnnops.conv3d_backward(_z((2, 6, 10, 4, 4)), _z(X3), _z(W3),
                                                           padding=(4, 0, 0), padding_mode="reflect"),
     ValueError, r"got pads \(4, 4, 0, 0, 0, 0\) for input 4x6x6"),
]


@pytest.mark.parametrize("call,exc,pattern", [pytest.param(c, e, p, id=i) for i, c, e, p in BAD_CALLS])
def test_bad_arguments_raise(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ----------------------------------------------------------------------------- corner shapes

def _corner_config(rng):
    """A random convolution that reaches the corners: sizes 1, kernels longer than the input
    (made to fit by padding), output rows/columns made only of padding (pads beyond the kernel's
    reach), huge strides, dilation, groups down to depthwise, every padding mode."""
    nd = int(rng.integers(1, 4))
    G = int(rng.choice([1, 1, 2, 3]))
    Cg, Kg = int(rng.choice([1, 1, 2, 3, 5, 8])), int(rng.choice([1, 2, 4, 6, 7, 16, 17]))
    if rng.random() < 0.2:
        Cg, Kg, G = 1, 1, int(rng.integers(2, 6))
    sp = [int(rng.choice([1, 1, 2, 3, 6, 13])) for _ in range(nd)]
    ks = [int(rng.choice([1, 2, 3, 5, 7])) for _ in range(nd)]
    st = [int(rng.choice([1, 1, 2, 3, 2**20])) for _ in range(nd)]
    dl = [int(rng.choice([1, 1, 2])) for _ in range(nd)]
    mode = str(rng.choice(["zeros", "zeros", "zeros", "reflect", "replicate", "circular"]))
    pads = []
    for s, k, d in zip(sp, ks, dl):
        hi = {"reflect": s - 1, "circular": s}.get(mode, d * (k - 1) + 3)
        pads += [int(rng.integers(0, hi + 1)), int(rng.integers(0, hi + 1))]
    return nd, G, Cg, Kg, sp, ks, st, dl, pads, mode


ALGOS = ("auto", "direct", "gemm", "smallc", "winograd", "depthwise")


def _ref_kw(kw):
    return dict(stride=kw["stride"], pads=kw["padding"], dilation=kw["dilation"], groups=kw["groups"],
                mode=kw["padding_mode"])


def _conv_ref(nd, x, w, b, kw):
    return convnd_ref(x, w, b, **_ref_kw(kw))


def _conv_backward_ref(nd, gy, x, w, kw):
    return convnd_backward_ref(gy, x, w, **_ref_kw(kw))


@pytest.mark.parametrize("seed", range(6))
def test_corner_shapes_every_algo(seed, threads):
    """Every algorithm on random corner configurations, forward and backward, float32 and float64,
    with outputs NaN-filled before the kernel runs, against the float64 references."""
    rng = np.random.default_rng(1000 + seed)
    cnnops._C._set_poison_outputs(True)
    checked = 0
    try:
        while checked < 40:
            nd, G, Cg, Kg, sp, ks, st, dl, pads, mode = _corner_config(rng)
            ext = [d * (k - 1) + 1 for k, d in zip(ks, dl)]
            if any(e > s + pads[2 * i] + pads[2 * i + 1] for i, (e, s) in enumerate(zip(ext, sp))):
                continue
            x = rng.standard_normal((int(rng.integers(1, 3)), Cg * G, *sp))
            w = rng.standard_normal((Kg * G, Cg, *ks))
            b = rng.standard_normal(Kg * G)
            kw = dict(stride=st, padding=pads, dilation=dl, groups=G, padding_mode=mode)
            fn, fb = getattr(cnnops, f"conv{nd}d"), getattr(cnnops, f"conv{nd}d_backward")
            y_ref = _conv_ref(nd, x, w, b, kw)
            gy = rng.standard_normal(y_ref.shape)
            grads_ref = _conv_backward_ref(nd, gy, x, w, kw)
            threads(int(rng.choice([1, 2, 3])))
            for algo in ALGOS:
                for dtype in (np.float32, np.float64):
                    cast = [a.astype(dtype) for a in (x, w, b, gy)]
                    try:
                        y = fn(cast[0], cast[1], cast[2], algo=algo, **kw)
                    except ValueError as e:  # algorithms with shape requirements say so
                        assert algo in ("winograd", "depthwise"), str(e)
                        continue
                    tol = TOL[dtype] if dtype == np.float32 else 1e-11
                    what = f"conv{nd}d[{algo}] {dtype.__name__} x={x.shape} w={w.shape} {kw}"
                    assert rel_err(y, y_ref) < tol, what
                    got = fb(cast[3], cast[0], cast[1], algo=algo, **kw)
                    for name, g, r in zip(("grad_input", "grad_weight", "grad_bias"), got, grads_ref):
                        assert rel_err(g, r) < tol, f"{name} of {what}"
            checked += 1
    finally:
        cnnops._C._set_poison_outputs(False)


def test_pads_wider_than_the_kernel_reach_float32():
    """Output columns made only of padding on both sides (more outputs per row than input plus
    one side's padding): the slab kernel's flat-row path once left them unwritten."""
    x = np.ones((1, 1, 1, 13), np.float32)
    w = np.ones((7, 1, 2, 1), np.float32)
    y = cnnops.conv2d(x, w, padding=(3, 2))
    ref = conv2d_ref(x.astype(np.float64), w.astype(np.float64), None, 1, (3, 3, 2, 2))
    assert y.shape == ref.shape == (1, 7, 6, 17)
    np.testing.assert_array_equal(y, ref.astype(np.float32))


def test_stride_larger_than_the_input():
    """A stride beyond the padded input leaves one output per dimension; no kernel sizes a buffer
    by the stride (2**33 and 2**62 once allocated terabytes or overflowed)."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((4, 1, 5, 5)), rng.standard_normal((2, 1, 2, 2))
    ref = conv2d_ref(x, w, None, 1, (0, 0, 0, 0))[:, :, :1, :1]
    for s in (2**20, 2**33, 2**62):
        for algo in ("auto", "gemm", "smallc", "direct"):
            y = cnnops.conv2d(x, w, stride=s, algo=algo)
            assert rel_err(y, ref) < 1e-12
            gx, gw, _ = cnnops.conv2d_backward(np.ones_like(y), x, w, stride=s, algo=algo)
            gx_ref, gw_ref, _ = conv2d_backward_ref(np.ones_like(y), x, w, s, (0, 0, 0, 0))
            assert rel_err(gx, gx_ref) < 1e-12 and rel_err(gw, gw_ref) < 1e-12


@pytest.mark.parametrize("kw,pattern", [
    (dict(padding=2**62), "overflows"),
    (dict(dilation=2**62), "overflows"),
    (dict(padding=(2**62, 2**62, 0, 0)), "overflows"),
])
def test_size_overflow_is_a_value_error(kw, pattern):
    with pytest.raises(ValueError, match=r"^conv2d: .*" + pattern):
        cnnops.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), **kw)
    with pytest.raises(ValueError, match=r"^conv2d_backward: .*" + pattern):
        cnnops.conv2d_backward(np.ones((1, 1, 2, 2)), np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), **kw)


def test_output_too_large_to_allocate_is_a_memory_error():
    with pytest.raises(MemoryError, match=r"^conv2d: cannot allocate"):
        cnnops.conv2d(np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), padding=2**28)


@pytest.mark.parametrize("algo", ALGOS)
def test_non_finite_values_follow_the_padded_sum(algo):
    """A NaN weight: the forward and the weight gradient sum over the zero-padded input (NaN at
    every output whose window holds the weight, padding included, as PyTorch's im2col), the input
    gradient only where the weight meets a real input element; every algorithm agrees."""
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = np.ones((1, 1, 3, 3))
    w[0, 0, 0, 0] = np.nan
    try:
        y = cnnops.conv2d(x, w, padding=1, algo=algo)
    except ValueError:
        pytest.skip(f"{algo} does not take this shape")
    assert np.isnan(y).all()
    gx, gw, _ = cnnops.conv2d_backward(np.ones((1, 1, 3, 3)), x, w, padding=1, algo=algo)
    # w[0, 0, 0, 0] reaches input (i, j) from output (i + 1, j + 1): rows and columns 0..1
    expect = np.zeros((3, 3), bool)
    expect[:2, :2] = True
    np.testing.assert_array_equal(np.isnan(gx[0, 0]), expect)
    assert not np.isnan(gw).any()
    dy = np.ones((1, 1, 3, 3))
    dy[0, 0, 2, 2] = np.nan  # output (2, 2): its window's last row and column are padding
    _, gw, _ = cnnops.conv2d_backward(dy, x, np.ones((1, 1, 3, 3)), padding=1, algo=algo)
    assert np.isnan(gw).all()


def test_conv_transpose_output_padding_beyond_the_padding():
    """Padding larger than (input - 1) * stride: sizes start at 1, as in PyTorch."""
    y = cnnops.conv_transpose1d(np.ones((1, 1, 2)), np.ones((1, 1, 1)), stride=3, padding=2, output_padding=2)
    np.testing.assert_array_equal(y, [[[0.0, 1.0]]])
