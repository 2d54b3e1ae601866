"""Train/serve parity: the PyTorch classifier on the Swift embeddings against the Swift
classifier's per-turn output (`emotion evaluate --output`), turn by turn.

Shared by the model builds. The PyTorch model should hold the weights as shipped (after the
package's dtype rounding), and `streams` must be the 12 stream vectors of exactly the turns that
`emotion evaluate` scored and in its output order (dialogues in file order, turns in order)."""
from __future__ import annotations

import numpy as np
import torch

TOLERANCE = 1e-3  # largest allowed absolute difference of a class probability


class ParityError(RuntimeError):
    """PyTorch and Swift disagree (argmax or probabilities), or their turns do not line up."""

    def __init__(self, message: str, result: dict | None = None):
        super().__init__(message)
        self.result = result


@torch.no_grad()
def torch_probabilities(model, streams, batch: int = 256) -> np.ndarray:
    """Softmax of the model's logits for stream vectors: one (n, 12, d) array, or a list of them
    (one per dialogue), concatenated in order."""
    x = np.concatenate(streams) if isinstance(streams, (list, tuple)) else streams
    model.eval()
    if len(x) == 0:
        return np.zeros((0, model.cfg.num_labels), dtype=np.float32)
    out = [torch.softmax(model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], dtype=np.float32)))[0], 1)
           for i in range(0, len(x), batch)]
    return torch.cat(out).numpy()


def check(model, streams, swift_turns: list[dict], *, ids=None, tolerance: float = TOLERANCE, log=print,
          name: str = "parity") -> dict:
    """Compares every turn; returns {"turns", "same_argmax", "max_abs_probability_difference"}
    and raises ParityError when an argmax differs or a probability differs by more than
    `tolerance`. `ids` (optional): the (dialogue, turn id) of every PyTorch row, checked against
    the Swift rows' "dialogue" and "id" first."""
    if ids is not None:
        swift_ids = [(t.get("dialogue"), t.get("id")) for t in swift_turns]
        ids = [tuple(i) for i in ids]
        if ids != swift_ids:
            first = next((k for k, (a, b) in enumerate(zip(ids, swift_ids)) if a != b), min(len(ids), len(swift_ids)))
            raise ParityError(f"{name}: turns do not line up ({len(ids)} PyTorch, {len(swift_ids)} Swift; "
                              f"first difference at row {first})")
    torch_probs = torch_probabilities(model, streams)
    swift_probs = np.array([t["probabilities"] for t in swift_turns], dtype=np.float64).reshape(len(swift_turns), -1)
    if torch_probs.shape != swift_probs.shape:
        raise ParityError(f"{name}: {torch_probs.shape} PyTorch vs {swift_probs.shape} Swift probabilities")
    diff = float(np.abs(torch_probs - swift_probs).max()) if len(swift_probs) else 0.0
    same = int(np.sum(torch_probs.argmax(1) == swift_probs.argmax(1)))
    result = {"turns": len(torch_probs), "same_argmax": same, "max_abs_probability_difference": diff}
    log(f"{name}: {result}")
    if same != len(torch_probs) or not diff <= tolerance:
        raise ParityError(f"{name} check failed: {result}", result)
    return result
