"""The examples/ scripts, each run shortened (--quick) in this process, plus checks of the
pieces they define themselves (the YOLO loss gradient, the edge filters, the class subsets, the
saliency gradient, the style-transfer losses and their backward)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


# The runs below use one cnnops thread (the one_thread fixture): their batches are small, and on a
# machine whose other core is busy, two OpenMP threads waiting on each other made them 10x slower.


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"cnnops_example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name,check", [
    ("edge_detection", "worst direction error"),
    ("transfer_learning", "frozen convolutions were checked unchanged"),
    ("two_stage_detector", "two-stage:"),
])
def test_example_quick_run(name, check, capsys):
    assert load(name).main(["--quick"]) == 0
    assert check in capsys.readouterr().out


def test_every_example_is_tested():
    tested = {"train_lenet5", "edge_detection", "transfer_learning", "fcn_segmentation", "yolo_detector",
              "fractional_pooling", "two_stage_detector", "saliency_maps", "style_transfer"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


def test_train_lenet5_saves_and_reloads(tmp_path, capsys, one_thread):
    w = tmp_path / "w.npz"
    assert load("train_lenet5").main(["--quick", "--save", str(w), "--plot", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    final = out.split("final test accuracy ")[1].split("%")[0]
    assert f"re-loaded model: test accuracy {final}%" in out and (tmp_path / "c.png").is_file()
    assert float(final) >= 85.0  # shorter than the full run (~98%), still a trained network (~93%)


def test_fcn_segmentation_quick_run_segments_shapes(capsys, one_thread):
    assert load("fcn_segmentation").main(["--quick"]) == 0
    last = capsys.readouterr().out.split("epoch  4 ")[1].split("\n")[0]
    square = float(last.split("square ")[1].split(",")[0])
    miou = float(last.split("mIoU ")[1])
    assert square > 0.15 and miou > 0.35  # only background would give square 0 and mIoU ~0.27


def test_fractional_pooling_quick_run_trains_both(capsys, one_thread):
    assert load("fractional_pooling").main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "fractional pooling (maps 32x32 -> 22x22 -> 15x15)" in out
    accs = [float(v.split("%")[0]) for v in out.split("test accuracy ")[1:]]
    assert len(accs) == 2 and min(accs) > 50.0  # 10 classes: chance is 10%


def test_yolo_detector_quick_run_shows_what_nms_does(capsys, one_thread):
    assert load("yolo_detector").main(["--quick"]) == 0
    out = capsys.readouterr().out
    rows = {}
    for kind in ("without", "with"):
        line = out.split(f"\n{kind} NMS: ")[1].split("\n")[0]
        rows[kind] = (int(line.split(" detections")[0]), float(line.split("precision ")[1].split(",")[0]),
                      float(line.split("recall ")[1].split(" ")[0]))
    (n0, p0, r0), (n1, p1, r1) = rows["without"], rows["with"]
    assert r1 > 0.5 and n1 < n0  # a working detector whose duplicates NMS removes
    assert p1 > p0 and r1 == pytest.approx(r0, abs=0.02)  # more precise, (almost) as complete


def test_saliency_maps_quick_run(tmp_path, capsys, one_thread):
    png = tmp_path / "s.png"
    assert load("saliency_maps").main(["--quick", "--out", str(png)]) == 0
    out = capsys.readouterr().out
    share, area = (float(v) for v in out.split("saliency maps: ")[1].split("% of the pixels")[0]
                   .replace("% of the gradient magnitude lies on the strokes, which cover", "").split())
    assert share > 1.5 * area  # the gradient concentrates on the digit
    classified = int(out.split("classified as their class ")[1].split("/")[0])
    assert classified >= 9 and png.read_bytes()[:4] == b"\x89PNG"


def test_saliency_gradient_is_the_class_score_gradient(rng, one_thread):
    from cnnops import nn

    sal = load("saliency_maps")
    model = nn.models.lenet5(dtype=np.float64, rng=rng).eval()
    x = rng.random((2, 1, 32, 32))
    classes = np.array([3, 8])
    scores, g = sal.class_scores_gradient(model, x, classes)
    assert scores.shape == (2, 10)
    eps = 1e-6
    for i, c in enumerate(classes):
        for r, q in rng.integers(0, 32, (25, 2)):  # central differences at 25 pixels per image
            plus, minus = x[i:i + 1].copy(), x[i:i + 1].copy()
            plus[0, 0, r, q] += eps
            minus[0, 0, r, q] -= eps
            num = (model(plus)[0, c] - model(minus)[0, c]) / (2 * eps)
            assert g[i, 0, r, q] == pytest.approx(num, rel=1e-5, abs=1e-9)
    np.testing.assert_allclose(sal.saliency(model, x, classes), np.abs(g)[:, 0])


def test_style_transfer_quick_run(tmp_path, capsys, one_thread):
    png = tmp_path / "t.png"
    assert load("style_transfer").main(["--quick", "--out", str(png)]) == 0
    out = capsys.readouterr().out
    s0, s1 = (float(v) for v in out.split("style loss ")[1].split(" (")[0].split(" -> "))
    c1 = float(out.split("content loss 0 -> ")[1].split(" ")[0])
    c_style = float(out.split("(the style image's own: ")[1].split(")")[0])
    assert s1 < s0 / 20 and c1 < 0.8 * c_style  # much of the style taken, still nearer the content
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_style_transfer_gradients(rng, one_thread):
    from reference import numerical_grad

    st = load("style_transfer")
    net = st.feature_net(np.random.default_rng(1)).astype(np.float64)
    x = rng.random((1, 3, 8, 12))
    taps = set(st.STYLE_TAPS) | {st.CONTENT_TAP}
    tc = st.features(net, rng.random((1, 3, 8, 12)), taps)[st.CONTENT_TAP]
    ts = {t: st.gram(f) for t, f in st.features(net, rng.random((1, 3, 8, 12)), taps).items()}
    # the Gram matrix by its definition: G[a, b] = mean over positions of F_a F_b
    f = st.features(net, x, taps)[st.STYLE_TAPS[0]]
    flat = f[0].reshape(f.shape[1], -1)
    np.testing.assert_allclose(st.gram(f)[0], [[np.mean(a * b) for b in flat] for a in flat], rtol=1e-12)

    def total():
        fs = st.features(net, x, taps)
        v = st.content_loss(fs[st.CONTENT_TAP], tc)[0]
        return v + 100.0 * sum(st.style_loss(fs[t], ts[t])[0] for t in st.STYLE_TAPS)

    fs = st.features(net, x, taps)
    grads = {st.CONTENT_TAP: st.content_loss(fs[st.CONTENT_TAP], tc)[1]}
    for t in st.STYLE_TAPS:
        grads[t] = grads.get(t, 0) + 100.0 * st.style_loss(fs[t], ts[t])[1]
    g = st.backward_from_taps(net, grads)
    np.testing.assert_allclose(g, numerical_grad(total, x), rtol=1e-5, atol=1e-10)


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
