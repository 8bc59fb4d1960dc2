"""CUDA device arrays, streams and allocator statistics.

Safe on machines without a GPU or driver: the queries return False/0 and everything that needs a
device raises a clear error, never crashes. A build made with ``CNNOPS_CUDA=EMULATE`` runs the CUDA
kernels on the CPU through the project's SIMT emulator: ``is_available()`` is True, the device name
says "CPU emulator", device memory is host memory and streams are no-ops. It exists for tests and
development only; no feature depends on it and it says nothing about speed.

Streams: every CUDA entry point takes ``stream=`` (an int ``cudaStream_t`` handle, or any object with
``.cuda_stream`` (torch, CuPy) or ``.ptr``); without it, work goes to the device's default stream.
Arrays from torch or CuPy are asked for their data on that stream (DLPack's stream argument), and
results handed back make the consumer's stream wait for ours, so nothing races silently."""
from __future__ import annotations

import contextlib
import functools
import inspect

from . import _C


def is_compiled() -> bool:
    """True when the package was built with CUDA kernels (nvcc, or the emulator)."""
    return bool(_C.cuda_compiled())


def is_emulated() -> bool:
    """True in a ``CNNOPS_CUDA=EMULATE`` build: the CUDA kernels run on the CPU SIMT emulator."""
    return bool(_C.cuda_emulated())


def is_available() -> bool:
    """True when CUDA kernels are compiled in and at least one device is usable."""
    return bool(_C.cuda_is_available())


def device_count() -> int:
    return int(_C.cuda_device_count())


def device_name(index: int = 0) -> str:
    """Name, compute capability, SM count and memory of GPU ``index`` ("CPU emulator ..." in an
    emulation build).

    Raises RuntimeError when no device is available (or CUDA was not compiled in)."""
    if not is_compiled():
        raise RuntimeError("cnnops was built without CUDA support (no nvcc at build time)")
    if not is_available():
        raise RuntimeError("no CUDA device is available (no GPU or no driver on this machine)")
    return _C.cuda_device_name(index)


def runtime_version() -> str:
    """The CUDA runtime version ("13.0"), "emulator", or "" without CUDA."""
    return _C.cuda_runtime_version()


def _device_index(device) -> int:
    if isinstance(device, int) and not isinstance(device, bool):
        return device
    if isinstance(device, str):
        if device == "cuda":
            return 0
        if device.startswith("cuda:") and device[5:].isdigit():
            return int(device[5:])
    raise ValueError(f"cuda: expected a device index, \"cuda\" or \"cuda:N\", got {device!r}")


def stream_handle(stream) -> int:
    """The ``cudaStream_t`` value of ``stream``: an int, or an object with ``.cuda_stream`` (torch,
    CuPy) or ``.ptr`` (CuPy, Numba). None is the default stream (0)."""
    if stream is None:
        return 0
    for attr in ("cuda_stream", "ptr"):
        if hasattr(stream, attr):
            stream = getattr(stream, attr)
            break
    if isinstance(stream, bool) or not isinstance(stream, int) or not 0 <= stream < 2**64:
        raise TypeError("cuda: expected stream= as an int handle or an object with .cuda_stream or .ptr, "
                        f"got {stream!r}")
    return stream


@contextlib.contextmanager
def use_stream(stream):
    """Queue the cnnops CUDA kernels called inside the block on ``stream`` (this thread only)."""
    h = stream_handle(stream)
    prev = _C.cuda_current_stream()
    _C.cuda_set_stream(h)
    try:
        yield h
    finally:
        _C.cuda_set_stream(prev)


def current_stream() -> int:
    """The stream cnnops kernels of this thread are queued on (0: the default stream)."""
    return int(_C.cuda_current_stream())


def streamable(fn):
    """Adds the keyword ``stream=`` to an entry point: the call's CUDA kernels go to that stream
    (ignored for CPU arrays)."""

    @functools.wraps(fn)
    def call(*args, stream=None, **kwargs):
        if stream is None:
            return fn(*args, **kwargs)
        with use_stream(stream):
            return fn(*args, **kwargs)

    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    if "stream" not in sig.parameters:
        params.append(inspect.Parameter("stream", inspect.Parameter.KEYWORD_ONLY, default=None))
    call.__signature__ = sig.replace(parameters=params)
    return call


def array(x, device=0, stream=None):
    """``x`` (NumPy, a list, or any DLPack array) as a cnnops CUDA array on ``device``: a copy from
    the host, the same memory when it is already there. ``.numpy()`` / ``.to("cpu")`` bring it back;
    every op takes it and returns cnnops arrays on the same device."""
    import numpy as np

    idx = _device_index(device)
    if not hasattr(x, "__dlpack__"):
        x = np.asarray(x)
    if isinstance(x, np.ndarray) and not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    with use_stream(stream):
        return _C._cuda_array(x, idx)


def synchronize(device=0) -> None:
    """Wait for every kernel queued on ``device``."""
    _C.cuda_synchronize(_device_index(device))


def empty_cache() -> None:
    """Return the blocks the caching allocator keeps for reuse to the driver."""
    _C.cuda_empty_cache()


def memory_allocated(device=0) -> int:
    """Bytes of device memory held by live cnnops arrays and workspaces on ``device``."""
    return int(_C.cuda_memory_allocated(_device_index(device)))


def memory_reserved(device=0) -> int:
    """Bytes the caching allocator holds on ``device``: live blocks plus cached free blocks."""
    return int(_C.cuda_memory_reserved(_device_index(device)))


def allocation_count(device=0) -> int:
    """Raw device allocations (cudaMalloc calls) made so far on ``device``; steady once the cache
    is warm."""
    return int(_C.cuda_allocation_count(_device_index(device)))
