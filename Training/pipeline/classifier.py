"""Trains the 12-stream gated xLSTM classifier (Training/gatedxlstm/model.py) on dialogues whose
turns carry Swift-computed embeddings, with modality dropout, and exports it into a package.

Recipe (the paper's): Adam, learning rate 1e-3, weight decay 1e-4, batch 32, early stopping on
validation macro-F1 (patience in epochs)."""
from __future__ import annotations

import dataclasses
import math
import pathlib
import sys
import time

import numpy as np
import torch
from torch import nn

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from gatedxlstm.model import ClassifierConfig, GatedXLSTMClassifier  # noqa: E402
from pipeline import fusion  # noqa: E402

LABELS = fusion.LABELS


@dataclasses.dataclass
class Modality:
    """How a training dialogue is presented: whole-dialogue modes and per-turn drops."""
    both: float = 0.5
    text_only: float = 0.3
    audio_only: float = 0.2
    drop_turn_audio: float = 0.1  # in "both" dialogues, per turn
    drop_turn_text: float = 0.1
    drop_context: float = 0.1  # per training example: every stream but the current turn's zeroed


@dataclasses.dataclass
class DialogueData:
    """One dialogue with its turns' text embeddings and labels (index into LABELS or -1)."""
    id: str
    speakers: list
    text: np.ndarray  # (n, d), zeros for an empty transcript
    labels: np.ndarray  # (n,)
    turns: list  # the corpus turns (for audio assignment)


def examples(dialogues, audio_rows_fn, bank_audio: np.ndarray | None, mode_fn, rng,
             rows_take_mode: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(X (N, 12, d), y (N,)) over the scored turns of all dialogues. The dialogue's mode
    ("both", "text", "audio") is drawn first; with `rows_take_mode` it is passed to
    `audio_rows_fn(dd, mode)` (e.g. to voice only "both" dialogues with mismatched clips)."""
    xs, ys = [], []
    for dd in dialogues:
        text = dd.text.copy()
        mode = mode_fn.draw(rng)
        audio = np.zeros_like(text)
        if bank_audio is not None:
            rows = audio_rows_fn(dd, mode) if rows_take_mode else audio_rows_fn(dd)
            audio = bank_audio[rows].astype(np.float32)
        text, audio = mode_fn(dd, text, audio, rng, mode)
        s = fusion.streams(audio, text, dd.speakers)
        keep = dd.labels >= 0
        xs.append(s[keep])
        ys.append(dd.labels[keep])
    return np.concatenate(xs), np.concatenate(ys)


def training_modes(m: Modality):
    def draw(rng):
        r = rng.random()
        return "text" if r < m.text_only else "audio" if r < m.text_only + m.audio_only else "both"

    def apply(dd, text, audio, rng, mode=None):
        mode = mode or draw(rng)
        n = len(text)
        if mode == "text":
            audio[:] = 0
        elif mode == "audio":
            text[:] = 0
        else:
            da = rng.random(n) < m.drop_turn_audio
            dt = (rng.random(n) < m.drop_turn_text) & ~da
            audio[da] = 0
            text[dt] = 0
        return text, audio
    apply.draw = draw
    return apply


def fixed_mode(kind: str):
    def apply(dd, text, audio, rng, mode=None):
        if kind == "text":
            audio[:] = 0
        elif kind == "audio":
            text[:] = 0
        return text, audio
    apply.draw = lambda rng: kind
    return apply


def macro_f1(y, p, k=len(LABELS)) -> float:
    f = []
    for c in range(k):
        tp = np.sum((p == c) & (y == c))
        fp = np.sum((p == c) & (y != c))
        fn = np.sum((p != c) & (y == c))
        f.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f))


@torch.no_grad()
def predict(model, x: np.ndarray, batch=256) -> np.ndarray:
    model.eval()
    out = [model(torch.from_numpy(x[i:i + batch]))[0] for i in range(0, len(x), batch)]
    return torch.cat(out).numpy()


def train(cfg: ClassifierConfig, make_train, val_sets: dict, *, epochs=40, patience=8, batch=32, lr=1e-3,
          weight_decay=1e-4, seed=0, select=("text", "both"), context_dropout=0.1, input_dropout=0.0,
          log=print):
    """`make_train(epoch)` -> (X, y) (resampled each epoch: clip assignment and modality dropout);
    `val_sets` {name: (X, y)}; early stopping on the mean validation macro-F1 over `select` (names,
    equally weighted, or {name: weight}). Returns (best model, history)."""
    weights = dict(select) if isinstance(select, dict) else {s: 1.0 for s in select}
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = GatedXLSTMClassifier(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    best, best_state, history, since = -1.0, None, [], 0
    for epoch in range(epochs):
        t0 = time.time()
        x, y = make_train(epoch)
        x = torch.from_numpy(x)
        y = torch.from_numpy(y).long()
        model.train()
        perm = torch.randperm(len(y), generator=g)
        loss_sum = 0.0
        for b0 in range(0, len(y), batch):
            idx = perm[b0:b0 + batch]
            xb = x[idx].clone()
            if context_dropout > 0:
                drop = torch.rand(len(idx), generator=g) < context_dropout
                xb[drop, 2:] = 0  # keep only the current turn's own audio and text
            if input_dropout > 0:
                xb = nn.functional.dropout(xb, input_dropout, training=True)
            logits, _ = model(xb)
            loss = nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(idx)
        scores = {}
        for name, (xv, yv) in val_sets.items():
            p = predict(model, xv).argmax(1)
            scores[name] = {"accuracy": float(np.mean(p == yv)), "macro_f1": macro_f1(yv, p)}
        score = float(sum(w * scores[s]["macro_f1"] for s, w in weights.items()) / sum(weights.values()))
        history.append({"epoch": epoch + 1, "loss": loss_sum / len(y), "validation": scores, "selection": score})
        log(f"epoch {epoch + 1}: loss {loss_sum / len(y):.4f} "
            + " ".join(f"{k} acc {v['accuracy']:.3f} f1 {v['macro_f1']:.3f}" for k, v in scores.items())
            + f" ({time.time() - t0:.0f} s)")
        if score > best:
            best, since = score, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since += 1
            if since >= patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return model, history


def export(model: GatedXLSTMClassifier, out: pathlib.Path, dtype: str, provenance=None):
    sys.path.insert(0, str(HERE.parent / "convert"))
    from package_writer import write_stage
    tensors = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}
    write_stage(out, "classifier", model.cfg.manifest_section(), tensors, ("streams.", "gate.", "classifier."),
                labels=LABELS, dtype=dtype, provenance=provenance)
    # The classifier defines the label order, also in a package that existed before (an encoder's).
    import json
    manifest_path = pathlib.Path(out) / "model.json"
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("labels") != LABELS:
        manifest["labels"] = LABELS
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


def train_export(cfg: ClassifierConfig, checkpoint: pathlib.Path, train_fn, package: pathlib.Path, dtype: str,
                 provenance=None):
    """The builds' classifier stage: trains with `train_fn()` -> (model, history) unless
    `checkpoint` holds a trained state, exports into `package`, and returns (model, history) with
    the model holding the weights as shipped (after the package's dtype rounding), which is the
    reference for the parity check from then on."""
    if not checkpoint.exists():
        model, history = train_fn()
        torch.save({"state": model.state_dict(), "history": history}, checkpoint)
    saved = torch.load(checkpoint)
    model = GatedXLSTMClassifier(cfg)
    model.load_state_dict(saved["state"])
    model.eval()
    export(model, package, dtype, provenance=provenance)
    from safetensors.torch import load_file
    shipped = load_file(str(pathlib.Path(package) / "weights.safetensors"))
    model.load_state_dict({k: shipped[k].float() for k in model.state_dict() if k in shipped}, strict=False)
    return model, saved["history"]
