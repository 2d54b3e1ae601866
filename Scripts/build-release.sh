#!/usr/bin/env bash
# Builds a release product of this package so that it reflects the current sources:
#
#   Scripts/build-release.sh PRODUCT        (e.g. emotion, emotion-server)
#
# Why not plain `swift build -c release`: SwiftPM 6.3 does not recompile a release module when a
# module it reaches only through another one changes a type's layout. Adding a stored property to
# AudioFrontEnd's front end, for one, rebuilt AudioFrontEnd and CLAP (then the encoder's module) but
# left EmotionCLI compiled against CLAPEncoder's old layout, and `emotion embed` crashed; a stale
# layout can as well compute garbage without crashing. So when the sources (the modules,
# Package.swift) differ from those of the last build made by this script, the object files of the
# package's own modules are removed first and every one of those modules is recompiled (about
# 30 s); dependencies' builds are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
product=${1:?usage: Scripts/build-release.sh PRODUCT}
stamp=.build/release-sources.sha256
# The package's own module directories (Sources/*, and the benchmark executable's).
modules=(Sources/*/ Benchmarks/ClassifierBenchmark/ Benchmarks/WhisperBenchmark/ Benchmarks/RooflineProbe/)
digest=$({ find "${modules[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; sha256sum Package.swift; } \
    | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$digest" ] && [ -d .build/release/ ]; then
    for module in "${modules[@]}"; do
        dir=".build/release/$(basename "$module").build"
        if [ -d "$dir" ]; then find "$dir" -name '*.o' -delete; fi
    done
fi
swift build -c release --product "$product"
mkdir -p .build
echo "$digest" > "$stamp"
