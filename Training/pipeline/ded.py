"""DED fitting: p0 from training dialogues only; alpha and beam chosen on validation
(Training/reference/ded_reference.py, bit-identical to the Swift decoder)."""
from __future__ import annotations

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "reference"))
import ded_reference  # noqa: E402

ALPHAS = (0.25, 0.5, 1.0, 2.0, 4.0)
BEAMS = (1, 5, 10)


def estimate_p0(dialogues) -> tuple[float, int, int]:
    """(p0, shifts, pairs) over the 4-class turns of the dialogues, per speaker."""
    return ded_reference.estimate_p0([[(t.speaker, t.label4) for t in d.turns] for d in dialogues],
                                     list(ded_reference_labels()))


def ded_reference_labels():
    from pipeline.fusion import LABELS
    return LABELS


def decode(dialogues, logits_by_dialogue, p0, alpha, beam, offline=True) -> list[np.ndarray]:
    """Decoded label indices per dialogue (offline: the dialogue repeated twice, as the analyze
    route; online: the final best path of the turn-by-turn beam)."""
    out = []
    for d, logits in zip(dialogues, logits_by_dialogue):
        turns = [(t.speaker, [float(v) for v in row]) for t, row in zip(d.turns, logits)]
        if offline:
            path = ded_reference.decode_offline(turns, len(logits[0]) if len(logits) else 1, p0, alpha, beam,
                                                repeat_twice=True)
        else:
            path = ded_reference.decode_online(turns, len(logits[0]), p0, alpha, beam)[-1] if turns else []
        out.append(np.array(path, dtype=np.int64))
    return out


def accuracy(dialogues, paths) -> float:
    from pipeline.fusion import LABELS
    y, p = [], []
    for d, path in zip(dialogues, paths):
        for t, k in zip(d.turns, path):
            if t.label4 is not None:
                y.append(LABELS.index(t.label4))
                p.append(k)
    if not y:
        raise ValueError("no scored turns to choose DED parameters on")
    return float(np.mean(np.array(y) == np.array(p)))


def choose(dialogues, logits_sets: dict, p0: float, log=print) -> tuple[float, int, list]:
    """(alpha, beam, grid) maximising the mean offline-DED accuracy over the validation
    `logits_sets` {name: logits per dialogue}; ties go to the smaller beam, then alpha 1."""
    grid = []
    for beam in BEAMS:
        for alpha in ALPHAS:
            accs = {name: accuracy(dialogues, decode(dialogues, lg, p0, alpha, beam)) for name, lg in logits_sets.items()}
            score = float(np.mean(list(accs.values())))
            grid.append({"alpha": alpha, "beam": beam, "accuracy": accs, "mean": score})
            log(f"DED alpha {alpha} beam {beam}: " + " ".join(f"{k} {v:.4f}" for k, v in accs.items()))
    best = max(grid, key=lambda g: (round(g["mean"], 6), -g["beam"], -abs(np.log(g["alpha"]))))
    return best["alpha"], best["beam"], grid


SCALES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def choose_scales(dialogues, logits_sets: dict, p0: float, alpha: float, beam: int, log=print) -> tuple[dict, list]:
    """Per modality mix ("text", "audio", "both": the keys of `logits_sets`), the factor on the
    logits (the `ded.emission_scale` of the package) that maximises the mean of online and offline
    DED accuracy on validation. DED must not lower the classifier's own accuracy: when no factor
    reaches it, the largest is taken (DED then follows the classifier). Ties go to the factor
    closest to 1."""
    chosen, grid = {}, []
    for name, logits in logits_sets.items():
        argmax = [np.asarray(lg).argmax(1) if len(lg) else np.zeros(0, np.int64) for lg in logits]
        plain = accuracy(dialogues, argmax)
        rows = []
        for s in SCALES:
            scaled = [np.asarray(lg, dtype=np.float64) * s for lg in logits]
            off = accuracy(dialogues, decode(dialogues, scaled, p0, alpha, beam, offline=True))
            on = accuracy(dialogues, decode(dialogues, scaled, p0, alpha, beam, offline=False))
            rows.append({"modality": name, "scale": s, "offline": off, "online": on, "classifier": plain})
            log(f"DED {name} scale {s}: online {on:.4f} offline {off:.4f} (classifier {plain:.4f})")
        ok = [r for r in rows if min(r["online"], r["offline"]) >= plain]
        best = max(ok or rows[-1:], key=lambda r: (round((r["online"] + r["offline"]) / 2, 6), -abs(np.log(r["scale"]))))
        chosen[name] = best["scale"]
        grid += rows
    return chosen, grid
