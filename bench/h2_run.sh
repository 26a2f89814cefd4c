#!/usr/bin/env bash
# h2load (nghttp2-client) against squall, hypercorn and granian, hello world over h2c prior knowledge.
# One command: `bash bench/h2_run.sh`. Knobs: REQUESTS, CONNS, STREAMS, SERVERS, HYPERCORN, PYTHON.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
REQUESTS=${REQUESTS:-100000}
CONNS=${CONNS:-64}
STREAMS=${STREAMS:-10}
PYTHON=${PYTHON:-python}
HYPERCORN=${HYPERCORN:-hypercorn}  # a hypercorn executable (any venv)
SERVERS=${SERVERS:-"squall hypercorn granian"}
PORT=${PORT:-8765}
# Install what is missing: h2load (Debian's nghttp2-client), granian, and hypercorn in a throwaway venv.
command -v h2load >/dev/null || { apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null; }
"$PYTHON" -c 'import squall' 2>/dev/null || "$PYTHON" -m pip install -q -e "$REPO_ROOT"
"$PYTHON" -c 'import granian' 2>/dev/null || "$PYTHON" -m pip install -q granian || SERVERS=${SERVERS/granian/}
if [[ $SERVERS == *hypercorn* ]] && ! command -v "$HYPERCORN" >/dev/null; then
    venv=${TMPDIR:-/tmp}/squall-bench-hypercorn
    [[ -x $venv/bin/hypercorn ]] || { "$PYTHON" -m venv "$venv" && "$venv/bin/pip" install -q hypercorn; }
    HYPERCORN=$venv/bin/hypercorn
fi

start() {
    case $1 in
        squall) exec "$PYTHON" -m squall bench.apps:hello --port "$PORT" --no-access-log --log-level warning ;;
        hypercorn) exec "$HYPERCORN" bench.apps:hello --bind "127.0.0.1:$PORT" --log-level warning ;;
        granian) exec "$PYTHON" -m granian --interface asgi --host 127.0.0.1 --port "$PORT" --http 2 \
            --log-level warning bench.apps:hello ;;
    esac
}

for server in $SERVERS; do
    if curl -s --http2-prior-knowledge "http://127.0.0.1:$PORT/" >/dev/null 2>&1; then
        echo "port $PORT is already served by something else: set PORT" >&2
        exit 1
    fi
    start "$server" >/dev/null 2>&1 &
    pid=$!  # start() execs the server, so this is the server's own pid
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || { echo "$server exited before answering" >&2; exit 1; }
        curl -s --http2-prior-knowledge "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break
        sleep 0.1
    done
    h2load -n "$((REQUESTS / 10))" -c "$CONNS" -m "$STREAMS" "http://127.0.0.1:$PORT/" >/dev/null 2>&1 || true
    rps=$(h2load -n "$REQUESTS" -c "$CONNS" -m "$STREAMS" "http://127.0.0.1:$PORT/" 2>&1 |
        awk '/^finished in/ {gsub(",", "", $4); print $4}')
    echo "$server ${rps:-failed} req/s (h2load -n $REQUESTS -c $CONNS -m $STREAMS)"
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
done
