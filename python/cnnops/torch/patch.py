"""Swap the supported modules of an existing PyTorch model for their cnnops versions, in place.

The swap changes a module's class to the cnnops subclass of the same name (``cnnops.torch.nn``):
parameters, buffers, hooks, ``state_dict`` keys and the module tree stay exactly as they were, so
optimizers, checkpoints and ``DistributedDataParallel`` keep working. ``unpatch`` changes them back."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import nn as cnn

_CONV = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d,
         torch.nn.ConvTranspose3d)


@dataclass
class PatchReport:
    """What :func:`patch` did: ``swapped`` as (module name, class name) pairs, ``left`` as (module
    name, class name, reason) for modules of a supported class it did not swap."""
    swapped: list = field(default_factory=list)
    left: list = field(default_factory=list)

    def __str__(self):
        lines = [f"swapped {len(self.swapped)} module(s), left {len(self.left)}"]
        lines += [f"  swapped {name or '<root>'}: {cls}" for name, cls in self.swapped]
        lines += [f"  left    {name or '<root>'}: {cls} ({why})" for name, cls, why in self.left]
        return "\n".join(lines)


def _why_not(m) -> str | None:
    """The reason a module of a supported class cannot run on cnnops kernels, or None."""
    if isinstance(m, _CONV):
        for p in m.parameters(recurse=False):
            if p.device.type not in ("cpu", "cuda"):
                return f"parameters on {p.device} (cnnops has CPU and CUDA kernels)"
            half = (torch.float16, torch.bfloat16) if p.device.type == "cuda" else ()
            if p.dtype not in (torch.float32, torch.float64, *half):
                return (f"parameters of dtype {p.dtype} on {p.device.type} (the convolution kernels take float32 and "
                        f"float64, and float16/bfloat16 on CUDA)")
        if isinstance(m, torch.nn.modules.conv._ConvTransposeNd) and m.padding_mode != "zeros":
            return f"padding_mode {m.padding_mode!r}"
    if isinstance(m, torch.nn.Upsample) and m.mode not in ("nearest", "nearest-exact"):
        return None  # swapped: the cnnops class hands other modes to PyTorch
    return None


def patch(model: torch.nn.Module) -> PatchReport:
    """Swap every module of ``model`` (itself included) whose class is one of PyTorch's
    convolution, pooling, unpooling or nearest-upsampling classes for the cnnops version, in place.
    Subclasses of those (user code that may override ``forward``) and modules cnnops cannot run
    (e.g. half-precision convolutions on the CPU) are left, with the reason. Returns a PatchReport."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"cnnops.torch.patch: expected a torch.nn.Module, got {type(model).__name__}")
    report = PatchReport()
    for name, m in model.named_modules():
        target = cnn.SWAPS.get(type(m))
        if target is None:
            base = next((b for b in type(m).__mro__[1:] if b in cnn.SWAPS), None)
            if base is not None and type(m) not in cnn.SWAPS.values():
                report.left.append((name, type(m).__name__, f"a subclass of torch.nn.{base.__name__} (its forward "
                                                            "may differ)"))
            continue
        why = _why_not(m)
        if why is not None:
            report.left.append((name, type(m).__name__, why))
            continue
        m.__class__ = target
        report.swapped.append((name, type(m).__name__))
    return report


def unpatch(model: torch.nn.Module) -> int:
    """Turn every cnnops module of ``model`` back into its PyTorch class; returns how many."""
    back = {v: k for k, v in cnn.SWAPS.items()}
    n = 0
    for m in model.modules():
        if type(m) in back:
            m.__class__ = back[type(m)]
            n += 1
    return n
