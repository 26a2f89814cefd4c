#!/usr/bin/env bash
# WebSocket echo throughput: squall vs uvicorn (--ws websockets, uvloop) in one run.
# `bash bench/ws_run.sh` — 64 connections, 32-byte binary messages, one in flight on each.
# Servers are pinned to SERVER_CPU, the client (bench/ws_echo.py) to CLIENT_CPU.
# Knobs: DURATION (s, default 10), WARMUP (s, 2), ROUNDS (3, best kept), CONNS (64), SIZE (32),
# SERVER_CPU (0), CLIENT_CPU (1), PYTHON (python).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
SIZE=${SIZE:-32}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PYTHON=${PYTHON:-python}
APP=bench.ws_app:echo

log() { printf '[ws-bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v taskset >/dev/null || die "taskset (util-linux) is required"
"$PYTHON" -c 'import squall' 2>/dev/null || "$PYTHON" -m pip install -q -e "$REPO_ROOT"
"$PYTHON" -c 'import uvicorn, uvloop, websockets' 2>/dev/null || "$PYTHON" -m pip install -q "uvicorn[standard]==0.38.0"
"$PYTHON" -c 'import uvicorn, uvloop, websockets' 2>/dev/null || die "needs uvicorn, uvloop and websockets installed"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/squall-ws-bench.XXXXXX")
SERVER_PID=""

stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
cleanup() {
    local rc=$?
    stop_server
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

# Start server $1 on an ephemeral port; sets PORT. Both servers print the URL on stderr.
start_server() {
    local name=$1 logfile=$WORK/$1.log
    case $name in
        squall) taskset -c "$SERVER_CPU" "$PYTHON" -m squall "$APP" --host 127.0.0.1 --port 0 \
            --no-access-log --log-level info 2>"$logfile" & ;;
        uvicorn) taskset -c "$SERVER_CPU" "$PYTHON" -m uvicorn "$APP" --host 127.0.0.1 --port 0 \
            --ws websockets --loop uvloop --http httptools --no-access-log --log-level info 2>"$logfile" & ;;
    esac
    SERVER_PID=$!
    local i
    PORT=""
    for ((i = 0; i < 300; i++)); do
        PORT=$(grep -o -m1 'running on http://127\.0\.0\.1:[0-9]*' "$logfile" 2>/dev/null | grep -o '[0-9]*$' || true)
        [[ -n $PORT ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$logfile" >&2; die "$name exited"; }
        sleep 0.1
    done
    cat "$logfile" >&2
    die "$name did not start"
}

declare -A BEST=()
for server in squall uvicorn; do
    start_server "$server"
    best=0
    for ((round = 1; round <= ROUNDS; round++)); do
        out=$(taskset -c "$CLIENT_CPU" "$PYTHON" bench/ws_echo.py --port "$PORT" --conns "$CONNS" \
            --size "$SIZE" --duration "$DURATION" --warmup "$WARMUP" | tail -n1)
        rate=${out#msgs_per_sec=}
        log "$server round $round: $rate msgs/s"
        ((rate > best)) && best=$rate
    done
    BEST[$server]=$best
    stop_server
done

ratio=$("$PYTHON" -c "print(f'{${BEST[squall]} / ${BEST[uvicorn]}:.2f}')")
printf '\nWebSocket echo, %d connections, %d-byte messages, one in flight each (best of %d x %ss)\n' \
    "$CONNS" "$SIZE" "$ROUNDS" "$DURATION"
printf '%-10s %12s\n' server 'msgs/s'
printf '%-10s %12s\n' squall "${BEST[squall]}" uvicorn "${BEST[uvicorn]}"
printf 'ratio squall/uvicorn: %sx\n' "$ratio"
