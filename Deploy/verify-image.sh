#!/usr/bin/env bash
# Proves the Dockerfile's runtime stage without a container engine: assembles it the way Docker
# would (a Debian 12 minbase tree from debootstrap, then the stage's own RUN, COPY, ENV, USER and
# WORKDIR instructions, read from ../Dockerfile and run in a chroot), starts the ENTRYPOINT in it
# as the stage's USER, runs the HEALTHCHECK command and Scripts/smoke.sh against it, leaves one call
# open, sends SIGTERM, checks that the server exits 0 having written that call to EMOTION_STATE_DIR
# (owned by USER, as the image creates it), and that a restarted server restores it.
#
#   bash Deploy/verify-image.sh            (root; about 10 min the first time, then a few)
#
# The binaries are built as the build stage builds them (release, --static-swift-stdlib), into
# .build/image-build; the Debian tree is cached in .build/image-base (delete it to start over).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "verify-image.sh: needs root (debootstrap, chroot, mount)" >&2; exit 1; }
bash Scripts/setup.sh >/dev/null
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
PORT=${PORT:-18080}
BASE=.build/image-base
ROOT=.build/image-root
OUT=.build/image-out

echo "== build stage: release binaries with the static Swift runtime"
mkdir -p "$OUT"
for product in emotion-server emotion; do
    swift build -c release --static-swift-stdlib --build-path .build/image-build --product "$product" 2>&1 | tail -1
    cp ".build/image-build/release/$product" "$OUT/"
done

echo "== runtime stage base: $(grep -E '^FROM ' Dockerfile | tail -1)"
if [ ! -x "$BASE/bin/sh" ]; then
    rm -rf "$BASE.tmp"
    debootstrap --variant=minbase bookworm "$BASE.tmp" http://deb.debian.org/debian >/dev/null
    mv "$BASE.tmp" "$BASE"
fi
rm -rf "$ROOT"
cp -a "$BASE" "$ROOT"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"

# The runtime stage (everything after the last FROM) as one instruction a line, continuations joined.
python3 - Dockerfile > "$OUT/stage.tsv" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
start = max(i for i, l in enumerate(lines) if l.startswith("FROM "))
joined, cur = [], ""
for l in lines[start + 1:]:
    if not cur and (not l.strip() or l.lstrip().startswith("#")):
        continue
    if l.rstrip().endswith("\\"):
        cur += l.rstrip()[:-1] + " "
        continue
    cur += l
    joined.append(cur.strip())
    cur = ""
for j in joined:
    op, _, arg = j.partition(" ")
    print(f"{op}\t{arg.strip()}")
PY

declare -a ENVS=()
USERSPEC=0:0
WORKDIR=/
ENTRYPOINT=""
HEALTHCHECK=""
in_root() { # run a shell command in the tree with /proc and /dev mounted (private mounts)
    unshare --mount sh -c 'mount -t proc proc "$1/proc" && mount --rbind /dev "$1/dev" && shift && exec chroot "$@"' \
        sh "$ROOT" "$@"
}
while IFS=$'\t' read -r op arg; do
    case "$op" in
        RUN)
            echo "   RUN ${arg:0:100}..."
            in_root "$ROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -c "$arg" >/dev/null ;;
        COPY)
            read -ra parts <<< "$arg"
            if [[ "${parts[0]}" == --from=* ]]; then
                parts=("${parts[@]:1}")
                sources=("${parts[@]:0:${#parts[@]}-1}")
                sources=("${sources[@]/#\/out\//$OUT/}")  # the build stage's /out is $OUT here
            else
                sources=("${parts[@]:0:${#parts[@]}-1}")
            fi
            dest="${parts[-1]}"
            echo "   COPY ${sources[*]} -> $dest"
            mkdir -p "$ROOT$dest"
            for src in "${sources[@]}"; do  # as Docker does: a directory's contents, a file itself
                if [ -d "$src" ]; then cp -a "$src/." "$ROOT$dest/"; else cp -a "$src" "$ROOT$dest/"; fi
            done ;;
        ENV)
            # KEY=VALUE pairs (no spaces inside values in this Dockerfile)
            read -ra pairs <<< "$arg"
            ENVS+=("${pairs[@]}") ;;
        USER) USERSPEC=$arg ;;
        WORKDIR) WORKDIR=$arg ;;
        ENTRYPOINT) ENTRYPOINT=$(python3 -c 'import json, sys; print(" ".join(json.loads(sys.argv[1])))' "$arg") ;;
        HEALTHCHECK) HEALTHCHECK=${arg#*CMD } ;;
        EXPOSE|STOPSIGNAL|VOLUME|ARG|LABEL) ;;
        *) echo "verify-image.sh: unknown instruction $op" >&2; exit 1 ;;
    esac
done < "$OUT/stage.tsv"
[[ "$USERSPEC" == *:* ]] || USERSPEC="$USERSPEC:$USERSPEC"

echo "== checks on the assembled tree"
missing=$(in_root "$ROOT" ldd /usr/local/bin/emotion-server /usr/local/bin/emotion | grep 'not found' || true)
[ -z "$missing" ] || { echo "FAIL: shared libraries missing in the image: $missing" >&2; exit 1; }
state=""
for e in "${ENVS[@]}"; do [[ "$e" == EMOTION_STATE_DIR=* ]] && state=${e#*=}; done
[ -n "$state" ] || { echo "FAIL: the image sets no EMOTION_STATE_DIR" >&2; exit 1; }
owner=$(stat -c %u:%g "$ROOT$state" 2>/dev/null || echo absent)
[ "$owner" = "$USERSPEC" ] || { echo "FAIL: $state is $owner in the image, not owned by USER $USERSPEC" >&2; exit 1; }
echo "   libraries resolve; $state exists owned by $USERSPEC; USER $USERSPEC, WORKDIR $WORKDIR"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
server=""
start_server() { # the ENTRYPOINT as USER in WORKDIR with the stage's ENV, listening on $PORT
    echo "== ENTRYPOINT $ENTRYPOINT as $USERSPEC on port $PORT"
    unshare --mount sh -c 'mount -t proc proc "$1/proc" && mount --rbind /dev "$1/dev" && shift && exec "$@"' sh "$ROOT" \
        chroot --userspec="$USERSPEC" "$ROOT" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$WORKDIR" \
        "${ENVS[@]}" EMOTION_PORT="$PORT" EMOTION_HOST=127.0.0.1 /bin/sh -c "cd '$WORKDIR' && exec $ENTRYPOINT" >>"$log" 2>&1 &
    server=$!
    for _ in $(seq 1 240); do
        curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && return 0
        kill -0 "$server" 2>/dev/null || { cat "$log"; echo "FAIL: the server exited at start" >&2; exit 1; }
        sleep 0.5
    done
    cat "$log"; echo "FAIL: the server was not ready in 120 s" >&2; exit 1
}
stop_server() { # SIGTERM (unshare, chroot, env and sh all exec, so $server is the server's pid)
    kill -TERM "$server"
    local status=0
    wait "$server" || status=$?
    [ "$status" -eq 0 ] || { tail -20 "$log"; echo "FAIL: SIGTERM exit status $status" >&2; exit 1; }
}
start_server
healthcheck=${HEALTHCHECK//\$\{EMOTION_PORT\}/$PORT}
in_root "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin /bin/sh -c "$healthcheck" >/dev/null \
    || { cat "$log"; echo "FAIL: HEALTHCHECK failed: $healthcheck" >&2; exit 1; }
echo "   HEALTHCHECK passes inside the tree"
bash Scripts/smoke.sh "http://127.0.0.1:$PORT"
# One call left open (smoke.sh deletes its own), to be written on SIGTERM and restored.
curl -fsS -H 'Content-Type: application/json' -d '{"speaker": "caller", "transcript": "Where is my order?"}' \
    "http://127.0.0.1:$PORT/v1/sessions/verify-image/turns" >/dev/null
stop_server
files=$(find "$ROOT$state" -type f -user "${USERSPEC%%:*}" | wc -l)
[ "$files" -gt 0 ] || { tail -20 "$log"; echo "FAIL: no session written to $state" >&2; exit 1; }
echo "   SIGTERM: exit 0, $files session file(s) in $state owned by ${USERSPEC%%:*}"
start_server
turns=$(curl -fsS "http://127.0.0.1:$PORT/v1/sessions/verify-image" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["turns"]))')
[ "$turns" = 1 ] || { tail -20 "$log"; echo "FAIL: the restarted server holds $turns turns of the open call, not 1" >&2; exit 1; }
stop_server
echo "== image verified: smoke call, SIGTERM exit 0, the open call restored from $state after a restart"
