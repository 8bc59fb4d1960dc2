"""Charts of benchmark results (``python -m cnnops bench ... --plot``), drawn with matplotlib.

Two kinds, both read from the <family>_cpu.json files a run wrote:

- ``<family>_cpu_speedup.png``: one horizontal bar per case and pass, the speed-up over the peer
  (peer median / cnnops median; right of the line at 1 = cnnops faster), on a log scale.
- ``roofline_cpu.png``: every case whose FLOPs and bytes are counted (the convolution families),
  plotted at its arithmetic intensity (FLOPs / bytes) against the GFLOP/s cnnops achieved, under
  the roofline min(peak, intensity * bandwidth) drawn from the FMA peak and copy bandwidth
  measured in the same run (cnnops._C.measure_fma_peak_gflops and measure_copy_bandwidth_gbs).
  A point's distance below the roof is how far the kernel is from the machine's limit for that
  shape; Winograd layers count a direct convolution's FLOPs and can sit above the roof. Cases
  with bytes but no FLOP count (pooling, unpooling, boxes) are memory-bound by construction;
  their tables give GB/s against the bandwidth instead."""
from __future__ import annotations

import json
from pathlib import Path

PASSES = {"forward": "fwd", "backward": "bwd"}


def cases(data: dict) -> list:
    """One dict per timed pass of a result file: family, label, speed-up, and flops, bytes and
    cnnops seconds where the suite counts them (None otherwise)."""
    out = []
    if data.get("suite") == "conv":
        groups = [("conv2d", data.get("layers", []))]
        groups += [(fam, f["layers"]) for fam, f in data.get("families", {}).items()]
        for fam, rows in groups:
            for row in rows:
                for pn in PASSES:
                    p = row.get(pn)
                    if p:
                        out.append(_case(fam, f"{row['name']} {PASSES[pn]}", p["speedup"], row.get(f"flops_{pn}"),
                                         row.get(f"bytes_{pn}"), p["cnnops"]["median_ms"]))
        return out
    fam = data.get("suite", "?")
    for row in data.get("cases", []):
        if isinstance(row.get("forward"), dict) or isinstance(row.get("backward"), dict):
            for pn in PASSES:
                p = row.get(pn)
                if p:
                    out.append(_case(fam, f"{row['name']} {PASSES[pn]}", p["speedup"], row.get(f"flops_{pn}"),
                                     row.get(f"bytes_{pn}"), p["cnnops"]["median_ms"]))
        elif row.get("speedup") is not None and "cnnops" in row:
            out.append(_case(fam, row["name"], row["speedup"], row.get("flops"), row.get("bytes"),
                             row["cnnops"]["median_ms"]))
    return out


def _case(family, label, speedup, flops, nbytes, median_ms) -> dict:
    return {"family": family, "label": label, "speedup": speedup, "flops": flops, "bytes": nbytes,
            "seconds": median_ms / 1e3 if median_ms else None}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def speedup_chart(data: dict, path) -> Path | None:
    """Bar chart of every case's speed-up over the peer; None when the file has no timed case."""
    rows = cases(data)
    if not rows:
        return None
    plt = _pyplot()
    peer = "torchvision" if data.get("suite") in ("boxes", "nms") else "PyTorch"
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.28 * len(rows)))
    ys = range(len(rows))
    vals = [r["speedup"] for r in rows]
    ax.barh(list(ys), vals, color=["tab:green" if v >= 1 else "tab:red" for v in vals])
    ax.set_yticks(list(ys), [r["label"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel(f"speed-up over {peer} ({peer} time / cnnops time)")
    ax.set_title(f"{data.get('suite')} on {data.get('machine', {}).get('cpu', 'the CPU')}", fontsize=9)
    ax.grid(axis="x", alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def roofline_chart(datas: list, path) -> Path | None:
    """Roofline of every case with FLOPs and bytes across the result files; None when none has."""
    points = [c for d in datas for c in cases(d) if c["flops"] and c["bytes"] and c["seconds"]]
    ceil = next((d["ceilings"] for d in datas if d.get("ceilings") and any(
        c["flops"] and c["bytes"] for c in cases(d))), None)
    if not points or ceil is None:
        return None
    plt = _pyplot()
    peak, bw = ceil["fma_peak_gflops"], ceil["copy_bandwidth_gbs"]
    xs = [c["flops"] / c["bytes"] for c in points]
    lo, hi = min(xs + [peak / bw]) / 2, max(xs + [peak / bw]) * 2
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.plot(grid, [min(peak, x * bw) for x in grid], color="black", linewidth=1.2,
            label=f"roof: {peak:.0f} GFLOP/s FMA peak, {bw:.1f} GB/s copy")
    for fam in dict.fromkeys(c["family"] for c in points):
        sel = [c for c in points if c["family"] == fam]
        ax.scatter([c["flops"] / c["bytes"] for c in sel], [c["flops"] / c["seconds"] / 1e9 for c in sel],
                   label=fam, s=22)
    for c in points:
        ax.annotate(c["label"], (c["flops"] / c["bytes"], c["flops"] / c["seconds"] / 1e9), fontsize=6,
                    xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOPs per byte of minimal memory traffic)")
    ax.set_ylabel("cnnops GFLOP/s")
    ax.set_title(f"cnnops on {datas[0].get('machine', {}).get('cpu', 'the CPU')}", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_results(out, families) -> list:
    """Write the charts for the families' result files in `out` (those that exist); returns the
    paths written."""
    out = Path(out)
    datas, written = [], []
    for fam in families:
        f = out / f"{fam}_cpu.json"
        if not f.is_file():
            continue
        with open(f, encoding="utf-8") as fh:
            data = json.load(fh)
        datas.append(data)
        p = speedup_chart(data, out / f"{fam}_cpu_speedup.png")
        if p is not None:
            written.append(p)
    p = roofline_chart(datas, out / "roofline_cpu.png")
    if p is not None:
        written.append(p)
    return written
