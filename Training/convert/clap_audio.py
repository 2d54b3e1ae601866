"""Checkpoint conversion for the Swift CLAP audio tower (Sources/AudioTowers/AudioEncoder.swift, Docs/CLAP_AUDIO.md).

Writes the audio side into a model package (model.json + weights.safetensors): tensors named as
transformers' ClapModel state_dict (`audio_model.audio_encoder.*`, `audio_projection.linear1/2.*`)
and the model.json `audio` section (transformers' ClapAudioConfig key names). When the output
directory already holds a package (e.g. written by Training/convert/text_tower.py), the audio
tensors and section are added to it (replacing earlier audio ones); other tensors and sections
are kept.

Sources:
  hf      a transformers directory (config.json + model.safetensors or pytorch_model.bin) of a
          ClapModel ("clap", e.g. laion/clap-htsat-unfused) or ClapAudioModelWithProjection
          ("clap_audio_model"): renamed at most; integer buffers (relative_position_index,
          num_batches_tracked) dropped
  laion   a laion_clap checkpoint (e.g. 630k-audioset-best.pt, the unfused HTSAT-tiny model the
          paper used): `audio_branch.*` -> `audio_model.audio_encoder.*` with the mapping of
          transformers' convert_clap_original_pytorch_to_hf.py (attn -> attention.self, attn.proj
          -> attention.output.dense, mlp.fc1/fc2 -> intermediate.dense/output.dense, norm1/norm2 ->
          layernorm_before/after, bn0 -> batch_norm, qkv split into query/key/value),
          `audio_projection.0/.2` -> `audio_projection.linear1/.linear2`; dropped: the in-model
          STFT/mel buffers, tscam_conv, head (AudioSet classifier), attn_mask, relative_position_index,
          num_batches_tracked, audio_transform, and everything that is not audio

Examples:
  python Training/convert/clap_audio.py hf --model /path/clap-htsat-unfused --out Models/clap
  python Training/convert/clap_audio.py laion --checkpoint 630k-audioset-best.pt --out Models/clap
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from package_writer import (output_arguments, ConversionError, check_tensor_set, load_state_dict,  # noqa: E402
                            write_stage)

TOWER = "audio_model.audio_encoder."
PROJECTION = "audio_projection."
# The `audio` section keys of the tower (transformers' ClapAudioConfig names).
SECTION_KEYS = ["num_mel_bins", "spec_size", "patch_size", "patch_stride", "patch_embeds_hidden_size", "depths",
                "num_attention_heads", "window_size", "mlp_ratio", "qkv_bias", "enable_patch_layer_norm",
                "layer_norm_eps", "hidden_size", "projection_dim", "hidden_act", "projection_hidden_act",
                "enable_fusion"]
# HTSAT sizes of laion_clap's create_htsat_model (spec 256, patch 4, stride 4, window 8, 527 classes).
LAION_HTSAT = {
    "tiny": dict(patch_embeds_hidden_size=96, depths=[2, 2, 6, 2], num_attention_heads=[4, 8, 16, 32]),
    "base": dict(patch_embeds_hidden_size=128, depths=[2, 2, 12, 2], num_attention_heads=[4, 8, 16, 32]),
    "large": dict(patch_embeds_hidden_size=256, depths=[2, 2, 12, 2], num_attention_heads=[4, 8, 16, 32]),
}
# transformers' convert_clap_original_pytorch_to_hf.py, audio part, applied in this order.
LAION_RENAMES = [
    ("audio_branch.", TOWER),
    ("attn", "attention.self"),
    ("self.proj", "output.dense"),
    ("attention.self_mask", "attn_mask"),
    ("mlp.fc1", "intermediate.dense"),
    ("mlp.fc2", "output.dense"),
    ("norm1", "layernorm_before"),
    ("norm2", "layernorm_after"),
    ("bn0", "batch_norm"),
]
# Tensors of the laion HTSAT that transformers' ClapAudioModel does not have (or rebuilds).
LAION_DROPPED = re.compile(
    r"^audio_model\.audio_encoder\.(spectrogram_extractor|logmel_extractor|tscam_conv|head)\.|"
    r"(attn_mask|relative_position_index|num_batches_tracked)$")


# ---------------------------------------------------------------------------------------------
# Section


def audio_section(**config) -> dict:
    """The model.json `audio` section from a ClapAudioConfig-like dict (unknown keys ignored)."""
    from transformers import ClapAudioConfig
    defaults = ClapAudioConfig().to_dict()
    section = {}
    for k in SECTION_KEYS:
        v = config.get(k, defaults[k])
        section[k] = list(v) if isinstance(v, (list, tuple)) else v
    if section["enable_fusion"]:
        raise ConversionError("the fused CLAP model (enable_fusion) is not supported; use clap-htsat-unfused")
    return section


def check_tensors(section: dict, tensors: dict) -> None:
    """Every tensor the Swift loader asks for is present with its shape, and nothing else is there."""
    from transformers import ClapAudioConfig, ClapAudioModelWithProjection
    cfg = ClapAudioConfig(**section)
    with torch.device("meta"):
        reference = ClapAudioModelWithProjection(cfg)
    expected = {k: tuple(v.shape) for k, v in reference.state_dict().items() if v.is_floating_point()}
    check_tensor_set(expected, tensors)


# ---------------------------------------------------------------------------------------------
# Sources


def audio_tensors(state_dict: dict) -> dict:
    """The float tensors of the audio tower and projection of a ClapModel-named state dict."""
    out = {}
    for k, v in state_dict.items():
        if (k.startswith(TOWER) or k.startswith(PROJECTION)) and v.is_floating_point():
            out[k] = v
    return out


def convert_hf(model_dir) -> tuple[dict, dict]:
    """(section, tensors) from a transformers ClapModel / ClapAudioModelWithProjection directory."""
    model_dir = pathlib.Path(model_dir)
    config_path = model_dir / "config.json"
    if not config_path.exists():
        raise ConversionError(f"{model_dir}: no config.json")
    config = json.loads(config_path.read_text())
    model_type = config.get("model_type")
    if model_type == "clap":
        audio = dict(config.get("audio_config") or {})
        for k in ("projection_dim", "projection_hidden_act"):
            if k in config:
                audio[k] = config[k]
    elif model_type == "clap_audio_model":
        audio = config
    else:
        raise ConversionError(f"{config_path}: model_type {model_type!r} is not clap or clap_audio_model")
    section = audio_section(**audio)
    tensors = audio_tensors(load_state_dict(model_dir))
    if not any(k.startswith(PROJECTION) for k in tensors):
        raise ConversionError(f"{model_dir}: no audio_projection tensors (a ClapAudioModel without projection?)")
    check_tensors(section, tensors)
    return section, tensors


def rename_laion(key: str) -> str:
    for old, new in LAION_RENAMES:
        if old in key:
            key = key.replace(old, new)
    m = re.match(r"^audio_projection\.(\d+)\.", key)
    if m:
        layer = {0: "linear1", 2: "linear2"}.get(int(m.group(1)))
        if layer is None:
            raise ConversionError(f"unexpected projection layer in {key}")
        key = key.replace(f"audio_projection.{m.group(1)}.", f"audio_projection.{layer}.")
    return key


def laion_audio_tensors(state_dict: dict) -> dict:
    """laion_clap `audio_branch.*` / `audio_projection.*` -> transformers names (q/k/v split)."""
    sd = dict(state_dict)
    if sd and next(iter(sd)).startswith("module."):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    out = {}
    for k, v in sd.items():
        if not (k.startswith("audio_branch.") or k.startswith("audio_projection.")):
            continue
        name = rename_laion(k)
        if LAION_DROPPED.search(name) or not v.is_floating_point():
            continue
        if ".attention.self.qkv." in name:
            q, kk, vv = v.chunk(3, dim=0)
            out[name.replace("qkv", "query")] = q
            out[name.replace("qkv", "key")] = kk
            out[name.replace("qkv", "value")] = vv
        else:
            out[name] = v
    if any("fusion_model" in k or "mel_conv2d" in k for k in out):
        raise ConversionError("the checkpoint is a fused CLAP model (enable_fusion); use the unfused one")
    return out


def convert_laion(checkpoint, *, size="tiny", trust_pickle=False, sizes=None) -> tuple[dict, dict]:
    """(section, tensors) from a laion_clap checkpoint's audio branch (HTSAT, unfused).
    `sizes` overrides the HTSAT preset (ClapAudioConfig keys; tests use small models)."""
    try:
        ck = torch.load(checkpoint, map_location="cpu", weights_only=not trust_pickle)
    except Exception as e:  # weights_only refuses arbitrary pickles
        raise ConversionError(f"{checkpoint}: cannot load ({e}); if you trust the file, pass --trust-pickle") from None
    sd = ck["state_dict"] if isinstance(ck, dict) and "state_dict" in ck else ck
    tensors = laion_audio_tensors(sd)
    if not tensors:
        raise ConversionError(f"{checkpoint}: no audio_branch.* tensors")
    proj = tensors.get("audio_projection.linear1.weight")
    if proj is None:
        raise ConversionError(f"{checkpoint}: no audio_projection.0 tensors")
    sizes = dict(sizes or LAION_HTSAT[size])
    hidden = sizes["patch_embeds_hidden_size"] * 2 ** (len(sizes["depths"]) - 1)
    section = audio_section(**{**sizes, "hidden_size": hidden, "projection_dim": int(proj.shape[0]),
                               "enable_fusion": False})
    check_tensors(section, tensors)
    return section, tensors


# ---------------------------------------------------------------------------------------------
# Writing




def write_package(out, section, tensors, *, name=None, labels=None, dtype="f32", provenance=None,
                  checksum=True, replace=False) -> pathlib.Path:
    """Writes (or adds to) the package in `out`: the audio tensors and the `audio` section."""
    return write_stage(out, "audio", section, tensors, (TOWER, PROJECTION), name=name, labels=labels, dtype=dtype,
                       provenance=provenance, checksum=checksum, replace=replace)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="source", required=True)
    common = output_arguments("f32")
    hf = sub.add_parser("hf", parents=[common], help="transformers ClapModel directory")
    hf.add_argument("--model", required=True)
    la = sub.add_parser("laion", parents=[common], help="laion_clap checkpoint (.pt)")
    la.add_argument("--checkpoint", required=True)
    la.add_argument("--size", choices=sorted(LAION_HTSAT), default="tiny", help="HTSAT size of the checkpoint")
    la.add_argument("--trust-pickle", action="store_true", help="allow a full pickle (only for trusted files)")
    a = ap.parse_args(argv)
    try:
        if a.source == "hf":
            section, t = convert_hf(a.model)
            source = {"converted_from": "transformers", "path": str(a.model)}
        else:
            section, t = convert_laion(a.checkpoint, size=a.size, trust_pickle=a.trust_pickle)
            source = {"converted_from": "laion_clap", "path": str(a.checkpoint), "htsat": a.size}
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_package(a.out, section, t, name=a.name, labels=a.labels.split(","), dtype=a.dtype,
                  provenance={"audio": source}, replace=a.replace)
    n = sum(v.numel() for v in t.values())
    print(f"wrote {a.out}: {len(t)} audio tensors, {n / 1e6:.2f} M values, audio section {json.dumps(section)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
