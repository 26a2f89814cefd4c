#!/usr/bin/env bash
# Connections lost across rolling reloads: wrk -t2 -c32 with "Connection: close" (a new connection
# per request) against squall --workers 2 while it is reloaded (SIGHUP) RELOADS times; prints wrk's
# summary (a lost connection shows as a socket error) and the reloads completed.
#   bash bench/reload_resets.sh                          # shared listening socket
#   EXTRA=--reuse-port RELOADS=30 bash bench/reload_resets.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python}
RELOADS=${RELOADS:-8}
EXTRA=${EXTRA:-}
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
LOG=$(mktemp)
# shellcheck disable=SC2086  # EXTRA is a list of flags
"$PYTHON" -m squall bench.apps:hello --port "$PORT" --workers 2 $EXTRA >"$LOG" 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true; rm -f "$LOG" "$LOG.wrk"' EXIT
reloads() { grep -c "Reload complete" "$LOG" || true; }
wait_for() { # pattern-count-check seconds
    local i
    for ((i = 0; i < $2 * 20; i++)); do eval "$1" && return 0; sleep 0.05; done
    return 1
}
wait_for 'grep -q "2 worker(s) ready" "$LOG"' 30 || { cat "$LOG" >&2; exit 1; }
wrk -t2 -c32 -d3600s -H "Connection: close" "http://127.0.0.1:$PORT/" >"$LOG.wrk" 2>&1 &
WRK=$!
sleep 1
for ((r = 1; r <= RELOADS; r++)); do
    before=$(reloads)
    kill -HUP "$SERVER"
    wait_for '[ "$(reloads)" -gt "$before" ]' 30 || { echo "reload $r did not complete" >&2; break; }
    sleep 0.3
done
kill -INT "$WRK"
wait "$WRK" || true
grep -E "requests in|Socket errors|Non-2xx|Latency" "$LOG.wrk" | tr -s ' ' | paste -sd' '
echo "reloads completed: $(reloads) of $RELOADS"
