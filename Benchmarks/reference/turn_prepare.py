#!/usr/bin/env python3
"""Prepares the whole paper-size turn benchmark (Benchmarks/turn.sh) under bench-out/turn.

    turn_prepare.py --out bench-out/turn --encoders bench-out/encoders --classifier bench-out/paper [--if-needed]

It reuses what the other benchmarks' prepare steps made (turn.sh runs them first, each only when
missing or stale):
  ENCODERS/audio   clap_audio_reference.py prepare --onnx: random paper-size HTSAT-tiny + projection
                   (transformers ClapAudioModelWithProjection, ClapAudioConfig(), seeded), its package
                   and audio.onnx
  ENCODERS/text    clap_text_reference.py prepare --onnx: random paper-size RoBERTa-base + pooler +
                   projection (transformers ClapModel(ClapConfig()), seeded), its package and text.onnx
  CLASSIFIER       classifier_reference.py prepare: the random paper-size classifier package
                   (155.5 M parameters) and classifier.onnx

and writes, only when missing or stale (OUT/prepared.json names the inputs' markers and this
script's layout version):
  OUT/package/     the model package emotion-server serves: the three packages' tensors in one
                   weights.safetensors (float32), their audio / text / classifier sections, a
                   byte-level BPE tokenizer (the RoBERTa-format fixture vocabulary of
                   Tests/TokenizersTests/Fixtures/bpe, whose ids are transformers RobertaTokenizer's;
                   every id is inside the paper text tower's 50,265-row table) and DED parameters
                   (p0 0.2, alpha 1, beam 5)
  OUT/torch/       audio.safetensors (ClapAudioModelWithProjection state_dict), text.safetensors
                   (ClapTextModelWithProjection state_dict) for the PyTorch reference service, and the
                   tokenizer files (vocab.json, merges.txt)
  OUT/input/       a.wav, b.wav: 10 s of 48 kHz mono PCM-16 (the espeak-ng clip of
                   Tests/SharedFixtures/whisper-clips/hello.wav resampled to 48 kHz and tiled; b is a
                   time-reversed, quieter copy) and input.json: two speakers alternating, each with
                   its clip and a transcript of exactly 20 tokens (<s> ... </s>)
  OUT/prepared.json  written last
The ONNX Runtime service reads the ONNX files where the other prepare steps wrote them.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
VERSION = 1
BPE = ROOT / "Tests/TokenizersTests/Fixtures/bpe"
CLIP = ROOT / "Tests/SharedFixtures/whisper-clips/hello.wav"
RATE = 48000
SECONDS = 10.0
TOKENS = 20
LABELS = ["ang", "hap", "neu", "sad"]
DED = {"p0": 0.2, "alpha": 1.0, "beam": 5}
WORDS_A = ("I have been waiting for my refund for three weeks and nobody called me back about it at all "
           "so I am really upset today").split()
WORDS_B = ("I am sorry to hear that let me check your order right now and see what we can do for you "
           "before the end of the day").split()


def load_module(name: str):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def marker(path: pathlib.Path):
    try:
        return json.loads((path / "prepared.json").read_text())
    except (OSError, ValueError):
        return None


def roberta_tokenizer(directory):
    """transformers' RobertaTokenizer (Rust-backed in transformers 5) from vocab.json + merges.txt,
    built as Training/fixtures/make_tokenizer_fixtures.py builds the reference of the fixture."""
    from transformers import AddedToken, RobertaTokenizerFast
    d = pathlib.Path(directory)
    return RobertaTokenizerFast(
        vocab=str(d / "vocab.json"), merges=str(d / "merges.txt"),
        mask_token=AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True),
        add_prefix_space=False, model_max_length=512)


def transcript_of(words, tokenizer) -> str:
    """The longest prefix of `words` with at most TOKENS ids (<s> and </s> included), then "!"
    appended one at a time until it has exactly TOKENS."""
    count = lambda t: len(tokenizer(t)["input_ids"])  # noqa: E731
    text = ""
    for w in words:
        longer = f"{text} {w}".strip()
        if count(longer) > TOKENS:
            break
        text = longer
    while count(text) < TOKENS:
        text += "!"
    if count(text) != TOKENS:
        raise SystemExit(f"prepare: cannot make {text!r} exactly {TOKENS} tokens")
    return text


def clips(out: pathlib.Path) -> None:
    import librosa
    import numpy as np
    import soundfile as sf
    x, sr = sf.read(str(CLIP), dtype="float32", always_2d=True)
    y = librosa.resample(x.mean(axis=1), orig_sr=sr, target_sr=RATE, res_type="soxr_hq")
    n = int(SECONDS * RATE)
    a = np.tile(y, n // len(y) + 1)[:n]
    b = 0.6 * a[::-1]
    sf.write(str(out / "a.wav"), a, RATE, subtype="PCM_16")
    sf.write(str(out / "b.wav"), b.copy(), RATE, subtype="PCM_16")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bench-out/turn")
    p.add_argument("--encoders", default="bench-out/encoders")
    p.add_argument("--classifier", default="bench-out/paper")
    p.add_argument("--if-needed", action="store_true")
    a = p.parse_args()
    out, enc, cls = pathlib.Path(a.out), pathlib.Path(a.encoders), pathlib.Path(a.classifier)
    inputs = {"audio": marker(enc / "audio"), "text": marker(enc / "text"), "classifier": marker(cls)}
    missing = [k for k, v in inputs.items() if v is None]
    if missing:
        raise SystemExit(f"prepare: run the {', '.join(missing)} prepare step(s) first (no prepared.json)")
    wanted = {"version": VERSION, "inputs": {k: {kk: v.get(kk) for kk in ("seed", "tokens", "version")}
                                             for k, v in inputs.items()}}
    done = marker(out)
    if a.if_needed and done and {k: done.get(k) for k in wanted} == wanted:
        print(f"prepare: {out} is up to date; not rewritten", file=sys.stderr)
        return
    import torch
    from safetensors.torch import load_file, save_file
    t0 = time.perf_counter()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    for d in ("package", "torch", "input"):
        (out / d).mkdir(parents=True, exist_ok=True)
    (out / "prepared.json").unlink(missing_ok=True)

    # The package: three packages' tensors and sections in one.
    manifests = {k: json.loads((d / "model.json").read_text())
                 for k, d in (("audio", enc / "audio"), ("text", enc / "text"), ("classifier", cls))}
    weights = {}
    for k, d in (("audio", enc / "audio"), ("text", enc / "text"), ("classifier", cls)):
        part = load_file(str(d / manifests[k].get("weights", "weights.safetensors")))
        clash = set(part) & set(weights)
        if clash:
            raise SystemExit(f"prepare: tensor names in two packages: {sorted(clash)[:3]}")
        weights.update({n: t.float().contiguous() for n, t in part.items()})
    save_file(dict(sorted(weights.items())), str(out / "package/weights.safetensors"))
    (out / "package/weights.safetensors").chmod(0o644)
    n_params = sum(t.numel() for t in weights.values())
    del weights
    (out / "package/tokenizer").mkdir(exist_ok=True)
    for f in ("vocab.json", "merges.txt"):
        (out / "package/tokenizer" / f).write_bytes((BPE / f).read_bytes())
        (out / "torch" / f).write_bytes((BPE / f).read_bytes())
    text = dict(manifests["text"]["text"])
    text["tokenizer"] = {"type": "byte_level_bpe", "vocab": "tokenizer/vocab.json",
                         "merges": "tokenizer/merges.txt", "max_length": 77}
    manifest = {
        "format": "gatedxlstm-model", "format_version": 1, "name": "turn-bench-paper-size-random",
        "labels": manifests["classifier"]["labels"], "weights": "weights.safetensors",
        "audio": manifests["audio"]["audio"], "text": text, "classifier": manifests["classifier"]["classifier"],
        "ded": DED,
        "provenance": {"kind": "benchmark model (random weights; not trained, predictions are meaningless)",
                       "recipe": "Benchmarks/reference/turn_prepare.py", "parameters": n_params,
                       "audio": manifests["audio"].get("provenance"), "text": manifests["text"].get("provenance"),
                       "classifier": manifests["classifier"].get("provenance"),
                       "tokenizer": "Tests/TokenizersTests/Fixtures/bpe (RoBERTa-format fixture vocabulary)"},
    }
    (out / "package/model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"prepare: package written, {n_params / 1e6:.1f} M parameters ({time.perf_counter() - t0:.0f} s)",
          file=sys.stderr)

    # PyTorch weights of the towers, as transformers' modules name them.
    audio_ref = load_module("clap_audio_reference")
    _, audio_model, _ = audio_ref.build_model(inputs["audio"]["seed"])
    save_file({k: v.contiguous() for k, v in audio_model.state_dict().items()}, str(out / "torch/audio.safetensors"))
    del audio_model
    text_ref = load_module("clap_text_reference")
    clap = text_ref.build_model(inputs["text"]["seed"])
    state = {f"text_model.{k}": v for k, v in clap.text_model.state_dict().items()}
    state.update({f"text_projection.{k}": v for k, v in clap.text_projection.state_dict().items()})
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "torch/text.safetensors"))
    del clap, state
    print(f"prepare: PyTorch tower weights written ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    # The fixed input.
    clips(out / "input")
    tok = roberta_tokenizer(BPE)
    ta, tb = transcript_of(WORDS_A, tok), transcript_of(WORDS_B, tok)
    (out / "input/input.json").write_text(json.dumps({
        "speakers": [{"speaker": "caller", "audio": "a.wav", "transcript": ta},
                     {"speaker": "agent", "audio": "b.wav", "transcript": tb}],
        "audio_seconds": SECONDS, "sample_rate": RATE, "tokens": TOKENS}, indent=2) + "\n")
    (out / "prepared.json").write_text(json.dumps({**wanted, "parameters": n_params,
                                                   "seconds": round(time.perf_counter() - t0, 1)}) + "\n")
    print(json.dumps({"prepared": str(out), "parameters": n_params, "transcripts": [ta, tb]}))


if __name__ == "__main__":
    main()
