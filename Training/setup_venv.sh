#!/usr/bin/env bash
# Creates Training/.venv with the reference stack (torch CPU, xlstm, onnxruntime) when missing.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import torch, xlstm, onnxruntime, safetensors, transformers, tokenizers, librosa, psutil" 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -r requirements.txt
fi
echo "$(pwd)/.venv/bin/python"
