#!/usr/bin/env bash
# Builds the HTTP parser fuzzer (libFuzzer + AddressSanitizer) into .build/fuzz/http-parser-fuzz.
# The fuzz entry point is compiled into the same module as Sources/HTTPServer, so it reaches the
# internal parser and state machine. Not part of `swift build`.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$root/.build/fuzz"
swiftc -sanitize=fuzzer,address -parse-as-library -module-name HTTPServer -O \
    -I "$root/Sources/COpenSSL" \
    "$root"/Sources/HTTPServer/*.swift "$root"/Fuzz/HTTPParserFuzz/*.swift \
    -lssl -lcrypto -o "$root/.build/fuzz/http-parser-fuzz" 2> >(grep -v "Cannot export local symbol" >&2)
echo "$root/.build/fuzz/http-parser-fuzz"
