"""Box utilities and the IoU family on a CUDA GPU: cnnops against torchvision CUDA on the same card
(``python -m cnnops bench boxes --device cuda``).

Cases: the pairwise matrices box_iou (1k x 1k, 10k x 1k, 10k x 10k) and GIoU, DIoU, CIoU (1k x 1k,
10k x 1k), and the losses as a training step uses them: forward + backward on 100k and 1M pairs
with reduction "mean", cnnops.<kind>_loss then <kind>_loss_backward against torchvision's
<kind>_box_iou_loss followed by autograd's backward(). The boxes are the CPU benchmark's
(bench/boxes.py), float32 torch CUDA tensors that cnnops reads zero-copy.

Each case is checked once (relative error of the result, and of both gradients for the losses,
against torchvision), warmed up, then timed with CUDA events, cnnops and torchvision interleaved,
median of repeats. Bytes are the least memory traffic (boxes read once, the matrix or the gradients
written once); the achieved rate is quoted against the device-to-device copy bandwidth measured in
the same run. The issue's target: box_iou at least as fast as torchvision."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import cnnops

from . import common
from .boxes import KINDS, LOSSES, REL_ERR_TOL, _boxes
from .gpu import copy_bandwidth, gpu_stem, start, time_sides


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # iou, giou, diou, ciou
    what: str  # "pairwise" or "loss"
    N: int
    M: int = 0
    small: bool = False

    def shape_str(self) -> str:
        return f"{self.N} x {self.M}" if self.what == "pairwise" else f"{self.N} pairs, fwd+bwd"

    def nbytes(self) -> int:
        if self.what == "pairwise":
            return 4 * (4 * self.N + 4 * self.M + self.N * self.M)
        return 4 * (2 * 4 * self.N * 2)

    def op(self) -> str:
        return KINDS[self.kind] if self.what == "pairwise" else f"{self.kind}_loss"


CASES = [
    Case("box_iou_1k_x_1k", "iou", "pairwise", 1000, 1000, small=True),
    Case("box_iou_10k_x_1k", "iou", "pairwise", 10000, 1000),
    Case("box_iou_10k_x_10k", "iou", "pairwise", 10000, 10000),
    Case("giou_1k_x_1k", "giou", "pairwise", 1000, 1000, small=True),
    Case("giou_10k_x_1k", "giou", "pairwise", 10000, 1000),
    Case("diou_1k_x_1k", "diou", "pairwise", 1000, 1000),
    Case("diou_10k_x_1k", "diou", "pairwise", 10000, 1000),
    Case("ciou_1k_x_1k", "ciou", "pairwise", 1000, 1000),
    Case("ciou_10k_x_1k", "ciou", "pairwise", 10000, 1000),
    Case("giou_loss_100k", "giou", "loss", 100000, small=True),
    Case("diou_loss_100k", "diou", "loss", 100000),
    Case("ciou_loss_100k", "ciou", "loss", 100000),
    Case("giou_loss_1m", "giou", "loss", 1000000),
    Case("ciou_loss_1m", "ciou", "loss", 1000000),
]
BY_NAME = {c.name: c for c in CASES}


def _calls(torch, tv, case: Case):
    """({"cnnops": fn, "torchvision": fn}, check) for one case on CUDA tensors."""
    if case.what == "pairwise":
        b1, b2 = _boxes(torch, case.N, 1).cuda(), _boxes(torch, case.M, 2).cuda()
        ours, theirs = getattr(cnnops, KINDS[case.kind]), getattr(tv.ops, KINDS[case.kind])
        return ({"cnnops": lambda: ours(b1, b2), "torchvision": lambda: theirs(b1, b2)},
                lambda: common.rel_error(ours(b1, b2).cpu(), theirs(b1, b2).cpu()))
    p = _boxes(torch, case.N, 3)
    t = _boxes(torch, case.N, 4)
    half = case.N // 2
    t[:half] = p[:half] + torch.from_numpy(np.random.default_rng(5).uniform(-8, 8, (half, 4)).astype(np.float32))
    t[:, 2:] = torch.maximum(t[:, 2:], t[:, :2] + 1)
    p, t = p.cuda(), t.cuda()
    loss = getattr(cnnops, f"{case.kind}_loss")
    loss_bwd = getattr(cnnops, f"{case.kind}_loss_backward")
    peer = getattr(tv.ops, LOSSES[case.kind])
    pr, tr = p.clone().requires_grad_(), t.clone().requires_grad_()

    def ours():
        return loss(p, t, reduction="mean"), loss_bwd(1.0, p, t, reduction="mean")

    def theirs():
        pr.grad = None
        tr.grad = None
        val = peer(pr, tr, reduction="mean")
        val.backward()
        return val.detach(), (pr.grad, tr.grad)

    def check():
        v1, (g1, g2) = ours()
        v2, (h1, h2) = theirs()
        return max(common.rel_error(v1.cpu(), v2.cpu()), common.rel_error(g1.cpu(), h1.cpu()),
                   common.rel_error(g2.cpu(), h2.cpu()))

    return {"cnnops": ours, "torchvision": theirs}, check


def bench_case(torch, tv, case: Case, repeats, quick) -> dict:
    row = {"name": case.name, "op": case.op(), "shape": case.shape_str(), "bytes": case.nbytes(), "errors": []}
    try:
        fns, check = _calls(torch, tv, case)
        row["rel_error"] = check()
        row["correct"] = row["rel_error"] <= REL_ERR_TOL
        stats, row["repeats"], row["number"] = time_sides(torch, fns, repeats, quick)
        for side, st in stats.items():
            st["gbs"] = case.nbytes() / (st["median_ms"] / 1e3) / 1e9
            row[side] = st
        row["speedup"] = row["torchvision"]["median_ms"] / row["cnnops"]["median_ms"]
    except Exception as e:  # noqa: BLE001 - reported per case, the run goes on
        row["errors"].append(f"{type(e).__name__}: {e}")
        row["correct"] = False
        row["speedup"] = None
    return row


def report_markdown(data) -> str:
    bw = data["copy_bandwidth_gbs"]
    rows = []
    for r in data["cases"]:
        if r["errors"]:
            rows.append([r["name"], r["op"], r["shape"], "error", "", "", "", "", "; ".join(r["errors"])])
            continue
        c, t = r["cnnops"], r["torchvision"]
        rows.append([r["name"], r["op"], r["shape"], f"{c['median_ms']:.3f}", f"{t['median_ms']:.3f}",
                     f"{r['speedup']:.2f}x", f"{c['gbs']:.0f}", f"{c['gbs'] / bw:.0%}",
                     common.fmt(r["rel_error"], ".1e")])
    table = common.markdown_table(["case", "op", "shape", "cnnops ms", "torchvision ms", "speed-up", "cnnops GB/s",
                                   "of copy bw", "rel err"], rows, "lllrrrrrr")
    m = data["machine"]
    head = [f"# Boxes and the IoU family on {data['gpu']}: cnnops vs torchvision CUDA", "",
            f"- **Date**: {m.get('date')}", f"- **Command**: `{m.get('command')}`",
            *([f"- **Commit**: {m['commit']}"] if m.get("commit") else []),
            f"- **GPU**: {data['gpu']} ({data['gpu_detail']})",
            f"- **cnnops**: {m['cnnops'].get('version')}, build: {m['cnnops'].get('build')}",
            f"- **PyTorch**: {m.get('torch')}, torchvision {data['torchvision']}",
            f"- **Device-to-device copy**: {bw:.0f} GB/s (read + write)", "",
            "CUDA events after warm-up, cnnops and torchvision interleaved, median of repeats; float32 boxes as "
            "torch CUDA tensors. Losses: forward + backward (torchvision through autograd), reduction 'mean'.",
            "", table]
    return "\n".join(head)


def run(repeats=None, quick=False, out=None, layers=None, commit=None) -> int:
    """Run the GPU box suite; write <out>/boxes_<gpu>.json and .md. Returns 0 when every case ran and
    matched torchvision, 1 otherwise, 2 on bad arguments or a missing peer."""
    st = start("boxes", [c.name for c in CASES if c.small or not quick or layers], layers, commit, ("torchvision",))
    if isinstance(st, int):
        return st
    torch, tv, names, gpu, machine = st.torch, st.peers["torchvision"], st.names, st.gpu, st.machine
    print(f"boxes CUDA benchmark on {gpu}: {len(names)} cases, cnnops {cnnops.__version__}, "
          f"torchvision {tv.__version__}", flush=True)
    bw = copy_bandwidth(torch)
    rows = []
    for name in names:
        r = bench_case(torch, tv, BY_NAME[name], repeats, quick)
        rows.append(r)
        if r["errors"]:
            print(f"  {name:22s} ERROR {r['errors']}", flush=True)
        else:
            print(f"  {name:22s} {r['cnnops']['median_ms']:8.3f} vs {r['torchvision']['median_ms']:8.3f} ms "
                  f"({r['speedup']:.2f}x)  {r['cnnops']['gbs']:6.0f} GB/s  err {r['rel_error']:.1e}", flush=True)
    data = {"suite": "boxes", "device": "cuda", "gpu": gpu,
            "gpu_detail": cnnops.cuda.device_name(torch.cuda.current_device()), "torchvision": tv.__version__,
            "machine": machine, "copy_bandwidth_gbs": bw,
            "settings": {"quick": bool(quick), "repeats": repeats, "dtype": "float32", "cases": names},
            "cases": rows, "summary": {"geomean_speedup": common.geomean(r["speedup"] for r in rows)}}
    jpath, mpath = common.write_results(out, f"boxes_{gpu_stem(gpu)}", data, report_markdown(data))
    print(f"\nwrote {jpath} and {mpath}")
    return 0 if all(r["correct"] and not r["errors"] for r in rows) else 1


__all__ = ["run", "CASES"]
