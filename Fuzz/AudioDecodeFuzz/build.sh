#!/usr/bin/env bash
# Builds the audio decoding fuzzer (libFuzzer + AddressSanitizer) into .build/fuzz/audio-decode-fuzz.
# The entry point is compiled into the same module as Sources/AudioFrontEnd. Not part of `swift build`.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$root/.build/fuzz"
swiftc -sanitize=fuzzer,address -parse-as-library -module-name AudioFrontEnd -O \
    -I "$root/Sources/CSndFile" -I "$root/Sources/CSoxr" \
    "$root"/Sources/AudioFrontEnd/*.swift "$root"/Fuzz/AudioDecodeFuzz/*.swift \
    -lsndfile -lsoxr -o "$root/.build/fuzz/audio-decode-fuzz" 2> >(grep -v "Cannot export local symbol" >&2)
echo "$root/.build/fuzz/audio-decode-fuzz"
