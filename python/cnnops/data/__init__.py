"""Datasets for training: the scikit-learn digits (the embedded default), readers for files users
bring (MNIST / Fashion-MNIST IDX, CIFAR-10/100 binary) and augmentations of NCHW batches.

Every loader returns a :class:`Dataset` whose images are (N, C, H, W) arrays of the requested
float dtype scaled to [0, 1] and whose labels are (N,) int64 arrays. ``load(name, data_dir)``
picks a loader by name, as the ``python -m cnnops train --dataset`` option does."""
from __future__ import annotations

from .augment import (AUGMENTATIONS, Augment, affine_matrix, affine_warp, make_augment, pca_basis, pca_color,
                      random_affine, random_color_shift, random_crop, random_flip)
from .cifar import load_cifar10, load_cifar100, read_cifar
from .dataset import Dataset, batches, random_shift, split
from .digits import load_digits, resize_digits
from .idx import load_mnist, read_idx, write_idx

# --dataset names and whether they need files from --data-dir
DATASETS = {
    "digits": False,
    "mnist": True,
    "fashion-mnist": True,
    "cifar10": True,
    "cifar100": True,
}


def load(name: str, data_dir=None, *, size=None, dtype="float32", seed: int = 0) -> Dataset:
    """The dataset called `name` (one of DATASETS). `data_dir` is required for the file-based
    ones; `size` applies to digits only (28 or 32, default 32); `seed` fixes the digits split (and
    the split of MNIST's test files when they come alone, see load_mnist)."""
    key = str(name).lower()
    if key not in DATASETS:
        raise ValueError(f"cnnops.data.load: expected a dataset among {', '.join(DATASETS)}, got {name!r}")
    if DATASETS[key] and data_dir is None:
        raise ValueError(f"cnnops.data.load: dataset {key!r} is read from files; expected a data_dir, got None")
    if key != "digits" and size is not None:
        raise ValueError(f"cnnops.data.load: size applies to the digits only, got size={size} for {key!r}")
    if key == "digits":
        return load_digits(size=32 if size is None else size, dtype=dtype, seed=seed)
    if key in ("mnist", "fashion-mnist"):
        return load_mnist(data_dir, name=key, dtype=dtype, seed=seed)
    if key == "cifar10":
        return load_cifar10(data_dir, dtype=dtype)
    return load_cifar100(data_dir, dtype=dtype)


__all__ = [
    "AUGMENTATIONS",
    "Augment",
    "DATASETS",
    "Dataset",
    "affine_matrix",
    "affine_warp",
    "batches",
    "load",
    "load_cifar10",
    "load_cifar100",
    "load_digits",
    "load_mnist",
    "make_augment",
    "pca_basis",
    "pca_color",
    "random_affine",
    "random_color_shift",
    "random_crop",
    "random_flip",
    "read_cifar",
    "random_shift",
    "read_idx",
    "resize_digits",
    "split",
    "write_idx",
]
