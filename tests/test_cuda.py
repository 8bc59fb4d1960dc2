"""CUDA runtime layer: availability queries, device arrays, the caching allocator, streams and clean
failures. Tests marked `cuda` run where cnnops.cuda.is_available() (a GPU, or the emulation build);
the others check that a GPU-less machine (CI) answers without crashing."""
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
    assert cnnops.info()["cuda_emulated"] == cnnops.cuda.is_emulated()


def test_without_a_device_everything_fails_cleanly():
    if cnnops.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(RuntimeError, match="CUDA"):
        cnnops.cuda.device_name()
    with pytest.raises(NotImplementedError, match="cuda.array: no CUDA device is available"):
        cnnops.cuda.array(np.ones(3))
    a = cnnops.max_pool1d(np.ones((1, 1, 4)), 2)
    assert isinstance(a, np.ndarray)


def test_stream_handles():
    class Torchish:
        cuda_stream = 1234

    class Cupyish:
        ptr = 99

    assert cnnops.cuda.stream_handle(None) == 0
    assert cnnops.cuda.stream_handle(7) == 7
    assert cnnops.cuda.stream_handle(Torchish()) == 1234
    assert cnnops.cuda.stream_handle(Cupyish()) == 99
    for bad in ("s", -1, 1.5, True, 2**64):
        with pytest.raises(TypeError, match="stream"):
            cnnops.cuda.stream_handle(bad)
    before = cnnops.cuda.current_stream()
    with cnnops.cuda.use_stream(Torchish()) as h:
        assert h == 1234 and cnnops.cuda.current_stream() == 1234
    assert cnnops.cuda.current_stream() == before
    # every pooling entry point takes stream= (ignored for CPU arrays)
    x = np.arange(8.0).reshape(1, 1, 8)
    np.testing.assert_array_equal(cnnops.max_pool1d(x, 2, stream=0), cnnops.max_pool1d(x, 2))
    import inspect

    from cnnops.pool import POOL_FUNCTIONS
    from cnnops.pool_fractional import FRACTIONAL_FUNCTIONS
    from cnnops.unpool import UNPOOL_FUNCTIONS

    for name in POOL_FUNCTIONS + UNPOOL_FUNCTIONS + FRACTIONAL_FUNCTIONS:
        assert "stream" in inspect.signature(getattr(cnnops, name)).parameters, name


@pytest.mark.cuda
def test_device_query():
    assert cnnops.cuda.is_compiled()
    assert cnnops.cuda.device_count() >= 1
    name = cnnops.cuda.device_name(0)
    assert ("sm_" in name) != cnnops.cuda.is_emulated()
    if cnnops.cuda.is_emulated():
        assert "CPU emulator" in name and cnnops.cuda.runtime_version() == "emulator"
    with pytest.raises(ValueError, match="device index"):
        cnnops._C.cuda_device_name(cnnops.cuda.device_count())
    info = cnnops.info()
    assert info["cuda_available"] is True and info["cuda_devices"]


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_, np.float16])
def test_array_round_trip(dtype, rng):
    x = (rng.standard_normal((3, 1, 5)) * 10).astype(dtype)
    a = cnnops.cuda.array(x)
    assert isinstance(a, cnnops.Array)
    assert a.device == "cuda:0" and a.shape == x.shape and a.ndim == 3 and a.size == x.size
    assert a.__dlpack_device__() == (2, 0)  # kDLCUDA
    np.testing.assert_array_equal(a.numpy(), x)
    np.testing.assert_array_equal(np.asarray(a), x)
    h = a.to("cpu")
    assert h.device == "cpu" and h.__dlpack_device__() == (1, 0)
    np.testing.assert_array_equal(np.from_dlpack(h), x)
    assert cnnops.cuda.array(a) is not None and a.to("cuda:0").device == "cuda:0"
    np.testing.assert_array_equal(h.cuda().numpy(), x)
    # strided inputs are copied in order
    np.testing.assert_array_equal(cnnops.cuda.array(x[:, :, ::2]).numpy(), x[:, :, ::2])
    np.testing.assert_array_equal(cnnops.cuda.array(x.tolist()).numpy(), x)
    with pytest.raises(ValueError, match="device"):
        a.to("gpu")
    with pytest.raises(ValueError, match="device index"):
        cnnops.cuda.array(x, device=cnnops.cuda.device_count())


@pytest.mark.cuda
def test_numpy_refuses_device_memory():
    a = cnnops.cuda.array(np.ones(4, np.float32))
    with pytest.raises((RuntimeError, BufferError, TypeError, ValueError)):
        np.from_dlpack(a)


@pytest.mark.cuda
def test_caching_allocator_reuses_blocks(rng):
    x = cnnops.cuda.array(rng.standard_normal((2, 8, 33, 35)).astype(np.float32))
    y, i = cnnops.max_pool2d(x, 3, 2, 1, return_indices=True)
    cnnops.max_pool2d_backward(y, x, i, 3, 2, 1)
    del y, i
    warm = cnnops.cuda.allocation_count()
    live = cnnops.cuda.memory_allocated()
    for _ in range(20):
        y, i = cnnops.max_pool2d(x, 3, 2, 1, return_indices=True)
        cnnops.max_pool2d_backward(y, x, i, 3, 2, 1)
        del y, i
    assert cnnops.cuda.allocation_count() == warm  # no cudaMalloc per call once warm
    assert cnnops.cuda.memory_allocated() == live
    assert cnnops.cuda.memory_reserved() >= live
    cnnops.cuda.empty_cache()
    assert cnnops.cuda.memory_reserved() == cnnops.cuda.memory_allocated() == live
    cnnops.cuda.synchronize()
    with pytest.raises(ValueError, match="device"):
        cnnops.cuda.synchronize("tpu")


@pytest.mark.cuda
def test_mixed_devices_fail_cleanly(rng):
    x = cnnops.cuda.array(rng.standard_normal((1, 2, 5, 5)).astype(np.float32))
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    with pytest.raises(TypeError, match="device"):
        cnnops.conv2d(x, w)  # weight on the CPU
    with pytest.raises(TypeError, match="device"):
        cnnops.max_pool2d_backward(np.ones((1, 2, 2, 2), np.float32), x, None, 2)


@pytest.mark.cuda
def test_torch_cuda_tensors_round_trip():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    x = torch.randn(2, 3, 8, 8, device="cuda")
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        y = cnnops.max_pool2d(x, 2, stream=s)
    assert isinstance(y, torch.Tensor) and y.device.type == "cuda"
    torch.testing.assert_close(y, torch.nn.functional.max_pool2d(x, 2), rtol=0, atol=0)
    a = cnnops.cuda.array(x)
    assert a.device == "cuda:0"
    torch.testing.assert_close(torch.from_dlpack(a), x, rtol=0, atol=0)
