#!/usr/bin/env bash
# Cache misses per request of the in-process HTTP/1.1 harness under cachegrind's cache model:
# what grows with the number of connections when instructions per request do not. The model's
# last level is set to this machine's per-core L2 (1 MiB, 16-way), so a miss there is a trip to
# the shared L3 or memory. A run of N requests minus a run of none, divided by N; repeatable on a
# busy machine, like bench/instructions.sh.
#   bash bench/cache_misses.sh                      # hello at 64, 256 and 1,024 connections
#   CONNS="256" N=8192 bash bench/cache_misses.sh
#   L2=2097152 bash bench/cache_misses.sh           # a 2 MiB L2
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python}
N=${N:-4096}
CONNS=${CONNS:-64 256 1024}
L2=${L2:-1048576}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
summary() { # requests conns -> "Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw"
    local out
    out=$(mktemp)
    valgrind --tool=cachegrind --cache-sim=yes --LL="$L2,16,64" --cachegrind-out-file="$out" \
        "$PYTHON" bench/h1_profile.py -n "$1" -c "$2" >/dev/null 2>&1
    sed -n 's/^summary: //p' "$out"
    rm -f "$out"
}
"$PYTHON" -m squall --version
printf '| connections | instructions/request | L1 data misses/request | L2 misses/request |\n|---:|---:|---:|---:|\n'
for conns in $CONNS; do
    base=$(summary 0 "$conns")
    full=$(summary "$N" "$conns")
    paste <(tr ' ' '\n' <<<"$base") <(tr ' ' '\n' <<<"$full") | awk -v n="$N" -v c="$conns" '
        { d[NR] = ($2 - $1) / n }
        END { printf "| %s | %.1fk | %.0f | %.1f |\n", c, d[1] / 1000, d[5] + d[8], d[6] + d[9] }'
done
