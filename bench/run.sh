#!/usr/bin/env bash
# Benchmark squall against uvicorn (and optionally granian) with wrk.
# One command: `bash bench/run.sh`. See bench/README.md for the knobs.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

# ---------------------------------------------------------------- knobs
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-2}
WITH_GRANIAN=${WITH_GRANIAN:-0}
if [[ -z ${PYTHON:-} ]]; then
    # The active environment's python; Debian without a venv only has python3.
    PYTHON=python
    command -v python >/dev/null || PYTHON=python3
fi
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
READY_TIMEOUT=${READY_TIMEOUT:-30}
HELLO_CONNS=${HELLO_CONNS:-64}
BIG_CONNS=${BIG_CONNS:-16}
ECHO_CONNS=${ECHO_CONNS:-16}
RESULTS_MD=${RESULTS_MD:-$REPO_ROOT/bench/results.md}
KEEP_WORK=${KEEP_WORK:-0}
IDLE_WAIT=${IDLE_WAIT:-0}
default_servers="squall uvicorn"
if [[ $WITH_GRANIAN == 1 ]]; then
    default_servers+=" granian"
fi
SERVERS=${SERVERS:-$default_servers}

SCENARIOS=(hello big echo)
UVICORN_PIN="uvicorn[standard]==0.55.0"

# ---------------------------------------------------------------- helpers
log() { printf '[bench] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

is_posint() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
for knob in DURATION ROUNDS READY_TIMEOUT HELLO_CONNS BIG_CONNS ECHO_CONNS; do
    is_posint "${!knob}" || die "$knob must be a positive integer, got '${!knob}'"
done
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be a non-negative integer, got '$WARMUP'"
[[ $IDLE_WAIT =~ ^[0-9]+$ ]] || die "IDLE_WAIT must be a non-negative integer, got '$IDLE_WAIT'"
read -r -a SERVER_LIST <<<"$SERVERS"
((${#SERVER_LIST[@]} > 0)) || die "SERVERS is empty"
for s in "${SERVER_LIST[@]}"; do
    case $s in
        squall | uvicorn | granian) ;;
        *) die "unknown server '$s' in SERVERS (known: squall uvicorn granian)" ;;
    esac
done

PYTHON_BIN=$(command -v "$PYTHON") || die "python interpreter '$PYTHON' not found (set PYTHON=...)"

as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

has_server() {
    local s
    for s in "${SERVER_LIST[@]}"; do
        [[ $s == "$1" ]] && return 0
    done
    return 1
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/squall-bench.XXXXXX")
CURRENT_PID=""
WRK_PID=""

# Stop one server: SIGTERM, bounded grace period, then SIGKILL whatever is
# left of its process tree (granian forks workers). Only pids we started.
stop_server() {
    local pid=$1 p i
    [[ -n $pid ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        local tree=()
        mapfile -t tree < <("$PYTHON_BIN" bench/report.py tree "$pid" 2>/dev/null || echo "$pid")
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        for p in "${tree[@]}"; do
            kill -KILL "$p" 2>/dev/null || true
        done
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $WRK_PID ]]; then
        kill -TERM "$WRK_PID" 2>/dev/null || true
        wait "$WRK_PID" 2>/dev/null || true
    fi
    if [[ -n $CURRENT_PID ]]; then
        stop_server "$CURRENT_PID"
        CURRENT_PID=""
    fi
    if [[ $KEEP_WORK == 1 ]]; then
        log "raw wrk output and server logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT
trap 'log terminated; exit 143' TERM

# ---------------------------------------------------------------- installs
ensure_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v curl >/dev/null || missing+=(curl)
    command -v taskset >/dev/null || missing+=(util-linux)
    if ((${#missing[@]} > 0)); then
        log "installing ${missing[*]} with apt-get"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    local cpu
    for cpu in "$SERVER_CPU" "$WRK_CPU"; do
        taskset -c "$cpu" true 2>/dev/null || die "cannot pin to CPU $cpu (machine has $(nproc) CPUs; set SERVER_CPU/WRK_CPU)"
    done
    [[ $SERVER_CPU != "$WRK_CPU" ]] || log "warning: server and wrk share CPU $SERVER_CPU"
}

SKIPPED=()     # servers skipped, with the reason in SKIP_REASON[server]
declare -A SKIP_REASON=()
skip_server() {
    SKIPPED+=("$1")
    SKIP_REASON[$1]=$2
    log "NOTE: skipping $1: $2"
}
is_skipped() {
    local s
    for s in "${SKIPPED[@]}"; do
        [[ $s == "$1" ]] && return 0
    done
    return 1
}

ensure_uvicorn() {
    if ! "$PYTHON_BIN" -c 'import sys, uvicorn, httptools, uvloop; sys.exit(uvicorn.__version__ != "0.55.0")' 2>/dev/null; then
        log "installing $UVICORN_PIN"
        "$PYTHON_BIN" -m pip install -q "$UVICORN_PIN" ||
            die "pip install $UVICORN_PIN failed"
    fi
}

ensure_squall() {
    # Check from outside the repo so an uninstalled ./squall does not count.
    if ! (cd / && "$PYTHON_BIN" -c 'import squall') 2>/dev/null; then
        if [[ -f pyproject.toml || -f setup.py ]]; then
            log "installing squall from the repo (pip install -e .)"
            "$PYTHON_BIN" -m pip install -q -e "$REPO_ROOT" ||
                log "warning: pip install -e . failed"
        else
            log "squall is not pip-installed and the repo has no pyproject.toml/setup.py; using the checkout as is"
        fi
    fi
    if ! "$PYTHON_BIN" -m squall --version >"$WORK/squall-version" 2>&1; then
        skip_server squall "'python -m squall --version' failed: $(tr '\n' ' ' <"$WORK/squall-version" | head -c 300 | sed 's/ *$//')"
    fi
}

GRANIAN_BIN=""
ensure_granian() {
    if ! "$PYTHON_BIN" -c 'import granian' 2>/dev/null; then
        log "installing granian (optional peer)"
        if ! "$PYTHON_BIN" -m pip install -q granian; then
            skip_server granian "pip install granian failed"
            return 0
        fi
    fi
    GRANIAN_BIN=$(dirname "$PYTHON_BIN")/granian
    [[ -x $GRANIAN_BIN ]] || GRANIAN_BIN=$(command -v granian || true)
    if [[ -z $GRANIAN_BIN ]] || ! "$GRANIAN_BIN" --version >/dev/null 2>&1; then
        skip_server granian "granian executable not usable"
    fi
}

# ---------------------------------------------------------------- servers
# Fill CMD with the command line of server $1 serving bench.apps:$2 on port $3.
server_cmd() {
    local server=$1 app=bench.apps:$2 port=$3
    case $server in
        squall)
            CMD=("$PYTHON_BIN" -m squall "$app" --host 127.0.0.1 --port "$port"
                --no-access-log --log-level warning) ;;
        uvicorn)
            CMD=("$PYTHON_BIN" -m uvicorn "$app" --host 127.0.0.1 --port "$port"
                --loop uvloop --http httptools --no-access-log --log-level warning) ;;
        granian)
            CMD=("$GRANIAN_BIN" --interface asgi --workers 1 --host 127.0.0.1
                --port "$port" "$app") ;;
    esac
}

show_log() {
    [[ -s $1 ]] || return 0
    log "last lines of $1:"
    tail -n 20 "$1" | sed 's/^/    /' >&2
}

# Start server $1 with app $2 on a free port, pinned to SERVER_CPU, and wait
# until it answers HTTP. Sets CURRENT_PID and PORT. Returns 1 on failure.
start_server() {
    local server=$1 app=$2
    SERVER_LOG=$WORK/$server-$app.log
    PORT=$("$PYTHON_BIN" bench/report.py freeport)
    server_cmd "$server" "$app" "$PORT"
    taskset -c "$SERVER_CPU" "${CMD[@]}" >"$SERVER_LOG" 2>&1 &
    CURRENT_PID=$!
    local deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$CURRENT_PID" 2>/dev/null; then
            wait "$CURRENT_PID" 2>/dev/null || true
            CURRENT_PID=""
            FAIL_NOTE="exited during startup"
            show_log "$SERVER_LOG"
            return 1
        fi
        if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/"; then
            return 0
        fi
        sleep 0.1
    done
    FAIL_NOTE="not ready within ${READY_TIMEOUT}s"
    show_log "$SERVER_LOG"
    stop_server "$CURRENT_PID"
    CURRENT_PID=""
    return 1
}

# Check one response of scenario $1 on PORT is correct before benchmarking.
check_response() {
    local scenario=$1 url="http://127.0.0.1:$PORT/" out=$WORK/check.out code
    local curl_args=(-s --max-time 10 -o "$out" -w '%{http_code}')
    case $scenario in
        hello) code=$(curl "${curl_args[@]}" "$url") || code=curl-failed ;;
        big) code=$(curl "${curl_args[@]}" "$url") || code=curl-failed ;;
        echo)
            code=$(curl "${curl_args[@]}" -H 'Expect:' -H 'Content-Type: application/octet-stream' \
                --data-binary "@$WORK/post.bin" "$url") || code=curl-failed ;;
    esac
    if [[ $code != 200 ]]; then
        FAIL_NOTE="sanity request got status $code"
        return 1
    fi
    local expected
    case $scenario in
        hello) expected=$WORK/hello.bin ;;
        big) expected=$WORK/big.bin ;;
        echo) expected=$WORK/post.bin ;;
    esac
    if ! cmp -s "$out" "$expected"; then
        FAIL_NOTE="sanity request got a wrong body ($(wc -c <"$out") bytes)"
        return 1
    fi
}

conns_for() {
    case $1 in
        hello) echo "$HELLO_CONNS" ;;
        big) echo "$BIG_CONNS" ;;
        echo) echo "$ECHO_CONNS" ;;
    esac
}

# Fill WRK_CMD for scenario $1 with duration $2 (seconds) against PORT.
wrk_cmd() {
    WRK_CMD=(taskset -c "$WRK_CPU" wrk -t1 "-c$(conns_for "$1")" "-d${2}s" --latency)
    if [[ $1 == echo ]]; then
        WRK_CMD+=(-s bench/post_1mib.lua)
    fi
    WRK_CMD+=("http://127.0.0.1:$PORT/")
}

# Run WRK_CMD with output to $1. wrk runs in the background and is waited
# for, so INT/TERM reach our trap at once instead of after the round.
run_wrk() {
    local rc=0
    "${WRK_CMD[@]}" >"$1" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    return "$rc"
}

# With IDLE_WAIT > 0, wait up to that many seconds until the CPUs are at most
# 10% busy (our server is idle between rounds, so this is other load).
wait_idle() {
    ((IDLE_WAIT > 0)) || return 0
    local start=$SECONDS busy waited=0
    while busy=$("$PYTHON_BIN" bench/report.py cpubusy) && ((busy > 10)); do
        if ((SECONDS - start >= IDLE_WAIT)); then
            log "machine still ${busy}% busy after ${IDLE_WAIT}s; measuring anyway"
            return 0
        fi
        ((waited)) || log "waiting up to ${IDLE_WAIT}s for an idle machine (CPUs ${busy}% busy)"
        waited=1
    done
    ((!waited)) || log "machine idle after $((SECONDS - start))s"
}

# Shell-quote each argument (single quotes only where needed), space-joined.
quote() {
    local arg sep=""
    for arg in "$@"; do
        if [[ $arg =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
            printf '%s%s' "$sep" "$arg"
        else
            printf "%s'%s'" "$sep" "${arg//\'/\'\\\'\'}"
        fi
        sep=" "
    done
}

# The knobs that reproduce this run: the main ones always, the rest if changed.
knob_assignments() {
    local knobs=("DURATION=$DURATION" "ROUNDS=$ROUNDS" "WARMUP=$WARMUP" "SERVERS=$SERVERS")
    [[ $PYTHON == python || $PYTHON == python3 ]] || knobs+=("PYTHON=$PYTHON")
    [[ $SERVER_CPU == 0 ]] || knobs+=("SERVER_CPU=$SERVER_CPU")
    [[ $WRK_CPU == 1 ]] || knobs+=("WRK_CPU=$WRK_CPU")
    [[ $HELLO_CONNS == 64 ]] || knobs+=("HELLO_CONNS=$HELLO_CONNS")
    [[ $BIG_CONNS == 16 ]] || knobs+=("BIG_CONNS=$BIG_CONNS")
    [[ $ECHO_CONNS == 16 ]] || knobs+=("ECHO_CONNS=$ECHO_CONNS")
    [[ $IDLE_WAIT == 0 ]] || knobs+=("IDLE_WAIT=$IDLE_WAIT")
    local a
    for a in "${knobs[@]}"; do
        printf '%s=%s ' "${a%%=*}" "$(quote "${a#*=}")"
    done
}

# ---------------------------------------------------------------- main
# Other load on the 2 cores skews everything: measure it for one second.
CPU_BUSY_START=$("$PYTHON_BIN" bench/report.py cpubusy)
BUSY_NOTE=""
if ((CPU_BUSY_START > 10)); then
    BUSY_NOTE="warning: machine was not idle at start (CPUs ${CPU_BUSY_START}% busy); numbers are noisy"
    log "$BUSY_NOTE"
fi
ensure_tools
for s in "${SERVER_LIST[@]}"; do
    case $s in
        uvicorn) ensure_uvicorn ;;
        squall) ensure_squall ;;
        granian) ensure_granian ;;
    esac
done

# Expected bodies for the sanity checks, from the same source as the apps.
printf 'Hello, world!' >"$WORK/hello.bin"
"$PYTHON_BIN" -c 'import sys; from bench.apps import BIG_BODY; sys.stdout.buffer.write(BIG_BODY)' >"$WORK/big.bin"
"$PYTHON_BIN" -c 'import sys; sys.stdout.buffer.write(b"a" * 1048576)' >"$WORK/post.bin"

RESULTS_TSV=$WORK/results.tsv  # server scenario round rps p99_ms non2xx socket_errors foreign_cpu_pct
STATUS_TSV=$WORK/status.tsv    # server scenario status note
RSS_TSV=$WORK/rss.tsv          # server kib nprocs max_kib
: >"$RESULTS_TSV"
: >"$STATUS_TSV"
: >"$RSS_TSV"
FAILED=0

for scenario in "${SCENARIOS[@]}"; do
    for server in "${SERVER_LIST[@]}"; do
        if is_skipped "$server"; then
            printf '%s\t%s\tskipped\t%s\n' "$server" "$scenario" "${SKIP_REASON[$server]}" >>"$STATUS_TSV"
            continue
        fi
        log "$scenario: $server: starting"
        FAIL_NOTE=""
        if ! start_server "$server" "$scenario"; then
            log "$scenario: $server: FAILED: $FAIL_NOTE"
            printf '%s\t%s\tfail\t%s\n' "$server" "$scenario" "$FAIL_NOTE" >>"$STATUS_TSV"
            FAILED=1
            continue
        fi
        ok=1
        if ! check_response "$scenario"; then
            ok=0
        fi
        if ((ok)) && ((WARMUP > 0)); then
            wrk_cmd "$scenario" "$WARMUP"
            run_wrk "$WORK/$server-$scenario-warmup.txt" || true
        fi
        for ((round = 1; ok && round <= ROUNDS; round++)); do
            out=$WORK/$server-$scenario-$round.txt
            wrk_cmd "$scenario" "$DURATION"
            wait_idle
            snap_before=$("$PYTHON_BIN" bench/report.py cpusnap "$$")
            if ! run_wrk "$out"; then
                FAIL_NOTE="wrk failed in round $round"
                show_log "$out"
                ok=0
                break
            fi
            if ! parsed=$("$PYTHON_BIN" bench/report.py parse "$out"); then
                FAIL_NOTE="could not parse wrk output of round $round"
                show_log "$out"
                ok=0
                break
            fi
            foreign=$("$PYTHON_BIN" bench/report.py cpuforeign "$snap_before" \
                "$("$PYTHON_BIN" bench/report.py cpusnap "$$")")
            printf '%s\t%s\t%s\t%s\t%s\n' "$server" "$scenario" "$round" "$parsed" "$foreign" >>"$RESULTS_TSV"
            IFS=$'\t' read -r rps p99 non2xx sockerr <<<"$parsed"
            log "$scenario: $server: round $round: $rps req/s, p99 $p99 ms, non-2xx $non2xx," \
                "socket errors $sockerr, other processes' CPU ${foreign}% of a core"
        done
        if ((ok)) && ! kill -0 "$CURRENT_PID" 2>/dev/null; then
            FAIL_NOTE="server died during the benchmark"
            ok=0
        fi
        if ((ok)) && [[ $scenario == hello ]]; then
            read -r kib nprocs max_kib < <("$PYTHON_BIN" bench/report.py rss "$CURRENT_PID")
            printf '%s\t%s\t%s\t%s\n' "$server" "$kib" "$nprocs" "$max_kib" >>"$RSS_TSV"
            log "$scenario: $server: RSS $kib KiB in $nprocs process(es), largest $max_kib KiB"
        fi
        stop_server "$CURRENT_PID"
        CURRENT_PID=""
        if ((ok)); then
            printf '%s\t%s\tok\t\n' "$server" "$scenario" >>"$STATUS_TSV"
        else
            log "$scenario: $server: FAILED: $FAIL_NOTE"
            show_log "$SERVER_LOG"
            printf '%s\t%s\tfail\t%s\n' "$server" "$scenario" "$FAIL_NOTE" >>"$STATUS_TSV"
            FAILED=1
        fi
    done
done

# ---------------------------------------------------------------- report
pkg_version() {
    "$PYTHON_BIN" -c 'import importlib.metadata as m, sys
try:
    print(m.version(sys.argv[1]))
except m.PackageNotFoundError:
    print("not installed")' "$1" 2>/dev/null || echo "unknown"
}

{
    echo "Command: \`$(knob_assignments)bash bench/run.sh\`"
    echo
    echo "Server and load-generator command lines (PORT is a free port picked per run):"
    echo
    for server in "${SERVER_LIST[@]}"; do
        is_skipped "$server" && continue
        server_cmd "$server" hello PORT
        echo "- $server: \`$(quote taskset -c "$SERVER_CPU" "${CMD[@]}")\` (app hello/big/echo per scenario)"
    done
    PORT=PORT
    for scenario in "${SCENARIOS[@]}"; do
        wrk_cmd "$scenario" "$DURATION"
        echo "- wrk $scenario: \`$(quote "${WRK_CMD[@]}")\`"
    done
    echo
    echo "Environment: $(date -u +%Y-%m-%dT%H:%MZ), $(uname -sr), $(nproc) CPUs" \
        "($(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || echo unknown CPU)), CPUs ${CPU_BUSY_START}% busy at start"
    echo "Versions: python $("$PYTHON_BIN" -c 'import platform; print(platform.python_version())')," \
        "$(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)," \
        "uvicorn $(pkg_version uvicorn), httptools $(pkg_version httptools), uvloop $(pkg_version uvloop)"
    if has_server squall; then
        if is_skipped squall; then
            echo "squall: skipped: ${SKIP_REASON[squall]}"
        else
            echo "squall: $(head -n1 "$WORK/squall-version")"
        fi
    fi
    if has_server granian; then
        if is_skipped granian; then
            echo "granian: skipped: ${SKIP_REASON[granian]}"
        else
            echo "granian: $("$GRANIAN_BIN" --version 2>&1 | head -n1)"
        fi
    fi
    if [[ -n $BUSY_NOTE ]]; then
        echo
        echo "**${BUSY_NOTE^}.**"
    fi
} >"$WORK/meta.md"

"$PYTHON_BIN" bench/report.py table --results "$RESULTS_TSV" --status "$STATUS_TSV" \
    --rss "$RSS_TSV" --servers "$SERVERS" --meta "$WORK/meta.md" >"$WORK/report.md"
cp "$WORK/report.md" "$RESULTS_MD"
echo
cat "$WORK/report.md"
echo
log "report written to $RESULTS_MD"
if ((FAILED)); then
    log "some runs FAILED (see the errors column and notes)"
    exit 1
fi
