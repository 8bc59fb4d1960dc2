"""Non-max suppression on a CUDA GPU: cnnops against torchvision CUDA on the same card
(``python -m cnnops bench nms --device cuda``).

Cases: ``nms`` at N = 1k, 5k, 20k, 100k and 200k boxes, "uniform" (corners uniform over a
1000 x 1000 image, sides 10..80) and "clustered" (jittered copies of N/50 objects, the shape of a
detector's raw output), IoU threshold 0.5; ``batched_nms`` with 80 classes at the same sizes
(torchvision shifts the boxes of each class apart up to 20k boxes on CUDA and loops over the classes
above); and, without a torchvision peer (timed alone), ``soft_nms`` (linear and gaussian),
``matrix_nms``, ``fast_nms``, ``cluster_nms`` and ``diou_nms`` at 20k boxes. The inputs are the CPU
benchmark's (bench/nms.py's make_inputs), as float32 torch CUDA tensors that cnnops reads zero-copy.

Correct means the CPU benchmark's rule: the same set of kept boxes as torchvision and the same
sequence of their scores (torchvision's batched_nms orders equal scores with an unstable sort).
Each case is checked once, warmed up, then timed with CUDA events, cnnops and torchvision
interleaved, median of repeats; both sides include their one synchronisation (the keep count) and
everything from the input tensors to the int64 keep tensor. A torchvision call slower than
SLOW_PEER_SECONDS is timed once, by its checked call."""
from __future__ import annotations

import time
from dataclasses import dataclass

import cnnops

from . import common
from .nms import Case as _CpuCase
from .nms import make_inputs
from .gpu import copy_bandwidth, gpu_stem, start, time_cuda

SLOW_PEER_SECONDS = 2.0
SIZES = ((1000, "1k"), (5000, "5k"), (20000, "20k"), (100000, "100k"), (200000, "200k"))
# The targets on an H100: speed-up over torchvision (peer cases) or milliseconds (alone).
TARGETS = {"nms_20k": 1.5, "nms_100k": 3.0, "batched_80c": 2.0, "alone_20k_ms": 2.0}


@dataclass(frozen=True)
class Case:
    name: str
    op: str  # nms, batched_nms, soft_linear, soft_gaussian, matrix, fast, cluster, diou
    n: int
    dist: str
    classes: int = 0
    small: bool = False  # part of the --quick set

    @property
    def peer(self) -> bool:
        return self.op in ("nms", "batched_nms")


def _cases() -> list:
    out = []
    for n, tag in SIZES:
        for dist in ("uniform", "clustered"):
            out.append(Case(f"nms_{tag}_{dist}", "nms", n, dist, small=n <= 5000))
            out.append(Case(f"batched_{tag}_{dist}_80c", "batched_nms", n, dist, 80, small=n <= 5000))
    for op in ("soft_linear", "soft_gaussian", "matrix", "fast", "cluster", "diou"):
        for dist in ("uniform", "clustered"):
            out.append(Case(f"{op}_20k_{dist}", op, 20000, dist, small=False))
    return out


CASES = _cases()
BY_NAME = {c.name: c for c in CASES}


def _inputs(torch, case: Case):
    b, s, c = make_inputs(_CpuCase(case.name, "nms", case.n, case.dist, 0.5, case.classes))
    return (torch.from_numpy(a).cuda() for a in (b, s, c))


def _calls(torch, tv, case: Case):
    b, s, c = _inputs(torch, case)
    ours = {
        "nms": lambda: cnnops.nms(b, s, 0.5),
        "batched_nms": lambda: cnnops.batched_nms(b, s, c, 0.5),
        "soft_linear": lambda: cnnops.soft_nms(b, s, 0.5, method="linear")[0],
        "soft_gaussian": lambda: cnnops.soft_nms(b, s, 0.5, method="gaussian")[0],
        "matrix": lambda: cnnops.matrix_nms(b, s)[0],
        "fast": lambda: cnnops.fast_nms(b, s, 0.5),
        "cluster": lambda: cnnops.cluster_nms(b, s, 0.5),
        "diou": lambda: cnnops.diou_nms(b, s, 0.5),
    }[case.op]
    peer = None
    if case.op == "nms":
        peer = lambda: tv.ops.nms(b, s, 0.5)  # noqa: E731
    elif case.op == "batched_nms":
        peer = lambda: tv.ops.batched_nms(b, s, c, 0.5)  # noqa: E731
    return b, s, ours, peer


def bench_case(torch, tv, case: Case, repeats, quick) -> dict:
    row = {"name": case.name, "op": case.op, "n": case.n, "dist": case.dist, "classes": case.classes, "errors": []}
    try:
        b, s, ours, peer = _calls(torch, tv, case)
        k_ours = ours()
        torch.cuda.synchronize()
        row["kept"] = int(k_ours.numel())
        if peer is not None:
            t0 = time.perf_counter()
            k_peer = peer()
            torch.cuda.synchronize()
            t_peer = time.perf_counter() - t0
            row["correct"] = bool(torch.equal(torch.sort(k_ours)[0], torch.sort(k_peer)[0])
                                  and torch.equal(s[k_ours], s[k_peer]))
            row["identical_order"] = bool(torch.equal(k_ours, k_peer))
        else:
            row["correct"] = True  # checked against the CPU kernels by the test suite
        for _ in range(2):
            ours()
        torch.cuda.synchronize()
        once = time_cuda(torch, {"c": ours}, 1, 1)["c"][0]
        number = max(1, min(100, int(2.0 / max(once, 1e-3))))  # about 2 ms of work per sample
        reps = repeats or (5 if quick else 15)
        if peer is None:
            times = time_cuda(torch, {"cnnops": ours}, reps, number)
        elif t_peer > SLOW_PEER_SECONDS and repeats is None:
            times = time_cuda(torch, {"cnnops": ours}, reps, number)
            times["torchvision"] = [t_peer * 1e3]
        else:
            peer()
            times = time_cuda(torch, {"cnnops": ours, "torchvision": peer}, reps, number)
        row["repeats"], row["number"] = reps, number
        for side, samples in times.items():
            row[side] = common.summarize_times([t / 1e3 for t in samples])
        row["speedup"] = row["torchvision"]["median_ms"] / row["cnnops"]["median_ms"] if peer is not None else None
    except Exception as e:  # noqa: BLE001 - reported per case, the run goes on
        row["errors"].append(f"{type(e).__name__}: {e}")
        row["correct"] = False
        row["speedup"] = None
    return row


def _target(r) -> str:
    """The issue's target for a case, met or not ("" when it has none)."""
    ms = r.get("cnnops", {}).get("median_ms")
    if r["op"] == "nms" and r["n"] in (20000, 100000):
        want = TARGETS["nms_20k" if r["n"] == 20000 else "nms_100k"]
        return f">= {want}x: {'met' if (r['speedup'] or 0) >= want else 'NOT met'}"
    if r["op"] == "batched_nms":
        want = TARGETS["batched_80c"]
        return f">= {want}x: {'met' if (r['speedup'] or 0) >= want else 'NOT met'}"
    if r["op"] in ("soft_linear", "soft_gaussian", "matrix") and ms is not None:
        want = TARGETS["alone_20k_ms"]
        return f"< {want} ms: {'met' if ms < want else 'NOT met'}"
    return ""


def report_markdown(data) -> str:
    rows = []
    for r in data["cases"]:
        if r["errors"]:
            rows.append([r["name"], r["n"], "error", "", "", "", "", "; ".join(r["errors"])])
            continue
        t = r.get("torchvision", {}).get("median_ms")
        rows.append([r["name"], r["n"], r["kept"], f"{r['cnnops']['median_ms']:.3f}",
                     "–" if t is None else f"{t:.3f}",
                     "–" if r["speedup"] is None else f"{r['speedup']:.2f}x",
                     "yes" if r["correct"] else "NO", _target(r)])
    table = common.markdown_table(["case", "N", "kept", "cnnops ms", "torchvision ms", "speed-up", "same keep",
                                   "target"], rows, "lrrrrrll")
    m = data["machine"]
    head = [f"# NMS on {data['gpu']}: cnnops vs torchvision CUDA", "",
            f"- **Date**: {m.get('date')}", f"- **Command**: `{m.get('command')}`",
            *([f"- **Commit**: {m['commit']}"] if m.get("commit") else []),
            f"- **GPU**: {data['gpu']} ({data['gpu_detail']})",
            f"- **cnnops**: {m['cnnops'].get('version')}, build: {m['cnnops'].get('build')}",
            f"- **PyTorch**: {m.get('torch')}, torchvision {data['torchvision']}",
            f"- **Device-to-device copy**: {data['copy_bandwidth_gbs']:.0f} GB/s (read + write)", "",
            "CUDA events after warm-up, cnnops and torchvision interleaved, median of repeats; float32 boxes and "
            "scores as torch CUDA tensors, IoU threshold 0.5; 'same keep': the same kept boxes and score "
            "sequence as torchvision. Cases without a torchvision peer are timed alone.", "", table]
    return "\n".join(head)


def run(repeats=None, quick=False, out=None, layers=None, commit=None) -> int:
    """Run the GPU NMS suite; write <out>/nms_<gpu>.json and .md. Returns 0 when every case ran and
    kept torchvision's boxes, 1 otherwise, 2 on bad arguments or a missing peer."""
    st = start("nms", [c.name for c in CASES if c.small or not quick or layers], layers, commit, ("torchvision",))
    if isinstance(st, int):
        return st
    torch, tv, names, gpu, machine = st.torch, st.peers["torchvision"], st.names, st.gpu, st.machine
    print(f"NMS CUDA benchmark on {gpu}: {len(names)} cases, cnnops {cnnops.__version__}, "
          f"torchvision {tv.__version__}", flush=True)
    bw = copy_bandwidth(torch)
    rows = []
    for name in names:
        r = bench_case(torch, tv, BY_NAME[name], repeats, quick)
        rows.append(r)
        if r["errors"]:
            print(f"  {name:28s} ERROR {r['errors']}", flush=True)
        else:
            peer = r.get("torchvision", {}).get("median_ms")
            vs = f" vs {peer:9.3f} ms ({r['speedup']:.2f}x)" if peer is not None else ""
            print(f"  {name:28s} {r['cnnops']['median_ms']:9.3f} ms{vs} kept {r['kept']}"
                  f"{'' if r['correct'] else ' WRONG'} {_target(r)}", flush=True)
    data = {"suite": "nms", "device": "cuda", "gpu": gpu,
            "gpu_detail": cnnops.cuda.device_name(torch.cuda.current_device()), "torchvision": tv.__version__,
            "machine": machine, "copy_bandwidth_gbs": bw, "targets": TARGETS,
            "settings": {"quick": bool(quick), "repeats": repeats, "dtype": "float32", "cases": names},
            "cases": rows, "summary": {"geomean_speedup": common.geomean(r["speedup"] for r in rows)}}
    jpath, mpath = common.write_results(out, f"nms_{gpu_stem(gpu)}", data, report_markdown(data))
    print(f"\nwrote {jpath} and {mpath}")
    return 0 if all(r["correct"] and not r["errors"] for r in rows) else 1


__all__ = ["run", "CASES", "TARGETS"]
