"""The handwritten digits that ship with scikit-learn (1,797 grey 8×8 images, 16 levels), brought
to the input size of MNIST-style networks: upsampled by nearest neighbour (cnnops'
``upsample_nearest2d`` when the package has it, else the identical NumPy repeat) and zero-padded
around, the way MNIST's 20×20 digits sit in 28×28 (or 32×32 for LeNet-5) frames."""
from __future__ import annotations

import numpy as np

from .dataset import Dataset, split

DIGITS_SIDE = 8


def _upsample(images: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upsampling of (N, C, H, W) by an integer factor."""
    if scale == 1:
        return images
    import cnnops

    up = getattr(cnnops, "upsample_nearest2d", None)
    if up is not None:
        return np.asarray(up(np.ascontiguousarray(images), scale_factor=scale))
    return images.repeat(scale, axis=2).repeat(scale, axis=3)


def digit_scale(size: int) -> int:
    """The upsampling factor for a frame of `size`: the largest integer s with 8*s <= size - 4
    (a margin of at least 2 pixels per side), at least 1. 28 and 32 both give 3 (24×24 digits)."""
    return max(1, (int(size) - 4) // DIGITS_SIDE)


def resize_digits(images, size: int = 32, upsample: bool = True) -> np.ndarray:
    """8×8 images (N, 8, 8) or (N, 1, 8, 8) -> (N, 1, size, size): upsampled by
    ``digit_scale(size)`` (when `upsample`), then centred in a zero frame (an odd remainder goes
    to the bottom/right). The dtype is kept."""
    x = np.asarray(images)
    given = x.shape
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1:] != (1, DIGITS_SIDE, DIGITS_SIDE):
        raise ValueError(f"resize_digits: expected images of shape (N, 8, 8) or (N, 1, 8, 8), got {given}")
    if int(size) != size or size < DIGITS_SIDE:
        raise ValueError(f"resize_digits: expected an integer size >= {DIGITS_SIDE}, got {size}")
    size = int(size)
    if upsample:
        x = _upsample(x, digit_scale(size))
    side = x.shape[-1]
    before = (size - side) // 2
    after = size - side - before
    return np.pad(x, ((0, 0), (0, 0), (before, after), (before, after)))


def load_digits(size: int = 32, dtype="float32", test_fraction: float = 0.2, seed: int = 0,
                upsample: bool = True) -> Dataset:
    """The scikit-learn digits as a Dataset: images (N, 1, size, size) in [0, 1] (the 0..16 grey
    levels divided by 16), labels 0..9, split stratified into train and test parts
    (`test_fraction` of every class to test; 1,438 / 359 images with the defaults) in a fixed
    order given by `seed`. size 32 suits LeNet-5, 28 the MNIST CNN; `upsample=False` only pads."""
    try:
        from sklearn.datasets import load_digits as _sk_digits
    except ImportError as e:  # scikit-learn comes with the demo extra
        raise ImportError('cnnops.data.load_digits needs scikit-learn, which the demo extra installs: '
                          'pip install "cnnops[demo]"') from e
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"load_digits: expected dtype float32 or float64, got {dt}")
    d = _sk_digits()
    x = resize_digits((d.images / 16.0).astype(dt), size, upsample=upsample)
    y = d.target.astype(np.int64)
    xtr, ytr, xte, yte = split(x, y, test_fraction=test_fraction, seed=seed)
    return Dataset("digits", np.ascontiguousarray(xtr), ytr, np.ascontiguousarray(xte), yte,
                   [str(i) for i in range(10)])
