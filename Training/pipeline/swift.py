"""The Swift side of the pipeline: builds the `emotion` tool and runs `emotion embed` and
`emotion evaluate` (the code that serves), so training embeddings and reported figures come from
the serving code."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]


def tool(build: bool = True) -> pathlib.Path:
    if build:
        # Scripts/build-release.sh, not plain `swift build`: after a source change SwiftPM can
        # leave a module compiled against a dependency's old type layouts (see the script).
        subprocess.run(["bash", "Scripts/build-release.sh", "emotion"], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL)
    path = REPO / ".build" / "release" / "emotion"
    if not path.exists():
        raise FileNotFoundError(f"{path}: build it with `bash Scripts/build-release.sh emotion`")
    return path


def embed(emotion: pathlib.Path, package: pathlib.Path, items: list[dict], prefix: pathlib.Path):
    """Embeds `items` ({"id", "audio"?: path, "text"?: str}); returns (ids, audio (N, d), text (N, d))
    with zero rows where a modality is absent. Cached by prefix."""
    ids_file = pathlib.Path(str(prefix) + ".ids.txt")
    if not ids_file.exists():
        prefix.parent.mkdir(parents=True, exist_ok=True)
        jsonl = pathlib.Path(str(prefix) + ".items.jsonl")
        jsonl.write_text("".join(json.dumps(it) + "\n" for it in items))
        subprocess.run([str(emotion), "embed", "--model", str(package), "--input", str(jsonl), "--npy", str(prefix)],
                       check=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    ids = ids_file.read_text().split("\n")
    ids = [i for i in ids if i]
    audio = np.load(str(prefix) + ".audio.npy")
    text = np.load(str(prefix) + ".text.npy")
    assert len(ids) == len(items) == len(audio) == len(text), "embed output does not match its input"
    return ids, audio, text


def evaluate(emotion: pathlib.Path, package: pathlib.Path, dialogues_jsonl: pathlib.Path, modality: str,
             out_prefix: pathlib.Path) -> tuple[dict, list[dict]]:
    """Runs `emotion evaluate`; returns (metrics, per-turn rows)."""
    metrics = pathlib.Path(str(out_prefix) + ".metrics.json")
    turns = pathlib.Path(str(out_prefix) + ".turns.jsonl")
    subprocess.run([str(emotion), "evaluate", "--model", str(package), "--input", str(dialogues_jsonl),
                    "--modality", modality, "--metrics", str(metrics), "--output", str(turns)], check=True)
    rows = [json.loads(line) for line in turns.read_text().splitlines() if line.strip()]
    return json.loads(metrics.read_text()), rows
