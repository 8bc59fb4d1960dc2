#!/usr/bin/env python
"""Edge detection with Sobel and Scharr filters, as a 2-output-channel cnnops.conv2d.

A convolution layer with fixed weights is a filter bank. Stacking the horizontal and vertical
derivative kernels as the two output channels of one weight tensor (2, 1, 3, 3) gives both
gradients in one call; the edge strength is sqrt(gx^2 + gy^2) and the direction atan2(gy, gx).
Note that conv2d computes a cross-correlation (as every deep-learning library does), so
the kernels are written the way they are applied, without flipping.

    python examples/edge_detection.py [--out edges.png] [--quick]

The script checks the conv2d result against a direct NumPy loop, checks that a vertical edge
excites only the x-derivative, and compares Sobel and Scharr on rotated edges: Scharr's
weights (3, 10, 3) make the gradient direction far more accurate away from the axes."""
from __future__ import annotations

import argparse
import sys

import numpy as np

import cnnops

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
SCHARR_X = np.array([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]], np.float32)


def filter_bank(kx: np.ndarray) -> np.ndarray:
    """(2, 1, 3, 3): channel 0 the x-derivative kernel, channel 1 its transpose (y-derivative)."""
    return np.stack([kx, kx.T])[:, None].copy()


def gradients(images: np.ndarray, kx: np.ndarray) -> np.ndarray:
    """images (N, 1, H, W) -> (N, 2, H, W) gradients, borders replicated ('same' size)."""
    return cnnops.conv2d(images, filter_bank(kx), padding=1, padding_mode="replicate")


def reference(images: np.ndarray, kx: np.ndarray) -> np.ndarray:
    """The same with explicit loops over the 3x3 window (float64)."""
    w = filter_bank(kx).astype(np.float64)
    x = np.pad(images.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    n, _, h, wd = images.shape
    out = np.zeros((n, 2, h, wd))
    for k in range(2):
        for r in range(3):
            for s in range(3):
                out[:, k] += w[k, 0, r, s] * x[:, 0, r:r + h, s:s + wd]
    return out


def rotated_edge(angle: float, size: int) -> np.ndarray:
    """A soft straight edge through the centre at `angle` (radians, direction of the gradient)."""
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    d = xx * np.cos(angle) + yy * np.sin(angle)
    return (1 / (1 + np.exp(-d / 1.5))).astype(np.float32)


def synthetic_scene(size: int) -> np.ndarray:
    """A bright square and a disc on a dark background, with a little noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.zeros((size, size), np.float32)
    q = size // 4
    img[q:2 * q, q:2 * q] = 1.0
    img[((yy - 2.6 * q) ** 2 + (xx - 2.6 * q) ** 2) < (0.8 * q) ** 2] = 0.7
    return img + 0.03 * rng.standard_normal(img.shape).astype(np.float32)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="save a figure of the edges here (png)")
    p.add_argument("--quick", action="store_true", help="smaller images, no figure")
    args = p.parse_args(argv)
    size = 32 if args.quick else 128

    scene = synthetic_scene(size)[None, None]
    for name, kx in (("Sobel", SOBEL_X), ("Scharr", SCHARR_X)):
        g = gradients(scene, kx)
        err = np.abs(g - reference(scene, kx)).max() / np.abs(reference(scene, kx)).max()
        print(f"{name:6s}: conv2d vs loop reference, max relative error {err:.1e}")
        assert err < 1e-5

    # a vertical edge (intensity changes along x) excites only the x channel
    vert = rotated_edge(0.0, 33)[None, None]
    g = gradients(vert, SOBEL_X)
    print(f"vertical edge: |gx| max {np.abs(g[0, 0]).max():.3f}, |gy| max {np.abs(g[0, 1]).max():.1e}")
    assert np.abs(g[0, 1]).max() < 1e-5 < np.abs(g[0, 0]).max()

    # direction accuracy on rotated edges, measured at the centre pixel
    angles = np.deg2rad(np.arange(0, 90, 7.5))
    edges = np.stack([rotated_edge(a, 33) for a in angles])[:, None]
    print("angle   Sobel error  Scharr error (degrees)")
    worst = {}
    for name, kx in (("Sobel", SOBEL_X), ("Scharr", SCHARR_X)):
        g = gradients(edges, kx)[:, :, 16, 16]
        est = np.arctan2(g[:, 1], g[:, 0])
        worst[name] = np.rad2deg(np.abs(est - angles))
    for a, es, ec in zip(np.rad2deg(angles), worst["Sobel"], worst["Scharr"]):
        print(f"{a:5.1f}   {es:10.3f}   {ec:10.3f}")
    print(f"worst direction error: Sobel {worst['Sobel'].max():.2f} deg, Scharr {worst['Scharr'].max():.2f} deg")

    if args.out and not args.quick:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 4, figsize=(14, 4))
        gs = gradients(scene, SOBEL_X)[0]
        gc = gradients(scene, SCHARR_X)[0]
        for ax, im, title in zip(axes, [scene[0, 0], gs[0], np.hypot(gs[0], gs[1]), np.hypot(gc[0], gc[1])],
                                 ["image", "Sobel gx", "Sobel magnitude", "Scharr magnitude"]):
            ax.imshow(im, cmap="gray")
            ax.set_title(title)
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(args.out, dpi=90)
        print(f"figure saved to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
