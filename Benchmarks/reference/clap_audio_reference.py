#!/usr/bin/env python3
"""PyTorch and ONNX Runtime side of the paper-size CLAP audio tower benchmark (HTSAT-tiny + projection).

Subcommands (run with Training/.venv/bin/python):

  prepare --out DIR [--seed S] [--if-needed] [--onnx]
      Builds transformers' ClapAudioModelWithProjection at paper size (ClapAudioConfig() defaults:
      spec 256, patch 4, embed 96, depths 2/2/6/2, heads 4/8/16/32, window 8, projection 512) with
      random weights (seeded; every float tensor perturbed, batch-norm running statistics too), eval
      mode, and writes:
        DIR/model.json, DIR/weights.safetensors   the package the Swift side loads ("audio" section)
        DIR/io.safetensors                         features (4, 1001, 64): 2 random, 2 from
                                                   ClapFeatureExtractor on synthetic 10 s / 4 s signals;
                                                   pooled (4, 768), projected (4, 512), embedding (4, 512)
        DIR/audio.onnx                             with --onnx: fp32 export, input `input_features`
                                                   (batch, 1, 1001, 64), output `audio_embeds`
        DIR/prepared.json                          seed marker, written last
      With --if-needed it does nothing when DIR/prepared.json matches the seed.
  time --model DIR --engine {torch,onnxruntime} [--batch B] [--threads T] [--iterations N] [--warmup W]
      Loads the model in this (fresh) process, warms up, times N forward passes of B windows (10 s,
      1001 x 64 features from io.safetensors) and prints ONE JSON line: engine, batch, threads,
      median/min/p90 milliseconds per call, peak RSS, and the parity error of its embeddings
      against io.safetensors.

The Swift side of the same comparison is the release-mode test
`AudioTowersTests.AudioPaperSizeTests` (Tests/AudioTowersTests/AudioPaperSizeTests.swift):

  CLAP_AUDIO_PAPER_PACKAGE=DIR swift test -c release --filter AudioPaperSizeTests

which checks parity on io.safetensors and prints its own JSON timing line (same fields).
"""
import argparse
import json
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from benchkit import onnx_session, peak_rss_mb, timed  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEED_DEFAULT = 2024
FRAMES, MEL = 1001, 64




def load_fixture_module():
    """Training/fixtures/make_clap_audio_fixtures.py: randomize_, audio_section, realistic features."""
    import importlib.util
    path = ROOT / "Training/fixtures/make_clap_audio_fixtures.py"
    spec = importlib.util.spec_from_file_location("make_clap_audio_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_model(seed: int):
    import torch
    from transformers import ClapAudioConfig, ClapAudioModelWithProjection
    fx = load_fixture_module()
    cfg = ClapAudioConfig()
    model = ClapAudioModelWithProjection(cfg).eval()
    fx.randomize_(model, torch.Generator().manual_seed(seed))
    return cfg, model, fx


def prepare(args) -> None:
    import torch
    from safetensors.torch import save_file
    out = pathlib.Path(args.out)
    marker = out / "prepared.json"
    if args.if_needed and marker.exists():
        try:
            if json.loads(marker.read_text()).get("seed") == args.seed and (not args.onnx or (out / "audio.onnx").exists()):
                print(f"{out}: up to date", file=sys.stderr)
                return
        except json.JSONDecodeError:
            pass
    out.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    cfg, model, fx = build_model(args.seed)
    fx.write_package(out, "clap-audio-paper-random", cfg, model)
    g = torch.Generator().manual_seed(args.seed + 1)
    random_features = -45 + 12 * torch.randn(2, FRAMES, MEL, generator=g)
    features = torch.cat([random_features, fx.realistic_features()]).float()
    with torch.inference_mode():
        pooled = model.audio_model(input_features=features[:, None]).pooler_output
        projected = model(input_features=features[:, None]).audio_embeds
    save_file({"features": features.contiguous(), "pooled": pooled.contiguous(),
               "projected": projected.contiguous(),
               "embedding": torch.nn.functional.normalize(projected, dim=-1).contiguous()}, out / "io.safetensors")
    if args.onnx:
        export_onnx(model, out / "audio.onnx")
    marker.write_text(json.dumps({"seed": args.seed, "config": "ClapAudioConfig()"}) + "\n")
    print(f"wrote {out}", file=sys.stderr)


def export_onnx(model, path: pathlib.Path) -> None:
    import torch

    class Wrapper(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_features):
            return self.inner(input_features=input_features).audio_embeds

    example = torch.zeros(1, 1, FRAMES, MEL)
    torch.onnx.export(Wrapper(model).eval(), (example,), str(path), input_names=["input_features"],
                      output_names=["audio_embeds"], dynamic_axes={"input_features": {0: "batch"}},
                      opset_version=17, dynamo=False)


def time_engine(args) -> None:
    import numpy as np
    import torch
    from safetensors.torch import load_file
    model_dir = pathlib.Path(args.model)
    io = load_file(model_dir / "io.safetensors")
    rows = io["features"].shape[0]
    index = [i % rows for i in range(args.batch)]
    features = io["features"][index][:, None].contiguous()  # (B, 1, 1001, 64)
    expected = io["embedding"][index]

    if args.engine == "torch":
        cfg, model, _ = build_model(json.loads((model_dir / "prepared.json").read_text())["seed"])

        def run():
            with torch.inference_mode():
                return torch.nn.functional.normalize(model(input_features=features).audio_embeds, dim=-1)
    else:
        session = onnx_session(model_dir / "audio.onnx", args.threads)
        feed = {"input_features": features.numpy()}

        def run():
            out = torch.from_numpy(session.run(None, feed)[0])
            return torch.nn.functional.normalize(out, dim=-1)

    torch.set_num_threads(args.threads)  # after building: nothing may reset it
    result, summary = timed(run, args.iterations, args.warmup)
    err = (result - expected).abs().max().item()
    print(json.dumps({
        "engine": args.engine, "batch": args.batch, "threads": args.threads, "iterations": args.iterations,
        **summary,
        "peak_rss_mb": round(peak_rss_mb(), 1), "max_abs_err": err, "torch_threads": torch.get_num_threads(),
    }))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("prepare")
    pp.add_argument("--out", required=True)
    pp.add_argument("--seed", type=int, default=SEED_DEFAULT)
    pp.add_argument("--if-needed", action="store_true")
    pp.add_argument("--onnx", action="store_true")
    pt = sub.add_parser("time")
    pt.add_argument("--model", required=True)
    pt.add_argument("--engine", choices=["torch", "onnxruntime"], required=True)
    pt.add_argument("--batch", type=int, default=1)
    pt.add_argument("--threads", type=int, default=2)
    pt.add_argument("--iterations", type=int, default=20)
    pt.add_argument("--warmup", type=int, default=3)
    args = p.parse_args()
    if args.command == "prepare":
        prepare(args)
    else:
        time_engine(args)


if __name__ == "__main__":
    main()
