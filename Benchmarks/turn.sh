#!/usr/bin/env bash
# The whole paper-size turn over HTTP: emotion-server (Swift) vs a PyTorch and an ONNX Runtime
# service doing the same work, same machine, same run, interleaved.
#
#   Benchmarks/turn.sh [--turns N] [--seconds S] [--rounds R] [--concurrency 4,16] [--warmup W]
#
# One turn: 10 s of 48 kHz audio as base64 WAV + a 20-token transcript, two speakers alternating;
# random-weight paper-size CLAP (HTSAT-tiny audio tower, RoBERTa-base text tower, from transformers)
# + random paper-size gated xLSTM classifier (155.5 M parameters) + online DED. Builds
# emotion-server (release), prepares bench-out/turn once (Benchmarks/reference/turn_prepare.py,
# reusing the encoder and classifier benchmarks' prepare steps), then per round, per engine
# (swift; swift-bf16 and swift-f16: the same server with --weight-precision bf16 / f16; torch;
# onnxruntime; 2 threads each): starts its server on a free port, runs
# Benchmarks/reference/turn_load.py (N turns one at a time in one session, then 4 and 16
# concurrent sessions for S seconds each), stops it. Raw lines: bench-out/turn.runs.jsonl;
# summary (p50/p90/p99, turns/s, p99 under load, stage timings, peak RSS, ratios vs the targets,
# parity vs PyTorch, CPU and Swift's kernel path, and a roofline line: roofline-probe's measured
# memory bandwidth and FP32/BF16 peaks, stage_costs.py's FLOPs and weight bytes, each stage's
# fraction of its bound): bench-out/turn.json; one labelled line is
# appended to Benchmarks/results/turn.jsonl. Exits non-zero if a server or run fails or an
# engine's probabilities differ from PyTorch's by more than 1e-3 (swift-bf16, swift-f16: the
# accuracy guard, 1e-2 and the same emotion on >= 99.5 % of turns). No timing target is asserted.
set -euo pipefail
cd "$(dirname "$0")/.."

TURNS=20
SECONDS_PER_LEVEL=20
ROUNDS=2
WARMUP=3
CONCURRENCY=4,16
THREADS=2
ENGINES=(swift swift-bf16 swift-f16 torch onnxruntime)

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --turns) TURNS="$2"; shift 2 ;;
        --seconds) SECONDS_PER_LEVEL="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --concurrency) CONCURRENCY="$2"; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "turn.sh: unknown argument $1" >&2; usage 2 >&2 ;;
    esac
done
COMMAND="Benchmarks/turn.sh --turns $TURNS --seconds $SECONDS_PER_LEVEL --rounds $ROUNDS --concurrency $CONCURRENCY"

OUT=bench-out
DATA="$OUT/turn"
LOGS="$OUT/logs"
RUNS="$OUT/turn.runs.jsonl"
ANSWERS="$DATA/answers"
mkdir -p "$LOGS" "$ANSWERS"
: > "$RUNS"
rm -f "$ANSWERS"/*.json
start=$(date +%s)
say() { echo "[$(( $(date +%s) - start ))s] $*" >&2; }

PY=${PYTHON:-Training/.venv/bin/python}
if [ ! -x "$PY" ]; then
    say "Python venv (Training/setup_venv.sh)"
    PY=$(bash Training/setup_venv.sh | tail -n 1)
fi
say "python: $PY"

say "Scripts/build-release.sh emotion-server"
SWIFT_OK=1
if ! bash Scripts/build-release.sh emotion-server >"$LOGS/turn-build.log" 2>&1; then
    say "build failed; retrying once"; sleep 5
    bash Scripts/build-release.sh emotion-server >"$LOGS/turn-build.log" 2>&1 || {
        SWIFT_OK=0; say "build FAILED (tail of $LOGS/turn-build.log):"; tail -n 20 "$LOGS/turn-build.log" >&2; }
fi

say "roofline probe (memory bandwidth, FP32 and BF16 peaks) and stage costs"
ROOF_OK=1
bash Scripts/build-release.sh roofline-probe >"$LOGS/turn-build-probe.log" 2>&1 \
    && .build/release/roofline-probe >"$OUT/roofline.json" 2>"$LOGS/turn-probe.log" || { ROOF_OK=0; say "roofline probe FAILED"; }
[ -s "$OUT/stage_costs.json" ] || "$PY" Benchmarks/reference/stage_costs.py --out "$OUT/stage_costs.json" \
    >"$LOGS/turn-costs.log" 2>&1 || { ROOF_OK=0; say "stage costs FAILED"; }
[ "$ROOF_OK" = 1 ] && say "  $(cat "$OUT/roofline.json")"

say "prepare (each written only when missing or stale)"
for kind in audio text; do
    "$PY" "Benchmarks/reference/clap_${kind}_reference.py" prepare --out "$OUT/encoders/$kind" --onnx --if-needed \
        >"$LOGS/turn-prepare-$kind.log" 2>&1 || { tail -n 20 "$LOGS/turn-prepare-$kind.log" >&2; say "prepare $kind FAILED"; exit 1; }
done
"$PY" Benchmarks/reference/classifier_reference.py prepare --out "$OUT/paper" --if-needed \
    >"$LOGS/turn-prepare-classifier.log" 2>&1 || { tail -n 20 "$LOGS/turn-prepare-classifier.log" >&2; say "prepare classifier FAILED"; exit 1; }
"$PY" Benchmarks/reference/turn_prepare.py --out "$DATA" --encoders "$OUT/encoders" --classifier "$OUT/paper" --if-needed \
    >"$LOGS/turn-prepare.log" 2>&1 || { tail -n 20 "$LOGS/turn-prepare.log" >&2; say "prepare turn FAILED"; exit 1; }

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

SERVER_PID=
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 60); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}
trap stop_server EXIT

fail_line() { echo "{\"engine\": \"$1\", \"round\": $2, \"error\": \"$3\"}" >>"$RUNS"; say "  $1: FAILED ($3)"; }

run_one() {
    local engine=$1 round=$2 port log="$LOGS/turn-$1-r$2" ready
    if [ "${engine%-*16}" = swift ] && [ "$SWIFT_OK" != 1 ]; then fail_line "$engine" "$round" "build failed"; return; fi
    port=$(free_port)
    case "$engine" in
        swift)
            .build/release/emotion-server --model "$DATA/package" --host 127.0.0.1 --port "$port" >"$log.server.log" 2>&1 &
            ready=/readyz ;;
        swift-bf16|swift-f16)
            .build/release/emotion-server --model "$DATA/package" --host 127.0.0.1 --port "$port" \
                --weight-precision "${engine#swift-}" >"$log.server.log" 2>&1 &
            ready=/readyz ;;
        *)
            "$PY" Benchmarks/reference/turn_service.py --engine "$engine" --data "$DATA" --encoders "$OUT/encoders" \
                --classifier "$OUT/paper" --port "$port" --threads "$THREADS" >"$log.server.log" 2>&1 &
            ready=/healthz ;;
    esac
    SERVER_PID=$!
    local t0 up=0
    t0=$(date +%s)
    while [ $(( $(date +%s) - t0 )) -lt 300 ]; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
        if curl -sf "http://127.0.0.1:$port$ready" >/dev/null 2>&1; then up=1; break; fi
        sleep 0.5
    done
    if [ "$up" != 1 ]; then
        tail -n 5 "$log.server.log" >&2 || true
        stop_server; fail_line "$engine" "$round" "server did not become ready, see $log.server.log"; return
    fi
    say "  $engine ready on port $port after $(( $(date +%s) - t0 )) s"
    local status=0
    "$PY" Benchmarks/reference/turn_load.py run --url "http://127.0.0.1:$port" --engine "$engine" --pid "$SERVER_PID" \
        --input "$DATA/input" --turns "$TURNS" --warmup "$WARMUP" --seconds "$SECONDS_PER_LEVEL" \
        --concurrency "$CONCURRENCY" --round "$round" --answers "$ANSWERS/$engine-r$round.json" \
        >"$log.load.log" 2>&1 || status=$?
    stop_server
    local line
    line=$(grep '^{' "$log.load.log" | tail -n 1 || true)
    if [ "$status" != 0 ] || [ -z "$line" ]; then
        tail -n 5 "$log.load.log" >&2 || true
        fail_line "$engine" "$round" "load exit $status, see $log.load.log"; return
    fi
    echo "$line" >>"$RUNS"
    say "  $engine: $(echo "$line" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); s=d["sequential"]; c=d["concurrent"]
print("1 session p50 %.1f ms p99 %.1f ms; " % (s["p50_ms"], s["p99_ms"]) + "; ".join("%s sessions %.2f turns/s p99 %.0f ms" % (k, v["turns_per_s"] or 0, v["p99_ms"] or 0) for k, v in c.items()) + "; peak RSS %.0f MB; others %.2f CPUs" % (d["peak_rss_mb"], d["others_cpus"]))')"
}

for round in $(seq 1 "$ROUNDS"); do
    # Rotate the order each round so slow drift on the machine hits every engine alike.
    shift_by=$(( (round - 1) % ${#ENGINES[@]} ))
    order=("${ENGINES[@]:$shift_by}" "${ENGINES[@]:0:$shift_by}")
    for engine in "${order[@]}"; do
        say "round $round/$ROUNDS: $engine ($TURNS turns, $CONCURRENCY sessions x $SECONDS_PER_LEVEL s)"
        run_one "$engine" "$round"
    done
done

say "done; summary:"
mkdir -p Benchmarks/results
"$PY" Benchmarks/reference/turn_load.py summarize --runs "$RUNS" --answers-dir "$ANSWERS" --out "$OUT/turn.json" \
    --results Benchmarks/results/turn.jsonl --command "$COMMAND" --roofline "$OUT/roofline.json" --costs "$OUT/stage_costs.json"
