#!/usr/bin/env bash
# The end-to-end benchmark: one command, the whole table of docs/PERFORMANCE.md.
#
#   bash benches/run.sh
#
# Builds the release binaries, installs the Python MCP SDK into a venv under
# target/, then runs (all on 127.0.0.1, on free ports, every proxy started and
# stopped by this script):
#   1. warm pool vs spawn-per-request (--max-uses 1 --min-idle 0), fixture and
#      Python `mcp` server, at concurrency 1 / 8 / 64;
#   2. the seed's check: 100 sequential requests, before vs after;
#   3. raw stdio round trips to the fixture vs the same through the proxy, the
#      HTTP floor (`stdiopool-load floor`: the proxy's HTTP stack answering
#      from memory) and the pipe floor (`floor --processes N -- fixture`: HTTP
#      plus one pipe round trip per request, the least forwarder) at the same
#      concurrencies;
#   4. pooled mode, pool sizes 1 / 2 / 4 x concurrency 1 / 8 / 64; session
#      mode with 64 sessions;
#   5. proxy RSS idle and with 1,000 open sessions; fds and children before
#      and after serving many requests.
# Writes target/bench-results/{results.json,results.md,runs/*.json,logs/},
# docs/perf-throughput.svg, and the generated block of docs/PERFORMANCE.md.
# Every HTTP run also records the server's own CPU time (utime + stime from
# /proc/PID/stat, before and after the run) in target/bench-results/cpu/.
#
# Knobs: BENCH_SCALE (default 1; 0.1 for a quick smoke run: fewer requests,
# and the results are not written into docs/ unless BENCH_WRITE_DOCS=1),
# BENCH_PY_SEQ (spawn-per-request Python requests at concurrency 1, default 100).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SCALE=${BENCH_SCALE:-1}
OUT=$ROOT/target/bench-results
RUNS=$OUT/runs
LOGS=$OUT/logs
VENV=$ROOT/target/bench-venv
MCP_PIN=2.3.0
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release

PROXY_PID=""
cleanup() {
    if [[ -n "$PROXY_PID" ]] && kill -0 "$PROXY_PID" 2>/dev/null; then
        kill -TERM "$PROXY_PID" 2>/dev/null || true
        wait "$PROXY_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*"; }
scaled() { python3 -c "import sys; print(max(int(sys.argv[2]), int(float(sys.argv[1]) * int(sys.argv[3]))))" "$SCALE" "$1" "$2"; }  # scaled MIN N

for tool in cargo python3 curl pgrep awk; do
    command -v "$tool" >/dev/null || { echo "benches/run.sh needs $tool on PATH" >&2; exit 1; }
done

say "build (release)"
cargo build --release --bins

say "Python MCP SDK (mcp==$MCP_PIN) in $VENV"
if ! "$VENV/bin/python" -c "import mcp, importlib.metadata as m; assert m.version('mcp') == '$MCP_PIN'" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "mcp==$MCP_PIN"
fi
PY_SERVER=("$VENV/bin/python" "$ROOT/benches/py_echo_server.py")
FIXTURE=("$BIN/stdiopool-fixture")

rm -rf "$RUNS" "$LOGS" "$OUT/cpu"
mkdir -p "$RUNS" "$LOGS"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_proxy NAME [proxy options] -- COMMAND...
start_proxy() {
    local name=$1
    shift
    local port
    port=$(free_port)
    # --drain-delay 0: SIGTERM stops at once (the 5 s default, for load
    # balancers, would only add idle time between runs).
    "$BIN/stdiopool" --listen "127.0.0.1:$port" --log-filter warn \
        --wait-timeout 600s --request-timeout 600s --shutdown-grace 2s --drain-delay 0 \
        "$@" 2>"$LOGS/proxy-$name.log" >/dev/null &
    PROXY_PID=$!
    wait_ready "$name" "$port"
}

# start_floor NAME [ARGS...]: the HTTP floor (or, with `--processes N --
# CMD`, the pipe floor), started and stopped like a proxy.
start_floor() {
    local name=$1
    shift
    local port
    port=$(free_port)
    "$BIN/stdiopool-load" floor --listen "127.0.0.1:$port" "$@" 2>"$LOGS/proxy-$name.log" >/dev/null &
    PROXY_PID=$!
    wait_ready "$name" "$port"
}

wait_ready() { # NAME PORT
    local name=$1 port=$2
    PROXY_URL="http://127.0.0.1:$port/mcp"
    PROXY_BASE="http://127.0.0.1:$port"
    local i
    for i in $(seq 1 600); do
        if curl -sf "$PROXY_BASE/readyz" >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$PROXY_PID" 2>/dev/null; then
            echo "proxy $name exited at start; see $LOGS/proxy-$name.log" >&2
            cat "$LOGS/proxy-$name.log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "proxy $name not ready after 60 s" >&2
    return 1
}

stop_proxy() {
    kill -TERM "$PROXY_PID"
    wait "$PROXY_PID" || true
    PROXY_PID=""
}

# load LABEL http|stdio [loadgen options...]
load() {
    local label=$1 target=$2
    shift 2
    "$BIN/stdiopool-load" "$target" --label "$label" --json-out "$RUNS/$label.json" "$@"
}

# CPU time (utime + stime, in clock ticks) the process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)

http_load() { # LABEL [options]; records the server's CPU time over the run
    local label=$1
    shift
    local before after
    before=$(cpu_ticks "$PROXY_PID")
    load "$label" http --url "$PROXY_URL" "$@"
    after=$(cpu_ticks "$PROXY_PID")
    mkdir -p "$OUT/cpu"
    printf '{"label": "%s", "cpu_ticks": %s, "clk_tck": %s}\n' \
        "$label" "$((after - before))" "$CLK_TCK" >"$OUT/cpu/$label.json"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }
child_count() { (pgrep -P "$1" || true) | wc -l; }
metric() { curl -sf "$PROXY_BASE/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

N_FAST=$(scaled 200 20000)      # requests per warm-pool run with the fixture
N_RAW=$(scaled 500 50000)       # requests per raw stdio run
N_PY=$(scaled 100 3000)         # requests per warm-pool run with Python
N_SPR=$(scaled 50 2000)         # spawn-per-request runs with the fixture
PY_SEQ=${BENCH_PY_SEQ:-$(scaled 10 100)}
CAP=(--duration 8s)             # time bound of each run
WARM=(--warmup "$(scaled 20 200)")

say "1+4. pooled mode, fixture: pool size x concurrency"
for ps in 1 2 4; do
    start_proxy "fixture-pooled-ps$ps" --pool-size "$ps" --min-idle "$ps" --demo
    for c in 1 8 64; do
        http_load "fixture-pooled-ps$ps-c$c" --concurrency "$c" --requests "$N_FAST" "${CAP[@]}" "${WARM[@]}"
    done
    if [[ $ps == 2 ]]; then
        http_load "fixture-pooled-seq100" --concurrency 1 --requests 100
    fi
    stop_proxy
done

say "1. spawn-per-request (max uses 1, min idle 0), fixture"
start_proxy fixture-spr --pool-size 2 --max-uses 1 --min-idle 0 --demo
for c in 1 8 64; do
    http_load "fixture-spr-c$c" --concurrency "$c" --requests "$N_SPR" --duration 20s
done
http_load "fixture-spr-seq100" --concurrency 1 --requests 100
stop_proxy

say "1. warm pool, Python mcp server"
start_proxy py-pooled --pool-size 2 --min-idle 2 -- "${PY_SERVER[@]}"
for c in 1 8 64; do
    http_load "py-pooled-c$c" --concurrency "$c" --requests "$N_PY" "${CAP[@]}" "${WARM[@]}"
done
http_load "py-pooled-seq100" --concurrency 1 --requests 100
stop_proxy

say "1+2. spawn-per-request, Python mcp server (slow: every request starts Python)"
start_proxy py-spr --pool-size 2 --max-uses 1 --min-idle 0 -- "${PY_SERVER[@]}"
http_load "py-spr-seq100" --concurrency 1 --requests "$PY_SEQ" --duration 300s --timeout 300s
http_load "py-spr-c8" --concurrency 8 --requests "$(scaled 8 24)" --duration 300s --timeout 300s
http_load "py-spr-c64" --concurrency 64 --requests "$(scaled 4 64)" --duration 300s --timeout 600s
stop_proxy

say "3. raw stdio to the fixture (no HTTP)"
for c in 1 8 64; do
    load "raw-stdio-c$c" stdio --concurrency "$c" --requests "$N_RAW" "${CAP[@]}" "${WARM[@]}" -- "${FIXTURE[@]}"
done

say "3. the HTTP floor: the proxy's HTTP stack answering from memory"
start_floor floor
for c in 1 8 64; do
    http_load "floor-c$c" --concurrency "$c" --requests "$N_RAW" "${CAP[@]}" "${WARM[@]}"
done
stop_proxy

say "3. the pipe floor: HTTP plus one pipe round trip to a warm fixture, nothing else"
start_floor pipe-floor-ps1 --processes 1 -- "${FIXTURE[@]}"
http_load "pipe-floor-ps1-c1" --concurrency 1 --requests "$N_RAW" "${CAP[@]}" "${WARM[@]}"
stop_proxy
start_floor pipe-floor-ps2 --processes 2 -- "${FIXTURE[@]}"
for c in 1 8 64; do
    http_load "pipe-floor-ps2-c$c" --concurrency "$c" --requests "$N_RAW" "${CAP[@]}" "${WARM[@]}"
done
stop_proxy

say "4. session mode, 64 sessions (one process each)"
start_proxy fixture-session --mode session --pool-size 64 --min-idle 64 --demo
http_load "fixture-session-c64" --sessions per-client --concurrency 64 --requests "$N_FAST" "${CAP[@]}" "${WARM[@]}"
stop_proxy

say "5. resources: RSS, fds, children (pooled, pool size 2)"
start_proxy resources --pool-size 2 --min-idle 2 --demo
PID=$PROXY_PID
sleep 1
RSS_IDLE=$(rss_kib "$PID")
FDS_IDLE=$(fd_count "$PID")
KIDS_IDLE=$(child_count "$PID")
# Sessions first, so their memory is not hidden in what the load phase freed.
http_load resources-sessions --open-sessions 1000 --keep-sessions --concurrency 8 --requests 1000
sleep 1
RSS_SESSIONS=$(rss_kib "$PID")
FDS_SESSIONS=$(fd_count "$PID")
SESSIONS_OPEN=$(metric stdiopool_sessions)
N_LEAK=$(scaled 1000 100000)
http_load resources-load --concurrency 64 --requests "$N_LEAK" --duration 60s
sleep 1
RSS_AFTER_LOAD=$(rss_kib "$PID")
FDS_AFTER_LOAD=$(fd_count "$PID")
KIDS_AFTER_LOAD=$(child_count "$PID")
ZOMBIES=$(metric stdiopool_zombies)
CHILD_RSS=0
for k in $(pgrep -P "$PID" || true); do
    CHILD_RSS=$((CHILD_RSS + $(rss_kib "$k")))
done
stop_proxy
cat >"$OUT/resources.json" <<EOF
{
  "pool_size": 2,
  "rss_idle_kib": $RSS_IDLE,
  "rss_after_load_kib": $RSS_AFTER_LOAD,
  "rss_with_sessions_kib": $RSS_SESSIONS,
  "sessions_open": ${SESSIONS_OPEN:-0},
  "fds_idle": $FDS_IDLE,
  "fds_after_load": $FDS_AFTER_LOAD,
  "fds_with_sessions": $FDS_SESSIONS,
  "children_idle": $KIDS_IDLE,
  "children_after_load": $KIDS_AFTER_LOAD,
  "requests_served_between": $N_LEAK,
  "zombies": ${ZOMBIES:-0},
  "children_rss_kib": $CHILD_RSS
}
EOF
cat "$OUT/resources.json"

say "report"
cat >"$OUT/run-info.json" <<EOF
{
  "date_utc": "$(date -u '+%Y-%m-%d %H:%M UTC')",
  "commit": "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo '+changes')",
  "load_avg_1_5_15": "$(awk '{print $1 " / " $2 " / " $3}' /proc/loadavg)"
}
EOF
WRITE_DOCS=1
if [[ "$SCALE" != 1 && "${BENCH_WRITE_DOCS:-0}" != 1 ]]; then WRITE_DOCS=0; fi
python3 "$ROOT/benches/report.py" --results "$OUT" --write-docs "$WRITE_DOCS" --scale "$SCALE"
