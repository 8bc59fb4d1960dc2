"""python -m cnnops bench: a tiny case written where --out says, the charts of --plot, and the
argument errors that stop a run before anything is timed (usage line, exit status 2)."""
from __future__ import annotations

import json

import pytest

import cnnops
from cnnops import bench
from cnnops.__main__ import main
from cnnops.bench import common, plot


def _error(capsys, argv) -> str:
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m cnnops bench"), err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("argv, message", [
    (["conv", "--repeats", "0"], "argument --repeats: expected a count >= 1, got 0"),
    (["conv", "--layers", "nope"], "argument --layers: cnnops bench conv: unknown layer name(s) nope"),
    (["conv", "--family", "conv9"], "argument --family: cnnops bench conv: unknown family conv9"),
    (["pool", "--family", "conv1d"], "argument --family: applies to the conv benchmark only, not pool"),
    (["all", "--layers", "lenet5_c1"], "argument --layers: names cases of one family"),
    (["train", "--layers", "nope"], "argument --layers: cnnops bench train: unknown layer name(s) nope"),
])
def test_argument_errors(capsys, argv, message):
    pytest.importorskip("torch")
    assert message in _error(capsys, argv)


def test_out_must_be_a_folder(capsys, tmp_path):
    pytest.importorskip("torch")
    f = tmp_path / "file"
    f.write_text("")
    assert f"argument --out: {f} exists and is not a folder" in _error(capsys, ["conv", "--out", str(f)])


def test_unknown_family_and_device_are_argparse_choices(capsys):
    for argv in (["bench", "frobnicate"], ["bench", "conv", "--device", "tpu"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
    assert "invalid choice: 'tpu'" in capsys.readouterr().err


def test_cuda_device_is_refused_with_the_reason(capsys):
    line = _error(capsys, ["conv", "--device", "cuda"])
    if not cnnops.cuda.is_available():
        assert "argument --device: cuda is not available" in line
    elif cnnops.cuda.is_emulated():
        assert "CPU emulator, which cannot judge speed" in line
    else:
        assert "argument --device: cuda has the pool, nms and boxes families only so far, not conv" in line
    if cnnops.cuda.is_emulated():
        for fam in ("pool", "nms", "boxes"):
            assert "cannot judge speed" in _error(capsys, [fam, "--device", "cuda"])


def test_gpu_file_tags():
    from cnnops.bench import gpu

    assert gpu.gpu_stem("NVIDIA H100 80GB HBM3") == "h100"
    assert gpu.gpu_stem("NVIDIA H200") == "h200"
    assert gpu.gpu_stem("NVIDIA A100-SXM4-40GB") == "a100"
    assert gpu.gpu_stem("Tesla V100-PCIE-16GB") == "v100"


def test_missing_peer_library_is_named(capsys, monkeypatch):
    real = bench.importlib.util.find_spec
    monkeypatch.setattr(bench.importlib.util, "find_spec", lambda m: None if m == "torchvision" else real(m))
    line = _error(capsys, ["nms"])
    assert "missing peer libraries: torchvision" in line and 'pip install "cnnops[bench]"' in line


def test_plot_needs_matplotlib(capsys, monkeypatch):
    pytest.importorskip("torch")
    real = bench.importlib.util.find_spec
    monkeypatch.setattr(bench.importlib.util, "find_spec", lambda m: None if m == "matplotlib" else real(m))
    assert "argument --plot: needs matplotlib" in _error(capsys, ["conv", "--plot"])


def test_tiny_conv_case_writes_to_out(capsys, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)  # nothing may land in the cwd
    out = tmp_path / "res"
    rc = main(["bench", "conv", "--quick", "--layers", "lenet5_c3", "--repeats", "1", "--out", str(out),
               "--commit", "abc1234", "--plot"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert f"results go to {out.resolve()}" in printed
    data = json.loads((out / "conv_cpu.json").read_text())
    assert data["settings"]["layers"] == ["lenet5_c3"] and data["machine"]["commit"] == "abc1234"
    row = data["layers"][0]
    assert row["correct"] and row["forward"]["speedup"] > 0 and row["backward"]["speedup"] > 0
    assert "targets" not in json.dumps(data)
    md = (out / "conv_cpu.md").read_text()
    assert "lenet5_c3" in md and "**Commit**: abc1234" in md
    for png in ("conv_cpu_speedup.png", "roofline_cpu.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]


def test_default_out_is_a_folder_in_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert common.default_out_dir() == tmp_path / common.DEFAULT_OUT


def test_commit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(common.COMMIT_ENV, "f00ba12")
    assert common.source_commit() == "f00ba12"
    assert common.source_commit("abc") == "abc"
    monkeypatch.delenv(common.COMMIT_ENV)
    assert common.source_commit() is None


def test_plot_cases_read_every_result_layout():
    conv = {"suite": "conv", "layers": [{"name": "a", "flops_forward": 8, "bytes_forward": 4, "flops_backward": 16,
                                         "bytes_backward": 8,
                                         "forward": {"speedup": 2.0, "cnnops": {"median_ms": 1.0}},
                                         "backward": None}], "families": {}}
    pool = {"suite": "pool", "cases": [{"name": "p", "speedup": 3.0, "bytes": 10, "cnnops": {"median_ms": 2.0}},
                                       {"name": "broken", "error": "x"}]}
    got = plot.cases(conv) + plot.cases(pool)
    assert [(c["label"], c["speedup"], c["flops"]) for c in got] == [("a fwd", 2.0, 8), ("p", 3.0, None)]


def test_checkout_script_runs_a_case_and_checks_its_targets(tmp_path):
    """benchmarks/bench_conv.py (the script a checkout's results come from) runs one quick case into
    --out and prints the targets it checks."""
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("torch")
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_conv.py"
    if not script.is_file():
        pytest.skip("no benchmarks/ folder next to the tests")
    r = subprocess.run([sys.executable, str(script), "--quick", "--layers", "lenet5_c1", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "conv_cpu.json").is_file() and (tmp_path / "conv_cpu.md").is_file()
    assert "targets (benchmarks/targets.py):" in r.stdout
