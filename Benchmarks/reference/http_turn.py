#!/usr/bin/env python3
"""Whole turns over HTTP against a running emotion-server: a 3 s clip (the espeak-ng utterance of
Tests/SharedFixtures, tiled) and a 15-word transcript posted as one turn, one request at a time,
each call a fresh session of `--turns-per-session` turns. Prints one JSON line: client-side
p50/p90/min/max in ms over the timed turns (after the warm-up) and the server's own stage timings
(median of timings_ms)."""
from __future__ import annotations

import argparse
import base64
import io
import json
import pathlib
import statistics
import time
import urllib.request

import numpy as np
import soundfile as sf

ROOT = pathlib.Path(__file__).resolve().parents[2]
TRANSCRIPT = "I have been waiting for my refund for three weeks and nobody called me back."


def clip_b64(seconds: float) -> str:
    x, sr = sf.read(str(ROOT / "Tests/SharedFixtures/whisper-clips/hello.wav"), dtype="float32")
    n = int(seconds * sr)
    buf = io.BytesIO()
    sf.write(buf, np.tile(x, n // len(x) + 1)[:n], sr, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", default="http://127.0.0.1:8391")
    p.add_argument("--turns", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--turns-per-session", type=int, default=6)
    p.add_argument("--seconds", type=float, default=3.0)
    a = p.parse_args()
    assert len(TRANSCRIPT.split()) == 15
    audio = clip_b64(a.seconds)
    times, stages = [], {}
    for i in range(a.warmup + a.turns):
        session = f"bench-{i // a.turns_per_session}"
        body = json.dumps({"speaker": "caller" if i % 2 == 0 else "agent", "transcript": TRANSCRIPT,
                           "audio": audio, "turn_id": f"t{i}"}).encode()
        req = urllib.request.Request(f"{a.url}/v1/sessions/{session}/turns", data=body,
                                     headers={"Content-Type": "application/json"})
        t = time.perf_counter()
        with urllib.request.urlopen(req, timeout=60) as r:
            answer = json.loads(r.read())
        ms = (time.perf_counter() - t) * 1000
        if i >= a.warmup:
            times.append(ms)
            for k, v in answer["timings_ms"].items():
                stages.setdefault(k, []).append(v)
    times.sort()
    q = lambda f: times[min(len(times) - 1, int(round(f * (len(times) - 1))))]  # noqa: E731
    print(json.dumps({"turns": len(times), "audio_seconds": a.seconds, "transcript_words": len(TRANSCRIPT.split()),
                      "p50_ms": q(0.5), "p90_ms": q(0.9), "min_ms": times[0], "max_ms": times[-1],
                      "server_stage_median_ms": {k: statistics.median(v) for k, v in stages.items()}}))


if __name__ == "__main__":
    main()
