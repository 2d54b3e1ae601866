#!/usr/bin/env bash
# The project's test command (README, CI): installs system libraries if missing, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
swift build --build-tests
swift test --skip-build --parallel --num-workers 2 "$@"
