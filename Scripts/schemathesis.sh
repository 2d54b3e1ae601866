#!/usr/bin/env bash
# Live contract run: schemathesis (pinned, pip-installed into the tools venv under .build/) sends
# generated valid and invalid requests for every operation of openapi.yaml to a running
# emotion-server and checks every answer against the spec (status codes, schemas, headers,
# content types, Allow on 405, auth enforced, deleted sessions gone, no 5xx). Part of
# Scripts/test.sh; bounded in examples and time.
#
#   Scripts/schemathesis.sh [SERVER_BINARY]      (default: the debug build's emotion-server)
#
# The server runs the tiny test model (Tests/SharedFixtures/tiny-model) with an API key, so the
# run is about the HTTP contract, not the model's speed. MAX_TIME (s, default 60) bounds the run;
# SEED (default 1) picks the generated cases.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.build/tools-venv
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "4.32.5"; then
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==4.32.5"
fi
server=${1:-$(swift build --show-bin-path)/emotion-server}
[ -x "$server" ] || { echo "schemathesis.sh: no server binary at $server (swift build first)" >&2; exit 1; }
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
echo "contract:sekret" > "$work/keys"
"$server" --host 127.0.0.1 --port 0 --model Tests/SharedFixtures/tiny-model --api-keys-file "$work/keys" \
    > "$work/server.log" 2>&1 &
pid=$!
port=""
for _ in $(seq 1 200); do
    port=$(grep '"msg":"listening"' "$work/server.log" | grep -o '"address":"[^"]*:[0-9]*"' | grep -o '[0-9]*"$' | tr -d '"' || true)
    [ -n "$port" ] && curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/server.log"; echo "schemathesis.sh: the server exited" >&2; exit 1; }
    sleep 0.1
done
[ -n "$port" ] || { cat "$work/server.log"; echo "schemathesis.sh: the server did not report its port" >&2; exit 1; }
cd "$work"
status=0
"$OLDPWD/$venv/bin/st" --config-file "$OLDPWD/Scripts/schemathesis.toml" run "$OLDPWD/openapi.yaml" \
    --url "http://127.0.0.1:$port" -H "Authorization: Bearer sekret" --checks all \
    --max-examples 25 --max-time "${MAX_TIME:-60}" --seed "${SEED:-1}" --generation-database none --no-color \
    --workers 2 --request-timeout 20 > st.log 2>&1 || status=$?
grep -E "^(API Operations|  (Selected|Tested)|Test cases|  [0-9]+ generated|=+ .* in [0-9.]+s =+$)" st.log || true
if [ "$status" -ne 0 ]; then
    sed -n '/= FAILURES =/,$p' st.log | head -150
    grep -E '"level":"error"' server.log | head -20 || true
    echo "schemathesis: failures (exit $status)"
    exit "$status"
fi
echo "schemathesis: openapi.yaml holds against the live server, 0 failures"
