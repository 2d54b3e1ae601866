#!/usr/bin/env bash
# Measures what the turn journal costs: turns/s over 4 keep-alive connections (one session
# each, text turns) against emotion-server without the journal, with it (fdatasync before every
# answer) and with --journal-commit-ms 2, each on a fresh state directory.
#
#   Scripts/journal-cost.sh [BINARY] [MODEL_DIR] [TURNS_PER_CONNECTION]
#
# Defaults: .build/debug/emotion-server, Tests/SharedFixtures/tiny-model (the classifier is
# tiny, so the figures show the journal's own cost at its largest), 200 turns per connection.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-.build/debug/emotion-server}
model=${2:-Tests/SharedFixtures/tiny-model}
turns=${3:-200}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() {
    local name=$1; shift
    local state="$work/$name"
    "$binary" --model "$model" --port 0 --state-dir "$state" --snapshot-interval 0 "$@" 2>"$work/$name.log" &
    local pid=$!
    local port=""
    for _ in $(seq 600); do
        port=$(grep -o '"address":"[^"]*' "$work/$name.log" | grep -o '[0-9]*$' || true)
        [ -n "$port" ] && break
        sleep 0.1
    done
    python3 - "$port" "$turns" "$name" <<'PY'
import http.client, json, sys, threading, time
port, turns, name = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
errors = []
def client(session):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for i in range(turns):
        body = json.dumps({"speaker": "AB"[i % 2], "transcript": f"turn {i} of a call about an order", "turn_id": f"t{i}"})
        c.request("POST", f"/v1/sessions/{session}/turns", body, {"Content-Type": "application/json"})
        r = c.getresponse(); r.read()
        if r.status != 200: errors.append(r.status)
threads = [threading.Thread(target=client, args=(f"{name}-{k}",)) for k in range(4)]
t0 = time.perf_counter()
for t in threads: t.start()
for t in threads: t.join()
dt = time.perf_counter() - t0
print(f"{name:>22}: {4 * turns / dt:7.1f} turns/s ({4 * turns} turns in {dt:.2f} s, {len(errors)} errors)")
PY
    kill -TERM "$pid"; wait "$pid" || true
}

run no-journal
run journal --journal
run journal-commit-2ms --journal --journal-commit-ms 2
