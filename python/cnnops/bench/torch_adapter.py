"""PyTorch models patched with cnnops against the same models unpatched
(``python -m cnnops bench torch``).

Cases: a training step (forward, cross-entropy, backward, SGD with momentum) of ResNet-18 (the
torchvision architecture, defined here so torchvision is not needed) at batch 16 and 112x112 and
of the TensorFlow-tutorial MNIST CNN (5x5 conv 32, pool, 5x5 conv 64, pool, fc 1024, fc 10, "SAME"
padding) at batch 64, plus inference (eval mode, no grad) of both. The patched model is a deep
copy of the unpatched one with ``cnnops.torch.patch`` applied; both run on the same batch in the
same process with the same thread count, interleaved, median of repeats. The per-call overhead of
the custom operator (dispatcher, autograd node, DLPack) is measured on a 1x1x1x1 max pooling."""
from __future__ import annotations

import copy
import sys
import time

from . import common

STEM = "torch_cpu"
CASES = ["resnet18_step_b16", "resnet18_infer_b16", "mnist_cnn_step_b64", "mnist_cnn_infer_b64"]


def resnet18(torch, num_classes=1000):
    """ResNet-18 with torchvision's layer layout and state_dict keys."""
    nn = torch.nn

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            idt = x if self.downsample is None else self.downsample(x)
            y = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(y)) + idt)

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            chans, cin = (64, 128, 256, 512), 64
            for i, c in enumerate(chans):
                s = 1 if i == 0 else 2
                setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, c, s), BasicBlock(c, c, 1)))
                cin = c
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))

    return ResNet()


def mnist_cnn(torch):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 5, padding=2),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(7 * 7 * 64, 1024), nn.ReLU(),
                         nn.Linear(1024, 10))


def make_case(torch, name):
    """(plain callable, patched callable, description, check) for one case."""
    import cnnops.torch as ct

    torch.manual_seed(0)
    if name.startswith("resnet18"):
        model, x = resnet18(torch, 10), torch.randn(16, 3, 112, 112)
    else:
        model, x = mnist_cnn(torch), torch.randn(64, 1, 28, 28)
    y = torch.randint(0, 10, (x.shape[0],))
    patched = copy.deepcopy(model)
    report = ct.patch(patched)
    F = torch.nn.functional
    if name.endswith(tuple(f"_b{b}" for b in (16, 64))) and "_infer_" in name:
        model.eval()
        patched.eval()

        def infer(m):
            def run():
                with torch.no_grad():
                    return m(x)
            return run
        return infer(model), infer(patched), f"inference, batch {x.shape[0]}", report

    def step(m):
        opt = torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.9)

        def run():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            opt.step()
            return loss
        return run
    return step(model), step(patched), f"training step, batch {x.shape[0]}", report


def dispatch_overhead_us(torch) -> dict:
    """Microseconds per call of a 1x1x1x1 max pooling: PyTorch's own op, cnnops' entry point, and
    the cnnops custom operator with and without autograd."""
    import cnnops
    import cnnops.torch as ct

    x = torch.randn(1, 1, 1, 1)
    xg = x.clone().requires_grad_()
    fns = {"torch": lambda: torch.nn.functional.max_pool2d(x, 1), "cnnops": lambda: cnnops.max_pool2d(x, 1),
           "custom_op": lambda: ct.functional.max_pool2d(x, 1),
           "custom_op_autograd": lambda: ct.functional.max_pool2d(xg, 1)}
    out = {}
    for k, f in fns.items():
        for _ in range(200):
            f()
        t0 = time.perf_counter()
        for _ in range(2000):
            f()
        out[k] = (time.perf_counter() - t0) / 2000 * 1e6
    return out


def report_markdown(data) -> str:
    rows = []
    for r in data["cases"]:
        if "error" in r:
            rows.append([r["name"], r.get("what", ""), "error", "", "", r["error"]])
            continue
        rows.append([r["name"], r["what"], f"{r['torch']['median_ms']:.1f}", f"{r['patched']['median_ms']:.1f}",
                     f"{r['speedup']:.2f}x", f"{r['swapped']} swapped"])
    table = common.markdown_table(["case", "what", "torch ms", "patched ms", "speed-up", "modules"], rows, "llrrrl")
    o = data["overhead_us"]
    return "\n".join([
        "# PyTorch models patched with cnnops vs unpatched", "",
        common.machine_markdown(data["machine"], data["ceilings"]), "",
        "Same process, same batch, interleaved, median of repeats; the patched model is a deep copy with "
        "`cnnops.torch.patch` applied (convolutions, max and adaptive pooling run on cnnops kernels through "
        "custom operators). float32.", "", table, "",
        f"Per-call overhead (1x1x1x1 max pooling): PyTorch {o['torch']:.1f} µs, cnnops entry point "
        f"{o['cnnops']:.1f} µs, custom operator {o['custom_op']:.1f} µs, with autograd "
        f"{o['custom_op_autograd']:.1f} µs."])


def run(repeats=None, quick=False, out=None, layers=None, commit=None) -> int:
    try:
        import torch
    except ImportError:
        print("cnnops bench torch: needs PyTorch (pip install 'cnnops[torch]')", file=sys.stderr)
        return 2
    import cnnops

    try:
        names = common.parse_names(layers, CASES, "cnnops bench torch")
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    threads = cnnops.get_num_threads()
    torch.set_num_threads(threads)
    machine = common.machine_info({"torch": torch.__version__, "torch_parallel": f"{torch.get_num_threads()} threads"},
                                  commit)
    print(f"PyTorch adapter benchmark: {len(names)} cases, {threads} threads, torch {torch.__version__}", flush=True)
    c0 = common.measure_ceilings(threads, quick=quick)
    overhead = dispatch_overhead_us(torch)
    print("per-call overhead (us): " + ", ".join(f"{k} {v:.1f}" for k, v in overhead.items()), flush=True)
    rows = []
    for name in names:
        row = {"name": name}
        try:
            plain, patched, what, report = make_case(torch, name)
            row["what"], row["swapped"] = what, len(report.swapped)
            t = common.time_once(plain)
            reps, number = common.plan_repeats(t, repeats, quick)
            times = common.time_interleaved({"torch": plain, "patched": patched}, reps, number, warmup=1)
            for side, samples in times.items():
                row[side] = common.summarize_times(samples)
            row["speedup"] = row["torch"]["median_ms"] / row["patched"]["median_ms"]
            print(f"  {name:22s} torch {row['torch']['median_ms']:8.1f} ms, patched {row['patched']['median_ms']:8.1f}"
                  f" ms ({row['speedup']:.2f}x)", flush=True)
        except Exception as e:  # noqa: BLE001 - one failing case must not stop the suite
            row["error"] = f"{type(e).__name__}: {e}"
            print(f"  {name:22s} ERROR {row['error']}", flush=True)
        rows.append(row)
    c1 = common.measure_ceilings(threads, quick=quick)
    data = {"suite": "torch", "device": "cpu", "machine": machine, "ceilings": common.finish_ceilings(c0, c1),
            "settings": {"quick": bool(quick), "repeats": repeats, "threads": threads, "cases": names},
            "overhead_us": overhead, "cases": rows}
    jpath, mpath = common.write_results(out, STEM, data, report_markdown(data))
    print(f"\nwrote {jpath} and {mpath}")
    return 0 if all("error" not in r for r in rows) else 1
