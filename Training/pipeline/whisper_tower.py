"""The default model's audio tower: the frozen Whisper-base encoder (converted from the PyPI
CTranslate2 wheels, Training/convert/whisper_audio.py) with a learned pooling and projection,
trained CLAP-style against the text tower's caption embeddings plus an auxiliary emotion loss.

What the Swift tower (Sources/AudioTowers/WhisperAudioTower.swift) computes, and this module trains:

    s_l    = [mean_t h_l, sqrt(var_t h_l + eps)]      the 7 hidden states of the encoder
    z_l    = (s_l - state_mean_l) * state_scale_l     fixed: the training clips' statistics
    pooled = sum_l softmax(layer_weights)_l * z_l
    e      = normalize(linear2(relu(linear1(pooled))))

The encoder is frozen, so every clip copy's s_l are computed once (`cache_stats`, PyTorch on the
f16-rounded weights the package ships) and training runs on them in seconds; speaker-grouped
cross-validation chooses the recipe (`cross_validate`)."""
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
sys.path.insert(0, str(HERE.parent / "convert"))
from pipeline import speech  # noqa: E402

STD_EPS = 1e-6

# Training copies of every clip (speech.variant): band, level, noise and both G.711 companders
# vary apart and together (A-law held out cost 8 points on held-out speakers: its coarser quiet
# steps are a condition of their own).
TRAIN_VARIANTS = ("clean", "narrowband", "gain", "telephone", "noisy", "mulaw", "alaw")
# Held-out views the card reports (through the Swift model); the tower's own head is also scored
# on the held-out speakers in HEAD_VIEWS, and in cross-validation on CV_VIEWS of the folds' speakers.
HELD_OUT_VARIANTS = ("clean", "narrowband", "gain", "telephone", "mulaw", "alaw")
HEAD_VIEWS = ("clean", "alaw")
CV_VIEWS = ("clean", "narrowband", "gain", "mulaw", "alaw")


# ---------------------------------------------------------------------------------------------
# Features


def feature_extractor():
    from transformers import WhisperFeatureExtractor
    return WhisperFeatureExtractor()


def log_mel(extractor, x: np.ndarray, sr: int) -> np.ndarray:
    """(frames, 80) float32 of an unpadded clip at any rate (resampled with soxr HQ, as the Swift
    front end does): WhisperFeatureExtractor's numpy log-mel, without padding to 30 s."""
    if sr != 16000:
        import soxr
        x = soxr.resample(x, sr, 16000, quality="HQ").astype(np.float32)
    x = x[:480000]  # training clips are a few seconds; longer ones would be windowed by the service
    mel = extractor._np_extract_fbank_features(x[None].astype(np.float32), "cpu")
    return np.asarray(mel[0], dtype=np.float32).T


def load_encoder(tensors: dict, section: dict):
    """transformers' WhisperEncoder holding the package's encoder tensors, as the package stores
    them (f16 widened to f32 when `tensors` are f16)."""
    import whisper_audio
    return whisper_audio.build_encoder(section, {k: v.float() for k, v in tensors.items()})


@torch.no_grad()
def state_stats(encoder, mel: np.ndarray, eps: float = STD_EPS) -> np.ndarray:
    """(layers + 1, 2 * d) float32: mean and std over time of every hidden state of one clip."""
    import whisper_audio
    states = whisper_audio.encoder_forward(encoder, torch.from_numpy(mel.T.copy()))
    out = []
    for h in states:
        h = h.reshape(-1, h.shape[-1]).double()
        out.append(torch.cat([h.mean(0), torch.sqrt(h.var(0, unbiased=False) + eps)]).float())
    return torch.stack(out).numpy()


_WORKER = {}


def _worker_init(section, tensors):
    torch.set_num_threads(1)  # one thread per process: intra-op threads barely help at this size
    _WORKER["encoder"] = load_encoder(tensors, section)
    _WORKER["extractor"] = feature_extractor()


def _worker_stats(path):
    return state_stats(_WORKER["encoder"], log_mel(_WORKER["extractor"], *speech.read(path)))


def cache_stats(files: dict, out: pathlib.Path, section: dict, tensors: dict, processes: int = 2, log=print) -> dict:
    """{variant: (N, layers + 1, 2 d) float32} state statistics of the clip copies `files`
    ({variant: [wav path per clip]}) under the encoder (`section`, `tensors` as stored), cached in
    `out` (.npz) and resumed per variant; `processes` single-threaded workers share the clips."""
    import multiprocessing
    out = pathlib.Path(out)
    done = {}
    if out.exists():
        z = np.load(out)
        done = {k: z[k] for k in z.files}
    todo = [v for v, paths in files.items() if not (v in done and len(done[v]) == len(paths))]
    if todo:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(processes, initializer=_worker_init, initargs=(section, tensors)) as pool:
            for v in todo:
                t0 = time.time()
                done[v] = np.stack(pool.map(_worker_stats, [str(p) for p in files[v]], chunksize=16)).astype(np.float32)
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_suffix(".tmp.npz")
                np.savez(tmp, **done)
                tmp.rename(out)
                log(f"whisper stats {v}: {len(files[v])} clips in {time.time() - t0:.0f} s")
    return {v: done[v] for v in files}


# ---------------------------------------------------------------------------------------------
# The trainable part


@dataclasses.dataclass(frozen=True)
class Recipe:
    statistics: tuple = ("mean", "std")
    hidden: int = 512
    dropout: float = 0.2
    epochs: int = 40
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    mixup: float = 0.4
    aux_weight: float = 1.0

    def as_dict(self):
        return dataclasses.asdict(self)


class Tower(nn.Module):
    """Pooling (standardised states, softmax mix) + projection MLP + the auxiliary head."""

    def __init__(self, state_mean: np.ndarray, state_scale: np.ndarray, recipe: Recipe, n_labels: int, out_dim=512):
        super().__init__()
        states, width = state_mean.shape
        self.register_buffer("state_mean", torch.from_numpy(state_mean.astype(np.float32)))
        self.register_buffer("state_scale", torch.from_numpy(state_scale.astype(np.float32)))
        self.layer_weights = nn.Parameter(torch.zeros(states))
        self.drop = nn.Dropout(recipe.dropout)
        self.linear1 = nn.Linear(width, recipe.hidden)
        self.linear2 = nn.Linear(recipe.hidden, out_dim)
        self.head = nn.Linear(out_dim, n_labels)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, stats):  # (B, states, width) -> normalised (B, out)
        z = (stats - self.state_mean) * self.state_scale
        pooled = (torch.softmax(self.layer_weights, 0)[None, :, None] * z).sum(1)
        h = torch.relu(self.linear1(self.drop(pooled)))
        return nn.functional.normalize(self.linear2(self.drop(h)), dim=-1)


def select_statistics(stats: np.ndarray, statistics) -> np.ndarray:
    """The pooled statistics a recipe uses: the mean half only, or mean and std."""
    d = stats.shape[-1] // 2
    return stats if tuple(statistics) == ("mean", "std") else stats[..., :d]


def standardisation(train_stats: dict, statistics) -> tuple[np.ndarray, np.ndarray]:
    """Per state and feature, the mean and 1 / std over every training copy."""
    x = np.concatenate([select_statistics(v, statistics) for v in train_stats.values()]).astype(np.float64)
    mean = x.mean(0)
    std = x.std(0)
    return mean.astype(np.float32), (1 / np.maximum(std, 1e-4)).astype(np.float32)


def clap_loss(a, onehot, y, caption_bank, by_label, g, logit_scale):
    """CLAP's symmetric contrastive loss with every caption of the same label counted as a
    positive: each clip is paired with a random caption of its label (shared with audio_tower)."""
    cap = torch.stack([by_label[k][torch.randint(0, len(by_label[k]), (1,), generator=g)][0] for k in y.tolist()])
    t = caption_bank[cap]
    logits = logit_scale.exp().clamp(max=100) * a @ t.T
    pos = onehot @ nn.functional.one_hot(y, len(by_label)).float().T
    target = pos / pos.sum(1, keepdim=True)
    target_t = pos.T / pos.T.sum(1, keepdim=True).clamp(min=1e-9)
    return 0.5 * (-(target * logits.log_softmax(1)).sum(1).mean() - (target_t * logits.T.log_softmax(1)).sum(1).mean())


def train(train_stats: dict, labels: np.ndarray, caption_bank: torch.Tensor, caption_labels: torch.Tensor,
          recipe: Recipe, *, seed=0, log=None) -> Tower:
    """Trains on `train_stats` ({variant: (N, states, 2 d)}, one row per clip in every variant):
    each example is a random copy of its clip, mixed up with another clip of the batch."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    feats = {v: torch.from_numpy(select_statistics(s, recipe.statistics)) for v, s in train_stats.items()}
    mean, scale = standardisation(train_stats, recipe.statistics)
    n_labels = int(caption_labels.max()) + 1
    model = Tower(mean, scale, recipe, n_labels)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    variants = list(feats)
    n = len(labels)
    steps = recipe.epochs * math.ceil(n / recipe.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=steps, pct_start=0.1)
    y_all = torch.from_numpy(labels).long()
    by_label = [torch.nonzero(caption_labels == k).flatten() for k in range(n_labels)]
    stacked = torch.stack([feats[v] for v in variants])  # (variants, N, states, width)
    for epoch in range(recipe.epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        loss_sum = 0.0
        for b0 in range(0, n, recipe.batch):
            idx = perm[b0:b0 + recipe.batch]
            vsel = torch.randint(0, len(variants), (len(idx),), generator=g)
            x = stacked[vsel, idx]
            y = y_all[idx]
            onehot = nn.functional.one_hot(y, n_labels).float()
            if recipe.mixup > 0:
                lam = torch.distributions.Beta(recipe.mixup, recipe.mixup).sample((len(idx),)).clamp(min=0.5)
                other = torch.randperm(len(idx), generator=g)
                x = lam[:, None, None] * x + (1 - lam[:, None, None]) * x[other]
                onehot = lam[:, None] * onehot + (1 - lam[:, None]) * onehot[other]
            a = model(x)
            loss = clap_loss(a, onehot, y, caption_bank, by_label, g, model.logit_scale)
            loss = loss + recipe.aux_weight * -(onehot * model.head(a).log_softmax(1)).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(idx)
        if log and ((epoch + 1) % 10 == 0 or epoch + 1 == recipe.epochs):
            log(f"  epoch {epoch + 1}/{recipe.epochs} loss {loss_sum / n:.3f}")
    return model.eval()


@torch.no_grad()
def embed(model: Tower, stats: np.ndarray, statistics) -> np.ndarray:
    return model(torch.from_numpy(select_statistics(stats, statistics))).numpy()


@torch.no_grad()
def predict(model: Tower, stats: np.ndarray, statistics) -> np.ndarray:
    """The auxiliary head's labels (the tower's own view of the emotion)."""
    return model.head(torch.from_numpy(embed(model, stats, statistics))).argmax(1).numpy()


def speaker_scores(pred: np.ndarray, labels: np.ndarray, speakers: list[str]) -> dict:
    """Accuracy per speaker, the speaker-balanced mean and the worst speaker."""
    per = {}
    for s in sorted(set(speakers)):
        m = np.array([x == s for x in speakers])
        per[s] = float(np.mean(pred[m] == labels[m]))
    return {"per_speaker": per, "speaker_mean": float(np.mean(list(per.values()))),
            "worst": min(per.values()), "clip_weighted": float(np.mean(pred == labels))}


def cross_validate(stats: dict, labels: np.ndarray, speakers: list[str], folds: list[set], caption_bank,
                   caption_labels, recipe: Recipe, *, views=("clean", "narrowband", "gain", "mulaw"), seed=0,
                   scored=None):
    """Speaker-grouped cross-validation: for each fold, train on the other speakers' clips and
    score the fold's speakers with the head, in every view. Returns {view: speaker_scores} over
    all folds' held-out speakers (only the clips `scored` marks, e.g. the four labels proper,
    when given: RAVDESS "calm" trains as neutral but is not scored, as on the held-out speakers)."""
    preds = {v: np.full(len(labels), -1) for v in views}
    for k, fold in enumerate(folds):
        test = np.array([s in fold for s in speakers])
        train_rows = {v: s[~test] for v, s in stats.items()}
        model = train(train_rows, labels[~test], caption_bank, caption_labels, recipe, seed=seed + k)
        for v in views:
            preds[v][test] = predict(model, stats[v][test], recipe.statistics)
    scored = np.array([any(s in f for f in folds) for s in speakers]) & (np.ones(len(labels), bool)
                                                                         if scored is None else np.asarray(scored))
    return {v: speaker_scores(preds[v][scored], labels[scored], [s for s, m in zip(speakers, scored) if m])
            for v in views}


# Stored as float32 in an f16 package: a state's mean can be far larger than its spread.
KEEP_F32 = ("audio_model.layer_weights", "audio_model.state_mean", "audio_model.state_scale")


def export(model: Tower, section_encoder: dict, recipe: Recipe) -> tuple[dict, dict]:
    """The model.json `audio` keys of the pooling and projection, and their tensors (the encoder's
    come from the converter; write them with `keep_f32=KEEP_F32`)."""
    import whisper_audio
    section = {"tower": "whisper", "encoder": section_encoder,
               "pooling": {"statistics": list(recipe.statistics), "eps": STD_EPS},
               "projection": {"hidden_size": model.linear1.out_features, "output_size": model.linear2.out_features},
               **whisper_audio.FRONT_END}
    tensors = {
        "audio_model.layer_weights": model.layer_weights.detach().clone(),
        "audio_model.state_mean": model.state_mean.clone(),
        "audio_model.state_scale": model.state_scale.clone(),
        "audio_projection.linear1.weight": model.linear1.weight.detach().clone(),
        "audio_projection.linear1.bias": model.linear1.bias.detach().clone(),
        "audio_projection.linear2.weight": model.linear2.weight.detach().clone(),
        "audio_projection.linear2.bias": model.linear2.bias.detach().clone(),
    }
    return section, tensors
