#!/usr/bin/env python3
"""A Python reference service for the whole-turn benchmark (Benchmarks/turn.sh): the same
`POST /v1/sessions/{id}/turns` contract as emotion-server, done with PyTorch or ONNX Runtime.

    turn_service.py --engine torch|onnxruntime --data bench-out/turn --encoders bench-out/encoders \
        --classifier bench-out/paper --port N [--threads 2]

Per turn, as the Swift pipeline does it (and as Training/fixtures/make_tiny_service_model.py
writes its reference):
  audio: base64 -> soundfile (mean of channels) -> librosa.resample(soxr_hq) to 48 kHz when the
         clip's rate differs -> consecutive 10 s windows (a tail under 1 s dropped when there is
         more than one) -> transformers ClapFeatureExtractor (rand_trunc, repeatpad) -> the audio
         tower (HTSAT-tiny + projection), all windows in one batch -> L2 each -> mean -> L2
  text:  transformers RobertaTokenizerFast (the package's vocab.json / merges.txt, max 77 ids) ->
         RoBERTa + pooler + projection -> L2
  streams: the session's history as Sources/GatedXLSTM/StreamAssembler.swift's StreamContext
         keeps it: the 4-tuple (audio, text, interlocutor audio, interlocutor text) of t, t-1 and
         t-2, the interlocutor the most recent earlier turn by another speaker; missing = zeros
  classifier: the paper-size gated xLSTM (Training/gatedxlstm/model.py; ONNX: classifier.onnx),
         probabilities = softmax(logits), gates: t.speaker.audio 1 then the 11 gate weights
  DED:   Training/reference/ded_reference.py beam_step after every turn on the session's beam
         (the same as its decode_online), the best path answered, with the turns it revised

Engines: torch (torch.set_num_threads(T), inference_mode, eval), onnxruntime (CPU provider,
ORT_ENABLE_ALL, intra-op T threads, inter-op 1; audio.onnx, text.onnx, classifier.onnx). HTTP is
Python's ThreadingHTTPServer (HTTP/1.1 keep-alive): the request body is read, base64 and the WAV
decoded in the connection's thread; the model work of one turn at a time runs on one inference
worker, the main thread (its T threads are the machine's cores; PyTorch ran 2-2.5x slower when
called from a server thread), in arrival order; the turns of one session in their order. Answers: {"session_id", "turn": {index, speaker, emotion, probabilities, gates},
"decoded": [{index, emotion, revised}], "timings_ms": {queue, audio, text, classify, ded, total},
"replayed": false}. GET /healthz answers {"status": "ok"} once the models are loaded.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import pathlib
import queue
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Training"))
sys.path.insert(0, str(ROOT / "Training/reference"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

WINDOW = 480000  # 10 s at 48 kHz
RATE = 48000
SESSION = re.compile(r"^/v1/sessions/([A-Za-z0-9._-]{1,128})/turns$")


class Engine:
    """The three models behind one interface: audio(features (W,1,1001,64)) -> (W,512),
    text(ids (1,N)) -> (1,512), classify(streams (1,12,512)) -> (logits (1,L), gates (1,11))."""

    def __init__(self, kind: str, data: pathlib.Path, encoders: pathlib.Path, classifier: pathlib.Path, threads: int):
        import numpy as np
        self.np = np
        self.kind = kind
        if kind == "torch":
            import torch
            from safetensors.torch import load_file
            from transformers import (ClapAudioConfig, ClapAudioModelWithProjection, ClapTextConfig,
                                      ClapTextModelWithProjection)
            from classifier_reference import load_torch
            torch.set_num_threads(threads)
            self.torch = torch
            self.audio_model = self._load(ClapAudioModelWithProjection, ClapAudioConfig(),
                                          load_file(str(data / "torch/audio.safetensors")))
            self.text_model = self._load(ClapTextModelWithProjection, ClapTextConfig(),
                                         load_file(str(data / "torch/text.safetensors")))
            self.classifier = load_torch(classifier)
            torch.set_num_threads(threads)  # after building: nothing may reset it
        else:
            from benchkit import onnx_session
            self.audio_session = onnx_session(encoders / "audio/audio.onnx", threads)
            self.text_session = onnx_session(encoders / "text/text.onnx", threads)
            self.classifier_session = onnx_session(classifier / "classifier.onnx", threads)

    @staticmethod
    def _load(cls, cfg, state):
        """Builds the module on the meta device and assigns the saved tensors (the weights held
        once, as classifier_reference.load_torch does); the non-persistent buffers (RoBERTa's
        position_ids / token_type_ids) are rebuilt."""
        import torch
        with torch.device("meta"):
            model = cls(cfg)
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        for name, buf in list(model.named_buffers()):
            if not buf.is_meta:
                continue
            owner = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "position_ids":
                value = torch.arange(buf.shape[-1]).expand(buf.shape)
            elif leaf == "token_type_ids":
                value = torch.zeros(buf.shape, dtype=buf.dtype)
            else:
                raise RuntimeError(f"{cls.__name__}: buffer {name} left on the meta device")
            owner.register_buffer(leaf, value, persistent=False)
        missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
        leftovers = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
        if missing or unexpected or leftovers:
            raise RuntimeError(f"{cls.__name__}: state dict mismatch: missing {missing[:3]}, "
                               f"unexpected {unexpected[:3]}, meta {leftovers[:3]}")
        return model.eval()

    def audio(self, features):
        if self.kind == "torch":
            with self.torch.inference_mode():
                return self.audio_model(input_features=self.torch.from_numpy(features)).audio_embeds.numpy()
        return self.audio_session.run(None, {"input_features": features})[0]

    def text(self, ids):
        if self.kind == "torch":
            with self.torch.inference_mode():
                return self.text_model(input_ids=self.torch.from_numpy(ids)).text_embeds.numpy()
        return self.text_session.run(None, {"input_ids": ids})[0]

    def classify(self, streams):
        if self.kind == "torch":
            with self.torch.inference_mode():
                logits, gates = self.classifier(self.torch.from_numpy(streams))
                return logits.numpy(), gates.numpy()
        return tuple(self.classifier_session.run(["logits", "gates"], {"streams": streams}))


class Session:
    """A dialogue's state: what the next turn's streams need (StreamContext), the DED beam, the
    decoded path."""

    def __init__(self, dim: int, label_count: int):
        self.dim, self.label_count = dim, label_count
        self.last = None  # (speaker, audio, text) of the last turn
        self.last_other = None  # the most recent turn whose speaker differs from last's
        self.recent = []  # 4-tuples of the last two turns, newest first
        self.count = 0
        self.hyps = None
        self.decoded = []
        self.lock = threading.Lock()

    def tuple_of(self, speaker, audio, text, zeros):
        other = None
        if self.last is not None:
            other = self.last if self.last[0] != speaker else self.last_other
        oa, ot = (other[1], other[2]) if other is not None else (None, None)
        pick = lambda v: zeros if v is None else v  # noqa: E731
        return [pick(audio), pick(text), pick(oa), pick(ot)]

    def streams(self, speaker, audio, text, np):
        zeros = np.zeros(self.dim, dtype=np.float32)
        blank = [zeros] * 4
        current = self.tuple_of(speaker, audio, text, zeros)
        previous = self.recent[0] if self.recent else blank
        before = self.recent[1] if len(self.recent) > 1 else blank
        return current, np.stack(current + previous + before)[None].astype(np.float32)

    def append(self, speaker, audio, text, current):
        if self.last is not None and self.last[0] != speaker:
            self.last_other = self.last
        self.last = (speaker, audio, text)
        self.recent = [current] + self.recent[:1]
        self.count += 1


class Service:
    def __init__(self, args):
        import numpy as np
        from transformers import ClapFeatureExtractor
        from turn_prepare import roberta_tokenizer
        import ded_reference
        data, enc, cls = pathlib.Path(args.data), pathlib.Path(args.encoders), pathlib.Path(args.classifier)
        manifest = json.loads((data / "package/model.json").read_text())
        self.labels = manifest["labels"]
        self.streams_names = manifest["classifier"]["streams"]
        self.dim = manifest["classifier"]["embedding_dim"]
        self.ded = manifest["ded"]
        self.ded_ref = ded_reference
        self.np = np
        self.features = ClapFeatureExtractor(frequency_min=50, frequency_max=14000, truncation="rand_trunc",
                                             padding="repeatpad")
        self.tokenizer = roberta_tokenizer(data / "torch")
        self.engine = Engine(args.engine, data, enc, cls, args.threads)
        self.jobs = queue.Queue()
        self.sessions: dict[str, Session] = {}
        self.sessions_lock = threading.Lock()

    def on_worker(self, fn):
        """Runs fn on the inference worker (the main thread) and returns its result."""
        box = {"done": threading.Event()}
        self.jobs.put((fn, box))
        box["done"].wait()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def work_forever(self) -> None:
        """The inference worker: the model work of one turn at a time, in arrival order. It runs
        on the main thread: PyTorch's OpenMP intra-op pool ran 2-2.5x slower when its ops were
        called from a server thread instead (measured here, the paper classifier at batch 1)."""
        while True:
            fn, box = self.jobs.get()
            try:
                box["value"] = fn()
            except Exception as e:  # noqa: BLE001
                box["error"] = e
            box["done"].set()

    def session(self, sid: str) -> Session:
        with self.sessions_lock:
            s = self.sessions.get(sid)
            if s is None:
                s = self.sessions[sid] = Session(self.dim, len(self.labels))
            return s

    def decode_audio(self, raw: bytes):
        """Mono 48 kHz samples of the clip (soundfile, mean of channels, soxr_hq)."""
        import soundfile as sf
        x, rate = sf.read(io.BytesIO(raw), dtype="float32", always_2d=True)
        y = x.mean(axis=1)
        if rate != RATE:
            import librosa
            y = librosa.resample(y, orig_sr=rate, target_sr=RATE, res_type="soxr_hq")
        return y

    def turn(self, sid: str, body: dict, received: float) -> dict:
        np = self.np
        speaker = body["speaker"]
        transcript = body.get("transcript") or ""
        samples = self.decode_audio(base64.b64decode(body["audio"])) if body.get("audio") else None
        if samples is None and not transcript:
            raise ValueError("empty turn")
        session = self.session(sid)
        with session.lock:  # turns of one session in arrival order
            def work():
                t_start = time.perf_counter()
                timings = {"queue": (t_start - received) * 1e3}
                audio = None
                if samples is not None and len(samples):
                    windows = [samples[s:s + WINDOW] for s in range(0, len(samples), WINDOW)]
                    if len(windows) > 1 and len(windows[-1]) < RATE:
                        windows = windows[:-1]
                    feats = np.concatenate([self.features(w, sampling_rate=RATE, return_tensors="np")["input_features"]
                                            for w in windows]).astype(np.float32)
                    emb = self.engine.audio(feats)
                    emb = emb / np.linalg.norm(emb, axis=-1, keepdims=True)
                    audio = emb.mean(0)
                    audio = (audio / np.linalg.norm(audio)).astype(np.float32)
                t = time.perf_counter()
                timings["audio"] = (t - t_start) * 1e3
                text = None
                if transcript:
                    ids = np.asarray([self.tokenizer(transcript, truncation=True, max_length=77)["input_ids"]],
                                     dtype=np.int64)
                    e = self.engine.text(ids)[0]
                    text = (e / np.linalg.norm(e)).astype(np.float32)
                t2 = time.perf_counter()
                timings["text"] = (t2 - t) * 1e3
                current, streams = session.streams(speaker, audio, text, np)
                logits, gates = self.engine.classify(streams)
                timings["classify"] = (time.perf_counter() - t2) * 1e3
                return audio, text, current, logits, gates, timings
            audio, text, current, logits, gates, timings = self.on_worker(work)
            t3 = time.perf_counter()
            logits = [float(v) for v in logits[0]]
            step = (speaker, logits)
            if session.hyps is None:
                self.ded_ref.check_parameters(len(self.labels), self.ded["p0"], self.ded["alpha"], self.ded["beam"])
                session.hyps = [self.ded_ref.initial_hypothesis(len(self.labels))]
            session.hyps = self.ded_ref.beam_step(session.hyps, step, len(self.labels), self.ded["p0"],
                                                  self.ded["alpha"], self.ded["beam"])
            decoded = list(session.hyps[0]["path"])
            previous = session.decoded
            revised = {i for i, (a, b) in enumerate(zip(previous, decoded)) if a != b}
            index = session.count
            session.append(speaker, audio, text, current)
            session.decoded = decoded
            t4 = time.perf_counter()
            timings["ded"] = (t4 - t3) * 1e3
        m = max(logits)
        ex = [np.exp(v - m) for v in logits]
        probs = [float(v / sum(ex)) for v in ex]
        gate_values = [1.0] + [float(g) for g in gates[0]]
        timings["total"] = (time.perf_counter() - received) * 1e3
        return {"session_id": sid,
                "turn": {"index": index, "turn_id": body.get("turn_id") or f"turn-{index}", "speaker": speaker,
                         "emotion": self.labels[int(np.argmax(logits))],
                         "probabilities": dict(zip(self.labels, probs)),
                         "gates": dict(zip(self.streams_names, gate_values))},
                "decoded": [{"index": i, "emotion": self.labels[e], "revised": i in revised}
                            for i, e in enumerate(decoded)],
                "timings_ms": timings, "replayed": False}


def handler_for(service: Service):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):  # quiet
            pass

        def answer(self, status: int, obj) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path in ("/healthz", "/readyz"):
                self.answer(200, {"status": "ok"})
            elif self.path == "/v1/model":
                self.answer(200, {"labels": service.labels, "streams": service.streams_names,
                                  "runtime": {"engine": service.engine.kind}})
            else:
                self.answer(404, {"error": {"code": "not_found", "message": self.path}})

        def do_POST(self):
            received = time.perf_counter()
            m = SESSION.match(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if not m:
                return self.answer(404, {"error": {"code": "not_found", "message": self.path}})
            try:
                body = json.loads(raw)
                self.answer(200, service.turn(m.group(1), body, received))
            except (ValueError, KeyError, TypeError) as e:
                self.answer(422, {"error": {"code": "unprocessable", "message": str(e)}})
            except Exception as e:  # noqa: BLE001
                self.answer(500, {"error": {"code": "internal_error", "message": repr(e)}})

    return Handler


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", choices=["torch", "onnxruntime"], required=True)
    p.add_argument("--data", default="bench-out/turn")
    p.add_argument("--encoders", default="bench-out/encoders")
    p.add_argument("--classifier", default="bench-out/paper")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8392)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    t0 = time.perf_counter()
    service = Service(args)
    server = ThreadingHTTPServer((args.host, args.port), handler_for(service))
    server.daemon_threads = True
    print(json.dumps({"listening": f"http://{args.host}:{server.server_address[1]}", "engine": args.engine,
                      "load_s": round(time.perf_counter() - t0, 2)}), flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        service.work_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
