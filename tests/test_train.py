"""cnnops.train: the training loop, evaluation, confusion matrix, curves and the train/demo
command line; and the one-step agreement with PyTorch that the training benchmark relies on."""
from __future__ import annotations

import numpy as np
import pytest

from cnnops import data, nn, train
from cnnops.__main__ import main


@pytest.fixture(scope="module")
def small_digits():
    """240 training and 120 test digits at 32x32 (float32)."""
    return data.load_digits(size=32, seed=5).subset(240, 120)


def test_confusion_matrix_against_loops(rng):
    k = 7
    y = rng.integers(0, k, 101)
    p = rng.integers(0, k, 101)
    ref = np.zeros((k, k), np.int64)
    for a, b in zip(y, p):
        ref[a, b] += 1
    cm = train.confusion_matrix(y, p, k)
    np.testing.assert_array_equal(cm, ref)
    assert cm.dtype == np.int64
    text = train.format_confusion(cm, [f"c{i}" for i in range(k)])
    lines = text.splitlines()
    assert len(lines) == k + 2 and "recall" in lines[1]
    row3 = lines[2 + 3].split()
    assert row3[0] == "c3" and [int(v) for v in row3[1:1 + k]] == ref[3].tolist()
    assert row3[-1] == f"{100 * ref[3, 3] / ref[3].sum():.1f}%"


def test_confusion_matrix_bad_input():
    with pytest.raises(ValueError, match=r"confusion_matrix: expected predictions of shape \(3,\), got \(2,\)"):
        train.confusion_matrix([0, 1, 2], [0, 1], 3)
    with pytest.raises(ValueError, match=r"confusion_matrix: expected predictions in \[0, 3\), got \[0, 3\]"):
        train.confusion_matrix([0, 1, 2], [0, 1, 3], 3)
    with pytest.raises(ValueError, match=r"confusion_matrix: expected labels in \[0, 3\), got \[-1, 2\]"):
        train.confusion_matrix([-1, 1, 2], [0, 1, 2], 3)


def test_fit_learns_and_is_deterministic(small_digits):
    runs = []
    for _ in range(2):
        model = train.build_model("lenet5", small_digits, seed=3)
        hist = train.fit(model, small_digits, epochs=3, batch_size=16, optimizer="adam", lr=2e-3, seed=11,
                         shift=1, log=None)
        runs.append((hist, model.state_dict()))
    hist = runs[0][0]
    assert [e.epoch for e in hist.epochs] == [1, 2, 3]
    losses = hist.column("train_loss")
    assert losses[-1] < 0.75 * losses[0]
    assert hist.epochs[-1].test_acc > 0.25  # 10 classes: chance is 0.1
    # the last test predictions are what evaluate gives for the trained model
    _, acc, pred = train.evaluate(_loaded(small_digits, runs[0][1]), small_digits.x_test, small_digits.y_test)
    np.testing.assert_array_equal(pred, hist.test_pred)
    assert acc == pytest.approx(hist.epochs[-1].test_acc)
    # same seed, same weights and history
    assert runs[0][0].column("train_loss") == runs[1][0].column("train_loss")
    for k, v in runs[0][1].items():
        np.testing.assert_array_equal(v, runs[1][1][k])


def test_fit_applies_the_augmentation_to_every_training_batch(small_digits):
    ds = small_digits.subset(40, 16)
    seen = []

    def augment(xb, rng):
        seen.append(xb.shape[0])
        return np.ascontiguousarray(xb[:, :, :, ::-1])

    model = train.build_model("lenet5", ds, seed=0)
    train.fit(model, ds, epochs=2, batch_size=16, augment=augment, log=None)
    assert seen == [16, 16, 8] * 2  # training batches only, never the test set
    # a spec string builds data.make_augment over the training images
    runs = [train.fit(train.build_model("lenet5", ds, seed=0), ds, epochs=1, batch_size=16, augment=a, seed=2,
                      log=None).column("train_loss")[0] for a in ("flip,affine", None, "flip,affine")]
    assert runs[0] == runs[2] != runs[1]


def _loaded(ds, state):
    m = train.build_model("lenet5", ds, seed=0)
    m.load_state_dict(state)
    return m


@pytest.mark.parametrize("optimizer,schedule", [("sgd", "step"), ("adamw", "cosine"), ("adam", "none")])
def test_fit_optimizers_and_schedules(small_digits, optimizer, schedule):
    ds = small_digits.subset(64, 32)
    model = train.build_model("lenet5", ds, seed=0)
    lr = 0.05 if optimizer == "sgd" else 1e-3
    hist = train.fit(model, ds, epochs=3, batch_size=32, optimizer=optimizer, lr=lr, schedule=schedule, log=None)
    lrs = hist.column("lr")
    expect = {"none": [lr] * 3, "step": [lr, lr, lr * 0.1],
              "cosine": [lr * (1 + np.cos(np.pi * e / 3)) / 2 for e in range(3)]}[schedule]
    np.testing.assert_allclose(lrs, expect, rtol=1e-12)
    assert all(np.isfinite(hist.column("train_loss")))


def test_evaluate_restores_mode_and_matches_manual(small_digits):
    model = train.build_model("mnist_cnn", data.load_digits(size=28).subset(8, 40), seed=1)
    ds = data.load_digits(size=28).subset(8, 40)
    model.train()
    loss, acc, pred = train.evaluate(model, ds.x_test, ds.y_test, batch_size=7)
    assert model.training
    model.eval()
    logits = model(ds.x_test).astype(np.float64)
    m = logits.max(1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(1, keepdims=True)))[:, 0]
    assert loss == pytest.approx(np.mean(lse - logits[np.arange(40), ds.y_test]), rel=1e-5)
    np.testing.assert_array_equal(pred, logits.argmax(1))
    assert acc == pytest.approx(np.mean(pred == ds.y_test))


def test_fit_and_builders_bad_arguments(small_digits):
    model = train.build_model("lenet5", small_digits)
    with pytest.raises(ValueError, match="fit: expected epochs >= 1 and batch_size >= 1, got 0 and 8"):
        train.fit(model, small_digits, epochs=0, batch_size=8)
    with pytest.raises(ValueError, match="make_optimizer: expected an optimizer among sgd, adam, adamw, got 'rmsprop'"):
        train.fit(model, small_digits, epochs=1, optimizer="rmsprop")
    with pytest.raises(ValueError, match="make_schedule: expected a schedule among none, step, cosine, got 'linear'"):
        train.fit(model, small_digits, epochs=1, schedule="linear")
    with pytest.raises(ValueError, match=r"build_model: expected a model among lenet5, mnist_cnn, .*, got 'vgg'"):
        train.build_model("vgg", small_digits)
    odd = data.Dataset("odd", np.zeros((2, 1, 20, 20), np.float32), np.zeros(2, np.int64),
                       np.zeros((2, 1, 20, 20), np.float32), np.zeros(2, np.int64), ["a"])
    with pytest.raises(ValueError, match="build_model: lenet5 expects 28x28 or 32x32 images, got 20x20"):
        train.build_model("lenet5", odd)
    with pytest.raises(FloatingPointError, match="fit: the loss became (nan|inf) in epoch 1"), \
            np.errstate(all="ignore"):
        train.fit(model, small_digits.subset(64, 8), epochs=1, batch_size=4, optimizer="sgd", lr=1e30, log=None)


def test_fit_honours_frozen_layers(small_digits):
    model = train.build_model("lenet5", small_digits, seed=2)
    model[0].freeze()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    train.fit(model, small_digits.subset(32, 8), epochs=1, batch_size=16, log=None)
    after = model.state_dict()
    np.testing.assert_array_equal(after["0.weight"], before["0.weight"])
    assert not np.array_equal(after["3.weight"], before["3.weight"])


def test_plot_curves_writes_png(tmp_path):
    hist = train.History([train.EpochStats(e, 1.0 / e, 0.5 + e / 10, 1.2 / e, 0.4 + e / 10, 1e-3, 0.1)
                          for e in range(1, 4)])
    p = tmp_path / "c.png"
    train.plot_curves(hist, p, "t")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_blas_single_thread_restores():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    if not blas:
        pytest.skip("no BLAS thread pool found")
    before = [i["num_threads"] for i in blas]
    with train.blas_single_thread():
        inside = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        assert set(inside) == {1}
    assert [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"] == before


# ---------------------------------------------------------------------------------------------
# command line


def test_cli_train_digits_save_plot(tmp_path, capsys):
    w, png = tmp_path / "m.npz", tmp_path / "curves.png"
    rc = main(["train", "--model", "lenet5", "--dataset", "digits", "--epochs", "2", "--batch-size", "16",
               "--lr", "0.002", "--optimizer", "adam", "--limit", "96", "--seed", "4", "--save", str(w),
               "--plot", str(png), "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "epoch   2/2" in out and "confusion matrix of the test set (96 images)" in out
    assert "test accuracy" in out and png.read_bytes()[:4] == b"\x89PNG"
    model = nn.models.lenet5()
    model.load(w)
    ds = data.load_digits(size=32, seed=4).subset(96, 96)
    _, acc, _ = train.evaluate(model, ds.x_test, ds.y_test)
    assert f"test accuracy {100 * acc:.2f}%" in out


def test_cli_train_mnist_from_idx_files(tmp_path, rng, capsys):
    for part, n in (("train", 40), ("t10k", 20)):
        data.write_idx(tmp_path / f"{part}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)).astype(np.uint8))
        data.write_idx(tmp_path / f"{part}-labels-idx1-ubyte", rng.integers(0, 10, n).astype(np.uint8))
    rc = main(["train", "--model", "mnist_cnn", "--dataset", "mnist", "--data-dir", str(tmp_path), "--epochs", "1",
               "--batch-size", "20", "--optimizer", "sgd", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "40 train / 20 test images of 1x28x28" in out and "sgd lr 0.05" in out


def test_cli_train_augment(capsys):
    rc = main(["train", "--epochs", "1", "--limit", "48", "--augment", "crop,color", "--no-progress"])
    assert rc == 0
    assert "augment crop, color," in capsys.readouterr().out
    assert main(["train", "--augment", "flip,zoom"]) == 2
    assert ("argument --augment: expected names among flip, crop, affine, color, pca, got 'flip,zoom'"
            in capsys.readouterr().err)


def test_cli_train_mnist_from_the_test_files_alone(tmp_path, rng, capsys):
    data.write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 256, (30, 28, 28)).astype(np.uint8))
    data.write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(30, dtype=np.uint8) % 10)
    rc = main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--epochs", "1", "--no-progress"])
    assert rc == 0
    out, err = capsys.readouterr()
    assert "note: only the test files" in out and "20 train / 10 test images of 1x28x28" in out
    assert "Warning" not in err


def test_cli_bad_arguments(tmp_path, capsys):
    assert main(["train", "--epochs", "0"]) == 2
    assert "expected --epochs >= 1, --batch-size >= 1 and --shift >= 0, got 0, 32 and 0" in capsys.readouterr().err
    assert main(["train", "--shift", "-1"]) == 2
    assert "got 10, 32 and -1" in capsys.readouterr().err
    assert main(["train", "--dataset", "mnist", "--epochs", "1"]) == 2
    assert "expected a data_dir, got None" in capsys.readouterr().err
    assert main(["train", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--epochs", "1"]) == 2
    assert "expected data_batch_1.bin" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--optimizer", "rmsprop"])


def test_demo_defaults_parse():
    import argparse

    p = argparse.ArgumentParser()
    train.add_arguments(p, train.DEMO)
    args = p.parse_args([])
    for k, v in train.DEMO.items():
        assert getattr(args, k) == v


@pytest.mark.slow
def test_demo_reaches_97_percent(capsys):
    assert main(["demo", "--no-progress"]) == 0
    out = capsys.readouterr().out
    acc = float(out.split("test accuracy ")[1].split("%")[0])
    assert acc >= 97.0


# ---------------------------------------------------------------------------------------------
# the training benchmark's check: one SGD step of LeNet-5 / ResNet-18 equals PyTorch's (float64)


@pytest.mark.parametrize("case", ["lenet5_step_b64", "lenet5_forward_b64", "resnet18_step_b16"])
def test_one_step_matches_torch(case):
    torch = pytest.importorskip("torch")
    from cnnops.bench import train as bt

    assert bt.check_case(torch, bt.BY_NAME[case]) < 1e-10
