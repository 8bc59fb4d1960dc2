#!/usr/bin/env bash
# The one prepared command for a lent GPU machine (device tool, from the repository root):
#   bash benchmarks/gpu/run.sh
# Builds cnnops with nvcc for the card present only (compute capability read from nvidia-smi, e.g.
# CMAKE_CUDA_ARCHITECTURES=90 on an H100/H200), runs the `cuda` tests (every op-family test on CUDA
# arrays, compared with the CPU kernels), then `python -m cnnops bench pool --device cuda` against
# PyTorch CUDA and `bench nms` / `bench boxes --device cuda` against torchvision CUDA on the same
# card. Prints progress; logs and results go to $OUT (the results also to benchmarks/results/ when
# the tree is writable). Each step has its own time limit (cuda tests 5 min, pool 5, nms 4, boxes
# 2), so a run ends within about 16 minutes plus the build; with less device time, run the steps
# that matter separately.
set -uo pipefail
OUT=${OUT:-/tmp/cnnops_gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
repo=$(pwd)
t0=$(date +%s)
step() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
{
  step "GPU"
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm --format=csv
  nvcc --version | tail -1
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' .')
  step "build for sm_${cap} only"
  python3 -m pip install --no-build-isolation --no-deps -q \
      -Ccmake.define.CMAKE_CUDA_ARCHITECTURES="${cap}" -Cbuild-dir=/tmp/cnnops-build . 2>&1 | tail -5
  cd /tmp || exit 1  # import the installed package, not the source tree
  python3 -m cnnops info
  step "cuda tests"
  timeout 300 python3 -m pytest -q -m cuda -p no:cacheprovider "$repo/tests" 2>&1 | tail -25
  step "pool benchmark vs PyTorch CUDA"
  timeout 300 python3 -m cnnops bench pool --device cuda --out "$OUT" \
      --commit "$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  cp "$OUT"/pool_*.json "$OUT"/pool_*.md "$repo/benchmarks/results/" 2>/dev/null
  step "nms benchmark vs torchvision CUDA"
  timeout 240 python3 -m cnnops bench nms --device cuda --out "$OUT" \
      --commit "$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  step "boxes benchmark vs torchvision CUDA"
  timeout 120 python3 -m cnnops bench boxes --device cuda --out "$OUT" \
      --commit "$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  cp "$OUT"/nms_*.json "$OUT"/nms_*.md "$OUT"/boxes_*.json "$OUT"/boxes_*.md "$repo/benchmarks/results/" 2>/dev/null
  step "done"
} 2>&1 | tee "$OUT/gpu_run.log"
