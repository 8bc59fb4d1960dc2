"""Non-max suppression on the CPU: cnnops against torchvision, greedy ``nms`` and class-aware
``batched_nms``.

Correct means: the same set of kept boxes as torchvision and the same sequence of their scores
(float32 scores of 20k random boxes contain a few equal values, which torchvision's batched_nms
orders with an unstable sort; cnnops puts the lower index first).

Cases: nms at N = 1k, 5k, 20k, 100k boxes, "uniform" (corners uniform over a 1000 x 1000 image,
sides 10..80) and "clustered" (jittered copies of N/50 objects, heavy overlaps, the shape of a
detector's raw output), IoU thresholds 0.5 and 0.7; batched_nms with 80 classes at 5k and 20k.
Scores are uniform in [0, 1), float32. Both libraries get the same torch tensors (cnnops reads
them zero-copy through DLPack) and the same thread count; the timed call is the whole op (score
sort included) from tensors to the int64 keep tensor. Each case is checked once (identical keep
lists; that first call is the warm-up), then timed interleaved, cnnops then torchvision, repeat
after repeat; the median per side is reported and the ratio torchvision/cnnops is the speed-up.
Each side's repeat is a batch of back-to-back calls lasting at least MIN_REPEAT_SECONDS (sized
per side, as timeit does): on 2 cores torch's OpenMP threads keep spinning for a while after a
torchvision call, and a single sub-millisecond cnnops call right after it would time that
hand-over rather than NMS. A torchvision call over SLOW_PEER_SECONDS (the 100k-box cases, where
its loop is O(N * kept) and takes tens of seconds) is timed once, by the checked call itself.

Bytes: the smallest possible memory traffic, boxes and scores read once (20 bytes per box); the
achieved rate is far below the copy bandwidth because greedy NMS is a sequential walk with
data-dependent work (see the kernel header in csrc/ops/cpu/nms.cpp)."""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

import numpy as np

import cnnops

from . import common


# A torchvision call slower than this (the 100k cases) is timed once, by its checked call.
SLOW_PEER_SECONDS = 2.0


@dataclass(frozen=True)
class Case:
    name: str
    op: str  # "nms" or "batched_nms"
    n: int
    dist: str
    iou: float
    classes: int = 0
    small: bool = False  # part of the --quick set

    @property
    def bytes(self) -> int:
        return self.n * (16 + 4 + (8 if self.classes else 0))


def _cases() -> list:
    out = []
    for n, tag in ((1000, "1k"), (5000, "5k"), (20000, "20k"), (100000, "100k")):
        for dist in ("uniform", "clustered"):
            for t in (0.5, 0.7):
                out.append(Case(f"nms_{tag}_{dist}_{t}", "nms", n, dist, t, small=n <= 5000))
    for n, tag in ((5000, "5k"), (20000, "20k")):
        for dist in ("uniform", "clustered"):
            out.append(Case(f"batched_{tag}_{dist}_80c", "batched_nms", n, dist, 0.5, classes=80, small=n <= 5000))
    return out


CASES = _cases()
BY_NAME = {c.name: c for c in CASES}


def make_inputs(case: Case, seed: int = 0):
    """float32 boxes (N, 4), scores (N,) and int64 class ids (N,) (zeros for plain nms)."""
    rng = np.random.default_rng(seed + case.n)
    n = case.n
    if case.dist == "clustered":
        k = max(1, n // 50)
        centres = rng.uniform(0, 1000, (k, 2))
        sizes = rng.uniform(10, 80, (k, 2))
        pick = rng.integers(0, k, n)
        wh = sizes[pick] * rng.uniform(0.8, 1.2, (n, 2))
        xy = centres[pick] + rng.normal(0, 0.1, (n, 2)) * sizes[pick] - wh / 2
    else:
        xy = rng.uniform(0, 1000, (n, 2))
        wh = rng.uniform(10, 80, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = rng.random(n).astype(np.float32)
    cls = rng.integers(0, max(1, case.classes), n).astype(np.int64)
    return boxes, scores, cls


def bench_case(torch, tv, case: Case, repeats, quick) -> dict:
    b, s, c = (torch.from_numpy(a) for a in make_inputs(case))
    if case.op == "nms":
        ours = lambda: cnnops.nms(b, s, case.iou)  # noqa: E731
        peer = lambda: tv.ops.nms(b, s, case.iou)  # noqa: E731
    else:
        ours = lambda: cnnops.batched_nms(b, s, c, case.iou)  # noqa: E731
        peer = lambda: tv.ops.batched_nms(b, s, c, case.iou)  # noqa: E731
    row = {"name": case.name, "op": case.op, "n": case.n, "dist": case.dist, "iou_threshold": case.iou,
           "classes": case.classes, "errors": []}
    try:
        t_ours = common.time_once(ours)
        k_ours = ours()
        t0 = time.perf_counter()
        k_peer = peer()
        t_peer = time.perf_counter() - t0
        row["kept"] = int(k_ours.numel())
        # same boxes kept and the same score sequence: torchvision's batched_nms orders its result
        # with an unstable sort, so boxes with equal scores may come in another order there
        row["correct"] = bool(torch.equal(torch.sort(k_ours)[0], torch.sort(k_peer)[0])
                              and torch.equal(s[k_ours], s[k_peer]))
        row["identical_order"] = bool(torch.equal(k_ours, k_peer))
        n_ours = max(1, math.ceil(common.MIN_REPEAT_SECONDS / max(t_ours, 1e-7)))
        times = {"cnnops": [], "torchvision": []}
        if t_peer > SLOW_PEER_SECONDS and repeats is None:
            # torchvision's O(N * kept) loop takes tens of seconds here: its checked call is its
            # one sample; cnnops still gets MIN_REPEATS batches
            reps, n_peer = 1, 1
            times["torchvision"].append(t_peer)
            for _ in range(common.MIN_REPEATS):
                times["cnnops"].append(common.time_once(ours, n_ours))
        else:
            reps, n_peer = common.plan_repeats(t_peer, repeats, quick)
            for _ in range(reps):
                times["cnnops"].append(common.time_once(ours, n_ours))
                times["torchvision"].append(common.time_once(peer, n_peer))
        row["repeats"], row["number"] = reps, {"cnnops": n_ours, "torchvision": n_peer}
        for side in ("cnnops", "torchvision"):
            row[side] = common.summarize_times(times[side])
            row[side]["gbs"] = case.bytes / (row[side]["median_ms"] / 1e3) / 1e9
        row["speedup"] = row["torchvision"]["median_ms"] / row["cnnops"]["median_ms"]
    except Exception as e:  # noqa: BLE001 - reported per case
        row["errors"].append(f"{type(e).__name__}: {e}")
        row["correct"] = False
        row["speedup"] = None
    return row


def report_markdown(data: dict) -> str:
    rows = data["cases"]
    table = common.markdown_table(
        ["case", "N", "kept", "cnnops ms", "torchvision ms", "speed-up", "cnnops GB/s", "same keep"],
        [[r["name"], r["n"], r.get("kept", "–"),
          common.fmt(r.get("cnnops", {}).get("median_ms"), ".3f"),
          common.fmt(r.get("torchvision", {}).get("median_ms"), ".3f"),
          common.fmt(r["speedup"]) + ("x" if r["speedup"] else ""),
          common.fmt(r.get("cnnops", {}).get("gbs"), ".3f"),
          "yes" if r["correct"] else "NO"] for r in rows])
    lines = ["# NMS on the CPU: cnnops vs torchvision", "", common.machine_markdown(data["machine"], data["ceilings"]),
             "", table, "", f"Geomean speed-up: {common.fmt(data['summary']['geomean_speedup'])}x"]
    for w in data["warnings"]:
        lines += ["", f"warning: {w}"]
    return "\n".join(lines)


def run(repeats=None, quick=False, out=None, layers=None, commit=None) -> int:
    """Run the NMS suite, print the table, write <out>/nms_cpu.json and <out>/nms_cpu.md.

    repeats: timed repeats per case (default: about TARGET_SECONDS per side, at least
    MIN_REPEATS); quick: QUICK_REPEATS repeats and only N <= 5k unless `layers` names cases;
    layers: case names as 'a,b' or a list (default: all); commit: the source revision recorded in
    the results. Returns 0 when every case ran and gave torchvision's keep list, 1 otherwise, 2 on
    bad arguments or missing torchvision."""
    try:
        import torch
        import torchvision as tv
    except ImportError:
        print("cnnops bench nms: needs torch and torchvision as the reference "
              "(pip install torch==2.14.1 torchvision==0.29.1)", file=sys.stderr)
        return 2
    try:
        names = common.parse_names(layers, [c.name for c in CASES if c.small or not quick or layers], "bench nms")
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    if repeats is not None and int(repeats) < 1:
        print(f"cnnops bench nms: expected --repeats >= 1, got {repeats}", file=sys.stderr)
        return 2
    threads = cnnops.get_num_threads()
    torch.set_num_threads(threads)
    peer = {"torch": torch.__version__,
            "torch_parallel": f"{torch.get_num_threads()} threads, torchvision {tv.__version__}"}
    machine = common.machine_info(peer, commit)
    print(f"nms CPU benchmark: {len(names)} cases, {threads} threads, cnnops {cnnops.__version__}, "
          f"torchvision {tv.__version__}", flush=True)
    ceil_start = common.measure_ceilings(threads, quick=quick)
    rows = []
    for name in names:
        r = bench_case(torch, tv, BY_NAME[name], repeats, quick)
        rows.append(r)
        if r["speedup"] is None:
            print(f"  {name:28s} error: {r['errors']}", flush=True)
        else:
            print(f"  {name:28s} {r['cnnops']['median_ms']:10.3f} vs {r['torchvision']['median_ms']:10.3f} ms "
                  f"({r['speedup']:6.1f}x) kept {r['kept']}{'' if r['correct'] else ' WRONG'}", flush=True)
    ceil_end = common.measure_ceilings(threads, quick=quick)
    machine["load_average_end"] = common.load_average()
    warning = common.busy_warning(machine["load_average_start"], machine["cores"]["usable"])
    ceilings = common.finish_ceilings(ceil_start, ceil_end)
    summary = {
        "geomean_speedup": common.geomean(r["speedup"] for r in rows),
        "all_correct": all(r["correct"] for r in rows),
        "failed_cases": [r["name"] for r in rows if r["errors"]],
    }
    data = {"suite": "nms", "device": "cpu", "machine": machine, "ceilings": ceilings,
            "settings": {"cases": names, "quick": bool(quick), "repeats": repeats, "dtype": "float32",
                         "threads": threads, "order": "interleaved cnnops, torchvision per repeat; median per side"},
            "cases": rows, "summary": summary, "warnings": [warning] if warning else []}
    jpath, mpath = common.write_results(out, "nms_cpu", data, report_markdown(data))
    print()
    print(report_markdown(data).split("\n\n", 2)[2])
    print(f"\nwrote {jpath} and {mpath}")
    return 0 if summary["all_correct"] and not summary["failed_cases"] else 1


__all__ = ["run", "CASES", "make_inputs"]
