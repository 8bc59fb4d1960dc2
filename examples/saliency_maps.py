#!/usr/bin/env python
"""Inside a trained LeNet-5: saliency maps and class-model images from the gradient with respect to
the input pixels (Simonyan, Vedaldi & Zisserman 2014, "Deep inside convolutional networks").

The network is LeNet-5 trained on the scikit-learn digits (32x32). With no tape, the gradient of a
class score S_c (the logit before the softmax) with respect to the image is ``model.backward`` of
a one-hot gradient at the output, the same backward pass training uses, carried one layer further
down to the pixels.

- Saliency map of an image I of class c: |dS_c/dI|, how much each pixel moves the score of the
  true class. On a trained network it lies on and around the digit's strokes.
- Class model of class c: the image that maximises S_c(I) - lam * ||I||^2, by gradient ascent
  from a blank image (plain steps on the pixels, kept in [0, 1]); what the network has come to
  regard as a prototypical "c".

Writes a PNG with a test digit of each class, its saliency map and the class model (matplotlib),
and prints how much of the saliency falls on the strokes and how confidently the network
classifies its own class models.

    python examples/saliency_maps.py [--out saliency_maps.png] [--weights lenet5.npz] [--quick]"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from cnnops import data, nn, train


def class_scores_gradient(model, x, classes) -> tuple:
    """(scores (N, K), d S_{classes[i]} / d x[i] (N, C, H, W)) for a batch: one forward, then
    backward of the one-hot gradient that picks each image's class score."""
    scores = model(x)
    onehot = np.zeros_like(scores)
    onehot[np.arange(len(x)), classes] = 1.0
    return scores, model.backward(onehot)


def saliency(model, x, classes) -> np.ndarray:
    """Saliency maps (N, H, W): the largest |d S_c / d pixel| over the channels."""
    _, g = class_scores_gradient(model, x, classes)
    return np.abs(g).max(axis=1)


def class_model(model, classes, shape, steps=200, lr=0.1, l2=0.01) -> np.ndarray:
    """Images (len(classes), *shape) maximising S_c(I) - l2 * ||I||^2 by ``steps`` gradient
    ascent steps of size ``lr`` from zeros, clipped to [0, 1] (the range of the training
    images) after each step."""
    img = np.zeros((len(classes),) + tuple(shape), np.float32)
    for _ in range(steps):
        _, g = class_scores_gradient(model, img, classes)
        img += np.float32(lr) * (g - np.float32(2 * l2) * img)
        np.clip(img, 0.0, 1.0, out=img)
    return img


def stroke_share(sal, images, threshold=0.3) -> tuple:
    """(fraction of the saliency on stroke pixels (value > threshold), fraction of the pixels
    that are strokes), over the batch."""
    strokes = images.max(axis=1) > threshold
    return float(sal[strokes].sum() / sal.sum()), float(strokes.mean())


def save_png(path, images, sal, models, labels):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(labels)
    fig, axes = plt.subplots(3, k, figsize=(1.3 * k, 4.4))
    for j in range(k):
        for row, (img, cmap) in enumerate(((images[j, 0], "gray"), (sal[j], "hot"), (models[j, 0], "gray"))):
            ax = axes[row, j]
            ax.imshow(img, cmap=cmap, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, j].set_title(str(labels[j]))
    for row, name in enumerate(("test image", "saliency", "class model")):
        axes[row, 0].set_ylabel(name)
    fig.suptitle("LeNet-5 on the digits: saliency |dS_c/dI| and class models argmax S_c(I) - lam ||I||^2")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="saliency_maps.png", help="the PNG to write (default saliency_maps.png)")
    p.add_argument("--weights", default=None, help="LeNet-5 weights (.npz, e.g. from train_lenet5.py --save) "
                                                   "instead of training here")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--steps", type=int, default=200, help="gradient ascent steps of the class models")
    p.add_argument("--quick", action="store_true", help="5 training epochs and 100 ascent steps (~93%% accuracy)")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.steps = 5, 100

    ds = data.load_digits(size=32, seed=0)
    model = nn.models.lenet5(rng=np.random.default_rng(0))
    t0 = time.perf_counter()
    if args.weights:
        model.load(args.weights)
    else:
        train.fit(model, ds, epochs=args.epochs, batch_size=32, lr=2e-3, schedule="cosine", seed=0, shift=2, log=None)
    _, acc, _ = train.evaluate(model, ds.x_test, ds.y_test)
    print(f"LeNet-5 {'loaded' if args.weights else f'trained for {args.epochs} epochs'} in "
          f"{time.perf_counter() - t0:.1f} s: test accuracy {100 * acc:.1f}%")
    model.eval()

    labels = np.arange(10)
    first = np.array([np.flatnonzero(ds.y_test == c)[0] for c in labels])
    images = ds.x_test[first]
    sal = saliency(model, images, labels)
    on, area = stroke_share(sal, ds.x_test[first])
    print(f"saliency maps: {100 * on:.0f}% of the gradient magnitude lies on the strokes, which cover "
          f"{100 * area:.0f}% of the pixels")

    t0 = time.perf_counter()
    models = class_model(model, labels, images.shape[1:], steps=args.steps)
    prob = nn.softmax(model(models), axis=1)
    pred = prob.argmax(axis=1)
    blank = nn.softmax(model(np.zeros_like(models[:1])), axis=1)[0].max()
    print(f"class models ({args.steps} ascent steps, {time.perf_counter() - t0:.1f} s): classified as their class "
          f"{int((pred == labels).sum())}/10, softmax probability of the class from {prob[labels, labels].min():.3f} "
          f"to {prob[labels, labels].max():.3f} (the blank image they start from: {blank:.2f} at most)")
    save_png(args.out, images, sal, models, labels)
    print(f"figure written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
