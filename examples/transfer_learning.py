#!/usr/bin/env python
"""Transfer learning with frozen layers: features learned on digits 0-4 reused for digits 5-9.

1. Train LeNet-5 on the digits 0..4 (all their training images).
2. Build a fresh LeNet-5 for the five new classes 5..9, copy the two convolution layers (the
   feature extractor) from step 1 and freeze them (``Parameter.requires_grad = False`` via
   ``Module.freeze()``): the optimizer skips them and backward computes no weight gradient.
3. Train only the fully connected head on a *small* labelled set of 5..9 (a few images per
   class), and compare with the same network trained from scratch on that small set.

    python examples/transfer_learning.py [--per-class 10] [--quick]"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from cnnops import data, nn, train


def classes_subset(ds: data.Dataset, classes, per_class=None, seed=0) -> data.Dataset:
    """The images of `classes` relabelled 0..len-1; at most `per_class` training images each."""
    rng = np.random.default_rng(seed)
    tr = []
    for i, c in enumerate(classes):
        idx = np.flatnonzero(ds.y_train == c)
        tr.append(idx if per_class is None else rng.choice(idx, per_class, replace=False))
    tr = np.sort(np.concatenate(tr))
    te = np.flatnonzero(np.isin(ds.y_test, classes))
    remap = np.full(10, -1, np.int64)
    remap[list(classes)] = np.arange(len(classes))
    return data.Dataset(f"digits {classes[0]}-{classes[-1]}", ds.x_train[tr], remap[ds.y_train[tr]], ds.x_test[te],
                        remap[ds.y_test[te]], [str(c) for c in classes])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-class", type=int, default=10, help="labelled training images per new class")
    p.add_argument("--quick", action="store_true", help="fewer epochs (a smoke run)")
    args = p.parse_args(argv)
    pre_epochs, ft_epochs = (2, 3) if args.quick else (15, 40)

    digits = data.load_digits(size=32)
    old = classes_subset(digits, (0, 1, 2, 3, 4))
    new = classes_subset(digits, (5, 6, 7, 8, 9), per_class=args.per_class)
    print(f"pre-training on {old}")
    base = nn.models.lenet5(num_classes=5, rng=np.random.default_rng(0))
    h = train.fit(base, old, epochs=pre_epochs, batch_size=32, lr=2e-3, schedule="cosine", shift=2, log=None)
    print(f"  digits 0-4 test accuracy {100 * h.epochs[-1].test_acc:.1f}%")

    # the new network: copy the convolutions (indices 0 and 3 of the Sequential), freeze them
    model = nn.models.lenet5(num_classes=5, rng=np.random.default_rng(1))
    features = {k: v for k, v in base.state_dict().items() if k.split(".")[0] in ("0", "3")}
    model.load_state_dict(features, strict=False)
    model[0].freeze()
    model[3].freeze()
    frozen = {k: v.copy() for k, v in features.items()}
    n_train = model.num_parameters() - sum(p.data.size for p in model.parameters() if not p.requires_grad)
    print(f"fine-tuning on {new} ({args.per_class} images per class): {n_train:,} of "
          f"{model.num_parameters():,} parameters trainable")
    ht = train.fit(model, new, epochs=ft_epochs, batch_size=10, lr=2e-3, shift=2, log=None)
    for k, v in model.state_dict().items():
        if k in frozen:
            assert np.array_equal(v, frozen[k]), f"frozen parameter {k} changed"

    scratch = nn.models.lenet5(num_classes=5, rng=np.random.default_rng(1))
    hs = train.fit(scratch, new, epochs=ft_epochs, batch_size=10, lr=2e-3, shift=2, log=None)
    tl, sc = 100 * ht.epochs[-1].test_acc, 100 * hs.epochs[-1].test_acc
    print(f"digits 5-9 test accuracy: transferred frozen features {tl:.1f}%, from scratch {sc:.1f}%")
    print("(the frozen convolutions were checked unchanged)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
