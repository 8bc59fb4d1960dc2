"""Shared pieces of the benchmark suite: machine description, ceilings, interleaved timing,
statistics, tables and result files. Every op family reuses them.

Method (DESIGN.md, "Performance method"): measure the machine's ceilings (FMA peak, copy
bandwidth) in the same process, run cnnops and its peer interleaved (A B A B ...) after a warm-up,
report the median per side and quote ratios rather than absolute times."""
from __future__ import annotations

import datetime
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import cnnops

# Seconds of timed work aimed for per layer and per side (cnnops or the peer), and the bounds on
# the number of timed repeats. Calls much shorter than MIN_REPEAT_SECONDS are batched: one repeat
# then runs the call `number` times back to back and the per-call time is the repeat's time divided
# by `number` (as timeit does), so timer resolution, Python overhead and the hand-over between the
# two libraries' thread pools do not dominate sub-millisecond layers.
TARGET_SECONDS = 1.5
MIN_REPEATS = 3
MAX_REPEATS = 30
MIN_REPEAT_SECONDS = 0.02
QUICK_REPEATS = 2


# ----------------------------------------------------------------------------------------------
# machine and run description


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo (Linux), else whatever platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list:
    """The SIMD flags of interest that /proc/cpuinfo lists (empty where it cannot be read)."""
    wanted = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "amx_tile",
              "asimd", "sve")
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    have = set(value.split())
                    return [w for w in wanted if w in have]
    except OSError:
        pass
    return []


def cpu_cores() -> dict:
    """Logical CPUs of the machine and those this process may run on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {"logical": os.cpu_count(), "usable": usable}


def load_average() -> list | None:
    """The 1, 5 and 15 minute load averages (Linux); a load near the core count before a run
    starts means other work shares the machine and the absolute times are not to be trusted."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return [float(v) for v in f.read().split()[:3]]
    except (OSError, ValueError):
        return None


def busy_warning(load_start, usable_cores) -> str | None:
    """A warning when the machine was visibly busy with other work when the run started."""
    if not load_start:
        return None
    if load_start[0] >= 0.5 * max(1, usable_cores or 1):
        return (f"the machine was busy before the run started (load average {load_start[0]:.2f} on "
                f"{usable_cores} usable CPUs): times are inflated and noisy; trust the ratios only loosely")
    return None


# The source revision a run measured, when the caller knows it (the scripts in benchmarks/ set it
# from their checkout); the installed package never asks a version-control tool.
COMMIT_ENV = "CNNOPS_BENCH_COMMIT"


def source_commit(commit: str | None = None) -> str | None:
    """`commit` if given, else the CNNOPS_BENCH_COMMIT environment variable, else None."""
    return commit or os.environ.get(COMMIT_ENV) or None


def command_line() -> str:
    """The command that started this run, spelled as typed where possible."""
    argv = list(sys.argv)
    if argv and argv[0].replace(os.sep, "/").endswith("cnnops/__main__.py"):
        return shlex.join(["python", "-m", "cnnops", *argv[1:]])
    if argv and argv[0]:
        return shlex.join(["python", *argv])
    return shlex.join(["python", *argv[1:]]) if len(argv) > 1 else "(interactive)"


QUICK_CEILING_SECONDS = 0.1


def measure_ceilings(threads: int, seconds: float = 0.5, quick: bool = False) -> dict:
    """The machine's fp32 FMA peak (GFLOP/s) and streaming copy bandwidth (GB/s) for `threads`,
    each measured for `seconds` (QUICK_CEILING_SECONDS for a quick run)."""
    if quick:
        seconds = QUICK_CEILING_SECONDS
    peak = float(cnnops._C.measure_fma_peak_gflops(threads, seconds))
    bw = float(cnnops._C.measure_copy_bandwidth_gbs(threads, seconds))
    return {"fma_peak_gflops": peak, "copy_bandwidth_gbs": bw, "threads": threads, "seconds": seconds}


def machine_info(peer: dict | None = None, commit: str | None = None) -> dict:
    """Everything needed to tell two result files apart: CPU, cores, cnnops build, peer library
    versions, source commit (see source_commit), command line, date."""
    import numpy as np

    d = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": cpu_cores(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cnnops": cnnops.info(),
        "commit": source_commit(commit),
        "command": command_line(),
        "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "load_average_start": load_average(),
        "env": {k: os.environ[k] for k in ("CNNOPS_SIMD", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                                           "KMP_BLOCKTIME", "MKL_NUM_THREADS") if k in os.environ},
    }
    if peer:
        d.update(peer)
    return d


# ----------------------------------------------------------------------------------------------
# timing


def plan_repeats(seconds_per_call: float, repeats: int | None = None, quick: bool = False) -> tuple:
    """(repeats, number): timed repeats, and back-to-back calls per repeat, for a call that takes
    about `seconds_per_call`. An explicit `repeats` wins over the time budget; `quick` means
    QUICK_REPEATS. `number` > 1 only for calls shorter than MIN_REPEAT_SECONDS."""
    t = max(float(seconds_per_call), 1e-7)
    number = math.ceil(MIN_REPEAT_SECONDS / t) if t < MIN_REPEAT_SECONDS else 1
    if repeats is not None:
        return max(1, int(repeats)), number
    if quick:
        return QUICK_REPEATS, number
    reps = int(min(MAX_REPEATS, max(MIN_REPEATS, round(TARGET_SECONDS / (t * number)))))
    if reps == MAX_REPEATS and reps * number * t < TARGET_SECONDS:
        # short of the budget even at MAX_REPEATS: make each repeat longer instead
        number = max(number, math.ceil(TARGET_SECONDS / (reps * t)))
    return reps, number


def time_once(fn, number: int = 1) -> float:
    """Seconds per call of `fn()` averaged over `number` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def time_interleaved(fns: dict, repeats: int, number: int = 1, warmup: int = 1) -> dict:
    """Time several callables against each other, interleaved: each round runs every callable
    once (as a batch of `number` calls) in the dict's order, A B A B ... After `warmup` untimed
    rounds, returns {name: [seconds per call for each of `repeats` rounds]}."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(time_once(fn, number))
    return times


def summarize_times(samples: list) -> dict:
    """Median (the number reported), min, max and the spread (max-min)/median, in milliseconds."""
    med = statistics.median(samples)
    return {
        "median_ms": med * 1e3,
        "min_ms": min(samples) * 1e3,
        "max_ms": max(samples) * 1e3,
        "spread": (max(samples) - min(samples)) / med if med > 0 else None,
        "samples_ms": [s * 1e3 for s in samples],
    }


# ----------------------------------------------------------------------------------------------
# statistics and checks


def geomean(values) -> float | None:
    vals = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    if not vals:
        return None
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def rel_error(got, ref) -> float:
    """‖got − ref‖ / ‖ref‖ computed in float64 (torch tensors or NumPy arrays)."""
    import numpy as np

    g = np.asarray(_to_numpy(got), dtype=np.float64)
    r = np.asarray(_to_numpy(ref), dtype=np.float64)
    if g.shape != r.shape:
        return float("inf")
    den = np.linalg.norm(r.ravel())
    num = np.linalg.norm((g - r).ravel())
    if den == 0:
        return float(num)
    return float(num / den)


def _to_numpy(a):
    if type(a).__module__.split(".")[0] == "torch":
        return a.detach().cpu().numpy()
    return a


# ----------------------------------------------------------------------------------------------
# formatting and files


def fmt(v, spec: str = ".2f", none: str = "–") -> str:
    if v is None:
        return none
    return format(v, spec)


def markdown_table(headers: list, rows: list, align: str | None = None) -> str:
    """A GitHub markdown table; `align` is one letter per column, 'l' or 'r' (default: first
    column left, others right)."""
    align = align or ("l" + "r" * (len(headers) - 1))
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]

    def line(cells):
        out = []
        for c, w, a in zip(cells, widths, align):
            out.append(str(c).ljust(w) if a == "l" else str(c).rjust(w))
        return "| " + " | ".join(out) + " |"

    cells = ((":" + "-" * (w + 1)) if a == "l" else ("-" * (w + 1) + ":") for w, a in zip(widths, align))
    sep = "|" + "|".join(cells) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def machine_markdown(m: dict, ceilings: dict) -> str:
    """The header block of a result page: machine, build, commit, command, ceilings."""
    info = m.get("cnnops", {})
    lines = [
        f"- **Date**: {m.get('date')}",
        f"- **Command**: `{m.get('command')}`",
        *([f"- **Commit**: {m['commit']}"] if m.get("commit") else []),
        f"- **CPU**: {m.get('cpu')}, {m['cores']['usable']} usable of {m['cores']['logical']} logical CPUs"
        + (f", flags {' '.join(m['cpu_flags'])}" if m.get("cpu_flags") else ""),
        f"- **cnnops**: {info.get('version')}, SIMD {info.get('simd')} (the kernels' ISA), "
        f"{info.get('threads')} threads, "
        f"build: {info.get('build')}",
    ]
    for key, label in (("torch", "PyTorch"), ("torch_parallel", "PyTorch threads")):
        if m.get(key):
            lines.append(f"- **{label}**: {m[key]}")
    if m.get("env"):
        lines.append("- **Environment**: " + ", ".join(f"{k}={v}" for k, v in m["env"].items()))
    lines.append(
        f"- **Measured ceilings** ({ceilings['threads']} threads): fp32 FMA peak "
        f"{ceilings['fma_peak_gflops']:.1f} GFLOP/s, streaming copy {ceilings['copy_bandwidth_gbs']:.1f} GB/s"
    )
    return "\n".join(lines)


DEFAULT_OUT = "cnnops-bench-results"


def default_out_dir() -> Path:
    """The folder results go to when no --out is given: cnnops-bench-results in the cwd."""
    return Path.cwd() / DEFAULT_OUT


def finish_ceilings(start: dict, end: dict) -> dict:
    """The ceilings a run is measured against: the larger of the measurements before and after the
    cases for each (noise from other work only lowers them)."""
    c = dict(start)
    c["fma_peak_gflops"] = max(start["fma_peak_gflops"], end["fma_peak_gflops"])
    c["copy_bandwidth_gbs"] = max(start["copy_bandwidth_gbs"], end["copy_bandwidth_gbs"])
    return c


def write_results(out, stem: str, data: dict, markdown: str) -> tuple:
    """Write <out>/<stem>.json and <out>/<stem>.md (creating <out>; default_out_dir() when `out`
    is None); return both paths."""
    out = Path(out) if out is not None else default_out_dir()
    out.mkdir(parents=True, exist_ok=True)
    jpath, mpath = out / f"{stem}.json", out / f"{stem}.md"
    with open(jpath, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=_json_default)
        f.write("\n")
    with open(mpath, "w", encoding="utf-8") as f:
        f.write(markdown.rstrip() + "\n")
    return jpath, mpath


def _json_default(o):
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):  # NumPy scalars
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def parse_names(spec, known: list, op: str) -> list:
    """Names from 'a,b' or a list, checked against `known` (order of `spec` kept)."""
    if spec is None:
        return list(known)
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s and s.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"{op}: unknown layer name(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if not names:
        raise ValueError(f"{op}: expected at least one layer name, got {spec!r}")
    return names
