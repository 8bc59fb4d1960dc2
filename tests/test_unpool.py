"""Tests of the unpooling family (cnnops.unpool): nearest upsampling (PyTorch's "nearest" and
"nearest-exact"), max_unpool and bed-of-nails unpooling, 1-D/2-D/3-D, channels first and last,
forward and backward, against the float64 references in tests/reference.py, central finite
differences and PyTorch. These ops only copy values (the backward passes add), so results are
compared exactly or to 1e-12/1e-6 relative error."""
from __future__ import annotations

import functools
import numpy as np
import pytest

import cnnops
from cache_poison import poison_cache
from reference import (
    bed_of_nails_ref,
    max_unpool_backward_ref,
    max_unpool_ref,
    numerical_grad,
    rel_err,
    upsample_nearest_backward_ref,
    upsample_nearest_ref,
)
from testing import (
    DTYPE_IDS,
    HALF,
    HALF_EPS,
    half_array,
    half_to_float,
    DTYPES,
    UnpoolTester,
    from_cl,
    poisoned_outputs,
    pool_indices,
    randn,
    to_cl,
    to_device,
    to_host,
    zeros,
)

FORMATS = {1: ("NCW", "NWC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}
UP = {1: cnnops.upsample_nearest1d, 2: cnnops.upsample_nearest2d, 3: cnnops.upsample_nearest3d}
UP_BWD = {1: cnnops.upsample_nearest1d_backward, 2: cnnops.upsample_nearest2d_backward,
          3: cnnops.upsample_nearest3d_backward}
UNPOOL = {1: cnnops.max_unpool1d, 2: cnnops.max_unpool2d, 3: cnnops.max_unpool3d}
UNPOOL_BWD = {1: cnnops.max_unpool1d_backward, 2: cnnops.max_unpool2d_backward, 3: cnnops.max_unpool3d_backward}


# ----------------------------------------------------------------------------- nearest upsampling

UP_CASES = [
    # (nd, input spatial, kwargs)
    (1, (7,), dict(scale_factor=2)),
    (1, (7,), dict(scale_factor=2.5)),
    (1, (13,), dict(scale_factor=0.6)),
    (1, (5,), dict(size=12)),
    (1, (11,), dict(size=4)),
    (2, (5, 7), dict(scale_factor=2)),
    (2, (5, 7), dict(scale_factor=3)),
    (2, (5, 7), dict(scale_factor=1.5)),
    (2, (5, 7), dict(scale_factor=(1.7, 2.3))),
    (2, (9, 11), dict(scale_factor=(0.5, 0.7))),
    (2, (5, 7), dict(scale_factor=1)),
    (2, (5, 7), dict(size=(10, 14))),
    (2, (5, 7), dict(size=(13, 6))),
    (2, (5, 7), dict(scale_factor=1.3, recompute_scale_factor=True)),
    (3, (3, 4, 5), dict(scale_factor=2)),
    (3, (3, 4, 5), dict(scale_factor=(1.5, 2.5, 0.8))),
    (3, (3, 4, 5), dict(size=(5, 7, 11))),
]
UP_IDS = [f"{nd}d-{'x'.join(map(str, sp))}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for nd, sp, kw in UP_CASES]


def up_tester(nd, sp, kw, mode):
    t = UnpoolTester("upsample").input_size(*sp).mode(mode)
    if "size" in kw:
        return t.size(kw["size"])
    return t.scale_factor(kw["scale_factor"], kw.get("recompute_scale_factor"))


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("nd,sp,kw", UP_CASES, ids=UP_IDS)
def test_upsample_forward_matches_reference(nd, sp, kw, dtype, mode, device):
    up_tester(nd, sp, kw, mode).dtype(dtype).test_forward(device)


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("nd,sp,kw", UP_CASES, ids=UP_IDS)
def test_upsample_backward_matches_reference(nd, sp, kw, mode, device):
    # float32 accumulates the same terms in the same order as float64
    for dtype in DTYPES:
        up_tester(nd, sp, kw, mode).dtype(dtype).test_backward(device)


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("scale", [2, 1.5, 0.7, 3.3, 1.25, 2.9, 0.34, 5])
def test_upsample_matches_torch(scale, mode, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for nd, sp in ((1, (23,)), (2, (9, 17)), (3, (5, 6, 7))):
        x = torch.from_numpy(randn(rng, (2, 3) + sp, np.float32)).requires_grad_()
        ref = F.interpolate(x, scale_factor=scale, mode=mode)
        y = UP[nd](x, scale_factor=scale, mode=mode)
        assert isinstance(y, torch.Tensor)
        assert torch.equal(y, ref.detach()), (nd, sp)
        gy = torch.randn(ref.shape, dtype=torch.float64).float()
        ref.backward(gy)
        gx = UP_BWD[nd](gy, x, scale_factor=scale, mode=mode)
        assert torch.allclose(gx, x.grad, rtol=1e-6, atol=1e-6), (nd, sp)


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("size", [(1, 1), (9, 17), (18, 34), (10, 30), (31, 7), (4, 5), (27, 51)])
def test_upsample_size_matches_torch(size, mode, rng):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(randn(rng, (2, 3, 9, 17), np.float64)).requires_grad_()
    ref = torch.nn.functional.interpolate(x, size=size, mode=mode)
    assert torch.equal(cnnops.upsample_nearest2d(x, size=size, mode=mode), ref.detach())
    gy = torch.randn(ref.shape, dtype=torch.float64)
    ref.backward(gy)
    gx = cnnops.upsample_nearest2d_backward(gy, tuple(x.shape), size=size, mode=mode)
    assert torch.allclose(gx, x.grad, rtol=1e-12, atol=1e-12)


def test_upsample_many_scales_match_torch():
    """Index arithmetic in float32 exactly as torch: sweep scale factors and lengths."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for L in (1, 2, 3, 7, 10, 31, 64, 100):
        x = torch.arange(L, dtype=torch.float32).reshape(1, 1, L)
        for s in np.linspace(0.1, 4.0, 79):
            s = float(s)
            if int(np.floor(L * s)) < 1:
                continue
            for mode in ("nearest", "nearest-exact"):
                assert torch.equal(cnnops.upsample_nearest1d(x, scale_factor=s, mode=mode),
                                   F.interpolate(x, scale_factor=s, mode=mode)), (L, s, mode)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_upsample_shortcut_rule_matches_torch(nd):
    """A scale factor giving out == in or out == 2*in: torch's 2-D forward copies / halves the
    index, its 1-D and 3-D forward use floor(o / scale_factor); cnnops follows both."""
    torch = pytest.importorskip("torch")
    sp = {1: (5,), 2: (4, 5), 3: (2, 3, 5)}[nd]
    x = torch.arange(float(np.prod(sp))).reshape((1, 1) + sp)
    for s in (1.05, 1.2, 2.05, 2.2):
        ref = torch.nn.functional.interpolate(x, scale_factor=s, mode="nearest")
        assert torch.equal(UP[nd](x, scale_factor=s), ref), (nd, s)


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
def test_upsample_backward_finite_differences(mode, rng):
    x = randn(rng, (1, 2, 3, 4), np.float64)
    gy = randn(rng, (1, 2, 5, 7), np.float64)
    kw = dict(size=(5, 7), mode=mode)

    def loss():
        return float(np.sum(cnnops.upsample_nearest2d(x, **kw) * gy))

    num = numerical_grad(loss, x)
    assert rel_err(cnnops.upsample_nearest2d_backward(gy, x, **kw), num) < 1e-8


@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
def test_upsample_backward_deterministic_across_threads(fmt, rng, threads):
    gy = randn(rng, (3, 5, 31, 45), np.float32)
    if fmt == "NHWC":
        gy = to_cl(gy)
    results = []
    for n in (1, 2, 4):
        threads(n)
        results.append(cnnops.upsample_nearest2d_backward(gy, (11, 13), size=(31, 45) if fmt == "NCHW" else (31, 45),
                                                          mode="nearest-exact", data_format=fmt))
    for r in results[1:]:
        assert r.tobytes() == results[0].tobytes()


def test_upsample_poisoned_outputs(rng):
    x = randn(rng, (2, 8, 50, 60), np.float64)
    poison_cache(2 * 8 * 100 * 120 * 8)
    y = cnnops.upsample_nearest2d(x, scale_factor=2)
    np.testing.assert_array_equal(y, upsample_nearest_ref(x, (100, 120)))
    poison_cache(x.nbytes)
    g = cnnops.upsample_nearest2d_backward(y, x, scale_factor=2)
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, 4 * x, rtol=1e-15)


# ----------------------------------------------------------------------------- max_unpool


UNPOOL_CASES = [
    # (nd, input spatial, kernel, stride, padding, output_size)
    (1, (7,), 2, None, 0, None),
    (1, (6,), 3, 2, 1, None),
    (1, (6,), 3, 2, 1, (12,)),
    (2, (4, 5), 2, None, 0, None),
    (2, (5, 3), 3, 2, 1, None),
    (2, (5, 3), 3, 2, 1, (10, 6)),
    (2, (3, 4), (2, 3), (2, 1), (1, 0), None),
    (3, (2, 3, 4), 2, None, 0, None),
    (3, (3, 2, 3), 3, 2, 1, (6, 4, 5)),
]
UNPOOL_IDS = [f"{c[0]}d-{'x'.join(map(str, c[1]))}-k{c[2]}-s{c[3]}-p{c[4]}-o{c[5]}" for c in UNPOOL_CASES]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("nd,sp,k,s,p,o", UNPOOL_CASES, ids=UNPOOL_IDS)
def test_max_unpool_matches_reference(nd, sp, k, s, p, o, dtype, device):
    UnpoolTester("max_unpool").input_size(*sp).kernel(k).stride(s).padding(p).output_size(o).dtype(dtype).test(device)


def test_max_unpool_duplicates_last_wins(rng):
    """Several inputs naming one output position: the last in memory order wins (both layouts)."""
    x = randn(rng, (2, 3, 6, 7), np.float64)
    idx2 = pool_indices(rng, 2, 3, (6, 7), (6, 7), unique=False)
    assert any(len(np.unique(idx2[n, c])) < 42 for n in range(2) for c in range(3))
    y = cnnops.max_unpool2d(x, idx2, 1)
    np.testing.assert_array_equal(y, max_unpool_ref(x, idx2, (6, 7)))
    ycl = cnnops.max_unpool2d(to_cl(x), to_cl(idx2), 1, data_format="NHWC")
    np.testing.assert_array_equal(from_cl(ycl), y)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_unpool_matches_torch(nd, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[nd]
    unpool = {1: F.max_unpool1d, 2: F.max_unpool2d, 3: F.max_unpool3d}[nd]
    sp = {1: (17,), 2: (11, 13), 3: (5, 7, 6)}[nd]
    x = torch.from_numpy(randn(rng, (2, 3) + sp, np.float64))
    for k, s, p in ((2, 2, 0), (3, 2, 1), (3, 1, 1)):
        v, i = pool(x, k, s, p, return_indices=True)
        v.requires_grad_()
        ref = unpool(v, i, k, s, p, output_size=x.shape[2:])
        y = UNPOOL[nd](v, i, k, s, p, output_size=tuple(x.shape[2:]))
        assert isinstance(y, torch.Tensor) and torch.equal(y, ref.detach())
        if s >= k:  # no duplicate indices: the gradients agree exactly
            gy = torch.randn(ref.shape, dtype=torch.float64)
            ref.backward(gy)
            gx = UNPOOL_BWD[nd](gy, i, k, s, p, output_size=tuple(x.shape[2:]))
            assert torch.equal(gx, v.grad)


def test_max_unpool_backward_finite_differences(rng):
    x = randn(rng, (1, 2, 3, 4), np.float64)
    idx = pool_indices(rng, 1, 2, (6, 8), (3, 4))
    gy = randn(rng, (1, 2, 6, 8), np.float64)

    def loss():
        return float(np.sum(cnnops.max_unpool2d(x, idx, 2) * gy))

    assert rel_err(cnnops.max_unpool2d_backward(gy, idx, 2), numerical_grad(loss, x)) < 1e-8


@pytest.mark.parametrize("bad", [-1, 20, 2**40, -(2**62)])
@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
def test_max_unpool_out_of_range_indices(bad, fmt, rng, device):
    x = randn(rng, (2, 3, 2, 2), np.float32)
    idx = pool_indices(rng, 2, 3, (4, 5), (2, 2))
    idx[1, 2, 1, 0] = bad
    if fmt == "NHWC":
        x, idx = to_cl(x), to_cl(idx)
    x, idx = to_device(x, device), to_device(idx, device)
    with pytest.raises(ValueError, match=rf"max_unpool2d: expected indices in \[0, 20\).*got {bad}"):
        cnnops.max_unpool2d(x, idx, 2, output_size=(4, 5), data_format=fmt)
    gy = to_device(np.zeros((2, 4, 5, 3) if fmt == "NHWC" else (2, 3, 4, 5), np.float32), device)
    with pytest.raises(ValueError, match=rf"max_unpool2d_backward: expected indices in \[0, 20\).*got {bad}"):
        cnnops.max_unpool2d_backward(gy, idx, 2, output_size=(4, 5), data_format=fmt)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("where", [(0,), (5,), (8, 30), (51, 50), (116,), (113, 115)])
def test_max_unpool_backward_bad_index_in_long_planes(where, dtype, rng, device):
    # planes of 117 indices: the float kernel checks them eight at a time after an unaligned head;
    # bad ones at the start, inside and at the edges of groups and in the tail; the error names the
    # first bad index in memory order, and nothing else changes the other planes' results
    idx = pool_indices(rng, 2, 3, (18, 26), (9, 13))
    values = [-3, 18 * 26, 2**40, -(2**62)]
    for j, pos in enumerate(where):
        idx[1, 2].flat[pos] = values[j]
    gy = randn(rng, (2, 3, 18, 26), dtype)
    first = values[int(np.argmin(where))]
    with pytest.raises(ValueError, match=rf"expected indices in \[0, 468\).*got {first}"):
        cnnops.max_unpool2d_backward(to_device(gy, device), to_device(idx, device), 2)
    idx[1, 2] = 0
    gx = to_host(cnnops.max_unpool2d_backward(to_device(gy, device), to_device(idx, device), 2), device)
    np.testing.assert_array_equal(gx, max_unpool_backward_ref(gy, idx))


def test_max_unpool_backward_streamed_result(rng):
    # a float32 result above the streaming threshold (24 MB): written with non-temporal stores
    # from a reused (NaN-poisoned) block
    N, C, H, W = 4, 64, 160, 160
    idx = rng.integers(0, 4 * H * W, size=(N, C, H, W), dtype=np.int64)
    gy = randn(rng, (N, C, 2 * H, 2 * W), np.float32)
    poison_cache(N * C * H * W * 4)
    gx = cnnops.max_unpool2d_backward(gy, idx, 2)
    np.testing.assert_array_equal(gx, np.take_along_axis(gy.reshape(N, C, -1), idx.reshape(N, C, -1), 2)
                                  .reshape(N, C, H, W))


def test_max_unpool_poisoned_outputs(rng):
    x = randn(rng, (2, 16, 40, 40), np.float64)
    idx = pool_indices(rng, 2, 16, (80, 80), (40, 40))
    poison_cache(2 * 16 * 80 * 80 * 8)
    y = cnnops.max_unpool2d(x, idx, 2)
    np.testing.assert_array_equal(y, max_unpool_ref(x, idx, (80, 80)))
    poison_cache(2 * 16 * 80 * 80 * 8)
    ycl = cnnops.max_unpool2d(to_cl(x), to_cl(idx), 2, data_format="NHWC")
    np.testing.assert_array_equal(from_cl(ycl), y)


@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
def test_max_unpool_deterministic_across_threads(fmt, rng, threads):
    x = randn(rng, (3, 7, 10, 12), np.float32)
    idx = pool_indices(rng, 3, 7, (20, 24), (10, 12), unique=False)
    gy = randn(rng, (3, 7, 20, 24), np.float32)
    if fmt == "NHWC":
        x, idx, gy = to_cl(x), to_cl(idx), to_cl(gy)
    outs = []
    for n in (1, 2, 4):
        threads(n)
        outs.append((cnnops.max_unpool2d(x, idx, 2, data_format=fmt).tobytes(),
                     cnnops.max_unpool2d_backward(gy, idx, 2, data_format=fmt).tobytes()))
    assert outs[0] == outs[1] == outs[2]


# ----------------------------------------------------------------------------- bed of nails


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("scale", [1, 2, 3, (2, 3), (1, 4)])
def test_bed_of_nails(scale, dtype, device):
    UnpoolTester("bed_of_nails").input_size(5, 7).scale(scale).dtype(dtype).test(device)


def test_bed_of_nails_finite_differences_and_poison(rng):
    x = randn(rng, (1, 2, 3, 4), np.float64)
    gy = randn(rng, (1, 2, 6, 12), np.float64)

    def loss():
        return float(np.sum(cnnops.bed_of_nails_unpool2d(x, (2, 3)) * gy))

    assert rel_err(cnnops.bed_of_nails_unpool2d_backward(gy, (2, 3)), numerical_grad(loss, x)) < 1e-8
    big = randn(rng, (2, 8, 40, 50), np.float64)
    poison_cache(big.nbytes * 4)
    np.testing.assert_array_equal(cnnops.bed_of_nails_unpool2d(big, 2), bed_of_nails_ref(big, (2, 2)))


# ----------------------------------------------------------------------------- arrays in and out


def test_noncontiguous_inputs_and_no_modification(rng):
    base = randn(rng, (2, 3, 10, 14), np.float64)
    x = base[:, :, ::2, ::2]  # (2, 3, 5, 7), strided
    keep = base.copy()
    np.testing.assert_array_equal(cnnops.upsample_nearest2d(x, scale_factor=1.5, mode="nearest-exact"),
                                  upsample_nearest_ref(np.ascontiguousarray(x), (7, 10), (1.5, 1.5), True))
    xt = np.ascontiguousarray(base.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)  # Fortran-ish strides
    np.testing.assert_array_equal(cnnops.upsample_nearest2d(xt, scale_factor=2), upsample_nearest_ref(base, (20, 28)))
    idx = pool_indices(rng, 2, 3, (10, 14), (5, 7))
    idx_nc = np.asfortranarray(idx)
    np.testing.assert_array_equal(cnnops.max_unpool2d(x, idx_nc, 2), max_unpool_ref(np.ascontiguousarray(x), idx,
                                                                                      (10, 14)))
    gy = base.transpose(0, 1, 3, 2)[:, :, :10, :]  # (2, 3, 10, 10) strided
    np.testing.assert_array_equal(cnnops.bed_of_nails_unpool2d_backward(gy, 2), gy[:, :, ::2, ::2])
    np.testing.assert_array_equal(base, keep)


def test_torch_in_torch_out(rng):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(randn(rng, (2, 3, 4, 5), np.float32)).requires_grad_()
    y = cnnops.upsample_nearest2d(x, scale_factor=2)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32 and y.shape == (2, 3, 8, 10)
    g = cnnops.upsample_nearest2d_backward(torch.ones_like(y), x, scale_factor=2)
    assert isinstance(g, torch.Tensor) and torch.equal(g, torch.full_like(x, 4.0))
    b = cnnops.bed_of_nails_unpool2d(x, 2)
    assert isinstance(b, torch.Tensor) and b.shape == (2, 3, 8, 10)
    xl = x.detach().to(memory_format=torch.channels_last).permute(0, 2, 3, 1)  # NHWC view, contiguous
    ycl = cnnops.upsample_nearest2d(xl, scale_factor=2, data_format="NHWC")
    assert torch.equal(ycl.permute(0, 3, 1, 2), y.detach())


# ----------------------------------------------------------------------------- CUDA against the CPU kernels



def _same_bits(got, want, what):
    got = to_host(got, "cuda", what)
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, got.shape, want.shape)
    assert got.tobytes() == want.tobytes(), what


@pytest.mark.cuda
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("nd,sp,kw", UP_CASES, ids=UP_IDS)
def test_cuda_upsample_equals_cpu_bitwise(nd, sp, kw, mode, rng):
    """CUDA forward and backward give the CPU kernels' bits in both layouts: the forward copies, the
    backward sums each input's outputs in the CPU's order (2x2 cells of a x2 width paired alike)."""
    for dtype in DTYPES:
        x = randn(rng, (2, 3) + sp, dtype)
        gy = randn(rng, UP[nd](x, mode=mode, **kw).shape, dtype)
        for last in (False, True):
            fmt = FORMATS[nd][last]
            xa, ga = (to_cl(x), to_cl(gy)) if last else (x, gy)
            y = UP[nd](xa, mode=mode, data_format=fmt, **kw)
            g = UP_BWD[nd](ga, xa.shape, mode=mode, data_format=fmt, **kw)
            with poisoned_outputs():
                yd = UP[nd](to_device(xa, "cuda"), mode=mode, data_format=fmt, **kw)
                gd = UP_BWD[nd](to_device(ga, "cuda"), xa.shape, mode=mode, data_format=fmt, **kw)
            _same_bits(yd, y, f"forward {np.dtype(dtype)} {fmt}")
            _same_bits(gd, g, f"backward {np.dtype(dtype)} {fmt}")


@pytest.mark.cuda
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_cuda_max_unpool_equals_cpu_bitwise(nd, rng):
    """Duplicate indices resolve as the CPU's in-order writes (the last input in memory order wins),
    outputs no index names are zero, the backward gathers: the CPU's bits in both layouts."""
    in_sp = {1: (9,), 2: (4, 5), 3: (2, 3, 4)}[nd]
    out_sp = tuple(2 * i + 1 for i in in_sp)  # kernel 3, stride 2
    for dtype in DTYPES:
        x = randn(rng, (2, 3) + in_sp, dtype)
        idx = pool_indices(rng, 2, 3, out_sp, in_sp, unique=False)
        idx.reshape(6, -1)[:, -1] = idx.reshape(6, -1)[:, 0]  # at least one duplicate per plane
        gy = randn(rng, (2, 3) + out_sp, dtype)
        for last in (False, True):
            fmt = FORMATS[nd][last]
            xa, ia, ga = (to_cl(x), to_cl(idx), to_cl(gy)) if last else (x, idx, gy)
            y = UNPOOL[nd](xa, ia, 3, 2, data_format=fmt)
            g = UNPOOL_BWD[nd](ga, ia, 3, 2, data_format=fmt)
            with poisoned_outputs():
                yd = UNPOOL[nd](to_device(xa, "cuda"), to_device(ia, "cuda"), 3, 2, data_format=fmt)
                gd = UNPOOL_BWD[nd](to_device(ga, "cuda"), to_device(ia, "cuda"), 3, 2, data_format=fmt)
            _same_bits(yd, y, f"forward {np.dtype(dtype)} {fmt}")
            _same_bits(gd, g, f"backward {np.dtype(dtype)} {fmt}")


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
def test_cuda_unpool_half_precision(fmt, dtype, rng):
    """float16/bfloat16 on CUDA against the float32 CPU kernels fed the same rounded values: every
    copy exact, the upsampling backward's float32 sums within the 16-bit storage precision."""
    lay = to_cl if fmt == "NHWC" else np.ascontiguousarray
    xd, x = half_array(lay(randn(rng, (2, 3, 5, 7), np.float32)), dtype)
    for kw in (dict(scale_factor=1.5), dict(scale_factor=2), dict(size=(12, 9), mode="nearest-exact")):
        yd = cnnops.upsample_nearest2d(xd, data_format=fmt, **kw)
        y = cnnops.upsample_nearest2d(x, data_format=fmt, **kw)
        np.testing.assert_array_equal(half_to_float(yd, dtype), y, err_msg=f"upsample {kw}")
        gyd, gy = half_array(randn(rng, y.shape, np.float32), dtype)
        gd = cnnops.upsample_nearest2d_backward(gyd, x.shape, data_format=fmt, **kw)
        g = cnnops.upsample_nearest2d_backward(gy, x.shape, data_format=fmt, **kw)
        assert rel_err(half_to_float(gd, dtype), g) <= HALF_EPS[dtype], f"upsample backward {kw}"
    idx = lay(pool_indices(rng, 2, 3, (11, 15), (5, 7), unique=False))  # kernel 3, stride 2
    idxd = cnnops.cuda.array(idx)
    yd = cnnops.max_unpool2d(xd, idxd, 3, 2, data_format=fmt)
    y = cnnops.max_unpool2d(x, idx, 3, 2, data_format=fmt)
    np.testing.assert_array_equal(half_to_float(yd, dtype), y, err_msg="max_unpool")
    gyd, gy = half_array(randn(rng, y.shape, np.float32), dtype)
    gd = cnnops.max_unpool2d_backward(gyd, idxd, 3, 2, data_format=fmt)
    np.testing.assert_array_equal(half_to_float(gd, dtype),
                                  cnnops.max_unpool2d_backward(gy, idx, 3, 2, data_format=fmt))
    yd = cnnops.bed_of_nails_unpool2d(xd, (2, 3), data_format=fmt)
    y = cnnops.bed_of_nails_unpool2d(x, (2, 3), data_format=fmt)
    np.testing.assert_array_equal(half_to_float(yd, dtype), y, err_msg="bed of nails")
    gyd, gy = half_array(randn(rng, y.shape, np.float32), dtype)
    gd = cnnops.bed_of_nails_unpool2d_backward(gyd, (2, 3), data_format=fmt)
    np.testing.assert_array_equal(half_to_float(gd, dtype), cnnops.bed_of_nails_unpool2d_backward(gy, (2, 3),
                                                                                           data_format=fmt))


@pytest.mark.cuda
@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
def test_cuda_unpool_deterministic(fmt, rng):
    """Two runs give the same bits, the CPU's: max_unpool with 42 inputs per plane naming 4 outputs
    (integer-atomic winners), its backward, and the upsampling backward (gathers)."""
    x = randn(rng, (2, 5, 6, 7), np.float32)
    idx = rng.integers(0, 4, size=x.shape).astype(np.int64)
    gy = randn(rng, (2, 5, 12, 14), np.float32)
    if fmt == "NHWC":
        x, idx, gy = to_cl(x), to_cl(idx), to_cl(gy)
    xd, idd, gyd = (to_device(a, "cuda") for a in (x, idx, gy))

    def run(a, i, g):
        return (cnnops.max_unpool2d(a, i, 2, data_format=fmt), cnnops.max_unpool2d_backward(g, i, 2, data_format=fmt),
                cnnops.upsample_nearest2d_backward(g, x.shape, scale_factor=2, data_format=fmt))

    first = [to_host(r, "cuda").tobytes() for r in run(xd, idd, gyd)]
    assert [to_host(r, "cuda").tobytes() for r in run(xd, idd, gyd)] == first
    assert [r.tobytes() for r in run(x, idx, gy)] == first


@pytest.mark.cuda
def test_cuda_mixed_devices_are_type_errors(rng):
    x = randn(rng, (1, 2, 3, 3), np.float32)
    idx = pool_indices(rng, 1, 2, (6, 6), (3, 3))
    gy = randn(rng, (1, 2, 6, 6), np.float32)
    xd, idd, gyd = (to_device(a, "cuda") for a in (x, idx, gy))
    with pytest.raises(TypeError, match=r"max_unpool2d: expected indices on the input's device cuda:0, got cpu"):
        cnnops.max_unpool2d(xd, idx, 2)
    with pytest.raises(TypeError, match=r"max_unpool2d: expected indices on the input's device cpu, got cuda:0"):
        cnnops.max_unpool2d(x, idd, 2)
    with pytest.raises(TypeError, match=r"max_unpool2d_backward: expected indices on the grad_output's device "
                                        r"cuda:0, got cpu"):
        cnnops.max_unpool2d_backward(gyd, idx, 2)
    with pytest.raises(TypeError, match=r"max_unpool2d_backward: expected indices on the grad_output's device "
                                        r"cpu, got cuda:0"):
        cnnops.max_unpool2d_backward(gy, idd, 2)


@pytest.mark.cuda
def test_cuda_empty_batch():
    y = cnnops.upsample_nearest2d(to_device(np.zeros((0, 2, 3, 4), np.float32), "cuda"), size=(5, 7))
    assert to_host(y, "cuda").shape == (0, 2, 5, 7)
    g = cnnops.upsample_nearest2d_backward(to_device(np.zeros((0, 2, 6, 8)), "cuda"), (0, 2, 3, 4), scale_factor=2)
    assert to_host(g, "cuda").shape == (0, 2, 3, 4)
    x, idx = np.zeros((0, 2, 3, 3), np.float32), np.zeros((0, 2, 3, 3), np.int64)
    y = cnnops.max_unpool2d(to_device(x, "cuda"), to_device(idx, "cuda"), 2)
    assert to_host(y, "cuda").shape == (0, 2, 6, 6)


def test_half_precision_is_cuda_only():
    with pytest.raises(TypeError, match=r"upsample_nearest2d: expected input with dtype float32 or float64 "
                                        r"\(float16 and bfloat16 on CUDA arrays\), got float16"):
        cnnops.upsample_nearest2d(np.zeros((1, 1, 2, 2), np.float16), scale_factor=2)


# ----------------------------------------------------------------------------- bad input


# bad-argument placeholders are float32 unless a case says otherwise
_z = functools.partial(zeros, dtype=np.float32)


def _i(shape):
    return np.zeros(shape, np.int64)


BAD = [
    ("up_ndim", lambda: cnnops.upsample_nearest2d(_z((2, 3, 4)), scale_factor=2), ValueError,
     r"upsample_nearest2d: expected input with 4 dimensions \(N, C, H, W\), got 3 with shape \(2, 3, 4\)"),
    ("up_ndim_nhwc", lambda: cnnops.upsample_nearest3d(_z((2, 3, 4)), scale_factor=2, data_format="NDHWC"),
     ValueError, r"upsample_nearest3d: expected input with 5 dimensions \(N, D, H, W, C\), got 3"),
    ("up_both", lambda: cnnops.upsample_nearest2d(_z((1, 1, 2, 2)), scale_factor=2, size=4), ValueError,
     r"exactly one of size and scale_factor, got both"),
    ("up_neither", lambda: cnnops.upsample_nearest2d(_z((1, 1, 2, 2))), ValueError, r"got neither"),
    ("up_zero_out", lambda: cnnops.upsample_nearest2d(_z((1, 1, 2, 2)), scale_factor=0.4), ValueError,
     r"expected a positive output size, got \(0, 0\)"),
    ("up_neg_scale", lambda: cnnops.upsample_nearest1d(_z((1, 1, 2)), scale_factor=-2), ValueError,
     r"positive finite scale factors, got -2.0"),
    ("up_zero_size", lambda: cnnops.upsample_nearest2d(_z((1, 1, 2, 2)), size=(0, 3)), ValueError,
     r"positive output sizes, got size=\(0, 3\)"),
    ("up_mode", lambda: cnnops.upsample_nearest2d(_z((1, 1, 2, 2)), scale_factor=2, mode="bilinear"), ValueError,
     r"mode 'nearest' or 'nearest-exact', got 'bilinear'"),
    ("up_format", lambda: cnnops.upsample_nearest2d(_z((1, 1, 2, 2)), scale_factor=2, data_format="NCW"),
     ValueError, r"data_format 'NCHW' or 'NHWC', got 'NCW'"),
    ("up_dtype", lambda: cnnops.upsample_nearest2d(_i((1, 1, 2, 2)), scale_factor=2), TypeError,
     r"upsample_nearest2d: expected input with dtype float32 or float64 \(float16 and bfloat16 on CUDA arrays\), "
     r"got int64"),
    ("up_scale_type", lambda: cnnops.upsample_nearest2d(_z((1, 1, 2, 2)), scale_factor="2"), TypeError,
     r"scale_factor as a number or 2 numbers"),
    ("up_bwd_shape", lambda: cnnops.upsample_nearest2d_backward(_z((1, 1, 4, 5)), (1, 1, 2, 2), scale_factor=2),
     ValueError, r"grad_output with spatial size \(4, 4\).*got \(4, 5\)"),
    ("up_bwd_input", lambda: cnnops.upsample_nearest2d_backward(_z((1, 1, 4, 4)), "x", scale_factor=2), TypeError,
     r"input_size_or_input"),
    ("unpool_indices_shape", lambda: cnnops.max_unpool2d(_z((1, 2, 3, 3)), _i((1, 2, 3, 4)), 2), ValueError,
     r"max_unpool2d: expected indices with the shape of input \(1, 2, 3, 3\), got \(1, 2, 3, 4\)"),
    ("unpool_indices_dtype", lambda: cnnops.max_unpool2d(_z((1, 2, 3, 3)), np.zeros((1, 2, 3, 3), np.int32), 2),
     TypeError, r"max_unpool2d: expected indices with dtype int64, got int32"),
    ("unpool_dtype", lambda: cnnops.max_unpool1d(_i((1, 2, 3)), _i((1, 2, 3)), 2), TypeError,
     r"max_unpool1d: expected input with dtype float32 or float64 \(float16 and bfloat16 on CUDA arrays\), got int64"),
    ("unpool_output_size", lambda: cnnops.max_unpool2d(_z((1, 2, 3, 3)), _i((1, 2, 3, 3)), 2, output_size=(8, 6)),
     ValueError, r"output_size between \(5, 5\) and \(7, 7\), got \(8, 6\)"),
    ("unpool_pad", lambda: cnnops.max_unpool2d(_z((1, 2, 3, 3)), _i((1, 2, 3, 3)), 2, padding=2), ValueError,
     r"padding at most half the kernel size, got padding \(2, 2\) for kernel \(2, 2\)"),
    ("unpool_kernel", lambda: cnnops.max_unpool2d(_z((1, 2, 3, 3)), _i((1, 2, 3, 3)), 0), ValueError,
     r"kernel_size >= 1, got \(0, 0\)"),
    ("unpool_stride", lambda: cnnops.max_unpool3d(_z((1, 2, 3, 3, 3)), _i((1, 2, 3, 3, 3)), 2, stride=(1, 0, 1)),
     ValueError, r"stride >= 1, got \(1, 0, 1\)"),
    ("unpool_zero_out", lambda: cnnops.max_unpool1d(_z((1, 2, 1)), _i((1, 2, 1)), 2, padding=1), ValueError,
     r"positive output size, got \(0,\)"),
    ("unpool_bwd_shape", lambda: cnnops.max_unpool2d_backward(_z((1, 2, 6, 5)), _i((1, 2, 3, 3)), 2), ValueError,
     r"grad_output with spatial size \(6, 6\), got \(6, 5\)"),
    ("unpool_bwd_channels", lambda: cnnops.max_unpool2d_backward(_z((1, 3, 6, 6)), _i((1, 2, 3, 3)), 2), ValueError,
     r"indices with the batch and channel sizes of grad_output \(1, 3, 6, 6\), got \(1, 2, 3, 3\)"),
    ("nails_scale", lambda: cnnops.bed_of_nails_unpool2d(_z((1, 1, 2, 2)), 0), ValueError, r"scale >= 1, got \(0, 0\)"),
    ("nails_bwd_div", lambda: cnnops.bed_of_nails_unpool2d_backward(_z((1, 1, 4, 5)), 2), ValueError,
     r"divisible by the scale \(2, 2\), got shape \(1, 1, 4, 5\)"),
    ("nails_ndim", lambda: cnnops.bed_of_nails_unpool2d(_z((1, 2, 2)), 2), ValueError,
     r"bed_of_nails_unpool2d: expected input with 4 dimensions"),
    ("not_array", lambda: cnnops.upsample_nearest1d([1.0, 2.0], scale_factor=2), TypeError,
     r"upsample_nearest1d: expected `input` to be an array supporting DLPack"),
]


@pytest.mark.parametrize("call,exc,pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arguments_raise(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
def test_upsample_x2_simd_and_portable_agree(fmt, rng, portable_simd):
    """The x2 rows (AVX2 duplicate with streaming stores, paired sums) against the portable loops:
    identical bits, and the reference; widths with and without a tail of the 8-wide loop."""
    for shape in ((2, 3, 9, 19), (1, 2, 4, 16), (3, 1, 5, 3), (2, 16, 3, 5), (1, 11, 2, 9)):
        x = randn(rng, shape, np.float32)
        gy = randn(rng, shape[:2] + (2 * shape[2], 2 * shape[3]), np.float32)
        xa, ga = (to_cl(x), to_cl(gy)) if fmt == "NHWC" else (x, gy)
        port = (cnnops.upsample_nearest2d(xa, scale_factor=2, data_format=fmt),
                cnnops.upsample_nearest2d_backward(ga, xa, scale_factor=2, data_format=fmt))
        if cnnops._C.cpu_has_avx2_fma():
            cnnops.set_simd_level("avx2")
            simd = (cnnops.upsample_nearest2d(xa, scale_factor=2, data_format=fmt),
                    cnnops.upsample_nearest2d_backward(ga, xa, scale_factor=2, data_format=fmt))
            cnnops.set_simd_level("portable")
            assert simd[0].tobytes() == port[0].tobytes() and simd[1].tobytes() == port[1].tobytes()
        y, g = (from_cl(port[0]), from_cl(port[1])) if fmt == "NHWC" else port
        np.testing.assert_array_equal(y, upsample_nearest_ref(x, (2 * shape[2], 2 * shape[3])).astype(np.float32))
        assert rel_err(g, upsample_nearest_backward_ref(gy, shape[2:])) < 1e-6


def test_upsample_x2_large_output_streaming_path(rng, portable_simd):
    """An output above the streaming threshold (24 MB): streaming-store rows equal the portable ones."""
    x = randn(rng, (1, 4, 512, 801), np.float32)  # odd width: a tail after the 8-wide loop
    port = cnnops.upsample_nearest2d(x, scale_factor=2)
    np.testing.assert_array_equal(port, np.repeat(np.repeat(x, 2, axis=2), 2, axis=3))
    if cnnops._C.cpu_has_avx2_fma():
        cnnops.set_simd_level("avx2")
        simd = cnnops.upsample_nearest2d(x, scale_factor=2)
        cnnops.set_simd_level("portable")
        assert simd.tobytes() == port.tobytes()


@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
def test_upsample_x2_backward_large_result_streaming_path(fmt, rng, portable_simd):
    """A grad_input above the streaming threshold (24 MB), into a NaN-poisoned block: the AVX2
    paired sums with streaming stores give the portable bits (channels last: 8 channels, the
    vector width, so every pixel streams)."""
    gy = randn(rng, (1, 8, 1024, 1602), np.float32)
    ga = to_cl(gy) if fmt == "NHWC" else gy
    port = cnnops.upsample_nearest2d_backward(ga, (1, 512, 801, 8) if fmt == "NHWC" else (1, 8, 512, 801),
                                              scale_factor=2, data_format=fmt)
    want = gy.reshape(1, 8, 512, 2, 801, 2).astype(np.float64).sum(axis=(3, 5))
    assert rel_err(from_cl(port) if fmt == "NHWC" else port, want) < 1e-6
    if cnnops._C.cpu_has_avx2_fma():
        cnnops.set_simd_level("avx2")
        poison_cache(port.nbytes)
        simd = cnnops.upsample_nearest2d_backward(ga, port.shape, scale_factor=2, data_format=fmt)
        cnnops.set_simd_level("portable")
        assert simd.tobytes() == port.tobytes()


@pytest.mark.parametrize("call", [
    lambda: cnnops.bed_of_nails_unpool2d(np.ones((1, 1, 2, 2)), 2**31),
    lambda: cnnops.bed_of_nails_unpool2d(np.ones((1, 1, 2, 2)), 2**62),
    lambda: cnnops.upsample_nearest3d(np.ones((1, 1, 2, 2, 2)), size=(2**22,) * 3),
    lambda: cnnops.upsample_nearest3d(np.ones((1, 1, 2, 2, 2)), scale_factor=2**21),
    lambda: cnnops.upsample_nearest1d(np.ones((1, 1, 2)), size=2**62),
], ids=["bed_of_nails_2**31", "bed_of_nails_2**62", "upsample3d_size", "upsample3d_scale", "upsample1d_2**62"])
def test_output_size_overflow_is_a_value_error(call):
    """Output sizes whose element or byte count overflows int64 are refused before any table or
    buffer is sized by them."""
    with pytest.raises(ValueError, match=r"^(bed_of_nails_unpool2d|upsample_nearest[13]d): .*overflows"):
        call()


def test_empty_batch_upsample():
    """N = 0 gives an empty result of the right shape, as in PyTorch, forward and backward."""
    y = cnnops.upsample_nearest1d(np.zeros((0, 1, 3)), scale_factor=2)
    assert y.shape == (0, 1, 6)
    y = cnnops.upsample_nearest2d(np.zeros((0, 2, 3, 4), np.float32), size=(5, 7))
    assert y.shape == (0, 2, 5, 7) and y.dtype == np.float32
    g = cnnops.upsample_nearest2d_backward(np.zeros((0, 2, 6, 8)), (0, 2, 3, 4), scale_factor=2)
    assert g.shape == (0, 2, 3, 4)
