"""The command line (python -m cnnops): --version, argument errors before any work (usage line,
an error naming the option, exit status 2), the --model choices, and the optional demo
dependencies. Everything here returns before data is read or a model is trained."""
from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

import cnnops
from cnnops import train
from cnnops.__main__ import main


def _error(capsys, argv) -> str:
    """Run main(argv), expect exit status 2 and return the error line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m cnnops"), err
    return err.strip().splitlines()[-1]


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"cnnops {cnnops.__version__}"


def test_version_in_a_subprocess():
    r = subprocess.run([sys.executable, "-m", "cnnops", "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"cnnops {cnnops.__version__}"


@pytest.mark.parametrize("argv, message", [
    (["--lr", "-1"], "argument --lr: expected a finite learning rate > 0, got -1.0"),
    (["--lr", "0"], "argument --lr: expected a finite learning rate > 0, got 0.0"),
    (["--lr", "inf"], "argument --lr: expected a finite learning rate > 0, got inf"),
    (["--momentum", "-0.5"], "argument --momentum: expected a finite value >= 0, got -0.5"),
    (["--weight-decay", "nan"], "argument --weight-decay: expected a finite value >= 0, got nan"),
    (["--threads", "0"], "argument --threads: expected a thread count >= 1, got 0"),
    (["--limit", "0"], "argument --limit: expected N >= 1 samples, got 0"),
    (["--batch-size", "0"], "expected --epochs >= 1, --batch-size >= 1 and --shift >= 0, got 10, 0 and 0"),
    (["--size", "28", "--dataset", "cifar10", "--data-dir", "."], "argument --size: applies to the digits only"),
    (["--dataset", "mnist"], "argument --data-dir: mnist is read from files; expected a data_dir, got None"),
])
def test_train_argument_errors(capsys, argv, message):
    assert message in _error(capsys, ["train", *argv])


def test_missing_folders_are_refused_before_training(capsys, tmp_path):
    missing = tmp_path / "nope"
    assert f"argument --save: the folder {missing} does not exist" in _error(
        capsys, ["train", "--save", str(missing / "w.npz")])
    assert f"argument --plot: the folder {missing} does not exist" in _error(
        capsys, ["train", "--plot", str(missing / "c.png")])
    assert f"argument --data-dir: no such folder: {missing}" in _error(
        capsys, ["train", "--dataset", "mnist", "--data-dir", str(missing)])


def test_demo_checks_its_arguments_too(capsys):
    assert "argument --threads" in _error(capsys, ["demo", "--threads", "-2"])


def test_errors_exit_with_status_2_in_a_subprocess():
    r = subprocess.run([sys.executable, "-m", "cnnops", "train", "--lr", "-1"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().endswith("error: argument --lr: expected a finite learning rate > 0, got -1.0")


def test_unparsable_values_are_argparse_errors(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--threads", "two"])
    assert e.value.code == 2
    assert "argument --threads: invalid int value: 'two'" in capsys.readouterr().err


# ---- --model ----------------------------------------------------------------------------------

def test_model_choices_are_the_classifier_builders(capsys):
    from cnnops.nn import models

    for name in train.MODELS:
        assert callable(getattr(models, name)), name
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for name, spec in train.MODELS.items():
        assert f"{name} ({spec.sizes})" in " ".join(out.split())


@pytest.mark.parametrize("side, fits, misfits", [
    (28, {"lenet5", "mnist_cnn", "resnet18", "inception_net"}, {"vgg11", "vgg16", "alexnet"}),
    (32, {"lenet5", "mnist_cnn", "vgg16", "resnet50"}, {"alexnet"}),
])
def test_models_for_an_image_side(side, fits, misfits):
    got = set(train.models_for(side))
    assert fits <= got and not misfits & got


def test_a_model_that_does_not_fit_the_dataset_is_refused(capsys, tmp_path):
    line = _error(capsys, ["train", "--model", "vgg11", "--dataset", "mnist", "--data-dir", str(tmp_path)])
    assert "argument --model: vgg11 takes images of at least 32x32; mnist has 1x28x28 images" in line
    assert "models that fit: lenet5, mnist_cnn" in line
    assert "argument --model: alexnet takes images of at least 63x63" in _error(capsys, ["train", "--model", "alexnet"])


def test_every_offered_small_model_builds_for_the_digits():
    digits = SimpleNamespace(input_shape=(1, 32, 32), num_classes=10)  # what build_model reads
    for name in train.models_for(32):
        if name in ("vgg11", "vgg16", "resnet34", "resnet50"):
            continue  # large: building them is slow and checks nothing more
        assert train.build_model(name, digits).num_parameters() > 0


# ---- optional dependencies -----------------------------------------------------------------------

def test_import_cnnops_does_not_import_the_demo_dependencies():
    code = ("import sys, cnnops, cnnops.nn, cnnops.data, cnnops.train, cnnops.bench, cnnops.__main__; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'matplotlib', 'tqdm', 'torch'}))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize("module, argv, what", [
    ("sklearn", [], "scikit-learn (the digits dataset)"),
    ("matplotlib", ["--plot", "curves.png"], "matplotlib (--plot)"),
])
def test_a_missing_demo_dependency_names_the_extra(capsys, monkeypatch, tmp_path, module, argv, what):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(train, "_missing", lambda m: m == module)
    line = _error(capsys, ["train", *argv])
    assert f"missing optional dependencies: {what}" in line
    assert 'pip install "cnnops[demo]"' in line
