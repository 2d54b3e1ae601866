#!/usr/bin/env bash
# The project's test command (README, CI): installs system libraries if missing, builds, and runs
# every test target. Needs no Python: the golden fixtures from the reference implementations are
# committed under Tests/*/Fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
bash Scripts/validate-openapi.sh
swift build --build-tests
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# Serial: several tests block threads on purpose (held inference, drains, slow clients) and, run
# in parallel on a 2-core machine, they would starve the concurrency pool that the in-process
# HTTP servers of other tests answer on. The whole suite takes about a minute this way.
swift test --skip-build --no-parallel "$@" 2>&1 | tee "$log" || status=$?
# One plain summary line: Swift Testing's count plus XCTest's.
st=$(grep -Eo 'Test run with [0-9]+ tests?' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
xc=$(grep -Eo 'Executed [0-9]+ tests?' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
failed=$(grep -E '^✘ Test ' "$log" | grep -v '^✘ Test run' | grep -c 'failed after' || true)
echo "tests: $((st + xc - failed)) passed, ${failed} failed"
exit $status
