#!/usr/bin/env bash
# Paper-size CLAP encoders: Swift vs PyTorch vs ONNX Runtime, CPU, one request at a time.
#
#   Benchmarks/encoders.sh [--iterations N] [--warmup W] [--rounds R] [--threads T]
#
# audio: HTSAT-tiny + projection on one 10 s window (1001 x 64 log-mel features);
# text:  RoBERTa-base + pooler + projection on one 20-token transcript.
# Random weights (seeded). Prepares the packages once (bench-out/encoders/{audio,text}, ~0.6 GB
# weights + ONNX exports), builds the Swift tests in release mode, then runs every engine in its
# own process, T threads (default 2), interleaved, R rounds. Raw JSON lines go to
# bench-out/encoders.runs.jsonl, the summary (median of the rounds' medians, peak RSS, ratios) to
# bench-out/encoders.json; a table is printed. Exits non-zero if an engine fails or its parity
# error exceeds 1e-3. It reports timings; it asserts no timing target. See Benchmarks/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

ITERATIONS=30
WARMUP=3
ROUNDS=3
THREADS=2
ENGINES=(torch onnxruntime swift)
KINDS=(audio text)

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --iterations) ITERATIONS="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --threads) THREADS="$2"; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "encoders.sh: unknown argument $1" >&2; usage 2 >&2 ;;
    esac
done

OUT=bench-out
DATA="$OUT/encoders"
LOGS="$OUT/logs"
RUNS="$OUT/encoders.runs.jsonl"
mkdir -p "$DATA" "$LOGS"
: > "$RUNS"
start=$(date +%s)
say() { echo "[$(( $(date +%s) - start ))s] $*" >&2; }

PY=${PYTHON:-Training/.venv/bin/python}
if [ ! -x "$PY" ]; then
    say "Python venv (Training/setup_venv.sh)"
    PY=$(bash Training/setup_venv.sh | tail -n 1)
fi
say "python: $PY"

# The Swift side runs as release-mode test hooks (no executable product needed):
# AudioPaperSizeTests (audio) and EncoderBenchmarkTests (text).
SWIFT_FLAGS=(-c release -Xswiftc -enable-testing)
say "swift build ${SWIFT_FLAGS[*]} --build-tests"
SWIFT_OK=1
if ! swift build "${SWIFT_FLAGS[@]}" --build-tests >"$LOGS/encoders-swift-build.log" 2>&1; then
    say "swift build failed; retrying once"; sleep 5
    swift build "${SWIFT_FLAGS[@]}" --build-tests >"$LOGS/encoders-swift-build.log" 2>&1 || {
        SWIFT_OK=0; say "swift build FAILED (tail of $LOGS/encoders-swift-build.log):"
        tail -n 20 "$LOGS/encoders-swift-build.log" >&2; }
fi

for kind in "${KINDS[@]}"; do
    say "prepare: $DATA/$kind (written only when missing or stale)"
    "$PY" "Benchmarks/reference/clap_${kind}_reference.py" prepare --out "$DATA/$kind" --onnx --if-needed \
        >"$LOGS/encoders-prepare-$kind.log" 2>&1 || {
        grep -v '^ ' "$LOGS/encoders-prepare-$kind.log" | tail -n 20 >&2; say "prepare $kind FAILED"; exit 1; }
done

# One engine, one tower, one fresh process; its last JSON line is tagged and appended to $RUNS.
run_one() {
    local kind=$1 engine=$2 round=$3 log="$LOGS/encoders-$1-$2-r$3.log" status=0
    case "$engine" in
        swift)
            if [ "$SWIFT_OK" != 1 ]; then
                echo "{\"kind\": \"$kind\", \"engine\": \"swift\", \"round\": $round, \"error\": \"swift build failed\"}" >>"$RUNS"
                return
            fi
            if [ "$kind" = audio ]; then
                CLAP_AUDIO_PAPER_PACKAGE="$DATA/audio" CLAP_AUDIO_ITERATIONS="$ITERATIONS" CLAP_AUDIO_CORES="$THREADS" \
                    swift test "${SWIFT_FLAGS[@]}" --skip-build --filter AudioPaperSizeTests >"$log" 2>&1 || status=$?
            else
                ENCODER_BENCH_TEXT_PACKAGE="$DATA/text" ENCODER_BENCH_ITERATIONS="$ITERATIONS" \
                    ENCODER_BENCH_WARMUP="$WARMUP" ENCODER_BENCH_THREADS="$THREADS" \
                    swift test "${SWIFT_FLAGS[@]}" --skip-build --filter EncoderBenchmarkTests >"$log" 2>&1 || status=$?
            fi ;;
        *)
            "$PY" "Benchmarks/reference/clap_${kind}_reference.py" time --model "$DATA/$kind" --engine "$engine" \
                --threads "$THREADS" --iterations "$ITERATIONS" --warmup "$WARMUP" >"$log" 2>&1 || status=$?
    esac
    local line
    line=$(grep '^{' "$log" | tail -n 1 || true)
    if [ "$status" != 0 ] || [ -z "$line" ]; then
        echo "{\"kind\": \"$kind\", \"engine\": \"$engine\", \"round\": $round, \"error\": \"exit $status, see $log\"}" >>"$RUNS"
        say "  $kind $engine: FAILED (see $log)"
        return
    fi
    "$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(kind=sys.argv[2], round=int(sys.argv[3])); print(json.dumps(d))' \
        "$line" "$kind" "$round" >>"$RUNS"
    say "  $kind $engine: $(echo "$line" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print("median %.1f ms, peak RSS %.0f MB, max abs err %.1e" % (d["median_ms"], d["peak_rss_mb"], d["max_abs_err"]))')"
}

for round in $(seq 1 "$ROUNDS"); do
    for kind in "${KINDS[@]}"; do
        for engine in "${ENGINES[@]}"; do
            say "round $round/$ROUNDS: $kind, $engine, $ITERATIONS iterations (+$WARMUP warm-up), $THREADS threads"
            run_one "$kind" "$engine" "$round"
        done
    done
done

say "done; summary:"
"$PY" - "$RUNS" "$OUT/encoders.json" "$THREADS" <<'EOF'
import json, os, statistics, sys
runs_path, out_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = [json.loads(l) for l in open(runs_path) if l.strip()]
failed = [r for r in runs if "error" in r or r.get("max_abs_err", 0) > 1e-3]
summary = {"threads": threads, "cpu": os.uname().machine, "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
           "towers": {}}
for kind in ("audio", "text"):
    engines = {}
    for engine in ("torch", "onnxruntime", "swift"):
        ok = [r for r in runs if r.get("kind") == kind and r.get("engine") == engine and "error" not in r]
        if not ok:
            continue
        engines[engine] = {"median_ms": round(statistics.median(r["median_ms"] for r in ok), 2),
                           "round_medians_ms": [round(r["median_ms"], 2) for r in ok],
                           "min_ms": round(min(r["min_ms"] for r in ok), 2),
                           "peak_rss_mb": max(r["peak_rss_mb"] for r in ok),
                           "max_abs_err": max(r["max_abs_err"] for r in ok), "rounds": len(ok)}
    if "swift" in engines:
        s = engines["swift"]["median_ms"]
        for e in ("torch", "onnxruntime"):
            if e in engines:
                engines[e]["ratio_to_swift"] = round(engines[e]["median_ms"] / s, 2)
    summary["towers"][kind] = engines
json.dump(summary, open(out_path, "w"), indent=2)
print(f"{'tower':6} {'engine':12} {'median ms':>10} {'min ms':>8} {'peak RSS MB':>12} {'x Swift':>8} {'max abs err':>12}")
for kind, engines in summary["towers"].items():
    for e, d in engines.items():
        ratio = f"{d['ratio_to_swift']:.2f}" if "ratio_to_swift" in d else "1.00"
        print(f"{kind:6} {e:12} {d['median_ms']:10.1f} {d['min_ms']:8.1f} {d['peak_rss_mb']:12.0f} {ratio:>8} {d['max_abs_err']:12.1e}")
print(f"wrote {out_path}")
if failed:
    print(f"{len(failed)} failed run(s) or parity error > 1e-3:", file=sys.stderr)
    for r in failed:
        print("  ", json.dumps(r), file=sys.stderr)
    sys.exit(1)
EOF
