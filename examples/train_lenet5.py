#!/usr/bin/env python
"""Train LeNet-5 with cnnops.nn: on the scikit-learn digits (default) or on MNIST IDX files.

    python examples/train_lenet5.py                       # digits, 25 epochs, ~98% test accuracy
    python examples/train_lenet5.py --mnist DIR           # MNIST/Fashion-MNIST IDX files in DIR (with only
                                                          # the t10k files: split 8,000 / 2,000)
    python examples/train_lenet5.py --plot curves.png --save lenet5.npz

The loop itself is cnnops.train.fit (forward, cross-entropy, model.backward, optimizer step);
this script shows the pieces around it: a dataset, a model builder, evaluation and a confusion
matrix, saving and re-loading the weights."""
from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

from cnnops import data, nn, train


def load(args) -> data.Dataset:
    if args.mnist is None:
        return data.load_digits(size=32, seed=args.seed)
    with warnings.catch_warnings():  # the note is printed instead
        warnings.simplefilter("ignore", UserWarning)
        ds = data.load_mnist(args.mnist, seed=args.seed)
    if ds.note:
        print(f"note: {ds.note}")
    return ds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mnist", default=None, metavar="DIR", help="folder with MNIST-format IDX files")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default=None, help="save loss/accuracy curves here")
    p.add_argument("--save", default=None, help="save the weights here (.npz)")
    p.add_argument("--quick", action="store_true",
                   help="5 epochs instead of 25 (and 4,000 training images of MNIST): ~93%% on the digits")
    args = p.parse_args(argv)

    ds = load(args)
    if args.quick:  # shorter, still learning: ~93% test accuracy on the digits in about a second
        ds, args.epochs = ds.subset(4000, 2000), 5
    side = ds.input_shape[1]
    model = nn.models.lenet5(num_classes=ds.num_classes, in_channels=ds.input_shape[0], input_size=side,
                             rng=np.random.default_rng(args.seed))
    print(f"LeNet-5, {model.num_parameters():,} parameters; {ds}")
    t0 = time.perf_counter()
    hist = train.fit(model, ds, epochs=args.epochs, batch_size=32, optimizer="adam", lr=2e-3, schedule="cosine",
                     seed=args.seed, shift=2 if ds.name == "digits" else 0)
    print(f"trained in {time.perf_counter() - t0:.1f} s")
    print(train.format_confusion(train.confusion_matrix(ds.y_test, hist.test_pred, ds.num_classes), ds.classes))

    if args.save:
        model.save(args.save)
        again = nn.models.lenet5(num_classes=ds.num_classes, in_channels=ds.input_shape[0], input_size=side)
        again.load(args.save)
        _, acc, _ = train.evaluate(again, ds.x_test, ds.y_test)
        print(f"weights saved to {args.save}; re-loaded model: test accuracy {100 * acc:.2f}%")
    if args.plot:
        train.plot_curves(hist, args.plot, f"LeNet-5 on {ds.name}")
        print(f"curves saved to {args.plot}")
    print(f"final test accuracy {100 * hist.epochs[-1].test_acc:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
