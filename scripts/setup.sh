#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the pinned requirements (quick when already there).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install -q -r requirements.txt
