#!/usr/bin/env bash
# Installs the system libraries the Swift package links against (Debian/Ubuntu), when missing.
# Idempotent: does nothing when everything is present.
set -euo pipefail

packages=(libopenblas-dev libsndfile1-dev libsoxr-dev libssl-dev pkg-config)
# The OpenAPI validator (Scripts/validate-openapi.sh) needs a Python with venv.
command -v python3 >/dev/null && python3 -c "import venv, ensurepip" 2>/dev/null || packages+=(python3 python3-venv)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
