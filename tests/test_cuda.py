"""CUDA availability and clean failure. The `cuda` tests run only on a machine with a GPU; the
others check that a GPU-less machine (CI) answers without crashing."""
import numpy as np
import pytest

import cnnops


def test_is_available_is_bool_and_consistent():
    avail = cnnops.cuda.is_available()
    assert isinstance(avail, bool)
    assert isinstance(cnnops.cuda.is_compiled(), bool)
    assert (cnnops.cuda.device_count() > 0) == avail
    if not cnnops.cuda.is_compiled():
        assert avail is False


def test_device_name_without_gpu_raises_cleanly():
    if cnnops.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="CUDA"):
        cnnops.cuda.device_name()


@pytest.mark.cuda
def test_device_query_on_gpu():
    assert cnnops.cuda.is_compiled()
    assert cnnops.cuda.device_count() >= 1
    name = cnnops.cuda.device_name(0)
    assert "sm_" in name and len(name) > 10
    with pytest.raises(ValueError, match="device index"):
        cnnops._C.cuda_device_name(cnnops.cuda.device_count())
    info = cnnops.info()
    assert info["cuda_available"] is True and info["cuda_devices"]


@pytest.mark.cuda
def test_conv2d_on_cuda_tensor_fails_cleanly():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    x = torch.randn(1, 2, 5, 5, device="cuda")
    w = torch.randn(3, 2, 3, 3, device="cuda")
    with pytest.raises(NotImplementedError, match="cuda:0"):
        cnnops.conv2d(x, w)
    # mixed devices are a TypeError naming both
    with pytest.raises(TypeError, match="device"):
        cnnops.conv2d(x, w.cpu())
    np.testing.assert_equal(x.shape, (1, 2, 5, 5))
