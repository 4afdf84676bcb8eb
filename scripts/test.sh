#!/usr/bin/env bash
# Set up, then run the unit tests (tests needing ../shared skip with a reason when it is absent),
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
.venv/bin/python -m pytest "$@"
CC2DKIT_QUICK=1 .venv/bin/python -m pytest --nbval --nbval-current-env --nbval-cell-timeout=900 -p no:cacheprovider notebooks
