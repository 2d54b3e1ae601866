"""The default model's text tower: all-MiniLM-L6-v2 (mean pooling, L2) followed by a fixed
isometric projection 384 -> 512, written as the CLAP projection MLP the Swift text tower runs.

linear1 = [I; -I] (768 x 384), ReLU, linear2 = [Q, -Q] (512 x 768) with Q's columns orthonormal
(seeded QR), so linear2(relu(linear1(x))) = Q x exactly: the 512-d embedding keeps all of MiniLM's
information and cosine geometry, and no text data is needed to fit it."""
from __future__ import annotations

import pathlib
import sys

import numpy as np
import torch
from safetensors.torch import save_file

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "convert"))


def isometry(in_dim: int = 384, out_dim: int = 512, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((out_dim, in_dim)))
    return (q * np.sign(np.diag(r))).astype(np.float32)  # (out_dim, in_dim), Q^T Q = I


def projection_tensors(q: np.ndarray) -> dict:
    out_dim, in_dim = q.shape
    eye = np.eye(in_dim, dtype=np.float32)
    return {
        "text_projection.linear1.weight": torch.from_numpy(np.concatenate([eye, -eye], 0)),
        "text_projection.linear1.bias": torch.zeros(2 * in_dim),
        "text_projection.linear2.weight": torch.from_numpy(np.concatenate([q, -q], 1)),
        "text_projection.linear2.bias": torch.zeros(out_dim),
    }


def write(out: pathlib.Path, *, seed: int, dtype: str, labels, name: str) -> np.ndarray:
    """Adds the text tower to the package in `out`; returns Q."""
    import text_tower as converter  # Training/convert/text_tower.py
    q = isometry(seed=seed)
    proj_file = out.parent / (out.name + ".text_projection.safetensors")
    save_file(projection_tensors(q), str(proj_file))
    model_dir = converter.default_minilm_dir()
    section, tensors, tok = converter.convert_hf(model_dir, projection_file=proj_file, projection_activation="relu")
    proj_file.unlink()
    converter.write_package(out, section, tensors, name=name, labels=labels, dtype=dtype, tokenizer_files=tok,
                            provenance={"text": {"converted_from": "sentence-transformers all-MiniLM-L6-v2",
                                                 "license": "Apache-2.0",
                                                 "projection": "fixed isometry 384 -> 512 (seed %d)" % seed}})
    return q


class CaptionEncoder:
    """Python twin of the packaged text tower (for caption embeddings while training the audio
    tower): sentence-transformers MiniLM, normalised, times Q."""

    def __init__(self, q: np.ndarray):
        from sentence_transformers import SentenceTransformer
        import text_tower as converter
        self.model = SentenceTransformer(str(converter.default_minilm_dir()), device="cpu")
        self.q = q

    def __call__(self, sentences: list[str]) -> np.ndarray:
        e = self.model.encode(sentences, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        y = e.astype(np.float32) @ self.q.T
        return y / np.linalg.norm(y, axis=1, keepdims=True)
