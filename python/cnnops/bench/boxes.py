"""Box utilities and the IoU family on the CPU: cnnops against torchvision.ops.

Cases: the pairwise matrices (box_iou at 1k x 1k and 10k x 1k, plus GIoU,
DIoU and CIoU at 1k x 1k) and the losses as a training step uses them, forward + backward on 100k
pairs with reduction "mean": cnnops.<kind>_loss then cnnops.<kind>_loss_backward against
torchvision's <kind>_box_iou_loss followed by autograd's ``backward()``.

Both libraries get the same float32 torch tensors (cnnops reads them zero-copy through DLPack)
and the same thread count. Each case is checked once (relative error of the result, and of both
gradients for the losses, against torchvision), warmed up, then timed interleaved, cnnops then
torchvision, repeat after repeat; the median per side is reported and the ratio
torchvision/cnnops is the speed-up.

Bytes are the least memory traffic (boxes read once, the matrix or the gradients written once,
float32); the achieved rate is quoted against the measured streaming-copy bandwidth."""
from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass

import numpy as np

import cnnops

from . import common

REL_ERR_TOL = 1e-5
KINDS = {"iou": "box_iou", "giou": "generalized_box_iou", "diou": "distance_box_iou", "ciou": "complete_box_iou"}
LOSSES = {"giou": "generalized_box_iou_loss", "diou": "distance_box_iou_loss", "ciou": "complete_box_iou_loss"}


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # iou, giou, diou, ciou
    what: str  # "pairwise" (N x M matrix) or "loss" (N pairs, forward + backward)
    N: int
    M: int = 0
    small: bool = False  # part of the --quick set

    def shape_str(self) -> str:
        return f"{self.N} x {self.M}" if self.what == "pairwise" else f"{self.N} pairs, fwd+bwd"

    def nbytes(self) -> int:
        if self.what == "pairwise":
            return 4 * (4 * self.N + 4 * self.M + self.N * self.M)
        return 4 * (2 * 4 * self.N * 2)  # boxes read, gradients written

    def op(self) -> str:
        return KINDS[self.kind] if self.what == "pairwise" else f"{self.kind}_loss"


CASES = [
    Case("box_iou_1k_x_1k", "iou", "pairwise", 1000, 1000, small=True),
    Case("box_iou_10k_x_1k", "iou", "pairwise", 10000, 1000),
    Case("giou_1k_x_1k", "giou", "pairwise", 1000, 1000, small=True),
    Case("diou_1k_x_1k", "diou", "pairwise", 1000, 1000),
    Case("ciou_1k_x_1k", "ciou", "pairwise", 1000, 1000),
    Case("giou_loss_100k", "giou", "loss", 100000, small=True),
    Case("diou_loss_100k", "diou", "loss", 100000),
    Case("ciou_loss_100k", "ciou", "loss", 100000),
]
BY_NAME = {c.name: c for c in CASES}


def _boxes(torch, n, seed):
    """n xyxy boxes in a 1000 x 1000 image, sides 10..200 (some pairs overlap, most do not)."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 800, (n, 2))
    wh = rng.uniform(10, 200, (n, 2))
    return torch.from_numpy(np.concatenate([xy, xy + wh], axis=1).astype(np.float32))


def _calls(torch, tv, case):
    """({"cnnops": fn, "torchvision": fn}, check) for one case; check() -> max relative error."""
    if case.what == "pairwise":
        b1, b2 = _boxes(torch, case.N, 1), _boxes(torch, case.M, 2)
        ours, theirs = getattr(cnnops, KINDS[case.kind]), getattr(tv, KINDS[case.kind])

        def check():
            return common.rel_error(ours(b1, b2), theirs(b1, b2))

        return {"cnnops": lambda: ours(b1, b2), "torchvision": lambda: theirs(b1, b2)}, check

    # pairs: half of the targets are jittered copies of the predictions (overlapping pairs)
    p = _boxes(torch, case.N, 3)
    t = _boxes(torch, case.N, 4)
    half = case.N // 2
    t[:half] = p[:half] + torch.from_numpy(np.random.default_rng(5).uniform(-8, 8, (half, 4)).astype(np.float32))
    t[:, 2:] = torch.maximum(t[:, 2:], t[:, :2] + 1)
    loss = getattr(cnnops, f"{case.kind}_loss")
    loss_bwd = getattr(cnnops, f"{case.kind}_loss_backward")
    peer = getattr(tv, LOSSES[case.kind])
    pr = p.clone().requires_grad_()
    tr = t.clone().requires_grad_()

    def ours():
        val = loss(p, t, reduction="mean")
        return val, loss_bwd(1.0, p, t, reduction="mean")

    def theirs():
        pr.grad = None
        tr.grad = None
        val = peer(pr, tr, reduction="mean")
        val.backward()
        return val.detach(), (pr.grad, tr.grad)

    def check():
        v1, (g1, g2) = ours()
        v2, (h1, h2) = theirs()
        return max(common.rel_error(v1, v2), common.rel_error(g1, h1), common.rel_error(g2, h2))

    return {"cnnops": ours, "torchvision": theirs}, check


def bench_case(torch, tv, case, repeats=None, quick=False) -> dict:
    row = {"name": case.name, "op": case.op(), "shape": case.shape_str(), "bytes": case.nbytes(), "errors": []}
    try:
        fns, check = _calls(torch, tv, case)
        row["rel_error"] = check()
        row["correct"] = row["rel_error"] <= REL_ERR_TOL
        t = common.time_once(fns["cnnops"]) + common.time_once(fns["torchvision"])
        reps, number = common.plan_repeats(t / 2, repeats, quick)
        times = common.time_interleaved(fns, reps, number)
        for side, samples in times.items():
            row[side] = common.summarize_times(samples)
        row["speedup"] = row["torchvision"]["median_ms"] / row["cnnops"]["median_ms"]
        row["repeats"], row["number"] = reps, number
    except Exception as e:  # noqa: BLE001 - reported in the table, the run goes on
        row["errors"].append("".join(traceback.format_exception_only(type(e), e)).strip())
        row["correct"] = False
    return row


def report_markdown(data: dict) -> str:
    rows = data["cases"]
    bw = data["ceilings"]["copy_bandwidth_gbs"]
    table = []
    for r in rows:
        if "cnnops" not in r:
            table.append([r["name"], r["shape"], "error", "", "", "", "", "; ".join(r["errors"])])
            continue
        gbs = r["bytes"] / (r["cnnops"]["median_ms"] * 1e-3) / 1e9
        table.append([r["name"], r["shape"], f"{r['cnnops']['median_ms']:.3f}", f"{r['torchvision']['median_ms']:.3f}",
                      f"{r['speedup']:.2f}x", f"{gbs:.1f} ({100 * gbs / bw:.0f}%)", f"{r['rel_error']:.1e}",
                      "" if r["correct"] else "WRONG"])
    lines = [
        "# Boxes (IoU family) on the CPU: cnnops vs torchvision",
        "",
        common.machine_markdown(data["machine"], data["ceilings"]),
        f"- **torchvision**: {data['machine'].get('torchvision')}",
        "",
        "Median ms per call (forward + backward for the losses), float32, interleaved repeats.",
        "",
        common.markdown_table(["case", "shape", "cnnops ms", "torchvision ms", "speed-up", "GB/s (of copy bw)",
                               "rel err", ""], table),
    ]
    for w in data["warnings"]:
        lines += ["", f"warning: {w}"]
    return "\n".join(lines)


def run(repeats=None, quick=False, out=None, layers=None, commit=None) -> int:
    """Run the boxes suite, print the table, write <out>/boxes_cpu.json and <out>/boxes_cpu.md.

    repeats: timed repeats per case (default: sized by a time budget); quick: QUICK_REPEATS
    repeats and, unless `layers` is given, only the small cases; layers: case names as 'a,b' or a
    list (default: all); commit: the source revision recorded in the results. Returns 0 when every
    case ran and matched torchvision, 1 otherwise, 2 on bad arguments or missing torchvision."""
    try:
        import torch
        import torchvision
        import torchvision.ops as tv
    except ImportError:
        print("cnnops bench boxes: needs torch and torchvision as the peer "
              "(pip install torch==2.14.1 torchvision==0.29.1)", file=sys.stderr)
        return 2
    try:
        known = [c.name for c in CASES]
        if layers is None and quick:
            names = [c.name for c in CASES if c.small]
        else:
            names = common.parse_names(layers, known, "cnnops bench boxes")
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    threads = cnnops.get_num_threads()
    torch.set_num_threads(threads)
    machine = common.machine_info({"torch": torch.__version__, "torchvision": torchvision.__version__,
                                   "torch_parallel": f"{torch.get_num_threads()} threads"}, commit)
    print(f"boxes CPU benchmark: {len(names)} cases, {threads} threads, cnnops {cnnops.__version__} "
          f"({cnnops.simd_level()}), torchvision {torchvision.__version__}", flush=True)
    ceilings = common.measure_ceilings(threads, quick=quick)
    rows = []
    for name in names:
        r = bench_case(torch, tv, BY_NAME[name], repeats, quick)
        rows.append(r)
        if "cnnops" in r:
            print(f"  {name:18s} {r['cnnops']['median_ms']:9.3f} vs {r['torchvision']['median_ms']:9.3f} ms "
                  f"({r['speedup']:.2f}x)  err {r['rel_error']:.1e}{'' if r['correct'] else ' WRONG'}", flush=True)
        else:
            print(f"  {name:18s} error: {'; '.join(r['errors'])}", flush=True)
    machine["load_average_end"] = common.load_average()
    warning = common.busy_warning(machine["load_average_start"], machine["cores"]["usable"])
    data = {
        "suite": "boxes",
        "device": "cpu",
        "machine": machine,
        "ceilings": ceilings,
        "settings": {"cases": names, "quick": bool(quick), "repeats": repeats, "dtype": "float32",
                     "threads": threads, "rel_error_tolerance": REL_ERR_TOL,
                     "order": "interleaved cnnops, torchvision per repeat; median per side"},
        "cases": rows,
        "speedup_geomean": common.geomean(r.get("speedup") for r in rows),
        "warnings": [warning] if warning else [],
    }
    md = report_markdown(data)
    jpath, mpath = common.write_results(out, "boxes_cpu", data, md)
    print()
    print(md)
    print(f"\nwrote {jpath} and {mpath}")
    return 0 if all(r["correct"] and not r["errors"] for r in rows) else 1
