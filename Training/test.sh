#!/usr/bin/env bash
# The training pipeline's own tests, with the venv python (Training/.venv, created by
# Training/setup_venv.sh when missing): the standard-library tests (Training/tests/test_*.py, the
# ones CI runs with the system python3 through Scripts/test.sh) and the tests that need torch,
# xlstm and the Swift `emotion` tool (Training/tests/torchtest_*.py). The tool is built when
# .build/release/emotion is missing; `--build` rebuilds it first (after changing Swift sources).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(bash Training/setup_venv.sh)
if [ "${1:-}" = "--build" ] || [ ! -x .build/release/emotion ]; then
    bash Scripts/setup.sh >/dev/null
    bash Scripts/build-release.sh emotion
fi
export PYTHONDONTWRITEBYTECODE=1 OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
echo "== standard-library tests (test_*.py)"
"$PY" -m unittest discover -s Training/tests -p 'test_*.py'
echo "== torch tests (torchtest_*.py)"
"$PY" -m unittest discover -s Training/tests -p 'torchtest_*.py'
