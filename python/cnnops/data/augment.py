"""Data augmentation on NCHW batches: the list of the lecture notes (horizontal flips, random crops
of a padded image, rotation and shear as one affine warp, colour shifts, AlexNet's PCA colour
augmentation).

Every function takes a batch ``x`` (N, C, H, W) of floats and returns a new array of the same
shape and dtype (``x`` is not modified), drawing one set of random parameters per image from
``rng`` (a numpy Generator or an int seed; None: fresh entropy). ``make_augment("flip,crop,...")``
chains them for the training loop (``python -m cnnops train --augment``)."""
from __future__ import annotations

import math

import numpy as np


def _batch(x, op):
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected x with 4 dimensions (N, C, H, W), got {x.ndim} with shape {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point batch, got {x.dtype}")
    return x


def random_flip(x, p: float = 0.5, rng=None) -> np.ndarray:
    """Each image mirrored left-right (W reversed) with probability ``p``."""
    x = _batch(x, "random_flip")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"random_flip: expected 0 <= p <= 1, got {p}")
    flip = np.random.default_rng(rng).random(len(x)) < p
    out = x.copy()
    out[flip] = x[flip, :, :, ::-1]
    return out


def random_crop(x, padding: int = 4, size=None, fill: float = 0.0, rng=None) -> np.ndarray:
    """A random ``size`` (h, w) window (default: the input size) of each image padded by
    ``padding`` pixels of value ``fill`` on every side: for the default size, a random
    translation by up to ``padding`` pixels in each direction (the CIFAR recipe: 32x32 crops of
    images padded to 40x40)."""
    x = _batch(x, "random_crop")
    if int(padding) != padding or padding < 0:
        raise ValueError(f"random_crop: expected padding as an integer >= 0, got {padding}")
    n, c, h, w = x.shape
    p = int(padding)
    ch, cw = (h, w) if size is None else (tuple(size) if isinstance(size, (tuple, list)) else (size, size))
    if not (1 <= ch <= h + 2 * p and 1 <= cw <= w + 2 * p):
        raise ValueError(f"random_crop: expected a crop size between 1 and the padded size {(h + 2 * p, w + 2 * p)}, "
                         f"got {(ch, cw)}")
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill) if p else x
    g = np.random.default_rng(rng)
    tops = g.integers(0, h + 2 * p - ch + 1, size=n)
    lefts = g.integers(0, w + 2 * p - cw + 1, size=n)
    out = np.empty((n, c, ch, cw), dtype=x.dtype)
    for i in range(n):
        out[i] = padded[i, :, tops[i]:tops[i] + ch, lefts[i]:lefts[i] + cw]
    return out


def affine_matrix(degrees=0.0, shear=0.0, scale=1.0) -> np.ndarray:
    """The 2x2 matrix acting on (x, y) = (column, row) offsets from the image centre (rows grow
    downwards) of a rotation by ``degrees`` counter-clockwise as displayed, after a horizontal
    shear by ``shear`` degrees (x += tan(shear) * y), after scaling by ``scale``:
    R(degrees) @ Shear(shear) @ scale. Arrays of angles give (..., 2, 2) matrices."""
    a, s = np.radians(degrees), np.radians(shear)
    cos, sin, tan = np.cos(a), np.sin(a), np.tan(s)
    rot = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)
    sh = np.stack([np.stack([np.ones_like(tan), tan], -1), np.stack([np.zeros_like(tan), np.ones_like(tan)], -1)],
                  -2)
    return rot @ sh * np.asarray(scale, dtype=np.float64)[..., None, None]


def affine_warp(x, matrix, translate=None, fill: float = 0.0) -> np.ndarray:
    """Each image of x (N, C, H, W) moved by the affine map p = A (q - c) + c + t, A ``matrix``
    (2, 2) or one per image (N, 2, 2) acting on (x, y) = (column, row) coordinates, c the image
    centre ((W - 1) / 2, (H - 1) / 2), t ``translate`` (2,) or (N, 2) pixels (default 0). Output
    pixel p takes the input at q = A^-1 (p - c - t) + c by bilinear interpolation over the four
    nearest pixels, those outside the image counting as ``fill``. One warp applies rotation,
    shear, scale and translation together, so the image is resampled once."""
    x = _batch(x, "affine_warp")
    n, c, h, w = x.shape
    a = np.asarray(matrix, dtype=np.float64)
    a = np.broadcast_to(a, (n, 2, 2)) if a.shape == (2, 2) else a
    if a.shape != (n, 2, 2):
        raise ValueError(f"affine_warp: expected matrix of shape (2, 2) or ({n}, 2, 2), got {np.shape(matrix)}")
    t = np.zeros((n, 2)) if translate is None else np.asarray(translate, dtype=np.float64)
    t = np.broadcast_to(t, (n, 2)) if t.shape == (2,) else t
    if t.shape != (n, 2):
        raise ValueError(f"affine_warp: expected translate of shape (2,) or ({n}, 2), got {np.shape(translate)}")
    inv = np.linalg.inv(a)                                           # (N, 2, 2); raises for a singular map
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    ys, xs = np.mgrid[0:h, 0:w]
    p = np.stack([xs.ravel(), ys.ravel()], axis=1) - centre           # (HW, 2) output offsets
    q = np.einsum("nij,nkj->nki", inv, p[None] - t[:, None, :]) + centre  # (N, HW, 2) source (x, y)
    x0 = np.floor(q[..., 0]).astype(np.int64)
    y0 = np.floor(q[..., 1]).astype(np.int64)
    fx, fy = q[..., 0] - x0, q[..., 1] - y0
    flat = x.reshape(n, c, h * w)
    out = np.zeros((n, c, h * w))
    for dy, dx, wgt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy, xx = y0 + dy, x0 + dx
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        idx = np.where(inside, yy * w + xx, 0)
        vals = np.take_along_axis(flat, np.broadcast_to(idx[:, None, :], (n, c, h * w)), axis=2)
        out += wgt[:, None, :] * np.where(inside[:, None, :], vals, fill)
    return out.reshape(n, c, h, w).astype(x.dtype)


def random_affine(x, degrees=15.0, shear=10.0, scale=None, translate=None, fill: float = 0.0, rng=None):
    """Each image rotated by an angle uniform in [-degrees, degrees], sheared horizontally by an
    angle uniform in [-shear, shear] (and, when given, scaled by a factor uniform in
    ``scale`` = (lo, hi) and translated by up to ``translate`` = (fx, fy) times the width and
    height), all as one :func:`affine_warp` about the image centre."""
    x = _batch(x, "random_affine")
    if degrees < 0 or not 0 <= shear < 90:
        raise ValueError(f"random_affine: expected degrees >= 0 and 0 <= shear < 90, got {degrees} and {shear}")
    n, _, h, w = x.shape
    g = np.random.default_rng(rng)
    angle = g.uniform(-degrees, degrees, n)
    sh = g.uniform(-shear, shear, n)
    if scale is not None:
        lo, hi = scale
        if not 0 < lo <= hi:
            raise ValueError(f"random_affine: expected scale (lo, hi) with 0 < lo <= hi, got {scale}")
        sc = g.uniform(lo, hi, n)
    else:
        sc = np.ones(n)
    t = None
    if translate is not None:
        tx, ty = translate
        t = np.stack([g.uniform(-tx, tx, n) * w, g.uniform(-ty, ty, n) * h], axis=1)
    return affine_warp(x, affine_matrix(angle, sh, sc), t, fill)


def random_color_shift(x, shift: float = 0.1, rng=None) -> np.ndarray:
    """Each channel of each image shifted by a constant uniform in [-shift, shift] (a colour
    cast; on one channel, a brightness change)."""
    x = _batch(x, "random_color_shift")
    if not shift >= 0:
        raise ValueError(f"random_color_shift: expected shift >= 0, got {shift}")
    d = np.random.default_rng(rng).uniform(-shift, shift, size=x.shape[:2] + (1, 1))
    return (x + d).astype(x.dtype)


def pca_basis(x) -> tuple:
    """(eigenvalues (C,), eigenvectors (C, C) as columns) of the covariance of the channel values
    of every pixel of x (N, C, H, W), largest first: the basis of AlexNet's colour augmentation
    (computed there over the ImageNet training pixels). Pass the training images."""
    x = _batch(x, "pca_basis")
    n, c = x.shape[:2]
    m = n * x.shape[2] * x.shape[3]
    if m < 2:
        raise ValueError(f"pca_basis: expected at least 2 pixels, got {m}")
    # sums of v and v v^T over the pixels, 256 images at a time (no float64 copy of the whole set)
    s1, s2 = np.zeros(c), np.zeros((c, c))
    for i in range(0, n, 256):
        v = np.moveaxis(x[i:i + 256], 1, 0).reshape(c, -1).astype(np.float64)
        s1 += v.sum(axis=1)
        s2 += v @ v.T
    mean = s1 / m
    cov = (s2 - m * np.outer(mean, mean)) / (m - 1)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    return np.maximum(vals[order], 0.0), vecs[:, order]


def pca_color(x, eigenvalues, eigenvectors, std: float = 0.1, rng=None) -> np.ndarray:
    """AlexNet's colour augmentation (Krizhevsky et al. 2012, section 4.1): to every pixel of an
    image add eigenvectors @ (alpha * eigenvalues), alpha ~ N(0, std^2) drawn once per image and
    component, with the basis from :func:`pca_basis`. The added colour follows the main directions
    of colour variation of the training set, so the label is kept under changes of illumination
    intensity and colour."""
    x = _batch(x, "pca_color")
    c = x.shape[1]
    vals = np.asarray(eigenvalues, dtype=np.float64)
    vecs = np.asarray(eigenvectors, dtype=np.float64)
    if vals.shape != (c,) or vecs.shape != (c, c):
        raise ValueError(f"pca_color: expected eigenvalues ({c},) and eigenvectors ({c}, {c}) for {c} channels, got "
                         f"{vals.shape} and {vecs.shape}")
    if not std >= 0:
        raise ValueError(f"pca_color: expected std >= 0, got {std}")
    alpha = np.random.default_rng(rng).normal(0.0, std, size=(len(x), c))
    d = (alpha * vals) @ vecs.T                                      # (N, C)
    return (x + d[:, :, None, None]).astype(x.dtype)


# name -> what it does with its default settings, for make_augment and --augment
AUGMENTATIONS = {
    "flip": "mirror left-right with probability 0.5",
    "crop": "random crop of the image padded by 1/8 of its side (4 px at 32x32)",
    "affine": "rotation by up to 15 degrees and shear by up to 10 degrees, one bilinear warp",
    "color": "shift each channel by up to 0.1",
    "pca": "AlexNet's PCA colour augmentation, std 0.1, basis from the training images",
}


class Augment:
    """A chain of augmentations applied in the order given: ``aug(x, rng)`` -> new batch. Built by
    :func:`make_augment`; ``names`` lists them."""

    def __init__(self, names, steps):
        self.names = tuple(names)
        self._steps = steps

    def __call__(self, x, rng=None):
        g = np.random.default_rng(rng)
        for step in self._steps:
            x = step(x, g)
        return x

    def __repr__(self):
        return f"Augment({', '.join(self.names)})"


def parse_augment(spec) -> tuple:
    """The names of a comma-separated ``spec`` ("flip,crop") or of a list, checked against
    AUGMENTATIONS (ValueError naming the unknown ones)."""
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s) for s in spec]
    names = [s for s in names if s]
    bad = [s for s in names if s not in AUGMENTATIONS]
    if bad or not names:
        raise ValueError(f"make_augment: expected names among {', '.join(AUGMENTATIONS)}, got {spec!r}")
    return tuple(names)


def make_augment(spec, x_train=None) -> Augment:
    """An :class:`Augment` running the augmentations named in ``spec`` (see AUGMENTATIONS) with
    their default settings; "pca" computes its basis from ``x_train`` (N, C, H, W), which it
    then needs."""
    names = parse_augment(spec)
    steps = []
    for name in names:
        if name == "flip":
            steps.append(lambda x, g: random_flip(x, 0.5, g))
        elif name == "crop":
            steps.append(lambda x, g: random_crop(x, max(1, math.ceil(min(x.shape[2:]) / 8)), rng=g))
        elif name == "affine":
            steps.append(lambda x, g: random_affine(x, 15.0, 10.0, rng=g))
        elif name == "color":
            steps.append(lambda x, g: random_color_shift(x, 0.1, g))
        else:
            if x_train is None:
                raise ValueError("make_augment: 'pca' needs the training images (x_train) for its basis, got None")
            vals, vecs = pca_basis(x_train)
            steps.append(lambda x, g, vals=vals, vecs=vecs: pca_color(x, vals, vecs, 0.1, g))
    return Augment(names, steps)
