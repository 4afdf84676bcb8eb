#!/usr/bin/env bash
# The main job: set up, then train CC2D on the embedded phantom data, predict, evaluate, draw.
# Extra arguments go to `python -m cc2dkit train` (e.g. --preset cpu --out runs/cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
if [ $# -eq 0 ]; then set -- --preset smoke --out runs/smoke; fi
.venv/bin/python -m cc2dkit train "$@"
