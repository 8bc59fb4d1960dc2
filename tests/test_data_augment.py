"""cnnops.data augmentations on NCHW batches: each output image checked against what the
augmentation is defined to do (flips and crops found among the candidates, the affine warp against
a loop reference and exact rotations by np.rot90, colour shifts constant per channel, AlexNet's PCA
colour against its covariance), the chain behind ``train --augment``, and bad input."""
from __future__ import annotations

import numpy as np
import pytest

from cnnops import data
from reference import affine_warp_ref


def batch(rng, n=6, c=3, h=7, w=5, dtype=np.float32):
    return rng.random((n, c, h, w)).astype(dtype)


def test_random_flip(rng):
    x = batch(rng, n=400, h=3, w=4)
    keep = x.copy()
    y = random = data.random_flip(x, 0.3, rng=1)
    np.testing.assert_array_equal(x, keep)  # the input is left alone
    flipped = np.array([np.array_equal(random[i], x[i, :, :, ::-1]) for i in range(len(x))])
    same = np.array([np.array_equal(y[i], x[i]) for i in range(len(x))])
    assert np.all(flipped ^ same) and abs(flipped.mean() - 0.3) < 0.07
    np.testing.assert_array_equal(data.random_flip(x, 1.0), x[..., ::-1])
    np.testing.assert_array_equal(data.random_flip(x, 0.5, rng=4), data.random_flip(x, 0.5, rng=4))


def test_random_crop_takes_a_window_of_the_padded_image(rng):
    x = batch(rng, n=60, h=6, w=5, dtype=np.float64)
    pad = 2
    y = data.random_crop(x, padding=pad, fill=-1.0, rng=3)
    assert y.shape == x.shape and y.dtype == x.dtype
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-1.0)
    offsets = set()
    for i in range(len(x)):
        hits = [(t, l) for t in range(2 * pad + 1) for l in range(2 * pad + 1)
                if np.array_equal(y[i], padded[i, :, t:t + 6, l:l + 5])]
        assert len(hits) == 1
        offsets.add(hits[0])
    assert len(offsets) > 12  # of the 25 possible translations
    small = data.random_crop(x, padding=0, size=(3, 4), rng=0)
    assert small.shape == (60, 3, 3, 4)
    assert all(any(np.array_equal(small[i], x[i, :, t:t + 3, l:l + 4]) for t in range(4) for l in range(2))
               for i in range(len(x)))


def test_affine_warp_against_loops(rng):
    x = batch(rng, n=3, c=2, h=6, w=7, dtype=np.float64)
    a = data.affine_matrix(np.array([20.0, -35.0, 90.0]), np.array([5.0, 0.0, -12.0]), np.array([1.0, 1.3, 0.8]))
    t = rng.uniform(-1.5, 1.5, (3, 2))
    got = data.affine_warp(x, a, t, fill=0.25)
    np.testing.assert_allclose(got, affine_warp_ref(x, a, t, 0.25), rtol=1e-12, atol=1e-12)


def test_affine_warp_exact_cases(rng):
    x = batch(rng, n=2, c=3, h=5, w=5)
    np.testing.assert_allclose(data.affine_warp(x, np.eye(2)), x, atol=1e-7)
    # a quarter turn counter-clockwise, as np.rot90 displays it, maps pixel centres onto pixel centres
    np.testing.assert_allclose(data.affine_warp(x, data.affine_matrix(90.0)), np.rot90(x, 1, axes=(2, 3)),
                               atol=1e-6)
    np.testing.assert_allclose(data.affine_warp(x, data.affine_matrix(-90.0)), np.rot90(x, -1, axes=(2, 3)),
                               atol=1e-6)
    # an integer translation moves the image and fills the uncovered border
    moved = data.affine_warp(x, np.eye(2), translate=(2.0, -1.0), fill=9.0)
    np.testing.assert_allclose(moved[:, :, :4, 2:], x[:, :, 1:, :3], atol=1e-6)
    assert np.all(moved[:, :, :, :2] == 9.0) and np.all(moved[:, :, 4, :] == 9.0)
    # shear: row r (offset y from the centre) moves right by tan(shear) * y
    sheared = data.affine_warp(x, data.affine_matrix(0.0, 45.0), fill=0.0)
    np.testing.assert_allclose(sheared[:, :, 3, 1:], x[:, :, 3, :4], atol=1e-6)


def test_random_affine(rng):
    x = batch(rng, n=8, c=1, h=9, w=9)
    same = data.random_affine(x, degrees=0.0, shear=0.0, rng=0)
    np.testing.assert_allclose(same, x, atol=1e-6)
    y = data.random_affine(x, degrees=30.0, shear=10.0, rng=5)
    g = np.random.default_rng(5)  # the draws it documents: angles, then shears
    angle, shear = g.uniform(-30, 30, 8), g.uniform(-10, 10, 8)
    np.testing.assert_allclose(y, data.affine_warp(x, data.affine_matrix(angle, shear)), atol=1e-6)
    assert data.random_affine(x, scale=(0.5, 0.9), translate=(0.1, 0.1), rng=1).shape == x.shape


def test_color_shift_and_pca_color(rng):
    x = batch(rng, n=50, c=3, h=4, w=4, dtype=np.float64)
    d = data.random_color_shift(x, 0.2, rng=2) - x
    per = d[:, :, :1, :1]
    np.testing.assert_allclose(d, np.broadcast_to(per, d.shape), atol=1e-15)
    assert np.abs(per).max() <= 0.2 and np.abs(per).max() > 0.15
    # a training set whose colours vary mostly along (1, 1, 0): the basis finds it
    base = rng.standard_normal((40, 1, 6, 6))
    train = np.concatenate([base, base, 0.1 * rng.standard_normal((40, 1, 6, 6))], axis=1)
    vals, vecs = data.pca_basis(train)
    flat = np.moveaxis(train, 1, 0).reshape(3, -1)
    ref_vals, ref_vecs = np.linalg.eigh(np.cov(flat))
    np.testing.assert_allclose(vals, ref_vals[::-1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.abs(vecs[:, 0]), np.abs(ref_vecs[:, -1]), atol=1e-10)
    np.testing.assert_allclose(np.abs(vecs[:, 0]), [2 ** -0.5, 2 ** -0.5, 0], atol=0.02)
    many = np.zeros((20000, 3, 1, 1))
    shift = data.pca_color(many, vals, vecs, std=0.1, rng=3)[:, :, 0, 0]
    # one colour per image, distributed as N(0, 0.01 * V diag(lambda^2) V^T)
    want = 0.01 * vecs @ np.diag(vals ** 2) @ vecs.T
    np.testing.assert_allclose(np.cov(shift.T), want, rtol=0.05, atol=1e-3 * want.max())
    y = data.pca_color(x, vals, vecs, rng=0) - x
    np.testing.assert_allclose(y, np.broadcast_to(y[:, :, :1, :1], y.shape), atol=1e-15)


def test_make_augment_chain(rng):
    x = batch(rng, n=16, c=3, h=8, w=8)
    aug = data.make_augment("flip, crop,affine,color,pca", x_train=x)
    assert aug.names == ("flip", "crop", "affine", "color", "pca") and "flip" in repr(aug)
    y = aug(x, 7)
    assert y.shape == x.shape and y.dtype == x.dtype and not np.allclose(y, x)
    np.testing.assert_array_equal(aug(x, 7), y)  # a seed fixes the chain
    flip = data.make_augment(["flip"])
    np.testing.assert_array_equal(flip(x, 3), data.random_flip(x, 0.5, np.random.default_rng(3)))
    crop = data.make_augment("crop")(x, 0)
    assert any(np.array_equal(crop[0], np.pad(x[0], ((0, 0), (1, 1), (1, 1)))[:, t:t + 8, l:l + 8])
               for t in range(3) for l in range(3))


def test_augment_bad_input(rng):
    x = batch(rng)
    with pytest.raises(ValueError, match=r"make_augment: expected names among flip, crop, affine, color, pca, "
                                         r"got 'flip,blur'"):
        data.make_augment("flip,blur")
    with pytest.raises(ValueError, match="make_augment: 'pca' needs the training images"):
        data.make_augment("pca")
    with pytest.raises(ValueError, match=r"random_flip: expected x with 4 dimensions \(N, C, H, W\), got 3"):
        data.random_flip(x[0])
    with pytest.raises(TypeError, match="random_crop: expected a floating-point batch, got uint8"):
        data.random_crop(x.astype(np.uint8))
    with pytest.raises(ValueError, match="random_flip: expected 0 <= p <= 1, got 2"):
        data.random_flip(x, 2)
    with pytest.raises(ValueError, match=r"random_crop: expected a crop size between 1 and the padded size"):
        data.random_crop(x, padding=1, size=10)
    with pytest.raises(ValueError, match=r"affine_warp: expected matrix of shape \(2, 2\) or \(6, 2, 2\)"):
        data.affine_warp(x, np.eye(3))
    with pytest.raises(ValueError, match="random_affine: expected degrees >= 0 and 0 <= shear < 90"):
        data.random_affine(x, shear=90)
    with pytest.raises(ValueError, match=r"pca_color: expected eigenvalues \(3,\) and eigenvectors \(3, 3\)"):
        data.pca_color(x, np.ones(2), np.eye(2))
