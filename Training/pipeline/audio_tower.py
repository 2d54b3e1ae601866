"""Trains the default model's small HTSAT audio tower (transformers' ClapAudioModelWithProjection,
the network the Swift CLAP audio tower runs) on acted speech with the CLAP contrastive objective
against the text tower's embeddings of emotion captions, plus an auxiliary 4-class loss.

Features: log-mel of four copies of every training clip (clean, 8 kHz telephone band, noisy,
telephone + noisy; speech.write_variants), cached once; SpecAugment masks on the fly."""
from __future__ import annotations

import json
import math
import pathlib
import sys
import time

import numpy as np
import torch
from torch import nn

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from pipeline import speech  # noqa: E402

# A HTSAT that trains on 2 CPU cores: 32-wide patches, three Swin stages (2/2/2 blocks), spec 128.
SMALL = dict(num_mel_bins=64, spec_size=128, patch_size=4, patch_stride=[4, 4], patch_embeds_hidden_size=32,
             depths=[2, 2, 2], num_attention_heads=[2, 4, 8], window_size=8, mlp_ratio=4.0, qkv_bias=True,
             enable_patch_layer_norm=True, layer_norm_eps=1e-5, hidden_size=128, projection_dim=512,
             hidden_act="gelu", projection_hidden_act="relu", enable_fusion=False,
             hidden_dropout_prob=0.1, drop_path_rate=0.1)

CAPTIONS = {
    "angry": ["an angry voice", "the speaker sounds angry", "someone shouting in anger", "a furious, irritated speaker"],
    "happy": ["a happy voice", "the speaker sounds happy", "someone speaking cheerfully", "a joyful, excited speaker"],
    "neutral": ["a neutral voice", "the speaker sounds neutral", "someone speaking calmly and plainly",
                "a flat, matter-of-fact speaker"],
    "sad": ["a sad voice", "the speaker sounds sad", "someone speaking in sorrow", "a gloomy, unhappy speaker"],
}


def cache_features(files: dict, out: pathlib.Path) -> dict:
    """{variant: (N, frames, mels) float16} log-mels of the clip copies `files` {variant: [wav
    path per clip]}, cached in `out` (.npz)."""
    if out.exists():
        z = np.load(out)
        return {k: z[k] for k in z.files}
    ext = speech.feature_extractor()
    feats = {}
    for v, paths in files.items():
        feats[v] = np.stack([speech.log_mel(ext, *speech.read(p)) for p in paths]).astype(np.float16)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, **feats)
    tmp.rename(out)
    return feats


def build_model(config: dict):
    from transformers import ClapAudioConfig, ClapAudioModelWithProjection
    return ClapAudioModelWithProjection(ClapAudioConfig(**config))


class Trainee(nn.Module):
    def __init__(self, config: dict, n_labels: int):
        super().__init__()
        self.tower = build_model(config)
        self.head = nn.Linear(config["projection_dim"], n_labels)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, mel):  # (B, frames, mels) -> normalised (B, 512)
        e = self.tower(input_features=mel[:, None]).audio_embeds
        return nn.functional.normalize(e, dim=-1)


def spec_augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    b, t, f = x.shape
    x = x.clone()
    fill = x.mean()
    for _ in range(2):
        w = torch.randint(0, 9, (b,), generator=g)
        s = (torch.rand(b, generator=g) * (f - w)).long()
        idx = torch.arange(f)[None]
        x.masked_fill_(((idx >= s[:, None]) & (idx < (s + w)[:, None]))[:, None, :], fill)
        w = torch.randint(0, 25, (b,), generator=g)
        s = (torch.rand(b, generator=g) * (t - w)).long()
        idx = torch.arange(t)[None]
        x.masked_fill_(((idx >= s[:, None]) & (idx < (s + w)[:, None]))[:, :, None], fill)
    return x


FLOOR_DB = -100.0  # the front end's floor (mel_floor 1e-10 in dB): digital silence, zero padding


def random_gain(x: torch.Tensor, g: torch.Generator, low_db: float, high_db: float) -> torch.Tensor:
    """Each clip's log-mel as if its waveform had been scaled by a random gain in [low, high] dB:
    every band moves by the gain, the floor stays (exact short of clipping)."""
    gain = low_db + (high_db - low_db) * torch.rand(x.shape[0], generator=g)
    floor = x <= FLOOR_DB + 1e-3
    return torch.where(floor, x, (x + gain[:, None, None]).clamp(min=FLOOR_DB))


def train(train_feats: dict, labels: np.ndarray, caption_bank: torch.Tensor, caption_labels: torch.Tensor, *,
          config=SMALL, epochs=30, batch=32, lr=1e-3, seed=0, aux_weight=1.0, mixup=0.0, average_last=5, log=print,
          eval_fn=None, gain_db: tuple[float, float] | None = None):
    """Returns the trained Trainee. `caption_bank` (C, 512) normalised caption embeddings with
    their label indices; each step pairs every clip with a random caption of its label and uses
    the CLAP loss with every caption of the same label counted as a positive. The weights returned
    are the average of the last `average_last` epochs' (stochastic weight averaging: run-to-run
    variance on held-out speakers is large with this little data). `gain_db` (low, high): every
    example at a random input gain (`random_gain`), so that absolute level is a weak cue."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = Trainee(config, int(caption_labels.max()) + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    variants = list(train_feats)
    n = len(labels)
    steps = epochs * math.ceil(n / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    y_all = torch.from_numpy(labels).long()
    by_label = [torch.nonzero(caption_labels == k).flatten() for k in range(int(caption_labels.max()) + 1)]
    averaged, count = None, 0
    for epoch in range(epochs):
        model.train()
        t0, total, correct, loss_sum = time.time(), 0, 0, 0.0
        perm = torch.randperm(n, generator=g)
        for b0 in range(0, n, batch):
            idx = perm[b0:b0 + batch]
            vsel = torch.randint(0, len(variants), (len(idx),), generator=g)
            mel = torch.stack([torch.from_numpy(train_feats[variants[v]][i].astype(np.float32))
                               for i, v in zip(idx.tolist(), vsel.tolist())])
            if gain_db is not None:
                mel = random_gain(mel, g, *gain_db)
            mel = spec_augment(mel, g)
            y = y_all[idx]
            onehot = nn.functional.one_hot(y, len(by_label)).float()
            if mixup > 0:  # mix each clip with another of the batch (inputs and label distributions)
                lam = torch.distributions.Beta(mixup, mixup).sample((len(idx),)).clamp(min=0.5)
                other = torch.randperm(len(idx), generator=g)
                mel = lam[:, None, None] * mel + (1 - lam[:, None, None]) * mel[other]
                onehot = lam[:, None] * onehot + (1 - lam[:, None]) * onehot[other]
            cap = torch.stack([by_label[k][torch.randint(0, len(by_label[k]), (1,), generator=g)][0] for k in y.tolist()])
            a = model(mel)
            t = caption_bank[cap]
            scale = model.logit_scale.exp().clamp(max=100)
            logits = scale * a @ t.T
            pos = onehot @ nn.functional.one_hot(y, len(by_label)).float().T  # clip i vs caption j's label
            target = pos / pos.sum(1, keepdim=True)
            target_t = pos.T / pos.T.sum(1, keepdim=True).clamp(min=1e-9)
            contrastive = 0.5 * (-(target * logits.log_softmax(1)).sum(1).mean()
                                 - (target_t * logits.T.log_softmax(1)).sum(1).mean())
            head = model.head(a)
            loss = contrastive + aux_weight * -(onehot * head.log_softmax(1)).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            total += len(idx)
            correct += int((head.argmax(1) == y).sum())
            loss_sum += float(loss) * len(idx)
        if epoch >= epochs - average_last:
            state = {k: v.detach().clone().double() for k, v in model.state_dict().items() if v.is_floating_point()}
            averaged = state if averaged is None else {k: averaged[k] + state[k] for k in averaged}
            count += 1
            if epoch == epochs - 1:
                full = model.state_dict()
                full.update({k: (v / count).to(full[k].dtype) for k, v in averaged.items()})
                model.load_state_dict(full)
        msg = f"epoch {epoch + 1}/{epochs} loss {loss_sum / total:.3f} train acc {correct / total:.3f} ({time.time() - t0:.0f} s)"
        if eval_fn is not None and ((epoch + 1) % 5 == 0 or epoch + 1 == epochs):
            msg += " " + eval_fn(model)
        log(msg)
    return model


@torch.no_grad()
def embed(model: Trainee, feats: np.ndarray, batch=64) -> np.ndarray:
    model.eval()
    out = [model(torch.from_numpy(feats[i:i + batch].astype(np.float32))) for i in range(0, len(feats), batch)]
    return torch.cat(out).numpy()


def save_hf(model: Trainee, directory: pathlib.Path):
    """A transformers ClapAudioModelWithProjection directory (Training/convert/clap_audio.py hf)."""
    model.tower.save_pretrained(str(directory))
