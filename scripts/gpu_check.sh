#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py) once, under a time limit, on a CUDA machine: the lent
# device machine (`bash scripts/gpu_check.sh` through the device tool, which returns $OUT) or your own.
# Writes gpu_check.json, gpu_check.log and nvidia_smi.csv to $OUT (default runs/gpu_check).
# Backbone: .gpu/vgg16.pth when present (copy ../shared/weights/*.pth there, and carry .gpu), else
# random weights (the timings do not depend on them). LIMIT_S (default 420 s) leaves time to rerun.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-runs/gpu_check}"
mkdir -p "$out"
weights=none
[ -f .gpu/vgg16.pth ] && weights=.gpu/vgg16.pth
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$out/nvidia_smi.csv" 2>&1
PYTHONUNBUFFERED=1 timeout "${LIMIT_S:-420}" "${PYTHON:-python3}" benchmarks/gpu_check.py --weights "$weights" \
  --out "$out/gpu_check.json" 2>&1 | tee "$out/gpu_check.log"
