#!/usr/bin/env bash
# Validates openapi.yaml with openapi-spec-validator (OpenAPI 3.1 rules), installed into a small
# venv under .build/ the first time (PyPI). Part of Scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.build/tools-venv
if ! "$venv/bin/python" -c "import openapi_spec_validator, yaml" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "openapi-spec-validator>=0.7" pyyaml
fi
"$venv/bin/python" - <<'PY'
import sys, yaml
from openapi_spec_validator import validate
with open("openapi.yaml") as f:
    spec = yaml.safe_load(f)
validate(spec)
print(f"openapi.yaml: valid OpenAPI {spec['openapi']} ({len(spec['paths'])} paths)")
PY
