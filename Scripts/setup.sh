#!/usr/bin/env bash
# Installs the system libraries the Swift package links against (Debian/Ubuntu), when missing.
# Idempotent: does nothing when everything is present.
set -euo pipefail

packages=(libopenblas-dev libsndfile1-dev libsoxr-dev libssl-dev pkg-config)
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
