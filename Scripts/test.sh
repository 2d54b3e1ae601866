#!/usr/bin/env bash
# The project's test command (README, CI): installs system libraries if missing, builds, and runs
# every test target. The Swift tests need no Python: the golden fixtures from the reference
# implementations are committed under Tests/*/Fixtures. The training pipeline's data code is tested
# with the system python3 and the standard library only (no venv); it reads ../shared/data in place.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
bash Scripts/validate-openapi.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Python (Training/tests, unittest): stops here if any fails.
pystatus=0
PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s Training/tests -p 'test_*.py' 2>&1 | tee "$log" || pystatus=$?
pyran=$(grep -Eo '^Ran [0-9]+ tests?' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
pyfailed=0
for n in $(grep -E '^FAILED \(' "$log" | tail -1 | grep -Eo '(failures|errors|unexpected successes)=[0-9]+' | grep -Eo '[0-9]+'); do
    pyfailed=$((pyfailed + n))
done
pyskipped=$(grep -E '^(OK|FAILED) \(' "$log" | tail -1 | grep -Eo 'skipped=[0-9]+' | grep -Eo '[0-9]+' || echo 0)
[ "$pyran" -gt 0 ] || [ "$pystatus" -ne 0 ] || { echo "python tests: none found in Training/tests"; exit 1; }
if [ "$pystatus" -ne 0 ] && [ "$pyfailed" -eq 0 ]; then pyfailed=1; fi  # e.g. an error before any test ran
echo "python tests: $((pyran - pyfailed - pyskipped)) passed, ${pyfailed} failed"
[ "$pystatus" -eq 0 ] || exit "$pystatus"
swift build --build-tests
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
# The live contract run: schemathesis against the debug emotion-server built above.
ststatus=0
bash Scripts/schemathesis.sh "$(swift build --show-bin-path)/emotion-server" || ststatus=$?
[ "$status" -ne 0 ] && exit "$status"
exit $ststatus
