#!/usr/bin/env bash
# Set up, then run the unit tests (tests needing ../shared skip with a reason when it is absent;
# the browser test needs Chromium and Playwright, installed below when possible),
# then every notebook in quick mode with nbval (outputs marked NBVAL_IGNORE_OUTPUT vary; the rest
# are compared). Arguments go to the unit-test run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
if [ -z "${CC2DKIT_ISBI_ROOT:-}" ] && [ -d ../shared/data/isbi2015 ]; then
  export CC2DKIT_ISBI_ROOT="$(cd ../shared/data/isbi2015 && pwd)"
fi
if [ -z "${CC2DKIT_WEIGHTS:-}" ] && [ -f ../shared/weights/vgg16_hed_bsds_from_imagenet.pth ]; then
  export CC2DKIT_WEIGHTS="$(cd ../shared/weights && pwd)/vgg16_hed_bsds_from_imagenet.pth"
fi
# The real-browser test (tests/test_browser.py) drives JupyterLab with Debian's Chromium through
# Playwright for Python; install them when missing. Where that fails, the test skips, saying why.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
    || echo "chromium could not be installed: tests/test_browser.py will be skipped"
fi
.venv/bin/python -c "import playwright" 2>/dev/null || .venv/bin/python -m pip install -q playwright \
  || echo "playwright could not be installed: tests/test_browser.py will be skipped"
# Two pytest-xdist workers: the quick-mode notebooks and the unit tests run on one torch thread each
# (tests/conftest.py), so two at once fill two cores. A file's tests, and a notebook's cells, stay on
# one worker (--dist loadfile). CC2DKIT_TEST_WORKERS=0 runs everything in one process.
WORKERS="${CC2DKIT_TEST_WORKERS:-2}"
.venv/bin/python -m pytest -n "$WORKERS" --dist loadfile "$@"
CC2DKIT_QUICK=1 .venv/bin/python -m pytest -n "$WORKERS" --dist loadfile --nbval --nbval-current-env \
  --nbval-cell-timeout=900 -p no:cacheprovider notebooks
