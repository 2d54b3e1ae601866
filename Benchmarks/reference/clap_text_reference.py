#!/usr/bin/env python3
"""PyTorch and ONNX Runtime side of the paper-size CLAP text tower benchmark (RoBERTa-base + pooler +
projection, transformers' ClapTextConfig() defaults, 125 M parameters), on one transcript.

Subcommands (run with Training/.venv/bin/python):

  prepare --out DIR [--seed S] [--tokens N] [--if-needed] [--onnx]
      Builds transformers' ClapModel(ClapConfig()) with its default random initialisation (seeded
      through torch.manual_seed; the text tower and text projection are what is used), eval mode,
      converts the text side with Training/convert/text_tower.py (hf) and writes:
        DIR/model.json, DIR/weights.safetensors   the package the Swift side loads ("text" section)
        DIR/io.safetensors                         ids (4, N) int64 (<s> random ids </s>) and
                                                   embedding (4, 512): L2-normalised
                                                   get_text_features of each transcript
        DIR/io.json                                the same as JSON (read by the Swift side)
        DIR/text.onnx                              with --onnx: fp32 export, input `input_ids`
                                                   (batch, tokens), output `text_embeds`
        DIR/prepared.json                          seed / tokens marker, written last
      With --if-needed it does nothing when DIR/prepared.json matches.
  time --model DIR --engine {torch,onnxruntime} [--batch B] [--threads T] [--iterations N] [--warmup W]
      Loads the model in this (fresh) process, warms up, times N calls on B transcripts of N tokens
      (no padding: all the same length) and prints ONE JSON line: engine, batch, threads,
      median/min/p90 milliseconds per call, peak RSS and the parity error of its normalised
      embeddings against io.safetensors.

The Swift side is the release-mode test `TextTowerTests.EncoderBenchmarkTests`
(Tests/TextTowerTests/EncoderBenchmarkTests.swift), run by Benchmarks/encoders.sh:

  ENCODER_BENCH_TEXT_PACKAGE=DIR swift test -c release --filter EncoderBenchmarkTests
"""
import argparse
import json
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from benchkit import onnx_session, peak_rss_mb, timed  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEED_DEFAULT = 2025
TOKENS_DEFAULT = 20
ROWS = 4




def build_model(seed: int):
    import torch
    from transformers import ClapConfig, ClapModel
    torch.manual_seed(seed)
    return ClapModel(ClapConfig()).eval()


def text_features(model, ids):
    out = model.get_text_features(input_ids=ids)
    return out if hasattr(out, "shape") else out.pooler_output


def prepare(args) -> None:
    import torch
    from safetensors.torch import save_file
    sys.path.insert(0, str(ROOT / "Training" / "convert"))
    import text_tower
    out = pathlib.Path(args.out)
    marker = out / "prepared.json"
    wanted = {"seed": args.seed, "tokens": args.tokens, "config": "ClapConfig()"}
    if args.if_needed and marker.exists():
        try:
            if json.loads(marker.read_text()) == wanted and (not args.onnx or (out / "text.onnx").exists()):
                print(f"{out}: up to date", file=sys.stderr)
                return
        except json.JSONDecodeError:
            pass
    out.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    model = build_model(args.seed)
    vocab = model.config.text_config.vocab_size
    g = torch.Generator().manual_seed(args.seed + 1)
    ids = torch.cat([torch.zeros(ROWS, 1, dtype=torch.long),
                     torch.randint(3, vocab, (ROWS, args.tokens - 2), generator=g),
                     torch.full((ROWS, 1), 2, dtype=torch.long)], dim=1)
    with torch.inference_mode():
        embedding = torch.nn.functional.normalize(text_features(model, ids), dim=-1)
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = pathlib.Path(tmp) / "hf"
        model.save_pretrained(hf_dir)
        section, tensors, _ = text_tower.convert_hf(hf_dir)
    text_tower.write_package(out, section, tensors, name="clap-text-paper-random", checksum=False,
                             provenance={"benchmark": "Benchmarks/reference/clap_text_reference.py"})
    save_file({"ids": ids.contiguous(), "embedding": embedding.contiguous()}, out / "io.safetensors")
    (out / "io.json").write_text(json.dumps({"ids": ids.tolist(), "embedding": embedding.tolist()}) + "\n")
    if args.onnx:
        export_onnx(model, out / "text.onnx", args.tokens)
    marker.write_text(json.dumps(wanted) + "\n")
    print(f"wrote {out}", file=sys.stderr)


def export_onnx(model, path: pathlib.Path, tokens: int) -> None:
    import torch

    class Wrapper(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids):
            return text_features(self.inner, input_ids)

    example = torch.zeros(1, tokens, dtype=torch.long)
    torch.onnx.export(Wrapper(model).eval(), (example,), str(path), input_names=["input_ids"],
                      output_names=["text_embeds"], dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}},
                      opset_version=17, dynamo=False)


def time_engine(args) -> None:
    import torch
    from safetensors.torch import load_file
    model_dir = pathlib.Path(args.model)
    io = load_file(model_dir / "io.safetensors")
    index = [i % io["ids"].shape[0] for i in range(args.batch)]
    ids = io["ids"][index].contiguous()
    expected = io["embedding"][index]

    if args.engine == "torch":
        model = build_model(json.loads((model_dir / "prepared.json").read_text())["seed"])
        del model.audio_model, model.audio_projection  # only the text side runs

        def run():
            with torch.inference_mode():
                return torch.nn.functional.normalize(text_features(model, ids), dim=-1)
    else:
        session = onnx_session(model_dir / "text.onnx", args.threads)
        feed = {"input_ids": ids.numpy()}

        def run():
            return torch.nn.functional.normalize(torch.from_numpy(session.run(None, feed)[0]), dim=-1)

    torch.set_num_threads(args.threads)  # after building: nothing may reset it
    result, summary = timed(run, args.iterations, args.warmup)
    err = (result - expected).abs().max().item()
    print(json.dumps({
        "engine": args.engine, "batch": args.batch, "threads": args.threads, "iterations": args.iterations,
        "tokens": ids.shape[1], **summary,
        "peak_rss_mb": round(peak_rss_mb(), 1), "max_abs_err": err, "torch_threads": torch.get_num_threads(),
    }))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("prepare")
    pp.add_argument("--out", required=True)
    pp.add_argument("--seed", type=int, default=SEED_DEFAULT)
    pp.add_argument("--tokens", type=int, default=TOKENS_DEFAULT)
    pp.add_argument("--if-needed", action="store_true")
    pp.add_argument("--onnx", action="store_true")
    pt = sub.add_parser("time")
    pt.add_argument("--model", required=True)
    pt.add_argument("--engine", choices=["torch", "onnxruntime"], required=True)
    pt.add_argument("--batch", type=int, default=1)
    pt.add_argument("--threads", type=int, default=2)
    pt.add_argument("--iterations", type=int, default=30)
    pt.add_argument("--warmup", type=int, default=3)
    args = p.parse_args()
    if args.command == "prepare":
        prepare(args)
    else:
        time_engine(args)


if __name__ == "__main__":
    main()
