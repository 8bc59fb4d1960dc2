"""The examples/ scripts, each run shortened (--quick) in this process, plus checks of the
pieces they define themselves (the YOLO loss gradient, the edge filters, the class subsets)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"cnnops_example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name,check", [
    ("train_lenet5", "final test accuracy"),
    ("edge_detection", "worst direction error"),
    ("transfer_learning", "frozen convolutions were checked unchanged"),
    ("fcn_segmentation", "mIoU"),
    ("yolo_detector", "with NMS"),
    ("two_stage_detector", "two-stage:"),
    ("fractional_pooling", "fractional pooling (maps 32x32 -> 22x22 -> 15x15)"),
])
def test_example_quick_run(name, check, capsys):
    assert load(name).main(["--quick"]) == 0
    assert check in capsys.readouterr().out


def test_every_example_is_tested():
    tested = {"train_lenet5", "edge_detection", "transfer_learning", "fcn_segmentation", "yolo_detector",
              "fractional_pooling", "two_stage_detector"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


def test_train_lenet5_saves_and_reloads(tmp_path, capsys):
    w = tmp_path / "w.npz"
    assert load("train_lenet5").main(["--quick", "--save", str(w), "--plot", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    final = out.split("final test accuracy ")[1].split("%")[0]
    assert f"re-loaded model: test accuracy {final}%" in out and (tmp_path / "c.png").is_file()


def test_yolo_loss_gradient_finite_differences():
    yolo = load("yolo_detector")
    rng = np.random.default_rng(0)
    _, boxes = yolo.make_scenes(3, seed=5)
    obj, box = yolo.targets(boxes)
    assert obj.sum() == sum(len(b) for b in boxes)  # apart squares: one (cell, anchor) each
    out = rng.standard_normal((3, yolo.A * 5, yolo.GRID, yolo.GRID))
    loss, grad = yolo.loss_and_grad(out, obj, box)
    eps = 1e-6
    for idx in [tuple(rng.integers(0, s) for s in out.shape) for _ in range(25)] + \
               [(i, a * 5 + c, k, j) for i, a, k, j in zip(*np.nonzero(obj)) for c in range(5)]:
        plus, minus = out.copy(), out.copy()
        plus[idx] += eps
        minus[idx] -= eps
        num = (yolo.loss_and_grad(plus, obj, box)[0] - yolo.loss_and_grad(minus, obj, box)[0]) / (2 * eps)
        assert grad[idx] == pytest.approx(num, rel=1e-5, abs=1e-8)


def test_yolo_targets_decode_round_trip():
    """Logits built from the targets decode (with NMS) to the ground-truth boxes."""
    yolo = load("yolo_detector")
    _, boxes = yolo.make_scenes(4, seed=9)
    obj, box = yolo.targets(boxes)
    n = len(boxes)
    out = np.zeros((n, yolo.A, 5, yolo.GRID, yolo.GRID), np.float32)
    out[:, :, 0] = np.where(obj > 0, 8.0, -8.0)
    t = np.clip(box[:, :, 0:2], 1e-4, 1 - 1e-4)
    out[:, :, 1:3] = np.log(t / (1 - t))
    out[:, :, 3:5] = box[:, :, 2:4]
    dets = yolo.decode(out.reshape(n, -1, yolo.GRID, yolo.GRID))
    for (got, _), want in zip(dets, boxes):
        order = np.lexsort(got.T[::-1]), np.lexsort(want.T[::-1])
        np.testing.assert_allclose(got[order[0]], want[order[1]], atol=1e-2)
    assert yolo.precision_recall(dets, boxes) == (1.0, 1.0)


def test_edge_filters_match_loops_and_orientation():
    edge = load("edge_detection")
    img = edge.synthetic_scene(24)[None, None]
    for kx in (edge.SOBEL_X, edge.SCHARR_X):
        np.testing.assert_allclose(edge.gradients(img, kx), edge.reference(img, kx), rtol=1e-5, atol=1e-4)
    horiz = edge.rotated_edge(np.pi / 2, 17)[None, None]  # intensity changes along y
    g = edge.gradients(horiz, edge.SOBEL_X)
    assert np.abs(g[0, 0]).max() < 1e-5 < np.abs(g[0, 1]).max()


def test_transfer_class_subset_relabels():
    from cnnops import data

    tl = load("transfer_learning")
    ds = data.load_digits(size=32)
    sub = tl.classes_subset(ds, (5, 6, 7, 8, 9), per_class=3)
    assert len(sub.y_train) == 15 and np.bincount(sub.y_train).tolist() == [3] * 5
    assert set(np.unique(sub.y_test)) == set(range(5)) and len(sub.y_test) == np.isin(ds.y_test, range(5, 10)).sum()
