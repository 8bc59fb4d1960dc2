"""PyTorch adapter: the cnnops kernels as PyTorch custom operators with autograd.

- ``cnnops.torch.functional``: ``torch.nn.functional``-compatible functions (conv*, conv_transpose*,
  every pooling/unpooling/upsampling op, fractional max pooling, the IoU losses) whose results
  carry ``grad_fn``; they trace under ``torch.compile(fullgraph=True)``.
- ``cnnops.torch.nn``: subclasses of PyTorch's modules of the same names running those functions.
- ``cnnops.torch.ops``: torchvision-compatible ``nms``, ``batched_nms``, pairwise IoUs and losses.
- ``cnnops.torch.patch(model)`` / ``unpatch(model)``: swap a model's modules in place.

CPU tensors run the CPU kernels; CUDA tensors run the CUDA kernels on torch's current stream where
the op family has them (pooling, unpooling, upsampling), and raise NotImplementedError naming the op
and the device elsewhere."""
from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("cnnops.torch needs PyTorch: pip install 'cnnops[torch]'") from e

from . import _ops, functional, nn, ops
from .patch import PatchReport, patch, unpatch

__all__ = ["functional", "nn", "ops", "patch", "unpatch", "PatchReport", "_ops"]
