#!/usr/bin/env python3
"""The Whisper-base encoder (the default model's audio tower without its pooling) in PyTorch and
ONNX Runtime, for Benchmarks/whisper.sh.

  prepare --out DIR   the real encoder converted from the PyPI wheels (Training/convert/whisper_audio.py,
                      f16 as the default model stores it) into DIR (a model package), inputs of 3 s and
                      10 s of speech (the espeak-ng clip of Tests/SharedFixtures, tiled; Whisper's
                      log-mel, unpadded) and PyTorch's last hidden state of each (io.safetensors), and
                      the encoder exported to ONNX with a dynamic frame axis (encoder.onnx)
  time --model DIR --engine torch|onnxruntime --clip s3|s10   one JSON line (median/min/p90 ms,
                      peak RSS, error of the last hidden state against the stored PyTorch one)

Both engines run the unpadded clip (as the Swift tower does): transformers' WhisperEncoder
submodules in order (whisper_audio.encoder_forward), float32 weights widened from the f16 ones."""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Training" / "convert"))
sys.path.insert(0, str(ROOT / "Training"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import benchkit  # noqa: E402

CLIPS = {"s3": 3.0, "s10": 10.0}
LAYOUT = 1


class Unpadded(torch.nn.Module):
    """The encoder on [1, mels, T] for any T up to the positional table (ONNX export)."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, mel):
        e = self.encoder
        x = torch.nn.functional.gelu(e.conv1(mel))
        x = torch.nn.functional.gelu(e.conv2(x)).permute(0, 2, 1)
        x = x + e.embed_positions.weight[: x.shape[1]]
        for layer in e.layers:
            out = layer(x, None)
            x = out[0] if isinstance(out, tuple) else out
        return e.layer_norm(x)


def load(directory: pathlib.Path):
    import whisper_audio
    from safetensors.torch import load_file
    manifest = json.loads((directory / "model.json").read_text())
    tensors = {k: v.float() for k, v in load_file(str(directory / "weights.safetensors")).items()
               if k.startswith("audio_model.encoder.")}
    return whisper_audio.build_encoder(manifest["audio"]["encoder"], tensors).eval()


def prepare(a) -> None:
    import soundfile as sf
    import whisper_audio
    from pipeline import whisper_tower
    from safetensors.torch import save_file
    out = pathlib.Path(a.out)
    stamp = out / "prepared.json"
    if a.if_needed and stamp.exists() and json.loads(stamp.read_text()).get("layout") == LAYOUT:
        return
    out.mkdir(parents=True, exist_ok=True)
    model_bin = out / "model.bin"
    if not model_bin.exists():
        whisper_audio.join_wheels(model_bin)
    whisper_audio.check_model_bin(model_bin)
    section, tensors = whisper_audio.encoder_from_ctranslate2(whisper_audio.read_ctranslate2(model_bin)["variables"])
    whisper_audio.write_package(out, section, tensors, dtype="f16", replace=True, name="whisper-base-encoder")
    encoder = load(out)
    x, sr = sf.read(str(ROOT / "Tests/SharedFixtures/whisper-clips/hello.wav"), dtype="float32")
    ext = whisper_tower.feature_extractor()
    io = {}
    for name, seconds in CLIPS.items():
        n = int(seconds * sr)
        clip = np.tile(x, n // len(x) + 1)[:n]
        mel = torch.from_numpy(whisper_tower.log_mel(ext, clip, sr).T.copy())  # [80, frames]
        with torch.inference_mode():
            last = Unpadded(encoder)(mel[None])[0]
        io[f"{name}.mel"] = mel.contiguous()
        io[f"{name}.last"] = last.contiguous()
    save_file(io, str(out / "io.safetensors"))
    module = Unpadded(encoder).eval()
    torch.onnx.export(module, (io["s3.mel"][None],), str(out / "encoder.onnx"), input_names=["mel"],
                      output_names=["last"], dynamic_axes={"mel": {2: "frames"}, "last": {1: "tokens"}},
                      opset_version=17, dynamo=False)
    sess = benchkit.onnx_session(out / "encoder.onnx", 2)
    err = max(float(np.abs(sess.run(None, {"mel": io[f"{k}.mel"][None].numpy()})[0][0] - io[f"{k}.last"].numpy()).max())
              for k in CLIPS)
    stamp.write_text(json.dumps({"layout": LAYOUT, "onnx_max_abs_err": err}) + "\n")
    print(f"prepared {out} (ONNX vs PyTorch max abs {err:.1e})")


def time_engine(a) -> None:
    from safetensors.torch import load_file
    directory = pathlib.Path(a.model)
    io = load_file(str(directory / "io.safetensors"))
    mel, reference = io[f"{a.clip}.mel"], io[f"{a.clip}.last"].numpy()
    torch.set_num_threads(a.threads)
    if a.engine == "torch":
        module = Unpadded(load(directory)).eval()

        def run():
            with torch.inference_mode():
                return module(mel[None])[0].numpy()
    else:
        sess = benchkit.onnx_session(directory / "encoder.onnx", a.threads)
        feed = {"mel": mel[None].numpy()}

        def run():
            return sess.run(None, feed)[0][0]
    last, summary = benchkit.timed(run, a.iterations, a.warmup)
    err = float(np.abs(last - reference).max())
    print(json.dumps({"engine": a.engine, "clip": a.clip, "frames": int(mel.shape[1]), "threads": a.threads,
                      "iterations": a.iterations, **summary, "peak_rss_mb": benchkit.peak_rss_mb(),
                      "max_abs_err": err, "max_rel_err": err / float(np.abs(reference).max())}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("prepare")
    pp.add_argument("--out", required=True)
    pp.add_argument("--if-needed", action="store_true")
    pt = sub.add_parser("time")
    pt.add_argument("--model", required=True)
    pt.add_argument("--engine", choices=["torch", "onnxruntime"], required=True)
    pt.add_argument("--clip", choices=sorted(CLIPS), required=True)
    pt.add_argument("--threads", type=int, default=2)
    pt.add_argument("--iterations", type=int, default=20)
    pt.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()
    prepare(a) if a.command == "prepare" else time_engine(a)


if __name__ == "__main__":
    main()
