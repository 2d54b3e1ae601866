#!/usr/bin/env bash
# Soak test (issue #11): builds emotion-server, runs it with API keys (two tenants, a flood tenant,
# an admin), a journal and a temporary state dir, drives it for --duration seconds with concurrent
# valid sessions mixed with hostile traffic, then SIGTERMs it and checks a restart restores the
# sessions. Prints turns/s, latency percentiles, every status count and RSS; exits non-zero on any
# failure (see Scripts/soak.py's docstring for the list).
#
#   Scripts/soak.sh [--release] [--duration 600] [--sessions 32] [--model Models/default] [--out report.json] ...
#
# Other options go to Scripts/soak.py (--help lists them). Not part of Scripts/test.sh (too long).
set -euo pipefail
cd "$(dirname "$0")/.."
release=0 args=()
for a in "$@"; do
    if [ "$a" = "--release" ]; then release=1; else args+=("$a"); fi
done
if [ "$release" = 1 ]; then
    bash Scripts/build-release.sh emotion-server >&2
    binary=.build/release/emotion-server
else
    swift build --product emotion-server >&2
    binary=.build/debug/emotion-server
fi
exec python3 Scripts/soak.py --binary "$binary" "${args[@]}"
