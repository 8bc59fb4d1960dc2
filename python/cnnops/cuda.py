"""CUDA availability queries. Safe on machines without a GPU or driver: they return False/0 or
raise a clear error, never crash."""
from __future__ import annotations

from . import _C


def is_compiled() -> bool:
    """True when the package was built with the CUDA compiler."""
    return bool(_C.cuda_compiled())


def is_available() -> bool:
    """True when CUDA kernels are compiled in and at least one GPU is usable."""
    return bool(_C.cuda_is_available())


def device_count() -> int:
    return int(_C.cuda_device_count())


def device_name(index: int = 0) -> str:
    """Name, compute capability, SM count and memory of GPU ``index``.

    Raises RuntimeError when no GPU is available (or CUDA was not compiled in)."""
    if not is_compiled():
        raise RuntimeError("cnnops was built without CUDA support (no nvcc at build time)")
    if not is_available():
        raise RuntimeError("no CUDA device is available (no GPU or no driver on this machine)")
    return _C.cuda_device_name(index)


def runtime_version() -> str:
    return _C.cuda_runtime_version()
