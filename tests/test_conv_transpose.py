"""Tests of cnnops.conv_transpose1d/2d/3d and their backward passes.

Oracles: the scatter reference conv_transpose_ref / conv_transpose_backward_ref in tests/reference.py
(written from y[n, g*Cog + o, i*s - p + k*d] += x[n, g*Cig + c, i] * w[g*Cig + c, o, k]), PyTorch's
F.conv_transpose{1,2,3}d with autograd (when installed), the adjoint identity
<conv(x), y> == <x, conv_transpose(y)>, and cnnops' own conv*_backward (TensorFlow's SAME/VALID
conv2d_transpose is the input gradient of conv2d with that padding on an image of output_shape).

Tolerances as in tests/test_conv.py: 1e-5 relative in float32, 1e-12 in float64."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import cnnops
from reference import (
    conv_transpose_backward_ref,
    conv_transpose_out_sizes,
    conv_transpose_ref,
    convnd_ref,
    numerical_grad,
    rel_err,
    tf_transpose_pads,
)
from testing import DTYPE_IDS, DTYPES, TOL, ConvTester, case_algo_params, check_close, to_device, to_host
from testing import zeros as _z

TRANSPOSE = {1: cnnops.conv_transpose1d, 2: cnnops.conv_transpose2d, 3: cnnops.conv_transpose3d}
TRANSPOSE_BWD = {1: cnnops.conv_transpose1d_backward, 2: cnnops.conv_transpose2d_backward,
                 3: cnnops.conv_transpose3d_backward}
CONV = {1: cnnops.conv1d, 2: cnnops.conv2d, 3: cnnops.conv3d}
CONV_BWD = {1: cnnops.conv1d_backward, 2: cnnops.conv2d_backward, 3: cnnops.conv3d_backward}


# ----------------------------------------------------------------------------- test cases


def TCase(id, x, C_out, k, stride=1, padding=0, output_padding=0, groups=1, dilation=1, bias=False,
          output_size=None):
    """A transposed-convolution problem: input x = (N, C_in, *spatial), C_out output channels,
    kernel sizes k; padding as an int, nd ints, or 2*nd ints (before, after per dimension);
    output_size, when given, is passed instead of output_padding."""
    t = (ConvTester(id).transposed().shape(x, C_out, k).stride(stride).padding(padding)
         .output_padding(output_padding).groups(groups).dilation(dilation).bias(bias))
    return t if output_size is None else t.output_size(output_size)


CASES = [
    # 1-D
    TCase("1d_s1", (2, 3, 7), 4, (3,), bias=True),
    TCase("1d_s2_p1_op1", (2, 4, 9), 6, (4,), stride=2, padding=1, output_padding=1, bias=True),
    TCase("1d_s3_p2_op2", (1, 3, 11), 5, (5,), stride=3, padding=(2,), output_padding=2),
    TCase("1d_s2_d2", (2, 2, 8), 3, (3,), stride=2, dilation=2, padding=1, output_padding=1),
    TCase("1d_s3_d2_op2", (1, 3, 6), 2, (3,), stride=3, dilation=2, padding=2, output_padding=2, bias=True),
    TCase("1d_groups2", (2, 4, 7), 6, (3,), stride=2, padding=1, groups=2, bias=True),
    TCase("1d_depthwise", (1, 5, 13), 5, (3,), stride=2, padding=1, output_padding=1, groups=5),
    TCase("1d_depthwise_m2", (1, 6, 10), 3, (4,), stride=2, padding=1, groups=3, bias=True),
    TCase("1d_asym", (2, 3, 9), 4, (3,), stride=2, padding=(2, 0)),
    TCase("1d_asym_op2", (1, 2, 8), 3, (4,), stride=3, padding=(0, 3), output_padding=2, bias=True),
    TCase("1d_output_size", (2, 3, 7), 4, (3,), stride=3, padding=1, output_size=(20,)),
    TCase("1d_output_size_full_shape", (2, 3, 7), 4, (3,), stride=3, padding=1, output_size=(2, 4, 21)),
    TCase("1d_k1_s3_gaps", (1, 4, 6), 3, (1,), stride=3, output_padding=2, bias=True),
    TCase("1d_long_prime", (1, 3, 131), 2, (7,), stride=2, padding=3, output_padding=1),
    TCase("1d_crop_to_one", (1, 2, 5), 3, (5,), padding=4),
    # 2-D
    TCase("2d_s1_p1", (2, 3, 7, 6), 4, (3, 3), padding=1, bias=True),
    TCase("2d_s2_k4_p1", (2, 4, 5, 6), 3, (4, 4), stride=2, padding=1, bias=True),
    TCase("2d_s2_op1", (1, 3, 5, 7), 4, (3, 3), stride=2, padding=1, output_padding=1),
    TCase("2d_s3_mixed", (1, 2, 4, 5), 3, (3, 5), stride=(3, 2), padding=(1, 2), output_padding=(2, 1)),
    TCase("2d_d2", (1, 3, 5, 6), 2, (3, 3), stride=2, dilation=2, padding=2, output_padding=1, bias=True),
    TCase("2d_d_mixed", (2, 2, 6, 5), 3, (2, 3), stride=(1, 2), dilation=(3, 1), padding=(0, 1)),
    TCase("2d_groups2", (2, 4, 5, 5), 6, (3, 3), stride=2, padding=1, output_padding=1, groups=2, bias=True),
    TCase("2d_groups3", (1, 6, 4, 5), 3, (3, 3), stride=2, groups=3),
    TCase("2d_depthwise", (1, 4, 6, 7), 4, (3, 3), stride=2, padding=1, output_padding=1, groups=4, bias=True),
    TCase("2d_depthwise_m2", (1, 8, 5, 5), 4, (4, 4), stride=2, padding=1, groups=4),
    TCase("2d_asym", (2, 3, 5, 6), 4, (3, 3), stride=2, padding=(0, 1, 2, 0), output_padding=1),
    TCase("2d_asym_big", (1, 2, 4, 4), 3, (4, 3), stride=3, padding=(3, 0, 0, 2), output_padding=(2, 1), bias=True),
    TCase("2d_output_size", (1, 3, 5, 5), 2, (3, 3), stride=2, padding=1, output_size=(10, 9)),
    TCase("2d_output_size_full_shape", (1, 3, 5, 5), 2, (3, 3), stride=3, padding=1, output_size=(1, 2, 15, 13)),
    TCase("2d_k1_s2", (2, 6, 4, 5), 4, (1, 1), stride=2, output_padding=1),
    TCase("2d_k_eq_s", (1, 8, 4, 5), 4, (2, 2), stride=2, bias=True),
    TCase("2d_one_pixel", (2, 3, 1, 1), 4, (3, 3), stride=2, bias=True),
    TCase("2d_many_channels", (1, 40, 4, 4), 24, (3, 3), stride=2, padding=1, output_padding=1),
    # rows of 32 or more with at least two taps per stride phase: the phase-split col2im, padded
    # column 0 of even (p=1 -> the adjoint's pad 2) and odd parity, with and without a bias
    TCase("2d_s2_k4_wide", (1, 3, 3, 35), 5, (4, 4), stride=2, padding=1, bias=True),
    TCase("2d_s2_k5_wide_op1", (2, 2, 3, 33), 3, (3, 5), stride=2, padding=(1, 2), output_padding=1),
    # 3-D
    TCase("3d_s1", (1, 3, 3, 4, 5), 2, (3, 3, 3), padding=1, bias=True),
    TCase("3d_s2", (2, 2, 3, 4, 3), 3, (3, 3, 3), stride=2, padding=1, output_padding=1),
    TCase("3d_mixed", (1, 3, 3, 4, 4), 2, (2, 3, 4), stride=(1, 2, 3), padding=(0, 1, 1), output_padding=(0, 1, 2),
          dilation=(2, 1, 1)),
    TCase("3d_groups2", (1, 4, 3, 3, 4), 6, (3, 3, 3), stride=2, padding=1, groups=2, bias=True),
    TCase("3d_depthwise_t1", (1, 3, 2, 4, 5), 3, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1),
          output_padding=(0, 1, 1), groups=3),
    TCase("3d_depthwise_t3", (1, 3, 3, 3, 4), 3, (3, 3, 3), stride=2, padding=1, groups=3, bias=True),
    TCase("3d_asym", (1, 2, 3, 3, 4), 3, (3, 2, 3), stride=2, padding=(1, 0, 0, 1, 2, 1), output_padding=1),
    TCase("3d_output_size", (1, 2, 3, 4, 3), 2, (3, 3, 3), stride=2, padding=1, output_size=(6, 8, 5)),
]
_BY_ID = {c.id: c for c in CASES}
assert len(_BY_ID) == len(CASES), "case ids must be unique"


# ----------------------------------------------------------------------------- vs the reference


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case,algo", case_algo_params(CASES))
def test_forward_matches_reference(case, algo, dtype, device):
    case.dtype(dtype).algo(algo).test_forward(device)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case,algo", case_algo_params(CASES))
def test_backward_matches_reference(case, algo, dtype, device):
    case.dtype(dtype).algo(algo).test_backward(device)


@pytest.mark.parametrize("case,algo", case_algo_params([_BY_ID[i] for i in (
    "1d_s3_d2_op2", "2d_groups2", "2d_depthwise", "2d_asym_big", "3d_mixed")]))
def test_portable_kernels_match_reference(case, algo, portable_simd):
    assert cnnops.simd_level() == "portable"
    for dtype in DTYPES:
        case.dtype(dtype).algo(algo).test()


def test_output_sizes_of_cases():
    """A few sizes worked by hand from (in-1)*s - (pb+pa) + d*(k-1) + output_padding + 1."""
    assert _BY_ID["1d_s2_p1_op1"].outs == (8 * 2 - 2 + 3 + 1 + 1,)  # 19
    assert _BY_ID["2d_s2_k4_p1"].outs == (10, 12)  # DCGAN: doubles the size
    assert _BY_ID["2d_asym_big"].outs == (3 * 3 - 3 + 3 + 2 + 1, 3 * 3 - 2 + 2 + 1 + 1)  # (12, 11)
    assert _BY_ID["3d_mixed"].outs == (2 + 2 + 1, 6 - 2 + 2 + 1 + 1, 9 - 2 + 3 + 2 + 1)
    assert _BY_ID["2d_output_size_full_shape"].op_pad == (2, 0)


@pytest.mark.parametrize("case_id", ["1d_asym_op2", "2d_asym_big", "2d_groups2", "3d_mixed"])
def test_reference_backward_matches_finite_differences(case_id):
    """The oracle itself: conv_transpose_backward_ref is the derivative of conv_transpose_ref."""
    case = _BY_ID[case_id]
    x, w, b, gy, _, (gx, gw, gb) = case.dtype(np.float64).data()
    x, w = x.copy(), w.copy()
    b = b.copy() if b is not None else np.zeros(case.p["c_out"])

    def loss():
        return float(np.sum(conv_transpose_ref(x, w, b, outs=case.outs, **case.ref_kwargs()) * gy))

    assert rel_err(gx, numerical_grad(loss, x)) < 1e-8
    assert rel_err(gw, numerical_grad(loss, w)) < 1e-8
    assert rel_err(gb, numerical_grad(loss, b)) < 1e-8


@pytest.mark.parametrize("case_id", ["1d_asym_op2", "2d_groups2", "3d_mixed"])
def test_backward_matches_finite_differences(case_id, device):
    case = _BY_ID[case_id].dtype(np.float64)
    x, w, b, gy, _, _ = case.data()
    x, w = x.copy(), w.copy()
    b = b.copy() if b is not None else None

    def loss():
        return float(np.sum(to_host(case.run_forward(*(to_device(a, device) for a in (x, w, b))), device) * gy))

    gx, gw, gb = (to_host(g, device) for g in case.run_backward(*(to_device(a, device) for a in (gy, x, w))))
    assert rel_err(gx, numerical_grad(loss, x)) < 1e-8
    assert rel_err(gw, numerical_grad(loss, w)) < 1e-8
    if b is not None:
        assert rel_err(gb, numerical_grad(loss, b)) < 1e-8


# ----------------------------------------------------------------------------- PyTorch as second oracle

TORCH_CASES = [c for c in CASES if c.symmetric]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in TORCH_CASES])
def test_against_torch(case, dtype, device):
    case.dtype(dtype).test_torch(device)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_torch_module_output_size(nd):
    """nn.ConvTranspose*d(..., output_size=...) picks output_padding the same way."""
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(nd)
    mod = {1: torch.nn.ConvTranspose1d, 2: torch.nn.ConvTranspose2d, 3: torch.nn.ConvTranspose3d}[nd](
        4, 6, 3, stride=3, padding=1, groups=2, dilation=2).double()
    x = torch.randn((2, 4) + (4, 3, 5)[:nd], generator=g, dtype=torch.float64)
    base = [(n - 1) * 3 - 2 + 4 + 1 for n in x.shape[2:]]
    for extra in (0, 1, 2):
        size = [s + extra for s in base]
        ref = mod(x, output_size=size).detach()
        y = TRANSPOSE[nd](x, mod.weight.detach(), mod.bias.detach(), stride=3, padding=1, groups=2, dilation=2,
                          output_size=size)
        assert tuple(y.shape) == tuple(ref.shape) == (2, 6) + tuple(size)
        assert rel_err(y.numpy(), ref.numpy()) < 1e-12


# ----------------------------------------------------------------------------- adjoint identities


def _random_geometry(rng, nd):
    """Random conv geometry (zero padding, possibly asymmetric) on a random input size."""
    while True:
        C = int(rng.choice([2, 3, 4, 6]))
        groups = int(rng.choice([g for g in (1, 2, 3) if C % g == 0]))
        K = groups * int(rng.integers(1, 4))
        ins = tuple(int(v) for v in rng.integers(3, 10 if nd < 3 else 6, size=nd))
        k = tuple(int(v) for v in rng.integers(1, 4, size=nd))
        s = tuple(int(v) for v in rng.integers(1, 4, size=nd))
        d = tuple(int(v) for v in rng.integers(1, 3, size=nd))
        pads = tuple(int(v) for v in rng.integers(0, 3, size=2 * nd))
        if all(ins[i] + pads[2 * i] + pads[2 * i + 1] >= d[i] * (k[i] - 1) + 1 for i in range(nd)):
            return dict(C=C, K=K, groups=groups, ins=ins, k=k, stride=s, dilation=d, pads=pads)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_adjoint_identity(nd, seed):
    """<conv(x), y> == <x, conv_transpose(y)> with the same weights, stride, padding, dilation and
    groups; the output_size that lines the shapes up is given both as output_size and as output_padding."""
    rng = np.random.default_rng(1000 * nd + seed)
    geo = _random_geometry(rng, nd)
    x = rng.standard_normal((2, geo["C"]) + geo["ins"])
    w = rng.standard_normal((geo["K"], geo["C"] // geo["groups"]) + geo["k"])
    kw = dict(stride=geo["stride"], padding=geo["pads"], dilation=geo["dilation"], groups=geo["groups"])
    cx = CONV[nd](x, w, **kw)
    y = rng.standard_normal(cx.shape)
    ty = TRANSPOSE[nd](y, w, output_size=geo["ins"], **kw)
    assert ty.shape == x.shape
    lhs, rhs = float(np.vdot(cx, y)), float(np.vdot(x, ty))
    assert abs(lhs - rhs) <= 1e-12 * (np.linalg.norm(cx) * np.linalg.norm(y))
    # the same through output_padding: the remainder the strided convolution dropped
    op = tuple((geo["ins"][i] + geo["pads"][2 * i] + geo["pads"][2 * i + 1] - geo["dilation"][i] * (geo["k"][i] - 1)
                - 1) % geo["stride"][i] for i in range(nd))
    ty2 = TRANSPOSE[nd](y, w, output_padding=op, **kw)
    np.testing.assert_array_equal(ty2, ty)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_references_are_adjoint(nd):
    """The two independently written oracles agree: <convnd_ref(x), y> == <x, conv_transpose_ref(y)>."""
    rng = np.random.default_rng(3000 + nd)
    for _ in range(3):
        geo = _random_geometry(rng, nd)
        x = rng.standard_normal((2, geo["C"]) + geo["ins"])
        w = rng.standard_normal((geo["K"], geo["C"] // geo["groups"]) + geo["k"])
        kw = dict(stride=geo["stride"], pads=geo["pads"], dilation=geo["dilation"], groups=geo["groups"])
        cx = convnd_ref(x, w, **kw)
        y = rng.standard_normal(cx.shape)
        ty = conv_transpose_ref(y, w, outs=geo["ins"], **kw)
        assert abs(np.vdot(cx, y) - np.vdot(x, ty)) <= 1e-12 * (np.linalg.norm(cx) * np.linalg.norm(y))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_forward_is_conv_input_gradient(nd, seed):
    """conv_transpose(y) == convNd_backward(y, x, w, needs=(True, False, False))[0], and the transposed
    op's input gradient is the convolution itself (both directions, float32 and float64)."""
    rng = np.random.default_rng(2000 * nd + seed)
    geo = _random_geometry(rng, nd)
    kw = dict(stride=geo["stride"], padding=geo["pads"], dilation=geo["dilation"], groups=geo["groups"])
    for dtype in DTYPES:
        x = rng.standard_normal((2, geo["C"]) + geo["ins"]).astype(dtype)
        w = rng.standard_normal((geo["K"], geo["C"] // geo["groups"]) + geo["k"]).astype(dtype)
        cx = CONV[nd](x, w, **kw)
        y = rng.standard_normal(cx.shape).astype(dtype)
        gx, gw, gb = CONV_BWD[nd](y, x, w, needs=(True, False, False), **kw)
        assert gw is None and gb is None
        ty = TRANSPOSE[nd](y, w, output_size=x.shape, **kw)
        assert ty.dtype == dtype and ty.shape == gx.shape
        assert rel_err(ty, gx) < TOL[dtype] / 10
        # conv_transpose's input gradient, for upstream gradient x, is conv(x)
        base = conv_transpose_out_sizes(y.shape[2:], w.shape[2:], geo["stride"], geo["pads"], geo["dilation"])
        op = tuple(n - b for n, b in zip(x.shape[2:], base))
        tgx, _, _ = TRANSPOSE_BWD[nd](x, y, w, needs=(True, False, False), output_padding=op, **kw)
        assert rel_err(tgx, cx) < TOL[dtype] / 10


# ----------------------------------------------------------------------------- TensorFlow SAME / VALID


def _tf_shapes(in_sizes, k, stride, dilation, padding):
    """Every output size tf.nn.conv*_transpose accepts for this input, per dimension."""
    out = []
    for n, kk, s, d in zip(in_sizes, k, stride, dilation):
        if padding.upper() == "SAME":
            out.append(range((n - 1) * s + 1, n * s + 1))
        else:
            lo = (n - 1) * s + d * (kk - 1) + 1
            out.append(range(lo, lo + s))
    return out


TF_CASES = [
    # (id, x shape, C_out, kernel, stride, dilation)
    ("2d_k3_s2", (2, 4, 5, 5), 3, (3, 3), (2, 2), (1, 1)),
    ("2d_k4_s2", (1, 3, 4, 6), 2, (4, 4), (2, 2), (1, 1)),
    ("2d_k5x2_s31", (1, 2, 3, 4), 3, (5, 2), (3, 1), (1, 1)),
    ("2d_k3_s1_d2", (2, 2, 5, 4), 3, (3, 3), (1, 1), (2, 2)),
    ("2d_k1_s3", (1, 3, 3, 2), 2, (1, 1), (3, 3), (1, 1)),
    ("2d_k2_s2", (1, 4, 3, 3), 4, (2, 2), (2, 2), (1, 1)),
]


@pytest.mark.parametrize("padding", ["SAME", "VALID", "same", "Valid"])
@pytest.mark.parametrize("cid,xs,C_out,k,stride,dilation", [pytest.param(*c, id=c[0]) for c in TF_CASES])
def test_tensorflow_padding_is_conv2d_input_gradient(cid, xs, C_out, k, stride, dilation, padding):
    """tf.nn.conv2d_transpose(x, w, output_shape, strides, padding) is the input gradient of
    conv2d(image of output_shape, padding) -- here cnnops.conv2d_backward with padding 'same'/'valid'
    -- for every output_shape TensorFlow accepts."""
    rng = np.random.default_rng(zlib.crc32(f"{cid}{padding}".encode()))
    x = rng.standard_normal(xs)
    w = rng.standard_normal((xs[1], C_out) + k)
    hs, ws = _tf_shapes(xs[2:], k, stride, dilation, padding)
    for H in hs:
        for W in ws:
            shape = (xs[0], C_out, H, W)
            y = cnnops.conv_transpose2d(x, w, stride=stride, padding=padding, dilation=dilation, output_shape=shape)
            assert y.shape == shape
            ref, _, _ = cnnops.conv2d_backward(x, np.zeros(shape), w, stride=stride, padding=padding.lower(),
                                               dilation=dilation, needs=(True, False, False))
            assert rel_err(y, ref) < 1e-12, (H, W)
            pads = tf_transpose_pads((H, W), k, stride, dilation, padding)
            assert rel_err(y, conv_transpose_ref(x, w, None, stride, pads, dilation, outs=(H, W))) < 1e-12
            # output_shape may be just the spatial sizes
            np.testing.assert_array_equal(cnnops.conv_transpose2d(x, w, stride=stride, padding=padding,
                                                                  dilation=dilation, output_shape=(H, W)), y)


@pytest.mark.parametrize("nd", [1, 3])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_tensorflow_padding_1d_3d(nd, padding, rng):
    x = rng.standard_normal((2, 3) + (4, 3, 2)[:nd])
    w = rng.standard_normal((3, 2) + (3, 2, 4)[:nd])
    stride = (2, 3, 1)[:nd]
    for out in zip(*[list(r) for r in _tf_shapes(x.shape[2:], w.shape[2:], stride, (1,) * nd, padding)]):
        y = TRANSPOSE[nd](x, w, stride=stride, padding=padding, output_shape=(2, 2) + out)
        ref, _, _ = CONV_BWD[nd](x, np.zeros((2, 2) + out), w, stride=stride, padding=padding.lower(),
                                 needs=(True, False, False))
        assert rel_err(y, ref) < 1e-12
        pads = tf_transpose_pads(out, w.shape[2:], stride, 1, padding)
        assert rel_err(y, conv_transpose_ref(x, w, None, stride, pads, outs=out)) < 1e-12


def test_tensorflow_same_pads_examples():
    # conv2d_transpose 5x5 -> 10x10, k3 s2 SAME: the forward conv of 10 reads 5 with total pad 1 (0, 1)
    assert tf_transpose_pads((10, 10), (3, 3), 2, 1, "SAME") == (0, 1, 0, 1)
    # 9x9 output: total 4*2 + 3 - 9 = 2 -> (1, 1)
    assert tf_transpose_pads((9, 9), (3, 3), 2, 1, "SAME") == (1, 1, 1, 1)
    assert tf_transpose_pads((8, 8), (4, 4), 2, 1, "SAME") == (1, 1, 1, 1)
    assert tf_transpose_pads((11, 7), (3, 3), 2, 1, "VALID") == (0, 0, 0, 0)


@pytest.mark.parametrize("shape", [(5, 3, 10, 10), (2, 7, 10, 10)])
def test_tensorflow_output_shape_batch_and_channels_checked(shape):
    x, w = np.zeros((2, 4, 5, 5)), np.zeros((4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"output_shape .* has batch/channels \(\d, \d\), expected \(2, 3\)"):
        cnnops.conv_transpose2d(x, w, stride=2, padding="SAME", output_shape=shape)


# ----------------------------------------------------------------------------- output_padding >= stride (dilation)


@pytest.mark.parametrize("nd,stride,dilation,op", [(1, 1, 2, 1), (2, (2, 1), (3, 2), (2, 1)), (1, 2, 4, 3)])
def test_output_padding_below_dilation(nd, stride, dilation, op, rng):
    x = rng.standard_normal((2, 4) + (5, 4)[:nd])
    w = rng.standard_normal((4, 3) + (3, 2)[:nd])
    y = TRANSPOSE[nd](x, w, stride=stride, padding=1, dilation=dilation, output_padding=op)
    ref = conv_transpose_ref(x, w, None, stride, (1,) * (2 * nd), dilation, output_padding=op)
    assert y.shape == ref.shape and rel_err(y, ref) < 1e-12
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    fn = F.conv_transpose1d if nd == 1 else F.conv_transpose2d
    xt, wt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    yt = fn(xt, wt, stride=stride, padding=1, dilation=dilation, output_padding=op)
    assert rel_err(y, yt.detach().numpy()) < 1e-12
    # the output rows past the input's reach still carry gradient to the weights
    gy = rng.standard_normal(yt.shape)
    yt.backward(torch.from_numpy(gy))
    back = {1: cnnops.conv_transpose1d_backward, 2: cnnops.conv_transpose2d_backward}[nd]
    gx, gw, gb = back(gy, x, w, stride=stride, padding=1, output_padding=op, dilation=dilation)
    assert rel_err(gx, xt.grad.numpy()) < 1e-12 and rel_err(gw, wt.grad.numpy()) < 1e-12
    assert rel_err(gb, gy.sum(axis=tuple(i for i in range(gy.ndim) if i != 1))) < 1e-12


# ----------------------------------------------------------------------------- benchmark shapes (scaled down)

BENCH_CASES = [
    TCase("dcgan", (2, 16, 8, 8), 8, (4, 4), stride=2, padding=1, bias=True),
    TCase("fcn_upsample", (1, 21, 16, 16), 21, (4, 4), stride=2, padding=1),
    TCase("unet_up", (1, 32, 8, 8), 16, (2, 2), stride=2, bias=True),
]


@pytest.mark.parametrize("case,algo", [pytest.param(c, a, id=f"{c.id}-{a}") for c in BENCH_CASES
                                       for a in ("auto", "gemm", "smallc")])
def test_benchmark_layers(case, algo, device):
    case.dtype(np.float32).algo(algo).test(device)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in BENCH_CASES])
def test_benchmark_layers_against_torch(case, device):
    case.dtype(np.float32).test_torch(device)


# ----------------------------------------------------------------------------- outputs, inputs, odd sizes


def test_unreached_outputs_are_written(rng):
    """Output positions no input reaches (stride 3 with a 1-wide kernel, output_padding) must be
    exactly the bias, even in a recycled output block that held NaN (outputs >= 1 MB are cached)."""
    x = rng.standard_normal((4, 8, 60, 60)).astype(np.float32)
    w = rng.standard_normal((8, 16, 1, 1)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    for algo in ("auto", "direct", "gemm", "smallc"):
        for _ in range(2):
            y = cnnops.conv_transpose2d(x, w, b, stride=3, output_padding=2, algo=algo)
            assert y.shape == (4, 16, 180, 180) and y.nbytes >= 1 << 20
            gaps = np.ones((180, 180), bool)
            gaps[::3, ::3] = False
            np.testing.assert_array_equal(y[:, :, gaps], np.broadcast_to(b[:, None], (4, 16, int(gaps.sum()))))
            ref = conv_transpose_ref(x[:, :, :3, :3], w, b, 3, output_padding=2)  # a corner, cheaply
            assert rel_err(y[:, :, :9, :9], ref) < 1e-5
            y[...] = np.nan  # poison the block for the next call
            del y


@pytest.mark.parametrize("algo", ["direct", "gemm", "auto", "smallc"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_empty_batch(nd, algo):
    x = np.zeros((0, 4) + (5, 4, 3)[:nd], np.float32)
    w = np.ones((4, 3) + (3, 2, 3)[:nd], np.float32)
    b = np.ones(6, np.float32)
    kw = dict(stride=2, padding=1, output_padding=1, groups=2, algo=algo)
    y = TRANSPOSE[nd](x, w, b, **kw)
    outs = conv_transpose_out_sizes(x.shape[2:], w.shape[2:], 2, (1,) * (2 * nd), 1, 1)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == (0, 6) + outs
    gx, gw, gb = TRANSPOSE_BWD[nd](np.zeros(y.shape, np.float32), x, w, **kw)
    assert gx.shape == x.shape and gx.dtype == np.float32
    np.testing.assert_array_equal(gw, np.zeros_like(w))
    np.testing.assert_array_equal(gb, np.zeros(6, np.float32))


def test_empty_batch_torch():
    torch = pytest.importorskip("torch")
    y = cnnops.conv_transpose2d(torch.zeros(0, 3, 4, 5, dtype=torch.float64), torch.ones(3, 2, 4, 4,
                                dtype=torch.float64), stride=2, padding=1)
    assert isinstance(y, torch.Tensor) and tuple(y.shape) == (0, 2, 8, 10)


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_torch_in_torch_out(dtype_name):
    torch = pytest.importorskip("torch")
    dt = getattr(torch, dtype_name)
    tol = TOL[np.dtype(dtype_name).type]
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 5, 6, generator=g, dtype=dt).requires_grad_(True)
    w = torch.randn(4, 3, 3, 3, generator=g, dtype=dt).requires_grad_(True)
    b = torch.randn(6, generator=g, dtype=dt)
    kw = dict(stride=2, padding=1, output_padding=(1, 0), groups=2)
    y = cnnops.conv_transpose2d(x, w, b, **kw)
    assert isinstance(y, torch.Tensor) and y.dtype == dt and not y.requires_grad
    assert tuple(y.shape) == (2, 6, 10, 11)
    ref = conv_transpose_ref(x.detach().numpy(), w.detach().numpy(), b.numpy(), 2, (1, 1, 1, 1),
                             groups=2, output_padding=(1, 0))
    assert rel_err(y.numpy(), ref) < tol
    assert x.grad is None
    # a permuted (channels_last) view in gives the same values
    x_cl = x.detach().to(memory_format=torch.channels_last)
    assert not x_cl.is_contiguous()
    torch.testing.assert_close(cnnops.conv_transpose2d(x_cl, w, b, **kw), y, rtol=0, atol=0)
    gy = torch.randn(y.shape, generator=g, dtype=dt)
    grads = cnnops.conv_transpose2d_backward(gy, x, w, **kw)
    refs = conv_transpose_backward_ref(gy.numpy(), x.detach().numpy(), w.detach().numpy(), 2, (1, 1, 1, 1), 1, 2)
    for t, r in zip(grads, refs):
        assert isinstance(t, torch.Tensor) and t.dtype == dt and tuple(t.shape) == r.shape
        assert rel_err(t.numpy(), r) < tol


@pytest.mark.parametrize("needs", [(True, False, False), (False, True, False), (False, False, True),
                                   (False, True, True), (False, False, False)])
@pytest.mark.parametrize("case_id", ["1d_depthwise_m2", "2d_asym_big", "3d_groups2"])
def test_backward_needs_subset(needs, case_id):
    case = _BY_ID[case_id]
    x, w, b, gy, _, refs = case.dtype(np.float64).data()
    out = TRANSPOSE_BWD[case.nd](gy, x, w, needs=needs, **case.bwd_kwargs())
    assert len(out) == 3
    for need, got, ref in zip(needs, out, refs):
        if need:
            assert rel_err(got, ref) < 1e-12
        else:
            assert got is None


@pytest.mark.parametrize("case,algo", case_algo_params([_BY_ID["2d_asym"], _BY_ID["2d_depthwise"]]))
def test_inputs_not_modified_and_outputs_fresh(case, algo):
    x, w, b, gy, _, _ = case.dtype(np.float32).data()
    copies = [None if a is None else a.copy() for a in (x, w, b, gy)]
    y = TRANSPOSE[case.nd](x, w, b, algo=algo, **case.kwargs())
    grads = TRANSPOSE_BWD[case.nd](gy, x, w, algo=algo, **case.bwd_kwargs())
    for a, c in zip((x, w, b, gy), copies):
        if a is not None:
            np.testing.assert_array_equal(a, c)
    for out in (y,) + tuple(grads):
        assert out.flags.writeable and out.flags.c_contiguous
        for a in (x, w, b, gy):
            assert a is None or not np.shares_memory(out, a)


def test_noncontiguous_inputs():
    case = _BY_ID["2d_groups2"]
    x, w, b, gy, y_ref, (gx_ref, gw_ref, gb_ref) = case.dtype(np.float64).data()
    xv = np.asfortranarray(x)
    wv = w[:, :, ::-1, ::-1].copy()[:, :, ::-1, ::-1]
    gyv = np.zeros((gy.shape[0], gy.shape[1] * 2) + gy.shape[2:])[:, ::2]
    gyv[...] = gy
    assert not xv.flags.c_contiguous and wv.strides[-1] < 0 and not gyv.flags.c_contiguous
    check_close(TRANSPOSE[2](xv, wv, b, **case.kwargs()), y_ref, np.float64, "forward")
    gx, gw, gb = TRANSPOSE_BWD[2](gyv, xv, wv, **case.bwd_kwargs())
    check_close(gx, gx_ref, np.float64, "grad_input")
    check_close(gw, gw_ref, np.float64, "grad_weight")
    check_close(gb, gb_ref, np.float64, "grad_bias")


# ----------------------------------------------------------------------------- bad arguments


X2, W2 = (2, 4, 5, 5), (4, 3, 3, 3)

BAD_CALLS = [
    # (id, call, exception, regex naming the expected and the given value)
    ("output_padding_eq_stride", lambda: cnnops.conv_transpose2d(_z(X2), _z(W2), stride=2, output_padding=2),
     ValueError, r"^conv_transpose2d: expected output_padding smaller than stride or dilation \(and >= 0\), got "
                 r"output_padding=\(2, 2\) for stride=\(2, 2\), dilation=\(1, 1\)"),
    ("output_padding_stride1", lambda: cnnops.conv_transpose1d(_z((2, 4, 5)), _z((4, 3, 3)), output_padding=1),
     ValueError, r"output_padding smaller than stride or dilation .*got output_padding=\(1,\) for stride=\(1,\), "
                 r"dilation=\(1,\)"),
    ("output_padding_ge_both", lambda: cnnops.conv_transpose3d(_z((1, 4, 3, 3, 3)), _z((4, 3, 3, 3, 3)),
                                                               stride=(2, 2, 3), dilation=(1, 2, 1),
                                                               output_padding=(1, 1, 3)),
     ValueError, r"got output_padding=\(1, 1, 3\) for stride=\(2, 2, 3\), dilation=\(1, 2, 1\)"),
    ("output_padding_negative", lambda: cnnops.conv_transpose2d(_z(X2), _z(W2), stride=2, output_padding=(0, -1)),
     ValueError, r"got output_padding=\(0, -1\)"),
    ("output_padding_tuple_length", lambda: cnnops.conv_transpose1d(_z((2, 4, 5)), _z((4, 3, 3)), stride=2,
                                                                    output_padding=(1, 1)),
     TypeError, r"output_padding as an int or a 1-tuple, got \(1, 1\)"),
    ("output_size_unreachable", lambda: cnnops.conv_transpose2d(_z(X2), _z(W2), stride=2, output_size=(9, 13)),
     ValueError, r"output_size 9x13 is not reachable from input 5x5; reachable sizes are \[11, 12\] x \[11, 12\]"),
    ("output_size_unreachable_1d", lambda: cnnops.conv_transpose1d(_z((2, 4, 5)), _z((4, 3, 3)), stride=3,
                                                                   padding=1, output_size=(16,)),
     ValueError, r"output_size 16 is not reachable from input 5; reachable sizes are \[13, 15\]"),
    ("output_size_unreachable_3d", lambda: cnnops.conv_transpose3d(_z((1, 4, 2, 3, 4)), _z((4, 3, 3, 3, 3)),
                                                                   stride=(1, 2, 2), output_size=(4, 7, 11)),
     ValueError, r"output_size 4x7x11 is not reachable from input 2x3x4; reachable sizes are "
                 r"\[4, 4\] x \[7, 8\] x \[9, 10\]"),
    ("output_size_length", lambda: cnnops.conv_transpose2d(_z(X2), _z(W2), output_size=(7, 7, 7)), TypeError,
     r"output size as 2 ints \(or the full 4-dimensional shape\), got \(7, 7, 7\)"),
    ("output_size_and_shape", lambda: cnnops.conv_transpose2d(_z(X2), _z(W2), output_size=(7, 7),
                                                              output_shape=(7, 7)),
     ValueError, r"output_size or output_shape, not both"),
    ("weight_in_channels", lambda: cnnops.conv_transpose2d(_z(X2), _z((3, 3, 3, 3))), ValueError,
     r"weight.shape\[0\] == input channels 4, got weight shape \(3, 3, 3, 3\)"),
    ("weight_in_channels_3d", lambda: cnnops.conv_transpose3d(_z((1, 4, 3, 3, 3)), _z((8, 2, 3, 3, 3)), groups=2),
     ValueError, r"weight.shape\[0\] == input channels 4, got weight shape \(8, 2, 3, 3, 3\)"),
    ("groups_not_dividing_C_in", lambda: cnnops.conv_transpose2d(_z((2, 5, 5, 5)), _z((5, 3, 3, 3)), groups=2),
     ValueError, r"input channels divisible by groups, got C_in=5 and groups=2"),
    ("groups_not_dividing_C_in_1d", lambda: cnnops.conv_transpose1d(_z((2, 6, 5)), _z((6, 1, 3)), groups=4),
     ValueError, r"got C_in=6 and groups=4"),
    ("input_ndim_2d", lambda: cnnops.conv_transpose2d(_z((2, 4, 5)), _z(W2)), ValueError,
     r"^conv_transpose2d: expected input with 4 dimensions \(N, C_in, H, W\), got 3 with shape \(2, 4, 5\)"),
    ("input_ndim_1d", lambda: cnnops.conv_transpose1d(_z(X2), _z((4, 3, 3))), ValueError,
     r"^conv_transpose1d: expected input with 3 dimensions \(N, C_in, L\), got 4 with shape \(2, 4, 5, 5\)"),
    ("input_ndim_3d", lambda: cnnops.conv_transpose3d(_z(X2), _z((4, 3, 3, 3, 3))), ValueError,
     r"^conv_transpose3d: expected input with 5 dimensions \(N, C_in, D, H, W\), got 4 with shape \(2, 4, 5, 5\)"),
    ("weight_ndim", lambda: cnnops.conv_transpose2d(_z(X2), _z((4, 3, 3))), ValueError,
     r"weight with 4 dimensions \(C_in, C_out/groups, R, S\), got 3 with shape \(4, 3, 3\)"),
    ("same_without_output_shape", lambda: cnnops.conv_transpose2d(_z(X2), _z(W2), stride=2, padding="SAME"),
     ValueError, r"padding='SAME' \(TensorFlow's convention\) needs output_size/output_shape"),
    ("valid_without_output_shape", lambda: cnnops.conv_transpose1d(_z((2, 4, 5)), _z((4, 3, 3)), padding="valid"),
     ValueError, r"padding='valid' .*needs output_size/output_shape"),
    ("same_inconsistent_output_shape", lambda: cnnops.conv_transpose2d(_z(X2), _z(W2), stride=2, padding="SAME",
                                                                       output_shape=(2, 3, 12, 10)),
     ValueError, r"output_shape 12x10 does not fit the input 5x5 with padding 'SAME': dimension 0 must be in "
                 r"\[9, 10\], got 12"),
    ("same_too_small_output_shape", lambda: cnnops.conv_transpose2d(_z(X2), _z(W2), stride=2, padding="SAME",
                                                                    output_shape=(2, 3, 10, 8)),
     ValueError, r"dimension 1 must be in \[9, 10\], got 8"),
    ("valid_inconsistent_output_shape", lambda: cnnops.conv_transpose2d(_z(X2), _z(W2), stride=2, padding="VALID",
                                                                        output_shape=(2, 3, 12, 10)),
     ValueError, r"output_shape 12x10 does not fit the input 5x5 with padding 'VALID': dimension 1 must be in "
                 r"\[11, 12\], got 10"),
    ("tf_unknown_padding", lambda: cnnops.conv_transpose2d(_z(X2), _z(W2), padding="full"), ValueError,
     r"padding 'SAME' or 'VALID' as a string, got 'full'"),
    ("bias_length", lambda: cnnops.conv_transpose2d(_z(X2), _z(W2), _z(4)), ValueError,
     r"bias of shape \(3,\) \(C_out = weight.shape\[1\] \* groups\), got \(4,\)"),
    ("bias_length_groups", lambda: cnnops.conv_transpose2d(_z(X2), _z(W2), _z(3), groups=2), ValueError,
     r"bias of shape \(6,\) .*got \(3,\)"),
    ("negative_padding", lambda: cnnops.conv_transpose2d(_z(X2), _z(W2), padding=-1), ValueError,
     r"non-negative padding, got .*\(-1, -1, -1, -1\)"),
    ("padding_3tuple", lambda: cnnops.conv_transpose2d(_z(X2), _z(W2), padding=(1, 2, 3)), TypeError,
     r"got \(1, 2, 3\)"),
    ("empty_output", lambda: cnnops.conv_transpose2d(_z((2, 4, 1, 1)), _z((4, 3, 1, 1)), padding=1), ValueError,
     r"output would be empty"),
    ("stride_zero", lambda: cnnops.conv_transpose2d(_z(X2), _z(W2), stride=(1, 0)), ValueError,
     r"stride and dilation >= 1, got stride=\(1, 0\)"),
    ("dtype_mismatch", lambda: cnnops.conv_transpose2d(_z(X2, np.float32), _z(W2)), TypeError,
     r"float32, got float64"),
    ("unknown_algo", lambda: cnnops.conv_transpose2d(_z(X2), _z(W2), algo="fft"), ValueError,
     r"algo one of .*got 'fft'"),
    ("backward_grad_output_shape", lambda: cnnops.conv_transpose2d_backward(_z((2, 3, 13, 11)), _z(X2), _z(W2),
                                                                            stride=2),
     ValueError, r"^conv_transpose2d_backward: output_size 13x11 is not reachable from input 5x5; "
                 r"reachable sizes are \[11, 12\] x \[11, 12\]"),
    ("backward_grad_output_channels", lambda: cnnops.conv_transpose2d_backward(_z((2, 5, 11, 11)), _z(X2), _z(W2),
                                                                               stride=2),
     ValueError, r"grad_output of shape \(2, 3, 11, 11\) \(the transposed output's\), got \(2, 5, 11, 11\)"),
    ("backward_grad_output_batch", lambda: cnnops.conv_transpose2d_backward(_z((3, 3, 11, 11)), _z(X2), _z(W2),
                                                                            stride=2),
     ValueError, r"grad_output of shape \(2, 3, 11, 11\) .*got \(3, 3, 11, 11\)"),
    ("backward_grad_output_ndim", lambda: cnnops.conv_transpose3d_backward(_z((2, 3, 11, 11)),
                                                                           _z((2, 4, 5, 5, 5)), _z((4, 3, 3, 3, 3))),
     ValueError, r"grad_output with 5 dimensions, got shape \(2, 3, 11, 11\)"),
    ("backward_needs", lambda: cnnops.conv_transpose2d_backward(_z((2, 3, 7, 7)), _z(X2), _z(W2), needs=[True]),
     TypeError, r"three booleans .*got \[True\]"),
]


@pytest.mark.parametrize("call,exc,pattern", [pytest.param(c, e, p, id=i) for i, c, e, p in BAD_CALLS])
def test_bad_arguments_raise(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()
