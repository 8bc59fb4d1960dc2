"""What the GPU suites (<family>_cuda.py) share: the start of a run (peer libraries imported, a CUDA
device checked, case names parsed, the GPU named, the machine described), CUDA-event timing and the
device-to-device copy bandwidth."""
from __future__ import annotations

import importlib
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass

from . import common


def gpu_name(torch) -> str:
    """nvidia-smi's name of the current GPU (torch's when nvidia-smi is missing)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i",
                              str(torch.cuda.current_device())], capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    return torch.cuda.get_device_name()


def gpu_stem(name: str) -> str:
    """A file-name tag for a GPU: "NVIDIA H100 80GB HBM3" -> "h100"."""
    m = re.search(r"\b([A-Z]{1,2}\d{2,4}[A-Za-z]?)\b", name)
    return (m.group(1) if m else re.sub(r"[^a-z0-9]+", "_", name.lower())).lower()


def time_cuda(torch, fns: dict, repeats: int, number: int) -> dict:
    """{name: [ms per call]} with CUDA events, the callables interleaved round by round."""
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            for _ in range(number):
                fn()
            b.record()
            b.synchronize()
            times[k].append(a.elapsed_time(b) / number)
    return times


def time_sides(torch, fns: dict, repeats=None, quick=False, default_repeats=21, warmup=3, most=200) -> tuple:
    """Time callables against each other on the GPU: `warmup` untimed rounds, then back-to-back calls
    per sample for about 2 ms of work (at most `most`; from one call of the first callable), then
    `repeats` interleaved samples (default: 5 with `quick`, else `default_repeats`). Returns
    ({name: common.summarize_times of its samples}, repeats, calls per sample)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    torch.cuda.synchronize()
    once = time_cuda(torch, {"first": next(iter(fns.values()))}, 1, 1)["first"][0]
    number = max(1, min(most, int(2.0 / max(once, 1e-3))))
    reps = repeats or (5 if quick else default_repeats)
    times = time_cuda(torch, fns, reps, number)
    return {k: common.summarize_times([t / 1e3 for t in v]) for k, v in times.items()}, reps, number


def copy_bandwidth(torch, nbytes: int = 1 << 30) -> float:
    """Device-to-device copy in GB/s (bytes read + written), median of 10."""
    x = torch.empty(nbytes // 4, device="cuda")
    y = torch.empty_like(x)
    t = time_cuda(torch, {"copy": lambda: y.copy_(x)}, 10, 5)["copy"]
    return 2 * nbytes / (statistics.median(t) / 1e3) / 1e9


@dataclass
class Start:
    """What a GPU suite's run() works with once start() has let it go on."""

    torch: object
    peers: dict  # {module name: module} of the peer libraries beside torch
    names: list  # the cases to run, in order
    gpu: str  # nvidia-smi's name of the card
    machine: dict  # common.machine_info with torch's version and its CUDA


def start(family: str, known, layers=None, commit=None, peers=()) -> Start | int:
    """Begin ``python -m cnnops bench <family> --device cuda``: import torch and `peers`, check that
    torch sees a GPU, parse `layers` against `known` (a list of case names, or a function of the
    torch module returning one). Returns a Start, or exit status 2 after printing why the run cannot
    go on (a peer missing, no CUDA in torch, an unknown case name)."""
    label = f"cnnops bench {family} --device cuda"
    try:
        torch = importlib.import_module("torch")
        mods = {p: importlib.import_module(p) for p in peers}
    except ImportError:
        print(f"{label}: needs {' and '.join(('torch', *peers))} with CUDA as the reference", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print(f"{label}: needs PyTorch with CUDA on the same GPU", file=sys.stderr)
        return 2
    try:
        names = common.parse_names(layers, known(torch) if callable(known) else list(known), label)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    machine = common.machine_info({"torch": f"{torch.__version__} (CUDA {torch.version.cuda})"}, commit)
    return Start(torch, mods, names, gpu_name(torch), machine)


__all__ = ["Start", "start", "gpu_name", "gpu_stem", "time_cuda", "time_sides", "copy_bandwidth"]
