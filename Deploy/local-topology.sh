#!/usr/bin/env bash
# The compose topology on one machine without Docker: two emotion-server processes and Debian's
# HAProxy on loopback, hashing the session id from the path (consistent hashing). Shows that
#   1. every turn of a session reaches one replica (X-Replica-Id of each answer), and
#   2. the sessions of a replica survive its restart (SIGTERM writes them, the new process reads them).
#
#   Deploy/local-topology.sh [MODEL_DIR]        (default: Models/default)
#
# Ports 18080 (HAProxy), 18081 and 18082 (replicas) on 127.0.0.1. Installs haproxy with apt when
# missing. Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-Models/default}
[ -f "$MODEL/model.json" ] || { echo "no model package at $MODEL" >&2; exit 2; }

bash Scripts/setup.sh
if ! command -v haproxy >/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq haproxy >/dev/null
fi
bash Scripts/build-release.sh emotion-server >/dev/null
BIN=.build/release/emotion-server
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

start_replica() { # name port
    "$BIN" --model "$MODEL" --host 127.0.0.1 --port "$2" --state-dir "$WORK/state-$1" \
        --replica-id "$1" --snapshot-interval 5 2>>"$WORK/$1.log" &
    echo $! > "$WORK/$1.pid"
    PIDS+=("$(cat "$WORK/$1.pid")")
    for _ in $(seq 1 300); do
        curl -fs "http://127.0.0.1:$2/readyz" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "replica $1 did not become ready; log:" >&2; cat "$WORK/$1.log" >&2; exit 1
}

cat > "$WORK/haproxy.cfg" <<CFG
global
    maxconn 256
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend emotion
    bind 127.0.0.1:18080
    acl is_session path_beg /v1/sessions/
    use_backend sessions if is_session
    default_backend stateless
backend sessions
    balance uri path-only depth 3
    hash-type consistent
    option httpchk GET /readyz
    server replica-a 127.0.0.1:18081 check inter 500ms fall 1 rise 1
    server replica-b 127.0.0.1:18082 check inter 500ms fall 1 rise 1
backend stateless
    balance roundrobin
    option httpchk GET /readyz
    server replica-a 127.0.0.1:18081 check inter 500ms fall 1 rise 1
    server replica-b 127.0.0.1:18082 check inter 500ms fall 1 rise 1
CFG

start_replica replica-a 18081
start_replica replica-b 18082
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
sleep 1.5

post() { # session speaker text -> prints "replica index"
    curl -fsS -D "$WORK/headers" -o "$WORK/body" -H 'Content-Type: application/json' \
        -d "{\"speaker\": \"$2\", \"transcript\": \"$3\"}" "http://127.0.0.1:18080/v1/sessions/$1/turns"
    printf '%s %s\n' "$(tr -d '\r' < "$WORK/headers" | awk -F': ' 'tolower($1)=="x-replica-id"{print $2}')" \
        "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["turn"]["index"])' "$WORK/body")"
}

echo "== 1. all turns of a session reach one replica"
declare -A OWNER
status=0
for s in $(seq 1 8); do
    id="call-$s"
    seen=""
    for t in 1 2 3; do
        read -r replica index < <(post "$id" "speaker-$((t % 2))" "turn $t of $id")
        seen="$seen $replica"
    done
    uniq=$(echo "$seen" | tr ' ' '\n' | sed '/^$/d' | sort -u)
    n=$(echo "$uniq" | wc -l)
    OWNER[$id]=$uniq
    printf '  %-8s -> %s\n' "$id" "$(echo "$seen" | xargs)"
    [ "$n" -eq 1 ] || { echo "  FAIL: $id reached $n replicas" >&2; status=1; }
done
used=$(printf '%s\n' "${OWNER[@]}" | sort -u | wc -l)
echo "  replicas used: $used"

echo "== 2. restart replica-a (SIGTERM: drain, write sessions; then start again)"
kill -TERM "$(cat "$WORK/replica-a.pid")"
wait "$(cat "$WORK/replica-a.pid")" && echo "  replica-a exited 0" || { echo "  FAIL: replica-a exit status $?" >&2; status=1; }
grep -o '"msg":"sessions written"[^}]*' "$WORK/replica-a.log" | head -1 | sed 's/^/  /'
start_replica replica-a 18081
sleep 1.5
for id in "${!OWNER[@]}"; do
    [ "${OWNER[$id]}" = "replica-a" ] || continue
    turns=$(curl -fsS "http://127.0.0.1:18080/v1/sessions/$id" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["turns"]))')
    read -r replica index < <(post "$id" "speaker-1" "after the restart")
    printf '  %-8s restored with %s turns; next turn index %s on %s\n' "$id" "$turns" "$index" "$replica"
    [ "$turns" -eq 3 ] && [ "$index" -eq 3 ] && [ "$replica" = "replica-a" ] || { echo "  FAIL: $id" >&2; status=1; }
done
[ $status -eq 0 ] && echo "OK: sessions stick to one replica and survive its restart" || echo "FAILED" >&2
exit $status
