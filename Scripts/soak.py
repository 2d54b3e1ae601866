#!/usr/bin/env python3
"""Soak test of emotion-server (issue #11): many concurrent sessions with mixed valid and hostile
traffic for a while, then SIGTERM and a restart on the same state directory.

Standard library only. Usually run through Scripts/soak.sh, which builds the server first.

Fails (exit 1, reasons printed) on: any 5xx other than a tolerated overload 503 (see TOLERATED_503),
a tolerated 503 without Retry-After, the server dying, a valid request answered other than
expected (e.g. an unexpected 4xx), a hostile request answered outside its expected statuses
(a 2xx to a cross-tenant read, 100 Continue before a bad key is refused, ...), a session whose
GET disagrees with the turns answered 200, RSS at the end above RSS after warm-up by more than
--rss-tolerance, a non-zero exit status after SIGTERM, or a restart that does not restore the
sessions answered 200 and not deleted (a sample is checked).
"""
import argparse, base64, collections, http.client, io, json, math, os, random, re, signal, socket
import struct, subprocess, sys, tempfile, threading, time, wave

# Overload answers that are correct behaviour when they carry Retry-After: counted, retried by
# valid clients after Retry-After (same turn_id), not a failure. Anything else >= 500 is.
TOLERATED_503 = {"queue_full", "body_budget_exhausted", "service_unavailable", "analysis_queue_full",
                 "too_many_sessions"}

SENTENCES = [
    "Thank you for calling, how can I help you today?",
    "I have been waiting for two weeks and my order still has not arrived!",
    "I am so sorry to hear that, let me look into it right away.",
    "This is the third time I call about the same problem.",
    "Thank you, that is really kind of you.",
    "Could you please confirm your address for me?",
    "I just want my money back.",
    "Great, it arrived this morning, everything is fine.",
    "Please hold the line.",
    "I am really disappointed with the service.",
]


def make_wav(seconds, seed, rate=16000):
    """A synthetic clip: a few tones with a pitch glide plus noise, 16-bit mono WAV."""
    rng = random.Random(seed)
    n = int(seconds * rate)
    f0, f1 = rng.uniform(90, 250), rng.uniform(90, 250)
    frames = bytearray()
    phase = 0.0
    for i in range(n):
        f = f0 + (f1 - f0) * i / n
        phase += 2 * math.pi * f / rate
        v = 0.3 * math.sin(phase) + 0.15 * math.sin(2 * phase) + rng.gauss(0, 0.05)
        v *= 0.5 + 0.5 * math.sin(2 * math.pi * 3 * i / rate) ** 2  # syllable-like envelope
        frames += struct.pack("<h", max(-32767, min(32767, int(v * 32767))))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(rate); w.writeframes(bytes(frames))
    return base64.b64encode(buf.getvalue()).decode()


class Stats:
    """Every answer counted by (kind, status, error code); failures with a reason each."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.failures = []
        self.failure_count = 0
        self.latencies = []  # seconds, valid turn posts answered 200
        self.turns_ok = 0
        self.replays_ok = 0
        self.tolerated_503 = collections.Counter()

    def count(self, kind, status, code=None):
        with self.lock:
            self.counts[(kind, status, code or "")] += 1

    def fail(self, reason):
        with self.lock:
            self.failure_count += 1
            if len(self.failures) < 50:
                self.failures.append(f"{time.strftime('%H:%M:%S')} {reason}")


def error_code(body):
    try:
        return json.loads(body)["error"]["code"]
    except Exception:
        return None


class Soak:
    def __init__(self, args):
        self.args = args
        self.stats = Stats()
        self.stop = threading.Event()
        self.work = tempfile.mkdtemp(prefix="soak-")
        self.state = os.path.join(self.work, "state")
        self.keys = {"acme": "acme-soak-key", "beta": "beta-soak-key", "flood": "flood-soak-key",
                     "admin": "admin-soak-key"}
        with open(os.path.join(self.work, "keys"), "w") as f:
            f.write("# soak tenants\n" + "".join(f"{t}:{k}\n" for t, k in self.keys.items()))
        rng = random.Random(1)
        self.clips = [make_wav(rng.uniform(1, 3), s) for s in range(6)]
        self.kept = {"acme": collections.OrderedDict(), "beta": collections.OrderedDict()}  # sid -> turns
        self.deleted = {"acme": [], "beta": []}
        self.kept_lock = threading.Lock()
        self.proc = None
        self.rss = []  # (t, kB)
        self.t0 = None
        self.steady_at = None  # when the stored state stopped growing (see monitor)
        self.flood_refused = False

    # --- server ---------------------------------------------------------------------------
    def start_server(self, log_name):
        a = self.args
        cmd = [a.binary, "--model", a.model, "--port", "0", "--api-keys-file", os.path.join(self.work, "keys"),
               "--state-dir", self.state, "--journal", "--max-body-bytes", str(a.max_body_bytes),
               "--max-sessions-per-tenant", str(a.tenant_quota), "--head-timeout", str(a.head_timeout)]
        log = open(os.path.join(self.work, log_name), "w+")
        self.proc = subprocess.Popen(cmd, stderr=log, stdout=subprocess.DEVNULL)
        self.log_path = log.name
        deadline = time.time() + 300
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited at start with {self.proc.returncode}:\n" + open(log.name).read()[-3000:])
            m = re.search(r'"address":"[^"]*:(\d+)"', open(log.name).read())
            if m:
                self.port = int(m.group(1))
                return
            time.sleep(0.2)
        raise SystemExit("server did not start listening within 300 s")

    def stop_server(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return "timeout (killed)"

    def rss_kb(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None

    def monitor(self):
        while not self.stop.is_set():
            if self.proc.poll() is not None:  # reported by run()
                self.stop.set()
                return
            kb = self.rss_kb()
            if kb:
                self.rss.append((time.time() - self.t0, kb))
            # Stored state is bounded once both tenants keep --keep-sessions finished sessions and
            # the flood tenant is at its quota; RSS growth after that is what the check is about.
            with self.kept_lock:
                full = all(len(v) >= self.args.keep_sessions for v in self.kept.values())
            if self.steady_at is None and full and self.flood_refused:
                self.steady_at = time.time() - self.t0
            self.stop.wait(self.args.rss_interval)

    # --- HTTP helpers ---------------------------------------------------------------------
    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.args.request_timeout)

    def request(self, c, method, path, body=None, key=None, headers=None):
        h = {"Content-Type": "application/json"} if body is not None else {}
        if key:
            h["Authorization"] = f"Bearer {key}"
        h.update(headers or {})
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, r.getheader("Retry-After"), data

    def judge_5xx(self, kind, status, code, retry_after, what):
        """True when the 5xx is a tolerated overload answer (counted); records a failure otherwise."""
        if status == 503 and code in TOLERATED_503 and retry_after:
            with self.stats.lock:
                self.stats.tolerated_503[code] += 1
            return True
        self.stats.fail(f"{kind}: {what} answered {status} {code} (Retry-After {retry_after!r})")
        return False

    # --- valid traffic --------------------------------------------------------------------
    def valid_worker(self, w):
        rng = random.Random(1000 + w)
        c = self.conn()
        n = 0
        while not self.stop.is_set():
            tenant = "acme" if w % 2 == 0 else "beta"
            sid = f"soak-{tenant}-{w}-{n}"
            n += 1
            key, hdr = self.keys[tenant], {}
            if rng.random() < 0.1:  # an admin acting for the tenant
                key, hdr = self.keys["admin"], {"X-Tenant": tenant}
            c, answered = self.valid_session(c, rng, tenant, sid, key, hdr)
            if answered == 0:
                continue
            if rng.random() < 0.3:
                c = self.valid_delete(c, tenant, sid, key, hdr)
            else:
                with self.kept_lock:
                    self.kept[tenant][sid] = answered
                    victim = None
                    if len(self.kept[tenant]) > self.args.keep_sessions:  # calls end: bound stored state
                        victim = self.kept[tenant].popitem(last=False)[0]
                if victim:
                    c = self.valid_delete(c, tenant, victim, self.keys[tenant], {})
        c.close()

    def call(self, c, kind, method, path, body, key, hdr, expect, what):
        """One valid request with retries: after a tolerated 503 (Retry-After) and once after a
        dropped keep-alive connection. Returns (conn, status, body) or (conn, None, None)."""
        dropped = 0
        while True:
            t = time.perf_counter()
            try:
                status, retry_after, data = self.request(c, method, path, body, key, hdr)
            except (OSError, http.client.HTTPException) as e:
                c.close()
                c = self.conn()
                if self.proc.poll() is not None:  # the server is gone: run() reports it once
                    self.stop.set()
                    return c, None, None
                dropped += 1
                if dropped > 1 or self.stop.is_set():
                    if not self.stop.is_set():
                        self.stats.fail(f"{kind}: {what}: connection failed twice: {e!r}")
                    return c, None, None
                self.stats.count(kind, "conn_dropped")
                continue
            code = error_code(data) if status >= 400 else None
            self.stats.count(kind, status, code)
            if status >= 500:
                if not self.judge_5xx(kind, status, code, retry_after, what) or self.stop.is_set():
                    return c, None, None
                time.sleep(min(float(retry_after or 1), 2.0))
                continue
            if status not in expect:
                self.stats.fail(f"{kind}: {what} answered {status} {code}: {data[:200]!r}")
                return c, None, None
            return c, status, (data, time.perf_counter() - t)

    def valid_session(self, c, rng, tenant, sid, key, hdr):
        turns = rng.randint(self.args.min_turns, self.args.max_turns)
        path = f"/v1/sessions/{sid}/turns"
        answered = 0
        for i in range(turns):
            if self.stop.is_set():
                break
            turn = {"speaker": "AB"[i % 2], "turn_id": f"t{i}"}
            r = rng.random()
            if r < self.args.audio_fraction:
                turn["audio"] = rng.choice(self.clips)
                if rng.random() < 0.5:
                    turn["transcript"] = rng.choice(SENTENCES)
            else:
                turn["transcript"] = rng.choice(SENTENCES)
            if rng.random() < 0.2:
                turn["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ")
            body = json.dumps(turn)
            c, status, res = self.call(c, "valid_turn", "POST", path, body, key, hdr, {200}, f"POST {path}")
            if status is None:
                return c, 0  # its turn count is unknown now: neither kept nor checked
            data, dt = res
            answer = json.loads(data)
            if answer.get("replayed") or answer["turn"]["index"] != answered:
                self.stats.fail(f"valid_turn: {sid} {turn['turn_id']}: replayed={answer.get('replayed')} "
                                f"index={answer['turn']['index']} expected index {answered}")
            with self.stats.lock:
                self.stats.latencies.append(dt)
                self.stats.turns_ok += 1
            answered += 1
            if rng.random() < 0.1:  # an idempotent retry: the stored answer, replayed
                c, status, res = self.call(c, "valid_retry", "POST", path, body, key, hdr, {200}, f"retry {path}")
                if status == 200:
                    a2 = json.loads(res[0])
                    if not a2.get("replayed") or a2["turn"]["index"] != answered - 1:
                        self.stats.fail(f"valid_retry: {sid} {turn['turn_id']} not replayed as stored: {res[0][:200]!r}")
                    else:
                        with self.stats.lock:
                            self.stats.replays_ok += 1
            if rng.random() < 0.1:
                c = self.valid_get(c, sid, key, hdr, answered)
        if answered and not self.stop.is_set():
            c = self.valid_get(c, sid, key, hdr, answered)
        return c, answered

    def valid_get(self, c, sid, key, hdr, expected):
        c, status, res = self.call(c, "valid_get", "GET", f"/v1/sessions/{sid}", None, key, hdr, {200}, f"GET {sid}")
        if status == 200:
            got = len(json.loads(res[0])["turns"])
            if got != expected:
                self.stats.fail(f"valid_get: {sid} holds {got} turns, {expected} were answered 200")
        return c

    def valid_delete(self, c, tenant, sid, key, hdr):
        c, status, _ = self.call(c, "valid_delete", "DELETE", f"/v1/sessions/{sid}", None, key, hdr,
                                 {200, 204}, f"DELETE {sid}")
        if status is not None:
            c, status, _ = self.call(c, "valid_get_deleted", "GET", f"/v1/sessions/{sid}", None, key, hdr,
                                     {404}, f"GET deleted {sid}")
            with self.kept_lock:
                self.deleted[tenant].append(sid)
        return c

    def analyze_worker(self, w):
        rng = random.Random(5000 + w)
        c = self.conn()
        while not self.stop.is_set():
            turns = []
            for i in range(rng.randint(2, 8)):
                t = {"speaker": "AB"[i % 2], "transcript": rng.choice(SENTENCES)}
                if rng.random() < self.args.audio_fraction:
                    t["audio"] = rng.choice(self.clips)
                turns.append(t)
            key = self.keys[rng.choice(["acme", "beta"])]
            c, status, res = self.call(c, "valid_analyze", "POST", "/v1/dialogues/analyze",
                                       json.dumps({"turns": turns}), key, {}, {200}, "POST analyze")
            if status == 200 and len(json.loads(res[0]).get("turns", [])) != len(turns):
                self.stats.fail(f"valid_analyze: answer has not {len(turns)} turns: {res[0][:200]!r}")
            self.stop.wait(rng.uniform(0.5, 2.0))
        c.close()

    # --- hostile traffic ------------------------------------------------------------------
    def raw(self, data, read=True, timeout=None, pause_after=None):
        """Sends bytes on a fresh socket; returns (first status or None, all bytes read)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout or self.args.request_timeout)
        try:
            s.sendall(data)
            if not read:
                return None, b""
            buf = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                    if self.complete(buf):
                        break
            except socket.timeout:
                pass
            except ConnectionResetError:
                pass
            m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
            return (int(m.group(1)) if m else None), buf
        finally:
            s.close()

    @staticmethod
    def complete(buf):
        """True once buf holds a whole final response (head + Content-Length body)."""
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = buf[:end]
            if re.match(rb"HTTP/1\.[01] 1\d\d", head):  # interim (100 Continue): keep reading
                buf = buf[end + 4:]
                if not buf:
                    return False
                continue
            m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            return len(buf) - end - 4 >= (int(m.group(1)) if m else 0)

    def head(self, method, path, key=None, length=None, extra=""):
        h = f"{method} {path} HTTP/1.1\r\nHost: soak\r\n"
        if key:
            h += f"Authorization: Bearer {key}\r\n"
        if length is not None:
            h += f"Content-Type: application/json\r\nContent-Length: {length}\r\n"
        return (h + extra + "\r\n").encode()

    def some_kept(self, rng, tenant):
        with self.kept_lock:
            ids = list(self.kept[tenant].keys())
        return rng.choice(ids) if ids else f"soak-{tenant}-0-0"

    def attacks(self):
        a, k = self.args, self.keys
        turn = lambda **kw: json.dumps({"speaker": "A", "transcript": "hello", **kw})
        post = lambda sid, body, key=k["admin"]: self.head("POST", f"/v1/sessions/{sid}/turns", key,
                                                           len(body.encode())) + body.encode()
        return {
            # name: (function rng -> (status, raw bytes), expected statuses)
            "no_key": (lambda r: self.raw(post("h-x", turn(), key=None)), {401}),
            "wrong_key": (lambda r: self.raw(post("h-x", turn(), key="not-a-key")), {401}),
            "cross_tenant_get": (lambda r: self.raw(self.head("GET", f"/v1/sessions/{self.some_kept(r, 'acme')}", k["beta"])), {404}),
            "cross_tenant_delete": (lambda r: self.raw(self.head("DELETE", f"/v1/sessions/{self.some_kept(r, 'beta')}", k["acme"])), {404}),
            "foreign_x_tenant": (lambda r: self.raw(self.head("GET", f"/v1/sessions/{self.some_kept(r, 'acme')}", k["beta"],
                                                              extra="X-Tenant: acme\r\n")), {403}),
            "malformed_json": (lambda r: self.raw(post("h-json", '{"speaker": "A", "transcript": ')), {400}),
            "unknown_field": (lambda r: self.raw(post("h-json", turn(emotion="ang"))), {422}),
            "null_field": (lambda r: self.raw(post("h-json", turn(turn_id=None))), {422}),
            "empty_turn": (lambda r: self.raw(post("h-json", json.dumps({"speaker": "A"}))), {422}),
            "oversize_declared": (lambda r: self.raw(self.head("POST", "/v1/sessions/h-big/turns", k["admin"],
                                                               a.max_body_bytes + 1)), {413}),
            "huge_transcript": (lambda r: self.raw(post("h-big", turn(transcript="x" * 40001))), {422}),
            "huge_combining": (lambda r: self.raw(post("h-big", turn(transcript="e" + "\u0301" * 25000))), {422}),
            "huge_timestamp": (lambda r: self.raw(post("h-big", turn(timestamp="9" * 65))), {422}),
            "huge_speaker": (lambda r: self.raw(post("h-big", json.dumps({"speaker": "s" * 257, "transcript": "hi"}))), {422}),
            "invalid_base64": (lambda r: self.raw(post("h-audio", turn(audio="!!not base64!!"))), {422}),
            "garbage_audio": (lambda r: self.raw(post("h-audio", turn(audio=base64.b64encode(os.urandom(3000)).decode()))), {422}),
            "invalid_session_id": (lambda r: self.raw(post("call%2D1", turn())), {400}),
            "long_session_id": (lambda r: self.raw(post("s" * 129, turn())), {400}),
            "bad_method": (lambda r: self.raw(self.head(f"MX{r.randint(1, 10**6)}", "/v1/sessions/h-x", k["admin"])), {405, 400, 501}),
            "put_session": (lambda r: self.raw(self.head("PUT", "/v1/sessions/h-x", k["admin"], 2) + b"{}"), {405}),
            "unknown_route": (lambda r: self.raw(self.head("GET", "/v1/nothing", k["admin"])), {404}),
            "wrong_media_type": (lambda r: self.raw(self.head("POST", "/v1/sessions/h-x/turns", k["admin"],
                                                              2).replace(b"application/json", b"text/plain") + b"{}"), {415}),
            "no_length": (lambda r: self.raw(self.head("POST", "/v1/sessions/h-x/turns", k["admin"])), {411}),
            "garbage_bytes": (lambda r: self.raw(os.urandom(r.randint(1, 2000)) + b"\r\n\r\n"), {400, None}),
            "huge_head": (lambda r: self.raw(self.head("GET", "/healthz", extra="X-Pad: " + "a" * 20000 + "\r\n")), {431, 400}),
            "expect_100_bad_key": (self.expect_100_bad_key, {401}),
            "head_then_disconnect": (self.head_then_disconnect, {None}),
            "turn_id_conflict": (self.turn_id_conflict, {409}),
            "analyze_too_long": (lambda r: self.raw(self.head("POST", "/v1/dialogues/analyze", k["admin"], len(self.long_dialogue))
                                                    + self.long_dialogue), {422}),
        }

    def expect_100_bad_key(self, rng):
        status, buf = self.raw(self.head("POST", "/v1/sessions/h-x/turns", "bad-key", 100000, "Expect: 100-continue\r\n"),
                               timeout=5)
        if buf.startswith(b"HTTP/1.1 100"):
            return 100, buf  # 100 Continue before the key was refused: a failure
        return status, buf

    def head_then_disconnect(self, rng):
        """A head announcing a large body (within the limit, valid key), a few bytes, then gone."""
        self.raw(self.head("POST", f"/v1/sessions/h-gone-{rng.randint(0, 9)}/turns", self.keys["admin"],
                           self.args.max_body_bytes - 1) + b'{"speaker": "A", ', read=False)
        return None, b""

    def turn_id_conflict(self, rng):
        """A turn_id reused with other content (409); the session is deleted after, so the
        soak's own stored state stays bounded."""
        sid, key = f"h-conflict-{rng.randint(0, 10**9)}", self.keys["admin"]
        first = json.dumps({"speaker": "A", "transcript": "first", "turn_id": "c1"})
        s1, b1 = self.raw(self.head("POST", f"/v1/sessions/{sid}/turns", key, len(first)) + first.encode())
        if s1 != 200:
            return s1, b1
        other = json.dumps({"speaker": "A", "transcript": "second", "turn_id": "c1"})
        result = self.raw(self.head("POST", f"/v1/sessions/{sid}/turns", key, len(other)) + other.encode())
        s3, b3 = self.raw(self.head("DELETE", f"/v1/sessions/{sid}", key))
        return result if s3 in (200, 204) else (s3, b3)

    def hostile_worker(self, w):
        rng = random.Random(9000 + w)
        attacks = self.attacks()
        names = sorted(attacks)
        while not self.stop.is_set():
            name = rng.choice(names)
            fn, expected = attacks[name]
            try:
                status, buf = fn(rng)
            except (OSError, socket.timeout) as e:
                # A refused or reset connection is fine for a hostile client, unless the server is gone.
                status, buf = "conn_error", b""
                if self.proc.poll() is not None:
                    return
                if name in ("garbage_bytes", "head_then_disconnect", "huge_head"):
                    expected = expected | {"conn_error"}
            code = error_code(buf.split(b"\r\n\r\n", 1)[1]) if b"\r\n\r\n" in buf else None
            self.stats.count("hostile:" + name, status, code)
            if isinstance(status, int) and status >= 500:
                m = re.search(rb"(?i)\r\nretry-after:\s*(\S+)", buf)
                if self.judge_5xx("hostile:" + name, status, code, m and m.group(1).decode(), name):
                    continue
            elif status not in expected:
                self.stats.fail(f"hostile:{name} answered {status} {code}, expected {sorted(map(str, expected))}: {buf[:300]!r}")
            self.stop.wait(rng.uniform(0, self.args.hostile_pause))

    def slowloris_worker(self, w):
        """Holds a partial head open until the server cuts it off (408 or close) after --head-timeout."""
        rng = random.Random(7000 + w)
        while not self.stop.is_set():
            t = time.time()
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=self.args.head_timeout + 10)
                s.sendall(b"POST /v1/sessions/slow/turns HTTP/1.1\r\nHost: soak\r\nX-Slow: ")
                buf = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
                s.close()
                m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
                status = int(m.group(1)) if m else None
            except socket.timeout:
                status = "not_cut_off"
            except OSError:
                status = "conn_error"
            held = time.time() - t
            self.stats.count("hostile:slowloris", status)
            if status not in (408, None, "conn_error"):
                self.stats.fail(f"hostile:slowloris: {status} after {held:.1f} s (head timeout {self.args.head_timeout} s)")
            self.stop.wait(rng.uniform(0, 1))

    def flood_worker(self, w):
        """Table pressure: one-turn sessions of one tenant, until its quota answers 429."""
        c = self.conn()
        n = 0
        interval = self.args.flood_threads / self.args.flood_rate
        while not self.stop.is_set():
            t = time.time()
            body = json.dumps({"speaker": "A", "transcript": "hi"})
            try:
                status, retry_after, data = self.request(c, "POST", f"/v1/sessions/flood-{w}-{n}/turns", body, self.keys["flood"])
            except (OSError, http.client.HTTPException):
                c.close(); c = self.conn()
                continue
            n += 1
            code = error_code(data) if status >= 400 else None
            self.stats.count("hostile:flood_one_turn_sessions", status, code)
            if status >= 500:
                self.judge_5xx("hostile:flood", status, code, retry_after, "one-turn session")
            elif status == 429 and not (code == "tenant_session_quota" and retry_after):
                self.stats.fail(f"hostile:flood: 429 {code} Retry-After {retry_after!r}")
            elif status == 429:
                self.flood_refused = True
            elif status not in (200, 429):
                self.stats.fail(f"hostile:flood: {status} {code}")
            self.stop.wait(max(0, interval - (time.time() - t)))
        c.close()

    # --- the run --------------------------------------------------------------------------
    def run(self):
        a = self.args
        self.long_dialogue = json.dumps({"turns": [{"speaker": "AB"[i % 2], "transcript": "x"}
                                                   for i in range(501)]}).encode()
        self.start_server("server.log")
        print(f"soak: server pid {self.proc.pid} on port {self.port}, model {a.model}, {a.duration:.0f} s, "
              f"{a.sessions} sessions, work dir {self.work}", flush=True)
        self.t0 = time.time()
        threads = [threading.Thread(target=self.monitor, daemon=True)]
        threads += [threading.Thread(target=self.valid_worker, args=(w,), daemon=True) for w in range(a.sessions)]
        threads += [threading.Thread(target=self.analyze_worker, args=(w,), daemon=True) for w in range(a.analyzers)]
        threads += [threading.Thread(target=self.hostile_worker, args=(w,), daemon=True) for w in range(a.hostile)]
        threads += [threading.Thread(target=self.slowloris_worker, args=(w,), daemon=True) for w in range(a.slowloris)]
        threads += [threading.Thread(target=self.flood_worker, args=(w,), daemon=True) for w in range(a.flood_threads)]
        for t in threads:
            t.start()
        last = 0
        while not self.stop.is_set() and time.time() - self.t0 < a.duration:
            time.sleep(1)
            el = time.time() - self.t0
            if el - last >= a.progress:
                last = el
                s = self.stats
                print(f"  {el:5.0f} s  turns {s.turns_ok:7d} ({s.turns_ok / el:6.1f}/s)  "
                      f"rss {self.rss[-1][1] / 1024 if self.rss else 0:7.1f} MiB  failures {s.failure_count}", flush=True)
        elapsed = time.time() - self.t0
        self.stop.set()
        for t in threads:
            t.join(timeout=a.request_timeout + a.head_timeout + 15)
        alive = self.proc.poll() is None
        report = self.report(elapsed)
        if alive:
            self.after_load(report)
        else:
            self.stats.failure_count += 1
            self.stats.failures.insert(0, f"the server process died (status {self.proc.returncode}) during the run; "
                                          f"log tail:\n" + open(self.log_path).read()[-1500:])
        report["failures"] = self.stats.failures
        report["failure_count"] = self.stats.failure_count
        report["passed"] = self.stats.failure_count == 0
        return report

    def after_load(self, report):
        """Still serving after the load; SIGTERM exits 0; a restart restores kept sessions."""
        c = self.conn()
        c, status, _ = self.call(c, "post_soak", "POST", "/v1/sessions/post-soak/turns",
                                 json.dumps({"speaker": "A", "transcript": "still there?"}), self.keys["acme"], {}, {200},
                                 "a turn after the load")
        c.close()
        with open(f"/proc/{self.proc.pid}/status") as f:
            report["server_threads_end"] = int(re.search(r"Threads:\s+(\d+)", f.read()).group(1))
        report["server_fds_end"] = len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        rc = self.stop_server()
        report["sigterm_exit_status"] = rc
        if rc != 0:
            self.stats.fail(f"exit status after SIGTERM: {rc}; log tail:\n" + open(self.log_path).read()[-2000:])
        self.start_server("restart.log")
        rng = random.Random(3)
        sample, gone = [], []
        for tenant in ("acme", "beta"):
            sample += [(tenant, sid, n) for sid, n in rng.sample(list(self.kept[tenant].items()),
                                                                 min(self.args.check_sample, len(self.kept[tenant])))]
            gone += [(tenant, sid) for sid in rng.sample(self.deleted[tenant], min(20, len(self.deleted[tenant])))]
        c = self.conn()
        lost = 0
        for tenant, sid, n in sample:
            status, _, data = self.request(c, "GET", f"/v1/sessions/{sid}", key=self.keys[tenant])
            got = len(json.loads(data)["turns"]) if status == 200 else None
            if got != n:
                lost += 1
                self.stats.fail(f"restart: {tenant}/{sid}: {status}, {got} turns, {n} were answered 200")
        for tenant, sid in gone:
            status, _, _ = self.request(c, "GET", f"/v1/sessions/{sid}", key=self.keys[tenant])
            if status != 404:
                self.stats.fail(f"restart: deleted {tenant}/{sid} answers {status}")
        c.close()
        report["restart"] = {"kept_sessions": sum(len(v) for v in self.kept.values()), "checked": len(sample),
                             "lost_or_wrong": lost, "deleted_checked": len(gone)}
        rc = self.stop_server()
        report["restart"]["sigterm_exit_status"] = rc
        if rc != 0:
            self.stats.fail(f"exit status of the restarted server after SIGTERM: {rc}")

    def report(self, elapsed):
        a, s = self.args, self.stats
        lat = sorted(s.latencies)
        pct = lambda p: round(1000 * lat[min(len(lat) - 1, int(p / 100 * len(lat)))], 1) if lat else None
        # RSS start: the first sample after both the warm-up fraction and the steady state.
        warm_until = max(a.warmup * elapsed, self.steady_at if self.steady_at is not None else 0)
        warm = [kb for t, kb in self.rss if t >= warm_until]
        rss_start, rss_end = (warm[0], self.rss[-1][1]) if len(warm) >= 2 else (None, None)
        if self.steady_at is None:
            s.fail("the stored state never reached its steady state (kept sessions, flood quota): run longer")
        elif rss_start is None:
            s.fail("no RSS samples after the warm-up")
        elif rss_end > rss_start * (1 + a.rss_tolerance):
            s.fail(f"RSS grew from {rss_start} kB (after warm-up) to {rss_end} kB, more than {a.rss_tolerance:.1%}")
        if s.turns_ok == 0:
            s.fail("no valid turn was answered 200")
        valid = sum(n for (kind, st, _), n in s.counts.items() if kind.startswith("valid") and isinstance(st, int))
        overloaded = sum(n for (kind, st, _), n in s.counts.items() if kind.startswith("valid") and st == 503)
        if valid and overloaded / valid > a.max_overload_fraction:
            s.fail(f"{overloaded} of {valid} valid requests were answered 503 (more than {a.max_overload_fraction:.0%})")
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        return {
            "model": a.model, "duration_s": round(elapsed, 1), "sessions": a.sessions, "hostile_workers": a.hostile,
            "slowloris": a.slowloris, "cpu": cpu, "cpus_online": os.cpu_count(),
            "valid_turns_ok": s.turns_ok, "turns_per_s": round(s.turns_ok / elapsed, 2), "replays_ok": s.replays_ok,
            "latency_ms": {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": pct(100)},
            "warmup_end_s": round(warm_until, 1), "steady_state_at_s": self.steady_at and round(self.steady_at, 1),
            "rss_kb": {"start_after_warmup": rss_start, "end": rss_end, "peak": max((kb for _, kb in self.rss), default=None),
                       "first": self.rss[0][1] if self.rss else None, "samples": len(self.rss),
                       "growth_after_warmup": rss_start and round(rss_end / rss_start - 1, 4),
                       "series": self.rss[::max(1, int(30 / a.rss_interval))]},  # about one sample per 30 s
            "tolerated_503": dict(s.tolerated_503),
            "statuses": [{"kind": k, "status": st, "code": c, "count": n}
                         for (k, st, c), n in sorted(s.counts.items(), key=lambda x: (x[0][0], str(x[0][1]), x[0][2]))],
        }


def print_summary(r):
    print("\n== soak summary")
    print(f"model {r['model']}, {r['duration_s']} s, {r['sessions']} sessions, CPU {r['cpu']} x{r['cpus_online']}")
    print(f"valid turns 200: {r['valid_turns_ok']} ({r['turns_per_s']}/s), replays {r['replays_ok']}, "
          f"latency ms p50 {r['latency_ms']['p50']} p90 {r['latency_ms']['p90']} p99 {r['latency_ms']['p99']} max {r['latency_ms']['max']}")
    rss = r["rss_kb"]
    fmt = lambda kb: f"{kb / 1024:.1f} MiB" if kb else "?"
    growth = f"{rss['growth_after_warmup']:+.1%}" if rss["growth_after_warmup"] is not None else "?"
    print(f"RSS first {fmt(rss['first'])}, after warm-up (at {r['warmup_end_s']} s) {fmt(rss['start_after_warmup'])}, "
          f"end {fmt(rss['end'])} ({growth}), peak {fmt(rss['peak'])}")
    print(f"tolerated 503s: {r['tolerated_503'] or 'none'}")
    print(f"server threads {r.get('server_threads_end')}, open fds {r.get('server_fds_end')} after the load")
    if "restart" in r:
        print(f"SIGTERM exit {r.get('sigterm_exit_status')}; restart: {r['restart']}")
    print(f"{'kind':42} {'status':>12} {'code':28} {'count':>8}")
    for row in r["statuses"]:
        print(f"{row['kind']:42} {str(row['status']):>12} {row['code']:28} {row['count']:8d}")
    if r["failures"]:
        print(f"\nFAILED: {r['failure_count']} failure(s); first ones:")
        for f in r["failures"]:
            print("  " + f)
    else:
        print("\nPASSED")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=".build/debug/emotion-server")
    p.add_argument("--model", default="Models/default")
    p.add_argument("--duration", type=float, default=600)
    p.add_argument("--sessions", type=int, default=32, help="concurrent valid sessions (one client thread each)")
    p.add_argument("--analyzers", type=int, default=2, help="clients posting /v1/dialogues/analyze")
    p.add_argument("--hostile", type=int, default=4, help="clients sending hostile requests")
    p.add_argument("--slowloris", type=int, default=8, help="connections holding a partial head")
    p.add_argument("--flood-rate", type=float, default=10, help="one-turn sessions per second of the flood tenant")
    p.add_argument("--flood-threads", type=int, default=4, help="connections of the flood tenant")
    p.add_argument("--tenant-quota", type=int, default=200, help="the server's --max-sessions-per-tenant")
    p.add_argument("--keep-sessions", type=int, default=48, help="finished sessions kept per tenant; older ones are deleted")
    p.add_argument("--min-turns", type=int, default=3)
    p.add_argument("--max-turns", type=int, default=30)
    p.add_argument("--audio-fraction", type=float, default=0.25)
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="the server's --max-body-bytes")
    p.add_argument("--head-timeout", type=float, default=10, help="the server's --head-timeout")
    p.add_argument("--hostile-pause", type=float, default=0.2)
    p.add_argument("--request-timeout", type=float, default=60)
    p.add_argument("--warmup", type=float, default=0.1,
                   help="fraction of the run before the RSS start sample (also not before the stored state is steady)")
    p.add_argument("--rss-tolerance", type=float, default=0.10)
    p.add_argument("--rss-interval", type=float, default=2)
    p.add_argument("--max-overload-fraction", type=float, default=0.2,
                   help="valid requests answered a tolerated 503, above which the run fails")
    p.add_argument("--check-sample", type=int, default=100, help="kept sessions per tenant checked after the restart")
    p.add_argument("--progress", type=float, default=30)
    p.add_argument("--out", help="JSON report path")
    p.add_argument("--keep-work", action="store_true", help="keep the work dir (logs, state)")
    args = p.parse_args()
    soak = Soak(args)
    try:
        report = soak.run()
    finally:
        if soak.proc and soak.proc.poll() is None:
            soak.proc.kill()
    print_summary(report)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    if not args.keep_work and report["passed"]:
        import shutil
        shutil.rmtree(soak.work, ignore_errors=True)
    else:
        print(f"work dir (server logs, state): {soak.work}")
    sys.exit(0 if report["passed"] else 1)


if __name__ == "__main__":
    main()
