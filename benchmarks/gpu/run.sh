#!/usr/bin/env bash
# One call on the lent GPU machine: build with nvcc, report the device, run the `cuda` tests,
# and leave logs under $OUT. Usage (device tool): bash benchmarks/gpu/run.sh
set -uo pipefail
OUT=${OUT:-/tmp/cnnops_gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  nvcc --version | tail -1
  python3 -m pip install --no-build-isolation --no-deps -q . 2>&1 | tail -3
  cd /tmp  # import the installed package, not the source tree
  python3 -m cnnops info
  python3 -m pytest -q -m cuda "$OLDPWD/tests" 2>&1 | tail -15
  python3 -m pytest -q "$OLDPWD/tests" 2>&1 | tail -3   # the CPU suite too, here on 16 threads
} 2>&1 | tee "$OUT/gpu_run.log"
