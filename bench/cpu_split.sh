#!/usr/bin/env bash
# CPU time per request of any server command under wrk, split into user and system time, with
# minor page faults: for interleaved A/B runs of two builds (the figures in the README's
# "What closed the gap" paragraph came from this). Server on core 0, wrk on core 1.
#   bash bench/cpu_split.sh 64 5 -- python -m squall bench.apps:hello --no-access-log
#   URLPATH=/json bash bench/cpu_split.sh 64 5 -- python -m squall bench.framework_apps:starlette_app
# A build in another checkout: run it from there (``python -m`` puts the working directory first).
set -uo pipefail
conns=$1
duration=$2
shift 3 # CONNS DURATION --
port=${PORT:-8799}
url="http://127.0.0.1:$port${URLPATH:-/}"
taskset -c 0 "$@" --port "$port" >/tmp/cpu_split.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "$url" && break; sleep 0.05; done
cpu() { # user ticks, system ticks, minor faults of the server and its children
    local p
    for p in $pid $(pgrep -P $pid); do awk '{print $14, $15, $10}' "/proc/$p/stat"; done |
        awk '{u += $1; s += $2; f += $3} END {print u, s, f}'
}
taskset -c 1 wrk -t1 -c"$conns" -d1s "$url" >/dev/null # warm-up
read -r u0 s0 f0 < <(cpu)
out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${duration}s" "$url")
read -r u1 s1 f1 < <(cpu)
requests=$(echo "$out" | awk '/requests in/ {print $1}')
rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
tick=$(getconf CLK_TCK)
per() { echo "($1) * 1000000 / $tick / $requests" | bc -l | xargs printf '%.2f'; }
echo "conns=$conns rps=$rps user_us=$(per "$u1 - $u0") sys_us=$(per "$s1 - $s0")" \
    "faults_per_kreq=$(echo "($f1 - $f0) * 1000 / $requests" | bc -l | xargs printf '%.3f')"
