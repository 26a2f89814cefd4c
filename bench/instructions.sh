#!/usr/bin/env bash
# Instructions per request of the in-process harnesses under callgrind (repeatable on a busy
# machine): for each harness and app, a run of N requests minus a run of none, divided by N.
#   bash bench/instructions.sh                 # hello and stream, HTTP/1.1 and HTTP/2
#   APPS="hello" N=1000 bash bench/instructions.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python}
N=${N:-2000}
APPS=${APPS:-hello stream}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
count() { # harness args... -> total instructions
    local out
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$PYTHON" "$@" >/dev/null 2>&1
    awk '/^summary:/ {print $2}' "$out"
    rm -f "$out"
}
"$PYTHON" -m squall --version
printf '| harness | app | instructions/request | writes/request |\n|---|---|---:|---:|\n'
for harness in h1 h2; do
    for app in $APPS; do
        base=$(count "bench/${harness}_profile.py" -n 0 --app "$app")
        full=$(count "bench/${harness}_profile.py" -n "$N" --app "$app")
        writes=$("$PYTHON" "bench/${harness}_profile.py" -n "$N" --app "$app" | sed -E 's/.* ([0-9]+) writes.*/\1/')
        printf '| %s | %s | %.1fk | %s |\n' "$harness" "$app" "$(echo "($full - $base) / $N / 1000" | bc -l)" \
            "$(echo "$writes / $N" | bc -l | sed -E 's/0+$//; s/\.$//')"
    done
done
