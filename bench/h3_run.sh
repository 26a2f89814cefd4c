#!/usr/bin/env bash
# HTTP/3: squall against hypercorn (0.18, --quic-bind, over aioquic too), same client, one run.
# One command: `bash bench/h3_run.sh`. Knobs: DURATION, SERVERS, PYTHON, HYPERCORN, PORT.
#
# The client is bench/h3load.py (aioquic): Debian's h2load is built without QUIC. For each server
# and scenario it prints req/s, the server's CPU time per request (from /proc, so it holds on a
# busy machine where req/s swings), and the client's own ceiling (requests per client CPU second:
# when rps comes near it, the client is what is measured).
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
DURATION=${DURATION:-10}
PYTHON=${PYTHON:-python}
SERVERS=${SERVERS:-"squall hypercorn"}
PORT=${PORT:-8766}
HYPERCORN=${HYPERCORN:-}
"$PYTHON" -c 'import aioquic, squall' 2>/dev/null || "$PYTHON" -m pip install -q -e "$REPO_ROOT[http3]"
if [[ $SERVERS == *hypercorn* && -z $HYPERCORN ]]; then
    venv=${TMPDIR:-/tmp}/squall-bench-hypercorn-h3
    [[ -x $venv/bin/hypercorn ]] || { "$PYTHON" -m venv "$venv" && "$venv/bin/pip" install -q 'hypercorn[h3]>=0.18' uvloop; }
    HYPERCORN=$venv/bin/hypercorn
fi
certs=$(mktemp -d)
trap 'rm -rf "$certs"' EXIT
"$PYTHON" - "$certs" <<'EOF'
import sys, trustme
leaf = trustme.CA().issue_cert("127.0.0.1", "localhost")
leaf.cert_chain_pems[0].write_to_path(sys.argv[1] + "/cert.pem")
leaf.private_key_pem.write_to_path(sys.argv[1] + "/key.pem")
EOF

start() {  # $1 server, $2 app
    local tls=(--certfile "$certs/cert.pem" --keyfile "$certs/key.pem")
    case $1 in
        squall) exec "$PYTHON" -m squall "bench.apps:$2" --port "$PORT" --http3 --no-access-log --log-level warning \
            --ssl-certfile "$certs/cert.pem" --ssl-keyfile "$certs/key.pem" ;;
        hypercorn) exec "$HYPERCORN" "bench.apps:$2" --bind "127.0.0.1:$PORT" --quic-bind "127.0.0.1:$PORT" \
            "${tls[@]}" --log-level warning ;;
    esac
}

cpu_ticks() {  # user+system ticks of $1 and its descendants (hypercorn serves from a child process)
    local total=0 pid
    for pid in $1 $(pgrep -P "$1" || true); do
        [[ -r /proc/$pid/stat ]] && total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
        for child in $(pgrep -P "$pid" || true); do
            [[ $child != "$1" && -r /proc/$child/stat ]] && total=$((total + $(awk '{print $14 + $15}' "/proc/$child/stat")))
        done
    done
    echo "$total"
}

echo "| scenario | server | req/s | server CPU ms/request | client ceiling req/s | errors |"
echo "|---|---|---|---|---|---|"
for scenario in "hello 8 10" "big 4 2"; do
    read -r app conns streams <<<"$scenario"
    for server in $SERVERS; do
        start "$server" "$app" >/dev/null 2>&1 &
        pid=$!
        ready=0
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            if "$PYTHON" bench/h3load.py --port "$PORT" --connections 1 --streams 1 --duration 0.2 2>/dev/null |
                grep -q '"errors": 0'; then ready=1; break; fi
            sleep 0.1
        done
        if [[ $ready != 1 ]]; then echo "| $app | $server | failed to start | | | |"; kill "$pid" 2>/dev/null || true; continue; fi
        before=$(cpu_ticks "$pid")
        result=$("$PYTHON" bench/h3load.py --port "$PORT" --connections "$conns" --streams "$streams" --duration "$DURATION")
        after=$(cpu_ticks "$pid")
        "$PYTHON" - "$app" "$server" "$result" "$before" "$after" "$(getconf CLK_TCK)" <<'EOF'
import json, sys
app, server, result, before, after, hz = sys.argv[1:]
r = json.loads(result)
cpu_ms = (int(after) - int(before)) / int(hz) * 1000 / max(r["requests"], 1)
ceiling = r["rps"] / r["client_cpu"] if r["client_cpu"] else float("inf")
print(f"| {app} | {server} | {r['rps']:.0f} | {cpu_ms:.2f} | {ceiling:.0f} | {r['errors']} |")
EOF
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
done
