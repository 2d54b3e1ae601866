#!/usr/bin/env bash
# Posts a short call (speech made with espeak-ng, plus transcripts) to a running emotion-server
# and prints the answers.
#
#   Scripts/smoke.sh [BASE_URL]          (default http://127.0.0.1:8080)
#
# Installs espeak-ng with apt when missing. Set API_KEY for a server with API keys.
set -euo pipefail
BASE=${1:-http://127.0.0.1:8080}
if ! command -v espeak-ng >/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq espeak-ng >/dev/null
fi
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
AUTH=(); [ -n "${API_KEY:-}" ] && AUTH=(-H "Authorization: Bearer $API_KEY")
SESSION="smoke-$(date +%s)"

turn() { # n speaker voice text
    espeak-ng -v "$3" -s 150 -w "$WORK/$1.wav" "$4"
    python3 - "$WORK/$1.wav" "$2" "$4" "t$1" > "$WORK/$1.json" <<'PY'
import base64, json, sys
path, speaker, text, turn_id = sys.argv[1:]
print(json.dumps({"speaker": speaker, "transcript": text, "turn_id": turn_id,
                  "audio": base64.b64encode(open(path, "rb").read()).decode()}))
PY
    echo "== turn $1 ($2): $4"
    curl -fsS "${AUTH[@]}" -H 'Content-Type: application/json' --data-binary "@$WORK/$1.json" \
        "$BASE/v1/sessions/$SESSION/turns" | python3 -c '
import json, sys
a = json.load(sys.stdin); t = a["turn"]
print("  emotion:", t["emotion"], {k: round(v, 3) for k, v in t["probabilities"].items()})
print("  decoded:", [d["emotion"] + ("*" if d["revised"] else "") for d in a["decoded"]], " timings ms:", {k: round(v, 1) for k, v in a["timings_ms"].items()})'
}

curl -fsS "$BASE/readyz" >/dev/null || { echo "no ready server at $BASE" >&2; exit 1; }
turn 1 agent  en-us "Thank you for calling. How can I help you today?"
turn 2 caller en-gb "I have been waiting for two weeks and my order still has not arrived!"
turn 3 agent  en-us "I am so sorry. Let me look into that for you right away."
turn 4 caller en-gb "Thank you, that is really kind of you."
echo "== session $SESSION"
curl -fsS "${AUTH[@]}" "$BASE/v1/sessions/$SESSION" | python3 -c '
import json, sys
s = json.load(sys.stdin)
for sp in s["speakers"]:
    print(" ", sp["speaker"], "turns", sp["turns"], "emotions", sp["emotions"], "decoded", sp["decoded_emotions"])'
curl -fsS "${AUTH[@]}" -X DELETE "$BASE/v1/sessions/$SESSION" -o /dev/null && echo "== deleted $SESSION"
