"""Array interop: hand arrays to the C++ core through DLPack and give results back as the
caller's own array type (NumPy in -> NumPy out, torch in -> torch out, CuPy, JAX), zero-copy."""
from __future__ import annotations

import numpy as np

from ._C import Array as _Array


def prepare(x, op: str, name: str, optional: bool = False):
    """Return something the core can read through ``__dlpack__`` (the array itself when possible).
    None is returned as None for an `optional` argument and refused otherwise."""
    if x is None:
        if optional:
            return None
        raise TypeError(f"{op}: expected `{name}` to be an array supporting DLPack (NumPy, PyTorch, CuPy, JAX), "
                        f"got None")
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        # torch refuses to export tensors that require grad; the values are all we read
        x = x.detach()
        if x.is_cpu:
            # A NumPy view of a CPU tensor is ~5x cheaper to make than torch's __dlpack__ (~2 us vs
            # ~10 us per argument); bfloat16 has no NumPy dtype and goes through DLPack.
            try:
                return x.numpy()
            except (TypeError, RuntimeError):
                pass
        return x
    if hasattr(x, "__dlpack__"):
        return x
    raise TypeError(
        f"{op}: expected `{name}` to be an array supporting DLPack (NumPy, PyTorch, CuPy, JAX), "
        f"got {type(x).__name__}"
    )


def wrap(out, like):
    """Turn a cnnops ``Array`` into the array type of ``like``."""
    if out is None:
        return None
    if type(like) is _Array:
        return out
    mod = type(like).__module__.split(".")[0]
    if mod == "torch":
        import torch

        if like.is_cpu:
            # as in prepare: NumPy's DLPack import + from_numpy beats torch.from_dlpack on the CPU
            try:
                return torch.from_numpy(np.from_dlpack(out))
            except (TypeError, BufferError, RuntimeError, ValueError):
                pass
        return torch.from_dlpack(out)
    if mod == "cupy":
        import cupy

        return cupy.from_dlpack(out)
    if mod in ("jax", "jaxlib"):
        import jax.dlpack

        return jax.dlpack.from_dlpack(out)
    return np.from_dlpack(out)
