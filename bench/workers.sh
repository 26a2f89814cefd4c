#!/usr/bin/env bash
# Two-worker scenario: squall --workers 2 vs uvicorn --workers 2 on the hello app, then squall
# again with a SIGHUP rolling reload in the middle of the run (wrk must report no errors).
# One command: `bash bench/workers.sh`. Knobs: DURATION (s, default 10), CONNS (64), PYTHON,
# SERVERS ("squall uvicorn"), READY_TIMEOUT (30). Uses every CPU (no pinning): with 2 workers
# the server and wrk share the machine, so read the numbers as ratios between servers.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
PYTHON=${PYTHON:-python}
SERVERS=${SERVERS:-squall uvicorn}
READY_TIMEOUT=${READY_TIMEOUT:-30}
UVICORN_PIN="uvicorn[standard]==0.38.0"

log() { printf '[workers] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}
for knob in DURATION CONNS READY_TIMEOUT; do
    [[ ${!knob} =~ ^[1-9][0-9]*$ ]] || die "$knob must be a positive integer, got '${!knob}'"
done
PYTHON_BIN=$(command -v "$PYTHON") || die "python interpreter '$PYTHON' not found"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
command -v curl >/dev/null || die "curl not found"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/squall-workers.XXXXXX")
SERVER_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_server
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# SIGTERM the server we started (the supervisor drains its workers), SIGKILL after 10 s.
stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

start_server() {
    local server=$1 port=$2
    case $server in
        squall)
            cmd=("$PYTHON_BIN" -m squall bench.apps:hello --host 127.0.0.1 --port "$port" --workers 2
                --no-access-log --log-level info) ;;
        uvicorn)
            "$PYTHON_BIN" -c 'import uvicorn' 2>/dev/null || "$PYTHON_BIN" -m pip install -q "$UVICORN_PIN"
            cmd=("$PYTHON_BIN" -m uvicorn bench.apps:hello --host 127.0.0.1 --port "$port" --workers 2
                --loop uvloop --http httptools --no-access-log --log-level warning) ;;
        *) die "unknown server '$server'" ;;
    esac
    "${cmd[@]}" >"$WORK/$server.log" 2>&1 &
    SERVER_PID=$!
    local deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$WORK/$server.log" >&2; die "$server exited during startup"; }
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/" && return 0
        sleep 0.1
    done
    die "$server did not answer within ${READY_TIMEOUT}s"
}

# Print "req/s errors" for one wrk run (errors = socket errors + non-2xx/3xx responses).
run_wrk() {
    local port=$1 out=$WORK/wrk.txt
    wrk -t2 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$port/" >"$out"
    local rps errors
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    errors=$(awk '/Socket errors:/ {gsub(",", ""); s += $4 + $6 + $8 + $10} /Non-2xx or 3xx/ {s += $5} END {print s + 0}' "$out")
    echo "$rps $errors"
}

free_port() { "$PYTHON_BIN" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

printf '| scenario | req/s | errors |\n| --- | ---: | ---: |\n'
for server in $SERVERS; do
    port=$(free_port)
    start_server "$server" "$port"
    read -r rps errors < <(run_wrk "$port")
    printf '| %s, 2 workers, hello | %s | %s |\n' "$server" "$rps" "$errors"
    stop_server
done

if [[ " $SERVERS " == *" squall "* ]]; then
    port=$(free_port)
    start_server squall "$port"
    (sleep $((DURATION / 2)) && kill -HUP "$SERVER_PID") &
    hup_pid=$!
    read -r rps errors < <(run_wrk "$port")
    wait "$hup_pid" || true
    reloaded=$(grep -c "Reload complete" "$WORK/squall.log" || true)
    printf '| squall, 2 workers, SIGHUP mid-run (reloads completed: %s) | %s | %s |\n' "$reloaded" "$rps" "$errors"
    stop_server
    ((errors == 0)) || die "the rolling reload cost $errors failed request(s)"
fi
