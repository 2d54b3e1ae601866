#!/usr/bin/env bash
# Rebuilds Models/default end to end from ../shared/data (Training/pipeline/build_default.py):
# the Python reference stack in Training/.venv, the Swift `emotion` tool, then every stage.
# Extra arguments go to build_default.py (e.g. --seed 1 --out /tmp/model --work /tmp/work).
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh >/dev/null
PY=$(bash Training/setup_venv.sh)
bash Scripts/build-release.sh emotion
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-2}
# Bit-reproducible training: MKL's conditional numerical reproducibility (results independent of
# memory alignment), with the thread count fixed by --threads (default 2).
export MKL_CBWR=${MKL_CBWR:-COMPATIBLE}
exec "$PY" Training/pipeline/build_default.py "$@"
