"""The gated xLSTM classifier of GatedxLSTM (arXiv 2503.20919), built from NX-AI's `xlstm` package.

Unlike the paper's public script, the 12 stream stacks are registered (nn.ModuleList) so they are
trained and switched to eval mode, and the gate is computed per utterance, not averaged over the
batch. Parameter names are the ones the Swift implementation reads from the model package.
"""
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from xlstm import (
    mLSTMBlockConfig,
    mLSTMLayerConfig,
    xLSTMBlockStack,
    xLSTMBlockStackConfig,
)

# Stream layout: for t, t-1, t-2 the 4-tuple (speaker audio, speaker text, interlocutor audio,
# interlocutor text). Stream 0 (current speaker audio) drives the gate and passes ungated.
STREAM_NAMES = [
    f"{turn}.{role}.{modality}"
    for turn in ("t", "t-1", "t-2")
    for role in ("speaker", "interlocutor")
    for modality in ("audio", "text")
]


@dataclass
class ClassifierConfig:
    embedding_dim: int = 512
    steps: int = 16
    step_dim: int = 32
    width: int = 512
    blocks: int = 8
    heads: int = 4
    conv1d_kernel_size: int = 4
    qkv_proj_blocksize: int = 4
    proj_factor: float = 2.0
    num_labels: int = 4
    dropout: float = 0.0
    streams: list = field(default_factory=lambda: list(STREAM_NAMES))

    def manifest_section(self) -> dict:
        d = asdict(self)
        d.pop("dropout")
        d.pop("num_labels")
        return d


def make_stack(cfg: ClassifierConfig) -> xLSTMBlockStack:
    return xLSTMBlockStack(
        xLSTMBlockStackConfig(
            mlstm_block=mLSTMBlockConfig(
                mlstm=mLSTMLayerConfig(
                    conv1d_kernel_size=cfg.conv1d_kernel_size,
                    qkv_proj_blocksize=cfg.qkv_proj_blocksize,
                    num_heads=cfg.heads,
                    proj_factor=cfg.proj_factor,
                )
            ),
            context_length=cfg.steps,
            num_blocks=cfg.blocks,
            embedding_dim=cfg.width,
            dropout=cfg.dropout,
        )
    )


class StreamEncoder(nn.Module):
    """One stream: a 512-d vector read as `steps` x `step_dim`, projected to the width, run
    through an mLSTM block stack; the last step is kept."""

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        assert cfg.steps * cfg.step_dim == cfg.embedding_dim
        self.cfg = cfg
        self.input_proj = nn.Linear(cfg.step_dim, cfg.width)
        self.stack = make_stack(cfg)

    def forward(self, v: torch.Tensor) -> torch.Tensor:  # (B, E) -> (B, width)
        x = v.reshape(v.shape[0], self.cfg.steps, self.cfg.step_dim)
        return self.stack(self.input_proj(x))[:, -1]


class GatedXLSTMClassifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        n = len(cfg.streams)
        self.streams = nn.ModuleList([StreamEncoder(cfg) for _ in range(n)])
        self.gate = nn.Linear(cfg.embedding_dim, n - 1)
        self.classifier = nn.Linear(n * cfg.width, cfg.num_labels)

    def forward(self, x: torch.Tensor):
        """x: (B, 12, E) stream vectors. Returns (logits (B, L), gate weights (B, 11))."""
        outs = [enc(x[:, i]) for i, enc in enumerate(self.streams)]
        w = torch.sigmoid(self.gate(x[:, 0]))
        fused = torch.cat([outs[0]] + [o * w[:, i : i + 1] for i, o in enumerate(outs[1:])], dim=-1)
        return self.classifier(fused), w


def randomize_(module: nn.Module, generator: torch.Generator) -> None:
    """Perturbs every parameter (norm weights, skips and gates included, which the xlstm init
    leaves at constants) so that a fixture exercises all of them."""
    with torch.no_grad():
        for _, p in sorted(module.named_parameters()):
            scale = float(p.std()) * 0.5 if p.numel() > 1 and float(p.std()) > 0 else 0.1
            p.add_(torch.randn(p.shape, generator=generator) * scale)
