"""torchvision-compatible box ops: ``cnnops.torch.ops.nms`` etc. with torchvision.ops' exact
signatures and results, running the cnnops kernels (custom operators, so they trace).

The losses are differentiable (the cnnops backward kernels); nms, batched_nms and the pairwise
IoUs return values without gradients."""
from __future__ import annotations

import torch

from . import _ops


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """As ``torchvision.ops.nms``: indices (int64) of the kept boxes, by decreasing score."""
    return _ops.nms(boxes, scores, float(iou_threshold))


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """As ``torchvision.ops.batched_nms``: NMS within each category of ``idxs``."""
    return _ops.batched_nms(boxes, scores, idxs, float(iou_threshold))


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    return _ops.pairwise_iou("box_iou", boxes1, boxes2, 0.0)


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    return _ops.pairwise_iou("generalized_box_iou", boxes1, boxes2, 0.0)


def distance_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    return _ops.pairwise_iou("distance_box_iou", boxes1, boxes2, float(eps))


def complete_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    return _ops.pairwise_iou("complete_box_iou", boxes1, boxes2, float(eps))


def _loss(kind, boxes1, boxes2, reduction, eps, name):
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"Invalid Value for arg 'reduction': '{reduction} \n Supported reduction modes: "
                         "'none', 'mean', 'sum'")
    return _ops.box_loss(kind, boxes1, boxes2, reduction, float(eps))


def generalized_box_iou_loss(boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none",
                             eps: float = 1e-7) -> torch.Tensor:
    """As ``torchvision.ops.generalized_box_iou_loss`` (1 - GIoU per pair), differentiable."""
    return _loss("giou", boxes1, boxes2, reduction, eps, "generalized_box_iou_loss")


def distance_box_iou_loss(boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none",
                          eps: float = 1e-7) -> torch.Tensor:
    """As ``torchvision.ops.distance_box_iou_loss``, differentiable."""
    return _loss("diou", boxes1, boxes2, reduction, eps, "distance_box_iou_loss")


def complete_box_iou_loss(boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none",
                          eps: float = 1e-7) -> torch.Tensor:
    """As ``torchvision.ops.complete_box_iou_loss``, differentiable."""
    return _loss("ciou", boxes1, boxes2, reduction, eps, "complete_box_iou_loss")
