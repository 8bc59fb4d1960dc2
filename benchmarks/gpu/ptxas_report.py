"""Registers, static shared memory and spills of every kernel in some CUDA sources, as ptxas
reports them when compiling for one architecture (no GPU needed):

    python benchmarks/gpu/ptxas_report.py --arch sm_90 csrc/ops/cuda/conv*.cu > report.md

Each source is compiled with the package's include path and -Xptxas -v; the table lists one row
per kernel instantiation. Exit status 1 when any kernel spills to local memory."""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import sysconfig
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def compile_report(src: str, arch: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["nvcc", "-DCNNOPS_WITH_CUDA=1", f"-I{ROOT}/csrc", f"-I{sysconfig.get_paths()['include']}",
               "-O3", "-DNDEBUG", "-std=c++17", f"-arch={arch}", "-Xptxas", "-v", "-Xcompiler=-fPIC",
               "-x", "cu", "-c", src, "-o", os.path.join(tmp, "k.o")]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"nvcc failed on {src}:\n{out.stderr}")
        return out.stderr


def demangle(name: str) -> str:
    try:
        name = subprocess.run(["c++filt", name], capture_output=True, text=True).stdout.strip()
    except FileNotFoundError:
        return name
    for ns in ("cnnops::cuda::", "igemm::", "(anonymous namespace)::"):
        name = name.replace(ns, "")
    return re.sub(r"\(.*", "", name).replace("void ", "")  # the argument list


def rows(log: str):
    name, spill = None, 0
    for line in log.splitlines():
        m = re.search(r"Compiling entry function '(\S+)'", line)
        if m:
            name, spill = demangle(m.group(1)), 0
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            spill = int(m.group(1)) + int(m.group(2))
        m = re.search(r"Used (\d+) registers", line)
        if m and name:
            smem = re.search(r"(\d+) bytes smem", line)
            yield name, int(m.group(1)), int(smem.group(1)) if smem else 0, spill
            name = None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("sources", nargs="+")
    args = ap.parse_args(argv)
    print(f"ptxas -v for {args.arch}\n")
    print("| source | kernel | registers | static shared (bytes) | spill (bytes) |\n|---|---|---:|---:|---:|")
    spilled = False
    for src in args.sources:
        for name, regs, smem, spill in rows(compile_report(src, args.arch)):
            spilled |= spill > 0
            print(f"| {os.path.basename(src)} | `{name}` | {regs} | {smem} | {spill} |")
    return 1 if spilled else 0


if __name__ == "__main__":
    sys.exit(main())
