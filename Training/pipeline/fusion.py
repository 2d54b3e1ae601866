"""Pairs IEMOCAP dialogue turns with acted clips and builds the classifier's 12 stream vectors.

No corpus here has the audio and the transcript of the same conversation. Each dialogue speaker
is played by one acted speaker of the same sex (drawn per dialogue); each turn gets a clip of that
speaker with the turn's label, in a random augmentation (clean, 8 kHz telephone band, noisy, both).
Turns outside the four classes are context only and get the nearest acted emotion
(CONTEXT_EMOTION). In training, a share of the turns is voiced with another emotion (`mismatch`).
The audio therefore carries the label of the turn, not its words: what the
fusion learns is how to weigh an emotional voice against the words and the dialogue context.
"""
from __future__ import annotations

import dataclasses

import numpy as np

LABELS = ["angry", "happy", "neutral", "sad"]
CONTEXT_EMOTION = {"fru": "angry", "dis": "angry", "sur": "happy", "fea": "sad", "oth": "neutral", "xxx": "neutral"}


def turn_emotion(turn) -> str:
    """The acted emotion whose clip voices this turn."""
    return turn.label4 or CONTEXT_EMOTION.get(turn.emotion, "neutral")


def sex(speaker: str) -> str:
    """RAVDESS actors with odd numbers are male; TESS speakers are female; IEMOCAP speakers F/M."""
    if speaker.startswith("ravdess_"):
        return "M" if int(speaker.split("_")[1]) % 2 == 1 else "F"
    if speaker.startswith("tess_"):
        return "F"
    return speaker[:1].upper()


@dataclasses.dataclass
class ClipBank:
    """Acted clips' audio embeddings: rows of `audio` indexed by (speaker, emotion) -> {variant: [rows]}."""
    audio: np.ndarray
    index: dict  # (speaker, emotion) -> {variant: [row, ...]} (row lists aligned across variants)

    def speakers(self, sex_: str) -> list[str]:
        return sorted({s for s, _ in self.index if sex(s) == sex_})


def assign(dialogue, bank: ClipBank, rng: np.random.Generator, variants, mismatch: float = 0.0) -> np.ndarray:
    """Audio rows for every turn of the dialogue (one acted speaker per dialogue speaker). With
    probability `mismatch` a turn is voiced with a clip of another emotion (training only: voice
    and words do not always agree, and the audio tower errs on unseen voices, so the classifier
    must not take the audio for the label)."""
    cast = {}
    for spk in sorted({t.speaker for t in dialogue.turns}):
        pool = [s for s in bank.speakers(sex(spk)) if s not in cast.values()] or bank.speakers(sex(spk))
        cast[spk] = pool[int(rng.integers(len(pool)))]
    rows = np.empty(len(dialogue.turns), dtype=np.int64)
    for i, t in enumerate(dialogue.turns):
        emotion = turn_emotion(t)
        if mismatch > 0 and rng.random() < mismatch:
            others = [e for e in LABELS if e != emotion]
            emotion = others[int(rng.integers(len(others)))]
        by_variant = bank.index[(cast[t.speaker], emotion)]
        v = variants[int(rng.integers(len(variants)))]
        clips = by_variant[v]
        rows[i] = clips[int(rng.integers(len(clips)))]
    return rows


def interlocutors(speakers: list[str]) -> np.ndarray:
    """For every turn, the most recent earlier turn by a different speaker, or -1 (StreamAssembler)."""
    out = np.full(len(speakers), -1, dtype=np.int64)
    for i, s in enumerate(speakers):
        for j in range(i - 1, -1, -1):
            if speakers[j] != s:
                out[i] = j
                break
    return out


def streams(audio: np.ndarray, text: np.ndarray, speakers: list[str]) -> np.ndarray:
    """(n, 12, d) stream vectors of every turn of a dialogue from its per-turn embeddings (zeros
    where a modality is absent), in StreamLayout order: for t, t-1, t-2 the 4-tuple (speaker
    audio, speaker text, interlocutor audio, interlocutor text)."""
    n, d = text.shape
    inter = interlocutors(speakers)
    zero = np.zeros(d, dtype=np.float32)
    tuples = np.zeros((n, 4, d), dtype=np.float32)
    for u in range(n):
        j = inter[u]
        tuples[u] = [audio[u], text[u], audio[j] if j >= 0 else zero, text[j] if j >= 0 else zero]
    out = np.zeros((n, 12, d), dtype=np.float32)
    for k in range(3):
        out[k:, 4 * k:4 * k + 4] = tuples[: n - k]
    return out
