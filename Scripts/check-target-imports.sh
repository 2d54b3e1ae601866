#!/usr/bin/env bash
# Compares each target's imports with its declared dependencies in Package.swift:
#
#   Scripts/check-target-imports.sh
#
# Reports, per target, a module it imports but does not declare (it builds only because another
# dependency happens to pull the module in) and a declared dependency it never imports. A test
# target's dependency on an executable target is not reported: it is declared so that the
# executable is built before the tests that run it. System modules (Foundation, Glibc, Testing,
# ...) are not package modules and are ignored. Exit status 1 when anything is reported.
# Not part of the build or of Scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
swift package dump-package | python3 -c '
import json, os, re, sys

package = json.load(sys.stdin)
targets = {t["name"]: t for t in package["targets"]}

def dependency_name(d):
    for kind in ("byName", "target", "product"):
        if kind in d:
            return d[kind][0]
    raise ValueError(d)

# Modules this package can import: its own targets and the products it depends on (each of these
# products is a module of the same name; Yams is named without its package).
known = set(targets) | {dependency_name(d) for t in targets.values() for d in t["dependencies"]}
imports_re = re.compile(r"^\s*(?:@testable\s+|@_exported\s+|(?:public|package|internal)\s+)?import\s+(\w+)", re.M)

def path(t):
    if t.get("path"):
        return t["path"]
    base = "Tests" if t["type"] == "test" else "Sources"
    return os.path.join(base, t["name"])

problems = 0
for name, t in sorted(targets.items()):
    if t["type"] == "system":
        continue
    imported = set()
    for root, _, files in os.walk(path(t)):
        for f in files:
            if f.endswith(".swift"):
                with open(os.path.join(root, f), encoding="utf-8") as handle:
                    imported |= {m for m in imports_re.findall(handle.read()) if m in known}
    imported.discard(name)
    declared = {dependency_name(d) for d in t["dependencies"]}
    missing = sorted(imported - declared)
    unused = sorted(m for m in declared - imported
                    if not (t["type"] == "test" and targets.get(m, {}).get("type") == "executable"))
    for m in missing:
        print(f"{name}: imports {m}, which is not a declared dependency")
    for m in unused:
        print(f"{name}: declares {m}, which it never imports")
    problems += len(missing) + len(unused)
print(f"{len(targets)} targets: " + (f"{problems} problem(s)" if problems else "every import declared, every dependency imported"))
sys.exit(1 if problems else 0)
'
