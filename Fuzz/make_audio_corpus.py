"""Writes the audio decoder fuzzer's seed corpus (8 small files) into a directory:

    Training/.venv/bin/python Fuzz/make_audio_corpus.py /tmp/audio-corpus

One file per container and sample format the decoder must take apart (WAV 16-bit, 24-bit stereo,
float and 8-bit, FLAC, AIFF, AU) plus a WAV cut off inside its data chunk; each holds 1600 frames
of a 440 Hz tone with a little deterministic noise, at the rates the decoder resamples from.
libsndfile writes them (the `soundfile` package of the training venv), as clients' tools would."""
import pathlib
import sys

import numpy as np
import soundfile as sf

SEEDS = [  # name, rate, channels, libsndfile format, subtype
    ("pcm16.wav", 16000, 1, "WAV", "PCM_16"),
    ("pcm24-stereo.wav", 22050, 2, "WAV", "PCM_24"),
    ("float.wav", 8000, 1, "WAV", "FLOAT"),
    ("u8.wav", 11025, 1, "WAV", "PCM_U8"),
    ("flac16.flac", 16000, 1, "FLAC", "PCM_16"),
    ("aiff.aiff", 16000, 1, "AIFF", "PCM_16"),
    ("au.au", 16000, 1, "AU", "PCM_16"),
]
FRAMES = 1600


def main(out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, rate, channels, fmt, subtype in SEEDS:
        t = np.arange(FRAMES) / rate
        tone = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(FRAMES)
        x = np.stack([tone * (0.5 + 0.5 * c) for c in range(channels)], axis=1).astype(np.float32)
        sf.write(str(out / name), x, rate, format=fmt, subtype=subtype)
    # A header that promises more data than the file holds.
    (out / "truncated.wav").write_bytes((out / "pcm16.wav").read_bytes()[:100])
    print(f"{len(SEEDS) + 1} seeds in {out}")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/audio-corpus"))
