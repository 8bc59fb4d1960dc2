"""Training steps on the CPU: a network built with cnnops.nn against the same network in PyTorch
eager mode, from the same weights, on the same batch and the same number of threads.

Cases (``CASES``): one LeNet-5 training step at batch 64 (forward, softmax cross-entropy,
backward, one SGD update with momentum 0.9), the same at batch 256, the inference forward at
batch 64 (eval mode), and a ResNet-18 (torchvision's layout, 10 classes, BatchNorm in training
mode) training step and inference forward at batch 16 on 112x112 RGB images. The cnnops side is
``cnnops.train.train_step`` with BLAS limited to one thread, as ``cnnops.train.fit`` runs it; the
torch side is ``zero_grad``, ``cross_entropy(model(x), y)``, ``backward``,
``torch.optim.SGD.step`` (forward under ``torch.no_grad``). Before timing, one step of each side
from identical weights is compared in float64: relative error of the logits, the loss, every
gradient and every updated parameter. Timing is interleaved, cnnops then torch, repeat after
repeat; the median per side is reported and torch/cnnops is the speed-up (above 1: cnnops
faster). Every timed step changes the weights (as in training); the
learning rate is small enough that the work per step does not change."""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

import cnnops

from . import common

STEM = "train_cpu"


@dataclass(frozen=True)
class Case:
    name: str
    model: str
    batch: int
    kind: str  # "step" or "forward"
    small: bool = True

    def describe(self) -> str:
        what = "training step (fwd + bwd + SGD)" if self.kind == "step" else "inference forward"
        return f"{self.model}, batch {self.batch}, {what}"


CASES = [
    Case("lenet5_step_b64", "lenet5", 64, "step"),
    Case("lenet5_forward_b64", "lenet5", 64, "forward"),
    Case("lenet5_step_b256", "lenet5", 256, "step", small=False),
    Case("resnet18_step_b16", "resnet18", 16, "step", small=False),
    Case("resnet18_forward_b16", "resnet18", 16, "forward", small=False),
]
BY_NAME = {c.name: c for c in CASES}
LR, MOMENTUM = 1e-3, 0.9


def torch_lenet5(torch, num_classes=10, in_channels=1):
    """LeNet-5 as torch.nn.Sequential, indices as in cnnops.nn.models.lenet5 (ReLU, max pooling)."""
    n = torch.nn
    return n.Sequential(n.Conv2d(in_channels, 6, 5), n.ReLU(), n.MaxPool2d(2), n.Conv2d(6, 16, 5), n.ReLU(),
                        n.MaxPool2d(2), n.Flatten(), n.Linear(400, 120), n.ReLU(), n.Linear(120, 84), n.ReLU(),
                        n.Linear(84, num_classes))


def build_pair(torch, case: Case, seed: int = 0, dtype=np.float32):
    """(cnnops model, torch model, x float32 images ((N, 1, 32, 32) for LeNet-5, (N, 3, 112, 112) for
    ResNet-18), labels (N,) int64) with equal weights, in `dtype`."""
    from .. import nn
    from .torch_adapter import resnet18 as torch_resnet18

    if case.model == "resnet18":
        model = nn.models.resnet18(num_classes=10, rng=np.random.default_rng(seed), dtype=dtype)
        tmodel, shape = torch_resnet18(torch, num_classes=10), (case.batch, 3, 112, 112)
    else:
        model = nn.models.lenet5(rng=np.random.default_rng(seed), dtype=dtype)
        tmodel, shape = torch_lenet5(torch), (case.batch, 1, 32, 32)
    model.needs_input_grad = False  # as in torch, where the images do not require grad
    # torch's BatchNorm also counts its batches; cnnops' has no such buffer
    if dtype == np.float64:
        tmodel = tmodel.double()
    tmodel.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in model.state_dict().items()},
                           strict=False)
    rng = np.random.default_rng(seed + 1)
    x = rng.random(shape).astype(dtype)
    y = rng.integers(0, 10, size=case.batch).astype(np.int64)
    return model, tmodel, x, y


def make_calls(torch, case: Case, model, tmodel, x, y) -> dict:
    """The two timed callables of a case, and their optimizers' state created."""
    from .. import nn
    from ..train import train_step

    loss_fn = nn.CrossEntropyLoss()
    opt = nn.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    topt = torch.optim.SGD(tmodel.parameters(), lr=LR, momentum=MOMENTUM)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    F = torch.nn.functional

    def torch_step():
        topt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(tmodel(tx), ty)
        loss.backward()
        topt.step()
        return loss

    def torch_forward():
        with torch.no_grad():
            return tmodel(tx)

    if case.kind == "step":
        model.train()
        tmodel.train()
        return {"cnnops": lambda: train_step(model, loss_fn, opt, x, y), "torch": torch_step}
    model.eval()
    tmodel.eval()
    return {"cnnops": lambda: model(x), "torch": torch_forward}


def check_case(torch, case: Case) -> float:
    """Largest relative error between the two sides after one call from identical weights: the
    logits for a forward; for a step the loss, every parameter's gradient and every updated
    parameter. In float64: at initialisation many gradients are sums that nearly cancel (a
    BatchNorm bias sums the gradient over the batch and the plane), so float32 runs of two correct
    implementations can differ by 1e-2 in them."""
    model, tmodel, x, y = build_pair(torch, case, seed=7, dtype=np.float64)
    calls = make_calls(torch, case, model, tmodel, x, y)
    if case.kind == "forward":
        return common.rel_error(calls["cnnops"](), calls["torch"]())
    loss, _ = calls["cnnops"]()
    tloss = float(calls["torch"]().detach())
    errs = [abs(loss - tloss) / max(abs(tloss), 1e-12)]
    tparams = dict(tmodel.named_parameters())
    for name, prm in model.named_parameters():
        errs.append(common.rel_error(prm.grad, tparams[name].grad))
        errs.append(common.rel_error(prm.data, tparams[name].detach()))
    return max(errs)


def bench_case(torch, case: Case, repeats, quick) -> dict:
    from ..train import blas_single_thread

    row = {"name": case.name, "what": case.describe(), "batch": case.batch, "kind": case.kind}
    with blas_single_thread():
        row["max_rel_error"] = check_case(torch, case)
        model, tmodel, x, y = build_pair(torch, case)
        calls = make_calls(torch, case, model, tmodel, x, y)
        for fn in calls.values():  # warm-up (allocations, thread pools)
            for _ in range(3):
                fn()
        t = max(common.time_once(calls["cnnops"]), common.time_once(calls["torch"]))
        reps, number = common.plan_repeats(t, repeats, quick)
        times = common.time_interleaved(calls, reps, number, warmup=1)
    row["cnnops"] = common.summarize_times(times["cnnops"])
    row["torch"] = common.summarize_times(times["torch"])
    row["repeats"], row["number"] = reps, number
    row["speedup"] = row["torch"]["median_ms"] / row["cnnops"]["median_ms"]
    row["correct"] = row["max_rel_error"] < 1e-4
    return row


def report_markdown(data: dict) -> str:
    """The markdown page of a result dict."""
    table = common.markdown_table(
        ["case", "what", "cnnops ms", "torch ms", "torch/cnnops", "spread cnnops / torch", "max rel err"],
        [[r["name"], r["what"], common.fmt(r["cnnops"]["median_ms"], ".3f"), common.fmt(r["torch"]["median_ms"], ".3f"),
          common.fmt(r["speedup"], ".2f") + "x",
          f"{common.fmt(r['cnnops']['spread'], '.0%')} / {common.fmt(r['torch']['spread'], '.0%')}",
          common.fmt(r["max_rel_error"], ".1e")] for r in data["cases"]], align="llrrrrr")
    md = ["# Training steps on the CPU: cnnops.nn vs PyTorch eager", "",
          common.machine_markdown(data["machine"], data["ceilings"]), ""]
    md += [f"> **Warning**: {w}\n" for w in data.get("warnings", [])]
    md += [__doc__.split("\n\n")[0].replace("\n", " "), "", table]
    return "\n".join(md)


def run(repeats=None, quick=False, out=None, layers=None, commit=None) -> int:
    """Run the training benchmark, print the table, write <out>/train_cpu.json and .md.

    layers: case names as 'a,b' or a list (default: all; with `quick`, the small ones); commit:
    the source revision recorded in the results. Returns 0 when every case ran and matched torch,
    1 otherwise, 2 on bad arguments or no PyTorch."""
    try:
        import torch
    except ImportError:
        print("cnnops bench train: needs PyTorch as the reference (pip install 'cnnops[bench]')", file=sys.stderr)
        return 2
    default = [c.name for c in CASES if c.small or not quick]
    try:
        if repeats is not None and int(repeats) < 1:
            raise ValueError(f"cnnops bench train: expected --repeats >= 1, got {repeats}")
        names = common.parse_names(layers, [c.name for c in CASES], "cnnops bench train") if layers else default
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    threads = cnnops.get_num_threads()
    torch.set_num_threads(threads)
    machine = common.machine_info({"torch": torch.__version__,
                                   "torch_parallel": f"{torch.get_num_threads()} threads, eager mode"}, commit)
    print(f"training-step CPU benchmark: {len(names)} cases, {threads} threads, cnnops {cnnops.__version__} "
          f"({cnnops.simd_level()}), torch {torch.__version__}", flush=True)
    ceilings = common.measure_ceilings(threads, quick=quick)
    rows = []
    for name in names:
        row = bench_case(torch, BY_NAME[name], repeats, quick)
        rows.append(row)
        print(f"  {name:20s} cnnops {row['cnnops']['median_ms']:8.3f} ms  torch {row['torch']['median_ms']:8.3f} ms  "
              f"({row['speedup']:.2f}x)  err {row['max_rel_error']:.1e}{'' if row['correct'] else ' WRONG'}",
              flush=True)
    machine["load_average_end"] = common.load_average()
    warning = common.busy_warning(machine["load_average_start"], machine["cores"]["usable"])
    result = {"suite": "train", "device": "cpu", "machine": machine, "ceilings": ceilings, "cases": rows,
              "warnings": [warning] if warning else [], "lr": LR, "momentum": MOMENTUM}
    jpath, mpath = common.write_results(out, STEM, result, report_markdown(result))
    print(f"\nwrote {jpath} and {mpath}")
    return 0 if all(r["correct"] for r in rows) else 1
