#!/usr/bin/env bash
# The one prepared command for a lent GPU machine (device tool, from the repository root):
#   bash benchmarks/gpu/run.sh
# Builds cnnops with nvcc for the card present only (compute capability read from nvidia-smi, e.g.
# CMAKE_CUDA_ARCHITECTURES=90 on an H100/H200), runs the `cuda` tests (every op-family test on CUDA
# arrays, compared with the CPU kernels), then `python -m cnnops bench pool --device cuda` against
# PyTorch CUDA, `bench nms` / `bench boxes --device cuda` against torchvision CUDA and `bench conv
# --device cuda` against cuDNN through PyTorch on the same card. Prints progress; logs and results
# go to $OUT (the results also to benchmarks/results/ when the tree is writable). Each step has its
# own time limit: cuda tests 2.5 min, pool 1.5, nms 2, boxes 1, conv 3 (10 minutes in all; the
# benchmarks with 11 repeats per case, conv with 7 per row), which leaves 2 minutes of the 12 for the
# build for one architecture on 16 cores. The conv benchmark writes its results after every layer,
# so a run its limit stops keeps the layers it finished. STEPS="tests conv" (any of tests, pool,
# nms, boxes, conv) runs a subset, e.g. to rerun what a first run cut short.
set -uo pipefail
OUT=${OUT:-/tmp/cnnops_gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
repo=$(pwd)
STEPS=${STEPS:-"tests pool nms boxes conv"}
want() { [[ " $STEPS " == *" $1 "* ]]; }
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
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
  if want tests; then
    step "cuda tests"
    timeout 150 python3 -m pytest -q -m cuda -p no:cacheprovider -x "$repo/tests" 2>&1 | tail -25
  fi
  if want pool; then
    step "pool benchmark vs PyTorch CUDA"
    timeout 90 python3 -m cnnops bench pool --device cuda --repeats 11 --out "$OUT" --commit "$commit"
  fi
  if want nms; then
    step "nms benchmark vs torchvision CUDA"
    timeout 120 python3 -m cnnops bench nms --device cuda --repeats 11 --out "$OUT" --commit "$commit"
  fi
  if want boxes; then
    step "boxes benchmark vs torchvision CUDA"
    timeout 60 python3 -m cnnops bench boxes --device cuda --repeats 11 --out "$OUT" --commit "$commit"
  fi
  if want conv; then
    step "conv benchmark vs cuDNN (PyTorch)"
    timeout 180 python3 -m cnnops bench conv --device cuda --repeats 7 --out "$OUT" --commit "$commit"
  fi
  cp "$OUT"/*.json "$OUT"/*.md "$repo/benchmarks/results/" 2>/dev/null
  step "done"
} 2>&1 | tee "$OUT/gpu_run.log"
