#!/usr/bin/env bash
# The project's run command (README): installs system libraries if missing, builds the server in
# release mode and serves the model package in Models/default (or the directory given as
# EMOTION_MODEL / --model) on http://127.0.0.1:8080. Extra arguments go to emotion-server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
bash Scripts/build-release.sh emotion-server
exec .build/release/emotion-server "$@"
