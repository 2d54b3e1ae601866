#!/usr/bin/env python3
"""Measures the memory figures behind Deploy/README's arithmetic on a running-from-scratch
release `emotion-server` with a model package (standard library only):

  1. base: RSS after start and one warm-up turn (3 s of audio + a transcript);
  2. bodies: peak RSS while `--clients` connections each post a turn of maximal size (a WAV of
     `--audio-seconds` at 48 kHz as base64, just under --max-body-bytes) at once: the body budget
     admits what fits and answers the rest 503 body_budget_exhausted;
  3. stored turns: RSS growth per stored turn over `--turns` text-only turns (and the per-turn
     size of the audio embedding added analytically: 4 bytes x embedding dimension).

    python3 Deploy/measure-memory.py --server .build/release/emotion-server --model Models/default
"""
from __future__ import annotations

import argparse
import base64
import concurrent.futures
import http.client
import io
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_field(pid: int, name: str) -> int:
    """A /proc/PID/status field in bytes (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(name)


def wav(seconds: float, rate: int = 48000) -> bytes:
    """A mono 16-bit WAV of a gliding tone with some noise (not silence: the encoder runs)."""
    n = int(seconds * rate)
    frames = bytearray(2 * n)
    seed = 12345
    for i in range(n):
        seed = (1103515245 * seed + 12345) & 0x7FFFFFFF
        v = 0.3 * math.sin(2 * math.pi * (200 + 100 * (i / rate) % 300) * i / rate) + 0.05 * (seed / 0x7FFFFFFF - 0.5)
        s = int(max(-1, min(1, v)) * 32767)
        frames[2 * i] = s & 0xFF
        frames[2 * i + 1] = (s >> 8) & 0xFF
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return out.getvalue()


def post(port: int, path: str, body: bytes, timeout: float = 600) -> tuple[int, dict]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        try:
            return r.status, json.loads(data or b"{}")
        except ValueError:
            return r.status, {}
    finally:
        c.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default=".build/release/emotion-server")
    ap.add_argument("--model", default="Models/default")
    ap.add_argument("--max-body-bytes", type=int, default=16 << 20)
    ap.add_argument("--max-buffered-body-bytes", type=int, default=64 << 20)
    ap.add_argument("--audio-seconds", type=float, default=115)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--turns", type=int, default=2000)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    a = ap.parse_args()

    port = free_port()
    state = tempfile.mkdtemp(prefix="measure-memory-")
    cmd = [a.server, "--model", a.model, "--port", str(port), "--max-body-bytes", str(a.max_body_bytes),
           "--max-buffered-body-bytes", str(a.max_buffered_body_bytes), "--max-audio-seconds", "120",
           "--max-turns-per-session", "100000", "--max-session-bytes", str(64 << 20)]
    log = open(os.path.join(state, "server.log"), "w")
    server = subprocess.Popen(cmd, stderr=log, stdout=log)
    try:
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            print("server did not become ready", file=sys.stderr)
            return 1
        warm = json.dumps({"speaker": "A", "transcript": "I have been waiting for an hour.",
                           "audio": base64.b64encode(wav(3)).decode()}).encode()
        status, _ = post(port, "/v1/sessions/warm/turns", warm)
        assert status == 200, status
        time.sleep(0.5)
        base = status_field(server.pid, "VmRSS")

        # 2. Maximal bodies at once.
        big = json.dumps({"speaker": "A", "audio": base64.b64encode(wav(a.audio_seconds)).decode()}).encode()
        assert len(big) <= a.max_body_bytes, f"body {len(big)} > max {a.max_body_bytes}"
        peak = [base]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], status_field(server.pid, "VmRSS"))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        with concurrent.futures.ThreadPoolExecutor(a.clients) as pool:
            answers = list(pool.map(lambda i: post(port, f"/v1/sessions/big{i}/turns", big), range(a.clients)))
        stop.set()
        sampler.join()
        statuses = {}
        for s, body in answers:
            key = f"{s} {body.get('error', {}).get('code', '')}".strip()
            statuses[key] = statuses.get(key, 0) + 1
        admitted = sum(1 for s, _ in answers if s == 200)

        # 3. Stored turns (text only), in 20 sessions.
        time.sleep(0.5)
        before = status_field(server.pid, "VmRSS")
        text = json.dumps({"speaker": "A", "transcript": "Could you check the status of my order, please?"}).encode()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(lambda i: post(port, f"/v1/sessions/store{i % 20}/turns", text)[0], range(a.turns)))
        assert all(c == 200 for c in codes), {c: codes.count(c) for c in set(codes)}
        time.sleep(0.5)
        after = status_field(server.pid, "VmRSS")
        with open(os.path.join(a.model, "model.json")) as f:
            model = json.load(f)
        dimension = model.get("classifier", {}).get("embedding_dim", 512)
        result = {
            "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
            "model": a.model, "base_rss_mib": base / 2**20, "body_bytes_mib": len(big) / 2**20,
            "clients": a.clients, "admitted": admitted, "answers": statuses,
            "peak_rss_during_bodies_mib": peak[0] / 2**20,
            "peak_over_base_mib": (peak[0] - base) / 2**20,
            "peak_over_base_per_admitted_body": (peak[0] - base) / max(1, admitted) / len(big),
            "budget_mib": a.max_buffered_body_bytes / 2**20,
            "text_turn_bytes": (after - before) / a.turns,
            "audio_embedding_bytes": 4 * dimension,
        }
        print(json.dumps(result, indent=2))
        if a.out:
            with open(a.out, "w") as f:
                json.dump(result, f, indent=2)
        return 0
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
