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
    line = _error(capsys, ["unpool", "--device", "cuda"])
    if not cnnops.cuda.is_available():
        assert "argument --device: cuda is not available" in line
    elif cnnops.cuda.is_emulated():
        assert "CPU emulator, which cannot judge speed" in line
    else:
        assert "argument --device: cuda has the conv, pool, nms and boxes families only so far, not unpool" in line
    if cnnops.cuda.is_emulated():
        for fam in ("conv", "pool", "nms", "boxes"):
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


def test_tiny_jax_case_times_both_bridges_and_lax(capsys, tmp_path):
    pytest.importorskip("jax")
    import cnnops.jax as cj

    out = tmp_path / "res"
    before = cj.BRIDGE
    rc = main(["bench", "jax", "--quick", "--layers", "mnist_c2_b64_fwd", "--repeats", "1", "--out", str(out)])
    assert rc == 0 and cj.BRIDGE == before  # the run leaves the adapter's bridge as it found it
    data = json.loads((out / "jax_cpu.json").read_text())
    want = ["pure_callback", "lax"] if cj.FFI_UNAVAILABLE else ["xla_ffi", "pure_callback", "lax"]
    assert data["sides"] == want and set(data["overhead_us"]) == set(want)
    row = data["cases"][0]
    assert row["name"] == "mnist_c2_b64_fwd" and row["max_rel_err"] < 1e-4
    assert all(row[s]["median_ms"] > 0 for s in want)
    assert "| mnist_c2_b64_fwd |" in (out / "jax_cpu.md").read_text()


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


# ----------------------------------------------------------------------------------------------
# bench conv --device cuda (cnnops against cuDNN through PyTorch): everything a CPU can check


@pytest.fixture
def gpu_build(monkeypatch):
    """Pretend cnnops has a usable GPU (not the emulator), so the checks after that one run."""
    monkeypatch.setattr(cnnops.cuda, "is_available", lambda: True)
    monkeypatch.setattr(cnnops.cuda, "is_emulated", lambda: False)


@pytest.mark.parametrize("argv, message", [
    (["unpool"], "argument --device: cuda has the conv, pool, nms and boxes families only so far, not unpool"),
    (["conv", "--family", "conv1d"], "argument --family: --device cuda runs the conv2d layers only"),
])
def test_conv_cuda_argument_errors(capsys, gpu_build, argv, message):
    assert message in _error(capsys, [*argv, "--device", "cuda"])


def test_conv_cuda_needs_torch_with_cuda(capsys, gpu_build, monkeypatch, tmp_path):
    torch = pytest.importorskip("torch")
    from cnnops.bench import conv_cuda

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = _error(capsys, ["conv", "--device", "cuda"])
    assert "argument --device: cuda needs PyTorch with CUDA on the same GPU; this torch has no CUDA" in line
    # the suite refuses by itself too (it is also called without the command line), writing nothing
    assert conv_cuda.run(out=tmp_path) == 2
    assert "cnnops bench conv --device cuda: needs PyTorch with CUDA on the same GPU" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_conv_cuda_needs_torch(capsys, monkeypatch, tmp_path):
    from cnnops.bench import conv_cuda, gpu

    real = gpu.importlib.import_module

    def no_torch(name, *a):
        if name == "torch":
            raise ImportError("No module named 'torch'")
        return real(name, *a)

    monkeypatch.setattr(gpu.importlib, "import_module", no_torch)
    assert conv_cuda.run(out=tmp_path) == 2
    assert "cnnops bench conv --device cuda: needs torch with CUDA as the reference" in capsys.readouterr().err


def test_conv_cuda_unknown_layer_is_named(capsys, monkeypatch, tmp_path):
    torch = pytest.importorskip("torch")
    from cnnops.bench import conv_cuda

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert conv_cuda.run(layers="vgg16_c3,nope", out=tmp_path) == 2
    assert "cnnops bench conv --device cuda: unknown layer name(s) nope" in capsys.readouterr().err


def test_conv_cuda_layers_and_flops():
    from cnnops.bench import conv, conv_cuda

    by = conv_cuda.BY_NAME
    assert [x.name for x in conv_cuda.LAYERS[:len(conv.LAYERS)]] == [x.name for x in conv.LAYERS]
    assert all(x.N == 32 for x in conv_cuda.LAYERS)
    stem, res4 = by["resnet50_stem"], by["resnet50_res4_1x1"]
    assert (stem.C, stem.H, stem.W, stem.K, stem.R, stem.stride, stem.pad, stem.P) == (3, 224, 224, 64, 7, 2, 3, 112)
    assert (res4.C, res4.H, res4.K, res4.R, res4.P) == (1024, 14, 256, 1, 14)
    assert conv_cuda.flops(stem, "fwd") == 2 * 32 * 64 * 3 * 7 * 7 * 112 * 112
    assert conv_cuda.flops(stem, "bwd") == 2 * conv_cuda.flops(stem, "fwd")
    assert conv_cuda.flops(res4, "fwd") == 2 * 32 * 256 * 1024 * 14 * 14
    dw = [x.name for x in conv_cuda.LAYERS if conv_cuda.is_depthwise(x)]
    assert dw == ["mobilenet_dw", "mobilenet_dw_s2"]
    assert conv_cuda.flops(by["mobilenet_dw"], "fwd") == 2 * 32 * 256 * 9 * 56 * 56
    assert conv_cuda.precisions(by["mobilenet_dw"]) == ("fp32", "fp16", "bf16")
    assert conv_cuda.precisions(stem) == ("fp32", "tf32", "fp16", "bf16")
    assert [x.name for x in conv_cuda.LAYERS if conv_cuda.is_large_3x3(x)] == ["vgg16_c1_2", "vgg16_c3", "vgg16_c5"]
    quick = conv_cuda.case_names(quick=True)
    assert "mobilenet_dw" in quick and "vgg16_c5" in quick and len(quick) < len(conv_cuda.LAYERS)


def test_simt_peak_by_name_or_from_the_card():
    from cnnops.bench.conv_cuda import simt_peak

    assert simt_peak("NVIDIA H100 80GB HBM3") == {"tflops": 67.0, "source": "H100 SXM data sheet"}
    assert simt_peak("NVIDIA H100 PCIe")["tflops"] == 51.2
    assert simt_peak("NVIDIA H200")["tflops"] == 67.0 and simt_peak("NVIDIA GH200 480GB")["source"].startswith("GH200")
    assert simt_peak("NVIDIA A100-SXM4-80GB")["tflops"] == 19.5
    got = simt_peak("NVIDIA RTX 6000 Ada Generation", 142, (8, 9), 2505.0)
    assert got["tflops"] == pytest.approx(142 * 128 * 2 * 2.505e9 / 1e12)
    assert got["source"] == "142 SMs x 128 FP32 lanes x 2 x 2505 MHz"
    assert simt_peak("Tesla V100-SXM2-16GB", 80, (7, 0), 1530.0)["tflops"] == pytest.approx(15.67, abs=0.01)
    assert simt_peak("Some Card") is None


def _fake_row(name, precision, pass_, ours_ms=None, theirs_ms=None, error=None):
    from cnnops.bench import conv_cuda

    layer = conv_cuda.BY_NAME[name]
    r = conv_cuda.row_head(layer, precision, pass_)
    if error:
        return {**r, "error": error, "correct": False, "ratio": None}
    r.update(algo="gemm", rel_error=1e-6, correct=True, repeats=3, number=1, ratio=theirs_ms / ours_ms)
    for side, ms in (("cnnops", ours_ms), ("cudnn", theirs_ms)):
        r[side] = {"median_ms": ms, "tflops": r["flops"] / (ms / 1e3) / 1e12}
    return r


def test_conv_cuda_report_marks_the_targets(tmp_path):
    from cnnops.bench import common, conv_cuda

    peak = conv_cuda.simt_peak("NVIDIA H100 80GB HBM3")
    f = conv_cuda.BY_NAME["vgg16_c3"].flops_forward
    fast = f / 40e12 * 1e3  # 40 TFLOP/s: 60% of the H100's 67
    rows = [_fake_row("vgg16_c3", "fp32", "fwd", fast, fast * 0.9),
            _fake_row("vgg16_c3", "fp32", "bwd", 4 * fast, 2 * fast),  # 20 TFLOP/s, 0.5x
            _fake_row("resnet50_stem", "tf32", "fwd", 1.0, 0.7),
            _fake_row("mobilenet_dw", "fp16", "fwd", 0.1, 0.2),
            _fake_row("mobilenet_dw", "fp16", "bwd", 0.1, 0.1),
            _fake_row("resnet50_res4_1x1", "bf16", "fwd", error="RuntimeError: out of memory")]
    settings = {"quick": False, "repeats": 3, "batch": 32, "layers": ["vgg16_c3", "resnet50_stem", "mobilenet_dw",
                                                                       "resnet50_res4_1x1", "vgg16_c5"]}
    machine = common.machine_info({"torch": "2.13.0 (CUDA 13.0)"}, "abc1234")
    data = conv_cuda.result_data("NVIDIA H100 80GB HBM3", "sm_90, 132 SMs", 91000, machine, peak, settings, rows,
                                 settings["layers"][:4])
    jpath, mpath = conv_cuda.write(tmp_path, data)
    assert (jpath.name, mpath.name) == ("conv_h100.json", "conv_h100.md")
    got = json.loads(jpath.read_text())
    summ = got["summary"]
    assert summ["geomeans"]["fp32"]["all"] == pytest.approx((0.9 * 0.5) ** 0.5)
    assert summ["geomeans"]["fp32"]["fwd"] == pytest.approx(0.9) and summ["geomeans"]["fp32"]["rows"] == 2
    assert summ["geomeans"]["depthwise"]["all"] == pytest.approx(2 ** 0.5)
    t = summ["targets"]
    assert not t["fp32"]["met"] and t["tf32"]["met"] and t["depthwise"]["met"]
    assert t["bf16"] == {"value": None, "want": 0.6, "missing": 1, "met": False}
    assert "fp16" not in t  # the only fp16 rows are depthwise ones
    assert summ["peak_fractions"]["vgg16_c3 fwd"] == pytest.approx(40 / 67)
    assert t["large_3x3_peak_fraction"]["value"] == pytest.approx(20 / 67) and not t["large_3x3_peak_fraction"]["met"]
    assert got["complete"] is False and got["machine"]["commit"] == "abc1234" and got["cudnn"] == 91000
    md = mpath.read_text()
    for text in ("# Convolutions on NVIDIA H100 80GB HBM3: cnnops vs cuDNN", "**Commit**: abc1234",
                 "**fp32 SIMT peak used**: 67.0 TFLOP/s (H100 SXM data sheet)", "stopped after 4 of 5 layers",
                 "fp32 geomean >= 0.8x cuDNN fp32", "| 0.67x", "NOT met", "depthwise geomean >= 1.0x cuDNN",
                 "## bf16 (bfloat16, NHWC)", "RuntimeError: out of memory", "60% *", "failed rows: 1"):
        assert text in md, text


def _host_time(torch, fns, repeats, number):
    import time

    out = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            out[k].append((time.perf_counter() - t0) * 1e3 / number)
    return out


def test_conv_cuda_run_on_cpu_tensors(capsys, monkeypatch, tmp_path):
    """The whole run on CPU torch tensors (cnnops' CPU kernels, PyTorch's CPU convolution, host
    timing) with the GPU queries replaced: rows, progress, the files written after every layer."""
    torch = pytest.importorskip("torch")
    from cnnops.bench import conv_cuda, gpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: 0)
    monkeypatch.setattr(cnnops.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(gpu, "gpu_name", lambda torch: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(conv_cuda, "card", lambda torch, name: (conv_cuda.simt_peak(name), "fake", 91000))
    monkeypatch.setattr(gpu, "time_cuda", _host_time)
    monkeypatch.setattr(conv_cuda, "DEVICE", "cpu")
    monkeypatch.setattr(conv_cuda, "PRECISIONS", ("fp32", "tf32"))  # CPU kernels have no float16
    b = torch.backends
    flags = b.cudnn.benchmark, b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32
    writes = []
    real_write = conv_cuda.write
    monkeypatch.setattr(conv_cuda, "write", lambda out, data: writes.append(data["complete"]) or real_write(out, data))
    assert conv_cuda.run(repeats=2, out=tmp_path, layers="lenet5_c3,mobilenet_dw", commit="abc1234") == 0
    printed = capsys.readouterr().out
    assert "conv CUDA benchmark on NVIDIA H100 80GB HBM3: 2 layers, 6 rows" in printed
    assert "layer 2/2 done" in printed and "depthwise geomean >= 1.0x cuDNN" in printed
    assert writes == [False, True]
    data = json.loads((tmp_path / "conv_h100.json").read_text())
    assert [(r["layer"], r["precision"], r["pass"]) for r in data["rows"]] == [
        ("lenet5_c3", "fp32", "fwd"), ("lenet5_c3", "fp32", "bwd"), ("lenet5_c3", "tf32", "fwd"),
        ("lenet5_c3", "tf32", "bwd"), ("mobilenet_dw", "fp32", "fwd"), ("mobilenet_dw", "fp32", "bwd")]
    for r in data["rows"]:
        assert r["correct"] and r["rel_error"] < 1e-5 and r["ratio"] > 0 and r["repeats"] == 2, r
        assert r["cnnops"]["tflops"] > 0 and r["cudnn"]["tflops"] > 0
    assert data["rows"][4]["algo"] == "depthwise" and data["complete"]
    b = torch.backends
    assert (b.cudnn.benchmark, b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32) == flags  # restored


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["fp32", "tf32", "fp16", "bf16"])
def test_conv_cuda_times_the_cnnops_side_alone(precision):
    """The cnnops half of every row on cnnops CUDA arrays (the emulation build included): the
    row's dtype and layout, the call, the forward's algorithm and a rate."""
    from cnnops.bench import conv_cuda
    from cnnops.bench.conv import Layer

    if precision == "bf16":
        pytest.importorskip("torch")  # NumPy has no bfloat16: the values cross as a torch CPU tensor
    layers = {"tiny": Layer("tiny", 2, 8, 9, 9, 8, 3, 1, 1, 1),
              "tiny_rgb": Layer("tiny_rgb", 2, 3, 9, 9, 8, 3, 2, 1, 1),
              "tiny_dw": Layer("tiny_dw", 2, 8, 9, 9, 8, 3, 2, 1, 8)}
    x, w, b, dy = conv_cuda.cnnops_arrays(layers["tiny"], precision)
    assert str(x.dtype) == conv_cuda.DTYPES[precision] and x.shape == (2, 8, 9, 9)
    assert (x.strides[1] == 1) == (precision in ("fp16", "bf16"))  # channels-last for half precision
    for name, layer in layers.items():
        for pass_ in ("fwd", "bwd") if precision in conv_cuda.precisions(layer) else ():
            got = conv_cuda.time_cnnops(layer, precision, pass_, repeats=1)
            assert got["median_ms"] > 0 and got["tflops"] > 0, (name, pass_)
            if name == "tiny_dw":
                assert got["algo"] == "depthwise"
            elif precision != "fp32":
                assert got["algo"] == "tensorcore", (name, got)
