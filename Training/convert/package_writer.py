"""Writes one pipeline stage into a model package directory (Docs/MODEL_PACKAGE.md), shared by
the converters: a new package is created, or the stage is added to an existing one, replacing
only that stage's tensors (by name prefix) and its model.json section, so the audio tower, the
text tower and the classifier can be converted into one package in any order."""
from __future__ import annotations

import hashlib
import json
import pathlib
import shutil

import torch
from safetensors.torch import load_file, save_file

FORMAT = "gatedxlstm-model"
DEFAULT_LABELS = ["angry", "happy", "neutral", "sad"]
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def output_arguments(default_dtype: str = "f32", replace: bool = True):
    """The converters' shared command-line options for the package they write (an argparse parent):
    --out, --name, --labels, --dtype and, where a stage is added to a package, --replace."""
    import argparse
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", required=True, help="package directory to write or add to")
    common.add_argument("--name", default=None)
    common.add_argument("--labels", default=",".join(DEFAULT_LABELS), help="placeholder labels of a new package")
    common.add_argument("--dtype", choices=sorted(DTYPES), default=default_dtype)
    if replace:
        common.add_argument("--replace", action="store_true", help="overwrite an existing package instead of adding to it")
    return common


class ConversionError(Exception):
    """A checkpoint that cannot be converted (the converters' one error type)."""


def load_state_dict(directory: pathlib.Path) -> dict:
    """The tensors of a transformers checkpoint directory: every *.safetensors file, else
    pytorch_model.bin or model.bin (weights only)."""
    from safetensors.torch import load_file as load_safetensors
    directory = pathlib.Path(directory)
    st = sorted(directory.glob("*.safetensors"))
    if st:
        sd = {}
        for f in st:
            sd.update(load_safetensors(str(f)))
        return sd
    for name in ("pytorch_model.bin", "model.bin"):
        if (directory / name).exists():
            return torch.load(directory / name, map_location="cpu", weights_only=True)
    raise ConversionError(f"{directory}: no *.safetensors or pytorch_model.bin")


def check_tensor_set(expected: dict, tensors: dict) -> None:
    """Every tensor of `expected` ({name: shape}) is in `tensors` with its shape, and nothing else
    is there; else a ConversionError naming a few of each kind."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if tuple(tensors[k].shape) != tuple(expected[k]))
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors, e.g. {missing[:3]}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} tensors, e.g. {unexpected[:3]}")
    if wrong:
        problems.append("shape mismatch: " + ", ".join(f"{k} {tuple(tensors[k].shape)} != {tuple(expected[k])}" for k in wrong[:3]))
    if problems:
        raise ConversionError("; ".join(problems))


def write_stage(out, key: str, section: dict, tensors: dict, owned_prefixes: tuple[str, ...], *, name=None,
                labels=None, dtype="f32", provenance=None, checksum=True, replace=False,
                tokenizer_files=None, keep_f32=()) -> pathlib.Path:
    """Writes (or adds to) the package in `out`: `tensors` (cast to `dtype`) replace every tensor
    whose name starts with one of `owned_prefixes`; `section` is merged into model.json[`key`];
    `tokenizer_files` ({file name: source path}) are copied to `out/tokenizer/`. `replace`
    starts a new package even if one exists. Tensors named in `keep_f32` stay float32 whatever
    `dtype` says (small tensors whose values need the precision, e.g. a standardisation)."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "model.json"
    existing, manifest = {}, None
    if manifest_path.exists() and not replace:
        manifest = json.loads(manifest_path.read_text())
        weights_path = out / manifest.get("weights", "weights.safetensors")
        if weights_path.exists():
            existing = {k: v for k, v in load_file(str(weights_path)).items() if not k.startswith(owned_prefixes)}
    if manifest is None:
        manifest = {"format": FORMAT, "format_version": 1, "name": name or out.name,
                    "labels": labels or DEFAULT_LABELS, "weights": "weights.safetensors"}
    elif name:
        manifest["name"] = name
    dt = DTYPES[dtype]
    if dtype in ("f16", "bf16"):
        # Layers may hold weights stored in 16 bits as 16 bits (model.json weight_precision):
        # nothing is rounded, half the memory of widening them to float32.
        manifest.setdefault("weight_precision", dtype)
    weights = dict(existing)
    weights.update({k: v.detach().to(torch.float32 if k in keep_f32 else dt).contiguous().clone()
                    for k, v in tensors.items()})
    weights_name = manifest.get("weights", "weights.safetensors")
    save_file(dict(sorted(weights.items())), str(out / weights_name))
    (out / weights_name).chmod(0o644)  # safetensors writes 0600; packages are read by services
    for fname, src in (tokenizer_files or {}).items():
        (out / "tokenizer").mkdir(exist_ok=True)
        shutil.copyfile(src, out / "tokenizer" / fname)
    manifest.pop("weights_sha256", None)
    if checksum:
        manifest["weights_sha256"] = hashlib.sha256((out / weights_name).read_bytes()).hexdigest()
    if provenance:
        merged = dict(manifest.get("provenance") or {})
        merged.update(provenance)
        manifest["provenance"] = merged
    manifest[key] = {**(manifest.get(key) or {}), **section}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def publish(package, out) -> float:
    """Copies a finished package directory to `out`, replacing what is there; returns its size in MB."""
    package, out = pathlib.Path(package), pathlib.Path(out)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(package, out)
    return sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
