#!/usr/bin/env python3
"""Work and weight bytes of each stage of the paper-size turn, for the roofline lines.

    stage_costs.py [--tokens 20] [--out FILE]

Counts each stage's floating-point operations with torch's FlopCounterMode (matrix products and
convolutions: 2 per multiply-add) on the reference modules built on the meta device (no weights
are made), and their parameter count: the audio tower (transformers ClapAudioModelWithProjection,
ClapAudioConfig(), one 10 s clip = 1001 x 64 mel frames), the text tower
(ClapTextModelWithProjection, ClapConfig().text_config, TOKENS tokens) and the classifier
(ClassifierConfig() defaults, one turn: 12 streams of 512). Prints one JSON object:
{stage: {"flops", "parameters", "parameters_read", "weight_bytes_f32", "weight_bytes_bf16"}}, the
weight bytes those of the parameters a turn reads (embedding tables: only the tokens' rows, left
out). A stage's roofline bound is max(flops / peak FLOP/s, weight bytes / memory bandwidth): every
weight is read once per turn, the activations are small beside them.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def count(module, *args, **kwargs) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*args, **kwargs)
    return int(counter.get_total_flops())


def costs(tokens: int) -> dict:
    import torch
    from transformers import ClapAudioConfig, ClapAudioModelWithProjection, ClapConfig, ClapTextModelWithProjection
    import classifier_reference  # noqa: F401  (puts the project's gatedxlstm reference on sys.path)
    from gatedxlstm.model import ClassifierConfig, GatedXLSTMClassifier

    builders = {
        "audio": (lambda: ClapAudioModelWithProjection(ClapAudioConfig()).eval(),
                  lambda: ((), {"input_features": torch.zeros(1, 1, 1001, 64)})),
        "text": (lambda: ClapTextModelWithProjection(ClapConfig().text_config).eval(),
                 lambda: ((), {"input_ids": torch.zeros(1, tokens, dtype=torch.long)})),
        "classify": (lambda: GatedXLSTMClassifier(ClassifierConfig()).eval(),
                     lambda: ((torch.zeros(1, 12, 512),), {})),
    }
    out = {}
    for name, (build, inputs) in builders.items():
        try:  # the meta device makes no weights; a forward that reads a value (.item()) needs real ones
            with torch.device("meta"):
                module = build()
                args, kwargs = inputs()
                flops = count(module, *args, **kwargs)
        except (RuntimeError, NotImplementedError):
            module = build()
            args, kwargs = inputs()
            flops = count(module, *args, **kwargs)
        parameters = sum(p.numel() for p in module.parameters())
        # Embedding tables are not read whole: a turn reads only its tokens' rows.
        read = sum(p.numel() for n, p in module.named_parameters() if "embeddings." not in n)
        out[name] = {"flops": flops, "parameters": parameters, "parameters_read": read,
                     "weight_bytes_f32": 4 * read, "weight_bytes_bf16": 2 * read}
        del module
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=20)
    p.add_argument("--out")
    args = p.parse_args()
    result = costs(args.tokens)
    text = json.dumps(result)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
