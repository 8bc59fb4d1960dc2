"""The Dataset container, a train/test split and a mini-batch iterator."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Dataset:
    """Images and integer labels split into train and test parts.

    x_train (N_train, C, H, W) and x_test (N_test, C, H, W): floating point, values in [0, 1];
    y_train (N_train,) and y_test (N_test,): int64 class indices in [0, len(classes)).
    mean/std: per-channel statistics of x_train (shape (C,)), for ``standardize``.
    note: how the parts were made when that differs from the dataset's own split ("" otherwise)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list = field(default_factory=list)
    note: str = ""

    def __post_init__(self):
        for part in ("train", "test"):
            x, y = getattr(self, "x_" + part), getattr(self, "y_" + part)
            if x.ndim != 4:
                raise ValueError(f"Dataset: expected x_{part} with 4 dimensions (N, C, H, W), got {x.ndim}")
            if y.shape != (x.shape[0],):
                raise ValueError(f"Dataset: expected y_{part} of shape ({x.shape[0]},), got {y.shape}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(f"Dataset: expected train and test images of one shape, got "
                             f"{self.x_train.shape[1:]} and {self.x_test.shape[1:]}")
        if not self.classes:
            k = int(max(self.y_train.max(initial=-1), self.y_test.max(initial=-1))) + 1
            self.classes = [str(i) for i in range(k)]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple:
        """(C, H, W) of one image."""
        return tuple(self.x_train.shape[1:])

    @property
    def mean(self) -> np.ndarray:
        return self.x_train.mean(axis=(0, 2, 3), dtype=np.float64)

    @property
    def std(self) -> np.ndarray:
        return self.x_train.std(axis=(0, 2, 3), dtype=np.float64)

    def standardize(self) -> "Dataset":
        """A copy whose images have zero mean and unit standard deviation per channel, using the
        statistics of the training images for both parts."""
        dt = self.x_train.dtype
        mean = self.mean.astype(dt).reshape(1, -1, 1, 1)
        std = np.maximum(self.std, 1e-12).astype(dt).reshape(1, -1, 1, 1)
        return Dataset(self.name, (self.x_train - mean) / std, self.y_train.copy(),
                       (self.x_test - mean) / std, self.y_test.copy(), list(self.classes), self.note)

    def subset(self, n_train=None, n_test=None) -> "Dataset":
        """The first n_train training and n_test test samples (None keeps a part whole)."""
        return Dataset(self.name, self.x_train[:n_train], self.y_train[:n_train], self.x_test[:n_test],
                       self.y_test[:n_test], list(self.classes), self.note)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
                f"classes={self.num_classes}, dtype={self.x_train.dtype})")


def split(x, y, test_fraction: float = 0.2, seed: int = 0, stratify: bool = True) -> tuple:
    """Shuffle and split (x, y) into (x_train, y_train, x_test, y_test). With `stratify`, every
    class gives round(test_fraction * count) samples to the test part (at least one when it has
    two or more), so small test sets keep the class balance."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"split: expected 0 < test_fraction < 1, got {test_fraction}")
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"split: expected as many labels as samples ({len(x)}), got {len(y)}")
    rng = np.random.default_rng(seed)
    if stratify:
        test = []
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            k = int(round(test_fraction * len(idx)))
            if len(idx) >= 2:
                k = min(max(k, 1), len(idx) - 1)
            test.append(idx[:k])
        test_idx = rng.permutation(np.concatenate(test))
        mask = np.ones(len(y), bool)
        mask[test_idx] = False
        train_idx = rng.permutation(np.flatnonzero(mask))
    else:
        perm = rng.permutation(len(y))
        k = int(round(test_fraction * len(y)))
        test_idx, train_idx = perm[:k], perm[k:]
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


def batches(x, y, batch_size: int, shuffle: bool = False, rng=None, drop_last: bool = False):
    """Yield (x_batch, y_batch) pairs of at most `batch_size` samples (contiguous copies when
    shuffled, views otherwise). `rng` (a numpy Generator or an int seed) orders the shuffle."""
    if batch_size < 1:
        raise ValueError(f"batches: expected batch_size >= 1, got {batch_size}")
    n = len(x)
    if len(y) != n:
        raise ValueError(f"batches: expected as many labels as samples ({n}), got {len(y)}")
    order = None
    if shuffle:
        order = np.random.default_rng(rng).permutation(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            yield x[start:start + batch_size], y[start:start + batch_size]
        else:
            idx = order[start:start + batch_size]
            yield x[idx], y[idx]


def random_shift(x, max_shift: int, rng=None) -> np.ndarray:
    """Each image of x (N, C, H, W) translated by its own random (dy, dx), both uniform integers
    in [-max_shift, max_shift], the uncovered border filled with zeros (a new array; x is not
    modified). The usual augmentation for digits."""
    if max_shift < 0:
        raise ValueError(f"random_shift: expected max_shift >= 0, got {max_shift}")
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"random_shift: expected x with 4 dimensions (N, C, H, W), got {x.ndim}")
    if max_shift == 0:
        return x.copy()
    s = int(max_shift)
    n, _, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (s, s), (s, s)))
    shifts = np.random.default_rng(rng).integers(-s, s + 1, size=(n, 2))
    out = np.empty_like(x)
    for i, (dy, dx) in enumerate(shifts):
        # output pixel (r, c) = input pixel (r - dy, c - dx) = padded (r - dy + s, c - dx + s)
        out[i] = padded[i, :, s - dy:s - dy + h, s - dx:s - dx + w]
    return out
