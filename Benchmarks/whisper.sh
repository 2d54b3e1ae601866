#!/usr/bin/env bash
# Whisper-base audio encoder: Swift vs PyTorch vs ONNX Runtime, and the default model's whole
# turn over HTTP.
#
#   Benchmarks/whisper.sh [--iterations N] [--warmup W] [--rounds R] [--threads T] [--turns K] [--model DIR]
#
# encoder: the real Whisper-base encoder (converted from the PyPI wheels, f16 widened to f32) on
# the unpadded log-mel of 3 s and 10 s of speech; every engine in its own process, T threads
# (default 2), interleaved, R rounds (default 3); each checked against PyTorch's last hidden state
# (relative error <= 1e-3, else the run fails). turn: emotion-server on Models/default, K (default
# 30) turns of a 3 s clip + a 15-word transcript, one at a time; client-side p50/p90. --turns 0
# skips the turn (DIR must be a whole model package: an encoder-only one has no classifier).
# Raw JSON lines go to bench-out/whisper.runs.jsonl, the summary (CPU model and flags, median of the
# rounds' medians, ratios) to bench-out/whisper.json. It reports timings; it asserts no timing target.
set -euo pipefail
cd "$(dirname "$0")/.."

ITERATIONS=20
WARMUP=3
ROUNDS=3
THREADS=2
TURNS=30
MODEL=Models/default
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --iterations) ITERATIONS="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --threads) THREADS="$2"; shift 2 ;;
        --turns) TURNS="$2"; shift 2 ;;
        --model) MODEL="$2"; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "whisper.sh: unknown argument $1" >&2; usage 2 >&2 ;;
    esac
done

OUT=bench-out
DATA="$OUT/whisper"
LOGS="$OUT/logs"
RUNS="$OUT/whisper.runs.jsonl"
mkdir -p "$DATA" "$LOGS"
: > "$RUNS"
start=$(date +%s)
say() { echo "[$(( $(date +%s) - start ))s] $*" >&2; }

bash Scripts/setup.sh >/dev/null
PY=${PYTHON:-Training/.venv/bin/python}
[ -x "$PY" ] || PY=$(bash Training/setup_venv.sh | tail -n 1)
say "build: whisper-bench and (with turns) emotion-server, release"
bash Scripts/build-release.sh whisper-bench >"$LOGS/whisper-build.log" 2>&1
if [ "$TURNS" -gt 0 ]; then bash Scripts/build-release.sh emotion-server >>"$LOGS/whisper-build.log" 2>&1; fi
say "prepare: $DATA"
"$PY" Benchmarks/reference/whisper_reference.py prepare --out "$DATA" --if-needed >"$LOGS/whisper-prepare.log" 2>&1 || {
    tail -n 20 "$LOGS/whisper-prepare.log" >&2; say "prepare FAILED"; exit 1; }

run_one() {
    local clip=$1 engine=$2 round=$3 log="$LOGS/whisper-$1-$2-r$3.log" status=0
    if [ "$engine" = swift ]; then
        .build/release/whisper-bench --model "$DATA" --clip "$clip" --iterations "$ITERATIONS" --warmup "$WARMUP" \
            --threads "$THREADS" >"$log" 2>&1 || status=$?
    else
        "$PY" Benchmarks/reference/whisper_reference.py time --model "$DATA" --engine "$engine" --clip "$clip" \
            --threads "$THREADS" --iterations "$ITERATIONS" --warmup "$WARMUP" >"$log" 2>&1 || status=$?
    fi
    local line
    line=$(grep '^{' "$log" | tail -n 1 || true)
    if [ "$status" != 0 ] || [ -z "$line" ]; then
        echo "{\"clip\": \"$clip\", \"engine\": \"$engine\", \"round\": $round, \"error\": \"exit $status, see $log\"}" >>"$RUNS"
        say "  $clip $engine: FAILED (see $log)"; return
    fi
    echo "$line" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); d["round"]=int(sys.argv[1]); print(json.dumps(d))' "$round" >>"$RUNS"
    say "  $clip $engine: $(echo "$line" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print("median %.1f ms, rel err %.1e" % (d["median_ms"], d["max_rel_err"]))')"
}
for round in $(seq 1 "$ROUNDS"); do
    for clip in s3 s10; do
        for engine in torch onnxruntime swift; do
            say "round $round/$ROUNDS: $clip $engine"
            run_one "$clip" "$engine" "$round"
        done
    done
done

if [ "$TURNS" -gt 0 ]; then
    say "turn over HTTP: emotion-server on $MODEL, $TURNS turns"
    PORT=${PORT:-8391}
    .build/release/emotion-server --model "$MODEL" --port "$PORT" >"$LOGS/whisper-server.log" 2>&1 &
    SERVER=$!
    trap 'kill $SERVER 2>/dev/null || true' EXIT
    for _ in $(seq 1 120); do
        curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
        sleep 0.5
    done
    "$PY" Benchmarks/reference/http_turn.py --url "http://127.0.0.1:$PORT" --turns "$TURNS" >"$LOGS/whisper-turn.log" 2>&1 || {
        tail -n 20 "$LOGS/whisper-turn.log" >&2; say "turn benchmark FAILED"; exit 1; }
    grep '^{' "$LOGS/whisper-turn.log" | tail -n 1 | "$PY" -c 'import json,sys; d=json.load(sys.stdin); d["kind"]="turn"; print(json.dumps(d))' >>"$RUNS"
fi

"$PY" - "$RUNS" "$OUT/whisper.json" "$THREADS" <<'PYEOF'
import json, platform, statistics, sys
runs_path, out_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = [json.loads(l) for l in open(runs_path) if l.strip()]
cpu = {"model": "?", "flags": []}
for line in open("/proc/cpuinfo"):
    if line.startswith("model name") and cpu["model"] == "?":
        cpu["model"] = line.split(":", 1)[1].strip()
    if line.startswith("flags") and not cpu["flags"]:
        flags = line.split(":", 1)[1].split()
        cpu["flags"] = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "avx512_fp16", "amx_tile") if f in flags]
enc = [r for r in runs if "clip" in r]
failed = [r for r in enc if "error" in r or r.get("max_rel_err", 1) > 1e-3]
summary = {"cpu": cpu, "machine": platform.machine(), "threads": threads, "encoder": {}, "turn": None}
for clip in ("s3", "s10"):
    engines = {}
    for e in ("torch", "onnxruntime", "swift"):
        ok = [r for r in enc if r["clip"] == clip and r["engine"] == e and "error" not in r]
        if ok:
            engines[e] = {"median_ms": round(statistics.median(r["median_ms"] for r in ok), 2),
                          "round_medians_ms": [round(r["median_ms"], 2) for r in ok],
                          "min_ms": round(min(r["min_ms"] for r in ok), 2),
                          "peak_rss_mb": round(max(r["peak_rss_mb"] for r in ok), 1),
                          "max_rel_err": max(r["max_rel_err"] for r in ok)}
            if e == "swift":
                engines[e]["kernel"] = ok[0].get("kernel")
    if "swift" in engines:
        for e in ("torch", "onnxruntime"):
            if e in engines:
                engines[e]["ratio_to_swift"] = round(engines[e]["median_ms"] / engines["swift"]["median_ms"], 2)
    summary["encoder"][clip] = engines
turn = [r for r in runs if r.get("kind") == "turn"]
summary["turn"] = turn[-1] if turn else None
json.dump(summary, open(out_path, "w"), indent=2)
print(f"CPU: {cpu['model']} ({' '.join(cpu['flags'])}), {threads} threads")
print(f"{'clip':5} {'engine':12} {'median ms':>10} {'min ms':>8} {'peak RSS MB':>12} {'x Swift':>8} {'rel err':>9}")
for clip, engines in summary["encoder"].items():
    for e, d in engines.items():
        print(f"{clip:5} {e:12} {d['median_ms']:10.1f} {d['min_ms']:8.1f} {d['peak_rss_mb']:12.0f} "
              f"{d.get('ratio_to_swift', 1.0):8.2f} {d['max_rel_err']:9.1e}")
if summary["turn"]:
    t = summary["turn"]
    print(f"turn over HTTP ({t['audio_seconds']:g} s clip + {t['transcript_words']} words, {t['turns']} turns): "
          f"p50 {t['p50_ms']:.1f} ms, p90 {t['p90_ms']:.1f} ms; server stages (median ms): "
          + ", ".join(f"{k} {v:.1f}" for k, v in t["server_stage_median_ms"].items()))
print(f"wrote {out_path}")
if failed:
    print(f"{len(failed)} failed run(s) or relative error > 1e-3:", file=sys.stderr)
    for r in failed:
        print("  ", json.dumps(r), file=sys.stderr)
    sys.exit(1)
PYEOF
