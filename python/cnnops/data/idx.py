"""The IDX file format of MNIST and Fashion-MNIST, raw or gzip-compressed.

Layout (all integers big-endian): two zero bytes, a type code, the number of dimensions n, then n
uint32 sizes, then the values in C order. Type codes: 0x08 uint8, 0x09 int8, 0x0B int16,
0x0C int32, 0x0D float32, 0x0E float64. A gzip file is recognised by its magic bytes 1f 8b, not by
its name."""
from __future__ import annotations

import gzip
import os
import struct
import warnings
from pathlib import Path

import numpy as np

from .dataset import Dataset, split

_CODES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
          0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_BY_KIND = {("u", 1): 0x08, ("i", 1): 0x09, ("i", 2): 0x0B, ("i", 4): 0x0C, ("f", 4): 0x0D, ("f", 8): 0x0E}

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


def _read_bytes(path) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise ValueError(f"read_idx: {path}: damaged gzip data ({e})") from None
    return data


def parse_idx(data: bytes, where: str = "<bytes>") -> np.ndarray:
    """The array held by the IDX bytes `data` (already decompressed), in native byte order."""
    if len(data) < 4:
        raise ValueError(f"read_idx: {where}: expected at least 4 header bytes, got {len(data)}")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise ValueError(f"read_idx: {where}: expected an IDX file starting with two zero bytes, got {data[:2]!r}")
    if code not in _CODES:
        raise ValueError(f"read_idx: {where}: expected a type code among "
                         f"{', '.join(hex(c) for c in _CODES)}, got {hex(code)}")
    head = 4 + 4 * ndim
    if len(data) < head:
        raise ValueError(f"read_idx: {where}: expected {head} header bytes for {ndim} dimensions, got {len(data)}")
    shape = struct.unpack(f">{ndim}I", data[4:head])
    dt = _CODES[code]
    need = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if len(data) - head != need:
        raise ValueError(f"read_idx: {where}: expected {need} data bytes for shape {tuple(shape)} of "
                         f"{dt.newbyteorder('=')}, got {len(data) - head}")
    arr = np.frombuffer(data, dtype=dt, offset=head).reshape(shape)
    return arr.astype(dt.newbyteorder("="))


def read_idx(path) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a NumPy array of its shape and native-order dtype."""
    return parse_idx(_read_bytes(path), str(path))


def write_idx(path, array, compress=None) -> None:
    """Write `array` (uint8, int8, int16, int32, float32 or float64) as an IDX file; gzip it when
    `compress` is True, or when it is None and the path ends in .gz."""
    a = np.asarray(array)
    key = (a.dtype.kind, a.dtype.itemsize)
    if key not in _BY_KIND:
        raise TypeError(f"write_idx: expected uint8, int8, int16, int32, float32 or float64, got {a.dtype}")
    if a.ndim > 255:
        raise ValueError(f"write_idx: expected at most 255 dimensions, got {a.ndim}")
    code = _BY_KIND[key]
    head = struct.pack(f">HBB{a.ndim}I", 0, code, a.ndim, *a.shape)
    data = head + np.ascontiguousarray(a, dtype=_CODES[code]).tobytes()
    if compress is None:
        compress = str(path).endswith(".gz")
    if compress:
        data = gzip.compress(data)
    with open(path, "wb") as f:
        f.write(data)


def _find(data_dir: Path, stem: str):
    """data_dir/stem or stem.gz (also the torchvision spelling with '.' before idx)."""
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        p = data_dir / name
        if p.is_file():
            return p
    return None


def load_mnist_split(data_dir, part: str = "test", dtype="float32") -> tuple:
    """(images (N, 1, 28, 28) in [0, 1], labels (N,) int64) of one part ('train' or 'test') of
    the MNIST-format files in `data_dir`."""
    if part not in MNIST_FILES:
        raise ValueError(f"load_mnist: expected part 'train' or 'test', got {part!r}")
    d = Path(os.fspath(data_dir))
    paths = [_find(d, stem) for stem in MNIST_FILES[part]]
    if None in paths:
        found = sorted(p.name for p in d.iterdir()) if d.is_dir() else "no directory"
        raise FileNotFoundError(f"load_mnist: expected {MNIST_FILES[part][0]}[.gz] and {MNIST_FILES[part][1]}[.gz] "
                                f"in {d}, found {found}")
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"load_mnist: expected images (N, H, W) and labels (N,), got {images.shape} and "
                         f"{labels.shape}")
    dt = np.dtype(dtype)
    x = (images.astype(dt) / dt.type(255.0))[:, None]
    return np.ascontiguousarray(x), labels.astype(np.int64)


def _files_of(d: Path, part: str) -> int:
    """How many of the two files of `part` are in d."""
    return sum(_find(d, stem) is not None for stem in MNIST_FILES[part])


def load_mnist(data_dir, name: str = "mnist", dtype="float32", test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """MNIST or Fashion-MNIST from the standard IDX files in `data_dir` (raw or .gz): images
    (N, 1, 28, 28) scaled to [0, 1], labels int64. name 'fashion-mnist' only changes the class
    names.

    With all four files, the 60,000 training and 10,000 test images. With only the test files
    (t10k-images/labels, which many people have alone) and neither training file, the 10,000 test
    images are split, stratified
    by class with `seed`, into a training part and a test part of `test_fraction` (8,000 / 2,000 by
    default); a UserWarning says so and the Dataset's `note` records it."""
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"load_mnist: expected dtype float32 or float64, got {dt}")
    classes = FASHION_CLASSES if name == "fashion-mnist" else [str(i) for i in range(10)]
    d = Path(os.fspath(data_dir))
    if d.is_dir() and _files_of(d, "train") == 0 and _files_of(d, "test") == 2:
        x, y = load_mnist_split(d, "test", dt)
        xtr, ytr, xte, yte = split(x, y, test_fraction=test_fraction, seed=seed)
        note = (f"only the test files ({MNIST_FILES['test'][0]}, {MNIST_FILES['test'][1]}) are in {d}: their "
                f"{len(y):,} images are split into {len(ytr):,} for training and {len(yte):,} for testing "
                f"(stratified, seed {seed})")
        warnings.warn(f"load_mnist: {note}", UserWarning, stacklevel=2)
        return Dataset(name, xtr, ytr, xte, yte, list(classes), note=note)
    xtr, ytr = load_mnist_split(data_dir, "train", dt)
    xte, yte = load_mnist_split(data_dir, "test", dt)
    return Dataset(name, xtr, ytr, xte, yte, list(classes))
