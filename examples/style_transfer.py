#!/usr/bin/env python
"""Neural style transfer (Gatys, Ecker & Bethge 2016) by gradient descent on the pixels.

The image x starts as the content image and moves to lower
    content_weight * content loss + style_weight * style loss,
the content loss comparing x's feature maps F (C, H*W) at one layer with the content image's,
mean((F_x - F_content)^2), and the style loss comparing Gram matrices G = F F^T / (H*W) (which
channels fire together, wherever they are) with the style image's at several layers,
sum over layers of ||G_x - G_style||^2 / C^2.

Features: a randomly initialised three-stage convolutional network (conv3x3-32, ReLU,
avgpool2, conv3x3-64, ReLU, avgpool2, conv3x3-128, ReLU; He-initialised, seed 0), not a trained
VGG: cnnops ships no pretrained weights, and random filters already make good texture statistics
(Ustyuzhaninov et al. 2017, "What does it take to generate natural textures?"). Style losses at
the three ReLUs, the content loss at the second. Content: "china.jpg" from scikit-learn's sample
images (area-averaged with cnnops.adaptive_avg_pool2d); style: a procedurally painted pattern of
coloured waves. There is no tape: the loss gradients at the three taps go into one explicit
backward pass through the layers, which adds them on the way down to the pixels.

Writes a PNG (content, style, result) and prints the losses before and after.

    python examples/style_transfer.py [--out style_transfer.png] [--steps 300] [--quick]"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import cnnops
from cnnops import nn

STYLE_TAPS = (1, 4, 7)   # the ReLU outputs of the three stages
CONTENT_TAP = 4


def feature_net(rng) -> nn.Sequential:
    """The fixed random feature extractor; (N, 3, H, W) -> feature maps at STYLE_TAPS."""
    conv = dict(padding=1, padding_mode="reflect", rng=rng)  # reflected borders: no dark frame to copy
    layers = nn.Sequential(
        nn.Conv2d(3, 32, 3, **conv), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(32, 64, 3, **conv), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(64, 128, 3, **conv), nn.ReLU())
    for m in layers:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu", rng=rng)
            m.bias.data[...] = 0.0
    return layers.freeze()  # only the pixels are optimised


def features(net, x, taps) -> dict:
    """{tap: output of layer tap} for one forward pass of x through net."""
    out = {}
    for i, layer in enumerate(net):
        x = layer(x)
        if i in taps:
            out[i] = x
    return out


def backward_from_taps(net, grads) -> np.ndarray:
    """d loss / d input, given {tap: d loss / d (output of layer tap)} from the last forward: one
    backward pass from the deepest tap down, adding each tap's gradient where its layer's output
    gradient arrives."""
    g = None
    for i in range(max(grads), -1, -1):
        if i in grads:
            g = grads[i] if g is None else g + grads[i]
        g = net[i].backward(g)
    return g


def gram(f) -> np.ndarray:
    """Gram matrices (N, C, C) = F F^T / (H*W) of feature maps f (N, C, H, W)."""
    n, c = f.shape[:2]
    m = f.reshape(n, c, -1)
    return m @ m.transpose(0, 2, 1) / m.shape[2]


def style_loss(f, target_gram) -> tuple:
    """(||G(f) - target||^2 / C^2, its gradient with respect to f):
    d/dF = 4 (G - A) F / (C^2 * H*W), G being symmetric."""
    n, c = f.shape[:2]
    m = f.reshape(n, c, -1)
    d = gram(f) - target_gram
    loss = float((d * d).sum()) / c ** 2
    grad = 4.0 * (d @ m) / (c ** 2 * m.shape[2])
    return loss, grad.reshape(f.shape).astype(f.dtype)


def content_loss(f, target) -> tuple:
    """(mean((f - target)^2), its gradient)."""
    d = f - target
    return float((d * d).mean()), (2.0 / d.size * d).astype(f.dtype)


def content_image(h, w) -> np.ndarray:
    """(1, 3, h, w) in [0, 1]: scikit-learn's china.jpg averaged down to h x w, or a drawn scene
    of shapes when the sample images cannot be read."""
    try:
        from sklearn.datasets import load_sample_image

        img = load_sample_image("china.jpg").astype(np.float32) / 255.0        # (427, 640, 3)
    except Exception:  # no scikit-learn or no image reader: a scene of its own
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        img = np.stack([0.3 + 0.5 * yy, 0.5 + 0.3 * np.sin(6 * xx), 0.8 - 0.5 * yy], axis=-1).astype(np.float32)
        img[(yy - 0.4) ** 2 + (xx - 0.5) ** 2 < 0.04] = (0.9, 0.2, 0.1)
        img[int(0.7 * h):, : w // 2] = (0.2, 0.6, 0.2)
    x = np.ascontiguousarray(img.transpose(2, 0, 1)[None])
    return np.ascontiguousarray(cnnops.adaptive_avg_pool2d(x, (h, w)))


def style_image(h, w, seed=1) -> np.ndarray:
    """(1, 3, h, w): bands of saturated colour bent into waves, with a fine hatching."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = 0.35 * xx + 3.0 * np.sin(yy / 5.0) + 2.0 * np.sin(xx / 9.0)
    band = (np.floor(phase / 3.0) % 4).astype(int)
    palette = np.array([[0.95, 0.8, 0.1], [0.1, 0.3, 0.85], [0.9, 0.15, 0.2], [0.05, 0.05, 0.1]], np.float32)
    img = palette[band]
    img *= (0.8 + 0.2 * np.sin(1.7 * (xx + yy)))[..., None]                      # hatching
    img += 0.03 * g.standard_normal(img.shape).astype(np.float32)
    return np.clip(img, 0, 1).transpose(2, 0, 1)[None].copy()


def transfer(net, content, style, steps, lr=0.02, content_weight=1.0, style_weight=1e3, log_every=0) -> tuple:
    """Adam on the pixels from the content image; returns (image, [(step, content loss,
    style loss), ...]) with the losses before the first and after the last step."""
    taps = set(STYLE_TAPS) | {CONTENT_TAP}
    target_c = features(net, content, taps)[CONTENT_TAP]
    target_s = {t: gram(f) for t, f in features(net, style, taps).items() if t in STYLE_TAPS}
    x = nn.Parameter(content.copy())
    opt = nn.Adam([x], lr=lr)
    history = []
    for step in range(steps + 1):
        f = features(net, x.data, taps)
        lc, gc = content_loss(f[CONTENT_TAP], target_c)
        grads = {CONTENT_TAP: np.float32(content_weight) * gc}
        ls = 0.0
        for t in STYLE_TAPS:
            v, g = style_loss(f[t], target_s[t])
            ls += v
            grads[t] = grads.get(t, 0) + np.float32(style_weight) * g
        if step in (0, steps) or (log_every and step % log_every == 0):
            history.append((step, lc, ls))
            if log_every:
                print(f"step {step:4d}  content loss {lc:.5f}  style loss {ls:.6f}")
        if step == steps:
            break
        x.grad = backward_from_taps(net, grads)
        opt.step()
        np.clip(x.data, 0.0, 1.0, out=x.data)
    return x.data, history


def save_png(path, content, style, result):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for ax, img, title in zip(axes, (content, style, result), ("content", "style", "result")):
        ax.imshow(np.clip(img[0].transpose(1, 2, 0), 0, 1), interpolation="nearest")
        ax.set_title(title)
        ax.axis("off")
    fig.suptitle("style transfer with the features of a random 3-stage CNN (Gram-matrix style loss + content loss)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="style_transfer.png", help="the PNG to write (default style_transfer.png)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--size", type=int, default=128, help="image height; the width is 3/2 of it (default 128)")
    p.add_argument("--lr", type=float, default=0.02, help="Adam's step on the pixels (default 0.02)")
    p.add_argument("--style-weight", type=float, default=1e3)
    p.add_argument("--quick", action="store_true", help="a 48x72 image, 60 steps of 0.05")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.steps, args.lr = 48, 60, 0.05
    h, w = args.size, args.size * 3 // 2
    net = feature_net(np.random.default_rng(0))
    content, style = content_image(h, w), style_image(h, w)
    t0 = time.perf_counter()
    result, hist = transfer(net, content, style, args.steps, lr=args.lr, style_weight=args.style_weight,
                            log_every=0 if args.quick else 50)
    (_, _, s0), (_, c1, s1) = hist[0], hist[-1]
    # for scale: the content loss of the style image itself
    taps = {CONTENT_TAP}
    c_style = content_loss(features(net, style, taps)[CONTENT_TAP], features(net, content, taps)[CONTENT_TAP])[0]
    print(f"{h}x{w} image, {args.steps} steps in {time.perf_counter() - t0:.1f} s")
    print(f"style loss {s0:.5f} -> {s1:.5f} ({s0 / max(s1, 1e-30):.0f}x lower); content loss 0 -> {c1:.5f} "
          f"(the style image's own: {c_style:.5f})")
    save_png(args.out, content, style, result)
    print(f"figure written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
