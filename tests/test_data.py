"""cnnops.data: the digits loader (resizing, split), the IDX reader/writer (raw and gzip) and the
CIFAR-10/100 binary readers, on small files the tests build byte by byte."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from cnnops import data


# ---------------------------------------------------------------------------------------------
# IDX


def _idx_bytes(arr: np.ndarray, code: int, fmt: str) -> bytes:
    """An IDX file written from the format's definition, independently of cnnops.data.write_idx."""
    head = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
    return head + b"".join(struct.pack(">" + fmt, v) for v in arr.ravel().tolist())


@pytest.mark.parametrize("dtype,code,fmt", [("u1", 0x08, "B"), ("i1", 0x09, "b"), ("i2", 0x0B, "h"),
                                            ("i4", 0x0C, "i"), ("f4", 0x0D, "f"), ("f8", 0x0E, "d")])
@pytest.mark.parametrize("compressed", [False, True])
def test_read_idx_every_type(tmp_path, rng, dtype, code, fmt, compressed):
    shape = (3, 5, 7)
    if dtype[0] == "f":
        a = rng.standard_normal(shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
    raw = _idx_bytes(a, code, fmt)
    p = tmp_path / "x.idx"
    p.write_bytes(gzip.compress(raw) if compressed else raw)
    got = data.read_idx(p)
    assert got.shape == shape and got.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(got, a)


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_write_idx_round_trip_and_bytes(tmp_path, rng, name):
    a = rng.integers(0, 256, size=(4, 3, 2)).astype(np.uint8)
    p = tmp_path / name
    data.write_idx(p, a)
    raw = p.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    assert raw == _idx_bytes(a, 0x08, "B")
    np.testing.assert_array_equal(data.read_idx(p), a)


def test_read_idx_one_dimensional_and_empty(tmp_path):
    p = tmp_path / "labels"
    p.write_bytes(_idx_bytes(np.array([3, 1, 4, 1, 5], np.uint8), 0x08, "B"))
    np.testing.assert_array_equal(data.read_idx(p), [3, 1, 4, 1, 5])
    p.write_bytes(bytes([0, 0, 8, 2]) + struct.pack(">II", 0, 28))
    assert data.read_idx(p).shape == (0, 28)


@pytest.mark.parametrize("raw,match", [
    (b"\x00\x00", "at least 4 header bytes"),
    (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "two zero bytes"),
    (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "type code"),
    (b"\x00\x00\x08\x02" + struct.pack(">I", 1), "header bytes for 2 dimensions"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"\x00\x00", "expected 3 data bytes"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 1) + b"\x00\x00", "expected 1 data bytes"),
    (b"\x1f\x8b\x08\x00garbage", "damaged gzip"),
])
def test_read_idx_bad_files(tmp_path, raw, match):
    p = tmp_path / "bad"
    p.write_bytes(raw)
    with pytest.raises(ValueError, match="read_idx: .*" + match):
        data.read_idx(p)


def test_write_idx_bad_dtype(tmp_path):
    with pytest.raises(TypeError, match="write_idx: expected uint8.*got uint16"):
        data.write_idx(tmp_path / "x", np.zeros(3, np.uint16))


def _mnist_dir(tmp_path, rng, n_train=7, n_test=5, gz=True):
    sets = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        imgs = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        sfx = ".gz" if gz else ""
        for stem, arr, fmt, code in (("images-idx3-ubyte", imgs, "B", 8), ("labels-idx1-ubyte", labels, "B", 8)):
            raw = _idx_bytes(arr, code, fmt)
            (tmp_path / f"{part}-{stem}{sfx}").write_bytes(gzip.compress(raw) if gz else raw)
        sets[part] = (imgs, labels)
    return sets


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_load_mnist(tmp_path, rng, gz, dtype):
    sets = _mnist_dir(tmp_path, rng, gz=gz)
    ds = data.load_mnist(tmp_path, dtype=dtype)
    assert ds.x_train.shape == (7, 1, 28, 28) and ds.x_test.shape == (5, 1, 28, 28)
    assert ds.x_train.dtype == np.dtype(dtype) and ds.y_train.dtype == np.int64
    np.testing.assert_allclose(ds.x_train[:, 0], sets["train"][0] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, sets["t10k"][1])
    assert ds.classes == [str(i) for i in range(10)]
    fashion = data.load("fashion-mnist", tmp_path)
    assert fashion.classes[9] == "Ankle boot" and fashion.name == "fashion-mnist"


def test_load_mnist_missing_files(tmp_path, rng):
    _mnist_dir(tmp_path, rng)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="load_mnist: expected train-images-idx3-ubyte"):
        data.load_mnist(tmp_path)


def _t10k_only(tmp_path, rng, per_class=5):
    imgs = rng.integers(0, 256, size=(10 * per_class, 28, 28)).astype(np.uint8)
    labels = np.repeat(np.arange(10, dtype=np.uint8), per_class)
    data.write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs)
    data.write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    return imgs, labels


def test_load_mnist_with_only_the_test_files(tmp_path, rng):
    imgs, labels = _t10k_only(tmp_path, rng)
    with pytest.warns(UserWarning, match=r"load_mnist: only the test files \(t10k-images-idx3-ubyte, "
                                         r"t10k-labels-idx1-ubyte\) are in .*: their 50 images are split into 40 "
                                         r"for training and 10 for testing \(stratified, seed 0\)"):
        ds = data.load_mnist(tmp_path)
    assert ds.note.startswith("only the test files") and ds.subset(4, 4).note == ds.note
    assert ds.x_train.shape == (40, 1, 28, 28) and ds.x_test.shape == (10, 1, 28, 28)
    assert np.bincount(ds.y_test).tolist() == [1] * 10  # stratified: one test image per class
    # a partition of the file: every image once, with its own label
    both = np.concatenate([ds.x_train, ds.x_test])[:, 0]
    lab = np.concatenate([ds.y_train, ds.y_test])
    order = np.lexsort(both.reshape(50, -1).T)
    want = np.lexsort((imgs / 255.0).astype(np.float32).reshape(50, -1).T)
    np.testing.assert_array_equal(both[order], (imgs / 255.0).astype(np.float32)[want])
    np.testing.assert_array_equal(lab[order], labels[want])
    with pytest.warns(UserWarning):
        other = data.load("mnist", tmp_path, seed=1)
    assert not np.array_equal(other.y_train, ds.y_train) or not np.array_equal(other.x_train, ds.x_train)
    with pytest.warns(UserWarning, match="split into 30 for training and 20 for testing"):
        data.load_mnist(tmp_path, test_fraction=0.4)


def test_load_mnist_half_a_training_set_is_an_error(tmp_path, rng):
    _t10k_only(tmp_path, rng)
    data.write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(FileNotFoundError, match="load_mnist: expected train-images-idx3-ubyte"):
        data.load_mnist(tmp_path)


def test_load_mnist_label_count_mismatch(tmp_path, rng):
    _mnist_dir(tmp_path, rng)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(_idx_bytes(np.zeros(4, np.uint8), 8, "B"))
    with pytest.raises(ValueError, match=r"load_mnist: expected images \(N, H, W\) and labels \(N,\)"):
        data.load_mnist(tmp_path)


# ---------------------------------------------------------------------------------------------
# CIFAR


def _cifar_records(rng, n, label_bytes):
    labels = rng.integers(0, 100, size=(n, label_bytes)).astype(np.uint8)
    pixels = rng.integers(0, 256, size=(n, 3, 32, 32)).astype(np.uint8)
    raw = b"".join(labels[i].tobytes() + pixels[i].tobytes() for i in range(n))  # R plane, G plane, B plane
    return raw, labels, pixels


def test_read_cifar10_records(tmp_path, rng):
    raw, labels, pixels = _cifar_records(rng, 3, 1)
    p = tmp_path / "b.bin"
    p.write_bytes(raw)
    x, y = data.read_cifar(p)
    np.testing.assert_array_equal(x, pixels)
    np.testing.assert_array_equal(y, labels[:, 0])
    assert y.dtype == np.int64 and x.dtype == np.uint8
    # record layout from the format's definition: pixel (c, r, col) of record i at 1 + c*1024 + r*32 + col
    i, c, r, col = 2, 1, 17, 5
    assert x[i, c, r, col] == raw[i * 3073 + 1 + c * 1024 + r * 32 + col]


def test_load_cifar10(tmp_path, rng):
    root = tmp_path / "cifar-10-batches-bin"
    root.mkdir()
    expect_train = []
    for b in (1, 2):  # batches 3-5 missing: skipped
        raw, labels, pixels = _cifar_records(rng, 2 + b, 1)
        (root / f"data_batch_{b}.bin").write_bytes(raw)
        expect_train.append((labels[:, 0], pixels))
    raw, labels, pixels = _cifar_records(rng, 4, 1)
    (root / "test_batch.bin").write_bytes(raw)
    (root / "batches.meta.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n\n")
    ds = data.load("cifar10", tmp_path)
    assert ds.x_train.shape == (7, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(ds.y_train, np.concatenate([e[0] for e in expect_train]))
    np.testing.assert_allclose(ds.x_test, pixels / 255.0, rtol=1e-6)
    assert ds.classes == [f"class{i}" for i in range(10)]


@pytest.mark.parametrize("label,which,k", [("fine", 1, 100), ("coarse", 0, 20)])
def test_load_cifar100(tmp_path, rng, label, which, k):
    raw_tr, lab_tr, pix_tr = _cifar_records(rng, 5, 2)
    raw_te, lab_te, _ = _cifar_records(rng, 3, 2)
    (tmp_path / "train.bin").write_bytes(raw_tr)
    (tmp_path / "test.bin").write_bytes(raw_te)
    ds = data.load_cifar100(tmp_path, dtype="float64", label=label)
    np.testing.assert_array_equal(ds.y_train, lab_tr[:, which])
    np.testing.assert_array_equal(ds.y_test, lab_te[:, which])
    np.testing.assert_array_equal(ds.x_train, pix_tr / 255.0)
    assert ds.num_classes == k and ds.x_train.dtype == np.float64


def test_cifar_bad_input(tmp_path):
    p = tmp_path / "short.bin"
    p.write_bytes(b"\x00" * 3072)
    with pytest.raises(ValueError, match="read_cifar: .*whole number of 3073-byte records, got 3072 bytes"):
        data.read_cifar(p)
    with pytest.raises(ValueError, match="read_cifar: expected label_bytes 1"):
        data.read_cifar(p, label_bytes=3)
    with pytest.raises(ValueError, match=r"read_cifar: expected label in \[-1, 1\), got 1"):
        data.read_cifar(p, label=1)
    with pytest.raises(FileNotFoundError, match="cifar: expected data_batch_1.bin"):
        data.load_cifar10(tmp_path)
    with pytest.raises(ValueError, match="load_cifar100: expected label 'fine' or 'coarse'"):
        data.load_cifar100(tmp_path, label="super")


# ---------------------------------------------------------------------------------------------
# digits


def test_resize_digits_upsample_and_pad(rng):
    imgs = rng.random((4, 8, 8)).astype(np.float32)
    for size, scale in ((32, 3), (28, 3), (12, 1), (20, 2)):
        out = data.resize_digits(imgs, size)
        assert out.shape == (4, 1, size, size) and out.dtype == np.float32
        side = 8 * scale
        lo = (size - side) // 2
        # nearest-neighbour from the definition: pixel (r, c) of the digit comes from (r // s, c // s)
        rr, cc = np.meshgrid(np.arange(side) // scale, np.arange(side) // scale, indexing="ij")
        np.testing.assert_array_equal(out[:, 0, lo:lo + side, lo:lo + side], imgs[:, rr, cc])
        frame = out.copy()
        frame[:, :, lo:lo + side, lo:lo + side] = 0
        assert not frame.any()
    padded = data.resize_digits(imgs[:, None], 32, upsample=False)
    np.testing.assert_array_equal(padded[:, :, 12:20, 12:20], imgs[:, None])
    assert padded.sum() == pytest.approx(imgs.sum(), rel=1e-6)


def test_resize_digits_bad_input():
    with pytest.raises(ValueError, match=r"resize_digits: expected images of shape \(N, 8, 8\).*got \(2, 7, 8\)"):
        data.resize_digits(np.zeros((2, 7, 8)))
    with pytest.raises(ValueError, match="resize_digits: expected an integer size >= 8, got 6"):
        data.resize_digits(np.zeros((2, 8, 8)), 6)


def test_load_digits_split_and_values():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits as sk

    ds = data.load_digits(size=32, seed=3)
    assert ds.x_train.shape[1:] == (1, 32, 32) and len(ds.x_train) + len(ds.x_test) == 1797
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() == 1.0
    # stratified: every class has ~20% of its images in test
    counts = np.bincount(ds.y_test, minlength=10)
    total = np.bincount(sk().target, minlength=10)
    np.testing.assert_array_equal(counts, np.round(0.2 * total).astype(int))
    # each test image is a resized original with its own label
    orig = sk()
    lookup = {data.resize_digits(im[None] / 16.0, 32)[0].tobytes(): t for im, t in zip(orig.images, orig.target)}
    x64 = ds.x_test.astype(np.float64)
    hits = [lookup.get(x64[i].tobytes()) for i in range(len(x64))]
    assert all(h is not None for h in hits)
    np.testing.assert_array_equal(np.array(hits), ds.y_test)
    # fixed seed: same order; other seed: another order
    again = data.load_digits(size=32, seed=3)
    np.testing.assert_array_equal(again.y_train, ds.y_train)
    assert not np.array_equal(data.load_digits(seed=4).y_train, ds.y_train)


def test_load_dispatch_errors(tmp_path):
    with pytest.raises(ValueError, match="cnnops.data.load: expected a dataset among digits"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="expected a data_dir, got None"):
        data.load("mnist")
    with pytest.raises(ValueError, match="size applies to the digits only"):
        data.load("cifar10", tmp_path, size=28)
    with pytest.raises(TypeError, match="load_digits: expected dtype float32 or float64, got int32"):
        data.load_digits(dtype="int32")


# ---------------------------------------------------------------------------------------------
# split, batches, Dataset


def test_split_partitions_and_stratifies(rng):
    y = np.repeat(np.arange(4), [10, 5, 2, 1])
    x = np.arange(len(y))[:, None, None, None].astype(np.float32)
    xtr, ytr, xte, yte = data.split(x, y, test_fraction=0.2, seed=1)
    assert sorted(np.concatenate([xtr, xte]).ravel().tolist()) == list(range(len(y)))
    np.testing.assert_array_equal(y[xtr.ravel().astype(int)], ytr)
    np.testing.assert_array_equal(np.bincount(yte, minlength=4), [2, 1, 1, 0])
    with pytest.raises(ValueError, match="split: expected 0 < test_fraction < 1, got 1.0"):
        data.split(x, y, test_fraction=1.0)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batches_cover_everything(shuffle, drop_last):
    x = np.arange(23)[:, None, None, None]
    y = np.arange(23)
    got = list(data.batches(x, y, 5, shuffle=shuffle, rng=7, drop_last=drop_last))
    sizes = [len(b[1]) for b in got]
    assert sizes == ([5] * 4 if drop_last else [5] * 4 + [3])
    seen = np.concatenate([b[1] for b in got])
    for bx, by in got:
        np.testing.assert_array_equal(bx.ravel(), by)
    if not drop_last:
        assert sorted(seen.tolist()) == list(range(23))
    assert (not np.array_equal(seen, np.arange(len(seen)))) == shuffle
    with pytest.raises(ValueError, match="batches: expected batch_size >= 1, got 0"):
        next(data.batches(x, y, 0))


def test_dataset_checks_and_standardize(rng):
    x = rng.random((6, 2, 3, 3)).astype(np.float32) * 5 + 1
    y = np.arange(6) % 3
    ds = data.Dataset("t", x[:4], y[:4], x[4:], y[4:])
    assert ds.classes == ["0", "1", "2"] and ds.input_shape == (2, 3, 3)
    st = ds.standardize()
    np.testing.assert_allclose(st.x_train.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(st.x_train.std(axis=(0, 2, 3)), 1, rtol=1e-4)
    ref = (x[4:] - x[:4].mean(axis=(0, 2, 3), keepdims=True)) / x[:4].std(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(st.x_test, ref, rtol=1e-5)
    np.testing.assert_array_equal(ds.x_train, x[:4])  # the original is untouched
    with pytest.raises(ValueError, match=r"Dataset: expected x_train with 4 dimensions \(N, C, H, W\), got 3"):
        data.Dataset("t", x[:4, 0], y[:4], x[4:], y[4:])
    with pytest.raises(ValueError, match=r"Dataset: expected y_test of shape \(2,\), got \(3,\)"):
        data.Dataset("t", x[:4], y[:4], x[4:], y[3:])


def test_random_shift_from_definition(rng):
    x = rng.random((9, 2, 6, 7)).astype(np.float32)
    keep = x.copy()
    out = data.random_shift(x, 2, rng=3)
    np.testing.assert_array_equal(x, keep)
    shifts = np.random.default_rng(3).integers(-2, 3, size=(9, 2))
    for i, (dy, dx) in enumerate(shifts):
        ref = np.zeros_like(x[i])
        for r in range(6):
            for c in range(7):
                if 0 <= r - dy < 6 and 0 <= c - dx < 7:
                    ref[:, r, c] = x[i, :, r - dy, c - dx]
        np.testing.assert_array_equal(out[i], ref)
    assert len({(int(a), int(b)) for a, b in shifts}) > 1
    np.testing.assert_array_equal(data.random_shift(x, 0), x)
    with pytest.raises(ValueError, match="random_shift: expected max_shift >= 0, got -1"):
        data.random_shift(x, -1)
    with pytest.raises(ValueError, match=r"random_shift: expected x with 4 dimensions \(N, C, H, W\), got 3"):
        data.random_shift(x[0], 1)
