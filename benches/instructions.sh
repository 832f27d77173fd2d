#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: a figure that does
# not move with the machine's load (wall-clock and CPU-time figures on a
# shared 2-core machine move ±20 % between runs; this moves < 1 %).
#
#   bash benches/instructions.sh [CONCURRENCY ...]     (default: 1 8)
#
# Runs the release `stdiopool` under `valgrind --tool=callgrind` (pooled,
# pool size 2, the fixture via --demo, on a free 127.0.0.1 port), loads it
# with `stdiopool-load http` twice (200 and 1,200 requests, `tools/call
# echo`), and reports (instructions of the longer run − the shorter) ÷ 1,000:
# the proxy's user-space instructions per request, start-up and warm-up
# excluded. The kernel's share (syscalls, wake-ups) is not counted: see
# docs/PERFORMANCE.md for the strace and CPU-time figures beside it.
# Profiles stay in target/bench-results/callgrind/ (callgrind_annotate reads them).
#
# BENCH_SERVER=floor or BENCH_SERVER=pipe-floor counts the same for the HTTP
# floor (`stdiopool-load floor`, answering from memory) or the pipe floor
# (`floor --processes 2 -- stdiopool-fixture`, the least forwarder) instead
# of the proxy, so "what HTTP costs", "what HTTP + the pipe cost" and "what
# stdiopool adds" are three figures of the same kind.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "benches/instructions.sh needs valgrind" >&2; exit 1; }
BIN=${CARGO_TARGET_DIR:-$(pwd)/target}/release
OUT=${CARGO_TARGET_DIR:-$(pwd)/target}/bench-results/callgrind
mkdir -p "$OUT"
cargo build --release --bins >&2

PID=""
trap '[[ -n "$PID" ]] && kill "$PID" 2>/dev/null; true' EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# total_instructions CONCURRENCY REQUESTS
total_instructions() {
    local c=$1 n=$2 port out
    port=$(free_port)
    out=$OUT/c$c-n$n.out
    local server
    case ${BENCH_SERVER:-proxy} in
        proxy) server=("$BIN/stdiopool" --listen "127.0.0.1:$port" --log-filter warn
                   --pool-size 2 --min-idle 2 --demo --drain-delay 0) ;;
        floor) server=("$BIN/stdiopool-load" floor --listen "127.0.0.1:$port") ;;
        pipe-floor) server=("$BIN/stdiopool-load" floor --listen "127.0.0.1:$port"
                   --processes 2 -- "$BIN/stdiopool-fixture") ;;
        *) echo "BENCH_SERVER is proxy, floor or pipe-floor" >&2; exit 1 ;;
    esac
    valgrind --tool=callgrind --callgrind-out-file="$out" \
        "${server[@]}" >/dev/null 2>"$OUT/c$c-n$n.log" &
    PID=$!
    local i
    for i in $(seq 1 600); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    "$BIN/stdiopool-load" http --url "http://127.0.0.1:$port/mcp" --concurrency "$c" \
        --requests "$n" --timeout 60s --duration 600s >&2
    kill -TERM "$PID"
    wait "$PID" || true
    PID=""
    awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

for c in "${@:-1 8}"; do
    for conc in $c; do
        short=$(total_instructions "$conc" 200)
        long=$(total_instructions "$conc" 1200)
        echo "${BENCH_SERVER:-proxy} c=$conc: $(( (long - short) / 1000 )) instructions per request"
    done
done
