"""Model builders: the classic CNNs as cnnops.nn modules.

Every builder takes ``dtype`` (float32 default) and ``rng`` (a Generator or seed for the initial
weights; default cnnops.nn.init's generator). Module names follow torchvision where it has the
model (``features``/``classifier``, ``conv1``/``bn1``/``layer1``...), so its state_dicts map
closely."""
from __future__ import annotations

import numpy as np

from .activation import Dropout, ReLU, Tanh
from .containers import Concat, Residual, Sequential
from .conv import Conv2d, ConvTranspose2d
from .linear import Flatten, Linear
from .module import Module
from .norm import BatchNorm2d, LocalResponseNorm
from .pool import AdaptiveAvgPool2d, AvgPool2d, GlobalAvgPool2d, MaxPool2d


def lenet5(num_classes=10, in_channels=1, input_size=32, activation="relu", pool="max", dtype=np.float32,
           rng=None):
    """LeNet-5 (LeCun et al. 1998) for (N, in_channels, 32, 32) inputs, or 28x28 (``input_size=28``:
    the first convolution pads by 2): conv5x5-6, act, pool2, conv5x5-16, act, pool2, flatten,
    fc120, act, fc84, act, fc(num_classes). ``activation`` "relu" or "tanh"; ``pool`` "max" or
    "avg" (the original subsampling). Returns a Sequential (indices 0..11 as the equivalent
    torch.nn.Sequential)."""
    if input_size not in (28, 32):
        raise ValueError(f"lenet5: expected input_size 28 or 32, got {input_size}")
    act = {"relu": ReLU, "tanh": Tanh}.get(activation)
    if act is None:
        raise ValueError(f"lenet5: expected activation 'relu' or 'tanh', got {activation!r}")
    pl = {"max": MaxPool2d, "avg": AvgPool2d}.get(pool)
    if pl is None:
        raise ValueError(f"lenet5: expected pool 'max' or 'avg', got {pool!r}")
    pad = 2 if input_size == 28 else 0
    return Sequential(
        Conv2d(in_channels, 6, 5, padding=pad, dtype=dtype, rng=rng), act(), pl(2),
        Conv2d(6, 16, 5, dtype=dtype, rng=rng), act(), pl(2),
        Flatten(),
        Linear(16 * 5 * 5, 120, dtype=dtype, rng=rng), act(),
        Linear(120, 84, dtype=dtype, rng=rng), act(),
        Linear(84, num_classes, dtype=dtype, rng=rng),
    )


def mnist_cnn(num_classes=10, in_channels=1, input_size=28, dropout=0.5, dtype=np.float32, rng=None):
    """The classic MNIST CNN (TensorFlow tutorial): conv5x5-32 "same", ReLU, maxpool2, conv5x5-64
    "same", ReLU, maxpool2, flatten, fc1024, ReLU, dropout, fc(num_classes). Input
    (N, in_channels, input_size, input_size), input_size divisible by 4."""
    if input_size % 4:
        raise ValueError(f"mnist_cnn: expected input_size divisible by 4, got {input_size}")
    s = input_size // 4
    return Sequential(
        Conv2d(in_channels, 32, 5, padding=2, dtype=dtype, rng=rng), ReLU(), MaxPool2d(2),
        Conv2d(32, 64, 5, padding=2, dtype=dtype, rng=rng), ReLU(), MaxPool2d(2),
        Flatten(),
        Linear(64 * s * s, 1024, dtype=dtype, rng=rng), ReLU(), Dropout(dropout),
        Linear(1024, num_classes, dtype=dtype, rng=rng),
    )
