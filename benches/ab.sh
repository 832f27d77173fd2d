#!/usr/bin/env bash
# A quick A/B of two builds on the pooled path: throughput, latency, the
# server's CPU time and context switches per request.
#
#   bash benches/ab.sh DIR_A DIR_B [ROUNDS]
#
# DIR_A and DIR_B each hold release binaries `stdiopool`, `stdiopool-load`
# and `stdiopool-fixture`
# (copy target/release/ aside after each build). For each round, and each
# build in turn (interleaved, so a change in the machine's load hits both),
# it runs the HTTP floor at concurrency 8, the pipe floor (`floor
# --processes PS -- stdiopool-fixture`, the least HTTP-to-stdio forwarder:
# HTTP plus one pipe round trip, nothing else) at pool 1 x c 1 and pool 2 x
# c 8, then the proxy (`--pool-size PS
# --min-idle PS --demo --drain-delay 0`, fixture) at pool 1 x c 1/8 and pool
# 2 x c 1/8/64, 20,000 requests + 200 warm-up each (`--duration 8s`), and
# prints req/s, p50, p99, the server's CPU per request (utime + stime from
# /proc over the run ÷ requests, and the utime part alone) and its context
# switches per request
# (voluntary + involuntary, all threads). Everything binds 127.0.0.1 on free
# ports; every server started is stopped. On a shared 2-core machine these
# figures move ±20 % between runs: compare rounds, not single runs, and see
# benches/instructions.sh for a figure the load does not move.
set -uo pipefail
A=$1
B=$2
ROUNDS=${3:-2}
N=20000
TCK=$(getconf CLK_TCK)
PID=""
trap '[[ -n "$PID" ]] && kill "$PID" 2>/dev/null; true' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
user_ticks() { awk '{print $14}' "/proc/$1/stat"; }
sys_ticks() { awk '{print $15}' "/proc/$1/stat"; }
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s}'; }
wait_ready() {
    local i
    for i in $(seq 1 300); do
        curl -sf "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# run BIN NAME PORT CONCURRENCY
run() {
    local bin=$1 name=$2 port=$3 c=$4 out
    out=$(mktemp)
    local u0 s0 sw0 u1 s1 sw1
    u0=$(user_ticks "$PID")
    s0=$(sys_ticks "$PID")
    sw0=$(switches "$PID")
    "$bin/stdiopool-load" http --url "http://127.0.0.1:$port/mcp" --concurrency "$c" \
        --requests "$N" --duration 8s --warmup 200 --json-out "$out" >/dev/null 2>&1
    u1=$(user_ticks "$PID")
    s1=$(sys_ticks "$PID")
    sw1=$(switches "$PID")
    python3 - "$name" "$out" $((u1 - u0)) $((s1 - s0)) "$TCK" $((sw1 - sw0)) <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
user, system, tck, sw = (int(a) for a in sys.argv[3:7])
d = json.load(open(path))
n = d["ok"] + d["errors"] + d["warmup"]
us = lambda ticks: ticks / tck / n * 1e6
print(f'  {name:11s} {d["rps"]:8.0f} req/s  p50 {d["p50_us"]:6.0f} us  p99 {d["p99_us"]:6.0f} us  '
      f'cpu/req {us(user + system):6.1f} us (user {us(user):5.1f})  switches/req {sw / n:4.2f}  errors {d["errors"]}')
PY
    rm -f "$out"
}

for round in $(seq 1 "$ROUNDS"); do
    for bin in "$A" "$B"; do
        echo "== round $round: $bin"
        port=$(free_port)
        "$bin/stdiopool-load" floor --listen "127.0.0.1:$port" >/dev/null 2>&1 &
        PID=$!
        wait_ready "$port" && run "$bin" floor-c8 "$port" 8
        kill "$PID"; wait "$PID" 2>/dev/null; PID=""
        for ps in 1 2; do
            port=$(free_port)
            "$bin/stdiopool-load" floor --listen "127.0.0.1:$port" --processes "$ps" \
                -- "$bin/stdiopool-fixture" >/dev/null 2>&1 &
            PID=$!
            c=1
            [[ $ps == 2 ]] && c=8
            wait_ready "$port" && run "$bin" "pipe$ps-c$c" "$port" "$c"
            kill "$PID"; wait "$PID" 2>/dev/null; PID=""
        done
        for ps in 1 2; do
            port=$(free_port)
            "$bin/stdiopool" --listen "127.0.0.1:$port" --log-filter warn --pool-size "$ps" \
                --min-idle "$ps" --demo --drain-delay 0 >/dev/null 2>&1 &
            PID=$!
            wait_ready "$port" || { echo "proxy not ready" >&2; exit 1; }
            concurrencies="1 8"
            [[ $ps == 2 ]] && concurrencies="1 8 64"
            for c in $concurrencies; do
                run "$bin" "pool$ps-c$c" "$port" "$c"
            done
            kill "$PID"; wait "$PID" 2>/dev/null; PID=""
        done
    done
done
