#!/usr/bin/env bash
# The Autobahn WebSocket conformance suite (fuzzingclient) against squall serving an echo app.
#
#   bash scripts/autobahn.sh            # all 517 cases, pure or compiled: whatever squall is installed
#   CASES='3.*,5.15,7.1.5' bash scripts/autobahn.sh
#
# Starts squall (bench.ws_app:echo) on 127.0.0.1 with an ephemeral port, writes the fuzzingclient
# spec, runs `wstest -m fuzzingclient`, prints the count of cases by behaviour (a case's behaviour
# is the worse of Autobahn's data and close verdicts) and every case that is not OK or
# INFORMATIONAL. Exits 1 on any FAILED, NON-STRICT or UNIMPLEMENTED case.
#
# autobahntestsuite is Python 2 code; make its venv once from Python 2.7 (pyenv's 2.7.18 here):
#   ~/.pyenv/versions/2.7.18/bin/python -m pip install 'virtualenv<20.22'
#   ~/.pyenv/versions/2.7.18/bin/python -m virtualenv /work/autobahn-venv
#   /work/autobahn-venv/bin/pip install autobahntestsuite
# Knobs: WSTEST (default: wstest on PATH, else /work/autobahn-venv/bin/wstest), PYTHON (python),
# CASES (comma-separated case patterns, default '*'), EXCLUDE (patterns), REPORTS (keep the HTML
# reports in this directory), SQUALL_ARGS (extra squall flags).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

PYTHON=${PYTHON:-python}
CASES=${CASES:-*}
EXCLUDE=${EXCLUDE:-}
WSTEST=${WSTEST:-$(command -v wstest || echo /work/autobahn-venv/bin/wstest)}
APP=bench.ws_app:echo

log() { printf '[autobahn] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

[[ -x $WSTEST ]] || die "wstest not found (set WSTEST=...; see the top of this script for the venv)"
"$PYTHON" -c 'import squall' 2>/dev/null || die "$PYTHON cannot import squall (pip install -e .)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/squall-autobahn.XXXXXX")
OUTDIR=${REPORTS:-$WORK/reports}
SERVER_PID=""

cleanup() {
    local rc=$?
    if [[ -n $SERVER_PID ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

# shellcheck disable=SC2086 # SQUALL_ARGS is a list of flags
"$PYTHON" -m squall "$APP" --host 127.0.0.1 --port 0 --no-access-log --log-level info \
    --ws-ping-interval off ${SQUALL_ARGS:-} 2>"$WORK/squall.log" &
SERVER_PID=$!
PORT=""
for ((i = 0; i < 300; i++)); do
    PORT=$(grep -o -m1 'running on http://127\.0\.0\.1:[0-9]*' "$WORK/squall.log" 2>/dev/null | grep -o '[0-9]*$' || true)
    [[ -n $PORT ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/squall.log" >&2; die "squall exited"; }
    sleep 0.1
done
[[ -n $PORT ]] || { cat "$WORK/squall.log" >&2; die "squall did not start"; }
VERSION=$("$PYTHON" -m squall --version)
log "$VERSION on port $PORT; cases: $CASES"

"$PYTHON" - "$WORK/spec.json" "$PORT" "$OUTDIR" "$CASES" "$EXCLUDE" <<'EOF'
import json, sys
path, port, outdir, cases, exclude = sys.argv[1:]
split = lambda text: [c.strip() for c in text.split(",") if c.strip()]
spec = {
    "outdir": outdir,
    "servers": [{"agent": "squall", "url": f"ws://127.0.0.1:{port}"}],
    "cases": split(cases),
    "exclude-cases": split(exclude),
    "exclude-agent-cases": {},
}
with open(path, "w") as f:
    json.dump(spec, f)
EOF

(cd "$WORK" && "$WSTEST" -m fuzzingclient -s "$WORK/spec.json") >"$WORK/wstest.log" 2>&1 ||
    { tail -n 30 "$WORK/wstest.log" >&2; die "wstest failed"; }

"$PYTHON" - "$OUTDIR/index.json" "$VERSION" <<'EOF'
import collections, json, sys
ORDER = ["OK", "INFORMATIONAL", "NON-STRICT", "UNIMPLEMENTED", "WRONG CODE", "UNCLEAN", "FAILED"]
rank = lambda b: ORDER.index(b) if b in ORDER else len(ORDER)
with open(sys.argv[1]) as f:
    results = json.load(f)["squall"]
key = lambda case: [int(part) for part in case.split(".")]
counts = collections.Counter()
bad = []
for case in sorted(results, key=key):
    r = results[case]
    verdict = max(r["behavior"], r["behaviorClose"], key=rank)
    counts[verdict] += 1
    if verdict not in ("OK", "INFORMATIONAL"):
        bad.append(f"  {case:<10} {verdict:<14} data {r['behavior']}, close {r['behaviorClose']}")
print(f"Autobahn fuzzingclient vs {sys.argv[2]}: {len(results)} cases")
for verdict in sorted(counts, key=rank):
    print(f"  {verdict:<14} {counts[verdict]}")
print("\n".join(bad) if bad else "  every case OK or INFORMATIONAL")
sys.exit(1 if bad else 0)
EOF
