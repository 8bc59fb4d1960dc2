#!/usr/bin/env python
"""Rewrite the convolution benchmark table in README.md (between the ``<!-- bench-table -->`` and
``<!-- /bench-table -->`` markers) from benchmarks/results/conv_cpu.json.

    python benchmarks/update_readme_table.py [--results FILE] [--readme FILE]

Run it after ``python benchmarks/bench_conv.py`` (or ``python -m cnnops bench conv --out
benchmarks/results``). The goals each run is checked against (benchmarks/targets.py) are
printed by the bench scripts, not written into the README."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
START, END = "<!-- bench-table -->", "<!-- /bench-table -->"


def _shape(s: dict) -> str:
    extra = "".join(f" {k}{s[v]}" for k, v in (("s", "stride"), ("p", "padding"), ("g", "groups"))
                    if s[v] != (1 if v in ("stride", "groups") else 0))
    return f"{s['N']}x{s['C']}x{s['H']}x{s['W']} k{s['K']} {s['R']}x{s['S']}{extra}"


def _x(v) -> str:
    return "–" if v is None else f"{v:.2f}×"


def table(d: dict, results_name: str) -> str:
    """The markdown that goes between the markers."""
    m, c = d["machine"], d["ceilings"]
    commit = m.get("commit") or (m.get("git") or {}).get("commit") or "unknown"
    info = m.get("cnnops", {})
    flags = m.get("cpu_flags") or []
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    lines = [
        f"Latest run: `{m.get('command', 'python -m cnnops bench conv')}`, commit {commit}, {m['cpu']} "
        f"({m['cores']['usable']} cores with {isa}; cnnops kernels {info.get('simd', '?')}), "
        f"PyTorch {m.get('torch')} with oneDNN, "
        f"{info.get('threads', '?')} threads each, measured FMA peak {c['fma_peak_gflops']:.0f} GFLOP/s and copy "
        f"bandwidth {c['copy_bandwidth_gbs']:.1f} GB/s. Full tables (backward GFLOP/s, repeats, errors): "
        f"[{results_name}]({results_name}).",
        "",
        "| layer | N×C×H×W, K, R×S | algo | forward speed-up | forward % FMA peak | backward speed-up |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in d["layers"]:
        f, b = r["forward"], r["backward"]
        lines.append(f"| {r['name']} | {_shape(r['shape'])} | {r['algo']} | {_x(f and f['speedup'])} | "
                     f"{'–' if not f else format(100 * f['cnnops']['peak_fraction'], '.0f') + '%'} | "
                     f"{_x(b and b['speedup'])} |")
    sm = d["summary"]
    lines += ["", f"Forward geometric-mean speed-up **{_x(sm['forward_geomean_speedup'])}**, backward "
                  f"**{_x(sm['backward_geomean_speedup'])}**."]
    lines += ["", "The machine is a shared 2-core VM and noisy: between consecutive runs single layers move by up "
                  "to ±20% (both libraries), so quote ratios from one interleaved run, not absolute times."]
    fams = {k: v for k, v in d.get("summary_by_family", {}).items() if k != "conv2d"}
    if fams:
        lines += ["", "Other families in the same run (geometric-mean speed-up vs PyTorch; per-layer tables in the "
                      "results file):", "", "| family | forward | backward |", "|---|---:|---:|"]
        for name, s in fams.items():
            lines.append(f"| {name} | {_x(s['forward_geomean_speedup'])} | {_x(s['backward_geomean_speedup'])} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(HERE / "results" / "conv_cpu.json"), help="conv_cpu.json to read")
    p.add_argument("--readme", default=str(HERE.parent / "README.md"), help="README to rewrite")
    args = p.parse_args(argv)
    with open(args.results, encoding="utf-8") as f:
        d = json.load(f)
    readme = Path(args.readme)
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"update_readme_table: {readme} has no {START} ... {END} markers", file=sys.stderr)
        return 2
    rel = Path(args.results).resolve().with_suffix(".md")
    try:
        rel = rel.relative_to(readme.resolve().parent)
    except ValueError:
        pass
    start, end = text.index(START), text.index(END)
    readme.write_text(text[:start] + START + "\n" + table(d, rel.as_posix()) + "\n" + text[end:], encoding="utf-8")
    print(f"rewrote the table in {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
