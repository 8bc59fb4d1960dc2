"""CIFAR-10 and CIFAR-100 in their binary versions (the "binary version suitable for C programs").

CIFAR-10: data_batch_1.bin .. data_batch_5.bin and test_batch.bin, each record one label byte
then 3,072 pixel bytes (1,024 red, 1,024 green, 1,024 blue, rows of 32). CIFAR-100: train.bin
and test.bin, each record a coarse label byte, a fine label byte, then the same 3,072 bytes.
Files are looked for in data_dir and in the folder the archives unpack to
(cifar-10-batches-bin, cifar-100-binary); batches.meta.txt / fine_label_names.txt give class
names when present."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .dataset import Dataset

PIXELS = 3 * 32 * 32
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def read_cifar(path, label_bytes: int = 1, label: int = -1) -> tuple:
    """Records of one binary CIFAR file -> (images (N, 3, 32, 32) uint8, labels (N,) int64).
    label_bytes is 1 for CIFAR-10 and 2 for CIFAR-100; `label` picks which label byte (0 =
    coarse, 1 or -1 = fine for CIFAR-100)."""
    if label_bytes not in (1, 2):
        raise ValueError(f"read_cifar: expected label_bytes 1 (CIFAR-10) or 2 (CIFAR-100), got {label_bytes}")
    if not -label_bytes <= label < label_bytes:
        raise ValueError(f"read_cifar: expected label in [{-label_bytes}, {label_bytes}), got {label}")
    raw = np.fromfile(path, dtype=np.uint8)
    rec = label_bytes + PIXELS
    if raw.size == 0 or raw.size % rec:
        raise ValueError(f"read_cifar: {path}: expected a whole number of {rec}-byte records, got {raw.size} bytes")
    raw = raw.reshape(-1, rec)
    return raw[:, label_bytes:].reshape(-1, 3, 32, 32).copy(), raw[:, label % label_bytes].astype(np.int64)


def _root(data_dir, sub: str, first: str) -> Path:
    d = Path(os.fspath(data_dir))
    for cand in (d, d / sub):
        if (cand / first).is_file():
            return cand
    raise FileNotFoundError(f"cifar: expected {first} in {d} or {d / sub}, found "
                            f"{sorted(p.name for p in d.iterdir()) if d.is_dir() else 'no directory'}")


def _names(path: Path, fallback) -> list:
    if path.is_file():
        names = [s.strip() for s in path.read_text(encoding="utf-8", errors="replace").splitlines() if s.strip()]
        if names:
            return names
    return list(fallback)


def _scaled(x: np.ndarray, dtype) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"cifar: expected dtype float32 or float64, got {dt}")
    return x.astype(dt) / dt.type(255.0)


def load_cifar10(data_dir, dtype="float32") -> Dataset:
    """CIFAR-10 from its binary batches: images (N, 3, 32, 32) scaled to [0, 1], labels 0..9.
    Training batches that are missing are skipped (at least data_batch_1.bin must exist)."""
    root = _root(data_dir, "cifar-10-batches-bin", "data_batch_1.bin")
    parts = [read_cifar(root / f"data_batch_{i}.bin") for i in range(1, 6) if (root / f"data_batch_{i}.bin").is_file()]
    if not (root / "test_batch.bin").is_file():
        raise FileNotFoundError(f"load_cifar10: expected test_batch.bin in {root}")
    xte, yte = read_cifar(root / "test_batch.bin")
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    return Dataset("cifar10", _scaled(xtr, dtype), ytr, _scaled(xte, dtype), yte,
                   _names(root / "batches.meta.txt", CIFAR10_CLASSES))


def load_cifar100(data_dir, dtype="float32", label: str = "fine") -> Dataset:
    """CIFAR-100 from train.bin and test.bin: images (N, 3, 32, 32) in [0, 1], labels of the
    100 fine classes (label='fine') or the 20 superclasses (label='coarse')."""
    if label not in ("fine", "coarse"):
        raise ValueError(f"load_cifar100: expected label 'fine' or 'coarse', got {label!r}")
    root = _root(data_dir, "cifar-100-binary", "train.bin")
    which = 1 if label == "fine" else 0
    xtr, ytr = read_cifar(root / "train.bin", label_bytes=2, label=which)
    if not (root / "test.bin").is_file():
        raise FileNotFoundError(f"load_cifar100: expected test.bin in {root}")
    xte, yte = read_cifar(root / "test.bin", label_bytes=2, label=which)
    k = 100 if label == "fine" else 20
    names = _names(root / f"{label}_label_names.txt", [str(i) for i in range(k)])
    return Dataset(f"cifar100-{label}" if label == "coarse" else "cifar100", _scaled(xtr, dtype), ytr,
                   _scaled(xte, dtype), yte, names)
