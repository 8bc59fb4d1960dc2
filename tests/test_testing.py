"""The shared test helpers can fail: check_close and check_equal reject every kind of wrong output,
the device helpers round-trip, and each tester reports a kernel that returns a wrong value, a
wrong dtype, or leaves an element unwritten (NaN-poisoned)."""
from __future__ import annotations

import numpy as np
import pytest

import cnnops
from testing import (BoxTester, ConvTester, NmsTester, PoolTester, UnpoolTester, check_close, check_equal, from_cl,
                     to_cl, to_device, to_host)


def test_check_close_rejects_wrong_outputs():
    ref = np.linspace(1.0, 2.0, 12).reshape(3, 4)
    check_close(ref.astype(np.float32), ref, np.float32, "exact")
    bad = [
        (ref.astype(np.float64), np.float32, "dtype"),
        (ref.astype(np.float32).reshape(4, 3), np.float32, "shape"),
        (np.where(np.eye(3, 4) > 0, np.nan, ref).astype(np.float32), np.float32, "NaN"),
        (np.where(np.eye(3, 4) > 0, np.inf, ref).astype(np.float32), np.float32, "relative error"),
        ((ref * (1 + 1e-4)).astype(np.float32), np.float32, "relative error"),
        (ref.astype(np.float32).tolist(), np.float32, "NumPy array"),
    ]
    for out, dtype, what in bad:
        with pytest.raises(AssertionError, match=what):
            check_close(out, ref, dtype, "out")
    # NaN and infinities where the reference has them pass; elsewhere they fail
    r = ref.copy()
    r[0, 0], r[1, 1] = np.nan, -np.inf
    check_close(r.astype(np.float32), r, np.float32, "non-finite")
    flipped = r.copy()
    flipped[1, 1] = np.inf
    with pytest.raises(AssertionError, match="infinities"):
        check_close(flipped.astype(np.float32), r, np.float32, "out")


def test_check_equal_rejects_one_ulp():
    ref = np.arange(6.0).reshape(2, 3)
    check_equal(ref.copy(), ref, np.float64, "same")
    off = ref.copy()
    off[1, 2] = np.nextafter(off[1, 2], np.inf)
    with pytest.raises(AssertionError):
        check_equal(off, ref, np.float64, "out")


def test_device_helpers_round_trip(device):
    a = np.arange(24.0).reshape(1, 2, 3, 4)
    b = to_host(to_device(a, device), device)
    np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(from_cl(to_cl(a)), a)
    assert to_cl(a).shape == (1, 3, 4, 2) and to_cl(a).flags.c_contiguous
    assert to_device(None, device) is None and to_host(None, device) is None


def test_to_host_names_the_wrong_array_kind():
    torch = pytest.importorskip("torch")
    with pytest.raises(AssertionError, match="expected a NumPy array, got Tensor"):
        to_host(torch.zeros(2), "cpu")


def test_builders_return_changed_copies():
    base = ConvTester("base").channels(2, 3).input_size(5, 6)
    f64 = base.dtype("f8").algo("gemm")
    assert base.p["dtype"] is np.float32 and base.p["algo"] == "auto"
    assert f64.p["dtype"] is np.float64 and f64.p["algo"] == "gemm"
    assert base.x_shape == (1, 2, 5, 6) and base.w_shape == (3, 2, 3, 3)
    assert base.transposed().w_shape == (2, 3, 3, 3)
    assert base.with_mode("reflect").id == "base-reflect"
    assert f64.data()[0].dtype == np.float64 and base.data()[0].dtype == np.float32


def _patched(monkeypatch, name, change):
    """Replace cnnops.<name> by a wrapper that passes the real result through `change`."""
    real = getattr(cnnops, name)

    def wrong(*args, **kwargs):
        return change(real(*args, **kwargs))

    monkeypatch.setattr(cnnops, name, wrong)


def _first_off(a):
    a = np.array(a)
    a.flat[0] += 1e-3 * (1 + abs(a.flat[0]))
    return a


def _first_nan(a):
    a = np.array(a)
    a.flat[-1] = np.nan
    return a


@pytest.mark.parametrize("change", [_first_off, _first_nan, lambda a: a.astype(np.float64)],
                         ids=["value", "unwritten", "dtype"])
def test_conv_tester_catches_a_wrong_forward(monkeypatch, change):
    t = ConvTester().batch(2).channels(3, 4).input_size(5, 7).kernel(3, 3).stride(2).padding(1).dtype("f4")
    t.test()
    _patched(monkeypatch, "conv2d", change)
    with pytest.raises(AssertionError):
        t.test_forward()


def test_conv_tester_catches_a_wrong_gradient(monkeypatch):
    t = ConvTester().channels(2, 2).input_size(4, 5).kernel(2, 2).transposed().stride(2).dtype("f8")
    t.test()
    _patched(monkeypatch, "conv_transpose2d_backward", lambda g: (g[0], _first_off(g[1]), g[2]))
    with pytest.raises(AssertionError, match="grad_weight"):
        t.test_backward()


def test_pool_tester_catches_wrong_indices(monkeypatch):
    t = PoolTester("max").input_size(7, 6).kernel(3).stride(2).padding(1).channels_last()
    t.test()
    _patched(monkeypatch, "max_pool2d", lambda r: (r[0], np.array(r[1]) + 1) if isinstance(r, tuple) else r)
    with pytest.raises(AssertionError, match="indices"):
        t.test_forward()


def test_unpool_tester_catches_a_wrong_channels_last_result(monkeypatch):
    t = UnpoolTester("upsample").input_size(3, 4).scale_factor(2).dtype("f4")
    t.test()
    real = cnnops.upsample_nearest2d

    def wrong(x, **kw):
        y = real(x, **kw)
        return _first_off(y) if kw.get("data_format") == "NHWC" else y

    monkeypatch.setattr(cnnops, "upsample_nearest2d", wrong)
    with pytest.raises(AssertionError, match="channels-last"):
        t.test_forward()


def test_box_and_nms_testers_catch_wrong_results(monkeypatch):
    b = BoxTester("giou").pairwise(5, 6).degenerate(1, 1)
    b.test()
    _patched(monkeypatch, "generalized_box_iou", _first_off)
    with pytest.raises(AssertionError):
        b.test()
    n = NmsTester().boxes(40, "clustered").thresholds(0.5)
    n.test()
    _patched(monkeypatch, "nms", lambda k: np.asarray(k)[::-1].copy())
    with pytest.raises(AssertionError, match="nms t=0.5"):
        n.test()
