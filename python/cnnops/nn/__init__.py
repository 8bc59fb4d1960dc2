"""cnnops.nn: a small layer API for research prototyping on top of the cnnops kernels.

NumPy arrays in NCHW layout (float32 or float64). No autograd tape: each Module's ``forward``
keeps what its ``backward(grad_out) -> grad_in`` needs; containers chain backward explicitly;
parameter gradients accumulate into ``Parameter.grad``. A training step::

    model = cnnops.nn.models.lenet5()
    loss_fn = cnnops.nn.CrossEntropyLoss()
    opt = cnnops.nn.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss = loss_fn(model(x), y)
    opt.zero_grad()
    model.backward(loss_fn.backward())
    opt.step()
"""
from __future__ import annotations

from . import init, models, utils
from .activation import (ELU, GELU, Dropout, LeakyReLU, LogSoftmax, Maxout, ReLU, Sigmoid, Softmax, Softplus, Tanh,
                         log_softmax, sigmoid, softmax)
from .containers import Concat, Residual, Sequential
from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d, LocallyConnected2d
from .linear import Flatten, Identity, Linear
from .loss import (BCELoss, BCEWithLogitsLoss, BoxIoULoss, CrossEntropyLoss, FocalLoss, MSELoss, NLLLoss,
                   TripletMarginLoss)
from .module import Module, Parameter
from .norm import BatchNorm1d, BatchNorm2d, LocalResponseNorm
from .optim import SGD, Adam, AdamW, CosineAnnealingLR, LRScheduler, Optimizer, StepLR
from .pool import (AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, FractionalMaxPool2d, FractionalMaxPool3d,
                   GlobalAvgPool2d, LPPool2d, MaxPool2d, MaxUnpool2d, Upsample)
from .roi import RoIAlign, RoIPool
from .model_summary import ModelSummary, flops, summary
from .utils import clip_grad_norm_, clip_grad_value_

__all__ = [
    "Module", "Parameter", "init", "models", "utils",
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "LocallyConnected2d",
    "MaxPool2d", "AvgPool2d", "LPPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "GlobalAvgPool2d",
    "FractionalMaxPool2d", "FractionalMaxPool3d", "MaxUnpool2d", "Upsample", "RoIAlign", "RoIPool",
    "Linear", "Flatten", "Identity", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softplus", "ELU", "GELU", "Maxout",
    "Softmax", "LogSoftmax", "Dropout",
    "BatchNorm1d", "BatchNorm2d", "LocalResponseNorm",
    "Sequential", "Residual", "Concat",
    "CrossEntropyLoss", "NLLLoss", "MSELoss", "BCELoss", "BCEWithLogitsLoss", "FocalLoss", "TripletMarginLoss",
    "BoxIoULoss",
    "Optimizer", "SGD", "Adam", "AdamW", "LRScheduler", "StepLR", "CosineAnnealingLR",
    "softmax", "log_softmax", "sigmoid",
    "summary", "flops", "ModelSummary", "clip_grad_norm_", "clip_grad_value_",
]
