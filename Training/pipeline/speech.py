"""Acted emotional speech (../shared/data/speech: RAVDESS, TESS): manifests, the 4-class label map,
speaker splits, call-center augmentation and the log-mel features the Swift front end computes."""
from __future__ import annotations

import csv
import dataclasses
import pathlib

import numpy as np

LABELS = ["angry", "happy", "neutral", "sad"]
# RAVDESS "calm" is read as neutral for training (it is the calm end of neutral); the held-out
# evaluation uses only the four labels themselves.
TRAIN_MAP = {"angry": "angry", "happy": "happy", "neutral": "neutral", "sad": "sad", "calm": "neutral"}
# Held-out speakers (never seen by the audio tower or the classifier): RAVDESS actors 17-20
# (two male, two female) and TESS's older speaker.
HELD_OUT = {"ravdess_17", "ravdess_18", "ravdess_19", "ravdess_20", "tess_OAF"}


@dataclasses.dataclass(frozen=True)
class Clip:
    path: pathlib.Path
    corpus: str
    speaker: str
    emotion: str  # the corpus label
    transcript: str

    @property
    def label(self) -> str | None:
        """The 4-class training label, or None."""
        return TRAIN_MAP.get(self.emotion)


def load_clips(data_dir) -> list[Clip]:
    data_dir = pathlib.Path(data_dir)
    clips = []
    for corpus in ("ravdess", "tess"):
        manifest = data_dir / "speech" / corpus / "manifest.csv"
        with open(manifest, newline="") as f:
            for row in csv.DictReader(f):
                clips.append(Clip(data_dir / row["path"], row["corpus"], row["speaker"], row["emotion"],
                                  row["transcript"]))
    clips.sort(key=lambda c: str(c.path))
    return clips


def split(clips: list[Clip], held_out=HELD_OUT) -> tuple[list[Clip], list[Clip]]:
    """(training clips with a 4-class label, held-out clips of the four labels proper)."""
    train = [c for c in clips if c.speaker not in held_out and c.label is not None]
    val = [c for c in clips if c.speaker in held_out and c.emotion in LABELS]
    return train, val


# ---------------------------------------------------------------------------------------------
# Audio


def read(path) -> tuple[np.ndarray, int]:
    import soundfile as sf
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return x.mean(axis=1), sr


def telephone(x: np.ndarray, sr: int) -> np.ndarray:
    """Narrowband call audio at 8 kHz: resampled (nothing above 4 kHz is left), 300 Hz high-pass."""
    import soxr
    from scipy.signal import butter, sosfilt
    y = soxr.resample(x, sr, 8000, quality="HQ")
    return sosfilt(butter(4, 300, "highpass", fs=8000, output="sos"), y).astype(np.float32)


def add_noise(x: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """White or brown noise at the given signal-to-noise ratio."""
    n = rng.standard_normal(len(x)).astype(np.float32)
    if rng.random() < 0.5:
        n = np.cumsum(n)
        c = np.concatenate([[0.0], np.cumsum(n)])
        k = np.arange(len(n))
        lo, hi = np.maximum(k - 200, 0), np.minimum(k + 201, len(n))
        n = (n - (c[hi] - c[lo]) / (hi - lo)).astype(np.float32)  # brown noise without drift
    p_signal = float(np.mean(x ** 2)) + 1e-12
    p_noise = float(np.mean(n ** 2)) + 1e-12
    return (x + n * np.sqrt(p_signal / p_noise / 10 ** (snr_db / 10))).astype(np.float32)


def gain(x: np.ndarray, db: float) -> np.ndarray:
    return np.clip(x * 10 ** (db / 20), -1, 1).astype(np.float32)


VARIANTS = ("clean", "telephone", "noisy", "telephone_noisy")
# G.711 at 8 kHz (the telephone band at the clip's own level, companded): written as mu-law and
# A-law WAV files, so the service decodes them with libsndfile as it would a call's recording.
G711 = ("mulaw", "alaw")
G711_SUBTYPES = {"mulaw": "ULAW", "alaw": "ALAW"}
# "narrowband" is the 8 kHz telephone band at the clip's own level, so that band and level vary
# apart in training ("telephone" has both): with it, the held-out 8 kHz copies scored as well as
# full band (0.80 both) instead of 5.5 points lower, and random gains cost 9 points instead of 12
# (Training/README.md).
TRAIN_VARIANTS = VARIANTS + ("narrowband",)
# Held-out copies also include "gain", the full band at a random gain.
HELD_OUT_VARIANTS = TRAIN_VARIANTS + ("gain",)


def variant(x: np.ndarray, sr: int, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """One copy as a client would send it: (samples, rate). Telephone kinds, "narrowband" and
    the G.711 kinds (companded when written) are 8 kHz; noisy kinds have white or brown noise at
    5-25 dB SNR; every kind but "clean", "narrowband" and the G.711 kinds has a random gain
    (-12..+6 dB)."""
    if kind == "clean":
        return x, sr
    if kind == "narrowband" or kind in G711:
        return telephone(x, sr), 8000
    if kind in ("telephone", "telephone_noisy"):
        x, sr = telephone(x, sr), 8000
    if kind in ("noisy", "telephone_noisy"):
        x = add_noise(x, rng, float(rng.uniform(5, 25)))
    return gain(x, float(rng.uniform(-12, 6))), sr


def clip_seed(seed: int, clip: "Clip") -> int:
    """A per-clip seed, so a clip's copies do not depend on which other clips are processed."""
    import zlib
    return (seed * 1_000_003 + zlib.crc32(str(clip.path.name).encode())) % (2 ** 32)


def write_variants(clips, out_dir, seed: int, kinds=VARIANTS) -> dict:
    """Writes every clip's copies as 16-bit WAV under out_dir/<speaker>/<stem>.<kind>.wav (kept
    when present: deterministic per clip and seed). Returns {(clip path, kind): wav path}."""
    import soundfile as sf
    out_dir = pathlib.Path(out_dir)
    paths = {}
    for c in clips:
        rng = np.random.default_rng(clip_seed(seed, c))
        x = None
        for kind in kinds:
            target = out_dir / c.speaker / f"{c.path.stem}.{kind}.wav"
            paths[(c.path, kind)] = target
            y_rng = np.random.default_rng(rng.integers(2 ** 32))
            if target.exists():
                continue
            if x is None:
                x, sr = read(c.path)
            y, rate = variant(x, sr, kind, y_rng)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp.wav")
            sf.write(str(tmp), np.clip(y, -1, 1), rate, subtype=G711_SUBTYPES.get(kind, "PCM_16"))
            tmp.rename(target)
    return paths


# ---------------------------------------------------------------------------------------------
# Features: the model.json `audio` front-end keys and the same log-mel the Swift front end computes
# (transformers' ClapFeatureExtractor, unfused: Slaney mel, power dB, repeat-padded window).

FRONT_END = {
    "sample_rate": 16000,
    "n_fft": 512,
    "hop_length": 320,
    "n_mels": 64,
    "f_min": 50.0,
    "f_max": 8000.0,
    "max_length_s": 5.0,
    "padding": "repeatpad",
    "truncation": "rand_trunc",
}
# Call audio arrives at any level, and a log-mel network is not gain invariant by itself (a fixed
# -12 dB cost a tower trained here 16 points on held-out speakers). The front end can normalise
# the level ("active_level_dbfs", below), but on acted speech loudness is part of the emotion: a
# tower trained on clips normalised to -26 dBFS lost 12 points on held-out speakers (0.60 against
# 0.72). The default model keeps the level and learns from the gain-varied copies instead
# (Training/README.md has the figures).


def active_level(x: np.ndarray, rate: int) -> float:
    """RMS of the loudest half of a clip's 20 ms frames (the whole clip when shorter than one
    frame): a speech level that does not depend on how much silence surrounds the speech.
    Float64 sums, as the Swift front end computes it."""
    frame = max(1, rate // 50)
    n = len(x) // frame
    if n == 0:
        return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    energies = np.mean(np.square(x[:n * frame].reshape(n, frame), dtype=np.float64), axis=1)
    loudest = np.sort(energies)[::-1][:(n + 1) // 2]
    return float(np.sqrt(np.mean(loudest)))


# Below this active level (-100 dBFS) a clip is digital silence and is left as it is.
SILENCE_LEVEL = 1e-5


def normalise_level(x: np.ndarray, rate: int, target_dbfs: float) -> np.ndarray:
    """`x` scaled so that its active level is `target_dbfs` dBFS (float32 product, no clipping)."""
    level = active_level(x, rate)
    if level < SILENCE_LEVEL:
        return x.astype(np.float32)
    return (x.astype(np.float32) * np.float32(10 ** (target_dbfs / 20) / level)).astype(np.float32)


def feature_extractor(front_end=FRONT_END):
    from transformers import ClapFeatureExtractor
    return ClapFeatureExtractor(feature_size=front_end["n_mels"], sampling_rate=front_end["sample_rate"],
                                hop_length=front_end["hop_length"], max_length_s=int(front_end["max_length_s"]),
                                fft_window_size=front_end["n_fft"], frequency_min=front_end["f_min"],
                                frequency_max=front_end["f_max"], truncation=front_end["truncation"],
                                padding=front_end["padding"])


def log_mel(extractor, x: np.ndarray, sr: int) -> np.ndarray:
    """(frames, n_mels) float32 of a clip at any rate (resampled as the Swift front end does, with
    soxr, then level-normalised over the whole clip); clips longer than the window are cut at the start (training only)."""
    rate = FRONT_END["sample_rate"]
    if sr != rate:
        import soxr
        x = soxr.resample(x, sr, rate, quality="HQ").astype(np.float32)
    if FRONT_END.get("active_level_dbfs") is not None:
        x = normalise_level(x, rate, FRONT_END["active_level_dbfs"])
    n = int(round(extractor.nb_max_samples))
    if len(x) > n:
        x = x[:n]
    out = extractor(x, sampling_rate=rate, return_tensors="np")
    return out["input_features"][0, 0].astype(np.float32)
