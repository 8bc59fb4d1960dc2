#!/usr/bin/env python
"""Fractional max pooling (Graham, 2014) against ordinary 2x2 max pooling, on the digits.

Two networks identical except for their pooling layers:

    conv3x3-16, ReLU, POOL, conv3x3-32, ReLU, POOL, adaptive max pool to 4x4, flatten, fc10

with POOL = MaxPool2d(2) (32 -> 16 -> 8) or FractionalMaxPool2d(2, output_ratio=1/sqrt(2))
(32 -> 22 -> 15): overlapping 2x2 windows at pseudo-random positions that shrink the image by
a non-integer factor, and change on every forward pass, a regulariser akin to data augmentation.
Both train with the same optimizer, seed and epochs; the script prints test accuracy and time.

    python examples/fractional_pooling.py [--epochs 10] [--quick]"""
from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from cnnops import data, nn, train


def network(pool: str, rng) -> nn.Sequential:
    def make_pool():
        if pool == "max":
            return nn.MaxPool2d(2)
        return nn.FractionalMaxPool2d(2, output_ratio=1 / math.sqrt(2))

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, rng=rng), nn.ReLU(), make_pool(),
        nn.Conv2d(16, 32, 3, padding=1, rng=rng), nn.ReLU(), make_pool(),
        nn.AdaptiveMaxPool2d(4), nn.Flatten(), nn.Linear(32 * 16, 10, rng=rng))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="800 training images, 3 epochs (~80%% and ~70%%)")
    args = p.parse_args(argv)
    ds = data.load_digits(size=32)
    if args.quick:  # shorter, both networks still learning
        ds, args.epochs = ds.subset(800, None), 3
    nn.init.manual_seed(0)
    for pool in ("max", "fractional"):
        model = network(pool, np.random.default_rng(0))
        shapes, x = [], ds.x_test[:1]
        for layer in model:
            x = layer(x)
            if isinstance(layer, (nn.MaxPool2d, nn.FractionalMaxPool2d)):
                shapes.append("x".join(map(str, x.shape[2:])))
        t0 = time.perf_counter()
        h = train.fit(model, ds, epochs=args.epochs, batch_size=32, lr=2e-3, schedule="cosine", seed=0, log=None)
        dt = time.perf_counter() - t0
        print(f"{pool:10s} pooling (maps {' -> '.join(['32x32'] + shapes)}): test accuracy "
              f"{100 * h.epochs[-1].test_acc:.2f}%, train loss {h.epochs[-1].train_loss:.4f}, {dt:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
