#!/usr/bin/env bash
# Paper-size gated xLSTM classifier: Swift (classifier-bench) vs PyTorch vs ONNX Runtime, CPU.
#
#   Benchmarks/classifier.sh [--iterations N] [--warmup W] [--rounds R] [--seed S]
#
# Runs end to end on a fresh clone: system libraries, the Python venv, the Swift release build,
# the random-weight model package (bench-out/paper, written once per seed), then every engine in
# its own process, 2 threads, interleaved, R rounds. Raw JSON lines go to
# bench-out/classifier.runs.jsonl, the summary to bench-out/classifier.json; a table is printed.
# Exits non-zero if an engine fails or a parity error exceeds 1e-3 (relative to max |logit|).
# It reports timings; it asserts no timing target. See Benchmarks/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

ITERATIONS=30
WARMUP=3
ROUNDS=2
SEED=2503
THREADS=2
BATCHES=(1 8)
ENGINES=(torch onnxruntime swift)

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --iterations) ITERATIONS="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --seed) SEED="$2"; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "classifier.sh: unknown argument $1" >&2; usage 2 >&2 ;;
    esac
done

OUT=bench-out
MODEL="$OUT/paper"
LOGS="$OUT/logs"
RUNS="$OUT/classifier.runs.jsonl"
REF=Benchmarks/reference/classifier_reference.py
mkdir -p "$OUT" "$LOGS"
: > "$RUNS"
rm -f "$LOGS"/*.log "$LOGS"/*.log.out
start=$(date +%s)
say() { echo "[$(( $(date +%s) - start ))s] $*" >&2; }

say "system libraries (Scripts/setup.sh)"
bash Scripts/setup.sh

say "Python venv (Training/setup_venv.sh)"
PY=$(bash Training/setup_venv.sh | tail -n 1)
say "python: $PY"

# The Swift side: `classifier-bench` (Benchmarks/ClassifierBenchmark). If Package.swift does not
# declare the product under that name yet, SwiftPM's implicit product for the target is used.
PRODUCT=classifier-bench
if ! grep -q '"classifier-bench"' Package.swift; then
    PRODUCT=ClassifierBenchmark
    say "note: Package.swift declares no 'classifier-bench' product; building target product $PRODUCT"
fi
SWIFT_BIN=""
say "Scripts/build-release.sh $PRODUCT"
# One retry: a build can fail transiently when sources change while it runs.
if bash Scripts/build-release.sh "$PRODUCT" >"$LOGS/swift-build.log" 2>&1 \
    || { say "swift build failed; retrying once"; sleep 5;
         bash Scripts/build-release.sh "$PRODUCT" >"$LOGS/swift-build.log" 2>&1; }; then
    SWIFT_BIN="$(swift build -c release --show-bin-path)/$PRODUCT"
else
    say "swift build FAILED (tail of $LOGS/swift-build.log):"
    tail -n 20 "$LOGS/swift-build.log" >&2
fi

say "prepare: $MODEL (seed $SEED; written only when missing or stale: ~600 MB weights + ~600 MB ONNX, ~30 s)"
"$PY" "$REF" prepare --out "$MODEL" --seed "$SEED" --threads "$THREADS" --if-needed >"$LOGS/prepare.log" 2>&1 || {
    grep -v '^ ' "$LOGS/prepare.log" | tail -n 20 >&2; say "prepare FAILED"; exit 1; }
grep '^prepare:' "$LOGS/prepare.log" >&2 || true

# One engine, one batch size, one fresh process. `measure` runs the command, appends its JSON
# line tagged with the round and the CPU time other processes used meanwhile (or an error record).
run_one() {
    local engine=$1 batch=$2 round=$3 log="$LOGS/$1-b$2-r$3.log"
    local cmd
    case "$engine" in
        swift)
            if [ -z "$SWIFT_BIN" ]; then
                echo "{\"engine\": \"swift\", \"batch\": $batch, \"round\": $round, \"error\": \"swift build failed\"}" >>"$RUNS"
                say "  swift batch $batch: skipped (build failed)"
                return
            fi
            cmd=("$SWIFT_BIN" --model "$MODEL" --batch "$batch" --iterations "$ITERATIONS" --warmup "$WARMUP") ;;
        *)
            cmd=("$PY" "$REF" time --model "$MODEL" --engine "$engine" --batch "$batch" --threads "$THREADS"
                 --iterations "$ITERATIONS" --warmup "$WARMUP") ;;
    esac
    "$PY" "$REF" measure --engine "$engine" --batch "$batch" --round "$round" --log "$log" -- "${cmd[@]}" \
        >>"$RUNS" || true
}

for round in $(seq 1 "$ROUNDS"); do
    for batch in "${BATCHES[@]}"; do
        for engine in "${ENGINES[@]}"; do
            say "round $round/$ROUNDS: $engine, batch $batch, $ITERATIONS iterations (+$WARMUP warm-up)"
            run_one "$engine" "$batch" "$round"
        done
    done
done

say "done; summary:"
"$PY" "$REF" summarize --runs "$RUNS" --model "$MODEL" --out "$OUT/classifier.json"
