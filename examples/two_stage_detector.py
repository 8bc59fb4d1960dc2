#!/usr/bin/env python
"""A two-stage (Faster R-CNN style) detector on the YOLO example's synthetic squares: a small
backbone, a region proposal network over anchors decoded with box_decode + NMS, RoI Align and a
box head; compared with the one-stage YOLO example trained on the same data.

Images are 32x32 with one to three bright squares of side 4 to 14 (examples/yolo_detector.py's
scenes). The backbone reduces them to (32, 8, 8) features (stride 4).

- RPN: at each of the 8x8 locations, two anchors (``cnnops.anchors``, sides 6 and 12) each get an
  objectness logit and deltas (dx, dy, dw, dh). Anchors with IoU >= 0.5 with a box (and each box's
  best anchor) are positives with targets ``cnnops.box_encode(box, anchor)``, IoU < 0.3 negatives;
  loss: binary cross-entropy over the labelled anchors plus the squared error of the positives'
  deltas. Proposals: ``cnnops.box_decode`` of every anchor, clipped, the 50 best by objectness,
  ``cnnops.nms`` at 0.7, at most 16 per image (during training the true boxes are added).
- Second stage: ``cnnops.nn.RoIAlign`` pools each proposal to 32x4x4 (spatial_scale 1/4,
  sampling_ratio 2, aligned); a two-layer head gives background/object logits and refined deltas
  (weights (10, 10, 5, 5) as Faster R-CNN's box head). Proposals with IoU >= 0.5 are objects;
  loss: softmax cross-entropy plus the squared error of the objects' deltas.
- The gradient flows back by hand, no tape: head -> RoIAlign.backward -> features, plus the RPN's
  gradient -> features, then the backbone.

Decoding: object probability > 0.5, refined boxes from box_decode, NMS at 0.4. Reported:
precision and recall at IoU >= 0.5 on held-out images, then the YOLO example's on the same data.

    python examples/two_stage_detector.py [--epochs 12] [--train 1000] [--quick] [--no-compare]"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

import cnnops
from cnnops import nn

SIZE, STRIDE = 32, 4
FEAT = SIZE // STRIDE
ANCHORS = cnnops.anchors([(FEAT, FEAT)], [(STRIDE, STRIDE)], sizes=((6, 12),), aspect_ratios=((1.0,),))
A = 2                                  # anchors per location; ANCHORS is (FEAT * FEAT * A, 4)
HEAD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
POOL = 4


def load_yolo():
    """The one-stage example next to this file (its scenes, metric and training)."""
    path = Path(__file__).resolve().parent / "yolo_detector.py"
    spec = importlib.util.spec_from_file_location("cnnops_example_yolo_detector", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build(rng) -> tuple:
    backbone = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1, rng=rng), nn.ReLU())
    rpn = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, rng=rng), nn.ReLU(), nn.Conv2d(32, A * 5, 1, rng=rng))
    roi = nn.RoIAlign((POOL, POOL), spatial_scale=1.0 / STRIDE, sampling_ratio=2, aligned=True)
    head = nn.Sequential(nn.Flatten(), nn.Linear(32 * POOL * POOL, 128, rng=rng), nn.ReLU(),
                         nn.Linear(128, 2 + 4, rng=rng))
    backbone.needs_input_grad = False
    return backbone, rpn, roi, head


def rpn_split(out):
    """(N, A*5, F, F) -> objectness (N, F*F*A) and deltas (N, F*F*A, 4) in ANCHORS' order."""
    n = out.shape[0]
    o = out.reshape(n, A, 5, FEAT, FEAT).transpose(0, 3, 4, 1, 2).reshape(n, FEAT * FEAT * A, 5)
    return o[..., 0], o[..., 1:]


def rpn_merge(g_obj, g_delta):
    """The inverse layout of rpn_split, for the gradient."""
    n = g_obj.shape[0]
    g = np.concatenate([g_obj[..., None], g_delta], axis=-1).reshape(n, FEAT, FEAT, A, 5)
    return np.ascontiguousarray(g.transpose(0, 3, 4, 1, 2).reshape(n, A * 5, FEAT, FEAT))


def rpn_targets(gt_list) -> tuple:
    """(labels (N, M): 1, 0 or -1 to ignore; delta targets (N, M, 4)) for the M anchors."""
    n, m = len(gt_list), len(ANCHORS)
    labels = np.full((n, m), -1, np.float32)
    deltas = np.zeros((n, m, 4), np.float32)
    for i, gt in enumerate(gt_list):
        if len(gt) == 0:
            labels[i] = 0
            continue
        iou = np.asarray(cnnops.box_iou(ANCHORS, gt))
        best = iou.argmax(1)
        top = iou.max(1)
        labels[i][top < 0.3] = 0
        labels[i][top >= 0.5] = 1
        labels[i][iou.argmax(0)] = 1
        deltas[i] = cnnops.box_encode(gt[best], ANCHORS)
    return labels, deltas


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def rpn_loss(obj, delta, labels, delta_t, box_weight=2.0) -> tuple:
    """Loss and gradients (objectness, deltas) of the RPN."""
    lab = labels >= 0
    cnt = max(int(lab.sum()), 1)
    y = np.clip(labels, 0, 1)
    bce = (np.maximum(obj, 0) - obj * y + np.log1p(np.exp(-np.abs(obj)))) * lab
    g_obj = (sigmoid(obj) - y) * lab / cnt
    pos = (labels == 1)[..., None]
    npos = max(int(pos.sum()), 1)
    diff = (delta - delta_t) * pos
    g_delta = 2.0 * box_weight * diff / npos
    return float(bce.sum() / cnt + box_weight * (diff ** 2).sum() / npos), g_obj, g_delta


def proposals(obj, delta, gt_list=None, pre=50, post=16) -> list:
    """Per image, up to `post` (k, 4) proposals: decoded anchors, clipped, the `pre` best, NMS 0.7;
    plus the true boxes when gt_list is given (training)."""
    out = []
    for i in range(obj.shape[0]):
        boxes = np.clip(np.asarray(cnnops.box_decode(delta[i].astype(np.float32), ANCHORS)), 0, SIZE)
        scores = obj[i].astype(np.float32)
        big = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
        boxes, scores = boxes[big], scores[big]
        order = np.argsort(-scores, kind="stable")[:pre]
        boxes, scores = boxes[order], scores[order]
        keep = np.asarray(cnnops.nms(boxes, scores, 0.7))[:post]
        p = boxes[keep]
        if gt_list is not None and len(gt_list[i]):
            p = np.concatenate([p, gt_list[i]])
        out.append(np.ascontiguousarray(p, np.float32))
    return out


def head_targets(props, gt_list) -> tuple:
    """(classes (R,) 1 = object, delta targets (R, 4)) of the concatenated proposals."""
    cls, deltas = [], []
    for p, gt in zip(props, gt_list):
        c = np.zeros(len(p), np.int64)
        d = np.zeros((len(p), 4), np.float32)
        if len(gt) and len(p):
            iou = np.asarray(cnnops.box_iou(p, gt))
            c[iou.max(1) >= 0.5] = 1
            d = np.asarray(cnnops.box_encode(gt[iou.argmax(1)], p, HEAD_WEIGHTS))
        cls.append(c)
        deltas.append(d)
    return np.concatenate(cls), np.concatenate(deltas)


def head_loss(out, cls, delta_t, box_weight=1.0) -> tuple:
    """Softmax cross-entropy over (background, object) plus the squared error of the objects'
    deltas; loss and gradient with respect to the head's output (R, 6)."""
    r = max(len(cls), 1)
    logits = out[:, :2]
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    ce = -np.log(p[np.arange(len(cls)), cls] + 1e-12).mean() if len(cls) else 0.0
    g = np.zeros_like(out)
    g[:, :2] = p
    g[np.arange(len(cls)), cls] -= 1
    g[:, :2] /= r
    fg = (cls == 1)[:, None]
    nfg = max(int(fg.sum()), 1)
    diff = (out[:, 2:] - delta_t) * fg
    g[:, 2:] = 2.0 * box_weight * diff / nfg
    return float(ce + box_weight * (diff ** 2).sum() / nfg), g


def detect(model, x, score_threshold=0.5, iou_threshold=0.4) -> list:
    """Per image, (boxes (k, 4), scores (k,))."""
    backbone, rpn, roi, head = model
    feat = backbone(x)
    obj, delta = rpn_split(rpn(feat))
    props = proposals(obj, delta)
    out = head(roi(feat, props)) if sum(len(p) for p in props) else np.zeros((0, 6), np.float32)
    results, start = [], 0
    for p in props:
        o = out[start:start + len(p)]
        start += len(p)
        z = o[:, :2] - o[:, :2].max(1, keepdims=True)
        score = (np.exp(z[:, 1]) / np.exp(z).sum(1)).astype(np.float32)
        boxes = np.clip(np.asarray(cnnops.box_decode(o[:, 2:].astype(np.float32), p, HEAD_WEIGHTS)), 0, SIZE)
        keep = score > score_threshold
        boxes, score = np.ascontiguousarray(boxes[keep]), score[keep]
        if len(score):
            idx = np.asarray(cnnops.nms(boxes, score, iou_threshold))
            boxes, score = boxes[idx], score[idx]
        results.append((boxes, score))
    return results


def train_step(model, opt, x, gt) -> float:
    backbone, rpn, roi, head = model
    feat = backbone(x)
    obj, delta = rpn_split(rpn(feat))
    labels, delta_t = rpn_targets(gt)
    l_rpn, g_obj, g_delta = rpn_loss(obj, delta, labels, delta_t)
    props = proposals(obj, delta, gt)
    cls, head_t = head_targets(props, gt)
    out = head(roi(feat, props))
    l_head, g_out = head_loss(out, cls, head_t)
    opt.zero_grad()
    g_feat = roi.backward(head.backward(g_out.astype(out.dtype)))
    g_feat = g_feat + rpn.backward(rpn_merge(g_obj, g_delta).astype(feat.dtype))
    backbone.backward(g_feat)
    opt.step()
    return l_rpn + l_head


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--train", type=int, default=1000, help="training images")
    p.add_argument("--quick", action="store_true", help="64 images, 1 epoch, no comparison")
    p.add_argument("--no-compare", action="store_true", help="skip training the YOLO example for comparison")
    args = p.parse_args(argv)
    if args.quick:
        args.train, args.epochs = 64, 1
    yolo = load_yolo()
    xtr, btr = yolo.make_scenes(args.train, seed=1)
    xte, bte = yolo.make_scenes(300 if not args.quick else 32, seed=2)
    model = build(np.random.default_rng(0))
    params = [q for m in model for q in m.parameters()]
    opt = nn.Adam(params, lr=2e-3)
    sched = nn.CosineAnnealingLR(opt, T_max=args.epochs)
    rng = np.random.default_rng(0)
    print(f"two-stage detector, {sum(m.num_parameters() for m in model):,} parameters; {args.train} training "
          f"images, {sum(len(b) for b in btr)} boxes; {len(ANCHORS)} anchors on a {FEAT}x{FEAT} grid")
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        for m in model:
            m.train()
        order = rng.permutation(len(xtr))
        losses = [train_step(model, opt, xtr[b], [btr[i] for i in b])
                  for b in (order[s:s + 32] for s in range(0, len(order), 32))]
        sched.step()
        if epoch == args.epochs or epoch % 4 == 0:
            for m in model:
                m.eval()
            prec, rec = yolo.precision_recall(detect(model, xte), bte)
            print(f"epoch {epoch:3d}  loss {np.mean(losses):.4f}  test precision {prec:.3f} recall {rec:.3f}")
    print(f"trained in {time.perf_counter() - t0:.1f} s")
    for m in model:
        m.eval()
    dets = detect(model, xte)
    prec, rec = yolo.precision_recall(dets, bte)
    print(f"two-stage: {sum(len(d[1]) for d in dets)} detections for {sum(len(b) for b in bte)} boxes, "
          f"precision {prec:.3f}, recall {rec:.3f} (IoU >= 0.5)")
    if not (args.no_compare or args.quick):
        print("\none-stage YOLO example on the same data:")
        yolo.main(["--train", str(args.train)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
